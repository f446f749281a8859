package oidctest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	jose "github.com/go-jose/go-jose/v4"
)

// ID Dataweb's own login_hint (seed 002 and ID Dataweb's Gateway documentation): HS256
// with the client secret, ID Dataweb's field names, optionally a JWE to this OP's key; the
// verdict policyDecision with idwRiskScore and idwTrustScore.

// idwHintFields are the prefill fields ID Dataweb's login_hint may carry besides sub, iat
// and exp (ID Dataweb's Gateway documentation).
var idwHintFields = []string{
	"fname", "mname", "lname", "email", "dialCode", "telephone", "street_number", "route",
	"subpremise", "locality", "postal_code", "administrative_area_level_1", "country",
	"dobday", "dobmonth", "dobyear", "ssn4", "ssn9",
}

// isJWEShaped reports whether hint is a compact JWE: five base64url parts (the second,
// the encrypted key, may be empty) whose header is a JSON object naming enc.
func isJWEShaped(hint string) bool {
	parts := strings.Split(hint, ".")
	if len(parts) != 5 || parts[0] == "" {
		return false
	}
	for _, part := range parts {
		if !isBase64URL(part) {
			return false
		}
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return false
	}
	var h map[string]any
	if json.Unmarshal(hb, &h) != nil {
		return false
	}
	_, ok := h["enc"]
	return ok
}

// headerAlg is the alg of a compact JWS's header, or "".
func headerAlg(jws string) string {
	head, _, _ := strings.Cut(jws, ".")
	hb, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Alg string `json:"alg"`
	}
	_ = json.Unmarshal(hb, &h)
	return h.Alg
}

// idwHintClaims verifies an HS256 login_hint with the client's secret (by hand: go-jose
// refuses HMAC keys shorter than 32 bytes, and DefaultClientSecret is 20) and checks its
// claims: sub a non-empty string; exp in the future and at most MaxLoginHintLifetime
// away; iat present, not in the future, at most MaxLoginHintLifetime before exp; every
// other claim one of idwHintFields, a string; and a name (fname and lname) or a phone
// (dialCode and telephone) to match.
func (p *Provider) idwHintClaims(jws string, client Client) (map[string]any, error) {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return nil, errors.New("the JWT is not a compact JWS")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, errors.New("the JWT header is not base64url")
	}
	var hdr map[string]any
	if json.Unmarshal(hb, &hdr) != nil || hdr["alg"] != "HS256" {
		return nil, errors.New("the JWT is not signed HS256")
	}
	if _, ok := hdr["crit"]; ok {
		return nil, errors.New("the JWT header has crit")
	}
	if client.Secret == "" {
		return nil, errors.New("the client has no secret to verify an HS256 login_hint with")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	mac := hmac.New(sha256.New, []byte(client.Secret))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		return nil, errors.New("the JWT signature does not verify with the client secret")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("the JWT claims are not base64url")
	}
	c, err := decodeHintClaims(payload)
	if err != nil {
		return nil, err
	}
	if sub, _ := c["sub"].(string); sub == "" {
		return nil, errors.New("the JWT has no sub")
	}
	now := p.now()
	exp, ok, err := numericDate(c, "exp")
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, errors.New("the JWT has no exp")
	case !now.Before(exp):
		return nil, errors.New("the JWT has expired")
	case exp.Sub(now) > MaxLoginHintLifetime:
		return nil, fmt.Errorf("the JWT lives longer than %s", MaxLoginHintLifetime)
	}
	iat, ok, err := numericDate(c, "iat")
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, errors.New("the JWT has no iat")
	case iat.After(now.Add(loginHintLeeway)):
		return nil, errors.New("the JWT iat is in the future")
	case exp.Sub(iat) > MaxLoginHintLifetime:
		return nil, fmt.Errorf("the JWT lives longer than %s (exp - iat)", MaxLoginHintLifetime)
	}
	for k, v := range c {
		if k == "sub" || k == "iat" || k == "exp" {
			continue
		}
		if !slices.Contains(idwHintFields, k) {
			return nil, fmt.Errorf("the JWT has the field %q, which is not one of ID Dataweb's", k)
		}
		if _, ok := v.(string); !ok {
			return nil, fmt.Errorf("the JWT field %q is not a string", k)
		}
	}
	hasName := stringClaim(c, "fname") != "" && stringClaim(c, "lname") != ""
	hasPhone := stringClaim(c, "dialCode") != "" && stringClaim(c, "telephone") != ""
	if !hasName && !hasPhone {
		return nil, errors.New("the profile has neither a name (fname and lname) nor a phone (dialCode and telephone) to match")
	}
	return c, nil
}

