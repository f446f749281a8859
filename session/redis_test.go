package session

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/redistest"
)

func TestRedisStoreGetPutDelete(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}})
	ctx := t.Context()
	s := newTestSession(t, NewID(), time.Now(), time.Hour, 30*time.Minute)
	s.Claims["sid"] = "op-session-1"
	s.AccessToken, s.RefreshToken, s.TokenExpiry = "at-1", "rt-1", time.Now().Add(time.Minute)
	mustRedisPut(t, a, s)

	if got := mustRedisGet(t, a, s.ID); got != s {
		t.Errorf("Get() on the writing instance = %p, want the session it put (%p)", got, s)
	}
	got := mustRedisGet(t, b, s.ID)
	wantSameSession(t, got, s)
	if again := mustRedisGet(t, b, s.ID); again != got {
		t.Errorf("second Get() on another instance = %p, want the cached %p", again, got)
	}
	wantRedisNotFound(t, a, NewID())
	wantRedisNotFound(t, a, "")
	wantRedisNotFound(t, a, "not-an-id\r\n*")

	if err := a.Delete(ctx, s.ID); err != nil {
		t.Fatalf("Delete() = %v, want nil", err)
	}
	wantRedisNotFound(t, a, s.ID)
	waitFor(t, time.Second, "the other instance to drop the deleted session", func() bool {
		_, err := b.Get(ctx, s.ID)
		return errors.Is(err, ErrNotFound)
	})
	if err := a.Delete(ctx, s.ID); err != nil {
		t.Errorf("Delete() of an absent session = %v, want nil", err)
	}
	blob, idle := keysOf(a, s.ID)
	for _, k := range []string{blob, idle} {
		if n := srv.Do(t, "EXISTS", k); n != int64(0) {
			t.Errorf("EXISTS %s after Delete = %v, want 0", k, n)
		}
	}
}

func TestRedisStorePutVersionAndTTL(t *testing.T) {
	srv := redistest.Start(t)
	clock := newFakeClock()
	st := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}, Now: clock.Now})
	const lifetime = 8 * time.Hour
	s := newTestSession(t, NewID(), clock.Now(), lifetime, 30*time.Minute)
	s.Claims["sid"] = "sid-1"
	mustRedisPut(t, st, s)
	if s.Version != 1 {
		t.Errorf("Put(new).Version = %d, want 1", s.Version)
	}
	clock.Advance(20 * time.Minute)
	s2 := mustRedisGet(t, st, s.ID).Clone()
	s2.AccessToken = "rotated"
	mustRedisPut(t, st, s2)
	if s2.Version != 2 || s.Version != 1 {
		t.Errorf("Put(clone) versions = (old %d, new %d), want (1, 2)", s.Version, s2.Version)
	}
	// Another instance reads the new version.
	other := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}, Now: clock.Now})
	if got := mustRedisGet(t, other, s.ID); got.Version != 2 || got.AccessToken != "rotated" {
		t.Errorf("Get() on another instance = version %d, access token %q; want 2, rotated", got.Version, got.AccessToken)
	}
	// The stored pointer must not be put again: that would change a shared session.
	if err := st.Put(t.Context(), s2); err == nil {
		t.Errorf("Put(session returned by Get) = nil, want an error")
	}
	if s2.Version != 2 {
		t.Errorf("rejected Put changed Version to %d, want 2", s2.Version)
	}

	// Every key lives as long as the session has left (7h40m at this clock).
	remaining := lifetime - 20*time.Minute
	blob, idle := keysOf(st, s.ID)
	subKey := st.subIndexKey(s.Issuer, s.Subject)
	sidKey := st.sidIndexKey(s.Issuer, "sid-1")
	for k, want := range map[string]time.Duration{
		blob: remaining, idle: remaining,
		// The indexes keep the longest TTL their members had: 8h from the first Put.
		subKey: lifetime, sidKey: lifetime,
	} {
		pttl, _ := srv.Do(t, "PTTL", k).(int64)
		if got := time.Duration(pttl) * time.Millisecond; got > want || got < want-5*time.Second {
			t.Errorf("PTTL %s = %v, want ≈ %v", k, got, want)
		}
	}
	// An index lives as long as its longest-lived member: a shorter session does
	// not shorten it, a longer one extends it.
	short := newTestSession(t, NewID(), clock.Now(), time.Hour, 0)
	mustRedisPut(t, st, short)
	long := newTestSession(t, NewID(), clock.Now(), 24*time.Hour, 0)
	mustRedisPut(t, st, long)
	pttl, _ := srv.Do(t, "PTTL", subKey).(int64)
	if got := time.Duration(pttl) * time.Millisecond; got < 24*time.Hour-5*time.Second || got > 24*time.Hour {
		t.Errorf("PTTL of the subject index = %v, want ≈ 24h (its longest member)", got)
	}
	if n := srv.Do(t, "SCARD", subKey); n != int64(3) {
		t.Errorf("SCARD of the subject index = %v, want 3", n)
	}
}

func TestRedisStorePutRejectsInvalid(t *testing.T) {
	srv := redistest.Start(t)
	clock := newFakeClock()
	st := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}, Now: clock.Now})
	now := clock.Now()
	noExpiry := newTestSession(t, NewID(), now, time.Hour, 0)
	noExpiry.ExpiresAt = time.Time{}
	tests := []struct {
		name string
		s    *Session
	}{
		{name: "nil", s: nil},
		{name: "empty id", s: newTestSession(t, "", now, time.Hour, 0)},
		{name: "zero ExpiresAt", s: noExpiry},
		{name: "expired", s: newTestSession(t, NewID(), now.Add(-2*time.Hour), time.Hour, 0)},
		{name: "expires now", s: newTestSession(t, NewID(), now, 0, 0)},
		{name: "expires within a millisecond", s: newTestSession(t, NewID(), now, time.Microsecond, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := st.Put(t.Context(), tt.s); err == nil {
				t.Errorf("Put() = nil, want an error")
			} else if errors.Is(err, ErrUnavailable) {
				t.Errorf("Put() = %v, want a validation error, not ErrUnavailable", err)
			}
			if tt.s != nil && tt.s.Version != 0 {
				t.Errorf("rejected Put set Version to %d, want 0", tt.s.Version)
			}
			if keys := srv.Keys(t, "*"); len(keys) != 0 {
				t.Errorf("keys after a rejected Put = %q, want none", keys)
			}
		})
	}
}

