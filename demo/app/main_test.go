package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/trustgate/trustgate/trust"
)

// get runs one GET request with the given headers through the demo app without
// assertion verification.
func get(tb testing.TB, path string, h http.Header) *httptest.ResponseRecorder {
	tb.Helper()
	return serve(tb, newHandler(nil), path, h)
}

// serve runs one GET request with the given headers through handler.
func serve(tb testing.TB, handler http.Handler, path string, h http.Header) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, vs := range h {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		tb.Fatalf("GET %s status = %d, want 200", path, rec.Code)
	}
	return rec
}

func TestPage(t *testing.T) {
	tests := []struct {
		name    string
		headers http.Header
		want    []string // substrings, in this order
		notWant []string
	}{
		{
			name: "signed in, RFC 2047 name decoded next to raw",
			headers: http.Header{
				"X-Auth-Subject":  {"b1c3f0a2"},
				"X-Auth-Name":     {"=?UTF-8?B?w4VzZSDDmHZyZWLDuA==?="},
				"X-Auth-New-User": {"true"},
				"X-Auth-Time":     {"1605180698"},
				"Accept":          {"text/html"},
			},
			want: []string{
				"<title>trustgate demo app</title>",
				"Signed in as Åse Øvrebø",
				"New user",
				`action="/.trustgate/logout"`,
				`href="/.trustgate/me"`,
				"X-Auth-Subject", // identity table first, in the documented order
				"X-Auth-Name</td><td class=\"value\">=?UTF-8?B?w4VzZSDDmHZyZWLDuA==?=</td><td class=\"decoded\">Åse Øvrebø",
				"X-Auth-Time</td><td class=\"value\">1605180698</td><td class=\"decoded\">2020-11-12 11:31:38 UTC",
				"All other request headers",
				"Accept",
			},
		},
		{
			name:    "not signed in",
			headers: http.Header{"Accept": {"text/html"}},
			want:    []string{"Not signed in", "no identity headers"},
			notWant: []string{"Signed in as"},
		},
		{
			name: "header values are escaped",
			headers: http.Header{
				"X-Auth-Subject": {"s"},
				"X-Auth-Name":    {`<script>alert(1)</script>`},
				"X-Evil":         {`"><script>alert(2)</script>`},
			},
			want: []string{
				"Signed in as &lt;script&gt;alert(1)&lt;/script&gt;",
				"&lt;script&gt;alert(2)&lt;/script&gt;",
			},
			notWant: []string{"<script>alert(1)", "<script>alert(2)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(t, "/some/page", tt.headers)
			body := rec.Body.String()
			if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q, want text/html; charset=utf-8", ct)
			}
			pos := 0
			for _, w := range tt.want {
				i := strings.Index(body[pos:], w)
				if i < 0 {
					t.Fatalf("page has no %q after offset %d; page:\n%s", w, pos, body)
				}
				pos += i + len(w)
			}
			for _, nw := range tt.notWant {
				if strings.Contains(body, nw) {
					t.Errorf("page contains %q, want it absent", nw)
				}
			}
		})
	}
}

func TestHeadersJSON(t *testing.T) {
	sent := http.Header{
		"X-Auth-Subject": {"123e4567-e89b-12d3-a456-426652340000"},
		"X-Auth-Name":    {"=?UTF-8?B?w4VzZSDDmHZyZWLDuA==?="},
		"X_Odd_Name":     {"kept as sent"},
		"Accept":         {"text/html", "application/json"},
		"X-Evil":         {"<script>"},
	}
	rec := get(t, "/headers.json", sent)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var got http.Header
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("decoding /headers.json: %v\n%s", err, rec.Body)
	}
	if !reflect.DeepEqual(got, sent) {
		t.Errorf("/headers.json = %v, want %v", got, sent)
	}
}

// wantInOrder fails unless body has every string of want, in this order.
func wantInOrder(tb testing.TB, body string, want ...string) {
	tb.Helper()
	pos := 0
	for _, w := range want {
		i := strings.Index(body[pos:], w)
		if i < 0 {
			tb.Fatalf("page has no %q after offset %d; page:\n%s", w, pos, body)
		}
		pos += i + len(w)
	}
}

