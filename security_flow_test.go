package trustgate

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
)

// Tests for the threat model (docs/threat-model.md) section C.3 (flow, state, PKCE, redirects).

func (g *gateway) get(c *http.Client, rawURL string) (*http.Response, string) {
	g.t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	return do(g.t, c, req)
}

func TestFL01_MissingOrForeignState(t *testing.T) {
	t.Run("no state", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		cb := g.authorize(g.startLogin(g.browser, "/app"))
		q := cb.Query()
		q.Del("state")
		cb.RawQuery = q.Encode()
		resp, body := g.get(g.browser, cb.String())
		g.assertRejectedLogin(resp, body, http.StatusBadRequest)
		if g.op.Counts().Token != 0 {
			t.Error("token endpoint called without a state")
		}
	})
	t.Run("state of another browser's transaction", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		other := g.newBrowser()
		otherCB := g.authorize(g.startLogin(other, "/x"))
		mine := g.authorize(g.startLogin(g.browser, "/app"))
		q := mine.Query()
		q.Set("state", otherCB.Query().Get("state"))
		mine.RawQuery = q.Encode()
		resp, body := g.get(g.browser, mine.String())
		g.assertRejectedLogin(resp, body, http.StatusBadRequest)
		if g.op.Counts().Token != 0 {
			t.Error("token endpoint called with a foreign state")
		}
	})
	t.Run("valid state without the transaction cookie", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		cb := g.authorize(g.startLogin(g.browser, "/app"))
		resp, body := g.get(g.newBrowser(), cb.String())
		g.assertRejectedLogin(resp, body, http.StatusBadRequest)
		if g.op.Counts().Token != 0 {
			t.Error("token endpoint called without the browser binding cookie")
		}
	})
	t.Run("state that cannot be a transaction id", func(t *testing.T) {
		g := newGateway(t)
		resp, body := g.get(g.browser, g.srv.URL+"/.trustgate/callback?code=x&state="+url.QueryEscape("a;b=c\r\n"))
		g.assertRejectedLogin(resp, body, http.StatusBadRequest)
	})
}

func TestFL02_ReplayAndInvalidGrant(t *testing.T) {
	t.Run("consumed callback URL", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		cb := g.authorize(g.startLogin(g.browser, "/app"))
		saved := g.browser.Jar.Cookies(cb)
		if resp, _ := g.get(g.noRedirects(), cb.String()); resp.StatusCode != http.StatusFound {
			t.Fatalf("first callback = %d, want 302", resp.StatusCode)
		}
		replay := g.newBrowser()
		replay.Jar.SetCookies(cb, saved)
		resp, body := g.get(replay, cb.String())
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Please sign in again") {
			t.Errorf("replay = %d %q, want 400 with a restart hint", resp.StatusCode, web.Clip(body, 200))
		}
		if !strings.Contains(body, `href="/.trustgate/login"`) {
			t.Error("replay page has no link to start a new login")
		}
	})
	t.Run("invalid_grant from the OP", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetFaults(oidctest.Faults{TokenError: "invalid_grant"})
		resp, body := g.login("bindid-known", "/app")
		g.assertRejectedLogin(resp, body, http.StatusBadRequest)
	})
	t.Run("code reused at the OP", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		authURL := g.startLogin(g.browser, "/app")
		cb := g.authorize(authURL)
		// Redeem the code first, as an attacker who intercepted it would.
		if _, err := (&http.Client{}).PostForm(g.op.Issuer()+"/token", url.Values{
			"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")}, "client_id": {"trustgate"},
			"client_secret": {"trustgate-dev-secret"}, "redirect_uri": {authURL.Query().Get("redirect_uri")},
		}); err != nil {
			t.Fatal(err)
		}
		resp, body := g.get(g.browser, cb.String())
		g.assertRejectedLogin(resp, body, http.StatusBadRequest)
	})
}

func TestFL03_PKCEParameters(t *testing.T) {
	g := newGateway(t)
	seen := map[string]bool{}
	for range 200 {
		u := g.startLogin(g.newBrowser(), "/app")
		q := u.Query()
		if q.Get("code_challenge_method") != "S256" {
			t.Fatalf("code_challenge_method = %q, want S256", q.Get("code_challenge_method"))
		}
		ch := q.Get("code_challenge")
		if len(ch) != 43 || seen[ch] {
			t.Fatalf("code_challenge %q: want 43 characters, unique", ch)
		}
		seen[ch] = true
		if strings.Contains(u.RawQuery, "code_verifier") {
			t.Fatal("the PKCE verifier appears in the authorization URL")
		}
	}
	tx := oidcflow.NewTransaction()
	if len(tx.Verifier) != 43 {
		t.Errorf("verifier length = %d, want 43 (256 bits)", len(tx.Verifier))
	}
}

