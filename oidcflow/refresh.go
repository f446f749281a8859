package oidcflow

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// RefreshRequest is one refresh of a session's tokens.
type RefreshRequest struct {
	// RefreshToken is the session's current refresh token.
	RefreshToken string
	// Claims are the session's current merged claims (Login.Claims of the login or of the
	// last refresh). They hold the identity a refreshed ID token must keep (iss, sub, aud,
	// azp, auth_time, nonce) and are the base the new claims overlay. Not modified.
	Claims map[string]any
	// IDToken is the session's current ID token (verified when it was issued). When set,
	// the refreshed claims are rebuilt from the new ID token (or this one, when the answer
	// has none) plus fresh userinfo, so a claim the provider no longer sends goes away.
	// Without it, the new claims overlay Claims.
	IDToken string
}

// Refresh redeems r.RefreshToken at the token endpoint (grant_type=refresh_token, the
// configured client authentication) and returns the new tokens and claims.
//
// An ID token in the answer is verified as at login (signature, alg allow-list, exp, nbf,
// iat, at_hash, untrusted audiences, azp) except the nonce, and must keep the session's
// identity (OIDC Core 12.2): the same iss, sub, audience set and azp, auth_time equal to the
// session's when present, and a nonce, if present, equal to the session's. Otherwise the
// error is CodeRefreshIdentityMismatch. No ID token is fine: the claims are kept.
//
// Login.Claims are r.Claims, overlaid by the new ID token's claims, then merged with freshly
// fetched userinfo as Exchange merges them. When userinfo fails after the tokens were
// rotated, Refresh still returns the Login, with r.Claims, UserinfoStale set and the reason
// in UserinfoErr: the caller must store the new refresh token, the old one is spent.
//
// Errors: CodeRefreshRejected when the OP refuses the grant (invalid_grant, invalid_token,
// unauthorized_client: end the session); CodeClientRejected, temporary, when it refuses the
// gateway itself (invalid_client and other request errors: a configuration fault that
// must not sign every user out); CodeTokenEndpoint, temporary, for network failures,
// timeouts and 5xx; CodeTokenResponse for an answer that is no usable token response
// (temporary when it could not be parsed at all, as from a proxy's error page).
func (c *Client) Refresh(ctx context.Context, r RefreshRequest) (*Login, error) {
	if r.RefreshToken == "" {
		return nil, newErr(CodeRefreshInvalid, false, "the session has no refresh token")
	}
	sub, _ := r.Claims["sub"].(string)
	if sub == "" {
		return nil, newErr(CodeRefreshInvalid, false, "the session's claims have no sub")
	}
	p, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	// An access-token-less token makes the source refresh at once.
	src := p.oauth.TokenSource(oidc.ClientContext(ctx, c.cfg.HTTPClient), &oauth2.Token{RefreshToken: r.RefreshToken})
	tok, err := src.Token()
	if err != nil {
		return nil, c.withClientAuthHint(refreshEndpointError(err))
	}
	if err := c.checkTokenType(tok.TokenType, " on refresh"); err != nil {
		return nil, err
	}
	if tok.AccessToken == "" {
		return nil, newErr(CodeTokenResponse, false, "token endpoint returned no access_token on refresh")
	}
	login := &Login{
		Subject:     sub,
		AccessToken: tok.AccessToken,
		// x/oauth2 fills in the refresh token sent when the answer carries none.
		RefreshToken: tok.RefreshToken,
		Expiry:       tokenExpiry(tok),
	}

	base := maps.Clone(r.Claims)
	if old, ok := unverifiedPayload(r.IDToken); ok {
		base = old // rebuilt: the ID token's claims, then fresh userinfo below
	}
	switch v := tok.Extra("id_token").(type) {
	case nil:
	case string:
		if v == "" {
			break
		}
		idClaims, err := c.verifyRefreshedIDToken(ctx, p, v, tok.AccessToken, r.Claims)
		if err != nil {
			return nil, err
		}
		login.IDToken, login.IDTokenClaims = v, idClaims
		if r.IDToken != "" {
			base = maps.Clone(idClaims)
		} else {
			for k, x := range idClaims {
				base[k] = x
			}
		}
	default:
		return nil, newErr(CodeTokenResponse, false, "token endpoint returned an id_token that is not a string on refresh")
	}

	if c.cfg.Userinfo != UserinfoOff && p.meta.UserinfoEndpoint != "" {
		ui, signed, err := c.userinfo(ctx, p, c.authorization(tok.AccessToken, tok.TokenType), sub)
		if errors.Is(err, errUserinfoSubMismatch) {
			// The new access token speaks for someone else: never switch identities.
			return nil, newErr(CodeRefreshIdentityMismatch, false, "after the refresh, %w", err)
		}
		if err != nil {
			login.Claims = maps.Clone(r.Claims)
			login.UserinfoStale, login.UserinfoErr = true, err
			return login, nil
		}
		login.UserinfoClaims, login.SignedUserinfo = ui, signed
	}
	login.Claims = mergeClaims(base, login.UserinfoClaims, c.cfg.IDTokenFirstClaims...)
	return login, nil
}

