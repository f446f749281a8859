package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Redis store's single-use records and locks (Once, Lock, Unlock), back-channel
// logout by sid/sub (DeleteMatching), and its key names and helpers.

// DeleteMatching removes every session that m selects, here and in every
// instance's cache, and returns how many it removed. It reads the sid index
// when m.SID is set, else the subject index, and checks each session it
// names against m (indexes may name sessions that were deleted or changed
// since; those are dropped from the index). A session that m leaves alone,
// such as one created after m.CreatedBefore, stays in both indexes, so a
// later DeleteMatching still finds it.
func (s *RedisStore) DeleteMatching(ctx context.Context, m Match) (int, error) {
	if m.Subject == "" && m.SID == "" {
		return 0, nil
	}
	if err := s.start(); err != nil {
		return 0, err
	}
	indexKey := s.subIndexKey(m.Issuer, m.Subject)
	if m.SID != "" {
		indexKey = s.sidIndexKey(m.Issuer, m.SID)
	}
	var members []string
	if err := s.call(ctx, func(ctx context.Context) (err error) {
		members, err = s.client.SMembers(ctx, indexKey).Result()
		return err
	}); err != nil {
		return 0, unavailable("delete matching: reading the index", err)
	}

	// Read every session the index names.
	type candidate struct {
		hs             string
		h              [sha256.Size]byte
		get            *redis.StringCmd
		subKey, sidKey string // the indexes that name it
	}
	var stale []any // members to drop from the index
	cands := make([]candidate, 0, len(members))
	for _, hs := range members {
		h, ok := decodeHash(hs)
		if !ok {
			stale = append(stale, hs)
			continue
		}
		cands = append(cands, candidate{hs: hs, h: h})
	}
	if len(cands) > 0 {
		err := s.pipeline(ctx, func(p redis.Pipeliner) {
			for i := range cands {
				cands[i].get = p.Get(ctx, s.blobKey(cands[i].hs))
			}
		})
		if err != nil && !isMissing(err) {
			return 0, unavailable("delete matching: reading sessions", err)
		}
	}
	var victims []candidate
	for _, c := range cands {
		blob, err := c.get.Bytes()
		if isMissing(err) { // deleted or expired
			stale = append(stale, c.hs)
			continue
		}
		if err != nil { // on a Cluster, one node may fail alone
			return 0, unavailable("delete matching: reading sessions", err)
		}
		plaintext, ok := s.keys.open(s.blobKey(c.hs), blob)
		if !ok {
			continue // another secret's (rotation) or damaged: leave it
		}
		sess, err := s.packer.decodeStored(plaintext, "")
		if err != nil || !m.Matches(sess) {
			continue // changed since it was indexed, or another subject's sid
		}
		c.subKey = s.subIndexKey(sess.Issuer, sess.Subject)
		if sid := sess.SID(); sid != "" {
			c.sidKey = s.sidIndexKey(sess.Issuer, sid)
		}
		victims = append(victims, c)
	}
	if len(victims) == 0 && len(stale) == 0 {
		return 0, nil
	}

	err := s.pipeline(ctx, func(p redis.Pipeliner) {
		for _, v := range victims {
			p.Del(ctx, s.blobKey(v.hs))
			p.Del(ctx, s.idleKey(v.hs))
			p.SRem(ctx, v.subKey, v.hs)
			if v.sidKey != "" {
				p.SRem(ctx, v.sidKey, v.hs)
			}
		}
		if len(stale) > 0 {
			p.SRem(ctx, indexKey, stale...)
		}
	})
	for i := range victims {
		s.cache.invalidate(&victims[i].h) // whatever happened in Redis
	}
	if err != nil {
		return 0, unavailable("delete matching: deleting sessions", err)
	}
	if len(victims) > 0 {
		// Only after the deletes have landed on every node.
		err = s.pipeline(ctx, func(p redis.Pipeliner) {
			for _, v := range victims {
				p.Publish(ctx, s.channel, s.message(v.hs))
			}
		})
		if err != nil {
			return 0, unavailable("delete matching: publishing the invalidations", err)
		}
	}
	return len(victims), nil
}

