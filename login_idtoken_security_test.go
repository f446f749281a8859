package trustgate

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddyserver/caddy/v2"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
)

// Threat model (docs/threat-model.md) IDT-01..15, OPS-09, LIM-04, LIM-05: the ID token checks of the login callback (login.go).

func withSigningAlg(alg string) gatewayOption {
	return func(_ *Handler, o *oidctest.Options) { o.SigningAlg = alg }
}

func TestIDT01_BadSignature(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"RS256 flipped signature byte", oidctest.Faults{IDTokenBadSignature: true}},
		{"signed with an unpublished key under a published kid", oidctest.Faults{IDTokenUnpublishedKey: true}},
	})
	runIDTokenRejections(t, []idtCase{
		{"ES256 flipped signature byte", oidctest.Faults{IDTokenBadSignature: true}},
	}, withSigningAlg("ES256"))
}

// longSecretClient is a client whose secret is long enough (>= 32 bytes) for a valid
// HS256 MAC, so that a rejection proves the algorithm allow-list, not a key-size check.
func longSecretClient(h *Handler, o *oidctest.Options) {
	c := oidctest.DefaultClient()
	c.Secret = "a-client-secret-that-is-long-enough-for-hs256"
	o.Clients = []oidctest.Client{c}
	h.ClientSecret = c.Secret
}

func TestIDT02_HS256AlgorithmConfusion(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"HS256 with a MAC-sized client secret", oidctest.Faults{IDTokenHS256: true}},
	}, longSecretClient)
	runIDTokenRejections(t, []idtCase{
		{"HS256 keyed with the client secret", oidctest.Faults{IDTokenHS256: true}},
		{"HS384 keyed with the client secret", mutateID(func(h, _ map[string]any) { h["alg"] = "HS384"; delete(h, "kid") })},
		{"HS256 under the RSA key's kid", mutateID(func(h, _ map[string]any) { h["alg"] = "HS256" })},
	})
}

func TestIDT03_AlgNone(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"alg none", oidctest.Faults{IDTokenAlgNone: true}},
		{"alg None", mutateID(func(h, _ map[string]any) { h["alg"] = "None"; delete(h, "kid") })},
		{"alg nOnE", mutateID(func(h, _ map[string]any) { h["alg"] = "nOnE"; delete(h, "kid") })},
		{"header without alg", mutateID(func(h, _ map[string]any) { delete(h, "alg") })},
	})
}

func TestIDT04_AlternateAlgorithm(t *testing.T) {
	// The OP advertises RS256 only; a token validly signed with the same RSA key under
	// another algorithm is still refused.
	runIDTokenRejections(t, []idtCase{
		{"PS256 with the RSA key", mutateID(func(h, _ map[string]any) { h["alg"] = "PS256" })},
		{"RS384 with the RSA key", mutateID(func(h, _ map[string]any) { h["alg"] = "RS384" })},
		{"ES256 header on the RSA kid", mutateID(func(h, _ map[string]any) { h["alg"] = "ES256" })},
	})
}

func TestIDT05_IssuerMismatch(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"wrong iss", oidctest.Faults{IDTokenWrongIssuer: true}},
		{"missing iss", mutateID(func(_, c map[string]any) { delete(c, "iss") })},
		{"trailing slash", mutateID(func(_, c map[string]any) { c["iss"] = c["iss"].(string) + "/" })},
		{"host case", mutateID(func(_, c map[string]any) { c["iss"] = strings.ToUpper(c["iss"].(string)) })},
		{"other tenant path", mutateID(func(_, c map[string]any) { c["iss"] = c["iss"].(string) + "/tenant2" })},
	})
}

func TestIDT06_Audience(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"another client", oidctest.Faults{IDTokenWrongAudience: true}},
		{"missing", oidctest.Faults{IDTokenMissingAudience: true}},
		{"empty array", mutateID(func(_, c map[string]any) { c["aud"] = []any{} })},
		{"client id in other case", mutateID(func(_, c map[string]any) { c["aud"] = strings.ToUpper(oidctest.DefaultClient().ID) })},
	})
	t.Run("single-element array accepted", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetFaults(mutateID(func(_, c map[string]any) { c["aud"] = []any{oidctest.DefaultClient().ID} }))
		g.mustLogin("bindid-known")
	})
}

