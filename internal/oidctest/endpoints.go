package oidctest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Endpoint paths, advertised in discovery.
const (
	PathDiscovery  = "/.well-known/openid-configuration"
	PathJWKS       = "/jwks"
	PathAuthorize  = "/authorize"
	PathToken      = "/token"
	PathUserinfo   = "/userinfo"
	PathEndSession = "/end_session"
	// PathSessionFeedback is BindID's session feedback endpoint (seed 001), advertised in
	// discovery as the non-standard session_feedback_endpoint.
	PathSessionFeedback = "/session-feedback"
	// PathBackchannelAuthorize is the CIBA backchannel authentication endpoint, advertised
	// as backchannel_authentication_endpoint.
	PathBackchannelAuthorize = "/bc-authorize"
)

// authCode is an issued, not yet exchanged, authorization code.
type authCode struct {
	grant       *grant
	redirectURI string
	challenge   string
}

// grant is what an access or refresh token stands for. Immutable once created; family ties
// every token derived from one authorization code together (revoked on code reuse).
type grant struct {
	family   string
	clientID string
	subject  string
	scope    string
	nonce    string
	authTime time.Time
	acr      string // the acr reached for requested acr_values; "" keeps the user's own
	sid      string // the OP session: random per authorization, kept by refreshed tokens
	alias    string // bindid_alias reported by session feedback before this authorization, or ""
	// decision is ID Dataweb's verdict on an identity binding (login_hint in ID Dataweb's
	// format) at this authorization, DecisionApprove or DecisionDeny; "" keeps the user's
	// own claims. Refreshed ID tokens keep it.
	decision string
	// authReqID is the CIBA auth_req_id this grant was approved for, "" for other grants;
	// the CIBA grant's ID token carries it (ClaimAuthReqID), refreshed ones do not.
	authReqID string
}

func (p *Provider) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(PathDiscovery, p.handleDiscovery)
	mux.HandleFunc(PathJWKS, p.handleJWKS)
	mux.HandleFunc(PathAuthorize, p.handleAuthorize)
	mux.HandleFunc(PathToken, p.handleToken)
	mux.HandleFunc(PathUserinfo, p.handleUserinfo)
	mux.HandleFunc(PathEndSession, p.handleEndSession)
	mux.HandleFunc(PathSessionFeedback, p.handleSessionFeedback)
	mux.HandleFunc(PathBackchannelAuthorize, p.handleBackchannelAuthorize)
	mux.HandleFunc(PathHintKeys, p.handleHintKeys)
	if p.device {
		mux.HandleFunc(PathDevice, p.handleDevice)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			http.Redirect(w, r, PathDiscovery, http.StatusFound)
			return
		}
		http.NotFound(w, r)
	})
	return p.logRequests(mux)
}

func (p *Provider) bump(field func(*Counts) *int) {
	p.mu.Lock()
	*field(&p.counts)++
	p.mu.Unlock()
}

// allowMethods answers 405 unless r's method is one of methods.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	if slices.Contains(methods, r.Method) {
		return true
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// ---- discovery and keys --------------------------------------------------------------------

func (p *Provider) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	p.bump(func(c *Counts) *int { return &c.Discovery })
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	writeJSON(w, http.StatusOK, p.discoveryDocument())
}

