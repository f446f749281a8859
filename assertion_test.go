package trustgate

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/trust"
)

// withAssertion turns on X-Auth-Assertion with keys in a private storage directory.
func withAssertion(c *AssertionConfig, storageDir string) gatewayOption {
	return func(h *Handler, _ *oidctest.Options) {
		h.Assertion = c
		h.storage = &certmagic.FileStorage{Path: storageDir}
	}
}

// fetchJWKS reads the gateway's jwks.json as an independent verifier would.
func (g *gateway) fetchJWKS() jose.JSONWebKeySet {
	g.t.Helper()
	resp, body := do(g.t, http.DefaultClient, mustRequest(g.t, http.MethodGet, g.srv.URL+"/.trustgate/jwks.json"))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/jwk-set+json" {
		g.t.Fatalf("GET jwks.json = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		g.t.Fatalf("jwks.json is not a JWK set: %v", err)
	}
	return set
}

func mustRequest(t testing.TB, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// verifyAssertion checks the JWS signature against the key set and returns the claims.
func verifyAssertion(t *testing.T, tok string, set jose.JSONWebKeySet) map[string]any {
	t.Helper()
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatalf("X-Auth-Assertion is not a JWS: %v", err)
	}
	hdr := jws.Signatures[0].Header
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q is not in jwks.json (%d keys)", hdr.KeyID, len(set.Keys))
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatalf("assertion does not verify with the published key: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func TestAssertionVerifiesWithThePublishedKeys(t *testing.T) {
	g := newGateway(t, withAssertion(&AssertionConfig{Audience: "legacy-app"}, t.TempDir()))
	g.mustLogin("bindid-known")
	tok := g.upstream.Header().Get("X-Auth-Assertion")
	if tok == "" {
		t.Fatal("no X-Auth-Assertion upstream")
	}
	claims := verifyAssertion(t, tok, g.fetchJWKS())
	want := map[string]any{
		"iss": g.srv.URL, "aud": "legacy-app", "sub": oidctest.SubjectBindIDKnown, "idp": g.op.Issuer(),
		"alias": "username@domain", "acr": acrPhone, "new_user": false,
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	iat, _ := claims["iat"].(float64)
	exp, _ := claims["exp"].(float64)
	if exp-iat != 60 || time.Since(time.Unix(int64(iat), 0)).Abs() > time.Minute {
		t.Errorf("iat %v exp %v: want exp = iat + 60 s, iat now", iat, exp)
	}
	if _, ok := claims["bindid"].(map[string]any); !ok {
		t.Errorf("assertion has no bindid trust profile: %v", claims["bindid"])
	}
	for _, secret := range []string{"access_token", "id_token", "refresh_token"} {
		if _, ok := claims[secret]; ok {
			t.Errorf("assertion carries %s", secret)
		}
	}
	// A token signed by any other key does not verify with the published set.
	other, _ := trust.GenerateSigningKey()
	s, _ := trust.NewAssertionSigner(other)
	forged, _ := s.Sign(claims)
	jws, _ := jose.ParseSignedCompact(forged, []jose.SignatureAlgorithm{jose.ES256})
	for _, k := range g.fetchJWKS().Keys {
		if _, err := jws.Verify(k.Key); err == nil {
			t.Error("an assertion signed by a foreign key verified with jwks.json")
		}
	}
}

func TestAssertionIsCachedThenResigned(t *testing.T) {
	g := newGateway(t, withAssertion(&AssertionConfig{}, t.TempDir()))
	g.mustLogin("bindid-known")
	first := g.upstream.Header().Get("X-Auth-Assertion")
	g.navigate(g.browser, "/again")
	if got := g.upstream.Header().Get("X-Auth-Assertion"); got != first {
		t.Error("the assertion was signed again for the next request (want it reused for half its lifetime)")
	}
	later := time.Now().Add(31 * time.Second)
	g.h.now = func() time.Time { return later }
	g.navigate(g.browser, "/later")
	second := g.upstream.Header().Get("X-Auth-Assertion")
	if second == first || second == "" {
		t.Fatal("the assertion was not renewed after half its lifetime")
	}
	claims := verifyAssertion(t, second, g.fetchJWKS())
	if iat := int64(claims["iat"].(float64)); iat != later.Unix() {
		t.Errorf("renewed assertion iat = %d, want %d", iat, later.Unix())
	}
}

func TestHDR01_ForgedAssertionIsRemoved(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		var opts []gatewayOption
		if enabled {
			opts = append(opts, withAssertion(&AssertionConfig{}, t.TempDir()))
		}
		g := newGateway(t, opts...)
		g.mustLogin("bindid-known")
		req := mustRequest(t, http.MethodGet, g.srv.URL+"/app")
		req.Header["X-Auth-Assertion"] = []string{"forged.jwt.value"}
		req.Header["x_auth_assertion"] = []string{"forged.jwt.value"}
		do(t, g.browser, req)
		for name, vs := range g.upstream.Header() {
			for _, v := range vs {
				if v == "forged.jwt.value" {
					t.Errorf("assertion enabled=%v: upstream received the forged %s", enabled, name)
				}
			}
		}
		if got := g.upstream.Header().Get("X-Auth-Assertion"); (got != "") != enabled {
			t.Errorf("assertion enabled=%v: X-Auth-Assertion = %q", enabled, got)
		}
	}
}

func TestJWKSWithoutAssertionIs404(t *testing.T) {
	g := newGateway(t)
	resp, _ := do(t, http.DefaultClient, mustRequest(t, http.MethodGet, g.srv.URL+"/.trustgate/jwks.json"))
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("jwks.json with the assertion off = %d, want 404", resp.StatusCode)
	}
}