func TestIDT07_ExtraAudienceAndAzp(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"untrusted extra audience", oidctest.Faults{IDTokenExtraAudience: true}},
		{"extra audience without azp", oidctest.Faults{IDTokenExtraAudience: true, MutateIDToken: func(_, c map[string]any) { delete(c, "azp") }}},
		{"azp is another client", oidctest.Faults{IDTokenAzpOther: true}},
	})
	t.Run("extra audience configured as trusted", func(t *testing.T) {
		g := newGateway(t, func(h *Handler, _ *oidctest.Options) { h.TrustedAudiences = []string{oidctest.OtherClientID} })
		g.op.SetFaults(oidctest.Faults{IDTokenExtraAudience: true})
		g.mustLogin("bindid-known")
	})
}

func TestIDT08_Subject(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"missing", oidctest.Faults{IDTokenMissingSub: true}},
		{"empty", mutateID(func(_, c map[string]any) { c["sub"] = "" })},
		{"number", mutateID(func(_, c map[string]any) { c["sub"] = 12345 })},
		{"array", mutateID(func(_, c map[string]any) { c["sub"] = []any{"a", "b"} })},
		{"10 KB", mutateID(func(_, c map[string]any) { c["sub"] = strings.Repeat("s", 10<<10) })},
		{"control characters", mutateID(func(_, c map[string]any) { c["sub"] = "alice\r\nX-Auth-Admin: yes" })},
	})
}

func TestIDT09_IssuedAt(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"missing", oidctest.Faults{IDTokenMissingIat: true}},
		{"a week old", oidctest.Faults{IDTokenIatWeekOld: true}},
		{"10 minutes in the future", oidctest.Faults{IDTokenIatFuture: true}},
	})
}

func TestIDT10_ExpiryAndNotBefore(t *testing.T) {
	setExp := func(d time.Duration) oidctest.Faults {
		return mutateID(func(_, c map[string]any) { c["exp"] = time.Now().Add(d).Unix() })
	}
	runIDTokenRejections(t, []idtCase{
		{"expired 6 minutes ago", oidctest.Faults{IDTokenExpired: true}},
		{"expired 61s ago (leeway 60s)", setExp(-61 * time.Second)},
		{"missing exp", mutateID(func(_, c map[string]any) { delete(c, "exp") })},
		{"nbf 10 minutes ahead", mutateID(func(_, c map[string]any) { c["nbf"] = time.Now().Add(10 * time.Minute).Unix() })},
		{"exp 1e300", mutateID(func(_, c map[string]any) { c["exp"] = 1e300 })},
		{"exp negative", mutateID(func(_, c map[string]any) { c["exp"] = -1 })},
		{"exp string", mutateID(func(_, c map[string]any) { c["exp"] = "9999999999" })},
	})
	t.Run("expired 30s ago passes within the 60s leeway", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetFaults(setExp(-30 * time.Second))
		g.mustLogin("bindid-known")
	})
}

func TestIDT11_Nonce(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"wrong nonce", oidctest.Faults{IDTokenWrongNonce: true}},
		{"missing nonce", oidctest.Faults{IDTokenMissingNonce: true}},
	})
	t.Run("nonce of another in-flight login of the same browser", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		first := g.startLogin(g.browser, "/a")
		second := g.startLogin(g.browser, "/b")
		otherNonce := first.Query().Get("nonce")
		g.op.SetFaults(mutateID(func(_, c map[string]any) { c["nonce"] = otherNonce }))
		cb := g.authorize(second)
		resp, body := do(t, g.browser, &http.Request{Method: http.MethodGet, URL: cb, Header: http.Header{}})
		g.assertRejectedLogin(resp, body, http.StatusUnauthorized)
		if n := g.op.Counts().Userinfo; n != 0 {
			t.Errorf("userinfo calls = %d, want 0", n)
		}
	})
}

