package session

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// coolStore is a memory store with a sweep interval of an hour (its janitor does not run
// during a test: the test calls Sweep), so sessions are packed 30 s after their last use,
// and a settable clock.
func coolStore(t *testing.T) (*MemoryStore, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{SweepInterval: time.Hour, Now: clock.Now})
	return m, clock
}

func isCold(m *MemoryStore, id string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e := m.sessions[id]
	return e != nil && e.hot.Load() == nil && e.packed != nil
}

// A session unused for a sweep interval is packed; Get gives back an equal session, at the
// same version, and keeps sharing that pointer until the next cooling.
func TestMemoryStoreCoolsUnusedSessions(t *testing.T) {
	m, clock := coolStore(t)
	ctx := t.Context()
	s := packSample(t, "alice")
	s.CreatedAt, s.ExpiresAt = clock.Now(), clock.Now().Add(24*time.Hour)
	mustPut(t, m, s)
	used := packSample(t, "bob")
	used.CreatedAt, used.ExpiresAt = clock.Now(), clock.Now().Add(24*time.Hour)
	mustPut(t, m, used)
	want, _ := json.Marshal(s)

	clock.Advance(50 * time.Second)
	m.Get(ctx, used.ID)
	clock.Advance(20 * time.Second)
	m.Sweep()
	if !isCold(m, s.ID) {
		t.Fatal("a session unused for 70 s is still decoded")
	}
	if isCold(m, used.ID) {
		t.Fatal("a session used 20 s ago was packed")
	}
	got, err := m.Get(ctx, s.ID)
	if err != nil {
		t.Fatalf("Get after packing = %v", err)
	}
	if b, _ := json.Marshal(got); string(b) != string(want) || got.ID != s.ID || got.IDToken != s.IDToken || !reflect.DeepEqual(got.Claims, s.Claims) {
		t.Fatalf("Get after packing gave\n %s\nwant\n %s", b, want)
	}
	if err := m.Put(ctx, got); err != errStoredSession {
		t.Errorf("Put of the session Get decoded = %v, want errStoredSession (others may be reading it)", err)
	}
	again, _ := m.Get(ctx, s.ID)
	if again != got {
		t.Error("a second Get decoded the session again instead of sharing the warm pointer")
	}
	if isCold(m, s.ID) {
		t.Error("Get did not make the session warm again")
	}
	checkIndex(t, m)
}

// Update and Put keep working across packing: the version survives, a stale clone is still
// refused, and nothing is lost.
func TestMemoryStoreUpdateAfterCooling(t *testing.T) {
	m, clock := coolStore(t)
	ctx := t.Context()
	s := newTestSession(t, NewID(), clock.Now(), 24*time.Hour, 0)
	mustPut(t, m, s)
	mustPut(t, m, s.Clone()) // version 2
	stale := s.Clone()       // version 1
	clock.Advance(2 * time.Minute)
	m.Sweep()
	if !isCold(m, s.ID) {
		t.Fatal("not packed")
	}
	if err := m.Update(ctx, stale); err != ErrConflict {
		t.Fatalf("Update of a stale clone after packing = %v, want ErrConflict", err)
	}
	cur, err := m.Get(ctx, s.ID)
	if err != nil || cur.Version != 2 {
		t.Fatalf("Get = (%v, %v), want version 2", cur, err)
	}
	next := cur.Clone()
	next.Binding = "verified"
	if err := m.Update(ctx, next); err != nil {
		t.Fatalf("Update of the current clone = %v", err)
	}
	if got, _ := m.Get(ctx, s.ID); got.Version != 3 || got.Binding != "verified" {
		t.Fatalf("after Update: version %d binding %q, want 3 verified", got.Version, got.Binding)
	}
}