func TestAssertionKeysPersistAcrossRestartAndRotate(t *testing.T) {
	dir := t.TempDir()
	storage := &certmagic.FileStorage{Path: dir}
	k := &assertionKeys{logger: zap.NewNop(), storage: storage, rotation: 24 * time.Hour}
	t0 := time.Now()
	ctx := context.Background()
	if err := k.load(ctx, t0); err != nil {
		t.Fatal(err)
	}
	kid0 := k.signer.Load().KeyID()

	// Another process (or a restart) reads the same key from the storage.
	k2 := &assertionKeys{logger: zap.NewNop(), storage: storage, rotation: 24 * time.Hour}
	if err := k2.load(ctx, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := k2.signer.Load().KeyID(); got != kid0 {
		t.Fatalf("after a restart the signing key is %s, want the stored %s", got, kid0)
	}

	// After the rotation period a new key is made and published at once, but signs only
	// after keyPublishDelay, so upstreams caching jwks.json see it first.
	if err := k2.load(ctx, t0.Add(25*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(k2.signer.Load().JWKS(), &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("jwks after rotation: %d keys (%v), want 2", len(set.Keys), err)
	}
	if got := k2.signer.Load().KeyID(); got != kid0 {
		t.Errorf("right after rotation the signing key is %s, want still %s", got, kid0)
	}
	if err := k2.load(ctx, t0.Add(25*time.Hour+keyPublishDelay)); err != nil {
		t.Fatal(err)
	}
	kid1 := k2.signer.Load().KeyID()
	if kid1 == kid0 || len(set.Key(kid1)) != 1 {
		t.Errorf("after the publish delay the signing key is %s, want the new published key", kid1)
	}
	// At most keysKept keys stay published.
	for i := 2; i < 6; i++ {
		if err := k2.load(ctx, t0.Add(time.Duration(i)*25*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := json.Unmarshal(k2.signer.Load().JWKS(), &set); err != nil || len(set.Keys) != keysKept {
		t.Errorf("jwks after many rotations: %d keys, want %d", len(set.Keys), keysKept)
	}
	// A corrupt ring is reported, not silently replaced.
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(keyRingKey)), []byte("{nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := k2.load(ctx, t0); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("corrupt key ring: error %v, want one that says what to do", err)
	}
}

func TestAssertionKeyFile(t *testing.T) {
	sk, _ := trust.GenerateSigningKey()
	pemBytes, _ := trust.MarshalSigningKey(sk)
	path := filepath.Join(t.TempDir(), "assertion.pem")
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, withAssertion(&AssertionConfig{KeyFile: path}, t.TempDir()))
	g.mustLogin("bindid-known")
	set := g.fetchJWKS()
	if len(set.Keys) != 1 || set.Keys[0].KeyID != sk.ID {
		t.Fatalf("jwks.json with key_file: %+v, want exactly kid %s", set.Keys, sk.ID)
	}
	verifyAssertion(t, g.upstream.Header().Get("X-Auth-Assertion"), set)

	bad := filepath.Join(t.TempDir(), "bad.pem")
	_ = os.WriteFile(bad, []byte("not a key"), 0o600)
	for _, tc := range []struct {
		c    AssertionConfig
		want string
	}{
		{AssertionConfig{KeyFile: bad}, bad},
		{AssertionConfig{KeyFile: filepath.Join(t.TempDir(), "missing.pem")}, "missing.pem"},
		{AssertionConfig{Lifetime: 0 - 1}, "between 1s and 1m"},
		{AssertionConfig{Lifetime: caddyDuration(2 * time.Minute)}, "between 1s and 1m"},
		{AssertionConfig{KeyRotation: caddyDuration(time.Minute)}, "shorter than"},
		{AssertionConfig{Issuer: "https://app.example.com/path"}, "must be an origin"},
	} {
		h := &Handler{Issuer: g.op.Issuer(), ClientID: "trustgate", Secrets: []string{testSecret}, Assertion: &tc.c,
			storage: &certmagic.FileStorage{Path: t.TempDir()}}
		if err := provision(t, h); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("assertion %+v: Provision() error = %v, want one mentioning %q", tc.c, err, tc.want)
		}
	}
}

func caddyDuration(d time.Duration) caddy.Duration { return caddy.Duration(d) }

// Two blocks that share sessions but differ in audience or lifetime never hand each other's
// assertion on (review finding: the cache ignored aud and lifetime).
func TestAssertionCachePerAudienceAndLifetime(t *testing.T) {
	dir := t.TempDir()
	g := newGateway(t, withAssertion(&AssertionConfig{Audience: "web"}, dir))
	g.mustLogin("bindid-known")
	set := g.fetchJWKS()
	web := verifyAssertion(t, g.upstream.Header().Get("X-Auth-Assertion"), set)

	// A second handler with the same provider and store, another audience and lifetime.
	api := &Handler{Issuer: g.h.Issuer, ClientID: g.h.ClientID, ClientSecret: g.h.ClientSecret, Secrets: g.h.Secrets,
		InsecureCookie: true, Assertion: &AssertionConfig{Audience: "api", Lifetime: caddyDuration(10 * time.Second)},
		storage: &certmagic.FileStorage{Path: dir}}
	if err := provision(t, api); err != nil {
		t.Fatal(err)
	}
	api.store = g.store
	s, err := g.store.Get(t.Context(), mustSessionID(t, g))
	if err != nil {
		t.Fatal(err)
	}
	req := mustRequest(t, http.MethodGet, g.srv.URL+"/api")
	tok, err := api.assertion.sign(req, api.sessions.render(s))
	if err != nil {
		t.Fatal(err)
	}
	claims := verifyAssertion(t, tok, set)
	if claims["aud"] != "api" || claims["exp"].(float64)-claims["iat"].(float64) != 10 {
		t.Errorf("second block's assertion: aud %v, exp-iat %v; want api and 10 (not the first block's %v)", claims["aud"], claims["exp"].(float64)-claims["iat"].(float64), web["aud"])
	}
}

func mustSessionID(t *testing.T, g *gateway) string {
	t.Helper()
	var id string
	if err := g.h.sessions.codec.Decode(g.h.sessions.cookieName, g.sessionCookie(g.browser), &id); err != nil {
		t.Fatal(err)
	}
	return id
}

// LIM-06: the assertion is an identity header like the others: over max_header_bytes it is
// not sent (never cut), with a warning.
func TestLIM06_AssertionOverTheHeaderLimitIsNotSent(t *testing.T) {
	g := newGateway(t, withAssertion(&AssertionConfig{}, t.TempDir()), func(h *Handler, _ *oidctest.Options) {
		h.MaxHeaderBytes = 600 // the BindID user's assertion is larger; its headers are not
	})
	g.mustLogin("bindid-known")
	if got := g.upstream.Header().Get("X-Auth-Assertion"); got != "" {
		t.Errorf("X-Auth-Assertion of %d bytes sent with max_header_bytes 600", len(got))
	}
	if g.upstream.Header().Get("X-Auth-Subject") == "" {
		t.Error("the other identity headers went missing")
	}
}

func TestAssertionIssuerFromHostIsNormalized(t *testing.T) {
	a := &asserter{}
	for _, tc := range []struct{ host, want string }{
		{"App.Example.COM", "http://app.example.com"},
		{"app.example.com:80", "http://app.example.com"},
		{"app.example.com:8080", "http://app.example.com:8080"},
	} {
		r := mustRequest(t, http.MethodGet, "http://"+tc.host+"/")
		r.Host = tc.host
		if got := a.origin(r); got != tc.want {
			t.Errorf("origin for Host %q = %q, want %q", tc.host, got, tc.want)
		}
	}
}

// TestAssertionCacheIsPerKeySet: a session's cached assertion is reused only by the key set
// that signed it; a block with other keys (another key_file) signs its own, even for the
// same session rendering and the same issuer, audience and lifetime.
func TestAssertionCacheIsPerKeySet(t *testing.T) {
	newKeys := func() *assertionKeys {
		sk, err := trust.GenerateSigningKey()
		if err != nil {
			t.Fatal(err)
		}
		signer, err := trust.NewAssertionSigner(sk)
		if err != nil {
			t.Fatal(err)
		}
		k := &assertionKeys{}
		k.signer.Store(signer)
		return k
	}
	cfg := &AssertionConfig{Issuer: "https://app.example.com", Lifetime: caddyDuration(time.Minute)}
	b := &base{now: time.Now, logger: zap.NewNop()}
	one := &asserter{base: b, cfg: cfg, keys: newKeys()}
	two := &asserter{base: b, cfg: cfg, keys: newKeys()}
	rd := &rendered{profile: trust.NewProfile(map[string]any{"sub": "u1"}, trust.Options{})}
	r := mustRequest(t, http.MethodGet, "https://app.example.com/")
	t1, err := one.sign(r, rd)
	if err != nil || t1 == "" {
		t.Fatalf("first sign: %q, %v", t1, err)
	}
	if again, _ := one.sign(r, rd); again != t1 {
		t.Error("the same key set did not reuse its cached assertion")
	}
	t2, err := two.sign(r, rd)
	if err != nil || t2 == "" || t2 == t1 {
		t.Errorf("another key set got %q (err %v), want its own assertion, not the cached one", t2, err)
	}
}
