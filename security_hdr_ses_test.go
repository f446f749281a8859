package trustgate

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
)

// Tests for the threat model (docs/threat-model.md) section C.4 (session & cookies) and C.5 (headers).

func forgedRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	// Header names are set raw: Go would canonicalize them, hiding the variants.
	for name, v := range map[string]string{
		"X-Auth-Subject": "admin", "X-Auth-Email": "ceo@example.com", "X-Auth-Groups": "admins",
		"X-Auth_Subject": "admin", "X_Auth_Subject": "admin", "x-auth-alias": "admin",
		"X-AUTH-NEW-USER": "forged-false", "X-Trust-Device-Count": "99", "x_trust_first_login": "1",
	} {
		req.Header[name] = []string{v}
	}
	req.Header.Add("X-Auth-Subject", "second-line")
	return req
}

func assertNoForgedHeader(t *testing.T, h http.Header) {
	t.Helper()
	for name, vs := range h {
		for _, v := range vs {
			if v == "admin" || v == "ceo@example.com" || v == "admins" || v == "second-line" || v == "99" || v == "forged-false" {
				t.Errorf("upstream received forged %s: %q", name, v)
			}
		}
		n := strings.ReplaceAll(strings.ToLower(name), "_", "-")
		if strings.HasPrefix(n, "x-auth-") && name != http.CanonicalHeaderKey(name) {
			t.Errorf("upstream received a non-canonical identity header variant %q", name)
		}
	}
}

func TestHDR01_ForgedIdentityHeadersOnEveryPath(t *testing.T) {
	g := newGateway(t, withStandardHeaders("all"))
	g.mustLogin("bindid-known")
	resp, _ := do(t, g.browser, forgedRequest(t, http.MethodGet, g.srv.URL+"/app"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authenticated request = %d", resp.StatusCode)
	}
	got := g.upstream.Header()
	assertNoForgedHeader(t, got)
	if v := got.Values("X-Auth-Subject"); len(v) != 1 || v[0] != oidctest.SubjectBindIDKnown {
		t.Errorf("X-Auth-Subject = %q, want exactly the verified subject", v)
	}
	if got.Get("X-Trust-Device-Count") != "2" {
		t.Errorf("X-Trust-Device-Count = %q, want 2 (seed 000)", got.Get("X-Trust-Device-Count"))
	}

	// Unauthenticated requests and gateway endpoints never reach the upstream at all.
	calls := g.upstream.Calls()
	g.op.SetAutoLogin("")
	stop := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/app", "/.trustgate/callback?state=x", "/.trustgate/me", "/.trustgate/nope"} {
		do(t, stop, forgedRequest(t, http.MethodGet, g.srv.URL+path))
		do(t, stop, forgedRequest(t, http.MethodPost, g.srv.URL+path))
	}
	do(t, g.browser, forgedRequest(t, http.MethodGet, g.srv.URL+"/.trustgate/me"))
	if g.upstream.Calls() != calls {
		t.Errorf("upstream reached by %d unauthenticated or gateway requests", g.upstream.Calls()-calls)
	}
}

func TestHDR02_AbsentClaimForgedHeaderRemoved(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-new") // no bindid_alias
	req := forgedRequest(t, http.MethodGet, g.srv.URL+"/app")
	req.Header.Set("X-Auth-Alias", "victim@domain")
	do(t, g.browser, req)
	got := g.upstream.Header()
	if v := got.Values("X-Auth-Alias"); len(v) != 0 {
		t.Errorf("X-Auth-Alias = %q for a user without alias, want absent", v)
	}
	if got.Get("X-Auth-New-User") != "true" {
		t.Errorf("X-Auth-New-User = %q, want true", got.Get("X-Auth-New-User"))
	}
}

func TestHDR03_HeaderNameVariants(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("ola")
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/app", nil)
	for _, name := range []string{"X-Auth_Alias", "X_Auth_Alias", "x-auth-alias", "X-AUTH-ALIAS", "X-Trust_Device_Count", "X_TRUST_USER_LAST_SEEN"} {
		req.Header[name] = []string{"admin"}
	}
	do(t, g.browser, req)
	got := g.upstream.Header()
	assertNoForgedHeader(t, got)
	for name := range got {
		if strings.Contains(name, "_") {
			t.Errorf("upstream received %q", name)
		}
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

func TestSES01_RandomLoginValues(t *testing.T) {
	g := newGateway(t)
	seen := map[string]bool{}
	for range 300 {
		q := g.startLogin(g.newBrowser(), "/app").Query()
		for _, k := range []string{"state", "nonce"} {
			v := q.Get(k)
			if len(v) != 43 || seen[v] {
				t.Fatalf("%s %q: want 43 characters (256 bits), never repeated", k, v)
			}
			seen[v] = true
		}
	}
}

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

// storeOnly returns the only session in the gateway's store.
func (g *gateway) storeOnly(t *testing.T) *sessionView {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL, nil)
	req.Header.Set("Cookie", g.h.sessions.cookieName+"="+g.sessionCookie(g.browser))
	s, err := g.h.sessions.current(req)
	if err != nil {
		t.Fatalf("no session: %v", err)
	}
	return &sessionView{AccessToken: s.AccessToken, IDToken: s.IDToken, RefreshToken: s.RefreshToken}
}

type sessionView struct{ AccessToken, IDToken, RefreshToken string }
