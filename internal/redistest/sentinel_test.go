package redistest

import (
	"slices"
	"testing"
	"time"
)

func TestSentinelReplicationAndFailover(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := StartSentinel(t, "sessions")
	t.Logf("StartSentinel took %v", time.Since(start))

	if got := s.MasterName(); got != "sessions" {
		t.Errorf("MasterName() = %q, want sessions", got)
	}
	if got := s.SentinelAddrs(); len(got) != 3 || len(slices.Compact(slices.Sorted(slices.Values(got)))) != 3 {
		t.Errorf("SentinelAddrs() = %q, want 3 distinct addresses", got)
	}
	m, r := s.Master(), s.Replica()
	if m == r || m != s.Nodes()[0] {
		t.Fatalf("Master() = %v, Replica() = %v, want the first node as master and the other as replica", m, r)
	}
	if got := m.Info(t, "replication")["role"]; got != "master" {
		t.Errorf("master INFO role = %q, want master", got)
	}

	// A write on the master reaches the replica, which refuses writes.
	m.Do(t, "SET", "session:1", "alice")
	waitFor(t, 5*time.Second, "the replica has session:1", func() bool { return r.Do(t, "GET", "session:1") == "alice" })
	if got := r.Do(t, "SET", "x", "y"); !isErr(got, "READONLY") {
		t.Errorf("SET on the replica = %#v, want a READONLY error", got)
	}

	start = time.Now()
	next := s.Failover(t)
	t.Logf("Failover took %v", time.Since(start))
	if next == m {
		t.Fatalf("Failover() = the old master %v, want the replica", next)
	}
	if next != r {
		t.Errorf("Failover() = %v, want the former replica %v", next, r)
	}
	if err := m.Ping(); err == nil {
		t.Error("old master Ping() after Failover = nil, want an error")
	}
	if got := next.Info(t, "replication")["role"]; got != "master" {
		t.Errorf("new master INFO role = %q, want master", got)
	}
	if got := next.Do(t, "SET", "session:2", "bob"); got != "OK" {
		t.Errorf("SET on the new master = %#v, want OK", got)
	}
	if got := next.Do(t, "GET", "session:1"); got != "alice" {
		t.Errorf("GET session:1 on the new master = %#v, want alice (replicated before the failover)", got)
	}
	for _, sn := range s.Sentinels() {
		got := list(sn.Do(t, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "sessions"))
		if len(got) != 2 || got[0].(string)+":"+got[1].(string) != next.Addr() {
			t.Errorf("%v: SENTINEL GET-MASTER-ADDR-BY-NAME = %v, want %s", sn, got, next.Addr())
		}
	}
	if got := s.Master(); got != next {
		t.Errorf("Master() after Failover = %v, want %v", got, next)
	}
	if got := s.Replica(); got != m {
		t.Errorf("Replica() after Failover = %v, want the former master %v", got, m)
	}

	// The former master comes back; the sentinels make it a replica of the new master, and a
	// second failover goes back to it.
	m.Restart(t)
	start = time.Now()
	back := s.Failover(t)
	t.Logf("Restart of the former master + second Failover took %v", time.Since(start))
	if back != m {
		t.Errorf("second Failover() = %v, want %v", back, m)
	}
	if got := back.Do(t, "GET", "session:2"); got != "bob" {
		t.Errorf("GET session:2 after the second failover = %#v, want bob", got)
	}
}

func TestSentinelWithPassword(t *testing.T) {
	t.Parallel()
	s := StartSentinel(t, "secured", WithPassword("pw"))
	m, r := s.Master(), s.Replica()
	if got := m.Dial(t).Do(t, "GET", "k"); !isErr(got, "NOAUTH") {
		t.Errorf("GET without AUTH on the master = %#v, want NOAUTH", got)
	}
	m.Do(t, "SET", "k", "v")
	waitFor(t, 5*time.Second, "the replica has k", func() bool { return r.Do(t, "GET", "k") == "v" })
	// Sentinels answer without a password.
	if got := s.Sentinels()[0].Dial(t).Do(t, "PING"); got != "PONG" {
		t.Errorf("sentinel PING = %#v, want PONG", got)
	}
}

func TestSentinelWithSentinelPassword(t *testing.T) {
	t.Parallel()
	s := StartSentinel(t, "guarded", WithSentinelPassword("sentinel-pw"))
	sn := s.Sentinels()[0]
	if got := sn.Dial(t).Do(t, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "guarded"); !isErr(got, "NOAUTH") {
		t.Errorf("sentinel command without AUTH = %#v, want NOAUTH", got)
	}
	if got := s.Master(); got != s.Nodes()[0] {
		t.Errorf("Master() = %s, want %s", got, s.Nodes()[0])
	}
	// The data nodes need no password.
	if got := s.Master().Dial(t).Do(t, "PING"); got != "PONG" {
		t.Errorf("master PING = %#v, want PONG", got)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not after %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
