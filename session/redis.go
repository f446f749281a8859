package session

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Defaults for [RedisOptions].
const (
	DefaultRedisKeyPrefix   = "trustgate:"
	DefaultRedisDialTimeout = 2 * time.Second
	DefaultRedisReadTimeout = time.Second
	DefaultLocalCacheTTL    = time.Minute
	DefaultLocalCacheSize   = 10_000
	DefaultTouchInterval    = time.Minute
)

const (
	// unconfirmedCacheTTL is how long a cached session is trusted when
	// invalidations may have been missed: while the invalidation
	// subscription is down, reconnecting or not yet confirmed, and for
	// entries read before it was last confirmed.
	unconfirmedCacheTTL = time.Second
	// touchQueueSize bounds the idle-clock writes waiting for the worker;
	// when it is full, touches are dropped (and retried by a later Get).
	touchQueueSize = 1024
	// touchBatch is how many idle-clock writes the worker sends in one
	// pipeline.
	touchBatch = 64
	// hashLength is the length of a base64url SHA-256 in key names.
	hashLength = 43
)

// ErrUnavailable is wrapped by every error that comes from the store's
// backend (Redis down, timed out, refusing writes): the session state is
// unknown, which is not the same as "not logged in". The gateway answers
// 503.
var ErrUnavailable = errors.New("session: store unavailable")

var (
	errPutExpired    = errors.New("session: put: session has already expired")
	errRedisClosed   = fmt.Errorf("%w: redis store is closed", ErrUnavailable)
	errRedisNoAddrs  = errors.New("session: redis: no address configured")
	errRedisDB       = errors.New("session: redis: db must be 0 with Redis Cluster (several addrs without master_name)")
	errRedisNegative = errors.New("session: redis: timeouts, local cache size and touch interval must not be negative")
)

// RedisOptions configures a [RedisStore]; see [NewRedisStore].
type RedisOptions struct {
	// Addrs are host:port addresses. One address is a standalone server;
	// several are the seed nodes of a Redis Cluster; with MasterName they
	// are the Sentinels. Required.
	Addrs []string
	// MasterName is the Sentinel master name; set it to use Sentinel.
	MasterName string
	// Username and Password authenticate to Redis (ACL user or
	// requirepass).
	Username string
	Password string
	// SentinelUsername and SentinelPassword authenticate to the Sentinels
	// (requirepass or an ACL user in sentinel.conf), with MasterName only.
	// Default: the Sentinels are contacted without credentials.
	SentinelUsername string
	SentinelPassword string
	// DB is the database number. It must be 0 with Cluster.
	DB int
	// TLS, when not nil, is used for every connection. Default: plain TCP.
	TLS *tls.Config
	// KeyPrefix starts every key and the invalidation channel.
	// Default: DefaultRedisKeyPrefix ("trustgate:").
	KeyPrefix string
	// DialTimeout bounds establishing a connection. Default: 2s.
	DialTimeout time.Duration
	// ReadTimeout bounds every socket read and write and every call to
	// Redis (one command or one pipeline): an operation that cannot be
	// done in this time fails with ErrUnavailable. Default: 1s.
	ReadTimeout time.Duration
	// LocalCacheTTL is how long a cached session is used without asking
	// Redis while the invalidation subscription is up; while it is down,
	// cached sessions are trusted for at most one second. Negative turns the
	// local cache off: every Get reads Redis. Default: 1m.
	LocalCacheTTL time.Duration
	// LocalCacheSize bounds the number of cached sessions per instance.
	// Default: 10000.
	LocalCacheSize int
	// TouchInterval is the period of the write-behind of the idle clock: a
	// session's last access is written to Redis asynchronously, at most
	// once per TouchInterval per instance, or once per quarter of its
	// IdleTimeout when that is shorter (so that a short idle timeout stays
	// correct across instances). A session may therefore end up to that
	// period before its idle timeout on other instances, never after.
	// Default: 1m.
	TouchInterval time.Duration
	// Secrets are the encryption secrets, newest first, each at least
	// MinSecretLength bytes. The first encrypts; all decrypt, so a secret is
	// rotated by putting the new one first and keeping the old one for the
	// longest session lifetime. Required.
	Secrets [][]byte
	// Now is the clock for expiry, the idle clock and cache ages.
	// Default: time.Now.
	Now func() time.Time
}

