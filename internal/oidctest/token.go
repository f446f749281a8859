package oidctest

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// /token: client authentication, the authorization-code and refresh grants, and the tokens
// they issue.

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
	client, ok := p.authenticate(auth, clientID, secret)
	if !ok {
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

// authenticate returns the client that auth (from clientAuth) authenticates: a known
// client_id with its secret; "none" authenticates nobody at the back-channel endpoints.
func (p *Provider) authenticate(auth, clientID, secret string) (Client, bool) {
	client, ok := p.clients[clientID]
	if !ok || auth == "none" || subtle.ConstantTimeCompare([]byte(secret), []byte(client.Secret)) != 1 {
		return Client{}, false
	}
	return client, true
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