func TestPageListsHeadersInEmissionOrder(t *testing.T) {
	h := http.Header{"X-Auth-Zz-Unknown": {"last"}}
	names := trust.HeaderNames()
	for i, name := range slices.Backward(names) { // sent in reverse: the page must reorder
		h[name] = []string{strconv.Itoa(1605180000 + i)}
	}
	body := get(t, "/", h).Body.String()
	want := make([]string, 0, len(names)+1)
	for _, name := range names {
		want = append(want, `<td class="name">`+name+`</td>`)
	}
	want = append(want, `<td class="name">X-Auth-Zz-Unknown</td>`)
	wantInOrder(t, body, want...)
	// The derived X-Trust-Device-Known-Since is unix time: the page shows its date.
	i := slices.Index(names, trust.HeaderDeviceKnownSince)
	wantInOrder(t, body, trust.HeaderDeviceKnownSince+`</td><td class="value">`+strconv.Itoa(1605180000+i)+`</td><td class="decoded">2020-11-12 `)
	// Day counts are not times.
	if strings.Contains(body, trust.HeaderDeviceAgeDays+`</td><td class="value">`+strconv.Itoa(1605180000+slices.Index(names, trust.HeaderDeviceAgeDays))+`</td><td class="decoded">2020`) {
		t.Errorf("%s is shown as a date", trust.HeaderDeviceAgeDays)
	}
}

// testNow is the test clock's start: the tokens' iat.
var testNow = time.Unix(1_800_000_000, 0)

// testGateway plays the gateway's side of X-Auth-Assertion: signing keys and the JWKS
// endpoint, which counts its fetches.
type testGateway struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	keys    []jose.JSONWebKey // private keys; the JWKS serves their public parts
	status  int               // when not 0, the JWKS endpoint answers with it; 204: an empty 200
	fetches int
}

func newTestGateway(t *testing.T) *testGateway {
	t.Helper()
	g := &testGateway{t: t}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.fetches++
		if g.status == http.StatusNoContent { // what Caddy sends for a Host it has no site for
			w.WriteHeader(http.StatusOK)
			return
		}
		if g.status != 0 {
			w.WriteHeader(g.status)
			return
		}
		var set jose.JSONWebKeySet
		for _, k := range g.keys {
			set.Keys = append(set.Keys, k.Public())
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		if err := json.NewEncoder(w).Encode(set); err != nil {
			t.Errorf("writing JWKS: %v", err)
		}
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// newES256Key returns a new P-256 key with this kid.
func newES256Key(t *testing.T, kid string) jose.JSONWebKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}
}

// publish adds keys to the JWKS.
func (g *testGateway) publish(keys ...jose.JSONWebKey) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.keys = append(g.keys, keys...)
}

// setStatus makes the JWKS endpoint fail with status; 0 makes it work again.
func (g *testGateway) setStatus(status int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.status = status
}

func (g *testGateway) fetchCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.fetches
}

// check returns an assertionCheck against the gateway's JWKS with a test clock.
func (g *testGateway) check(now *time.Time) *assertionCheck {
	c, err := newAssertionCheck(g.srv.URL+"/.trustgate/jwks.json", testIssuer, "")
	if err != nil {
		g.t.Fatal(err)
	}
	clock := func() time.Time { return *now }
	c.now, c.keys.now = clock, clock
	return c
}

const (
	testIssuer  = "http://localhost:8080"
	testSubject = "123e4567-e89b-12d3-a456-426652340000"
)

// testClaims are the claims of a valid assertion: what the gateway sends.
func testClaims() map[string]any {
	return map[string]any{
		"iss": testIssuer, "aud": testIssuer, "sub": testSubject,
		"iat": testNow.Unix(), "nbf": testNow.Unix(), "exp": testNow.Add(time.Minute).Unix(),
		"jti": "0123456789abcdef", "idp": "http://127.0.0.1:9000", "email": "normann@example.org",
		"name": "Ola Normann", "amr": []string{"ts.bind_id.ama", "ts.bind_id.mfca"},
		"auth_time": testNow.Unix() - 5, "new_user": false,
	}
}