// RedisStore is a [Store] in Redis, for gateways that run several
// instances: standalone Redis, Sentinel or Cluster. It is safe for
// concurrent use.
//
// Keys (<h> is the base64url SHA-256 of the session id, so the id in the
// cookie never appears in Redis):
//
//	<prefix>s:<h>                      the session: JSON, AES-256-GCM encrypted
//	<prefix>a:<h>                      its idle clock: last access, unix ms
//	<prefix>sub:<hash(iss \0 sub)>     set of the <h> of a subject's sessions
//	<prefix>sid:<hash(iss \0 sid)>     set of the <h> of a provider session's sessions
//	<prefix>o:<hash(key)>              a key remembered by Once
//	<prefix>l:<hash(key)>              a lock taken by Lock: its random token, TTL = the lock's ttl
//	<prefix>r:<hash(key)>              a record (PutRecord): AES-256-GCM sealed, TTL = the record's ttl
//	<prefix>invalidate                 the Pub/Sub channel of cache invalidations
//
// Every key has a TTL (the session's remaining lifetime; an index keeps its
// longest member's), and every command names a single key, so the store
// works on Redis Cluster without hash tags. PEXPIRE NX/GT needs Redis 7.0
// or later.
//
// A session blob is a version byte, a 4-byte key id, a random 96-bit nonce
// and the AES-256-GCM ciphertext, with the Redis key name as additional
// data. The key of each secret is derived with HKDF-SHA256. A blob that
// does not decrypt (tampered, truncated, moved to another key, sealed with
// an unknown secret or format) reads as no session, and is left in place for
// the instances that can read it. A record blob has the same format; its
// plaintext is the record's expiry (unix ns, 8 bytes big-endian) followed by
// the value, and a record that does not open reads as absent (ErrNotFound).
//
// Each instance keeps a bounded local cache of sessions, so a request with
// a warm cache makes no round trip to Redis and does not allocate. Put,
// Delete, DeleteMatching and expiry publish the session's <h> on the
// invalidation channel, and every instance drops its copy, so a logout is
// seen everywhere within milliseconds. While that subscription is not
// confirmed up, cached sessions are trusted for at most one second. The
// idle clock is written behind, asynchronously, at most once per
// TouchInterval per session and instance.
//
// NewRedisStore does no network I/O; the first use starts two goroutines
// (the subscription and the idle-clock writer), which Close stops.
type RedisStore struct {
	client      redis.UniversalClient
	cacheHits   atomic.Uint64 // Get answered by the local cache
	cacheMisses atomic.Uint64 // Get that read Redis
	keys        keyring
	packer      *packer // fixed: every instance reads what any other wrote
	prefix      string
	channel     string
	sender      string // random id of this instance in invalidation messages
	readTimeout time.Duration
	dialTimeout time.Duration
	trustLong   int64 // ns; how long a confirmed entry is trusted; 0 = cache off
	trustShort  int64 // ns; how long an unconfirmed entry is trusted
	touchEvery  int64 // ns; TouchInterval
	now         func() time.Time
	subscribe   bool // whether this instance needs invalidations (cache on)

	cache *redisCache

	// sub is the subscription state: epoch<<1 | up. Every change of state
	// increments the epoch, so an entry whose epoch equals the current
	// state was read while the subscription was up, and it has stayed up
	// since. Written only by the subscriber goroutine.
	sub atomic.Uint64

	touches chan touchRequest

	state  atomic.Int32    // stateNew, stateRunning or stateClosed; changed under mu
	ctx    context.Context // cancelled by Close; parent of background work
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	ps *redis.PubSub // the live subscription; guarded by mu

	closeOnce sync.Once
	closeErr  error
}

// The life of a RedisStore.
const (
	stateNew     = iota // no goroutine yet
	stateRunning        // goroutines started
	stateClosed
)

