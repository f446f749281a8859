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
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			m.sweep()
		}
	}
}

// sweep removes every expired session, Once key, lock and record. It holds each
// lock for at most sweepBatch entries at a time.
func (m *MemoryStore) sweep() {
	now := unixNano(m.now())

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
