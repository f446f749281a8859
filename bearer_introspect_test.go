package trustgate

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// Opaque bearer tokens judged by RFC 7662 introspection. The answers are the fields RFC
// 7662 §2.2 defines (active, scope, client_id, username, token_type, exp, iat, nbf, sub,
// aud, iss, jti), as Keycloak and Okta send them.

// withIntrospection turns bearer tokens on for testAPIAudience with introspection mode.
func withIntrospection(mode string) gatewayOption {
	return func(h *Handler, _ *oidctest.Options) {
		h.Bearer = &BearerConfig{Audiences: []string{testAPIAudience}, Introspection: mode}
	}
}

// activeAnswer is a provider's introspection answer for a live access token of the API.
func activeAnswer(op *oidctest.Provider, sub string) map[string]any {
	now := time.Now()
	return map[string]any{
		"active":     true,
		"iss":        op.Issuer(),
		"sub":        sub,
		"aud":        []string{testAPIAudience},
		"client_id":  "api-client",
		"scope":      "read write",
		"token_type": "Bearer",
		"iat":        now.Unix(),
		"exp":        now.Add(10 * time.Minute).Unix(),
		"username":   "ola",
		"jti":        "j-1",
	}
}

func TestBearerIntrospectionOpaqueToken(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := newGateway(t, withIntrospection(introspectOpaque), withRegistry(reg))
	const token = "2YotnFZFEjr1zCsicMWpAA"
	g.op.SetIntrospection(token, activeAnswer(g.op, oidctest.SubjectOla))

	for i := range 3 {
		resp, body := g.bearerGet("/api/items", false, "Bearer "+token)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d %s, want 200", i, resp.StatusCode, body)
		}
	}
	got := g.upstream.Header()
	if got.Get("X-Auth-Subject") != oidctest.SubjectOla || got.Get(HeaderScopes) != "read write" {
		t.Errorf("upstream X-Auth-Subject %q, X-Auth-Scopes %q; want the introspected sub and scopes", got.Get("X-Auth-Subject"), got.Get(HeaderScopes))
	}
	if got.Get("Authorization") != "" {
		t.Error("the access token reached the upstream")
	}
	if n := g.op.Counts().Introspect; n != 1 {
		t.Errorf("introspection calls = %d for 3 requests, want 1 (the answer is cached)", n)
	}
	form := g.op.LastIntrospection()
	if form.Get("token") != token || form.Get("token_type_hint") != "access_token" || form.Get("auth") != "basic" {
		t.Errorf("introspection request = %v, want the token, token_type_hint=access_token and client_secret_basic", form)
	}
	if v := metricValue(t, reg, "trustgate_bearer_requests_total", map[string]string{"result": "accepted"}); v != 3 {
		t.Errorf("trustgate_bearer_requests_total{result=accepted} = %v, want 3", v)
	}
}

// TestBearerIntrospectionClientToken: a client_credentials token has no sub; the subject
// is its client_id, as RFC 9068 §2.2 names it.
func TestBearerIntrospectionClientToken(t *testing.T) {
	g := newGateway(t, withIntrospection(introspectOpaque))
	a := activeAnswer(g.op, "")
	delete(a, "sub")
	g.op.SetIntrospection("machine-token", a)
	resp, body := g.bearerGet("/api", false, "Bearer machine-token")
	if resp.StatusCode != http.StatusOK || g.upstream.Header().Get("X-Auth-Subject") != "api-client" {
		t.Fatalf("%d %s, X-Auth-Subject %q; want 200 and the client_id", resp.StatusCode, body, g.upstream.Header().Get("X-Auth-Subject"))
	}
}