func TestFL05_ResponseIssuerMixUp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults oidctest.Faults
	}{
		{"iss parameter names another issuer", oidctest.Faults{AuthorizeWrongIssuer: true}},
		{"iss parameter missing although advertised", oidctest.Faults{AuthorizeMissingIssuer: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t)
			g.op.SetFaults(tc.faults)
			resp, body := g.login("bindid-known", "/app")
			g.assertRejectedLogin(resp, body, http.StatusBadRequest)
			if g.op.Counts().Token != 0 {
				t.Error("token endpoint called although the authorization response failed the RFC 9207 check")
			}
		})
	}
}

func TestFL06_OPErrorIsEscaped(t *testing.T) {
	g := newGateway(t)
	g.op.SetFaults(oidctest.Faults{AuthorizeError: "access_denied", AuthorizeErrorDescription: `<script>alert("x")</script>` + strings.Repeat("A", 20000)})
	resp, body := g.login("bindid-known", "/app")
	g.assertRejectedLogin(resp, body, http.StatusForbidden)
	if strings.Contains(body, "<script>") {
		t.Error("OP error description reflected unescaped")
	}
	if !strings.Contains(body, "&lt;script&gt;") || !strings.Contains(body, "access_denied") {
		t.Errorf("error page does not show the escaped OP error: %q", web.Clip(body, 300))
	}
	if len(body) > 4000 {
		t.Errorf("error page is %d bytes; a 20 KB description must be clipped", len(body))
	}
	if g.op.Counts().Token != 0 {
		t.Error("token endpoint called on an error response")
	}
}

func TestFL07_DuplicatedCallbackParameters(t *testing.T) {
	for _, dup := range []string{"state", "code"} {
		t.Run(dup+" twice", func(t *testing.T) {
			g := newGateway(t)
			g.op.SetAutoLogin("bindid-known")
			cb := g.authorize(g.startLogin(g.browser, "/app"))
			cb.RawQuery += "&" + dup + "=" + url.QueryEscape(cb.Query().Get(dup))
			resp, body := g.get(g.browser, cb.String())
			g.assertRejectedLogin(resp, body, http.StatusBadRequest)
			if g.op.Counts().Token != 0 {
				t.Error("token endpoint called with duplicated parameters")
			}
		})
	}
	t.Run("code and error", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		cb := g.authorize(g.startLogin(g.browser, "/app"))
		cb.RawQuery += "&error=access_denied"
		resp, body := g.get(g.browser, cb.String())
		g.assertRejectedLogin(resp, body, http.StatusBadRequest)
	})
}

// fl08Corpus are return targets that must never produce a Location off this origin.
var fl08Corpus = []string{
	"//evil.com", "/\\evil.com", "/\\t/evil.com", "/%09/evil.com", "/ /evil.com", "/./\\evil.com",
	"/../\\evil.com", "/%2F%2Fevil.com", "/%2f%2fevil.com", "/%5Cevil.com", "/%252F%252Fevil.com",
	"https://app.example.com.evil.com/", "https://evil.com/?rd=app.example.com",
	"https://app.example.com@evil.com/", "http://app.example.com:3838/", "javascript:alert(1)",
	"data:text/html,x", "https://аpp.example.com/", "/.//evil.com", "\t//evil.com", "evil.com",
	"///evil.com", "http:/evil.com", "https:evil.com", "/\r\n/evil.com",
}

