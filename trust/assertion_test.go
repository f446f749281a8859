package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

var assertionNow = time.Unix(1_700_000_000, 0)

// testRSAKey is one 2048-bit RSA key per test binary (generating it is slow).
var testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func newECKey(tb testing.TB) SigningKey {
	tb.Helper()
	k, err := GenerateSigningKey()
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newRSAKey(tb testing.TB) SigningKey {
	tb.Helper()
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testRSAKey())})
	k, err := ParseSigningKey(pemBytes)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newSigner(tb testing.TB, current SigningKey, others ...SigningKey) *AssertionSigner {
	tb.Helper()
	s, err := NewAssertionSigner(current, others...)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// parseJWKS reads the signer's JWKS the way an upstream would, with go-jose.
func parseJWKS(tb testing.TB, s *AssertionSigner) jose.JSONWebKeySet {
	tb.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(s.JWKS(), &set); err != nil {
		tb.Fatalf("go-jose cannot read the JWKS: %v\n%s", err, s.JWKS())
	}
	return set
}

// verifyAssertion checks tok against the JWKS with go-jose, accepting only alg, and returns the
// decoded claims.
func verifyAssertion(tb testing.TB, tok string, alg jose.SignatureAlgorithm, jwks jose.JSONWebKeySet) (map[string]any, error) {
	tb.Helper()
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{alg})
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify(&jwks)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		tb.Fatalf("payload is not JSON: %v", err)
	}
	return claims, nil
}

// assertionProfile has every field the assertion carries, plus claims that must stay out.
func assertionProfile() *Profile {
	devices, apps := int64(2), int64(0)
	return &Profile{
		Subject:       "123e4567-e89b-12d3-a456-426652340000",
		Issuer:        "https://signin.bindid-sandbox.io",
		Email:         "ola@example.org",
		EmailVerified: policyBool(true),
		Name:          "Åse Øvrebø",
		Phone:         "+12125556789",
		PhoneVerified: policyBool(false),
		Alias:         "username@domain",
		ACR:           "ts.bindid.iac.phone_number",
		AMR:           []string{"ts.bind_id.ama", "ts.bind_id.mfca"},
		AuthTime:      1_699_999_000,
		BindID: &BindID{
			FirstLogin:           1605180504,
			AuthenticatingDevice: &Device{BrowserType: "Mobile", OSType: "iOS"},
			DeviceCount:          &devices,
			ConfirmedAppCount:    &apps,
		},
		Claims: map[string]any{"access_token": "secret-at", "id_token": "secret-idt", "custom": "x"},
	}
}

