package trustgate

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/internal/oidctest"
)

const testAPIAudience = "https://api.example.test"

// withBearer turns bearer tokens on for testAPIAudience, requiring at+jwt.
func withBearer() gatewayOption {
	return func(h *Handler, _ *oidctest.Options) {
		h.Bearer = &BearerConfig{Audiences: []string{testAPIAudience}, RequireATJWT: true}
	}
}

// withRequire sets the trustgate block's own route policy.
func withRequire(rq *PolicyConfig) gatewayOption {
	return func(h *Handler, _ *oidctest.Options) { h.Require = rq }
}

// bearerGet sends an API GET to path with the given Authorization headers (none when
// empty) and the browser's cookies when withCookies.
func (g *gateway) bearerGet(path string, withCookies bool, auth ...string) (*http.Response, string) {
	g.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+path, nil)
	req.Header.Set("Accept", "application/json")
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if withCookies {
		c.Jar = g.browser.Jar
	}
	return do(g.t, c, req)
}

// validAccessToken is a valid at+jwt for testAPIAudience.
func (g *gateway) validAccessToken(scopes ...string) string {
	return g.op.SignAccessToken(g.op.AccessTokenClaims(testAPIAudience, oidctest.SubjectOla, scopes...), oidctest.AccessTokenOptions{})
}

// assertBearerRefused checks the RFC 6750 invalid_token answer: 401, the Bearer challenge,
// the bearer_invalid reason, no upstream call, no cookie, no session.
func assertBearerRefused(t *testing.T, g *gateway, resp *http.Response, body string, upstreamBefore, sessionsBefore int) {
	t.Helper()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401; body %s", resp.StatusCode, body)
	}
	if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, "error_description=") {
		t.Errorf("WWW-Authenticate = %q, want a Bearer invalid_token challenge", ch)
	}
	var out map[string]string
	if err := json.Unmarshal([]byte(body), &out); err != nil || out["error"] != "bearer_invalid" || out["message"] == "" {
		t.Errorf("body = %s, want JSON with error bearer_invalid and a message", body)
	}
	if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("Set-Cookie = %q, want none", sc)
	}
	if resp.Header.Get("Location") != "" {
		t.Errorf("Location = %q, want no redirect", resp.Header.Get("Location"))
	}
	if n := g.upstream.Calls(); n != upstreamBefore {
		t.Errorf("upstream calls = %d, want %d (not called)", n, upstreamBefore)
	}
	if n := g.store.Len(); n != sessionsBefore {
		t.Errorf("sessions = %d, want %d (none created)", n, sessionsBefore)
	}
}

func TestBearerValidTokenGetsIdentityHeaders(t *testing.T) {
	g := newGateway(t, withBearer())
	tok := g.validAccessToken("read", "write")
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/api/items", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Auth-Scopes", "admin")     // spoofed
	req.Header.Set("X-Auth-Subject", "attacker") // spoofed
	resp, body := do(t, http.DefaultClient, req)
	if resp.StatusCode != http.StatusOK || body != "upstream: /api/items" {
		t.Fatalf("%d %q, want the upstream", resp.StatusCode, body)
	}
	hd := g.upstream.Header()
	if got := hd.Get("X-Auth-Subject"); got != oidctest.SubjectOla {
		t.Errorf("X-Auth-Subject = %q, want %q", got, oidctest.SubjectOla)
	}
	if v := hd.Get("Authorization"); v != "" {
		t.Errorf("the upstream got the client's Authorization header (%d bytes); no token reaches the upstream", len(v))
	}
	if got := hd.Values("X-Auth-Scopes"); len(got) != 1 || got[0] != "read write" {
		t.Errorf("X-Auth-Scopes = %q, want [\"read write\"]", got)
	}
	if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 || g.store.Len() != 0 {
		t.Errorf("Set-Cookie %q, sessions %d; want none", sc, g.store.Len())
	}
	if g.upstream.repl["http.auth.user.id"] != oidctest.SubjectOla {
		t.Errorf("{http.auth.user.id} = %q, want the token's sub", g.upstream.repl["http.auth.user.id"])
	}

	// Warm: served from the cache (one entry, no new verification), same headers.
	if len(g.h.Bearer.cache.m) != 1 {
		t.Fatalf("cache entries = %d, want 1", len(g.h.Bearer.cache.m))
	}
	for range 3 {
		resp, _ = g.bearerGet("/api/items", false, "Bearer "+tok)
		if resp.StatusCode != http.StatusOK || g.upstream.Header().Get("X-Auth-Scopes") != "read write" {
			t.Fatalf("warm request: %d, scopes %q", resp.StatusCode, g.upstream.Header().Get("X-Auth-Scopes"))
		}
	}
	for _, e := range g.h.Bearer.cache.m {
		if limit := time.Now().Add(bearerCacheMaxTTL); e.until.After(limit) {
			t.Errorf("cache entry lives until %v, past %v", e.until, limit)
		}
	}
}

