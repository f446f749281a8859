package session

import (
	"context"
	"time"
)

// A store's methods are grouped by what its users need: a caller that only reads sessions
// can depend on a SessionReader, one that keeps CIBA records on a RecordStore, and so on.
// Store is all of them; MemoryStore and RedisStore implement Store. Pinger, SessionCounter,
// ObservedGetter and CacheStatsReporter are optional: ask for them where the concrete store
// is known, or with an interface assertion.

// SessionReader looks sessions up. The gateway's request path uses Get on every request
// that carries a session cookie, and so do the CIBA endpoints for the session a pending
// login was bound to; a refresh (and alias linking) uses Reload after taking a Lock.
type SessionReader interface {
	// Get returns the live session. It enforces ExpiresAt and IdleTimeout
	// (ErrNotFound when past either, and the session is then removed) and
	// records the access for the idle clock. A store with a local cache
	// (RedisStore) may answer from it: see Reload.
	Get(ctx context.Context, id string) (*Session, error)
	// Reload is Get without any local cache: it returns the session as it is
	// stored right now, and refreshes the local cache entry with what it
	// read, so that a Get after it sees the same version. Errors are those of
	// Get: ErrNotFound when the session is absent or expired, ErrUnavailable
	// when the store cannot be reached. Stores without a local cache
	// (MemoryStore) answer as Get.
	//
	// It is the re-check after taking a Lock: another instance may have
	// changed the session (refreshed its tokens) while this one waited, and
	// the invalidation of the cached copy may not have arrived yet.
	Reload(ctx context.Context, id string) (*Session, error)
}

// SessionWriter stores, changes and removes single sessions. The login callback Puts the
// new session (and Deletes the one it replaces), the logout endpoint Deletes, and a
// refresh or an alias linking Updates a Clone of the stored session.
type SessionWriter interface {
	// Put stores s under s.ID, replacing any previous one, and raises
	// s.Version above the version of the session it replaces (when s is a
	// Clone of it). Every instance drops its cached copy of the previous
	// version. Put keeps s.ExpiresAt as given: the session's lifetime (and
	// every TTL of it in the store) is what is left until then, so a Put of a
	// refreshed Clone never extends it.
	Put(ctx context.Context, s *Session) error
	// Update is Put for a changed Clone of a stored session, only while that
	// session still exists: a session deleted meanwhile (a logout during a
	// refresh) is never brought back; Update then returns ErrNotFound. The
	// MemoryStore also refuses (ErrConflict) when the stored version is no
	// longer the one s was cloned from; across instances, writers of one
	// session serialize with Lock.
	Update(ctx context.Context, s *Session) error
	// Delete removes the session; deleting an absent id is not an error.
	Delete(ctx context.Context, id string) error
}

// MatchDeleter ends sessions by what they belong to rather than by id: the back-channel
// logout ends every session of a provider session (sid) or of a subject (sub).
type MatchDeleter interface {
	// DeleteMatching removes every session that m matches and returns how many
	// it removed (back-channel logout by sid or sub, "log out everywhere").
	DeleteMatching(ctx context.Context, m Match) (int, error)
}

