package session

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/redistest"
)

// TestOPS10_RedisLockAcrossInstances: two gateway instances (two stores with
// their own local caches) on one Redis share the refresh lock: one holder at
// a time, released only by its holder's token, expiring by Redis's own TTL
// when the holder never releases it, so a stale holder cannot release the
// next one's lock (threat model OPS-10).
func TestOPS10_RedisLockAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}})
	const ttl = 300 * time.Millisecond
	checkLockContract(t, a, b, ttl, func(d time.Duration) {
		k := a.lockKey("refresh:session-crash")
		pttl, _ := srv.Do(t, "PTTL", k).(int64)
		if pttl <= 0 || time.Duration(pttl)*time.Millisecond > d {
			t.Errorf("PTTL of the held lock = %d ms, want in (0, %v]", pttl, d)
		}
		waitFor(t, 5*time.Second, "Redis to expire the lock", func() bool { return srv.Do(t, "EXISTS", k) == int64(0) })
	})
}

// TestOPS10_RedisLockKey: the lock is one key under the prefix, named by a
// hash of the lock name (a name made of a session id puts no id in Redis),
// holding the random token, with the lock's ttl; Unlock removes it.
func TestOPS10_RedisLockKey(t *testing.T) {
	srv := redistest.Start(t)
	st := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}, KeyPrefix: "tg-test:"})
	id := NewID()
	name := "refresh:" + id
	token := mustLock(t, st, name, 30*time.Second)
	keys := srv.Keys(t, "*")
	want := "tg-test:l:" + hashString(name)
	if len(keys) != 1 || keys[0] != want {
		t.Fatalf("keys after Lock = %q, want [%q]", keys, want)
	}
	if strings.Contains(keys[0], id) {
		t.Errorf("lock key %q contains the session id", keys[0])
	}
	if v := srv.Do(t, "GET", want); v != token {
		t.Errorf("GET %s = %v, want the token %q", want, v, token)
	}
	if len(token) < 22 {
		t.Errorf("token %q is shorter than 128 bits of base64url", token)
	}
	if pttl, _ := srv.Do(t, "PTTL", want).(int64); pttl <= 25_000 || pttl > 30_000 {
		t.Errorf("PTTL %s = %d ms, want ≈ 30000", want, pttl)
	}
	if again := mustLockAfterUnlock(t, st, name, token); again == token {
		t.Errorf("two holds got the same token %q", token)
	}
}

// mustLockAfterUnlock releases the lock, checks that its key is gone, and
// takes it again.
func mustLockAfterUnlock(tb testing.TB, st *RedisStore, name, token string) string {
	tb.Helper()
	mustUnlock(tb, st, name, token)
	if n, err := st.client.Exists(tb.Context(), st.lockKey(name)).Result(); err != nil || n != 0 {
		tb.Errorf("EXISTS lock key after Unlock = %d, %v; want 0", n, err)
	}
	return mustLock(tb, st, name, time.Second)
}

// TestOPS10_RedisLockSingleWinner: 50 requests on two instances ask for the
// same lock at once; exactly one gets it, every round.
func TestOPS10_RedisLockSingleWinner(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}})
	checkLockSingleWinner(t, 20, a, b)
}