// idwDecision is ID Dataweb's verdict on a binding for the user who logged in, in the
// seed's order: a high-risk session is denied (Session Risk); then the prefill must match
// the account record (PII Validation): fname + lname against given_name + family_name (and
// mname against middle_name), case-insensitively with white space folded; "+" dialCode
// telephone against phone_number without punctuation; email case-insensitively; dobyear,
// dobmonth and dobday against birthdate; each only where both sides have it, and at least
// one compared. Other fields (address, ssn) are not compared.
func idwDecision(u User, c map[string]any) string {
	if u.HighRisk {
		return DecisionDeny
	}
	account := cloneMap(u.UserinfoClaims)
	if account == nil {
		account = map[string]any{}
	}
	for k, v := range u.IDTokenClaims {
		account[k] = v
	}
	fold := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	compared := 0
	same := func(a, b string, equal func(a, b string) bool) bool {
		if a == "" || b == "" {
			return true
		}
		compared++
		return equal(a, b)
	}
	hintName, accountName := "", ""
	if f, l := fold(stringClaim(c, "fname")), fold(stringClaim(c, "lname")); f != "" && l != "" {
		hintName = f + " " + l
	}
	if g, f := fold(stringClaim(account, "given_name")), fold(stringClaim(account, "family_name")); g != "" && f != "" {
		accountName = g + " " + f
	}
	hintPhone := ""
	if d, t := stringClaim(c, "dialCode"), stringClaim(c, "telephone"); d != "" && t != "" {
		hintPhone = "+" + d + t
	}
	dob := ""
	if y, m, d := stringClaim(c, "dobyear"), stringClaim(c, "dobmonth"), stringClaim(c, "dobday"); y != "" && m != "" && d != "" {
		dob = y + "-" + m + "-" + d
	}
	ok := same(hintName, accountName, strings.EqualFold) &&
		same(fold(stringClaim(c, "mname")), fold(stringClaim(account, "middle_name")), strings.EqualFold) &&
		same(hintPhone, phoneDigits(stringClaim(account, "phone_number")), func(a, b string) bool { return a == b }) &&
		same(stringClaim(c, "email"), stringClaim(account, "email"), strings.EqualFold) &&
		same(dob, stringClaim(account, "birthdate"), func(a, b string) bool { return a == b })
	if !ok || compared == 0 {
		return DecisionDeny
	}
	return DecisionApprove
}

// idwScores are the scores the Provider puts next to a verdict (made-up values: ID
// Dataweb sends strings such as "100").
func idwScores(decision string) (risk, trust string) {
	if decision == DecisionApprove {
		return "100", "100"
	}
	return "0", "0"
}

// PathHintKeys serves the public keys a relying party encrypts ID Dataweb login_hints to,
// as a JWKS (use enc): the RSA key (alg RSA-OAEP-256), or with ?kty=EC the EC P-256 key
// (alg ECDH-ES+A256KW).
const PathHintKeys = "/idw/login-hint-keys"

// hintEncKeys are the Provider's login_hint decryption keys, made at first use (an RSA key
// takes a while to generate, and most tests never need it).
type hintEncKeys struct {
	rsaOnce, ecOnce sync.Once
	rsa             *rsa.PrivateKey
	ec              *ecdsa.PrivateKey
}

func (k *hintEncKeys) rsaKey() *rsa.PrivateKey {
	k.rsaOnce.Do(func() {
		var err error
		if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic("oidctest: generating the login_hint RSA key: " + err.Error())
		}
	})
	return k.rsa
}

func (k *hintEncKeys) ecKey() *ecdsa.PrivateKey {
	k.ecOnce.Do(func() {
		var err error
		if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic("oidctest: generating the login_hint EC key: " + err.Error())
		}
	})
	return k.ec
}

// HintEncryptionKeyPEM is the PEM ("PUBLIC KEY") of the Provider's RSA login_hint key, for
// a relying party's login_hint_encryption_key.
func (p *Provider) HintEncryptionKeyPEM() string {
	return publicPEM(&p.hintKeys.rsaKey().PublicKey)
}

// HintEncryptionECKeyPEM is the PEM of the Provider's EC P-256 login_hint key.
func (p *Provider) HintEncryptionECKeyPEM() string {
	return publicPEM(&p.hintKeys.ecKey().PublicKey)
}

// HintKeysURL is the JWKS URL of the login_hint keys (PathHintKeys).
func (p *Provider) HintKeysURL() string { return p.issuer + PathHintKeys }

func publicPEM(pub any) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func (p *Provider) handleHintKeys(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	key := jose.JSONWebKey{Key: &p.hintKeys.rsaKey().PublicKey, KeyID: "idw-hint-rsa", Algorithm: string(jose.RSA_OAEP_256), Use: "enc"}
	if r.URL.Query().Get("kty") == "EC" {
		key = jose.JSONWebKey{Key: &p.hintKeys.ecKey().PublicKey, KeyID: "idw-hint-ec", Algorithm: string(jose.ECDH_ES_A256KW), Use: "enc"}
	}
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{key}})
}

// decryptHint decrypts a compact JWE login_hint (RSA-OAEP-256, RSA-OAEP or ECDH-ES+A256KW;
// A256GCM; cty JWT) with the Provider's keys and returns the JWT inside.
func (p *Provider) decryptHint(hint string) (string, error) {
	jwe, err := jose.ParseEncryptedCompact(hint,
		[]jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.RSA_OAEP, jose.ECDH_ES_A256KW}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		return "", fmt.Errorf("the JWE is not RSA-OAEP-256, RSA-OAEP or ECDH-ES+A256KW with A256GCM: %v", err)
	}
	if cty, _ := jwe.Header.ExtraHeaders["cty"].(string); !strings.EqualFold(cty, "JWT") {
		return "", errors.New("the JWE has no cty JWT")
	}
	var key any = p.hintKeys.rsaKey()
	if jwe.Header.Algorithm == string(jose.ECDH_ES_A256KW) {
		key = p.hintKeys.ecKey()
	}
	inner, err := jwe.Decrypt(key)
	if err != nil {
		return "", errors.New("the JWE does not decrypt with this OP's login_hint key")
	}
	return string(bytes.TrimSpace(inner)), nil
}
