package trustgate

import (
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/session"
	"github.com/trustgate/trustgate/trust"
)

// ServeHTTP strips spoofed identity headers, serves the gateway's endpoints, and passes
// authenticated requests on with identity headers; everything else is asked to log in.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// First, on every request: no client-sent identity or trust header survives, whatever
	// happens next (threat model HDR-01..03). Trailers would arrive after the body, past any
	// stripping, so a request that announces one of those names is refused.
	trust.StripManaged(r.Header, h.sessions.trustOpts.Mappings)
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
		if trust.IsManagedHeader(name, h.sessions.trustOpts.Mappings) {
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

	if h.bearer != nil {
		// An API request with a bearer token is judged by the token alone (bearer.go).
		if auth, ok := r.Header["Authorization"]; ok {
			if done, err := h.bearer.serve(w, r, next, auth); done {
				return err
			}
		}
	}

	s, err := h.sessions.current(r)
	switch {
	case err == nil:
		if s, err = h.refresher.maybeRefresh(r.Context(), s); err != nil {
			// The provider refused the refresh token: the session is gone (browser ->
			// login, API -> 401), never an error page (threat model OPS-11).
			http.SetCookie(w, h.sessions.cookie(h.sessions.cookieName, "", -1))
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
// /admin (threat model HDR-07):
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

func (h *Handler) serveAuthenticated(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, s *session.Session) error {
	rd := h.sessions.render(s)
	// Policy blocks later on this route check this session (servePolicyOnly).
	st, _ := rd.state.Load().(*authState)
	if st == nil || st.gate != h.gate || st.s != s {
		st = &authState{gate: h.gate, s: s, rd: rd}
		rd.state.Store(st)
	}
	caddyhttp.SetVar(r.Context(), authVar, st)
	if done, err := h.gate.enforce(w, r, h.gate.own, st); done {
		return err
	}
	var assertion string
	if h.Assertion != nil {
		var err error
		if assertion, err = h.assertion.sign(r, rd); err != nil {
			h.logger.Error("cannot sign the identity assertion", zap.String("reason", "assertion_failed"), zap.Error(err))
			return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusInternalServerError, Reason: "assertion_failed", Form: web.HTML, Title: "Error",
				Message: "Your identity could not be passed on to the application. Please try again; the site's administrator has been told."})
		}
	}
	setIdentityHeaders(r, rd.headers, assertion)
	if s.Confirmation != nil {
		// A confirmed transaction (CIBA from_session) waits for this session: the first
		// request that takes it from the store passes it on, once.
		if c := h.ciba.records.takeConfirmation(r.Context(), s); c != "" {
			r.Header[headerConfirmation] = []string{c}
		}
	}
	h.sessions.strip(r)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		// One provider answers every identity placeholder from the cached rendering,
		// instead of setting each one on every request.
		repl.Map(rd.provider)
	}
	if h.linker.on() {
		// The application may answer with a linking header (link.go).
		w = h.linker.watch(w, r, s, rd)
	}
	return next.ServeHTTP(w, r)
}

func (h *Handler) unauthenticated(w http.ResponseWriter, r *http.Request) error {
	if web.IsNavigation(r) {
		return h.login.start(w, r, loginRequest{returnTo: web.ReturnTo(r)})
	}
	loginURL := h.PathPrefix + "/login"
	return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusUnauthorized, Reason: "login_required", Form: web.JSON,
		Message: "This resource needs a signed-in session. Sign in with a browser at " + loginURL + ", then send the session cookie.",
		Fields:  map[string]any{"login_url": loginURL},
		Header:  http.Header{"Www-Authenticate": {`OIDC realm="trustgate", login_url="` + loginURL + `"`}}})
}
