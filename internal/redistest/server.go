package redistest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Bounds of the waits. They are generous: a loaded CI machine with the race detector is slow,
// but a healthy local redis-server answers PING within milliseconds.
const (
	readyTimeout   = 10 * time.Second // a started process answers PING
	restartTimeout = 5 * time.Second  // how long Restart retries a port that is still taken
	pollInterval   = 20 * time.Millisecond
	pingTimeout    = 500 * time.Millisecond // one readiness PING
	logTailLines   = 15
)

const installHint = "install it with: sudo apt-get install -y redis-server (Debian/Ubuntu; it brings redis-tools with redis-cli)"

// errAddrInUse marks a start that failed because the port was taken between choosing and
// binding it; the caller retries with other ports.
var errAddrInUse = errors.New("address already in use")

// Option configures Start, StartSentinel and StartCluster.
type Option func(*config)

type config struct {
	password   string
	sentinelPw string // StartSentinel: requirepass of the sentinels
	args       []string
	noRedisCLI bool // StartCluster: build the cluster by hand even when redis-cli exists
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithPassword sets requirepass (and masterauth, so that replicas authenticate to their
// master) on the data nodes. Server.Do and Server.Keys authenticate with it; Server.Dial does
// not. For StartSentinel the sentinels get "sentinel auth-pass" but need no password
// themselves; for StartCluster redis-cli gets it too.
func WithPassword(pw string) Option { return func(c *config) { c.password = pw } }

// WithSentinelPassword makes the sentinels of StartSentinel require a password (requirepass
// in sentinel.conf; the sentinels authenticate to each other with it). The sentinels'
// Server.Do, Server.TryDo and the helper's own checks authenticate with it; Server.Dial does
// not. It does not apply to the data nodes (see WithPassword).
func WithSentinelPassword(pw string) Option { return func(c *config) { c.sentinelPw = pw } }

// WithArgs appends redis-server command-line arguments, such as
// WithArgs("--maxmemory", "10mb", "--maxmemory-policy", "allkeys-lru"). They apply to the data
// nodes (not to sentinels) and are passed again on Restart.
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// withoutRedisCLI makes StartCluster build the cluster with CLUSTER ADDSLOTSRANGE and CLUSTER
// MEET even when redis-cli is installed, so that the tests cover that path too.
func withoutRedisCLI() Option { return func(c *config) { c.noRedisCLI = true } }

// Server is one redis-server process (a data node or a sentinel) on 127.0.0.1. Its methods are
// safe for concurrent use; the ones that take a testing.TB fail the test and must be called
// from the test's goroutine.
type Server struct {
	name     string // "redis-server", "master", "sentinel 2", ... for messages
	bin      string
	dir      string
	confPath string
	logPath  string
	password string
	args     []string      // after the config file on the command line
	render   func() string // the config file for the current port; used by writeConfig

	mu        sync.Mutex
	port      int
	cmd       *exec.Cmd
	done      chan struct{} // closed when cmd has exited
	logOffset int64         // size of the log when cmd started
}

// serverBinary finds redis-server, or fails the test with the command that installs it.
func serverBinary(tb testing.TB) string {
	tb.Helper()
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	const debian = "/usr/bin/redis-server"
	if _, err := os.Stat(debian); err == nil {
		return debian
	}
	tb.Fatalf("redistest: redis-server not found in PATH or at %s; %s", debian, installHint)
	return ""
}

// newServer creates a stopped Server with its own temporary directory, and registers the
// cleanup that stops it (and prints its log when the test failed). The temporary directory is
// removed after that cleanup, since testing registers its removal first.
func newServer(tb testing.TB, name, bin, password string, args []string) *Server {
	tb.Helper()
	dir := tb.TempDir()
	s := &Server{
		name:     name,
		bin:      bin,
		dir:      dir,
		confPath: filepath.Join(dir, "redis.conf"),
		logPath:  filepath.Join(dir, "redis.log"),
		password: password,
		args:     slices.Clone(args),
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			if tail := s.LogTail(logTailLines); tail != "" {
				tb.Logf("redistest: %s log (last %d lines):\n%s", s, logTailLines, tail)
			}
		}
		s.Stop()
	})
	return s
}

// Start runs a standalone redis-server on a free port of 127.0.0.1, with protected mode off, no
// persistence (save "", appendonly no) and a temporary directory as its working directory,
// where its log (redis.log) and config (redis.conf) are kept. It returns when the server
// answers PING. It is stopped and its directory removed when the test ends. A missing
// redis-server fails the test (it does not skip it).
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	cfg := newConfig(opts)
	s := newServer(tb, "redis-server", serverBinary(tb), cfg.password, cfg.args)
	s.render = func() string { return dataConfig(s, cfg.password, "") }
	if err := startAll([]*Server{s}, false); err != nil {
		tb.Fatalf("redistest: Start: %v", err)
	}
	return s
}