// ReplayGuard remembers single-use values for a while. The login callback uses it so that
// a login state is accepted once.
type ReplayGuard interface {
	// Once reports whether key is seen for the first time within ttl
	// (replay protection for login state and logout-token jti). A second
	// call with the same key within ttl returns false.
	Once(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// Locker gives short exclusive locks shared by every instance that uses the store (it is
// not a sync.Locker: a lock is named, and Lock does not wait). The gateway uses it for the
// refresh single-flight (refresh and alias linking), for the back-channel logout's jti
// replay record, and for CIBA's poll lease and its per-user and per-address start limits.
type Locker interface {
	// Lock takes the short exclusive lock named key, shared by every
	// instance that uses the same store. When the lock is free (never taken,
	// released, or its last hold has expired), Lock takes it for ttl and
	// returns a token that names this hold and ok = true; when someone else
	// holds it, ok = false at once (Lock does not wait). A hold ends by
	// itself after ttl, so a holder that dies or hangs blocks the others for
	// at most ttl; a holder must be done within ttl, since after it another
	// may take the lock. An error (ErrUnavailable for a backend failure)
	// always comes with ok = false: the caller does not hold the lock.
	//
	// The gateway uses it for refresh single-flight across instances
	// (threat model OPS-10): the one request that gets the lock of a session
	// Reloads the session, re-checks that it still needs a refresh, refreshes,
	// Puts the result and Unlocks; the others (on any instance) poll Lock and
	// Reload until they see the refreshed version or get the lock themselves,
	// so the provider sees one refresh grant per refresh token.
	Lock(ctx context.Context, key string, ttl time.Duration) (token string, ok bool, err error)
	// Unlock releases the lock named key if token still holds it (compare
	// and delete, atomically). A token whose hold has expired releases
	// nothing, so a stale holder can never release a newer holder's lock;
	// Unlock of a lock that token does not hold returns nil. Errors are
	// failures to reach the store (ErrUnavailable); the lock then expires by
	// itself.
	Unlock(ctx context.Context, key, token string) error
}

// RecordStore keeps small opaque records beside the sessions, shared by every instance
// that uses the store. The gateway keeps its pending CIBA logins (and their hints and
// claims requests) here.
type RecordStore interface {
	// PutRecord stores a small opaque record (at most 4 KiB) under key for ttl, replacing any
	// record of that key. GetRecord returns it, or ErrNotFound when absent or expired.
	// DeleteRecord removes it (no error when absent). Records live beside sessions: the gateway
	// keeps pending CIBA logins here, so every instance sees them. In Redis they are encrypted
	// like sessions (the key is hashed, the value sealed with AES-256-GCM bound to the key).
	//
	// An empty key, a ttl <= 0 or a value longer than MaxRecordSize is an error of the caller
	// (neither ErrNotFound nor ErrUnavailable). Failures to reach the store, and a memory store
	// holding MaxRecords live records, are ErrUnavailable. The value passed to PutRecord and the
	// one GetRecord returns belong to the caller: the store keeps its own copy.
	PutRecord(ctx context.Context, key string, value []byte, ttl time.Duration) error
	GetRecord(ctx context.Context, key string) ([]byte, error)
	DeleteRecord(ctx context.Context, key string) error
}

// Store keeps sessions: SessionReader, SessionWriter, MatchDeleter, ReplayGuard, Locker and
// RecordStore in one. Implementations are safe for concurrent use. The gateway's handler
// holds a Store; a part of it that needs less can depend on the smaller interface it uses.
type Store interface {
	SessionReader
	SessionWriter
	MatchDeleter
	ReplayGuard
	Locker
	RecordStore
}

// Pinger is a store that can tell whether it answers, cheaply: the health endpoint asks it.
// MemoryStore always answers; RedisStore sends PING.
type Pinger interface {
	Ping(ctx context.Context) error
}

// ObservedGetter is a store whose lookups can report how long the part that waited for its
// backend took, for a latency metric that describes the backend rather than a local cache.
// RedisStore implements it; the gateway's store metrics use it when they wrap one.
type ObservedGetter interface {
	// GetObserved is Get that tells observe, when it is not nil, how long a lookup that
	// went to the backend took. A lookup a local cache answers alone reports nothing.
	GetObserved(ctx context.Context, id string, observe func(time.Duration)) (*Session, error)
}

// SessionCounter is a store that can count the sessions it holds cheaply. MemoryStore
// implements it (RedisStore does not: it would have to scan Redis); the gateway exports the
// count as a metric.
type SessionCounter interface {
	// Len returns the number of stored sessions, including expired ones not removed yet.
	Len() int
}

// CacheStatsReporter is a store with a local cache that counts how many lookups it
// answered. RedisStore implements it; the gateway exports the counts as metrics.
type CacheStatsReporter interface {
	// CacheStats reports how many Get calls the local cache answered (hits) and how many
	// went to the backend (misses), since the store was made.
	CacheStats() (hits, misses uint64)
}
