package redistest

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCluster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := StartCluster(t)
	t.Logf("StartCluster (redis-cli) took %v", time.Since(start))
	checkCluster(t, c)
}

func TestClusterByHandWithPassword(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := StartCluster(t, withoutRedisCLI(), WithPassword("pw"))
	t.Logf("StartCluster (by hand) took %v", time.Since(start))
	if got := c.Nodes()[0].Dial(t).Do(t, "GET", "k"); !isErr(got, "NOAUTH") {
		t.Errorf("GET without AUTH = %#v, want NOAUTH", got)
	}
	checkCluster(t, c)
}

// checkCluster checks that c is one healthy cluster whose three nodes serve distinct slots, and
// that a node redirects keys it does not serve.
func checkCluster(t *testing.T, c *Cluster) {
	t.Helper()
	nodes := c.Nodes()
	if len(nodes) != 3 || len(c.Addrs()) != 3 {
		t.Fatalf("Nodes() = %v, Addrs() = %v, want 3 each", nodes, c.Addrs())
	}
	for _, n := range nodes {
		info := parseInfo(n.Do(t, "CLUSTER", "INFO").(string))
		if info["cluster_state"] != "ok" || info["cluster_known_nodes"] != "3" || info["cluster_size"] != "3" {
			t.Errorf("%v: CLUSTER INFO state %q known_nodes %q size %q, want ok, 3, 3",
				n, info["cluster_state"], info["cluster_known_nodes"], info["cluster_size"])
		}
	}

	// Who serves which slot, from CLUSTER NODES of the first node.
	owner := map[int]string{} // slot -> address
	for line := range strings.Lines(nodes[0].Do(t, "CLUSTER", "NODES").(string)) {
		f := strings.Fields(line)
		addr, _, _ := strings.Cut(f[1], "@")
		for _, r := range f[8:] {
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			l, _ := strconv.Atoi(lo)
			h, _ := strconv.Atoi(hi)
			for s := l; s <= h; s++ {
				owner[s] = addr
			}
		}
	}
	if len(owner) != 16384 {
		t.Fatalf("CLUSTER NODES assigns %d slots, want 16384", len(owner))
	}

	// One key per node, found by CLUSTER KEYSLOT.
	keyOf := map[string]string{} // address -> key
	for i := 0; len(keyOf) < 3 && i < 1000; i++ {
		key := fmt.Sprintf("session:%d", i)
		slot := int(nodes[0].Do(t, "CLUSTER", "KEYSLOT", key).(int64))
		if _, ok := keyOf[owner[slot]]; !ok {
			keyOf[owner[slot]] = key
		}
	}
	if len(keyOf) != 3 {
		t.Fatalf("keys landed on %d nodes, want 3: %v", len(keyOf), keyOf)
	}
	for _, n := range nodes {
		key, ok := keyOf[n.Addr()]
		if !ok {
			t.Fatalf("no key served by %v; owners: %v", n, keyOf)
		}
		if got := c.NodeForKey(t, key); got != n {
			t.Errorf("NodeForKey(%q) = %v, want %v", key, got, n)
		}
		if got := n.Do(t, "SET", key, "v"); got != "OK" {
			t.Errorf("%v: SET %s = %#v, want OK", n, key, got)
		}
		if got := n.Keys(t, "session:*"); len(got) != 1 || got[0] != key {
			t.Errorf("%v: Keys(session:*) = %q, want [%s]", n, got, key)
		}
		// Every other node redirects the key here.
		slot := nodes[0].Do(t, "CLUSTER", "KEYSLOT", key).(int64)
		for _, other := range nodes {
			if other == n {
				continue
			}
			got := other.Do(t, "SET", key, "w")
			want := RespError(fmt.Sprintf("MOVED %d %s", slot, n.Addr()))
			if got != want {
				t.Errorf("%v: SET %s = %#v, want %#v", other, key, got, want)
			}
		}
	}
}

func TestClusterNodeRestart(t *testing.T) {
	t.Parallel()
	c := StartCluster(t)
	n := c.Nodes()[1]
	n.Restart(t)
	start := time.Now()
	c.WaitOK(t)
	t.Logf("cluster ok %v after a node's Restart", time.Since(start))
	if got := n.Do(t, "CLUSTER", "COUNTKEYSINSLOT", "6000"); got != int64(0) {
		t.Errorf("COUNTKEYSINSLOT 6000 = %#v, want 0", got)
	}
	key := "restart-probe"
	if got := c.NodeForKey(t, key).Do(t, "SET", key, "v"); got != "OK" {
		t.Errorf("SET after the restart = %#v, want OK", got)
	}
}
