package redistest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Sentinel settings: the master is down after 2 s without an answer, and a failed failover
// attempt is retried after 2 × 3 s, so that a failover takes about 3 s.
//
// down-after-milliseconds must stay well above the sentinels' one-second ping and reconnect
// period (SENTINEL_PING_PERIOD). At a switch-master a sentinel resets the master's link timers
// but may wait up to a second before it connects to the new address (the reconnect throttle
// still counts from its last attempt on the dead master); with 1000 every sentinel can then
// see the new master silent for "1 s", mark it down and start a second, spurious failover,
// which promotes a just-restarted, empty former master and turns the new master, with the
// data, into its replica. That happened in one of about a dozen runs of the tests with 1000.
const (
	sentinelCount     = 3
	sentinelQuorum    = 2
	downAfterMillis   = 2000
	failoverTimeoutMs = 3000

	sentinelReadyTimeout = 20 * time.Second // replica synced, sentinels know each other
	failoverWait         = 30 * time.Second // Failover: master killed -> replica promoted
	agreeTimeout         = 10 * time.Second // Master: the sentinels agree on the master
)

// Sentinel is a master, one replica and three sentinels (quorum 2) monitoring the master
// under a name, all on 127.0.0.1. The sentinels need no password unless WithSentinelPassword
// is given; with WithPassword the data nodes do and the sentinels have "sentinel auth-pass".
type Sentinel struct {
	name      string
	nodes     [2]*Server // the data nodes; nodes[0] was started as the master
	sentinels []*Server

	mu     sync.Mutex
	master *Server // the master the sentinels named last
}

// StartSentinel starts a master, a replica of it and three sentinels (redis-server
// --sentinel) that monitor the master as masterName with down-after-milliseconds 2000 and
// failover-timeout 3000. It returns when the replica is in sync and every sentinel knows the
// master, the replica and the two other sentinels, so that Failover works at once. Options
// apply to the two data nodes, except WithSentinelPassword. Everything is stopped when the test ends.
func StartSentinel(tb testing.TB, masterName string, opts ...Option) *Sentinel {
	tb.Helper()
	if masterName == "" || strings.ContainsAny(masterName, " \t\r\n\"'\\") {
		tb.Fatalf("redistest: StartSentinel: master name %q must be one word", masterName)
	}
	cfg := newConfig(opts)
	bin := serverBinary(tb)
	s := &Sentinel{name: masterName}
	master := newServer(tb, "master", bin, cfg.password, cfg.args)
	replica := newServer(tb, "replica", bin, cfg.password, cfg.args)
	master.render = func() string { return dataConfig(master, cfg.password, "") }
	replica.render = func() string { return dataConfig(replica, cfg.password, master.Addr()) }
	s.nodes = [2]*Server{master, replica}
	s.master = master

	ids := make([]string, sentinelCount)
	for i := range sentinelCount {
		ids[i] = runID()
		sn := newServer(tb, fmt.Sprintf("sentinel %d", i+1), bin, cfg.sentinelPw, []string{"--sentinel"})
		s.sentinels = append(s.sentinels, sn)
	}
	for i, sn := range s.sentinels {
		sn.render = func() string { return s.sentinelConfig(sn, ids, i, cfg.password) }
	}

	// The master first, then its replica, then the three sentinels together, so that nobody
	// connects to a port that is not listening yet: a refused connection is retried only a
	// second later, and sentinels that cannot reach the master for down-after-milliseconds
	// mark it down and start a failover. The sentinel configs name the replica and the other
	// sentinels (known-replica, known-sentinel with fixed IDs), so nobody waits for the 10 s
	// INFO and 2 s hello periods of discovery either.
	for _, group := range [][]*Server{{master}, {replica}, s.sentinels} {
		if err := startAll(group, false); err != nil {
			tb.Fatalf("redistest: StartSentinel: %v", err)
		}
	}
	if err := s.waitHealthy(master, replica, sentinelReadyTimeout); err != nil {
		tb.Fatalf("redistest: StartSentinel: %v\n%s", err, s.sentinelLogs())
	}
	return s
}

