package oidcflow

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
)

func TestNewDoesNoNetworkIO(t *testing.T) {
	t.Run("issuer on a closed port", func(t *testing.T) {
		issuer := closedLoopbackURL(t)
		c, err := New(Config{Issuer: issuer, ClientID: "app", HTTPClient: NewHTTPClient(2*time.Second, 0)})
		if err != nil {
			t.Fatalf("New() error = %v, want nil (New must not contact the OP)", err)
		}
		t.Cleanup(c.Close)
		if got := c.RetryAfter(); got != 0 {
			t.Errorf("RetryAfter() before any discovery = %v, want 0", got)
		}
		_, err = c.Discover(t.Context())
		wantError(t, err, CodeDiscovery, true)
		if got := c.RetryAfter(); got <= 0 {
			t.Errorf("RetryAfter() after a failed discovery = %v, want > 0", got)
		}
	})

	t.Run("no request before first use", func(t *testing.T) {
		var hits atomic.Int64
		issuer := startServer(t, func(base string) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				writeJSON(w, http.StatusOK, metadataFor(base, base))
			})
		})
		cfg := Config{Issuer: issuer, ClientID: "app", HTTPClient: NewHTTPClient(2*time.Second, 0)}
		if err := Check(cfg); err != nil {
			t.Fatalf("Check() error = %v, want nil", err)
		}
		c := newClient(t, cfg)
		_ = c.Config()
		_ = c.RetryAfter()
		if got := hits.Load(); got != 0 {
			t.Fatalf("requests to the OP after New = %d, want 0", got)
		}
		if _, err := c.Discover(t.Context()); err != nil {
			t.Fatalf("Discover() error = %v", err)
		}
		if got := hits.Load(); got != 1 {
			t.Errorf("requests to the OP after Discover = %d, want 1", got)
		}
	})
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means valid
	}{
		{"https issuer", Config{Issuer: "https://idp.example.com", ClientID: "app"}, ""},
		{"https issuer with path", Config{Issuer: "https://idp.example.com/realms/x", ClientID: "app"}, ""},
		{"http on 127.0.0.1", Config{Issuer: "http://127.0.0.1:9000", ClientID: "app"}, ""},
		{"http on localhost", Config{Issuer: "http://localhost:9000", ClientID: "app"}, ""},
		{"http on ::1", Config{Issuer: "http://[::1]:9000", ClientID: "app"}, ""},
		{"http on a public host", Config{Issuer: "http://idp.example.com", ClientID: "app"}, "plain http"},
		{"http on a localhost look-alike", Config{Issuer: "http://localhost.example.com", ClientID: "app"}, "plain http"},
		{"ftp issuer", Config{Issuer: "ftp://idp.example.com", ClientID: "app"}, "https"},
		{"no issuer", Config{ClientID: "app"}, "issuer is required"},
		{"relative issuer", Config{Issuer: "idp.example.com", ClientID: "app"}, "absolute URL"},
		{"issuer with query", Config{Issuer: "https://idp.example.com/?a=b", ClientID: "app"}, "query"},
		{"issuer with fragment", Config{Issuer: "https://idp.example.com/#x", ClientID: "app"}, "fragment"},
		{"no client id", Config{Issuer: "https://idp.example.com"}, "client id"},
		{"basic without secret", Config{Issuer: "https://idp.example.com", ClientID: "app", AuthMethod: AuthClientSecretBasic}, "needs a client secret"},
		{"post without secret", Config{Issuer: "https://idp.example.com", ClientID: "app", AuthMethod: AuthClientSecretPost}, "needs a client secret"},
		{"unknown auth method", Config{Issuer: "https://idp.example.com", ClientID: "app", ClientSecret: "s", AuthMethod: "client_secret_jwt"}, "unknown token auth method"},
		{"unknown userinfo method", Config{Issuer: "https://idp.example.com", ClientID: "app", Userinfo: "put"}, "unknown userinfo method"},
		{"signed userinfo required but off", Config{Issuer: "https://idp.example.com", ClientID: "app", Userinfo: UserinfoOff, RequireSignedUserinfo: true}, "userinfo is off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Check() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("Check() = nil, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("Check() = %v, want an error containing %q", err, tt.wantErr)
			}
			if _, newErr := New(tt.cfg); (newErr == nil) != (err == nil) {
				t.Errorf("New() error = %v, Check() = %v; want the same verdict", newErr, err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name           string
		cfg            Config
		wantScopes     []string
		wantAuthMethod string
	}{
		{"no secret is a public client", Config{Issuer: "https://idp.example.com", ClientID: "app"}, []string{"openid", "email", "profile"}, AuthNone},
		{"secret defaults to basic", Config{Issuer: "https://idp.example.com", ClientID: "app", ClientSecret: "s"}, []string{"openid", "email", "profile"}, AuthClientSecretBasic},
		{"openid is added", Config{Issuer: "https://idp.example.com", ClientID: "app", Scopes: []string{"email"}}, []string{"openid", "email"}, AuthNone},
		{"openid is not repeated", Config{Issuer: "https://idp.example.com", ClientID: "app", Scopes: []string{"email", "openid"}}, []string{"email", "openid"}, AuthNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, tt.cfg)
			got := c.Config()
			if !slices.Equal(got.Scopes, tt.wantScopes) {
				t.Errorf("Config().Scopes = %q, want %q", got.Scopes, tt.wantScopes)
			}
			if got.AuthMethod != tt.wantAuthMethod {
				t.Errorf("Config().AuthMethod = %q, want %q", got.AuthMethod, tt.wantAuthMethod)
			}
			if got.Userinfo != UserinfoGet || got.ClockLeeway != time.Minute || got.MaxTokenAge != 10*time.Minute ||
				got.DiscoveryTimeout != 10*time.Second || got.HTTPClient == nil || got.Now == nil {
				t.Errorf("Config() = %+v, want the documented defaults", got)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{4, 8 * time.Second},
		{5, 16 * time.Second},
		{6, 32 * time.Second},
		{7, time.Minute},
		{100, time.Minute},
		{1 << 30, time.Minute},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.failures), func(t *testing.T) {
			got := backoff(tt.failures)
			if got != tt.want {
				t.Errorf("backoff(%d) = %v, want %v", tt.failures, got, tt.want)
			}
			if got > time.Minute {
				t.Errorf("backoff(%d) = %v, want at most 1m", tt.failures, got)
			}
		})
	}
}