// sign returns claims as a JWT signed with key (alg from key.Algorithm, kid from key.KeyID).
func sign(t *testing.T, key jose.JSONWebKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(key.Algorithm), Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// with returns testClaims changed by f.
func with(f func(c map[string]any)) map[string]any {
	c := testClaims()
	f(c)
	return c
}

// unsigned returns a JWT with header alg "none" and no signature.
func unsigned(kid string, claims map[string]any) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "none", "kid": kid, "typ": "JWT"}) + "." + enc(claims) + "."
}

// pageFor renders the page for a request that carries the assertion tok.
func pageFor(t *testing.T, handler http.Handler, sub string, tok ...string) string {
	t.Helper()
	h := http.Header{"X-Auth-Subject": {sub}}
	if len(tok) > 0 {
		h[headerAssertion] = tok
	}
	return serve(t, handler, "/", h).Body.String()
}

const verifiedBadge = `<span class="badge ok">Verified</span>`

func TestAssertionVerification(t *testing.T) {
	g := newTestGateway(t)
	key := newES256Key(t, "key-1")
	g.publish(key)
	other := newES256Key(t, "key-1") // same kid, not published
	hsKey := jose.JSONWebKey{Key: []byte("a-shared-secret-of-at-least-32-bytes!"), KeyID: "key-1", Algorithm: string(jose.HS256)}

	tests := []struct {
		name    string
		tok     string
		tokens  []string // instead of tok: several headers
		sub     string   // X-Auth-Subject; default testSubject
		want    []string // in this order
		wantErr string   // the failure reason on the page; "" = verified
	}{
		{
			name: "valid",
			tok:  sign(t, key, testClaims()),
			want: []string{
				verifiedBadge, "key <code>key-1</code>", "iss http://localhost:8080, aud http://localhost:8080",
				"expires in 60 s", "Verified subject <code>" + testSubject + "</code> equals X-Auth-Subject",
				`<td class="name">email</td><td class="value">normann@example.org</td>`,
				`<td class="name">exp</td><td class="value">1800000060</td><td class="decoded">2027-01-15 08:01:00 UTC`,
				`<td class="name">idp</td><td class="value">http://127.0.0.1:9000</td>`,
			},
		},
		{
			name: "valid, audience as a list",
			tok:  sign(t, key, with(func(c map[string]any) { c["aud"] = []string{"other", testIssuer} })),
			want: []string{verifiedBadge, "aud other, http://localhost:8080"},
		},
		{
			name: "valid, but X-Auth-Subject differs",
			tok:  sign(t, key, testClaims()),
			sub:  "someone-else",
			want: []string{verifiedBadge, "Subject mismatch", "<code>" + testSubject + "</code> differs from X-Auth-Subject"},
		},
		{
			name: "expired within the leeway",
			tok:  sign(t, key, with(func(c map[string]any) { c["exp"] = testNow.Add(-20 * time.Second).Unix() })),
			want: []string{verifiedBadge, "expires 20 s ago (within the 30 s leeway)"},
		},
		{
			name:    "wrong key",
			tok:     sign(t, other, testClaims()),
			wantErr: `verifying with key &#34;key-1&#34;: go-jose/go-jose: error in cryptographic primitive`,
		},
		{
			name:    "expired",
			tok:     sign(t, key, with(func(c map[string]any) { c["exp"] = testNow.Add(-31 * time.Second).Unix() })),
			wantErr: "token is expired (exp)",
		},
		{
			name:    "not valid yet",
			tok:     sign(t, key, with(func(c map[string]any) { c["nbf"] = testNow.Add(time.Minute).Unix() })),
			wantErr: "token not valid yet (nbf)",
		},
		{
			name:    "wrong audience",
			tok:     sign(t, key, with(func(c map[string]any) { c["aud"] = "https://other.example" })),
			wantErr: `invalid audience claim (aud): got [&#34;https://other.example&#34;], want &#34;http://localhost:8080&#34;`,
		},
		{
			name:    "no audience",
			tok:     sign(t, key, with(func(c map[string]any) { delete(c, "aud") })),
			wantErr: "invalid audience claim (aud): got [], want",
		},
		{
			name:    "wrong issuer",
			tok:     sign(t, key, with(func(c map[string]any) { c["iss"] = "http://127.0.0.1:8080" })),
			wantErr: `invalid issuer claim (iss): got &#34;http://127.0.0.1:8080&#34;, want &#34;http://localhost:8080&#34;`,
		},
		{
			name:    "no exp",
			tok:     sign(t, key, with(func(c map[string]any) { delete(c, "exp") })),
			wantErr: "the assertion has no exp or no sub claim",
		},
		{
			name:    "no sub",
			tok:     sign(t, key, with(func(c map[string]any) { delete(c, "sub") })),
			wantErr: "the assertion has no exp or no sub claim",
		},
		{
			name:    "alg none",
			tok:     unsigned("key-1", testClaims()),
			wantErr: `unexpected signature algorithm &#34;none&#34;`,
		},
		{
			name:    "HS256",
			tok:     sign(t, hsKey, testClaims()),
			wantErr: `unexpected signature algorithm &#34;HS256&#34;; expected [&#34;ES256&#34; &#34;RS256&#34;]`,
		},
		{
			name:    "not a JWT",
			tok:     "not-a-token",
			wantErr: "go-jose/go-jose: compact JWS format must have three parts",
		},
		{
			name:    "two assertion headers",
			tokens:  []string{sign(t, key, testClaims()), sign(t, key, testClaims())},
			wantErr: "the request has 2 X-Auth-Assertion headers; the gateway sends one",
		},
	}
	now := testNow
	handler := newHandler(g.check(&now))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tokens := tt.tokens
			if tokens == nil {
				tokens = []string{tt.tok}
			}
			sub := tt.sub
			if sub == "" {
				sub = testSubject
			}
			body := pageFor(t, handler, sub, tokens...)
			if tt.wantErr != "" {
				if strings.Contains(body, verifiedBadge) || strings.Contains(body, "Verified claim") {
					t.Errorf("page says verified, want failure %q", tt.wantErr)
				}
				wantInOrder(t, body, `<span class="badge warn">Not verified</span>`, tt.wantErr, "Token as received")
				return
			}
			wantInOrder(t, body, append(tt.want, "Token as received", tokens[0])...)
		})
	}
	if n := g.fetchCount(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1 (cached)", n)
	}
}

