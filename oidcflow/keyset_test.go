package oidcflow

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// jwksEnv shares one fake clock between an OP and a Client, so the refetch interval can be
// stepped over without sleeping.
type jwksEnv struct {
	clock *fakeClock
	op    *oidctest.Provider
	c     *Client
}

func newJWKSEnv(t *testing.T) *jwksEnv {
	t.Helper()
	clock := newFakeClock()
	op := oidctest.NewTest(t, oidctest.Options{Now: clock.Now})
	cfg := opConfig(op)
	cfg.Now = clock.Now
	return &jwksEnv{clock: clock, op: op, c: newClient(t, cfg)}
}

func (e *jwksEnv) token(o oidctest.LogoutTokenOptions) string {
	return e.op.LogoutToken(e.op.LogoutClaims(oidctest.DefaultClientID, "alice", "sid"), o)
}

func (e *jwksEnv) mustVerify(t *testing.T, tok string) {
	t.Helper()
	if _, err := e.c.VerifyLogoutToken(t.Context(), tok); err != nil {
		t.Fatalf("VerifyLogoutToken() error = %v, want nil", err)
	}
}

func (e *jwksEnv) wantJWKSFetches(t *testing.T, want int) {
	t.Helper()
	if got := e.op.Counts().JWKS; got != want {
		t.Errorf("JWKS fetches at the OP = %d, want %d", got, want)
	}
}

