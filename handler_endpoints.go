package trustgate

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/session"
	"github.com/trustgate/trustgate/trust"
)

// serveEndpoint serves the gateway's own endpoints. They never reach the upstream.
func (h *Handler) serveEndpoint(w http.ResponseWriter, r *http.Request, name string) error {
	switch name {
	case "callback":
		return h.callback(w, r)
	case "login":
		return h.login(w, r)
	case "logout":
		return h.logout(w, r)
	case "me":
		return h.me(w, r)
	case "jwks.json":
		return h.jwks(w, r)
	case "backchannel-logout":
		return h.backchannelLogout(w, r)
	case "signed-out":
		return h.signedOut(w, r)
	case "ciba/start":
		return h.cibaStart(w, r)
	case "ciba/poll":
		return h.cibaPoll(w, r)
	case "ciba/user-code":
		return h.cibaUserCode(w, r)
	case "healthz":
		return h.healthz(w, r)
	default:
		noStore(w)
		if wantsHTML(r) {
			h.page(w, http.StatusNotFound, "Not found", "There is no such gateway endpoint.", "")
		} else {
			writeJSON(w, http.StatusNotFound, apiError{Error: "not_found", Message: "no such gateway endpoint"})
		}
		return nil
	}
}

// login starts a login explicitly: /.trustgate/login?rd=/path. rd must be a same-origin
// path (or an absolute URL of this very origin); anything else falls back to "/".
func (h *Handler) login(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, apiError{Error: "method_not_allowed", Message: "use GET"})
		return nil
	}
	q := r.URL.Query()
	rd := "/"
	if v := q["rd"]; len(v) == 1 {
		rd = safeReturnPath(v[0], r)
	}
	// login_hint (who is signing in, e.g. an e-mail) is passed on to the provider when it is
	// one plain value; the other authorization parameters are the gateway's alone
	// (SECURITY.md FL-11).
	var hint string
	if v := q["login_hint"]; len(v) > 0 {
		if len(v) != 1 || !validLoginHint(v[0]) {
			writeJSON(w, http.StatusBadRequest, apiError{Error: "invalid_login_hint", Message: "login_hint must be one value of at most 256 printable characters"})
			return nil
		}
		hint = v[0]
	}
	return h.startLogin(w, r, loginRequest{returnTo: rd, loginHint: hint})
}

// validLoginHint accepts 1 to 256 bytes of valid UTF-8 without control characters.
func validLoginHint(s string) bool {
	if s == "" || len(s) > 256 || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return false
		}
	}
	return true
}