func TestAssertionUnknownKidRefetchesOnce(t *testing.T) {
	g := newTestGateway(t)
	old := newES256Key(t, "old")
	g.publish(old)
	now := testNow
	handler := newHandler(g.check(&now))
	verified := func(t *testing.T, tok string) bool {
		t.Helper()
		return strings.Contains(pageFor(t, handler, testSubject, tok), verifiedBadge)
	}

	if !verified(t, sign(t, old, testClaims())) {
		t.Fatal("token signed with the published key does not verify")
	}
	if n := g.fetchCount(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}

	// The gateway rotates: it publishes a new key, then signs with it. The app does not
	// know the kid yet, so it fetches the JWKS again, once, and the token verifies.
	rotated := newES256Key(t, "new")
	g.publish(rotated)
	now = now.Add(time.Minute)
	claims := with(func(c map[string]any) {
		c["iat"], c["nbf"], c["exp"] = now.Unix(), now.Unix(), now.Add(time.Minute).Unix()
	})
	if !verified(t, sign(t, rotated, claims)) {
		t.Fatal("token signed with the rotated key does not verify")
	}
	if n := g.fetchCount(); n != 2 {
		t.Fatalf("fetches = %d, want 2 (one refetch for the unknown kid)", n)
	}
	if !verified(t, sign(t, old, claims)) || !verified(t, sign(t, rotated, claims)) {
		t.Fatal("a published key no longer verifies")
	}

	// An unknown kid right after a fetch: no new fetch, and the page says why.
	stranger := newES256Key(t, "stranger")
	now = now.Add(5 * time.Second)
	claims = with(func(c map[string]any) { c["exp"] = now.Add(time.Minute).Unix() })
	body := pageFor(t, handler, testSubject, sign(t, stranger, claims))
	wantInOrder(t, body, "Not verified", `no key with kid &#34;stranger&#34; in the JWKS at `+g.srv.URL+`/.trustgate/jwks.json (fetched 5s ago; fetched again at most every 10s)`)
	if n := g.fetchCount(); n != 2 {
		t.Fatalf("fetches = %d, want still 2 (at most one fetch every 10 s)", n)
	}

	// Ten seconds after the last fetch it may fetch again; the kid is still unknown.
	now = now.Add(5 * time.Second)
	body = pageFor(t, handler, testSubject, sign(t, stranger, claims))
	wantInOrder(t, body, "Not verified", `no key with kid &#34;stranger&#34; in the JWKS at `+g.srv.URL)
	if strings.Contains(body, verifiedBadge) {
		t.Error("token with an unknown kid verified")
	}
	if n := g.fetchCount(); n != 3 {
		t.Fatalf("fetches = %d, want 3", n)
	}
}

