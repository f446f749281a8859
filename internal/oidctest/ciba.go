package oidctest

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Client Initiated Backchannel Authentication (CIBA Core 1.0, poll mode; seed 004).

const (
	// GrantTypeCIBA is the grant type of the CIBA token request.
	GrantTypeCIBA = "urn:openid:params:grant-type:ciba"
	// ClaimAuthReqID is the ID token claim naming the auth_req_id the tokens were issued for.
	ClaimAuthReqID = "urn:openid:params:jwt:claim:auth_req_id"
	// DefaultCIBAExpiresIn is the lifetime of a backchannel authentication request when
	// neither Options.CIBAExpiresIn nor the request's requested_expiry says otherwise.
	DefaultCIBAExpiresIn = 120 * time.Second
	// DefaultCIBAInterval is the polling interval enforced when Options.CIBAInterval is 0
	// (and the ack carries no interval): CIBA Core 7.3's default.
	DefaultCIBAInterval = 5 * time.Second
	// CIBASlowDownIncrement is what every slow_down answer adds to the interval the Provider
	// enforces for that auth_req_id (CIBA Core 11, RFC 8628 3.5).
	CIBASlowDownIncrement = 5 * time.Second
	// MaxCIBARequestedExpiry caps a request's requested_expiry.
	MaxCIBARequestedExpiry = time.Hour

	maxCIBARequests     = 4096 // outstanding backchannel authentication requests
	maxCIBAPollTimes    = 1024 // poll times kept per request
	maxBindingMessage   = 64   // characters
	maxUserCode         = 64   // characters
	maxCIBAClaims       = 4096 // bytes of the claims request parameter
	cibaHintParamsLabel = "login_hint, login_hint_token or id_token_hint"
)

// cibaState is the user's decision on a backchannel authentication request.
type cibaState int

const (
	cibaPending cibaState = iota
	cibaApproved
	cibaDenied
)

// cibaRequest is one backchannel authentication request. Guarded by p.mu.
type cibaRequest struct {
	id             string
	clientID       string
	subject        string
	hint           string // the hint parameter's value, for CIBAByHint
	bindingMessage string // shown on the device page
	scope          string
	acr            string
	claims         map[string]any // the claims request parameter (OIDC Core 5.5), or nil
	created        time.Time
	expiresAt      time.Time
	interval       time.Duration // the wait enforced between polls; grows with every slow_down
	lastPoll       time.Time     // the previous poll, or the ack before the first
	polls          int           // token requests for this auth_req_id, spent or not
	pollTimes      []time.Time   // the first maxCIBAPollTimes of them
	state          cibaState
	decidedAt      time.Time
	spent          bool // a final answer (tokens, access_denied, expired_token, ...) was given
}

// cibaUserCodes holds the user codes set with SetCIBAUserCode, by Provider and subject.
var cibaUserCodes sync.Map // cibaUserCodeKey -> string

type cibaUserCodeKey struct {
	p       *Provider
	subject string
}

// SetCIBAUserCode makes subject a user who registered code as their user code (CIBA Core
// 7.1: "a secret code, such as a password or pin, that is known only to the user"), as the
// bank of seed 004 does: a backchannel authentication request for this user without
// user_code is answered 400 missing_user_code, one with another user_code 400
// invalid_user_code (CIBA Core 13). The client then asks the user for the code and sends
// the request again with user_code (seed 004 step 3: with id_token_hint), which gets a new
// auth_req_id. An empty code removes the requirement.
func (p *Provider) SetCIBAUserCode(subject, code string) {
	k := cibaUserCodeKey{p, subject}
	if code == "" {
		cibaUserCodes.Delete(k)
		return
	}
	cibaUserCodes.Store(k, code)
}

func (p *Provider) cibaUserCode(subject string) (string, bool) {
	v, ok := cibaUserCodes.Load(cibaUserCodeKey{p, subject})
	if !ok {
		return "", false
	}
	return v.(string), true
}

// cibaOptions checks and defaults the CIBA options.
func cibaOptions(o Options) (expiresIn, interval time.Duration, err error) {
	expiresIn, interval = o.CIBAExpiresIn, o.CIBAInterval
	switch {
	case expiresIn < 0 || expiresIn%time.Second != 0:
		return 0, 0, fmt.Errorf("oidctest: CIBA expires_in %v is not a positive whole number of seconds", expiresIn)
	case interval < 0 || interval%time.Second != 0:
		return 0, 0, fmt.Errorf("oidctest: CIBA interval %v is not a non-negative whole number of seconds", interval)
	}
	if expiresIn == 0 {
		expiresIn = DefaultCIBAExpiresIn
	}
	return expiresIn, interval, nil
}

