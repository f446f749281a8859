package oidctest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a goroutine-safe settable clock.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestNewRefusesNonLoopback(t *testing.T) {
	tests := []struct {
		name    string
		addr    string
		wantErr bool
	}{
		{name: "default", addr: "", wantErr: false},
		{name: "ipv4 loopback", addr: "127.0.0.1:0", wantErr: false},
		{name: "localhost", addr: "localhost:0", wantErr: false},
		{name: "all interfaces", addr: ":0", wantErr: true},
		{name: "unspecified ipv4", addr: "0.0.0.0:0", wantErr: true},
		{name: "unspecified ipv6", addr: "[::]:0", wantErr: true},
		{name: "public address", addr: "192.0.2.1:0", wantErr: true},
		{name: "hostname", addr: "example.com:0", wantErr: true},
		{name: "no port", addr: "127.0.0.1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(Options{Addr: tt.addr})
			if p != nil {
				defer p.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(Addr: %q) error = %v, wantErr %v", tt.addr, err, tt.wantErr)
			}
			if err == nil && !strings.HasPrefix(p.Issuer(), "http://127.0.0.1:") && !strings.HasPrefix(p.Issuer(), "http://[::1]:") {
				t.Errorf("Issuer() = %q, want http://<loopback>:PORT", p.Issuer())
			}
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{name: "bad alg", opts: Options{SigningAlg: "HS256"}},
		{name: "empty client id", opts: Options{Clients: []Client{{Secret: "s"}}}},
		{name: "duplicate client", opts: Options{Clients: []Client{DefaultClient(), DefaultClient()}}},
		{name: "empty subject", opts: Options{Users: []User{{Label: "x"}}}},
		{name: "duplicate user", opts: Options{Users: []User{{Subject: "a"}, {Subject: "a"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.opts)
			if err == nil {
				p.Close()
				t.Fatalf("New(%+v) error = nil, want an error", tt.opts)
			}
		})
	}
}

func TestCloseIdempotent(t *testing.T) {
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	issuer := p.Issuer()
	p.Close()
	p.Close()
	if _, err := http.Get(issuer + PathDiscovery); err == nil {
		t.Errorf("GET after Close() error = nil, want connection refused")
	}
}

func TestDiscovery(t *testing.T) {
	op := NewTest(t, Options{})
	resp, body := get(t, op.Issuer()+PathDiscovery)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET discovery status = %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	iss := op.Issuer()
	if strings.HasSuffix(iss, "/") {
		t.Errorf("Issuer() = %q, want no trailing slash", iss)
	}
	wantStrings := map[string]string{
		"issuer":                 iss,
		"authorization_endpoint": iss + "/authorize",
		"token_endpoint":         iss + "/token",
		"userinfo_endpoint":      iss + "/userinfo",
		"jwks_uri":               iss + "/jwks",
		"end_session_endpoint":   iss + "/end_session",
	}
	for k, want := range wantStrings {
		if got := doc[k]; got != want {
			t.Errorf("discovery[%q] = %v, want %q", k, got, want)
		}
	}
	wantLists := map[string][]string{
		"id_token_signing_alg_values_supported": {"RS256"},
		"userinfo_signing_alg_values_supported": {"RS256"},
		"code_challenge_methods_supported":      {"S256"},
		"token_endpoint_auth_methods_supported": {"client_secret_basic", "client_secret_post"},
		"response_types_supported":              {"code"},
		"subject_types_supported":               {"public"},
	}
	for k, want := range wantLists {
		if got := toStrings(doc[k]); !slices.Equal(got, want) {
			t.Errorf("discovery[%q] = %v, want %v", k, got, want)
		}
	}
	if got := toStrings(doc["scopes_supported"]); !slices.Contains(got, "openid") {
		t.Errorf("scopes_supported = %v, want it to contain openid", got)
	}
	claims := toStrings(doc["claims_supported"])
	for _, c := range []string{"sub", "iss", "auth_time", "acr", "amr", "bindid_alias", "bindid_info", "bindid_network_info", "address", "name"} {
		if !slices.Contains(claims, c) {
			t.Errorf("claims_supported = %v, want it to contain %q", claims, c)
		}
	}
	if got := op.Counts().Discovery; got != 1 {
		t.Errorf("Counts().Discovery = %d, want 1", got)
	}
}

func toStrings(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, e := range a {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// TestCodeFlowByHand walks the whole flow with net/http: login page, POST, code, token with
// PKCE, ID token verified with the JWKS, userinfo.
func TestCodeFlowByHand(t *testing.T) {
	clock := newFakeClock()
	op := NewTest(t, Options{Now: clock.Now})
	verifier, challenge := pkcePair(t)
	params := authParams(challenge)

	// 1. The login page.
	resp, body := get(t, op.Issuer()+PathAuthorize+"?"+params.Encode())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /authorize status = %d, want 200", resp.StatusCode)
	}
	page := string(body)
	for _, want := range []string{"<title>trustgate development OP</title>", `method="post"`, `name="user" value="` + SubjectBindIDKnown + `"`, "bindid-known", "ola", SubjectOla} {
		if !strings.Contains(page, want) {
			t.Errorf("login page does not contain %q:\n%s", want, page)
		}
	}
	if got := strings.Count(page, `<button type="submit" name="user"`); got != len(DefaultUsers()) {
		t.Errorf("login page buttons = %d, want %d", got, len(DefaultUsers()))
	}

	// 2. Clicking a user button posts the hidden fields plus user.
	form := url.Values{}
	for k, v := range params {
		form[k] = v
	}
	form.Set("user", SubjectBindIDKnown)
	resp, _ = postForm(t, op.Issuer()+PathAuthorize, form)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("POST /authorize status = %d, want 302", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != testRedirectURI {
		t.Errorf("redirect target = %q, want %q", got, testRedirectURI)
	}
	q := loc.Query()
	if q.Get("state") != "state-123" || q.Get("iss") != op.Issuer() || q.Get("code") == "" {
		t.Errorf("redirect query = %v, want code, state=state-123, iss=%s", q, op.Issuer())
	}

	// 3. Token exchange.
	status, tok := exchange(t, op, q.Get("code"), verifier)
	if status != http.StatusOK {
		t.Fatalf("token status = %d (%v), want 200", status, tok)
	}
	if tok["token_type"] != "Bearer" || tok["expires_in"] != float64(300) {
		t.Errorf("token_type, expires_in = %v, %v, want Bearer, 300", tok["token_type"], tok["expires_in"])
	}
	for _, k := range []string{"access_token", "refresh_token", "id_token"} {
		if s, _ := tok[k].(string); s == "" {
			t.Errorf("token response %q missing", k)
		}
	}
	if got := op.LastTokenRequest().Get("auth"); got != "basic" {
		t.Errorf("LastTokenRequest()[auth] = %q, want basic", got)
	}

	// 4. The ID token verifies with the published key and carries the protocol claims.
	idt := tok["id_token"].(string)
	header, _, _ := decodeJWT(t, idt)
	if header["alg"] != "RS256" || header["typ"] != "JWT" || header["kid"] == nil {
		t.Errorf("ID token header = %v, want alg RS256, typ JWT, kid", header)
	}
	claims, err := verifyJWT(t, op, idt)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	now := clock.Now().Unix()
	want := map[string]any{
		"iss": op.Issuer(), "sub": SubjectBindIDKnown, "aud": DefaultClientID, "azp": DefaultClientID,
		"nonce": "nonce-456", "iat": float64(now), "exp": float64(now + 300), "auth_time": float64(now),
		"at_hash": atHash(tok["access_token"].(string)), "bindid_alias": "username@domain",
		"acr": " ts.bindid.iac.phone_number",
	}
	for k, w := range want {
		if claims[k] != w {
			t.Errorf("ID token claim %q = %v, want %v", k, claims[k], w)
		}
	}
	if _, ok := claims["bindid_info"].(map[string]any); !ok {
		t.Errorf("ID token bindid_info = %v, want an object", claims["bindid_info"])
	}

	// 5. Userinfo (JSON for this user).
	resp, body = userinfo(t, op, tok["access_token"].(string))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("userinfo = %d %q, want 200 application/json", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var ui map[string]any
	if err := json.Unmarshal(body, &ui); err != nil {
		t.Fatal(err)
	}
	if ui["sub"] != SubjectBindIDKnown || ui["auth_time"] != float64(now) || ui["nonce"] != "nonce-456" {
		t.Errorf("userinfo sub, auth_time, nonce = %v, %v, %v, want %s, %d, nonce-456", ui["sub"], ui["auth_time"], ui["nonce"], SubjectBindIDKnown, now)
	}
	if got, want := op.Counts(), (Counts{Authorize: 2, Token: 1, Userinfo: 1, JWKS: 1}); got != want {
		t.Errorf("Counts() = %+v, want %+v", got, want)
	}
}

func TestAutoLogin(t *testing.T) {
	tests := []struct {
		name       string
		auto       string
		wantStatus int
		wantSub    string
	}{
		{name: "subject", auto: SubjectOla, wantStatus: http.StatusFound, wantSub: SubjectOla},
		{name: "label", auto: "ase", wantStatus: http.StatusFound, wantSub: SubjectAse},
		{name: "off shows login page", auto: "", wantStatus: http.StatusOK},
		{name: "unknown user", auto: "nobody", wantStatus: http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := NewTest(t, Options{})
			op.SetAutoLogin(tt.auto)
			verifier, challenge := pkcePair(t)
			resp, _ := get(t, op.Issuer()+PathAuthorize+"?"+authParams(challenge).Encode())
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("GET /authorize status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantSub == "" {
				return
			}
			status, tok := exchange(t, op, codeFrom(t, resp), verifier)
			if status != http.StatusOK {
				t.Fatalf("token status = %d, want 200", status)
			}
			_, claims, _ := decodeJWT(t, tok["id_token"].(string))
			if claims["sub"] != tt.wantSub {
				t.Errorf("ID token sub = %v, want %s", claims["sub"], tt.wantSub)
			}
		})
	}
}

func TestPromptNoneWithoutAutoLogin(t *testing.T) {
	op := NewTest(t, Options{})
	_, challenge := pkcePair(t)
	p := authParams(challenge)
	p.Set("prompt", "none")
	resp, _ := get(t, op.Issuer()+PathAuthorize+"?"+p.Encode())
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("error") != "login_required" {
		t.Errorf("GET /authorize?prompt=none = %d %q, want 302 with error=login_required", resp.StatusCode, loc)
	}
}

func TestAuthorizeValidation(t *testing.T) {
	_, challenge := pkcePair(t)
	tests := []struct {
		name      string
		edit      func(url.Values)
		wantPage  bool   // 400 HTML page, no redirect
		wantError string // error in the redirect
	}{
		{name: "unknown client", edit: func(v url.Values) { v.Set("client_id", "nope") }, wantPage: true},
		{name: "missing client", edit: func(v url.Values) { v.Del("client_id") }, wantPage: true},
		{name: "missing redirect", edit: func(v url.Values) { v.Del("redirect_uri") }, wantPage: true},
		{name: "non-loopback redirect", edit: func(v url.Values) { v.Set("redirect_uri", "https://evil.example/cb") }, wantPage: true},
		{name: "userinfo in redirect", edit: func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1@evil.example/cb") }, wantPage: true},
		{name: "javascript redirect", edit: func(v url.Values) { v.Set("redirect_uri", "javascript:alert(1)") }, wantPage: true},
		{name: "repeated state", edit: func(v url.Values) { v.Add("state", "other") }, wantPage: true},
		{name: "token response type", edit: func(v url.Values) { v.Set("response_type", "token") }, wantError: "unsupported_response_type"},
		{name: "no openid scope", edit: func(v url.Values) { v.Set("scope", "email profile") }, wantError: "invalid_scope"},
		{name: "no code challenge", edit: func(v url.Values) { v.Del("code_challenge") }, wantError: "invalid_request"},
		{name: "plain method", edit: func(v url.Values) { v.Set("code_challenge_method", "plain") }, wantError: "invalid_request"},
		{name: "no method", edit: func(v url.Values) { v.Del("code_challenge_method") }, wantError: "invalid_request"},
		{name: "malformed challenge", edit: func(v url.Values) { v.Set("code_challenge", "short") }, wantError: "invalid_request"},
	}
	op := NewTest(t, Options{})
	op.SetAutoLogin(SubjectBindIDKnown)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := authParams(challenge)
			tt.edit(v)
			resp, body := get(t, op.Issuer()+PathAuthorize+"?"+v.Encode())
			if tt.wantPage {
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
					t.Fatalf("GET /authorize = %d Location %q, want 400 without redirect", resp.StatusCode, resp.Header.Get("Location"))
				}
				if !strings.Contains(string(body), "trustgate development OP") {
					t.Errorf("error page = %q, want the OP title", body)
				}
				return
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			q := loc.Query()
			if resp.StatusCode != http.StatusFound || q.Get("error") != tt.wantError || q.Has("code") {
				t.Errorf("GET /authorize = %d %q, want 302 with error=%s and no code", resp.StatusCode, loc, tt.wantError)
			}
			if q.Get("state") != "state-123" || q.Get("iss") != op.Issuer() {
				t.Errorf("error redirect query = %v, want state and iss", q)
			}
		})
	}
}

func TestRedirectURIMatching(t *testing.T) {
	tests := []struct {
		name       string
		registered []string
		uri        string
		want       bool
	}{
		{name: "exact", registered: []string{"https://app.example/cb"}, uri: "https://app.example/cb", want: true},
		{name: "exact differs by slash", registered: []string{"https://app.example/cb"}, uri: "https://app.example/cb/", want: false},
		{name: "exact differs by case", registered: []string{"https://app.example/cb"}, uri: "https://APP.example/cb", want: false},
		{name: "star ipv4", registered: []string{"*"}, uri: "http://127.0.0.1:8080/cb", want: true},
		{name: "star localhost https", registered: []string{"*"}, uri: "https://localhost/cb?x=1", want: true},
		{name: "star sub.localhost", registered: []string{"*"}, uri: "http://app.localhost:8080/cb", want: true},
		{name: "star ipv6", registered: []string{"*"}, uri: "http://[::1]:8080/cb", want: true},
		{name: "star public host", registered: []string{"*"}, uri: "https://evil.example/cb", want: false},
		{name: "star localhost lookalike", registered: []string{"*"}, uri: "http://localhost.evil.example/cb", want: false},
		{name: "star userinfo", registered: []string{"*"}, uri: "http://localhost@evil.example/", want: false},
		{name: "star fragment", registered: []string{"*"}, uri: "http://localhost/cb#x", want: false},
		{name: "star other scheme", registered: []string{"*"}, uri: "ftp://localhost/cb", want: false},
		{name: "star relative", registered: []string{"*"}, uri: "/cb", want: false},
		{name: "star backslash", registered: []string{"*"}, uri: `http://localhost\@evil.example/`, want: false},
		{name: "nothing registered", registered: nil, uri: "http://localhost/cb", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := allowedURI(tt.registered, tt.uri); got != tt.want {
				t.Errorf("allowedURI(%q, %q) = %v, want %v", tt.registered, tt.uri, got, tt.want)
			}
		})
	}
}

func TestLoginPageEscapes(t *testing.T) {
	evil := `"><script>alert(1)</script>`
	op := NewTest(t, Options{
		Users: []User{{Subject: "sub-" + evil, Label: "<b>label</b>" + evil}},
	})
	_, challenge := pkcePair(t)
	p := authParams(challenge)
	p.Set("state", evil)
	p.Set("nonce", evil)
	p.Set("extra"+evil, evil)
	p.Set("user", "injected") // never carried into the form (the buttons set user)
	resp, body := get(t, op.Issuer()+PathAuthorize+"?"+p.Encode())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /authorize status = %d, want 200", resp.StatusCode)
	}
	page := string(body)
	for _, bad := range []string{"<script>", "<b>label</b>"} {
		if strings.Contains(page, bad) {
			t.Errorf("login page contains unescaped %q:\n%s", bad, page)
		}
	}
	if strings.Contains(page, "injected") {
		t.Errorf("login page carries the request's user parameter:\n%s", page)
	}
	if !strings.Contains(page, "&lt;b&gt;label&lt;/b&gt;") {
		t.Errorf("login page does not show the escaped label:\n%s", page)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("login page header %s missing", h)
		}
	}

	// The error page escapes too (the auto-login value is reflected).
	op.SetAutoLogin(evil)
	_, body = get(t, op.Issuer()+PathAuthorize+"?"+p.Encode())
	if strings.Contains(string(body), "<script>") {
		t.Errorf("error page contains unescaped <script>:\n%s", body)
	}
}

