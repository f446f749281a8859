package oidcflow

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Client Initiated Backchannel Authentication (CIBA Core 1.0), poll mode: the gateway asks
// the OP to authenticate a user out of band (BackchannelAuthorize), then polls the token
// endpoint (PollCIBA) until the user has answered on their device. The caller keeps the
// transaction (the auth_req_id, the deadline, the interval and its slow_down increases);
// this package makes exactly one request per call.

const (
	// GrantTypeCIBA is the grant type of the CIBA token request (CIBA Core 10.1).
	GrantTypeCIBA = "urn:openid:params:grant-type:ciba"
	// ClaimAuthReqID is the ID token claim that names the auth_req_id the tokens were
	// issued for (CIBA Core 10.3.1); when present it must be the polled one.
	ClaimAuthReqID = "urn:openid:params:jwt:claim:auth_req_id"
	// DefaultCIBAInterval is the polling interval when the OP's acknowledgement has none
	// (CIBA Core 7.3: "If no value is provided, clients MUST use 5 as the default value").
	DefaultCIBAInterval = 5 * time.Second
	// CIBASlowDownIncrement is what a slow_down answer adds to the interval, for that and
	// every later poll of the transaction (CIBA Core 11 refers to RFC 8628 3.5's 5 s).
	CIBASlowDownIncrement = 5 * time.Second
	// MaxBindingMessageLength is the longest binding_message sent, in characters.
	MaxBindingMessageLength = 64
	// MaxUserCodeLength is the longest user_code sent, in (ASCII) characters.
	MaxUserCodeLength = 64
	// MaxAuthReqIDLength is the longest auth_req_id accepted from the OP, in bytes.
	MaxAuthReqIDLength = 1024
	// MaxCIBAClaimsBytes is the largest claims request sent, in bytes of compact JSON.
	MaxCIBAClaimsBytes = 4 << 10
)

// CIBARequest is one backchannel authentication request (CIBA Core 7.1).
type CIBARequest struct {
	// Exactly one hint identifies the user: a login_hint (an e-mail address, a phone
	// number, a user name: whatever the OP accepts), an ID token the OP issued to this
	// client earlier (id_token_hint), or a login_hint_token.
	LoginHint, IDTokenHint, LoginHintToken string
	// BindingMessage, when set, is shown on the user's device and on the consumption
	// device so that the user can tell the two belong together: at most
	// MaxBindingMessageLength printable characters.
	BindingMessage string
	// UserCode, when set, is the secret the user registered with the OP to stop others
	// from sending them requests: at most MaxUserCodeLength printable ASCII characters,
	// and only for an OP that advertises backchannel_user_code_parameter_supported.
	UserCode string
	// ACRValues are the requested authentication context classes, in order of preference.
	ACRValues []string
	// Scopes are requested in addition to openid; empty means the configured scopes.
	Scopes []string
	// RequestedExpiry, when positive, asks for this lifetime of the request (whole
	// seconds); 0 leaves it to the OP.
	RequestedExpiry time.Duration
	// Claims, when set, is the claims request parameter (OpenID Connect Core 5.5, CIBA
	// Core 7.1): a JSON object such as {"id_token":{"given_name":{"essential":true}}},
	// sent compacted, at most MaxCIBAClaimsBytes.
	Claims json.RawMessage
}

// CIBAAck is the OP's acknowledgement of a backchannel authentication request.
type CIBAAck struct {
	// AuthReqID identifies the request at the token endpoint. It is a credential of the
	// gateway's: keep it server-side, never hand it to the caller's user agent.
	AuthReqID string
	// ExpiresIn is how long the request lives, counted from when the ack was received.
	ExpiresIn time.Duration
	// Interval is the least time between two polls; DefaultCIBAInterval when the OP sent
	// none. It may be 0 when the OP said 0: the caller applies its own floor.
	Interval time.Duration
}