// TestDiscoveryBackoffAndRecovery: a failed discovery is cached only until the backoff has
// passed, then retried; once it succeeds it is cached for good. Whatever the failure, it is
// never cached permanently.
func TestDiscoveryBackoffAndRecovery(t *testing.T) {
	tests := []struct {
		name      string
		fail      func(w http.ResponseWriter, base string)
		temporary *bool
	}{
		{"HTTP 500", func(w http.ResponseWriter, _ string) {
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
		}, temporary},
		{"HTML login page", func(w http.ResponseWriter, _ string) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<!doctype html><title>Sign in</title>"))
		}, nil},
		{"issuer mismatch", func(w http.ResponseWriter, base string) {
			writeJSON(w, http.StatusOK, metadataFor(base+"/", base))
		}, permanent},
		{"no S256", func(w http.ResponseWriter, base string) {
			doc := metadataFor(base, base)
			doc["code_challenge_methods_supported"] = []string{"plain"}
			writeJSON(w, http.StatusOK, doc)
		}, permanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int64
			var healthy atomic.Bool
			issuer := startServer(t, func(base string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					hits.Add(1)
					if !healthy.Load() {
						tt.fail(w, base)
						return
					}
					writeJSON(w, http.StatusOK, metadataFor(base, base))
				})
			})
			clock := newFakeClock()
			c := newClient(t, Config{Issuer: issuer, ClientID: "app", Now: clock.Now, HTTPClient: NewHTTPClient(5*time.Second, 0)})
			ctx := t.Context()
			wantHits := func(want int64) {
				t.Helper()
				if got := hits.Load(); got != want {
					t.Fatalf("discovery requests = %d, want %d", got, want)
				}
			}

			_, err1 := c.Discover(ctx)
			wantErrorMaybe(t, err1, CodeDiscovery, tt.temporary)
			wantHits(1)
			if got := c.RetryAfter(); got != time.Second {
				t.Errorf("RetryAfter() after 1 failure = %v, want 1s", got)
			}

			// Within the backoff window: the cached error, no request.
			clock.Advance(999 * time.Millisecond)
			_, err2 := c.Discover(ctx)
			if err2 != err1 {
				t.Errorf("Discover() within the backoff = %v, want the cached error %v", err2, err1)
			}
			wantHits(1)
			if got := c.RetryAfter(); got != time.Millisecond {
				t.Errorf("RetryAfter() = %v, want 1ms", got)
			}

			// At retryAt: a new attempt, which fails again and doubles the wait.
			clock.Advance(time.Millisecond)
			_, err3 := c.Discover(ctx)
			wantErrorMaybe(t, err3, CodeDiscovery, tt.temporary)
			wantHits(2)
			if got := c.RetryAfter(); got != 2*time.Second {
				t.Errorf("RetryAfter() after 2 failures = %v, want 2s", got)
			}

			// The OP recovers, but the backoff still holds.
			healthy.Store(true)
			clock.Advance(time.Second)
			if _, err := c.Discover(ctx); err == nil {
				t.Errorf("Discover() within the second backoff = nil, want the cached error")
			}
			wantHits(2)

			clock.Advance(time.Second)
			meta, err := c.Discover(ctx)
			if err != nil {
				t.Fatalf("Discover() after the backoff = %v, want nil", err)
			}
			if meta.TokenEndpoint != issuer+"/token" {
				t.Errorf("Discover().TokenEndpoint = %q, want %q", meta.TokenEndpoint, issuer+"/token")
			}
			wantHits(3)
			if got := c.RetryAfter(); got != 0 {
				t.Errorf("RetryAfter() after success = %v, want 0", got)
			}

			// Cached for good: no more requests, however much time passes.
			for range 5 {
				clock.Advance(24 * time.Hour)
				if _, err := c.Discover(ctx); err != nil {
					t.Fatalf("Discover() = %v, want the cached metadata", err)
				}
				if _, err := c.AuthCodeURL(ctx, AuthRequest{RedirectURL: testRedirectURL, Transaction: NewTransaction()}); err != nil {
					t.Fatalf("AuthCodeURL() = %v, want nil", err)
				}
			}
			wantHits(3)
		})
	}
}