func (p *Provider) discoveryDocument() map[string]any {
	claims := map[string]bool{}
	for _, c := range []string{"sub", "iss", "aud", "azp", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "bindid_alias"} {
		claims[c] = true
	}
	for _, u := range p.users {
		for k := range u.IDTokenClaims {
			claims[k] = true
		}
		for k := range u.UserinfoClaims {
			claims[k] = true
		}
	}
	names := make([]string, 0, len(claims))
	for k := range claims {
		names = append(names, k)
	}
	slices.Sort(names)
	return map[string]any{
		"issuer":                                         p.issuer,
		"authorization_endpoint":                         p.issuer + PathAuthorize,
		"token_endpoint":                                 p.issuer + PathToken,
		"userinfo_endpoint":                              p.issuer + PathUserinfo,
		"jwks_uri":                                       p.issuer + PathJWKS,
		"end_session_endpoint":                           p.issuer + PathEndSession,
		"id_token_signing_alg_values_supported":          []string{p.alg},
		"userinfo_signing_alg_values_supported":          []string{p.alg},
		"code_challenge_methods_supported":               []string{"S256"},
		"token_endpoint_auth_methods_supported":          []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                               []string{"openid", "profile", "email", "phone", "address", "offline_access"},
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token", GrantTypeCIBA},
		"subject_types_supported":                        []string{"public"},
		"claims_supported":                               names,
		"authorization_response_iss_parameter_supported": true,
		"backchannel_logout_supported":                   true,
		"backchannel_logout_session_supported":           true,
		"session_feedback_endpoint":                      p.issuer + PathSessionFeedback,
		"backchannel_authentication_endpoint":            p.issuer + PathBackchannelAuthorize,
		"backchannel_token_delivery_modes_supported":     []string{"poll"},
		"backchannel_user_code_parameter_supported":      true,
	}
}

func (p *Provider) handleJWKS(w http.ResponseWriter, r *http.Request) {
	p.bump(func(c *Counts) *int { return &c.JWKS })
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	writeJSON(w, http.StatusOK, p.jwks())
}

// ---- authorize -----------------------------------------------------------------------------

func (p *Provider) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	p.bump(func(c *Counts) *int { return &c.Authorize })
	var q url.Values
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		q = r.URL.Query()
	case http.MethodPost:
		form, _, err := readForm(w, r)
		if err != nil {
			p.errorPage(w, bodyErrorStatus(err), "The request body could not be read.")
			return
		}
		q = form
	default:
		allowMethods(w, r, http.MethodGet, http.MethodHead, http.MethodPost)
		return
	}
	// These may appear at most once (RFC 6749 §3.1); a repeated one is ambiguous, so it is
	// refused before anything else, without redirecting.
	for _, k := range []string{
		"client_id", "redirect_uri", "response_type", "scope", "state", "nonce",
		"code_challenge", "code_challenge_method", "prompt", "user", "login_hint",
	} {
		if len(q[k]) > 1 {
			p.errorPage(w, http.StatusBadRequest, "Parameter "+k+" is repeated.")
			return
		}
	}
	client, ok := p.clients[q.Get("client_id")]
	if !ok {
		p.errorPage(w, http.StatusBadRequest, "Unknown client_id.")
		return
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" || !allowedURI(client.RedirectURIs, redirectURI) {
		p.errorPage(w, http.StatusBadRequest, "redirect_uri is missing or not registered for this client.")
		return
	}
	setNote(w, "client=%s", client.ID)
	faults, auto := p.snapshot()
	state := q.Get("state")
	fail := func(code, desc string) {
		setNote(w, "client=%s error=%s", client.ID, code)
		p.redirectAuthz(w, r, redirectURI, url.Values{"error": {code}, "error_description": {desc}}, state, faults)
	}
	challenge := q.Get("code_challenge")
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "response_type must be code")
		return
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		fail("invalid_scope", "scope must include openid")
		return
	case challenge == "":
		fail("invalid_request", "code_challenge is required (PKCE)")
		return
	case q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "code_challenge_method must be S256")
		return
	case len(challenge) != 43 || !isBase64URL(challenge):
		fail("invalid_request", "code_challenge is not a base64url SHA-256 value")
		return
	case faults.AuthorizeError != "":
		fail(faults.AuthorizeError, faults.AuthorizeErrorDescription)
		return
	}
	// A login_hint that is a JWT (or a JWE) is an identity-binding request (seed 002): its
	// profile is verified now, and matched against the user once the user is known.
	binding, hintErr := p.loginHintBinding(q.Get("login_hint"), client)
	if hintErr != nil {
		code := "invalid_request"
		if errors.Is(hintErr, errHintKeysUnavailable) {
			code = "temporarily_unavailable"
		}
		fail(code, "login_hint: "+hintErr.Error())
		return
	}

	var user User
	switch {
	case r.Method == http.MethodPost:
		if user, ok = p.user(q.Get("user")); !ok {
			p.errorPage(w, http.StatusBadRequest, "Unknown user.")
			return
		}
	case auto != "":
		if user, ok = p.autoLoginUser(auto); !ok {
			p.errorPage(w, http.StatusInternalServerError, "The auto-login user is not defined: "+auto)
			return
		}
	case slices.Contains(strings.Fields(q.Get("prompt")), "none"):
		fail("login_required", "prompt=none and no auto-login user is set")
		return
	default:
		p.loginPage(w, client, q)
		return
	}

	decision := ""
	if binding != nil {
		binding.Subject = user.Subject
		switch binding.Format {
		case HintFormatIDDataweb:
			// ID Dataweb's Gateway settles every login to approve or deny, in the ID token.
			decision = idwDecision(user, binding.Claims)
			binding.Decision = decision
			setNote(w, "client=%s user=%s policyDecision=%s", client.ID, user.Subject, decision)
		default:
			binding.Decision = DecisionApprove
			if code, desc := bindingDecision(user, binding.Claims); code != "" {
				binding.Decision = DecisionDeny
				p.mu.Lock()
				p.lastBinding = binding
				p.mu.Unlock()
				setNote(w, "client=%s user=%s binding=%s", client.ID, user.Subject, desc)
				fail(code, desc)
				return
			}
		}
	}

	now := p.now()
	code := randomToken()
	p.mu.Lock()
	p.lastAuthorize = cloneValues(q)
	if binding != nil {
		p.lastBinding = binding
	}
	alias := p.aliases[user.Subject]
	p.mu.Unlock()
	ac := &authCode{
		grant: &grant{
			family:   randomToken(),
			clientID: client.ID,
			subject:  user.Subject,
			scope:    q.Get("scope"),
			nonce:    q.Get("nonce"),
			authTime: now,
			acr:      user.reachedACR(q.Get("acr_values")),
			sid:      randomToken(),
			alias:    alias,
			decision: decision,
		},
		redirectURI: redirectURI,
		challenge:   challenge,
	}
	p.mu.Lock()
	p.codes.put(now, code, ac, now.Add(CodeLifetime))
	p.mu.Unlock()
	setNote(w, "client=%s user=%s", client.ID, user.Subject)
	p.redirectAuthz(w, r, redirectURI, url.Values{"code": {code}}, state, faults)
}

