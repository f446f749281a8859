package oidcflow

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// A request object (RFC 9101) carries every authorization parameter, signed with the
// client's first key; the URL keeps only client_id, response_type, scope and request.
func TestSignRequest(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Unix(1_800_000_000, 0)
	c := &Client{cfg: Config{Issuer: "https://idp.example.com", ClientID: "gw", Now: func() time.Time { return now },
		ClientKeys: []ClientKey{{Key: k, Alg: "ES256", KID: "k1"}}}}
	in := "https://idp.example.com/auth?client_id=gw&response_type=code&scope=openid+email&state=s1&nonce=n1" +
		"&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&code_challenge=cc&code_challenge_method=S256&max_age=300"
	out, err := c.signRequest(in)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(out)
	q := u.Query()
	if len(q) != 4 || q.Get("client_id") != "gw" || q.Get("response_type") != "code" || q.Get("scope") != "openid email" {
		t.Fatalf("query %v: want client_id, response_type, scope and request only", q)
	}
	jws, err := jose.ParseSignedCompact(q.Get("request"), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if typ, _ := jws.Signatures[0].Header.ExtraHeaders["typ"].(string); typ != "oauth-authz-req+jwt" || jws.Signatures[0].Header.KeyID != "k1" {
		t.Errorf("header typ %q kid %q, want oauth-authz-req+jwt and k1", typ, jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var cl map[string]any
	_ = json.Unmarshal(payload, &cl)
	for name, want := range map[string]any{"iss": "gw", "aud": "https://idp.example.com", "state": "s1", "nonce": "n1",
		"redirect_uri": "https://app.example.com/cb", "code_challenge": "cc", "max_age": float64(300),
		"iat": float64(now.Unix()), "nbf": float64(now.Unix()), "exp": float64(now.Add(5 * time.Minute).Unix())} {
		if cl[name] != want {
			t.Errorf("claim %s = %v, want %v", name, cl[name], want)
		}
	}
	if cl["jti"] == "" || cl["jti"] == nil {
		t.Error("no jti")
	}
	if err := Check(Config{Issuer: "https://idp.example.com", ClientID: "gw", RequestObject: RequestObjectSigned}); err == nil {
		t.Error("request_object signed without client keys accepted")
	}
}

// A signed backchannel authentication request: requested_expiry is a number and claims
// the JSON object itself, as CIBA 7.1.1 wants them in a request object.
func TestRequestObjectCIBAClaims(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := &Client{cfg: Config{Issuer: "https://idp.example.com", ClientID: "gw", Now: time.Now,
		ClientKeys: []ClientKey{{Key: k, Alg: "ES256", KID: "k1"}}}}
	obj, err := c.requestObject(url.Values{"login_hint": {"ola"}, "scope": {"openid"}, "requested_expiry": {"120"},
		"claims": {`{"id_token":{"acr":{"essential":true}}}`}})
	if err != nil {
		t.Fatal(err)
	}
	jws, _ := jose.ParseSignedCompact(obj, []jose.SignatureAlgorithm{jose.ES256})
	payload, err := jws.Verify(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var cl map[string]any
	_ = json.Unmarshal(payload, &cl)
	claims, _ := cl["claims"].(map[string]any)
	if cl["requested_expiry"] != float64(120) || claims["id_token"] == nil || cl["login_hint"] != "ola" {
		t.Errorf("claims %v: want requested_expiry 120 as a number, claims as an object, login_hint", cl)
	}
	for _, name := range []string{"iss", "aud", "iat", "nbf", "exp", "jti"} {
		if cl[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}