// TestSES07_RedisDumpRevealsNothing stores a session full of recognisable
// secrets and checks that no key name and no raw value in Redis contains any
// of them: the values are encrypted and the keys are hashes.
func TestSES07_RedisDumpRevealsNothing(t *testing.T) {
	srv := redistest.Start(t)
	st := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}})
	now := time.Now()
	s := &Session{
		ID:           NewID(),
		Issuer:       "https://idp.issuer-needle.example",
		ClientID:     "client-needle-7",
		Subject:      "subject-needle-8f3a",
		IDToken:      "eyJhbGciOiJSUzI1NiJ9.id-token-needle.sig",
		AccessToken:  "access-token-needle-4c1d",
		RefreshToken: "refresh-token-needle-9e2b",
		Claims: map[string]any{
			"email":        "alice.needle@example.com",
			"name":         "Alice Needlewoman",
			"phone_number": "+15550001234",
			"sid":          "sid-needle-77aa",
			"bindid_alias": "alias-needle",
		},
		CreatedAt:   now,
		ExpiresAt:   now.Add(time.Hour),
		IdleTimeout: 30 * time.Minute,
	}
	mustRedisPut(t, st, s)
	const onceKey = "state-needle-5d6e"
	if _, err := st.Once(t.Context(), onceKey, time.Minute); err != nil {
		t.Fatalf("Once() = %v", err)
	}
	rawID, err := base64.RawURLEncoding.DecodeString(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	needles := []string{
		s.ID, string(rawID), s.ClientID, s.Subject, s.IDToken, s.AccessToken, s.RefreshToken,
		"id-token-needle", "alice.needle", "Needlewoman", "+15550001234", "sid-needle", "alias-needle",
		"issuer-needle", onceKey,
		// JSON field names would betray a plaintext blob.
		`"access_token"`, `"claims"`, `"sub"`,
	}
	wantAllKeysExpire(t, srv)
	dump := dumpRedis(t, srv)
	if len(dump) < 5 { // blob, idle clock, 2 indexes, once
		t.Fatalf("dump has %d keys, want at least 5: %q", len(dump), dump)
	}
	for k, values := range dump {
		for _, n := range needles {
			if strings.Contains(k, n) {
				t.Errorf("key name %q contains %q", k, n)
			}
			for _, v := range values {
				if strings.Contains(v, n) {
					t.Errorf("value of %q contains %q", k, n)
				}
			}
		}
	}
	// Two Puts of the same session never produce the same ciphertext (a fresh
	// nonce each time).
	blobKey, _ := keysOf(st, s.ID)
	first := dump[blobKey][0]
	mustRedisPut(t, st, s.Clone())
	second, _ := srv.Do(t, "GET", blobKey).(string)
	nonce := func(blob string) string { return blob[sealHeaderLength : sealHeaderLength+12] }
	if len(second) < sealHeaderLength+sealOverhead || nonce(second) == nonce(first) {
		t.Errorf("second Put wrote the same nonce (%d and %d bytes), want a fresh one", len(first), len(second))
	}
}

// TestRedisStoreWarmGetMakesNoRoundTrips counts the commands the client
// sends: a Get from a warm cache sends none, a cold Get one pipeline of two
// GETs.
func TestRedisStoreWarmGetMakesNoRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}})
	waitSubscribed(t, a)
	waitSubscribed(t, b)
	s := newTestSession(t, NewID(), time.Now(), time.Hour, 30*time.Minute)
	putAndWaitDelivered(t, a, s, b)
	la, lb := watchCommands(a), watchCommands(b)

	mustRedisGet(t, b, s.ID) // cold
	if got := lb.count("get " + a.prefix); got != 2 || lb.count("") != lb.count("get ")+lb.count("hello") {
		t.Errorf("commands of a cold Get = %q, want two GETs (on a new connection: HELLO)", lb.all())
	}
	lb.reset()
	for range 1000 {
		mustRedisGet(t, a, s.ID)
		mustRedisGet(t, b, s.ID)
	}
	if got := append(la.all(), lb.all()...); len(got) != 0 {
		t.Errorf("commands of 2000 warm Gets = %d (%q…), want 0", len(got), got[:min(len(got), 5)])
	}
}

// TestRedisStoreIdleClockWriteBehind checks that the idle clock is written
// asynchronously, at most once per TouchInterval, and never per request.
func TestRedisStoreIdleClockWriteBehind(t *testing.T) {
	srv := redistest.Start(t)
	clock := newFakeClock()
	st := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}, Now: clock.Now, TouchInterval: time.Minute, LocalCacheTTL: time.Hour})
	waitSubscribed(t, st)
	s := newTestSession(t, NewID(), clock.Now(), 8*time.Hour, 30*time.Minute)
	mustRedisPut(t, st, s)
	log := watchCommands(st)
	_, idleKey := keysOf(st, s.ID)

	for range 30 { // 5 minutes, one request every 10 s
		clock.Advance(10 * time.Second)
		for range 10 {
			mustRedisGet(t, st, s.ID)
		}
	}
	want := strconv.FormatInt(clock.Now().UnixMilli(), 10)
	waitFor(t, 5*time.Second, "the last idle-clock write", func() bool { return srv.Do(t, "GET", idleKey) == want })
	touches := log.count("set " + idleKey)
	if touches != 5 {
		t.Errorf("idle-clock writes for 300 Gets over 5 min = %d, want 5 (at most one per minute)", touches)
	}
	if other := len(log.all()) - touches; other != 0 {
		t.Errorf("other commands = %d (%q), want 0", other, log.all())
	}
	// The write keeps the session's TTL.
	if pttl, _ := srv.Do(t, "PTTL", idleKey).(int64); pttl < (8*time.Hour - time.Minute).Milliseconds() {
		t.Errorf("PTTL of the idle clock after touches = %d ms, want ≈ 8h", pttl)
	}
}

