package trustgate

import "sync"

// decodeCacheSize bounds the decode cache: about 300 bytes an entry.
const decodeCacheSize = 50000

// decodeCache remembers session cookie values that decoded (so their MAC was verified) to
// the session id inside, so that a browser's next requests skip the decryption. Only
// authenticated values enter it, so it cannot be filled with garbage; it is bounded, and
// dropping an entry costs one decryption. What a cached id may do is still decided by the
// store, which enforces the session's expiry and logout.
type decodeCache struct {
	mu  sync.RWMutex
	m   map[string]string
	max int
}

func newDecodeCache(max int) *decodeCache {
	return &decodeCache{m: make(map[string]string), max: max}
}

func (c *decodeCache) get(cookie string) (string, bool) {
	c.mu.RLock()
	id, ok := c.m[cookie]
	c.mu.RUnlock()
	return id, ok
}

func (c *decodeCache) put(cookie, id string) {
	c.mu.Lock()
	if len(c.m) >= c.max {
		// Drop an arbitrary eighth (map order is random): amortized O(1), no LRU list on
		// the hot path.
		n := c.max / 8
		for k := range c.m {
			delete(c.m, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	c.m[cookie] = id
	c.mu.Unlock()
}