func TestLoginPostValidation(t *testing.T) {
	op := NewTest(t, Options{})
	_, challenge := pkcePair(t)
	tests := []struct {
		name       string
		edit       func(url.Values)
		wantStatus int
	}{
		{name: "known user", edit: func(url.Values) {}, wantStatus: http.StatusFound},
		{name: "unknown user", edit: func(v url.Values) { v.Set("user", "nobody") }, wantStatus: http.StatusBadRequest},
		{name: "no user", edit: func(v url.Values) { v.Del("user") }, wantStatus: http.StatusBadRequest},
		{name: "post re-validates redirect", edit: func(v url.Values) { v.Set("redirect_uri", "https://evil.example/") }, wantStatus: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := authParams(challenge)
			v.Set("user", SubjectAse)
			tt.edit(v)
			resp, _ := postForm(t, op.Issuer()+PathAuthorize, v)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("POST /authorize status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
		})
	}
}

func TestCodeSingleUse(t *testing.T) {
	op := NewTest(t, Options{})
	code, verifier := login(t, op, SubjectBindIDKnown)
	status, tok := exchange(t, op, code, verifier)
	if status != http.StatusOK {
		t.Fatalf("first exchange status = %d, want 200", status)
	}
	at := tok["access_token"].(string)
	if resp, _ := userinfo(t, op, at); resp.StatusCode != http.StatusOK {
		t.Fatalf("userinfo before reuse = %d, want 200", resp.StatusCode)
	}
	status, body := exchange(t, op, code, verifier)
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("second exchange = %d %v, want 400 invalid_grant", status, body)
	}
	if got := op.Counts().CodeReuse; got != 1 {
		t.Errorf("Counts().CodeReuse = %d, want 1", got)
	}
	// The tokens the code produced are revoked.
	if resp, _ := userinfo(t, op, at); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("userinfo after code reuse = %d, want 401", resp.StatusCode)
	}
	status, body = tokenCall(t, op, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, DefaultClientID, DefaultClientSecret)
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("refresh after code reuse = %d %v, want 400 invalid_grant", status, body)
	}
}