// storm verifies n logout tokens with random kids from 20 goroutines; every one must be
// refused as a bad token (not temporary).
func (e *jwksEnv) storm(t *testing.T, n int) {
	t.Helper()
	toks := make(chan string, n)
	for range n {
		toks <- e.token(oidctest.LogoutTokenOptions{KID: randomString()})
	}
	close(toks)
	var accepted, temporary, other atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for tok := range toks {
				_, err := e.c.VerifyLogoutToken(t.Context(), tok)
				switch {
				case err == nil:
					accepted.Add(1)
				case IsTemporary(err):
					temporary.Add(1)
				case ReasonCode(err) != CodeLogoutToken:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if accepted.Load() != 0 || temporary.Load() != 0 || other.Load() != 0 {
		t.Errorf("random-kid tokens: %d accepted, %d temporary, %d with another code; want all logout_token_invalid",
			accepted.Load(), temporary.Load(), other.Load())
	}
}

// TestOPS07_JWKSRefetchRateLimited: tokens with made-up kids (the back-channel logout
// endpoint is unauthenticated) refetch the OP's JWKS at most once per 10 s, concurrent
// misses sharing one fetch, and fail closed in between.
func TestOPS07_JWKSRefetchRateLimited(t *testing.T) {
	e := newJWKSEnv(t)
	e.mustVerify(t, e.token(oidctest.LogoutTokenOptions{}))
	e.wantJWKSFetches(t, 1)

	e.storm(t, 1000) // same instant as the first fetch: throttled
	e.wantJWKSFetches(t, 1)

	e.clock.Advance(jwksMinInterval + time.Second)
	e.storm(t, 1000) // one window: one refetch for all of them
	e.wantJWKSFetches(t, 2)

	e.clock.Advance(jwksMinInterval / 2)
	e.storm(t, 1000)
	e.wantJWKSFetches(t, 2)

	// ID tokens and signed userinfo go through the same cache and the same limit.
	e.op.SetAutoLogin(oidctest.SubjectOla) // signed userinfo
	e.op.SetFaults(oidctest.Faults{MutateIDToken: func(h, _ map[string]any) { h["kid"] = "made-up-kid" }})
	_, err := loginAndExchange(t, e.c)
	wantError(t, err, CodeIDToken, false)
	e.op.SetFaults(oidctest.Faults{MutateUserinfo: func(h, _ map[string]any) { h["kid"] = "made-up-kid" }})
	_, err = loginAndExchange(t, e.c)
	wantError(t, err, CodeUserinfoInvalid, false)
	e.wantJWKSFetches(t, 2)

	// The known key keeps working all along, without a fetch.
	e.mustVerify(t, e.token(oidctest.LogoutTokenOptions{}))
	e.wantJWKSFetches(t, 2)
}

// TestOPS07_KeyRotation: (a) a new kid is fetched once and accepted; (b) a key the OP
// withdrew is refused once the set was refetched.
func TestOPS07_KeyRotation(t *testing.T) {
	t.Run("new kid after the interval: one refetch, accepted", func(t *testing.T) {
		e := newJWKSEnv(t)
		e.mustVerify(t, e.token(oidctest.LogoutTokenOptions{}))
		e.clock.Advance(jwksMinInterval)
		e.op.RotateKeys()
		for range 5 {
			e.mustVerify(t, e.token(oidctest.LogoutTokenOptions{}))
		}
		e.wantJWKSFetches(t, 2)
		// ID tokens signed with the new key too, without another fetch.
		e.op.SetAutoLogin(oidctest.SubjectAse)
		if _, err := loginAndExchange(t, e.c); err != nil {
			t.Errorf("login after rotation: %v", err)
		}
		e.wantJWKSFetches(t, 2)
	})

	t.Run("new kid within the interval fails closed until it passes", func(t *testing.T) {
		e := newJWKSEnv(t)
		e.mustVerify(t, e.token(oidctest.LogoutTokenOptions{}))
		e.op.RotateKeys()
		tok := e.token(oidctest.LogoutTokenOptions{})
		_, err := e.c.VerifyLogoutToken(t.Context(), tok)
		wantError(t, err, CodeLogoutToken, false)
		e.wantJWKSFetches(t, 1)
		e.clock.Advance(jwksMinInterval)
		e.mustVerify(t, tok)
		e.wantJWKSFetches(t, 2)
	})

	t.Run("removed key refused after the refetch", func(t *testing.T) {
		e := newJWKSEnv(t)
		old := e.token(oidctest.LogoutTokenOptions{})
		e.mustVerify(t, old)
		e.op.RotateKeys()
		e.op.RotateKeys() // the first key is no longer published
		// Until a refetch, the cached key still verifies.
		e.mustVerify(t, old)
		e.wantJWKSFetches(t, 1)

		e.clock.Advance(jwksMinInterval)
		e.mustVerify(t, e.token(oidctest.LogoutTokenOptions{})) // new kid: refetch
		e.wantJWKSFetches(t, 2)
		_, err := e.c.VerifyLogoutToken(t.Context(), old)
		wantError(t, err, CodeLogoutToken, false)
		e.wantJWKSFetches(t, 2)

		e.clock.Advance(jwksMinInterval)
		_, err = e.c.VerifyLogoutToken(t.Context(), old) // unknown kid: one more look
		wantError(t, err, CodeLogoutToken, false)
		e.wantJWKSFetches(t, 3)
	})

	t.Run("removed key refused once the cached set is an hour old", func(t *testing.T) {
		e := newJWKSEnv(t)
		e.mustVerify(t, e.token(oidctest.LogoutTokenOptions{}))
		// Signed with the first key now, valid (by iat) in an hour.
		claims := e.op.LogoutClaims(oidctest.DefaultClientID, "alice", "")
		later := e.clock.Now().Add(jwksMaxAge + time.Minute)
		claims["iat"], claims["exp"] = later.Unix(), later.Add(time.Minute).Unix()
		old := e.op.LogoutToken(claims, oidctest.LogoutTokenOptions{})
		e.op.RotateKeys()
		e.op.RotateKeys()
		e.clock.Advance(jwksMaxAge + time.Minute)
		_, err := e.c.VerifyLogoutToken(t.Context(), old)
		wantError(t, err, CodeLogoutToken, false)
		e.wantJWKSFetches(t, 2)
		e.mustVerify(t, e.token(oidctest.LogoutTokenOptions{}))
		e.wantJWKSFetches(t, 2)
	})

	t.Run("a known kid with a bad signature causes no refetch", func(t *testing.T) {
		e := newJWKSEnv(t)
		e.mustVerify(t, e.token(oidctest.LogoutTokenOptions{}))
		e.clock.Advance(jwksMinInterval * 3)
		for range 100 {
			_, err := e.c.VerifyLogoutToken(t.Context(), e.token(oidctest.LogoutTokenOptions{ForeignKey: true}))
			wantError(t, err, CodeLogoutToken, false)
		}
		e.wantJWKSFetches(t, 1)
	})
}

// A failed fetch is rate-limited like any other and reported as temporary while it lasts;
// the cache recovers by itself once the OP answers again.
func TestJWKSFetchFailureRateLimitedAndRecovers(t *testing.T) {
	clock := newFakeClock()
	op := oidctest.NewTest(t, oidctest.Options{Now: clock.Now})
	cfg := opConfig(op)
	cfg.Now = clock.Now
	var down atomic.Bool
	var attempts atomic.Int64
	lt := cfg.HTTPClient.Transport.(*limitTransport)
	next := lt.base
	lt.base = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == oidctest.PathJWKS {
			attempts.Add(1)
			if down.Load() {
				return nil, errors.New("connection refused")
			}
		}
		return next.RoundTrip(r)
	})
	c := newClient(t, cfg)
	tok := func() string {
		return op.LogoutToken(op.LogoutClaims(oidctest.DefaultClientID, "alice", ""), oidctest.LogoutTokenOptions{})
	}

	down.Store(true)
	for range 10 {
		_, err := c.VerifyLogoutToken(t.Context(), tok())
		wantError(t, err, CodeKeys, true)
	}
	if n := attempts.Load(); n != 1 {
		t.Errorf("JWKS attempts while down = %d, want 1", n)
	}
	down.Store(false)
	_, err := c.VerifyLogoutToken(t.Context(), tok())
	wantError(t, err, CodeKeys, true) // still within the interval
	clock.Advance(jwksMinInterval)
	if _, err := c.VerifyLogoutToken(t.Context(), tok()); err != nil {
		t.Errorf("VerifyLogoutToken() after recovery error = %v", err)
	}
	if n := attempts.Load(); n != 2 {
		t.Errorf("JWKS attempts = %d, want 2", n)
	}
}