// Once reports whether key is seen for the first time within ttl, across
// all instances (SET NX with a TTL). Keys are stored as their SHA-256.
func (s *RedisStore) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if key == "" {
		return false, errEmptyOnceKey
	}
	if ttl <= 0 {
		return false, errNonPositiveTTL
	}
	if err := s.start(); err != nil {
		return false, err
	}
	sum := sha256.Sum256([]byte(key))
	k := s.prefix + "o:" + base64.RawURLEncoding.EncodeToString(sum[:])
	ttl = max(ttl, time.Millisecond)
	var first bool
	err := s.call(ctx, func(ctx context.Context) error {
		err := s.client.SetArgs(ctx, k, 1, redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
		switch {
		case err == nil:
			first = true
		case errors.Is(err, redis.Nil): // NX: the key exists
		default:
			return err
		}
		return nil
	})
	if err != nil {
		return false, unavailable("once", err)
	}
	return first, nil
}

// Lock takes the lock named key for ttl across every instance on this Redis
// (SET NX PX with a random token) and returns the token and true; it
// returns false when another hold is live. Redis expires the hold after
// ttl. A failure to reach Redis is ErrUnavailable, never a hold.
func (s *RedisStore) Lock(ctx context.Context, key string, ttl time.Duration) (string, bool, error) {
	if key == "" {
		return "", false, errEmptyLockKey
	}
	if ttl <= 0 {
		return "", false, errNonPositiveLockTTL
	}
	if err := s.start(); err != nil {
		return "", false, err
	}
	token := newLockToken()
	k := s.lockKey(key)
	ttl = max(ttl, time.Millisecond)
	var ok bool
	err := s.call(ctx, func(ctx context.Context) error {
		// A retry after a lost reply finds the key set by the first try and
		// reports false: the hold is then not used and expires, which is safe.
		err := s.client.SetArgs(ctx, k, token, redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
		switch {
		case err == nil:
			ok = true
		case errors.Is(err, redis.Nil): // NX: held by someone else
		default:
			return err
		}
		return nil
	})
	if err != nil {
		return "", false, unavailable("lock", err)
	}
	if !ok {
		return "", false, nil
	}
	return token, true, nil
}

// Unlock releases the lock named key if token still holds it, with a Lua
// script that compares and deletes in one step. A token that no longer
// holds it releases nothing.
func (s *RedisStore) Unlock(ctx context.Context, key, token string) error {
	if key == "" || token == "" {
		return nil
	}
	if err := s.start(); err != nil {
		return err
	}
	k := s.lockKey(key)
	if err := s.call(ctx, func(ctx context.Context) error {
		return unlockScript.Run(ctx, s.client, []string{k}, token).Err()
	}); err != nil {
		return unavailable("unlock", err)
	}
	return nil
}

func (s *RedisStore) blobKey(hs string) string { return s.prefix + "s:" + hs }

func (s *RedisStore) idleKey(hs string) string { return s.prefix + "a:" + hs }

// lockKey is the key of the lock named key: a hash, so that a lock named
// after a session id does not put the id in Redis.
func (s *RedisStore) lockKey(key string) string {
	return s.prefix + "l:" + hashString(key)
}

func (s *RedisStore) subIndexKey(iss, sub string) string {
	return s.prefix + "sub:" + hashString(iss+"\x00"+sub)
}

func (s *RedisStore) sidIndexKey(iss, sid string) string {
	return s.prefix + "sid:" + hashString(iss+"\x00"+sid)
}

// unavailable wraps a Redis failure in ErrUnavailable.
func unavailable(op string, err error) error {
	if errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("%w: redis %s: store is closed", ErrUnavailable, op)
	}
	return fmt.Errorf("%w: redis %s: %w", ErrUnavailable, op, err)
}

