package trustgate

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/session"
	"github.com/trustgate/trustgate/trust"
)

// opTimeout bounds the calls to the provider made for one request (discovery wait,
// code exchange, userinfo).
const opTimeout = 15 * time.Second

// ServeHTTP strips spoofed identity headers, serves the gateway's endpoints, and passes
// authenticated requests on with identity headers; everything else is asked to log in.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.policyOnly {
		return h.servePolicyOnly(w, r, next)
	}
	// First, on every request: no client-sent identity or trust header survives, whatever
	// happens next (SECURITY.md HDR-01..03). Trailers would arrive after the body, past any
	// stripping, so a request that announces one of those names is refused.
	trust.StripManaged(r.Header, h.trustOpts.Mappings)
	if h.FeedbackEndpoint != "" || h.IdentityBinding != nil {
		// The linking headers are answers of the application; a client's copy must not reach
		// an application that echoes request headers (when their names are not X-Auth-*).
		for k := range r.Header {
			if n := strings.ReplaceAll(k, "_", "-"); strings.EqualFold(n, h.aliasHeader) || (h.bindHeader != "" && strings.EqualFold(n, h.bindHeader)) {
				delete(r.Header, k)
			}
		}
	}
	for name := range r.Trailer {
		if trust.IsManagedHeader(name, h.trustOpts.Mappings) {
			return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusBadRequest, Reason: "forbidden_trailer", Message: "identity headers may not be sent as trailers", Form: web.JSON})
		}
	}

	// Paths that some upstreams resolve differently from Caddy's matchers are refused.
	if msg := unsafePath(r.URL.EscapedPath()); msg != "" {
		return h.badPath(w, r, msg)
	}

	// The gateway's endpoints are where the browser sees them: the path before any rewrite
	// (try_files, uri, handle_path), so that a rewrite cannot swallow the callback.
	if name, ok := h.endpoint(web.OriginalPath(r)); ok {
		return h.serveEndpoint(w, r, name)
	}

	if h.Bearer != nil {
		// An API request with a bearer token is judged by the token alone (bearer.go).
		if auth, ok := r.Header["Authorization"]; ok {
			if done, err := h.serveBearer(w, r, next, auth); done {
				return err
			}
		}
	}

	s, err := h.currentSession(r)
	switch {
	case err == nil:
		if s, err = h.maybeRefresh(r.Context(), s); err != nil {
			// The provider refused the refresh token: the session is gone (browser ->
			// login, API -> 401), never an error page (SECURITY.md OPS-11).
			http.SetCookie(w, h.cookie(h.cookieName, "", -1))
			return h.unauthenticated(w, r)
		}
		return h.serveAuthenticated(w, r, next, s)
	case errors.Is(err, session.ErrNotFound):
		return h.unauthenticated(w, r)
	default:
		return h.storeUnavailable(w, r, "get", err)
	}
}

// unsafePath says why a path is refused, or "". Some upstreams read more into a path than
// Caddy's matchers do, so a route policy for /admin* could be passed by a path they serve as
// /admin (SECURITY.md HDR-07):
//   - a backslash, raw or %5C, is a separator on Windows and IIS;
//   - a ';' before a later '/' starts a path parameter that Tomcat, Jetty and Spring drop
//     ("/admin;x=1/users", "/public/..;/admin"). A parameter in the last segment, such as
//     ";jsessionid=...", is left alone.
func unsafePath(p string) string {
	semicolon := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\' || c == '%' && i+2 < len(p) && p[i+1] == '5' && (p[i+2] == 'c' || p[i+2] == 'C'):
			return "the path contains a backslash (raw or %5C)"
		case c == ';':
			semicolon = true
		case c == '/' && semicolon:
			return "the path has a ';' parameter before a later '/'"
		}
	}
	return ""
}

func (h *Handler) badPath(w http.ResponseWriter, r *http.Request, msg string) error {
	return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusBadRequest, Reason: "bad_path", Message: msg + ", which is refused",
		Title: "Bad request", PageMessage: "This address is not accepted by this site: " + msg + "."})
}

// endpoint reports whether path is one of the gateway's own, and which.
func (h *Handler) endpoint(path string) (string, bool) {
	if !strings.HasPrefix(path, h.PathPrefix) {
		return "", false
	}
	rest := path[len(h.PathPrefix):]
	if rest == "" {
		return "", true
	}
	if rest[0] != '/' {
		return "", false // e.g. /.trustgateway is not ours
	}
	return rest[1:], true
}

// currentSession finds the session named by the request's session cookie. A missing,
// tampered, expired or foreign cookie is session.ErrNotFound, never an error page; only a
// store failure is an error.
func (h *Handler) currentSession(r *http.Request) (*session.Session, error) {
	id, ok := h.sessionID(r)
	if !ok {
		return nil, session.ErrNotFound
	}
	s, err := h.store.Get(r.Context(), id)
	if err != nil {
		return nil, err
	}
	// A session made by another trustgate configuration sharing this store and cookie
	// (another issuer or client) is not a session here (SECURITY.md SES-08).
	if s.Issuer != h.Issuer || s.ClientID != h.ClientID {
		return nil, session.ErrNotFound
	}
	return s, nil
}