// TestOPS10_RedisLockDown: with Redis down, Lock and Unlock fail with
// ErrUnavailable, and Lock never reports a hold; after Redis is back the lock
// works again.
func TestOPS10_RedisLockDown(t *testing.T) {
	srv := redistest.Start(t)
	opts := RedisOptions{Addrs: []string{srv.Addr()}, DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond}
	a, b := newRedisPair(t, opts)
	ctx := t.Context()
	held := mustLock(t, a, "refresh:held", lockHeld)
	s := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
	mustRedisPut(t, a, s)
	mustRedisGet(t, b, s.ID) // cached on B

	srv.Stop()
	for range 3 { // dead pooled connections first, then refused dials
		for _, st := range []*RedisStore{a, b} {
			token, ok, err := st.Lock(ctx, "refresh:x", lockHeld)
			if !errors.Is(err, ErrUnavailable) || ok || token != "" {
				t.Errorf("Lock() with Redis down = (%q, %v, %v), want (\"\", false, ErrUnavailable)", token, ok, err)
			}
			if err := st.Unlock(ctx, "refresh:held", held); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Unlock() with Redis down = %v, want ErrUnavailable", err)
			}
			// Reload never answers from the cache, and an outage is not "logged out".
			if got, err := st.Reload(ctx, s.ID); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) || got != nil {
				t.Errorf("Reload() with Redis down = (%v, %v), want (nil, ErrUnavailable)", got, err)
			}
		}
	}

	srv.Restart(t) // empty: the held lock is gone with the data
	waitFor(t, 10*time.Second, "the store to recover", func() bool { return b.Ping(ctx) == nil })
	mustUnlock(t, b, "refresh:held", mustLock(t, b, "refresh:held", lockHeld))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if token, ok, err := a.Lock(ctx, "refresh:y", lockHeld); !errors.Is(err, ErrUnavailable) || ok || token != "" {
		t.Errorf("Lock() after Close = (%q, %v, %v), want (\"\", false, ErrUnavailable)", token, ok, err)
	}
	if err := a.Unlock(ctx, "refresh:y", "t"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Unlock() after Close = %v, want ErrUnavailable", err)
	}
	if _, err := a.Reload(ctx, s.ID); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Reload() after Close = %v, want ErrUnavailable", err)
	}
}

// TestOPS10_RedisReloadBypassesCache: instance B has a session cached;
// instance A stores a refreshed version. Before B has heard of it (here B's
// invalidation subscription is refused, so it never does), B.Get still
// answers from its cache, but B.Reload returns the new version at once and
// puts it in B's cache, so B.Get returns it too.
func TestOPS10_RedisReloadBypassesCache(t *testing.T) {
	srv := redistest.Start(t)
	// A publishes as a user that may; B (the default user) may not subscribe.
	srv.Do(t, "ACL", "SETUSER", "writer", "on", ">writer-password", "~*", "&*", "+@all")
	srv.Do(t, "ACL", "SETUSER", "default", "resetchannels")
	clock := newFakeClock() // frozen: B trusts its cached copy (for up to a second)
	a := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}, Username: "writer", Password: "writer-password", Now: clock.Now})
	b := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}, Now: clock.Now})
	ctx := t.Context()

	s := newTestSession(t, NewID(), clock.Now(), 8*time.Hour, 30*time.Minute)
	s.AccessToken, s.RefreshToken = "at-1", "rt-1"
	mustRedisPut(t, a, s)
	v1 := mustRedisGet(t, b, s.ID)
	if b.subscribed() {
		t.Fatal("B is subscribed although its user may not subscribe; the test needs it not to hear invalidations")
	}
	if again, err := b.Reload(ctx, s.ID); err != nil || again != v1 {
		t.Errorf("Reload() of an unchanged session = (%p, %v), want the cached pointer %p (its Cache slot is kept)", again, err, v1)
	}

	r := v1.Clone()
	r.AccessToken, r.RefreshToken, r.RefreshedAt = "at-2", "rt-2", clock.Now().Add(123456789*time.Nanosecond)
	mustRedisPut(t, a, r)
	if got := mustRedisGet(t, b, s.ID); got != v1 {
		t.Fatalf("B.Get() after A's Put = version %d, want B's cached version 1 (the test needs B not to know yet)", got.Version)
	}

	cmds := watchCommands(b)
	got, err := b.Reload(ctx, s.ID)
	if err != nil {
		t.Fatalf("B.Reload() = %v, want the refreshed session", err)
	}
	if got.Version != 2 || got.AccessToken != "at-2" || got.RefreshToken != "rt-2" || !got.RefreshedAt.Equal(r.RefreshedAt) {
		t.Errorf("B.Reload() = version %d, tokens %q/%q, refreshed %v; want 2, at-2/rt-2, %v",
			got.Version, got.AccessToken, got.RefreshToken, got.RefreshedAt, r.RefreshedAt)
	}
	if !got.ExpiresAt.Equal(s.ExpiresAt) {
		t.Errorf("B.Reload().ExpiresAt = %v, want the original %v", got.ExpiresAt, s.ExpiresAt)
	}
	if blobKey, _ := keysOf(b, s.ID); cmds.count("get "+blobKey) != 1 {
		t.Errorf("B.Reload() sent %q, want one GET of the session", cmds.all())
	}
	cmds.reset()
	if again := mustRedisGet(t, b, s.ID); again != got {
		t.Errorf("B.Get() after Reload = version %d (%p), want the reloaded session (%p)", again.Version, again, got)
	}
	if n := len(cmds.all()); n != 0 {
		t.Errorf("B.Get() after Reload sent %q, want none (answered from the refreshed cache)", cmds.all())
	}

	// A session deleted elsewhere: Reload says so, and B's cache forgets it.
	blob, idle := keysOf(a, s.ID)
	srv.Do(t, "DEL", blob, idle) // behind the stores' backs: no invalidation
	if got, err := b.Reload(ctx, s.ID); !errors.Is(err, ErrNotFound) || got != nil {
		t.Errorf("B.Reload() of a deleted session = (%v, %v), want (nil, ErrNotFound)", got, err)
	}
	wantRedisNotFound(t, b, s.ID)
	if got, err := b.Reload(ctx, ""); !errors.Is(err, ErrNotFound) || got != nil {
		t.Errorf("Reload(\"\") = (%v, %v), want (nil, ErrNotFound)", got, err)
	}
}