// BackchannelAuthorize sends r to the OP's backchannel authentication endpoint with the
// configured client authentication and returns the verified acknowledgement.
//
// r is checked before anything is sent (threat model CIBA-10): exactly one hint; a
// binding_message of at most 64 printable characters; a user_code of at most 64 printable
// ASCII characters, and only when the OP supports the parameter; a requested_expiry of a
// positive whole number of seconds; scope and acr values without spaces or control
// characters; claims one JSON object of at most MaxCIBAClaimsBytes. scope is openid plus
// r.Scopes (or the configured scopes).
//
// Errors (*Error):
//   - CodeCIBAInvalid: r is not acceptable; nothing was sent.
//   - CodeCIBAUnsupported: the OP advertises no backchannel_authentication_endpoint, or
//     its backchannel_token_delivery_modes_supported lacks poll; nothing was sent.
//   - CodeCIBARejected: the OP refused the request (4xx, or a redirect), with its OAuth
//     error in OPError (unknown_user_id, expired_id_token_hint, invalid_id_token_hint,
//     missing_user_code, invalid_user_code, access_denied, unauthorized_client,
//     invalid_client, invalid_request, ...).
//   - CodeCIBAAckInvalid: the OP answered 2xx, but not with a usable acknowledgement: no
//     auth_req_id string, an expires_in that is not a positive integer, an interval that
//     is not a non-negative integer (threat model CIBA-01). The request must not be polled.
//   - CodeCIBAEndpoint, temporary: network errors, timeouts, HTTP 408, 429 and 5xx.
//   - Discovery errors as for any call.
//
// None of these is worth polling for; only the temporary ones are worth a new request
// later.
func (c *Client) BackchannelAuthorize(ctx context.Context, r CIBARequest) (*CIBAAck, error) {
	form, err := c.cibaForm(r)
	if err != nil {
		return nil, err
	}
	p, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	if p.meta.BackchannelAuthenticationEndpoint == "" {
		return nil, newErr(CodeCIBAUnsupported, false, "the OP advertises no backchannel_authentication_endpoint")
	}
	if modes := p.meta.BackchannelTokenDeliveryModes; len(modes) > 0 && !slices.Contains(modes, "poll") {
		return nil, newErr(CodeCIBAUnsupported, false, "the OP does not offer the CIBA poll mode (backchannel_token_delivery_modes_supported=%s)", truncate(fmt.Sprint(modes), 100))
	}
	if r.UserCode != "" && !p.meta.BackchannelUserCodeParameter {
		return nil, newErr(CodeCIBAInvalid, false, "user_code is set but the OP does not support it (backchannel_user_code_parameter_supported)")
	}

	if c.cfg.RequestObject == RequestObjectSigned {
		// FAPI-CIBA: the request is one signed request object (client_id is added by the
		// client authentication).
		obj, err := c.requestObject(form)
		if err != nil {
			return nil, newErr(CodeRequestObject, false, "signing the backchannel authentication request: %w", err)
		}
		form = url.Values{"request": {obj}}
	}
	status, h, body, err := c.postForm(ctx, p.meta.BackchannelAuthenticationEndpoint, form)
	if err != nil {
		if errors.Is(err, ErrBodyTooLarge) {
			return nil, newErr(CodeCIBAAckInvalid, false, "backchannel authentication response: %w", ErrBodyTooLarge)
		}
		return nil, newErr(CodeCIBAEndpoint, true, "calling the backchannel authentication endpoint: %w", err)
	}
	if status >= 200 && status < 300 {
		ack, err := parseCIBAAck(body)
		if err != nil {
			return nil, newErr(CodeCIBAAckInvalid, false, "backchannel authentication acknowledgement: %w", err)
		}
		return ack, nil
	}
	opErr, desc := c.opError(h, body, r.IDTokenHint, r.LoginHintToken, r.UserCode)
	var e *Error
	switch {
	case status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout:
		e = newErr(CodeCIBAEndpoint, true, "backchannel authentication endpoint answered HTTP %d%s", status, describe(desc))
	case status >= 300 && status < 400:
		e = newErr(CodeCIBARejected, false, "backchannel authentication endpoint answered HTTP %d (redirects are not followed)", status)
	default:
		e = newErr(CodeCIBARejected, false, "the OP refused the backchannel authentication request (HTTP %d)%s", status, describe(desc))
	}
	e.OPError = opErr
	return nil, e
}

