package redistest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStartSetGet(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := Start(t)
	t.Logf("Start took %v", time.Since(start))

	if got := s.Addr(); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("Addr() = %q, want 127.0.0.1:PORT", got)
	}
	if got := s.Do(t, "SET", "session:1", "alice"); got != "OK" {
		t.Errorf("SET = %#v, want OK", got)
	}
	if got := s.Do(t, "GET", "session:1"); got != "alice" {
		t.Errorf("GET = %#v, want alice", got)
	}
	if got := s.Do(t, "GET", "missing"); got != nil {
		t.Errorf("GET missing = %#v, want nil", got)
	}
	if got := s.Do(t, "INCR", "session:1"); !isErr(got, "ERR") {
		t.Errorf("INCR on a string = %#v, want an ERR reply", got)
	}
	s.Do(t, "SET", "session:2", "bob")
	s.Do(t, "SET", "other", "x")
	if got, want := s.Keys(t, "session:*"), []string{"session:1", "session:2"}; !slices.Equal(got, want) {
		t.Errorf("Keys(session:*) = %q, want %q", got, want)
	}

	// The conventions: no persistence, loopback only, protected mode off.
	for param, want := range map[string]string{"save": "", "appendonly": "no", "bind": "127.0.0.1", "protected-mode": "no", "dir": s.Dir()} {
		got := s.Do(t, "CONFIG", "GET", param)
		if a := list(got); len(a) != 2 || a[1] != want {
			t.Errorf("CONFIG GET %s = %#v, want %q", param, got, want)
		}
	}
}

func TestStopRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	addr := s.Addr()
	s.Do(t, "SET", "k", "v")

	s.Stop()
	if err := s.Ping(); err == nil {
		t.Fatal("Ping() after Stop = nil, want an error")
	}
	if s.Running() {
		t.Error("Running() after Stop = true, want false")
	}
	s.Stop() // idempotent

	start := time.Now()
	s.Restart(t)
	t.Logf("Restart took %v", time.Since(start))
	if got := s.Addr(); got != addr {
		t.Errorf("Addr() after Restart = %q, want %q", got, addr)
	}
	if err := s.Ping(); err != nil {
		t.Fatalf("Ping() after Restart = %v, want nil", err)
	}
	if got := s.Do(t, "GET", "k"); got != nil {
		t.Errorf("GET k after a crash without persistence = %#v, want nil", got)
	}
	if got := s.Do(t, "DBSIZE"); got != int64(0) {
		t.Errorf("DBSIZE after Restart = %#v, want 0", got)
	}

	// Restart of a running server is a crash and a start.
	s.Do(t, "SET", "k", "v")
	s.Restart(t)
	if got := s.Do(t, "EXISTS", "k"); got != int64(0) {
		t.Errorf("EXISTS k after Restart of a running server = %#v, want 0", got)
	}
}

func TestWithPassword(t *testing.T) {
	t.Parallel()
	const pw = `s3cret "pass" \ word`
	s := Start(t, WithPassword(pw))

	c := s.Dial(t) // not authenticated
	if got := c.Do(t, "SET", "k", "v"); !isErr(got, "NOAUTH") {
		t.Errorf("SET without AUTH = %#v, want a NOAUTH error", got)
	}
	if got := c.Do(t, "AUTH", "wrong"); !isErr(got, "WRONGPASS") {
		t.Errorf("AUTH wrong = %#v, want a WRONGPASS error", got)
	}
	if got := c.Do(t, "AUTH", pw); got != "OK" {
		t.Errorf("AUTH = %#v, want OK", got)
	}
	if got := c.Do(t, "SET", "k", "v"); got != "OK" {
		t.Errorf("SET after AUTH = %#v, want OK", got)
	}
	// Do authenticates by itself.
	if got := s.Do(t, "GET", "k"); got != "v" {
		t.Errorf("Do GET = %#v, want v", got)
	}
	if got := s.Password(); got != pw {
		t.Errorf("Password() = %q, want %q", got, pw)
	}
}

func TestWithArgs(t *testing.T) {
	t.Parallel()
	s := Start(t, WithArgs("--maxmemory", "10mb", "--maxmemory-policy", "allkeys-lru"))
	if got := list(s.Do(t, "CONFIG", "GET", "maxmemory-policy")); len(got) != 2 || got[1] != "allkeys-lru" {
		t.Errorf("CONFIG GET maxmemory-policy = %#v, want allkeys-lru", got)
	}
	s.Restart(t)
	if got := list(s.Do(t, "CONFIG", "GET", "maxmemory")); len(got) != 2 || got[1] != "10485760" {
		t.Errorf("CONFIG GET maxmemory after Restart = %#v, want 10485760", got)
	}
}

