package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMemoryStoreGetPutDelete(t *testing.T) {
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{Now: clock.Now})
	ctx := t.Context()
	a := newTestSession(t, NewID(), clock.Now(), time.Hour, 0)
	b := newTestSession(t, NewID(), clock.Now(), time.Hour, 0)
	mustPut(t, m, a)
	mustPut(t, m, b)

	if got, err := m.Get(ctx, a.ID); err != nil || got != a {
		t.Errorf("Get(a) = (%p, %v), want (%p, nil)", got, err, a)
	}
	if got, err := m.Get(ctx, b.ID); err != nil || got != b {
		t.Errorf("Get(b) = (%p, %v), want (%p, nil)", got, err, b)
	}
	if got, err := m.Get(ctx, NewID()); !errors.Is(err, ErrNotFound) || got != nil {
		t.Errorf("Get(unknown) = (%v, %v), want (nil, ErrNotFound)", got, err)
	}
	if got, err := m.Get(ctx, ""); !errors.Is(err, ErrNotFound) || got != nil {
		t.Errorf("Get(\"\") = (%v, %v), want (nil, ErrNotFound)", got, err)
	}
	if n := m.Len(); n != 2 {
		t.Errorf("Len() = %d, want 2", n)
	}

	if err := m.Delete(ctx, a.ID); err != nil {
		t.Errorf("Delete(a) = %v, want nil", err)
	}
	if got, err := m.Get(ctx, a.ID); !errors.Is(err, ErrNotFound) || got != nil {
		t.Errorf("Get(a) after Delete = (%v, %v), want (nil, ErrNotFound)", got, err)
	}
	if err := m.Delete(ctx, a.ID); err != nil {
		t.Errorf("Delete(a) again = %v, want nil", err)
	}
	if got, err := m.Get(ctx, b.ID); err != nil || got != b {
		t.Errorf("Get(b) after Delete(a) = (%p, %v), want (%p, nil)", got, err, b)
	}
	if n := m.Len(); n != 1 {
		t.Errorf("Len() = %d, want 1", n)
	}
}

func TestMemoryStorePutReplacesAndBumpsVersion(t *testing.T) {
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{Now: clock.Now})
	ctx := t.Context()
	id := NewID()
	v1 := newTestSession(t, id, clock.Now(), time.Hour, 0)
	v1.Version = 41 // ignored: Put sets it
	mustPut(t, m, v1)
	if v1.Version != 1 {
		t.Errorf("Put(new).Version = %d, want 1", v1.Version)
	}

	v2 := v1.Clone()
	v2.AccessToken = "rotated"
	mustPut(t, m, v2)
	if v2.Version != 2 || v1.Version != 1 {
		t.Errorf("Put(replacement): versions = (old %d, new %d), want (1, 2)", v1.Version, v2.Version)
	}
	got, err := m.Get(ctx, id)
	if err != nil || got != v2 || got.AccessToken != "rotated" {
		t.Errorf("Get() after replace = (%p, %v), want (%p, nil)", got, err, v2)
	}
	if n := m.Len(); n != 1 {
		t.Errorf("Len() after replace = %d, want 1", n)
	}

	// Putting the stored pointer again would mutate a shared session.
	if err := m.Put(ctx, v2); err == nil {
		t.Errorf("Put(stored session) = nil, want an error")
	}
	if v2.Version != 2 {
		t.Errorf("Put(stored session) changed Version to %d, want 2", v2.Version)
	}

	// After Delete, the ID starts over.
	_ = m.Delete(ctx, id)
	v3 := v2.Clone()
	mustPut(t, m, v3)
	if v3.Version != 1 {
		t.Errorf("Put() after Delete: Version = %d, want 1", v3.Version)
	}
}

func TestMemoryStorePutRejectsInvalid(t *testing.T) {
	m := newTestStore(t, MemoryOptions{})
	now := time.Now()
	noExpiry := newTestSession(t, NewID(), now, time.Hour, 0)
	noExpiry.ExpiresAt = time.Time{}
	tests := []struct {
		name string
		s    *Session
	}{
		{name: "nil", s: nil},
		{name: "empty id", s: newTestSession(t, "", now, time.Hour, 0)},
		{name: "zero ExpiresAt", s: noExpiry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := m.Put(t.Context(), tt.s); err == nil {
				t.Errorf("Put() = nil, want an error")
			}
			if n := m.Len(); n != 0 {
				t.Errorf("Len() = %d, want 0", n)
			}
		})
	}
}