func TestIDT12_CallbackReplay(t *testing.T) {
	t.Run("same callback URL after a completed login", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		cb := g.authorize(g.startLogin(g.browser, "/app"))
		// Keep the transaction cookie as an attacker who copied the whole request would.
		jarCopy := g.newBrowser()
		jarCopy.Jar.SetCookies(cb, g.browser.Jar.Cookies(cb))

		resp, _ := do(t, g.noRedirects(), &http.Request{Method: http.MethodGet, URL: cb, Header: http.Header{}})
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("first callback = %d, want 302", resp.StatusCode)
		}
		if g.store.Len() != 1 {
			t.Fatalf("sessions after login = %d, want 1", g.store.Len())
		}
		tokenCalls := g.op.Counts().Token
		resp, body := do(t, jarCopy, &http.Request{Method: http.MethodGet, URL: cb, Header: http.Header{}})
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already used") {
			t.Errorf("replayed callback = %d %q, want 400 'already used'", resp.StatusCode, web.Clip(body, 200))
		}
		if g.op.Counts().Token != tokenCalls {
			t.Error("the replayed callback reached the token endpoint")
		}
		if g.store.Len() != 1 {
			t.Errorf("sessions after replay = %d, want still 1", g.store.Len())
		}
	})
	t.Run("ID token of one transaction through another browser's transaction", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		victim := g.authorize(g.startLogin(g.browser, "/app"))
		attacker := g.newBrowser()
		resp, body := do(t, attacker, &http.Request{Method: http.MethodGet, URL: victim, Header: http.Header{}})
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("callback in another browser = %d, want 400", resp.StatusCode)
		}
		if g.op.Counts().Token != 0 || g.store.Len() != 0 {
			t.Errorf("token calls %d, sessions %d; want 0, 0", g.op.Counts().Token, g.store.Len())
		}
		_ = body
	})
}

// sweepJWKSAt makes the gateway read the provider's keys from jwks (a server of the test's)
// instead of the provider's own jwks_uri: discovery answers are rewritten on the way in.
func (g *gateway) sweepJWKSAt(jwks func() []byte) {
	g.t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks())
	}))
	g.t.Cleanup(srv.Close)
	g.sweepUseClient(sweepClient(10*time.Second, func(req *http.Request, resp *http.Response) {
		if req.URL.Path != oidctest.PathDiscovery {
			return
		}
		var doc map[string]any
		if json.NewDecoder(resp.Body).Decode(&doc) != nil {
			return
		}
		doc["jwks_uri"] = srv.URL + "/jwks"
		b, _ := json.Marshal(doc)
		sweepSetBody(resp, b)
	}))
}

// sweepOPKeys returns the provider's published keys, as JSON objects.
func sweepOPKeys(t *testing.T, op *oidctest.Provider) []map[string]any {
	t.Helper()
	resp, body := do(t, http.DefaultClient, mustRequest(t, http.MethodGet, op.Issuer()+oidctest.PathJWKS))
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &set) != nil || len(set.Keys) == 0 {
		t.Fatalf("provider JWKS: %d %q", resp.StatusCode, web.Clip(body, 200))
	}
	return set.Keys
}

