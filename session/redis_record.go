package session

import (
	"context"
	"encoding/binary"
	"time"
)

// recordExpiryLength is the length of the expiry that starts the plaintext
// of a record blob: unix ns, big-endian.
const recordExpiryLength = 8

// PutRecord stores value under key for ttl, replacing any record of that
// key, on every instance at once: one SET with PX ttl of
// <prefix>r:<hash(key)>. The value is sealed like a session blob, with that
// key name as additional data, together with its expiry; GetRecord enforces
// both Redis's TTL and that expiry, so a sealed record written back after
// its DeleteRecord still ends when it would have. Nothing is cached locally.
// A failure to reach Redis is ErrUnavailable.
func (s *RedisStore) PutRecord(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkRecord(key, value, ttl); err != nil {
		return err
	}
	if err := s.start(); err != nil {
		return err
	}
	k := s.recordKey(key)
	ms := (ttl + time.Millisecond - 1) / time.Millisecond // rounded up: never shorter than asked
	plaintext := make([]byte, recordExpiryLength+len(value))
	binary.BigEndian.PutUint64(plaintext, uint64(addNanos(unixNano(s.now()), ttl)))
	copy(plaintext[recordExpiryLength:], value)
	blob := s.keys.seal(k, plaintext)
	if err := s.call(ctx, func(ctx context.Context) error {
		return s.client.Do(ctx, "set", k, blob, "px", int64(ms)).Err()
	}); err != nil {
		return unavailable("put record", err)
	}
	return nil
}

// GetRecord reads the record stored under key from Redis (never from a
// cache) and returns its value. It returns ErrNotFound when the key is
// absent, its blob does not open (tampered, copied from another key, sealed
// with a secret this instance does not have) or its sealed expiry has passed
// on this instance's clock. A failure to reach Redis is ErrUnavailable.
func (s *RedisStore) GetRecord(ctx context.Context, key string) ([]byte, error) {
	if err := checkRecordKey(key); err != nil {
		return nil, err
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	k := s.recordKey(key)
	var blob []byte
	err := s.call(ctx, func(ctx context.Context) (err error) {
		blob, err = s.client.Get(ctx, k).Bytes()
		return err
	})
	switch {
	case isMissing(err):
		return nil, ErrNotFound
	case err != nil:
		return nil, unavailable("get record", err)
	}
	plaintext, ok := s.keys.open(k, blob)
	if !ok || len(plaintext) < recordExpiryLength {
		return nil, ErrNotFound
	}
	if exp := int64(binary.BigEndian.Uint64(plaintext)); unixNano(s.now()) >= exp {
		return nil, ErrNotFound
	}
	return plaintext[recordExpiryLength:], nil
}

// DeleteRecord removes the record stored under key (DEL). Deleting an
// absent record is not an error; a failure to reach Redis is ErrUnavailable.
func (s *RedisStore) DeleteRecord(ctx context.Context, key string) error {
	if err := checkRecordKey(key); err != nil {
		return err
	}
	if err := s.start(); err != nil {
		return err
	}
	if err := s.call(ctx, func(ctx context.Context) error {
		return s.client.Del(ctx, s.recordKey(key)).Err()
	}); err != nil {
		return unavailable("delete record", err)
	}
	return nil
}

// recordKey is the Redis key of the record named key: a hash, so that the
// name (which may hold an auth_req_id) does not appear in Redis.
func (s *RedisStore) recordKey(key string) string {
	return s.prefix + "r:" + hashString(key)
}
