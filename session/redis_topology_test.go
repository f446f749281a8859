package session

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/redistest"
)

// TestRedisStoreSentinel: sessions survive a Sentinel failover, the store
// follows the new master by itself, and invalidation works through it.
func TestRedisStoreSentinel(t *testing.T) {
	t.Parallel()
	sn := redistest.StartSentinel(t, "trustgate-master")
	opts := RedisOptions{Addrs: sn.SentinelAddrs(), MasterName: sn.MasterName()}
	a, b := newRedisPair(t, opts)
	waitSubscribed(t, a)
	waitSubscribed(t, b)
	ctx := t.Context()

	s := newTestSession(t, NewID(), time.Now(), time.Hour, 30*time.Minute)
	s.Claims["sid"] = "op-sid"
	putAndWaitDelivered(t, a, s, b)
	wantSameSession(t, mustRedisGet(t, b, s.ID), s)
	if keys := sn.Master().Keys(t, a.prefix+"s:*"); len(keys) != 1 {
		t.Fatalf("session keys on the master = %q, want 1", keys)
	}
	wantAllKeysExpire(t, sn.Master())
	// WAIT for the replica: replication is asynchronous, and a failover
	// loses what the replica has not received.
	blob, idle := keysOf(a, s.ID)
	replica := sn.Replica()
	waitFor(t, 5*time.Second, "the replica to have the session", func() bool {
		n, err := replica.TryDo("EXISTS", blob, idle)
		return err == nil && n == int64(2)
	})

	start := time.Now()
	master := sn.Failover(t)
	t.Logf("failover took %v", time.Since(start))
	if master != replica {
		t.Fatalf("new master = %s, want the former replica %s", master, replica)
	}

	// A fresh instance finds the new master through the sentinels.
	c := newRedisTestStore(t, opts)
	start = time.Now()
	waitFor(t, 10*time.Second, "Get through the new master", func() bool {
		got, err := c.Get(ctx, s.ID)
		return err == nil && got.Subject == s.Subject
	})
	t.Logf("first Get succeeded %v after the failover", time.Since(start))
	// The instances that were connected to the old master recover too.
	s2 := mustRedisGet(t, c, s.ID).Clone()
	s2.AccessToken = "after-failover"
	waitFor(t, 10*time.Second, "Put after the failover", func() bool { return a.Put(ctx, s2) == nil })
	if n := master.Do(t, "EXISTS", blob); n != int64(1) {
		t.Errorf("EXISTS on the new master = %v, want 1", n)
	}
	waitSubscribed(t, b)
	waitFor(t, 10*time.Second, "B to read the update", func() bool {
		got, err := b.Get(ctx, s.ID)
		return err == nil && got.AccessToken == "after-failover"
	})
	if ok, err := b.Once(ctx, "after-failover", time.Minute); !ok || err != nil {
		t.Errorf("Once() after failover = %v, %v; want true, nil", ok, err)
	}
	// The refresh lock is on the new master too (OPS-10).
	tok := mustLock(t, a, "refresh:"+s.ID, lockHeld)
	wantLockBusy(t, b, "refresh:"+s.ID, "after the failover, while A holds it")
	mustUnlock(t, a, "refresh:"+s.ID, tok)
	mustUnlock(t, b, "refresh:"+s.ID, mustLock(t, b, "refresh:"+s.ID, lockHeld))
	if got, err := b.Reload(ctx, s.ID); err != nil || got.AccessToken != "after-failover" {
		t.Errorf("Reload() after the failover = (%v, %v), want the updated session", got, err)
	}
	if n, err := a.DeleteMatching(ctx, Match{Issuer: s.Issuer, SID: "op-sid"}); n != 1 || err != nil {
		t.Errorf("DeleteMatching() after failover = %d, %v; want 1, nil", n, err)
	}
	waitFor(t, time.Second, "B to refuse the deleted session", func() bool {
		_, err := b.Get(ctx, s.ID)
		return errors.Is(err, ErrNotFound)
	})
}