func sweepJWKSJSON(keys ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

func TestIDT13_KeyIDHandling(t *testing.T) {
	noKid := mutateID(func(h, _ map[string]any) { delete(h, "kid") })

	t.Run("no kid, one key published: that key is used", func(t *testing.T) {
		g := newGateway(t)
		if n := len(sweepOPKeys(t, g.op)); n != 1 {
			t.Fatalf("provider publishes %d keys, want 1", n)
		}
		g.op.SetFaults(noKid)
		g.mustLogin("bindid-known")
	})
	t.Run("no kid, several keys published: every key is tried, same outcome each time", func(t *testing.T) {
		g := newGateway(t, withSigningAlg("ES256"))
		g.op.RotateKeys() // signs with a new key; the old one stays published
		if n := len(sweepOPKeys(t, g.op)); n != 2 {
			t.Fatalf("provider publishes %d keys, want 2", n)
		}
		g.op.SetFaults(noKid)
		for i := range 3 {
			g.browser = g.newBrowser()
			resp, body := g.login("bindid-known", "/app")
			if resp.StatusCode != http.StatusOK || body != "upstream: /app" {
				t.Fatalf("login %d without kid among several keys: %d %q, want the upstream (try-all)", i+1, resp.StatusCode, web.Clip(body, 200))
			}
		}
		if n := g.store.Len(); n != 3 {
			t.Errorf("sessions = %d, want 3", n)
		}
	})
	t.Run("kid names a key published for encryption (use enc)", func(t *testing.T) {
		g := newGateway(t, withSigningAlg("ES256"))
		opKey := sweepOPKeys(t, g.op)[0]
		opKey["use"] = "enc"
		_, other := sweepECKey(t, "another-signing-key")
		g.sweepJWKSAt(func() []byte { return sweepJWKSJSON(opKey, other) })
		resp, body := g.login("bindid-known", "/app")
		g.sweepRejected(resp, body, http.StatusUnauthorized)
	})
	t.Run("kid names a key of another type (RSA key, ES256 token)", func(t *testing.T) {
		g := newGateway(t, withSigningAlg("ES256"))
		opKey := sweepOPKeys(t, g.op)[0]
		rsaKey := sweepOPKeys(t, oidctest.NewTest(t, oidctest.Options{}))[0] // an RS256 provider's key
		rsaKey["kid"] = opKey["kid"]
		delete(rsaKey, "alg") // so only the key type can tell
		g.sweepJWKSAt(func() []byte { return sweepJWKSJSON(rsaKey) })
		resp, body := g.login("bindid-known", "/app")
		g.sweepRejected(resp, body, http.StatusUnauthorized)
	})
	t.Run("duplicate kids: a foreign key and the provider's key under one kid", func(t *testing.T) {
		for _, foreignFirst := range []bool{true, false} {
			g := newGateway(t, withSigningAlg("ES256"))
			opKey := sweepOPKeys(t, g.op)[0]
			_, foreign := sweepECKey(t, opKey["kid"].(string))
			keys := []map[string]any{opKey, foreign}
			if foreignFirst {
				keys = []map[string]any{foreign, opKey}
			}
			g.sweepJWKSAt(func() []byte { return sweepJWKSJSON(keys...) })
			// Deterministic: the provider's key verifies whatever the order; no error page.
			g.mustLogin("bindid-known")
		}
	})
	t.Run("duplicate kids, none of them the signer: rejected", func(t *testing.T) {
		g := newGateway(t, withSigningAlg("ES256"))
		kid := sweepOPKeys(t, g.op)[0]["kid"].(string)
		_, a := sweepECKey(t, kid)
		_, b := sweepECKey(t, kid)
		g.sweepJWKSAt(func() []byte { return sweepJWKSJSON(a, b) })
		resp, body := g.login("bindid-known", "/app")
		g.sweepRejected(resp, body, http.StatusUnauthorized)
	})
}

// sweepResigned replaces the ID token in the token response by one with the same claims,
// the given JOSE header and a signature by key (the attacker's).
func sweepResigned(key *ecdsa.PrivateKey, header map[string]any) oidctest.Faults {
	return oidctest.Faults{MutateTokenResponse: func(resp map[string]any) {
		raw, _ := resp["id_token"].(string)
		if p := sweepPayload(raw); p != nil {
			resp["id_token"] = sweepSignES256(header, p, key)
		}
	}}
}

func TestIDT14_KeyMaterialInTheJOSEHeaderIgnored(t *testing.T) {
	attackerKey, attackerJWK := sweepECKey(t, "attacker")
	attackerCert := sweepSelfSignedCert(t, attackerKey)
	for _, tc := range []struct {
		name   string
		faults func(opKid, attackerURL string) oidctest.Faults
	}{
		{"attacker key in jwk, no kid", func(_, _ string) oidctest.Faults {
			return sweepResigned(attackerKey, map[string]any{"alg": "ES256", "typ": "JWT", "jwk": attackerJWK})
		}},
		{"attacker key in jwk under the provider's kid", func(opKid, _ string) oidctest.Faults {
			return sweepResigned(attackerKey, map[string]any{"alg": "ES256", "typ": "JWT", "kid": opKid, "jwk": attackerJWK})
		}},
		{"jku at the attacker's host", func(_, u string) oidctest.Faults {
			return sweepResigned(attackerKey, map[string]any{"alg": "ES256", "typ": "JWT", "kid": "attacker", "jku": u + "/jwks.json"})
		}},
		{"x5u at the attacker's host", func(_, u string) oidctest.Faults {
			return sweepResigned(attackerKey, map[string]any{"alg": "ES256", "typ": "JWT", "kid": "attacker", "x5u": u + "/cert.pem"})
		}},
		{"x5c with the attacker's certificate", func(_, _ string) oidctest.Faults {
			return sweepResigned(attackerKey, map[string]any{"alg": "ES256", "typ": "JWT", "x5c": []string{base64.StdEncoding.EncodeToString(attackerCert)}})
		}},
		{"kid is a path", func(_, _ string) oidctest.Faults {
			return mutateID(func(h, _ map[string]any) { h["kid"] = "../../../../../../etc/passwd" })
		}},
		{"kid is SQL", func(_, _ string) oidctest.Faults {
			return mutateID(func(h, _ map[string]any) { h["kid"] = "x' OR '1'='1" })
		}},
		{"crit names a registered claim", func(_, _ string) oidctest.Faults {
			return mutateID(func(h, _ map[string]any) { h["crit"] = []string{"exp"} })
		}},
		{"crit names an unknown extension", func(_, _ string) oidctest.Faults {
			return mutateID(func(h, _ map[string]any) { h["crit"] = []string{"urn:example:ext"}; h["urn:example:ext"] = true })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attacker, hits := sweepAttackerHost(t, func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(sweepJWKSJSON(attackerJWK))
			})
			g := newGateway(t, withSigningAlg("ES256"))
			opKid := sweepOPKeys(t, g.op)[0]["kid"].(string)
			g.op.SetFaults(tc.faults(opKid, attacker.URL))
			resp, body := g.login("bindid-known", "/app")
			g.sweepRejected(resp, body, http.StatusUnauthorized)
			if n := hits.Load(); n != 0 {
				t.Errorf("requests to the host named in the token header = %d, want 0", n)
			}
		})
	}
}

