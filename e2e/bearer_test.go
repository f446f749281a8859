package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Bearer tokens for APIs against the real provider: a machine client gets an RFC 9068 JWT
// access token (client_credentials with a resource indicator; e2e/op/server.mjs,
// resourceServers) and calls the API site bearerURL with it, as a backend service does.
// The site accepts only at+jwt tokens for apiAudience; its /api/write/* also requires the
// scope items:write.

const (
	// bearerClientID is the machine client of the bearer tests; it may use
	// client_credentials (and, like every client here, CIBA, which gives its ID token).
	bearerClientID = "trustgate-e2e-bearer"
	apiAudience    = "https://api.example.test"        // the bearer site's audience
	otherAudience  = "https://other-api.example.test"  // another API of the same provider
	opaqueAudience = "https://opaque-api.example.test" // an API of the bearer site whose tokens are opaque
	bearerIDUser   = "ase"                             // the user of the ID token (not a CIBA test's user)
)

// bearerCacheTTL is the bearer site's cache_ttl: how long a token revoked at the provider
// may still be accepted from the gateway's cache.
const bearerCacheTTL = 2 * time.Second

// bearerSite is the API site of the suite's Caddy, made with startCaddy's site helper.
func bearerSite(site func(url, clientID, cookie, headers, extra, routes string) string) string {
	return site(e2e.bearerURL, bearerClientID, "tg_bearer", "all",
		"bearer {\n\t\t\taudience "+apiAudience+" "+opaqueAudience+"\n\t\t\trequire_at_jwt\n\t\t\tintrospection\n\t\t\tcache_ttl "+bearerCacheTTL.String()+"\n\t\t}",
		`route /api/write/* {
		trustgate {
			require scope items:write
		}
	}`)
}

// opTokenEndpoint posts form to the provider's token endpoint as the bearer client and
// returns the decoded answer, failing the test unless it is 200.
func opTokenEndpoint(t *testing.T, form url.Values) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e2e.opURL+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(bearerClientID, clientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the provider's token endpoint: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the provider's token endpoint (grant_type=%s): %s %s", form.Get("grant_type"), resp.Status, raw)
	}
	return out
}

// machineToken is a client_credentials access token of the bearer client for resource.
func machineToken(t *testing.T, resource, scope string) string {
	t.Helper()
	out := opTokenEndpoint(t, url.Values{"grant_type": {"client_credentials"}, "resource": {resource}, "scope": {scope}})
	at, _ := out["access_token"].(string)
	if at == "" {
		t.Fatalf("client_credentials for %s: no access_token in %v", resource, out)
	}
	return at
}