// logout ends the local session. Only a POST ends it; a GET shows a confirmation form, so a
// link or an image on another site cannot log anyone out.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) error {
	noStore(w)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.logoutForm(w, r)
		return nil
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		writeJSON(w, http.StatusMethodNotAllowed, apiError{Error: "method_not_allowed", Message: "use POST to sign out"})
		return nil
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" {
		writeJSON(w, http.StatusForbidden, apiError{Error: "cross_site", Message: "sign-out must be requested from this site"})
		return nil
	}
	// The session is deleted here (every instance) before the browser goes anywhere; its ID
	// token is kept only for the provider's id_token_hint.
	var idTokenHint string
	s, err := h.currentSession(r)
	switch {
	case err == nil:
		idTokenHint = s.IDToken
		if err := h.store.Delete(r.Context(), s.ID); err != nil {
			h.metrics.storeError("delete")
			// The cookie is kept: the session still exists and must not outlive a silent failure.
			h.logger.Error("logout: session store unavailable", zap.String("reason", "store_unavailable"), zap.Error(err))
			h.serviceUnavailable(w, r, 5*time.Second, "store_unavailable", "Signing out failed because the session store is not reachable. Please retry in a few seconds.")
			return nil
		}
		h.logger.Info("logout", zap.String("reason", "logout_ok"), zap.String("session_hash", sessionHash(s.ID)))
		h.event(eventLogout, map[string]any{"reason": "logout_ok", "method": "rp", "sub_hash": sessionHash(s.Subject), "session_hash": sessionHash(s.ID)})
	case errors.Is(err, session.ErrNotFound):
	default:
		h.metrics.storeError("get")
		h.logger.Error("logout: session store unavailable", zap.String("reason", "store_unavailable"), zap.Error(err))
		h.serviceUnavailable(w, r, 5*time.Second, "store_unavailable", "Signing out failed because the session store is not reachable. Please retry in a few seconds.")
		return nil
	}
	http.SetCookie(w, h.cookie(h.cookieName, "", -1))

	// Then sign out at the provider too (RP-initiated logout), when it offers it and the
	// user had a session with an ID token to name.
	var endURL string
	if idTokenHint != "" {
		ctx, cancel := opContext(r)
		defer cancel()
		u, ok, err := h.client.EndSessionURL(ctx, idTokenHint, h.PostLogoutRedirectURL, oidcflow.NewTransaction().State)
		switch {
		case err != nil:
			h.logger.Warn("logout: signed out here, but the provider's end-session endpoint is unknown (discovery failed)",
				zap.String("reason", oidcflow.ReasonCode(err)), zap.Error(err))
		case ok:
			endURL = u
		}
	}
	if wantsHTML(r) {
		if endURL != "" {
			http.Redirect(w, r, endURL, http.StatusSeeOther)
			return nil
		}
		h.page(w, http.StatusOK, "Signed out", "You are signed out of this site.", h.PathPrefix+"/login")
		return nil
	}
	// A script gets the provider's end-session URL without the ID token (a same-origin
	// script must not read it; SECURITY.md HDR-09); the provider may ask the user to confirm.
	if endURL != "" {
		ctx, cancel := opContext(r)
		defer cancel()
		endURL, _, _ = h.client.EndSessionURL(ctx, "", h.PostLogoutRedirectURL, oidcflow.NewTransaction().State)
	}
	writeJSON(w, http.StatusOK, logoutResult{Status: "signed_out", EndSessionURL: endURL})
	return nil
}

// logoutResult answers a non-browser logout; a script continues at end_session_url to sign
// out at the provider too.
type logoutResult struct {
	Status        string `json:"status"`
	EndSessionURL string `json:"end_session_url,omitempty"`
}

// signedOut is a plain page to land on after the provider's logout. It reads no parameter
// (the provider's state and anything else are ignored; SECURITY.md LO-13).
func (h *Handler) signedOut(w http.ResponseWriter, r *http.Request) error {
	noStore(w)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, apiError{Error: "method_not_allowed", Message: "use GET"})
		return nil
	}
	h.page(w, http.StatusOK, "Signed out", "You are signed out.", h.PathPrefix+"/login")
	return nil
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

func (h *Handler) me(w http.ResponseWriter, r *http.Request) error {
	noStore(w)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, apiError{Error: "method_not_allowed", Message: "use GET"})
		return nil
	}
	s, err := h.currentSession(r)
	if errors.Is(err, session.ErrNotFound) {
		writeJSON(w, http.StatusUnauthorized, apiError{Error: "login_required", Message: "not signed in", LoginURL: h.PathPrefix + "/login"})
		return nil
	}
	if err != nil {
		return h.storeUnavailable(w, r, "get", err)
	}
	writeJSON(w, http.StatusOK, meDocument{
		Profile: h.render(s).profile,
		Session: meSession{CreatedAt: s.CreatedAt.UTC(), ExpiresAt: s.ExpiresAt.UTC()},
	})
	return nil
}

// apiError is the JSON body of every error answered to a non-browser client.
type apiError struct {
	Error    string `json:"error"`
	Message  string `json:"message"`
	LoginURL string `json:"login_url,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// wantsHTML reports whether the client prefers an HTML page to JSON.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}p{line-height:1.5}a,button{font-size:1rem}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p>
{{if .Items}}<ul>{{range .Items}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{if .Form}}<form method="post" action="{{.Form}}"><button type="submit">Sign out</button></form>{{end}}
{{if .Link}}<p><a href="{{.Link}}">{{if .LinkText}}{{.LinkText}}{{else}}Sign in{{end}}</a></p>{{end}}
</body></html>
`))