// sweepSelfSignedCert is a DER certificate for key, valid now.
func sweepSelfSignedCert(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "attacker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestIDT15_CrossJWTConfusion(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"logout token typ", mutateID(func(h, _ map[string]any) { h["typ"] = "logout+jwt" })},
		{"access token typ", mutateID(func(h, _ map[string]any) { h["typ"] = "at+jwt" })},
		{"logout token events claim", mutateID(func(_, c map[string]any) {
			c["events"] = map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}
		})},
	})
}

func TestOPS09_ClockSkew(t *testing.T) {
	// The provider's clock is off by skew against the gateway's; clock_leeway (default 1m)
	// absorbs small differences, larger ones are refused with a reason naming the time.
	opClock := func(skew time.Duration) gatewayOption {
		return func(_ *Handler, o *oidctest.Options) { o.Now = func() time.Time { return time.Now().Add(skew) } }
	}
	leeway := func(d time.Duration) gatewayOption {
		return func(h *Handler, _ *oidctest.Options) { h.ClockLeeway = caddy.Duration(d) }
	}
	for _, tc := range []struct {
		name string
		opts []gatewayOption
	}{
		{"provider 30s ahead", []gatewayOption{opClock(30 * time.Second)}},
		{"provider 30s behind", []gatewayOption{opClock(-30 * time.Second)}},
		{"provider 2m behind", []gatewayOption{opClock(-2 * time.Minute)}},
		{"provider 2m ahead with clock_leeway 3m", []gatewayOption{opClock(2 * time.Minute), leeway(3 * time.Minute)}},
	} {
		t.Run("accepted: "+tc.name, func(t *testing.T) {
			newGateway(t, tc.opts...).mustLogin("bindid-known")
		})
	}
	for _, tc := range []struct {
		name, reason string
		opts         []gatewayOption
	}{
		{"provider 2m ahead", "future", []gatewayOption{opClock(2 * time.Minute)}},
		{"provider 10m ahead", "future", []gatewayOption{opClock(10 * time.Minute)}},
		{"provider 10m behind", "expired", []gatewayOption{opClock(-10 * time.Minute)}},
		{"provider 10m behind with clock_leeway 5m", "expired", []gatewayOption{opClock(-10 * time.Minute), leeway(5 * time.Minute)}},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			g := newGateway(t, tc.opts...)
			logs := observeLogs(g.h)
			resp, body := g.login("bindid-known", "/app")
			g.sweepRejected(resp, body, http.StatusUnauthorized)
			if !logs.has(func(e observedEntry) bool { return strings.Contains(e.Fields, tc.reason) }) {
				t.Errorf("the refusal log does not say %q", tc.reason)
			}
		})
	}
	// Whatever the leeway, an ID token expired 6 minutes ago or issued a week ago is refused.
	runIDTokenRejections(t, []idtCase{
		{"exp now-6m with clock_leeway 5m", oidctest.Faults{IDTokenExpired: true}},
		{"iat a week ago with clock_leeway 5m", oidctest.Faults{IDTokenIatWeekOld: true}},
	}, leeway(5*time.Minute))
}