// LastCIBARequest is the form of the last backchannel authentication request (body
// parameters only), plus "auth" = "basic", "post" or "none" for the client authentication
// it used. Nil before any.
func (p *Provider) LastCIBARequest() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return cloneValues(p.lastCIBA)
}

// CIBAApprove approves a pending backchannel authentication request as its user would on
// their device: the next poll (after the interval) gets tokens, with auth_time = now.
func (p *Provider) CIBAApprove(authReqID string) error {
	return p.cibaDecide(authReqID, cibaApproved)
}

// CIBADeny denies a pending backchannel authentication request: the next poll (after the
// interval) gets access_denied.
func (p *Provider) CIBADeny(authReqID string) error {
	return p.cibaDecide(authReqID, cibaDenied)
}

func (p *Provider) cibaDecide(authReqID string, s cibaState) error {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	req, ok := p.ciba.get(now, authReqID)
	switch {
	case !ok:
		return errors.New("oidctest: unknown auth_req_id")
	case req.spent:
		return errors.New("oidctest: auth_req_id already answered")
	case req.state != cibaPending:
		return errors.New("oidctest: auth_req_id already decided")
	case !now.Before(req.expiresAt):
		return errors.New("oidctest: auth_req_id expired")
	}
	req.state, req.decidedAt = s, now
	return nil
}

// CIBAByHint finds the newest pending, live backchannel authentication request whose hint
// parameter (login_hint, login_hint_token or id_token_hint) was hint, or whose user has
// the subject hint. It is how a test finds the auth_req_id the relying party keeps to itself.
func (p *Provider) CIBAByHint(hint string) (authReqID string, ok bool) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var best *cibaRequest
	for _, ent := range p.ciba.m {
		req := ent.v
		if req.spent || req.state != cibaPending || !now.Before(req.expiresAt) {
			continue
		}
		if req.hint != hint && req.subject != hint {
			continue
		}
		if best == nil || req.created.After(best.created) {
			best = req
		}
	}
	if best == nil {
		return "", false
	}
	return best.id, true
}

// CIBAPollTimes returns the times (Provider clock) of the token requests made for
// authReqID, in order, including those after it was spent (at most the first 1024). Nil for
// an unknown auth_req_id.
func (p *Provider) CIBAPollTimes(authReqID string) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	ent, ok := p.ciba.m[authReqID]
	if !ok {
		return nil
	}
	return slices.Clone(ent.v.pollTimes)
}

