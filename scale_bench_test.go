package trustgate

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/redistest"
	"github.com/trustgate/trustgate/session"
)

// BenchmarkSessionsAtScale measures the memory store with many sessions, for
// bench/scale.sh (DESIGN.md, "Memory"): the Go heap each session takes, and warm
// authenticated requests spread over the same number of active sessions (1000, every
// n/1000-th) at each session count: what changes is only how many sessions the store holds. The
// sessions are copies of a real login's session (the BindID user with the full trust
// profile, its ID, access and refresh tokens), each decoded from JSON on its own, as a
// login makes them, so no two share memory.
//
// Metrics: B/session (heap growth after GC ÷ sessions), ns/op (one request), p50-ns and
// p99-ns (of the timed requests). Counts: TRUSTGATE_SCALE_SESSIONS (comma-separated;
// default 1000,100000).
func BenchmarkSessionsAtScale(b *testing.B) {
	counts := []int{1000, 100_000}
	if v := os.Getenv("TRUSTGATE_SCALE_SESSIONS"); v != "" {
		counts = counts[:0]
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("TRUSTGATE_SCALE_SESSIONS: %q is not a count", f)
			}
			counts = append(counts, n)
		}
	}
	for _, n := range counts {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) { benchSessionsAt(b, n) })
	}
}

func benchSessionsAt(b *testing.B, n int) {
	g, template := loggedInTemplate(b, oidctest.SubjectBindIDKnown)
	store, ids, perSession := fillStore(b, template, n)
	g.h.store = store
	serve := warmServer(b, g, ids)
	for i := range ids { // warm: every sampled session once
		if err := serve(i); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]int64, 0, 1<<16)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		start := time.Now()
		if err := serve(i); err != nil {
			b.Fatal(err)
		}
		if len(lat) < cap(lat) {
			lat = append(lat, int64(time.Since(start)))
		}
		i++
	}
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
	}
	b.ReportMetric(perSession, "B/session")
	b.ReportMetric(float64(len(template)), "json-B")
	runtime.KeepAlive(ids)
}

