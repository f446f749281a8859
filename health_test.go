package trustgate

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/session"
)

func getHealth(t *testing.T, g *gateway, method, accept string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, g.srv.URL+"/.trustgate/healthz", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return do(t, g.noRedirects(), req)
}

func TestHealthzOK(t *testing.T) {
	g := newGateway(t)
	for _, accept := range []string{"", "text/html", "application/json"} {
		resp, body := getHealth(t, g, http.MethodGet, accept)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET healthz (Accept %q) = %d %q, want 200", accept, resp.StatusCode, body)
		}
		var doc map[string]string
		if err := json.Unmarshal([]byte(body), &doc); err != nil || doc["status"] != "ok" || doc["provider"] != "ok" || doc["store"] != "ok" {
			t.Errorf("body = %q (%v), want status, provider and store ok", body, err)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", got)
		}
		if len(resp.Cookies()) != 0 || resp.Header.Get("Location") != "" {
			t.Errorf("healthz set cookies %v or redirected to %q", resp.Cookies(), resp.Header.Get("Location"))
		}
	}
	resp, body := getHealth(t, g, http.MethodHead, "")
	if resp.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD healthz = %d %q, want 200 without a body", resp.StatusCode, body)
	}
	resp, _ = getHealth(t, g, http.MethodPost, "")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST healthz = %d Allow %q, want 405 GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if n := g.upstream.Calls(); n != 0 {
		t.Errorf("upstream calls = %d, want 0", n)
	}
	if n := g.store.Len(); n != 0 {
		t.Errorf("sessions = %d, want 0", n)
	}
	if n := g.op.Counts().Authorize; n != 0 {
		t.Errorf("authorization requests = %d, want 0", n)
	}
}

// A flood of health checks makes one discovery request, and a healthy provider stays
// healthy without more requests.
func TestHealthzFloodDiscoversOnce(t *testing.T) {
	g := newGateway(t)
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/.trustgate/healthz", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				bad.Add(1)
			}
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d of 50 concurrent health checks were not 200", bad.Load())
	}
	if n := g.op.Counts().Discovery; n != 1 {
		t.Errorf("discovery requests = %d, want 1", n)
	}
}

// failingPingStore is a memory store whose ping fails while down is set.
type failingPingStore struct {
	*session.MemoryStore
	down  atomic.Bool
	pings atomic.Int32
}

func (s *failingPingStore) Ping(ctx context.Context) error {
	s.pings.Add(1)
	if s.down.Load() {
		return errors.New("dial tcp 10.0.0.1:6379: connect: connection refused")
	}
	return nil
}

func TestHealthzStoreDownThenRecovers(t *testing.T) {
	g := newGateway(t)
	fs := &failingPingStore{MemoryStore: g.store}
	fs.down.Store(true)
	g.h.store = fs
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	g.h.now = func() time.Time { return time.Unix(0, now.Load()) }

	resp, body := getHealth(t, g, http.MethodGet, "text/html")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("healthz with the store down = %d %q, want 503", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After = %q, want 5", got)
	}
	var doc map[string]string
	_ = json.Unmarshal([]byte(body), &doc)
	if doc["status"] != "unavailable" || doc["store"] != "down: not reachable" || doc["provider"] != "ok" {
		t.Errorf("body = %q, want unavailable, store down, provider ok", body)
	}
	if strings.Contains(body, "10.0.0.1") || strings.Contains(body, "refused") {
		t.Errorf("body %q carries the store's error", body)
	}
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Location") != "" {
		t.Errorf("503 headers: Cache-Control %q Location %q", resp.Header.Get("Cache-Control"), resp.Header.Get("Location"))
	}

	// The answer is reused for a few seconds: the store is not pinged again.
	fs.down.Store(false)
	for range 10 {
		if resp, _ := getHealth(t, g, http.MethodGet, ""); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("cached answer = %d, want the cached 503", resp.StatusCode)
		}
	}
	if n := fs.pings.Load(); n != 1 {
		t.Errorf("store pings = %d, want 1 (cached)", n)
	}
	now.Add(int64(healthCacheTTL + time.Second))
	if resp, body := getHealth(t, g, http.MethodGet, ""); resp.StatusCode != http.StatusOK {
		t.Errorf("after the store came back = %d %q, want 200", resp.StatusCode, body)
	}
}

// A provider whose discovery fails: 503 naming the provider, without its URL, and the
// provider is asked once however many checks come.
func TestHealthzProviderDown(t *testing.T) {
	var hits atomic.Int32
	op := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	t.Cleanup(op.Close)
	h := &Handler{Issuer: op.URL, ClientID: "health-c", ClientSecret: "s3cr3t-never-shown", Secrets: []string{testSecret}, InsecureCookie: true}
	if err := provision(t, h); err != nil {
		t.Fatal(err)
	}
	serve := func(method, path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "http://app.example"+path, nil)
		req.Header.Set("Accept", "text/html")
		req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		rec := httptest.NewRecorder()
		next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
			t.Errorf("the upstream was called for %s", path)
			return nil
		})
		if err := h.ServeHTTP(rec, req, next); err != nil {
			t.Fatalf("ServeHTTP: %v", err)
		}
		return rec
	}
	for i := range 20 {
		rec := serve(http.MethodGet, "/.trustgate/healthz")
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("check %d = %d %q, want 503", i, rec.Code, rec.Body.String())
		}
		if rec.Header().Get("Retry-After") == "" {
			t.Errorf("no Retry-After")
		}
		body := rec.Body.String()
		if !strings.Contains(body, `"provider":"down: discovery failed"`) || !strings.Contains(body, `"store":"ok"`) || !strings.Contains(body, `"status":"unavailable"`) {
			t.Errorf("body = %q", body)
		}
		for _, leak := range []string{op.URL, strings.TrimPrefix(op.URL, "http://"), "s3cr3t", "broken"} {
			if strings.Contains(body, leak) {
				t.Errorf("body %q contains %q", body, leak)
			}
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("discovery requests for 20 checks = %d, want 1", n)
	}
	if rec := serve(http.MethodHead, "/.trustgate/healthz"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("HEAD = %d, want 503", rec.Code)
	}
}

// TestHealthzSeesThroughTheTimedStore: with metrics on, the store is wrapped to time its
// calls (always so in Caddy, whose metrics registry is always set); the health check must
// still ping the store inside and answer 503 when it is down.
func TestHealthzSeesThroughTheTimedStore(t *testing.T) {
	g := newGateway(t, withRegistry(prometheus.NewRegistry()))
	fs := &failingPingStore{MemoryStore: g.store}
	fs.down.Store(true)
	g.h.store = fs
	g.h.store = g.h.metrics.timeStore(g.h.store, "redis", nil, g.h.logger)
	if _, ok := g.h.store.(*timedStore); !ok {
		t.Fatalf("store is %T, want the timed wrapper", g.h.store)
	}
	resp, body := getHealth(t, g, http.MethodGet, "")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"store":"down: not reachable"`) {
		t.Errorf("healthz with the wrapped store down = %d %s, want 503 naming the store", resp.StatusCode, body)
	}
	if fs.pings.Load() != 1 {
		t.Errorf("store pings = %d, want 1", fs.pings.Load())
	}
}