// touchRequest asks the worker to write the idle clock of e: at is the
// access time, prev the value of e.remote before.
type touchRequest struct {
	e        *cacheEntry
	at, prev int64
}

// NewRedisStore validates opts and returns a store. It builds the Redis
// client but does not connect: that happens on first use, so it is safe in
// `caddy validate`. Call Close when done. Errors never contain a password or
// secret.
func NewRedisStore(opts RedisOptions) (*RedisStore, error) {
	if len(opts.Addrs) == 0 {
		return nil, errRedisNoAddrs
	}
	for i, a := range opts.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("session: redis: address %d of %d is not host:port: %w", i+1, len(opts.Addrs), err)
		}
	}
	if opts.DB < 0 {
		return nil, errors.New("session: redis: db must not be negative")
	}
	if opts.DB != 0 && opts.MasterName == "" && len(opts.Addrs) > 1 {
		return nil, errRedisDB
	}
	if opts.DialTimeout < 0 || opts.ReadTimeout < 0 || opts.LocalCacheSize < 0 || opts.TouchInterval < 0 {
		return nil, errRedisNegative
	}
	keys, err := newKeyring(opts.Secrets)
	if err != nil {
		return nil, err
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = DefaultRedisKeyPrefix
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = DefaultRedisDialTimeout
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = DefaultRedisReadTimeout
	}
	if opts.LocalCacheTTL == 0 {
		opts.LocalCacheTTL = DefaultLocalCacheTTL
	}
	if opts.LocalCacheSize == 0 {
		opts.LocalCacheSize = DefaultLocalCacheSize
	}
	if opts.TouchInterval == 0 {
		opts.TouchInterval = DefaultTouchInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var tc *tls.Config
	if opts.TLS != nil {
		tc = opts.TLS.Clone()
	}

	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:      slices.Clone(opts.Addrs),
		MasterName: opts.MasterName,
		Username:   opts.Username,
		Password:   opts.Password,
		DB:         opts.DB,
		TLSConfig:  tc,

		SentinelUsername: opts.SentinelUsername,
		SentinelPassword: opts.SentinelPassword,

		DialTimeout:           opts.DialTimeout,
		ReadTimeout:           opts.ReadTimeout,
		WriteTimeout:          opts.ReadTimeout,
		ContextTimeoutEnabled: true,
		// Every call also runs under a ReadTimeout context, which bounds
		// retries, dial attempts and waiting for a pooled connection. One
		// retry covers a pooled connection that died with a Redis restart
		// or failover; more would only delay the 503 of an outage.
		MaxRetries:      1,
		MinRetryBackoff: 8 * time.Millisecond,
		MaxRetryBackoff: 64 * time.Millisecond,
		DialerRetries:   1,
		PoolTimeout:     opts.ReadTimeout,

		// No extra round trips on connect for features we do not use.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})

	ctx, cancel := context.WithCancel(context.Background())
	s := &RedisStore{
		client:      client,
		keys:        keys,
		packer:      &packer{fixed: true},
		prefix:      opts.KeyPrefix,
		channel:     opts.KeyPrefix + "invalidate",
		sender:      randomTag(),
		readTimeout: opts.ReadTimeout,
		dialTimeout: opts.DialTimeout,
		touchEvery:  int64(opts.TouchInterval),
		now:         opts.Now,
		touches:     make(chan touchRequest, touchQueueSize),
		ctx:         ctx,
		cancel:      cancel,
	}
	if opts.LocalCacheTTL > 0 {
		s.trustLong = int64(opts.LocalCacheTTL)
		s.trustShort = min(int64(unconfirmedCacheTTL), s.trustLong)
		s.subscribe = true
	}
	// With the cache off, entries are still kept (never trusted): they
	// remember this instance's accesses for the idle clock, and keep
	// returning the same *Session while it is unchanged in Redis.
	s.cache = newRedisCache(opts.LocalCacheSize, s.trustLong)
	return s, nil
}

