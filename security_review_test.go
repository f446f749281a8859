package trustgate

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/session"
)

// faultStore wraps the gateway's store and fails the operations a test switches off, as a
// Redis outage would.
type faultStore struct {
	session.Store
	mu                                  sync.Mutex
	failGet, failPut, failDel, failOnce bool
}

var errStoreDown = errors.New("store: connection refused")

func (f *faultStore) set(get, put, del, once bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failGet, f.failPut, f.failDel, f.failOnce = get, put, del, once
}

func (f *faultStore) fails() (get, put, del, once bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failGet, f.failPut, f.failDel, f.failOnce
}

func (f *faultStore) Get(ctx context.Context, id string) (*session.Session, error) {
	if get, _, _, _ := f.fails(); get {
		return nil, errStoreDown
	}
	return f.Store.Get(ctx, id)
}

func (f *faultStore) Put(ctx context.Context, s *session.Session) error {
	if _, put, _, _ := f.fails(); put {
		return errStoreDown
	}
	return f.Store.Put(ctx, s)
}

func (f *faultStore) Delete(ctx context.Context, id string) error {
	if _, _, del, _ := f.fails(); del {
		return errStoreDown
	}
	return f.Store.Delete(ctx, id)
}

func (f *faultStore) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if _, _, _, once := f.fails(); once {
		return false, errStoreDown
	}
	return f.Store.Once(ctx, key, ttl)
}

func withFaultStore(g *gateway) *faultStore {
	f := &faultStore{Store: g.store}
	g.h.store = f
	return f
}

func TestOPS01_StoreDownWithSessionCookie(t *testing.T) {
	g := newGateway(t)
	f := withFaultStore(g)
	g.mustLogin("bindid-known")
	calls := g.upstream.Calls()
	f.set(true, false, false, false)

	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/app", nil)
	req.Header.Set("Accept", "text/html")
	resp, _ := do(t, g.noRedirects(), req)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Location") != "" {
		t.Errorf("navigation with the store down = %d Retry-After %q Location %q, want 503, Retry-After, no redirect (no login loop)",
			resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Location"))
	}
	if len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("the store outage touched cookies: %q; the browser must keep its session cookie", resp.Header.Values("Set-Cookie"))
	}
	api, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/api", nil)
	api.Header.Set("Accept", "application/json")
	if resp, body := do(t, g.noRedirects(), api); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "store_unavailable") {
		t.Errorf("API call with the store down = %d %q, want 503 store_unavailable", resp.StatusCode, body)
	}
	if g.upstream.Calls() != calls {
		t.Error("the upstream was reached while the store was down (fail-open)")
	}

	f.set(false, false, false, false)
	if resp, body := g.navigate(g.browser, "/app"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "upstream:") {
		t.Errorf("after the store is back: %d %q, want the session to resume", resp.StatusCode, body)
	}
}

func TestOPS03_StoreFailureMidLogin(t *testing.T) {
	t.Run("replay record cannot be written: no code exchange", func(t *testing.T) {
		g := newGateway(t)
		f := withFaultStore(g)
		f.set(false, false, false, true)
		resp, body := g.login("bindid-known", "/app")
		g.assertRejectedLogin(resp, body, http.StatusServiceUnavailable)
		if resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		if g.op.Counts().Token != 0 {
			t.Error("the code was exchanged although the state could not be recorded as used")
		}
	})
	t.Run("session cannot be written after the exchange", func(t *testing.T) {
		g := newGateway(t)
		f := withFaultStore(g)
		f.set(false, true, false, false)
		resp, body := g.login("bindid-known", "/app")
		g.assertRejectedLogin(resp, body, http.StatusServiceUnavailable)
		f.set(false, false, false, false)
		g.mustLogin("bindid-known") // recovers by itself
	})
}

func TestLO12_LogoutWithStoreDownKeepsTheSession(t *testing.T) {
	g := newGateway(t)
	f := withFaultStore(g)
	g.mustLogin("bindid-known")
	f.set(false, false, true, false)
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/.trustgate/logout", nil)
	req.Header.Set("Accept", "application/json")
	resp, _ := do(t, g.browser, req)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("logout with the store down = %d, want 503 (never a success that did not happen)", resp.StatusCode)
	}
	if g.sessionCookie(g.browser) == "" {
		t.Error("the cookie was cleared although the session still exists")
	}
	f.set(false, false, false, false)
	if resp, _ := do(t, g.browser, req.Clone(context.Background())); resp.StatusCode != http.StatusOK || g.store.Len() != 0 {
		t.Errorf("logout after recovery = %d, sessions %d; want 200, 0", resp.StatusCode, g.store.Len())
	}
}

func TestHDR01_TrailersCannotCarryIdentity(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	calls := g.upstream.Calls()
	for _, name := range []string{"X-Auth-Subject", "X_Auth_Alias"} {
		req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/app", strings.NewReader("body"))
		req.ContentLength = -1 // chunked, so trailers can follow the body
		req.Trailer = http.Header{name: []string{"admin"}}
		resp, _ := do(t, g.browser, req)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("request announcing trailer %s = %d, want 400", name, resp.StatusCode)
		}
	}
	if g.upstream.Calls() != calls {
		t.Error("a request with an identity trailer reached the upstream")
	}
}

func TestHDR09_SpacedCookieNameIsStripped(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/app", nil)
	req.Header.Set("Cookie", "a=1; "+g.h.sessions.cookieName+" ="+g.sessionCookie(g.browser))
	if resp, _ := do(t, &http.Client{}, req); resp.StatusCode != http.StatusOK {
		t.Fatalf("request = %d", resp.StatusCode)
	}
	if got := g.upstream.Header().Get("Cookie"); got != "a=1" {
		t.Errorf("upstream Cookie = %q, want a=1", got)
	}
}

