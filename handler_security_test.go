package trustgate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
)

// Threat model (docs/threat-model.md) HDR-01..03, HDR-06, HDR-08, FL-15: what ServeHTTP (handler.go) does with what the client sends.

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

// sweepForwarded are forwarding headers a direct (untrusted) client sends.
var sweepForwarded = map[string]string{
	"X-Forwarded-For": "10.66.0.1", "X-Forwarded-Host": "evil-forwarded.example", "X-Forwarded-Proto": "https",
	"X-Forwarded-Uri": "/public/x", "X-Forwarded-Prefix": "/public", "X-Forwarded-Port": "8443",
	"X-Original-Forwarded-For": "10.66.0.2", "X-Real-Ip": "10.66.0.3", "X-Client-Ip": "10.66.0.4",
	"True-Client-Ip": "10.66.0.5", "Forwarded": "for=10.66.0.6;host=evil-forwarded.example;proto=https",
}

func sweepSetAll(req *http.Request, hs map[string]string) {
	for k, v := range hs {
		req.Header.Set(k, v)
	}
}

func TestHDR06_ForwardedHeadersNotTrusted(t *testing.T) {
	g := newGateway(t, func(h *Handler, o *oidctest.Options) {
		h.CIBA = &CIBAConfig{StartsPerIP: 2}
		o.CIBAInterval = 5 * time.Second
	})
	logs := observeLogs(g.h)
	g.op.SetAutoLogin("bindid-new")

	// URL building: redirect_uri and the return target come from the request itself.
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/admin/x?y=1", nil)
	req.Header.Set("Accept", "text/html")
	sweepSetAll(req, sweepForwarded)
	resp, _ := do(t, g.noRedirects(), req)
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || authURL.Query().Get("redirect_uri") != g.srv.URL+"/.trustgate/callback" {
		t.Fatalf("login start with forwarded headers: %d redirect_uri %q", resp.StatusCode, authURL.Query().Get("redirect_uri"))
	}
	resp, _ = g.get(g.noRedirects(), g.authorize(authURL).String())
	if loc := resp.Header.Get("Location"); loc != "/admin/x?y=1" {
		t.Errorf("after login: Location %q, want the requested /admin/x?y=1 (not X-Forwarded-Uri)", loc)
	}

	// Auth decisions: the policy of /admin holds whatever X-Forwarded-Uri/-Prefix claim.
	g.addPolicyBlock(&PolicyConfig{KnownUser: true}) // bindid-new is not linked: 403 on /admin
	calls := g.upstream.Calls()
	for _, accept := range []string{"application/json", "text/html"} {
		req, _ = http.NewRequest(http.MethodGet, g.srv.URL+"/admin/x", nil)
		req.Header.Set("Accept", accept)
		sweepSetAll(req, sweepForwarded)
		if resp, _ := do(t, g.noRedirects(), req); resp.StatusCode != http.StatusForbidden {
			t.Errorf("/admin with X-Forwarded-Uri %s (%s): %d, want 403", sweepForwarded["X-Forwarded-Uri"], accept, resp.StatusCode)
		}
	}
	if g.upstream.Calls() != calls {
		t.Error("the upstream saw an /admin request")
	}
	// Without a session, forwarded headers do not authenticate anything either.
	req, _ = http.NewRequest(http.MethodGet, g.srv.URL+"/app", nil)
	req.Header.Set("Accept", "application/json")
	sweepSetAll(req, sweepForwarded)
	if resp, _ := do(t, http.DefaultClient, req); resp.StatusCode != http.StatusUnauthorized || g.upstream.Calls() != calls {
		t.Errorf("unauthenticated request with forwarded headers: %d, want 401 and no upstream call", resp.StatusCode)
	}

	// IP rules: ciba starts_per_ip counts the connection's address (Caddy's client_ip), not
	// what X-Forwarded-For / X-Real-IP / Forwarded say.
	statuses := []int{}
	for i, hint := range []string{"bindid-known", "bindid-new", "ola"} {
		b, _ := json.Marshal(map[string]any{"login_hint": hint})
		req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/.trustgate/ciba/start", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		ip := "10.77.0." + strconv.Itoa(i+1)
		for _, h := range []string{"X-Forwarded-For", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip"} {
			req.Header.Set(h, ip)
		}
		req.Header.Set("Forwarded", "for="+ip)
		resp, _ := do(t, http.DefaultClient, req)
		statuses = append(statuses, resp.StatusCode)
	}
	if statuses[0] != http.StatusOK || statuses[1] != http.StatusOK || statuses[2] != http.StatusTooManyRequests {
		t.Errorf("CIBA starts from one address with 3 different X-Forwarded-For = %v, want [200 200 429]", statuses)
	}

	// Logs: nothing a client forwarded is logged as if it were the client's identity.
	sweepNoForwardedValuesLogged(t, logs)

	// The assertion's iss and aud (default: the gateway's own origin) come from the request,
	// not from X-Forwarded-Host/-Proto.
	t.Run("assertion issuer", func(t *testing.T) {
		g := newGateway(t, withAssertion(&AssertionConfig{}, t.TempDir()))
		g.mustLogin("bindid-known")
		req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/app", nil)
		req.Header.Set("Accept", "application/json")
		sweepSetAll(req, sweepForwarded)
		if resp, _ := do(t, g.noRedirects(), req); resp.StatusCode != http.StatusOK {
			t.Fatalf("authenticated request: %d", resp.StatusCode)
		}
		var claims struct{ Iss, Aud string }
		_ = json.Unmarshal(sweepPayload(g.upstream.Header().Get("X-Auth-Assertion")), &claims)
		if claims.Iss != g.srv.URL || claims.Aud != g.srv.URL {
			t.Errorf("assertion iss %q aud %q, want the gateway's own origin %s", claims.Iss, claims.Aud, g.srv.URL)
		}
	})
}