// TestSES05_RedisIdleTimeoutAcrossInstances: activity on one instance keeps
// the session alive on another, and without activity anywhere it ends after
// IdleTimeout, on every instance, with or without a local cache.
func TestSES05_RedisIdleTimeoutAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	const idle = 10 * time.Minute
	for _, cacheTTL := range []time.Duration{time.Hour, time.Minute, -1} {
		t.Run(fmt.Sprintf("local cache ttl %v", cacheTTL), func(t *testing.T) {
			clock := newFakeClock()
			opts := RedisOptions{Addrs: []string{srv.Addr()}, Now: clock.Now, TouchInterval: time.Minute, LocalCacheTTL: cacheTTL}
			a, b := newRedisPair(t, opts)
			s := newTestSession(t, NewID(), clock.Now(), 8*time.Hour, idle)
			mustRedisPut(t, a, s)
			mustRedisGet(t, b, s.ID)
			_, idleKey := keysOf(a, s.ID)
			written := func(ts time.Time) {
				t.Helper()
				want := strconv.FormatInt(ts.UnixMilli(), 10)
				waitFor(t, 5*time.Second, "the idle clock "+want, func() bool { return srv.Do(t, "GET", idleKey) == want })
			}

			clock.Advance(8 * time.Minute)
			mustRedisGet(t, a, s.ID) // activity on A only
			written(clock.Now())
			clock.Advance(4 * time.Minute) // B last saw it 12 min ago; A 4 min ago
			mustRedisGet(t, b, s.ID)
			written(clock.Now())
			clock.Advance(idle - time.Second)
			mustRedisGet(t, a, s.ID) // A last saw it 13:59 ago, B 9:59 ago
			written(clock.Now())

			clock.Advance(idle) // no activity anywhere
			wantRedisNotFound(t, b, s.ID)
			wantRedisNotFound(t, a, s.ID)
			if keys := srv.Keys(t, a.prefix+"[sa]:*"); len(keys) != 0 {
				t.Errorf("keys after idle expiry = %q, want none", keys)
			}
		})
	}
}

// TestSES05_RedisAbsoluteExpiryInCache: a cached session ends at ExpiresAt
// however it is used, and is then removed from Redis.
func TestSES05_RedisAbsoluteExpiryInCache(t *testing.T) {
	srv := redistest.Start(t)
	clock := newFakeClock()
	st := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}, Now: clock.Now, LocalCacheTTL: 24 * time.Hour})
	waitSubscribed(t, st)
	s := newTestSession(t, NewID(), clock.Now(), time.Hour, 0)
	mustRedisPut(t, st, s)
	clock.Advance(time.Hour - time.Second)
	mustRedisGet(t, st, s.ID)
	clock.Advance(time.Second)
	wantRedisNotFound(t, st, s.ID)
	if keys := srv.Keys(t, "*:[sa]:*"); len(keys) != 0 {
		t.Errorf("keys after expiry = %q, want none", keys)
	}
	clock.Advance(-time.Hour) // turning the clock back brings nothing back
	wantRedisNotFound(t, st, s.ID)
}

// TestRedisStoreInvalidationAcrossInstances: a logout or an update on one
// instance is seen on another within a second, through Pub/Sub, although
// the other instance's cache would trust its copy for a minute.
func TestRedisStoreInvalidationAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}})
	waitSubscribed(t, a)
	waitSubscribed(t, b)
	ctx := t.Context()

	var worst time.Duration
	for i := range 20 {
		s := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
		mustRedisPut(t, a, s)
		mustRedisGet(t, b, s.ID) // cached on B
		if i%2 == 0 {            // an update is seen too
			s2 := s.Clone()
			s2.AccessToken = "refreshed"
			mustRedisPut(t, a, s2)
			start := time.Now()
			waitFor(t, time.Second, "B to see the update", func() bool {
				got, err := b.Get(ctx, s.ID)
				return err == nil && got.Version == 2 && got.AccessToken == "refreshed"
			})
			worst = max(worst, time.Since(start))
		}
		start := time.Now()
		if err := a.Delete(ctx, s.ID); err != nil {
			t.Fatalf("Delete() = %v", err)
		}
		waitFor(t, time.Second, "B to refuse the deleted session", func() bool {
			_, err := b.Get(ctx, s.ID)
			return errors.Is(err, ErrNotFound)
		})
		worst = max(worst, time.Since(start))
	}
	t.Logf("invalidation latency across instances: worst %v of 30 (Delete or Put on A until B refuses/updates)", worst)
}

