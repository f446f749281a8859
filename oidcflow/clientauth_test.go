package oidcflow

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// private_key_jwt (RFC 7523 §2.2): every client authentication carries a fresh assertion
// signed with the client's first key, and no secret.
func TestPrivateKeyJWTAssertion(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	old, _ := rsa.GenerateKey(rand.Reader, 2048)
	var forms []url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.Header.Get("Authorization") != "" {
			t.Errorf("Authorization header %q sent with private_key_jwt", r.Header.Get("Authorization"))
		}
		forms = append(forms, r.PostForm)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	now := time.Unix(1_800_000_000, 0)
	c, err := New(Config{Issuer: "https://idp.example.com", ClientID: "gw", AuthMethod: AuthPrivateKeyJWT,
		ClientKeys: []ClientKey{{Key: ec, Alg: "ES256", KID: "k2"}, {Key: old, Alg: "PS256", KID: "k1"}},
		Now:        func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 {
		if _, _, _, err := c.postForm(context.Background(), srv.URL, url.Values{"grant_type": {"x"}}); err != nil {
			t.Fatal(err)
		}
	}
	var jtis []string
	for _, f := range forms {
		if f.Get("client_id") != "gw" || f.Get("client_assertion_type") != clientAssertionType || f.Has("client_secret") {
			t.Fatalf("form %v: want client_id, client_assertion_type jwt-bearer, no client_secret", f)
		}
		jws, err := jose.ParseSignedCompact(f.Get("client_assertion"), []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("client_assertion: %v", err)
		}
		if kid := jws.Signatures[0].Header.KeyID; kid != "k2" {
			t.Errorf("kid = %q, want the first key's k2", kid)
		}
		payload, err := jws.Verify(&ec.PublicKey)
		if err != nil {
			t.Fatalf("assertion does not verify with the first key: %v", err)
		}
		var cl map[string]any
		_ = json.Unmarshal(payload, &cl)
		if cl["iss"] != "gw" || cl["sub"] != "gw" || cl["aud"] != "https://idp.example.com" {
			t.Errorf("claims %v: want iss=sub=client_id, aud=issuer", cl)
		}
		if exp, iat := cl["exp"].(float64), cl["iat"].(float64); iat != float64(now.Unix()) || exp-iat > 60 || exp <= iat {
			t.Errorf("iat %v exp %v: want iat now and exp at most 60 s later", iat, exp)
		}
		jtis = append(jtis, cl["jti"].(string))
	}
	if len(jtis) != 2 || jtis[0] == "" || jtis[0] == jtis[1] {
		t.Errorf("jti %v: want a fresh one per call", jtis)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(c.ClientJWKS(), &set); err != nil || len(set.Keys) != 2 || set.Keys[0].KeyID != "k2" || !set.Keys[0].IsPublic() || !set.Keys[1].IsPublic() {
		t.Errorf("ClientJWKS = %s: want both public keys, the signing one first", c.ClientJWKS())
	}
}

func TestPrivateKeyJWTConfigErrors(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	for _, tc := range []struct {
		keys []ClientKey
		want string
	}{
		{nil, "at least one client key"},
		{[]ClientKey{{Key: ec, Alg: "PS256", KID: "a"}}, "only P-256 with alg ES256"},
		{[]ClientKey{{Key: p384, Alg: "ES256", KID: "a"}}, "only P-256"},
		{[]ClientKey{{Key: small, Alg: "RS256", KID: "a"}}, "at least 2048 bits"},
		{[]ClientKey{{Key: ec, Alg: "ES256", KID: ""}}, "kid is empty"},
		{[]ClientKey{{Key: ec, Alg: "ES256", KID: "a"}, {Key: ec, Alg: "ES256", KID: "a"}}, "used twice"},
	} {
		err := Check(Config{Issuer: "https://idp.example.com", ClientID: "gw", AuthMethod: AuthPrivateKeyJWT, ClientKeys: tc.keys})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.keys, err, tc.want)
		}
	}
}
