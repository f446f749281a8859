package session

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestOPS10_MemoryLock: the refresh lock of the memory store has one holder
// at a time, is released only by its holder's token, and expires after its
// ttl when the holder never releases it (threat model OPS-10).
func TestOPS10_MemoryLock(t *testing.T) {
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{Now: clock.Now})
	checkLockContract(t, m, m, 2*time.Second, func(d time.Duration) {
		clock.Advance(d - time.Nanosecond)
		wantLockBusy(t, m, "refresh:session-crash", "a nanosecond before its ttl has passed")
		clock.Advance(time.Nanosecond)
	})
}

// TestOPS10_MemoryLockSingleWinner: of 50 goroutines that ask for the same
// lock at once, exactly one gets it.
func TestOPS10_MemoryLockSingleWinner(t *testing.T) {
	m := newTestStore(t, MemoryOptions{})
	checkLockSingleWinner(t, 50, m)
}

// TestMemoryStoreLockBound: at MaxLocks held locks, expired ones make room;
// a live lock is never dropped to make room (that would let two holders
// refresh at once): Lock fails instead.
func TestMemoryStoreLockBound(t *testing.T) {
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{MaxLocks: 4, Now: clock.Now})
	ctx := t.Context()
	for i := range 2 {
		mustLock(t, m, fmt.Sprintf("long-%d", i), time.Hour)
		mustLock(t, m, fmt.Sprintf("short-%d", i), time.Second)
	}
	token, ok, err := m.Lock(ctx, "one-too-many", time.Second)
	if !errors.Is(err, ErrUnavailable) || ok || token != "" {
		t.Errorf("Lock() with MaxLocks live locks = (%q, %v, %v), want (\"\", false, ErrUnavailable)", token, ok, err)
	}
	for i := range 2 {
		wantLockBusy(t, m, fmt.Sprintf("long-%d", i), "after a refused Lock at the bound")
		wantLockBusy(t, m, fmt.Sprintf("short-%d", i), "after a refused Lock at the bound")
	}
	// A lock already in the table can be retaken at the bound once it expired.
	clock.Advance(time.Second)
	mustLock(t, m, "short-0", time.Second)
	// A new key finds room: the expired short-1 is dropped, the live ones stay.
	mustLock(t, m, "one-too-many", time.Second)
	if n := lockLen(m); n != 4 {
		t.Errorf("locks held = %d, want 4 (the bound)", n)
	}
	for _, k := range []string{"long-0", "long-1", "short-0", "one-too-many"} {
		wantLockBusy(t, m, k, "after room was made")
	}
}

// TestMemoryStoreLockJanitor: the janitor drops expired locks and keeps live
// ones.
func TestMemoryStoreLockJanitor(t *testing.T) {
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{SweepInterval: time.Millisecond, Now: clock.Now})
	for i := range 100 {
		mustLock(t, m, fmt.Sprintf("short-%d", i), time.Minute)
	}
	mustLock(t, m, "live", time.Hour)
	clock.Advance(2 * time.Minute)
	waitFor(t, 5*time.Second, "the janitor to drop the expired locks", func() bool { return lockLen(m) == 1 })
	wantLockBusy(t, m, "live", "after the sweep")
}

// TestMemoryStoreReload: the memory store has no cache, so Reload answers
// as Get: the session stored now, ErrNotFound when absent or expired.
func TestMemoryStoreReload(t *testing.T) {
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{Now: clock.Now})
	ctx := t.Context()
	s := newTestSession(t, NewID(), clock.Now(), time.Hour, 0)
	mustPut(t, m, s)
	if got, err := m.Reload(ctx, s.ID); err != nil || got != s {
		t.Errorf("Reload() = (%p, %v), want (%p, nil)", got, err, s)
	}
	s2 := s.Clone()
	s2.AccessToken = "refreshed"
	mustPut(t, m, s2)
	if got, err := m.Reload(ctx, s.ID); err != nil || got != s2 || got.Version != 2 {
		t.Errorf("Reload() after Put = (%p, %v), want the new version (%p, nil)", got, err, s2)
	}
	if got, err := m.Reload(ctx, NewID()); !errors.Is(err, ErrNotFound) || got != nil {
		t.Errorf("Reload(unknown) = (%v, %v), want (nil, ErrNotFound)", got, err)
	}
	clock.Advance(time.Hour)
	if got, err := m.Reload(ctx, s.ID); !errors.Is(err, ErrNotFound) || got != nil {
		t.Errorf("Reload(expired) = (%v, %v), want (nil, ErrNotFound)", got, err)
	}
}

// TestOPS10_MemoryRefreshKeepsLifetime: a Put of a refreshed Clone replaces
// the tokens, records RefreshedAt and keeps the absolute end of the session.
func TestOPS10_MemoryRefreshKeepsLifetime(t *testing.T) {
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{Now: clock.Now})
	ctx := t.Context()
	s := newTestSession(t, NewID(), clock.Now(), 8*time.Hour, 0)
	s.AccessToken, s.RefreshToken = "at-1", "rt-1"
	mustPut(t, m, s)
	clock.Advance(2 * time.Hour)
	r := s.Clone()
	r.AccessToken, r.RefreshToken, r.RefreshedAt = "at-2", "rt-2", clock.Now()
	mustPut(t, m, r)
	got, err := m.Get(ctx, s.ID)
	if err != nil || got.Version != 2 || got.RefreshToken != "rt-2" || !got.RefreshedAt.Equal(clock.Now()) {
		t.Fatalf("Get() after the refresh = (%+v, %v), want version 2 with rt-2 refreshed now", got, err)
	}
	clock.Advance(6*time.Hour - time.Nanosecond)
	if _, err := m.Get(ctx, s.ID); err != nil {
		t.Errorf("Get() just before the original end = %v, want the session", err)
	}
	clock.Advance(time.Nanosecond)
	if _, err := m.Get(ctx, s.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get() at the original end = %v, want ErrNotFound (a refresh must not extend the lifetime)", err)
	}
}