// redirectAuthz sends the authorization response to the (validated) redirect URI, keeping
// the URI's own query parameters.
func (p *Provider) redirectAuthz(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values, state string, f Faults) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		p.errorPage(w, http.StatusBadRequest, "redirect_uri is not a URL.")
		return
	}
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	if state != "" {
		q.Set("state", state)
	}
	switch {
	case f.AuthorizeMissingIssuer:
	case f.AuthorizeWrongIssuer:
		q.Set("iss", WrongIssuer)
	default:
		q.Set("iss", p.issuer)
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// ---- token ---------------------------------------------------------------------------------

// readClientForm reads the form of a client's back-channel request (/token, /bc-authorize),
// recording it with "auth" (basic, post or none) in *last, and returns the client
// authentication it carries. When it returns false it has answered the request.
func (p *Provider) readClientForm(w http.ResponseWriter, r *http.Request, last *url.Values) (form url.Values, auth, clientID, secret string, authErr error, ok bool) {
	form, _, err := readForm(w, r)
	if err != nil {
		tokenError(w, bodyErrorStatus(err), "invalid_request", "request body could not be read")
		return nil, "", "", "", nil, false
	}
	auth, clientID, secret, authErr = clientAuth(r, form)
	rec := cloneValues(form)
	rec.Set("auth", auth)
	p.mu.Lock()
	*last = rec
	p.mu.Unlock()
	return form, auth, clientID, secret, authErr, true
}

func (p *Provider) handleToken(w http.ResponseWriter, r *http.Request) {
	p.bump(func(c *Counts) *int { return &c.Token })
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	form, auth, clientID, secret, authErr, ok := p.readClientForm(w, r, &p.lastToken)
	if !ok {
		return
	}
	setNote(w, "grant_type=%s auth=%s", form.Get("grant_type"), auth)
	switch form.Get("grant_type") {
	case "refresh_token":
		p.bump(func(c *Counts) *int { return &c.Refresh })
	case GrantTypeCIBA:
		p.bump(func(c *Counts) *int { return &c.CIBAPoll })
	}

	faults, _ := p.snapshot()
	if !p.wait(r, faults.TokenDelay) {
		return
	}
	if faults.TokenHTML {
		writeHTML(w, http.StatusOK, "<!doctype html><title>Token</title><p>This is not JSON.</p>")
		return
	}
	if faults.TokenError != "" {
		status := faults.TokenErrorStatus
		if status == 0 {
			status = http.StatusBadRequest
		}
		tokenError(w, status, faults.TokenError, "fault injected by oidctest")
		return
	}
	for k, vs := range form {
		if len(vs) > 1 {
			tokenError(w, http.StatusBadRequest, "invalid_request", "parameter "+k+" is repeated")
			return
		}
	}
	if authErr != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", authErr.Error())
		return
	}
	client, ok := p.clients[clientID]
	if !ok || auth == "none" || subtle.ConstantTimeCompare([]byte(secret), []byte(client.Secret)) != 1 {
		if auth == "basic" {
			w.Header().Set("WWW-Authenticate", `Basic realm="oidctest"`)
		}
		tokenError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	switch form.Get("grant_type") {
	case "authorization_code":
		p.codeGrant(w, r, client, form, faults)
	case "refresh_token":
		p.refreshGrant(w, r, client, form, faults)
	case GrantTypeCIBA:
		p.cibaGrant(w, client, form, faults)
	case "":
		tokenError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code, refresh_token or "+GrantTypeCIBA)
	}
}

// clientAuth finds the client authentication of a token request: client_secret_basic
// (credentials form-urlencoded inside Basic, RFC 6749 §2.3.1) or client_secret_post.
func clientAuth(r *http.Request, form url.Values) (method, id, secret string, err error) {
	user, pass, basic := r.BasicAuth()
	_, post := form["client_secret"]
	switch {
	case basic && post:
		return "basic", "", "", errors.New("more than one client authentication method")
	case basic:
		id, err1 := url.QueryUnescape(user)
		secret, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return "basic", "", "", errors.New("basic credentials are not form-urlencoded")
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return "basic", "", "", errors.New("client_id does not match the authenticated client")
		}
		return "basic", id, secret, nil
	case post:
		return "post", form.Get("client_id"), form.Get("client_secret"), nil
	default:
		return "none", form.Get("client_id"), "", nil
	}
}