func TestSES05_SessionTimeouts(t *testing.T) {
	const (
		lifetime = 8 * time.Hour
		idle     = 30 * time.Minute
	)
	type step struct {
		advance time.Duration // before the Get
		wantOK  bool
	}
	tests := []struct {
		name  string
		idle  time.Duration
		steps []step
	}{
		{name: "fresh", idle: idle, steps: []step{{0, true}}},
		{name: "just inside idle", idle: idle, steps: []step{{idle - time.Second, true}}},
		{name: "idle exceeded", idle: idle, steps: []step{{idle, false}}},
		{name: "idle exceeded long ago", idle: idle, steps: []step{{3 * idle, false}}},
		{name: "each access restarts the idle clock", idle: idle,
			steps: []step{{idle - time.Minute, true}, {idle - time.Minute, true}, {idle - time.Minute, true}, {idle, false}}},
		{name: "activity does not pass the absolute end", idle: idle,
			steps: []step{
				{20 * time.Minute, true}, {20 * time.Minute, true}, {20 * time.Minute, true}, {20 * time.Minute, true},
				{20 * time.Minute, true}, {20 * time.Minute, true}, {20 * time.Minute, true}, {20 * time.Minute, true},
				{20 * time.Minute, true}, {20 * time.Minute, true}, {20 * time.Minute, true}, {20 * time.Minute, true},
				{20 * time.Minute, true}, {20 * time.Minute, true}, {20 * time.Minute, true}, {20 * time.Minute, true},
				{20 * time.Minute, true}, {20 * time.Minute, true}, {20 * time.Minute, true}, {20 * time.Minute, true},
				{20 * time.Minute, true}, {20 * time.Minute, true}, {20 * time.Minute, true}, // 7h40m
				{20*time.Minute - time.Second, true}, // 7h59m59s
				{time.Second, false},                 // 8h
			}},
		{name: "no idle timeout: long pause", idle: 0, steps: []step{{lifetime - time.Second, true}}},
		{name: "no idle timeout: absolute end", idle: 0, steps: []step{{lifetime, false}}},
		{name: "sub-second idle timeout", idle: 100 * time.Millisecond,
			steps: []step{{60 * time.Millisecond, true}, {60 * time.Millisecond, true}, {60 * time.Millisecond, true}, {100 * time.Millisecond, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			m := newTestStore(t, MemoryOptions{Now: clock.Now})
			s := newTestSession(t, NewID(), clock.Now(), lifetime, tt.idle)
			mustPut(t, m, s)
			var elapsed time.Duration
			for i, st := range tt.steps {
				clock.Advance(st.advance)
				elapsed += st.advance
				got, err := m.Get(t.Context(), s.ID)
				if st.wantOK {
					if err != nil || got != s {
						t.Fatalf("step %d: Get() at +%v = (%v, %v), want the session", i, elapsed, got, err)
					}
					continue
				}
				if !errors.Is(err, ErrNotFound) || got != nil {
					t.Fatalf("step %d: Get() at +%v = (%v, %v), want (nil, ErrNotFound)", i, elapsed, got, err)
				}
				// An expired session is removed, and failed Gets do not
				// bring it back, even if the clock is turned back.
				if n := m.Len(); n != 0 {
					t.Errorf("Len() after expiry = %d, want 0", n)
				}
				clock.Advance(-elapsed)
				if got, err := m.Get(t.Context(), s.ID); !errors.Is(err, ErrNotFound) {
					t.Errorf("Get() after expiry with the clock turned back = (%v, %v), want ErrNotFound", got, err)
				}
				return
			}
		})
	}
}

// TestSES05_TimestampsBeyond2038 checks that far-future times neither wrap
// nor overflow (they saturate past year 2262).
func TestSES05_TimestampsBeyond2038(t *testing.T) {
	date := func(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		name      string
		now       time.Time
		expiresAt time.Time
		wantLive  bool
	}{
		{name: "ends 2039", now: date(2038, 6), expiresAt: date(2039, 1), wantLive: true},
		{name: "ended 2039", now: date(2039, 2), expiresAt: date(2039, 1), wantLive: false},
		{name: "ends 2300, beyond int64 ns", now: date(2038, 6), expiresAt: date(2300, 1), wantLive: true},
		{name: "ends 9999", now: date(2038, 6), expiresAt: date(9999, 1), wantLive: true},
		{name: "clock in 2300, ended 2100", now: date(2300, 1), expiresAt: date(2100, 1), wantLive: false},
		{name: "ended 1960", now: date(2038, 6), expiresAt: date(1960, 1), wantLive: false},
		{name: "ended year 1", now: date(2038, 6), expiresAt: date(1, 2), wantLive: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{t: tt.now}
			m := newTestStore(t, MemoryOptions{Now: clock.Now})
			s := newTestSession(t, NewID(), tt.now, time.Hour, 0)
			s.ExpiresAt = tt.expiresAt
			mustPut(t, m, s)
			got, err := m.Get(t.Context(), s.ID)
			if tt.wantLive && (err != nil || got != s) {
				t.Errorf("Get() = (%v, %v), want the session", got, err)
			}
			if !tt.wantLive && !errors.Is(err, ErrNotFound) {
				t.Errorf("Get() = (%v, %v), want ErrNotFound", got, err)
			}
		})
	}
}

