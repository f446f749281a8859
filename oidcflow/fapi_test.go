package oidcflow

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// profile fapi2 turns PAR on and refuses every setting the FAPI 2.0 Security Profile
// forbids, with a message naming it.
func TestFAPI2Profile(t *testing.T) {
	ec := ClientKey{Key: mustEC(t), Alg: "ES256", KID: "k1"}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rs256 := ClientKey{Key: rsaKey, Alg: "RS256", KID: "k2"}
	cert := testClientCert(t)
	dpop := &ClientKey{Key: mustEC(t), Alg: "ES256"}
	base := Config{Issuer: "https://bank.example", ClientID: "gw", Profile: ProfileFAPI2}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // "" : accepted
	}{
		{"private_key_jwt and dpop", func(c *Config) { c.AuthMethod, c.ClientKeys, c.DPoPKey = AuthPrivateKeyJWT, []ClientKey{ec}, dpop }, ""},
		{"mtls alone (certificate-bound tokens)", func(c *Config) { c.AuthMethod, c.ClientCertificate = AuthTLSClientAuth, cert }, ""},
		{"client secret", func(c *Config) { c.ClientSecret, c.DPoPKey = "s", dpop }, "requires client_auth private_key_jwt"},
		{"par off", func(c *Config) {
			c.AuthMethod, c.ClientKeys, c.DPoPKey, c.PAR = AuthPrivateKeyJWT, []ClientKey{ec}, dpop, PAROff
		}, "requires pushed authorization requests"},
		{"no sender constraint", func(c *Config) { c.AuthMethod, c.ClientKeys = AuthPrivateKeyJWT, []ClientKey{ec} }, "sender-constrained"},
		{"RS256 key", func(c *Config) { c.AuthMethod, c.ClientKeys, c.DPoPKey = AuthPrivateKeyJWT, []ClientKey{rs256}, dpop }, "PS256, ES256 or EdDSA only"},
	} {
		cfg := base
		tc.edit(&cfg)
		got, err := withDefaults(cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want == "" && got.PAR != PARRequired:
			t.Errorf("%s: PAR %q, want required", tc.name, got.PAR)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
	if err := Check(Config{Issuer: "https://bank.example", ClientID: "gw", Profile: "fapi1"}); err == nil {
		t.Error("profile fapi1 accepted")
	}
}

// Under fapi2 an authorization response without iss is refused even when the provider
// does not advertise RFC 9207, and ID tokens signed with RS256 are not accepted.
func TestFAPI2ResponseIssuerAndAlgs(t *testing.T) {
	bound := true
	issuer := discoveryServer(t, func(doc map[string]any, base string) {
		doc["id_token_signing_alg_values_supported"] = []string{"RS256", "PS256"}
		doc["userinfo_signing_alg_values_supported"] = []string{"RS256"}
		doc["pushed_authorization_request_endpoint"] = base + "/par"
		doc["tls_client_certificate_bound_access_tokens"] = bound
	})
	c, err := New(Config{Issuer: issuer, ClientID: "gw", Profile: ProfileFAPI2, AuthMethod: AuthTLSClientAuth, ClientCertificate: testClientCert(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.CheckResponseIssuer(context.Background(), "", false); ReasonCode(err) != CodeResponseIssuer {
		t.Errorf("no iss under fapi2: %v, want %s", err, CodeResponseIssuer)
	}
	if err := c.CheckResponseIssuer(context.Background(), issuer, true); err != nil {
		t.Errorf("the right iss: %v", err)
	}
	p, _ := c.cached()
	if strings.Join(p.idAlgs, ",") != "PS256" {
		t.Errorf("ID token algs %v, want PS256 only (RS256 is not FAPI 2)", p.idAlgs)
	}
	// The OP signs userinfo with RS256 only: a signed userinfo must then be refused, not
	// verified with go-oidc's RS256 default.
	if _, err := p.uiVerifier.Verify(context.Background(), rs256JWT(t)); err == nil || !strings.Contains(err.Error(), "RS256") {
		t.Errorf("an RS256 userinfo under fapi2: %v, want refused for its algorithm", err)
	}

	// Mutual TLS without DPoP counts as sender-constrained only where the OP binds tokens
	// to the certificate.
	bound = false
	c2, err := New(Config{Issuer: issuer, ClientID: "gw", Profile: ProfileFAPI2, AuthMethod: AuthTLSClientAuth, ClientCertificate: testClientCert(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Discover(context.Background()); ReasonCode(err) != CodeDiscovery || !strings.Contains(err.Error(), "tls_client_certificate_bound_access_tokens") {
		t.Errorf("fapi2, mTLS, an OP that does not bind: %v, want a discovery error naming the flag", err)
	}
}

// rs256JWT is a JWT signed RS256 by a throwaway key.
func rs256JWT(t *testing.T) string {
	t.Helper()
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	s, err := signCompact(jose.SigningKey{Algorithm: jose.RS256, Key: k}, nil, map[string]any{"sub": "u"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// With tls_client_auth the client calls the provider's mtls_endpoint_aliases (RFC 8705 §5)
// and presents its certificate; the other methods keep the plain endpoints.
func TestMTLSEndpointAliases(t *testing.T) {
	issuer := discoveryServer(t, func(doc map[string]any, base string) {
		doc["mtls_endpoint_aliases"] = map[string]any{
			"token_endpoint": base + "/mtls/token", "userinfo_endpoint": base + "/mtls/userinfo",
			"pushed_authorization_request_endpoint": base + "/mtls/par",
		}
		doc["pushed_authorization_request_endpoint"] = base + "/par"
	})
	for _, tc := range []struct {
		cfg   Config
		token string
	}{
		{Config{AuthMethod: AuthTLSClientAuth, ClientCertificate: testClientCert(t)}, issuer + "/mtls/token"},
		{Config{AuthMethod: AuthSelfSignedTLSClientAuth, ClientCertificate: testClientCert(t)}, issuer + "/mtls/token"},
		{Config{ClientSecret: "s"}, issuer + "/token"},
	} {
		tc.cfg.Issuer, tc.cfg.ClientID = issuer, "gw"
		c, err := New(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		md, err := c.Discover(context.Background())
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if md.TokenEndpoint != tc.token {
			t.Errorf("%s: token endpoint %s, want %s", tc.cfg.AuthMethod, md.TokenEndpoint, tc.token)
		}
		mtls := tc.token != issuer+"/token"
		if mtls != (md.UserinfoEndpoint == issuer+"/mtls/userinfo") || mtls != (md.PushedAuthorizationRequestEndpoint == issuer+"/mtls/par") {
			t.Errorf("%s: userinfo %s, PAR %s", tc.cfg.AuthMethod, md.UserinfoEndpoint, md.PushedAuthorizationRequestEndpoint)
		}
	}
	if err := Check(Config{Issuer: issuer, ClientID: "gw", AuthMethod: AuthTLSClientAuth}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("tls_client_auth without a certificate: %v", err)
	}
}

// NewHTTPClientFor presents the client certificate to a server that asks for one.
func TestHTTPClientPresentsCertificate(t *testing.T) {
	cert := testClientCert(t)
	var got []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, c := range r.TLS.PeerCertificates {
			got = append(got, c.Subject.CommonName)
		}
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	resp, err := NewHTTPClientFor(5*time.Second, 1<<20, roots, cert).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(got) != 1 || got[0] != "trustgate-test-client" {
		t.Errorf("server saw client certificates %v, want trustgate-test-client", got)
	}
}

// testClientCert is a self-signed EC client certificate.
func testClientCert(t *testing.T) *tls.Certificate {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "trustgate-test-client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: leaf}
}

// A DPoP key whose algorithm the OP does not accept is a discovery error that names both,
// not a login that fails at the token endpoint.
func TestDPoPAlgNotAcceptedByOP(t *testing.T) {
	issuer := discoveryServer(t, func(doc map[string]any, base string) {
		doc["dpop_signing_alg_values_supported"] = []string{"ES256"}
	})
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	c, err := New(Config{Issuer: issuer, ClientID: "gw", ClientSecret: "s", DPoPKey: &ClientKey{Key: rsaKey, Alg: "PS256"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Discover(context.Background()); ReasonCode(err) != CodeDiscovery || !strings.Contains(err.Error(), "dpop signs with PS256") {
		t.Errorf("Discover = %v, want a discovery error naming PS256 and the OP's list", err)
	}
}

// A CA certificate is not a client certificate.
func TestClientCertificateNotCA(t *testing.T) {
	cert := testClientCert(t)
	cert.Leaf.IsCA = true
	err := Check(Config{Issuer: "https://bank.example", ClientID: "gw", AuthMethod: AuthTLSClientAuth, ClientCertificate: cert})
	if err == nil || !strings.Contains(err.Error(), "is a CA certificate") {
		t.Errorf("Check with a CA certificate = %v, want refused", err)
	}
}