func TestAssertionJWKSUnavailable(t *testing.T) {
	g := newTestGateway(t)
	key := newES256Key(t, "key-1")
	g.publish(key)
	g.setStatus(http.StatusServiceUnavailable)
	now := testNow
	handler := newHandler(g.check(&now))
	tok := sign(t, key, testClaims())

	body := pageFor(t, handler, testSubject, tok)
	wantInOrder(t, body, "Not verified", "fetching the JWKS at "+g.srv.URL+"/.trustgate/jwks.json: 503 Service Unavailable")
	now = now.Add(3 * time.Second)
	body = pageFor(t, handler, testSubject, tok)
	wantInOrder(t, body, "Not verified", "503 Service Unavailable (3s ago; next attempt in 7s)")
	if n := g.fetchCount(); n != 1 {
		t.Fatalf("fetches = %d, want 1 (a failed fetch is not retried within 10 s)", n)
	}

	// Caddy answers an empty 200 when the URL's host is not one of the site's.
	g.setStatus(http.StatusNoContent)
	now = now.Add(7 * time.Second)
	body = pageFor(t, handler, testSubject, tok)
	wantInOrder(t, body, "Not verified", "fetching the JWKS at "+g.srv.URL+"/.trustgate/jwks.json: empty response; does the gateway&#39;s site answer to this host name?")

	g.setStatus(0)
	now = now.Add(10 * time.Second)
	claims := with(func(c map[string]any) { c["exp"] = now.Add(time.Minute).Unix() })
	if n := g.fetchCount(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
	if body := pageFor(t, handler, testSubject, sign(t, key, claims)); !strings.Contains(body, verifiedBadge) {
		t.Fatalf("not verified once the JWKS is back; page:\n%s", body)
	}
}

// TestAssertionFromGatewaySigner verifies what the gateway itself signs (trust package),
// with both algorithms it can use.
func TestAssertionFromGatewaySigner(t *testing.T) {
	es, err := trust.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	profile := trust.NewProfile(map[string]any{
		"iss": "http://127.0.0.1:9000", "sub": testSubject, "email": "normann@example.org",
		"name": "Ola Normann", "auth_time": float64(testNow.Unix() - 5),
	}, trust.Options{})
	for _, tt := range []struct {
		name string
		key  trust.SigningKey
	}{
		{"ES256", es},
		{"RS256", trust.SigningKey{ID: "rsa-1", Key: rsaKey}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			signer, err := trust.NewAssertionSigner(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/jwk-set+json")
				_, _ = w.Write(signer.JWKS())
			}))
			defer jwks.Close()
			// The gateway's default audience is its issuer.
			tok, err := signer.Sign(trust.AssertionClaims(profile, testIssuer, testIssuer, testNow, time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			check, err := newAssertionCheck(jwks.URL+"/.trustgate/jwks.json", testIssuer, "")
			if err != nil {
				t.Fatal(err)
			}
			check.now = func() time.Time { return testNow.Add(10 * time.Second) }
			check.keys.now = check.now
			body := pageFor(t, newHandler(check), testSubject, tok)
			wantInOrder(t, body, verifiedBadge, "key <code>"+signer.KeyID()+"</code>", "expires in 50 s", "equals X-Auth-Subject",
				`<td class="name">email</td><td class="value">normann@example.org</td>`)
		})
	}
}