func TestAssertionSignsAndVerifiesWithTheJWKS(t *testing.T) {
	for _, tc := range []struct {
		name   string
		key    SigningKey
		alg    jose.SignatureAlgorithm
		sigLen int
	}{
		{"ES256", newECKey(t), jose.ES256, 64},
		{"RS256", newRSAKey(t), jose.RS256, 256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSigner(t, tc.key)
			if s.KeyID() != tc.key.ID {
				t.Errorf("KeyID() = %q, want %q", s.KeyID(), tc.key.ID)
			}
			p := assertionProfile()
			claims := AssertionClaims(p, "https://app.example", "https://upstream.internal", assertionNow, 30*time.Second)
			tok, err := s.Sign(claims)
			if err != nil {
				t.Fatal(err)
			}

			// Header: exactly alg, kid and typ.
			parts := strings.Split(tok, ".")
			if len(parts) != 3 {
				t.Fatalf("token has %d parts", len(parts))
			}
			rawHeader, err := base64.RawURLEncoding.DecodeString(parts[0])
			if err != nil {
				t.Fatal(err)
			}
			var header map[string]any
			if err := json.Unmarshal(rawHeader, &header); err != nil {
				t.Fatal(err)
			}
			wantHeader := map[string]any{"alg": string(tc.alg), "kid": tc.key.ID, "typ": "JWT"}
			if !reflect.DeepEqual(header, wantHeader) {
				t.Errorf("header = %v, want %v", header, wantHeader)
			}
			sig, err := base64.RawURLEncoding.DecodeString(parts[2])
			if err != nil || len(sig) != tc.sigLen {
				t.Errorf("signature is %d bytes (err %v), want %d (ES256 is R||S, not ASN.1)", len(sig), err, tc.sigLen)
			}

			jwks := parseJWKS(t, s)
			jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{tc.alg})
			if err != nil {
				t.Fatal(err)
			}
			h := jws.Signatures[0].Protected
			if h.KeyID != tc.key.ID || h.Algorithm != string(tc.alg) || h.ExtraHeaders[jose.HeaderType] != "JWT" {
				t.Errorf("go-jose header: kid %q alg %q typ %v", h.KeyID, h.Algorithm, h.ExtraHeaders[jose.HeaderType])
			}
			got, err := verifyAssertion(t, tok, tc.alg, jwks)
			if err != nil {
				t.Fatalf("go-jose rejects the assertion: %v", err)
			}

			// Every claim, as the upstream decodes it.
			bindid, _ := json.Marshal(p.BindID)
			var bindidJSON any
			_ = json.Unmarshal(bindid, &bindidJSON)
			want := map[string]any{
				"iss":                   "https://app.example",
				"aud":                   "https://upstream.internal",
				"sub":                   p.Subject,
				"iat":                   float64(assertionNow.Unix()),
				"nbf":                   float64(assertionNow.Unix()),
				"exp":                   float64(assertionNow.Unix() + 30),
				"jti":                   claims["jti"],
				"idp":                   p.Issuer,
				"email":                 "ola@example.org",
				"email_verified":        true,
				"name":                  "Åse Øvrebø",
				"phone_number":          "+12125556789",
				"phone_number_verified": false,
				"alias":                 "username@domain",
				"new_user":              false,
				"acr":                   "ts.bindid.iac.phone_number",
				"amr":                   []any{"ts.bind_id.ama", "ts.bind_id.mfca"},
				"auth_time":             float64(1_699_999_000),
				"bindid":                bindidJSON,
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("claims\n got %v\nwant %v", got, want)
			}
			if bindidJSON.(map[string]any)["confirmed_capp_count"] != float64(0) {
				t.Errorf("bindid lost a zero count: %s", bindid)
			}

			// Only the right algorithm is accepted.
			other := jose.RS256
			if tc.alg == jose.RS256 {
				other = jose.ES256
			}
			if _, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{other}); err == nil {
				t.Errorf("go-jose accepted the %s token as %s", tc.alg, other)
			}
		})
	}
}

func TestAssertionFromAnotherKeyFailsVerification(t *testing.T) {
	published := newECKey(t)
	jwks := parseJWKS(t, newSigner(t, published))
	claims := AssertionClaims(assertionProfile(), "https://app.example", "", assertionNow, time.Minute)

	// An attacker's key, with a kid of its own and with the published kid.
	attacker := newECKey(t)
	impostor := attacker
	impostor.ID = published.ID
	for name, k := range map[string]SigningKey{"own kid": attacker, "published kid": impostor} {
		tok, err := newSigner(t, k).Sign(claims)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verifyAssertion(t, tok, jose.ES256, jwks); err == nil {
			t.Errorf("%s: a token signed by another key verified against the JWKS", name)
		}
	}
}

func TestAssertionModifiedPayloadFailsVerification(t *testing.T) {
	for name, key := range map[string]SigningKey{"ES256": newECKey(t), "RS256": newRSAKey(t)} {
		t.Run(name, func(t *testing.T) {
			s := newSigner(t, key)
			alg := jose.SignatureAlgorithm(name)
			claims := AssertionClaims(assertionProfile(), "https://app.example", "", assertionNow, time.Minute)
			tok, err := s.Sign(claims)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := verifyAssertion(t, tok, alg, parseJWKS(t, s)); err != nil {
				t.Fatalf("unmodified token: %v", err)
			}
			parts := strings.Split(tok, ".")
			claims["sub"] = "admin"
			forged, _ := json.Marshal(claims)
			parts[1] = base64.RawURLEncoding.EncodeToString(forged)
			if _, err := verifyAssertion(t, strings.Join(parts, "."), alg, parseJWKS(t, s)); err == nil {
				t.Fatal("a token with a modified payload verified")
			}
		})
	}
}