// TestRedisStoreCluster runs every operation on a three-master Redis
// Cluster, where a session's keys and its indexes live on different nodes,
// with invalidation between two instances.
func TestRedisStoreCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t)
	opts := RedisOptions{Addrs: cl.Addrs()}
	a, b := newRedisPair(t, opts)
	waitSubscribed(t, a)
	waitSubscribed(t, b)
	ctx := t.Context()

	var sessions []*Session
	for i := range 30 {
		s := newTestSession(t, NewID(), time.Now(), time.Hour, 30*time.Minute)
		s.Subject = fmt.Sprintf("user-%d", i%3)
		s.Claims["sid"] = fmt.Sprintf("op-sid-%d", i%5)
		putAndWaitDelivered(t, a, s, b)
		wantSameSession(t, mustRedisGet(t, b, s.ID), s)
		sessions = append(sessions, s)
	}
	nodesWithSessions := 0
	for _, n := range cl.Nodes() {
		if len(n.Keys(t, a.prefix+"s:*")) > 0 {
			nodesWithSessions++
		}
	}
	if nodesWithSessions < 2 {
		t.Errorf("session keys on %d nodes, want them spread over several", nodesWithSessions)
	}
	for _, n := range cl.Nodes() {
		wantAllKeysExpire(t, n)
	}

	// Invalidation: a Delete or an update on A is seen by B at once.
	var worst time.Duration
	for _, s := range sessions[:5] {
		start := time.Now()
		if err := a.Delete(ctx, s.ID); err != nil {
			t.Fatalf("Delete() = %v", err)
		}
		waitFor(t, time.Second, "B to refuse the deleted session", func() bool {
			_, err := b.Get(ctx, s.ID)
			return errors.Is(err, ErrNotFound)
		})
		worst = max(worst, time.Since(start))
	}
	upd := mustRedisGet(t, b, sessions[5].ID).Clone()
	upd.AccessToken = "updated"
	mustRedisPut(t, b, upd)
	waitFor(t, time.Second, "A to see the update", func() bool {
		got, err := a.Get(ctx, upd.ID)
		return err == nil && got.AccessToken == "updated" && got.Version == 2
	})
	t.Logf("cluster invalidation latency: worst %v of 5", worst)

	// DeleteMatching by sid, then by subject, across nodes.
	wantBySID := 0
	for _, s := range sessions[5:] {
		if s.SID() == "op-sid-0" {
			wantBySID++
		}
	}
	if n, err := b.DeleteMatching(ctx, Match{Issuer: "https://idp.example", SID: "op-sid-0"}); n != wantBySID || err != nil {
		t.Errorf("DeleteMatching(sid) = %d, %v; want %d, nil", n, err, wantBySID)
	}
	wantBySubject := 0
	for _, s := range sessions[5:] {
		if s.Subject == "user-1" && s.SID() != "op-sid-0" {
			wantBySubject++
		}
	}
	if n, err := a.DeleteMatching(ctx, Match{Issuer: "https://idp.example", Subject: "user-1"}); n != wantBySubject || err != nil {
		t.Errorf("DeleteMatching(subject) = %d, %v; want %d, nil", n, err, wantBySubject)
	}
	for _, s := range sessions[5:] {
		gone := s.SID() == "op-sid-0" || s.Subject == "user-1"
		for _, st := range []*RedisStore{a, b} {
			if !gone {
				mustRedisGet(t, st, s.ID)
				continue
			}
			waitFor(t, time.Second, "a matched session to be gone on both instances", func() bool {
				_, err := st.Get(ctx, s.ID)
				return errors.Is(err, ErrNotFound)
			})
		}
	}

	for i := range 10 {
		key := fmt.Sprintf("jti-%d", i)
		if ok, err := a.Once(ctx, key, time.Minute); !ok || err != nil {
			t.Errorf("Once(%s) = %v, %v; want true, nil", key, ok, err)
		}
		if ok, err := b.Once(ctx, key, time.Minute); ok || err != nil {
			t.Errorf("replayed Once(%s) on the other instance = %v, %v; want false, nil", key, ok, err)
		}
	}
	// Locks whose keys live on different nodes (OPS-10): one holder across
	// instances, released only by its token.
	lockNodes := map[string]bool{}
	for i := range 10 {
		key := fmt.Sprintf("refresh:cluster-%d", i)
		lockNodes[cl.NodeForKey(t, a.lockKey(key)).Addr()] = true
		tok := mustLock(t, a, key, lockHeld)
		wantLockBusy(t, b, key, "while A holds it")
		mustUnlock(t, b, key, "not-the-token")
		wantLockBusy(t, b, key, "after Unlock with a wrong token")
		mustUnlock(t, a, key, tok)
		mustUnlock(t, b, key, mustLock(t, b, key, lockHeld))
	}
	if len(lockNodes) < 2 {
		t.Errorf("lock keys on %d nodes, want them spread over several", len(lockNodes))
	}
	checkLockSingleWinner(t, 3, a, b)
	// Reload reads past B's cache on whichever node holds the session.
	r := mustRedisGet(t, a, sessions[6].ID).Clone()
	r.RefreshToken, r.RefreshedAt = "rt-cluster", time.Now()
	mustRedisPut(t, a, r)
	if got, err := b.Reload(ctx, r.ID); err != nil || got.RefreshToken != "rt-cluster" || !got.RefreshedAt.Equal(r.RefreshedAt) {
		t.Errorf("Reload() on the cluster = (%v, %v), want the refreshed session", got, err)
	}
	if err := a.Ping(ctx); err != nil {
		t.Errorf("Ping() = %v", err)
	}
}