func TestMemoryStoreEvictsLeastRecentlyUsed(t *testing.T) {
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{MaxSessions: 3, Now: clock.Now})
	ctx := t.Context()
	ids := make([]string, 5)
	for i := range ids {
		ids[i] = NewID()
	}
	put := func(i int) {
		t.Helper()
		clock.Advance(time.Minute)
		mustPut(t, m, newTestSession(t, ids[i], clock.Now(), time.Hour, 0))
	}
	get := func(i int) error {
		t.Helper()
		clock.Advance(time.Minute)
		_, err := m.Get(ctx, ids[i])
		return err
	}
	put(0)
	put(1)
	put(2)
	if err := get(0); err != nil { // 0 is now the most recently used
		t.Fatalf("Get(0) = %v, want nil", err)
	}
	put(3) // evicts 1, the least recently used
	if n := m.Len(); n != 3 {
		t.Errorf("Len() = %d, want 3", n)
	}
	for i, want := range []bool{true, false, true, true} {
		if err := get(i); (err == nil) != want {
			t.Errorf("Get(%d) = %v, want present %v", i, err, want)
		}
	}
	// Replacing an existing session never evicts.
	clock.Advance(time.Minute)
	mustPut(t, m, newTestSession(t, ids[2], clock.Now(), time.Hour, 0))
	if n := m.Len(); n != 3 {
		t.Errorf("Len() after replace = %d, want 3", n)
	}
	// An expired session is evicted before a live one, however recent.
	clock.Advance(time.Minute)
	short := newTestSession(t, ids[0], clock.Now(), 30*time.Second, 0)
	mustPut(t, m, short)
	clock.Advance(time.Minute) // ids[0] is expired but recently used
	put(4)
	if _, err := m.Get(ctx, ids[3]); err != nil {
		t.Errorf("Get(3) = %v, want present (the expired session goes first)", err)
	}
	if _, err := m.Get(ctx, ids[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(0) = %v, want ErrNotFound", err)
	}
}

func TestMemoryStoreBound(t *testing.T) {
	const limit = 1000
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{MaxSessions: limit, Now: clock.Now})
	ctx := t.Context()
	hot := newTestSession(t, NewID(), clock.Now(), 24*time.Hour, 0)
	mustPut(t, m, hot)
	for i := range 20 * limit {
		clock.Advance(time.Second)
		mustPut(t, m, newTestSession(t, NewID(), clock.Now(), 24*time.Hour, 0))
		if i%10 == 0 { // the hot session is used all the time
			if _, err := m.Get(ctx, hot.ID); err != nil {
				t.Fatalf("Get(hot) after %d puts = %v, want present", i, err)
			}
		}
		if n := m.Len(); n > limit {
			t.Fatalf("Len() = %d after %d puts, want <= %d", n, i+1, limit)
		}
	}
	if n := m.Len(); n != limit {
		t.Errorf("Len() = %d, want %d", n, limit)
	}
	checkIndex(t, m)
}

