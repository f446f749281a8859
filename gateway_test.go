package trustgate

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/certmagic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/provider"
	"github.com/trustgate/trustgate/session"
)

// gateway is a provisioned Handler behind a loopback test server, in front of a recording
// upstream, with the in-process OP as its provider and a private memory store.
type gateway struct {
	t        testing.TB
	op       *oidctest.Provider
	h        *Handler
	srv      *httptest.Server
	store    *session.MemoryStore
	upstream *recorder
	browser  *http.Client    // cookie jar, follows redirects
	policy   *RequireHandler // a policy block after h for /admin*, or nil (addPolicyBlock)
}

// recorder is the upstream: it records every request that reaches it.
type recorder struct {
	mu    sync.Mutex
	calls int
	last  http.Header
	repl  map[string]string // placeholders seen by the last call
	// respond, when set, may add response headers (the application's answer) before the body.
	respond func(w http.ResponseWriter, r *http.Request)
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.calls++
	rec.last = r.Header.Clone()
	rec.repl = map[string]string{}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		for _, k := range []string{"http.auth.user.id", "http.auth.user.email", "http.auth.user.name", "http.auth.user.bindid_alias", "http.auth.user.amr", "http.auth.oidc.session_expires"} {
			if v, ok := repl.GetString(k); ok {
				rec.repl[k] = v
			}
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	if rec.respond != nil {
		rec.respond(w, r)
	}
	_, _ = io.WriteString(w, "upstream: "+r.URL.RequestURI())
	return nil
}

func (rec *recorder) Calls() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.calls
}

func (rec *recorder) Header() http.Header {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.last.Clone()
}

type gatewayOption func(*Handler, *oidctest.Options)

// withStandardHeaders sets standard_headers (the default is basic).
func withStandardHeaders(v string) gatewayOption {
	return func(h *Handler, _ *oidctest.Options) { h.StandardHeaders = v }
}

func newGateway(t testing.TB, opts ...gatewayOption) *gateway {
	t.Helper()
	opOpts := oidctest.Options{}
	h := &Handler{
		// The in-process OP's users speak BindID's claims (bindid_alias, the trust profile).
		Provider:       provider.BindID,
		ClientID:       oidctest.DefaultClient().ID,
		ClientSecret:   oidctest.DefaultClient().Secret,
		Secrets:        []string{testSecret},
		InsecureCookie: true, // the test server is plain http
	}
	for _, o := range opts {
		o(h, &opOpts)
	}
	if h.storage == nil {
		// Signing keys (assertion, binding hints, CIBA confirmations) in a private directory.
		h.storage = &certmagic.FileStorage{Path: t.TempDir()}
	}
	op := oidctest.NewTest(t, opOpts)
	h.Issuer = op.Issuer()
	if err := provision(t, h); err != nil {
		t.Fatalf("Provision() error = %v", err)
	}
	// A private store per test, so "no session was created" is exact.
	store := session.NewMemoryStore(session.MemoryOptions{MaxSessions: 1000})
	t.Cleanup(func() { _ = store.Close() })
	h.store = store

	g := &gateway{t: t, op: op, h: h, store: store, upstream: &recorder{}}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repl := caddy.NewReplacer()
		ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
		ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
		var next caddyhttp.Handler = g.upstream
		if g.policy != nil && strings.HasPrefix(r.URL.Path, "/admin") {
			// A policy block (a trustgate block with only require lines) after this one,
			// as in `route /admin* { trustgate { require ... } }`.
			next = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				return g.policy.ServeHTTP(w, r, g.upstream)
			})
		}
		if err := h.ServeHTTP(w, r.WithContext(ctx), next); err != nil {
			// What Caddy would do with a returned error without handle_errors.
			status := http.StatusInternalServerError
			if he, ok := err.(caddyhttp.HandlerError); ok {
				status = he.StatusCode
			}
			w.WriteHeader(status)
		}
	}))
	t.Cleanup(g.srv.Close)
	g.browser = g.newBrowser()
	return g
}

func (g *gateway) newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