// TestRedisStoreSubscriptionLoss kills the invalidation subscription: the
// instance trusts nothing older than a second until it has subscribed again,
// then invalidations work again.
func TestRedisStoreSubscriptionLoss(t *testing.T) {
	srv := redistest.Start(t)
	clock := newFakeClock()
	a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}, Now: clock.Now})
	waitSubscribed(t, a)
	waitSubscribed(t, b)
	ctx := t.Context()
	newSession := func() *Session {
		s := newTestSession(t, NewID(), clock.Now(), 8*time.Hour, 0)
		putAndWaitDelivered(t, a, s, b)
		mustRedisGet(t, b, s.ID) // cached on B
		return s
	}
	delRaw := func(s *Session) { // behind the stores' backs: no invalidation message
		blob, idle := keysOf(a, s.ID)
		srv.Do(t, "DEL", blob, idle)
	}
	wantGoneWithinASecond := func(s *Session) {
		t.Helper()
		if err := a.Delete(ctx, s.ID); err != nil {
			t.Fatalf("Delete() = %v", err)
		}
		waitFor(t, time.Second, "B to refuse a session deleted on A", func() bool {
			_, err := b.Get(ctx, s.ID)
			return errors.Is(err, ErrNotFound)
		})
	}

	// While subscribed, the cache is trusted for LocalCacheTTL: a change that
	// was not announced goes unnoticed for longer than a second.
	s1, s2 := newSession(), newSession()
	delRaw(s1)
	clock.Advance(2 * time.Second)
	mustRedisGet(t, b, s1.ID)

	// Connection killed: go-redis reconnects at once, but what was cached
	// before may have missed messages, so it is trusted for a second only.
	upEpoch := b.sub.Load()
	start := time.Now()
	srv.Do(t, "CLIENT", "KILL", "TYPE", "pubsub")
	waitFor(t, 5*time.Second, "B to re-subscribe", func() bool { return b.sub.Load() != upEpoch && b.subscribed() })
	t.Logf("re-subscribed %v after CLIENT KILL TYPE pubsub", time.Since(start))
	wantRedisNotFound(t, b, s1.ID)
	delRaw(s2)
	wantRedisNotFound(t, b, s2.ID)
	wantGoneWithinASecond(newSession())

	// Kept down: the default user may no longer subscribe (nor publish).
	s3 := newSession()
	clock.Advance(2 * time.Second)
	mustRedisGet(t, b, s3.ID) // still trusted from the cache: the subscription is up
	srv.Do(t, "ACL", "SETUSER", "default", "resetchannels")
	srv.Do(t, "CLIENT", "KILL", "TYPE", "pubsub")
	waitFor(t, 5*time.Second, "B to notice the lost subscription", func() bool { return !b.subscribed() })
	s4 := newTestSession(t, NewID(), clock.Now(), 8*time.Hour, 0)
	// Written, but the invalidation cannot be announced: the caller is told.
	if err := a.Put(ctx, s4); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Put() while PUBLISH is refused = %v, want ErrUnavailable", err)
	}
	mustRedisGet(t, b, s4.ID) // read while down: trusted for a second
	delRaw(s3)
	delRaw(s4)
	clock.Advance(unconfirmedCacheTTL - time.Millisecond)
	if b.subscribed() {
		t.Fatalf("B subscribed again although it may not")
	}
	mustRedisGet(t, b, s4.ID)      // younger than a second
	wantRedisNotFound(t, b, s3.ID) // cached 3 s ago, while up
	clock.Advance(time.Millisecond)
	wantRedisNotFound(t, b, s4.ID) // a second old

	srv.Do(t, "ACL", "SETUSER", "default", "allchannels")
	start = time.Now()
	waitSubscribed(t, b)
	t.Logf("re-subscribed %v after the channel was allowed again (retry backoff <= %v)", time.Since(start), subscriptionRetryMax)
	wantGoneWithinASecond(newSession())
}

func TestRedisStoreOnce(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}})
	ctx := t.Context()
	once := func(st *RedisStore, key string, ttl time.Duration) bool {
		t.Helper()
		ok, err := st.Once(ctx, key, ttl)
		if err != nil {
			t.Fatalf("Once(%.10q) = %v", key, err)
		}
		return ok
	}
	if !once(a, "state-1", time.Minute) {
		t.Errorf("first Once(state-1) = false, want true")
	}
	if once(a, "state-1", time.Minute) || once(b, "state-1", time.Minute) {
		t.Errorf("replayed Once(state-1) = true on some instance, want false on both")
	}
	if !once(b, "State-1", time.Minute) {
		t.Errorf("Once(State-1) = false, want true (keys are case-sensitive)")
	}
	long := strings.Repeat("k", 1<<20)
	if !once(a, long, time.Minute) || once(b, long, time.Minute) || !once(b, long[1:], time.Minute) {
		t.Errorf("Once(1 MB key) did not behave as NX")
	}
	// The key lives for ttl in Redis, under a hash of the key.
	sum := hashString("state-1")
	pttl, _ := srv.Do(t, "PTTL", a.prefix+"o:"+sum).(int64)
	if pttl <= 50_000 || pttl > 60_000 {
		t.Errorf("PTTL of the Once key = %d ms, want ≈ 60000", pttl)
	}
	// After ttl (Redis's own expiry) the key is new again.
	if !once(a, "short", 50*time.Millisecond) {
		t.Fatalf("Once(short) = false, want true")
	}
	time.Sleep(100 * time.Millisecond)
	if !once(b, "short", 50*time.Millisecond) {
		t.Errorf("Once(short) after its ttl = false, want true")
	}
	for _, tt := range []struct {
		name string
		key  string
		ttl  time.Duration
	}{
		{"empty key", "", time.Minute},
		{"zero ttl", "k", 0},
		{"negative ttl", "k", -time.Second},
	} {
		if ok, err := a.Once(ctx, tt.key, tt.ttl); err == nil || ok || errors.Is(err, ErrUnavailable) {
			t.Errorf("Once(%s) = (%v, %v), want (false, validation error)", tt.name, ok, err)
		}
	}
}