func TestMemoryStoreSetMaxSessions(t *testing.T) {
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{MaxSessions: 100, Now: clock.Now})
	for range 100 {
		clock.Advance(time.Second)
		mustPut(t, m, newTestSession(t, NewID(), clock.Now(), time.Hour, 0))
	}
	m.SetMaxSessions(10)
	if n := m.Len(); n != 10 {
		t.Errorf("Len() after SetMaxSessions(10) = %d, want 10", n)
	}
	for range 5 {
		mustPut(t, m, newTestSession(t, NewID(), clock.Now(), time.Hour, 0))
	}
	if n := m.Len(); n != 10 {
		t.Errorf("Len() after more puts = %d, want 10", n)
	}
	m.SetMaxSessions(20)
	for range 15 {
		mustPut(t, m, newTestSession(t, NewID(), clock.Now(), time.Hour, 0))
	}
	if n := m.Len(); n != 20 {
		t.Errorf("Len() after SetMaxSessions(20) and 15 puts = %d, want 20", n)
	}
	m.SetMaxSessions(0) // default
	for range 30 {
		mustPut(t, m, newTestSession(t, NewID(), clock.Now(), time.Hour, 0))
	}
	if n := m.Len(); n != 50 {
		t.Errorf("Len() after SetMaxSessions(0) and 30 puts = %d, want 50", n)
	}
	checkIndex(t, m)
}

func TestMemoryStoreOnce(t *testing.T) {
	const ttl = 10 * time.Minute
	type call struct {
		advance time.Duration
		key     string
		want    bool
	}
	long := string(make([]byte, 1<<20)) // 1 MB of NULs: stored as its hash
	tests := []struct {
		name  string
		calls []call
	}{
		{name: "first time", calls: []call{{0, "a", true}}},
		{name: "replay", calls: []call{{0, "a", true}, {0, "a", false}, {time.Minute, "a", false}}},
		{name: "other key", calls: []call{{0, "a", true}, {0, "b", true}, {0, "b", false}}},
		{name: "just before ttl", calls: []call{{0, "a", true}, {ttl - 1, "a", false}}},
		{name: "after ttl", calls: []call{{0, "a", true}, {ttl, "a", true}, {0, "a", false}}},
		{name: "replay does not extend", calls: []call{{0, "a", true}, {ttl / 2, "a", false}, {ttl / 2, "a", true}}},
		{name: "case sensitive", calls: []call{{0, "State", true}, {0, "state", true}}},
		{name: "long key", calls: []call{{0, long, true}, {0, long, false}, {0, long[1:], true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			m := newTestStore(t, MemoryOptions{Now: clock.Now})
			for i, c := range tt.calls {
				clock.Advance(c.advance)
				got, err := m.Once(t.Context(), c.key, ttl)
				if err != nil || got != c.want {
					t.Fatalf("call %d: Once(%.8q) = (%v, %v), want (%v, nil)", i, c.key, got, err, c.want)
				}
			}
		})
	}
}

func TestMemoryStoreOnceRejectsInvalid(t *testing.T) {
	m := newTestStore(t, MemoryOptions{})
	tests := []struct {
		name string
		key  string
		ttl  time.Duration
	}{
		{name: "empty key", key: "", ttl: time.Minute},
		{name: "zero ttl", key: "k", ttl: 0},
		{name: "negative ttl", key: "k", ttl: -time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := m.Once(t.Context(), tt.key, tt.ttl); err == nil || got {
				t.Errorf("Once(%q, %v) = (%v, %v), want (false, error)", tt.key, tt.ttl, got, err)
			}
		})
	}
}

func TestMemoryStoreOnceBound(t *testing.T) {
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{MaxOnceKeys: 4, Now: clock.Now})
	ctx := t.Context()
	once := func(key string, ttl time.Duration) bool {
		t.Helper()
		ok, err := m.Once(ctx, key, ttl)
		if err != nil {
			t.Fatalf("Once(%q) = %v", key, err)
		}
		return ok
	}
	once("expires-soon", time.Minute)
	once("a", time.Hour)
	once("b", 2*time.Hour)
	once("c", 3*time.Hour)
	clock.Advance(2 * time.Minute) // "expires-soon" is expired
	once("d", time.Hour)           // full: the expired key goes
	for _, k := range []string{"a", "b", "c", "d"} {
		if once(k, time.Hour) {
			t.Errorf("Once(%q) = true after eviction of the expired key, want false (still remembered)", k)
		}
	}
	once("e", time.Hour) // full, none expired: "a" expires soonest
	if n := onceLen(m); n != 4 {
		t.Errorf("Once keys = %d, want 4", n)
	}
	if !once("a", time.Hour) {
		t.Errorf("Once(a) = false, want true (a was evicted, it expired soonest)")
	}
	if once("c", time.Hour) {
		t.Errorf("Once(c) = true, want false (c expires late and must be kept)")
	}
}