// TestOPS10_RedisReloadEnforcesExpiry: Reload is Get without the cache, so
// it still ends a session that is past its absolute end or idle timeout.
func TestOPS10_RedisReloadEnforcesExpiry(t *testing.T) {
	srv := redistest.Start(t)
	clock := newFakeClock()
	st := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}, Now: clock.Now})
	ctx := t.Context()
	idle := newTestSession(t, NewID(), clock.Now(), 8*time.Hour, 10*time.Minute)
	short := newTestSession(t, NewID(), clock.Now(), 20*time.Minute, 0)
	mustRedisPut(t, st, idle)
	mustRedisPut(t, st, short)
	clock.Advance(9 * time.Minute)
	if _, err := st.Reload(ctx, idle.ID); err != nil {
		t.Fatalf("Reload() within the idle timeout = %v", err)
	}
	clock.Advance(19 * time.Minute) // 10 min after the last access; the short one has ended
	for name, s := range map[string]*Session{"idle": idle, "past its end": short} {
		if got, err := st.Reload(ctx, s.ID); !errors.Is(err, ErrNotFound) || got != nil {
			t.Errorf("Reload(%s) = (%v, %v), want (nil, ErrNotFound)", name, got, err)
		}
	}
}

// TestOPS10_RedisRefreshPutKeepsLifetime: a Put of a refreshed Clone (same
// ID, next Version) publishes the invalidation, so another instance that
// trusts its cached copy for a minute drops it and reads the new version; and
// the session keeps its absolute end, in the blob and in every TTL.
func TestOPS10_RedisRefreshPutKeepsLifetime(t *testing.T) {
	srv := redistest.Start(t)
	clock := newFakeClock()
	a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}, Now: clock.Now})
	waitSubscribed(t, a)
	waitSubscribed(t, b)
	const lifetime = 8 * time.Hour
	s := newTestSession(t, NewID(), clock.Now(), lifetime, 30*time.Minute)
	s.Claims["sid"] = "op-sid"
	s.AccessToken, s.RefreshToken = "at-1", "rt-1"
	putAndWaitDelivered(t, a, s, b)
	mustRedisGet(t, b, s.ID) // cached on B, trusted for LocalCacheTTL (1m)

	clock.Advance(30 * time.Second)
	r := mustRedisGet(t, a, s.ID).Clone()
	r.AccessToken, r.RefreshToken, r.RefreshedAt = "at-2", "rt-2", clock.Now()
	putAndWaitDelivered(t, a, r, b) // fails unless B receives the invalidation
	got := mustRedisGet(t, b, s.ID)
	if got.Version != 2 || got.RefreshToken != "rt-2" || !got.RefreshedAt.Equal(r.RefreshedAt) || !got.ExpiresAt.Equal(s.ExpiresAt) {
		t.Errorf("B.Get() after the refresh = version %d, rt %q, refreshed %v, expires %v; want 2, rt-2, %v, %v",
			got.Version, got.RefreshToken, got.RefreshedAt, got.ExpiresAt, r.RefreshedAt, s.ExpiresAt)
	}

	remaining := lifetime - 30*time.Second
	blob, idle := keysOf(a, s.ID)
	for k, want := range map[string]time.Duration{
		blob: remaining, idle: remaining,
		// The indexes keep their TTL from the first Put: not extended.
		a.subIndexKey(s.Issuer, s.Subject): lifetime,
		a.sidIndexKey(s.Issuer, "op-sid"):  lifetime,
	} {
		pttl, _ := srv.Do(t, "PTTL", k).(int64)
		if got := time.Duration(pttl) * time.Millisecond; got > want || got < want-5*time.Second {
			t.Errorf("PTTL %s after the refresh = %v, want ≈ %v (never extended)", k, got, want)
		}
	}
}

