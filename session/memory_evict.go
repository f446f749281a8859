package session

import (
	"crypto/rand"
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"time"
)

// Bounding the memory store: the janitor's sweep and the eviction when it is full.

// janitor removes expired entries every interval until Close.
func (m *MemoryStore) janitor(interval time.Duration) {
	defer close(m.stopped)
	t := time.NewTicker(interval)
	defer t.Stop()
	c := time.NewTicker(m.coolEvery)
	defer c.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			m.Sweep()
		case <-c.C:
			m.cool(unixNano(m.now()), m.coolEvery/2)
		}
	}
}

// Sweep is the janitor's pass, which it runs every SweepInterval: it removes every expired
// session, Once key, lock and record, and packs the sessions nobody has used for 30 s (or
// SweepInterval, when shorter), which it also does every 10 s: a packed session costs about a
// sixth of the memory, and its next Get decodes it again. It holds each lock for at most
// sweepBatch entries at a time, and packs outside the lock. Tests and benchmarks call it to
// reach the janitor's steady state without waiting.
func (m *MemoryStore) Sweep() {
	now := unixNano(m.now())
	m.sweepSessions(now)
	m.cool(now, 0)
	m.sweepRest(now)
}

// sweepSessions removes the expired sessions.
func (m *MemoryStore) sweepSessions(now int64) {
	m.mu.RLock()
	i := len(m.list) - 1
	m.mu.RUnlock()
	for i >= 0 {
		m.mu.Lock()
		// Walk downwards: removeLocked moves the last entry (already
		// visited) into the hole. Entries added between batches are
		// skipped until the next sweep.
		i = min(i, len(m.list)-1)
		for stop := max(i-sweepBatch, -1); i > stop; i-- {
			if e := m.list[i]; e.expired(now, e.lastSeen.Load()) {
				m.removeLocked(i)
			}
		}
		m.mu.Unlock()
	}
	m.mu.Lock()
	m.list = shrink(m.list)
	m.mu.Unlock()
}

// sweepRest removes the expired Once keys, locks and records.
func (m *MemoryStore) sweepRest(now int64) {
	var i int
	m.onceMu.Lock()
	i = len(m.onceList) - 1
	m.onceMu.Unlock()
	for i >= 0 {
		m.onceMu.Lock()
		i = min(i, len(m.onceList)-1)
		for stop := max(i-sweepBatch, -1); i > stop; i-- {
			if now >= m.onceList[i].exp {
				m.removeOnceLocked(i)
			}
		}
		m.onceMu.Unlock()
	}
	m.onceMu.Lock()
	m.onceList = shrink(m.onceList)
	m.onceMu.Unlock()

	// Locks are short-lived and bounded by MaxLocks: one pass.
	m.lockMu.Lock()
	m.sweepLocksLocked(now)
	m.lockMu.Unlock()

	// Records are bounded by MaxRecords: one pass.
	m.recordMu.Lock()
	m.sweepRecordsLocked(now)
	m.recordMu.Unlock()
}

// cool packs the live sessions last used coolAfter or more before now and drops their
// decoded form. It collects a batch under the read lock and packs it without any lock;
// coolMu keeps two passes (the janitor's and a Sweep call) from packing the same entry at
// once. A pass stops after budget (the janitor gives it half its period, so that removing
// expired sessions is never held up for long); the next pass goes on. Zero: no limit.
func (m *MemoryStore) cool(now int64, budget time.Duration) {
	m.coolMu.Lock()
	defer m.coolMu.Unlock()
	began := time.Now()
	batch := make([]*entry, 0, sweepBatch)
	for start := 0; ; start += sweepBatch {
		batch = batch[:0]
		m.mu.RLock()
		end := min(start+sweepBatch, len(m.list))
		for _, e := range m.list[min(start, end):end] {
			if last := e.lastSeen.Load(); now-last >= m.coolAfter && !e.expired(now, last) && e.hot.Load() != nil {
				batch = append(batch, e)
			}
		}
		m.mu.RUnlock()
		for _, e := range batch {
			s := e.hot.Load()
			if s == nil {
				continue
			}
			if e.packed == nil { // only this pass writes it (coolMu), before clearing hot
				p, err := m.packer.pack(s)
				if err != nil {
					continue // claims that do not encode, or too large: stays decoded
				}
				e.packed = p
			}
			if now-e.lastSeen.Load() >= m.coolAfter { // not used meanwhile
				e.hot.CompareAndSwap(s, nil)
			}
		}
		if budget > 0 && time.Since(began) >= budget {
			return
		}
		if end < start+sweepBatch {
			return
		}
	}
}

// evictLocked removes one session: an expired one among a random sample if
// there is one, else the sampled one with the oldest last-seen time.
// m.mu must be held for writing and m.list must not be empty.
func (m *MemoryStore) evictLocked(now int64) {
	n := len(m.list)
	victim, oldest := -1, int64(math.MaxInt64)
	for k := range min(n, evictionSample) {
		i := k // a small store is scanned completely: exact LRU
		if n > evictionSample {
			i = randIndex(&m.rng, n)
		}
		e := m.list[i]
		last := e.lastSeen.Load()
		if e.expired(now, last) {
			victim = i
			break
		}
		if last < oldest || victim < 0 {
			victim, oldest = i, last
		}
	}
	m.removeLocked(victim)
}

// removeLocked deletes the session at list index i. m.mu must be held for
// writing.
func (m *MemoryStore) removeLocked(i int) {
	e := m.list[i]
	last := len(m.list) - 1
	if i != last {
		m.list[i] = m.list[last]
		m.list[i].idx = i
	}
	m.list[last] = nil
	m.list = m.list[:last]
	delete(m.sessions, e.id)
}

// evictOnceLocked removes one Once key: an expired one among a random
// sample if there is one, else the sampled one that expires soonest.
// m.onceMu must be held and m.onceList must not be empty.
func (m *MemoryStore) evictOnceLocked(now int64) {
	n := len(m.onceList)
	victim, soonest := -1, int64(math.MaxInt64)
	for k := range min(n, evictionSample) {
		i := k
		if n > evictionSample {
			i = randIndex(&m.onceRng, n)
		}
		exp := m.onceList[i].exp
		if now >= exp {
			victim = i
			break
		}
		if exp < soonest || victim < 0 {
			victim, soonest = i, exp
		}
	}
	m.removeOnceLocked(victim)
}

// removeOnceLocked deletes the Once key at index i. m.onceMu must be held.
func (m *MemoryStore) removeOnceLocked(i int) {
	key := m.onceList[i].key
	last := len(m.onceList) - 1
	if i != last {
		m.onceList[i] = m.onceList[last]
		m.once[m.onceList[i].key] = i
	}
	m.onceList = m.onceList[:last]
	delete(m.once, key)
}

// shrink returns s with a smaller backing array when most of it is unused,
// so that a burst of sessions does not pin memory forever.
func shrink[T any](s []T) []T {
	if c := cap(s); c > 2*sweepBatch && len(s) < c/4 {
		return slices.Clone(s)
	}
	return s
}

// seed returns a random PRNG seed.
func seed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// randIndex returns a pseudo-random index in [0, n) from the splitmix64
// state *s. It picks eviction samples only and is not for security.
func randIndex(s *uint64, n int) int {
	*s += 0x9e3779b97f4a7c15
	z := *s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	hi, _ := bits.Mul64(z, uint64(n))
	return int(hi)
}