func TestMemoryStoreJanitorRemovesExpired(t *testing.T) {
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{SweepInterval: time.Millisecond, Now: clock.Now})
	ctx := t.Context()
	live := newTestSession(t, NewID(), clock.Now(), 24*time.Hour, 0)
	mustPut(t, m, live)
	for range 3000 { // more than one sweep batch
		mustPut(t, m, newTestSession(t, NewID(), clock.Now(), time.Hour, 0))
	}
	idle := newTestSession(t, NewID(), clock.Now(), 24*time.Hour, time.Minute)
	mustPut(t, m, idle)
	if _, err := m.Once(ctx, "old", time.Minute); err != nil {
		t.Fatalf("Once() = %v", err)
	}
	if _, err := m.Once(ctx, "new", 24*time.Hour); err != nil {
		t.Fatalf("Once() = %v", err)
	}

	clock.Advance(2 * time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for m.Len() != 1 || onceLen(m) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: Len() = %d, Once keys = %d; want 1, 1 (janitor did not sweep)", m.Len(), onceLen(m))
		}
		time.Sleep(time.Millisecond)
	}
	// The janitor packed the live session (unused for a sweep interval): Get decodes an equal
	// copy.
	if got, err := m.Get(ctx, live.ID); err != nil || got.ID != live.ID || got.Subject != live.Subject || got.Version != live.Version {
		t.Errorf("Get(live) = (%v, %v), want the live session", got, err)
	}
	if ok, _ := m.Once(ctx, "new", time.Hour); ok {
		t.Errorf("Once(new) = true, want false (live key must survive the sweep)")
	}
	checkIndex(t, m)
}

func TestMemoryStoreCloseIdempotent(t *testing.T) {
	m := NewMemoryStore(MemoryOptions{SweepInterval: time.Millisecond})
	for i := range 3 {
		if err := m.Close(); err != nil {
			t.Errorf("Close() #%d = %v, want nil", i+1, err)
		}
	}
	select {
	case <-m.stopped:
	default:
		t.Fatal("Close() returned, but the janitor goroutine has not stopped")
	}
	// Concurrent Close calls all return after the janitor has stopped.
	m2 := NewMemoryStore(MemoryOptions{SweepInterval: time.Millisecond})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_ = m2.Close()
			select {
			case <-m2.stopped:
			default:
				t.Error("concurrent Close() returned before the janitor stopped")
			}
		})
	}
	wg.Wait()
	// The store stays usable after Close.
	s := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
	mustPut(t, m, s)
	if got, err := m.Get(t.Context(), s.ID); err != nil || got != s {
		t.Errorf("Get() after Close = (%v, %v), want the session", got, err)
	}
}

