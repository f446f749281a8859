// Package redistest starts real redis-server processes for tests: a standalone server, a
// Sentinel setup (master, replica, three sentinels) and a three-master Redis Cluster. It
// never emulates Redis (STYLE.md §2, convention 24).
//
// Every process listens on 127.0.0.1 only, on a free port chosen below the kernel's ephemeral
// range (a port taken between choosing and binding it is retried with another), runs in a
// temporary directory of its own that holds its config (redis.conf), its log (redis.log,
// stdout and stderr) and any state, and is stopped with SIGKILL when the test ends, even when
// the test fails half-way through the setup; the directories are then removed. On Linux the
// processes also die with the test binary (Pdeathsig). When a test fails, the end of each
// server's log is logged. A missing redis-server fails the test with the apt-get command that
// installs it; the tests are never skipped.
//
// Data nodes have no persistence (save "", appendonly no), so a Restart after a Stop (a
// crash) comes back empty, unless WithArgs turns persistence on. Do, TryDo, Keys and Info
// speak RESP over a new connection per call, authenticated with WithPassword's password;
// Dial gives an unauthenticated Conn.
//
// Startup takes about 20 ms for Start, 0.1 to 1.3 s for StartSentinel (sentinels that start
// together may retry their links to each other after a second) and 2 s for StartCluster (a new
// cluster master waits 2 s before it calls the cluster ok). Sentinel.Failover takes about
// 3.3 s (down-after-milliseconds is 2000: see the comment on the sentinel settings for why not
// 1000). A Restart of the former master is made a replica of the new one by the sentinels some
// 10 s later, which a second Failover waits for.
//
// # Example
//
//	func TestStoreSurvivesFailover(t *testing.T) {
//		t.Parallel()
//		rs := redistest.StartSentinel(t, "sessions")
//		st := newStore(t, session.RedisOptions{MasterName: rs.MasterName(), Addrs: rs.SentinelAddrs()})
//		put(t, st, "id-1")
//
//		// The write is on the master and, soon, on the replica.
//		if keys := rs.Master().Keys(t, "trustgate:s:*"); len(keys) != 1 {
//			t.Fatalf("master keys = %q, want one session", keys)
//		}
//
//		next := rs.Failover(t) // kills the master; the replica takes over
//		put(t, st, "id-2")     // the client follows the sentinels to the new master
//		if got := next.Do(t, "EXISTS", "trustgate:s:"+hash("id-2")); got != int64(1) {
//			t.Errorf("EXISTS on the new master = %v, want 1", got)
//		}
//	}
//
//	func TestStoreOnCluster(t *testing.T) {
//		c := redistest.StartCluster(t)
//		st := newStore(t, session.RedisOptions{Addrs: c.Addrs()})
//		put(t, st, "id-1")
//		owner := c.NodeForKey(t, "trustgate:s:"+hash("id-1"))
//		owner.Stop() // the slot's only node is gone
//		// ... the store answers ErrUnavailable; owner.Restart(t); c.WaitOK(t) ...
//	}
//
//	func TestStandalone(t *testing.T) {
//		srv := redistest.Start(t, redistest.WithPassword("pw"))
//		if got := srv.Dial(t).Do(t, "GET", "k"); got != redistest.RespError("NOAUTH Authentication required.") {
//			t.Errorf("GET without AUTH = %v, want NOAUTH", got)
//		}
//		srv.Stop()     // a crash: clients see connection errors
//		srv.Restart(t) // same port, empty
//	}
package redistest
