package session

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lockHeld is the ttl of the holds in checkLockContract that must not
// expire during the test.
const lockHeld = time.Minute

// mustLock takes the lock key on st and fails the test unless it got it.
func mustLock(tb testing.TB, st Store, key string, ttl time.Duration) string {
	tb.Helper()
	token, ok, err := st.Lock(tb.Context(), key, ttl)
	if err != nil || !ok || token == "" {
		tb.Fatalf("Lock(%q) = (%q, %v, %v), want (a token, true, nil)", key, token, ok, err)
	}
	return token
}

// wantLockBusy fails the test unless Lock reports the lock held elsewhere.
func wantLockBusy(tb testing.TB, st Store, key, why string) {
	tb.Helper()
	token, ok, err := st.Lock(tb.Context(), key, lockHeld)
	if err != nil || ok || token != "" {
		tb.Fatalf("Lock(%q) %s = (%q, %v, %v), want (\"\", false, nil)", key, why, token, ok, err)
	}
}

// mustUnlock releases the lock or fails the test.
func mustUnlock(tb testing.TB, st Store, key, token string) {
	tb.Helper()
	if err := st.Unlock(tb.Context(), key, token); err != nil {
		tb.Fatalf("Unlock(%q) = %v, want nil", key, err)
	}
}

// checkLockContract checks the Lock/Unlock contract of Store on a and b, two
// handles of one store (two gateway instances on one Redis; the same memory
// store twice). expireAfter makes ttl pass for the store; holds taken with
// ttl expire then, holds taken with lockHeld do not.
func checkLockContract(t *testing.T, a, b Store, ttl time.Duration, expireAfter func(time.Duration)) {
	t.Helper()
	const key = "refresh:session-1"

	// One holder at a time, whoever asks, and the lock is not re-entrant.
	tokA := mustLock(t, a, key, lockHeld)
	wantLockBusy(t, b, key, "while A holds it")
	wantLockBusy(t, a, key, "again by its holder")
	// Another key is another lock.
	other := mustLock(t, b, "refresh:session-2", lockHeld)
	mustUnlock(t, b, "refresh:session-2", other)

	// Only the holder's token releases it.
	for _, wrong := range []string{"wrong-token", tokA + "x", tokA[1:], other, ""} {
		mustUnlock(t, b, key, wrong)
		wantLockBusy(t, b, key, "after Unlock with a token that does not hold it")
	}
	mustUnlock(t, a, "refresh:session-3", tokA) // the right token for another key
	wantLockBusy(t, b, key, "after Unlock of another key")

	mustUnlock(t, a, key, tokA)
	tokB := mustLock(t, b, key, lockHeld)
	if tokB == tokA {
		t.Errorf("Lock() after Unlock returned the previous hold's token %q, want a new one", tokA)
	}
	mustUnlock(t, a, key, tokA) // released already: the old token must not release B's hold
	wantLockBusy(t, a, key, "after a second Unlock by the previous holder")
	mustUnlock(t, b, key, tokB)

	// A holder that dies never unlocks: the lock expires after ttl, and the
	// dead holder's late Unlock cannot release the next holder's lock.
	const crash = "refresh:session-crash"
	stale := mustLock(t, a, crash, ttl)
	wantLockBusy(t, b, crash, "before its ttl has passed")
	expireAfter(ttl)
	next := mustLock(t, b, crash, lockHeld)
	if next == stale {
		t.Errorf("Lock() after expiry returned the expired hold's token")
	}
	mustUnlock(t, a, crash, stale) // the stale holder wakes up and releases "its" lock
	wantLockBusy(t, a, crash, "after the stale holder's Unlock (compare-and-delete must keep the new hold)")
	mustUnlock(t, b, crash, next)
	mustUnlock(t, a, crash, mustLock(t, a, crash, lockHeld))

	// Invalid arguments are errors of the caller, never a hold.
	for _, tt := range []struct {
		name string
		key  string
		ttl  time.Duration
	}{
		{"empty key", "", time.Second},
		{"zero ttl", "k", 0},
		{"negative ttl", "k", -time.Second},
	} {
		token, ok, err := a.Lock(t.Context(), tt.key, tt.ttl)
		if err == nil || ok || token != "" || errors.Is(err, ErrUnavailable) {
			t.Errorf("Lock(%s) = (%q, %v, %v), want (\"\", false, a validation error)", tt.name, token, ok, err)
		}
	}
}

// checkLockSingleWinner runs 50 goroutines that all try the same lock at
// once, spread over stores, for rounds rounds, and fails the test unless
// exactly one of each round gets it.
func checkLockSingleWinner(t *testing.T, rounds int, stores ...Store) {
	t.Helper()
	const contenders = 50
	for round := range rounds {
		key := fmt.Sprintf("refresh:contended-%d", round)
		var (
			start  = make(chan struct{})
			wins   atomic.Int32
			errs   atomic.Int32
			tokens sync.Map
			wg     sync.WaitGroup
		)
		for i := range contenders {
			st := stores[i%len(stores)]
			wg.Go(func() {
				<-start
				token, ok, err := st.Lock(t.Context(), key, lockHeld)
				if err != nil {
					errs.Add(1)
					return
				}
				if ok {
					wins.Add(1)
					tokens.Store(token, st)
				}
			})
		}
		close(start)
		wg.Wait()
		if errs.Load() != 0 || wins.Load() != 1 {
			t.Fatalf("round %d: %d of %d concurrent Lock() calls won (%d errors), want exactly 1", round, wins.Load(), contenders, errs.Load())
		}
		tokens.Range(func(token, st any) bool {
			mustUnlock(t, st.(Store), key, token.(string))
			return true
		})
	}
}
