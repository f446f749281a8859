package trustgate

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"

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
