package session

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/redistest"
)

// TestRedisStoreSentinelAuth: with sentinels that require a password, a store without
// SentinelPassword cannot reach the master (every call fails with ErrUnavailable and the
// error says why); with it, sessions work.
func TestRedisStoreSentinelAuth(t *testing.T) {
	t.Parallel()
	sn := redistest.StartSentinel(t, "guarded", redistest.WithSentinelPassword("sentinel-pw"), redistest.WithPassword("data-pw"))
	ctx := t.Context()
	s := newTestSession(t, NewID(), time.Now(), time.Hour, 30*time.Minute)

	without := newRedisTestStore(t, RedisOptions{Addrs: sn.SentinelAddrs(), MasterName: sn.MasterName(), Password: "data-pw"})
	err := without.Put(ctx, s)
	if err == nil || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Put() without the sentinel password = %v, want ErrUnavailable", err)
	}
	t.Logf("without the sentinel password: %v", err)
	if msg := err.Error(); !strings.Contains(strings.ToLower(msg), "auth") {
		t.Errorf("the error %q does not say that the sentinels need authentication", msg)
	}
	if strings.Contains(err.Error(), "sentinel-pw") || strings.Contains(err.Error(), "data-pw") {
		t.Errorf("the error %q holds a password", err)
	}

	wrong := newRedisTestStore(t, RedisOptions{Addrs: sn.SentinelAddrs(), MasterName: sn.MasterName(), Password: "data-pw", SentinelPassword: "wrong"})
	if err := wrong.Put(ctx, s); err == nil {
		t.Fatal("Put() with a wrong sentinel password succeeded")
	}

	with := newRedisTestStore(t, RedisOptions{Addrs: sn.SentinelAddrs(), MasterName: sn.MasterName(), Password: "data-pw", SentinelPassword: "sentinel-pw"})
	if err := with.Put(ctx, s); err != nil {
		t.Fatalf("Put() with the sentinel password = %v", err)
	}
	wantSameSession(t, mustRedisGet(t, with, s.ID), s)
}
