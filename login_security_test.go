package trustgate

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
)

// Threat model (docs/threat-model.md) FL-01..14, SES-01, OPS-03, OPS-12, LIM-03, LIM-07: the login flow of login.go.

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

func TestFL04_CodeInjection(t *testing.T) {
	// The provider binds a code to its client, redirect_uri and PKCE challenge; a code that
	// was not issued for this browser's own transaction comes back invalid_grant and the
	// login is refused. The victim's state and transaction cookie are genuine each time.
	inject := func(g *gateway, code string) (*http.Response, string) {
		victim := g.authorize(g.startLogin(g.browser, "/app")) // the victim's callback
		q := victim.Query()
		q.Set("code", code)
		victim.RawQuery = q.Encode()
		return g.get(g.browser, victim.String())
	}
	t.Run("the attacker's code from the attacker's own transaction", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-new")
		code := g.authorize(g.startLogin(g.newBrowser(), "/app")).Query().Get("code")
		g.op.SetAutoLogin("bindid-known")
		resp, body := inject(g, code)
		g.sweepRejected(resp, body, http.StatusBadRequest)
		if n := g.op.Counts().Token; n != 1 {
			t.Errorf("token requests = %d, want 1", n)
		}
	})
	t.Run("a code issued to another client", func(t *testing.T) {
		g := newGateway(t, func(_ *Handler, o *oidctest.Options) {
			other := oidctest.DefaultClient()
			other.ID, other.Secret = "attacker-client", "attacker-client-secret"
			o.Clients = []oidctest.Client{oidctest.DefaultClient(), other}
		})
		g.op.SetAutoLogin("bindid-known")
		authURL := g.startLogin(g.newBrowser(), "/app")
		q := authURL.Query()
		q.Set("client_id", "attacker-client")
		authURL.RawQuery = q.Encode()
		code := g.authorize(authURL).Query().Get("code")
		resp, body := inject(g, code)
		g.sweepRejected(resp, body, http.StatusBadRequest)
	})
	t.Run("a code bound to another redirect_uri", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		authURL := g.startLogin(g.newBrowser(), "/app")
		q := authURL.Query()
		q.Set("redirect_uri", "http://127.0.0.1:1/elsewhere/callback")
		authURL.RawQuery = q.Encode()
		code := g.authorize(authURL).Query().Get("code") // same PKCE challenge, other redirect_uri
		resp, body := inject(g, code)
		g.sweepRejected(resp, body, http.StatusBadRequest)
	})
	t.Run("a provider that names PKCE methods without S256 is refused", func(t *testing.T) {
		issuer := sweepStubIssuer(t, func(doc map[string]any) { doc["code_challenge_methods_supported"] = []string{"plain"} })
		h, _ := sweepHandlerFor(t, issuer, nil)
		rec := &recorder{}
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "http://app.test/app", nil)
		req.Header.Set("Accept", "text/html")
		if err := h.ServeHTTP(w, req, rec); err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Location") != "" || rec.Calls() != 0 {
			t.Errorf("login against an OP without S256: %d Location %q upstream %d; want 503, no redirect, no upstream", w.Code, w.Header().Get("Location"), rec.Calls())
		}
	})
	t.Run("a provider that does not advertise PKCE: S256 still sent, and a warning", func(t *testing.T) {
		issuer := sweepStubIssuer(t, func(doc map[string]any) { delete(doc, "code_challenge_methods_supported") })
		h, logs := sweepHandlerFor(t, issuer, nil)
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "http://app.test/app", nil)
		req.Header.Set("Accept", "text/html")
		if err := h.ServeHTTP(w, req, &recorder{}); err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(w.Header().Get("Location"))
		if w.Code != http.StatusFound || u.Query().Get("code_challenge_method") != "S256" || u.Query().Get("code_challenge") == "" {
			t.Fatalf("login start: %d %q, want a redirect with a S256 challenge", w.Code, w.Header().Get("Location"))
		}
		// threat model FL-04: the module refuses, or loudly warns, when the metadata does not
		// show S256 support (code injection protection then rests on an unverified
		// assumption).
		if !logs.has(func(e observedEntry) bool {
			return e.Level >= zapcore.WarnLevel && strings.Contains(e.Message+e.Fields, "code_challenge_methods_supported")
		}) {
			t.Error("no warning logged that the provider does not advertise code_challenge_methods_supported (S256)")
		}
	})
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

