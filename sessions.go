package trustgate

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/provider"
	"github.com/trustgate/trustgate/session"
	"github.com/trustgate/trustgate/trust"
)

// jar reads and writes the gateway's session cookies and renders a session for the
// upstream: the one place that knows the cookie names, the codecs and the decode cache.
// Every feature that needs the current session or sets a cookie gets it from Provision.
type jar struct {
	*base
	issuer, clientID string // a session of another configuration sharing the store is not ours
	insecure         bool   // insecure_cookie: no Secure attribute, no __Host- prefix
	cookieName       string // the session cookie
	txPrefix         string // login transaction cookies: txPrefix + state
	codec            *session.Codec
	txCodec          *session.Codec
	decoded          *decodeCache // verified session cookie values -> session ids
	trustOpts        trust.Options
	loginURL         string // <prefix>/login, for a client without a session
	// create: a new session lives lifetime (absolute) and idleTimeout (idle), and only
	// after the provider profile's decision (ID Dataweb: approve) when it has one.
	lifetime, idleTimeout time.Duration
	profile               *provider.Profile
}

// currentSession finds the session named by the request's session cookie. A missing,
// tampered, expired or foreign cookie is session.ErrNotFound, never an error page; only a
// store failure is an error.
func (j *jar) current(r *http.Request) (*session.Session, error) {
	id, ok := j.id(r)
	if !ok {
		return nil, session.ErrNotFound
	}
	s, err := j.store.Get(r.Context(), id)
	if err != nil {
		return nil, err
	}
	// A session made by another trustgate configuration sharing this store and cookie
	// (another issuer or client) is not a session here (threat model SES-08).
	if s.Issuer != j.issuer || s.ClientID != j.clientID {
		return nil, session.ErrNotFound
	}
	return s, nil
}

// sessionID decodes the session cookie. Several cookies of that name (cookie tossing from a
// sibling domain, when the __Host- prefix is off) are tried in order, at most a few. A value
// decoded (and so authenticated) before is taken from the decode cache.
func (j *jar) id(r *http.Request) (string, bool) {
	tried := 0
	for _, line := range r.Header["Cookie"] {
		for line != "" && tried < 3 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			name, value, ok := strings.Cut(part, "=")
			if !ok || strings.TrimSpace(name) != j.cookieName {
				continue
			}
			tried++
			value = strings.TrimSpace(value)
			if len(value) > 1 && value[0] == '"' && value[len(value)-1] == '"' {
				value = value[1 : len(value)-1]
			}
			if id, ok := j.decoded.get(value); ok {
				return id, true
			}
			var id string
			if j.codec.Decode(j.cookieName, value, &id) == nil && session.ValidID(id) {
				j.decoded.put(value, id)
				return id, true
			}
		}
	}
	return "", false
}

// headerAssertion carries the signed identity assertion. Its name has the managed X-Auth-
// prefix, so a client-sent one is always removed first.
const headerAssertion = "X-Auth-Assertion"

// headerBinding carries a confirmed identity binding (the provider's verdict) to the
// application.
const headerBinding = "X-Auth-Binding"

// rendered is what an authenticated request needs from a session, computed once per stored
// session version and kept in the session's cache slot. It is valid for the rendering options
// it was made with: a reload that changes them, or another handler with other options,
// renders again.
type rendered struct {
	provider     caddy.ReplacerFunc // rd.placeholder, made once
	opts         trust.Options
	profile      *trust.Profile
	headers      []trust.Header // canonical names
	placeholders map[string]string
	expires      string
	headerBytes  int // the headers' share of max_total_header_bytes (name + value + 4 each)
	// refreshRetryAt (unix ns): a refresh of this session version failed for a passing
	// reason; the next attempt waits until then.
	refreshRetryAt atomic.Int64
	linking        atomic.Bool // an alias of this session is being reported
	// Slots of the floors above, typed there: the *authState left for the policy blocks
	// (handler.go) and the *signedAssertion for X-Auth-Assertion, re-signed before it
	// expires (assertion.go).
	state, assertion atomic.Value
}