func TestRenderedHeadersFollowTheConfiguration(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	if got := g.upstream.Header().Get("X-Auth-Alias"); got != "username@domain" {
		t.Fatalf("X-Auth-Alias = %q", got)
	}
	// What a reload with `alias_claim email` does to the handler's options; this user's email
	// is empty (seed 000), so with that alias claim it is a new user.
	g.h.sessions.trustOpts.AliasClaim = "email"
	g.navigate(g.browser, "/app")
	got := g.upstream.Header()
	if got.Get("X-Auth-Alias") != "" || got.Get("X-Auth-New-User") != "true" {
		t.Errorf("after changing alias_claim: X-Auth-Alias %q, X-Auth-New-User %q; want the session rendered again (no alias, new user)",
			got.Get("X-Auth-Alias"), got.Get("X-Auth-New-User"))
	}
}

// A later handler edits identity header values in place, as Caddy's request_header replace
// does; the next request of the same session must still get the gateway's own values.
func TestHeaderValuesAreFreshPerRequest(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	cookie := g.h.sessions.cookieName + "=" + g.sessionCookie(g.browser)
	var seen []string
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		seen = append(seen, r.Header.Get("X-Auth-Alias"))
		r.Header["X-Auth-Alias"][0] = "x-" + r.Header["X-Auth-Alias"][0]
		return nil
	})
	for range 3 {
		req := httptest.NewRequest(http.MethodGet, "http://app.test/app", nil)
		req.Header.Set("Cookie", cookie)
		req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		if err := g.h.ServeHTTP(httptest.NewRecorder(), req, next); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("upstream calls = %d, want 3", len(seen))
	}
	for i, v := range seen {
		if v != "username@domain" {
			t.Errorf("request %d: X-Auth-Alias = %q, want username@domain", i, v)
		}
	}
}

func TestWrongClientSecretIsAnOperatorError(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	g := newGateway(t, func(h *Handler, _ *oidctest.Options) { h.ClientSecret = "not-the-registered-secret" })
	g.h.logger = zap.New(core)
	resp, body := g.login("bindid-known", "/app")
	g.assertRejectedLogin(resp, body, http.StatusBadGateway)
	found := false
	for _, e := range logs.All() {
		if e.Level == zapcore.ErrorLevel && e.ContextMap()["reason"] == "client_rejected" {
			found = true
		}
	}
	if !found {
		t.Errorf("no error-level log line with reason client_rejected; got %d lines", logs.Len())
	}
}

func TestLIM07_LongInputs(t *testing.T) {
	t.Run("return URL just under the limit, full of characters JSON escapes", func(t *testing.T) {
		g := newGateway(t)
		path := "/app?" + strings.Repeat("a=1&<>", 240) // 1445 bytes
		resp, body := g.login("bindid-known", path)
		if resp.StatusCode != http.StatusOK || body != "upstream: "+path {
			t.Errorf("login from a %d-byte URL: %d %q, want to land back on it", len(path), resp.StatusCode, web.Clip(body, 80))
		}
	})
	t.Run("return URL over the limit falls back to /", func(t *testing.T) {
		g := newGateway(t)
		path := "/app?" + strings.Repeat("a=1&<>", 300) // 1805 bytes
		resp, body := g.login("bindid-known", path)
		if resp.StatusCode != http.StatusOK || body != "upstream: /" {
			t.Errorf("login from a %d-byte URL: %d %q, want to land on /", len(path), resp.StatusCode, web.Clip(body, 80))
		}
	})
	t.Run("100 KB code", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		cb := g.authorize(g.startLogin(g.browser, "/app"))
		q := cb.Query()
		q.Set("code", strings.Repeat("c", 100<<10))
		cb.RawQuery = q.Encode()
		resp, body := g.get(g.browser, cb.String())
		g.assertRejectedLogin(resp, body, http.StatusBadRequest)
		if g.op.Counts().Token != 0 {
			t.Error("a 100 KB code was sent to the token endpoint")
		}
	})
}

func TestLIM02_HostileCookieHeader(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	valid := g.sessionCookie(g.browser)
	name := g.h.sessions.cookieName
	bogus := strings.Repeat(name+"=bogus; ", 3)
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/api", nil)
	req.Header.Set("Cookie", bogus+name+"="+valid)
	if resp, _ := do(t, &http.Client{}, req); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("valid cookie behind 3 bogus copies = %d, want 401 (at most 3 copies are tried)", resp.StatusCode)
	}
	req.Header.Set("Cookie", strings.Repeat("x=1; ", 1000)+strings.Repeat(name+"=b; ", 100)+g.h.sessions.txPrefix+"2147483647=x")
	if resp, _ := do(t, &http.Client{}, req); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("1000 cookies and 100 copies of ours = %d, want 401", resp.StatusCode)
	}
}

func TestIDT15_CrossJWTConfusion(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"logout token typ", mutateID(func(h, _ map[string]any) { h["typ"] = "logout+jwt" })},
		{"access token typ", mutateID(func(h, _ map[string]any) { h["typ"] = "at+jwt" })},
		{"logout token events claim", mutateID(func(_, c map[string]any) {
			c["events"] = map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}
		})},
	})
}

func TestUI03_SignedUserinfoExtraAudience(t *testing.T) {
	runUserinfoRejections(t, "ola", []idtCase{
		{"untrusted extra audience", oidctest.Faults{MutateUserinfo: func(h, c map[string]any) {
			if h != nil {
				c["aud"] = []any{oidctest.DefaultClient().ID, "another-api"}
			}
		}}},
	})
}