func (p *Provider) codeGrant(w http.ResponseWriter, r *http.Request, client Client, form url.Values, f Faults) {
	code := form.Get("code")
	now := p.now()
	p.mu.Lock()
	ac, ok := p.codes.take(now, code)
	if !ok {
		if family, used := p.usedCodes.get(now, code); used {
			// RFC 6749 §4.1.2: revoke what the code already produced.
			p.counts.CodeReuse++
			p.revokeFamily(family)
		}
		p.mu.Unlock()
		setNote(w, "grant_type=authorization_code error=invalid_grant (unknown, expired or used code)")
		tokenError(w, http.StatusBadRequest, "invalid_grant", "authorization code is invalid, expired or already used")
		return
	}
	p.usedCodes.put(now, code, ac.grant.family, now.Add(usedMarkerTTL))
	p.mu.Unlock()

	var desc string
	verifier := form.Get("code_verifier")
	switch {
	case ac.grant.clientID != client.ID:
		desc = "authorization code was issued to another client"
	case form.Get("redirect_uri") != ac.redirectURI:
		desc = "redirect_uri does not match the authorization request"
	case verifier == "":
		desc = "code_verifier is required"
	case !validVerifier(verifier):
		desc = "code_verifier is malformed"
	case subtle.ConstantTimeCompare([]byte(s256(verifier)), []byte(ac.challenge)) != 1:
		desc = "PKCE verification failed"
	}
	if desc != "" {
		setNote(w, "grant_type=authorization_code error=invalid_grant (%s)", desc)
		tokenError(w, http.StatusBadRequest, "invalid_grant", desc)
		return
	}
	setNote(w, "grant_type=authorization_code client=%s user=%s", client.ID, ac.grant.subject)
	p.issueTokens(w, client, ac.grant, ac.grant.nonce, !f.IDTokenOmit, false, f)
}