// sweepNoForwardedValuesLogged fails when a log line carries a value from sweepForwarded
// or the X-Forwarded-For values of the CIBA starts.
func sweepNoForwardedValuesLogged(t *testing.T, logs *observedLogs) {
	t.Helper()
	for _, e := range logs.entries() {
		for _, v := range []string{"10.66.0.", "10.77.0.", "evil-forwarded.example", "/public/x"} {
			if strings.Contains(e.Message+e.Fields, v) {
				t.Errorf("log line %q %s carries the forwarded value %q", e.Message, e.Fields, v)
			}
		}
	}
}

func TestHDR06_ClientIPFromCaddyOnlyThroughCaddy(t *testing.T) {
	t.Setenv("TG_IT_CLIENT_SECRET", oidctest.DefaultClient().Secret)
	t.Setenv("TG_IT_SECRET", testSecret)
	op := oidctest.NewTest(t, oidctest.Options{CIBAInterval: 5 * time.Second})
	up := echoUpstream(t)
	site := func() string {
		return `http://localhost:9080 {
	trustgate {
		issuer ` + op.Issuer() + `
		client_id trustgate
		client_secret {env.TG_IT_CLIENT_SECRET}
		secret {env.TG_IT_SECRET}
		insecure_cookie
		ciba {
			starts_per_ip 2
		}
	}
	reverse_proxy ` + strings.TrimPrefix(up.URL, "http://") + `
}`
	}
	tester := caddytest.NewTester(t)
	start := func(hint, xff string) int {
		body := `{"login_hint":"` + hint + `"}`
		var b strings.Builder
		fmt.Fprintf(&b, "POST /.trustgate/ciba/start HTTP/1.1\r\nHost: localhost:9080\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\nX-Forwarded-For: %s\r\nX-Real-IP: %s\r\nForwarded: for=%s\r\n\r\n%s", len(body), xff, xff, xff, body)
		conn, err := sweepDial()
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, b.String())
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// No trusted_proxies: X-Forwarded-For and friends are the client's word, not its address.
	tester.InitServer(sweepCaddyGlobal("")+site(), "caddyfile")
	got := []int{start("bindid-known", "10.88.0.1"), start("bindid-new", "10.88.0.2"), start("ola", "10.88.0.3")}
	if got[0] != http.StatusOK || got[1] != http.StatusOK || got[2] != http.StatusTooManyRequests {
		t.Errorf("3 CIBA starts from one address with different X-Forwarded-For = %v, want [200 200 429]", got)
	}
	// With trusted_proxies, Caddy's client_ip is the forwarded address, and the limit follows it.
	tester.InitServer(sweepCaddyGlobal("servers {\n\t\ttrusted_proxies static 127.0.0.1/32 ::1/128\n\t}")+site(), "caddyfile")
	got = []int{start("ase", "10.89.0.1"), start("kari", "10.89.0.2"), start("andrew", "10.89.0.3")}
	if got[0] != http.StatusOK || got[1] != http.StatusOK || got[2] != http.StatusOK {
		t.Errorf("3 CIBA starts through a trusted proxy for 3 clients = %v, want [200 200 200]", got)
	}
}