// PollCIBA makes one token request for authReqID (grant_type
// urn:openid:params:grant-type:ciba, the configured client authentication). Waiting, the
// interval, slow_down's increase and the deadline are the caller's.
//
// On success the ID token is verified as at login, without a nonce (signature, alg
// allow-list, iss, aud, azp, exp, nbf, iat, at_hash; threat model CIBA-07), its
// urn:openid:params:jwt:claim:auth_req_id, when present, must be authReqID, and userinfo
// is fetched, verified and merged as by Exchange. When the ID token is refused, nothing
// else is requested.
//
// Errors (*Error) from the OP's answer (CIBA Core 11):
//   - CodeCIBAPending (authorization_pending): the user has not answered yet; poll again
//     after the interval. Not a failure, not temporary.
//   - CodeCIBASlowDown (slow_down): poll again, after an interval CIBASlowDownIncrement
//     longer, for this and every later poll.
//   - CodeCIBADenied (access_denied), CodeCIBAExpired (expired_token), CodeCIBAFailed
//     (invalid_grant, invalid_request, unauthorized_client, invalid_client, any other
//     error or refusal): final; never poll this auth_req_id again (threat model CIBA-06).
//   - CodeTokenEndpoint, temporary: network errors, timeouts, HTTP 408, 429 and 5xx;
//     polling again after the interval is fine.
//   - CodeTokenResponse: a 2xx answer that is no usable token response; CodeIDToken (and
//     CodeKeys, temporary, when the OP's keys cannot be fetched), CodeUserinfoFailed,
//     CodeUserinfoInvalid as for Exchange. The OP has spent the auth_req_id by then.
//   - CodeCIBAInvalid: authReqID is empty, longer than MaxAuthReqIDLength or not
//     printable ASCII; nothing was sent.
func (c *Client) PollCIBA(ctx context.Context, authReqID string) (*Login, error) {
	if !validAuthReqID(authReqID) {
		return nil, newErr(CodeCIBAInvalid, false, "auth_req_id is empty, longer than %d bytes or not printable ASCII", MaxAuthReqIDLength)
	}
	p, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {GrantTypeCIBA}, "auth_req_id": {authReqID}}
	status, h, body, err := c.postForm(ctx, p.meta.TokenEndpoint, form)
	if err != nil {
		if errors.Is(err, ErrBodyTooLarge) {
			return nil, newErr(CodeTokenResponse, false, "token endpoint response: %w", ErrBodyTooLarge)
		}
		return nil, newErr(CodeTokenEndpoint, true, "calling the token endpoint: %w", err)
	}
	opErr, desc := c.opError(h, body, authReqID)
	var e *Error
	switch {
	case status >= 500:
		e = newErr(CodeTokenEndpoint, true, "token endpoint answered HTTP %d%s", status, describe(desc))
	case opErr == "authorization_pending":
		e = newErr(CodeCIBAPending, false, "the user has not answered yet")
	case opErr == "slow_down":
		e = newErr(CodeCIBASlowDown, false, "the OP asks to poll less often%s", describe(desc))
	case opErr == "access_denied":
		e = newErr(CodeCIBADenied, false, "the user or the OP denied the request%s", describe(desc))
	case opErr == "expired_token":
		e = newErr(CodeCIBAExpired, false, "the request expired before the user answered%s", describe(desc))
	case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout:
		e = newErr(CodeTokenEndpoint, true, "token endpoint answered HTTP %d%s", status, describe(desc))
	case opErr == "invalid_dpop_proof" || opErr == "use_dpop_nonce":
		e = newErr(CodeDPoPRejected, false, "the OP refused the gateway's DPoP proof on the CIBA token request (HTTP %d)%s", status, describe(desc))
	case opErr != "":
		e = newErr(CodeCIBAFailed, false, "the OP refused the CIBA token request (HTTP %d)%s", status, describe(desc))
	case status < 200 || status >= 300:
		e = newErr(CodeCIBAFailed, false, "token endpoint answered HTTP %d without an OAuth error", status)
	}
	if e != nil {
		e.OPError = opErr
		return nil, e
	}
	tok, err := parseTokenSet(body, c.cfg.Now())
	if err != nil {
		return nil, newErr(CodeTokenResponse, false, "token endpoint answer is not a token response: %w", err)
	}
	return c.completeLogin(ctx, p, tok, func(claims map[string]any) error {
		v, ok := claims[ClaimAuthReqID]
		if !ok {
			return nil
		}
		got, _ := v.(string)
		if subtle.ConstantTimeCompare([]byte(got), []byte(authReqID)) != 1 {
			return errors.New("id token " + ClaimAuthReqID + " is not the polled auth_req_id")
		}
		return nil
	})
}

// IsCIBAPending reports whether err is authorization_pending: poll again after the interval.
func IsCIBAPending(err error) bool { return ReasonCode(err) == CodeCIBAPending }

// IsCIBASlowDown reports whether err is slow_down: poll again, CIBASlowDownIncrement later
// than before, from now on.
func IsCIBASlowDown(err error) bool { return ReasonCode(err) == CodeCIBASlowDown }

// cibaForm checks r and builds the request body (without client authentication).
// CheckCIBARequest reports what BackchannelAuthorize would refuse in r before sending
// anything (CodeCIBAInvalid), without contacting the OP; the OP-dependent check (user_code
// support) is left to BackchannelAuthorize.
func (c *Client) CheckCIBARequest(r CIBARequest) error {
	_, err := c.cibaForm(r)
	return err
}