// dataConfig is the config file of a data node; replicaOf is "" or the master's address.
func dataConfig(s *Server, password, replicaOf string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "port %d\n", s.Port())
	b.WriteString("bind 127.0.0.1\nprotected-mode no\ndaemonize no\n")
	fmt.Fprintf(&b, "dir %s\n", quote(s.dir))
	b.WriteString("logfile \"\"\n") // stdout, which is redis.log
	b.WriteString("save \"\"\nappendonly no\n")
	// A replica's first sync starts at once instead of after the 5 s diskless default.
	b.WriteString("repl-diskless-sync-delay 0\n")
	if password != "" {
		fmt.Fprintf(&b, "requirepass %s\nmasterauth %s\n", quote(password), quote(password))
	}
	if replicaOf != "" {
		host, port, _ := strings.Cut(replicaOf, ":")
		fmt.Fprintf(&b, "replicaof %s %s\n", host, port)
	}
	return b.String()
}

// quote makes s one token of a redis config file: a double-quoted string with \\, \" and
// \xHH escapes.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "\\x%02x", c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// startAll gives every server a fresh free port, writes the config files and starts the
// servers in parallel, each until it answers PING. When one of them could not bind its port
// (taken since it was chosen), it stops them all and tries again with new ports. On any other
// failure it stops them all and returns the error.
func startAll(servers []*Server, bus bool) error {
	const attempts = 3
	var err error
	for range attempts {
		for _, s := range servers {
			p, perr := pickPort(bus)
			if perr != nil {
				return perr
			}
			s.setPort(p)
		}
		for _, s := range servers {
			if werr := s.writeConfig(); werr != nil {
				return werr
			}
		}
		errs := make([]error, len(servers))
		var wg sync.WaitGroup
		for i, s := range servers {
			wg.Go(func() { errs[i] = s.launchAndWait(readyTimeout) })
		}
		wg.Wait()
		if err = errors.Join(errs...); err == nil {
			return nil
		}
		for _, s := range servers {
			s.Stop()
		}
		if !errors.Is(err, errAddrInUse) {
			return err
		}
	}
	return fmt.Errorf("no free ports after %d attempts: %w", attempts, err)
}

// writeConfig writes the config file for the current port and removes state a previous
// attempt on another port may have left (a cluster's nodes.conf, an RDB file).
func (s *Server) writeConfig() error {
	for _, f := range []string{"nodes.conf", "dump.rdb"} {
		if err := os.Remove(filepath.Join(s.dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return os.WriteFile(s.confPath, []byte(s.render()), 0o600)
}

func (s *Server) setPort(p int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.port = p
}

// launchAndWait starts the process with the existing config file and waits until it answers
// PING. It wraps errAddrInUse when the process exited because its port was taken.
func (s *Server) launchAndWait(timeout time.Duration) error {
	if err := s.launch(); err != nil {
		return err
	}
	return s.waitReady(timeout)
}

func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("%s: already running", s.nameLocked())
	}
	log, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own descriptor
	st, err := log.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "--- redistest: starting %s on 127.0.0.1:%d at %s ---\n", s.name, s.port, time.Now().Format(time.RFC3339Nano))
	args := append([]string{s.confPath}, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: starting %s: %w", s.nameLocked(), s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done, s.logOffset = cmd, done, st.Size()
	return nil
}

// waitReady polls PING until the process answers PONG, exits, or timeout passes. The answer
// must come from this process (INFO process_id): when the port was taken by another
// redis-server, this one exits with "Address already in use" while the other answers.
func (s *Server) waitReady(timeout time.Duration) error {
	s.mu.Lock()
	cmd, done, offset := s.cmd, s.done, s.logOffset
	s.mu.Unlock()
	if done == nil {
		return fmt.Errorf("%s: not running", s)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-done:
			log := s.logSince(offset)
			err := fmt.Errorf("%s: redis-server exited during startup; log:\n%s", s, tail(log, logTailLines))
			if strings.Contains(log, "Address already in use") {
				err = fmt.Errorf("%w: %w", errAddrInUse, err)
			}
			s.reap()
			return err
		default:
		}
		if last = s.ownPing(pid); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no PONG within %v (last error: %v); log:\n%s", s, timeout, last, s.LogTail(logTailLines))
		}
		time.Sleep(pollInterval)
	}
}

// ownPing checks that the process pid answers PING on the server's port. Each command has
// pingTimeout, so that a foreign listener that never answers does not hold up waitReady.
func (s *Server) ownPing(pid string) error {
	v, err := s.tryDo(pingTimeout, "PING")
	if err != nil {
		return err
	}
	if v != "PONG" {
		return fmt.Errorf("PING = %v, want PONG", v)
	}
	v, err = s.tryDo(pingTimeout, "INFO", "server")
	if err != nil {
		return err
	}
	str, _ := v.(string)
	if got := parseInfo(str)["process_id"]; got != pid {
		return fmt.Errorf("the port answers for process %q, not for redis-server %s", got, pid)
	}
	return nil
}