func (j *jar) render(s *session.Session) *rendered {
	p := s.Cache.Load()
	if p != nil {
		if r, ok := (*p).(*rendered); ok && r.opts == j.trustOpts {
			return r
		}
	}
	prof := trust.NewProfile(s.Claims, j.trustOpts)
	hs, dropped := prof.Headers(j.trustOpts)
	for _, d := range dropped {
		j.logger.Warn("identity header not sent: over the size limit (values are never cut)",
			zap.String("reason", d.Reason), zap.String("header", d.Name), zap.Int("bytes", d.Bytes),
			zap.Int("max_header_bytes", j.trustOpts.MaxHeaderBytes), zap.Int("max_total_header_bytes", j.trustOpts.MaxTotalHeaderBytes),
			zap.String("session_hash", sessionHash(s.ID)))
	}
	out := &rendered{
		opts:         j.trustOpts,
		profile:      prof,
		headers:      make([]trust.Header, 0, len(hs)),
		placeholders: prof.Placeholders(),
		expires:      strconv.FormatInt(s.ExpiresAt.Unix(), 10),
	}
	if prof.User == "" {
		out.placeholders["id"] = s.Subject // no user_claim, or the login lacks it
	}
	if prof.GroupsRefused > 0 {
		// Once per rendering (session version), not per request; never the values.
		claim := j.trustOpts.GroupsClaim
		if claim == "" {
			claim = trust.DefaultGroupsClaim
		}
		j.logger.Warn("group values left out of X-Auth-Groups and {http.auth.user.groups}: they contain a comma or a control character (values are never cut or escaped)",
			zap.String("reason", "group_value_refused"), zap.String("header", trust.HeaderGroups),
			zap.String("claim", claim), zap.Int("refused", prof.GroupsRefused),
			zap.String("session_hash", sessionHash(s.ID)))
	}
	out.provider = out.placeholder
	if s.Binding != "" {
		hs = append(hs, trust.Header{Name: headerBinding, Value: trust.EncodeValue(s.Binding)})
	}
	for _, hd := range hs {
		out.headers = append(out.headers, trust.Header{Name: http.CanonicalHeaderKey(hd.Name), Value: hd.Value})
		out.headerBytes += len(hd.Name) + len(hd.Value) + 4
	}
	var v any = out
	s.Cache.CompareAndSwap(p, &v)
	return out
}

// placeholder answers {http.auth.user.*} and {http.auth.oidc.*} for a request of this
// session.
func (rd *rendered) placeholder(key string) (any, bool) {
	const user, oidc = "http.auth.user.", "http.auth.oidc."
	switch {
	case len(key) > len(user) && key[:len(user)] == user:
		v, ok := rd.placeholders[key[len(user):]]
		return v, ok
	case key == oidc+"session_expires":
		return rd.expires, true
	}
	return nil, false
}

// stripGatewayCookies removes the session and login cookies from the request the upstream
// sees, keeping every other cookie byte for byte (threat model HDR-09).
func (j *jar) strip(r *http.Request) {
	lines := r.Header["Cookie"]
	found := false
	for _, l := range lines {
		if strings.Contains(l, j.cookieName) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	var b strings.Builder
	for _, l := range lines {
		for l != "" {
			var part string
			part, l, _ = strings.Cut(l, ";")
			p := strings.TrimSpace(part)
			if p == "" {
				continue
			}
			name, _, _ := strings.Cut(p, "=")
			name = strings.TrimSpace(name) // as net/http reads it
			if name == j.cookieName || strings.HasPrefix(name, j.txPrefix) {
				continue
			}
			if b.Len() == 0 {
				b.Grow(len(lines[0]))
			} else {
				b.WriteString("; ")
			}
			b.WriteString(p)
		}
	}
	if b.Len() == 0 {
		r.Header.Del("Cookie")
		return
	}
	lines[0] = b.String() // the request's own slice: a later handler sees one Cookie line
	r.Header["Cookie"] = lines[:1]
}

// cookie returns a gateway cookie: HttpOnly, SameSite=Lax (it must come along on the
// provider's top-level redirect back), Path=/, no Domain, Secure unless insecure_cookie.
func (j *jar) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   !j.insecure,
		SameSite: http.SameSiteLaxMode,
	}
}

// sessionHash is a session id (or a subject) as a short non-reversible label for logs.
func sessionHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}