// handleBackchannelAuthorize is the backchannel authentication endpoint (CIBA Core 7):
// client authentication as at /token, scope with openid, exactly one hint, optional
// binding_message, user_code, requested_expiry, acr_values and claims (OpenID Connect Core
// 5.5: one JSON object, at most 4096 bytes; its id_token member is reflected in the ID
// token of the grant); the user_code of a user who has one (SetCIBAUserCode); the answer
// is the ack {auth_req_id, expires_in, interval} or an OAuth error (CIBA Core 13).
func (p *Provider) handleBackchannelAuthorize(w http.ResponseWriter, r *http.Request) {
	p.bump(func(c *Counts) *int { return &c.CIBAAuthorize })
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	form, auth, clientID, secret, authErr, ok := p.readClientForm(w, r, &p.lastCIBA)
	if !ok {
		return
	}
	setNote(w, "auth=%s", auth)

	f, _ := p.snapshot()
	if f.CIBAAuthorizeError != "" {
		status := f.CIBAAuthorizeErrorStatus
		if status == 0 {
			status = http.StatusBadRequest
		}
		setNote(w, "error=%s (fault)", f.CIBAAuthorizeError)
		tokenError(w, status, f.CIBAAuthorizeError, "fault injected by oidctest")
		return
	}
	fail := func(status int, code, desc string) {
		setNote(w, "error=%s (%s)", code, desc)
		tokenError(w, status, code, desc)
	}
	for k, vs := range form {
		if len(vs) > 1 {
			fail(http.StatusBadRequest, "invalid_request", "parameter "+k+" is repeated")
			return
		}
	}
	if authErr != nil {
		fail(http.StatusBadRequest, "invalid_request", authErr.Error())
		return
	}
	client, ok := p.authenticate(auth, clientID, secret)
	if !ok {
		if auth == "basic" {
			w.Header().Set("WWW-Authenticate", `Basic realm="oidctest"`)
		}
		fail(http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if !slices.Contains(strings.Fields(form.Get("scope")), "openid") {
		fail(http.StatusBadRequest, "invalid_scope", "scope must include openid")
		return
	}
	var hintParam, hint string
	n := 0
	for _, k := range []string{"login_hint", "login_hint_token", "id_token_hint"} {
		if _, present := form[k]; present {
			n++
			hintParam, hint = k, form.Get(k)
		}
	}
	if n != 1 || hint == "" {
		fail(http.StatusBadRequest, "invalid_request", "exactly one of "+cibaHintParamsLabel+" is required")
		return
	}
	if _, present := form["binding_message"]; present {
		if m := form.Get("binding_message"); m == "" || utf8.RuneCountInString(m) > maxBindingMessage || !utf8.ValidString(m) || strings.ContainsFunc(m, notPrintable) {
			fail(http.StatusBadRequest, "invalid_binding_message", "binding_message must be 1 to 64 printable characters")
			return
		}
	}
	if _, present := form["user_code"]; present {
		if c := form.Get("user_code"); c == "" || len(c) > maxUserCode || strings.ContainsFunc(c, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			fail(http.StatusBadRequest, "invalid_user_code", "user_code must be 1 to 64 printable ASCII characters")
			return
		}
	}
	expiresIn := p.cibaExpiry
	if _, present := form["requested_expiry"]; present {
		s := form.Get("requested_expiry")
		secs, err := strconv.ParseInt(s, 10, 64)
		if err != nil || secs <= 0 || strings.TrimLeft(s, "0123456789") != "" {
			fail(http.StatusBadRequest, "invalid_request", "requested_expiry must be a positive integer (seconds)")
			return
		}
		expiresIn = time.Duration(min(secs, int64(MaxCIBARequestedExpiry/time.Second))) * time.Second
	}
	var claimsReq map[string]any
	if _, present := form["claims"]; present {
		var err error
		if claimsReq, err = parseClaimsRequest(form.Get("claims")); err != nil {
			fail(http.StatusBadRequest, "invalid_request", "claims: "+err.Error())
			return
		}
	}
	user, code, desc := p.cibaUser(client, hintParam, hint)
	if code != "" {
		fail(http.StatusBadRequest, code, desc)
		return
	}
	if want, ok := p.cibaUserCode(user.Subject); ok {
		got, present := form["user_code"]
		switch {
		case !present:
			fail(http.StatusBadRequest, "missing_user_code", "this user requires a user_code; ask them for it and send the request again with it")
			return
		case subtle.ConstantTimeCompare([]byte(got[0]), []byte(want)) != 1:
			fail(http.StatusBadRequest, "invalid_user_code", "user_code is not this user's")
			return
		}
	}
	acr := user.reachedACR(form.Get("acr_values"))
	if acr == "" {
		acr = user.reachedACR(strings.Join(requestedACRs(claimsReq), " "))
	}

	now := p.now()
	interval := p.cibaIntvl
	if interval == 0 {
		interval = DefaultCIBAInterval
	}
	req := &cibaRequest{
		id:             randomToken(),
		clientID:       client.ID,
		subject:        user.Subject,
		hint:           hint,
		bindingMessage: form.Get("binding_message"),
		scope:          form.Get("scope"),
		acr:            acr,
		claims:         claimsReq,
		created:        now,
		expiresAt:      now.Add(expiresIn),
		interval:       interval,
		lastPoll:       now,
	}
	p.mu.Lock()
	// Kept past its expiry so that a late poll gets expired_token, then invalid_grant.
	p.ciba.put(now, req.id, req, req.expiresAt.Add(usedMarkerTTL))
	p.mu.Unlock()
	setNote(w, "client=%s user=%s", client.ID, user.Subject)

	ack := map[string]any{
		"auth_req_id": req.id,
		"expires_in":  int64(expiresIn / time.Second),
	}
	if p.cibaIntvl > 0 {
		ack["interval"] = int64(p.cibaIntvl / time.Second)
	}
	if f.CIBAAckExpiresIn != nil {
		ack["expires_in"] = f.CIBAAckExpiresIn
	}
	if f.CIBAAckInterval != nil {
		ack["interval"] = f.CIBAAckInterval
	}
	if f.CIBAAckOmit != "" {
		delete(ack, f.CIBAAckOmit)
	}
	writeJSON(w, http.StatusOK, ack)
}

// cibaUser resolves the request's hint to a user, or returns the CIBA error code and
// description.
func (p *Provider) cibaUser(client Client, param, hint string) (User, string, string) {
	switch param {
	case "login_hint":
		if u, ok := p.userByLoginHint(hint); ok {
			return u, "", ""
		}
		return User{}, "unknown_user_id", "login_hint names no known user"
	case "id_token_hint":
		claims, err := p.verifyOwnJWT(hint)
		if err != nil {
			return User{}, "invalid_id_token_hint", "id_token_hint is not an ID token issued by this provider"
		}
		if _, isLogout := claims["events"]; isLogout || !slices.Contains(audiences(claims["aud"]), client.ID) {
			return User{}, "invalid_id_token_hint", "id_token_hint is not an ID token issued to this client"
		}
		exp, ok := claims["exp"].(float64)
		if !ok {
			return User{}, "invalid_id_token_hint", "id_token_hint has no exp"
		}
		if !p.now().Before(time.Unix(int64(exp), 0)) {
			return User{}, "expired_id_token_hint", "id_token_hint has expired"
		}
		sub, _ := claims["sub"].(string)
		if u, ok := p.user(sub); ok {
			return u, "", ""
		}
		return User{}, "unknown_user_id", "id_token_hint names no known user"
	default: // login_hint_token
		claims, err := p.verifyOwnJWT(hint)
		if err != nil {
			return User{}, "invalid_request", "login_hint_token is not a JWT signed by this provider"
		}
		if exp, ok := claims["exp"].(float64); ok && !p.now().Before(time.Unix(int64(exp), 0)) {
			return User{}, "expired_login_hint_token", "login_hint_token has expired"
		}
		sub, _ := claims["sub"].(string)
		if u, ok := p.user(sub); ok {
			return u, "", ""
		}
		return User{}, "unknown_user_id", "login_hint_token names no known user"
	}
}

// userByLoginHint matches a login_hint against the users' subjects, labels and (case
// insensitively) e-mail addresses.
func (p *Provider) userByLoginHint(hint string) (User, bool) {
	if u, ok := p.autoLoginUser(hint); ok {
		return u, true
	}
	for _, u := range p.users {
		for _, claims := range []map[string]any{u.IDTokenClaims, u.UserinfoClaims} {
			if e, _ := claims["email"].(string); e != "" && strings.EqualFold(e, hint) {
				return u, true
			}
		}
	}
	return User{}, false
}

// cibaGrant answers a token request with grant_type urn:openid:params:grant-type:ciba
// (CIBA Core 10.1, 11), in this order: an unknown auth_req_id, one issued to another
// client or one already answered finally is invalid_grant; past its expiry expired_token;
// earlier than the interval since the previous poll (or the ack) slow_down; then the poll
// faults; then the user's decision: authorization_pending, access_denied or the tokens.
// Every poll is recorded; every slow_down adds CIBASlowDownIncrement to the interval.
func (p *Provider) cibaGrant(w http.ResponseWriter, client Client, form url.Values, f Faults) {
	id := form.Get("auth_req_id")
	now := p.now()
	p.mu.Lock()
	req, ok := p.ciba.get(now, id)
	if !ok || req.clientID != client.ID {
		p.mu.Unlock()
		setNote(w, "grant_type=ciba error=invalid_grant (unknown auth_req_id)")
		tokenError(w, http.StatusBadRequest, "invalid_grant", "auth_req_id is invalid or was issued to another client")
		return
	}
	req.polls++
	if len(req.pollTimes) < maxCIBAPollTimes {
		req.pollTimes = append(req.pollTimes, now)
	}
	n := req.polls
	prev := req.lastPoll
	req.lastPoll = now
	answer := func(code, desc string, final bool) {
		if final {
			req.spent = true
		}
		if code == "slow_down" {
			req.interval += CIBASlowDownIncrement
		}
		p.mu.Unlock()
		setNote(w, "grant_type=ciba poll=%d error=%s", n, code)
		tokenError(w, http.StatusBadRequest, code, desc)
	}
	switch {
	case req.spent:
		answer("invalid_grant", "auth_req_id was already answered", false)
		return
	case !now.Before(req.expiresAt):
		answer("expired_token", "auth_req_id has expired", true)
		return
	case now.Sub(prev) < req.interval:
		answer("slow_down", fmt.Sprintf("polled %v after the previous request; the interval is %v", now.Sub(prev), req.interval), false)
		return
	case f.CIBATokenError != "" && f.CIBATokenErrorOnPoll == n:
		e := f.CIBATokenError
		answer(e, "fault injected by oidctest", e != "authorization_pending" && e != "slow_down")
		return
	case slices.Contains(f.CIBASlowDownOnPoll, n):
		answer("slow_down", "fault injected by oidctest", false)
		return
	case req.state == cibaPending:
		answer("authorization_pending", "the user has not yet answered", false)
		return
	case req.state == cibaDenied:
		answer("access_denied", "the user denied the request", true)
		return
	}
	req.spent = true
	g := &grant{
		family:    randomToken(),
		clientID:  client.ID,
		subject:   req.subject,
		scope:     req.scope,
		authTime:  req.decidedAt,
		acr:       req.acr,
		sid:       randomToken(),
		alias:     p.aliases[req.subject],
		authReqID: req.id,
	}
	claimsReq := req.claims
	p.mu.Unlock()
	if claimsReq != nil {
		user, _ := p.user(g.subject)
		mutate := f.MutateIDToken
		f.MutateIDToken = func(header, claims map[string]any) {
			reflectIDTokenClaims(claimsReq, user, claims)
			if mutate != nil {
				mutate(header, claims)
			}
		}
	}
	setNote(w, "grant_type=ciba poll=%d client=%s user=%s", n, client.ID, g.subject)
	p.issueTokens(w, client, g, "", !f.IDTokenOmit, false, f)
}

// parseClaimsRequest reads the claims request parameter (OpenID Connect Core 5.5): one JSON
// object of at most 4096 bytes whose members userinfo and id_token, when present, are
// objects of claim names to null or to an object (essential, value, values).
func parseClaimsRequest(s string) (map[string]any, error) {
	if len(s) > maxCIBAClaims {
		return nil, fmt.Errorf("more than %d bytes", maxCIBAClaims)
	}
	dec := json.NewDecoder(strings.NewReader(s))
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	for _, member := range []string{"userinfo", "id_token"} {
		v, ok := m[member]
		if !ok {
			continue
		}
		req, ok := v.(map[string]any)
		if !ok {
			return nil, errors.New(member + " is not an object")
		}
		for name, spec := range req {
			if _, ok := spec.(map[string]any); spec != nil && !ok {
				return nil, fmt.Errorf("%s.%s is neither null nor an object", member, name)
			}
		}
	}
	return m, nil
}

// requestedACRs are the acr values the claims request asks for in the ID token
// ({"id_token":{"acr":{"values":[...]}}} or "value"), in order of preference.
func requestedACRs(claimsReq map[string]any) []string {
	idt, _ := claimsReq["id_token"].(map[string]any)
	spec, _ := idt["acr"].(map[string]any)
	if v, ok := spec["value"].(string); ok {
		return []string{v}
	}
	vs, _ := spec["values"].([]any)
	var out []string
	for _, v := range vs {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// cibaProtocolClaims are the ID token claims a claims request cannot bring in or change.
var cibaProtocolClaims = []string{"iss", "sub", "aud", "azp", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "sid", "acr", "auth_time", ClaimAuthReqID}

// reflectIDTokenClaims adds to an ID token the claims its claims request asks for in the
// id_token member (OpenID Connect Core 5.5: "requests that the listed individual Claims be
// returned in the ID Token") that the user has, in their ID token or userinfo claims. A
// claim the user does not have is left out, essential or not (5.5.1: not an error). The
// userinfo member needs nothing: this Provider's userinfo returns all the user's
// UserinfoClaims whatever the scope.
func reflectIDTokenClaims(claimsReq map[string]any, user User, claims map[string]any) {
	idt, _ := claimsReq["id_token"].(map[string]any)
	for name := range idt {
		if slices.Contains(cibaProtocolClaims, name) {
			continue
		}
		if _, ok := claims[name]; ok {
			continue
		}
		if v, ok := user.UserinfoClaims[name]; ok {
			claims[name] = cloneValue(v)
		}
	}
}

// notPrintable is true for control and format characters and for white space other than
// the plain space: what a binding message shown on a device must not contain.
func notPrintable(r rune) bool { return !unicode.IsPrint(r) }