func (p *Provider) refreshGrant(w http.ResponseWriter, r *http.Request, client Client, form url.Values, f Faults) {
	if !p.wait(r, f.RefreshDelay) {
		return
	}
	if f.RefreshError != "" {
		status := f.RefreshErrorStatus
		if status == 0 {
			status = http.StatusBadRequest
		}
		setNote(w, "grant_type=refresh_token error=%s (fault)", f.RefreshError)
		tokenError(w, status, f.RefreshError, "fault injected by oidctest")
		return
	}
	rt := form.Get("refresh_token")
	now := p.now()
	p.mu.Lock()
	g, ok := p.refresh.get(now, rt)
	if !ok {
		if _, used := p.usedRefresh.get(now, rt); used {
			p.counts.RefreshReuse++
		}
		p.mu.Unlock()
		setNote(w, "grant_type=refresh_token error=invalid_grant (unknown, expired or rotated token)")
		tokenError(w, http.StatusBadRequest, "invalid_grant", "refresh token is invalid, expired or already used")
		return
	}
	if g.clientID != client.ID {
		p.mu.Unlock()
		tokenError(w, http.StatusBadRequest, "invalid_grant", "refresh token was issued to another client")
		return
	}
	if s := form.Get("scope"); s != "" {
		granted := strings.Fields(g.scope)
		for _, sc := range strings.Fields(s) {
			if !slices.Contains(granted, sc) {
				p.mu.Unlock()
				tokenError(w, http.StatusBadRequest, "invalid_scope", "scope exceeds the original grant")
				return
			}
		}
	}
	p.refresh.del(rt)
	p.usedRefresh.put(now, rt, g.family, now.Add(usedMarkerTTL))
	p.mu.Unlock()
	setNote(w, "grant_type=refresh_token client=%s user=%s", client.ID, g.subject)
	// A refreshed ID token carries the same sub, sid and auth_time and no nonce (OIDC Core
	// §12.2 errata: nonce MAY be absent).
	p.issueTokens(w, client, g, "", !f.IDTokenOmit && !f.RefreshIDTokenOmit, true, f)
}

// revokeFamily deletes every token derived from one authorization code. p.mu must be held.
func (p *Provider) revokeFamily(family string) {
	same := func(g *grant) bool { return g.family == family }
	p.access.deleteFunc(same)
	p.refresh.deleteFunc(same)
}