func TestFL08_OpenRedirect(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "https://app.example.com/", nil)
	req.TLS = &tls.ConnectionState{}
	for _, target := range fl08Corpus {
		if got := web.SafeReturnPath(target, req); got != "/" {
			t.Errorf("web.SafeReturnPath(%q) = %q, want /", target, got)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"/dashboard?tab=1", "/dashboard?tab=1"},
		{"https://app.example.com/a/b?c=d", "/a/b?c=d"},
		{"HTTPS://APP.EXAMPLE.COM/x", "/x"},
		{"/" + strings.Repeat("a", 2000), "/"},
	} {
		if got := web.SafeReturnPath(tc.in, req); got != tc.want {
			t.Errorf("web.SafeReturnPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}

	t.Run("end to end through /login?rd=", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		for _, target := range []string{"//evil.com", "/\\evil.com", "https://evil.com/", "/%2F%2Fevil.com"} {
			authURL := g.startLogin(g.browser, "/.trustgate/login?rd="+url.QueryEscape(target))
			resp, _ := g.get(g.noRedirects(), g.authorize(authURL).String())
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/" {
				t.Errorf("after login with rd=%q: %d Location %q, want 302 to /", target, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		authURL := g.startLogin(g.browser, "/.trustgate/login?rd="+url.QueryEscape("/reports?y=2026"))
		resp, _ := g.get(g.noRedirects(), g.authorize(authURL).String())
		if got := resp.Header.Get("Location"); got != "/reports?y=2026" {
			t.Errorf("after login with a safe rd: Location %q, want /reports?y=2026", got)
		}
	})
	t.Run("a protected path that looks like a scheme-relative URL", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		resp, _ := g.get(g.noRedirects(), g.authorize(g.startLogin(g.browser, "//evil.com/x")).String())
		if got := resp.Header.Get("Location"); got != "/" {
			t.Errorf("return Location = %q, want /", got)
		}
	})
}

func TestFL09_ReturnTargetBoundToTransaction(t *testing.T) {
	g := newGateway(t)
	g.op.SetAutoLogin("bindid-known")
	a := g.startLogin(g.browser, "/a")
	g.startLogin(g.browser, "/b")
	resp, _ := g.get(g.noRedirects(), g.authorize(a).String())
	if got := resp.Header.Get("Location"); got != "/a" {
		t.Errorf("login A lands on %q, want /a", got)
	}
}

func TestFL10_RequestDerivedURLs(t *testing.T) {
	spoof := func(req *http.Request) {
		req.Header.Set("X-Forwarded-Host", "evil.example")
		req.Header.Set("X-Forwarded-Proto", "evil_protocol")
		req.Header.Set("Forwarded", "host=evil.example;proto=https")
		req.Header.Set("Accept", "text/html")
	}
	t.Run("forwarded headers ignored for the derived redirect_uri", func(t *testing.T) {
		g := newGateway(t)
		req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/app", nil)
		spoof(req)
		resp, _ := do(t, g.noRedirects(), req)
		loc := resp.Header.Get("Location")
		if strings.Contains(loc, "evil") {
			t.Fatalf("Location %q uses a forwarded header", loc)
		}
		u, _ := url.Parse(loc)
		if got, want := u.Query().Get("redirect_uri"), g.srv.URL+"/.trustgate/callback"; got != want {
			t.Errorf("redirect_uri = %q, want %q", got, want)
		}
	})
	t.Run("configured redirect_url wins over Host", func(t *testing.T) {
		const configured = "http://app.example.test/.trustgate/callback"
		g := newGateway(t, func(h *Handler, _ *oidctest.Options) { h.RedirectURL = configured })
		req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/app", nil)
		req.Host = "evil.example"
		spoof(req)
		resp, _ := do(t, g.noRedirects(), req)
		loc := resp.Header.Get("Location")
		u, _ := url.Parse(loc)
		if strings.Contains(loc, "evil") || u.Query().Get("redirect_uri") != configured {
			t.Errorf("Location %q: want redirect_uri %q and no trace of the spoofed host", loc, configured)
		}
	})
}

func TestFL12_NoCachingNoReferrer(t *testing.T) {
	g := newGateway(t)
	g.op.SetAutoLogin("bindid-known")
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/app", nil)
	req.Header.Set("Accept", "text/html")
	resp, _ := do(t, g.noRedirects(), req)
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("login redirect Cache-Control = %q, want no-store", resp.Header.Get("Cache-Control"))
	}
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	resp, _ = g.get(g.noRedirects(), g.authorize(authURL).String())
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("callback headers Cache-Control=%q Referrer-Policy=%q, want no-store and no-referrer",
			resp.Header.Get("Cache-Control"), resp.Header.Get("Referrer-Policy"))
	}
	if loc := resp.Header.Get("Location"); strings.Contains(loc, "code=") || strings.Contains(loc, "state=") {
		t.Errorf("callback redirects to %q, which still carries the code or state", loc)
	}
}

func TestFL15_UnauthenticatedRequests(t *testing.T) {
	g := newGateway(t)
	cases := []struct {
		name   string
		method string
		header map[string]string
	}{
		{"fetch", http.MethodGet, map[string]string{"Accept": "*/*", "Sec-Fetch-Mode": "cors"}},
		{"XHR", http.MethodGet, map[string]string{"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}},
		{"API JSON", http.MethodGet, map[string]string{"Accept": "application/json"}},
		{"POST with body", http.MethodPost, map[string]string{"Accept": "text/html", "Content-Type": "application/x-www-form-urlencoded"}},
		{"DELETE", http.MethodDelete, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, g.srv.URL+"/api/data", strings.NewReader("secret=1"))
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, body := do(t, g.noRedirects(), req)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401", resp.StatusCode)
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "OIDC ") {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
			if !strings.Contains(resp.Header.Get("Content-Type"), "application/json") || !strings.Contains(body, `"error":"login_required"`) {
				t.Errorf("body = %q, want the JSON login_required error", body)
			}
			if len(resp.Header.Values("Set-Cookie")) != 0 {
				t.Error("a 401 created a login transaction cookie")
			}
		})
	}
	if g.upstream.Calls() != 0 {
		t.Errorf("upstream calls = %d, want 0", g.upstream.Calls())
	}
	if g.op.Counts().Authorize != 0 {
		t.Error("an API request started a login at the OP")
	}
}

func TestFL13_DiscoveryIssuerMismatch(t *testing.T) {
	g := newGateway(t)
	// Same OP, but the gateway is configured with a trailing slash: discovery must refuse.
	h := &Handler{Issuer: g.op.Issuer() + "/", ClientID: "trustgate", ClientSecret: "trustgate-dev-secret", Secrets: []string{testSecret}, InsecureCookie: true}
	if err := provision(t, h); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "http://app.test/app", nil)
	req.Header.Set("Accept", "text/html")
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, req, g.upstream); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("login with a mismatched issuer = %d (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if g.op.Counts().Authorize != 0 || g.upstream.Calls() != 0 {
		t.Error("the gateway went on although discovery named another issuer")
	}
}
