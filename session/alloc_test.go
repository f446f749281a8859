//go:build !race

package session

// Allocation tests are compiled only without the race detector, which changes allocation
// counts; `make test` runs them in a separate pass without -race.

import (
	"testing"
	"time"
)

func TestMemoryStoreGetDoesNotAllocate(t *testing.T) {
	m := newTestStore(t, MemoryOptions{})
	ctx := t.Context()
	s := newTestSession(t, NewID(), time.Now(), time.Hour, 30*time.Minute)
	mustPut(t, m, s)
	missing := NewID()
	tests := []struct {
		name string
		id   string
	}{
		{name: "hit", id: s.ID},
		{name: "miss", id: missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, func() { _, _ = m.Get(ctx, tt.id) }); n != 0 {
				t.Errorf("Get() allocations = %v, want 0", n)
			}
		})
	}
}