func TestCodeExpires(t *testing.T) {
	clock := newFakeClock()
	op := NewTest(t, Options{Now: clock.Now})
	code, verifier := login(t, op, SubjectBindIDKnown)
	clock.Advance(CodeLifetime)
	status, body := exchange(t, op, code, verifier)
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("exchange after %v = %d %v, want 400 invalid_grant", CodeLifetime, status, body)
	}
	code, verifier = login(t, op, SubjectBindIDKnown)
	clock.Advance(CodeLifetime - time.Second)
	if status, body := exchange(t, op, code, verifier); status != http.StatusOK {
		t.Errorf("exchange after %v = %d %v, want 200", CodeLifetime-time.Second, status, body)
	}
}

func TestTokenGrantValidation(t *testing.T) {
	op := NewTest(t, Options{
		Clients: []Client{DefaultClient(), {ID: "second", Secret: "second-secret", RedirectURIs: []string{"*"}}},
	})
	tests := []struct {
		name      string
		edit      func(form url.Values) (id, secret string)
		wantError string
	}{
		{name: "valid", edit: func(url.Values) (string, string) { return DefaultClientID, DefaultClientSecret }},
		{name: "PKCE mismatch", edit: func(f url.Values) (string, string) {
			other, _ := pkcePair(t)
			f.Set("code_verifier", other)
			return DefaultClientID, DefaultClientSecret
		}, wantError: "invalid_grant"},
		{name: "missing verifier", edit: func(f url.Values) (string, string) {
			f.Del("code_verifier")
			return DefaultClientID, DefaultClientSecret
		}, wantError: "invalid_grant"},
		{name: "short verifier", edit: func(f url.Values) (string, string) {
			f.Set("code_verifier", "abc")
			return DefaultClientID, DefaultClientSecret
		}, wantError: "invalid_grant"},
		{name: "redirect mismatch", edit: func(f url.Values) (string, string) {
			f.Set("redirect_uri", "http://127.0.0.1:2/callback")
			return DefaultClientID, DefaultClientSecret
		}, wantError: "invalid_grant"},
		{name: "other client", edit: func(url.Values) (string, string) { return "second", "second-secret" }, wantError: "invalid_grant"},
		{name: "unknown code", edit: func(f url.Values) (string, string) {
			f.Set("code", "not-a-code")
			return DefaultClientID, DefaultClientSecret
		}, wantError: "invalid_grant"},
		{name: "repeated code", edit: func(f url.Values) (string, string) {
			f.Add("code", "x")
			return DefaultClientID, DefaultClientSecret
		}, wantError: "invalid_request"},
		{name: "missing grant type", edit: func(f url.Values) (string, string) {
			f.Del("grant_type")
			return DefaultClientID, DefaultClientSecret
		}, wantError: "invalid_request"},
		{name: "unsupported grant type", edit: func(f url.Values) (string, string) {
			f.Set("grant_type", "password")
			return DefaultClientID, DefaultClientSecret
		}, wantError: "unsupported_grant_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, verifier := login(t, op, SubjectBindIDKnown)
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirectURI}, "code_verifier": {verifier}}
			id, secret := tt.edit(form)
			status, body := tokenCall(t, op, form, id, secret)
			if tt.wantError == "" {
				if status != http.StatusOK {
					t.Errorf("token = %d %v, want 200", status, body)
				}
				return
			}
			if status != http.StatusBadRequest || body["error"] != tt.wantError {
				t.Errorf("token = %d %v, want 400 %s", status, body, tt.wantError)
			}
		})
	}
}

