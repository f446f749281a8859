package oidctest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// testRedirectURI is a loopback callback; the tests never follow redirects to it.
const testRedirectURI = "http://127.0.0.1:1/callback"

// noRedirect is an HTTP client that returns redirects instead of following them.
var noRedirect = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// pkcePair returns a fresh verifier and its S256 challenge.
func pkcePair(tb testing.TB) (verifier, challenge string) {
	tb.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	return verifier, s256(verifier)
}

// authParams is a valid authorization request for the default client.
func authParams(challenge string) url.Values {
	return url.Values{
		"client_id":             {DefaultClientID},
		"redirect_uri":          {testRedirectURI},
		"response_type":         {"code"},
		"scope":                 {"openid email profile"},
		"state":                 {"state-123"},
		"nonce":                 {"nonce-456"},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
	}
}

// do sends req without following redirects and returns the response with its body read.
func do(tb testing.TB, req *http.Request) (*http.Response, []byte) {
	tb.Helper()
	resp, err := noRedirect.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("reading %s body: %v", req.URL, err)
	}
	return resp, body
}

func get(tb testing.TB, u string) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return do(tb, req)
}

func postForm(tb testing.TB, u string, form url.Values) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(tb, req)
}

// login signs subject in through the login form (POST /authorize) and returns the code and
// the PKCE verifier.
func login(tb testing.TB, op *Provider, subject string) (code, verifier string) {
	tb.Helper()
	verifier, challenge := pkcePair(tb)
	form := authParams(challenge)
	form.Set("user", subject)
	resp, _ := postForm(tb, op.Issuer()+PathAuthorize, form)
	return codeFrom(tb, resp), verifier
}

// codeFrom extracts the code from an authorization redirect.
func codeFrom(tb testing.TB, resp *http.Response) string {
	tb.Helper()
	if resp.StatusCode != http.StatusFound {
		tb.Fatalf("authorize status = %d, want %d", resp.StatusCode, http.StatusFound)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		tb.Fatalf("authorize Location: %v", err)
	}
	code := loc.Query().Get("code")
	if code == "" {
		tb.Fatalf("authorize Location = %q, want a code", loc)
	}
	return code
}

// tokenCall posts form to /token with client_secret_basic when basic is true, else as is.
func tokenCall(tb testing.TB, op *Provider, form url.Values, basicID, basicSecret string) (int, map[string]any) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, op.Issuer()+PathToken, strings.NewReader(form.Encode()))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	resp, body := do(tb, req)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		tb.Fatalf("token response %q: %v", body, err)
	}
	return resp.StatusCode, m
}

// exchange redeems code with the default client over client_secret_basic.
func exchange(tb testing.TB, op *Provider, code, verifier string) (int, map[string]any) {
	tb.Helper()
	return tokenCall(tb, op, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {testRedirectURI},
		"code_verifier": {verifier},
	}, DefaultClientID, DefaultClientSecret)
}

// mustTokens logs subject in and exchanges the code; it fails unless the exchange succeeds.
func mustTokens(tb testing.TB, op *Provider, subject string) map[string]any {
	tb.Helper()
	code, verifier := login(tb, op, subject)
	status, m := exchange(tb, op, code, verifier)
	if status != http.StatusOK {
		tb.Fatalf("token status = %d (%v), want 200", status, m)
	}
	return m
}

// userinfo calls /userinfo with a Bearer token.
func userinfo(tb testing.TB, op *Provider, accessToken string) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, op.Issuer()+PathUserinfo, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	return do(tb, req)
}

// decodeJWT splits a compact JWT without verifying it.
func decodeJWT(tb testing.TB, tok string) (header, claims map[string]any, sig []byte) {
	tb.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		tb.Fatalf("JWT %q has %d parts, want 3", tok, len(parts))
	}
	dec := func(s string, v any) {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			tb.Fatalf("JWT segment %q: %v", s, err)
		}
		if v != nil {
			if err := json.Unmarshal(b, v); err != nil {
				tb.Fatalf("JWT segment %q: %v", b, err)
			}
		}
	}
	dec(parts[0], &header)
	dec(parts[1], &claims)
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		tb.Fatalf("JWT signature: %v", err)
	}
	return header, claims, sig
}

// fetchJWKS gets the published keys.
func fetchJWKS(tb testing.TB, op *Provider) jose.JSONWebKeySet {
	tb.Helper()
	resp, body := get(tb, op.Issuer()+PathJWKS)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET /jwks status = %d, want 200", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		tb.Fatalf("JWKS %q: %v", body, err)
	}
	return set
}

// verifyJWT verifies tok with the published key named by its kid and returns the claims.
func verifyJWT(tb testing.TB, op *Provider, tok string) (map[string]any, error) {
	tb.Helper()
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return nil, err
	}
	set := fetchJWKS(tb, op)
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		tb.Fatalf("JWKS keys for kid %q = %d, want 1", jws.Signatures[0].Header.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		tb.Fatal(err)
	}
	return claims, nil
}
