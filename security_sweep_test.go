package trustgate

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/session"
	"github.com/trustgate/trustgate/trust"
)

// Threat model cases (docs/threat-model.md) of the security sweep. Each test
// feeds the attack or fault through the gateway and asserts the expected answer and that
// nothing was created: no session, no session cookie, no upstream call, and after a
// refused ID token no userinfo call (the OpenID conformance suite's oracle).

// --- helpers -------------------------------------------------------------------------

// sweepTransport passes every call to the provider through edit (after the real answer came
// back), under the provider client's own timeout and redirect policy.
type sweepTransport struct {
	next http.RoundTripper
	edit func(req *http.Request, resp *http.Response)
}

func (t *sweepTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || t.edit == nil {
		return resp, err
	}
	t.edit(req, resp)
	return resp, nil
}

// sweepSetBody replaces a response body (the original is drained and closed).
func sweepSetBody(resp *http.Response, body []byte) {
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
}

// sweepUseClient replaces the gateway's provider client with one of the same configuration
// whose calls to the provider go through hc. The gateway's production client is built by
// provisionClient; this lets a test put a fault between the gateway and the provider (a
// short timeout, a rewritten discovery document) without another provider implementation.
func (g *gateway) sweepUseClient(hc *http.Client) {
	g.t.Helper()
	cfg := g.h.client.Config()
	cfg.HTTPClient = hc
	c, err := oidcflow.New(cfg)
	if err != nil {
		g.t.Fatalf("oidcflow.New() error = %v", err)
	}
	g.t.Cleanup(c.Close)
	g.h.client = c
}

// sweepClient is the production HTTP client for provider calls (timeout, 1 MiB body cap, no
// redirects), with edit applied to each answer before the body cap reads it.
func sweepClient(timeout time.Duration, edit func(req *http.Request, resp *http.Response)) *http.Client {
	base := oidcflow.NewHTTPClient(timeout, 1<<20)
	base.Transport = &sweepTransport{next: base.Transport, edit: edit}
	return base
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

// sweepECKey is a fresh P-256 key (fast to generate) and its public JWK as a JSON object.
func sweepECKey(t *testing.T, kid string) (*ecdsa.PrivateKey, map[string]any) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return k, m
}