func TestClientAuthentication(t *testing.T) {
	// A secret with characters that client_secret_basic must form-urlencode (RFC 6749 §2.3.1).
	const oddSecret = "s3cr:t%+ /x"
	op := NewTest(t, Options{Clients: []Client{DefaultClient(), {ID: "odd:id", Secret: oddSecret, RedirectURIs: []string{"*"}}}})
	tests := []struct {
		name       string
		send       func(req *http.Request, form url.Values)
		wantStatus int
		wantError  string
		wantAuth   string
	}{
		{name: "basic", send: func(r *http.Request, _ url.Values) {
			r.SetBasicAuth(DefaultClientID, DefaultClientSecret)
		}, wantStatus: http.StatusOK, wantAuth: "basic"},
		{name: "post", send: func(_ *http.Request, f url.Values) {
			f.Set("client_id", DefaultClientID)
			f.Set("client_secret", DefaultClientSecret)
		}, wantStatus: http.StatusOK, wantAuth: "post"},
		{name: "basic form-urlencoded special characters", send: func(r *http.Request, _ url.Values) {
			r.SetBasicAuth(url.QueryEscape("odd:id"), url.QueryEscape(oddSecret))
		}, wantStatus: http.StatusOK, wantAuth: "basic"},
		{name: "basic not urlencoded", send: func(r *http.Request, _ url.Values) {
			r.SetBasicAuth("odd%3Aid", oddSecret) // '+' decodes to ' ', '%+ ' is invalid
		}, wantStatus: http.StatusBadRequest, wantError: "invalid_request", wantAuth: "basic"},
		{name: "basic wrong secret", send: func(r *http.Request, _ url.Values) {
			r.SetBasicAuth(DefaultClientID, "wrong")
		}, wantStatus: http.StatusUnauthorized, wantError: "invalid_client", wantAuth: "basic"},
		{name: "post wrong secret", send: func(_ *http.Request, f url.Values) {
			f.Set("client_id", DefaultClientID)
			f.Set("client_secret", "wrong")
		}, wantStatus: http.StatusUnauthorized, wantError: "invalid_client", wantAuth: "post"},
		{name: "unknown client", send: func(r *http.Request, _ url.Values) {
			r.SetBasicAuth("nobody", DefaultClientSecret)
		}, wantStatus: http.StatusUnauthorized, wantError: "invalid_client", wantAuth: "basic"},
		{name: "no authentication", send: func(_ *http.Request, f url.Values) {
			f.Set("client_id", DefaultClientID)
		}, wantStatus: http.StatusUnauthorized, wantError: "invalid_client", wantAuth: "none"},
		{name: "both methods", send: func(r *http.Request, f url.Values) {
			r.SetBasicAuth(DefaultClientID, DefaultClientSecret)
			f.Set("client_secret", DefaultClientSecret)
		}, wantStatus: http.StatusBadRequest, wantError: "invalid_request", wantAuth: "basic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verifier, challenge := pkcePair(t)
			ap := authParams(challenge)
			ap.Set("user", SubjectBindIDKnown)
			if strings.HasPrefix(tt.name, "basic form") || strings.HasPrefix(tt.name, "basic not") {
				ap.Set("client_id", "odd:id")
			}
			resp, _ := postForm(t, op.Issuer()+PathAuthorize, ap)
			form := url.Values{"grant_type": {"authorization_code"}, "code": {codeFrom(t, resp)}, "redirect_uri": {testRedirectURI}, "code_verifier": {verifier}}
			req, _ := http.NewRequest(http.MethodPost, op.Issuer()+PathToken, nil)
			tt.send(req, form)
			req.Body = io.NopCloser(strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, body := do(t, req)
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("token status = %d (%s), want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantError != "" && m["error"] != tt.wantError {
				t.Errorf("token error = %v, want %s", m["error"], tt.wantError)
			}
			if tt.wantError == "invalid_client" && tt.wantAuth == "basic" && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("invalid_client over basic: WWW-Authenticate missing")
			}
			if got := op.LastTokenRequest().Get("auth"); got != tt.wantAuth {
				t.Errorf("LastTokenRequest()[auth] = %q, want %q", got, tt.wantAuth)
			}
		})
	}
}

