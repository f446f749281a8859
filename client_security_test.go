package trustgate

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
)

// Threat model (docs/threat-model.md) OPS-05, OPS-08: the provider client (client.go) facing a failing provider or a bad configuration.

func TestOPS05_DiscoveryUnreachableOrInvalid(t *testing.T) {
	type mode = int32
	const (
		modeDown mode = iota
		modeHTML
		modeRedirect
		modeBadJSON
		modeArray
		mode500
		modeGood
	)
	for _, tc := range []struct {
		name string
		mode mode
	}{
		{"provider answers HTML", modeHTML},
		{"provider redirects to a login page", modeRedirect},
		{"discovery is not JSON", modeBadJSON},
		{"discovery is a JSON array", modeArray},
		{"provider answers 500", mode500},
		{"provider connection reset", modeDown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var current atomic.Int32
			current.Store(tc.mode)
			srv := httptest.NewUnstartedServer(nil)
			base := "http://" + srv.Listener.Addr().String()
			srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch current.Load() {
				case modeDown:
					if hj, ok := w.(http.Hijacker); ok {
						if c, _, err := hj.Hijack(); err == nil {
							c.Close()
						}
					}
				case modeHTML:
					w.Header().Set("Content-Type", "text/html")
					_, _ = io.WriteString(w, "<html><body>Maintenance</body></html>")
				case modeRedirect:
					http.Redirect(w, r, base+"/login?next=/.well-known/openid-configuration", http.StatusFound)
				case modeBadJSON:
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, `{"issuer": "`+base+`", "authorization_endpoint": `)
				case modeArray:
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, `[]`)
				case mode500:
					http.Error(w, "internal error", http.StatusInternalServerError)
				default:
					if r.URL.Path != oidctest.PathDiscovery {
						http.NotFound(w, r)
						return
					}
					w.Header().Set("Content-Type", "application/json")
					_ = json.NewEncoder(w).Encode(map[string]any{
						"issuer": base, "authorization_endpoint": base + "/authorize", "token_endpoint": base + "/token",
						"jwks_uri": base + "/jwks", "response_types_supported": []string{"code"},
						"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"},
					})
				}
			})
			srv.Start()
			t.Cleanup(srv.Close)

			clk := newTestClock()
			h, logs := sweepHandlerFor(t, base, func(h *Handler) { h.now = clk.Now })
			up := &recorder{}
			serve := func(accept string) *httptest.ResponseRecorder {
				w := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, "http://app.test/app", nil)
				req.Header.Set("Accept", accept)
				if err := h.ServeHTTP(w, req, up); err != nil {
					t.Fatalf("ServeHTTP error = %v", err)
				}
				return w
			}
			for range 3 { // the failure is remembered for the backoff, then retried
				w := serve("text/html")
				if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || w.Header().Get("Location") != "" {
					t.Fatalf("protected navigation with discovery failing: %d Retry-After %q Location %q; want 503 with Retry-After, no redirect",
						w.Code, w.Header().Get("Retry-After"), w.Header().Get("Location"))
				}
				if len(w.Result().Cookies()) != 0 {
					t.Error("a failed login start set a cookie")
				}
			}
			if w := serve("application/json"); w.Code == http.StatusOK {
				t.Errorf("API request with discovery failing: %d", w.Code)
			}
			if up.Calls() != 0 {
				t.Fatalf("upstream calls = %d with the provider failing, want 0 (never fail open)", up.Calls())
			}
			if !logs.has(func(e observedEntry) bool {
				return e.Level >= zapcore.ErrorLevel && strings.Contains(e.Fields, "discovery")
			}) {
				t.Error("no error logged for the failing discovery")
			}
			// The provider comes back: after the backoff the next login starts by itself.
			current.Store(modeGood)
			clk.Advance(2 * time.Minute)
			w := serve("text/html")
			if w.Code != http.StatusFound || !strings.HasPrefix(w.Header().Get("Location"), base+"/authorize?") {
				t.Errorf("after the provider recovered: %d Location %q, want a login redirect", w.Code, w.Header().Get("Location"))
			}
		})
	}
	t.Run("bad configuration is refused at provision, clearly and without the secret", func(t *testing.T) {
		t.Setenv("TG_SWEEP_EMPTY", "")
		const secret = "client-secret-value-never-shown"
		base := Handler{Issuer: "https://idp.example.com", ClientID: "app", ClientSecret: secret, Secrets: []string{testSecret}}
		for _, tc := range []struct {
			name string
			edit func(h *Handler)
			want string
		}{
			{"empty client secret placeholder", func(h *Handler) { h.ClientSecret = "{env.TG_SWEEP_EMPTY}" }, "client_secret is empty"},
			{"no client_id (empty audience)", func(h *Handler) { h.ClientID = "" }, "client_id is required"},
			{"no issuer", func(h *Handler) { h.Issuer = "" }, "issuer is required"},
			{"issuer with a query", func(h *Handler) { h.Issuer = "https://idp.example.com/?tenant=x" }, "issuer"},
			{"redis address without a port", func(h *Handler) {
				h.SessionStore = &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{"redis.internal"}}}
			}, "not host:port"},
			{"redis without addresses", func(h *Handler) { h.SessionStore = &SessionStoreConfig{Redis: &RedisStoreConfig{}} }, "addrs is required"},
			{"redis password placeholder empty", func(h *Handler) {
				h.SessionStore = &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{"127.0.0.1:1"}, Password: "{env.TG_SWEEP_EMPTY}"}}
			}, "password is empty"},
			{"unknown token auth method", func(h *Handler) { h.TokenAuthMethod = "client_secret_jwt" }, "token auth method"},
			{"unknown userinfo method", func(h *Handler) { h.Userinfo = "sometimes" }, "userinfo"},
			{"signed userinfo required but userinfo off", func(h *Handler) { h.Userinfo, h.UserinfoRequireSigned = "off", true }, "userinfo is off"},
			{"clock leeway beyond 5m", func(h *Handler) { h.ClockLeeway = caddy.Duration(time.Hour) }, "clock_leeway"},
			{"feedback endpoint over plain http", func(h *Handler) { h.FeedbackEndpoint = "http://idp.example.com/feedback" }, "feedback_endpoint"},
			{"acr_at_least without levels", func(h *Handler) { h.Require = &PolicyConfig{ACRAtLeast: "high"} }, "acr_levels"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := base
				h.Scopes = nil
				tc.edit(&h)
				var err error
				func() {
					defer func() {
						if p := recover(); p != nil {
							t.Fatalf("Provision panicked: %v", p)
						}
					}()
					err = provision(t, &h)
				}()
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Provision() error = %v, want one containing %q", err, tc.want)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("Provision() error %q shows the client secret", err)
				}
			})
		}
	})
}