// sweepSignES256 signs header and payload as a compact JWS with key, whatever the header says.
func sweepSignES256(header map[string]any, payload []byte, key *ecdsa.PrivateKey) string {
	hb, _ := json.Marshal(header)
	input := b64url(hb) + "." + b64url(payload)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		panic(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64url(sig)
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// sweepPayload is the decoded claims segment of a compact JWS, or nil.
func sweepPayload(jws string) []byte {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return nil
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	return b
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

// sweepAttackerHost is a server that must never be contacted: it counts its requests.
func sweepAttackerHost(t *testing.T, body func(w http.ResponseWriter)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if body != nil {
			body(w)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// observedLogs captures a handler's log lines (every level).
type observedLogs struct{ o *observer.ObservedLogs }

// observedEntry is one log line, its context fields flattened into one string.
type observedEntry struct {
	Level   zapcore.Level
	Message string
	Fields  string
}

func observeLogs(h *Handler) *observedLogs {
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	return &observedLogs{logs}
}

func (l *observedLogs) entries() []observedEntry {
	var out []observedEntry
	for _, e := range l.o.All() {
		var b strings.Builder
		for k, v := range e.ContextMap() {
			b.WriteString(" " + k + "=" + fmt.Sprint(v))
		}
		out = append(out, observedEntry{Level: e.Level, Message: e.Message, Fields: b.String()})
	}
	return out
}

func (l *observedLogs) has(match func(observedEntry) bool) bool {
	for _, e := range l.entries() {
		if match(e) {
			return true
		}
	}
	return false
}

// sweepRejected checks REJECT-LOGIN for a login that went to the token endpoint: the given
// status, nothing created, the transaction spent, and no userinfo call.
func (g *gateway) sweepRejected(resp *http.Response, body string, status int) {
	g.t.Helper()
	g.assertRejectedLogin(resp, body, status)
	g.assertNoPendingLogin()
	if n := g.op.Counts().Userinfo; n != 0 {
		g.t.Errorf("userinfo calls after a refused login = %d, want 0", n)
	}
}

// sweepUpstreamHeadersLack fails when any upstream header value contains one of bad.
func (g *gateway) sweepUpstreamHeadersLack(bad ...string) {
	g.t.Helper()
	for name, vs := range g.upstream.Header() {
		for _, v := range vs {
			for _, b := range bad {
				if strings.Contains(v, b) {
					g.t.Errorf("upstream header %s = %q carries %q", name, web.Clip(v, 120), b)
				}
			}
		}
	}
}

// --- C.1 ID token validation --------------------------------------------------------

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

func TestIDT16_OptionalClaimChecks(t *testing.T) {
	t.Run("at_hash present but wrong", func(t *testing.T) {
		runIDTokenRejections(t, []idtCase{{"bad at_hash", oidctest.Faults{IDTokenBadAtHash: true}}})
	})
	// max_age is the route policy's max_auth_age: its step-up sends max_age and
	// prompt=login; a login that still cannot show a recent auth_time gets 403, never the
	// upstream, and never a second trip to the provider.
	// (The BindID userinfo also carries auth_time, which fills in for an ID token without
	// one; "no auth_time" removes it from both.)
	for _, tc := range []struct {
		name   string
		faults oidctest.Faults
	}{
		{"max_auth_age and no auth_time", oidctest.Faults{
			MutateIDToken:  func(_, c map[string]any) { delete(c, "auth_time") },
			MutateUserinfo: func(_, c map[string]any) { delete(c, "auth_time") },
		}},
		{"max_auth_age and auth_time too old", mutateID(func(_, c map[string]any) { c["auth_time"] = time.Now().Add(-2 * time.Hour).Unix() })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t)
			g.op.SetFaults(tc.faults)
			g.mustLogin("bindid-known") // /app has no policy
			g.addPolicyBlock(&PolicyConfig{MaxAuthAge: caddy.Duration(10 * time.Minute)})
			calls, before := g.upstream.Calls(), g.op.Counts().Authorize
			resp, body := g.navigate(g.browser, "/admin/account")
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%s: %d %q, want 403", tc.name, resp.StatusCode, web.Clip(body, 300))
			}
			if n := g.op.Counts().Authorize - before; n != 1 {
				t.Errorf("authorization requests = %d, want 1 (one step-up, no loop)", n)
			}
			if q := g.op.LastAuthorize(); q.Get("max_age") != "600" || q.Get("prompt") != "login" {
				t.Errorf("step-up max_age=%q prompt=%q, want 600 and login", q.Get("max_age"), q.Get("prompt"))
			}
			if g.upstream.Calls() != calls {
				t.Error("the upstream saw the request")
			}
			if resp, _ := g.api("/admin/account"); resp.StatusCode != http.StatusForbidden {
				t.Errorf("API request: %d, want 403", resp.StatusCode)
			}
		})
	}
	t.Run("essential acr not met: one step-up, then 403", func(t *testing.T) {
		g := newGateway(t, withStepUpUsers())
		g.mustLogin("bindid-new") // its acr cannot reach acrHigh
		g.addPolicyBlock(&PolicyConfig{ACRAtLeast: acrHigh})
		calls, before := g.upstream.Calls(), g.op.Counts().Authorize
		resp, _ := g.navigate(g.browser, "/admin")
		if resp.StatusCode != http.StatusForbidden || g.op.Counts().Authorize-before != 1 || g.upstream.Calls() != calls {
			t.Errorf("acr below acr_at_least: %d, %d step-ups, upstream calls +%d; want 403, 1, 0",
				resp.StatusCode, g.op.Counts().Authorize-before, g.upstream.Calls()-calls)
		}
		if got := g.op.LastAuthorize().Get("acr_values"); !strings.HasPrefix(got, acrHigh) {
			t.Errorf("step-up acr_values = %q, want %s first", got, acrHigh)
		}
	})
}

// --- C.2 Userinfo ---------------------------------------------------------------------

func TestUI05_AggregatedAndDistributedClaimsNotTrusted(t *testing.T) {
	const distributedToken = "distributed-claims-access-token-0123456789"
	attacker, hits := sweepAttackerHost(t, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"groups":["admins"],"email":"ceo@evil.example"}`)
	})
	forgedKey, _ := sweepECKey(t, "x")
	forged := sweepSignES256(map[string]any{"alg": "ES256", "kid": "x"},
		[]byte(`{"iss":"https://claims.evil.example","sub":"`+oidctest.SubjectBindIDKnown+`","groups":["admins"],"email":"ceo@evil.example"}`), forgedKey)
	unsigned := b64url([]byte(`{"alg":"none"}`)) + "." + b64url([]byte(`{"role":"superuser","email":"ceo@evil.example"}`)) + "."
	for _, where := range []string{"userinfo", "id token"} {
		t.Run(where, func(t *testing.T) {
			g := newGateway(t, func(h *Handler, _ *oidctest.Options) {
				h.HeaderMappings = append(h.HeaderMappings, trust.Mapping{Header: "X-Auth-Groups", Claim: "groups"}, trust.Mapping{Header: "X-Auth-Role", Claim: "role"})
			})
			add := func(c map[string]any) {
				c["_claim_names"] = map[string]any{"groups": "src1", "role": "src2", "email": "src3"}
				c["_claim_sources"] = map[string]any{
					"src1": map[string]any{"JWT": forged},
					"src2": map[string]any{"JWT": unsigned},
					"src3": map[string]any{"endpoint": attacker.URL + "/claims", "access_token": distributedToken},
				}
			}
			if where == "userinfo" {
				g.op.SetFaults(oidctest.Faults{MutateUserinfo: func(_, c map[string]any) { add(c) }})
			} else {
				g.op.SetFaults(mutateID(func(_, c map[string]any) { add(c) }))
			}
			g.mustLogin("bindid-known")
			if n := hits.Load(); n != 0 {
				t.Errorf("requests to the distributed claims endpoint = %d, want 0", n)
			}
			h := g.upstream.Header()
			if h.Get("X-Auth-Groups") != "" || h.Get("X-Auth-Role") != "" {
				t.Errorf("aggregated claims reached the upstream: groups %q role %q", h.Get("X-Auth-Groups"), h.Get("X-Auth-Role"))
			}
			g.sweepUpstreamHeadersLack("ceo@evil.example", "superuser", "admins", distributedToken, forged)
			// Neither the unverified aggregated JWTs nor the distributed source's access token
			// are kept where a browser or an upstream can read them: /.trustgate/me and the
			// {http.auth.user.*} placeholders.
			_, me := g.api("/.trustgate/me")
			for what, v := range map[string]string{"the distributed source's access token": distributedToken, "an unverified aggregated JWT": forged, "an unsigned aggregated JWT": unsigned} {
				if strings.Contains(me, v) {
					t.Errorf("/.trustgate/me returns %s to the browser", what)
				}
			}
			rd := g.h.sessions.render(g.stored())
			for name, v := range rd.placeholders {
				if strings.Contains(v, distributedToken) || strings.Contains(v, forged) {
					t.Errorf("placeholder {http.auth.user.%s} carries the aggregated/distributed claim sources", name)
				}
			}
		})
	}
}

// --- C.3 Flow, state, PKCE ------------------------------------------------------------

// sweepStubIssuer serves an OpenID Provider's discovery document (complete, every endpoint
// under its own URL) edited by edit; other paths answer 404. It returns the issuer.
func sweepStubIssuer(t *testing.T, edit func(doc map[string]any)) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != oidctest.PathDiscovery {
			http.NotFound(w, r)
			return
		}
		doc := map[string]any{
			"issuer": base, "authorization_endpoint": base + "/authorize", "token_endpoint": base + "/token",
			"jwks_uri": base + "/jwks", "userinfo_endpoint": base + "/userinfo",
			"id_token_signing_alg_values_supported": []string{"RS256"}, "code_challenge_methods_supported": []string{"S256"},
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		}
		if edit != nil {
			edit(doc)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	})
	srv.Start()
	t.Cleanup(srv.Close)
	return base
}

// sweepHandlerFor provisions a handler for issuer (the default client, a test cookie secret)
// with its logs captured.
func sweepHandlerFor(t *testing.T, issuer string, edit func(h *Handler)) (*Handler, *observedLogs) {
	t.Helper()
	h := &Handler{Issuer: issuer, ClientID: oidctest.DefaultClientID, ClientSecret: oidctest.DefaultClientSecret, Secrets: []string{testSecret}, InsecureCookie: true}
	if edit != nil {
		edit(h)
	}
	if err := provision(t, h); err != nil {
		t.Fatalf("Provision() error = %v", err)
	}
	logs := observeLogs(h)
	return h, logs
}

func TestFL04_CodeInjection(t *testing.T) {
	// The provider binds a code to its client, redirect_uri and PKCE challenge; a code that
	// was not issued for this browser's own transaction comes back invalid_grant and the
	// login is refused. The victim's state and transaction cookie are genuine each time.
	inject := func(g *gateway, code string) (*http.Response, string) {
		victim := g.authorize(g.startLogin(g.browser, "/app")) // the victim's callback
		q := victim.Query()
		q.Set("code", code)
		victim.RawQuery = q.Encode()
		return g.get(g.browser, victim.String())
	}
	t.Run("the attacker's code from the attacker's own transaction", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-new")
		code := g.authorize(g.startLogin(g.newBrowser(), "/app")).Query().Get("code")
		g.op.SetAutoLogin("bindid-known")
		resp, body := inject(g, code)
		g.sweepRejected(resp, body, http.StatusBadRequest)
		if n := g.op.Counts().Token; n != 1 {
			t.Errorf("token requests = %d, want 1", n)
		}
	})
	t.Run("a code issued to another client", func(t *testing.T) {
		g := newGateway(t, func(_ *Handler, o *oidctest.Options) {
			other := oidctest.DefaultClient()
			other.ID, other.Secret = "attacker-client", "attacker-client-secret"
			o.Clients = []oidctest.Client{oidctest.DefaultClient(), other}
		})
		g.op.SetAutoLogin("bindid-known")
		authURL := g.startLogin(g.newBrowser(), "/app")
		q := authURL.Query()
		q.Set("client_id", "attacker-client")
		authURL.RawQuery = q.Encode()
		code := g.authorize(authURL).Query().Get("code")
		resp, body := inject(g, code)
		g.sweepRejected(resp, body, http.StatusBadRequest)
	})
	t.Run("a code bound to another redirect_uri", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		authURL := g.startLogin(g.newBrowser(), "/app")
		q := authURL.Query()
		q.Set("redirect_uri", "http://127.0.0.1:1/elsewhere/callback")
		authURL.RawQuery = q.Encode()
		code := g.authorize(authURL).Query().Get("code") // same PKCE challenge, other redirect_uri
		resp, body := inject(g, code)
		g.sweepRejected(resp, body, http.StatusBadRequest)
	})
	t.Run("a provider that names PKCE methods without S256 is refused", func(t *testing.T) {
		issuer := sweepStubIssuer(t, func(doc map[string]any) { doc["code_challenge_methods_supported"] = []string{"plain"} })
		h, _ := sweepHandlerFor(t, issuer, nil)
		rec := &recorder{}
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "http://app.test/app", nil)
		req.Header.Set("Accept", "text/html")
		if err := h.ServeHTTP(w, req, rec); err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Location") != "" || rec.Calls() != 0 {
			t.Errorf("login against an OP without S256: %d Location %q upstream %d; want 503, no redirect, no upstream", w.Code, w.Header().Get("Location"), rec.Calls())
		}
	})
	t.Run("a provider that does not advertise PKCE: S256 still sent, and a warning", func(t *testing.T) {
		issuer := sweepStubIssuer(t, func(doc map[string]any) { delete(doc, "code_challenge_methods_supported") })
		h, logs := sweepHandlerFor(t, issuer, nil)
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "http://app.test/app", nil)
		req.Header.Set("Accept", "text/html")
		if err := h.ServeHTTP(w, req, &recorder{}); err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(w.Header().Get("Location"))
		if w.Code != http.StatusFound || u.Query().Get("code_challenge_method") != "S256" || u.Query().Get("code_challenge") == "" {
			t.Fatalf("login start: %d %q, want a redirect with a S256 challenge", w.Code, w.Header().Get("Location"))
		}
		// threat model FL-04: the module refuses, or loudly warns, when the metadata does not
		// show S256 support (code injection protection then rests on an unverified
		// assumption).
		if !logs.has(func(e observedEntry) bool {
			return e.Level >= zapcore.WarnLevel && strings.Contains(e.Message+e.Fields, "code_challenge_methods_supported")
		}) {
			t.Error("no warning logged that the provider does not advertise code_challenge_methods_supported (S256)")
		}
	})
}

func TestFL11_ClientSuppliedAuthorizationParametersIgnored(t *testing.T) {
	g := newGateway(t)
	evil := url.Values{
		"scope": {"openid admin offline_access"}, "prompt": {"none"}, "redirect_uri": {"https://evil.example/cb"},
		"response_type": {"token id_token"}, "response_mode": {"form_post"}, "client_id": {"other-client"},
		"claims":  {`{"id_token":{"acr":{"essential":true,"value":"weak"}}}`},
		"request": {"eyJhbGciOiJub25lIn0.eyJzY29wZSI6ImFkbWluIn0."}, "request_uri": {"https://evil.example/request.jwt"},
		"state": {"attacker-state"}, "nonce": {"attacker-nonce"}, "code_challenge": {"attacker-challenge"},
		"code_challenge_method": {"plain"}, "acr_values": {"weak"}, "max_age": {"999999"}, "ui_locales": {"xx"},
		"iss": {"https://evil.example"}, "target_link_uri": {"https://evil.example/landing"},
	}
	for _, start := range []string{"/.trustgate/login?", "/app?"} {
		t.Run(strings.Trim(start, "?"), func(t *testing.T) {
			u := g.startLogin(g.newBrowser(), start+evil.Encode()+"&login_hint=ola%40example.org")
			if !strings.HasPrefix(u.String(), g.op.Issuer()+oidctest.PathAuthorize+"?") {
				t.Fatalf("authorization URL %s is not the configured provider's", u)
			}
			q := u.Query()
			for k, vs := range q {
				if len(vs) != 1 {
					t.Errorf("authorization parameter %s appears %d times", k, len(vs))
				}
			}
			want := map[string]string{
				"client_id": oidctest.DefaultClientID, "redirect_uri": g.srv.URL + "/.trustgate/callback",
				"response_type": "code", "scope": "openid email profile", "code_challenge_method": "S256",
			}
			for k, v := range want {
				if q.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, q.Get(k), v)
				}
			}
			for _, k := range []string{"prompt", "response_mode", "claims", "request", "request_uri", "acr_values", "max_age", "ui_locales", "iss", "target_link_uri"} {
				if q.Has(k) {
					t.Errorf("client-supplied %s=%q reached the provider", k, q.Get(k))
				}
			}
			for _, k := range []string{"state", "nonce", "code_challenge"} {
				if v := q.Get(k); v == evil.Get(k) || len(v) != 43 {
					t.Errorf("%s = %q, want the gateway's own 43-character value", k, v)
				}
			}
			// login_hint (who signs in) is the one parameter passed on, and only explicitly.
			wantHint := ""
			if start == "/.trustgate/login?" {
				wantHint = "ola@example.org"
			}
			if got := q.Get("login_hint"); got != wantHint {
				t.Errorf("login_hint = %q, want %q", got, wantHint)
			}
		})
	}
	t.Run("third-party initiated login with a foreign iss and target_link_uri", func(t *testing.T) {
		g := newGateway(t)
		g.mustLogin("bindid-known")
		before := g.sessionCookie(g.browser)
		authURL := g.startLogin(g.browser, "/.trustgate/login?"+url.Values{"iss": {"https://evil.example"}, "target_link_uri": {"https://evil.example/x"}}.Encode())
		if !strings.HasPrefix(authURL.String(), g.op.Issuer()+"/") {
			t.Errorf("login went to %s, not the configured provider", authURL)
		}
		// No silent switch: the existing session stays until a new login completes.
		if g.sessionCookie(g.browser) != before || g.store.Len() != 1 {
			t.Error("starting a login ended or replaced the existing session")
		}
		resp, _ := g.get(g.noRedirects(), g.authorize(authURL).String())
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "/" {
			t.Errorf("after the login: %d Location %q, want 302 to / (target_link_uri is not a return target)", resp.StatusCode, loc)
		}
	})
}

func TestFL14_TokenEndpointResponseAnomalies(t *testing.T) {
	tok := func(f func(r map[string]any)) oidctest.Faults { return oidctest.Faults{MutateTokenResponse: f} }
	for _, tc := range []struct {
		name   string
		faults oidctest.Faults
		status int
	}{
		{"token_type MAC", oidctest.Faults{TokenType: "MAC"}, http.StatusUnauthorized},
		{"token_type DPoP", oidctest.Faults{TokenType: "DPoP"}, http.StatusUnauthorized},
		{"token_type not a string", tok(func(r map[string]any) { r["token_type"] = 1 }), http.StatusUnauthorized},
		{"no access_token", tok(func(r map[string]any) { delete(r, "access_token") }), http.StatusUnauthorized},
		{"access_token not a string", tok(func(r map[string]any) { r["access_token"] = 42 }), http.StatusUnauthorized},
		{"no id_token although openid was requested", oidctest.Faults{IDTokenOmit: true}, http.StatusUnauthorized},
		{"id_token not a string", tok(func(r map[string]any) { r["id_token"] = 42 }), http.StatusUnauthorized},
		{"id_token an object", tok(func(r map[string]any) { r["id_token"] = map[string]any{"sub": "admin"} }), http.StatusUnauthorized},
		{"id_token an array of tokens", tok(func(r map[string]any) { r["id_token"] = []any{r["id_token"], r["id_token"]} }), http.StatusUnauthorized},
		{"expires_in not a number", tok(func(r map[string]any) { r["expires_in"] = "soon" }), http.StatusUnauthorized},
		{"HTTP 200 carrying an error", oidctest.Faults{TokenError: "invalid_request", TokenErrorStatus: http.StatusOK}, http.StatusBadGateway},
		{"HTML 200", oidctest.Faults{TokenHTML: true}, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t)
			g.op.SetFaults(tc.faults)
			resp, body := g.login("bindid-known", "/app")
			g.sweepRejected(resp, body, tc.status)
		})
	}
	for _, tc := range []struct {
		name   string
		faults oidctest.Faults
	}{
		{"token_type bEARER", oidctest.Faults{TokenType: "bEARER"}},
		{"no expires_in", oidctest.Faults{TokenOmitExpiresIn: true}},
		{"no scope", tok(func(r map[string]any) { delete(r, "scope") })},
		{"huge expires_in", tok(func(r map[string]any) { r["expires_in"] = int64(1) << 53 })},
	} {
		t.Run("accepted: "+tc.name, func(t *testing.T) {
			g := newGateway(t)
			g.op.SetFaults(tc.faults)
			g.mustLogin("bindid-known")
			s := g.stored()
			if latest := time.Now().Add(defaultLifetime + time.Minute); s.ExpiresAt.After(latest) {
				t.Errorf("session ends %v, later than the configured lifetime allows", s.ExpiresAt)
			}
			for range 3 {
				if resp, _ := g.api("/app"); resp.StatusCode != http.StatusOK {
					t.Fatalf("request with the session: %d", resp.StatusCode)
				}
			}
			if n := g.op.Counts().Refresh; n != 0 {
				t.Errorf("refresh grants = %d, want 0 (the access token is not due)", n)
			}
		})
	}
	// An access token the provider says is already expired (expires_in 0 or negative) must
	// not turn every request into a refresh grant: such a value is unknown expiry (as 0 and
	// an absent expires_in are) or a refused login, never "refresh now, every time".
	for _, v := range []int{0, -1, -3600} {
		t.Run("expires_in "+strconv.Itoa(v), func(t *testing.T) {
			g := newGateway(t)
			g.op.SetFaults(tok(func(r map[string]any) { r["expires_in"] = v }))
			resp, body := g.login("bindid-known", "/app")
			if resp.StatusCode == http.StatusOK {
				for range 5 {
					g.api("/app")
				}
				if n := g.op.Counts().Refresh; n > 1 {
					t.Errorf("refresh grants for 5 requests after a login with expires_in %d = %d: every request refreshes (a refresh storm against the provider)", v, n)
				}
				return
			}
			g.sweepRejected(resp, body, resp.StatusCode)
		})
	}
}

// --- C.5 Headers ----------------------------------------------------------------------

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

// --- C.8 Store / network faults ---------------------------------------------------------

func TestOPS05_DiscoveryUnreachableOrInvalid(t *testing.T) {
	type mode = int32
	const (
		modeDown mode = iota
		modeHTML
		modeRedirect
		modeBadJSON
		modeArray
		mode500
		modeGood
	)
	for _, tc := range []struct {
		name string
		mode mode
	}{
		{"provider answers HTML", modeHTML},
		{"provider redirects to a login page", modeRedirect},
		{"discovery is not JSON", modeBadJSON},
		{"discovery is a JSON array", modeArray},
		{"provider answers 500", mode500},
		{"provider connection reset", modeDown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var current atomic.Int32
			current.Store(tc.mode)
			srv := httptest.NewUnstartedServer(nil)
			base := "http://" + srv.Listener.Addr().String()
			srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch current.Load() {
				case modeDown:
					if hj, ok := w.(http.Hijacker); ok {
						if c, _, err := hj.Hijack(); err == nil {
							c.Close()
						}
					}
				case modeHTML:
					w.Header().Set("Content-Type", "text/html")
					_, _ = io.WriteString(w, "<html><body>Maintenance</body></html>")
				case modeRedirect:
					http.Redirect(w, r, base+"/login?next=/.well-known/openid-configuration", http.StatusFound)
				case modeBadJSON:
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, `{"issuer": "`+base+`", "authorization_endpoint": `)
				case modeArray:
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, `[]`)
				case mode500:
					http.Error(w, "internal error", http.StatusInternalServerError)
				default:
					if r.URL.Path != oidctest.PathDiscovery {
						http.NotFound(w, r)
						return
					}
					w.Header().Set("Content-Type", "application/json")
					_ = json.NewEncoder(w).Encode(map[string]any{
						"issuer": base, "authorization_endpoint": base + "/authorize", "token_endpoint": base + "/token",
						"jwks_uri": base + "/jwks", "response_types_supported": []string{"code"},
						"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"},
					})
				}
			})
			srv.Start()
			t.Cleanup(srv.Close)

			clk := newTestClock()
			h, logs := sweepHandlerFor(t, base, func(h *Handler) { h.now = clk.Now })
			up := &recorder{}
			serve := func(accept string) *httptest.ResponseRecorder {
				w := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, "http://app.test/app", nil)
				req.Header.Set("Accept", accept)
				if err := h.ServeHTTP(w, req, up); err != nil {
					t.Fatalf("ServeHTTP error = %v", err)
				}
				return w
			}
			for range 3 { // the failure is remembered for the backoff, then retried
				w := serve("text/html")
				if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || w.Header().Get("Location") != "" {
					t.Fatalf("protected navigation with discovery failing: %d Retry-After %q Location %q; want 503 with Retry-After, no redirect",
						w.Code, w.Header().Get("Retry-After"), w.Header().Get("Location"))
				}
				if len(w.Result().Cookies()) != 0 {
					t.Error("a failed login start set a cookie")
				}
			}
			if w := serve("application/json"); w.Code == http.StatusOK {
				t.Errorf("API request with discovery failing: %d", w.Code)
			}
			if up.Calls() != 0 {
				t.Fatalf("upstream calls = %d with the provider failing, want 0 (never fail open)", up.Calls())
			}
			if !logs.has(func(e observedEntry) bool {
				return e.Level >= zapcore.ErrorLevel && strings.Contains(e.Fields, "discovery")
			}) {
				t.Error("no error logged for the failing discovery")
			}
			// The provider comes back: after the backoff the next login starts by itself.
			current.Store(modeGood)
			clk.Advance(2 * time.Minute)
			w := serve("text/html")
			if w.Code != http.StatusFound || !strings.HasPrefix(w.Header().Get("Location"), base+"/authorize?") {
				t.Errorf("after the provider recovered: %d Location %q, want a login redirect", w.Code, w.Header().Get("Location"))
			}
		})
	}
	t.Run("bad configuration is refused at provision, clearly and without the secret", func(t *testing.T) {
		t.Setenv("TG_SWEEP_EMPTY", "")
		const secret = "client-secret-value-never-shown"
		base := Handler{Issuer: "https://idp.example.com", ClientID: "app", ClientSecret: secret, Secrets: []string{testSecret}}
		for _, tc := range []struct {
			name string
			edit func(h *Handler)
			want string
		}{
			{"empty client secret placeholder", func(h *Handler) { h.ClientSecret = "{env.TG_SWEEP_EMPTY}" }, "client_secret is empty"},
			{"no client_id (empty audience)", func(h *Handler) { h.ClientID = "" }, "client_id is required"},
			{"no issuer", func(h *Handler) { h.Issuer = "" }, "issuer is required"},
			{"issuer with a query", func(h *Handler) { h.Issuer = "https://idp.example.com/?tenant=x" }, "issuer"},
			{"redis address without a port", func(h *Handler) {
				h.SessionStore = &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{"redis.internal"}}}
			}, "not host:port"},
			{"redis without addresses", func(h *Handler) { h.SessionStore = &SessionStoreConfig{Redis: &RedisStoreConfig{}} }, "addrs is required"},
			{"redis password placeholder empty", func(h *Handler) {
				h.SessionStore = &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{"127.0.0.1:1"}, Password: "{env.TG_SWEEP_EMPTY}"}}
			}, "password is empty"},
			{"unknown token auth method", func(h *Handler) { h.TokenAuthMethod = "private_key_jwt" }, "token auth method"},
			{"unknown userinfo method", func(h *Handler) { h.Userinfo = "sometimes" }, "userinfo"},
			{"signed userinfo required but userinfo off", func(h *Handler) { h.Userinfo, h.UserinfoRequireSigned = "off", true }, "userinfo is off"},
			{"clock leeway beyond 5m", func(h *Handler) { h.ClockLeeway = caddy.Duration(time.Hour) }, "clock_leeway"},
			{"feedback endpoint over plain http", func(h *Handler) { h.FeedbackEndpoint = "http://idp.example.com/feedback" }, "feedback_endpoint"},
			{"acr_at_least without levels", func(h *Handler) { h.Require = &PolicyConfig{ACRAtLeast: "high"} }, "acr_levels"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := base
				h.Scopes = nil
				tc.edit(&h)
				var err error
				func() {
					defer func() {
						if p := recover(); p != nil {
							t.Fatalf("Provision panicked: %v", p)
						}
					}()
					err = provision(t, &h)
				}()
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Provision() error = %v, want one containing %q", err, tc.want)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("Provision() error %q shows the client secret", err)
				}
			})
		}
	})
}

func TestOPS08_ProviderSlownessAndTLS(t *testing.T) {
	t.Run("the production provider client is bounded", func(t *testing.T) {
		g := newGateway(t)
		hc := g.h.client.Config().HTTPClient
		if hc.Timeout <= 0 || hc.Timeout > opTimeout {
			t.Errorf("provider HTTP client timeout = %v, want bounded by the per-request budget %v", hc.Timeout, opTimeout)
		}
		if opTimeout > 30*time.Second {
			t.Errorf("per-request provider budget = %v, want at most 30s", opTimeout)
		}
		if hc.CheckRedirect == nil || hc.CheckRedirect(&http.Request{}, nil) != http.ErrUseLastResponse {
			t.Error("the provider HTTP client follows redirects")
		}
	})
	const short = 300 * time.Millisecond
	for _, tc := range []struct {
		name   string
		faults oidctest.Faults
		status int
	}{
		{"token endpoint hangs", oidctest.Faults{TokenDelay: time.Minute}, http.StatusBadGateway},
		{"userinfo endpoint hangs", oidctest.Faults{UserinfoDelay: time.Minute}, http.StatusBadGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t)
			g.sweepUseClient(sweepClient(short, nil))
			g.op.SetFaults(tc.faults)
			start := time.Now()
			resp, body := g.login("bindid-known", "/app")
			if d := time.Since(start); d > 10*short+2*time.Second {
				t.Errorf("the login failed after %v with a %v provider timeout", d, short)
			}
			g.assertRejectedLogin(resp, body, tc.status)
		})
	}
	t.Run("JWKS endpoint hangs", func(t *testing.T) {
		g := newGateway(t)
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		g.sweepUseClient(sweepClient(short, func(req *http.Request, resp *http.Response) {
			if req.URL.Path == oidctest.PathDiscovery {
				var doc map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&doc)
				doc["jwks_uri"] = srv.URL + "/jwks"
				b, _ := json.Marshal(doc)
				sweepSetBody(resp, b)
			}
		}))
		start := time.Now()
		resp, body := g.login("bindid-known", "/app")
		if d := time.Since(start); d > 10*short+2*time.Second {
			t.Errorf("the login failed after %v", d)
		}
		if resp.StatusCode < 500 {
			t.Errorf("JWKS unreachable: %d, want a 5xx (the provider is failing, the token is not known bad)", resp.StatusCode)
		}
		g.sweepRejected(resp, body, resp.StatusCode)
	})
	for _, tc := range []struct {
		name   string
		faults oidctest.Faults
	}{
		{"userinfo of 2 MB", oidctest.Faults{MutateUserinfo: func(_, c map[string]any) { c["padding"] = strings.Repeat("x", 2<<20) }}},
		{"token response of 2 MB", oidctest.Faults{MutateTokenResponse: func(r map[string]any) { r["padding"] = strings.Repeat("x", 2<<20) }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t)
			g.op.SetFaults(tc.faults)
			resp, body := g.login("bindid-known", "/app")
			if resp.StatusCode < 400 {
				t.Fatalf("oversized answer accepted: %d", resp.StatusCode)
			}
			g.assertRejectedLogin(resp, body, resp.StatusCode)
		})
	}
	t.Run("token endpoint redirects to another host", func(t *testing.T) {
		attacker, hits := sweepAttackerHost(t, nil)
		g := newGateway(t)
		g.sweepUseClient(sweepClient(5*time.Second, func(req *http.Request, resp *http.Response) {
			if req.URL.Path == oidctest.PathToken {
				sweepSetBody(resp, nil)
				resp.StatusCode, resp.Status = http.StatusTemporaryRedirect, "307 Temporary Redirect"
				resp.Header.Set("Location", attacker.URL+"/token")
			}
		}))
		resp, body := g.login("bindid-known", "/app")
		if resp.StatusCode < 400 {
			t.Fatalf("redirected token endpoint: %d", resp.StatusCode)
		}
		g.sweepRejected(resp, body, resp.StatusCode)
		if hits.Load() != 0 {
			t.Error("the code was sent to the host the token endpoint redirected to")
		}
	})
	t.Run("https issuer with an untrusted certificate", func(t *testing.T) {
		var served atomic.Int64
		srv := httptest.NewUnstartedServer(nil)
		base := "https://" + srv.Listener.Addr().String()
		srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": base, "authorization_endpoint": base + "/authorize",
				"token_endpoint": base + "/token", "jwks_uri": base + "/jwks"})
		})
		srv.StartTLS() // a self-signed certificate
		t.Cleanup(srv.Close)
		h, logs := sweepHandlerFor(t, base, nil)
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "http://app.test/app", nil)
		req.Header.Set("Accept", "text/html")
		up := &recorder{}
		if err := h.ServeHTTP(w, req, up); err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Location") != "" || up.Calls() != 0 {
			t.Errorf("provider with an untrusted certificate: %d Location %q; want 503 and no redirect", w.Code, w.Header().Get("Location"))
		}
		if served.Load() != 0 {
			t.Error("the discovery document was read over a connection with an untrusted certificate")
		}
		if !logs.has(func(e observedEntry) bool { return strings.Contains(e.Fields, "certificate") }) {
			t.Error("the log does not name the certificate problem")
		}
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

func TestOPS12_CallbackDoubleSubmit(t *testing.T) {
	for _, n := range []int{2, 8} {
		t.Run(strconv.Itoa(n)+" concurrent callbacks", func(t *testing.T) {
			g := newGateway(t)
			g.op.SetAutoLogin("bindid-known")
			cb := g.authorize(g.startLogin(g.browser, "/app"))
			cookies := g.browser.Jar.Cookies(cb)
			type result struct {
				status  int
				session bool
			}
			results := make(chan result, n)
			start := make(chan struct{})
			for range n {
				go func() {
					req, _ := http.NewRequest(http.MethodGet, cb.String(), nil)
					for _, c := range cookies {
						req.AddCookie(c)
					}
					<-start
					resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
					if err != nil {
						results <- result{}
						return
					}
					resp.Body.Close()
					got := false
					for _, c := range resp.Cookies() {
						if c.Name == g.h.sessions.cookieName && c.MaxAge > 0 {
							got = true
						}
					}
					results <- result{resp.StatusCode, got}
				}()
			}
			close(start)
			winners, losers := 0, 0
			for range n {
				r := <-results
				switch {
				case r.status == http.StatusFound && r.session:
					winners++
				case r.status == http.StatusBadRequest && !r.session:
					losers++
				default:
					t.Errorf("callback answered %d (session cookie %v), want 302 with a session or 400", r.status, r.session)
				}
			}
			if winners != 1 || losers != n-1 {
				t.Errorf("winners %d, losers %d; want exactly one session", winners, losers)
			}
			if s := g.store.Len(); s != 1 {
				t.Errorf("sessions = %d, want 1", s)
			}
			if c := g.op.Counts(); c.Token != 1 || c.CodeReuse != 0 {
				t.Errorf("token requests %d (code reuse %d), want exactly one code exchange", c.Token, c.CodeReuse)
			}
		})
	}
}

// --- C.9 Resource limits ----------------------------------------------------------------

func TestLIM03_PendingLoginFlood(t *testing.T) {
	g := newGateway(t)
	g.op.SetAutoLogin("bindid-known")
	pending := func() int {
		u, _ := url.Parse(g.srv.URL)
		n := 0
		for _, c := range g.browser.Jar.Cookies(u) {
			if strings.HasPrefix(c.Name, g.h.sessions.txPrefix) {
				n++
			}
		}
		return n
	}
	var last *url.URL
	for i := range 300 {
		last = g.startLogin(g.browser, "/app?i="+strconv.Itoa(i))
		if n := pending(); n > maxPendingLogins {
			t.Fatalf("after %d navigations the browser holds %d login transactions, want at most %d", i+1, n, maxPendingLogins)
		}
	}
	if n := pending(); n != maxPendingLogins {
		t.Errorf("pending transactions = %d, want %d", n, maxPendingLogins)
	}
	// Many browsers: the transactions live in the browsers' sealed cookies, so anonymous
	// traffic puts nothing in the store.
	for range 500 {
		g.startLogin(g.newBrowser(), "/app")
	}
	if n := g.store.Len(); n != 0 {
		t.Errorf("sessions after the flood = %d, want 0", n)
	}
	// A real user can still log in: the newest transaction completes.
	resp, _ := g.get(g.noRedirects(), g.authorize(last).String())
	if resp.StatusCode != http.StatusFound || g.store.Len() != 1 {
		t.Errorf("login after the flood: %d, sessions %d; want 302 and 1", resp.StatusCode, g.store.Len())
	}
	if resp, body := g.navigate(g.browser, "/app"); resp.StatusCode != http.StatusOK || body != "upstream: /app" {
		t.Errorf("after the flood and a login: %d %q", resp.StatusCode, web.Clip(body, 100))
	}
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

// --- C.7 CIBA -----------------------------------------------------------------------

func TestCIBA05_PendingUntilTheDeadline(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	// The store runs on the same clock as the gateway, so the pending login's lifetime is
	// the ack's expires_in in test time.
	store := session.NewMemoryStore(session.MemoryOptions{MaxSessions: 1000, Now: clk.Now})
	t.Cleanup(func() { _ = store.Close() })
	g.h.store, g.store = store, store
	// The provider announces 30 s but would answer authorization_pending for its own 2 min.
	g.op.SetFaults(oidctest.Faults{CIBAAckExpiresIn: 30})
	id := g.cibaStart(http.DefaultClient, "bindid-known")
	poll := func() (int, map[string]any) {
		st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": id})
		return st, out
	}
	// Polled at every interval until the deadline: pending each time, one provider poll each.
	for at := 5 * time.Second; at < 30*time.Second; at += 5 * time.Second {
		clk.Advance(5 * time.Second)
		if st, out := poll(); st != http.StatusOK || out["status"] != "pending" {
			t.Fatalf("poll at %v: %d %v, want pending", at, st, out)
		}
	}
	polls := g.op.Counts().CIBAPoll
	if polls != 5 {
		t.Errorf("provider polls before the deadline = %d, want 5 (one per 5 s interval)", polls)
	}
	// At the deadline the gateway stops by itself: the client gets a final answer and the
	// provider is not asked again, however often the client polls.
	clk.Advance(6 * time.Second) // past the 30 s deadline
	for range 3 {
		st, out := poll()
		if st == http.StatusOK || (st != http.StatusGone && st != http.StatusNotFound) {
			t.Fatalf("poll after expires_in: %d %v, want 410 or 404", st, out)
		}
		clk.Advance(5 * time.Second)
	}
	if n := g.op.Counts().CIBAPoll; n != polls {
		t.Errorf("provider polls after the deadline = %d, want none", n-polls)
	}
	if g.store.Len() != 0 {
		t.Error("a session was created")
	}
	// Nothing polls in the background for an abandoned login.
	g.cibaStart(http.DefaultClient, "bindid-new")
	before := g.op.Counts().CIBAPoll
	clk.Advance(time.Minute)
	time.Sleep(50 * time.Millisecond)
	if n := g.op.Counts().CIBAPoll; n != before {
		t.Errorf("the gateway polled the provider %d times for a login nobody asks about", n-before)
	}
}

// --- Through a real Caddy (caddytest: one server per test binary, not in parallel) --------

// sweepRaw sends one request exactly as written to Caddy's port 9080 and returns the status
// and body.
func sweepRaw(t *testing.T, method, target, host string, headers map[string]string) (int, string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, host)
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	if method == http.MethodPost {
		b.WriteString("Content-Length: 0\r\n")
	}
	b.WriteString("\r\n")
	conn, err := sweepDial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func sweepDial() (net.Conn, error) { return net.DialTimeout("tcp", "127.0.0.1:9080", 5*time.Second) }

// sweepFreeAddr is a loopback host:port nothing listens on (yet).
func sweepFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func sweepCaddyGlobal(extra string) string {
	return `{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	` + extra + `
}
`
}

func TestOPS05_ProviderDownAtLoadAndReloadThroughCaddy(t *testing.T) {
	t.Setenv("TG_IT_CLIENT_SECRET", oidctest.DefaultClient().Secret)
	t.Setenv("TG_IT_SECRET", testSecret)
	t.Setenv("TG_SWEEP_EMPTY", "")
	addr := sweepFreeAddr(t)
	up := echoUpstream(t)
	cfg := func(extra string) string {
		return sweepCaddyGlobal("") + `http://localhost:9080 {
	trustgate {
		issuer http://` + addr + `
		client_id trustgate
		client_secret {env.TG_IT_CLIENT_SECRET}
		secret {env.TG_IT_SECRET}
		insecure_cookie
	}
	` + extra + `
	reverse_proxy ` + strings.TrimPrefix(up.URL, "http://") + `
}`
	}
	tester := caddytest.NewTester(t)
	tester.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	// The provider is down: the configuration loads (discovery is lazy), and protected
	// routes answer 503 without reaching the upstream, before and after a reload.
	tester.InitServer(cfg(""), "caddyfile")
	check := func(when string) {
		for _, accept := range []string{"text/html", "application/json"} {
			status, body := sweepRaw(t, http.MethodGet, "/private", "localhost:9080", map[string]string{"Accept": accept})
			if strings.Contains(body, `"headers"`) {
				t.Errorf("%s (%s): the upstream answered with the provider down", when, accept)
			}
			if accept == "text/html" && status != http.StatusServiceUnavailable {
				t.Errorf("%s: navigation = %d, want 503", when, status)
			}
			if accept == "application/json" && status != http.StatusUnauthorized && status != http.StatusServiceUnavailable {
				t.Errorf("%s: API request = %d, want 401 or 503", when, status)
			}
		}
	}
	check("provider down at load")
	tester.InitServer(cfg("header X-Reloaded yes"), "caddyfile")
	check("provider down after reload")

	// The provider comes up: the gateway recovers by itself after its backoff.
	op, err := oidctest.New(oidctest.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	op.SetAutoLogin("bindid-known")
	deadline := time.Now().Add(70 * time.Second)
	for {
		status, body := sweepRaw(t, http.MethodGet, "/private", "localhost:9080", map[string]string{"Accept": "text/html"})
		if status == http.StatusFound {
			break
		}
		if strings.Contains(body, `"headers"`) || time.Now().After(deadline) {
			t.Fatalf("after the provider came back: %d %q", status, web.Clip(body, 200))
		}
		time.Sleep(250 * time.Millisecond)
	}

	// Bad configuration is refused when loaded, with a clear message.
	for _, tc := range []struct{ name, block, want string }{
		{"empty client secret", "issuer https://idp.example.com\n\t\tclient_id x\n\t\tclient_secret {env.TG_SWEEP_EMPTY}", "client_secret is empty"},
		{"bad redis address", "issuer https://idp.example.com\n\t\tclient_id x\n\t\tsession_store redis {\n\t\t\taddrs redis.internal\n\t\t}", "not host:port"},
		{"empty client_id", "issuer https://idp.example.com\n\t\tclient_id \"\"", "client_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caddytest.AssertLoadError(t, sweepCaddyGlobal("")+"http://localhost:9080 {\n\ttrustgate {\n\t\t"+tc.block+"\n\t}\n}", "caddyfile", tc.want)
		})
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

// --- What SECURITY-COVERAGE.md declares not applicable ----------------------------------

// TestFrontChannelLogoutIsNotOffered backs the N/A of LO-14: the gateway serves no
// front-channel logout URI, so an unauthenticated GET with iss and sid from anywhere ends
// nothing.
func TestFrontChannelLogoutIsNotOffered(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	sid := g.sid()
	q := url.Values{"iss": {g.op.Issuer()}, "sid": {sid}}.Encode()
	for _, p := range []string{"/.trustgate/frontchannel-logout", "/.trustgate/frontchannel_logout", "/.trustgate/logout/frontchannel", "/.trustgate/fc-logout"} {
		req, _ := http.NewRequest(http.MethodGet, g.srv.URL+p+"?"+q, nil)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, _ := do(t, http.DefaultClient, req)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404 (no front-channel logout endpoint)", p, resp.StatusCode)
		}
	}
	// GET on the logout endpoint itself only shows a confirmation form.
	resp, _ := do(t, http.DefaultClient, mustRequest(t, http.MethodGet, g.srv.URL+"/.trustgate/logout?"+q))
	if resp.StatusCode != http.StatusOK || g.store.Len() != 1 {
		t.Errorf("GET /.trustgate/logout?iss&sid: %d, sessions %d; want the form and the session kept", resp.StatusCode, g.store.Len())
	}
	if resp, _ := g.api("/app"); resp.StatusCode != http.StatusOK {
		t.Errorf("the session no longer works: %d", resp.StatusCode)
	}
}

// TestCIBAPingModeIsNotOffered backs the N/A of CIBA-08: the gateway uses the CIBA poll
// mode only. It sends no client_notification_token, serves no ping callback, and refuses a
// provider that offers ping (or push) but not poll before asking it anything.
func TestCIBAPingModeIsNotOffered(t *testing.T) {
	g := newGateway(t, withCIBA(nil))
	g.cibaStart(http.DefaultClient, "bindid-known")
	if q := g.op.LastCIBARequest(); q.Has("client_notification_token") {
		t.Error("the backchannel request carries a client_notification_token (ping mode)")
	}
	for _, p := range []string{"/.trustgate/ciba/ping", "/.trustgate/ciba/notify", "/.trustgate/ciba/callback", "/.trustgate/ciba-notification"} {
		req, _ := http.NewRequest(http.MethodPost, g.srv.URL+p, strings.NewReader(`{"auth_req_id":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer anything")
		if resp, _ := do(t, http.DefaultClient, req); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404 (no ping callback)", p, resp.StatusCode)
		}
	}
	bc, hits := sweepAttackerHost(t, nil)
	for _, modes := range [][]string{{"ping"}, {"push"}, {"ping", "push"}} {
		issuer := sweepStubIssuer(t, func(doc map[string]any) {
			doc["backchannel_authentication_endpoint"] = bc.URL + "/bc-authorize"
			doc["backchannel_token_delivery_modes_supported"] = modes
			doc["grant_types_supported"] = []string{"authorization_code", "urn:openid:params:grant-type:ciba"}
		})
		h, _ := sweepHandlerFor(t, issuer, func(h *Handler) { h.CIBA = &CIBAConfig{} })
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "http://app.test/.trustgate/ciba/start", strings.NewReader(`{"login_hint":"`+strings.Join(modes, "-")+`"}`))
		req.Header.Set("Content-Type", "application/json")
		if err := h.ServeHTTP(w, req, &recorder{}); err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusNotImplemented {
			t.Errorf("provider with modes %v: ciba/start = %d %q, want 501", modes, w.Code, web.Clip(w.Body.String(), 120))
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the backchannel endpoint of a ping/push-only provider was called %d times", n)
	}
}