func TestTokenEndpointMethodAndBody(t *testing.T) {
	op := NewTest(t, Options{})
	resp, _ := get(t, op.Issuer()+PathToken)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /token status = %d, want 405", resp.StatusCode)
	}
	big := url.Values{"grant_type": {"authorization_code"}, "code": {strings.Repeat("a", maxBodyBytes+1)}}
	resp, _ = postForm(t, op.Issuer()+PathToken, big)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("POST /token with %d bytes status = %d, want 413", maxBodyBytes+1, resp.StatusCode)
	}
	if got := op.Counts().Token; got != 2 {
		t.Errorf("Counts().Token = %d, want 2 (rejected requests count too)", got)
	}
}

func TestUserinfoBearerOnly(t *testing.T) {
	op := NewTest(t, Options{})
	at := mustTokens(t, op, SubjectBindIDKnown)["access_token"].(string)
	tests := []struct {
		name       string
		req        func() *http.Request
		wantStatus int
	}{
		{name: "header", req: func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, op.Issuer()+PathUserinfo, nil)
			r.Header.Set("Authorization", "Bearer "+at)
			return r
		}, wantStatus: http.StatusOK},
		{name: "header lowercase scheme", req: func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, op.Issuer()+PathUserinfo, nil)
			r.Header.Set("Authorization", "bearer "+at)
			return r
		}, wantStatus: http.StatusOK},
		{name: "POST with header", req: func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, op.Issuer()+PathUserinfo, nil)
			r.Header.Set("Authorization", "Bearer "+at)
			return r
		}, wantStatus: http.StatusOK},
		{name: "query token", req: func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, op.Issuer()+PathUserinfo+"?access_token="+at, nil)
			return r
		}, wantStatus: http.StatusUnauthorized},
		{name: "query token with header", req: func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, op.Issuer()+PathUserinfo+"?access_token="+at, nil)
			r.Header.Set("Authorization", "Bearer "+at)
			return r
		}, wantStatus: http.StatusUnauthorized},
		{name: "body token", req: func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, op.Issuer()+PathUserinfo, strings.NewReader("access_token="+at))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, wantStatus: http.StatusUnauthorized},
		{name: "no token", req: func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, op.Issuer()+PathUserinfo, nil)
			return r
		}, wantStatus: http.StatusUnauthorized},
		{name: "basic scheme", req: func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, op.Issuer()+PathUserinfo, nil)
			r.SetBasicAuth(at, "")
			return r
		}, wantStatus: http.StatusUnauthorized},
		{name: "unknown token", req: func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, op.Issuer()+PathUserinfo, nil)
			r.Header.Set("Authorization", "Bearer nope")
			return r
		}, wantStatus: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.req())
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("userinfo status = %d (%s), want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want Bearer ...", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// LastUserinfoRequest lets a test assert where the RP put the token.
	last := op.LastUserinfoRequest()
	if last == nil || last.Method != http.MethodGet || last.Header.Get("Authorization") != "Bearer nope" {
		t.Errorf("LastUserinfoRequest() = %v, want the last request (Bearer nope)", last)
	}
	do(t, func() *http.Request {
		r, _ := http.NewRequest(http.MethodPost, op.Issuer()+PathUserinfo+"?access_token=q", strings.NewReader("access_token=b"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}())
	last = op.LastUserinfoRequest()
	b, _ := io.ReadAll(last.Body)
	if last.Method != http.MethodPost || last.URL.Query().Get("access_token") != "q" || string(b) != "access_token=b" {
		t.Errorf("LastUserinfoRequest() = %s %s body %q, want POST with query and body", last.Method, last.URL, b)
	}
	again, _ := io.ReadAll(op.LastUserinfoRequest().Body)
	if string(again) != "access_token=b" {
		t.Errorf("second LastUserinfoRequest() body = %q, want a fresh copy", again)
	}
}

func TestAccessTokenExpires(t *testing.T) {
	clock := newFakeClock()
	op := NewTest(t, Options{Now: clock.Now})
	at := mustTokens(t, op, SubjectBindIDKnown)["access_token"].(string)
	clock.Advance(AccessTokenLifetime - time.Second)
	if resp, _ := userinfo(t, op, at); resp.StatusCode != http.StatusOK {
		t.Errorf("userinfo before expiry = %d, want 200", resp.StatusCode)
	}
	clock.Advance(time.Second)
	if resp, _ := userinfo(t, op, at); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("userinfo at expiry = %d, want 401", resp.StatusCode)
	}
}

func TestSignedUserinfoVerifiesWithJWKS(t *testing.T) {
	tests := []struct {
		name    string
		alg     string
		clients []Client
		subject string
		wantAud string
	}{
		{name: "user wants signed (BankID)", alg: "RS256", subject: SubjectOla, wantAud: DefaultClientID},
		{name: "user wants signed ES256", alg: "ES256", subject: SubjectOla, wantAud: DefaultClientID},
		{name: "client wants signed", alg: "RS256", clients: []Client{{ID: DefaultClientID, Secret: DefaultClientSecret, RedirectURIs: []string{"*"}, SignedUserinfo: true}}, subject: SubjectBindIDKnown, wantAud: DefaultClientID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := NewTest(t, Options{SigningAlg: tt.alg, Clients: tt.clients})
			at := mustTokens(t, op, tt.subject)["access_token"].(string)
			resp, body := userinfo(t, op, at)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/jwt" {
				t.Fatalf("userinfo = %d %q, want 200 application/jwt", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			header, _, _ := decodeJWT(t, string(body))
			if header["alg"] != tt.alg || header["kid"] == nil || header["typ"] != "JWT" {
				t.Errorf("userinfo JWT header = %v, want alg %s, kid, typ JWT", header, tt.alg)
			}
			claims, err := verifyJWT(t, op, string(body))
			if err != nil {
				t.Fatalf("verify userinfo JWT: %v", err)
			}
			if claims["iss"] != op.Issuer() || claims["aud"] != tt.wantAud || claims["sub"] != tt.subject {
				t.Errorf("userinfo iss, aud, sub = %v, %v, %v, want %s, %s, %s", claims["iss"], claims["aud"], claims["sub"], op.Issuer(), tt.wantAud, tt.subject)
			}
			if tt.subject == SubjectOla && claims["name"] != "Ola Normann" {
				t.Errorf("userinfo name = %v, want Ola Normann", claims["name"])
			}
		})
	}
}

func TestES256IDToken(t *testing.T) {
	op := NewTest(t, Options{SigningAlg: "ES256"})
	idt := mustTokens(t, op, SubjectAse)["id_token"].(string)
	header, _, sig := decodeJWT(t, idt)
	if header["alg"] != "ES256" || len(sig) != 64 {
		t.Errorf("ID token alg, signature length = %v, %d, want ES256, 64", header["alg"], len(sig))
	}
	claims, err := verifyJWT(t, op, idt)
	if err != nil {
		t.Fatalf("verify ES256 ID token: %v", err)
	}
	if claims["name"] != "Åse Øvrebø" {
		t.Errorf("ID token name = %v, want Åse Øvrebø", claims["name"])
	}
	set := fetchJWKS(t, op)
	if len(set.Keys) != 1 || set.Keys[0].Algorithm != "ES256" || set.Keys[0].Use != "sig" || !set.Keys[0].IsPublic() {
		t.Errorf("JWKS = %+v, want one public ES256 sig key", set.Keys)
	}
}

func TestRotateKeys(t *testing.T) {
	op := NewTest(t, Options{})
	kid := func(tok string) string {
		h, _, _ := decodeJWT(t, tok)
		s, _ := h["kid"].(string)
		return s
	}
	kids := func() []string {
		var out []string
		for _, k := range fetchJWKS(t, op).Keys {
			if !k.IsPublic() {
				t.Errorf("JWKS key %s is private", k.KeyID)
			}
			out = append(out, k.KeyID)
		}
		return out
	}
	k0 := kid(mustTokens(t, op, SubjectBindIDKnown)["id_token"].(string))
	if got := kids(); !slices.Equal(got, []string{k0}) {
		t.Fatalf("JWKS kids = %v, want [%s]", got, k0)
	}

	op.RotateKeys()
	tok1 := mustTokens(t, op, SubjectBindIDKnown)["id_token"].(string)
	k1 := kid(tok1)
	if k1 == k0 || k1 == "" {
		t.Fatalf("kid after rotation = %q, want a new kid (old %q)", k1, k0)
	}
	if got := kids(); !slices.Equal(got, []string{k1, k0}) {
		t.Errorf("JWKS kids after one rotation = %v, want [%s %s]", got, k1, k0)
	}
	if _, err := verifyJWT(t, op, tok1); err != nil {
		t.Errorf("verify token after rotation: %v", err)
	}

	op.RotateKeys()
	k2 := kid(mustTokens(t, op, SubjectBindIDKnown)["id_token"].(string))
	if got := kids(); !slices.Equal(got, []string{k2, k1}) {
		t.Errorf("JWKS kids after two rotations = %v, want [%s %s]", got, k2, k1)
	}

	// Rotation is per Provider: a new Provider still signs with the shared key.
	other := NewTest(t, Options{})
	if got := kid(mustTokens(t, other, SubjectBindIDKnown)["id_token"].(string)); got != k0 {
		t.Errorf("other Provider kid = %q, want the shared %q", got, k0)
	}
}

func TestRefreshRotation(t *testing.T) {
	clock := newFakeClock()
	op := NewTest(t, Options{Now: clock.Now})
	tok := mustTokens(t, op, SubjectBindIDKnown)
	authTime := clock.Now().Unix()
	clock.Advance(time.Minute)
	rt := tok["refresh_token"].(string)
	refresh := func(rt string) (int, map[string]any) {
		return tokenCall(t, op, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, DefaultClientID, DefaultClientSecret)
	}
	status, tok2 := refresh(rt)
	if status != http.StatusOK {
		t.Fatalf("refresh = %d %v, want 200", status, tok2)
	}
	rt2, _ := tok2["refresh_token"].(string)
	if rt2 == "" || rt2 == rt || tok2["access_token"] == tok["access_token"] {
		t.Errorf("refresh did not rotate tokens: %v", tok2)
	}
	claims, err := verifyJWT(t, op, tok2["id_token"].(string))
	if err != nil {
		t.Fatalf("verify refreshed ID token: %v", err)
	}
	if claims["sub"] != SubjectBindIDKnown || claims["auth_time"] != float64(authTime) || claims["iat"] != float64(clock.Now().Unix()) {
		t.Errorf("refreshed ID token sub, auth_time, iat = %v, %v, %v, want %s, %d, %d", claims["sub"], claims["auth_time"], claims["iat"], SubjectBindIDKnown, authTime, clock.Now().Unix())
	}
	if _, ok := claims["nonce"]; ok {
		t.Errorf("refreshed ID token nonce = %v, want none", claims["nonce"])
	}
	status, body := refresh(rt)
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("reusing the old refresh token = %d %v, want 400 invalid_grant", status, body)
	}
	if got := op.Counts().RefreshReuse; got != 1 {
		t.Errorf("Counts().RefreshReuse = %d, want 1", got)
	}
	if status, body := refresh(rt2); status != http.StatusOK {
		t.Errorf("refresh with the new token = %d %v, want 200", status, body)
	}
	// Wrong client, and a scope beyond the grant.
	op2 := NewTest(t, Options{Clients: []Client{DefaultClient(), {ID: "second", Secret: "second-secret"}}})
	rt3 := mustTokens(t, op2, SubjectAse)["refresh_token"].(string)
	status, body = tokenCall(t, op2, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt3}}, "second", "second-secret")
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("refresh by another client = %d %v, want 400 invalid_grant", status, body)
	}
	status, body = tokenCall(t, op2, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt3}, "scope": {"openid admin"}}, DefaultClientID, DefaultClientSecret)
	if status != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Errorf("refresh with a wider scope = %d %v, want 400 invalid_scope", status, body)
	}
	status, body = tokenCall(t, op2, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt3}, "scope": {"openid"}}, DefaultClientID, DefaultClientSecret)
	if status != http.StatusOK {
		t.Errorf("refresh with a narrower scope = %d %v, want 200 (token kept after the failed attempts)", status, body)
	}
}