func TestRedisStoreDeleteMatching(t *testing.T) {
	srv := redistest.Start(t)
	now := time.Now()
	mk := func(iss, sub, sid string) *Session {
		s := newTestSession(t, NewID(), now, time.Hour, 0)
		s.Issuer, s.Subject = iss, sub
		s.Claims = map[string]any{}
		if sid != "" {
			s.Claims["sid"] = sid
		}
		return s
	}
	tests := []struct {
		name  string
		match Match
		want  []int // indexes of the sessions below that are removed
	}{
		{"by subject", Match{Issuer: "A", Subject: "alice"}, []int{0, 1}},
		{"by sid", Match{Issuer: "A", SID: "s1"}, []int{0}},
		{"by subject and sid", Match{Issuer: "A", Subject: "alice", SID: "s2"}, []int{1}},
		{"sid of another issuer is not ours", Match{Issuer: "B", SID: "s1"}, []int{3}},
		{"subject and sid that do not go together", Match{Issuer: "A", Subject: "bob", SID: "s1"}, nil},
		{"empty match removes nothing", Match{Issuer: "A"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Do(t, "FLUSHALL")
			a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}})
			waitSubscribed(t, a)
			waitSubscribed(t, b)
			all := []*Session{mk("A", "alice", "s1"), mk("A", "alice", "s2"), mk("A", "bob", "s3"), mk("B", "alice", "s1")}
			for _, s := range all {
				mustRedisPut(t, a, s)
				mustRedisGet(t, b, s.ID) // cached on the other instance
			}
			n, err := b.DeleteMatching(t.Context(), tt.match)
			if err != nil || n != len(tt.want) {
				t.Fatalf("DeleteMatching() = %d, %v; want %d, nil", n, err, len(tt.want))
			}
			removed := map[int]bool{}
			for _, i := range tt.want {
				removed[i] = true
			}
			for i, s := range all {
				for name, st := range map[string]*RedisStore{"deleting instance": b, "other instance": a} {
					if !removed[i] {
						mustRedisGet(t, st, s.ID)
						continue
					}
					waitFor(t, time.Second, fmt.Sprintf("session %d gone on the %s", i, name), func() bool {
						_, err := st.Get(t.Context(), s.ID)
						return errors.Is(err, ErrNotFound)
					})
				}
			}
		})
	}
}

// TestRedisStoreDeleteMatchingStaleIndex: the indexes may name sessions
// that were deleted, expired or changed since; DeleteMatching skips them,
// counts only what it removed, and cleans the index.
func TestRedisStoreDeleteMatchingStaleIndex(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}})
	ctx := t.Context()
	mk := func(sid string) *Session {
		s := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
		s.Claims = map[string]any{"sid": sid}
		return s
	}
	live, deleted, moved := mk("op-1"), mk("op-1"), mk("op-1")
	for _, s := range []*Session{live, deleted, moved} {
		mustRedisPut(t, a, s)
	}
	if err := a.Delete(ctx, deleted.ID); err != nil {
		t.Fatal(err)
	}
	// moved now belongs to another provider session; the op-1 index still names it.
	moved2 := moved.Clone()
	moved2.Claims = map[string]any{"sid": "op-2"}
	mustRedisPut(t, a, moved2)
	sidKey := a.sidIndexKey(live.Issuer, "op-1")
	srv.Do(t, "SADD", sidKey, "garbage member", encodeHash(new([32]byte)))
	if n := srv.Do(t, "SCARD", sidKey); n != int64(5) {
		t.Fatalf("SCARD of the sid index = %v, want 5", n)
	}

	n, err := b.DeleteMatching(ctx, Match{Issuer: live.Issuer, SID: "op-1"})
	if err != nil || n != 1 {
		t.Fatalf("DeleteMatching(op-1) = %d, %v; want 1, nil", n, err)
	}
	wantRedisNotFound(t, b, live.ID)
	waitFor(t, time.Second, "the other instance to drop the session", func() bool {
		_, err := a.Get(ctx, live.ID)
		return errors.Is(err, ErrNotFound)
	})
	if got := mustRedisGet(t, a, moved.ID); got.SID() != "op-2" {
		t.Errorf("moved session sid = %q, want op-2 (untouched)", got.SID())
	}
	if members := srv.Do(t, "SMEMBERS", sidKey).([]any); len(members) != 1 {
		t.Errorf("sid index after DeleteMatching = %v, want only the moved session (removed by its own logout)", members)
	}
	// The subject index no longer names the removed session either.
	subKey := a.subIndexKey(live.Issuer, live.Subject)
	liveHash := hashID(live.ID)
	if v := srv.Do(t, "SISMEMBER", subKey, encodeHash(&liveHash)); v != int64(0) {
		t.Errorf("subject index still names the removed session")
	}
	if n, err := b.DeleteMatching(ctx, Match{Issuer: live.Issuer, SID: "op-2"}); err != nil || n != 1 {
		t.Errorf("DeleteMatching(op-2) = %d, %v; want 1, nil", n, err)
	}
}

// TestOPS01_RedisDown: with Redis stopped every operation fails fast with
// ErrUnavailable (never ErrNotFound: that would log the user out), cached
// sessions are trusted for at most a second, and the store recovers by
// itself when Redis is back.
func TestOPS01_RedisDown(t *testing.T) {
	srv := redistest.Start(t)
	opts := RedisOptions{Addrs: []string{srv.Addr()}, DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond}
	a, b := newRedisPair(t, opts)
	waitSubscribed(t, a)
	ctx := t.Context()
	s := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
	s.Claims["sid"] = "sid-1"
	mustRedisPut(t, a, s)

	srv.Stop()
	budget := opts.ReadTimeout + opts.DialTimeout
	var worst time.Duration
	check := func(op string, f func() error) {
		t.Helper()
		start := time.Now()
		err := f()
		d := time.Since(start)
		worst = max(worst, d)
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
			t.Errorf("%s with Redis down = %v, want ErrUnavailable", op, err)
		}
		if d > budget {
			t.Errorf("%s with Redis down took %v, want <= %v", op, d, budget)
		}
	}
	for range 3 { // the first calls find dead pooled connections, the later ones none
		check("Get (cold)", func() error { _, err := b.Get(ctx, s.ID); return err })
		check("Put", func() error { return b.Put(ctx, newTestSession(t, NewID(), time.Now(), time.Hour, 0)) })
		check("Delete", func() error { return b.Delete(ctx, NewID()) })
		check("Once", func() error { _, err := b.Once(ctx, NewID(), time.Minute); return err })
		check("DeleteMatching", func() error { _, err := b.DeleteMatching(ctx, Match{Issuer: s.Issuer, SID: "sid-1"}); return err })
		check("Ping", func() error { return b.Ping(ctx) })
	}
	t.Logf("outage detection: slowest failing call %v (budget %v)", worst, budget)
	// A's copy was cached while subscribed; the subscription is gone, so after a
	// second it is no longer trusted and A fails closed as well.
	waitFor(t, 5*time.Second, "A to notice the lost subscription", func() bool { return !a.subscribed() })
	time.Sleep(unconfirmedCacheTTL)
	if _, err := a.Get(ctx, s.ID); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get (cached, > 1 s after the subscription was lost) = %v, want ErrUnavailable", err)
	}

	srv.Restart(t) // empty: no persistence
	start := time.Now()
	waitFor(t, 10*time.Second, "the store to recover", func() bool { return b.Ping(ctx) == nil })
	t.Logf("recovered %v after Redis came back", time.Since(start))
	wantRedisNotFound(t, b, s.ID) // lost with the data: a clean re-login, no error
	s2 := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
	mustRedisPut(t, b, s2)
	waitFor(t, 10*time.Second, "A to recover", func() bool {
		got, err := a.Get(ctx, s2.ID)
		return err == nil && got.ID == s2.ID
	})
	if ok, err := a.Once(ctx, "after-restart", time.Minute); !ok || err != nil {
		t.Errorf("Once() after restart = %v, %v; want true, nil", ok, err)
	}
	waitSubscribed(t, a)
}