func (c *Client) cibaForm(r CIBARequest) (url.Values, error) {
	invalid := func(format string, args ...any) error {
		return newErr(CodeCIBAInvalid, false, format, args...)
	}
	form := url.Values{}
	hints := 0
	for _, h := range []struct{ name, val string }{
		{"login_hint", r.LoginHint},
		{"id_token_hint", r.IDTokenHint},
		{"login_hint_token", r.LoginHintToken},
	} {
		if h.val == "" {
			continue
		}
		hints++
		if len(h.val) > MaxTokenBytes || !utf8.ValidString(h.val) || strings.ContainsFunc(h.val, isControl) {
			return nil, invalid("%s is longer than %d bytes, not UTF-8 or has control characters", h.name, MaxTokenBytes)
		}
		form.Set(h.name, h.val)
	}
	if hints != 1 {
		return nil, invalid("exactly one of login_hint, id_token_hint and login_hint_token is required, not %d", hints)
	}
	if m := r.BindingMessage; m != "" {
		if !utf8.ValidString(m) || utf8.RuneCountInString(m) > MaxBindingMessageLength || strings.ContainsFunc(m, func(r rune) bool { return !unicode.IsPrint(r) }) {
			return nil, invalid("binding_message must be at most %d printable characters (no control or format characters, no line breaks)", MaxBindingMessageLength)
		}
		form.Set("binding_message", m)
	}
	if u := r.UserCode; u != "" {
		if len(u) > MaxUserCodeLength || strings.ContainsFunc(u, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			return nil, invalid("user_code must be at most %d printable ASCII characters", MaxUserCodeLength)
		}
		form.Set("user_code", u)
	}
	switch e := r.RequestedExpiry; {
	case e < 0 || e%time.Second != 0:
		return nil, invalid("requested_expiry %v is not a positive whole number of seconds", e)
	case e > 0:
		form.Set("requested_expiry", strconv.FormatInt(int64(e/time.Second), 10))
	}
	if len(r.Claims) > 0 {
		if _, err := decodeObject(r.Claims); err != nil {
			return nil, invalid("claims must be one JSON object (OpenID Connect Core 5.5)")
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, r.Claims); err != nil {
			return nil, invalid("claims must be one JSON object (OpenID Connect Core 5.5)")
		}
		if buf.Len() > MaxCIBAClaimsBytes {
			return nil, invalid("claims is %d bytes, more than the %d allowed", buf.Len(), MaxCIBAClaimsBytes)
		}
		form.Set("claims", buf.String())
	}
	scopes := c.cfg.Scopes
	if len(r.Scopes) > 0 {
		scopes = append([]string{oidc.ScopeOpenID}, r.Scopes...)
	}
	var scope []string
	for _, s := range scopes {
		if !validScopeToken(s) {
			return nil, invalid("scope %s is empty or has characters a scope cannot have", truncateQ(s))
		}
		if !slices.Contains(scope, s) {
			scope = append(scope, s)
		}
	}
	form.Set("scope", strings.Join(scope, " "))
	for _, a := range r.ACRValues {
		if !validScopeToken(a) {
			return nil, invalid("acr value %s is empty or has spaces or control characters", truncateQ(a))
		}
	}
	if len(r.ACRValues) > 0 {
		form.Set("acr_values", strings.Join(r.ACRValues, " "))
	}
	return form, nil
}