// TestMemoryStoreConcurrent is for -race: every operation at once on a
// small, evicting store with a fast janitor.
func TestMemoryStoreConcurrent(t *testing.T) {
	clock := newFakeClock()
	m := newTestStore(t, MemoryOptions{MaxSessions: 64, MaxOnceKeys: 64, SweepInterval: time.Millisecond, Now: clock.Now})
	ctx := t.Context()
	ids := make([]string, 128)
	for i := range ids {
		ids[i] = NewID()
	}
	// One session that only this test's "versions" workers replace, in a
	// store large enough that it is never evicted.
	big := newTestStore(t, MemoryOptions{Now: clock.Now})
	shared := NewID()
	const workers, iterations = 8, 500

	var wg sync.WaitGroup
	errs := make(chan error, workers*8)
	for w := range workers {
		wg.Go(func() { // readers and writers on the evicting store
			for i := range iterations {
				id := ids[(w*31+i)%len(ids)]
				switch i % 5 {
				case 0, 1:
					if err := m.Put(ctx, newTestSession(t, id, clock.Now(), time.Duration(i%7+1)*time.Minute, time.Minute)); err != nil {
						errs <- fmt.Errorf("Put() = %w", err)
						return
					}
				case 2:
					_ = m.Delete(ctx, id)
				case 3:
					if _, err := m.Once(ctx, strconv.Itoa(i%100), time.Minute); err != nil {
						errs <- fmt.Errorf("Once() = %w", err)
						return
					}
				}
				if s, err := m.Get(ctx, id); err == nil {
					if s.ID != id {
						errs <- fmt.Errorf("Get(%q).ID = %q", id, s.ID)
						return
					}
					var v any = s.Version
					s.Cache.CompareAndSwap(nil, &v)
				} else if !errors.Is(err, ErrNotFound) {
					errs <- fmt.Errorf("Get() = %w", err)
					return
				}
				if m.Len() > 64 {
					errs <- fmt.Errorf("Len() = %d, want <= 64", m.Len())
					return
				}
			}
		})
		wg.Go(func() { // Put on one shared ID: versions must not be lost
			for range iterations {
				s, err := big.Get(ctx, shared)
				if err == nil && s.Subject == "" {
					errs <- errors.New("Get(shared) returned a session without its subject")
					return
				}
				if err := big.Put(ctx, newTestSession(t, shared, clock.Now(), 1000*time.Hour, 0)); err != nil {
					errs <- fmt.Errorf("Put(shared) = %w", err)
					return
				}
			}
		})
	}
	wg.Go(func() { // the clock, the bound and the janitor move too
		for i := range iterations {
			clock.Advance(10 * time.Second)
			if i%50 == 0 {
				m.SetMaxSessions(16 + i%49) // never above 64
			}
		}
		m.SetMaxSessions(64)
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s, err := big.Get(ctx, shared); err != nil {
		t.Errorf("Get(shared) = %v, want nil", err)
	} else if s.Version != workers*iterations {
		t.Errorf("Get(shared).Version after %d concurrent Puts = %d, want %d", workers*iterations, s.Version, workers*iterations)
	}
	checkIndex(t, m)
}

// checkIndex verifies the store's internal invariants: the map and the
// dense lists describe the same entries.
func checkIndex(tb testing.TB, m *MemoryStore) {
	tb.Helper()
	m.mu.RLock()
	if len(m.sessions) != len(m.list) {
		tb.Errorf("len(sessions) = %d, len(list) = %d; want equal", len(m.sessions), len(m.list))
	}
	for i, e := range m.list {
		if e.idx != i || m.sessions[e.id] != e {
			tb.Errorf("list[%d] = {id %q, idx %d}, not indexed consistently", i, e.id, e.idx)
		}
	}
	m.mu.RUnlock()
	m.onceMu.Lock()
	if len(m.once) != len(m.onceList) {
		tb.Errorf("len(once) = %d, len(onceList) = %d; want equal", len(m.once), len(m.onceList))
	}
	for i, e := range m.onceList {
		if m.once[e.key] != i {
			tb.Errorf("onceList[%d] indexed as %d", i, m.once[e.key])
		}
	}
	m.onceMu.Unlock()
}

// onceLen returns the number of remembered Once keys.
func onceLen(m *MemoryStore) int {
	m.onceMu.Lock()
	defer m.onceMu.Unlock()
	return len(m.onceList)
}

func BenchmarkMemoryStoreGet(b *testing.B) {
	m := newTestStore(b, MemoryOptions{})
	ctx := b.Context()
	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = NewID()
		mustPut(b, m, newTestSession(b, ids[i], time.Now(), time.Hour, 30*time.Minute))
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := m.Get(ctx, ids[i%len(ids)]); err != nil {
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
				if _, err := m.Get(ctx, ids[i%len(ids)]); err != nil {
					b.Errorf("Get() = %v", err)
					return
				}
				i += 7
			}
		})
	})
	b.Run("parallel same session", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := m.Get(ctx, ids[0]); err != nil {
					b.Errorf("Get() = %v", err)
					return
				}
			}
		})
	})
}