// A back-channel logout finds packed sessions by issuer and subject or sid, without leaving
// any behind, and ends no one else's.
func TestMemoryStoreDeleteMatchingFindsPackedSessions(t *testing.T) {
	m, clock := coolStore(t)
	ctx := t.Context()
	mk := func(sub string) *Session {
		s := packSample(t, sub)
		s.CreatedAt, s.ExpiresAt = clock.Now(), clock.Now().Add(24*time.Hour)
		mustPut(t, m, s)
		return s
	}
	a1, a2, b := mk("alice"), mk("alice"), mk("bob")
	other := mk("alice")
	clock.Advance(2 * time.Minute)
	m.Sweep()
	for _, s := range []*Session{a1, a2, b, other} {
		if !isCold(m, s.ID) {
			t.Fatal("not packed")
		}
	}
	if n, err := m.DeleteMatching(ctx, Match{Issuer: "https://op.example", SID: a1.SID()}); err != nil || n != 1 {
		t.Fatalf("DeleteMatching(sid) = (%d, %v), want 1", n, err)
	}
	if n, err := m.DeleteMatching(ctx, Match{Issuer: "https://other.example", Subject: "alice"}); err != nil || n != 0 {
		t.Fatalf("DeleteMatching(another issuer) = (%d, %v), want 0", n, err)
	}
	if n, err := m.DeleteMatching(ctx, Match{Issuer: "https://op.example", Subject: "alice"}); err != nil || n != 2 {
		t.Fatalf("DeleteMatching(subject) = (%d, %v), want 2 (a2 and other)", n, err)
	}
	if _, err := m.Get(ctx, b.ID); err != nil {
		t.Errorf("bob's session was lost: %v", err)
	}
	if m.Len() != 1 {
		t.Errorf("Len = %d, want 1", m.Len())
	}
	checkIndex(t, m)
}

// A packed form that does not decode (a bug) ends that session: Get says not found and the
// entry is gone, never a half-decoded session.
func TestMemoryStoreDamagedPackEndsTheSession(t *testing.T) {
	m, clock := coolStore(t)
	s := packSample(t, "alice")
	s.CreatedAt, s.ExpiresAt = clock.Now(), clock.Now().Add(24*time.Hour)
	mustPut(t, m, s)
	clock.Advance(2 * time.Minute)
	m.Sweep()
	m.mu.RLock()
	e := m.sessions[s.ID]
	m.mu.RUnlock()
	e.packed = []byte{packVersion, packDict, 0xff, 0xff}
	if got, err := m.Get(t.Context(), s.ID); err != ErrNotFound {
		t.Fatalf("Get = (%v, %v), want ErrNotFound", got, err)
	}
	if m.Len() != 0 {
		t.Errorf("Len = %d, want 0: the damaged entry stayed", m.Len())
	}
}

// Gets racing the janitor's packing always see a whole session (run with -race).
func TestMemoryStoreGetsDuringCooling(t *testing.T) {
	m, clock := coolStore(t)
	var ids []string
	for i := range 64 {
		s := packSample(t, "user")
		s.Subject = s.Subject + string(rune('a'+i%26))
		s.IdleTimeout = 0
		s.CreatedAt, s.ExpiresAt = clock.Now(), clock.Now().Add(24*time.Hour)
		mustPut(t, m, s)
		ids = append(ids, s.ID)
	}
	done := make(chan struct{})
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := g; ; i++ {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				s, err := m.Get(t.Context(), ids[i%len(ids)])
				if err != nil || s == nil || s.ID != ids[i%len(ids)] || s.Claims["email"] == nil {
					errs <- fmt.Errorf("Get(%d) = (%v, %v), want the whole session", i%len(ids), s, err)
					return
				}
			}
		}()
	}
	for range 50 {
		clock.Advance(2 * time.Minute)
		m.Sweep()
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("a Get during packing failed: %v", err)
		}
	}
}

// A back-channel logout decides on packed sessions without blocking requests for their
// decoding: Gets of other sessions go on while it runs (run with -race), and a session
// replaced meanwhile (a refresh) is ended too when it still matches.
func TestMemoryStoreDeleteMatchingWhileServing(t *testing.T) {
	m, clock := coolStore(t)
	ctx := t.Context()
	var alice []*Session
	for range 200 {
		s := packSample(t, "alice")
		s.CreatedAt, s.ExpiresAt = clock.Now(), clock.Now().Add(24*time.Hour)
		mustPut(t, m, s)
		alice = append(alice, s)
	}
	bob := packSample(t, "bob")
	bob.CreatedAt, bob.ExpiresAt = clock.Now(), clock.Now().Add(24*time.Hour)
	mustPut(t, m, bob)
	clock.Advance(2 * time.Minute)
	m.Sweep()
	done := make(chan error, 1)
	go func() {
		for range 2000 {
			if s, err := m.Get(ctx, bob.ID); err != nil || s.Subject != "bob" {
				done <- fmt.Errorf("Get(bob) during the logout = (%v, %v)", s, err)
				return
			}
		}
		done <- nil
	}()
	n, err := m.DeleteMatching(ctx, Match{Issuer: "https://op.example", Subject: "alice"})
	if err != nil || n != len(alice) {
		t.Fatalf("DeleteMatching = (%d, %v), want %d", n, err, len(alice))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m.Len() != 1 {
		t.Errorf("Len = %d, want 1 (bob)", m.Len())
	}
	checkIndex(t, m)
}
