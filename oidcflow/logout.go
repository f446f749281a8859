package oidcflow

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// BackchannelLogoutEvent is the member of a logout token's events claim that makes it one
// (OIDC Back-Channel Logout 1.0 §2.4).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// MaxLogoutTokenAge is how old (by iat) a logout token may be, on top of the clock leeway.
const MaxLogoutTokenAge = 10 * time.Minute

// LogoutToken is a verified back-channel logout token. At least one of Subject and SID is
// set; the sessions to end are those of SID at Issuer, or all of Subject's when SID is "".
type LogoutToken struct {
	Issuer   string
	Subject  string // "" when the token names only a session
	SID      string // "" when the token names only a subject
	JTI      string // unique per token: the caller refuses a replay
	IssuedAt time.Time
	Expiry   time.Time // zero when the token has no exp
}

// VerifyLogoutToken verifies a back-channel logout token as OIDC Back-Channel Logout 1.0
// §2.6 says: a compact JWS (no JWE) whose alg is on the ID token allow-list (never none or
// HS*), signed with the OP's keys; typ, if present, logout+jwt; iss the issuer exactly; aud
// the client (other audiences only if trusted); iat within the last MaxLogoutTokenAge (plus
// leeway) and not in the future; exp, when present, not passed; a jti; an events claim
// with the back-channel logout event as an object; no nonce; a sid and/or a sub. Claim
// names may not repeat and the token is at most MaxTokenBytes.
//
// Every refusal is CodeLogoutToken (never temporary) with a message naming the check; a
// failure to fetch the OP's keys is CodeKeys (temporary), and discovery failures are
// CodeDiscovery. VerifyLogoutToken does not detect replays: the caller records JTI.
func (c *Client) VerifyLogoutToken(ctx context.Context, raw string) (*LogoutToken, error) {
	fail := func(format string, args ...any) error {
		return newErr(CodeLogoutToken, false, "logout token "+format, args...)
	}
	// A JWE has five parts, the JSON serializations none: only a compact JWS is a logout
	// token (§2.6 step 1 lets RPs refuse encrypted ones they did not ask for).
	payload, err := c.verifyCompactJWS(ctx, raw, MaxTokenBytes, fail, func(typ string, present bool) error {
		if present && !strings.EqualFold(typ, "logout+jwt") && !strings.EqualFold(typ, "application/logout+jwt") {
			return fail("typ %q is not logout+jwt (an ID token or access token is not a logout token)", truncate(typ, 40))
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

	lt := &LogoutToken{}
	if lt.Issuer, _ = claims["iss"].(string); lt.Issuer != c.cfg.Issuer {
		return nil, fail("iss is not the configured issuer")
	}
	auds, ok := audienceList(claims["aud"])
	if !ok {
		return nil, fail("has no aud (or it is not a string or an array of strings)")
	}
	if !slices.Contains(auds, c.cfg.ClientID) {
		return nil, fail("aud does not name this client")
	}
	for _, a := range auds {
		if a != c.cfg.ClientID && !slices.Contains(c.cfg.TrustedAudiences, a) {
			return nil, fail("aud also names untrusted audience %s", truncateQ(a))
		}
	}
	now, leeway := c.cfg.Now(), c.cfg.ClockLeeway
	iat, err := timeClaim(claims, "iat", true)
	if err != nil {
		return nil, fail("iat: %w", err)
	}
	if iat.After(now.Add(leeway)) {
		return nil, fail("iat is in the future (clock skew beyond the leeway?)")
	}
	if iat.Before(now.Add(-MaxLogoutTokenAge - leeway)) {
		return nil, fail("iat is older than %s", MaxLogoutTokenAge)
	}
	exp, err := checkExpNbf(claims, now, leeway, false, fail)
	if err != nil {
		return nil, err
	}
	lt.IssuedAt, lt.Expiry = iat, exp
	if lt.JTI, _ = claims["jti"].(string); lt.JTI == "" {
		return nil, fail("has no jti (or it is not a non-empty string)")
	}
	events, ok := claims["events"].(map[string]any)
	if !ok {
		return nil, fail("has no events claim (or it is not a JSON object)")
	}
	if ev, ok := events[BackchannelLogoutEvent]; !ok {
		return nil, fail("events claim has no %s member", BackchannelLogoutEvent)
	} else if _, ok := ev.(map[string]any); !ok {
		return nil, fail("events member %s is not a JSON object", BackchannelLogoutEvent)
	}
	if _, ok := claims["nonce"]; ok {
		// §2.4: a nonce is prohibited, which keeps an ID token from passing as a logout token.
		return nil, fail("carries a nonce (an ID token is not a logout token)")
	}
	if v, ok := claims["sub"]; ok {
		if err := checkSubject(v); err != nil {
			return nil, fail("sub: %w", err)
		}
		lt.Subject = v.(string)
	}
	if v, ok := claims["sid"]; ok {
		sid, _ := v.(string)
		if sid == "" || strings.ContainsFunc(sid, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, fail("sid is not a non-empty string of printable characters")
		}
		lt.SID = sid
	}
	if lt.Subject == "" && lt.SID == "" {
		return nil, fail("has neither sid nor sub")
	}
	return lt, nil
}

// EndSessionURL returns the OP's end_session_endpoint with the RP-Initiated Logout 1.0
// parameters: id_token_hint (when idTokenHint is set), client_id, post_logout_redirect_uri
// and state (each when set). The endpoint's own query parameters are kept. ok is false,
// with no error, when the OP advertises no end_session_endpoint. It discovers the OP on
// first use.
func (c *Client) EndSessionURL(ctx context.Context, idTokenHint, postLogoutRedirectURI, state string) (string, bool, error) {
	p, err := c.discover(ctx)
	if err != nil {
		return "", false, err
	}
	if p.meta.EndSessionEndpoint == "" {
		return "", false, nil
	}
	u, err := url.Parse(p.meta.EndSessionEndpoint)
	if err != nil { // checked at discovery
		return "", false, newErr(CodeDiscovery, false, "end_session_endpoint is not a URL: %w", err)
	}
	q := u.Query()
	for k, v := range map[string]string{
		"id_token_hint":            idTokenHint,
		"client_id":                c.cfg.ClientID,
		"post_logout_redirect_uri": postLogoutRedirectURI,
		"state":                    state,
	} {
		if v != "" {
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), true, nil
}

// verifyCompactJWS checks what every JWT the OP sends the gateway directly (logout tokens,
// access tokens) shares: not empty, at most maxBytes, a compact JWS with exactly one
// signature in an allowed algorithm, a typ header the caller accepts (checkTyp gets "" and
// false when there is none; a typ that is no string is refused), and a signature by one of
// the OP's keys. It returns the verified payload. Failures go through fail; a key set that
// cannot be fetched is CodeKeys (temporary).
func (c *Client) verifyCompactJWS(ctx context.Context, raw string, maxBytes int, fail func(string, ...any) error, checkTyp func(typ string, present bool) error) ([]byte, error) {
	switch {
	case raw == "":
		return nil, fail("is empty")
	case len(raw) > maxBytes:
		return nil, fail("is %d bytes, more than the %d allowed", len(raw), maxBytes)
	case strings.Count(raw, ".") != 2:
		return nil, fail("is not a compact JWS (three dot-separated parts)")
	}
	p, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	jws, err := jose.ParseSignedCompact(raw, joseAlgs(p.idAlgs))
	if err != nil {
		return nil, fail("header: %v (allowed algs: %v)", err, p.idAlgs)
	}
	if len(jws.Signatures) != 1 {
		return nil, fail("must carry exactly one signature")
	}
	typ, present := "", false
	if t, ok := jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType]; ok {
		s, isString := t.(string)
		if !isString {
			return nil, fail("typ is not a string")
		}
		typ, present = s, true
	}
	if err := checkTyp(typ, present); err != nil {
		return nil, err
	}
	payload, err := p.keys.verify(ctx, jws)
	if err != nil {
		if fe, ok := errors.AsType[*keyFetchError](err); ok {
			return nil, newErr(CodeKeys, true, "%w", fe)
		}
		return nil, fail("signature: %w", err)
	}
	return payload, nil
}
