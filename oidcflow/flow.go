package oidcflow

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Transaction is the per-login secret state: it leaves the gateway only as the state and
// nonce in the authorization request and the S256 challenge of the verifier.
type Transaction struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
}

// NewTransaction returns fresh random values: 256 bits each from crypto/rand.
func NewTransaction() Transaction {
	return Transaction{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier()}
}

func randomString() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// AuthRequest is one authorization request.
type AuthRequest struct {
	// RedirectURL is the gateway's callback URL, exactly as registered at the OP.
	RedirectURL string
	Transaction Transaction
	// Optional parameters, passed on when set.
	LoginHint string
	ACRValues string
	Prompt    string
	// MaxAge, when positive, is sent as max_age (whole seconds): the provider must
	// authenticate the user again if the last authentication is older.
	MaxAge time.Duration
}

// AuthCodeURL returns the OP's authorization URL for r (code flow, PKCE S256, state, nonce).
// It discovers the OP on first use. When the request is pushed (Config.PAR), the request
// goes to the OP's PAR endpoint first and the URL carries only client_id and request_uri;
// a PAR failure is CodePARFailed (temporary), CodePARRejected or CodePARUnavailable.
func (c *Client) AuthCodeURL(ctx context.Context, r AuthRequest) (string, error) {
	p, err := c.discover(ctx)
	if err != nil {
		return "", err
	}
	conf := p.oauth
	conf.RedirectURL = r.RedirectURL
	opts := []oauth2.AuthCodeOption{
		oauth2.S256ChallengeOption(r.Transaction.Verifier),
		oidc.Nonce(r.Transaction.Nonce),
	}
	// The configured extra parameters first; the request's own (step-up prompt) win.
	params := maps.Clone(c.cfg.AuthParams)
	if params == nil {
		params = make(map[string]string, 4)
	}
	for k, v := range map[string]string{"login_hint": r.LoginHint, "acr_values": r.ACRValues, "prompt": r.Prompt} {
		if v != "" {
			params[k] = v
		}
	}
	if r.MaxAge > 0 {
		params["max_age"] = strconv.FormatInt(int64(r.MaxAge/time.Second), 10)
	}
	for k, v := range params {
		if v != "" {
			opts = append(opts, oauth2.SetAuthURLParam(k, v))
		}
	}
	authURL := conf.AuthCodeURL(r.Transaction.State, opts...)
	if c.cfg.RequestObject == RequestObjectSigned {
		if authURL, err = c.signRequest(authURL); err != nil {
			return "", newErr(CodeRequestObject, false, "signing the request object: %w", err)
		}
	}
	push, err := c.usePAR(&p.meta)
	if err != nil || !push {
		return authURL, err
	}
	return c.pushAuthorization(ctx, p, authURL)
}

// CheckResponseIssuer applies RFC 9207 to the "iss" parameter of an authorization response
// (present reports whether the parameter was sent at all): when sent it must equal the
// issuer; when the OP advertises it, it must be sent.
func (c *Client) CheckResponseIssuer(ctx context.Context, iss string, present bool) error {
	p, err := c.discover(ctx)
	if err != nil {
		return err
	}
	if present && iss != c.cfg.Issuer {
		return newErr(CodeResponseIssuer, false, "authorization response iss %q is not the configured issuer (mix-up?)", truncate(iss, 200))
	}
	if !present && p.meta.AuthorizationResponseIssuer {
		return newErr(CodeResponseIssuer, false, "authorization response has no iss parameter although the OP advertises authorization_response_iss_parameter_supported")
	}
	if !present && c.cfg.Profile == ProfileFAPI2 {
		return newErr(CodeResponseIssuer, false, "authorization response has no iss parameter; profile fapi2 requires it (RFC 9207)")
	}
	return nil
}

