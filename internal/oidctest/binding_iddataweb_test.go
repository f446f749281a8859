package oidctest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// ID Dataweb's login_hint as its documentation publishes it: HS256 keyed with the client
// secret, ID Dataweb's field names (fname, lname, dialCode, telephone, ...), sub, iat, exp.
// The fixtures are written here by hand, not made by the gateway's code.

// andrewPrefill is Andrew Roshell's record (seed 002) in ID Dataweb's names.
func andrewPrefill(now time.Time) map[string]any {
	return map[string]any{
		"sub": SubjectAndrew, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"fname": "Andrew", "lname": "Roshell", "dialCode": "1", "telephone": "5555550100",
		"email": "andrew.roshell@example.org",
	}
}

// hs256 signs claims HS256 with secret (by hand: the default secret is shorter than
// go-jose accepts).
func hs256(tb testing.TB, claims map[string]any, secret string) string {
	tb.Helper()
	in := b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64(mustJSON(tb, claims))
	sig, err := signInput("HS256", []byte(in), nil, []byte(secret))
	if err != nil {
		tb.Fatal(err)
	}
	return in + "." + b64(sig)
}

// encryptTo wraps jwt in a compact JWE (A256GCM, cty JWT) to pub with alg.
func encryptTo(tb testing.TB, jwt string, pub any, alg jose.KeyAlgorithm, cty bool) string {
	tb.Helper()
	opts := &jose.EncrypterOptions{}
	if cty {
		opts = opts.WithContentType("JWT")
	}
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: alg, Key: pub}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	obj, err := enc.Encrypt([]byte(jwt))
	if err != nil {
		tb.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func parsePEM(tb testing.TB, s string) any {
	tb.Helper()
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "PUBLIC KEY" {
		tb.Fatalf("not a PEM public key: %q", s)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return pub
}

// hintKeysJWKS fetches the Provider's published login_hint key (PathHintKeys).
func hintKeysJWKS(tb testing.TB, op *Provider, query string) jose.JSONWebKey {
	tb.Helper()
	resp, err := http.Get(op.HintKeysURL() + query)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil || len(set.Keys) != 1 {
		tb.Fatalf("login_hint keys = %s", b)
	}
	return set.Keys[0]
}

func TestIDDatawebBindingVerdict(t *testing.T) {
	clock := newFakeClock()
	users := DefaultUsers()
	for i := range users {
		if users[i].Subject == SubjectAse {
			users[i].HighRisk = true
		}
	}
	op := NewTest(t, Options{Now: clock.Now, Users: users})
	now := clock.Now()
	edit := func(mut func(c map[string]any)) map[string]any {
		c := andrewPrefill(now)
		mut(c)
		return c
	}
	rsaJWK := hintKeysJWKS(t, op, "")
	ecJWK := hintKeysJWKS(t, op, "?kty=EC")
	if rsaJWK.Use != "enc" || rsaJWK.Algorithm != "RSA-OAEP-256" || ecJWK.Algorithm != "ECDH-ES+A256KW" {
		t.Errorf("published keys: %s %s / %s", rsaJWK.Use, rsaJWK.Algorithm, ecJWK.Algorithm)
	}
	signed := hs256(t, andrewPrefill(now), DefaultClientSecret)
	tests := []struct {
		name      string
		subject   string
		hint      string
		decision  string
		encrypted bool
	}{
		{"seed 002 phone path: Andrew Roshell prefilled", SubjectAndrew, signed, DecisionApprove, false},
		{"name in other case and spacing", SubjectAndrew, hs256(t, edit(func(c map[string]any) { c["fname"] = " ANDREW " }), DefaultClientSecret), DecisionApprove, false},
		{"phone only", SubjectAndrew, hs256(t, edit(func(c map[string]any) { delete(c, "fname"); delete(c, "lname"); delete(c, "email") }), DefaultClientSecret), DecisionApprove, false},
		{"fields the account lacks are not compared", SubjectAndrew, hs256(t, edit(func(c map[string]any) {
			c["route"], c["street_number"], c["ssn4"], c["dobyear"], c["dobmonth"], c["dobday"] = "Main St", "12", "6789", "1970", "04", "09"
		}), DefaultClientSecret), DecisionApprove, false},
		{"encrypted RSA-OAEP-256 to the PEM key", SubjectAndrew, encryptTo(t, signed, parsePEM(t, op.HintEncryptionKeyPEM()), jose.RSA_OAEP_256, true), DecisionApprove, true},
		{"encrypted RSA-OAEP to the JWKS key", SubjectAndrew, encryptTo(t, signed, rsaJWK.Key, jose.RSA_OAEP, true), DecisionApprove, true},
		{"encrypted ECDH-ES+A256KW to the EC key", SubjectAndrew, encryptTo(t, signed, parsePEM(t, op.HintEncryptionECKeyPEM()), jose.ECDH_ES_A256KW, true), DecisionApprove, true},
		{"seed 002 account mismatch: a different name against Andrew Roshell's phone", SubjectAndrew,
			hs256(t, edit(func(c map[string]any) { c["fname"], c["lname"] = "Andrea", "Roswell" }), DefaultClientSecret), DecisionDeny, false},
		{"right name, other phone", SubjectAndrew, hs256(t, edit(func(c map[string]any) { c["telephone"] = "5555550199" }), DefaultClientSecret), DecisionDeny, false},
		{"other dial code", SubjectAndrew, hs256(t, edit(func(c map[string]any) { c["dialCode"] = "44" }), DefaultClientSecret), DecisionDeny, false},
		{"other e-mail", SubjectAndrew, hs256(t, edit(func(c map[string]any) { c["email"] = "someone@else.example" }), DefaultClientSecret), DecisionDeny, false},
		{"Andrew's record, Ola logs in", SubjectOla, signed, DecisionDeny, false},
		{"Andrew's record, Dana (idw-deny) logs in", SubjectIDWDeny, signed, DecisionDeny, false},
		{"high risk (Session Risk) before any matching", SubjectAse,
			hs256(t, edit(func(c map[string]any) {
				c["fname"], c["lname"] = "Åse", "Øvrebø"
				delete(c, "telephone")
				delete(c, "dialCode")
				delete(c, "email")
			}), DefaultClientSecret),
			DecisionDeny, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, verifier := authorizeAs(t, op, tt.subject, url.Values{"login_hint": {tt.hint}})
			claims := boundIDToken(t, op, q, verifier)
			risk, trust := "100", "100"
			if tt.decision == DecisionDeny {
				risk, trust = "0", "0"
			}
			if claims["policyDecision"] != tt.decision || claims["idwRiskScore"] != risk || claims["idwTrustScore"] != trust {
				t.Errorf("ID token verdict = %v %v %v, want %s %s %s", claims["policyDecision"], claims["idwRiskScore"], claims["idwTrustScore"], tt.decision, risk, trust)
			}
			if claims["sub"] != tt.subject || claims["jti"] == nil || claims["at_hash"] == nil || claims["binding"] != nil {
				t.Errorf("ID token sub %v jti %v at_hash %v binding %v", claims["sub"], claims["jti"], claims["at_hash"], claims["binding"])
			}
			b := op.LastBinding()
			if b == nil || b.Format != HintFormatIDDataweb || b.Encrypted != tt.encrypted || b.Decision != tt.decision || b.Subject != tt.subject || b.Claims["sub"] != SubjectAndrew {
				t.Errorf("LastBinding() = %+v", b)
			}
		})
	}
}

// A refreshed ID token keeps the binding's verdict.
func TestIDDatawebBindingRefreshKeepsVerdict(t *testing.T) {
	clock := newFakeClock()
	op := NewTest(t, Options{Now: clock.Now})
	hint := hs256(t, map[string]any{"sub": SubjectAndrew, "iat": clock.Now().Unix(), "exp": clock.Now().Add(time.Minute).Unix(),
		"fname": "Andrea", "lname": "Roswell", "dialCode": "1", "telephone": "5555550100"}, DefaultClientSecret)
	q, verifier := authorizeAs(t, op, SubjectAndrew, url.Values{"login_hint": {hint}})
	status, tok := exchange(t, op, q.Get("code"), verifier)
	if status != http.StatusOK {
		t.Fatalf("token = %d %v", status, tok)
	}
	status, ref := tokenCall(t, op, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, DefaultClientID, DefaultClientSecret)
	if status != http.StatusOK {
		t.Fatalf("refresh = %d %v", status, ref)
	}
	if c, err := verifyJWT(t, op, ref["id_token"].(string)); err != nil || c["policyDecision"] != DecisionDeny {
		t.Errorf("refreshed policyDecision = %v (%v), want deny (the binding's, not andrew's approve)", c["policyDecision"], err)
	}
}

// Plain logins (no login_hint) carry the user's own verdict.
func TestIDDatawebPlainLoginVerdicts(t *testing.T) {
	op := NewTest(t, Options{})
	for sub, want := range map[string]any{SubjectAndrew: DecisionApprove, SubjectIDWDeny: DecisionDeny, SubjectIDWNone: nil} {
		idt, ui := loginClaims(t, op, sub)
		if idt["policyDecision"] != want || ui["policyDecision"] != nil {
			t.Errorf("%s: ID token policyDecision %v, userinfo %v, want %v and none", sub, idt["policyDecision"], ui["policyDecision"], want)
		}
		if (want == nil) != (idt["jti"] == nil) {
			t.Errorf("%s: jti %v: ID Dataweb's ID tokens (with a verdict) carry one", sub, idt["jti"])
		}
	}
}

func TestIDDatawebBindingRefusesInvalidHints(t *testing.T) {
	clock := newFakeClock()
	op := NewTest(t, Options{Now: clock.Now})
	now := clock.Now()
	edit := func(mut func(c map[string]any)) map[string]any {
		c := andrewPrefill(now)
		mut(c)
		return c
	}
	signed := hs256(t, andrewPrefill(now), DefaultClientSecret)
	parts := strings.Split(signed, ".")
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	strangerEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es := newHintKey(t, jose.ES256, "gw")
	tests := []struct {
		name string
		hint string
		why  string
	}{
		{"another secret", hs256(t, andrewPrefill(now), "not-the-client-secret"), "does not verify with the client secret"},
		{"payload swapped", parts[0] + "." + b64(mustJSON(t, edit(func(c map[string]any) { c["fname"] = "Mallory" }))) + "." + parts[2], "does not verify with the client secret"},
		{"OIDC names", hs256(t, edit(func(c map[string]any) { c["given_name"] = "Andrew" }), DefaultClientSecret), `"given_name", which is not one of ID Dataweb's`},
		{"a number for a field", hs256(t, edit(func(c map[string]any) { c["telephone"] = 5555550100 }), DefaultClientSecret), `"telephone" is not a string`},
		{"no sub", hs256(t, edit(func(c map[string]any) { delete(c, "sub") }), DefaultClientSecret), "no sub"},
		{"no iat", hs256(t, edit(func(c map[string]any) { delete(c, "iat") }), DefaultClientSecret), "no iat"},
		{"no exp", hs256(t, edit(func(c map[string]any) { delete(c, "exp") }), DefaultClientSecret), "no exp"},
		{"expired", hs256(t, edit(func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(-6*time.Minute).Unix(), now.Add(-time.Minute).Unix()
		}), DefaultClientSecret), "expired"},
		{"lives too long", hs256(t, edit(func(c map[string]any) { c["exp"] = now.Add(11 * time.Minute).Unix() }), DefaultClientSecret), "lives longer"},
		{"nothing to match", hs256(t, edit(func(c map[string]any) { delete(c, "fname"); delete(c, "telephone") }), DefaultClientSecret), "neither a name"},
		{"JWE to another key", encryptTo(t, signed, &stranger.PublicKey, jose.RSA_OAEP_256, true), "does not decrypt"},
		{"JWE to another EC key", encryptTo(t, signed, &strangerEC.PublicKey, jose.ECDH_ES_A256KW, true), "does not decrypt"},
		{"JWE without cty JWT", encryptTo(t, signed, parsePEM(t, op.HintEncryptionKeyPEM()), jose.RSA_OAEP_256, false), "no cty JWT"},
		{"JWE holding an ES256 JWT", encryptTo(t, es.sign(t, andrewPrefill(now)), parsePEM(t, op.HintEncryptionKeyPEM()), jose.RSA_OAEP_256, true), "does not hold an HS256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := authorizeAs(t, op, SubjectAndrew, url.Values{"login_hint": {tt.hint}})
			wantAuthzError(t, q, "invalid_request", "")
			if d := q.Get("error_description"); !strings.HasPrefix(d, "login_hint: ") || !strings.Contains(d, tt.why) {
				t.Errorf("error_description = %q, want login_hint: ...%s...", d, tt.why)
			}
		})
	}
	if op.LastBinding() != nil {
		t.Error("a refused login_hint was recorded as a binding")
	}
}