// sweepFreeAddr is a loopback host:port nothing listens on (yet).
func sweepFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestOPS05_ProviderDownAtLoadAndReloadThroughCaddy(t *testing.T) {
	t.Setenv("TG_IT_CLIENT_SECRET", oidctest.DefaultClient().Secret)
	t.Setenv("TG_IT_SECRET", testSecret)
	t.Setenv("TG_SWEEP_EMPTY", "")
	addr := sweepFreeAddr(t)
	up := echoUpstream(t)
	cfg := func(extra string) string {
		return sweepCaddyGlobal("") + `http://localhost:9080 {
	trustgate {
		issuer http://` + addr + `
		client_id trustgate
		client_secret {env.TG_IT_CLIENT_SECRET}
		secret {env.TG_IT_SECRET}
		insecure_cookie
	}
	` + extra + `
	reverse_proxy ` + strings.TrimPrefix(up.URL, "http://") + `
}`
	}
	tester := caddytest.NewTester(t)
	tester.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	// The provider is down: the configuration loads (discovery is lazy), and protected
	// routes answer 503 without reaching the upstream, before and after a reload.
	tester.InitServer(cfg(""), "caddyfile")
	check := func(when string) {
		for _, accept := range []string{"text/html", "application/json"} {
			status, body := sweepRaw(t, http.MethodGet, "/private", "localhost:9080", map[string]string{"Accept": accept})
			if strings.Contains(body, `"headers"`) {
				t.Errorf("%s (%s): the upstream answered with the provider down", when, accept)
			}
			if accept == "text/html" && status != http.StatusServiceUnavailable {
				t.Errorf("%s: navigation = %d, want 503", when, status)
			}
			if accept == "application/json" && status != http.StatusUnauthorized && status != http.StatusServiceUnavailable {
				t.Errorf("%s: API request = %d, want 401 or 503", when, status)
			}
		}
	}
	check("provider down at load")
	tester.InitServer(cfg("header X-Reloaded yes"), "caddyfile")
	check("provider down after reload")

	// The provider comes up: the gateway recovers by itself after its backoff.
	op, err := oidctest.New(oidctest.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	op.SetAutoLogin("bindid-known")
	deadline := time.Now().Add(70 * time.Second)
	for {
		status, body := sweepRaw(t, http.MethodGet, "/private", "localhost:9080", map[string]string{"Accept": "text/html"})
		if status == http.StatusFound {
			break
		}
		if strings.Contains(body, `"headers"`) || time.Now().After(deadline) {
			t.Fatalf("after the provider came back: %d %q", status, web.Clip(body, 200))
		}
		time.Sleep(250 * time.Millisecond)
	}

	// Bad configuration is refused when loaded, with a clear message.
	for _, tc := range []struct{ name, block, want string }{
		{"empty client secret", "issuer https://idp.example.com\n\t\tclient_id x\n\t\tclient_secret {env.TG_SWEEP_EMPTY}", "client_secret is empty"},
		{"bad redis address", "issuer https://idp.example.com\n\t\tclient_id x\n\t\tsession_store redis {\n\t\t\taddrs redis.internal\n\t\t}", "not host:port"},
		{"empty client_id", "issuer https://idp.example.com\n\t\tclient_id \"\"", "client_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caddytest.AssertLoadError(t, sweepCaddyGlobal("")+"http://localhost:9080 {\n\ttrustgate {\n\t\t"+tc.block+"\n\t}\n}", "caddyfile", tc.want)
		})
	}
}

