package oidcflow

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// CodeAccessToken: a bearer access token was refused (signature, alg, typ, iss, aud, exp,
// nbf, an ID token presented as an access token, size); the message names the failed
// check. Never temporary (a failure to fetch the OP's keys is CodeKeys).
const CodeAccessToken = "bearer_invalid"

// MaxAccessTokenBytes caps the size of a bearer access token accepted for parsing.
const MaxAccessTokenBytes = 16 << 10

// AccessTokenOptions say what VerifyAccessToken accepts.
type AccessTokenOptions struct {
	// Audiences: the token's aud must contain at least one of them. Required.
	Audiences []string
	// RequireATJWT requires the JOSE header typ "at+jwt" (or "application/at+jwt"), the
	// JWT access token profile (RFC 9068 §2.1). Without it, typ may also be absent or "JWT".
	RequireATJWT bool
}

// AccessToken is a verified JWT access token.
type AccessToken struct {
	Subject string
	Expiry  time.Time
	// Scopes are the granted scopes: the space-separated scope claim (RFC 9068 §2.2.3), or,
	// when there is none, an scp claim (an array of strings, or a space-separated string),
	// as some providers issue it.
	Scopes []string
	// Claims are the token's claims, numbers as float64.
	Claims map[string]any
}

// VerifyAccessToken verifies a JWT access token issued by the OP (RFC 9068): at most
// MaxAccessTokenBytes, a compact JWS (no JWE) with one signature whose alg is on the ID
// token allow-list (never none or HS*), signed with the OP's keys (the same rate-limited
// JWKS cache as ID tokens); typ as o says (never logout+jwt); iss the issuer exactly; aud
// containing one of o.Audiences; exp present and not passed, nbf and iat not in the
// future (both with the clock leeway); a sub; no nonce (an ID token is not an access
// token, threat model IDT-15). Claim names may not repeat.
//
// Every refusal is CodeAccessToken (never temporary) with a message naming the check,
// never the token; a failure to fetch the OP's keys is CodeKeys (temporary), and discovery
// failures are CodeDiscovery.
func (c *Client) VerifyAccessToken(ctx context.Context, raw string, o AccessTokenOptions) (*AccessToken, error) {
	fail := func(format string, args ...any) error {
		return newErr(CodeAccessToken, false, "access token "+format, args...)
	}
	if len(o.Audiences) == 0 {
		return nil, fail("cannot be checked: no audience is configured")
	}
	payload, err := c.verifyCompactJWS(ctx, raw, MaxAccessTokenBytes, fail, func(typ string, _ bool) error {
		switch {
		case strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt"):
		case o.RequireATJWT:
			return fail("typ %q is not at+jwt (RFC 9068; an ID token is not an access token)", truncate(typ, 40))
		case typ != "" && !strings.EqualFold(typ, "JWT"):
			return fail("typ %q is neither at+jwt nor JWT", truncate(typ, 40))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	claims, err := decodeObject(payload)
	if err != nil {
		return nil, fail("claims: %w", err)
	}
	if iss, _ := claims["iss"].(string); iss != c.cfg.Issuer {
		return nil, fail("iss is not the configured issuer")
	}
	if err := checkSubject(claims["sub"]); err != nil {
		return nil, fail("sub: %w", err)
	}
	return c.checkAccessClaims(claims, claims["sub"].(string), o, true, fail)
}

// checkAccessClaims runs the checks that a JWT access token and an introspection answer
// share: aud, no nonce, no cnf, exp (required when requireExp), nbf, iat and the scopes.
// iss and the subject are the caller's. It returns the token with its claims.
func (c *Client) checkAccessClaims(claims map[string]any, sub string, o AccessTokenOptions, requireExp bool, fail func(string, ...any) error) (*AccessToken, error) {
	auds, ok := audienceList(claims["aud"])
	if !ok {
		return nil, fail("has no aud (or it is not a string or an array of strings)")
	}
	if !slices.ContainsFunc(auds, func(a string) bool { return slices.Contains(o.Audiences, a) }) {
		return nil, fail("aud names none of the configured audiences")
	}
	if _, ok := claims["nonce"]; ok {
		return nil, fail("carries a nonce (an ID token is not an access token)")
	}
	// A sender-constrained token (DPoP, RFC 9449, or mTLS, RFC 8705) is only worth anything
	// with its proof of possession, which a plain Bearer request does not carry (RFC 9449
	// §7.1): accepting it would let whoever copied it use it.
	if _, ok := claims["cnf"]; ok {
		return nil, fail("is bound to a key (cnf: DPoP or mTLS) and the request carries no proof of possession")
	}
	now, leeway := c.cfg.Now(), c.cfg.ClockLeeway
	exp, err := checkExpNbf(claims, now, leeway, requireExp, fail)
	if err != nil {
		return nil, err
	}
	iat, err := timeClaim(claims, "iat", false)
	if err != nil {
		return nil, fail("iat: %w", err)
	}
	if !iat.IsZero() && iat.After(now.Add(leeway)) {
		return nil, fail("iat is in the future (clock skew beyond the leeway?)")
	}
	at := &AccessToken{Subject: sub, Expiry: exp}
	if at.Scopes, err = scopeList(claims); err != nil {
		return nil, fail("%w", err)
	}
	at.Claims = normalizeNumbers(claims)
	return at, nil
}

// checkExpNbf checks a token's validity window with the clock leeway: exp (required when
// requireExp) not passed and nbf not in the future. It returns exp (zero when absent).
func checkExpNbf(claims map[string]any, now time.Time, leeway time.Duration, requireExp bool, fail func(string, ...any) error) (time.Time, error) {
	exp, err := timeClaim(claims, "exp", requireExp)
	if err != nil {
		return time.Time{}, fail("exp: %w", err)
	}
	if !exp.IsZero() && !now.Before(exp.Add(leeway)) {
		return time.Time{}, fail("expired at %s", exp.UTC().Format(time.RFC3339))
	}
	nbf, err := timeClaim(claims, "nbf", false)
	if err != nil {
		return time.Time{}, fail("nbf: %w", err)
	}
	if !nbf.IsZero() && now.Add(leeway).Before(nbf) {
		return time.Time{}, fail("is not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	return exp, nil
}

// scopeList reads the scope claim (a space-separated string), or scp when scope is absent.
func scopeList(claims map[string]any) ([]string, error) {
	v, ok := claims["scope"]
	name := "scope"
	if !ok {
		if v, ok = claims["scp"]; !ok {
			return nil, nil
		}
		name = "scp"
	}
	switch s := v.(type) {
	case string:
		return strings.Fields(s), nil
	case []any:
		if name == "scp" {
			out := make([]string, 0, len(s))
			for _, e := range s {
				str, isString := e.(string)
				if !isString || str == "" || strings.ContainsAny(str, " \t\r\n") {
					return nil, errors.New("scp is not an array of scope names")
				}
				out = append(out, str)
			}
			return out, nil
		}
	}
	return nil, errors.New(name + " is not a string of space-separated scope names")
}