// TestIDT15_BearerTokenRefused: every bad bearer token gets 401 invalid_token, never
// a cookie fallback, never a redirect (threat model IDT-15 (c), LIM-04).
func TestIDT15_BearerTokenRefused(t *testing.T) {
	g := newGateway(t, withBearer())
	// A real ID token of this client, from a login.
	g.mustLogin(oidctest.SubjectOla)
	idToken := g.stored().IDToken
	sessions := g.store.Len()

	claims := func(edit func(map[string]any)) map[string]any {
		c := g.op.AccessTokenClaims(testAPIAudience, oidctest.SubjectOla, "read")
		edit(c)
		return c
	}
	sign := func(edit func(map[string]any), o oidctest.AccessTokenOptions) string {
		return g.op.SignAccessToken(claims(edit), o)
	}
	same := func(map[string]any) {}
	now := time.Now()
	cases := []struct {
		name string
		auth []string
	}{
		{"wrong signature", []string{"Bearer " + sign(same, oidctest.AccessTokenOptions{ForeignKey: true})}},
		{"alg none", []string{"Bearer " + sign(same, oidctest.AccessTokenOptions{Alg: "none"})}},
		{"HS256 with the client secret", []string{"Bearer " + sign(func(c map[string]any) { c["aud"] = []string{testAPIAudience, oidctest.DefaultClient().ID} }, oidctest.AccessTokenOptions{Alg: "HS256"})}},
		{"expired", []string{"Bearer " + sign(func(c map[string]any) {
			c["exp"] = now.Add(-10 * time.Minute).Unix()
			c["iat"] = now.Add(-20 * time.Minute).Unix()
		}, oidctest.AccessTokenOptions{})}},
		{"missing exp", []string{"Bearer " + sign(func(c map[string]any) { delete(c, "exp") }, oidctest.AccessTokenOptions{})}},
		{"not yet valid", []string{"Bearer " + sign(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Minute).Unix() }, oidctest.AccessTokenOptions{})}},
		{"wrong audience", []string{"Bearer " + sign(func(c map[string]any) { c["aud"] = "https://other-api.example.test" }, oidctest.AccessTokenOptions{})}},
		{"wrong issuer", []string{"Bearer " + sign(func(c map[string]any) { c["iss"] = "https://evil.example.test" }, oidctest.AccessTokenOptions{})}},
		{"ID token of this client", []string{"Bearer " + idToken}},
		{"ID token shape with at+jwt and the API audience", []string{"Bearer " + sign(func(c map[string]any) { c["nonce"] = "n-0S6_WzA2Mj" }, oidctest.AccessTokenOptions{})}},
		{"DPoP-bound (cnf jkt) without a proof", []string{"Bearer " + sign(func(c map[string]any) {
			c["cnf"] = map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
		}, oidctest.AccessTokenOptions{})}},
		{"typ JWT where at+jwt is required", []string{"Bearer " + sign(same, oidctest.AccessTokenOptions{Typ: "JWT"})}},
		{"typ absent where at+jwt is required", []string{"Bearer " + sign(same, oidctest.AccessTokenOptions{OmitTyp: true})}},
		{"typ logout+jwt", []string{"Bearer " + sign(same, oidctest.AccessTokenOptions{Typ: "logout+jwt"})}},
		{"64 KiB of garbage", []string{"Bearer " + strings.Repeat("A", 64<<10)}},
		{"not a JWT", []string{"Bearer opaque-token-value"}},
		{"empty token", []string{"Bearer "}},
		{"two tokens in one header", []string{"Bearer " + g.validAccessToken("read") + " " + g.validAccessToken("read")}},
		{"auth parameters after the token", []string{"Bearer " + g.validAccessToken("read") + ",realm=x"}},
		{"two Authorization headers", []string{"Bearer " + g.validAccessToken("read"), "Bearer " + g.validAccessToken("read")}},
		{"Bearer and Basic", []string{"Basic dXNlcjpwYXNz", "Bearer " + g.validAccessToken("read")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := g.upstream.Calls()
			// Without cookies, and with the valid session's cookie: no fallback either way.
			for _, withCookies := range []bool{false, true} {
				resp, body := g.bearerGet("/api/items", withCookies, tc.auth...)
				assertBearerRefused(t, g, resp, body, before, sessions)
			}
		})
	}
	if len(g.h.Bearer.cache.m) != 0 {
		t.Errorf("cache entries = %d after refusals only, want 0", len(g.h.Bearer.cache.m))
	}
}