type pageData struct {
	Title, Message string
	Items          []string // a list under the message (e.g. the unmet rules of a route)
	Link, Form     string
	LinkText       string // default "Sign in"
	FormAction     string // more CSP form-action sources than 'self' (where the form's answer redirects)
}

// page answers a small HTML page; everything in it is escaped by html/template.
func (h *Handler) page(w http.ResponseWriter, status int, title, msg, link string) {
	h.writePage(w, status, pageData{Title: title, Message: msg, Link: link})
}

func (h *Handler) logoutForm(w http.ResponseWriter, r *http.Request) {
	// The form's POST is answered with a redirect to the provider's end-session endpoint,
	// and browsers hold redirects after a form submission to form-action too.
	formAction := originOf(h.Issuer)
	ctx, cancel := opContext(r)
	defer cancel()
	if md, err := h.client.Discover(ctx); err == nil && md.EndSessionEndpoint != "" {
		if o := originOf(md.EndSessionEndpoint); o != formAction {
			formAction += " " + o
		}
	}
	h.writePage(w, http.StatusOK, pageData{Title: "Sign out", Message: "Do you want to sign out of this site?", Form: h.PathPrefix + "/logout", FormAction: formAction})
}

// originOf is scheme://host[:port] of an absolute URL, or "" when it is not one.
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func (h *Handler) writePage(w http.ResponseWriter, status int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", strings.TrimSpace("default-src 'none'; style-src 'unsafe-inline'; form-action 'self' "+d.FormAction))
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, d)
}

// clip shortens s to at most n bytes of valid UTF-8, for showing provider-supplied text.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// maxReturnBytes caps the return URL kept in the login cookie; a longer one falls back to
// "/" (SECURITY.md LIM-07).
const maxReturnBytes = 1500