// TestDiscoveryBackoffGrows checks the wait keeps growing over many failures and stays
// bounded, driven by the injected clock.
func TestDiscoveryBackoffGrows(t *testing.T) {
	var hits atomic.Int64
	issuer := startServer(t, func(string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			http.Error(w, "no", http.StatusServiceUnavailable)
		})
	})
	clock := newFakeClock()
	c := newClient(t, Config{Issuer: issuer, ClientID: "app", Now: clock.Now, HTTPClient: NewHTTPClient(5*time.Second, 0)})
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}
	for i, w := range want {
		if _, err := c.Discover(t.Context()); err == nil {
			t.Fatalf("Discover() #%d = nil error, want a failure", i+1)
		}
		if got := hits.Load(); got != int64(i+1) {
			t.Fatalf("discovery requests after %d attempts = %d, want %d", i+1, got, i+1)
		}
		got := c.RetryAfter()
		if got != w*time.Second {
			t.Errorf("RetryAfter() after %d failures = %v, want %v", i+1, got, w*time.Second)
		}
		clock.Advance(got)
	}
}

// TestDiscoverySingleflight: concurrent callers share one discovery request, and a caller
// that gives up does not cancel it for the others.
func TestDiscoverySingleflight(t *testing.T) {
	const callers = 50
	var hits atomic.Int64
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	done := make(chan struct{})
	issuer := startServer(t, func(base string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			select {
			case entered <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			case <-done:
				return
			}
			writeJSON(w, http.StatusOK, metadataFor(base, base))
		})
	})
	releaseOnCleanup(t, done)
	c := newClient(t, Config{Issuer: issuer, ClientID: "app", HTTPClient: NewHTTPClient(5*time.Second, 0)})

	// The first caller starts the discovery, then gives up.
	ctx, cancel := context.WithCancel(t.Context())
	quitter := make(chan error, 1)
	go func() {
		_, err := c.Discover(ctx)
		quitter <- err
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("discovery request did not arrive")
	}

	var started, finished sync.WaitGroup
	errs := make([]error, callers)
	metas := make([]Metadata, callers)
	started.Add(callers)
	finished.Add(callers)
	for i := range callers {
		go func() {
			defer finished.Done()
			started.Done()
			metas[i], errs[i] = c.Discover(t.Context())
		}()
	}
	started.Wait()

	cancel()
	select {
	case err := <-quitter:
		e := wantError(t, err, CodeDiscovery, true)
		if !errors.Is(e, context.Canceled) {
			t.Errorf("Discover() with a cancelled context = %v, want it to wrap context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Discover() with a cancelled context did not return while discovery was in flight")
	}

	// Give the callers time to join the flight, then let the OP answer.
	time.Sleep(50 * time.Millisecond)
	close(release)
	finished.Wait()

	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("Discover() caller %d error = %v, want nil", i, errs[i])
		}
		if metas[i].TokenEndpoint != issuer+"/token" {
			t.Fatalf("Discover() caller %d TokenEndpoint = %q, want %q", i, metas[i].TokenEndpoint, issuer+"/token")
		}
	}
	if got := hits.Load(); got != 1 {
		t.Errorf("discovery requests = %d, want 1", got)
	}
	if _, err := c.Discover(t.Context()); err != nil {
		t.Errorf("Discover() afterwards = %v, want the cached metadata", err)
	}
	if got := hits.Load(); got != 1 {
		t.Errorf("discovery requests after a cached Discover = %d, want 1", got)
	}
}