// TestBearerOtherSchemesUseTheCookie: an Authorization header that is not Bearer is left
// to the cookie path, as without bearer.
func TestBearerOtherSchemesUseTheCookie(t *testing.T) {
	g := newGateway(t, withBearer())
	resp, body := g.bearerGet("/api/items", false, "Basic dXNlcjpwYXNz")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "login_required") {
		t.Fatalf("Basic without a session: %d %s, want 401 login_required", resp.StatusCode, body)
	}
	g.mustLogin(oidctest.SubjectOla)
	resp, body = g.bearerGet("/api/items", true, "Basic dXNlcjpwYXNz")
	if resp.StatusCode != http.StatusOK || body != "upstream: /api/items" {
		t.Fatalf("Basic with a session: %d %q, want the upstream", resp.StatusCode, body)
	}
	if got := g.upstream.Header().Get("X-Auth-Scopes"); got != "" {
		t.Errorf("cookie session sent X-Auth-Scopes %q, want none", got)
	}
}

// TestBearerNotConfiguredIgnoresAuthorization: without bearer, a Bearer header changes
// nothing (as before the feature): no session is 401 login_required, a session passes.
func TestBearerNotConfiguredIgnoresAuthorization(t *testing.T) {
	g := newGateway(t)
	tok := g.op.SignAccessToken(g.op.AccessTokenClaims(testAPIAudience, oidctest.SubjectOla), oidctest.AccessTokenOptions{})
	resp, body := g.bearerGet("/api/items", false, "Bearer "+tok)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "login_required") || strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("%d %s (WWW-Authenticate %q), want 401 login_required", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
	}
	g.mustLogin(oidctest.SubjectOla)
	resp, _ = g.bearerGet("/api/items", true, "Bearer garbage")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("session with an unchecked Bearer header: %d, want 200", resp.StatusCode)
	}
}

