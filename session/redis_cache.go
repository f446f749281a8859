package session

import (
	"crypto/sha256"
	"math"
	"sync"
	"sync/atomic"
)

// invStripes is the number of invalidation counters of a redisCache. A
// session's counter is chosen by the first byte of its key hash.
const invStripes = 256

// redisCache is the local cache in front of Redis: a bounded map from key
// hash to the decoded session, with the same sampled, approximately-LRU
// eviction as MemoryStore. It decides nothing about trust or expiry; the
// RedisStore does.
//
// Races between a read from Redis and an invalidation are settled with
// per-stripe counters: every invalidation and every local write of a
// session bumps its stripe's counter under mu, and a read inserts its result
// only if the counter has not moved since before the read was sent. So a
// value read before a Delete or a Put can never be cached after it.
type redisCache struct {
	max      int   // bound on entries
	staleAge int64 // ns; entries older than this are preferred for eviction

	mu   sync.RWMutex
	m    map[[sha256.Size]byte]*cacheEntry // guarded by mu
	list []*cacheEntry                     // guarded by mu; dense, for O(1) random sampling
	rng  uint64                            // guarded by mu

	inv [invStripes]atomic.Uint64 // written under mu, read anywhere
}

// cacheEntry is a cached session. Everything but lastSeen, remote and idx
// is immutable once the entry is in the cache.
type cacheEntry struct {
	h       [sha256.Size]byte // SHA-256 of the session id
	s       *Session
	sum     [sha256.Size]byte // SHA-256 of the blob s was decoded from
	expires int64             // unix ns, absolute end
	idle    int64             // ns; 0 = no idle timeout
	touch   int64             // ns; lastSeen is only stored when it moves this much
	// filled is when the Redis read (or write) that produced the entry
	// started, and epoch the subscription state then; see RedisStore.trusted.
	filled int64
	epoch  uint64
	// lastSeen is the last access through this instance (unix ns).
	lastSeen atomic.Int64
	// remote is the newest idle-clock value known to be in Redis, or being
	// written there by the touch worker (unix ns).
	remote atomic.Int64
	idx    int // position in redisCache.list; guarded by redisCache.mu
}

func newRedisCache(size int, staleAge int64) *redisCache {
	return &redisCache{
		max:      size,
		staleAge: staleAge,
		m:        make(map[[sha256.Size]byte]*cacheEntry),
		rng:      seed(),
	}
}

// get returns the entry for h, or nil. It does not allocate.
func (c *redisCache) get(h *[sha256.Size]byte) *cacheEntry {
	c.mu.RLock()
	e := c.m[*h]
	c.mu.RUnlock()
	return e
}

// seq returns the invalidation counter of h's stripe. Read it before
// sending the Redis read or write whose result will be cached.
func (c *redisCache) seq(h *[sha256.Size]byte) uint64 {
	return c.inv[h[0]].Load()
}

// fill caches e, read from Redis after seq was taken, unless h was
// invalidated or written locally since. It reports whether e was cached.
func (c *redisCache) fill(e *cacheEntry, seq uint64, now int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inv[e.h[0]].Load() != seq {
		return false
	}
	c.insertLocked(e, now)
	return true
}

// written records a successful local Put of e, sent after seq was taken:
// it caches e when nothing else touched its stripe meanwhile, and otherwise
// drops it, because another write of the session may have landed after
// ours.
func (c *redisCache) written(e *cacheEntry, seq uint64, now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inv[e.h[0]].Add(1) == seq+1 {
		c.insertLocked(e, now)
		return
	}
	c.removeLocked(&e.h)
}

// invalidate drops h: it was changed or deleted elsewhere, or is being
// changed here.
func (c *redisCache) invalidate(h *[sha256.Size]byte) {
	c.mu.Lock()
	c.inv[h[0]].Add(1)
	c.removeLocked(h)
	c.mu.Unlock()
}

// remove drops e if it is still the cached entry for its hash, without
// bumping the counter: for an entry found expired or gone.
func (c *redisCache) remove(e *cacheEntry) {
	c.mu.Lock()
	if c.m[e.h] == e {
		c.removeAtLocked(e.idx)
	}
	c.mu.Unlock()
}

// len returns the number of cached entries.
func (c *redisCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.list)
}

// insertLocked adds or replaces the entry for e.h, evicting one entry
// first when the cache is full. c.mu must be held for writing.
func (c *redisCache) insertLocked(e *cacheEntry, now int64) {
	if old := c.m[e.h]; old != nil {
		e.idx = old.idx
		c.list[e.idx] = e
		c.m[e.h] = e
		return
	}
	for len(c.list) >= c.max {
		c.evictLocked(now)
	}
	e.idx = len(c.list)
	c.list = append(c.list, e)
	c.m[e.h] = e
}

// evictLocked removes one entry: an expired or stale one among a random
// sample if there is one, else the sampled one with the oldest last access.
// c.mu must be held for writing and c.list must not be empty.
func (c *redisCache) evictLocked(now int64) {
	n := len(c.list)
	victim, oldest := -1, int64(math.MaxInt64)
	for k := range min(n, evictionSample) {
		i := k // a small cache is scanned completely: exact LRU
		if n > evictionSample {
			i = randIndex(&c.rng, n)
		}
		e := c.list[i]
		if now >= e.expires || now-e.filled >= c.staleAge {
			victim = i
			break
		}
		if last := e.lastSeen.Load(); last < oldest || victim < 0 {
			victim, oldest = i, last
		}
	}
	c.removeAtLocked(victim)
}

// removeLocked drops the entry for h, if any. c.mu must be held for
// writing.
func (c *redisCache) removeLocked(h *[sha256.Size]byte) {
	if e := c.m[*h]; e != nil {
		c.removeAtLocked(e.idx)
	}
}

// removeAtLocked deletes the entry at list index i. c.mu must be held for
// writing.
func (c *redisCache) removeAtLocked(i int) {
	e := c.list[i]
	last := len(c.list) - 1
	if i != last {
		c.list[i] = c.list[last]
		c.list[i].idx = i
	}
	c.list[last] = nil
	c.list = c.list[:last]
	delete(c.m, e.h)
	c.list = shrink(c.list) // after a mass invalidation, do not pin the array
}
