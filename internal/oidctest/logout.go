package oidctest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// BackchannelLogoutEvent is the events member that makes a JWT a logout token (OIDC
// Back-Channel Logout 1.0 §2.4).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// LogoutTokenLifetime is the exp - iat of the claims LogoutClaims returns (as the OpenID
// conformance suite sends them).
const LogoutTokenLifetime = 120 * time.Second

// LogoutTokenOptions choose how LogoutToken signs. The zero value signs like the Provider
// signs ID tokens: its alg, its current key and kid, typ "logout+jwt".
type LogoutTokenOptions struct {
	// Alg is the header alg: "" for the Provider's own; "none" for an unsigned token (no
	// kid, empty signature); "HS256" (or HS384/HS512) for a MAC keyed with the secret of
	// the client the aud claim names (DefaultClientSecret when it names no registered
	// client), without kid. Any other value is written into the header and the token is
	// signed as signJWT does (see the package doc).
	Alg string
	// ForeignKey signs with a key of the Provider's algorithm that is not in the JWKS,
	// under the kid of the published signing key.
	ForeignKey bool
	// OtherAlgKey signs with an unpublished key of the other algorithm (ES256 when the
	// Provider signs RS256, RS256 when it signs ES256), header alg set accordingly, under
	// the kid of the published signing key.
	OtherAlgKey bool
	// KID, when set, replaces the kid header (the signature is still made with the key the
	// other fields choose), e.g. a random kid for JWKS refetch tests.
	KID string
	// Typ is the typ header. Default: "logout+jwt".
	Typ string
	// OmitTyp leaves the typ header out (Typ is then ignored).
	OmitTyp bool
}

// LogoutClaims returns the claims of a valid logout token for clientID: iss, aud
// (clientID), iat (now), exp (iat + LogoutTokenLifetime), a random jti, events with the
// back-channel logout event, and sub and sid when they are not empty. The map is the
// caller's to change before LogoutToken signs it.
func (p *Provider) LogoutClaims(clientID, sub, sid string) map[string]any {
	now := p.now()
	claims := map[string]any{
		"iss":    p.issuer,
		"aud":    clientID,
		"iat":    now.Unix(),
		"exp":    now.Add(LogoutTokenLifetime).Unix(),
		"jti":    randomToken(),
		"events": map[string]any{BackchannelLogoutEvent: map[string]any{}},
	}
	if sub != "" {
		claims["sub"] = sub
	}
	if sid != "" {
		claims["sid"] = sid
	}
	return claims
}

// SID returns the sid claim of a token this Provider issued (e.g. an ID token from the
// token endpoint), or "" when it has none or does not verify with a published key.
func (p *Provider) SID(idToken string) string {
	claims, err := p.verifyOwnJWT(idToken)
	if err != nil {
		return ""
	}
	s, _ := claims["sid"].(string)
	return s
}

// LogoutToken signs claims as a back-channel logout token, as o says. It signs whatever
// it is given, valid or not, so tests can build every kind of bad token; LogoutClaims
// gives valid claims to start from. It panics if the claims cannot be encoded or a key
// cannot be had (programming errors in a test).
func (p *Provider) LogoutToken(claims map[string]any, o LogoutTokenOptions) string {
	key := p.currentKey()
	signer := key
	header := map[string]any{"alg": key.alg, "kid": key.kid, "typ": "logout+jwt"}
	if o.Typ != "" {
		header["typ"] = o.Typ
	}
	if o.OmitTyp {
		delete(header, "typ")
	}
	var err error
	switch {
	case o.ForeignKey:
		signer, err = unpublishedKey(key.alg)
	case o.OtherAlgKey:
		other := algES256
		if key.alg == algES256 {
			other = algRS256
		}
		signer, err = unpublishedKey(other)
		header["alg"] = other
	}
	if err != nil {
		panic(err)
	}
	if o.Alg != "" {
		header["alg"] = o.Alg
		if _, hmac := hmacHash(o.Alg); hmac || strings.EqualFold(o.Alg, "none") {
			delete(header, "kid")
		}
	}
	if o.KID != "" {
		header["kid"] = o.KID
	}
	tok, err := signJWT(header, claims, signer, []byte(p.secretFor(claims["aud"])))
	if err != nil {
		panic(err)
	}
	return tok
}

// secretFor is the secret of the first registered client that aud names.
func (p *Provider) secretFor(aud any) string {
	for _, a := range audiences(aud) {
		if c, ok := p.clients[a]; ok {
			return c.Secret
		}
	}
	return DefaultClientSecret
}

// SendBackchannelLogout POSTs token to a relying party's back-channel logout URI as an OP
// does: application/x-www-form-urlencoded logout_token=<token>, no redirects followed. It
// returns the response status and body (at most 64 KiB). uri must be an http(s) URL on a
// loopback host.
func (p *Provider) SendBackchannelLogout(ctx context.Context, uri, token string) (status int, body string, err error) {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !isLoopbackHost(u.Hostname()) {
		return 0, "", fmt.Errorf("oidctest: back-channel logout URI %q is not an http(s) URL on a loopback host", uri)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return 0, "", fmt.Errorf("oidctest: back-channel logout request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	c := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("oidctest: back-channel logout: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil && !errors.Is(err, io.EOF) {
		return resp.StatusCode, string(b), fmt.Errorf("oidctest: reading the back-channel logout response: %w", err)
	}
	return resp.StatusCode, string(b), nil
}
