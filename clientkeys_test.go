package trustgate

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// ecKeyPEM is a fresh EC P-256 private key in PKCS #8 PEM.
func ecKeyPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func TestClientAuthCaddyfile(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`trustgate https://idp.example.com {
		client_id gw
		client_auth private_key_jwt {
			key {file./etc/trustgate/new.pem}
			alg ES256
			kid k2
			key {file./etc/trustgate/old.pem}
			alg PS256
			kid k1
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []ClientKeyConfig{{Key: "{file./etc/trustgate/new.pem}", Alg: "ES256", KID: "k2"}, {Key: "{file./etc/trustgate/old.pem}", Alg: "PS256", KID: "k1"}}
	if h.TokenAuthMethod != "private_key_jwt" || len(h.ClientKeys) != 2 || h.ClientKeys[0] != want[0] || h.ClientKeys[1] != want[1] {
		t.Errorf("TokenAuthMethod %q, ClientKeys %+v; want private_key_jwt and %+v", h.TokenAuthMethod, h.ClientKeys, want)
	}
	for _, bad := range []struct{ in, want string }{
		{"trustgate {\n client_auth private_key_jwt {\n alg ES256\n }\n}", "alg must follow a key line"},
		{"trustgate {\n client_auth private_key_jwt {\n key x\n size 3\n }\n}", "unrecognized client_auth option 'size'"},
		{"trustgate {\n token_auth_method none\n client_auth private_key_jwt\n}", "keep one"},
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad.in)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want %q", bad.in, err, bad.want)
		}
	}
}

// TestClientJWKSEndpoint: with private_key_jwt the gateway publishes the public half of
// its keys, the signing one first, never a private part; without it the endpoint is 404.
func TestClientJWKSEndpoint(t *testing.T) {
	g := newGateway(t, func(h *Handler, _ *oidctest.Options) {
		h.TokenAuthMethod = "private_key_jwt"
		h.ClientKeys = []ClientKeyConfig{{Key: ecKeyPEM(t), Alg: "ES256", KID: "k2"}, {Key: ecKeyPEM(t), Alg: "ES256", KID: "k1"}}
	})
	resp, body := g.get(g.browser, g.srv.URL+"/.trustgate/client-jwks.json")
	var set jose.JSONWebKeySet
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &set) != nil || len(set.Keys) != 2 ||
		set.Keys[0].KeyID != "k2" || set.Keys[1].KeyID != "k1" || !set.Keys[0].IsPublic() || strings.Contains(body, `"d"`) {
		t.Errorf("client-jwks.json = %d %s, want the two public keys, k2 first", resp.StatusCode, body)
	}
	plain := newGateway(t)
	if resp, _ := plain.get(plain.browser, plain.srv.URL+"/.trustgate/client-jwks.json"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("without private_key_jwt: %d, want 404", resp.StatusCode)
	}
}

func TestClientKeyProvisionErrors(t *testing.T) {
	for _, tc := range []struct {
		keys []ClientKeyConfig
		want string
	}{
		{[]ClientKeyConfig{{Key: "not a pem", Alg: "ES256", KID: "k"}}, "client key #1 (k): no PEM private key"},
		{[]ClientKeyConfig{{Key: "{env.TG_TEST_NO_SUCH_KEY}", Alg: "ES256", KID: "k"}}, "client key #1 is empty after expanding placeholders"},
		{[]ClientKeyConfig{{Key: ecKeyPEM(t), Alg: "RS256", KID: "k"}}, "only P-256 with alg ES256"},
		{nil, "private_key_jwt needs at least one client key"},
	} {
		h := &Handler{Issuer: "https://idp.example.com", ClientID: "gw", Secrets: []string{testSecret}, TokenAuthMethod: "private_key_jwt", ClientKeys: tc.keys}
		err := provision(t, h)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: Provision() = %v, want %q", tc.keys, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "BEGIN") {
			t.Errorf("the error quotes the key: %v", err)
		}
	}
}

func TestFAPICaddyfile(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`trustgate https://bank.example {
		client_id gw
		client_auth tls_client_auth {
			cert {file./etc/trustgate/client-cert.pem}
			key {file./etc/trustgate/client-key.pem}
		}
		dpop {
			key {file./etc/trustgate/dpop.pem}
			alg PS256
		}
		profile fapi2
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if h.TokenAuthMethod != "tls_client_auth" || h.ClientCertificate == nil ||
		*h.ClientCertificate != (ClientCertConfig{Cert: "{file./etc/trustgate/client-cert.pem}", Key: "{file./etc/trustgate/client-key.pem}"}) ||
		h.DPoP == nil || *h.DPoP != (DPoPConfig{Key: "{file./etc/trustgate/dpop.pem}", Alg: "PS256"}) || h.Profile != "fapi2" {
		t.Errorf("parsed %q %+v %+v %q", h.TokenAuthMethod, h.ClientCertificate, h.DPoP, h.Profile)
	}
	var bare Handler
	if err := bare.UnmarshalCaddyfile(caddyfile.NewTestDispenser("trustgate {\n dpop\n}")); err != nil || bare.DPoP == nil || *bare.DPoP != (DPoPConfig{}) {
		t.Errorf("bare dpop: %v %+v, want on with a generated key", err, bare.DPoP)
	}
	for _, bad := range []struct{ in, want string }{
		{"trustgate {\n client_auth tls_client_auth {\n cert x\n }\n}", "needs a block with cert and key"},
		{"trustgate {\n client_auth tls_client_auth {\n cert x\n key y\n alg ES256\n }\n}", "unrecognized client_auth tls_client_auth option 'alg'"},
		{"trustgate {\n dpop on\n}", "wrong argument count"},
		{"trustgate {\n dpop {\n kid x\n }\n}", "unrecognized dpop option 'kid'"},
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad.in)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want %q", bad.in, err, bad.want)
		}
	}
}