// sweepHealthAgents are User-Agent values that health-check shortcuts of other proxies let
// through without authentication.
var sweepHealthAgents = []string{"kube-probe/1.31", "GoogleHC/1.0", "ELB-HealthChecker/2.0", "Consul Health Check", "oauth2-proxy-health-check", "Uptime-Kuma/1.23"}

func TestHDR08_ClientControlledAttributesNeverAuthenticate(t *testing.T) {
	g := newGateway(t)
	u, _ := url.Parse(g.srv.URL)
	variants := []struct {
		name string
		edit func(r *http.Request)
	}{
		{"Referer of the provider", func(r *http.Request) { r.Header.Set("Referer", g.op.Issuer()+"/authorize") }},
		{"Origin of this site", func(r *http.Request) { r.Header.Set("Origin", g.srv.URL) }},
		{"X-Requested-With", func(r *http.Request) { r.Header.Set("X-Requested-With", "XMLHttpRequest") }},
		{"X-Original-URL naming a gateway endpoint", func(r *http.Request) { r.Header.Set("X-Original-URL", "/.trustgate/me") }},
		{"X-Original-URL naming the callback", func(r *http.Request) { r.Header.Set("X-Original-URL", "/.trustgate/callback?code=x&state=y") }},
		{"X-Rewrite-URL", func(r *http.Request) { r.Header.Set("X-Rewrite-URL", "/public/index.html") }},
		{"X-HTTP-Method-Override OPTIONS", func(r *http.Request) { r.Header.Set("X-HTTP-Method-Override", "OPTIONS") }},
		{"X-HTTP-Method-Override HEAD", func(r *http.Request) {
			r.Header.Set("X-HTTP-Method", "HEAD")
			r.Header.Set("X-Method-Override", "HEAD")
		}},
		{"Host in upper case", func(r *http.Request) { r.Host = strings.ToUpper(u.Host) }},
		{"Host with a trailing dot", func(r *http.Request) { r.Host = u.Hostname() + ".:" + u.Port() }},
		{"Authorization Basic", func(r *http.Request) { r.SetBasicAuth("admin", "admin") }},
		{"Authorization Bearer", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.")
		}},
	}
	for _, ua := range sweepHealthAgents {
		variants = append(variants, struct {
			name string
			edit func(r *http.Request)
		}{"User-Agent " + ua, func(r *http.Request) { r.Header.Set("User-Agent", ua) }})
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				req, _ := http.NewRequest(method, g.srv.URL+"/app/private", nil)
				req.Header.Set("Accept", "application/json")
				v.edit(req)
				resp, body := do(t, g.noRedirects(), req)
				if resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "upstream:") {
					t.Errorf("%s %s: %d %q, want 401 without upstream content", method, v.name, resp.StatusCode, web.Clip(body, 120))
				}
			}
			req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/app/private", nil)
			req.Header.Set("Accept", "text/html")
			v.edit(req)
			if resp, _ := do(t, g.noRedirects(), req); resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), g.op.Issuer()) {
				if v.name != "X-Requested-With" { // an XHR gets 401, not a redirect (FL-15)
					t.Errorf("navigation with %s: %d Location %q, want a login redirect", v.name, resp.StatusCode, resp.Header.Get("Location"))
				}
			}
		})
	}
	if n := g.upstream.Calls(); n != 0 {
		t.Errorf("upstream calls = %d, want 0", n)
	}
	if n := g.store.Len(); n != 0 {
		t.Errorf("sessions = %d, want 0", n)
	}
	// No health endpoint answers for the upstream or with an identity: healthz is the
	// gateway's own status (provider and store), the other names do not exist.
	for _, p := range []string{"/.trustgate/health", "/.trustgate/healthz", "/.trustgate/ping", "/.trustgate/", "/.trustgate"} {
		for _, ua := range sweepHealthAgents[:2] {
			req, _ := http.NewRequest(http.MethodGet, g.srv.URL+p, nil)
			req.Header.Set("User-Agent", ua)
			resp, body := do(t, g.noRedirects(), req)
			want := http.StatusNotFound
			if p == "/.trustgate/healthz" {
				want = http.StatusOK
			}
			if resp.StatusCode != want || strings.Contains(body, "upstream:") || strings.Contains(body, `"sub"`) {
				t.Errorf("GET %s (%s): %d %q, want %d without upstream content or identity", p, ua, resp.StatusCode, web.Clip(body, 120), want)
			}
		}
	}
	if n := g.upstream.Calls(); n != 0 {
		t.Errorf("upstream calls = %d, want 0", n)
	}
}