func TestAssertionVerificationOff(t *testing.T) {
	tok := sign(t, newES256Key(t, "key-1"), testClaims())
	body := pageFor(t, newHandler(nil), testSubject, tok)
	wantInOrder(t, body,
		"Signed assertion (X-Auth-Assertion)", `<span class="badge off">Verification is off</span>`, "-jwks",
		"Token as received", tok, "All other request headers")
	for _, nw := range []string{verifiedBadge, "Not verified", "Verified claim", `<td class="name">X-Auth-Assertion</td>`} {
		if strings.Contains(body, nw) {
			t.Errorf("page contains %q, want it absent", nw)
		}
	}
	if n := strings.Count(body, tok); n != 1 {
		t.Errorf("the token appears %d times on the page, want once (not in the identity table)", n)
	}
}

func TestAssertionAbsent(t *testing.T) {
	g := newTestGateway(t)
	now := testNow
	body := pageFor(t, newHandler(g.check(&now)), testSubject)
	wantInOrder(t, body, "Signed assertion (X-Auth-Assertion)", "None received")
	if strings.Contains(body, verifiedBadge) || strings.Contains(body, "Not verified") {
		t.Error("page reports a verification result without an assertion")
	}
	if n := g.fetchCount(); n != 0 {
		t.Errorf("fetches = %d, want 0 without an assertion", n)
	}
}

func TestHeadersJSONKeepsAssertion(t *testing.T) {
	g := newTestGateway(t)
	now := testNow
	sent := http.Header{
		"X-Auth-Subject": {testSubject},
		headerAssertion:  {"not-even-a-jwt"},
	}
	rec := serve(t, newHandler(g.check(&now)), "/headers.json", sent)
	var got http.Header
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("decoding /headers.json: %v\n%s", err, rec.Body)
	}
	if !reflect.DeepEqual(got, sent) {
		t.Errorf("/headers.json = %v, want %v", got, sent)
	}
	if n := g.fetchCount(); n != 0 {
		t.Errorf("fetches = %d, want 0: /headers.json verifies nothing", n)
	}
}

func TestNewAssertionCheck(t *testing.T) {
	tests := []struct {
		name                   string
		jwks, issuer, audience string
		wantOff                bool
		wantAudience           string
		wantErr                string
	}{
		{name: "no flags: off", wantOff: true},
		{name: "audience defaults to issuer", jwks: "http://127.0.0.1:8080/.trustgate/jwks.json", issuer: testIssuer, wantAudience: testIssuer},
		{name: "audience given", jwks: "https://gw.example/.trustgate/jwks.json", issuer: "https://gw.example", audience: "legacy-app", wantAudience: "legacy-app"},
		{name: "jwks without issuer", jwks: "http://127.0.0.1:8080/.trustgate/jwks.json", wantErr: "-jwks needs -assertion-issuer"},
		{name: "issuer without jwks", issuer: testIssuer, wantErr: "need -jwks"},
		{name: "audience without jwks", audience: "x", wantErr: "need -jwks"},
		{name: "jwks not a URL", jwks: "127.0.0.1:8080/jwks.json", issuer: testIssuer, wantErr: "want an http or https URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := newAssertionCheck(tt.jwks, tt.issuer, tt.audience)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (c == nil) != tt.wantOff {
				t.Fatalf("check = %v, want off = %v", c, tt.wantOff)
			}
			if c != nil && (c.issuer != tt.issuer || c.audience != tt.wantAudience || c.keys.url != tt.jwks) {
				t.Errorf("check = iss %q aud %q jwks %q, want %q %q %q", c.issuer, c.audience, c.keys.url, tt.issuer, tt.wantAudience, tt.jwks)
			}
		})
	}
}