func TestEndSession(t *testing.T) {
	op := NewTest(t, Options{Clients: []Client{
		DefaultClient(),
		{ID: "strict", Secret: "strict-secret", RedirectURIs: []string{"*"}, PostLogoutRedirectURIs: []string{"https://app.example/bye"}},
	}})
	idt := mustTokens(t, op, SubjectBindIDKnown)["id_token"].(string)
	op.SetFaults(Faults{IDTokenWrongIssuer: true})
	foreignIDT := mustTokens(t, op, SubjectBindIDKnown)["id_token"].(string)
	op.SetFaults(Faults{})
	tests := []struct {
		name       string
		params     url.Values
		wantStatus int
		wantLoc    string
	}{
		{name: "no redirect", params: url.Values{}, wantStatus: http.StatusOK},
		{name: "client_id and redirect", params: url.Values{"client_id": {DefaultClientID}, "post_logout_redirect_uri": {"http://127.0.0.1:1/bye?x=1"}, "state": {"s1"}}, wantStatus: http.StatusFound, wantLoc: "http://127.0.0.1:1/bye?state=s1&x=1"},
		{name: "hint and redirect", params: url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"http://127.0.0.1:1/bye"}, "state": {"s2"}}, wantStatus: http.StatusFound, wantLoc: "http://127.0.0.1:1/bye?state=s2"},
		{name: "no state", params: url.Values{"client_id": {DefaultClientID}, "post_logout_redirect_uri": {"http://127.0.0.1:1/bye"}}, wantStatus: http.StatusFound, wantLoc: "http://127.0.0.1:1/bye"},
		{name: "exact registration", params: url.Values{"client_id": {"strict"}, "post_logout_redirect_uri": {"https://app.example/bye"}}, wantStatus: http.StatusFound, wantLoc: "https://app.example/bye"},
		{name: "unregistered redirect", params: url.Values{"client_id": {"strict"}, "post_logout_redirect_uri": {"http://127.0.0.1:1/bye"}}, wantStatus: http.StatusBadRequest},
		{name: "foreign redirect", params: url.Values{"client_id": {DefaultClientID}, "post_logout_redirect_uri": {"https://evil.example/"}}, wantStatus: http.StatusBadRequest},
		{name: "redirect without client", params: url.Values{"post_logout_redirect_uri": {"http://127.0.0.1:1/bye"}}, wantStatus: http.StatusBadRequest},
		{name: "forged hint", params: url.Values{"id_token_hint": {flipLastSignatureByte(idt)}, "post_logout_redirect_uri": {"http://127.0.0.1:1/bye"}}, wantStatus: http.StatusBadRequest},
		{name: "hint from another issuer", params: url.Values{"id_token_hint": {foreignIDT}, "post_logout_redirect_uri": {"http://127.0.0.1:1/bye"}}, wantStatus: http.StatusBadRequest},
		{name: "hint for another client", params: url.Values{"client_id": {"strict"}, "id_token_hint": {idt}}, wantStatus: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, op.Issuer()+PathEndSession+"?"+tt.params.Encode())
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("end_session status = %d (%s), want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if got := resp.Header.Get("Location"); got != tt.wantLoc {
				t.Errorf("end_session Location = %q, want %q", got, tt.wantLoc)
			}
			if tt.wantStatus != http.StatusBadRequest && !strings.Contains(string(body), "signed out") {
				t.Errorf("end_session page = %q, want it to say signed out", body)
			}
			if got := op.LastEndSessionRequest(); got.Get("state") != tt.params.Get("state") {
				t.Errorf("LastEndSessionRequest() = %v, want the request's params", got)
			}
		})
	}
	if got := op.Counts().EndSession; got != len(tests) {
		t.Errorf("Counts().EndSession = %d, want %d", got, len(tests))
	}
}

