package session

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/redistest"
)

// TestRedisStoreRecordsAcrossInstances: two gateway instances on one Redis
// see each other's records at once (put, replace, delete: nothing is cached),
// and a record ends by Redis's own expiry (PX ttl).
func TestRedisStoreRecordsAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}})
	waitSubscribed(t, a) // the session cache is on, and must not serve records
	waitSubscribed(t, b)
	checkRecordContract(t, a, b, 300*time.Millisecond, func(d time.Duration) {
		k := a.recordKey("ciba:short")
		pttl, _ := srv.Do(t, "PTTL", k).(int64)
		if pttl <= 0 || time.Duration(pttl)*time.Millisecond > d {
			t.Errorf("PTTL of the record = %d ms, want in (0, %v]", pttl, d)
		}
		waitFor(t, 5*time.Second, "Redis to expire the record", func() bool { return srv.Do(t, "EXISTS", k) == int64(0) })
	})
	wantAllKeysExpire(t, srv)
}

// TestRedisStoreRecordKey: a record is one key, <prefix>r:<sha256(key)>,
// with the record's ttl; neither the key name nor the raw value contains the
// record's name or its plaintext; every GetRecord reads Redis.
func TestRedisStoreRecordKey(t *testing.T) {
	srv := redistest.Start(t)
	st := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}, KeyPrefix: "tg-test:"})
	authReqID := "auth-req-" + NewID()
	key := "ciba:" + authReqID
	value := []byte(`{"login_hint":"alice@example.com","binding_message":"W4SCT"}`)
	mustPutRecord(t, st, key, value, 30*time.Second)

	want := "tg-test:r:" + hashString(key)
	keys := srv.Keys(t, "*")
	if len(keys) != 1 || keys[0] != want {
		t.Fatalf("keys after PutRecord = %q, want [%q]", keys, want)
	}
	if strings.Contains(keys[0], authReqID) {
		t.Errorf("record key %q contains the record's name", keys[0])
	}
	raw, _ := srv.Do(t, "GET", want).(string)
	if wantLen := sealHeaderLength + sealOverhead + recordExpiryLength + len(value); len(raw) != wantLen {
		t.Errorf("raw value = %d bytes, want %d (sealed expiry and value)", len(raw), wantLen)
	}
	for _, secret := range []string{string(value), "alice@example.com", "W4SCT", authReqID} {
		if strings.Contains(raw, secret) {
			t.Errorf("raw Redis value contains %q", secret)
		}
	}
	if pttl, _ := srv.Do(t, "PTTL", want).(int64); pttl <= 25_000 || pttl > 30_000 {
		t.Errorf("PTTL %s = %d ms, want ≈ 30000", want, pttl)
	}

	log := watchCommands(st)
	wantRecord(t, st, key, value, "first read")
	wantRecord(t, st, key, value, "second read")
	if n := log.count("get " + want); n != 2 {
		t.Errorf("GET %s sent %d times for two GetRecord calls, want 2 (no local cache): %q", want, n, log.all())
	}
	if err := st.DeleteRecord(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if keys := srv.Keys(t, "*"); len(keys) != 0 {
		t.Errorf("keys after DeleteRecord = %q, want none", keys)
	}
}

// TestRedisStoreRecordBoundToKey: a sealed value opens only at the key it was
// sealed for. Copied to another record's key, to the same record name under
// another prefix, or changed by one bit, it reads as absent (ErrNotFound),
// never as the value; so do garbage, another type, a session blob moved to a
// record key, and a record sealed with a secret this instance does not have.
// Put back where it belongs, the original opens again.
func TestRedisStoreRecordBoundToKey(t *testing.T) {
	srv := redistest.Start(t)
	a := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}})
	secret := []byte("approved-for-alice")
	mustPutRecord(t, a, "ciba:alice", secret, time.Hour)
	mustPutRecord(t, a, "ciba:mallory", []byte("pending-for-mallory"), time.Hour)
	aliceKey, malloryKey := a.recordKey("ciba:alice"), a.recordKey("ciba:mallory")
	aliceRaw, _ := srv.Do(t, "GET", aliceKey).(string)
	malloryRaw, _ := srv.Do(t, "GET", malloryKey).(string)

	// Alice's approval copied onto Mallory's pending login.
	srv.Do(t, "SET", malloryKey, aliceRaw, "PX", "3600000")
	wantNoRecord(t, a, "ciba:mallory", "holding a value copied from another key")

	// The same record name under another prefix (another gateway sharing the
	// Redis and the secret).
	other := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}, KeyPrefix: "other:"})
	srv.Do(t, "SET", other.recordKey("ciba:alice"), aliceRaw, "PX", "3600000")
	wantNoRecord(t, other, "ciba:alice", "holding a value copied from another prefix")

	// A session blob moved to a record key.
	s := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
	mustRedisPut(t, a, s)
	sessionBlob, _ := keysOf(a, s.ID)
	sessionRaw, _ := srv.Do(t, "GET", sessionBlob).(string)
	srv.Do(t, "SET", malloryKey, sessionRaw, "PX", "3600000")
	wantNoRecord(t, a, "ciba:mallory", "holding a session blob")

	// Every single-bit change, garbage, and another type.
	for i := range len(aliceRaw) {
		b := []byte(aliceRaw)
		b[i] ^= 0x01
		srv.Do(t, "SET", aliceKey, string(b))
		wantNoRecord(t, a, "ciba:alice", "with one bit changed")
	}
	srv.Do(t, "SET", aliceKey, "not a sealed value at all")
	wantNoRecord(t, a, "ciba:alice", "holding garbage")
	srv.Do(t, "DEL", aliceKey)
	srv.Do(t, "SADD", aliceKey, "member")
	wantNoRecord(t, a, "ciba:alice", "holding a set")
	srv.Do(t, "DEL", aliceKey)

	// Put back where they belong, the originals open.
	srv.Do(t, "SET", aliceKey, aliceRaw, "PX", "3600000")
	srv.Do(t, "SET", malloryKey, malloryRaw, "PX", "3600000")
	wantRecord(t, a, "ciba:alice", secret, "put back at its own key")
	wantRecord(t, a, "ciba:mallory", []byte("pending-for-mallory"), "put back at its own key")

	// Another secret does not open it; a rotated keyring (new first, old
	// kept) does.
	stranger := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}, Secrets: [][]byte{testSecret(9, 32)}})
	wantNoRecord(t, stranger, "ciba:alice", "under another secret")
	rotated := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}, Secrets: [][]byte{testSecret(9, 32), redisTestSecret}})
	wantRecord(t, rotated, "ciba:alice", secret, "with the old secret kept for decryption")
}