// create stores a new session for a verified login and sets its cookie. The id is
// always new (no fixation); a session the browser already had is ended (threat model SES-02).
func (j *jar) create(w http.ResponseWriter, r *http.Request, login *oidcflow.Login, marks []session.StepUpMark, binding string) (*session.Session, *callbackError) {
	if d := j.profile.Decision; d != nil {
		// The provider's verdict (ID Dataweb: policyDecision); only approve signs in.
		if err := d.Check(login.IDTokenClaims, login.UserinfoClaims); err != nil {
			return nil, &callbackError{status: http.StatusForbidden, reason: "policy_denied", err: err,
				msg: "Your identity verification was not approved by " + j.profile.Title + ", so you are not signed in."}
		}
	}
	if old, ok := j.id(r); ok {
		if err := j.store.Delete(r.Context(), old); err != nil {
			j.logger.Error("could not delete the previous session at login", zap.Error(err))
		}
	}
	now := j.now()
	s := &session.Session{
		ID:           session.NewID(),
		Issuer:       j.issuer,
		ClientID:     j.clientID,
		Subject:      login.Subject,
		Claims:       login.Claims,
		IDToken:      login.IDToken,
		AccessToken:  login.AccessToken,
		RefreshToken: login.RefreshToken,
		TokenExpiry:  login.Expiry,
		CreatedAt:    now,
		ExpiresAt:    now.Add(j.lifetime),
		IdleTimeout:  j.idleTimeout,
		StepUps:      marks,
		Binding:      binding,
	}
	value, err := j.codec.Encode(j.cookieName, s.ID)
	if err != nil {
		return nil, &callbackError{status: http.StatusInternalServerError, reason: "cookie_encode_failed", err: err,
			msg: "The session could not be created. Please sign in again."}
	}
	if err := j.store.Put(r.Context(), s); err != nil {
		j.metrics.storeError("put")
		return nil, &callbackError{status: http.StatusServiceUnavailable, reason: "store_unavailable", err: err,
			msg: "The session store is not reachable right now. Please sign in again in a few seconds."}
	}
	http.SetCookie(w, j.cookie(j.cookieName, value, int(j.lifetime/time.Second)))
	return s, nil
}

// meDocument is /.trustgate/me: the profile and session times. Never a token.
type meDocument struct {
	*trust.Profile
	Session meSession `json:"session"`
}

type meSession struct {
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (j *jar) serveMe(w http.ResponseWriter, r *http.Request) error {
	web.NoStore(w)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return j.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusMethodNotAllowed, Reason: "method_not_allowed", Message: "use GET", Form: web.JSON})
	}
	s, err := j.current(r)
	if errors.Is(err, session.ErrNotFound) {
		return j.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusUnauthorized, Reason: "login_required", Message: "not signed in", Form: web.JSON,
			Fields: map[string]any{"login_url": j.loginURL}})
	}
	if err != nil {
		return j.storeUnavailable(w, r, "get", err)
	}
	web.WriteJSON(w, http.StatusOK, meDocument{
		Profile: j.render(s).profile,
		Session: meSession{CreatedAt: s.CreatedAt.UTC(), ExpiresAt: s.ExpiresAt.UTC()},
	})
	return nil
}

// setIdentityHeaders puts the rendered identity headers, and the assertion when there is
// one, on r. Each request gets its own value slices (one allocation for all): later
// handlers such as request_header may edit them in place, and must not edit the cached
// rendering.
func setIdentityHeaders(r *http.Request, headers []trust.Header, assertion string) {
	n := len(headers)
	if assertion != "" {
		n++
	}
	vals := make([]string, n)
	for i, hd := range headers {
		vals[i] = hd.Value
		r.Header[hd.Name] = vals[i : i+1 : i+1]
	}
	if assertion != "" {
		vals[n-1] = assertion
		r.Header[headerAssertion] = vals[n-1:]
	}
}

// callbackError is a refused callback: status, stable reason code, message for the user,
// and for the log the underlying error and the provider's OAuth error code, if any.
type callbackError struct {
	status int
	reason string
	msg    string
	err    error
	opErr  string
	// unbound: an error response without state, which anyone can send; logged at warn
	// whatever its status, so that it cannot raise the operator's error alerts.
	unbound bool
}