func BenchmarkMemoryStorePutEvicting(b *testing.B) {
	const limit = 10_000
	m := newTestStore(b, MemoryOptions{MaxSessions: limit})
	ctx := b.Context()
	now := time.Now()
	for range limit {
		mustPut(b, m, newTestSession(b, NewID(), now, time.Hour, 0))
	}
	// Cycle through more IDs than fit, so nearly every Put is of a new ID
	// into a full store and evicts one session.
	sessions := make([]*Session, 8*limit)
	for i := range sessions {
		sessions[i] = newTestSession(b, NewID(), now, time.Hour, 0)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := m.Put(ctx, sessions[i%len(sessions)].Clone()); err != nil {
			b.Fatalf("Put() = %v", err)
		}
		i++
	}
	if n := m.Len(); n != limit {
		b.Fatalf("Len() = %d, want %d", n, limit)
	}
}

func BenchmarkMemoryStoreOnce(b *testing.B) {
	m := newTestStore(b, MemoryOptions{})
	ctx := b.Context()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = NewID()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := m.Once(ctx, keys[i%len(keys)], time.Minute); err != nil {
			b.Fatalf("Once() = %v", err)
		}
		i++
	}
}

// bindIDClaims is a BindID userinfo of the shape in shared/seeds/000.
const bindIDClaims = `{
	"sub": "123e4567-e89b-12d3-a456-426652340000", "auth_time": 1605180698, "nonce": "n-077-RsA2Kh",
	"acr": " ts.bindid.iac.phone_number", "amr": ["ts.bind_id.ama", "ts.bind_id.mfca"],
	"bindid_alias": "username@domain", "email": "", "email_verified": true,
	"phone_number": "+12125556789", "phone_number_verified": true,
	"bindid_info": {
		"capp_first_login_from_authenticating_device": 1605180500,
		"authenticating_device": {"browser_type": "Mobile", "os_type": "iOS", "os_version": "14.1", "browser_version": "Safari"},
		"capp_last_login_from_authenticating_device": 1605180574, "capp_last_login": 1605180577,
		"capp_first_login": 1605180500, "capp_first_confirmed_login": 1605180500,
		"originating_device": {"browser_type": "Chrome", "os_type": "Windows", "os_version": "10", "browser_version": "86.0"}
	},
	"bindid_network_info": {
		"user_registration_time": 1605180411, "user_last_seen": 1605180698, "device_count": 2,
		"authenticating_device_registration_time": 1605180411, "authenticating_device_last_seen": 1605180698,
		"confirmed_capp_count": 1
	}
}`

// BenchmarkMemoryStoreBytesPerSession reports the heap a stored,
// BindID-sized session keeps alive (claims, ID token, access and refresh
// token, and the store's own overhead).
func BenchmarkMemoryStoreBytesPerSession(b *testing.B) {
	m := newTestStore(b, MemoryOptions{MaxSessions: math.MaxInt})
	now := time.Now()
	idToken := "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ." + strings.Repeat("x", 1400) + "." + strings.Repeat("s", 342)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for b.Loop() {
		var claims map[string]any
		if err := json.Unmarshal([]byte(bindIDClaims), &claims); err != nil {
			b.Fatalf("json.Unmarshal() = %v", err)
		}
		s := newTestSession(b, NewID(), now, time.Hour, 30*time.Minute)
		s.Claims = claims
		s.IDToken = strings.Clone(idToken)
		s.AccessToken, s.RefreshToken = NewID(), NewID()
		mustPut(b, m, s)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(m.Len()), "heap-B/session")
}

func TestMemoryStoreDeleteMatching(t *testing.T) {
	ctx := t.Context()
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
			m := newTestStore(t, MemoryOptions{})
			all := []*Session{mk("A", "alice", "s1"), mk("A", "alice", "s2"), mk("A", "bob", "s3"), mk("B", "alice", "s1")}
			for _, s := range all {
				mustPut(t, m, s)
			}
			n, err := m.DeleteMatching(ctx, tt.match)
			if err != nil || n != len(tt.want) {
				t.Fatalf("DeleteMatching() = %d, %v; want %d, nil", n, err, len(tt.want))
			}
			removed := map[int]bool{}
			for _, i := range tt.want {
				removed[i] = true
			}
			for i, s := range all {
				_, err := m.Get(ctx, s.ID)
				if gone := errors.Is(err, ErrNotFound); gone != removed[i] {
					t.Errorf("session %d (%s/%s/%s) gone = %v, want %v", i, s.Issuer, s.Subject, s.SID(), gone, removed[i])
				}
			}
		})
	}
}