func TestBearerRequireScope(t *testing.T) {
	g := newGateway(t, withBearer(), withRequire(&PolicyConfig{Scopes: []string{"write"}}))
	resp, body := g.bearerGet("/api/items", false, "Bearer "+g.validAccessToken("read", "write"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token with write: %d %s, want 200", resp.StatusCode, body)
	}
	before := g.upstream.Calls()
	resp, body = g.bearerGet("/api/items", false, "Bearer "+g.validAccessToken("read"))
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("token without write: %d %s, want 403", resp.StatusCode, body)
	}
	if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="write"`) {
		t.Errorf("WWW-Authenticate = %q, want Bearer insufficient_scope with scope=\"write\"", ch)
	}
	var out map[string]string
	if json.Unmarshal([]byte(body), &out) != nil || out["error"] != "insufficient_scope" || out["scope"] != "write" {
		t.Errorf("body = %s, want error insufficient_scope, scope write", body)
	}
	if g.upstream.Calls() != before {
		t.Error("the upstream was called for a token without the scope")
	}

	// A cookie session's scopes are unknown: 403 (never a step-up login), as JSON and as a page.
	g.mustLoginExpect(oidctest.SubjectOla, http.StatusForbidden)
	resp, body = g.bearerGet("/api/items", true)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `"requirement":"scope"`) {
		t.Fatalf("cookie session: %d %s, want 403 with requirement scope", resp.StatusCode, body)
	}
	resp, _ = g.navigate(g.noRedirects(), "/api/items")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cookie session navigation: %d, want 403 (no step-up)", resp.StatusCode)
	}
}

// mustLoginExpect logs user in and expects the final status (e.g. 403 under a policy).
func (g *gateway) mustLoginExpect(user string, status int) {
	g.t.Helper()
	resp, body := g.login(user, "/app")
	if resp.StatusCode != status {
		g.t.Fatalf("login as %s: %d %q, want %d", user, resp.StatusCode, body, status)
	}
}

// TestBearerRequireScopeInPolicyBlock: require scope in a route's policy block, and the
// other rules of the block apply to bearer requests too (403, never a step-up).
func TestBearerRequireScopeInPolicyBlock(t *testing.T) {
	g := newGateway(t, withBearer())
	g.addPolicyBlock(&PolicyConfig{Scopes: []string{"admin"}})
	if resp, body := g.bearerGet("/admin/x", false, "Bearer "+g.validAccessToken("admin")); resp.StatusCode != http.StatusOK {
		t.Fatalf("admin scope: %d %s, want 200", resp.StatusCode, body)
	}
	if resp, body := g.bearerGet("/admin/x", false, "Bearer "+g.validAccessToken("read")); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "insufficient_scope") {
		t.Fatalf("read scope: %d %s, want 403 insufficient_scope", resp.StatusCode, body)
	}
	if resp, _ := g.bearerGet("/public", false, "Bearer "+g.validAccessToken("read")); resp.StatusCode != http.StatusOK {
		t.Fatalf("outside the policy block: %d, want 200", resp.StatusCode)
	}

	g2 := newGateway(t, withBearer())
	g2.addPolicyBlock(&PolicyConfig{Groups: []string{"admins"}})
	resp, body := g2.bearerGet("/admin/x", false, "Bearer "+g2.validAccessToken("admin"))
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `"requirement":"group"`) || resp.Header.Get("Location") != "" {
		t.Fatalf("group rule for a bearer request: %d %s, want 403 requirement group", resp.StatusCode, body)
	}
}

// TestBearerCacheEndsAtExpiry: a cached token is not served past its exp (plus nothing: the
// clock leeway applies only to a fresh verification, which then refuses it).
func TestBearerCacheEndsAtExpiry(t *testing.T) {
	clock := newTestClock()
	g := newGateway(t, withBearer(), withClock(clock, time.Minute))
	c := g.op.AccessTokenClaims(testAPIAudience, oidctest.SubjectOla, "read")
	c["exp"] = clock.Now().Add(30 * time.Second).Unix()
	tok := "Bearer " + g.op.SignAccessToken(c, oidctest.AccessTokenOptions{})
	if resp, body := g.bearerGet("/api", false, tok); resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh token: %d %s", resp.StatusCode, body)
	}
	for _, e := range g.h.Bearer.cache.m {
		if e.until.Unix() > c["exp"].(int64) {
			t.Errorf("cache entry until %v is past exp", e.until)
		}
	}
	clock.Advance(30*time.Second + g.h.client.Config().ClockLeeway)
	before := g.upstream.Calls()
	resp, body := g.bearerGet("/api", false, tok)
	assertBearerRefused(t, g, resp, body, before, 0)
	if !strings.Contains(body, "expired") {
		t.Errorf("body = %s, want the expiry named", body)
	}
}

func TestBearerCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`trustgate {
		issuer https://idp.example.com
		bearer {
			audience https://api.example.com api2
			require_at_jwt
			introspection all
			cache_ttl 1m
			cache_size 500
		}
		require scope read write
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := &BearerConfig{Audiences: []string{"https://api.example.com", "api2"}, RequireATJWT: true, CacheSize: 500}
	if h.Bearer == nil || !slices.Equal(h.Bearer.Audiences, want.Audiences) || !h.Bearer.RequireATJWT || h.Bearer.CacheSize != 500 ||
		h.Bearer.Introspection != introspectAll || h.Bearer.CacheTTL != caddy.Duration(time.Minute) {
		t.Errorf("Bearer = %+v, want %+v", h.Bearer, want)
	}
	if h.Require == nil || !slices.Equal(h.Require.Scopes, []string{"read", "write"}) {
		t.Errorf("Require = %+v, want scopes read write", h.Require)
	}
	for _, bad := range []struct{ in, err string }{
		{"trustgate {\n bearer\n}", "at least one audience"},
		{"trustgate {\n bearer {\n audience\n }\n}", "at least one value"},
		{"trustgate {\n bearer {\n cache_size 0\n }\n}", "positive integer"},
		{"trustgate {\n bearer {\n audience a\n introspection jwt\n }\n}", "opaque (the default) or all"},
		{"trustgate {\n bearer {\n audience a\n cache_ttl 0s\n }\n}", "positive duration"},
		{"trustgate {\n bearer {\n audiences a\n }\n}", "unrecognized bearer subdirective"},
		{"trustgate {\n require scope\n}", "needs at least one value"},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad.in))
		if err == nil || !strings.Contains(err.Error(), bad.err) {
			t.Errorf("%s: error %v, want containing %q", bad.in, err, bad.err)
		}
	}
	p := &PolicyConfig{Scopes: []string{"a b"}}
	if _, err := p.compile(nil, false); err == nil {
		t.Error("require scope with a space compiled, want an error")
	}
}