func TestAssertionSignerRotationPublishesBothKeys(t *testing.T) {
	oldKey, newKey := newECKey(t), newRSAKey(t)
	s := newSigner(t, newKey, oldKey)
	jwks := parseJWKS(t, s)
	var kids []string
	for _, k := range jwks.Keys {
		kids = append(kids, k.KeyID)
		if !k.IsPublic() {
			t.Errorf("JWKS key %s is not public", k.KeyID)
		}
		if k.Use != "sig" {
			t.Errorf("JWKS key %s: use %q", k.KeyID, k.Use)
		}
	}
	if want := []string{newKey.ID, oldKey.ID}; !reflect.DeepEqual(kids, want) {
		t.Fatalf("JWKS kids = %q, want %q (current first)", kids, want)
	}
	if jwks.Keys[0].Algorithm != "RS256" || jwks.Keys[1].Algorithm != "ES256" {
		t.Errorf("JWKS algs = %q, %q", jwks.Keys[0].Algorithm, jwks.Keys[1].Algorithm)
	}
	claims := AssertionClaims(assertionProfile(), "https://app.example", "", assertionNow, time.Minute)
	tok, err := s.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if kid := jws.Signatures[0].Protected.KeyID; kid != newKey.ID {
		t.Errorf("signed with kid %q, want the current key %q", kid, newKey.ID)
	}
	if _, err := verifyAssertion(t, tok, jose.RS256, jwks); err != nil {
		t.Errorf("token from the current key: %v", err)
	}
	// A token the previous signer issued just before the rotation still verifies.
	oldTok, err := newSigner(t, oldKey).Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyAssertion(t, oldTok, jose.ES256, jwks); err != nil {
		t.Errorf("token from the previous key: %v", err)
	}
}

func TestAssertionJWKSHoldsOnlyPublicParts(t *testing.T) {
	s := newSigner(t, newECKey(t), newRSAKey(t))
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(s.JWKS(), &doc); err != nil {
		t.Fatal(err)
	}
	wantMembers := [][]string{
		{"alg", "crv", "kid", "kty", "use", "x", "y"},
		{"alg", "e", "kid", "kty", "n", "use"},
	}
	for i, k := range doc.Keys {
		var names []string
		for name := range k {
			names = append(names, name)
		}
		slices.Sort(names)
		if !reflect.DeepEqual(names, wantMembers[i]) {
			t.Errorf("key %d members = %q, want %q", i, names, wantMembers[i])
		}
	}
	if doc.Keys[0]["crv"] != "P-256" || doc.Keys[0]["kty"] != "EC" || doc.Keys[1]["e"] != "AQAB" {
		t.Errorf("JWKS = %s", s.JWKS())
	}
}

func TestNewAssertionSignerRejectsBadKeys(t *testing.T) {
	ec := newECKey(t)
	renamed := newECKey(t)
	renamed.ID = ec.ID
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name    string
		current SigningKey
		others  []SigningKey
		want    string
	}{
		{"same key twice", ec, []SigningKey{ec}, "is used by two keys"},
		{"two keys with one kid", ec, []SigningKey{renamed}, "is used by two keys"},
		{"no key", SigningKey{ID: "k"}, nil, "current signing key: no key"},
		{"P-384", SigningKey{Key: p384}, nil, "ECDSA key on P-384; only P-256 (ES256) is supported"},
		{"RSA 1024", SigningKey{Key: rsa1024}, nil, "RSA key of 1024 bits; at least 2048 are required"},
		{"Ed25519", SigningKey{Key: ed}, nil, "unsupported key type ed25519.PublicKey"},
		{"bad additional key", ec, []SigningKey{{Key: p384}}, "additional key 1: signing key: ECDSA key on P-384"},
		{"kid with a quote", SigningKey{ID: `a"b`, Key: ec.Key}, nil, "may not contain quotes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewAssertionSigner(tc.current, tc.others...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewAssertionSigner() error = %v, want it to contain %q", err, tc.want)
			}
		})
	}

	// An empty ID becomes the thumbprint.
	s := newSigner(t, SigningKey{Key: ec.Key})
	if s.KeyID() != ec.ID {
		t.Errorf("empty ID: KeyID() = %q, want the thumbprint %q", s.KeyID(), ec.ID)
	}
	// An operator-chosen kid is kept.
	if s := newSigner(t, SigningKey{ID: "2026-07", Key: ec.Key}); s.KeyID() != "2026-07" {
		t.Errorf("explicit ID: KeyID() = %q", s.KeyID())
	}
}