// TestRedisStoreRefreshedAtRoundTrip: RefreshedAt survives the encrypted
// JSON in Redis to another instance to the nanosecond, and stays absent from
// the blob until the first refresh.
func TestRedisStoreRefreshedAtRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}})
	refreshed := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 5*3600))
	s := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
	s.RefreshedAt = refreshed
	mustRedisPut(t, a, s)
	got := mustRedisGet(t, b, s.ID) // cold on B: decrypted from Redis
	if !got.RefreshedAt.Equal(refreshed) {
		t.Errorf("RefreshedAt on another instance = %v, want %v", got.RefreshedAt, refreshed)
	}
	if c := got.Clone(); !c.RefreshedAt.Equal(refreshed) {
		t.Errorf("Clone().RefreshedAt = %v, want %v", c.RefreshedAt, refreshed)
	}

	never := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
	mustRedisPut(t, a, never)
	if got := mustRedisGet(t, b, never.ID); !got.RefreshedAt.IsZero() {
		t.Errorf("RefreshedAt of a session never refreshed = %v, want zero", got.RefreshedAt)
	}
	blob, _ := keysOf(a, never.ID)
	raw, _ := srv.Do(t, "GET", blob).(string)
	plaintext, ok := a.keys.open(blob, []byte(raw))
	if !ok {
		t.Fatal("the stored blob does not open")
	}
	body, _, err := a.packer.inflate(plaintext)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		t.Fatal(err)
	}
	if _, ok := fields["refreshed_at"]; ok {
		t.Errorf("blob of a session never refreshed has refreshed_at: %s", fields["refreshed_at"])
	}
}

