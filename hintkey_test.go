package trustgate

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	jose "github.com/go-jose/go-jose/v4"
)

func pemOf(t testing.TB, typ string, der []byte) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func pkixPEM(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PUBLIC KEY", der)
}

var (
	testRSAKey = sync1(func() *rsa.PrivateKey { k, _ := rsa.GenerateKey(rand.Reader, 2048); return k })
	testECKey  = sync1(func() *ecdsa.PrivateKey { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k })
)

// sync1 makes a lazily created value (RSA keys take a while under -race).
func sync1[T any](f func() T) func() T {
	var v atomic.Pointer[T]
	return func() T {
		if p := v.Load(); p != nil {
			return *p
		}
		x := f()
		v.CompareAndSwap(nil, &x)
		return *v.Load()
	}
}

func TestParseHintKey(t *testing.T) {
	rk, ek := testRSAKey(), testECKey()
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idw"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &rk.PublicKey, rk)
	if err != nil {
		t.Fatal(err)
	}
	privDER, _ := x509.MarshalPKCS8PrivateKey(rk)
	good := map[string]string{
		"PKIX RSA":       pkixPEM(t, &rk.PublicKey),
		"PKCS1 RSA":      pemOf(t, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rk.PublicKey)),
		"certificate":    pemOf(t, "CERTIFICATE", certDER),
		"PKIX EC P-256":  pkixPEM(t, &ek.PublicKey),
		"indented PEM":   "\n  " + pkixPEM(t, &ek.PublicKey),
		"JWKS URL":       "https://idw.example.com/.well-known/hint-jwks",
		"loopback http":  "http://127.0.0.1:9999/jwks",
		"localhost http": "http://localhost/jwks",
	}
	for name, v := range good {
		if _, err := parseHintKey(v, nil); err != nil {
			t.Errorf("%s: parseHintKey() error = %v", name, err)
		}
	}
	bad := map[string]string{
		"garbage":           "not a key",
		"JWK JSON":          `{"kty":"RSA"}`,
		"private key":       pemOf(t, "PRIVATE KEY", privDER),
		"wrong block":       pemOf(t, "EC PARAMETERS", []byte{1, 2, 3}),
		"broken DER":        pemOf(t, "PUBLIC KEY", []byte{1, 2, 3}),
		"RSA 1024":          pkixPEM(t, &small.PublicKey),
		"EC P-224":          pkixPEM(t, &p224.PublicKey),
		"http off loopback": "http://idw.example.com/jwks",
		"URL with user":     "https://user:pw@idw.example.com/jwks",
		"URL no host":       "https:///jwks",
	}
	for name, v := range bad {
		_, err := parseHintKey(v, nil)
		if err == nil {
			t.Errorf("%s: parseHintKey() accepted it", name)
			continue
		}
		if len(v) > 20 && strings.Contains(err.Error(), v[len(v)/2:len(v)/2+8]) {
			t.Errorf("%s: the error %q quotes the value", name, err)
		}
	}
}

// threat model OPS-05 (bad config): a key that cannot be used is a Provision error naming
// the key (caddy validate), never a failed binding at run time; a JWKS URL is not fetched
// at Provision.
func TestOPS05_HintKeyUnusableAtProvision(t *testing.T) {
	var hits atomic.Int32
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer jwks.Close()
	base := func(key string) *Handler {
		return &Handler{Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "s", Secrets: []string{testSecret},
			Provider: "iddataweb", IdentityBinding: &IdentityBindingConfig{}, LoginHintEncryptionKey: key,
			storage: &certmagic.FileStorage{Path: t.TempDir()}}
	}
	for name, key := range map[string]string{
		"garbage":     "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
		"not PEM":     "idw-public-key",
		"private key": pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(testRSAKey())),
	} {
		err := provision(t, base(key))
		if err == nil || !strings.Contains(err.Error(), "login_hint_encryption_key") {
			t.Errorf("%s: Provision() error = %v, want one naming login_hint_encryption_key", name, err)
		}
	}
	for _, key := range []string{pkixPEM(t, &testRSAKey().PublicKey), jwks.URL + "/jwks"} {
		if err := provision(t, base(key)); err != nil {
			t.Errorf("Provision() error = %v", err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("Provision fetched the JWKS %d times, want 0 (lazily at the first binding)", n)
	}
}

func TestHintKeyJWKS(t *testing.T) {
	rk, ek := testRSAKey(), testECKey()
	sigKey := jose.JSONWebKey{Key: &ek.PublicKey, KeyID: "sig", Use: "sig", Algorithm: "ES256"}
	noUse := jose.JSONWebKey{Key: &ek.PublicKey, KeyID: "nouse"}
	encKey := jose.JSONWebKey{Key: &rk.PublicKey, KeyID: "enc", Use: "enc", Algorithm: "RSA-OAEP-256"}
	odd := jose.JSONWebKey{Key: &rk.PublicKey, KeyID: "odd", Use: "enc", Algorithm: "RSA1_5"}
	var body atomic.Value
	var status atomic.Int32
	var hits atomic.Int32
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write(body.Load().([]byte))
	}))
	defer srv.Close()
	set := func(keys ...jose.JSONWebKey) {
		b, _ := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		body.Store(b)
	}
	now := time.Unix(1765000000, 0)
	src, err := parseHintKey(srv.URL+"/jwks", nil)
	if err != nil {
		t.Fatal(err)
	}

	set(sigKey, odd, noUse, encKey)
	k, err := src.get(t.Context(), now)
	if err != nil || k.KeyID != "enc" {
		t.Fatalf("get() = %v, %v, want the use=enc key with a supported alg", k, err)
	}
	set(noUse)
	if k, _ := src.get(t.Context(), now.Add(59*time.Minute)); k.KeyID != "enc" || hits.Load() != 1 {
		t.Errorf("within an hour: key %s after %d fetches, want the cached one after 1", k.KeyID, hits.Load())
	}
	if k, _ := src.get(t.Context(), now.Add(61*time.Minute)); k.KeyID != "nouse" || hits.Load() != 2 {
		t.Errorf("after an hour: key %s after %d fetches, want a refetch choosing the key without use", k.KeyID, hits.Load())
	}
	// A failed refresh keeps the last key; the next attempt waits.
	status.Store(500)
	if k, err := src.get(t.Context(), now.Add(122*time.Minute)); err != nil || k.KeyID != "nouse" {
		t.Errorf("failed refresh: %v, %v, want the last key", k, err)
	}
	if src.get(t.Context(), now.Add(122*time.Minute+time.Second)); hits.Load() != 3 {
		t.Errorf("fetches = %d, want 3 (no retry within %s)", hits.Load(), hintKeyRetry)
	}

	for name, prep := range map[string]func(){
		"500":         func() { status.Store(500); set(encKey) },
		"not JSON":    func() { status.Store(200); body.Store([]byte("<html>")) },
		"only sig":    func() { status.Store(200); set(sigKey) },
		"only RSA1_5": func() { status.Store(200); set(odd) },
		"too large": func() {
			status.Store(200)
			body.Store([]byte(`{"keys":[],"x":"` + strings.Repeat("x", maxHintJWKSBytes) + `"}`))
		},
	} {
		prep()
		src, _ := parseHintKey(srv.URL+"/"+strings.ReplaceAll(name, " ", "-"), nil)
		if k, err := src.get(t.Context(), now); err == nil {
			t.Errorf("%s: get() = %v, want an error", name, k)
		}
	}
}
