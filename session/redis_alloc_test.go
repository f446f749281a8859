//go:build !race

package session

// Compiled without the race detector only, which changes allocation counts.

import (
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/redistest"
)

func TestRedisStoreWarmGetDoesNotAllocate(t *testing.T) {
	srv := redistest.Start(t)
	st := newRedisTestStore(t, RedisOptions{Addrs: []string{srv.Addr()}})
	waitSubscribed(t, st)
	ctx := t.Context()
	withIdle := newTestSession(t, NewID(), time.Now(), time.Hour, 30*time.Minute)
	noIdle := newTestSession(t, NewID(), time.Now(), time.Hour, 0)
	mustRedisPut(t, st, withIdle)
	mustRedisPut(t, st, noIdle)
	for _, s := range []*Session{withIdle, noIdle} {
		mustRedisGet(t, st, s.ID)
		if n := testing.AllocsPerRun(1000, func() { _, _ = st.Get(ctx, s.ID) }); n != 0 {
			t.Errorf("warm Get() (idle timeout %v) allocations = %v, want 0", s.IdleTimeout, n)
		}
	}
}
