package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// The format of a session blob in Redis:
//
//	version (1 byte) | key id (4 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext and tag
//
// The additional authenticated data is the full name of the Redis key the
// blob is stored under, so a blob is only valid at its own key.
const (
	// sealVersion is the version byte of the blob format above.
	sealVersion = 1
	// sealKeyIDLength is the length of a key id: the first bytes of the
	// SHA-256 of the derived key. It names the key, so that a blob is opened
	// with the right one during rotation; it reveals nothing usable.
	sealKeyIDLength = 4
	// sealHeaderLength is what comes before the AEAD output.
	sealHeaderLength = 1 + sealKeyIDLength
	// sealOverhead is the nonce and the tag that the AEAD adds.
	sealOverhead = 12 + 16
	// sealInfo is the HKDF info string of the Redis encryption key; distinct
	// from the cookie codec's, so that the keys derived from one secret are
	// independent.
	sealInfo = "trustgate redis session v1"
)

// sealKey is one AES-256-GCM key derived from a secret.
type sealKey struct {
	id   [sealKeyIDLength]byte
	aead cipher.AEAD // random 96-bit nonce, prepended to the ciphertext
}

// keyring holds the encryption keys, newest first: the first seals, all
// open.
type keyring []sealKey

// newKeyring derives one key per secret with HKDF-SHA256. Each secret must
// be at least MinSecretLength bytes. Errors name a secret by position only.
func newKeyring(secrets [][]byte) (keyring, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("session: redis: no secret configured")
	}
	k := make(keyring, 0, len(secrets))
	for i, secret := range secrets {
		if len(secret) < MinSecretLength {
			return nil, fmt.Errorf("session: redis: secret %d of %d is shorter than %d bytes", i+1, len(secrets), MinSecretLength)
		}
		key, err := hkdf.Key(sha256.New, secret, nil, sealInfo, keyLength)
		if err != nil {
			return nil, fmt.Errorf("session: redis: deriving the key of secret %d: %w", i+1, err)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("session: redis: secret %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("session: redis: secret %d: %w", i+1, err)
		}
		sum := sha256.Sum256(key)
		k = append(k, sealKey{id: [sealKeyIDLength]byte(sum[:sealKeyIDLength]), aead: aead})
	}
	return k, nil
}

// seal encrypts plaintext with the newest key for the Redis key named aad.
// Every call uses a fresh random nonce.
func (k keyring) seal(aad string, plaintext []byte) []byte {
	key := &k[0]
	out := make([]byte, sealHeaderLength, sealHeaderLength+len(plaintext)+sealOverhead)
	out[0] = sealVersion
	copy(out[1:], key.id[:])
	return key.aead.Seal(out, nil, plaintext, []byte(aad))
}

// open decrypts a blob read from the Redis key named aad. It reports false
// for anything that is not a blob sealed for that key with one of the
// keys: garbage, a truncated or tampered blob, an unknown version, a
// foreign key, or a blob copied from another Redis key.
func (k keyring) open(aad string, blob []byte) ([]byte, bool) {
	if len(blob) < sealHeaderLength+sealOverhead || blob[0] != sealVersion {
		return nil, false
	}
	id := [sealKeyIDLength]byte(blob[1:sealHeaderLength])
	for i := range k {
		if k[i].id != id {
			continue
		}
		// Two secrets may share an id (by chance, or configured twice): try
		// each key that has it.
		if plaintext, err := k[i].aead.Open(nil, nil, blob[sealHeaderLength:], []byte(aad)); err == nil {
			return plaintext, true
		}
	}
	return nil, false
}