// TestDiscoveryIntegrity covers FL-13 and OPS-05 on a plain-HTTP loopback OP: metadata that
// is inconsistent or unsafe is refused as a permanent (not Temporary) failure, and garbage
// never panics.
func TestDiscoveryIntegrity(t *testing.T) {
	tests := []struct {
		name string
		// configured turns the server's base URL into the configured issuer; nil = base.
		configured func(base string) string
		// respond answers the discovery request.
		respond func(w http.ResponseWriter, base string)
		// temporary is the expected Error.Temporary; nil = either (garbage from the OP).
		temporary *bool
		wantMsg   func(base string) string // substring of the error; nil = no check
	}{
		{
			name: "metadata issuer has a trailing slash",
			respond: func(w http.ResponseWriter, base string) {
				writeJSON(w, http.StatusOK, metadataFor(base+"/", base))
			},
			temporary: permanent,
			wantMsg:   func(base string) string { return strconv.Quote(base + "/") },
		},
		{
			name:       "configured issuer has a trailing slash",
			configured: func(base string) string { return base + "/" },
			respond: func(w http.ResponseWriter, base string) {
				writeJSON(w, http.StatusOK, metadataFor(base, base))
			},
			temporary: permanent,
			wantMsg:   func(base string) string { return strconv.Quote(base) },
		},
		{
			name: "metadata names another issuer",
			respond: func(w http.ResponseWriter, base string) {
				writeJSON(w, http.StatusOK, metadataFor("https://evil.example", base))
			},
			temporary: permanent,
			wantMsg:   func(string) string { return `"https://evil.example"` },
		},
		{
			name: "metadata issuer differs in case",
			respond: func(w http.ResponseWriter, base string) {
				writeJSON(w, http.StatusOK, metadataFor(strings.ToUpper(base), base))
			},
			temporary: permanent,
			wantMsg:   func(base string) string { return strconv.Quote(strings.ToUpper(base)) },
		},
		{
			name: "metadata without issuer",
			respond: func(w http.ResponseWriter, base string) {
				doc := metadataFor(base, base)
				delete(doc, "issuer")
				writeJSON(w, http.StatusOK, doc)
			},
			temporary: permanent,
			wantMsg:   func(string) string { return `names issuer ""` },
		},
		{
			name:      "no authorization_endpoint",
			respond:   mutated(func(doc map[string]any, _ string) { delete(doc, "authorization_endpoint") }),
			temporary: permanent,
			wantMsg:   func(string) string { return "authorization_endpoint" },
		},
		{
			name:      "no token_endpoint",
			respond:   mutated(func(doc map[string]any, _ string) { delete(doc, "token_endpoint") }),
			temporary: permanent,
			wantMsg:   func(string) string { return "token_endpoint" },
		},
		{
			name:      "no jwks_uri",
			respond:   mutated(func(doc map[string]any, _ string) { delete(doc, "jwks_uri") }),
			temporary: permanent,
			wantMsg:   func(string) string { return "jwks_uri" },
		},
		{
			name:      "relative token_endpoint",
			respond:   mutated(func(doc map[string]any, _ string) { doc["token_endpoint"] = "/token" }),
			temporary: permanent,
			wantMsg:   func(string) string { return "token_endpoint is not an absolute URL" },
		},
		{
			name:      "javascript authorization_endpoint",
			respond:   mutated(func(doc map[string]any, _ string) { doc["authorization_endpoint"] = "javascript:alert(1)" }),
			temporary: permanent,
			wantMsg:   func(string) string { return "authorization_endpoint is not an absolute URL" },
		},
		{
			name:      "ftp jwks_uri",
			respond:   mutated(func(doc map[string]any, _ string) { doc["jwks_uri"] = "ftp://127.0.0.1/jwks" }),
			temporary: permanent,
			wantMsg:   func(string) string { return "must be an https URL" },
		},
		{
			name:      "http token_endpoint on a public host",
			respond:   mutated(func(doc map[string]any, _ string) { doc["token_endpoint"] = "http://idp.example.com/token" }),
			temporary: permanent,
			wantMsg:   func(string) string { return "plain http" },
		},
		{
			name:      "code_challenge_methods_supported without S256",
			respond:   mutated(func(doc map[string]any, _ string) { doc["code_challenge_methods_supported"] = []string{"plain"} }),
			temporary: permanent,
			wantMsg:   func(string) string { return "S256" },
		},
		{
			name: "only symmetric and none signing algorithms",
			respond: mutated(func(doc map[string]any, _ string) {
				doc["id_token_signing_alg_values_supported"] = []string{"HS256", "none"}
			}),
			temporary: permanent,
			wantMsg:   func(string) string { return "no supported ID token signing algorithm" },
		},
		{
			name: "HTML page",
			respond: func(w http.ResponseWriter, _ string) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				_, _ = w.Write([]byte("<!doctype html><html><body>Please log in</body></html>"))
			},
		},
		{
			name: "invalid JSON",
			respond: func(w http.ResponseWriter, _ string) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"issuer": "x", "token_endpoint": `))
			},
		},
		{
			name: "JSON array",
			respond: func(w http.ResponseWriter, _ string) {
				writeJSON(w, http.StatusOK, []any{"issuer"})
			},
		},
		{
			name: "JSON null",
			respond: func(w http.ResponseWriter, _ string) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`null`))
			},
			// null decodes to empty metadata: the issuer does not match.
			temporary: permanent,
			wantMsg:   func(string) string { return `names issuer ""` },
		},
		{
			name:    "endpoint of the wrong JSON type",
			respond: mutated(func(doc map[string]any, _ string) { doc["token_endpoint"] = 42 }),
		},
		{
			name: "code_challenge_methods_supported of the wrong JSON type",
			respond: mutated(func(doc map[string]any, _ string) {
				doc["code_challenge_methods_supported"] = "S256"
			}),
		},
		{
			name:    "HTTP 404",
			respond: func(w http.ResponseWriter, _ string) { http.NotFound(w, nil) },
		},
		{
			name: "empty 200",
			respond: func(w http.ResponseWriter, _ string) {
				w.Header().Set("Content-Type", "application/json")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := startServer(t, func(base string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tt.respond(w, base) })
			})
			issuer := base
			if tt.configured != nil {
				issuer = tt.configured(base)
			}
			c := newClient(t, Config{Issuer: issuer, ClientID: "app", HTTPClient: NewHTTPClient(5*time.Second, 0)})
			_, err := c.Discover(t.Context())
			wantErrorMaybe(t, err, CodeDiscovery, tt.temporary)
			if tt.wantMsg != nil {
				if want := tt.wantMsg(base); !strings.Contains(err.Error(), want) {
					t.Errorf("Discover() error = %q, want it to contain %q", err, want)
				}
			}
			// The failure must also block everything that needs the metadata.
			if _, err := c.AuthCodeURL(t.Context(), AuthRequest{RedirectURL: testRedirectURL, Transaction: NewTransaction()}); err == nil {
				t.Errorf("AuthCodeURL() after a refused discovery = nil error, want one")
			}
			if _, err := c.Exchange(t.Context(), "code", testRedirectURL, NewTransaction()); err == nil {
				t.Errorf("Exchange() after a refused discovery = nil error, want one")
			}
		})
	}
}

// mutated answers with metadataFor(base, base) edited by f.
func mutated(f func(doc map[string]any, base string)) func(http.ResponseWriter, string) {
	return func(w http.ResponseWriter, base string) {
		doc := metadataFor(base, base)
		f(doc, base)
		writeJSON(w, http.StatusOK, doc)
	}
}

// TestDiscoveryAcceptsOptionalMetadataGaps: what is optional stays optional.
func TestDiscoveryAcceptsOptionalMetadataGaps(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(doc map[string]any, base string)
		check  func(t *testing.T, m Metadata)
	}{
		{"complete", nil, func(t *testing.T, m Metadata) {
			if len(m.CodeChallengeMethods) != 1 || m.UserinfoEndpoint == "" {
				t.Errorf("Discover() = %+v, want S256 and a userinfo endpoint", m)
			}
		}},
		{"no userinfo_endpoint", func(doc map[string]any, _ string) { delete(doc, "userinfo_endpoint") }, func(t *testing.T, m Metadata) {
			if m.UserinfoEndpoint != "" {
				t.Errorf("Discover().UserinfoEndpoint = %q, want empty", m.UserinfoEndpoint)
			}
		}},
		{"no end_session_endpoint", func(doc map[string]any, _ string) { delete(doc, "end_session_endpoint") }, nil},
		{"no code_challenge_methods_supported", func(doc map[string]any, _ string) { delete(doc, "code_challenge_methods_supported") }, nil},
		{"no signing algorithms advertised", func(doc map[string]any, _ string) { delete(doc, "id_token_signing_alg_values_supported") }, nil},
		{"https endpoints on another host", func(doc map[string]any, _ string) {
			doc["token_endpoint"] = "https://tokens.example.com/token"
			doc["jwks_uri"] = "https://keys.example.com/jwks"
		}, nil},
		{"S256 among others", func(doc map[string]any, _ string) {
			doc["code_challenge_methods_supported"] = []string{"plain", "S256"}
		}, nil},
		{"RFC 9207 advertised", func(doc map[string]any, _ string) {
			doc["authorization_response_iss_parameter_supported"] = true
		}, func(t *testing.T, m Metadata) {
			if !m.AuthorizationResponseIssuer {
				t.Errorf("Discover().AuthorizationResponseIssuer = false, want true")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issuer := discoveryServer(t, tt.mutate)
			c := newClient(t, Config{Issuer: issuer, ClientID: "app", HTTPClient: NewHTTPClient(5*time.Second, 0)})
			m, err := c.Discover(t.Context())
			if err != nil {
				t.Fatalf("Discover() error = %v, want nil", err)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

// TestDiscoveryRefusesPlainHTTPEndpointsOfHTTPSIssuer is FL-13 "http:// endpoints in
// metadata": with an https issuer on a real (non-loopback) host name, every endpoint must be
// https, whatever host it names.
func TestDiscoveryRefusesPlainHTTPEndpointsOfHTTPSIssuer(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
		value    func(base string) string
		wantErr  bool
	}{
		{"all https", "", nil, false},
		{"http authorization_endpoint", "authorization_endpoint", func(b string) string { return strings.Replace(b, "https:", "http:", 1) + "/authorize" }, true},
		{"http token_endpoint", "token_endpoint", func(b string) string { return strings.Replace(b, "https:", "http:", 1) + "/token" }, true},
		{"http jwks_uri", "jwks_uri", func(b string) string { return strings.Replace(b, "https:", "http:", 1) + "/jwks" }, true},
		{"http userinfo_endpoint", "userinfo_endpoint", func(b string) string { return strings.Replace(b, "https:", "http:", 1) + "/userinfo" }, true},
		{"http end_session_endpoint", "end_session_endpoint", func(b string) string { return strings.Replace(b, "https:", "http:", 1) + "/logout" }, true},
		{"http token_endpoint on loopback", "token_endpoint", func(string) string { return "http://127.0.0.1:8080/token" }, true},
		{"http jwks_uri on localhost", "jwks_uri", func(string) string { return "http://localhost/jwks" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issuer, hc := startTLSServer(t, func(base string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					doc := metadataFor(base, base)
					if tt.endpoint != "" {
						doc[tt.endpoint] = tt.value(base)
					}
					writeJSON(w, http.StatusOK, doc)
				})
			})
			c := newClient(t, Config{Issuer: issuer, ClientID: "app", HTTPClient: hc})
			_, err := c.Discover(t.Context())
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Discover() error = %v, want nil", err)
				}
				return
			}
			wantError(t, err, CodeDiscovery, false)
			if !strings.Contains(err.Error(), tt.endpoint) || !strings.Contains(err.Error(), "plain http") {
				t.Errorf("Discover() error = %q, want it to name %s and plain http", err, tt.endpoint)
			}
		})
	}
}

func TestCheckResponseIssuer(t *testing.T) {
	tests := []struct {
		name       string
		advertised bool
		iss        func(issuer string) string
		present    bool
		wantErr    bool
	}{
		{"advertised, sent and equal", true, func(i string) string { return i }, true, false},
		{"advertised, sent and different", true, func(string) string { return oidctest.WrongIssuer }, true, true},
		{"advertised, sent with trailing slash", true, func(i string) string { return i + "/" }, true, true},
		{"advertised, sent empty", true, func(string) string { return "" }, true, true},
		{"advertised, not sent", true, nil, false, true},
		{"not advertised, not sent", false, nil, false, false},
		{"not advertised, sent and equal", false, func(i string) string { return i }, true, false},
		{"not advertised, sent and different", false, func(string) string { return oidctest.WrongIssuer }, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issuer := discoveryServer(t, func(doc map[string]any, _ string) {
				doc["authorization_response_iss_parameter_supported"] = tt.advertised
			})
			c := newClient(t, Config{Issuer: issuer, ClientID: "app", HTTPClient: NewHTTPClient(5*time.Second, 0)})
			iss := ""
			if tt.iss != nil {
				iss = tt.iss(issuer)
			}
			err := c.CheckResponseIssuer(t.Context(), iss, tt.present)
			if !tt.wantErr {
				if err != nil {
					t.Errorf("CheckResponseIssuer(%q, %v) = %v, want nil", iss, tt.present, err)
				}
				return
			}
			wantError(t, err, CodeResponseIssuer, false)
		})
	}

	t.Run("discovery failure", func(t *testing.T) {
		c := newClient(t, Config{Issuer: closedLoopbackURL(t), ClientID: "app", HTTPClient: NewHTTPClient(2*time.Second, 0)})
		err := c.CheckResponseIssuer(t.Context(), "", false)
		wantError(t, err, CodeDiscovery, true)
	})
}