func TestHDR08_ClientControlledAttributesThroughCaddy(t *testing.T) {
	t.Setenv("TG_IT_CLIENT_SECRET", oidctest.DefaultClient().Secret)
	t.Setenv("TG_IT_SECRET", testSecret)
	op := oidctest.NewTest(t, oidctest.Options{})
	up := echoUpstream(t)
	upstream := strings.TrimPrefix(up.URL, "http://")
	tester := caddytest.NewTester(t)
	tester.InitServer(sweepCaddyGlobal("")+`http://localhost:9080 {
	handle /public/* {
		reverse_proxy `+upstream+`
	}
	handle {
		trustgate {
			issuer `+op.Issuer()+`
			client_id trustgate
			client_secret {env.TG_IT_CLIENT_SECRET}
			secret {env.TG_IT_SECRET}
			insecure_cookie
		}
		reverse_proxy `+upstream+`
	}
}`, "caddyfile")
	if status, body := sweepRaw(t, http.MethodGet, "/public/x", "localhost:9080", nil); status != http.StatusOK || !strings.Contains(body, `"headers"`) {
		t.Fatalf("the public route does not reach the upstream: %d", status)
	}
	type variant struct {
		name    string
		method  string
		host    string
		headers map[string]string
	}
	variants := []variant{
		{"Host in upper case", "GET", "LOCALHOST:9080", nil},
		{"Host in mixed case", "GET", "LocalHost:9080", nil},
		{"Host with a trailing dot", "GET", "localhost.:9080", nil},
		{"X-Original-URL naming the public route", "GET", "", map[string]string{"X-Original-URL": "/public/x"}},
		{"X-Rewrite-URL naming the public route", "GET", "", map[string]string{"X-Rewrite-URL": "/public/x"}},
		{"X-Forwarded-Uri naming the public route", "GET", "", map[string]string{"X-Forwarded-Uri": "/public/x", "X-Forwarded-Prefix": "/public"}},
		{"X-HTTP-Method-Override", "POST", "", map[string]string{"X-HTTP-Method-Override": "OPTIONS"}},
		{"Referer and Origin of the provider", "GET", "", map[string]string{"Referer": op.Issuer() + "/authorize", "Origin": op.Issuer()}},
	}
	for _, ua := range sweepHealthAgents {
		variants = append(variants, variant{"User-Agent " + ua, "GET", "", map[string]string{"User-Agent": ua}})
	}
	for _, v := range variants {
		host := v.host
		if host == "" {
			host = "localhost:9080"
		}
		hs := map[string]string{"Accept": "application/json"}
		for k, val := range v.headers {
			hs[k] = val
		}
		status, body := sweepRaw(t, v.method, "/private/data", host, hs)
		if strings.Contains(body, `"headers"`) {
			t.Errorf("%s: the upstream answered (%d)", v.name, status)
		}
		if status == http.StatusOK && body != "" {
			t.Errorf("%s: 200 %q", v.name, web.Clip(body, 120))
		}
	}
	if op.Counts().Token != 0 {
		t.Error("a login completed")
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
