package session

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"
)

// The memory store's single-use records and locks.

// onceEntry is a key remembered by Once.
type onceEntry struct {
	key [sha256.Size]byte
	exp int64 // unix ns
}

// lockEntry is a hold of a lock taken by Lock.
type lockEntry struct {
	token string
	exp   int64 // unix ns
}

// Once reports whether key is seen for the first time within ttl: the first
// call returns true and remembers key for ttl; later calls return false
// until ttl has passed. Keys are remembered as their SHA-256, so a long key
// costs no more memory than a short one. When MaxOnceKeys keys are
// remembered, an expired key is dropped if the sample finds one, else the
// one that expires soonest.
func (m *MemoryStore) Once(_ context.Context, key string, ttl time.Duration) (bool, error) {
	if key == "" {
		return false, errEmptyOnceKey
	}
	if ttl <= 0 {
		return false, errNonPositiveTTL
	}
	h := sha256.Sum256([]byte(key))
	now := unixNano(m.now())
	exp := addNanos(now, ttl)

	m.onceMu.Lock()
	defer m.onceMu.Unlock()
	if i, ok := m.once[h]; ok {
		if now < m.onceList[i].exp {
			return false, nil
		}
		m.onceList[i].exp = exp
		return true, nil
	}
	for len(m.onceList) >= m.maxOnce {
		m.evictOnceLocked(now)
	}
	m.once[h] = len(m.onceList)
	m.onceList = append(m.onceList, onceEntry{key: h, exp: exp})
	return true, nil
}

// Lock takes the lock named key for ttl when it is free or its hold has
// expired, and returns the token of the new hold and true; it returns false
// while another hold is live. Keys are remembered as their SHA-256. Locks
// live in this process only: with one MemoryStore there is one gateway
// process, so that is every instance there is. When MaxLocks locks are held,
// the expired ones are dropped first; if all are live, Lock fails with
// ErrUnavailable rather than break one.
func (m *MemoryStore) Lock(_ context.Context, key string, ttl time.Duration) (string, bool, error) {
	if key == "" {
		return "", false, errEmptyLockKey
	}
	if ttl <= 0 {
		return "", false, errNonPositiveLockTTL
	}
	h := sha256.Sum256([]byte(key))
	now := unixNano(m.now())

	m.lockMu.Lock()
	defer m.lockMu.Unlock()
	if l, ok := m.locks[h]; ok && now < l.exp {
		return "", false, nil
	} else if !ok && len(m.locks) >= m.maxLocks {
		m.sweepLocksLocked(now)
		if len(m.locks) >= m.maxLocks {
			return "", false, fmt.Errorf("%w: memory store: %d locks held, the most allowed (MaxLocks)", ErrUnavailable, len(m.locks))
		}
	}
	token := newLockToken()
	m.locks[h] = lockEntry{token: token, exp: addNanos(now, ttl)}
	return token, true, nil
}

// Unlock releases the lock named key if token is its current hold. A token
// that no longer holds it (expired, and perhaps taken again since) releases
// nothing.
func (m *MemoryStore) Unlock(_ context.Context, key, token string) error {
	if key == "" || token == "" {
		return nil
	}
	h := sha256.Sum256([]byte(key))
	m.lockMu.Lock()
	if l, ok := m.locks[h]; ok && l.token == token {
		delete(m.locks, h)
	}
	m.lockMu.Unlock()
	return nil
}

// sweepLocksLocked drops every expired lock. m.lockMu must be held.
func (m *MemoryStore) sweepLocksLocked(now int64) {
	for h, l := range m.locks {
		if now >= l.exp {
			delete(m.locks, h)
		}
	}
}