// The key set keeps only asymmetric signing keys.
func TestJWKSKeepsOnlyUsableKeys(t *testing.T) {
	e := newJWKSEnv(t)
	e.mustVerify(t, e.token(oidctest.LogoutTokenOptions{}))
	p, err := e.c.discover(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := p.keys.cached()
	if len(keys) != 1 || !keys[0].IsPublic() || keys[0].Algorithm != "RS256" {
		t.Fatalf("cached keys = %+v, want the OP's one public RS256 key", keys)
	}
}

// A published key is used only for its own alg: an RS256 key does not verify a PS256
// signature made with it, although the key could.
func TestJWKSKeyAlgMustMatchTokenAlg(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.PS256, Key: priv}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign([]byte(`{"sub":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := obj.CompactSerialize()
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.PS256})
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.Signatures[0].Header
	for _, tt := range []struct {
		alg  string
		want bool
	}{{"RS256", false}, {"PS256", true}, {"", true}} {
		keys := []jose.JSONWebKey{{Key: priv.Public(), KeyID: "k1", Algorithm: tt.alg}}
		payload, known := verifyWith(jws, hdr, keys)
		if (payload != nil) != tt.want || !known {
			t.Errorf("key alg %q: verified %v (kid known %v), want verified %v", tt.alg, payload != nil, known, tt.want)
		}
	}
}

// Symmetric keys, encryption keys, unsupported algs and key types are dropped from the
// set; a set with nothing usable is a fetch failure (temporary), not an empty key set.
func TestJWKSDownloadFiltersKeys(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good, err := json.Marshal(jose.JSONWebKey{Key: ec.Public(), KeyID: "ec", Algorithm: "ES256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	encKey, _ := json.Marshal(jose.JSONWebKey{Key: ec.Public(), KeyID: "enc", Use: "enc"})
	ecdhKey, _ := json.Marshal(jose.JSONWebKey{Key: ec.Public(), KeyID: "ecdh", Algorithm: "ECDH-ES"})
	privKey, _ := json.Marshal(jose.JSONWebKey{Key: ec, KeyID: "priv", Algorithm: "ES256"})
	others := []string{
		`{"kty":"oct","kid":"mac","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}`,
		`{"kty":"oct","kid":"mac2","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}`,
		`{"kty":"OKP","kid":"x448","crv":"X448","x":"AAAA"}`,
		`{"kty":"EC","kid":"k256","alg":"ES256K","crv":"secp256k1","x":"AAAA","y":"AAAA"}`,
		`{"kid":"broken"}`,
		`"not an object"`,
		string(encKey),
		string(ecdhKey),
	}
	var body atomic.Value
	base := startServer(t, func(string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body.Load().(string)))
		})
	})
	clock := newFakeClock()
	ks := newKeySet(t.Context(), base+"/jwks", NewHTTPClient(5*time.Second, 1<<20), 5*time.Second, clock.Now)

	body.Store(`{"keys":[` + strings.Join(append(others, string(good), string(privKey)), ",") + `]}`)
	keys, err := ks.fetch(t.Context())
	if err != nil {
		t.Fatalf("fetch() error = %v", err)
	}
	var kids []string
	for _, k := range keys {
		kids = append(kids, k.KeyID)
		if !k.IsPublic() {
			t.Errorf("key %s is not a public key", k.KeyID)
		}
	}
	if strings.Join(kids, ",") != "ec,priv" {
		t.Errorf("kept keys %v, want [ec priv] (priv reduced to its public half)", kids)
	}

	clock.Advance(jwksMinInterval)
	body.Store(`{"keys":[` + strings.Join(others, ",") + `]}`)
	if _, err := ks.fetch(t.Context()); err == nil || !strings.Contains(err.Error(), "no usable signing key") {
		t.Errorf("fetch() of a set without usable keys error = %v, want no usable signing key", err)
	}
	if k, _ := ks.cached(); len(k) != 2 {
		t.Errorf("cached keys after a failed refetch = %d, want the previous 2", len(k))
	}
}
