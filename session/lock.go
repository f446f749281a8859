package session

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
)

// lockTokenBytes is the entropy of a lock token: 128 bits.
const lockTokenBytes = 16

var (
	errEmptyLockKey       = errors.New("session: lock: empty key")
	errNonPositiveLockTTL = errors.New("session: lock: ttl must be positive")
)

// newLockToken returns a random token naming one hold of a lock: 16 bytes
// from crypto/rand in base64url. Two holds never share a token, so Unlock
// by a holder whose hold expired cannot match a newer holder's.
func newLockToken() string {
	var b [lockTokenBytes]byte
	_, _ = rand.Read(b[:]) // never fails; crashes the program if it could
	return base64.RawURLEncoding.EncodeToString(b[:])
}
