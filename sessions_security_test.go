package trustgate

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
)

// Threat model (docs/threat-model.md) SES-02..04, SES-08, HDR-04, HDR-09, LIM-02, OPS-01: the session jar (sessions.go), its cookies and headers.

func TestSES02_SessionFixation(t *testing.T) {
	t.Run("planted cookie before login", func(t *testing.T) {
		g := newGateway(t)
		u, _ := url.Parse(g.srv.URL)
		planted := "attacker-chosen-value"
		g.browser.Jar.SetCookies(u, []*http.Cookie{{Name: g.h.sessions.cookieName, Value: planted, Path: "/"}})
		g.mustLogin("bindid-known")
		if got := g.sessionCookie(g.browser); got == planted || got == "" {
			t.Errorf("session cookie after login = %q, want a new value", got)
		}
	})
	t.Run("login as A then as B", func(t *testing.T) {
		g := newGateway(t)
		g.mustLogin("bindid-known")
		cookieA := g.sessionCookie(g.browser)
		resp, _ := g.navigate(g.browser, "/.trustgate/login?rd=/app")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("second login = %d", resp.StatusCode)
		}
		// The OP still auto-logs in bindid-known; switch to B for the second login.
		g.op.SetAutoLogin("ola")
		g.navigate(g.browser, "/.trustgate/login?rd=/app")
		cookieB := g.sessionCookie(g.browser)
		if cookieB == cookieA {
			t.Fatal("the session cookie did not change at login")
		}
		if g.upstream.Header().Get("X-Auth-Subject") != oidctest.SubjectOla {
			t.Errorf("after logging in as B the upstream sees %q", g.upstream.Header().Get("X-Auth-Subject"))
		}
		// A's cookie is dead: replayed from another client it is no session.
		req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/api", nil)
		req.Header.Set("Cookie", g.h.sessions.cookieName+"="+cookieA)
		if resp, _ := do(t, &http.Client{}, req); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("old session cookie after a new login = %d, want 401", resp.StatusCode)
		}
		if g.store.Len() != 1 {
			t.Errorf("sessions = %d, want 1 (the previous one deleted)", g.store.Len())
		}
	})
}

func TestSES03_TamperedCookieIsNoSession(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	valid := g.sessionCookie(g.browser)
	for _, v := range []string{
		"", "garbage", valid[:len(valid)/2], valid + "AA", strings.Repeat("A", 10<<10), "\xff\xfe",
		"*", "a:b", "%0d%0aX-Auth: 1", valid[:len(valid)-3] + "xyz",
	} {
		req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/api", nil)
		req.Header.Set("Cookie", g.h.sessions.cookieName+"="+v)
		resp, _ := do(t, &http.Client{}, req)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("cookie %q: status %d, want 401", web.Clip(v, 20), resp.StatusCode)
		}
	}
	if g.store.Len() != 1 {
		t.Errorf("sessions = %d, want 1", g.store.Len())
	}
}

func TestSES04_CookieAttributes(t *testing.T) {
	h := &Handler{Issuer: "https://idp.example.com", ClientID: "app", Secrets: []string{testSecret}}
	if err := provision(t, h); err != nil {
		t.Fatal(err)
	}
	c := h.sessions.cookie(h.sessions.cookieName, "v", 60)
	if c.Name != "__Host-trustgate" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Errorf("session cookie = %+v, want __Host- prefix, Secure, HttpOnly, SameSite=Lax, Path=/, no Domain", c)
	}
	if !strings.HasPrefix(h.sessions.txPrefix, "__Host-") {
		t.Errorf("login cookie prefix %q lacks __Host-", h.sessions.txPrefix)
	}
}

func TestSES08_SessionOfAnotherClientIsNoSession(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	other := &Handler{Issuer: g.op.Issuer(), ClientID: oidctest.OtherClientID, ClientSecret: "x", Secrets: []string{testSecret}, InsecureCookie: true}
	if err := provision(t, other); err != nil {
		t.Fatal(err)
	}
	other.store = g.store // same store, same cookie key and name: only the client differs
	req, _ := http.NewRequest(http.MethodGet, "http://app.test/api", nil)
	req.Header.Set("Cookie", g.h.sessions.cookieName+"="+g.sessionCookie(g.browser))
	if _, err := other.sessions.current(req); err == nil {
		t.Error("a session of another client_id was accepted")
	}
}

func TestHDR04_NonASCIIClaimsEncoded(t *testing.T) {
	g := newGateway(t, withStandardHeaders("all"))
	g.mustLogin("ase")
	v := g.upstream.Header().Get("X-Auth-Name")
	if !strings.HasPrefix(v, "=?UTF-8?B?") {
		t.Fatalf("X-Auth-Name = %q, want an RFC 2047 encoded-word", v)
	}
	b, _ := base64.StdEncoding.DecodeString(strings.TrimSuffix(strings.TrimPrefix(v, "=?UTF-8?B?"), "?="))
	if string(b) != "Åse Øvrebø" {
		t.Errorf("decoded X-Auth-Name = %q, want Åse Øvrebø", b)
	}
}

func TestHDR09_SecretsStayInTheGateway(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/app", nil)
	req.Header.Set("Cookie", "app_pref=dark; "+g.h.sessions.cookieName+"="+g.sessionCookie(g.browser)+"; "+g.h.sessions.txPrefix+"abc=1; other=2")
	resp, _ := do(t, &http.Client{}, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("request with the session cookie = %d", resp.StatusCode)
	}
	if got := g.upstream.Header().Get("Cookie"); got != "app_pref=dark; other=2" {
		t.Errorf("upstream Cookie = %q, want the application's cookies only", got)
	}
	s := g.storeOnly(t)
	for name, vs := range g.upstream.Header() {
		for _, v := range vs {
			for _, tok := range []string{s.AccessToken, s.IDToken, s.RefreshToken} {
				if tok != "" && strings.Contains(v, tok) {
					t.Errorf("upstream header %s carries a token", name)
				}
			}
		}
	}
	_, me := g.get(g.browser, g.srv.URL+"/.trustgate/me")
	for _, tok := range []string{s.AccessToken, s.IDToken, s.RefreshToken} {
		if tok != "" && strings.Contains(me, tok) {
			t.Error("/.trustgate/me returns a token")
		}
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