func TestLIM04_OversizedAndPathologicalJOSEAndJSON(t *testing.T) {
	nested := func(depth int) any {
		var v any = "x"
		for range depth {
			v = []any{v}
		}
		return v
	}
	tok := func(f func(r map[string]any)) oidctest.Faults { return oidctest.Faults{MutateTokenResponse: f} }
	header := b64url([]byte(`{"alg":"RS256","typ":"JWT"}`))
	for _, tc := range []struct {
		name   string
		faults oidctest.Faults
	}{
		{"1 MB ID token", tok(func(r map[string]any) {
			r["id_token"] = header + "." + strings.Repeat("A", 1_000_000) + "." + strings.Repeat("B", 342)
		})},
		{"compact JWS with 30000 dots", tok(func(r map[string]any) { r["id_token"] = strings.Repeat("a.", 30000) + "a" })},
		{"compact JWS with a million dots", tok(func(r map[string]any) { r["id_token"] = strings.Repeat(".", 1_000_000) })},
		{"header of 60 KB", tok(func(r map[string]any) {
			r["id_token"] = b64url([]byte(`{"alg":"RS256","x":"`+strings.Repeat("h", 44000)+`"}`)) + ".e30.c2ln"
		})},
		{"claim nested 20000 deep (signed by the provider)", mutateID(func(_, c map[string]any) { c["deep"] = nested(20000) })},
		{"10000 claims (signed by the provider)", mutateID(func(_, c map[string]any) {
			for i := range 10000 {
				c["c"+strconv.Itoa(i)] = i
			}
		})},
		{"userinfo nested 20000 deep", oidctest.Faults{MutateUserinfo: func(_, c map[string]any) { c["deep"] = nested(20000) }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t)
			g.op.SetFaults(tc.faults)
			start := time.Now()
			resp, body := g.login("bindid-known", "/app")
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("refusing took %v", d)
			}
			if resp.StatusCode < 400 {
				t.Fatalf("accepted: %d", resp.StatusCode)
			}
			g.assertRejectedLogin(resp, body, resp.StatusCode)
			if tc.name != "userinfo nested 20000 deep" && g.op.Counts().Userinfo != 0 {
				t.Error("userinfo was fetched after a refused ID token")
			}
		})
	}

	// Pathological key sets (RS256 provider), next to the provider's own key; the token
	// names the pathological key's kid.
	withKid := func(kid string) oidctest.Faults {
		return mutateID(func(h, _ map[string]any) { h["kid"] = kid })
	}
	copyKey := func(k map[string]any, kid string) map[string]any {
		c := map[string]any{}
		for kk, vv := range k {
			c[kk] = vv
		}
		c["kid"] = kid
		return c
	}
	for _, tc := range []struct {
		name   string
		keys   func(op map[string]any) []map[string]any
		faults oidctest.Faults
		accept bool
	}{
		{name: "10000 keys (over the 1 MiB cap)", keys: func(op map[string]any) []map[string]any {
			keys := make([]map[string]any, 0, 10001)
			for i := range 10000 {
				keys = append(keys, copyKey(op, "k"+strconv.Itoa(i)))
			}
			return append(keys, op)
		}},
		{name: "2000 keys (under the cap): the token's key is found", accept: true, keys: func(op map[string]any) []map[string]any {
			keys := make([]map[string]any, 0, 2001)
			for i := range 2000 {
				keys = append(keys, copyKey(op, "k"+strconv.Itoa(i)))
			}
			return append(keys, op)
		}},
		{name: "RSA key with e=1 (anyone could forge)", keys: func(op map[string]any) []map[string]any {
			weak := copyKey(op, "weak")
			weak["e"] = "AQ"
			return []map[string]any{op, weak}
		}, faults: oidctest.Faults{
			MutateIDToken: func(h, _ map[string]any) { h["kid"] = "weak" },
			// With e=1 the "signature" is the padded digest itself.
			MutateTokenResponse: func(r map[string]any) {
				raw, _ := r["id_token"].(string)
				if i := strings.LastIndexByte(raw, '.'); i > 0 {
					r["id_token"] = raw[:i+1] + b64url(sweepPKCS1v15EM(raw[:i], 256))
				}
			},
		}},
		{name: "16384-bit modulus", keys: func(op map[string]any) []map[string]any {
			big := copyKey(op, "big")
			n := make([]byte, 2048)
			_, _ = rand.Read(n)
			n[0] |= 0x80
			n[len(n)-1] |= 1
			big["n"] = b64url(n)
			return []map[string]any{op, big}
		}, faults: withKid("big")},
		{name: "EC key whose point is off the curve", keys: func(op map[string]any) []map[string]any {
			return []map[string]any{op, {"kty": "EC", "crv": "P-256", "kid": "off-curve", "use": "sig", "alg": "ES256",
				"x": b64url(bytes.Repeat([]byte{1}, 32)), "y": b64url(bytes.Repeat([]byte{2}, 32))}}
		}, faults: withKid("off-curve")},
		{name: "RSA key missing n and e", keys: func(op map[string]any) []map[string]any {
			k := copyKey(op, "no-n-e")
			delete(k, "n")
			delete(k, "e")
			return []map[string]any{op, k}
		}, faults: withKid("no-n-e")},
		{name: "only unusable keys", keys: func(op map[string]any) []map[string]any {
			k := copyKey(op, op["kid"].(string))
			k["e"] = "AQ"
			return []map[string]any{k}
		}},
	} {
		t.Run("JWKS: "+tc.name, func(t *testing.T) {
			g := newGateway(t)
			keys := tc.keys(sweepOPKeys(t, g.op)[0])
			g.sweepJWKSAt(func() []byte { return sweepJWKSJSON(keys...) })
			g.op.SetFaults(tc.faults)
			start := time.Now()
			resp, body := g.login("bindid-known", "/app")
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the login took %v", d)
			}
			if tc.accept {
				if resp.StatusCode != http.StatusOK || body != "upstream: /app" {
					t.Errorf("login: %d %q, want the upstream", resp.StatusCode, web.Clip(body, 200))
				}
				return
			}
			if resp.StatusCode < 400 {
				t.Fatalf("login with a pathological key set: %d", resp.StatusCode)
			}
			g.sweepRejected(resp, body, resp.StatusCode)
		})
	}
}