// reap forgets a process that has exited by itself.
func (s *Server) reap() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		select {
		case <-s.done:
			s.cmd, s.done = nil, nil
		default:
		}
	}
}

// String is the server's role and address, for messages.
func (s *Server) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nameLocked()
}

func (s *Server) nameLocked() string { return fmt.Sprintf("%s 127.0.0.1:%d", s.name, s.port) }

// Addr is "127.0.0.1:PORT". It stays the same across Stop and Restart.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port()) }

// Port is the TCP port. A cluster node's bus port is Port()+10000.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// Password is the password the server requires ("" for none).
func (s *Server) Password() string { return s.password }

// Dir is the server's working directory: its config (redis.conf), log (redis.log) and, for a
// cluster node, nodes.conf. It is removed when the test ends.
func (s *Server) Dir() string { return s.dir }

// Running reports whether the process has been started and has not exited.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Stop kills the process with SIGKILL, as a crash would, and waits until it has exited.
// Nothing is saved. It is idempotent, and Restart starts the server again.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill() // fails only when it has already exited
	<-done
}

// Restart stops the server if it runs (as Stop does) and starts it again on the same port,
// with the same directory and config file (as the sentinels may have rewritten it), and waits
// until it answers PING. Without persistence a data node comes back empty; a cluster node
// rejoins the cluster through its nodes.conf (see Cluster.WaitOK).
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	deadline := time.Now().Add(restartTimeout)
	for {
		err := s.launchAndWait(readyTimeout)
		if err == nil {
			return
		}
		if !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			tb.Fatalf("redistest: Restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Do runs one command on a new connection (authenticated when the server has a password) and
// returns the reply: a string (simple or bulk string), an int64, a []any, nil (a null reply)
// or a RespError (an error reply, which does not fail the test). A connection or protocol
// error fails the test. Each command has a 10 s deadline.
func (s *Server) Do(tb testing.TB, args ...string) any {
	tb.Helper()
	v, err := s.TryDo(args...)
	if err != nil {
		tb.Fatalf("redistest: %s: %s: %v", s, commandName(args), err)
	}
	return v
}

// TryDo is Do without the testing.TB: connection and protocol errors are returned (error
// replies are still a RespError value with a nil error). Safe to call from any goroutine.
func (s *Server) TryDo(args ...string) (any, error) {
	return s.tryDo(commandTimeout, args...)
}

func (s *Server) tryDo(timeout time.Duration, args ...string) (any, error) {
	c, err := dial(s.Addr(), s.password, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.do(args...)
}

// Ping returns nil when the server answers PING with PONG (after AUTH when it has a
// password), and the error otherwise.
func (s *Server) Ping() error {
	v, err := s.TryDo("PING")
	if err != nil {
		return err
	}
	if v != "PONG" {
		return fmt.Errorf("PING = %v, want PONG", v)
	}
	return nil
}

// Dial opens a connection that is not authenticated, for tests of the protocol itself (AUTH,
// MULTI, errors). It is closed when the test ends.
func (s *Server) Dial(tb testing.TB) *Conn {
	tb.Helper()
	c, err := dial(s.Addr(), "", commandTimeout)
	if err != nil {
		tb.Fatalf("redistest: dialing %s: %v", s, err)
	}
	tb.Cleanup(c.Close)
	return c
}

// Keys returns the keys matching pattern (KEYS pattern), sorted.
func (s *Server) Keys(tb testing.TB, pattern string) []string {
	tb.Helper()
	v := s.Do(tb, "KEYS", pattern)
	a, ok := v.([]any)
	if !ok {
		tb.Fatalf("redistest: %s: KEYS %q = %#v, want an array", s, pattern, v)
	}
	keys := make([]string, 0, len(a))
	for _, k := range a {
		str, ok := k.(string)
		if !ok {
			tb.Fatalf("redistest: %s: KEYS %q returned %#v, want strings", s, pattern, k)
		}
		keys = append(keys, str)
	}
	slices.Sort(keys)
	return keys
}

// Info returns the fields of INFO section (such as "replication" or "server") as a map.
func (s *Server) Info(tb testing.TB, section string) map[string]string {
	tb.Helper()
	m, err := s.info("INFO", section)
	if err != nil {
		tb.Fatalf("redistest: %s: INFO %s: %v", s, section, err)
	}
	return m
}

// info runs a command that answers "field:value" lines (INFO, CLUSTER INFO).
func (s *Server) info(args ...string) (map[string]string, error) {
	v, err := s.TryDo(args...)
	if err != nil {
		return nil, err
	}
	str, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("reply %#v, want a bulk string", v)
	}
	return parseInfo(str), nil
}

func parseInfo(s string) map[string]string {
	m := map[string]string{}
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// LogTail returns the last n lines of the server's log (all its runs).
func (s *Server) LogTail(n int) string { return tail(s.logSince(0), n) }

func (s *Server) logSince(offset int64) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if offset > int64(len(b)) {
		offset = 0
	}
	return string(b[offset:])
}

func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := bytes.Split([]byte(s), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
