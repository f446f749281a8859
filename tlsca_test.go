package trustgate

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/certmagic"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// writeFile writes data to a new file in a test directory and returns its path.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// withTLSProvider serves the in-process OP over https (a test CA); caFile, when not "",
// becomes tls_trusted_ca_certs.
func withTLSProvider(caFile string) gatewayOption {
	return func(h *Handler, o *oidctest.Options) {
		o.TLS = true
		h.TLSTrustedCACerts = caFile
	}
}

// tlsBrowser gives g a browser that trusts the test CA, so it can follow the redirects to
// the https OP.
func tlsBrowser(t *testing.T, g *gateway) {
	t.Helper()
	c, err := oidctest.TLSClient()
	if err != nil {
		t.Fatal(err)
	}
	c.Jar, _ = cookiejar.New(nil)
	g.browser = c
}

func testCAFile(t *testing.T) string {
	t.Helper()
	pemCA, err := oidctest.TLSCACertPEM()
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "ca.pem", pemCA)
}

// With tls_trusted_ca_certs naming the CA of an https provider that the system does not
// trust, a whole login (discovery, JWKS, token, userinfo) works.
func TestTrustedCACertsLogin(t *testing.T) {
	g := newGateway(t, withTLSProvider(testCAFile(t)))
	if !strings.HasPrefix(g.op.Issuer(), "https://127.0.0.1:") {
		t.Fatalf("issuer %s, want https", g.op.Issuer())
	}
	tlsBrowser(t, g)
	g.mustLogin("bindid-known")
}

// Without tls_trusted_ca_certs, the same provider is not trusted: the login start answers
// 503 and the log names the discovery failure and the unknown authority.
func TestTrustedCACertsMissingRefusesProvider(t *testing.T) {
	g := newGateway(t, withTLSProvider(""))
	tlsBrowser(t, g)
	logs := observeLogs(g.h)
	resp, _ := g.navigate(g.browser, "/app")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("login start = %d, want 503", resp.StatusCode)
	}
	if !logs.has(func(e observedEntry) bool {
		return strings.Contains(e.Message, "provider discovery failed") && strings.Contains(e.Fields, "x509: certificate signed by unknown authority")
	}) {
		t.Errorf("no log line names the discovery failure and the unknown authority: %+v", logs.entries())
	}
	if g.upstream.calls != 0 {
		t.Errorf("the upstream was called %d times", g.upstream.calls)
	}
}

// A tls_trusted_ca_certs file without a PEM certificate is a Provision error naming the key.
func TestTrustedCACertsBadFile(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":       nil,
		"not PEM":     []byte("not a certificate\n"),
		"private key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
	} {
		h := &Handler{Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret}, TLSTrustedCACerts: writeFile(t, "ca.pem", data)}
		err := provision(t, h)
		if err == nil || !strings.Contains(err.Error(), "tls_trusted_ca_certs") || !strings.Contains(err.Error(), "no PEM certificate") {
			t.Errorf("%s: Provision() error = %v, want one naming tls_trusted_ca_certs", name, err)
		}
	}
}

// Handlers with different tls_trusted_ca_certs do not share a provider client; with the
// same CA file contents they do.
func TestTrustedCACertsPoolKey(t *testing.T) {
	caPEM, err := oidctest.TLSCACertPEM()
	if err != nil {
		t.Fatal(err)
	}
	other := httptest.NewTLSServer(http.NotFoundHandler())
	other.Close()
	otherPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Certificate().Raw})
	mk := func(ca string) *Handler {
		h := &Handler{Issuer: "https://idp.example.com", ClientID: "pool-key-test", Secrets: []string{testSecret}, TLSTrustedCACerts: ca}
		if err := provision(t, h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	a := mk(writeFile(t, "a.pem", caPEM))
	same := mk(writeFile(t, "copy.pem", caPEM))
	b := mk(writeFile(t, "b.pem", otherPEM))
	none := mk("")
	if a.client != same.client {
		t.Error("two handlers with the same CA file contents do not share the provider client")
	}
	if a.client == b.client || a.client == none.client || b.client == none.client {
		t.Error("handlers with different tls_trusted_ca_certs share a provider client")
	}
}

// login_hint_encryption_key as an https JWKS URL is fetched with tls_trusted_ca_certs.
func TestTrustedCACertsHintKeyJWKS(t *testing.T) {
	rk := testRSAKey()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &rk.PublicKey, KeyID: "enc", Use: "enc", Algorithm: "RSA-OAEP-256"}}})
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	caFile := writeFile(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	mk := func(ca string) *Handler {
		h := &Handler{Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "s", Secrets: []string{testSecret},
			Provider: "iddataweb", IdentityBinding: &IdentityBindingConfig{}, LoginHintEncryptionKey: srv.URL + "/jwks",
			TLSTrustedCACerts: ca, storage: &certmagic.FileStorage{Path: t.TempDir()}}
		if err := provision(t, h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	if k, err := mk(caFile).linker.hintKey(t.Context()); err != nil || k.KeyID != "enc" {
		t.Errorf("with the CA: hintKey() = %v, %v, want the enc key", k, err)
	}
	_, err := mk("").linker.hintKey(t.Context())
	if err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("without the CA: hintKey() error = %v, want an unknown authority", err)
	}
}