// sentinelConfig is the config file of sentinel i; ids are the sentinels' run IDs.
func (s *Sentinel) sentinelConfig(sn *Server, ids []string, i int, password string) string {
	master, replica := s.nodes[0], s.nodes[1]
	var b strings.Builder
	fmt.Fprintf(&b, "port %d\n", sn.Port())
	b.WriteString("bind 127.0.0.1\nprotected-mode no\ndaemonize no\n")
	fmt.Fprintf(&b, "dir %s\n", quote(sn.dir))
	b.WriteString("logfile \"\"\n")
	fmt.Fprintf(&b, "sentinel myid %s\n", ids[i])
	b.WriteString("sentinel resolve-hostnames no\n")
	fmt.Fprintf(&b, "sentinel monitor %s 127.0.0.1 %d %d\n", s.name, master.Port(), sentinelQuorum)
	fmt.Fprintf(&b, "sentinel down-after-milliseconds %s %d\n", s.name, downAfterMillis)
	fmt.Fprintf(&b, "sentinel failover-timeout %s %d\n", s.name, failoverTimeoutMs)
	fmt.Fprintf(&b, "sentinel parallel-syncs %s 1\n", s.name)
	if password != "" {
		fmt.Fprintf(&b, "sentinel auth-pass %s %s\n", s.name, quote(password))
	}
	if sn.password != "" {
		// The sentinels authenticate to each other with their own requirepass.
		fmt.Fprintf(&b, "requirepass %s\n", quote(sn.password))
	}
	fmt.Fprintf(&b, "sentinel known-replica %s 127.0.0.1 %d\n", s.name, replica.Port())
	for j, other := range s.sentinels {
		if j != i {
			fmt.Fprintf(&b, "sentinel known-sentinel %s 127.0.0.1 %d %s\n", s.name, other.Port(), ids[j])
		}
	}
	return b.String()
}

// runID is a random 40-hex-digit sentinel ID.
func runID() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// MasterName is the name the sentinels monitor the master under.
func (s *Sentinel) MasterName() string { return s.name }

// SentinelAddrs are the sentinels' addresses.
func (s *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, sn := range s.sentinels {
		addrs[i] = sn.Addr()
	}
	return addrs
}

// Sentinels are the three sentinel processes (Stop one to test a client's sentinel fallback).
func (s *Sentinel) Sentinels() []*Server { return slices.Clone(s.sentinels) }

// Nodes are the two data nodes, the one started as master first.
func (s *Sentinel) Nodes() []*Server { return slices.Clone(s.nodes[:]) }

// Master is the current master as the running sentinels report it (SENTINEL
// get-master-addr-by-name). It waits up to 10 s for them to agree, as they may not during a
// failover, and panics when they do not (it takes no testing.TB; the panic fails the test and
// the cleanups still stop every process).
func (s *Sentinel) Master() *Server {
	m, err := s.agreedMaster()
	if err != nil {
		panic("redistest: Sentinel.Master: " + err.Error())
	}
	return m
}