// Get returns the live session stored under id. A warm local cache answers
// without Redis; otherwise the session is read from Redis and decrypted. A
// session past its ExpiresAt or IdleTimeout is removed and ErrNotFound is
// returned, as for a session that is absent or whose blob does not decrypt
// (tampered, foreign key, unknown format). Failures to reach Redis are
// ErrUnavailable. The returned session is shared (other requests get the
// same pointer while it is unchanged): Clone it to change it.
func (s *RedisStore) Get(ctx context.Context, id string) (*Session, error) {
	return s.GetObserved(ctx, id, nil)
}

// GetObserved is Get that tells observe, when it is not nil, how long a lookup that went to
// Redis took (the round trip and decoding its answer). A lookup the local cache answers
// alone reports nothing and costs no clock read: a latency metric then describes Redis, not
// the cache.
func (s *RedisStore) GetObserved(ctx context.Context, id string, observe func(time.Duration)) (*Session, error) {
	if err := s.start(); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, ErrNotFound
	}
	h := hashID(id)
	now := unixNano(s.now())
	if e := s.cache.get(&h); e != nil && s.trusted(e, now) {
		s.cacheHits.Add(1)
		if now >= e.expires {
			start := time.Now()
			s.expire(ctx, e)
			if observe != nil {
				observe(time.Since(start))
			}
			return nil, ErrNotFound
		}
		if e.idle > 0 && now-max(e.lastSeen.Load(), e.remote.Load()) >= e.idle {
			// Idle here; another instance may have seen activity.
			start := time.Now()
			sess, err := s.recheckIdle(ctx, e, now)
			if observe != nil {
				observe(time.Since(start))
			}
			return sess, err
		}
		s.touch(e, now)
		return e.s, nil
	}
	s.cacheMisses.Add(1)
	start := time.Now()
	sess, err := s.load(ctx, id, &h, now)
	if observe != nil {
		observe(time.Since(start))
	}
	return sess, err
}

// CacheStats reports how many Get calls the local cache answered (hits) and how many went
// to Redis (misses), since the store was made.
func (s *RedisStore) CacheStats() (hits, misses uint64) {
	return s.cacheHits.Load(), s.cacheMisses.Load()
}

// trusted reports whether the cached entry e may be used without asking
// Redis at now: for LocalCacheTTL when it was read while the subscription
// was up and the subscription has stayed up since, else for one second.
func (s *RedisStore) trusted(e *cacheEntry, now int64) bool {
	age := now - e.filled
	switch {
	case age < 0 || age >= s.trustLong: // the clock went back, or too old
		return false
	case age < s.trustShort:
		return true
	}
	st := s.sub.Load()
	return st&1 == 1 && st == e.epoch
}

// load reads the session h from Redis, checks it and caches it.
func (s *RedisStore) load(ctx context.Context, id string, h *[sha256.Size]byte, now int64) (*Session, error) {
	epoch, seq := s.sub.Load(), s.cache.seq(h)
	hs := encodeHash(h)
	blobKey, idleKey := s.blobKey(hs), s.idleKey(hs)
	var blobCmd, idleCmd *redis.StringCmd
	err := s.pipeline(ctx, func(p redis.Pipeliner) {
		blobCmd = p.Get(ctx, blobKey)
		idleCmd = p.Get(ctx, idleKey)
	})
	if err != nil && !isMissing(err) {
		return nil, unavailable("get", err)
	}
	// On a Cluster the two keys may live on different nodes: check each.
	for _, cmd := range []*redis.StringCmd{blobCmd, idleCmd} {
		if err := cmd.Err(); err != nil && !isMissing(err) {
			return nil, unavailable("get", err)
		}
	}
	old := s.cache.get(h)
	blob, err := blobCmd.Bytes()
	if err != nil { // missing
		if old != nil {
			s.cache.remove(old)
		}
		return nil, ErrNotFound
	}
	remote, hasRemote := parseMillis(idleCmd)

	sum := sha256.Sum256(blob)
	var sess *Session
	if old != nil && old.sum == sum {
		sess = old.s // unchanged in Redis: keep the pointer and its Cache
	} else {
		plaintext, ok := s.keys.open(blobKey, blob)
		if !ok {
			// Not ours, or damaged: treat as absent, but leave it (another
			// instance may hold a newer secret).
			if old != nil {
				s.cache.remove(old)
			}
			return nil, ErrNotFound
		}
		var err error
		sess, err = s.packer.decodeStored(plaintext, id)
		if err != nil || sess.ExpiresAt.IsZero() {
			if old != nil {
				s.cache.remove(old)
			}
			return nil, ErrNotFound
		}
	}

	e := &cacheEntry{
		h:       *h,
		s:       sess,
		sum:     sum,
		expires: unixNano(sess.ExpiresAt),
		touch:   maxTouchResolution,
		filled:  now,
		epoch:   epoch,
	}
	last := remote
	if old != nil {
		last = max(last, old.lastSeen.Load()) // this instance's unwritten accesses
	}
	if sess.IdleTimeout > 0 {
		e.idle = int64(sess.IdleTimeout)
		e.touch = min(maxTouchResolution, e.idle/16)
	}
	if now >= e.expires || (e.idle > 0 && (!hasRemote || now-last >= e.idle)) {
		s.expire(ctx, e) // drops old too
		return nil, ErrNotFound
	}
	e.lastSeen.Store(now)
	if hasRemote {
		e.remote.Store(remote)
	}
	s.cache.fill(e, seq, now)
	s.touch(e, now)
	return sess, nil
}

