package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	clusterSize         = 3
	clusterSlots        = 16384
	clusterNodeTimeout  = 2000 // ms
	clusterReadyTimeout = 30 * time.Second
	redisCLITimeout     = 60 * time.Second
)

// Cluster is a Redis Cluster of three masters without replicas on 127.0.0.1, with the 16384
// slots split as redis-cli splits them (0-5460, 5461-10922, 10923-16383).
type Cluster struct {
	nodes []*Server
}

// StartCluster starts three redis-server nodes (cluster-enabled, cluster-node-timeout 2000)
// on free ports whose bus ports (port+10000) are free too, joins them with "redis-cli
// --cluster create" when redis-cli is installed (by hand with CLUSTER ADDSLOTSRANGE,
// SET-CONFIG-EPOCH and MEET otherwise) and returns when every node reports cluster_state:ok.
// Options apply to every node. Everything is stopped when the test ends.
func StartCluster(tb testing.TB, opts ...Option) *Cluster {
	tb.Helper()
	cfg := newConfig(opts)
	bin := serverBinary(tb)
	c := &Cluster{}
	for i := range clusterSize {
		n := newServer(tb, fmt.Sprintf("cluster node %d", i+1), bin, cfg.password, cfg.args)
		n.render = func() string {
			return dataConfig(n, cfg.password, "") + fmt.Sprintf(
				"cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout %d\n", clusterNodeTimeout)
		}
		c.nodes = append(c.nodes, n)
	}
	if err := startAll(c.nodes, true); err != nil {
		tb.Fatalf("redistest: StartCluster: %v", err)
	}
	cli := ""
	if !cfg.noRedisCLI {
		cli = redisCLI()
	}
	var err error
	if cli != "" {
		err = c.createWithCLI(cli, cfg.password)
	} else {
		err = c.createByHand()
	}
	if err != nil {
		tb.Fatalf("redistest: StartCluster: %v", err)
	}
	if err := c.waitOK(clusterReadyTimeout); err != nil {
		tb.Fatalf("redistest: StartCluster: %v", err)
	}
	return c
}

// redisCLI is the path of redis-cli, or "".
func redisCLI() string {
	if p, err := exec.LookPath("redis-cli"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/redis-cli"); err == nil {
		return "/usr/bin/redis-cli"
	}
	return ""
}

func (c *Cluster) createWithCLI(cli, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), redisCLITimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Env = os.Environ()
	if password != "" {
		cmd.Env = append(cmd.Env, "REDISCLI_AUTH="+password) // not on the command line
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("redis-cli --cluster create: %w\n%s", err, tail(string(out), 40))
	}
	return nil
}