// Login is the verified outcome of a code exchange.
type Login struct {
	Subject string
	// Claims are the ID token's claims merged with the userinfo claims (see mergeClaims).
	Claims map[string]any
	// IDTokenClaims and UserinfoClaims are the two verified sources (UserinfoClaims is nil
	// when userinfo is off or not offered by the OP).
	IDTokenClaims  map[string]any
	UserinfoClaims map[string]any
	// SignedUserinfo reports that userinfo came as a verified JWT.
	SignedUserinfo bool
	// UserinfoStale is set by Refresh when the tokens were refreshed but userinfo then
	// failed: Claims are the session's previous claims, UserinfoErr says why. The tokens
	// are new and must be stored all the same (the old refresh token is spent).
	UserinfoStale bool
	UserinfoErr   error

	// IDToken is the raw ID token; "" after a refresh whose answer had none.
	IDToken     string
	AccessToken string
	// RefreshToken is the refresh token to keep: after a refresh, the new one, or the one
	// sent when the OP did not rotate it.
	RefreshToken string
	Expiry       time.Time // access token expiry; zero when the OP did not say
}

// Exchange redeems code (with the transaction's PKCE verifier), verifies the ID token
// (signature, alg allow-list, iss, aud, azp, exp, nbf, iat, nonce), fetches and verifies
// userinfo unless it is off, and returns the merged claims.
func (c *Client) Exchange(ctx context.Context, code, redirectURL string, tx Transaction) (*Login, error) {
	p, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	conf := p.oauth
	conf.RedirectURL = redirectURL
	tok, err := conf.Exchange(oidc.ClientContext(ctx, c.cfg.HTTPClient), code, oauth2.VerifierOption(tx.Verifier))
	if err != nil {
		return nil, c.withClientAuthHint(tokenEndpointError(err))
	}
	rawID, _ := tok.Extra("id_token").(string)
	return c.completeLogin(ctx, p, tokenSet{
		AccessToken:  tok.AccessToken,
		TokenType:    tok.TokenType,
		RefreshToken: tok.RefreshToken,
		IDToken:      rawID,
		Expiry:       tokenExpiry(tok),
	}, func(claims map[string]any) error { return checkNonce(claims, tx.Nonce) })
}

// tokenSet is a successful token endpoint answer, whichever grant it came from.
type tokenSet struct {
	AccessToken, TokenType, RefreshToken, IDToken string
	Expiry                                        time.Time
}

// completeLogin finishes a login from the tokens of a code exchange or a CIBA grant: it
// checks the token response, verifies the ID token (signature, alg allow-list, iss, aud,
// azp, exp, nbf, iat) plus the grant's own check of its claims (the nonce, the
// auth_req_id), then at_hash, and only then fetches userinfo (unless off) and merges the
// claims. Nothing is fetched after a refused ID token.
func (c *Client) completeLogin(ctx context.Context, p *provider, tok tokenSet, check func(idClaims map[string]any) error) (*Login, error) {
	if err := c.checkTokenType(tok.TokenType, ""); err != nil {
		return nil, err
	}
	if tok.AccessToken == "" {
		return nil, newErr(CodeTokenResponse, false, "token endpoint returned no access_token")
	}
	if tok.IDToken == "" {
		return nil, newErr(CodeTokenResponse, false, "token endpoint returned no id_token although openid was requested")
	}
	idt, idClaims, err := c.verifyIDToken(ctx, p, tok.IDToken)
	if err != nil {
		return nil, err
	}
	if err := check(idClaims); err != nil {
		return nil, newErr(CodeIDToken, false, "%w", err)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, newErr(CodeIDToken, false, "at_hash does not match the access token: %w", err)
		}
	}
	login := &Login{
		Subject:       idt.Subject,
		IDTokenClaims: idClaims,
		IDToken:       tok.IDToken,
		AccessToken:   tok.AccessToken,
		RefreshToken:  tok.RefreshToken,
		Expiry:        tok.Expiry,
	}
	if c.cfg.Userinfo != UserinfoOff && p.meta.UserinfoEndpoint != "" {
		ui, signed, err := c.userinfo(ctx, p, c.authorization(tok.AccessToken, tok.TokenType), idt.Subject)
		if err != nil {
			return nil, err
		}
		login.UserinfoClaims, login.SignedUserinfo = ui, signed
	} else if c.cfg.RequireSignedUserinfo {
		return nil, newErr(CodeUserinfoInvalid, false, "signed userinfo is required but the OP advertises no userinfo_endpoint")
	}
	login.Claims = mergeClaims(idClaims, login.UserinfoClaims, c.cfg.IDTokenFirstClaims...)
	return login, nil
}

