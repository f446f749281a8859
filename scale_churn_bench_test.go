package trustgate

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// BenchmarkHeapPerSessionStandard is fillStore's heap per session for a user with standard
// claims only (SubjectAse: name, email, locale and a non-ASCII name, as Keycloak, Entra ID or
// Google give them), next to BenchmarkSessionsAtScale's BindID user with the full trust
// profile: the light and the heavy end of what a session holds. 100,000 sessions.
func BenchmarkHeapPerSessionStandard(b *testing.B) {
	_, template := loggedInTemplate(b, oidctest.SubjectAse)
	_, _, perSession := fillStore(b, template, 100_000)
	for b.Loop() { // nothing to time: the figure is the metric
	}
	b.ReportMetric(perSession, "B/session")
	b.ReportMetric(float64(len(template)), "json-B")
}

// BenchmarkSessionChurn runs the memory store at its max_sessions bound while sessions are
// created and expire all the time (DESIGN.md, "Memory": eviction keeps the figures under
// churn), for TRUSTGATE_CHURN (a duration; bench/scale.sh passes 5m): a store bounded at
// 100,000 sessions, filled, then new sessions (copies of a real login's, living 1 to 3
// minutes) at TRUSTGATE_CHURN_RATE a second (default 400, about the logins a second this
// gateway completes on 2 cores: bench/RESULTS.md, "Logins") between warm requests over 1,000
// active sessions, with the janitor running on its real schedule. Every 10 s it prints a "churn:" line (bench/scale reads them): the
// sessions stored, the heap per stored session after a GC, and the window's
// requests per second and p99. A warm request that fails (an active session evicted or
// lost) fails the benchmark.
func BenchmarkSessionChurn(b *testing.B) {
	d, err := time.ParseDuration(os.Getenv("TRUSTGATE_CHURN"))
	if err != nil || d <= 0 {
		b.Skip("set TRUSTGATE_CHURN to a duration (bench/scale.sh does)")
	}
	rate := 400.0
	if v := os.Getenv("TRUSTGATE_CHURN_RATE"); v != "" {
		if rate, err = strconv.ParseFloat(v, 64); err != nil || rate <= 0 {
			b.Fatalf("TRUSTGATE_CHURN_RATE: %q is not a rate", v)
		}
	}
	const bound = 100_000
	g, template := loggedInTemplate(b, oidctest.SubjectBindIDKnown)
	store, ids, _ := fillStore(b, template, bound-1)
	store.SetMaxSessions(bound)
	g.h.store = store
	serve := warmServer(b, g, ids)
	// Every active session is used once before the churn starts, as in production, where
	// they are the ones in use: the store is full, so each new session evicts the one idle the
	// longest, and a session not used since the fill would be a fair victim.
	for i := range ids {
		if err := serve(i); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	start := time.Now()
	windowStart, created := start, 0
	lat := make([]int64, 0, 1<<20)
	for i := 0; ; i++ {
		if float64(created) < rate*time.Since(start).Seconds() {
			s := sessionCopy(b, template, bound+i)
			s.CreatedAt = time.Now()
			s.ExpiresAt = s.CreatedAt.Add(time.Minute + time.Duration(i%120)*time.Second)
			if err := store.Put(ctx, s); err != nil {
				b.Fatal(err)
			}
			created++
			continue
		}
		t0 := time.Now()
		if err := serve(i); err != nil {
			b.Fatalf("after %v of churn an active session was lost: %v", time.Since(start).Round(time.Second), err)
		}
		lat = append(lat, int64(time.Since(t0)))
		if now := time.Now(); now.Sub(windowStart) >= 10*time.Second {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			n := store.Len()
			slices.Sort(lat)
			fmt.Printf("churn: t=%.0f sessions=%d heap-per-session=%.0f req/s=%.0f p99-ns=%d created=%d\n",
				now.Sub(start).Seconds(), n, float64(ms.HeapAlloc)/float64(n),
				float64(len(lat))/now.Sub(windowStart).Seconds(), lat[len(lat)*99/100], created)
			lat, windowStart = lat[:0], now
			if now.Sub(start) >= d {
				break
			}
		}
	}
	for b.Loop() { // the figures are the lines above
	}
	runtime.KeepAlive(ids)
}