// validScopeToken is RFC 6749 3.3's scope-token: 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" || len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x21 || b > 0x7e || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// validAuthReqID accepts 1 to MaxAuthReqIDLength printable ASCII characters.
func validAuthReqID(s string) bool {
	if s == "" || len(s) > MaxAuthReqIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// parseCIBAAck checks the acknowledgement (CIBA Core 7.3): auth_req_id a non-empty string,
// expires_in a positive integer, interval absent or a non-negative integer. Numbers must
// be written as integers (120, not 120.0 or 1.2e2); duplicate members are refused.
func parseCIBAAck(body []byte) (*CIBAAck, error) {
	m, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	id, ok := m["auth_req_id"].(string)
	if !ok || id == "" {
		return nil, errors.New("auth_req_id is missing or not a non-empty string")
	}
	if !validAuthReqID(id) {
		return nil, fmt.Errorf("auth_req_id is longer than %d bytes or not printable ASCII", MaxAuthReqIDLength)
	}
	v, ok := m["expires_in"]
	if !ok {
		return nil, errors.New("expires_in is missing")
	}
	expires, err := wholeSeconds(v)
	if err != nil {
		return nil, fmt.Errorf("expires_in %w", err)
	}
	if expires == 0 {
		return nil, errors.New("expires_in is 0")
	}
	interval := DefaultCIBAInterval
	if v, ok := m["interval"]; ok {
		if interval, err = wholeSeconds(v); err != nil {
			return nil, fmt.Errorf("interval %w", err)
		}
	}
	return &CIBAAck{AuthReqID: id, ExpiresIn: expires, Interval: interval}, nil
}

// wholeSeconds reads a JSON number written as a non-negative integer.
func wholeSeconds(v any) (time.Duration, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, errors.New("is not a number")
	}
	s := n.String()
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%s is not a non-negative integer", truncateQ(s))
	}
	secs, err := strconv.ParseInt(s, 10, 64)
	if err != nil || secs > math.MaxInt64/int64(time.Second) {
		return 0, fmt.Errorf("%s is out of range", truncateQ(s))
	}
	return time.Duration(secs) * time.Second, nil
}

// parseTokenSet reads a successful token response (RFC 6749 5.1) as x/oauth2 does:
// strings must be strings; expires_in, when present, an integer (or a string holding one).
func parseTokenSet(body []byte, now time.Time) (tokenSet, error) {
	m, err := decodeObject(body)
	if err != nil {
		return tokenSet{}, err
	}
	var t tokenSet
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"access_token", &t.AccessToken},
		{"token_type", &t.TokenType},
		{"refresh_token", &t.RefreshToken},
		{"id_token", &t.IDToken},
	} {
		switch v := m[f.name].(type) {
		case nil:
		case string:
			*f.dst = v
		default:
			return tokenSet{}, fmt.Errorf("%s is not a string", f.name)
		}
	}
	var secs int64
	switch v := m["expires_in"].(type) {
	case nil:
	case json.Number:
		secs, err = v.Int64()
	case string:
		secs, err = strconv.ParseInt(v, 10, 64)
	default:
		err = errors.New("not a number")
	}
	if err != nil {
		return tokenSet{}, fmt.Errorf("expires_in: %w", err)
	}
	if secs > 0 {
		t.Expiry = now.Add(time.Duration(min(secs, math.MaxInt32)) * time.Second)
	}
	return t, nil
}

// postForm POSTs form to endpoint with the configured client authentication, as x/oauth2
// authenticates at the token endpoint: client_secret_basic (credentials form-urlencoded
// inside Basic, RFC 6749 2.3.1), client_secret_post, or none (client_id only). It returns
// the status, the headers and the body (read through the HTTP client's size cap); err is
// a transport failure or a body that could not be read.
func (c *Client) postForm(ctx context.Context, endpoint string, form url.Values) (int, http.Header, []byte, error) {
	form = cloneForm(form)
	switch c.cfg.AuthMethod {
	case AuthClientSecretPost:
		form.Set("client_id", c.cfg.ClientID)
		form.Set("client_secret", c.cfg.ClientSecret)
	case AuthClientSecretBasic:
	default: // none, mTLS (the certificate), private_key_jwt (assertingTransport adds the assertion)
		form.Set("client_id", c.cfg.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.cfg.AuthMethod == AuthClientSecretBasic {
		req.SetBasicAuth(url.QueryEscape(c.cfg.ClientID), url.QueryEscape(c.cfg.ClientSecret))
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, body, nil
}

func cloneForm(v url.Values) url.Values {
	out := make(url.Values, len(v)+2)
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// opError reads the OP's OAuth error and description (clipped, without control
// characters), with the client secret and the given values (tokens, the auth_req_id)
// blanked out in case the OP echoes them: the error ends up in logs. The body is read as
// JSON whatever the content type says (an authorization_pending taken for an unknown
// refusal would end the transaction), or as a form when it says so, as x/oauth2 does.
func (c *Client) opError(h http.Header, body []byte, sensitive ...string) (code, desc string) {
	secrets := append(sensitive, c.cfg.ClientSecret)
	if ct := contentType(h); ct == "application/x-www-form-urlencoded" || ct == "text/plain" {
		if v, err := url.ParseQuery(string(body)); err == nil && v.Get("error") != "" {
			b, _ := json.Marshal(map[string]string{"error": v.Get("error"), "error_description": v.Get("error_description")})
			return oauthErrorValues(b, secrets)
		}
	}
	return oauthErrorValues(body, secrets)
}
