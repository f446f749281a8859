package trustgate

import (
	"errors"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/redistest"
	"github.com/trustgate/trustgate/session"
)

// gathered returns the metric family name from reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

func TestStoreLatencyAndLocalCacheMetrics(t *testing.T) {
	srv := redistest.Start(t)
	op := oidctest.NewTest(t, oidctest.Options{})
	reg := prometheus.NewRegistry()
	h := &Handler{Issuer: op.Issuer(), ClientID: oidctest.DefaultClientID, ClientSecret: oidctest.DefaultClientSecret,
		Secrets: []string{testSecret}, InsecureCookie: true, metricsRegistry: reg,
		SessionStore: &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{srv.Addr()}, KeyPrefix: "metrics-test:"}}}
	if err := provision(t, h); err != nil {
		t.Fatal(err)
	}
	s := newTestSessionFor(h)
	if err := h.store.Put(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	// The Put filled the local cache: these three are answered without Redis and not timed.
	for range 3 {
		if _, err := h.store.Get(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
	}
	// A session this instance has not seen: one lookup that waits for Redis.
	if _, err := h.store.Get(t.Context(), session.NewID()); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Get(unknown) = %v, want ErrNotFound", err)
	}
	hist := gathered(t, reg, "trustgate_store_operation_duration_seconds")
	if hist == nil {
		t.Fatal("no trustgate_store_operation_duration_seconds")
	}
	counts := map[string]uint64{}
	for _, m := range hist.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["store"] != "redis" {
			t.Errorf("store label %q, want redis", labels["store"])
		}
		counts[labels["op"]] = m.GetHistogram().GetSampleCount()
	}
	if counts["get"] != 1 || counts["put"] != 1 {
		t.Errorf("store operations measured = %v, want get 1 (the cache miss; hits are not timed), put 1", counts)
	}
	hits := gathered(t, reg, "trustgate_local_cache_hits_total")
	misses := gathered(t, reg, "trustgate_local_cache_misses_total")
	if hits == nil || misses == nil {
		t.Fatal("no local cache counters")
	}
	if got := hits.GetMetric()[0].GetCounter().GetValue(); got != 3 {
		t.Errorf("local cache hits = %v, want 3", got)
	}
	if got := misses.GetMetric()[0].GetCounter().GetValue(); got != 1 {
		t.Errorf("local cache misses = %v, want 1", got)
	}
}

// newTestSessionFor is a live session of h's provider and client.
func newTestSessionFor(h *Handler) *session.Session {
	now := time.Now()
	return &session.Session{ID: session.NewID(), Issuer: h.Issuer, ClientID: h.ClientID, Subject: "metrics-user",
		Claims: map[string]any{"sub": "metrics-user"}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
}

// The gateway reaches Redis only through package session: no file of this package imports
// the Redis client (its logger is set with session.SetRedisLogger, the store's metrics come
// through session's optional interfaces).
func TestRootDoesNotImportRedisClient(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(path, "github.com/redis/") {
				t.Errorf("%s imports %s; use package session instead", name, path)
			}
		}
	}
}