func TestIDT15_BearerIntrospectionRefused(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := newGateway(t, withIntrospection(introspectOpaque), withRegistry(reg))
	edit := func(f func(map[string]any)) map[string]any {
		a := activeAnswer(g.op, oidctest.SubjectOla)
		f(a)
		return a
	}
	now := time.Now()
	cases := []struct {
		name   string
		answer map[string]any // nil: unknown to the provider
		want   string         // in the message
	}{
		{"unknown token", nil, "not active"},
		{"inactive", map[string]any{"active": false}, "not active"},
		{"active as a string", edit(func(a map[string]any) { a["active"] = "true" }), "not active"},
		{"wrong audience", edit(func(a map[string]any) { a["aud"] = "https://other-api.example.test" }), "aud"},
		{"no audience", edit(func(a map[string]any) { delete(a, "aud") }), "aud"},
		{"wrong issuer", edit(func(a map[string]any) { a["iss"] = "https://evil.example.test" }), "iss"},
		{"refresh token", edit(func(a map[string]any) { a["token_type"] = "refresh_token" }), "token_type"},
		{"DPoP-bound token", edit(func(a map[string]any) { a["token_type"] = "DPoP" }), "token_type"},
		{"certificate-bound token", edit(func(a map[string]any) {
			a["cnf"] = map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}
		}), "cnf"},
		{"expired", edit(func(a map[string]any) { a["exp"] = now.Add(-10 * time.Minute).Unix() }), "expired"},
		{"not yet valid", edit(func(a map[string]any) { a["nbf"] = now.Add(10 * time.Minute).Unix() }), "not valid before"},
		{"an ID token's nonce", edit(func(a map[string]any) { a["nonce"] = "n-0S6" }), "nonce"},
		{"no sub and no client_id", edit(func(a map[string]any) { delete(a, "sub"); delete(a, "client_id") }), "sub"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			token := "opaque-" + strings.Repeat("x", i+1)
			g.op.SetIntrospection(token, tc.answer)
			calls := g.op.Counts().Introspect
			before := g.upstream.Calls()
			for range 2 {
				resp, body := g.bearerGet("/api", false, "Bearer "+token)
				assertBearerRefused(t, g, resp, body, before, 0)
				if !strings.Contains(body, tc.want) {
					t.Errorf("body = %s, want the failed check (%q) named", body, tc.want)
				}
			}
			// The second request is refused from memory: a client repeating a dead token
			// does not reach the provider each time.
			if n := g.op.Counts().Introspect - calls; n != 1 {
				t.Errorf("introspection calls = %d for 2 requests, want 1", n)
			}
		})
	}
	if n, r := len(g.h.Bearer.cache.m), len(g.h.Bearer.refused.m); n != 0 || r != len(cases) {
		t.Errorf("cache: %d accepted, %d refused entries after %d refused tokens; want 0 and %d", n, r, len(cases), len(cases))
	}
	if v := metricValue(t, reg, "trustgate_bearer_requests_total", map[string]string{"result": "refused"}); v != float64(2*len(cases)) {
		t.Errorf("trustgate_bearer_requests_total{result=refused} = %v, want %d", v, 2*len(cases))
	}
}

// TestBearerIntrospectionNotSent: a token that cannot be one (characters outside RFC 6750's
// b64token, or over 16 KiB) is refused without asking the provider.
func TestBearerIntrospectionNotSent(t *testing.T) {
	g := newGateway(t, withIntrospection(introspectOpaque))
	for _, tok := range []string{"abc<script>", "tok%20en", "a=b", strings.Repeat("A", 17<<10)} {
		resp, body := g.bearerGet("/api", false, "Bearer "+tok)
		assertBearerRefused(t, g, resp, body, 0, 0)
	}
	if n := g.op.Counts().Introspect; n != 0 {
		t.Errorf("introspection calls = %d, want 0", n)
	}
}

// TestBearerIntrospectionAll: with introspection all, a JWT access token is asked about
// too, so one the provider has revoked is refused although its signature verifies.
func TestBearerIntrospectionAll(t *testing.T) {
	g := newGateway(t, withIntrospection(introspectAll))
	live, revoked := g.validAccessToken("read"), g.validAccessToken("write")
	g.op.SetIntrospection(live, activeAnswer(g.op, oidctest.SubjectOla))
	if resp, body := g.bearerGet("/api", false, "Bearer "+live); resp.StatusCode != http.StatusOK {
		t.Fatalf("live JWT: %d %s", resp.StatusCode, body)
	}
	resp, body := g.bearerGet("/api", false, "Bearer "+revoked)
	assertBearerRefused(t, g, resp, body, 1, 0)
	if n := g.op.Counts().Introspect; n != 2 {
		t.Errorf("introspection calls = %d, want 2 (each JWT asked about)", n)
	}
}