func (p *Provider) issueTokens(w http.ResponseWriter, client Client, g *grant, nonce string, withIDToken, refresh bool, f Faults) {
	now := p.now()
	at, rt := randomToken(), randomToken()
	p.mu.Lock()
	p.access.put(now, at, g, now.Add(p.atLifetime))
	p.refresh.put(now, rt, g, now.Add(RefreshTokenLifetime))
	p.mu.Unlock()
	resp := map[string]any{
		"access_token":  at,
		"token_type":    "Bearer",
		"expires_in":    int64(p.atLifetime / time.Second),
		"refresh_token": rt,
		"scope":         g.scope,
	}
	if withIDToken {
		idt, err := p.idToken(client, g, at, nonce, now, refresh, f)
		if err != nil {
			tokenError(w, http.StatusInternalServerError, "server_error", "building the ID token failed")
			return
		}
		resp["id_token"] = idt
	}
	if f.TokenType != "" {
		resp["token_type"] = f.TokenType
	}
	if f.TokenOmitExpiresIn {
		delete(resp, "expires_in")
	}
	if f.MutateTokenResponse != nil {
		f.MutateTokenResponse(resp)
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

// idToken builds and signs an ID token, applying the ID-token faults (and, for a refresh,
// RefreshIDTokenClaims).
func (p *Provider) idToken(client Client, g *grant, accessToken, nonce string, now time.Time, refresh bool, f Faults) (string, error) {
	user, _ := p.user(g.subject)
	claims := cloneMap(user.IDTokenClaims)
	if claims == nil {
		claims = map[string]any{}
	}
	if _, ok := claims["auth_time"]; !ok {
		claims["auth_time"] = g.authTime.Unix()
	}
	if g.acr != "" {
		claims["acr"] = g.acr
	}
	if g.alias != "" {
		claims["bindid_alias"] = g.alias
	}
	if g.decision != "" {
		claims[ClaimPolicyDecision] = g.decision
		claims[ClaimRiskScore], claims[ClaimTrustScore] = idwScores(g.decision)
	}
	if _, ok := claims[ClaimPolicyDecision]; ok {
		claims["jti"] = randomToken() // ID Dataweb's ID tokens carry a jti
	}
	iat, exp := now, now.Add(AccessTokenLifetime)
	claims["iss"] = p.issuer
	claims["sub"] = g.subject
	claims["aud"] = client.ID
	claims["azp"] = client.ID
	claims["at_hash"] = atHash(accessToken)
	if g.sid != "" {
		claims["sid"] = g.sid
	}
	delete(claims, ClaimAuthReqID)
	if g.authReqID != "" && !refresh {
		claims[ClaimAuthReqID] = g.authReqID
	}
	delete(claims, "nonce")
	if nonce != "" {
		claims["nonce"] = nonce
	}
	key := p.currentKey()
	signer := key
	header := map[string]any{"alg": key.alg, "kid": key.kid, "typ": "JWT"}

	if f.IDTokenWrongIssuer {
		claims["iss"] = WrongIssuer
	}
	if f.IDTokenWrongAudience {
		claims["aud"] = OtherClientID
	}
	if f.IDTokenExtraAudience {
		claims["aud"] = []any{client.ID, OtherClientID}
	}
	if f.IDTokenMissingAudience {
		delete(claims, "aud")
	}
	if f.IDTokenAzpOther {
		claims["azp"] = OtherClientID
	}
	if f.IDTokenWrongNonce {
		if nonce == "" {
			claims["nonce"] = "wrong-nonce"
		} else {
			claims["nonce"] = nonce + "-wrong"
		}
	}
	if f.IDTokenMissingNonce {
		delete(claims, "nonce")
	}
	if f.IDTokenMissingSub {
		delete(claims, "sub")
	}
	if f.IDTokenExpired {
		exp = now.Add(-360 * time.Second)
	}
	if f.IDTokenIatFuture {
		iat = now.Add(10 * time.Minute)
		exp = iat.Add(AccessTokenLifetime)
	}
	if f.IDTokenIatWeekOld {
		iat = now.Add(-7 * 24 * time.Hour)
	}
	claims["iat"] = iat.Unix()
	claims["exp"] = exp.Unix()
	if f.IDTokenMissingIat {
		delete(claims, "iat")
	}
	if f.IDTokenBadAtHash {
		claims["at_hash"] = atHash(accessToken + "-other")
	}
	if f.IDTokenAlgNone {
		header["alg"] = "none"
		delete(header, "kid")
	}
	if f.IDTokenHS256 {
		header["alg"] = "HS256"
		delete(header, "kid")
	}
	if f.IDTokenUnpublishedKey {
		k, err := unpublishedKey(key.alg)
		if err != nil {
			return "", err
		}
		signer = k
	}
	if refresh {
		for k, v := range f.RefreshIDTokenClaims {
			if v == nil {
				delete(claims, k)
			} else {
				claims[k] = cloneValue(v)
			}
		}
	}
	if f.MutateIDToken != nil {
		f.MutateIDToken(header, claims)
	}
	tok, err := signJWT(header, claims, signer, []byte(client.Secret))
	if err != nil {
		return "", err
	}
	if f.IDTokenBadSignature {
		tok = flipLastSignatureByte(tok)
	}
	return tok, nil
}

// ---- userinfo ------------------------------------------------------------------------------

func (p *Provider) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	p.bump(func(c *Counts) *int { return &c.Userinfo })
	if !allowMethods(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	var form url.Values
	var body []byte
	if r.Method == http.MethodPost {
		var err error
		if form, body, err = readForm(w, r); err != nil {
			bearerError(w, bodyErrorStatus(err), "invalid_request", "request body could not be read")
			return
		}
	}
	rec := &recordedRequest{req: r.Clone(r.Context()), body: body}
	rec.req.Body = http.NoBody
	p.mu.Lock()
	p.lastUserinfo = rec
	p.mu.Unlock()

	f, _ := p.snapshot()
	if !p.wait(r, f.UserinfoDelay) {
		return
	}
	if f.UserinfoStatus != 0 {
		setNote(w, "status fault %d", f.UserinfoStatus)
		if f.UserinfoStatus == http.StatusUnauthorized {
			bearerError(w, http.StatusUnauthorized, "invalid_token", "fault injected by oidctest")
			return
		}
		writeJSON(w, f.UserinfoStatus, map[string]string{"error": "server_error", "error_description": "fault injected by oidctest"})
		return
	}
	if r.URL.Query().Has("access_token") || form.Has("access_token") {
		setNote(w, "rejected: access token outside the Authorization header")
		bearerError(w, http.StatusUnauthorized, "invalid_request", "the access token is accepted only in the Authorization header")
		return
	}
	tok, ok := bearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="oidctest"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_request", "error_description": "Bearer token required"})
		return
	}
	now := p.now()
	p.mu.Lock()
	g, ok := p.access.get(now, tok)
	p.mu.Unlock()
	if !ok {
		setNote(w, "rejected: unknown or expired access token")
		bearerError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid or expired")
		return
	}
	user, _ := p.user(g.subject)
	client := p.clients[g.clientID]
	setNote(w, "client=%s user=%s", client.ID, user.Subject)

	claims := cloneMap(user.UserinfoClaims)
	if claims == nil {
		claims = map[string]any{}
	}
	claims["sub"] = user.Subject
	if g.alias != "" {
		claims["bindid_alias"] = g.alias
	}
	if _, ok := claims["auth_time"]; ok {
		claims["auth_time"] = g.authTime.Unix()
	}
	if _, ok := claims["nonce"]; ok {
		if g.nonce == "" {
			delete(claims, "nonce")
		} else {
			claims["nonce"] = g.nonce
		}
	}
	if f.UserinfoSubMismatch {
		claims["sub"] = user.Subject + "invalid"
	}
	if f.UserinfoMissingSub {
		delete(claims, "sub")
	}
	if f.UserinfoHTML {
		writeHTML(w, http.StatusOK, "<!doctype html><title>Userinfo</title><p>This is not JSON.</p>")
		return
	}
	signed := (client.SignedUserinfo || user.SignedUserinfo) && !f.UserinfoForceJSON && !f.UserinfoArray
	contentType := "application/json"
	var out []byte
	if signed {
		key := p.currentKey()
		header := map[string]any{"alg": key.alg, "kid": key.kid, "typ": "JWT"}
		claims["iss"] = p.issuer
		if p.uiIssuer != "" {
			claims["iss"] = p.uiIssuer
		}
		claims["aud"] = client.ID
		if f.UserinfoJWTWrongIssuer {
			claims["iss"] = WrongIssuer
		}
		if f.UserinfoJWTWrongAudience {
			claims["aud"] = OtherClientID
		}
		if f.UserinfoJWTAlgNone {
			header["alg"] = "none"
			delete(header, "kid")
		}
		if f.UserinfoJWTHS256 {
			header["alg"] = "HS256"
			delete(header, "kid")
		}
		if f.MutateUserinfo != nil {
			f.MutateUserinfo(header, claims)
		}
		jwt, err := signJWT(header, claims, key, []byte(client.Secret))
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
			return
		}
		if f.UserinfoJWTBadSignature {
			jwt = flipLastSignatureByte(jwt)
		}
		contentType, out = "application/jwt", []byte(jwt)
	} else {
		if f.MutateUserinfo != nil {
			f.MutateUserinfo(nil, claims)
		}
		var v any = claims
		if f.UserinfoArray {
			v = []any{claims}
		}
		var err error
		if out, err = json.Marshal(v); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
			return
		}
	}
	if f.UserinfoContentType != "" {
		contentType = f.UserinfoContentType
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// bearerToken extracts the token of a single "Authorization: Bearer <token>" header (the
// scheme is case-insensitive, RFC 7235).
func bearerToken(r *http.Request) (string, bool) {
	hs := r.Header.Values("Authorization")
	if len(hs) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(hs[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// ---- end session ---------------------------------------------------------------------------

func (p *Provider) handleEndSession(w http.ResponseWriter, r *http.Request) {
	p.bump(func(c *Counts) *int { return &c.EndSession })
	var q url.Values
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		q = r.URL.Query()
	case http.MethodPost:
		form, _, err := readForm(w, r)
		if err != nil {
			p.errorPage(w, bodyErrorStatus(err), "The request body could not be read.")
			return
		}
		q = form
	default:
		allowMethods(w, r, http.MethodGet, http.MethodHead, http.MethodPost)
		return
	}
	p.mu.Lock()
	p.lastEndSession = cloneValues(q)
	p.mu.Unlock()
	f, _ := p.snapshot()

	clientID := q.Get("client_id")
	if hint := q.Get("id_token_hint"); hint != "" {
		claims, err := p.verifyOwnJWT(hint)
		if err != nil {
			p.errorPage(w, http.StatusBadRequest, "id_token_hint is not an ID token issued here.")
			return
		}
		aud := audiences(claims["aud"])
		switch {
		case clientID == "" && len(aud) > 0:
			clientID = aud[0]
		case clientID != "" && !slices.Contains(aud, clientID):
			p.errorPage(w, http.StatusBadRequest, "client_id does not match id_token_hint.")
			return
		}
	}
	target := q.Get("post_logout_redirect_uri")
	if target == "" {
		p.signedOutPage(w, http.StatusOK, "")
		return
	}
	client, ok := p.clients[clientID]
	if !ok || !allowedURI(client.PostLogoutRedirectURIs, target) {
		p.errorPage(w, http.StatusBadRequest, "post_logout_redirect_uri is not registered for this client.")
		return
	}
	u, err := url.Parse(target)
	if err != nil {
		p.errorPage(w, http.StatusBadRequest, "post_logout_redirect_uri is not a URL.")
		return
	}
	uq := u.Query()
	switch state := q.Get("state"); {
	case f.EndSessionMissingState:
	case f.EndSessionWrongState:
		uq.Set("state", state+"-other")
	case state != "":
		uq.Set("state", state)
	}
	u.RawQuery = uq.Encode()
	setNote(w, "client=%s", client.ID)
	w.Header().Set("Location", u.String())
	p.signedOutPage(w, http.StatusFound, u.String())
}

func audiences(v any) []string {
	switch a := v.(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, e := range a {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// ---- helpers -------------------------------------------------------------------------------

// readForm reads a POST body through a size limit. The form is parsed only for
// application/x-www-form-urlencoded bodies; query parameters are never mixed in.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, []byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return nil, nil, err
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return url.Values{}, body, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, body, fmt.Errorf("parsing form: %w", err)
	}
	return form, body, nil
}

func bodyErrorStatus(err error) int {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding response failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeHTML(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, s)
}

func tokenError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func bearerError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="oidctest", error=%q, error_description=%q`, code, desc))
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// s256 is the PKCE S256 transform.
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return b64(sum[:])
}

// validVerifier checks RFC 7636 §4.1: 43-128 characters of [A-Za-z0-9-._~].
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !isAlnum(c) && c != '-' && c != '.' && c != '_' && c != '~' {
			return false
		}
	}
	return true
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
