package session

import (
	"context"
	"crypto/sha256"
	"errors"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for [MemoryOptions].
const (
	DefaultMaxSessions   = 100_000
	DefaultMaxOnceKeys   = 100_000
	DefaultMaxLocks      = 200_000
	DefaultMaxRecords    = 10_000
	DefaultSweepInterval = time.Minute
)

const (
	// evictionSample is how many entries an eviction looks at.
	evictionSample = 8
	// sweepBatch is how many entries the janitor checks per lock hold, so
	// that a sweep of a large store never blocks Get for long.
	sweepBatch = 1024
	// maxTouchResolution bounds how often Get writes an entry's last-seen
	// time (see entry.touch).
	maxTouchResolution = int64(time.Second)
)

var (
	errNilSession     = errors.New("session: put: nil session")
	errEmptyID        = errors.New("session: put: empty id")
	errNoExpiry       = errors.New("session: put: expires_at is required")
	errStoredSession  = errors.New("session: put: session is already stored and must not be modified; put a Clone")
	errEmptyOnceKey   = errors.New("session: once: empty key")
	errNonPositiveTTL = errors.New("session: once: ttl must be positive")
)

// MemoryOptions configures a [MemoryStore]. The zero value is usable.
type MemoryOptions struct {
	// MaxSessions bounds the number of sessions. When the store is full, a
	// Put of a new session evicts approximately the least recently used
	// one: it samples 8 entries and drops an expired one if there is one,
	// else the one idle longest. Default (<= 0): DefaultMaxSessions.
	MaxSessions int
	// MaxOnceKeys bounds the number of keys remembered by Once, with the
	// same sampled eviction (expired first, else the one that expires
	// soonest). Evicting a live key ends its replay protection early, so
	// size this above the peak number of keys per ttl (for login state:
	// logins started per state lifetime). Default (<= 0): DefaultMaxOnceKeys.
	MaxOnceKeys int
	// MaxLocks bounds the number of locks held at once (Lock). A live lock
	// is never evicted: when MaxLocks are held, Lock first drops the expired
	// ones and, if none is, fails with ErrUnavailable. Default (<= 0):
	// DefaultMaxLocks.
	MaxLocks int
	// MaxRecords bounds the number of records (PutRecord). A live record is
	// never evicted (it is a pending login someone is waiting on): when
	// MaxRecords records are stored, PutRecord of a new key first drops the
	// expired ones and, if none is, fails with ErrUnavailable. Replacing a
	// stored key always succeeds. Default (<= 0): DefaultMaxRecords.
	MaxRecords int
	// SweepInterval is the period of the janitor that removes expired
	// sessions, Once keys, locks and records. Default (<= 0):
	// DefaultSweepInterval.
	SweepInterval time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// MemoryStore is the embedded [Store]: sessions live in this process's
// memory. It is safe for concurrent use.
//
// Get, the per-request path, takes only a read lock and does not allocate
// (except the first Get of a session the janitor packed, which decodes it);
// the idle clock of a session is an atomic last-seen time with a resolution
// of one second or a sixteenth of the session's IdleTimeout, whichever is
// smaller (a session may therefore end up to that much before its idle
// timeout, never after). Eviction samples a constant number of entries, so
// Put is O(1) even when the store is full.
//
// NewMemoryStore starts a janitor goroutine; Close stops it.
type MemoryStore struct {
	now func() time.Time

	mu          sync.RWMutex
	sessions    map[string]*entry // guarded by mu
	list        []*entry          // guarded by mu; dense, for O(1) random sampling
	maxSessions int               // guarded by mu
	rng         uint64            // guarded by mu

	onceMu   sync.Mutex
	once     map[[sha256.Size]byte]int // key hash -> index in onceList; guarded by onceMu
	onceList []onceEntry               // guarded by onceMu
	maxOnce  int                       // guarded by onceMu
	onceRng  uint64                    // guarded by onceMu

	lockMu   sync.Mutex
	locks    map[[sha256.Size]byte]lockEntry // key hash -> hold; guarded by lockMu
	maxLocks int                             // guarded by lockMu

	// packer packs the sessions nobody used since the janitor's last pass; matchSeed
	// seeds entry.subHash and entry.sidHash.
	packer    packer
	matchSeed maphash.Seed
	// coolAfter is how long a session stays decoded after its last use, and coolEvery how
	// often the janitor looks for such sessions (coolTimes).
	coolAfter int64
	coolEvery time.Duration
	coolMu    sync.Mutex

	recordMu   sync.Mutex
	records    map[[sha256.Size]byte]recordEntry // key hash -> record; guarded by recordMu
	maxRecords int                               // guarded by recordMu

	closeOnce sync.Once
	done      chan struct{} // closed by Close
	stopped   chan struct{} // closed when the janitor has returned
}

// entry is a stored session. Everything but hot, packed, lastSeen and idx is
// immutable after Put, so Get reads it without holding mu.
//
// A session is held decoded (hot) from its Put until the janitor finds it unused
// for coolAfter (30 s); the janitor then packs it (packed, see pack.go) and drops the
// decoded form, and the next Get decodes it again. packed is written once, by
// the janitor, before it clears hot (an atomic), and read only by whoever has
// seen hot nil: the atomic orders the write before every read.
type entry struct {
	id       string
	hot      atomic.Pointer[Session]
	packed   []byte // see above; nil until the janitor first packs the session
	version  uint64 // hot's Version
	subHash  uint32 // matchHash of issuer and subject
	sidHash  uint32 // matchHash of issuer and sid ("" when none)
	expires  int64  // unix ns, absolute end
	idle     int64  // ns; 0 = no idle timeout
	lastSeen atomic.Int64
	idx      int // position in MemoryStore.list; guarded by mu
}

// touch is how far lastSeen must have moved before Get stores it again: a second, or a
// sixteenth of the idle timeout when that is shorter.
func (e *entry) touch() int64 {
	if e.idle > 0 {
		return min(maxTouchResolution, e.idle/16)
	}
	return maxTouchResolution
}

// expired reports whether the entry is past its absolute or idle end at now,
// given the last-seen time last.
func (e *entry) expired(now, last int64) bool {
	return now >= e.expires || (e.idle > 0 && now-last >= e.idle)
}

// Ping reports that the store answers: an in-process store always does.
func (s *MemoryStore) Ping(context.Context) error { return nil }

// NewMemoryStore returns an empty store and starts its janitor. Call Close
// when done with it.
func NewMemoryStore(opts MemoryOptions) *MemoryStore {
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.MaxOnceKeys <= 0 {
		opts.MaxOnceKeys = DefaultMaxOnceKeys
	}
	if opts.MaxLocks <= 0 {
		opts.MaxLocks = DefaultMaxLocks
	}
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = DefaultMaxRecords
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	coolAfter, coolEvery := coolTimes(opts.SweepInterval)
	m := &MemoryStore{
		now:         opts.Now,
		sessions:    make(map[string]*entry),
		maxSessions: opts.MaxSessions,
		rng:         seed(),
		once:        make(map[[sha256.Size]byte]int),
		maxOnce:     opts.MaxOnceKeys,
		onceRng:     seed(),
		locks:       make(map[[sha256.Size]byte]lockEntry),
		maxLocks:    opts.MaxLocks,
		records:     make(map[[sha256.Size]byte]recordEntry),
		matchSeed:   maphash.MakeSeed(),
		coolAfter:   int64(coolAfter),
		coolEvery:   coolEvery,
		maxRecords:  opts.MaxRecords,
		done:        make(chan struct{}),
		stopped:     make(chan struct{}),
	}
	go m.janitor(opts.SweepInterval)
	return m
}

// Get returns the live session stored under id. A session past its
// ExpiresAt or IdleTimeout is removed and ErrNotFound is returned; otherwise
// the access is recorded for the idle clock and eviction.
func (m *MemoryStore) Get(_ context.Context, id string) (*Session, error) {
	m.mu.RLock()
	e := m.sessions[id]
	m.mu.RUnlock()
	if e == nil {
		return nil, ErrNotFound
	}
	now := unixNano(m.now())
	last := e.lastSeen.Load()
	if e.expired(now, last) {
		m.mu.Lock()
		if m.sessions[id] == e { // not replaced meanwhile
			m.removeLocked(e.idx)
		}
		m.mu.Unlock()
		return nil, ErrNotFound
	}
	if now-last >= e.touch() {
		e.lastSeen.Store(now)
	}
	if s := e.hot.Load(); s != nil {
		return s, nil
	}
	return m.warm(e)
}

// warm decodes the packed session of a cooled entry and makes it hot again. A packed form
// that does not decode (a bug, never a user's doing) ends the session.
func (m *MemoryStore) warm(e *entry) (*Session, error) {
	s, err := m.unpacked(e)
	if err != nil {
		m.mu.Lock()
		if m.sessions[e.id] == e {
			m.removeLocked(e.idx)
		}
		m.mu.Unlock()
		return nil, ErrNotFound
	}
	if !e.hot.CompareAndSwap(nil, s) {
		if cur := e.hot.Load(); cur != nil {
			return cur, nil // another Get warmed it first: share its pointer
		}
	}
	return s, nil
}

// unpacked returns the session of e: the hot one, else decoded from packed.
func (m *MemoryStore) unpacked(e *entry) (*Session, error) {
	if s := e.hot.Load(); s != nil {
		return s, nil
	}
	if e.packed == nil {
		return nil, errPacked
	}
	s, err := m.packer.unpack(e.packed, e.id)
	if err != nil {
		return nil, err
	}
	s.Version = e.version
	s.stored.Store(true)
	return s, nil
}

// Reload is Get: the memory store has no cache in front of it, so the
// session it returns is always the one stored now.
func (m *MemoryStore) Reload(ctx context.Context, id string) (*Session, error) {
	return m.Get(ctx, id)
}

// Put stores s under s.ID, replacing any previous session, and sets
// s.Version to the previous version + 1 (1 when there was none). s must have
// a non-empty ID and a non-zero ExpiresAt, and must not be the session that
// is currently stored (Put a Clone instead). When the store is full, Put of
// a new ID first evicts one session.
func (m *MemoryStore) Put(_ context.Context, s *Session) error {
	return m.put(s, nil)
}

// put stores s; with want set, only while want is still the stored entry.
func (m *MemoryStore) put(s *Session, want *entry) error {
	switch {
	case s == nil:
		return errNilSession
	case s.ID == "":
		return errEmptyID
	case s.ExpiresAt.IsZero():
		return errNoExpiry
	}
	now := unixNano(m.now())
	e := &entry{
		id:      s.ID,
		subHash: m.matchHash(s.Issuer, s.Subject),
		sidHash: m.matchHash(s.Issuer, s.SID()),
		expires: unixNano(s.ExpiresAt),
	}
	e.hot.Store(s)
	if s.IdleTimeout > 0 {
		e.idle = int64(s.IdleTimeout)
	}
	e.lastSeen.Store(now)

	m.mu.Lock()
	defer m.mu.Unlock()
	if want != nil && m.sessions[s.ID] != want {
		if m.sessions[s.ID] == nil {
			return ErrNotFound
		}
		return ErrConflict
	}
	if old := m.sessions[s.ID]; old != nil {
		if s.stored.Load() {
			return errStoredSession
		}
		s.Version = old.version + 1
		e.version = s.Version
		e.idx = old.idx
		m.list[e.idx] = e
		m.sessions[s.ID] = e
		s.stored.Store(true)
		return nil
	}
	s.Version, e.version = 1, 1
	for len(m.list) >= m.maxSessions {
		m.evictLocked(now)
	}
	e.idx = len(m.list)
	m.list = append(m.list, e)
	m.sessions[s.ID] = e
	s.stored.Store(true)
	return nil
}

// Update stores s (a Clone of a stored session) only while that session is
// stored at the version s was cloned from; see [SessionWriter.Update].
func (m *MemoryStore) Update(ctx context.Context, s *Session) error {
	if s == nil || s.ID == "" {
		return errEmptyID
	}
	m.mu.Lock()
	old := m.sessions[s.ID]
	m.mu.Unlock()
	switch {
	case old == nil:
		return ErrNotFound
	case old.version != s.Version:
		return ErrConflict
	}
	// Put re-checks under the lock that the entry it replaces is still there.
	return m.put(s, old)
}

// Delete removes the session stored under id, if any.
func (m *MemoryStore) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	if e := m.sessions[id]; e != nil {
		m.removeLocked(e.idx)
	}
	m.mu.Unlock()
	return nil
}

// DeleteMatching removes every stored session that m selects (see
// [Match.Matches]: issuer, subject, sid and CreatedBefore). It scans all sessions:
// back-channel logouts are rare next to requests, and the scan takes milliseconds even at
// the default bound.
func (m *MemoryStore) DeleteMatching(_ context.Context, match Match) (int, error) {
	if match.Subject == "" && match.SID == "" {
		return 0, nil
	}
	// The candidates are found under the read lock (requests go on) by the hashes of issuer
	// and subject or sid, and decided on their sessions without any lock, since a packed one
	// must be decoded; only the removal takes the write lock.
	sub, sid := m.matchHash(match.Issuer, match.Subject), m.matchHash(match.Issuer, match.SID)
	candidate := func(e *entry) bool {
		return (match.Subject == "" || e.subHash == sub) && (match.SID == "" || e.sidHash == sid)
	}
	var found []*entry
	m.mu.RLock()
	for _, e := range m.list {
		if candidate(e) {
			found = append(found, e)
		}
	}
	m.mu.RUnlock()
	// One that does not decode is ended too: it could be one the logout means.
	matches := func(e *entry) bool {
		s, err := m.unpacked(e)
		return err != nil || match.Matches(s)
	}
	var victims []*entry
	for _, e := range found {
		if matches(e) {
			victims = append(victims, e)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, e := range victims {
		cur := m.sessions[e.id]
		if cur == nil {
			continue
		}
		// Replaced meanwhile (a refresh, say): decide on the new version, here under the
		// lock; it is rare.
		if cur != e && !(candidate(cur) && matches(cur)) {
			continue
		}
		m.removeLocked(cur.idx)
		n++
	}
	return n, nil
}

// coolTimes returns how long a session stays decoded after its last use (30 s, or the sweep
// interval when that is shorter) and how often the janitor packs the ones past that (a third
// of it). 30 s keeps a user who reads a page and clicks on decoded, and bounds the decoded
// sessions by the logins of the last 40 s at most.
func coolTimes(sweep time.Duration) (after, every time.Duration) {
	after = min(30*time.Second, sweep)
	return after, max(after/3, time.Millisecond)
}

// matchHash hashes an issuer and a subject or sid for DeleteMatching's first filter.
func (m *MemoryStore) matchHash(issuer, v string) uint32 {
	var h maphash.Hash
	h.SetSeed(m.matchSeed)
	h.WriteString(issuer)
	h.WriteByte(0)
	h.WriteString(v)
	return uint32(h.Sum64())
}

// SetMaxSessions changes the session bound (config reload). n <= 0 means
// DefaultMaxSessions. When the store holds more than n sessions, the excess
// is evicted now.
func (m *MemoryStore) SetMaxSessions(n int) {
	if n <= 0 {
		n = DefaultMaxSessions
	}
	now := unixNano(m.now())
	m.mu.Lock()
	m.maxSessions = n
	for len(m.list) > n {
		m.evictLocked(now)
	}
	m.mu.Unlock()
}

// Len returns the number of stored sessions, including expired ones that
// neither Get nor the janitor has removed yet.
func (m *MemoryStore) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.list)
}

// Close stops the janitor and waits for it to return. The store stays
// usable, without background sweeping. Close is idempotent and always
// returns nil.
func (m *MemoryStore) Close() error {
	m.closeOnce.Do(func() { close(m.done) })
	<-m.stopped
	return nil
}

// unixNano is t.UnixNano, saturated at the int64 range instead of
// overflowing (t.UnixNano is undefined outside years 1678..2262).
func unixNano(t time.Time) int64 {
	const limit = math.MaxInt64/int64(time.Second) - 1 // whole seconds that surely fit
	switch sec := t.Unix(); {
	case sec > limit:
		return math.MaxInt64
	case sec < -limit:
		return math.MinInt64
	}
	return t.UnixNano()
}

// addNanos returns t + d, saturated at math.MaxInt64. d must be positive.
func addNanos(t int64, d time.Duration) int64 {
	if t > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return t + int64(d)
}

// Interface guards
var (
	_ Store          = (*MemoryStore)(nil)
	_ Pinger         = (*MemoryStore)(nil)
	_ SessionCounter = (*MemoryStore)(nil)
)