// createByHand does what redis-cli --cluster create does.
func (c *Cluster) createByHand() error {
	per := clusterSlots / len(c.nodes)
	for i, n := range c.nodes {
		lo, hi := i*per, (i+1)*per-1
		if i == len(c.nodes)-1 {
			hi = clusterSlots - 1
		}
		v, err := n.TryDo("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi))
		if err != nil {
			return fmt.Errorf("%s: CLUSTER ADDSLOTSRANGE: %w", n, err)
		}
		if _, ok := v.(RespError); ok { // before Redis 7.0
			args := []string{"CLUSTER", "ADDSLOTS"}
			for s := lo; s <= hi; s++ {
				args = append(args, strconv.Itoa(s))
			}
			v, err = n.TryDo(args...)
			if err != nil {
				return fmt.Errorf("%s: CLUSTER ADDSLOTS: %w", n, err)
			}
		}
		if v != "OK" {
			return fmt.Errorf("%s: assigning slots %d-%d = %v", n, lo, hi, v)
		}
		// Distinct epochs, so the nodes need not resolve a collision after they meet.
		if v, err := n.TryDo("CLUSTER", "SET-CONFIG-EPOCH", strconv.Itoa(i+1)); err != nil || v != "OK" {
			return fmt.Errorf("%s: CLUSTER SET-CONFIG-EPOCH = %v, %v", n, v, err)
		}
	}
	// Every pair meets, rather than waiting for gossip to introduce the others.
	for i, a := range c.nodes {
		for _, b := range c.nodes[i+1:] {
			v, err := a.TryDo("CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(b.Port()))
			if err != nil || v != "OK" {
				return fmt.Errorf("%s: CLUSTER MEET %s = %v, %v", a, b, v, err)
			}
		}
	}
	return nil
}

// Addrs are the nodes' addresses, the seeds of a cluster client.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes are the three nodes, in the order of their slot ranges.
func (c *Cluster) Nodes() []*Server { return slices.Clone(c.nodes) }

// WaitOK waits up to 30 s until every node runs, reports cluster_state:ok with all slots
// served, and sees the other nodes connected; for instance after a Restart of a node.
func (c *Cluster) WaitOK(tb testing.TB) {
	tb.Helper()
	if err := c.waitOK(clusterReadyTimeout); err != nil {
		tb.Fatalf("redistest: Cluster.WaitOK: %v", err)
	}
}

func (c *Cluster) waitOK(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := c.ok()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, n := range c.nodes {
				fmt.Fprintf(&logs, "--- %s log (last 10 lines):\n%s\n", n, n.LogTail(10))
			}
			return fmt.Errorf("cluster not ok after %v: %w\n%s", timeout, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) ok() error {
	for _, n := range c.nodes {
		info, err := n.info("CLUSTER", "INFO")
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", n, err)
		}
		want := map[string]string{
			"cluster_state":          "ok",
			"cluster_slots_assigned": strconv.Itoa(clusterSlots),
			"cluster_slots_ok":       strconv.Itoa(clusterSlots),
			"cluster_known_nodes":    strconv.Itoa(len(c.nodes)),
		}
		for k, w := range want {
			if info[k] != w {
				return fmt.Errorf("%s: CLUSTER INFO %s:%s, want %s", n, k, info[k], w)
			}
		}
		nodes, err := n.clusterNodes()
		if err != nil {
			return err
		}
		for _, cn := range nodes {
			if cn.link != "connected" || slices.ContainsFunc(cn.flags, func(f string) bool {
				return f == "handshake" || f == "fail" || f == "fail?" || f == "noaddr"
			}) {
				return fmt.Errorf("%s: CLUSTER NODES: %s flags %v link %s", n, cn.addr, cn.flags, cn.link)
			}
		}
	}
	return nil
}

// NodeForKey is the node that serves key's hash slot (CLUSTER KEYSLOT, CLUSTER SLOTS).
func (c *Cluster) NodeForKey(tb testing.TB, key string) *Server {
	tb.Helper()
	n := c.anyRunning(tb)
	v := n.Do(tb, "CLUSTER", "KEYSLOT", key)
	slot, ok := v.(int64)
	if !ok {
		tb.Fatalf("redistest: CLUSTER KEYSLOT %q = %v", key, v)
	}
	return c.NodeForSlot(tb, int(slot))
}

// NodeForSlot is the node that serves slot, as CLUSTER SLOTS says.
func (c *Cluster) NodeForSlot(tb testing.TB, slot int) *Server {
	tb.Helper()
	n := c.anyRunning(tb)
	v := n.Do(tb, "CLUSTER", "SLOTS")
	for _, r := range list(v) {
		e := list(r)
		if len(e) < 3 {
			continue
		}
		lo, _ := e[0].(int64)
		hi, _ := e[1].(int64)
		if int64(slot) < lo || int64(slot) > hi {
			continue
		}
		owner := list(e[2])
		if len(owner) < 2 {
			break
		}
		ip, _ := owner[0].(string)
		port, _ := owner[1].(int64)
		addr := ip + ":" + strconv.FormatInt(port, 10)
		for _, cn := range c.nodes {
			if cn.Addr() == addr {
				return cn
			}
		}
		tb.Fatalf("redistest: CLUSTER SLOTS names %s for slot %d, which is not a node of this cluster", addr, slot)
	}
	tb.Fatalf("redistest: CLUSTER SLOTS on %s: no node serves slot %d: %v", n, slot, v)
	return nil
}

func (c *Cluster) anyRunning(tb testing.TB) *Server {
	tb.Helper()
	for _, n := range c.nodes {
		if n.Running() {
			return n
		}
	}
	tb.Fatalf("redistest: no cluster node is running")
	return nil
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id    string
	addr  string // ip:port, without @bus
	flags []string
	link  string
}

func (s *Server) clusterNodes() ([]clusterNode, error) {
	v, err := s.TryDo("CLUSTER", "NODES")
	if err != nil {
		return nil, fmt.Errorf("%s: CLUSTER NODES: %w", s, err)
	}
	str, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("%s: CLUSTER NODES = %v", s, v)
	}
	return parseClusterNodes(str)
}

// parseClusterNodes parses "<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent>
// <pong-recv> <config-epoch> <link-state> <slot> ..." lines.
func parseClusterNodes(s string) ([]clusterNode, error) {
	var nodes []clusterNode
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, errors.New("CLUSTER NODES: short line: " + line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		nodes = append(nodes, clusterNode{id: f[0], addr: addr, flags: strings.Split(f[2], ","), link: f[7]})
	}
	return nodes, nil
}
