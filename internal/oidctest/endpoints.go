package oidctest

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
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
	mux.HandleFunc(PathIntrospect, p.handleIntrospect)
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
	doc := p.discoveryDocument()
	f, _ := p.snapshot()
	maps.Copy(doc, f.DiscoveryExtra)
	writeJSON(w, http.StatusOK, doc)
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
		"introspection_endpoint":                         p.issuer + PathIntrospect,
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

// ---- userinfo ------------------------------------------------------------------------------

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