// TestBearerProviderDownIs503: when the provider's keys cannot be had, a bearer request
// gets 503 with Retry-After (retry later), not 401 (the token may be fine).
func TestBearerProviderDownIs503(t *testing.T) {
	g := newGateway(t, withBearer())
	tok := "Bearer " + g.validAccessToken("read")
	g.op.Close()
	resp, body := g.bearerGet("/api", false, tok)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d %s (Retry-After %q), want 503 with Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") || g.upstream.Calls() != 0 {
		t.Errorf("WWW-Authenticate %q, upstream calls %d; want no invalid_token and no call", resp.Header.Get("WWW-Authenticate"), g.upstream.Calls())
	}
}

// TestBearerAssertion: X-Auth-Assertion is sent for bearer requests too, with the token's
// subject.
func TestBearerAssertion(t *testing.T) {
	g := newGateway(t, withBearer(), withAssertion(&AssertionConfig{}, t.TempDir()))
	if resp, body := g.bearerGet("/api", false, "Bearer "+g.validAccessToken("read")); resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	tok := g.upstream.Header().Get("X-Auth-Assertion")
	if tok == "" {
		t.Fatal("no X-Auth-Assertion")
	}
	if claims := verifyAssertion(t, tok, g.fetchJWKS()); claims["sub"] != oidctest.SubjectOla {
		t.Errorf("assertion sub = %v, want %s", claims["sub"], oidctest.SubjectOla)
	}
}

// BenchmarkServeHTTPWarm compares a warm bearer token (cached verification) with a warm
// session cookie on the same gateway: the bearer path must cost no more.
func BenchmarkServeHTTPWarm(b *testing.B) {
	g := newGateway(b, withBearer())
	g.h.logger = zap.NewNop()
	g.mustLogin(oidctest.SubjectOla)
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	bench := func(b *testing.B, set func(*http.Request)) {
		req := httptest.NewRequest(http.MethodGet, "http://app.example.com/api/items", nil)
		req.Header.Set("Accept", "application/json")
		set(req)
		req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		w := httptest.NewRecorder()
		serve := func() {
			r := req.Clone(req.Context())
			if err := g.h.ServeHTTP(w, r, next); err != nil || r.Header.Get("X-Auth-Subject") == "" {
				b.Fatalf("not authenticated: %v (%d)", err, w.Code)
			}
		}
		serve() // warm
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			serve()
		}
	}
	b.Run("session", func(b *testing.B) {
		cookie := g.sessionCookie(g.browser)
		bench(b, func(r *http.Request) { r.Header.Set("Cookie", g.h.sessions.cookieName+"="+cookie) })
	})
	b.Run("bearer", func(b *testing.B) {
		tok := g.validAccessToken("read", "write")
		bench(b, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) })
	})
}

// TestBearerWithoutRequireATJWT: without require_at_jwt, typ may be absent or JWT, but an
// ID token (nonce, aud = client_id) is still refused; an scp array gives the scopes.
func TestBearerWithoutRequireATJWT(t *testing.T) {
	g := newGateway(t, func(h *Handler, _ *oidctest.Options) {
		h.Bearer = &BearerConfig{Audiences: []string{testAPIAudience, oidctest.DefaultClient().ID}}
	})
	claims := g.op.AccessTokenClaims(testAPIAudience, oidctest.SubjectOla)
	claims["scp"] = []string{"read", "write"}
	for _, o := range []oidctest.AccessTokenOptions{{OmitTyp: true}, {Typ: "JWT"}, {Typ: "application/at+jwt"}} {
		resp, body := g.bearerGet("/api", false, "Bearer "+g.op.SignAccessToken(claims, o))
		if resp.StatusCode != http.StatusOK || g.upstream.Header().Get("X-Auth-Scopes") != "read write" {
			t.Fatalf("typ %+v: %d %s, scopes %q; want 200 with read write", o, resp.StatusCode, body, g.upstream.Header().Get("X-Auth-Scopes"))
		}
	}
	resp, body := g.bearerGet("/api", false, "Bearer "+g.op.SignAccessToken(claims, oidctest.AccessTokenOptions{Typ: "dpop+jwt"}))
	assertBearerRefused(t, g, resp, body, g.upstream.Calls(), 0)

	// An ID token of this client (aud = client_id, a configured audience here) is refused
	// for its nonce.
	g.mustLogin(oidctest.SubjectOla)
	before, sessions := g.upstream.Calls(), g.store.Len()
	resp, body = g.bearerGet("/api", false, "Bearer "+g.stored().IDToken)
	assertBearerRefused(t, g, resp, body, before, sessions)
	if !strings.Contains(body, "nonce") {
		t.Errorf("body = %s, want the nonce named", body)
	}
}