// TestOPS02_RedisBlackholed: a Redis that accepts connections and never
// answers. Every call fails with ErrUnavailable within its timeouts, Close
// returns promptly, and no goroutine is left behind.
func TestOPS02_RedisBlackholed(t *testing.T) {
	baseline := runtime.NumGoroutine()
	hole := startBlackhole(t)
	opts := RedisOptions{Addrs: []string{hole.addr()}, DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, Secrets: [][]byte{redisTestSecret}}
	st, err := NewRedisStore(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	budget := opts.ReadTimeout + 200*time.Millisecond
	var worst time.Duration
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 20 { // concurrently, as requests would
		wg.Go(func() {
			start := time.Now()
			var err error
			switch i % 4 {
			case 0:
				_, err = st.Get(ctx, NewID())
			case 1:
				err = st.Put(ctx, newTestSession(t, NewID(), time.Now(), time.Hour, 0))
			case 2:
				_, err = st.Once(ctx, NewID(), time.Minute)
			case 3:
				_, err = st.DeleteMatching(ctx, Match{Issuer: "i", Subject: "s"})
			}
			d := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			worst = max(worst, d)
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("call %d against a black hole = %v, want ErrUnavailable", i, err)
			}
		})
	}
	wg.Wait()
	if worst > budget {
		t.Errorf("slowest call against a black hole took %v, want <= %v", worst, budget)
	}
	if hole.accepted() == 0 {
		t.Errorf("the black hole accepted no connection: the test tested nothing")
	}
	t.Logf("black-holed Redis: slowest failing call %v (ReadTimeout %v)", worst, opts.ReadTimeout)
	start := time.Now()
	if err := st.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close() took %v, want < 1s", d)
	}
	hole.close()
	waitGoroutines(t, baseline)
}

// TestSES03_RedisTamperedBlob: whatever is written at a session's key by
// someone without the secret reads as no session: never an error page, never
// a panic.
func TestSES03_RedisTamperedBlob(t *testing.T) {
	srv := redistest.Start(t)
	writer := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}})
	s := newTestSession(t, NewID(), time.Now(), time.Hour, 30*time.Minute)
	other := newTestSession(t, NewID(), time.Now(), time.Hour, 30*time.Minute)
	mustRedisPut(t, writer, s)
	mustRedisPut(t, writer, other)
	blobKey, idleKey := keysOf(writer, s.ID)
	otherBlobKey, _ := keysOf(writer, other.ID)
	good, _ := srv.Do(t, "GET", blobKey).(string)
	otherBlob, _ := srv.Do(t, "GET", otherBlobKey).(string)
	flip := func(i int) string {
		b := []byte(good)
		b[i] ^= 0x01
		return string(b)
	}
	foreign := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}, Secrets: [][]byte{testSecret(9, 32)}})
	plain := sessionJSON(t, s)
	tests := []struct {
		name  string
		value string
	}{
		{"empty", ""},
		{"garbage", "garbage"},
		{"plaintext JSON", plain},
		{"truncated", good[:len(good)-1]},
		{"header only", good[:sealHeaderLength]},
		{"unknown version", "\x02" + good[1:]},
		{"unknown key id", flip(1)},
		{"flipped nonce bit", flip(sealHeaderLength)},
		{"flipped ciphertext bit", flip(len(good) / 2)},
		{"flipped tag bit", flip(len(good) - 1)},
		{"blob of another session", otherBlob},
		{"sealed with another secret", string(foreign.keys.seal(blobKey, []byte(plain)))},
		{"sealed for this key with another secret's id", string(append([]byte{sealVersion}, append(writer.keys[0].id[:], foreign.keys.seal(blobKey, []byte(plain))[sealHeaderLength:]...)...))},
		{"sealed for another key", string(writer.keys.seal(otherBlobKey, []byte(plain)))},
		{"valid JSON that is not a session", string(writer.keys.seal(blobKey, []byte(`{"expires_at":"garbage"}`)))},
		{"session without expiry", string(writer.keys.seal(blobKey, []byte(`{"sub":"x"}`)))},
		{"10 KB of zeros", strings.Repeat("\x00", 10<<10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Do(t, "SET", blobKey, tt.value, "PX", "3600000")
			reader := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}})
			wantRedisNotFound(t, reader, s.ID)
		})
	}
	t.Run("wrong type", func(t *testing.T) {
		srv.Do(t, "DEL", blobKey)
		srv.Do(t, "SADD", blobKey, "x")
		reader := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}})
		wantRedisNotFound(t, reader, s.ID)
	})
	t.Run("idle clock garbage", func(t *testing.T) {
		srv.Do(t, "DEL", blobKey)
		srv.Do(t, "SET", blobKey, good, "PX", "3600000")
		srv.Do(t, "SET", idleKey, "not a number", "PX", "3600000")
		reader := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}})
		wantRedisNotFound(t, reader, s.ID) // an idle session without a readable clock ends
	})
	// The untouched session is still there and readable.
	mustRedisGet(t, newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}}), other.ID)
}