// fillStore stores n copies of the session template in a new memory store and lets a sweep
// interval pass, so that the janitor has packed them all, as it does with sessions nobody
// uses: the steady state of a store whose sessions are mostly idle. It returns the store,
// the ids of 1,000 of the sessions spread over the store (every n/1000-th: the active ones;
// their first request decodes them again, as in production) and the heap each session takes.
func fillStore(b *testing.B, template []byte, n int) (*session.MemoryStore, []string, float64) {
	// The store's clock runs ahead of the real one by skew, so that the benchmark can let a
	// sweep interval pass without waiting for it.
	var skew atomic.Int64
	store := session.NewMemoryStore(session.MemoryOptions{
		MaxSessions: n + 1,
		Now:         func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
	})
	b.Cleanup(func() { _ = store.Close() })
	const sample = 1000
	step := max(1, n/sample)
	ids := make([]string, 0, sample)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	ctx := context.Background()
	for i := range n {
		s := sessionCopy(b, template, i)
		if err := store.Put(ctx, s); err != nil {
			b.Fatal(err)
		}
		if i%step == 0 && len(ids) < sample {
			ids = append(ids, s.ID)
		}
	}
	skew.Store(int64(session.DefaultSweepInterval + time.Second))
	store.Sweep()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if store.Len() != n {
		b.Fatalf("store holds %d sessions, want %d", store.Len(), n)
	}
	return store, ids, float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// warmServer returns serve(i): warm authenticated request i through the gateway's ServeHTTP
// (the upstream a no-op), with the session cookie of ids[i % len(ids)] and a fresh Caddy
// replacer, as Caddy gives each request; an error when the session was not accepted.
func warmServer(b *testing.B, g *gateway, ids []string) func(i int) error {
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	reqs := make([]*http.Request, len(ids))
	for i, id := range ids {
		value, err := g.h.sessions.codec.Encode(g.h.sessions.cookieName, id)
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = httptest.NewRequest(http.MethodGet, "http://app.example.com/app", nil)
		reqs[i].Header.Set("Cookie", g.h.sessions.cookieName+"="+value)
	}
	w := httptest.NewRecorder()
	base := context.Background()
	return func(i int) error {
		r := reqs[i%len(reqs)].Clone(context.WithValue(base, caddy.ReplacerCtxKey, caddy.NewReplacer()))
		if err := g.h.ServeHTTP(w, r, next); err != nil || !strings.HasPrefix(r.Header.Get("X-Auth-Subject"), oidctest.SubjectBindIDKnown+"-") {
			return fmt.Errorf("session %d not accepted: %v (%d)", i%len(reqs), err, w.Code)
		}
		return nil
	}
}

// BenchmarkRedisBytesPerSession measures what a session costs in Redis (DESIGN.md: 1.5 KiB,
// encrypted): 10,000 copies of a real login's session are stored through the Redis store,
// and Redis's own used_memory grows by B/session; keys/session counts the keys each adds
// (the encrypted blob, the idle clock, the sub and sid indexes: every copy is its own user).
func BenchmarkRedisBytesPerSession(b *testing.B) {
	const n = 10_000
	_, template := loggedInTemplate(b, oidctest.SubjectBindIDKnown)
	srv := redistest.Start(b)
	rs, err := session.NewRedisStore(session.RedisOptions{Addrs: []string{srv.Addr()}, Secrets: [][]byte{[]byte(testSecret)}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rs.Close() })
	ctx := context.Background()
	before, keysBefore := redisMemory(b, srv.Addr())
	for i := range n {
		s := sessionCopy(b, template, i)
		if err := rs.Put(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	after, keysAfter := redisMemory(b, srv.Addr())
	for b.Loop() { // nothing to time: the figures are the metrics below
	}
	b.ReportMetric(float64(after-before)/n, "B/session")
	b.ReportMetric(float64(keysAfter-keysBefore)/n, "keys/session")
	b.ReportMetric(float64(len(template)), "json-B")
}

// redisMemory asks the Redis server at addr for used_memory and the number of keys, with
// inline commands (no client library in the root package).
func redisMemory(b *testing.B, addr string) (usedMemory, keys int64) {
	b.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(conn)
	if _, err := conn.Write([]byte("INFO memory\r\nDBSIZE\r\n")); err != nil {
		b.Fatal(err)
	}
	head, _ := rd.ReadString('\n') // $<len> of the INFO bulk string
	size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "$")))
	if err != nil {
		b.Fatalf("INFO answer %q", head)
	}
	body := make([]byte, size+2)
	if _, err := io.ReadFull(rd, body); err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			usedMemory, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	dbsize, _ := rd.ReadString('\n') // :<n>
	keys, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(dbsize, ":")), 10, 64)
	return usedMemory, keys
}

// loggedInTemplate logs the BindID user with the full trust profile in at a quiet gateway
// and returns it with the JSON of the session made: what sessionCopy copies.
func loggedInTemplate(b *testing.B, subject string) (*gateway, []byte) {
	g := newGateway(b)
	g.h.logger = zap.NewNop()
	g.mustLogin(subject)
	template, err := json.Marshal(g.stored())
	if err != nil {
		b.Fatal(err)
	}
	return g, template
}

// sessionCopy is session i decoded from the JSON of a real login's session, as its own
// user: its own id, subject and provider session id (sid), so that the store's indexes
// grow as they do with real users. Its access token does not expire for a day: the copies
// share the template's refresh token, which the provider refuses after its first use, so
// a refresh during a long run (BenchmarkSessionChurn: 5 minutes, the provider's access
// tokens live 5) would end them.
func sessionCopy(b *testing.B, template []byte, i int) *session.Session {
	s := new(session.Session)
	if err := json.Unmarshal(template, s); err != nil {
		b.Fatal(err)
	}
	s.ID = session.NewID()
	s.Subject = fmt.Sprintf("%s-%d", s.Subject, i)
	s.Claims["sub"] = s.Subject
	s.Claims["sid"] = session.NewID()
	s.TokenExpiry = time.Now().Add(24 * time.Hour)
	return s
}