// recheckIdle reads the idle clock of the cached entry e, which looks idle
// at now, and decides.
func (s *RedisStore) recheckIdle(ctx context.Context, e *cacheEntry, now int64) (*Session, error) {
	hs := encodeHash(&e.h)
	ctx, cancel := s.callContext(ctx)
	defer cancel()
	cmd := s.client.Get(ctx, s.idleKey(hs))
	if err := cmd.Err(); err != nil && !isMissing(err) {
		return nil, unavailable("get idle clock", err)
	}
	remote, ok := parseMillis(cmd)
	if !ok { // deleted or expired in Redis, or not a time
		s.expire(ctx, e)
		return nil, ErrNotFound
	}
	for { // e.remote only moves forward
		cur := e.remote.Load()
		if remote <= cur || e.remote.CompareAndSwap(cur, remote) {
			break
		}
	}
	if now-max(e.lastSeen.Load(), e.remote.Load()) >= e.idle {
		s.expire(ctx, e)
		return nil, ErrNotFound
	}
	s.touch(e, now)
	return e.s, nil
}

// touch records an access to e at now: locally (for the idle timeout and
// eviction), and in Redis through the write-behind worker at most once per
// touch period.
func (s *RedisStore) touch(e *cacheEntry, now int64) {
	if now-e.lastSeen.Load() >= e.touch {
		e.lastSeen.Store(now)
	}
	if e.idle <= 0 {
		return
	}
	prev := e.remote.Load()
	if now-prev < min(s.touchEvery, e.idle/4) || !e.remote.CompareAndSwap(prev, now) {
		return
	}
	select {
	case s.touches <- touchRequest{e: e, at: now, prev: prev}:
	default: // queue full: drop, a later Get will try again
		e.remote.CompareAndSwap(now, prev)
	}
}

// expire removes the expired session e: from the cache, from Redis, and
// from the other instances' caches. Failures are ignored: the session is
// expired either way, and the keys have TTLs.
func (s *RedisStore) expire(ctx context.Context, e *cacheEntry) {
	s.cache.invalidate(&e.h)
	hs := encodeHash(&e.h)
	if s.pipeline(ctx, func(p redis.Pipeliner) {
		p.Del(ctx, s.blobKey(hs))
		p.Del(ctx, s.idleKey(hs))
	}) == nil {
		s.publish(ctx, hs)
	}
}

// unlockScript deletes the lock KEYS[1] only if it still holds the token
// ARGV[1]: the compare and the delete are one atomic step, so a holder
// whose lock expired and was taken by another cannot release the new hold.
var unlockScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// Interface guards
var (
	_ Store              = (*RedisStore)(nil)
	_ Pinger             = (*RedisStore)(nil)
	_ ObservedGetter     = (*RedisStore)(nil)
	_ CacheStatsReporter = (*RedisStore)(nil)
)
