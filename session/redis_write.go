package session

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
)

// Writing sessions to Redis: Put and Update (sealed blob, idle time and the back-channel
// logout indexes in one pipeline), Delete and Reload.

// Put stores sess under sess.ID, replacing any previous session, and sets
// sess.Version to sess.Version + 1 (so a fresh session gets 1 and a Clone
// of a stored one its successor). sess must have an ID and an ExpiresAt in
// the future, and must not be a session returned by Get (Put a Clone).
// Its keys get the session's remaining lifetime as TTL. On error,
// sess.Version is left unchanged.
func (s *RedisStore) Put(ctx context.Context, sess *Session) error {
	return s.put(ctx, sess, false)
}

// Update stores sess (a Clone of a stored session) only while a session of that
// id is stored: the blob is written with SET XX first, and nothing else is
// written when it is gone (a logout during a refresh). See [SessionWriter.Update].
func (s *RedisStore) Update(ctx context.Context, sess *Session) error {
	return s.put(ctx, sess, true)
}

func (s *RedisStore) put(ctx context.Context, sess *Session, mustExist bool) error {
	switch {
	case sess == nil:
		return errNilSession
	case sess.ID == "":
		return errEmptyID
	case sess.ExpiresAt.IsZero():
		return errNoExpiry
	}
	now := unixNano(s.now())
	expires := unixNano(sess.ExpiresAt)
	if expires <= now {
		return errPutExpired
	}
	ttl := time.Duration(expires - now)
	if ttl < 0 { // overflowed: a clock before 1970
		ttl = math.MaxInt64
	}
	if ttl < time.Millisecond { // the smallest TTL Redis keeps
		return errPutExpired
	}
	h := hashID(sess.ID)
	if e := s.cache.get(&h); e != nil && e.s == sess {
		return errStoredSession
	}
	if err := s.start(); err != nil {
		return err
	}

	version := sess.Version
	sess.Version++
	plaintext, err := s.packer.pack(sess)
	if errors.Is(err, errTooLarge) { // more than maxUnpacked: stored as JSON, which reads too
		plaintext, err = json.Marshal(sess)
	}
	if err != nil {
		sess.Version = version
		return fmt.Errorf("session: put: encoding: %w", err)
	}
	hs := encodeHash(&h)
	blobKey := s.blobKey(hs)
	blob := s.keys.seal(blobKey, plaintext)
	epoch, seq := s.sub.Load(), s.cache.seq(&h)
	if mustExist {
		stored := false
		err := s.call(ctx, func(ctx context.Context) error {
			var err error
			stored, err = s.client.SetXX(ctx, blobKey, blob, ttl).Result()
			if errors.Is(err, redis.Nil) {
				return nil
			}
			return err
		})
		if err == nil && !stored {
			sess.Version = version
			s.cache.invalidate(&h)
			return ErrNotFound
		}
		if err != nil {
			sess.Version = version
			s.cache.invalidate(&h)
			return unavailable("update", err)
		}
	}
	err = s.pipeline(ctx, func(p redis.Pipeliner) {
		if !mustExist {
			p.Set(ctx, blobKey, blob, ttl)
		}
		p.Set(ctx, s.idleKey(hs), now/int64(time.Millisecond), ttl)
		s.index(ctx, p, s.subIndexKey(sess.Issuer, sess.Subject), hs, ttl)
		if sid := sess.SID(); sid != "" {
			s.index(ctx, p, s.sidIndexKey(sess.Issuer, sid), hs, ttl)
		}
	})
	if err != nil {
		sess.Version = version
		s.cache.invalidate(&h)
		return unavailable("put", err)
	}
	e := &cacheEntry{
		h:       h,
		s:       sess,
		sum:     sha256.Sum256(blob),
		expires: expires,
		touch:   maxTouchResolution,
		filled:  now,
		epoch:   epoch,
	}
	if sess.IdleTimeout > 0 {
		e.idle = int64(sess.IdleTimeout)
		e.touch = min(maxTouchResolution, e.idle/16)
	}
	e.lastSeen.Store(now)
	e.remote.Store(now)
	s.cache.written(e, seq, now)
	// Only now, after the write has landed on every node: an instance that
	// reads again on this message must see the new value.
	if err := s.publish(ctx, hs); err != nil {
		sess.Version = version
		s.cache.invalidate(&h)
		return unavailable("put: publishing the invalidation", err)
	}
	return nil
}

// index adds hs to the set key with a TTL of at least ttl (the longest of
// its members): PEXPIRE NX sets one when there is none, PEXPIRE GT extends
// it.
func (s *RedisStore) index(ctx context.Context, p redis.Pipeliner, key, hs string, ttl time.Duration) {
	ms := max(int64(ttl/time.Millisecond), 1)
	p.SAdd(ctx, key, hs)
	p.Do(ctx, "pexpire", key, ms, "nx")
	p.Do(ctx, "pexpire", key, ms, "gt")
}

// Delete removes the session stored under id, here and in every
// instance's cache. Deleting an absent id is not an error. The session stays
// in the subject and sid indexes until DeleteMatching or the index TTL
// removes it.
func (s *RedisStore) Delete(ctx context.Context, id string) error {
	if err := s.start(); err != nil {
		return err
	}
	h := hashID(id)
	hs := encodeHash(&h)
	err := s.pipeline(ctx, func(p redis.Pipeliner) {
		p.Del(ctx, s.blobKey(hs))
		p.Del(ctx, s.idleKey(hs))
	})
	// Dropped locally whatever happened; after the DEL, so that a concurrent
	// Get that read the session before it cannot cache it.
	s.cache.invalidate(&h)
	if err != nil {
		return unavailable("delete", err)
	}
	if err := s.publish(ctx, hs); err != nil {
		return unavailable("delete: publishing the invalidation", err)
	}
	return nil
}

// Reload reads the session stored under id from Redis, bypassing the local
// cache, and caches what it read, so that a Get after it returns the same
// version (or a newer one). It is Get otherwise: ErrNotFound for a session
// that is absent, expired or unreadable, ErrUnavailable when Redis cannot be
// reached. A session unchanged in Redis keeps its cached pointer (and its
// Cache slot).
func (s *RedisStore) Reload(ctx context.Context, id string) (*Session, error) {
	if err := s.start(); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, ErrNotFound
	}
	h := hashID(id)
	return s.load(ctx, id, &h, unixNano(s.now()))
}