// TestConcurrentUse drives logins, token exchanges, userinfo, control calls and key rotation
// in parallel; run with -race.
func TestConcurrentUse(t *testing.T) {
	op := NewTest(t, Options{})
	const workers, rounds = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				if err := tryFlow(op, DefaultUsers()[(w+i)%4].Subject); err != nil {
					errs <- fmt.Errorf("worker %d round %d: %w", w, i, err)
				}
				op.SetAutoLogin(SubjectAse)
				op.SetFaults(Faults{})
				_ = op.Counts()
				_ = op.LastTokenRequest()
				_ = op.LastUserinfoRequest()
			}
		})
	}
	wg.Go(func() { op.RotateKeys() })
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, want := op.Counts().Token, workers*rounds; got != want {
		t.Errorf("Counts().Token = %d, want %d", got, want)
	}
}

// tryFlow is login + token + userinfo without testing.TB, for use in goroutines.
func tryFlow(op *Provider, subject string) error {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier := base64.RawURLEncoding.EncodeToString(b)
	form := authParams(s256(verifier))
	form.Set("user", subject)
	resp, err := noRedirect.PostForm(op.Issuer()+PathAuthorize, form)
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		return fmt.Errorf("authorize = %d %q, want a code", resp.StatusCode, resp.Header.Get("Location"))
	}
	treq, _ := http.NewRequest(http.MethodPost, op.Issuer()+PathToken, strings.NewReader(url.Values{
		"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {testRedirectURI}, "code_verifier": {verifier},
	}.Encode()))
	treq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	treq.SetBasicAuth(DefaultClientID, DefaultClientSecret)
	resp, err = noRedirect.Do(treq)
	if err != nil {
		return err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token = %d (%v), want 200", resp.StatusCode, err)
	}
	ureq, _ := http.NewRequest(http.MethodGet, op.Issuer()+PathUserinfo, nil)
	ureq.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = noRedirect.Do(ureq)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("userinfo = %d, want 200", resp.StatusCode)
	}
	return nil
}

func TestExpiringMapBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	m := newExpiringMap[int](4)
	for i := range 100 {
		m.put(now, fmt.Sprint(i), i, now.Add(time.Minute))
		if m.len() > 4 {
			t.Fatalf("len() after %d puts = %d, want <= 4", i+1, m.len())
		}
	}
	// First in, first out: the four newest are there, never a just-issued one evicted.
	for i := 96; i < 100; i++ {
		if _, ok := m.get(now, fmt.Sprint(i)); !ok {
			t.Errorf("get(%d) = absent, want the 4 newest present", i)
		}
	}
	if len(m.order) > 8 {
		t.Errorf("order holds %d keys, want at most 2×max", len(m.order))
	}
	// Expired entries go first when full.
	m2 := newExpiringMap[int](2)
	m2.put(now, "old", 1, now.Add(time.Second))
	m2.put(now, "live", 2, now.Add(time.Hour))
	later := now.Add(time.Minute)
	m2.put(later, "new", 3, later.Add(time.Hour))
	if _, ok := m2.get(later, "live"); !ok {
		t.Errorf("get(live) after eviction = absent, want present (expired entry evicted first)")
	}
	if _, ok := m2.get(later, "old"); ok {
		t.Errorf("get(old) = present, want expired")
	}
	if v, ok := m2.take(later, "new"); !ok || v != 3 {
		t.Errorf("take(new) = %v, %v, want 3, true", v, ok)
	}
	if _, ok := m2.get(later, "new"); ok {
		t.Errorf("get after take = present, want absent")
	}
}

func TestOutstandingCodesBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("issues more than maxCodes codes")
	}
	op := NewTest(t, Options{})
	op.SetAutoLogin(SubjectBindIDKnown)
	_, challenge := pkcePair(t)
	u := op.Issuer() + PathAuthorize + "?" + authParams(challenge).Encode()
	for range maxCodes + 50 {
		resp, err := noRedirect.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	op.mu.Lock()
	n := op.codes.len()
	op.mu.Unlock()
	if n > maxCodes {
		t.Errorf("outstanding codes = %d, want <= %d", n, maxCodes)
	}
}

func TestRequestLogHasNoSecrets(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	op := NewTest(t, Options{Logf: func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	}})
	code, verifier := login(t, op, SubjectBindIDKnown)
	_, tok := exchange(t, op, code, verifier)
	userinfo(t, op, tok["access_token"].(string))
	get(t, op.Issuer()+PathUserinfo+"?access_token="+tok["access_token"].(string)) // a token in the query is not logged either
	get(t, op.Issuer()+"/x%0Aforged")
	at := tok["access_token"].(string)
	feedbackCall(t, op, []string{feedbackHeader(DefaultClientSecret, at)}, feedbackBody(at, "logged-alias", 1))
	feedbackCall(t, op, []string{feedbackHeader("wrong", at)}, feedbackBody(at, "x", 1))
	op.Close() // waits for handlers, so every line is written

	mu.Lock()
	defer mu.Unlock()
	if len(lines) != 7 {
		t.Fatalf("log lines = %d (%q), want 7", len(lines), lines)
	}
	all := strings.Join(lines, "\n")
	for _, secret := range []string{code, verifier, DefaultClientSecret, tok["access_token"].(string), tok["refresh_token"].(string), tok["id_token"].(string)[:20],
		FeedbackAuthValue(DefaultClientSecret, at), FeedbackAuthValue("wrong", at)} {
		if strings.Contains(all, secret) {
			t.Errorf("log contains a secret %q:\n%s", secret, all)
		}
	}
	if !strings.Contains(lines[1], "POST /token 200") {
		t.Errorf("token log line = %q, want it to start with POST /token 200", lines[1])
	}
	if strings.Contains(lines[4], "\n") || !strings.Contains(lines[4], "/x?forged") {
		t.Errorf("log line %q, want the request path with the newline replaced", lines[4])
	}
}