func TestOPS08_ProviderSlownessAndTLS(t *testing.T) {
	t.Run("the production provider client is bounded", func(t *testing.T) {
		g := newGateway(t)
		hc := g.h.client.Config().HTTPClient
		if hc.Timeout <= 0 || hc.Timeout > opTimeout {
			t.Errorf("provider HTTP client timeout = %v, want bounded by the per-request budget %v", hc.Timeout, opTimeout)
		}
		if opTimeout > 30*time.Second {
			t.Errorf("per-request provider budget = %v, want at most 30s", opTimeout)
		}
		if hc.CheckRedirect == nil || hc.CheckRedirect(&http.Request{}, nil) != http.ErrUseLastResponse {
			t.Error("the provider HTTP client follows redirects")
		}
	})
	const short = 300 * time.Millisecond
	for _, tc := range []struct {
		name   string
		faults oidctest.Faults
		status int
	}{
		{"token endpoint hangs", oidctest.Faults{TokenDelay: time.Minute}, http.StatusBadGateway},
		{"userinfo endpoint hangs", oidctest.Faults{UserinfoDelay: time.Minute}, http.StatusBadGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t)
			g.sweepUseClient(sweepClient(short, nil))
			g.op.SetFaults(tc.faults)
			start := time.Now()
			resp, body := g.login("bindid-known", "/app")
			if d := time.Since(start); d > 10*short+2*time.Second {
				t.Errorf("the login failed after %v with a %v provider timeout", d, short)
			}
			g.assertRejectedLogin(resp, body, tc.status)
		})
	}
	t.Run("JWKS endpoint hangs", func(t *testing.T) {
		g := newGateway(t)
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		g.sweepUseClient(sweepClient(short, func(req *http.Request, resp *http.Response) {
			if req.URL.Path == oidctest.PathDiscovery {
				var doc map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&doc)
				doc["jwks_uri"] = srv.URL + "/jwks"
				b, _ := json.Marshal(doc)
				sweepSetBody(resp, b)
			}
		}))
		start := time.Now()
		resp, body := g.login("bindid-known", "/app")
		if d := time.Since(start); d > 10*short+2*time.Second {
			t.Errorf("the login failed after %v", d)
		}
		if resp.StatusCode < 500 {
			t.Errorf("JWKS unreachable: %d, want a 5xx (the provider is failing, the token is not known bad)", resp.StatusCode)
		}
		g.sweepRejected(resp, body, resp.StatusCode)
	})
	for _, tc := range []struct {
		name   string
		faults oidctest.Faults
	}{
		{"userinfo of 2 MB", oidctest.Faults{MutateUserinfo: func(_, c map[string]any) { c["padding"] = strings.Repeat("x", 2<<20) }}},
		{"token response of 2 MB", oidctest.Faults{MutateTokenResponse: func(r map[string]any) { r["padding"] = strings.Repeat("x", 2<<20) }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t)
			g.op.SetFaults(tc.faults)
			resp, body := g.login("bindid-known", "/app")
			if resp.StatusCode < 400 {
				t.Fatalf("oversized answer accepted: %d", resp.StatusCode)
			}
			g.assertRejectedLogin(resp, body, resp.StatusCode)
		})
	}
	t.Run("token endpoint redirects to another host", func(t *testing.T) {
		attacker, hits := sweepAttackerHost(t, nil)
		g := newGateway(t)
		g.sweepUseClient(sweepClient(5*time.Second, func(req *http.Request, resp *http.Response) {
			if req.URL.Path == oidctest.PathToken {
				sweepSetBody(resp, nil)
				resp.StatusCode, resp.Status = http.StatusTemporaryRedirect, "307 Temporary Redirect"
				resp.Header.Set("Location", attacker.URL+"/token")
			}
		}))
		resp, body := g.login("bindid-known", "/app")
		if resp.StatusCode < 400 {
			t.Fatalf("redirected token endpoint: %d", resp.StatusCode)
		}
		g.sweepRejected(resp, body, resp.StatusCode)
		if hits.Load() != 0 {
			t.Error("the code was sent to the host the token endpoint redirected to")
		}
	})
	t.Run("https issuer with an untrusted certificate", func(t *testing.T) {
		var served atomic.Int64
		srv := httptest.NewUnstartedServer(nil)
		base := "https://" + srv.Listener.Addr().String()
		srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": base, "authorization_endpoint": base + "/authorize",
				"token_endpoint": base + "/token", "jwks_uri": base + "/jwks"})
		})
		srv.StartTLS() // a self-signed certificate
		t.Cleanup(srv.Close)
		h, logs := sweepHandlerFor(t, base, nil)
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "http://app.test/app", nil)
		req.Header.Set("Accept", "text/html")
		up := &recorder{}
		if err := h.ServeHTTP(w, req, up); err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Location") != "" || up.Calls() != 0 {
			t.Errorf("provider with an untrusted certificate: %d Location %q; want 503 and no redirect", w.Code, w.Header().Get("Location"))
		}
		if served.Load() != 0 {
			t.Error("the discovery document was read over a connection with an untrusted certificate")
		}
		if !logs.has(func(e observedEntry) bool { return strings.Contains(e.Fields, "certificate") }) {
			t.Error("the log does not name the certificate problem")
		}
	})
}