// TestLO08_RedisDeleteMatchingCreatedBefore: a back-channel logout ends only
// the sessions created before its token was issued, on every instance; a
// session created after it (a new login) survives, stays in the subject and
// sid indexes, and a later logout still finds it.
func TestLO08_RedisDeleteMatchingCreatedBefore(t *testing.T) {
	srv := redistest.Start(t)
	t0 := time.Now().Truncate(time.Second)
	a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}})
	waitSubscribed(t, a)
	waitSubscribed(t, b)
	ctx := t.Context()
	sessions := createdBeforeFixture(t, t0)
	for _, s := range sessions {
		mustRedisPut(t, a, s)
		mustRedisGet(t, b, s.ID) // cached on the other instance
	}
	wantLeft := func(step string, want ...int) {
		t.Helper()
		left := map[int]bool{}
		for _, i := range want {
			left[i] = true
		}
		for i, s := range sessions {
			for name, st := range map[string]*RedisStore{"deleting instance": b, "other instance": a} {
				if left[i] {
					if _, err := st.Get(ctx, s.ID); err != nil {
						t.Errorf("%s: session %d (created %v) on the %s: Get() = %v, want it kept", step, i, s.CreatedAt.Sub(t0), name, err)
					}
					continue
				}
				waitFor(t, time.Second, step+": a deleted session to be gone on the "+name, func() bool {
					_, err := st.Get(ctx, s.ID)
					return errors.Is(err, ErrNotFound)
				})
			}
		}
	}
	member := func(s *Session) string { h := hashID(s.ID); return encodeHash(&h) }
	wantIndex := func(key string, want ...*Session) {
		t.Helper()
		got := map[string]bool{}
		for _, m := range srv.Do(t, "SMEMBERS", key).([]any) {
			got[m.(string)] = true
		}
		if len(got) != len(want) {
			t.Errorf("index %s has %d members, want %d", key, len(got), len(want))
		}
		for _, s := range want {
			if !got[member(s)] {
				t.Errorf("index %s does not name session created at %v, which is still alive", key, s.CreatedAt.Sub(t0))
			}
		}
	}

	bound := t0.Add(5 * time.Minute)
	n, err := b.DeleteMatching(ctx, Match{Issuer: "A", Subject: "alice", CreatedBefore: bound})
	if err != nil || n != 2 {
		t.Fatalf("DeleteMatching(alice, before +5m) = %d, %v; want 2, nil", n, err)
	}
	wantLeft("after the bounded logout", 2, 3, 4, 5)
	wantIndex(a.subIndexKey("A", "alice"), sessions[2], sessions[3])
	wantIndex(a.sidIndexKey("A", "s-new"), sessions[2])
	wantIndex(a.sidIndexKey("A", "s-3"), sessions[3])
	if n, err := a.DeleteMatching(ctx, Match{Issuer: "A", Subject: "alice", CreatedBefore: bound}); err != nil || n != 0 {
		t.Errorf("replayed DeleteMatching(alice, before +5m) = %d, %v; want 0, nil", n, err)
	}
	if n, err := a.DeleteMatching(ctx, Match{Issuer: "A", SID: "s-new", CreatedBefore: bound}); err != nil || n != 0 {
		t.Errorf("DeleteMatching(sid of the new login, before +5m) = %d, %v; want 0, nil", n, err)
	}
	wantIndex(a.subIndexKey("A", "alice"), sessions[2], sessions[3])
	wantIndex(a.sidIndexKey("A", "s-new"), sessions[2])

	// Later logouts, without the bound, still find the survivors through both indexes.
	if n, err := a.DeleteMatching(ctx, Match{Issuer: "A", SID: "s-new"}); err != nil || n != 1 {
		t.Errorf("DeleteMatching(sid of the new login) = %d, %v; want 1, nil", n, err)
	}
	wantLeft("after the logout of the new login by sid", 3, 4, 5)
	if n, err := b.DeleteMatching(ctx, Match{Issuer: "A", Subject: "alice"}); err != nil || n != 1 {
		t.Errorf("DeleteMatching(alice) = %d, %v; want 1, nil", n, err)
	}
	wantLeft("after the unbounded logout", 4, 5)
}

// A session deleted while another instance refreshed it is not brought back by the
// refresh's write (a logout must stay a logout).
func TestSES06_RedisUpdateNeverResurrects(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedisPair(t, RedisOptions{Addrs: []string{srv.Addr()}})
	ctx := t.Context()
	s := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
	if err := a.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	got, err := a.Reload(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	refreshed := got.Clone()
	refreshed.AccessToken = "new"
	if err := b.Delete(ctx, s.ID); err != nil { // the logout, on the other instance
		t.Fatal(err)
	}
	if err := a.Update(ctx, refreshed); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update after Delete = %v, want ErrNotFound", err)
	}
	if _, err := b.Reload(ctx, s.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the deleted session is back: %v", err)
	}
	// While it exists, Update stores the new version.
	s2 := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
	_ = a.Put(ctx, s2)
	c := s2.Clone()
	c.AccessToken = "new"
	if err := a.Update(ctx, c); err != nil {
		t.Fatalf("Update of a live session: %v", err)
	}
	if got, _ := b.Reload(ctx, s2.ID); got == nil || got.AccessToken != "new" {
		t.Errorf("Update not visible: %+v", got)
	}
}