// TestRedisStoreRecordSealedExpiry: the expiry is sealed with the value, so a
// record ends at its ttl on the store's clock even where Redis still holds
// it, for example a sealed value written back without a TTL after
// DeleteRecord (replay by someone with write access to Redis).
func TestRedisStoreRecordSealedExpiry(t *testing.T) {
	srv := redistest.Start(t)
	clock := newFakeClock()
	st := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}, Now: clock.Now})
	const key = "ciba:replayed"
	mustPutRecord(t, st, key, []byte("approved"), time.Minute)
	k := st.recordKey(key)
	raw, _ := srv.Do(t, "GET", k).(string)
	if err := st.DeleteRecord(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	wantNoRecord(t, st, key, "after DeleteRecord")

	srv.Do(t, "SET", k, raw) // written back, no TTL
	clock.Advance(time.Minute - time.Millisecond)
	wantRecord(t, st, key, []byte("approved"), "written back before its sealed expiry")
	clock.Advance(time.Millisecond)
	wantNoRecord(t, st, key, "past its sealed expiry, while Redis still holds it")
	if n := srv.Do(t, "EXISTS", k); n != int64(1) {
		t.Fatalf("EXISTS %s = %v, want 1 (the test needs Redis to still hold it)", k, n)
	}
}

// TestRedisStoreRecordDown: with Redis down, PutRecord, GetRecord and
// DeleteRecord fail with ErrUnavailable (never ErrNotFound: a pending login is
// not gone because Redis is); after Redis is back they work; after Close they
// fail with ErrUnavailable.
func TestRedisStoreRecordDown(t *testing.T) {
	srv := redistest.Start(t)
	opts := RedisOptions{Addrs: []string{srv.Addr()}, DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond}
	st := newRedisTestStore(t, opts)
	ctx := t.Context()
	mustPutRecord(t, st, "ciba:pending", []byte("v"), time.Hour)

	srv.Stop()
	for range 3 { // dead pooled connections first, then refused dials
		if err := st.PutRecord(ctx, "ciba:new", []byte("v"), time.Hour); !errors.Is(err, ErrUnavailable) {
			t.Errorf("PutRecord() with Redis down = %v, want ErrUnavailable", err)
		}
		if got, err := st.GetRecord(ctx, "ciba:pending"); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) || got != nil {
			t.Errorf("GetRecord() with Redis down = (%q, %v), want (nil, ErrUnavailable)", got, err)
		}
		if err := st.DeleteRecord(ctx, "ciba:pending"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("DeleteRecord() with Redis down = %v, want ErrUnavailable", err)
		}
	}

	srv.Restart(t) // empty
	waitFor(t, 10*time.Second, "the store to recover", func() bool { return st.Ping(ctx) == nil })
	wantNoRecord(t, st, "ciba:pending", "after Redis restarted empty")
	mustPutRecord(t, st, "ciba:pending", []byte("again"), time.Hour)
	wantRecord(t, st, "ciba:pending", []byte("again"), "after Redis is back")

	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.PutRecord(ctx, "ciba:x", []byte("v"), time.Hour); !errors.Is(err, ErrUnavailable) {
		t.Errorf("PutRecord() after Close = %v, want ErrUnavailable", err)
	}
	if _, err := st.GetRecord(ctx, "ciba:pending"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("GetRecord() after Close = %v, want ErrUnavailable", err)
	}
	if err := st.DeleteRecord(ctx, "ciba:pending"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("DeleteRecord() after Close = %v, want ErrUnavailable", err)
	}
}

// TestRedisStoreRecordSubMillisecondTTL: a ttl below a millisecond is still a
// record with a TTL in Redis (rounded up), never one without.
func TestRedisStoreRecordSubMillisecondTTL(t *testing.T) {
	srv := redistest.Start(t)
	st := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}})
	mustPutRecord(t, st, "ciba:tiny", []byte("x"), time.Microsecond)
	waitFor(t, 5*time.Second, "Redis to expire the record", func() bool {
		return srv.Do(t, "EXISTS", st.recordKey("ciba:tiny")) == int64(0)
	})
	wantNoRecord(t, st, "ciba:tiny", "after its ttl")
}