// tokenEndpointError classifies a failed code exchange: the OP or the network failing
// (temporary: 5xx, timeouts, connection errors), the OP refusing (an OAuth error such as
// invalid_grant), or an answer that is not a usable token response.
func tokenEndpointError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		var e *Error
		switch {
		case status >= 500 || status == 0:
			e = newErr(CodeTokenEndpoint, true, "token endpoint answered HTTP %d", status)
		case re.ErrorCode == "invalid_dpop_proof" || re.ErrorCode == "use_dpop_nonce":
			e = newErr(CodeDPoPRejected, false, "token endpoint refused the gateway's DPoP proof (HTTP %d): %s; check the gateway's clock and the dpop key's algorithm", status, truncate(re.ErrorDescription, 200))
		case re.ErrorCode == "invalid_grant":
			// The code itself: expired, already used, or issued for another login.
			e = newErr(CodeTokenRejected, false, "token endpoint refused the code (HTTP %d): %s", status, truncate(re.ErrorDescription, 200))
		default:
			// The OP refuses the gateway's request itself: wrong client_id or client_secret,
			// token_auth_method, or a redirect URI that is not registered.
			e = newErr(CodeClientRejected, false, "token endpoint refused the gateway's request (HTTP %d): %s; check client_id, client_secret, token_auth_method and the registered redirect URI", status, truncate(re.ErrorDescription, 200))
		}
		e.OPError = truncate(re.ErrorCode, 64)
		return e
	}
	if errors.Is(err, ErrBodyTooLarge) {
		return newErr(CodeTokenResponse, false, "token endpoint response: %w", ErrBodyTooLarge)
	}
	var ue *url.Error
	if errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return newErr(CodeTokenEndpoint, true, "calling the token endpoint: %w", err)
	}
	// x/oauth2 parsed a 2xx answer and found no usable token in it.
	return newErr(CodeTokenResponse, false, "token endpoint answer is not a token response: %w", err)
}

// verifyIDToken verifies raw and returns go-oidc's view plus the full claim set (numbers
// normalised). The nonce is the caller's to check (checkNonce); the CIBA grant has none.
func (c *Client) verifyIDToken(ctx context.Context, p *provider, raw string) (*oidc.IDToken, map[string]any, error) {
	idt, claims, err := c.parseIDToken(ctx, p.idVerifier, raw)
	if err != nil {
		return nil, nil, err
	}
	if err := c.checkIDTokenClaims(claims); err != nil {
		return nil, nil, newErr(CodeIDToken, false, "%w", err)
	}
	return idt, normalizeNumbers(claims), nil
}

// parseIDToken checks raw's size and typ, verifies it with v and returns the full claim
// set, numbers as json.Number.
func (c *Client) parseIDToken(ctx context.Context, v *oidc.IDTokenVerifier, raw string) (*oidc.IDToken, map[string]any, error) {
	if len(raw) > MaxTokenBytes {
		return nil, nil, newErr(CodeIDToken, false, "id token is %d bytes, more than the %d allowed", len(raw), MaxTokenBytes)
	}
	if typ := jwtType(raw); typ != "" && !strings.EqualFold(typ, "JWT") {
		return nil, nil, newErr(CodeIDToken, false, "id token has typ %q; a logout token or access token is not an id token", truncate(typ, 40))
	}
	ctx, fetchErr := withKeyFetchSlot(oidc.ClientContext(ctx, c.cfg.HTTPClient))
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		if *fetchErr != nil {
			return nil, nil, newErr(CodeKeys, true, "%w", *fetchErr)
		}
		return nil, nil, newErr(CodeIDToken, false, "%w", err)
	}
	claims, err := decodeClaims(idt)
	if err != nil {
		return nil, nil, newErr(CodeIDToken, false, "%w", err)
	}
	return idt, claims, nil
}

