package oidcflow

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// dpopServer checks DPoP proofs as RFC 9449 §4.3 tells a server to, independently of the
// gateway's code: one JWS, typ dpop+jwt, an asymmetric alg, the public key in jwk and the
// signature by it, jti, htm and htu matching the request (without query), a recent iat,
// ath for a presented token, and the server's nonce once it has asked for one.
type dpopServer struct {
	t     *testing.T
	nonce string // "" : no nonce required
	// stubborn answers use_dpop_nonce to every proof.
	stubborn bool

	mu     sync.Mutex
	proofs []map[string]any // the claims of every proof received, in order
	thumbs map[string]bool  // JWK thumbprints seen
	paths  []string         // every request path, with or without a proof
}

func (s *dpopServer) handler(base string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.Path)
		s.mu.Unlock()
		proof := r.Header.Get("DPoP")
		if r.URL.Path == "/introspect" {
			if proof != "" {
				s.t.Errorf("introspection got a DPoP proof")
			}
			writeJSON(w, http.StatusOK, map[string]any{"active": false})
			return
		}
		token := ""
		if r.URL.Path == "/userinfo" {
			var ok bool
			if token, ok = strings.CutPrefix(r.Header.Get("Authorization"), "DPoP "); !ok {
				s.t.Errorf("userinfo Authorization = %q, want DPoP <token>", r.Header.Get("Authorization"))
			}
		}
		claims, msg := s.check(proof, r.Method, base+r.URL.Path, token)
		if msg == "" && (s.stubborn || s.nonce != "" && claims["nonce"] != s.nonce) {
			msg = "use_dpop_nonce"
		}
		if msg == "use_dpop_nonce" {
			w.Header().Set("DPoP-Nonce", s.nonce)
			if r.URL.Path == "/userinfo" {
				w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "use_dpop_nonce"})
			return
		}
		if msg != "" {
			s.t.Errorf("%s %s: %s", r.Method, r.URL.Path, msg)
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_dpop_proof", "error_description": msg})
			return
		}
		if r.Method == http.MethodPost {
			_ = r.ParseForm()
			if r.PostForm.Get("grant_type") != "authorization_code" {
				s.t.Errorf("%s: form %v lost on the way (a retry must resend the body)", r.URL.Path, r.PostForm)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"sub": "u1"})
	})
}

func (s *dpopServer) check(proof, method, htu, token string) (map[string]any, string) {
	if proof == "" {
		return nil, "no DPoP header"
	}
	jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.ES256, jose.PS256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, "not one compact JWS with ES256 or PS256"
	}
	h := jws.Signatures[0].Header
	if h.ExtraHeaders["typ"] != "dpop+jwt" || h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() {
		return nil, "header needs typ dpop+jwt and a public jwk"
	}
	payload, err := jws.Verify(h.JSONWebKey)
	if err != nil {
		return nil, "signature does not verify with the jwk"
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, "claims are not JSON"
	}
	if j, _ := c["jti"].(string); len(j) < 16 {
		return nil, "jti missing or short"
	}
	if c["htm"] != method || c["htu"] != htu {
		return nil, "htm/htu do not match " + method + " " + htu
	}
	if iat, _ := c["iat"].(float64); time.Since(time.Unix(int64(iat), 0)).Abs() > time.Minute {
		return nil, "iat not recent"
	}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		if c["ath"] != base64.RawURLEncoding.EncodeToString(sum[:]) {
			return nil, "ath does not hash the presented token"
		}
	} else if _, ok := c["ath"]; ok {
		return nil, "ath without a presented token"
	}
	tp, _ := h.JSONWebKey.Thumbprint(crypto.SHA256)
	s.mu.Lock()
	s.proofs = append(s.proofs, c)
	s.thumbs[string(tp)] = true
	s.mu.Unlock()
	return c, ""
}