func TestSigningKeyIDIsTheRFC7638Thumbprint(t *testing.T) {
	for name, k := range map[string]SigningKey{"EC": newECKey(t), "RSA": newRSAKey(t)} {
		jwk := jose.JSONWebKey{Key: k.Key.Public()}
		tp, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if want := base64.RawURLEncoding.EncodeToString(tp); k.ID != want {
			t.Errorf("%s: ID = %q, go-jose thumbprint %q", name, k.ID, want)
		}
	}
	// And the JWKS as go-jose reads it has the same thumbprint as its kid.
	for _, k := range parseJWKS(t, newSigner(t, newECKey(t), newRSAKey(t))).Keys {
		tp, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if got := base64.RawURLEncoding.EncodeToString(tp); got != k.KeyID {
			t.Errorf("JWKS key %s: thumbprint of its public part is %s", k.KeyID, got)
		}
	}
}

func TestSigningKeyMarshalParseRoundTrip(t *testing.T) {
	for name, k := range map[string]SigningKey{"EC": newECKey(t), "RSA": newRSAKey(t)} {
		t.Run(name, func(t *testing.T) {
			pemBytes, err := MarshalSigningKey(k)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(pemBytes), "-----BEGIN PRIVATE KEY-----\n") {
				t.Errorf("not PKCS#8 PEM: %.40s", pemBytes)
			}
			back, err := ParseSigningKey(pemBytes)
			if err != nil {
				t.Fatal(err)
			}
			if back.ID != k.ID {
				t.Errorf("ID after round trip = %q, want %q", back.ID, k.ID)
			}
			type equaler interface{ Equal(crypto.PrivateKey) bool }
			if !back.Key.(equaler).Equal(k.Key) {
				t.Error("key changed in the round trip")
			}
		})
	}
}

func TestSigningKeyParsesSEC1AndPKCS1(t *testing.T) {
	ec := newECKey(t)
	sec1, err := x509.MarshalECPrivateKey(ec.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	// As `openssl ecparam -genkey` writes it: the parameters first.
	params := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	k, err := ParseSigningKey(append(params, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...))
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != ec.ID {
		t.Errorf("SEC 1 key: ID %q, want %q", k.ID, ec.ID)
	}
	rsaKey := newRSAKey(t) // parsed from PKCS#1
	if rsaKey.ID == "" || !testRSAKey().Equal(rsaKey.Key) {
		t.Errorf("PKCS#1 key: ID %q, key equal %v", rsaKey.ID, testRSAKey().Equal(rsaKey.Key))
	}
}

func TestSigningKeyParseErrors(t *testing.T) {
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384PKCS8, _ := x509.MarshalPKCS8PrivateKey(p384)
	p384SEC1, _ := x509.MarshalECPrivateKey(p384)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edPKCS8, _ := x509.MarshalPKCS8PrivateKey(ed)
	ecPEM, _ := MarshalSigningKey(newECKey(t))
	pubDER, _ := x509.MarshalPKIXPublicKey(p384.Public())
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "no PEM block found"},
		{"not PEM", []byte("MHcCAQEEIB..."), "no PEM block found"},
		{"public key only", pemOf("PUBLIC KEY", pubDER), "no PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block found"},
		{"encrypted", pemOf("ENCRYPTED PRIVATE KEY", []byte{1, 2, 3}), "the private key is encrypted"},
		{"legacy encrypted", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1}}), "PEM headers are not supported"},
		{"two keys", append(append([]byte{}, ecPEM...), ecPEM...), "more than one private key"},
		{"P-384 PKCS#8", pemOf("PRIVATE KEY", p384PKCS8), "ECDSA key on P-384; only P-256 (ES256) is supported"},
		{"P-384 SEC 1", pemOf("EC PRIVATE KEY", p384SEC1), "ECDSA key on P-384"},
		{"RSA 1024", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa1024)), "RSA key of 1024 bits; at least 2048 are required"},
		{"Ed25519", pemOf("PRIVATE KEY", edPKCS8), "unsupported key type"},
		{"corrupt DER", pemOf("PRIVATE KEY", []byte{0x30, 0x03, 0x02, 0x01}), "signing key: parsing PRIVATE KEY:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSigningKey(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseSigningKey() error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := MarshalSigningKey(SigningKey{Key: p384}); err == nil || !strings.Contains(err.Error(), "P-384") {
		t.Errorf("MarshalSigningKey(P-384) error = %v", err)
	}
}