// safeReturnPath turns a requested post-login target into a same-origin path, or "/".
// Accepted: a path with a single leading "/" (no "//", no "\", no control characters, also
// after percent-decoding), or an absolute URL whose scheme and host are exactly this
// request's, reduced to its path (SECURITY.md FL-08).
func safeReturnPath(target string, r *http.Request) string {
	if len(target) > maxReturnBytes {
		return "/"
	}
	if isSafePath(target) {
		return target
	}
	u, err := url.Parse(target)
	if err != nil || u.User != nil || u.Opaque != "" {
		return "/"
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if u.Scheme != scheme || !strings.EqualFold(u.Host, r.Host) {
		return "/"
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	if isSafePath(p) {
		return p
	}
	return "/"
}

// isSafePath reports whether p is a path a browser resolves on this origin only.
func isSafePath(p string) bool {
	if len(p) == 0 || len(p) > maxReturnBytes || p[0] != '/' {
		return false
	}
	if hasUnsafe(p, false) {
		return false
	}
	// Decoded (twice, so "%252F" is caught too) it must still be safe, except that an
	// encoded space is an ordinary character of a path.
	dec, err := url.PathUnescape(p)
	if err != nil || hasUnsafe(dec, true) {
		return false
	}
	if dec2, err := url.PathUnescape(dec); err == nil && hasUnsafe(dec2, true) {
		return false
	}
	return true
}

// hasUnsafe reports what makes a browser leave the origin or read the path differently:
// a leading "//" or "/\\", any backslash or control character, whitespace (a space only
// when !space), and a leading "/./" or "/../" segment followed by "/" (dot-segment removal
// would yield "//").
func hasUnsafe(p string, space bool) bool {
	if len(p) == 0 || p[0] != '/' || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/.//") || strings.HasPrefix(p, "/..//") {
		return true
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < ' ' || c == ' ' && !space || c == 0x7f || c == '\\' {
			return true
		}
	}
	return false
}

// Health check bounds: a check waits at most healthProviderTimeout for discovery and
// healthStoreTimeout for the store, and its answer is reused for healthCacheTTL, so that a
// flood of health checks makes at most one discovery attempt and one store ping every few
// seconds (and discovery itself backs off after failures).
const (
	healthCacheTTL        = 3 * time.Second
	healthProviderTimeout = 2 * time.Second
	healthStoreTimeout    = time.Second
)

// healthDoc is the body of <path_prefix>/healthz. It names what is down, never why in
// detail: no URL, credential, token or provider message (those go to the log).
type healthDoc struct {
	Status   string `json:"status"`   // ok | unavailable
	Provider string `json:"provider"` // ok | down: ...
	Store    string `json:"store"`    // ok | down: ...
}

// healthCheck caches the last health answer of a handler; shared by concurrent checks.
type healthCheck struct {
	group singleflight.Group
	mu    sync.Mutex
	at    time.Time // when doc was computed; zero: never
	doc   healthDoc
	retry time.Duration // Retry-After when unavailable
}

// healthz answers whether this gateway can log users in and serve sessions: 200 when the
// provider's discovery is loaded (or loads within healthProviderTimeout) and the session
// store answers, 503 with Retry-After otherwise. It needs no session and never redirects.
func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, apiError{Error: "method_not_allowed", Message: "use GET or HEAD"})
		return nil
	}
	doc, retry := h.health.get(h)
	if doc.Status != "ok" {
		w.Header().Set("Retry-After", strconv.Itoa(max(int(retry.Round(time.Second)/time.Second), 1)))
		writeJSON(w, http.StatusServiceUnavailable, doc)
		return nil
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

type healthResult struct {
	doc   healthDoc
	retry time.Duration
}

// get returns the cached answer while it is fresh, else computes one (once for all
// concurrent callers).
func (c *healthCheck) get(h *Handler) (healthDoc, time.Duration) {
	c.mu.Lock()
	if !c.at.IsZero() && h.now().Sub(c.at) < healthCacheTTL {
		doc, retry := c.doc, c.retry
		c.mu.Unlock()
		return doc, retry
	}
	c.mu.Unlock()
	v, _, _ := c.group.Do("health", func() (any, error) {
		doc, retry := h.checkHealth()
		c.mu.Lock()
		c.at, c.doc, c.retry = h.now(), doc, retry
		c.mu.Unlock()
		return healthResult{doc, retry}, nil
	})
	res := v.(healthResult)
	return res.doc, res.retry
}

// checkHealth asks the provider client (discovery: cached once loaded, backed off after
// failures) and the store (a ping), both at once and bounded. It runs on its own context:
// one health client giving up does not fail the check for the others.
func (h *Handler) checkHealth() (healthDoc, time.Duration) {
	doc := healthDoc{Status: "ok", Provider: "ok", Store: "ok"}
	var retry time.Duration
	storeErr := make(chan error, 1)
	go func() {
		p, ok := h.store.(session.Pinger)
		if !ok {
			storeErr <- nil
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), healthStoreTimeout)
		defer cancel()
		storeErr <- p.Ping(ctx)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), healthProviderTimeout)
	_, err := h.client.Discover(ctx)
	cancel()
	if err != nil {
		doc.Status, doc.Provider = "unavailable", "down: discovery failed"
		retry = max(h.client.RetryAfter(), time.Second)
		h.logger.Warn("health check: provider discovery failed", zap.String("reason", oidcflow.ReasonCode(err)), zap.Error(err))
	}
	if err := <-storeErr; err != nil {
		doc.Status, doc.Store = "unavailable", "down: not reachable"
		retry = max(retry, 5*time.Second)
		h.logger.Warn("health check: session store unavailable", zap.String("reason", "store_unavailable"), zap.Error(err))
	}
	return doc, retry
}
