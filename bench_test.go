package trustgate

import (
	"context"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/internal/redistest"
	"github.com/trustgate/trustgate/session"
)

// BenchmarkServeHTTPAuthenticated is the gateway's cost on every authenticated request:
// cookie decode, session lookup, headers, placeholders, up to calling the next handler —
// with the memory store, with Redis and a warm local cache (no round trip), and with Redis
// and the local cache off (one round trip per request), for comparison.
func BenchmarkServeHTTPAuthenticated(b *testing.B) {
	claims := map[string]any{
		"iss": "https://idp.example.com", "sub": "123e4567-e89b-12d3-a456-426652340000", "aud": "app",
		"acr": "ts.bindid.iac.phone_number", "amr": []any{"ts.bind_id.ama", "ts.bind_id.mfca"}, "auth_time": 1605180698.0,
		"bindid_alias": "username@domain", "email": "user@example.com", "email_verified": true, "phone_number": "+12125556789",
		"bindid_info": map[string]any{"capp_first_login": 1605180504.0, "capp_last_login": 1605180577.0,
			"authenticating_device": map[string]any{"browser_type": "Mobile", "os_type": "iOS", "os_version": "14.1", "browser_version": "Safari"}},
		"bindid_network_info": map[string]any{"user_registration_time": 1605180498.0, "device_count": 2.0, "confirmed_capp_count": 1.0},
	}
	newHandler := func(b *testing.B) *Handler {
		h := &Handler{Issuer: "https://idp.example.com", ClientID: "app", Secrets: []string{testSecret}}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		b.Cleanup(func() { _ = h.Cleanup(); cancel() })
		if err := h.Provision(ctx); err != nil {
			b.Fatal(err)
		}
		return h
	}
	run := func(b *testing.B, h *Handler) {
		now := time.Now()
		s := &session.Session{ID: session.NewID(), Issuer: h.Issuer, ClientID: h.ClientID, Subject: claims["sub"].(string),
			Claims: claims, CreatedAt: now, ExpiresAt: now.Add(time.Hour), IdleTimeout: time.Hour}
		if err := h.store.Put(context.Background(), s); err != nil {
			b.Fatal(err)
		}
		cookie, err := h.sessions.codec.Encode(h.sessions.cookieName, s.ID)
		if err != nil {
			b.Fatal(err)
		}
		next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
		req := httptest.NewRequest(http.MethodGet, "http://app.example.com/app", nil)
		req.Header.Set("Cookie", h.sessions.cookieName+"="+cookie+"; app_pref=dark")
		req.Header.Set("Accept", "text/html")
		repl := caddy.NewReplacer()
		req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
		w := httptest.NewRecorder()
		serve := func() {
			r := req.Clone(req.Context())
			if err := h.ServeHTTP(w, r, next); err != nil {
				b.Fatal(err)
			}
			if r.Header.Get("X-Auth-Subject") == "" {
				b.Fatal("not authenticated")
			}
		}
		serve() // warm
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			serve()
		}
	}
	// The harness's own cost (cloning the request, calling next), to subtract.
	b.Run("baseline-no-gateway", func(b *testing.B) {
		next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
		req := httptest.NewRequest(http.MethodGet, "http://app.example.com/app", nil)
		req.Header.Set("Cookie", "trustgate=some-cookie-value-of-typical-length-0123456789012345678901234567890123456789; app_pref=dark")
		req.Header.Set("Accept", "text/html")
		req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		w := httptest.NewRecorder()
		b.ReportAllocs()
		for b.Loop() {
			if err := next.ServeHTTP(w, req.Clone(req.Context())); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("memory", func(b *testing.B) { run(b, newHandler(b)) })
	for _, tc := range []struct {
		name string
		ttl  time.Duration
	}{{"redis-warm-cache", 0}, {"redis-no-cache", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := redistest.Start(b)
			h := newHandler(b)
			rs, err := session.NewRedisStore(session.RedisOptions{Addrs: []string{srv.Addr()}, Secrets: [][]byte{[]byte(testSecret)}, LocalCacheTTL: tc.ttl})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = rs.Close() })
			h.store = rs
			run(b, h)
		})
	}
}

// BenchmarkLoginCallback is the cost of completing a login: the callback with the code
// exchange, ID token verification, userinfo (JSON, or a signed JWT for "ola") and session
// creation. The provider runs in this process, so cpu-us/login (process CPU time, from
// getrusage) includes its token signing; ns/op is wall time.
func BenchmarkLoginCallback(b *testing.B) {
	for _, user := range []string{"bindid-known", "ola"} {
		b.Run(user, func(b *testing.B) {
			g := newGateway(b)
			g.h.logger = zap.NewNop()
			g.op.SetAutoLogin(user)
			var cpu time.Duration
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				cb := g.authorize(g.startLogin(g.browser, "/app"))
				req := httptest.NewRequest(http.MethodGet, cb.String(), nil)
				for _, c := range g.browser.Jar.Cookies(cb) {
					req.AddCookie(c)
				}
				req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
				w := httptest.NewRecorder()
				before := cpuTime()
				b.StartTimer()
				if err := g.h.ServeHTTP(w, req, g.upstream); err != nil || w.Code != http.StatusFound {
					b.Fatalf("callback = %d, %v", w.Code, err)
				}
				b.StopTimer()
				cpu += cpuTime() - before
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/login")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