// noRedirects returns a client sharing the browser's cookies that stops at the first response.
func (g *gateway) noRedirects() *http.Client {
	return &http.Client{Jar: g.browser.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// navigate is a browser navigation to path on the gateway, following redirects.
func (g *gateway) navigate(c *http.Client, path string) (*http.Response, string) {
	g.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+path, nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	return do(g.t, c, req)
}

func do(t testing.TB, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// login logs user in through the whole flow (auto-login at the OP) and returns the final
// response, normally the upstream's answer for path.
func (g *gateway) login(user, path string) (*http.Response, string) {
	g.t.Helper()
	g.op.SetAutoLogin(user)
	return g.navigate(g.browser, path)
}

// mustLogin logs user in and fails the test unless the upstream answered.
func (g *gateway) mustLogin(user string) {
	g.t.Helper()
	resp, body := g.login(user, "/app")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "upstream: /app") {
		g.t.Fatalf("login as %s: %d %q, want 200 from the upstream", user, resp.StatusCode, body)
	}
}

// startLogin navigates to path without following redirects, and returns the authorization
// URL the gateway sent the browser to.
func (g *gateway) startLogin(c *http.Client, path string) *url.URL {
	g.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+path, nil)
	req.Header.Set("Accept", "text/html")
	resp, _ := do(g.t, &http.Client{Jar: c.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, req)
	if resp.StatusCode != http.StatusFound {
		g.t.Fatalf("GET %s = %d, want 302 to the OP", path, resp.StatusCode)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(u.String(), g.op.Issuer()) {
		g.t.Fatalf("login redirect %q does not go to the OP %s", resp.Header.Get("Location"), g.op.Issuer())
	}
	return u
}

// authorize lets the OP answer an authorization URL (auto-login must be set) and returns the
// callback URL it sends the browser to, without following it.
func (g *gateway) authorize(authURL *url.URL) *url.URL {
	g.t.Helper()
	resp, _ := do(g.t, &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, &http.Request{Method: http.MethodGet, URL: authURL, Header: http.Header{}})
	if resp.StatusCode != http.StatusFound {
		g.t.Fatalf("OP authorize = %d, want 302 back to the gateway", resp.StatusCode)
	}
	u, _ := url.Parse(resp.Header.Get("Location"))
	return u
}

// sessionCookie returns the browser's session cookie value, "" when it has none.
func (g *gateway) sessionCookie(c *http.Client) string {
	u, _ := url.Parse(g.srv.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == g.h.sessions.cookieName {
			return ck.Value
		}
	}
	return ""
}

// assertRejectedLogin checks the REJECT-LOGIN outcome of the threat model: the status, a page that
// cannot be cached, no session created or cookie set, and no upstream call.
func (g *gateway) assertRejectedLogin(resp *http.Response, body string, wantStatus int) {
	g.t.Helper()
	if resp.StatusCode != wantStatus {
		g.t.Errorf("callback status = %d, want %d (body %q)", resp.StatusCode, wantStatus, web.Clip(body, 300))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		g.t.Errorf("callback Cache-Control = %q, want no-store", cc)
	}
	for _, sc := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, g.h.sessions.cookieName+"=") && !strings.Contains(sc, "Max-Age=0") {
			g.t.Errorf("rejected login set a session cookie: %q", sc)
		}
	}
	if n := g.store.Len(); n != 0 {
		g.t.Errorf("sessions in store = %d, want 0", n)
	}
	if n := g.upstream.Calls(); n != 0 {
		g.t.Errorf("upstream calls = %d, want 0", n)
	}
	if g.sessionCookie(g.browser) != "" {
		g.t.Error("browser holds a session cookie after a rejected login")
	}
}

// assertNoPendingLogin checks that the callback spent the browser's login transaction.
func (g *gateway) assertNoPendingLogin() {
	g.t.Helper()
	u, _ := url.Parse(g.srv.URL)
	for _, c := range g.browser.Jar.Cookies(u) {
		if strings.HasPrefix(c.Name, g.h.sessions.txPrefix) {
			g.t.Errorf("login transaction cookie %s is still set after the callback", c.Name)
		}
	}
}