// dpopClient is a Client with a DPoP key whose provider (already discovered) is srv.
func dpopClient(t *testing.T, s *dpopServer) (*Client, string) {
	t.Helper()
	s.thumbs = map[string]bool{}
	base := startServer(t, s.handler)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c, err := New(Config{Issuer: base, ClientID: "gw", ClientSecret: "s", DPoPKey: &ClientKey{Key: key, Alg: "ES256"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.prov = &provider{meta: Metadata{TokenEndpoint: base + "/token", PushedAuthorizationRequestEndpoint: base + "/par", UserinfoEndpoint: base + "/userinfo", IntrospectionEndpoint: base + "/introspect"}}
	return c, base
}

func dpopPost(t *testing.T, c *Client, u string) int {
	t.Helper()
	status, _, _, err := c.postForm(context.Background(), u, url.Values{"grant_type": {"authorization_code"}})
	if err != nil {
		t.Fatal(err)
	}
	return status
}

// Token, PAR and userinfo calls carry proofs of one key; the userinfo one presents the
// token with ath; introspection carries none; the server's nonce is picked up with one
// retry and then sent with every later proof, and every proof has its own jti.
func TestDPoPProofsAndNonce(t *testing.T) {
	s := &dpopServer{t: t, nonce: "n-1"}
	c, base := dpopClient(t, s)
	if st := dpopPost(t, c, base+"/token?x=1"); st != http.StatusOK {
		t.Fatalf("token request: %d, want 200 after the nonce retry", st)
	}
	if st := dpopPost(t, c, base+"/par"); st != http.StatusOK {
		t.Fatalf("PAR request: %d", st)
	}
	if _, _, err := c.userinfo(context.Background(), c.prov, c.authorization("at-1", "DPoP"), "u1"); err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if st := dpopPost(t, c, base+"/introspect"); st != http.StatusOK {
		t.Fatalf("introspection: %d", st)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// token without nonce, token with nonce, then PAR and userinfo with it at once.
	if want := []string{"/token", "/token", "/par", "/userinfo", "/introspect"}; strings.Join(s.paths, " ") != strings.Join(want, " ") {
		t.Errorf("requests %v, want %v (one retry, for the first nonce only)", s.paths, want)
	}
	if len(s.proofs) != 4 || len(s.thumbs) != 1 {
		t.Fatalf("%d proofs of %d keys, want 4 of 1", len(s.proofs), len(s.thumbs))
	}
	jtis := map[any]bool{}
	for i, p := range s.proofs {
		jtis[p["jti"]] = true
		if (i == 0) != (p["nonce"] == nil) {
			t.Errorf("proof %d nonce %v: want none on the first, n-1 after", i, p["nonce"])
		}
	}
	if len(jtis) != 4 {
		t.Errorf("jtis %v: want a fresh one per proof", jtis)
	}
	if c.authorization("at", "Bearer") != "Bearer at" {
		t.Error("a Bearer token is not presented as Bearer")
	}
}

// A server that keeps asking for a nonce gets exactly one retry, and the caller sees its
// answer (400 use_dpop_nonce at the token endpoint, dpop_rejected at userinfo).
func TestDPoPNonceRetriedOnce(t *testing.T) {
	s := &dpopServer{t: t, nonce: "n-2", stubborn: true}
	c, base := dpopClient(t, s)
	if st := dpopPost(t, c, base+"/token"); st != http.StatusBadRequest {
		t.Errorf("token request: %d, want the provider's 400", st)
	}
	_, _, err := c.userinfo(context.Background(), c.prov, c.authorization("at-1", "DPoP"), "u1")
	if ReasonCode(err) != CodeDPoPRejected {
		t.Errorf("userinfo error %v, want %s", err, CodeDPoPRejected)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.paths) != 4 {
		t.Errorf("requests %v, want 2 per call", s.paths)
	}
}

// The token_type a token response may carry, with DPoP off, on, and on under fapi2.
func TestCheckTokenType(t *testing.T) {
	key := &ClientKey{Key: mustEC(t), Alg: "ES256"}
	for _, tc := range []struct {
		dpop    bool
		profile string
		tt      string
		ok      bool
	}{
		{false, "", "Bearer", true},
		{false, "", "", true},
		{false, "", "DPoP", false},
		{false, "", "mac", false},
		{true, "", "DPoP", true},
		{true, "", "dpop", true},
		{true, "", "Bearer", true},
		{true, ProfileFAPI2, "Bearer", false},
		{true, ProfileFAPI2, "DPoP", true},
		{true, ProfileFAPI2 + "+mtls", "Bearer", true}, // certificate-bound, as RFC 8705 issues it
	} {
		c := &Client{cfg: Config{Profile: tc.profile}}
		if p, ok := strings.CutSuffix(tc.profile, "+mtls"); ok {
			c.cfg.Profile, c.cfg.AuthMethod = p, AuthTLSClientAuth
		}
		if tc.dpop {
			c.cfg.DPoPKey = key
		}
		err := c.checkTokenType(tc.tt, "")
		if (err == nil) != tc.ok || (err != nil && ReasonCode(err) != CodeTokenResponse) {
			t.Errorf("dpop %v profile %q token_type %q: %v, want ok=%v", tc.dpop, tc.profile, tc.tt, err, tc.ok)
		}
	}
}

func mustEC(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A DPoP proof the provider answers invalid_dpop_proof to is dpop_rejected: final at a
// code exchange, temporary at a refresh (the gateway's fault, so sessions are kept).
func TestDPoPRejectedClassified(t *testing.T) {
	re := func() error {
		return &oauth2.RetrieveError{Response: &http.Response{StatusCode: http.StatusBadRequest}, ErrorCode: "invalid_dpop_proof", ErrorDescription: "DPoP proof htu mismatch"}
	}
	if e := tokenEndpointError(re()); ReasonCode(e) != CodeDPoPRejected || IsTemporary(e) {
		t.Errorf("exchange: %v, want %s, not temporary", e, CodeDPoPRejected)
	}
	if e := refreshEndpointError(re()); ReasonCode(e) != CodeDPoPRejected || !IsTemporary(e) {
		t.Errorf("refresh: %v, want %s, temporary (the session is kept)", e, CodeDPoPRejected)
	}
}

// Proofs go to the token endpoint however the provider writes its URL (a query, a default
// port, upper case), and nowhere else on that host.
func TestSameEndpoint(t *testing.T) {
	for _, tc := range []struct {
		req, endpoint string
		same          bool
	}{
		{"https://idp.example/token?p=b2c_1_signin", "https://idp.example/token?p=b2c_1_signin", true},
		{"https://idp.example/token", "https://IDP.example:443/token", true},
		{"http://127.0.0.1:80/token", "http://127.0.0.1/token", true},
		{"https://idp.example/token", "https://idp.example/token/", false},
		{"https://idp.example/introspect", "https://idp.example/token", false},
		{"https://idp.example:8443/token", "https://idp.example/token", false},
		{"http://idp.example/token", "https://idp.example/token", false},
		{"https://idp.example/token", "", false},
	} {
		u, _ := url.Parse(tc.req)
		if got := sameEndpoint(u, tc.endpoint); got != tc.same {
			t.Errorf("sameEndpoint(%s, %q) = %v, want %v", tc.req, tc.endpoint, got, tc.same)
		}
	}
}

// A 400 use_dpop_nonce without a DPoP-Nonce header gives nothing to retry with: one
// request, and the caller sees the answer.
func TestDPoPNoRetryWithoutNonce(t *testing.T) {
	s := &dpopServer{t: t, stubborn: true} // nonce "": the header is sent empty, i.e. absent
	c, base := dpopClient(t, s)
	if st := dpopPost(t, c, base+"/token"); st != http.StatusBadRequest {
		t.Errorf("token request: %d, want the provider's 400", st)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.paths) != 1 {
		t.Errorf("requests %v, want 1 (no nonce, no retry)", s.paths)
	}
}