// checkIDTokenClaims does what go-oidc leaves to its caller, except the nonce (checkNonce).
func (c *Client) checkIDTokenClaims(claims map[string]any) error {
	if err := checkSubject(claims["sub"]); err != nil {
		return err
	}
	now := c.cfg.Now()
	leeway := c.cfg.ClockLeeway
	exp, err := timeClaim(claims, "exp", true)
	if err != nil {
		return err
	}
	if !now.Before(exp.Add(leeway)) {
		return errors.New("id token expired at " + exp.UTC().Format(time.RFC3339))
	}
	if nbf, err := timeClaim(claims, "nbf", false); err != nil {
		return err
	} else if !nbf.IsZero() && now.Add(leeway).Before(nbf) {
		return errors.New("id token not valid before " + nbf.UTC().Format(time.RFC3339))
	}
	iat, err := timeClaim(claims, "iat", true)
	if err != nil {
		return err
	}
	if iat.After(now.Add(leeway)) {
		return errors.New("id token iat is in the future (clock skew beyond the leeway?)")
	}
	if iat.Before(now.Add(-c.cfg.MaxTokenAge)) {
		return errors.New("id token iat is older than " + c.cfg.MaxTokenAge.String())
	}
	if err := c.checkAudience(claims); err != nil {
		return err
	}
	if _, ok := claims["events"]; ok {
		return errors.New("id token carries an events claim (a logout token is not an id token)")
	}
	return nil
}

// checkNonce compares the ID token's nonce with the one sent in the authorization request.
func checkNonce(claims map[string]any, nonce string) error {
	got, _ := claims["nonce"].(string)
	if got == "" {
		return errors.New("id token has no nonce although one was sent")
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(nonce)) != 1 {
		return errors.New("id token nonce does not match this login")
	}
	return nil
}

// checkAudience: every audience must be the client or a trusted one; azp, when present,
// must be the client (OIDC Core 3.1.3.7 #3-#5). go-oidc already checked aud contains us.
func (c *Client) checkAudience(claims map[string]any) error {
	var auds []string
	switch a := claims["aud"].(type) {
	case string:
		auds = []string{a}
	case []any:
		for _, v := range a {
			s, ok := v.(string)
			if !ok {
				return errors.New("id token aud has a non-string member")
			}
			auds = append(auds, s)
		}
	default:
		return errors.New("id token has no aud")
	}
	for _, a := range auds {
		if a != c.cfg.ClientID && !slices.Contains(c.cfg.TrustedAudiences, a) {
			return errors.New("id token is also meant for untrusted audience " + truncateQ(a))
		}
	}
	if azp, ok := claims["azp"]; ok {
		if s, _ := azp.(string); s != c.cfg.ClientID {
			return errors.New("id token azp is not this client")
		}
	}
	return nil
}

// MaxSubjectLength is the longest sub accepted (OIDC Core 2: at most 255 ASCII characters).
const MaxSubjectLength = 255

func checkSubject(v any) error {
	s, ok := v.(string)
	if !ok || s == "" {
		return errors.New("token has no sub (or it is not a string)")
	}
	if len(s) > MaxSubjectLength {
		return errors.New("token sub is longer than 255 characters")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return errors.New("token sub contains control characters")
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func truncateQ(s string) string { return `"` + truncate(s, 100) + `"` }

// contentType returns the lowercased media type of a response, without parameters.
func contentType(h http.Header) string {
	ct := h.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// tokenExpiry is when the access token expires, or zero when the provider did not say or
// said something unusable: an expires_in of zero or less would make every request refresh
// (threat model FL-14).
func tokenExpiry(tok *oauth2.Token) time.Time {
	if tok.Expiry.IsZero() {
		return time.Time{}
	}
	if ei, ok := tok.Extra("expires_in").(float64); ok && ei <= 0 {
		return time.Time{}
	}
	if ei, ok := tok.Extra("expires_in").(json.Number); ok {
		if n, err := ei.Int64(); err == nil && n <= 0 {
			return time.Time{}
		}
	}
	return tok.Expiry
}