// jwtPart decodes part i (0: JOSE header, 1: payload) of a compact JWS.
func jwtPart(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("%.40q… is not a compact JWS", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// opIDToken is an ID token the provider issues to the bearer client, obtained with CIBA at
// the provider (no browser): start, the user approves, one token request.
func opIDToken(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e2e.opURL+"/backchannel",
		strings.NewReader(url.Values{"scope": {"openid"}, "login_hint": {bearerIDUser}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(bearerClientID, clientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the provider's backchannel endpoint: %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var start struct {
		AuthReqID string `json:"auth_req_id"`
	}
	if err := json.Unmarshal(raw, &start); err != nil || start.AuthReqID == "" {
		t.Fatalf("the provider's backchannel endpoint: %s %s", resp.Status, raw)
	}
	opCIBAControl(t, "approve", bearerIDUser)
	out := opTokenEndpoint(t, url.Values{"grant_type": {cibaGrantType}, "auth_req_id": {start.AuthReqID}})
	idt, _ := out["id_token"].(string)
	if idt == "" {
		t.Fatalf("CIBA token answer without id_token: %v", out)
	}
	return idt
}

// bearerAnswer is the bearer site's answer to one request.
type bearerAnswer struct {
	status int
	header http.Header
	body   string
	echo   echoed // for a 200: the upstream's echo
}

// bearerGet sends GET path to the bearer site with Authorization: Bearer token, as an API
// client (no cookies, no redirects followed).
func bearerGet(t *testing.T, path, token string) bearerAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e2e.bearerURL+path, nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := bearerAnswer{status: resp.StatusCode, header: resp.Header, body: string(raw)}
	if a.status == http.StatusOK {
		if err := json.Unmarshal(raw, &a.echo); err != nil {
			t.Fatalf("GET %s: 200 that is not the upstream's echo: %v\n%.300s", path, err, raw)
		}
	}
	shown := strings.TrimSpace(fmt.Sprintf("%.300s", raw))
	if a.status == http.StatusOK {
		shown = "(the upstream's echo)" // it repeats the token
	}
	t.Logf("GET %s (Bearer) → %d %s  WWW-Authenticate: %q", path, a.status, shown, resp.Header.Get("WWW-Authenticate"))
	return a
}

// wantBearerInvalid checks a refused token: 401 with the Bearer invalid_token challenge and
// {"error":"bearer_invalid"}, no cookie, and the upstream never saw path.
func wantBearerInvalid(t *testing.T, a bearerAnswer, path string) {
	t.Helper()
	if a.status != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401; body %.300s", a.status, a.body)
	}
	if ch := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate = %q, want Bearer error=\"invalid_token\"", ch)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(a.body), &out); err != nil || out["error"] != "bearer_invalid" {
		t.Errorf("body = %s, want JSON with error bearer_invalid", a.body)
	}
	if sc := a.header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("a refused bearer request got Set-Cookie %q", sc)
	}
	if seen := upstreamSaw(path); len(seen) != 0 {
		t.Errorf("the upstream was reached with a refused token: %v", seen)
	}
}