// isMissing reports whether err means that a key holds no usable value:
// it is absent, or holds another type (corrupted or foreign data), which
// reads as no session rather than as an outage.
func isMissing(err error) bool {
	return errors.Is(err, redis.Nil) || redis.HasErrorPrefix(err, "WRONGTYPE")
}

// parseMillis returns the value of an idle-clock GET as unix ns, and false
// when the key is absent, unreadable or the command failed.
func parseMillis(cmd *redis.StringCmd) (int64, bool) {
	v, err := cmd.Result()
	if err != nil {
		return 0, false
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 || ms > (1<<63-1)/int64(time.Millisecond) {
		return 0, false
	}
	return ms * int64(time.Millisecond), true
}

// hashID returns the SHA-256 of a session id without allocating for ids of
// usual length.
func hashID(id string) [sha256.Size]byte {
	var buf [64]byte
	if len(id) <= len(buf) {
		n := copy(buf[:], id)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(id))
}

// encodeHash returns h in base64url, as used in key names.
func encodeHash(h *[sha256.Size]byte) string {
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// decodeHash parses a hash from a key name or index member.
func decodeHash(hs string) ([sha256.Size]byte, bool) {
	var h [sha256.Size]byte
	if len(hs) != hashLength {
		return h, false
	}
	n, err := base64.RawURLEncoding.Decode(h[:], []byte(hs))
	return h, err == nil && n == sha256.Size
}

// hashString returns the base64url SHA-256 of s.
func hashString(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// randomTag returns 8 random bytes in base64url.
func randomTag() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Ping checks that Redis answers.
func (s *RedisStore) Ping(ctx context.Context) error {
	if err := s.start(); err != nil {
		return err
	}
	if err := s.call(ctx, func(ctx context.Context) error {
		return s.client.Ping(ctx).Err()
	}); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// Close stops the store's goroutines and closes the Redis client. Later
// calls to the store fail with ErrUnavailable. Close is idempotent.
func (s *RedisStore) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.state.Store(stateClosed)
		ps := s.ps
		s.mu.Unlock()
		s.cancel()
		if ps != nil {
			_ = ps.Close() // unblocks the subscriber's read
		}
		s.wg.Wait()
		s.closeErr = s.client.Close()
	})
	return s.closeErr
}

// start starts the background goroutines on first use. After Close it
// reports errRedisClosed.
func (s *RedisStore) start() error {
	switch s.state.Load() {
	case stateRunning:
		return nil
	case stateClosed:
		return errRedisClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state.Load() {
	case stateRunning:
		return nil
	case stateClosed:
		return errRedisClosed
	}
	s.state.Store(stateRunning)
	s.wg.Add(1)
	go s.touchLoop()
	if s.subscribe {
		s.wg.Add(1)
		go s.subscribeLoop()
	}
	return nil
}

// call runs f with a context bounded by ReadTimeout.
func (s *RedisStore) call(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := s.callContext(ctx)
	defer cancel()
	return f(ctx)
}

// callContext returns ctx bounded by ReadTimeout.
func (s *RedisStore) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.readTimeout)
}

// pipeline sends the commands queued by f in one pipeline (one round trip
// per node) within ReadTimeout. It returns the first command error, which
// may be redis.Nil.
func (s *RedisStore) pipeline(ctx context.Context, f func(p redis.Pipeliner)) error {
	return s.call(ctx, func(ctx context.Context) error {
		p := s.client.Pipeline()
		f(p)
		_, err := p.Exec(ctx)
		return err
	})
}

// publish announces on the invalidation channel that the session hs
// changed.
func (s *RedisStore) publish(ctx context.Context, hs string) error {
	return s.call(ctx, func(ctx context.Context) error {
		return s.client.Publish(ctx, s.channel, s.message(hs)).Err()
	})
}

// message is the invalidation message for hs: "<h>.<sender>".
func (s *RedisStore) message(hs string) string { return hs + "." + s.sender }