// TestOPS04_ForeignCiphertext covers secret rotation and data written by
// someone else: the new secret reads the old one's blobs, an instance
// without a secret neither reads nor destroys blobs sealed with it, and
// data loss is a clean re-login.
func TestOPS04_ForeignCiphertext(t *testing.T) {
	srv := redistest.Start(t)
	oldSecret, newSecret := testSecret(1, 32), testSecret(2, 48)
	addrs := []string{srv.Addr()}
	old := newRedisTestStore(t, RedisOptions{Addrs: addrs, Secrets: [][]byte{oldSecret}})
	s := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
	mustRedisPut(t, old, s)

	rotated := newRedisTestStore(t, RedisOptions{Addrs: addrs, Secrets: [][]byte{newSecret, oldSecret}})
	wantSameSession(t, mustRedisGet(t, rotated, s.ID), s)

	newOnly := newRedisTestStore(t, RedisOptions{Addrs: addrs, Secrets: [][]byte{newSecret}})
	wantRedisNotFound(t, newOnly, s.ID)
	blobKey, _ := keysOf(old, s.ID)
	if n := srv.Do(t, "EXISTS", blobKey); n != int64(1) {
		t.Errorf("the blob was removed by an instance that cannot read it")
	}
	// A session written after the rotation is sealed with the new secret.
	s2 := mustRedisGet(t, rotated, s.ID).Clone()
	mustRedisPut(t, rotated, s2)
	blob, _ := srv.Do(t, "GET", blobKey).(string)
	if !bytes.Equal([]byte(blob[1:sealHeaderLength]), rotated.keys[0].id[:]) {
		t.Errorf("key id of a blob written after rotation = %x, want the new key's %x", blob[1:sealHeaderLength], rotated.keys[0].id)
	}
	if got := mustRedisGet(t, newOnly, s.ID); got.Version != 2 {
		t.Errorf("Get() with the new secret only = version %d, want 2", got.Version)
	}
	oldReader := newRedisTestStore(t, RedisOptions{Addrs: addrs, Secrets: [][]byte{oldSecret}})
	wantRedisNotFound(t, oldReader, s.ID)

	srv.Do(t, "FLUSHALL")
	reader := newRedisTestStore(t, RedisOptions{Addrs: addrs, Secrets: [][]byte{newSecret}})
	wantRedisNotFound(t, reader, s.ID)
}

// TestRedisStoreNoGoroutineBeforeUse: NewRedisStore connects to nothing and
// starts nothing (it runs during `caddy validate`); the first use starts the
// background goroutines and Close stops them all.
func TestRedisStoreNoGoroutineBeforeUse(t *testing.T) {
	srv := redistest.Start(t)
	hole := startBlackhole(t)
	baseline := runtime.NumGoroutine()
	for _, addrs := range [][]string{{hole.addr()}, {hole.addr(), "127.0.0.1:1"}} {
		st, err := NewRedisStore(RedisOptions{Addrs: addrs, Secrets: [][]byte{redisTestSecret}})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		if n := runtime.NumGoroutine(); n > baseline {
			t.Errorf("goroutines after NewRedisStore(%d addrs) = %d, want <= %d", len(addrs), n, baseline)
		}
		if err := st.Close(); err != nil {
			t.Errorf("Close() unused = %v", err)
		}
	}
	sentinel, err := NewRedisStore(RedisOptions{Addrs: []string{hole.addr()}, MasterName: "m", Secrets: [][]byte{redisTestSecret}})
	if err != nil {
		t.Fatal(err)
	}
	_ = sentinel.Close()
	if n := hole.accepted(); n != 0 {
		t.Errorf("connections made by NewRedisStore and Close = %d, want 0", n)
	}

	st, err := NewRedisStore(RedisOptions{Addrs: []string{srv.Addr()}, Secrets: [][]byte{redisTestSecret}})
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSession(t, NewID(), time.Now(), time.Hour, time.Minute)
	mustRedisPut(t, st, s)
	waitSubscribed(t, st)
	mustRedisGet(t, st, s.ID)
	if n := runtime.NumGoroutine(); n <= baseline {
		t.Errorf("goroutines in use = %d, want more than %d", n, baseline)
	}
	for i := range 3 {
		if err := st.Close(); err != nil {
			t.Errorf("Close() #%d = %v, want nil", i+1, err)
		}
	}
	waitGoroutines(t, baseline)
	for _, id := range []string{s.ID, NewID()} { // cached or not
		if _, err := st.Get(t.Context(), id); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Get() after Close = %v, want ErrUnavailable", err)
		}
	}
	if _, err := st.Once(t.Context(), "k", time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Once() after Close = %v, want ErrUnavailable", err)
	}
	if err := st.Put(t.Context(), newTestSession(t, NewID(), time.Now(), time.Hour, 0)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Put() after Close = %v, want ErrUnavailable", err)
	}
	waitGoroutines(t, baseline) // use after Close starts nothing
}