// TestLO08_MemoryDeleteMatchingCreatedBefore: a back-channel logout ends
// only the sessions created before its token was issued; a session created
// after it (a new login) survives, and a later logout still finds it.
func TestLO08_MemoryDeleteMatchingCreatedBefore(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{Now: clock.Now})
	sessions := createdBeforeFixture(t, t0)
	for _, s := range sessions {
		mustPut(t, m, s)
	}
	wantLeft := func(step string, want ...int) {
		t.Helper()
		left := map[int]bool{}
		for _, i := range want {
			left[i] = true
		}
		for i, s := range sessions {
			_, err := m.Get(ctx, s.ID)
			if kept := err == nil; kept != left[i] {
				t.Errorf("%s: session %d (created %v) kept = %v, want %v", step, i, s.CreatedAt.Sub(t0), kept, left[i])
			}
		}
	}
	bound := t0.Add(5 * time.Minute)
	n, err := m.DeleteMatching(ctx, Match{Issuer: "A", Subject: "alice", CreatedBefore: bound})
	if err != nil || n != 2 {
		t.Fatalf("DeleteMatching(alice, before +5m) = %d, %v; want 2, nil", n, err)
	}
	wantLeft("after the bounded logout", 2, 3, 4, 5)
	// Replayed: nothing older is left.
	if n, err := m.DeleteMatching(ctx, Match{Issuer: "A", Subject: "alice", CreatedBefore: bound}); err != nil || n != 0 {
		t.Errorf("replayed DeleteMatching(alice, before +5m) = %d, %v; want 0, nil", n, err)
	}
	if n, err := m.DeleteMatching(ctx, Match{Issuer: "A", SID: "s-new", CreatedBefore: bound}); err != nil || n != 0 {
		t.Errorf("DeleteMatching(sid of the new login, before +5m) = %d, %v; want 0, nil", n, err)
	}
	if n, err := m.DeleteMatching(ctx, Match{Issuer: "A", SID: "s-new"}); err != nil || n != 1 {
		t.Errorf("DeleteMatching(sid of the new login) = %d, %v; want 1, nil", n, err)
	}
	wantLeft("after the logout of the new login by sid", 3, 4, 5)
	if n, err := m.DeleteMatching(ctx, Match{Issuer: "A", Subject: "alice"}); err != nil || n != 1 {
		t.Errorf("DeleteMatching(alice) = %d, %v; want 1, nil", n, err)
	}
	wantLeft("after the unbounded logout", 4, 5)
}

// createdBeforeFixture returns sessions for the CreatedBefore tests, created
// around t0+5m:
//
//	0, 1  alice, created at t0 and t0+1m (before the bound)
//	2     alice, sid s-new, created at t0+10m (a new login)
//	3     alice, created at exactly t0+5m (not before it)
//	4     bob, created at t0 (another subject)
//	5     alice of issuer B, created at t0 (another issuer)
func createdBeforeFixture(tb testing.TB, t0 time.Time) []*Session {
	tb.Helper()
	mk := func(iss, sub, sid string, created time.Duration) *Session {
		s := newTestSession(tb, NewID(), t0.Add(created), 24*time.Hour, 0)
		s.Issuer, s.Subject = iss, sub
		s.Claims = map[string]any{"sid": sid}
		return s
	}
	return []*Session{
		mk("A", "alice", "s-1", 0),
		mk("A", "alice", "s-2", time.Minute),
		mk("A", "alice", "s-new", 10*time.Minute),
		mk("A", "alice", "s-3", 5*time.Minute),
		mk("A", "bob", "s-4", 0),
		mk("B", "alice", "s-5", 0),
	}
}

// lockLen returns the number of locks the memory store holds, live or
// expired.
func lockLen(m *MemoryStore) int {
	m.lockMu.Lock()
	defer m.lockMu.Unlock()
	return len(m.locks)
}

func TestSES06_MemoryUpdateNeverResurrects(t *testing.T) {
	m := NewMemoryStore(MemoryOptions{})
	t.Cleanup(func() { _ = m.Close() })
	ctx := t.Context()
	s := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
	if err := m.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	c := s.Clone()
	c.AccessToken = "new"
	_ = m.Delete(ctx, s.ID)
	if err := m.Update(ctx, c); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update after Delete = %v, want ErrNotFound", err)
	}
	if m.Len() != 0 {
		t.Error("the deleted session is back")
	}
	// A stale clone (the session changed since it was read) is refused too.
	s2 := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
	_ = m.Put(ctx, s2)
	stale := s2.Clone()
	fresh := s2.Clone()
	if err := m.Update(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if err := m.Update(ctx, stale); !errors.Is(err, ErrConflict) {
		t.Errorf("Update of a stale clone = %v, want ErrConflict", err)
	}
}
