package oidctest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Identity binding (ID Dataweb "Identity Binding", seed 002): the relying party passes the
// account's profile in login_hint, and the Provider verifies that the user who logs in
// matches that account. Two formats:
//
//   - ID Dataweb's own (hintIDDataweb): a JWT signed HS256 with the client secret, with ID
//     Dataweb's field names (fname, lname, dialCode, telephone, ...), optionally encrypted
//     to the Provider's login_hint key (a compact JWE, cty JWT). The login always gets a
//     code; the ID token carries the verdict, policyDecision "approve" or "deny", with
//     idwRiskScore and idwTrustScore, as ID Dataweb's Gateway does.
//   - trustgate's generic one (hintJWT): a JWT signed ES256 or RS256 with a key of
//     Options.LoginHintJWKS, with OIDC claim names; a mismatch is error access_denied.

// ID Dataweb's verdict claims and values (ID token).
const (
	ClaimPolicyDecision = "policyDecision"
	ClaimRiskScore      = "idwRiskScore"
	ClaimTrustScore     = "idwTrustScore"
	DecisionApprove     = "approve"
	DecisionDeny        = "deny"
)

// Login hint formats (Binding.Format).
const (
	HintFormatJWT       = "jwt"
	HintFormatIDDataweb = "iddataweb"
)

// Binding is an identity-binding request the Provider verified (LastBinding).
type Binding struct {
	// Format is HintFormatJWT or HintFormatIDDataweb.
	Format string
	// Encrypted: the login_hint was a JWE the Provider decrypted.
	Encrypted bool
	// Claims are the verified claims of the login_hint (the prefill).
	Claims map[string]any
	// Subject is the user who logged in; Decision the verdict (DecisionApprove or
	// DecisionDeny; for HintFormatJWT a denial is an access_denied error).
	Subject, Decision string
}

// Limits on login_hint JWTs.
const (
	// MaxLoginHintLifetime is the longest a login_hint JWT may live: exp - iat, and exp -
	// now when it is verified.
	MaxLoginHintLifetime = 10 * time.Minute
	// loginHintLeeway tolerates the relying party's clock running ahead for iat and nbf.
	loginHintLeeway   = time.Minute
	maxLoginHintBytes = 16 << 10
)

// Binding denial descriptions (error access_denied, HintFormatJWT).
const (
	BindingDeniedMismatch = "account match failed"
	BindingDeniedHighRisk = "high risk"
)

// errHintKeysUnavailable: LoginHintJWKS failed or returned something unusable.
var errHintKeysUnavailable = errors.New("the keys that verify login_hint JWTs are unavailable")

// loginHintAlgs are the algorithms a login_hint JWT may be signed with.
var loginHintAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256}