func TestCleanupStopsServerAndRemovesDir(t *testing.T) {
	t.Parallel()
	var s *Server
	t.Run("inner", func(t *testing.T) {
		s = Start(t)
		s.Do(t, "SET", "k", "v")
	})
	if s.Running() {
		t.Error("Running() after the test ended = true, want false")
	}
	if err := s.Ping(); err == nil {
		t.Error("Ping() after the test ended = nil, want an error")
	}
	if _, err := os.Stat(s.Dir()); !os.IsNotExist(err) {
		t.Errorf("Stat(Dir()) after the test ended: %v, want not exist", err)
	}
}

func TestStartFailureReportsLogAndStops(t *testing.T) {
	t.Parallel()
	ft := &fakeTB{TB: t}
	ft.run(func() { Start(ft, WithArgs("--no-such-directive", "1")) })
	if !ft.fatal {
		t.Fatal("Start with a bad directive did not fail the test")
	}
	if !strings.Contains(ft.msg, "exited during startup") || !strings.Contains(ft.msg, "no-such-directive") {
		t.Errorf("Start failure message = %q, want the exit and the log naming the directive", ft.msg)
	}
	t.Logf("Start failure message:\n%s", ft.msg)
	ft.cleanup()
}

// isErr reports whether v is an error reply with the given prefix.
func isErr(v any, prefix string) bool {
	e, ok := v.(RespError)
	return ok && e.Prefix() == prefix
}

// fakeTB records Fatalf instead of failing the test, and runs its cleanups on demand.
type fakeTB struct {
	testing.TB // TempDir and anything else not overridden
	mu         sync.Mutex
	fatal      bool
	msg        string
	cleanups   []func()
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = true
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal
}

func (f *fakeTB) Logf(string, ...any) {}

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// run calls fn on a goroutine of its own, as testing does, so Fatalf can end it.
func (f *fakeTB) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

func (f *fakeTB) cleanup() {
	f.mu.Lock()
	fns := f.cleanups
	f.cleanups = nil
	f.mu.Unlock()
	for _, fn := range slices.Backward(fns) {
		fn()
	}
}

func TestRestartWithAOFKeepsData(t *testing.T) {
	t.Parallel()
	s := Start(t, WithArgs("--appendonly", "yes", "--appendfsync", "always"))
	s.Do(t, "SET", "k", "v")
	s.Stop()
	s.Restart(t)
	if got := s.Do(t, "GET", "k"); got != "v" {
		t.Errorf("GET k after a crash with appendfsync always = %#v, want v", got)
	}
}

// A port taken between choosing and binding it is recognised, so startAll can retry; a
// redis-server that already answers on the port is not mistaken for the new one.
func TestLaunchOnTakenPort(t *testing.T) {
	t.Parallel()
	listen := func(t *testing.T, port int) {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	}
	tests := []struct {
		name    string
		cluster bool
		take    func(t *testing.T, port int) // takes port or its bus port
	}{
		{name: "port taken by a listener", take: listen},
		{name: "bus port taken", cluster: true, take: func(t *testing.T, port int) { listen(t, port+clusterBusOffset) }},
		{name: "port taken by another redis-server", take: func(t *testing.T, port int) {
			other := newServer(t, "other redis-server", serverBinary(t), "", nil)
			other.render = func() string { return dataConfig(other, "", "") }
			other.setPort(port)
			if err := other.writeConfig(); err != nil {
				t.Fatal(err)
			}
			if err := other.launchAndWait(readyTimeout); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := pickPort(true)
			if err != nil {
				t.Fatal(err)
			}
			tt.take(t, p)

			s := newServer(t, "redis-server", serverBinary(t), "", nil)
			s.render = func() string {
				c := dataConfig(s, "", "")
				if tt.cluster {
					c += "cluster-enabled yes\n"
				}
				return c
			}
			s.setPort(p)
			if err := s.writeConfig(); err != nil {
				t.Fatal(err)
			}
			err = s.launchAndWait(readyTimeout)
			if !errors.Is(err, errAddrInUse) {
				t.Errorf("launchAndWait() on a taken port = %v, want errAddrInUse", err)
			}
			if s.Running() {
				t.Error("Running() after the failed launch = true, want false")
			}
		})
	}
}