// A key or certificate that cannot be used, or a setting that contradicts profile fapi2,
// fails at provisioning (so `caddy validate` reports it) with the setting's name, never
// quoting the key.
func TestFAPIProvisionErrors(t *testing.T) {
	cert, key := clientCertPEM(t)
	pkjwt := func(h *Handler) {
		h.TokenAuthMethod, h.ClientKeys = "private_key_jwt", []ClientKeyConfig{{Key: ecKeyPEM(t), Alg: "ES256", KID: "k"}}
	}
	for _, tc := range []struct {
		name string
		edit func(*Handler)
		want string
	}{
		{"dpop key not PEM", func(h *Handler) { h.DPoP = &DPoPConfig{Key: "not a pem"} }, "dpop key: no PEM private key"},
		{"dpop key missing", func(h *Handler) { h.DPoP = &DPoPConfig{Key: "{env.TG_TEST_NO_SUCH_KEY}"} }, "dpop key is empty after expanding placeholders"},
		{"dpop alg for a generated key", func(h *Handler) { h.DPoP = &DPoPConfig{Alg: "PS256"} }, "a generated key is EC P-256"},
		{"dpop RS256", func(h *Handler) { h.DPoP = &DPoPConfig{Key: ecKeyPEM(t), Alg: "RS256"} }, "dpop: an EC key must be P-256, with alg ES256"},
		{"certificate and key differ", func(h *Handler) {
			h.TokenAuthMethod, h.ClientCertificate = "tls_client_auth", &ClientCertConfig{Cert: cert, Key: ecKeyPEM(t)}
		}, "client certificate (tls_client_auth): tls: private key does not match public key"},
		{"tls_client_auth without certificate", func(h *Handler) { h.TokenAuthMethod = "tls_client_auth" }, "tls_client_auth needs a client certificate"},
		{"fapi2 with a client secret", func(h *Handler) { h.Profile, h.ClientSecret, h.DPoP = "fapi2", "s", &DPoPConfig{} }, "profile fapi2 requires client_auth private_key_jwt"},
		{"fapi2 with par off", func(h *Handler) { pkjwt(h); h.Profile, h.PAR, h.DPoP = "fapi2", "off", &DPoPConfig{} }, "remove `par off`"},
		{"fapi2 without dpop or mtls", func(h *Handler) { pkjwt(h); h.Profile = "fapi2" }, "turn on dpop, or authenticate with tls_client_auth"},
	} {
		h := &Handler{Issuer: "https://idp.example.com", ClientID: "gw", Secrets: []string{testSecret}}
		tc.edit(h)
		err := provision(t, h)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Provision() = %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "BEGIN") {
			t.Errorf("%s: the error quotes a key: %v", tc.name, err)
		}
	}
	h := &Handler{Issuer: "https://idp.example.com", ClientID: "gw", Secrets: []string{testSecret}, Profile: "fapi2",
		TokenAuthMethod: "tls_client_auth", ClientCertificate: &ClientCertConfig{Cert: cert, Key: key}}
	if err := provision(t, h); err != nil {
		t.Errorf("fapi2 with tls_client_auth: %v", err)
	}
}

// clientCertPEM is a self-signed EC client certificate and its key, in PEM.
func clientCertPEM(t *testing.T) (cert, key string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "gw"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
}
