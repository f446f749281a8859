package session

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

// Threat model cases (docs/threat-model.md) that belong to the store.

// TestLIM03_LoginStateFloodIsBounded: the store keeps login state (the single-use marks
// of callbacks, Once) and pending CIBA logins (records) for anonymous callers; a flood of
// them stays within the configured caps and their TTLs, and the newest marks still work.
func TestLIM03_LoginStateFloodIsBounded(t *testing.T) {
	clock := newFakeClock()
	const maxOnce, maxRecords = 64, 32
	m := newTestStore(t, MemoryOptions{MaxOnceKeys: maxOnce, MaxRecords: maxRecords, Now: clock.Now})
	ctx := t.Context()
	for i := range 10_000 {
		if _, err := m.Once(ctx, "state:"+strconv.Itoa(i), 10*time.Minute); err != nil {
			t.Fatalf("Once #%d = %v", i, err)
		}
		if n := onceLen(m); n > maxOnce {
			t.Fatalf("after %d callbacks the store remembers %d states, more than MaxOnceKeys %d", i+1, n, maxOnce)
		}
	}
	// The most recent callback is still single use.
	if first, err := m.Once(ctx, "state:9999", 10*time.Minute); err != nil || first {
		t.Errorf("replay of the newest state = %v, %v; want false (still remembered)", first, err)
	}
	// Records (pending CIBA logins) are never evicted while live: the cap refuses new ones
	// with ErrUnavailable instead, and they go when their TTL passes.
	for i := range maxRecords {
		if err := m.PutRecord(ctx, "ciba:"+strconv.Itoa(i), []byte("{}"), time.Minute); err != nil {
			t.Fatalf("PutRecord #%d = %v", i, err)
		}
	}
	if err := m.PutRecord(ctx, "ciba:one-too-many", []byte("{}"), time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Errorf("PutRecord over MaxRecords = %v, want ErrUnavailable", err)
	}
	clock.Advance(time.Minute + time.Second)
	if err := m.PutRecord(ctx, "ciba:after-ttl", []byte("{}"), time.Minute); err != nil {
		t.Errorf("PutRecord after the flood's TTL = %v, want nil (expired records make room)", err)
	}
	// And the state marks expire with their TTL too.
	clock.Advance(10 * time.Minute)
	if first, err := m.Once(ctx, "state:9999", 10*time.Minute); err != nil || !first {
		t.Errorf("Once after the TTL = %v, %v; want true (the mark expired)", first, err)
	}
}

// TestOPS09_StoreExpiryFollowsOneClock: session expiry (absolute and idle), login-state
// marks and CIBA records are all decided on the store's one clock (MemoryOptions.Now), so
// the gateway, which gives the store the same clock, never disagrees with it about what
// has expired.
func TestOPS09_StoreExpiryFollowsOneClock(t *testing.T) {
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{Now: clock.Now})
	ctx := t.Context()
	s := newTestSession(t, NewID(), clock.Now(), time.Hour, 20*time.Minute)
	mustPut(t, m, s)
	if _, err := m.Once(ctx, "state:x", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := m.PutRecord(ctx, "ciba:x", []byte("{}"), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// 29 s later by the store's clock (whatever the wall clock says): all still live.
	clock.Advance(29 * time.Second)
	if _, err := m.Get(ctx, s.ID); err != nil {
		t.Fatalf("Get at +29s = %v", err)
	}
	if _, err := m.GetRecord(ctx, "ciba:x"); err != nil {
		t.Errorf("GetRecord at +29s = %v, want the record", err)
	}
	clock.Advance(2 * time.Second)
	if _, err := m.GetRecord(ctx, "ciba:x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetRecord at +31s = %v, want ErrNotFound (TTL 30s on the store's clock)", err)
	}
	if first, _ := m.Once(ctx, "state:x", 10*time.Minute); first {
		t.Error("a login state mark expired early")
	}
	// Idle: 20 minutes without use on the store's clock ends the session.
	clock.Advance(20 * time.Minute)
	if _, err := m.Get(ctx, s.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after 20m idle = %v, want ErrNotFound", err)
	}
	// Absolute: a session used all the time still ends at ExpiresAt.
	s2 := newTestSession(t, NewID(), clock.Now(), time.Hour, 20*time.Minute)
	mustPut(t, m, s2)
	for range 6 {
		clock.Advance(10 * time.Minute)
		_, _ = m.Get(ctx, s2.ID)
	}
	if _, err := m.Get(ctx, s2.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get at the absolute end = %v, want ErrNotFound", err)
	}
}
