package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// private_key_jwt (RFC 7523): the site authenticates to the provider with its own key; the
// provider (oidc-provider, client registered with token_endpoint_auth_method
// private_key_jwt and the public key) refuses the code exchange without a valid assertion.

const (
	jarClientID   = "trustgate-e2e-jar"
	pkjwtClientID = "trustgate-e2e-pkjwt"
	pkjwtKID      = "e2e-client-key-1"
)

// makeClientKey makes the site's EC P-256 key: the private half in a PEM file for the
// Caddyfile, the public half as the client's JWKS at the provider.
func makeClientKey() error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	e2e.pkjwtKeyFile = filepath.Join(e2e.artifacts, "pkjwt-client-key.pem")
	if err := os.WriteFile(e2e.pkjwtKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	e2e.pkjwtJWKS, err = json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: pkjwtKID, Algorithm: "ES256", Use: "sig"}}})
	return err
}

// pkjwtSite is a site whose gateway authenticates with private_key_jwt (its client_secret
// line, from the shared site helper, is not sent).
func pkjwtSite(site func(url, clientID, cookie, headers, extra, routes string) string) string {
	return site(e2e.pkjwtURL, pkjwtClientID, "tg_pkjwt", "identity",
		"client_auth private_key_jwt {\n\t\t\tkey {file."+e2e.pkjwtKeyFile+"}\n\t\t\talg ES256\n\t\t\tkid "+pkjwtKID+"\n\t\t}\n\t\tciba", "")
}

func TestE2EPrivateKeyJWTLogin(t *testing.T) {
	b := newBrowser(t)
	e := b.login(e2e.pkjwtURL+"/pkjwt", "bindid-new")
	wantHeaders(t, e.Headers, map[string]string{"X-Auth-Subject": "123e4567-e89b-12d3-a456-426652340001"})

	// The public key the provider may fetch: the configured kid, and no private part.
	resp, err := http.Get(e2e.pkjwtURL + "/.trustgate/client-jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var set jose.JSONWebKeySet
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &set) != nil || len(set.Keys) != 1 || set.Keys[0].KeyID != pkjwtKID || !set.Keys[0].IsPublic() {
		t.Errorf("client-jwks.json = %d %s, want one public key %s", resp.StatusCode, raw, pkjwtKID)
	}
	if strings.Contains(string(raw), `"d"`) {
		t.Error("client-jwks.json carries the private key")
	}
}

// A CIBA login on the private_key_jwt site: the backchannel authentication request and the
// polls of the token endpoint carry the client assertion (the provider accepts no other
// authentication from this client), and the approved login gives a session.
func TestE2EPrivateKeyJWTCIBA(t *testing.T) {
	const user = "bindid-new" // no other CIBA test's user: one start per user per hint_interval
	c, a := cibaLoginAt(t, e2e.pkjwtURL, true, user, "PKJWT 1")
	profile, _ := a.body["profile"].(map[string]any)
	if a.status != http.StatusOK || a.body["status"] != "authenticated" || profile["sub"] != "123e4567-e89b-12d3-a456-426652340001" {
		t.Fatalf("poll after the approval: %d %v, want 200 authenticated for %s", a.status, a.body, user)
	}
	if c.siteCookie("tg_pkjwt") == nil {
		t.Error("no session cookie after the CIBA login")
	}
}

// jarSite signs its authorization requests (JAR) with the same key its client assertions
// use; its client at the provider requires signed request objects.
func jarSite(site func(url, clientID, cookie, headers, extra, routes string) string) string {
	return site(e2e.jarURL, jarClientID, "tg_jar", "identity",
		"client_auth private_key_jwt {\n\t\t\tkey {file."+e2e.pkjwtKeyFile+"}\n\t\t\talg ES256\n\t\t\tkid "+pkjwtKID+"\n\t\t}\n\t\trequest_object signed\n\t\tciba", "")
}

// A login whose authorization request is a request object signed with the client key: the
// browser URL carries it in request (the parameters are inside, signed), and the provider,
// which accepts nothing else from this client, signs the user in.
func TestE2ESignedRequestObject(t *testing.T) {
	q := authorizationQuery(t, e2e.jarURL+"/jar-page")
	if q.Get("request") == "" || q.Has("state") || q.Has("nonce") || q.Has("code_challenge") || q.Has("redirect_uri") {
		t.Errorf("authorization URL query = %v, want the parameters inside request only", q)
	}
	b := newBrowser(t)
	e := b.login(e2e.jarURL+"/jar", "bindid-new")
	wantHeaders(t, e.Headers, map[string]string{"X-Auth-Subject": "123e4567-e89b-12d3-a456-426652340001"})
}

// A signed CIBA login (FAPI-CIBA): the backchannel authentication request is one request
// object signed with the client key, and the provider, where this client is registered
// with backchannel_authentication_request_signing_alg ES256, accepts nothing else.
func TestE2ESignedCIBARequest(t *testing.T) {
	const user = "keycloak-user" // no other CIBA test's user: one start per user per hint_interval
	_, a := cibaLoginAt(t, e2e.jarURL, false, user, "JAR 1")
	profile, _ := a.body["profile"].(map[string]any)
	if a.status != http.StatusOK || a.body["status"] != "authenticated" || profile["sub"] != "f1e2d3c4-0000-4000-8000-00000000c002" {
		t.Fatalf("poll after the approval: %d %v, want 200 authenticated for %s", a.status, a.body, user)
	}
}

// cibaLoginAt signs user in with CIBA at site, as a command-line client does (form or
// JSON): start, the user approves at the provider, poll as told until the answer is no
// longer pending. It fails the test unless the start is accepted, and returns the client
// and the last poll's answer.
func cibaLoginAt(t *testing.T, site string, form bool, user, bindingMessage string) (*cibaClient, cibaAnswer) {
	t.Helper()
	c := newCIBAClient(t, form)
	c.site = site
	start := c.post("start", map[string]string{"login_hint": user, "binding_message": bindingMessage})
	requestID, _ := start.body["request_id"].(string)
	if start.status != http.StatusOK || requestID == "" {
		t.Fatalf("start: %d %v, want 200 with a request_id (the provider accepted the request and the client)", start.status, start.body)
	}
	opCIBAControl(t, "approve", user)
	a := start
	for range 4 {
		c.waitRetryAfter(a, 5*time.Second)
		if a = c.post("poll", map[string]string{"request_id": requestID}); a.body["status"] != "pending" {
			break
		}
	}
	return c, a
}

// authorizationQuery navigates to a protected URL of a site without following redirects
// and returns the query of the provider URL it is sent to.
func authorizationQuery(t *testing.T, protected string) url.Values {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, protected, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("navigation to %s: %d Location %q, want 302 to the provider", protected, resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query()
}