func TestIDDatawebDecision(t *testing.T) {
	andrew := User{Subject: "a", IDTokenClaims: map[string]any{"given_name": "Andrew", "family_name": "Roshell", "birthdate": "1970-04-09"},
		UserinfoClaims: map[string]any{"phone_number": "+1 555 555 0100", "middle_name": "J"}}
	risky := andrew
	risky.HighRisk = true
	tests := []struct {
		name    string
		user    User
		prefill map[string]any
		want    string
	}{
		{"name and phone", andrew, map[string]any{"fname": "Andrew", "lname": "Roshell", "dialCode": "1", "telephone": "5555550100"}, DecisionApprove},
		{"birthdate", andrew, map[string]any{"dobyear": "1970", "dobmonth": "04", "dobday": "09"}, DecisionApprove},
		{"other birthdate", andrew, map[string]any{"fname": "Andrew", "lname": "Roshell", "dobyear": "1971", "dobmonth": "04", "dobday": "09"}, DecisionDeny},
		{"other middle name", andrew, map[string]any{"fname": "Andrew", "lname": "Roshell", "mname": "K"}, DecisionDeny},
		{"half a name only: nothing compared", andrew, map[string]any{"fname": "Andrew"}, DecisionDeny},
		{"high risk, matching", risky, map[string]any{"fname": "Andrew", "lname": "Roshell"}, DecisionDeny},
	}
	for _, tt := range tests {
		if got := idwDecision(tt.user, tt.prefill); got != tt.want {
			t.Errorf("%s: idwDecision() = %q, want %q", tt.name, got, tt.want)
		}
	}
}