// agreedMaster waits up to 10 s until the running sentinels agree on the master.
func (s *Sentinel) agreedMaster() (*Server, error) {
	deadline := time.Now().Add(agreeTimeout)
	for {
		m, err := s.askMaster()
		if err == nil || time.Now().After(deadline) {
			return m, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Replica is the data node that is not the master. It asks the sentinels once and, when they
// cannot answer or disagree, uses the master they named last. After a Failover it is the
// former master, stopped: Restart it, and the sentinels make it a replica of the new master
// within about ten seconds (Failover waits for that before killing the master again).
func (s *Sentinel) Replica() *Server {
	if m, err := s.askMaster(); err == nil {
		return s.other(m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.other(s.master)
}

func (s *Sentinel) other(m *Server) *Server {
	if m == s.nodes[0] {
		return s.nodes[1]
	}
	return s.nodes[0]
}

// askMaster asks every running sentinel for the master's address and returns the data node
// when they all name the same one.
func (s *Sentinel) askMaster() (*Server, error) {
	named := map[string][]string{} // address -> sentinels
	asked := 0
	for _, sn := range s.sentinels {
		if !sn.Running() {
			continue
		}
		asked++
		addr, err := s.masterAddr(sn)
		if err != nil {
			named["error: "+err.Error()] = append(named["error: "+err.Error()], sn.Addr())
			continue
		}
		named[addr] = append(named[addr], sn.Addr())
	}
	if asked == 0 {
		return nil, errors.New("no sentinel is running")
	}
	if len(named) != 1 {
		return nil, fmt.Errorf("the sentinels disagree on master %q: %v", s.name, named)
	}
	for addr := range named {
		for _, n := range s.nodes {
			if n.Addr() == addr {
				s.mu.Lock()
				s.master = n
				s.mu.Unlock()
				return n, nil
			}
		}
		return nil, fmt.Errorf("the sentinels name %s as master %q, which is none of %s, %s", addr, s.name, s.nodes[0], s.nodes[1])
	}
	panic("unreachable")
}

// masterAddr asks one sentinel for the master's address.
func (s *Sentinel) masterAddr(sn *Server) (string, error) {
	v, err := sn.TryDo("SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.name)
	if err != nil {
		return "", err
	}
	a, ok := v.([]any)
	if !ok || len(a) != 2 {
		return "", fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME = %#v", v)
	}
	host, _ := a[0].(string)
	port, _ := a[1].(string)
	return host + ":" + port, nil
}

// Failover kills the current master (as Stop does) and waits up to 30 s until every running
// sentinel names the former replica as master and it accepts a write; it returns the new
// master. Before the kill it waits (up to 20 s) until the replica is in sync and known to all
// sentinels, which matters after a Restart of a former master.
func (s *Sentinel) Failover(tb testing.TB) *Server {
	tb.Helper()
	old, err := s.agreedMaster()
	if err != nil {
		tb.Fatalf("redistest: Failover: %v", err)
	}
	next := s.other(old)
	if !next.Running() {
		tb.Fatalf("redistest: Failover: replica %s is stopped; Restart it first", next)
	}
	if err = s.waitHealthy(old, next, sentinelReadyTimeout); err != nil {
		tb.Fatalf("redistest: Failover: replica not ready to take over: %v\n%s", err, s.sentinelLogs())
	}
	old.Stop()
	deadline := time.Now().Add(failoverWait)
	for {
		err = s.promoted(next)
		if err == nil {
			s.mu.Lock()
			s.master = next
			s.mu.Unlock()
			return next
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: Failover: %s not master %d s after %s was killed: %v\n%s",
				next, int(failoverWait.Seconds()), old, err, s.sentinelLogs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// promoted checks that every running sentinel names n as master, that n says it is a master
// and that it accepts a write.
func (s *Sentinel) promoted(n *Server) error {
	for _, sn := range s.sentinels {
		if !sn.Running() {
			continue
		}
		addr, err := s.masterAddr(sn)
		if err != nil {
			return fmt.Errorf("%s: %w", sn, err)
		}
		if addr != n.Addr() {
			return fmt.Errorf("%s names %s as master", sn, addr)
		}
	}
	v, err := n.TryDo("ROLE")
	if err != nil {
		return err
	}
	if a, ok := v.([]any); !ok || len(a) == 0 || a[0] != "master" {
		return fmt.Errorf("%s: ROLE = %v", n, v)
	}
	const probe = "redistest:failover-probe"
	if v, err := n.TryDo("SET", probe, "1"); err != nil || v != "OK" {
		return fmt.Errorf("%s: SET = %v, %v", n, v, err)
	}
	_, _ = n.TryDo("DEL", probe)
	return nil
}

// waitHealthy waits until replica r is in sync with master m and every running sentinel knows
// m as master, r as its replica and the other running sentinels, all up.
func (s *Sentinel) waitHealthy(m, r *Server, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := s.healthy(m, r)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Sentinel) healthy(m, r *Server) error {
	info, err := r.info("INFO", "replication")
	if err != nil {
		return fmt.Errorf("%s: INFO: %w", r, err)
	}
	if info["role"] != "slave" || info["master_port"] != strconv.Itoa(m.Port()) || info["master_link_status"] != "up" {
		return fmt.Errorf("%s: role:%s master_port:%s master_link_status:%s, want slave of %s with link up",
			r, info["role"], info["master_port"], info["master_link_status"], m)
	}
	for _, sn := range s.sentinels {
		if !sn.Running() {
			continue
		}
		if err := s.sentinelHealthy(sn, m, r); err != nil {
			return fmt.Errorf("%s: %w", sn, err)
		}
	}
	return nil
}

func (s *Sentinel) sentinelHealthy(sn, m, r *Server) error {
	v, err := sn.TryDo("SENTINEL", "MASTER", s.name)
	if err != nil {
		return err
	}
	mf := fields(v)
	if mf["ip"]+":"+mf["port"] != m.Addr() || mf["flags"] != "master" {
		return fmt.Errorf("SENTINEL MASTER: %s:%s flags %q, want %s flags \"master\"", mf["ip"], mf["port"], mf["flags"], m.Addr())
	}

	v, err = sn.TryDo("SENTINEL", "REPLICAS", s.name)
	if err != nil {
		return err
	}
	found := false
	for _, rv := range list(v) {
		f := fields(rv)
		if f["ip"]+":"+f["port"] != r.Addr() {
			continue
		}
		found = true
		// Only the flags: the rest comes from the sentinel's last INFO of the replica, which
		// may be 10 s old (after a Restart, from before the sentinels made it a replica). The
		// leader refreshes it every second once the master is down, before it picks a replica.
		if f["flags"] != "slave" {
			return fmt.Errorf("SENTINEL REPLICAS: %s flags %q, want \"slave\"", r.Addr(), f["flags"])
		}
	}
	if !found {
		return fmt.Errorf("SENTINEL REPLICAS does not list %s", r.Addr())
	}

	v, err = sn.TryDo("SENTINEL", "SENTINELS", s.name)
	if err != nil {
		return err
	}
	seen := map[string]string{} // address -> flags
	for _, ov := range list(v) {
		f := fields(ov)
		seen[f["ip"]+":"+f["port"]] = f["flags"]
	}
	for _, other := range s.sentinels {
		if other == sn || !other.Running() {
			continue
		}
		if flags, ok := seen[other.Addr()]; !ok || flags != "sentinel" {
			return fmt.Errorf("SENTINEL SENTINELS: %s flags %q (listed: %v), want \"sentinel\"", other.Addr(), flags, ok)
		}
	}
	return nil
}

// sentinelLogs are the ends of the sentinels' logs, for failure messages.
func (s *Sentinel) sentinelLogs() string {
	var b strings.Builder
	for _, sn := range s.sentinels {
		fmt.Fprintf(&b, "--- %s log (last 15 lines):\n%s\n", sn, sn.LogTail(15))
	}
	return b.String()
}

// list is v as an array, or nil.
func list(v any) []any {
	a, _ := v.([]any)
	return a
}

// fields turns a flat field/value array (a SENTINEL MASTER entry) into a map.
func fields(v any) map[string]string {
	a := list(v)
	m := make(map[string]string, len(a)/2)
	for i := 0; i+1 < len(a); i += 2 {
		k, _ := a[i].(string)
		switch val := a[i+1].(type) {
		case string:
			m[k] = val
		case int64:
			m[k] = strconv.FormatInt(val, 10)
		}
	}
	return m
}