func TestAssertionClaimsClampsTTL(t *testing.T) {
	for _, tc := range []struct {
		ttl  time.Duration
		want int64
	}{
		{30 * time.Second, 30},
		{60 * time.Second, 60},
		{5 * time.Minute, 60},
		{0, 1},
		{-time.Hour, 1},
		{time.Millisecond, 1},
	} {
		c := AssertionClaims(assertionProfile(), "https://app.example", "", assertionNow, tc.ttl)
		if got := c["exp"].(int64) - c["iat"].(int64); got != tc.want {
			t.Errorf("ttl %v: exp - iat = %d, want %d", tc.ttl, got, tc.want)
		}
		if c["nbf"] != c["iat"] {
			t.Errorf("ttl %v: nbf %v != iat %v", tc.ttl, c["nbf"], c["iat"])
		}
	}
}

func TestAssertionClaimsOfAMinimalProfile(t *testing.T) {
	p := &Profile{Subject: "u1", Issuer: "https://op.example", NewUser: true,
		Claims: map[string]any{"access_token": "secret", "email": "not-from-claims@example.com"}}
	c := AssertionClaims(p, "https://app.example", "", assertionNow, time.Minute)
	var names []string
	for name := range c {
		names = append(names, name)
	}
	slices.Sort(names)
	want := []string{"exp", "iat", "idp", "iss", "jti", "nbf", "new_user", "sub"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("claims = %q, want %q", names, want)
	}
	if c["new_user"] != true {
		t.Errorf("new_user = %v", c["new_user"])
	}
	raw, _ := json.Marshal(AssertionClaims(assertionProfile(), "https://app.example", "aud", assertionNow, time.Minute))
	for _, secret := range []string{"secret-at", "secret-idt", "access_token", "custom"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("assertion claims hold %q: %s", secret, raw)
		}
	}
}

func TestAssertionClaimsJTIIsRandom128Bits(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		jti := AssertionClaims(assertionProfile(), "i", "", assertionNow, time.Minute)["jti"].(string)
		raw, err := base64.RawURLEncoding.DecodeString(jti)
		if err != nil || len(raw) != 16 {
			t.Fatalf("jti %q: %d bytes, %v", jti, len(raw), err)
		}
		if seen[jti] {
			t.Fatalf("jti %q repeated", jti)
		}
		seen[jti] = true
	}
}

func TestAssertionSignNilClaimsIsAnEmptyObject(t *testing.T) {
	s := newSigner(t, newECKey(t))
	tok, err := s.Sign(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := verifyAssertion(t, tok, jose.ES256, parseJWKS(t, s))
	if err != nil || len(got) != 0 || got == nil {
		t.Fatalf("Sign(nil) payload = %v, %v; want {}", got, err)
	}
}