// isJWTShaped reports whether a login_hint is meant as a JWT: three dot-separated
// base64url parts (the last may be empty, as with alg none) whose first decodes to a JSON
// object. An e-mail address or a user name is not.
func isJWTShaped(hint string) bool {
	parts := strings.Split(hint, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
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
	return json.Unmarshal(hb, &h) == nil && h != nil
}

// loginHintBinding verifies a login_hint that is a JWT or a JWE and returns the binding it
// asks for (Decision and Subject still empty). It returns nil, with no error, for an
// ordinary hint (an e-mail address, a user name), which is passed through unchanged.
func (p *Provider) loginHintBinding(hint string, client Client) (*Binding, error) {
	if hint == "" {
		return nil, nil
	}
	if len(hint) > maxLoginHintBytes {
		if isJWTShaped(hint) || isJWEShaped(hint) {
			return nil, fmt.Errorf("the JWT is longer than %d bytes", maxLoginHintBytes)
		}
		return nil, nil
	}
	if isJWEShaped(hint) {
		inner, err := p.decryptHint(hint)
		if err != nil {
			return nil, err
		}
		if headerAlg(inner) != "HS256" {
			return nil, errors.New("the JWE does not hold an HS256 JWT (ID Dataweb's format)")
		}
		claims, err := p.idwHintClaims(inner, client)
		if err != nil {
			return nil, err
		}
		return &Binding{Format: HintFormatIDDataweb, Encrypted: true, Claims: claims}, nil
	}
	if !isJWTShaped(hint) {
		return nil, nil
	}
	if headerAlg(hint) == "HS256" {
		claims, err := p.idwHintClaims(hint, client)
		if err != nil {
			return nil, err
		}
		return &Binding{Format: HintFormatIDDataweb, Claims: claims}, nil
	}
	claims, _, err := p.loginHintProfile(hint)
	if err != nil {
		return nil, err
	}
	return &Binding{Format: HintFormatJWT, Claims: claims}, nil
}

// loginHintProfile verifies a JWT login_hint of trustgate's generic format and returns its
// claims (the prefilled profile). isJWT is false, with no error, for an ordinary hint.
func (p *Provider) loginHintProfile(hint string) (profile map[string]any, isJWT bool, err error) {
	if hint == "" || !isJWTShaped(hint) {
		return nil, false, nil
	}
	if len(hint) > maxLoginHintBytes {
		return nil, true, fmt.Errorf("the JWT is longer than %d bytes", maxLoginHintBytes)
	}
	if p.hintJWKS == nil {
		return nil, true, errors.New("is a JWT, but this OP has no keys configured to verify login_hint JWTs")
	}
	jws, err := jose.ParseSignedCompact(hint, loginHintAlgs)
	if err != nil {
		return nil, true, fmt.Errorf("the JWT is not signed with ES256 or RS256: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, true, errors.New("the JWT must carry exactly one signature")
	}
	sig := jws.Signatures[0]
	raw, err := p.hintJWKS()
	if err != nil {
		return nil, true, fmt.Errorf("%w: %v", errHintKeysUnavailable, err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, true, fmt.Errorf("%w: not a JWKS: %v", errHintKeysUnavailable, err)
	}
	var payload []byte
	for _, k := range set.Keys {
		if sig.Header.KeyID != "" && k.KeyID != sig.Header.KeyID {
			continue
		}
		if (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && k.Algorithm != sig.Header.Algorithm) || !k.Valid() {
			continue
		}
		if b, err := jws.Verify(k); err == nil {
			payload = b
			break
		}
	}
	if payload == nil {
		return nil, true, errors.New("the JWT signature does not verify with the configured keys")
	}
	claims, err := decodeHintClaims(payload)
	if err != nil {
		return nil, true, err
	}
	if err := p.checkHintClaims(claims); err != nil {
		return nil, true, err
	}
	if fullName(claims) == "" && stringClaim(claims, "phone_number") == "" {
		return nil, true, errors.New("the profile has neither a name (name, or given_name and family_name) nor a phone_number to match")
	}
	return claims, true, nil
}

func decodeHintClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return nil, errors.New("the JWT claims are not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JWT claims")
	}
	return claims, nil
}

// checkHintClaims: iss non-empty; aud this issuer (a string, or an array of just it); exp
// present, in the future and at most MaxLoginHintLifetime away; iat, when present, not in
// the future and at most MaxLoginHintLifetime before exp; nbf, when present, passed.
func (p *Provider) checkHintClaims(c map[string]any) error {
	if iss, _ := c["iss"].(string); iss == "" {
		return errors.New("the JWT has no iss")
	}
	switch aud := c["aud"].(type) {
	case string:
		if aud != p.issuer {
			return errors.New("the JWT aud is not this OP's issuer")
		}
	case []any:
		if len(aud) != 1 || aud[0] != p.issuer {
			return errors.New("the JWT aud is not this OP's issuer (alone)")
		}
	default:
		return errors.New("the JWT has no aud")
	}
	now := p.now()
	exp, ok, err := numericDate(c, "exp")
	switch {
	case err != nil:
		return err
	case !ok:
		return errors.New("the JWT has no exp")
	case !now.Before(exp):
		return errors.New("the JWT has expired")
	case exp.Sub(now) > MaxLoginHintLifetime:
		return fmt.Errorf("the JWT lives longer than %s", MaxLoginHintLifetime)
	}
	if iat, ok, err := numericDate(c, "iat"); err != nil {
		return err
	} else if ok {
		if iat.After(now.Add(loginHintLeeway)) {
			return errors.New("the JWT iat is in the future")
		}
		if exp.Sub(iat) > MaxLoginHintLifetime {
			return fmt.Errorf("the JWT lives longer than %s (exp - iat)", MaxLoginHintLifetime)
		}
	}
	if nbf, ok, err := numericDate(c, "nbf"); err != nil {
		return err
	} else if ok && nbf.After(now.Add(loginHintLeeway)) {
		return errors.New("the JWT is not valid yet (nbf)")
	}
	return nil
}

func numericDate(c map[string]any, name string) (time.Time, bool, error) {
	v, ok := c[name]
	if !ok {
		return time.Time{}, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false, fmt.Errorf("the JWT %s is not a number", name)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return time.Time{}, false, fmt.Errorf("the JWT %s is out of range", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// bindingDecision decides an identity binding for the user who logged in, in the seed's
// order: a high-risk session is denied first (Session Risk); then the prefilled profile
// must match the account (PII Validation): the full names (name, or given_name and
// family_name), compared case-insensitively with runs of white space folded, and the
// phone numbers, compared after removing spaces, dashes, dots and parentheses, wherever
// both the profile and the user have them; at least one of the two must have been
// compared. It returns the authorization error and description, or "" to approve.
func bindingDecision(u User, profile map[string]any) (code, desc string) {
	if u.HighRisk {
		return "access_denied", BindingDeniedHighRisk
	}
	account := cloneMap(u.UserinfoClaims)
	if account == nil {
		account = map[string]any{}
	}
	for k, v := range u.IDTokenClaims {
		account[k] = v
	}
	compared := 0
	if a, b := fullName(profile), fullName(account); a != "" && b != "" {
		if !strings.EqualFold(a, b) {
			return "access_denied", BindingDeniedMismatch
		}
		compared++
	}
	if a, b := phoneDigits(stringClaim(profile, "phone_number")), phoneDigits(stringClaim(account, "phone_number")); a != "" && b != "" {
		if a != b {
			return "access_denied", BindingDeniedMismatch
		}
		compared++
	}
	if compared == 0 {
		return "access_denied", BindingDeniedMismatch
	}
	return "", ""
}

// fullName is the name claim, or given_name and family_name joined when both are set; white
// space runs are folded to one space. "" when neither is available.
func fullName(c map[string]any) string {
	if n := strings.Join(strings.Fields(stringClaim(c, "name")), " "); n != "" {
		return n
	}
	given := strings.Join(strings.Fields(stringClaim(c, "given_name")), " ")
	family := strings.Join(strings.Fields(stringClaim(c, "family_name")), " ")
	if given == "" || family == "" {
		return ""
	}
	return given + " " + family
}

// phoneDigits drops the punctuation people write phone numbers with; a leading + stays.
func phoneDigits(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '-', '.', '(', ')', '\u00a0':
			return -1
		}
		return r
	}, strings.TrimSpace(s))
}

func stringClaim(c map[string]any, name string) string {
	s, _ := c[name].(string)
	return s
}

// ---- ID Dataweb's login_hint -----------------------------------------------------------

// ---- the Provider's login_hint encryption keys -------------------------------------------

// LastBinding returns the last identity-binding request an authorization approved or
// denied (nil when none): the verified prefill and the verdict.
func (p *Provider) LastBinding() *Binding {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lastBinding == nil {
		return nil
	}
	b := *p.lastBinding
	b.Claims = cloneMap(b.Claims)
	return &b
}