// refreshEndpointError classifies a failed refresh_token grant. Unlike a code exchange,
// what matters is whether the session's grant is dead (end the session) or not.
func refreshEndpointError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		var e *Error
		switch {
		case status >= 500 || status == 0 || status == http.StatusTooManyRequests:
			e = newErr(CodeTokenEndpoint, true, "token endpoint answered HTTP %d to the refresh", status)
		case re.ErrorCode == "invalid_dpop_proof" || re.ErrorCode == "use_dpop_nonce":
			// The gateway's proof, not the session's grant: kept, like invalid_client.
			e = newErr(CodeDPoPRejected, true, "token endpoint refused the gateway's DPoP proof on refresh (HTTP %d): %s", status, truncate(re.ErrorDescription, 200))
		case re.ErrorCode == "invalid_grant" || re.ErrorCode == "invalid_token" || re.ErrorCode == "unauthorized_client":
			e = newErr(CodeRefreshRejected, false, "the OP refused the refresh token (HTTP %d): %s", status, truncate(re.ErrorDescription, 200))
		default:
			// invalid_client, invalid_request, unsupported_grant_type, ...: the OP refuses
			// the gateway's request, not this session's grant. That is the operator's
			// misconfiguration (secret rotated, auth method changed): temporary, so that
			// the gateway keeps every session instead of signing all users out at once.
			e = newErr(CodeClientRejected, true, "token endpoint refused the gateway's refresh request (HTTP %d): %s; check client_id, client_secret and token_auth_method", status, truncate(re.ErrorDescription, 200))
		}
		e.OPError = truncate(re.ErrorCode, 64)
		return e
	}
	e, ok := tokenEndpointError(err).(*Error)
	if ok && e.Code == CodeTokenResponse {
		// Not a token response at all (an HTML error page from a proxy, a truncated
		// body): the OP may still hold the grant, so the session is kept and retried.
		e.Temporary = true
	}
	return e
}

// verifyRefreshedIDToken verifies an ID token from a refresh answer and returns its claims
// (numbers normalised). prev are the session's claims.
func (c *Client) verifyRefreshedIDToken(ctx context.Context, p *provider, raw, accessToken string, prev map[string]any) (map[string]any, error) {
	idt, claims, err := c.parseIDToken(ctx, p.rfVerifier, raw)
	if err != nil {
		return nil, err
	}
	// Identity first: a well-signed token for another iss, sub or audience is the OP
	// answering with someone else, not a malformed token.
	if err := c.checkRefreshIdentity(claims, prev); err != nil {
		return nil, newErr(CodeRefreshIdentityMismatch, false, "%w", err)
	}
	if err := c.checkIDTokenClaims(claims); err != nil {
		return nil, newErr(CodeIDToken, false, "refreshed %w", err)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(accessToken); err != nil {
			return nil, newErr(CodeIDToken, false, "refreshed id token at_hash does not match the access token: %w", err)
		}
	}
	return normalizeNumbers(claims), nil
}

// checkRefreshIdentity applies OIDC Core 12.2: a refreshed ID token keeps iss, sub, aud
// and azp; auth_time, when present, is the original authentication's; a nonce, if present,
// is the original one.
func (c *Client) checkRefreshIdentity(claims, prev map[string]any) error {
	iss, _ := claims["iss"].(string)
	if iss != c.cfg.Issuer || iss != prev["iss"] {
		return errors.New("refreshed id token iss differs from the session's issuer")
	}
	if s, _ := claims["sub"].(string); s == "" || s != prev["sub"] {
		return errors.New("refreshed id token sub differs from the session's subject")
	}
	newAud, ok1 := audienceList(claims["aud"])
	oldAud, ok2 := audienceList(prev["aud"])
	if !ok1 || !ok2 || !sameSet(newAud, oldAud) || !slices.Contains(newAud, c.cfg.ClientID) {
		return errors.New("refreshed id token aud differs from the session's audience")
	}
	newAzp, hasNew := claims["azp"]
	oldAzp, hasOld := prev["azp"]
	if hasNew != hasOld || (hasNew && !sameString(newAzp, oldAzp)) {
		return errors.New("refreshed id token azp differs from the session's")
	}
	if at, ok := claims["auth_time"]; ok {
		a, okA := numberOf(at)
		b, okB := numberOf(prev["auth_time"])
		if !okA || !okB || a != b {
			return errors.New("refreshed id token auth_time differs from the original authentication's")
		}
	}
	if n, ok := claims["nonce"]; ok {
		got, _ := n.(string)
		want, _ := prev["nonce"].(string)
		if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			return errors.New("refreshed id token nonce differs from the original one")
		}
	}
	return nil
}

// audienceList reads an aud claim: a string or a non-empty array of strings.
func audienceList(v any) ([]string, bool) {
	switch a := v.(type) {
	case string:
		return []string{a}, a != ""
	case []string:
		return a, len(a) > 0
	case []any:
		out := make([]string, 0, len(a))
		for _, x := range a {
			s, ok := x.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, len(out) > 0
	}
	return nil, false
}

func sameSet(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

func sameString(a, b any) bool {
	s, ok1 := a.(string)
	t, ok2 := b.(string)
	return ok1 && ok2 && s == t
}

// numberOf reads a JSON number in any of the shapes a claim set may hold it.
func numberOf(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case uint64:
		return float64(n), true
	}
	return 0, false
}

// unverifiedPayload decodes the claims of a JWT this client verified before (the session's
// stored ID token). It does not verify anything and must not be used on input from
// elsewhere.
func unverifiedPayload(raw string) (map[string]any, bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	m, err := decodeObject(b)
	if err != nil {
		return nil, false
	}
	return normalizeNumbers(m), true
}