// TestBearerIntrospectionFailures: an endpoint that fails gives 503 with Retry-After and
// the reason (the token was not judged, so never 401); an OP that refuses the gateway's
// client is a configuration fault, also 503, logged as introspection_unavailable.
func TestBearerIntrospectionFailures(t *testing.T) {
	for _, tc := range []struct {
		status int
		reason string
	}{
		{http.StatusServiceUnavailable, "introspection_failed"},
		{http.StatusTooManyRequests, "introspection_failed"},
		{http.StatusUnauthorized, "introspection_unavailable"},
	} {
		t.Run(tc.reason+"/"+http.StatusText(tc.status), func(t *testing.T) {
			reg := prometheus.NewRegistry()
			g := newGateway(t, withIntrospection(introspectOpaque), withRegistry(reg))
			g.op.SetIntrospection("tok", activeAnswer(g.op, oidctest.SubjectOla))
			g.op.SetIntrospectionStatus(tc.status)
			resp, body := g.bearerGet("/api", false, "Bearer tok")
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, tc.reason) {
				t.Fatalf("%d %s (Retry-After %q), want 503 %s with Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"), tc.reason)
			}
			if strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") || g.upstream.Calls() != 0 || len(g.h.Bearer.cache.m) != 0 {
				t.Errorf("WWW-Authenticate %q, upstream calls %d, cache %d; want no invalid_token, no call, nothing cached", resp.Header.Get("WWW-Authenticate"), g.upstream.Calls(), len(g.h.Bearer.cache.m))
			}
			// Once the provider is back, the same token is judged (nothing was cached).
			g.op.SetIntrospectionStatus(0)
			if resp, body := g.bearerGet("/api", false, "Bearer tok"); resp.StatusCode != http.StatusOK {
				t.Errorf("after recovery: %d %s, want 200", resp.StatusCode, body)
			}
			if v := metricValue(t, reg, "trustgate_bearer_requests_total", map[string]string{"result": "unavailable"}); v != 1 {
				t.Errorf("trustgate_bearer_requests_total{result=unavailable} = %v, want 1", v)
			}
		})
	}
}

// TestBearerIntrospectionCacheTTL: a token revoked at the provider is refused once
// cache_ttl has passed, even though its exp has not.
func TestBearerIntrospectionCacheTTL(t *testing.T) {
	clock := newTestClock()
	g := newGateway(t, withIntrospection(introspectOpaque), withClock(clock, time.Minute), func(h *Handler, _ *oidctest.Options) {
		h.Bearer.CacheTTL = caddyDuration(30 * time.Second)
	})
	a := activeAnswer(g.op, oidctest.SubjectOla)
	a["iat"], a["exp"] = clock.Now().Unix(), clock.Now().Add(time.Hour).Unix()
	g.op.SetIntrospection("tok", a)
	if resp, body := g.bearerGet("/api", false, "Bearer tok"); resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	g.op.SetIntrospection("tok", map[string]any{"active": false}) // revoked
	if resp, _ := g.bearerGet("/api", false, "Bearer tok"); resp.StatusCode != http.StatusOK {
		t.Errorf("within cache_ttl: %d, want 200 from the cache", resp.StatusCode)
	}
	clock.Advance(31 * time.Second)
	resp, body := g.bearerGet("/api", false, "Bearer tok")
	assertBearerRefused(t, g, resp, body, 2, 0)
}

// TestBearerOpaqueWithoutIntrospection: without introspection an opaque token is refused
// and the provider is never asked.
func TestBearerOpaqueWithoutIntrospection(t *testing.T) {
	g := newGateway(t, withBearer())
	g.op.SetIntrospection("tok", activeAnswer(g.op, oidctest.SubjectOla))
	resp, body := g.bearerGet("/api", false, "Bearer tok")
	assertBearerRefused(t, g, resp, body, 0, 0)
	if n := g.op.Counts().Introspect; n != 0 {
		t.Errorf("introspection calls = %d, want 0", n)
	}
}