// sessionID decodes the session cookie. Several cookies of that name (cookie tossing from a
// sibling domain, when the __Host- prefix is off) are tried in order, at most a few. A value
// decoded (and so authenticated) before is taken from the decode cache.
func (h *Handler) sessionID(r *http.Request) (string, bool) {
	tried := 0
	for _, line := range r.Header["Cookie"] {
		for line != "" && tried < 3 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			name, value, ok := strings.Cut(part, "=")
			if !ok || strings.TrimSpace(name) != h.cookieName {
				continue
			}
			tried++
			value = strings.TrimSpace(value)
			if len(value) > 1 && value[0] == '"' && value[len(value)-1] == '"' {
				value = value[1 : len(value)-1]
			}
			if id, ok := h.decoded.get(value); ok {
				return id, true
			}
			var id string
			if h.sessCodec.Decode(h.cookieName, value, &id) == nil && session.ValidID(id) {
				h.decoded.put(value, id)
				return id, true
			}
		}
	}
	return "", false
}

// rendered is what an authenticated request needs from a session, computed once per stored
// session version and kept in the session's cache slot. It is valid for the rendering options
// it was made with: a reload that changes them, or another handler with other options,
// renders again.
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
	linking        atomic.Bool                     // an alias of this session is being reported
	state          atomic.Pointer[authState]       // for the policy blocks after this handler
	assertion      atomic.Pointer[signedAssertion] // X-Auth-Assertion, re-signed before it expires
}

func (h *Handler) render(s *session.Session) *rendered {
	p := s.Cache.Load()
	if p != nil {
		if r, ok := (*p).(*rendered); ok && r.opts == h.trustOpts {
			return r
		}
	}
	prof := trust.NewProfile(s.Claims, h.trustOpts)
	hs, dropped := prof.Headers(h.trustOpts)
	for _, d := range dropped {
		h.logger.Warn("identity header not sent: over the size limit (values are never cut)",
			zap.String("reason", d.Reason), zap.String("header", d.Name), zap.Int("bytes", d.Bytes),
			zap.Int("max_header_bytes", h.trustOpts.MaxHeaderBytes), zap.Int("max_total_header_bytes", h.trustOpts.MaxTotalHeaderBytes),
			zap.String("session_hash", sessionHash(s.ID)))
	}
	out := &rendered{
		opts:         h.trustOpts,
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
		claim := h.trustOpts.GroupsClaim
		if claim == "" {
			claim = trust.DefaultGroupsClaim
		}
		h.logger.Warn("group values left out of X-Auth-Groups and {http.auth.user.groups}: they contain a comma or a control character (values are never cut or escaped)",
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

func (h *Handler) serveAuthenticated(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, s *session.Session) error {
	rd := h.render(s)
	// Policy blocks later on this route check this session (servePolicyOnly).
	st := rd.state.Load()
	if st == nil || st.h != h || st.s != s {
		st = &authState{h: h, s: s, rd: rd}
		rd.state.Store(st)
	}
	caddyhttp.SetVar(r.Context(), authVar, st)
	if done, err := h.enforce(w, r, h.policy, st); done {
		return err
	}
	var assertion string
	if h.Assertion != nil {
		var err error
		if assertion, err = h.assertionFor(r, rd); err != nil {
			h.logger.Error("cannot sign the identity assertion", zap.String("reason", "assertion_failed"), zap.Error(err))
			return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusInternalServerError, Reason: "assertion_failed", Form: web.HTML, Title: "Error",
				Message: "Your identity could not be passed on to the application. Please try again; the site's administrator has been told."})
		}
	}
	setIdentityHeaders(r, rd.headers, assertion)
	if s.Confirmation != nil {
		// A confirmed transaction (CIBA from_session) waits for this session: the first
		// request that takes it from the store passes it on, once.
		if c := h.takeConfirmation(r.Context(), s); c != "" {
			r.Header[headerConfirmation] = []string{c}
		}
	}
	h.stripGatewayCookies(r)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		// One provider answers every identity placeholder from the cached rendering,
		// instead of setting each one on every request.
		repl.Map(rd.provider)
	}
	if h.FeedbackEndpoint != "" || h.IdentityBinding != nil {
		// The application may answer with a linking header (handler_link.go).
		w = &linkWriter{ResponseWriter: w, h: h, r: r, s: s, rd: rd}
	}
	return next.ServeHTTP(w, r)
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
// sees, keeping every other cookie byte for byte (SECURITY.md HDR-09).
func (h *Handler) stripGatewayCookies(r *http.Request) {
	lines := r.Header["Cookie"]
	found := false
	for _, l := range lines {
		if strings.Contains(l, h.cookieName) {
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
			if name == h.cookieName || strings.HasPrefix(name, h.txPrefix) {
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

func (h *Handler) unauthenticated(w http.ResponseWriter, r *http.Request) error {
	if web.IsNavigation(r) {
		return h.startLogin(w, r, loginRequest{returnTo: web.ReturnTo(r)})
	}
	loginURL := h.PathPrefix + "/login"
	return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusUnauthorized, Reason: "login_required", Form: web.JSON,
		Message: "This resource needs a signed-in session. Sign in with a browser at " + loginURL + ", then send the session cookie.",
		Fields:  map[string]any{"login_url": loginURL},
		Header:  http.Header{"Www-Authenticate": {`OIDC realm="trustgate", login_url="` + loginURL + `"`}}})
}

func (h *Handler) storeUnavailable(w http.ResponseWriter, r *http.Request, op string, err error) error {
	h.metrics.storeError(op)
	h.logger.Error("session store unavailable", zap.String("reason", "store_unavailable"), zap.Error(err))
	return h.serviceUnavailable(w, r, 5*time.Second, "store_unavailable", "The session store is not reachable right now. Your session is kept; please retry in a few seconds.")
}

func (h *Handler) serviceUnavailable(w http.ResponseWriter, r *http.Request, retry time.Duration, code, msg string) error {
	return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusServiceUnavailable, Reason: code, Message: msg, RetryAfter: max(retry, time.Second), Title: "Temporarily unavailable"})
}

// opContext bounds the provider calls made for one request.
func opContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), opTimeout)
}