// A machine client's JWT access token for the API (scope items:read) opens the site: the
// upstream gets the client as subject and the token's scopes, and no cookie is set. The
// route that requires items:write answers 403 insufficient_scope without reaching the
// upstream.
func TestE2EBearerAccessToken(t *testing.T) {
	at := machineToken(t, apiAudience, "items:read")
	hdr, claims := jwtPart(t, at, 0), jwtPart(t, at, 1)
	t.Logf("access token: header %v, aud %v, sub %v, scope %v", hdr, claims["aud"], claims["sub"], claims["scope"])
	if hdr["typ"] != "at+jwt" || hdr["alg"] != "RS256" {
		t.Fatalf("the provider's access token header is %v, want typ at+jwt, alg RS256 (RFC 9068)", hdr)
	}

	a := bearerGet(t, "/api/items?read=1", at)
	if a.status != http.StatusOK {
		t.Fatalf("GET /api/items with the access token: %d, want 200 from the upstream; body %.300s\n%s", a.status, a.body, tail(e2e.caddyLog))
	}
	// Not wantHeaders (it wants a session's headers). The token itself stays at the gateway.
	if a.echo.Headers.Get("Authorization") != "" {
		t.Error("the access token reached the upstream")
	}
	for k, v := range map[string]string{"X-Auth-Subject": bearerClientID, "X-Auth-Scopes": "items:read"} {
		if g := a.echo.Headers.Values(k); len(g) != 1 || g[0] != v {
			t.Errorf("upstream %s = %q, want %q", k, g, v)
		}
	}
	if strings.Contains(a.echo.Headers.Get("Cookie"), "tg_") {
		t.Errorf("upstream Cookie %q carries a gateway cookie", a.echo.Headers.Get("Cookie"))
	}
	if sc := a.header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("a bearer request got Set-Cookie %q", sc)
	}
	// Again: the same token (now from the gateway's cache) gives the same identity.
	if a := bearerGet(t, "/api/items?read=2", at); a.status != http.StatusOK || a.echo.Headers.Get("X-Auth-Scopes") != "items:read" {
		t.Errorf("second GET with the same token: %d, X-Auth-Scopes %q", a.status, a.echo.Headers.Get("X-Auth-Scopes"))
	}

	w := bearerGet(t, "/api/write/items", at)
	if w.status != http.StatusForbidden {
		t.Fatalf("GET /api/write/items with scope items:read: %d, want 403; body %.300s", w.status, w.body)
	}
	if ch := w.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="items:write"`) {
		t.Errorf("WWW-Authenticate = %q, want Bearer insufficient_scope with scope=\"items:write\"", ch)
	}
	var out map[string]any
	if json.Unmarshal([]byte(w.body), &out) != nil || out["error"] != "insufficient_scope" {
		t.Errorf("body = %s, want JSON with error insufficient_scope", w.body)
	}
	if seen := upstreamSaw("/api/write/"); len(seen) != 0 {
		t.Errorf("the upstream was reached without the required scope: %v", seen)
	}
}

// The provider's ID token is not an access token: sent as a bearer token it gets 401
// bearer_invalid, no cookie, and the upstream is not reached.
func TestE2EBearerIDTokenRefused(t *testing.T) {
	idt := opIDToken(t)
	t.Logf("ID token: header %v, aud %v", jwtPart(t, idt, 0), jwtPart(t, idt, 1)["aud"])
	wantBearerInvalid(t, bearerGet(t, "/api/idtoken", idt), "/api/idtoken")
}

// A valid JWT access token of the same provider for another API (audience) is refused.
func TestE2EBearerOtherAudienceRefused(t *testing.T) {
	at := machineToken(t, otherAudience, "items:read")
	if aud := jwtPart(t, at, 1)["aud"]; aud != otherAudience {
		t.Fatalf("the other API's token has aud %v, want %s", aud, otherAudience)
	}
	wantBearerInvalid(t, bearerGet(t, "/api/other-audience", at), "/api/other-audience")
}

// An opaque access token (the provider's resource server for opaqueAudience issues no JWT)
// is judged at the provider's introspection endpoint: it opens the site with the client as
// subject and its scopes. Once revoked at the provider (RFC 7009), it is refused as soon as
// the gateway's cache_ttl has passed.
func TestE2EBearerOpaqueTokenIntrospected(t *testing.T) {
	at := machineToken(t, opaqueAudience, "items:read")
	if strings.Count(at, ".") == 2 {
		t.Fatalf("the opaque API's token looks like a JWT: %.40s…", at)
	}
	a := bearerGet(t, "/api/opaque?n=1", at)
	if a.status != http.StatusOK {
		t.Fatalf("GET with the opaque token: %d, want 200; body %.300s\n%s", a.status, a.body, tail(e2e.caddyLog))
	}
	for k, v := range map[string]string{"X-Auth-Subject": bearerClientID, "X-Auth-Scopes": "items:read"} {
		if g := a.echo.Headers.Values(k); len(g) != 1 || g[0] != v {
			t.Errorf("upstream %s = %q, want %q", k, g, v)
		}
	}
	if a.echo.Headers.Get("Authorization") != "" {
		t.Error("the access token reached the upstream")
	}

	req, _ := http.NewRequest(http.MethodPost, e2e.opURL+"/token/revocation", strings.NewReader(url.Values{"token": {at}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(bearerClientID, clientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("revocation: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revocation: %s", resp.Status)
	}
	revoked := time.Now()
	time.Sleep(bearerCacheTTL + 100*time.Millisecond)
	r := bearerGet(t, "/api/opaque-revoked", at)
	wantBearerInvalid(t, r, "/api/opaque-revoked")
	if !strings.Contains(r.body, "not active") {
		t.Errorf("body = %s, want the provider's verdict (not active) named", r.body)
	}
	t.Logf("revoked token refused %s after revocation (cache_ttl %s)", time.Since(revoked).Round(10*time.Millisecond), bearerCacheTTL)
}
