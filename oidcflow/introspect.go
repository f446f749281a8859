package oidcflow

import (
	"context"
	"net/http"
	"strings"
)

// Introspection reason codes (RFC 7662). A token the OP calls inactive, or whose answer
// fails a check, is CodeAccessToken like a refused JWT.
const (
	// CodeIntrospectionFailed: the introspection endpoint was unreachable, timed out,
	// answered 408, 429 or 5xx, or answered something that is not a JSON object. Always
	// temporary: the token was not judged.
	CodeIntrospectionFailed = "introspection_failed"
	// CodeIntrospectionUnavailable: the OP advertises no introspection_endpoint, or refused
	// the gateway's own client authentication there (400/401/403). Nothing can be judged
	// until the configuration changes. Never temporary.
	CodeIntrospectionUnavailable = "introspection_unavailable"
)

// IsOpaqueToken reports whether raw is not shaped like a compact JWS (three base64url
// parts): such a token can only be judged by introspection.
func IsOpaqueToken(raw string) bool { return strings.Count(raw, ".") != 2 }

// isB64Token reports whether s is an RFC 6750 §2.1 b64token: 1*( ALPHA / DIGIT / "-" /
// "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

// IntrospectAccessToken asks the OP's introspection endpoint (RFC 7662, from discovery)
// about raw, authenticated as the gateway's client, and applies the checks of
// VerifyAccessToken to the answer: active exactly true; iss, when present, the issuer;
// token_type, when present, Bearer (a DPoP-bound or refresh token is refused); aud
// containing one of o.Audiences; no nonce, no cnf; exp (when present) not passed, nbf and
// iat not in the future (with the leeway). The subject is sub, or client_id for a token
// without one (a client_credentials token, as RFC 9068 §2.2 names it). Nothing is sent to
// the OP for a token over MaxAccessTokenBytes or outside the RFC 6750 b64token alphabet.
//
// A refusal is CodeAccessToken (never temporary); a failure of the endpoint is
// CodeIntrospectionFailed (temporary); a missing endpoint or an OP that refuses the
// gateway's credentials is CodeIntrospectionUnavailable.
func (c *Client) IntrospectAccessToken(ctx context.Context, raw string, o AccessTokenOptions) (*AccessToken, error) {
	fail := func(format string, args ...any) error {
		return newErr(CodeAccessToken, false, "access token "+format, args...)
	}
	switch {
	case len(o.Audiences) == 0:
		return nil, fail("cannot be checked: no audience is configured")
	case len(raw) > MaxAccessTokenBytes:
		return nil, fail("is longer than %d bytes", MaxAccessTokenBytes)
	case !isB64Token(raw):
		return nil, fail("is not an RFC 6750 b64token (it has characters a token never has)")
	}
	p, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	if p.meta.IntrospectionEndpoint == "" {
		return nil, newErr(CodeIntrospectionUnavailable, false, "the provider's discovery document has no introspection_endpoint: opaque access tokens cannot be checked (issue JWT access tokens, or use a provider with RFC 7662 introspection)")
	}
	status, h, body, err := c.postForm(ctx, p.meta.IntrospectionEndpoint, map[string][]string{
		"token": {raw}, "token_type_hint": {"access_token"},
	})
	switch {
	case err != nil:
		return nil, newErr(CodeIntrospectionFailed, true, "introspection endpoint: %w", err)
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return nil, newErr(CodeIntrospectionFailed, true, "introspection endpoint answered HTTP %d", status)
	case status != http.StatusOK:
		code, desc := c.opError(h, body, raw)
		e := newErr(CodeIntrospectionUnavailable, false, "introspection endpoint refused the gateway's request with HTTP %d (%s): check client_id, the client secret and that the client may introspect", status, desc)
		e.OPError = code
		return nil, e
	}
	claims, err := decodeObject(body)
	if err != nil {
		return nil, newErr(CodeIntrospectionFailed, true, "introspection answer: %w", err)
	}
	if active, _ := claims["active"].(bool); !active {
		return nil, fail("is not active (the provider says it is expired, revoked or unknown)")
	}
	if iss, ok := claims["iss"]; ok && iss != c.cfg.Issuer {
		return nil, fail("iss is not the configured issuer")
	}
	if tt, ok := claims["token_type"]; ok {
		if s, _ := tt.(string); !strings.EqualFold(s, "Bearer") {
			return nil, fail("token_type %q is not Bearer (a DPoP-bound or refresh token is not a bearer access token)", truncate(s, 40))
		}
	}
	sub, ok := claims["sub"]
	if !ok {
		sub = claims["client_id"]
	}
	if err := checkSubject(sub); err != nil {
		return nil, fail("sub (or client_id): %w", err)
	}
	delete(claims, "active")
	claims["sub"] = sub
	return c.checkAccessClaims(claims, sub.(string), o, false, fail)
}