func TestNewRedisStoreValidates(t *testing.T) {
	const password = "redis-password-needle"
	secret := redisTestSecret
	tests := []struct {
		name    string
		opts    RedisOptions
		wantErr string
	}{
		{"no addrs", RedisOptions{Secrets: [][]byte{secret}}, "no address"},
		{"bad addr", RedisOptions{Addrs: []string{"localhost"}, Secrets: [][]byte{secret}}, "not host:port"},
		{"no secret", RedisOptions{Addrs: []string{"127.0.0.1:6379"}, Password: password}, "no secret"},
		{"short secret", RedisOptions{Addrs: []string{"127.0.0.1:6379"}, Secrets: [][]byte{secret, []byte("short-secret-needle")}}, "secret 2 of 2 is shorter"},
		{"cluster with db", RedisOptions{Addrs: []string{"a:1", "b:1"}, DB: 2, Secrets: [][]byte{secret}}, "db must be 0"},
		{"negative db", RedisOptions{Addrs: []string{"a:1"}, DB: -1, Secrets: [][]byte{secret}}, "db must not be negative"},
		{"negative timeout", RedisOptions{Addrs: []string{"a:1"}, ReadTimeout: -1, Secrets: [][]byte{secret}}, "must not be negative"},
		{"negative cache size", RedisOptions{Addrs: []string{"a:1"}, LocalCacheSize: -1, Secrets: [][]byte{secret}}, "must not be negative"},
		{"sentinel with db", RedisOptions{Addrs: []string{"a:1", "b:1"}, MasterName: "m", DB: 2, Secrets: [][]byte{secret}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := NewRedisStore(tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewRedisStore() = %v, want nil", err)
				}
				_ = st.Close()
				return
			}
			if err == nil {
				_ = st.Close()
				t.Fatalf("NewRedisStore() = nil, want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewRedisStore() = %q, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "needle") || strings.Contains(err.Error(), string(secret)) {
				t.Errorf("error %q reveals a secret", err)
			}
		})
	}
}

// TestRedisStoreConcurrent is for -race: two instances reading, writing,
// deleting and invalidating the same sessions at once.
func TestRedisStoreConcurrent(t *testing.T) {
	srv := redistest.Start(t)
	clock := newFakeClock()
	a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}, Now: clock.Now, LocalCacheSize: 8, TouchInterval: time.Second})
	ctx := t.Context()
	ids := make([]string, 16)
	for i := range ids {
		ids[i] = NewID()
	}
	const workers, iterations = 4, 150
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for w := range workers {
		for _, st := range []*RedisStore{a, b} {
			wg.Go(func() {
				for i := range iterations {
					id := ids[(w*7+i)%len(ids)]
					switch i % 6 {
					case 0:
						s := newTestSession(t, id, clock.Now(), time.Hour, time.Minute)
						s.Claims["sid"] = "sid-" + strconv.Itoa(i%3)
						if err := st.Put(ctx, s); err != nil {
							errs <- fmt.Errorf("Put() = %w", err)
							return
						}
					case 1:
						if err := st.Delete(ctx, id); err != nil {
							errs <- fmt.Errorf("Delete() = %w", err)
							return
						}
					case 2:
						if _, err := st.DeleteMatching(ctx, Match{Issuer: "https://idp.example", SID: "sid-" + strconv.Itoa(i%3)}); err != nil {
							errs <- fmt.Errorf("DeleteMatching() = %w", err)
							return
						}
					case 3:
						clock.Advance(100 * time.Millisecond)
					}
					s, err := st.Get(ctx, id)
					switch {
					case err == nil:
						if s.ID != id || s.Subject == "" {
							errs <- fmt.Errorf("Get(%.8s) returned session %.8s / %q", id, s.ID, s.Subject)
							return
						}
						var v any = s.Version
						s.Cache.CompareAndSwap(nil, &v)
					case !errors.Is(err, ErrNotFound):
						errs <- fmt.Errorf("Get() = %w", err)
						return
					}
					if n := st.cache.len(); n > 8 {
						errs <- fmt.Errorf("cache size %d, want <= 8", n)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Quiet now: both instances agree with Redis.
	for _, id := range ids {
		_ = a.Delete(ctx, id)
	}
	for _, id := range ids {
		waitFor(t, time.Second, "B to drop a deleted session", func() bool {
			_, err := b.Get(ctx, id)
			return errors.Is(err, ErrNotFound)
		})
	}
}

func BenchmarkRedisStoreGetWarm(b *testing.B) {
	srv := redistest.Start(b)
	st := newRedisTestStore(b, RedisOptions{Addrs: []string{srv.Addr()}})
	waitSubscribed(b, st)
	ctx := b.Context()
	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = NewID()
		mustRedisPut(b, st, newTestSession(b, ids[i], time.Now(), time.Hour, 30*time.Minute))
	}
	log := watchCommands(st)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := st.Get(ctx, ids[i%len(ids)]); err != nil {
				b.Fatalf("Get() = %v", err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := st.Get(ctx, ids[i%len(ids)]); err != nil {
					b.Errorf("Get() = %v", err)
					return
				}
				i += 7
			}
		})
	})
	if n := len(log.all()); n != 0 {
		b.Errorf("warm Gets sent %d commands to Redis, want 0", n)
	}
}

func BenchmarkRedisStoreGetCold(b *testing.B) {
	srv := redistest.Start(b)
	ctx := b.Context()
	ids := make([]string, 1000)
	setup := newRedisTestStore(b, RedisOptions{Addrs: []string{srv.Addr()}})
	for i := range ids {
		ids[i] = NewID()
		s := newTestSession(b, ids[i], time.Now(), time.Hour, 30*time.Minute)
		s.AccessToken, s.RefreshToken = NewID(), NewID()
		mustRedisPut(b, setup, s)
	}
	// Each Get reads Redis, decrypts and decodes: the first request for a
	// session on an instance.
	b.Run("miss", func(b *testing.B) {
		st := newRedisTestStore(b, RedisOptions{Addrs: []string{srv.Addr()}})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			id := ids[i%len(ids)]
			h := hashID(id)
			st.cache.invalidate(&h)
			if _, err := st.Get(ctx, id); err != nil {
				b.Fatalf("Get() = %v", err)
			}
			i++
		}
	})
	// Local cache off: each Get reads Redis; an unchanged blob is not
	// decrypted again.
	b.Run("cache off", func(b *testing.B) {
		st := newRedisTestStore(b, RedisOptions{Addrs: []string{srv.Addr()}, LocalCacheTTL: -1})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := st.Get(ctx, ids[i%len(ids)]); err != nil {
				b.Fatalf("Get() = %v", err)
			}
			i++
		}
	})
}