// An authorization error that refuses the gateway's own request is 502 and names the
// mechanism in the log; without state (a used PAR request_uri) only the error code is
// shown, never a description nobody's login asked for, and nothing is created.
func TestFL06_OPRefusesTheGatewaysRequest(t *testing.T) {
	g := newGateway(t)
	g.op.SetFaults(oidctest.Faults{AuthorizeError: "invalid_request_object", AuthorizeErrorDescription: "request object signature invalid"})
	resp, body := g.login("bindid-known", "/app")
	g.assertRejectedLogin(resp, body, http.StatusBadGateway)
	if !strings.Contains(body, "refused this site&#39;s request (invalid_request_object)") {
		t.Errorf("page %q, want the 502 wording with the code", web.Clip(body, 400))
	}

	core, logs := observer.New(zapcore.InfoLevel)
	g2 := newGateway(t)
	g2.h.logger = zap.New(core)
	resp, body = g2.navigate(g2.browser, "/.trustgate/callback?error=invalid_request_uri&error_description=Call+0800+to+unlock+your+account")
	g2.assertRejectedLogin(resp, body, http.StatusBadGateway)
	if strings.Contains(body, "0800") || !strings.Contains(body, "invalid_request_uri") {
		t.Errorf("stateless error page %q: want the code only, without the description", web.Clip(body, 400))
	}
	// A code of the attacker's own is not shown either, and nothing logs at error level.
	resp, body = g2.navigate(g2.browser, "/.trustgate/callback?error=Account_locked_call_0800")
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(body, "0800") || !strings.Contains(body, "unrecognized_error") || len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("unknown stateless error: %d %q, want 400 naming unrecognized_error, no cookie", resp.StatusCode, web.Clip(body, 300))
	}
	for _, e := range logs.All() {
		if e.Level >= zapcore.ErrorLevel {
			t.Errorf("a stateless error response logged at %s: %s %v", e.Level, e.Message, e.ContextMap())
		}
	}
	resp, _ = g2.navigate(g2.browser, "/.trustgate/callback?error=access_denied")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("stateless access_denied: %d, want 403", resp.StatusCode)
	}
	if g2.op.Counts().Token != 0 {
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

func TestFL11_ClientSuppliedAuthorizationParametersIgnored(t *testing.T) {
	g := newGateway(t)
	evil := url.Values{
		"scope": {"openid admin offline_access"}, "prompt": {"none"}, "redirect_uri": {"https://evil.example/cb"},
		"response_type": {"token id_token"}, "response_mode": {"form_post"}, "client_id": {"other-client"},
		"claims":  {`{"id_token":{"acr":{"essential":true,"value":"weak"}}}`},
		"request": {"eyJhbGciOiJub25lIn0.eyJzY29wZSI6ImFkbWluIn0."}, "request_uri": {"https://evil.example/request.jwt"},
		"state": {"attacker-state"}, "nonce": {"attacker-nonce"}, "code_challenge": {"attacker-challenge"},
		"code_challenge_method": {"plain"}, "acr_values": {"weak"}, "max_age": {"999999"}, "ui_locales": {"xx"},
		"iss": {"https://evil.example"}, "target_link_uri": {"https://evil.example/landing"},
	}
	for _, start := range []string{"/.trustgate/login?", "/app?"} {
		t.Run(strings.Trim(start, "?"), func(t *testing.T) {
			u := g.startLogin(g.newBrowser(), start+evil.Encode()+"&login_hint=ola%40example.org")
			if !strings.HasPrefix(u.String(), g.op.Issuer()+oidctest.PathAuthorize+"?") {
				t.Fatalf("authorization URL %s is not the configured provider's", u)
			}
			q := u.Query()
			for k, vs := range q {
				if len(vs) != 1 {
					t.Errorf("authorization parameter %s appears %d times", k, len(vs))
				}
			}
			want := map[string]string{
				"client_id": oidctest.DefaultClientID, "redirect_uri": g.srv.URL + "/.trustgate/callback",
				"response_type": "code", "scope": "openid email profile", "code_challenge_method": "S256",
			}
			for k, v := range want {
				if q.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, q.Get(k), v)
				}
			}
			for _, k := range []string{"prompt", "response_mode", "claims", "request", "request_uri", "acr_values", "max_age", "ui_locales", "iss", "target_link_uri"} {
				if q.Has(k) {
					t.Errorf("client-supplied %s=%q reached the provider", k, q.Get(k))
				}
			}
			for _, k := range []string{"state", "nonce", "code_challenge"} {
				if v := q.Get(k); v == evil.Get(k) || len(v) != 43 {
					t.Errorf("%s = %q, want the gateway's own 43-character value", k, v)
				}
			}
			// login_hint (who signs in) is the one parameter passed on, and only explicitly.
			wantHint := ""
			if start == "/.trustgate/login?" {
				wantHint = "ola@example.org"
			}
			if got := q.Get("login_hint"); got != wantHint {
				t.Errorf("login_hint = %q, want %q", got, wantHint)
			}
		})
	}
	t.Run("third-party initiated login with a foreign iss and target_link_uri", func(t *testing.T) {
		g := newGateway(t)
		g.mustLogin("bindid-known")
		before := g.sessionCookie(g.browser)
		authURL := g.startLogin(g.browser, "/.trustgate/login?"+url.Values{"iss": {"https://evil.example"}, "target_link_uri": {"https://evil.example/x"}}.Encode())
		if !strings.HasPrefix(authURL.String(), g.op.Issuer()+"/") {
			t.Errorf("login went to %s, not the configured provider", authURL)
		}
		// No silent switch: the existing session stays until a new login completes.
		if g.sessionCookie(g.browser) != before || g.store.Len() != 1 {
			t.Error("starting a login ended or replaced the existing session")
		}
		resp, _ := g.get(g.noRedirects(), g.authorize(authURL).String())
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "/" {
			t.Errorf("after the login: %d Location %q, want 302 to / (target_link_uri is not a return target)", resp.StatusCode, loc)
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

func TestFL14_TokenEndpointResponseAnomalies(t *testing.T) {
	tok := func(f func(r map[string]any)) oidctest.Faults { return oidctest.Faults{MutateTokenResponse: f} }
	for _, tc := range []struct {
		name   string
		faults oidctest.Faults
		status int
	}{
		{"token_type MAC", oidctest.Faults{TokenType: "MAC"}, http.StatusUnauthorized},
		{"token_type DPoP", oidctest.Faults{TokenType: "DPoP"}, http.StatusUnauthorized},
		{"token_type not a string", tok(func(r map[string]any) { r["token_type"] = 1 }), http.StatusUnauthorized},
		{"no access_token", tok(func(r map[string]any) { delete(r, "access_token") }), http.StatusUnauthorized},
		{"access_token not a string", tok(func(r map[string]any) { r["access_token"] = 42 }), http.StatusUnauthorized},
		{"no id_token although openid was requested", oidctest.Faults{IDTokenOmit: true}, http.StatusUnauthorized},
		{"id_token not a string", tok(func(r map[string]any) { r["id_token"] = 42 }), http.StatusUnauthorized},
		{"id_token an object", tok(func(r map[string]any) { r["id_token"] = map[string]any{"sub": "admin"} }), http.StatusUnauthorized},
		{"id_token an array of tokens", tok(func(r map[string]any) { r["id_token"] = []any{r["id_token"], r["id_token"]} }), http.StatusUnauthorized},
		{"expires_in not a number", tok(func(r map[string]any) { r["expires_in"] = "soon" }), http.StatusUnauthorized},
		{"HTTP 200 carrying an error", oidctest.Faults{TokenError: "invalid_request", TokenErrorStatus: http.StatusOK}, http.StatusBadGateway},
		{"HTML 200", oidctest.Faults{TokenHTML: true}, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t)
			g.op.SetFaults(tc.faults)
			resp, body := g.login("bindid-known", "/app")
			g.sweepRejected(resp, body, tc.status)
		})
	}
	for _, tc := range []struct {
		name   string
		faults oidctest.Faults
	}{
		{"token_type bEARER", oidctest.Faults{TokenType: "bEARER"}},
		{"no expires_in", oidctest.Faults{TokenOmitExpiresIn: true}},
		{"no scope", tok(func(r map[string]any) { delete(r, "scope") })},
		{"huge expires_in", tok(func(r map[string]any) { r["expires_in"] = int64(1) << 53 })},
	} {
		t.Run("accepted: "+tc.name, func(t *testing.T) {
			g := newGateway(t)
			g.op.SetFaults(tc.faults)
			g.mustLogin("bindid-known")
			s := g.stored()
			if latest := time.Now().Add(defaultLifetime + time.Minute); s.ExpiresAt.After(latest) {
				t.Errorf("session ends %v, later than the configured lifetime allows", s.ExpiresAt)
			}
			for range 3 {
				if resp, _ := g.api("/app"); resp.StatusCode != http.StatusOK {
					t.Fatalf("request with the session: %d", resp.StatusCode)
				}
			}
			if n := g.op.Counts().Refresh; n != 0 {
				t.Errorf("refresh grants = %d, want 0 (the access token is not due)", n)
			}
		})
	}
	// An access token the provider says is already expired (expires_in 0 or negative) must
	// not turn every request into a refresh grant: such a value is unknown expiry (as 0 and
	// an absent expires_in are) or a refused login, never "refresh now, every time".
	for _, v := range []int{0, -1, -3600} {
		t.Run("expires_in "+strconv.Itoa(v), func(t *testing.T) {
			g := newGateway(t)
			g.op.SetFaults(tok(func(r map[string]any) { r["expires_in"] = v }))
			resp, body := g.login("bindid-known", "/app")
			if resp.StatusCode == http.StatusOK {
				for range 5 {
					g.api("/app")
				}
				if n := g.op.Counts().Refresh; n > 1 {
					t.Errorf("refresh grants for 5 requests after a login with expires_in %d = %d: every request refreshes (a refresh storm against the provider)", v, n)
				}
				return
			}
			g.sweepRejected(resp, body, resp.StatusCode)
		})
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

func TestOPS12_CallbackDoubleSubmit(t *testing.T) {
	for _, n := range []int{2, 8} {
		t.Run(strconv.Itoa(n)+" concurrent callbacks", func(t *testing.T) {
			g := newGateway(t)
			g.op.SetAutoLogin("bindid-known")
			cb := g.authorize(g.startLogin(g.browser, "/app"))
			cookies := g.browser.Jar.Cookies(cb)
			type result struct {
				status  int
				session bool
			}
			results := make(chan result, n)
			start := make(chan struct{})
			for range n {
				go func() {
					req, _ := http.NewRequest(http.MethodGet, cb.String(), nil)
					for _, c := range cookies {
						req.AddCookie(c)
					}
					<-start
					resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
					if err != nil {
						results <- result{}
						return
					}
					resp.Body.Close()
					got := false
					for _, c := range resp.Cookies() {
						if c.Name == g.h.sessions.cookieName && c.MaxAge > 0 {
							got = true
						}
					}
					results <- result{resp.StatusCode, got}
				}()
			}
			close(start)
			winners, losers := 0, 0
			for range n {
				r := <-results
				switch {
				case r.status == http.StatusFound && r.session:
					winners++
				case r.status == http.StatusBadRequest && !r.session:
					losers++
				default:
					t.Errorf("callback answered %d (session cookie %v), want 302 with a session or 400", r.status, r.session)
				}
			}
			if winners != 1 || losers != n-1 {
				t.Errorf("winners %d, losers %d; want exactly one session", winners, losers)
			}
			if s := g.store.Len(); s != 1 {
				t.Errorf("sessions = %d, want 1", s)
			}
			if c := g.op.Counts(); c.Token != 1 || c.CodeReuse != 0 {
				t.Errorf("token requests %d (code reuse %d), want exactly one code exchange", c.Token, c.CodeReuse)
			}
		})
	}
}

func TestLIM03_PendingLoginFlood(t *testing.T) {
	g := newGateway(t)
	g.op.SetAutoLogin("bindid-known")
	pending := func() int {
		u, _ := url.Parse(g.srv.URL)
		n := 0
		for _, c := range g.browser.Jar.Cookies(u) {
			if strings.HasPrefix(c.Name, g.h.sessions.txPrefix) {
				n++
			}
		}
		return n
	}
	var last *url.URL
	for i := range 300 {
		last = g.startLogin(g.browser, "/app?i="+strconv.Itoa(i))
		if n := pending(); n > maxPendingLogins {
			t.Fatalf("after %d navigations the browser holds %d login transactions, want at most %d", i+1, n, maxPendingLogins)
		}
	}
	if n := pending(); n != maxPendingLogins {
		t.Errorf("pending transactions = %d, want %d", n, maxPendingLogins)
	}
	// Many browsers: the transactions live in the browsers' sealed cookies, so anonymous
	// traffic puts nothing in the store.
	for range 500 {
		g.startLogin(g.newBrowser(), "/app")
	}
	if n := g.store.Len(); n != 0 {
		t.Errorf("sessions after the flood = %d, want 0", n)
	}
	// A real user can still log in: the newest transaction completes.
	resp, _ := g.get(g.noRedirects(), g.authorize(last).String())
	if resp.StatusCode != http.StatusFound || g.store.Len() != 1 {
		t.Errorf("login after the flood: %d, sessions %d; want 302 and 1", resp.StatusCode, g.store.Len())
	}
	if resp, body := g.navigate(g.browser, "/app"); resp.StatusCode != http.StatusOK || body != "upstream: /app" {
		t.Errorf("after the flood and a login: %d %q", resp.StatusCode, web.Clip(body, 100))
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

// `par off` against a provider that requires PAR: the first login logs one warning that
// says what to remove, once per issuer.
func TestPAROffAgainstRequiredPARWarns(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	g := newGateway(t, func(h *Handler, o *oidctest.Options) { h.PAR = "off" })
	g.op.SetFaults(oidctest.Faults{DiscoveryExtra: map[string]any{"require_pushed_authorization_requests": true}})
	parOffWarned.Delete(g.h.Issuer)
	g.h.logger = zap.New(core)
	for range 2 {
		g.startLogin(g.newBrowser(), "/app")
	}
	n := 0
	for _, e := range logs.All() {
		if e.ContextMap()["reason"] == "par_off_but_required" && strings.Contains(e.Message, "remove `par off`") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d par_off_but_required warnings, want 1", n)
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