// sweepPKCS1v15EM is the RSASSA-PKCS1-v1_5 encoded message (EMSA-PKCS1-v1_5, SHA-256) of
// input for a k-byte modulus: with e=1 it is also the "signature".
func sweepPKCS1v15EM(input string, k int) []byte {
	prefix := []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	sum := sha256.Sum256([]byte(input))
	t := append(prefix, sum[:]...)
	em := make([]byte, k)
	em[1] = 1
	for i := 2; i < k-len(t)-1; i++ {
		em[i] = 0xff
	}
	copy(em[k-len(t):], t)
	return em
}

func TestLIM05_JWECompressionBomb(t *testing.T) {
	const inflated = 32 << 20
	enc, err := jose.NewEncrypter(jose.A128GCM, jose.Recipient{Algorithm: jose.DIRECT, Key: bytes.Repeat([]byte{7}, 16)},
		(&jose.EncrypterOptions{Compression: jose.DEFLATE}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := enc.Encrypt(make([]byte, inflated)) // zeros: deflates about 1000:1
	if err != nil {
		t.Fatal(err)
	}
	bomb, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	if len(bomb) > oidcflow.MaxTokenBytes {
		t.Fatalf("the compressed JWE is %d bytes, more than the token cap: the test would not reach the parser", len(bomb))
	}
	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}

	t.Run("encrypted, compressed ID token", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetFaults(oidctest.Faults{MutateTokenResponse: func(r map[string]any) { r["id_token"] = bomb }})
		g.op.SetAutoLogin("bindid-known")
		cb := g.authorize(g.startLogin(g.browser, "/app"))
		var resp *http.Response
		var body string
		n := allocated(func() { resp, body = g.get(g.browser, cb.String()) })
		g.sweepRejected(resp, body, http.StatusUnauthorized)
		if n > inflated/2 {
			t.Errorf("refusing the JWE allocated %d MB: it was decompressed", n>>20)
		}
	})
	t.Run("five-part token when JWE is not configured", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetFaults(oidctest.Faults{MutateTokenResponse: func(r map[string]any) {
			r["id_token"] = b64url([]byte(`{"alg":"dir","enc":"A128GCM"}`)) + "..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA"
		}})
		resp, body := g.login("bindid-known", "/app")
		g.sweepRejected(resp, body, http.StatusUnauthorized)
	})
	t.Run("encrypted, compressed signed userinfo", func(t *testing.T) {
		g := newGateway(t)
		g.sweepUseClient(sweepClient(10*time.Second, func(req *http.Request, resp *http.Response) {
			if req.URL.Path == oidctest.PathUserinfo {
				sweepSetBody(resp, []byte(bomb))
				resp.Header.Set("Content-Type", "application/jwt")
			}
		}))
		g.op.SetAutoLogin("bindid-known")
		cb := g.authorize(g.startLogin(g.browser, "/app"))
		var resp *http.Response
		var body string
		n := allocated(func() { resp, body = g.get(g.browser, cb.String()) })
		g.assertRejectedLogin(resp, body, http.StatusUnauthorized)
		if n > inflated/2 {
			t.Errorf("refusing the JWE userinfo allocated %d MB: it was decompressed", n>>20)
		}
	})
	t.Run("encrypted, compressed logout token", func(t *testing.T) {
		g := newGateway(t)
		g.mustLogin("bindid-known")
		var resp *http.Response
		n := allocated(func() { resp = g.postLogoutToken(url.Values{"logout_token": {bomb}}) })
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("JWE logout token: %d, want 400", resp.StatusCode)
		}
		if g.store.Len() != 1 {
			t.Error("a JWE logout token ended a session")
		}
		if n > inflated/2 {
			t.Errorf("refusing the JWE logout token allocated %d MB: it was decompressed", n>>20)
		}
	})
}
