package trustgate

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/session"
	"github.com/trustgate/trustgate/trust"
)

// txRecord is the login transaction, kept in an encrypted cookie named after its state
// until the provider sends the browser back.
type txRecord struct {
	Tx          oidcflow.Transaction `json:"t"`
	ReturnTo    string               `json:"r"`
	RedirectURL string               `json:"u"`
	Created     int64                `json:"c"`
	// StepUps are the recent step-ups, this one last, for the session it creates.
	StepUps []session.StepUpMark `json:"p,omitempty"`
	// BindSubject is set for an identity-binding login: the subject it must come back for.
	BindSubject string `json:"bs,omitempty"`
	// BindAlias is an alias to link (session feedback) once the binding is confirmed.
	BindAlias string `json:"ba,omitempty"`
}

// loginFlow runs the authorization-code flow: it starts a login (explicitly at
// <prefix>/login, for a browser without a session, for a step-up, or for an identity
// binding) and finishes it at <prefix>/callback, where a session is created.
type loginFlow struct {
	*base
	sessions    *jar
	feedback    *aliasFeedback // links the alias of a confirmed binding
	issuer      string
	prefix      string                 // path_prefix
	redirectURL string                 // redirect_url as configured, "" = from the request
	acrLevels   []string               // acr_levels, lowest first
	binding     *IdentityBindingConfig // identity_binding, or nil
}

const (
	// loginTimeout is how long a started login (the transaction cookie) stays valid.
	loginTimeout = 10 * time.Minute
	// maxPendingLogins bounds the login transactions one browser may have at once (tabs);
	// starting another evicts the oldest (threat model LIM-03).
	maxPendingLogins = 5
)

// loginRequest is what a login is started for.
type loginRequest struct {
	returnTo  string               // same-origin path to land on afterwards
	stepUp    *trust.StepUp        // extra authorization parameters of a step-up login, or nil
	marks     []session.StepUpMark // recent step-ups, this one last
	loginHint string               // login_hint to pass on (a user's hint, or the binding JWT)
	bind      *bindRequest         // an identity-binding login, or nil
}

// loginKind names what a login is started for, for trustgate_logins_started_total.
func (lr loginRequest) kind() string {
	switch {
	case lr.bind != nil:
		return "binding"
	case lr.stepUp != nil:
		return "step_up"
	}
	return "login"
}

// bindDenied marks a session whose binding the provider denied (a StepUpMark with this
// policy name), so the application's page is reachable again instead of a loop through the
// provider's denial.
const (
	bindDenied       = "identity-binding-denied"
	bindDeniedPeriod = 10 * time.Minute
)

// bindRequest is the identity binding a login is for (see link.go).
type bindRequest struct {
	subject string   // the session's subject: the binding must come back for the same user
	alias   string   // an alias to link once the binding is confirmed, or ""
	acr     []string // acr_values to ask for
}

// loginError is why beginLogin could not start a login; it has been logged.
type loginError struct {
	status int
	code   string
	msg    string
	retry  time.Duration
}

// pkceWarned holds the issuers warned about (once per process) for not advertising S256.
var pkceWarned sync.Map

// parOffWarned holds the issuers warned about `par off` (once per process).
var parOffWarned sync.Map

// Limits on callback parameters; anything longer cannot be ours (threat model LIM-07).
const (
	maxCodeBytes  = 4096
	maxErrorBytes = 512
)

// begin prepares the authorization-code flow: a fresh transaction in its own cookie
// (set on w's headers, with the oldest pending ones evicted) and the provider's
// authorization URL. It writes no status or body, so it also serves a response that is
// being rewritten (identity binding).
func (l *loginFlow) begin(w http.ResponseWriter, r *http.Request, lr loginRequest) (string, *loginError) {
	ctx, cancel := opContext(r)
	defer cancel()
	tx := oidcflow.NewTransaction()
	rec := txRecord{Tx: tx, ReturnTo: lr.returnTo, RedirectURL: l.callbackURL(r), Created: l.now().Unix()}
	ar := oidcflow.AuthRequest{RedirectURL: rec.RedirectURL, Transaction: tx, LoginHint: lr.loginHint}
	if su := lr.stepUp; su != nil {
		rec.StepUps = lr.marks
		ar.ACRValues = strings.Join(su.ACRValues, " ")
		ar.MaxAge = su.MaxAge
		if su.PromptLogin {
			ar.Prompt = "login"
		}
	}
	if b := lr.bind; b != nil {
		rec.BindSubject, rec.BindAlias = b.subject, b.alias
		ar.ACRValues = strings.Join(b.acr, " ")
		ar.Prompt = "login"
	}
	authURL, err := l.client.AuthCodeURL(ctx, ar)
	if err == nil {
		l.warnWithoutPKCE(ctx)
		l.warnPAROff(ctx)
	}
	code := oidcflow.ReasonCode(err)
	if err != nil && !oidcflow.IsTemporary(err) && (code == oidcflow.CodePARRejected || code == oidcflow.CodePARUnavailable || code == oidcflow.CodeRequestObject) {
		// The provider refused the pushed request, or cannot take one: a configuration
		// fault (client registration, keys, par), not a passing outage.
		l.logger.Error("cannot start login: the pushed authorization request failed", zap.String("reason", code), zap.String("issuer", l.issuer), zap.Error(err))
		return "", &loginError{status: http.StatusBadGateway, code: code,
			msg: "The sign-in service refused to start this sign-in. The site's administrator has been told; please try again later."}
	}
	if err != nil {
		what := "cannot start login: provider discovery failed"
		if code != oidcflow.CodeDiscovery {
			what = "cannot start login: the provider is not reachable"
		}
		l.logger.Error(what,
			zap.String("reason", code), zap.String("issuer", l.issuer), zap.Error(err))
		return "", &loginError{status: http.StatusServiceUnavailable, code: "provider_unavailable", retry: max(l.client.RetryAfter(), time.Second),
			msg: "The sign-in service is not reachable right now. Please retry in a few seconds."}
	}
	value, err := l.sessions.txCodec.Encode(l.sessions.txPrefix+tx.State, rec)
	if err != nil && rec.ReturnTo != "/" {
		// Too long for a cookie (a long query string): land on "/" rather than fail
		// (threat model LIM-07).
		rec.ReturnTo = "/"
		value, err = l.sessions.txCodec.Encode(l.sessions.txPrefix+tx.State, rec)
	}
	if err != nil {
		l.logger.Error("cannot store the login transaction in a cookie", zap.String("reason", "cookie_encode_failed"), zap.Int("return_bytes", len(rec.ReturnTo)))
		return "", &loginError{status: http.StatusInternalServerError, code: "cookie_encode_failed", msg: "The sign-in could not be started. Please try again."}
	}
	l.evictPending(w, r)
	http.SetCookie(w, l.sessions.cookie(l.sessions.txPrefix+tx.State, value, int(loginTimeout/time.Second)))
	l.metrics.loginStarted(lr.kind())
	return authURL, nil
}

// warnWithoutPKCE warns once when the provider's metadata does not list S256 in
// code_challenge_methods_supported: trustgate sends a PKCE challenge anyway, but whether the
// provider checks it — the protection against code injection — is then unknown
// (threat model FL-04). A provider that lists methods without S256 is refused at discovery.
func (l *loginFlow) warnWithoutPKCE(ctx context.Context) {
	md, err := l.client.Discover(ctx)
	if err != nil || slices.Contains(md.CodeChallengeMethods, "S256") {
		return
	}
	if _, done := pkceWarned.LoadOrStore(l.issuer, true); done {
		return
	}
	l.logger.Warn("the provider's discovery document has no code_challenge_methods_supported with S256: PKCE is sent, but the provider may not check it; code injection protection then depends on the provider",
		zap.String("issuer", l.issuer), zap.String("reason", "pkce_not_advertised"))
}

// warnPAROff warns once per issuer when `par off` meets a provider whose discovery
// document says require_pushed_authorization_requests: its logins will be refused.
func (l *loginFlow) warnPAROff(ctx context.Context) {
	md, err := l.client.Discover(ctx)
	if err != nil || !md.RequirePushedAuthorizationRequests || l.client.Config().PAR != oidcflow.PAROff {
		return
	}
	if _, done := parOffWarned.LoadOrStore(l.issuer, true); done {
		return
	}
	l.logger.Warn("par is off, but the provider's discovery document says require_pushed_authorization_requests: it will refuse every login; remove `par off`",
		zap.String("issuer", l.issuer), zap.String("reason", "par_off_but_required"))
}

// start begins the authorization-code flow and redirects the browser to the provider.
func (l *loginFlow) start(w http.ResponseWriter, r *http.Request, lr loginRequest) error {
	authURL, lerr := l.begin(w, r, lr)
	if lerr != nil {
		if lerr.status == http.StatusServiceUnavailable {
			return l.serviceUnavailable(w, r, lerr.retry, lerr.code, lerr.msg)
		}
		return l.refuser.Refuse(w, r, &web.Refusal{Status: lerr.status, Reason: lerr.code, Message: lerr.msg, Form: web.HTML, Title: "Sign-in failed"})
	}
	web.NoStore(w)
	http.Redirect(w, r, authURL, http.StatusFound)
	return nil
}

// evictPending keeps at most maxPendingLogins-1 transaction cookies from the request
// (the new one makes maxPendingLogins), expiring the oldest; undecodable ones go first.
func (l *loginFlow) evictPending(w http.ResponseWriter, r *http.Request) {
	type pending struct {
		name    string
		created int64
	}
	isTx := func(c *http.Cookie) bool {
		return len(c.Name) > len(l.sessions.txPrefix) && c.Name[:len(l.sessions.txPrefix)] == l.sessions.txPrefix
	}
	cookies := r.Cookies()
	n := 0
	for _, c := range cookies {
		if isTx(c) {
			n++
		}
	}
	if n < maxPendingLogins { // the usual case: nothing to evict, nothing to decrypt
		return
	}
	var all []pending
	for _, c := range cookies {
		if !isTx(c) {
			continue
		}
		var rec txRecord
		created := int64(-1)
		if l.sessions.txCodec.Decode(c.Name, c.Value, &rec) == nil {
			created = rec.Created
		}
		all = append(all, pending{c.Name, created})
	}
	slices.SortFunc(all, func(a, b pending) int { return int(a.created - b.created) })
	for _, p := range all[:len(all)-(maxPendingLogins-1)] {
		http.SetCookie(w, l.sessions.cookie(p.name, "", -1))
	}
}

// callbackURL is the redirect_uri: configured, or built from the request's own scheme and
// Host. X-Forwarded-* headers are never used (threat model FL-10).
func (l *loginFlow) callbackURL(r *http.Request) string {
	if l.redirectURL != "" {
		return l.redirectURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + l.prefix + "/callback"
}

// serveLogin starts a login explicitly: /.trustgate/login?rd=/path. rd must be a same-origin
// path (or an absolute URL of this very origin); anything else falls back to "/".
func (l *loginFlow) serveLogin(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return l.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusMethodNotAllowed, Reason: "method_not_allowed", Message: "use GET", Form: web.JSON})
	}
	q := r.URL.Query()
	rd := "/"
	if v := q["rd"]; len(v) == 1 {
		rd = web.SafeReturnPath(v[0], r)
	}
	// login_hint (who is signing in, e.g. an e-mail) is passed on to the provider when it is
	// one plain value; the other authorization parameters are the gateway's alone
	// (threat model FL-11).
	var hint string
	if v := q["login_hint"]; len(v) > 0 {
		if len(v) != 1 || !validLoginHint(v[0]) {
			return l.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusBadRequest, Reason: "invalid_login_hint", Message: "login_hint must be one value of at most 256 printable characters", Form: web.JSON})
		}
		hint = v[0]
	}
	return l.start(w, r, loginRequest{returnTo: rd, loginHint: hint})
}

// callback finishes a login. Any failure answers a clear 4xx/5xx page; no session is created,
// the transaction is spent, and (before the state checks pass) the provider is not called.
func (l *loginFlow) callback(w http.ResponseWriter, r *http.Request) error {
	web.NoStore(w)
	w.Header().Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet {
		return l.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusMethodNotAllowed, Reason: "method_not_allowed", Form: web.HTML,
			Title: "Method not allowed", Message: "The sign-in callback only accepts GET.", Header: http.Header{"Allow": {"GET"}}})
	}
	start := time.Now()
	rec, cbErr := l.checkCallback(w, r)
	if cbErr == nil {
		cbErr = l.finish(w, r, rec)
	}
	reason := ""
	if cbErr != nil {
		reason = cbErr.reason
	}
	l.metrics.callbackDone(start, reason)
	if cbErr != nil {
		l.logRefusal(cbErr)
		f := &web.Refusal{Status: cbErr.status, Reason: cbErr.reason, Form: web.HTML, Title: "Sign-in failed", Message: cbErr.msg, Link: l.prefix + "/login"}
		if cbErr.status == http.StatusServiceUnavailable {
			f.RetryAfter = 5 * time.Second
		}
		if rec != nil && rec.BindSubject != "" {
			// A denied or unconfirmed binding changes nothing: the session the user had
			// is still there; it only remembers the denial for a while, so the
			// application's page does not send the user to the provider again at once.
			l.rememberBindDenial(r)
			f.Title, f.Message, f.Link, f.LinkText = "Identity binding not completed", cbErr.msg+" Your account and your sign-in are unchanged.", "/", "Back to the application"
		}
		return l.refuser.Refuse(w, r, f)
	}
	return nil
}

// logRefusal writes the one log line of a refused login: provider and store faults at
// error, tokens that failed verification at warn (possible attacks), everything else
// (stale or replayed callbacks, a denial by the user or the provider's verdict) at info, so
// an operator sees every refused login at Caddy's default log level.
func (l *loginFlow) logRefusal(e *callbackError) {
	level := zap.InfoLevel
	switch {
	case e.unbound:
		level = zap.WarnLevel
	case e.status >= 500:
		level = zap.ErrorLevel
	case e.status == http.StatusUnauthorized:
		level = zap.WarnLevel
	}
	ce := l.logger.Check(level, "login refused")
	if ce == nil {
		return
	}
	fields := []zap.Field{zap.String("reason", e.reason), zap.Int("status", e.status)}
	if e.opErr != "" {
		fields = append(fields, zap.String("op_error", e.opErr))
	}
	if e.err != nil {
		fields = append(fields, zap.Error(e.err))
	}
	ce.Write(fields...)
}

// checkCallback validates the callback parameters against the transaction cookie and
// consumes the transaction. It makes no provider call.
func (l *loginFlow) checkCallback(w http.ResponseWriter, r *http.Request) (*txRecord, *callbackError) {
	q := r.URL.Query()
	for _, p := range []string{"state", "code", "error", "error_description", "iss"} {
		if len(q[p]) > 1 {
			return nil, &callbackError{status: http.StatusBadRequest, reason: "callback_duplicate_parameter", msg: "The sign-in response repeats the parameter \"" + p + "\"; it was refused. Please sign in again."}
		}
	}
	state := q.Get("state")
	if state == "" && q.Has("error") && !q.Has("code") {
		// A provider that cannot tell which request it refuses (a pushed request_uri used
		// twice or expired) answers without state. Nothing ties it to a login of this
		// browser, so only a registered error code is shown, never its description.
		code := q.Get("error")
		if !slices.Contains(knownAuthorizationErrors, code) && requestRefusals[code] == "" {
			code = "unrecognized_error"
		}
		e := opRefusal(code, "")
		e.unbound = true
		detail := "the provider reported an error"
		if e.err != nil {
			detail = e.err.Error()
		}
		e.err = fmt.Errorf("%s (an error response without state: not tied to any login, and anyone can send one)", detail)
		return nil, e
	}
	if state == "" {
		return nil, &callbackError{status: http.StatusBadRequest, reason: "callback_missing_state", msg: "The sign-in response has no state parameter. Please sign in again."}
	}
	// A state we issued is a 43-character random id; anything else cannot name a transaction
	// cookie and is not looked up.
	if !session.ValidID(state) {
		return nil, &callbackError{status: http.StatusBadRequest, reason: "callback_unknown_state", msg: "This sign-in response does not belong to a sign-in started in this browser. Please sign in again."}
	}
	name := l.sessions.txPrefix + state
	c, err := r.Cookie(name)
	if err != nil {
		return nil, &callbackError{status: http.StatusBadRequest, reason: "callback_unknown_state", msg: "This sign-in response does not belong to a sign-in started in this browser, or it took longer than 10 minutes. Please sign in again."}
	}
	// From here on the transaction is spent, whatever happens.
	http.SetCookie(w, l.sessions.cookie(name, "", -1))
	var rec txRecord
	if err := l.sessions.txCodec.Decode(name, c.Value, &rec); err != nil || subtle.ConstantTimeCompare([]byte(rec.Tx.State), []byte(state)) != 1 {
		return nil, &callbackError{status: http.StatusBadRequest, reason: "callback_invalid_transaction", msg: "The sign-in attempt expired or its cookie was altered. Please sign in again."}
	}
	if q.Has("error") {
		if q.Has("code") {
			return nil, &callbackError{status: http.StatusBadRequest, reason: "callback_ambiguous", msg: "The sign-in response carries both a code and an error; it was refused. Please sign in again."}
		}
		return &rec, opRefusal(q.Get("error"), q.Get("error_description"))
	}
	code := q.Get("code")
	if code == "" || len(code) > maxCodeBytes {
		return nil, &callbackError{status: http.StatusBadRequest, reason: "callback_missing_code", msg: "The sign-in response has no usable code. Please sign in again."}
	}
	// Single use, recorded only when a code exchange follows: an error response needs no
	// replay record (and so cannot be used to fill the replay table cheaply).
	first, err := l.store.Once(r.Context(), "state:"+stateKey(state), loginTimeout)
	if err != nil {
		l.metrics.storeError("record")
		return nil, &callbackError{status: http.StatusServiceUnavailable, reason: "store_unavailable", err: err,
			msg: "The session store is not reachable right now. Please sign in again in a few seconds."}
	}
	if !first {
		return nil, &callbackError{status: http.StatusBadRequest, reason: "callback_replayed", msg: "This sign-in response was already used. Please sign in again."}
	}
	return &rec, nil
}

// finish exchanges the code, creates a new session and sends the browser back.
func (l *loginFlow) finish(w http.ResponseWriter, r *http.Request, rec *txRecord) *callbackError {
	ctx, cancel := opContext(r)
	defer cancel()
	q := r.URL.Query()
	if err := l.client.CheckResponseIssuer(ctx, q.Get("iss"), q.Has("iss")); err != nil {
		return exchangeError(err)
	}
	login, err := l.client.Exchange(ctx, q.Get("code"), rec.RedirectURL, rec.Tx)
	if err != nil {
		return exchangeError(err)
	}
	if rec.BindSubject != "" {
		// A binding counts only for the same user, at the assurance asked for (acr_values),
		// and, where the provider gives a verdict, approved (createSession checks that).
		if login.Subject != rec.BindSubject {
			return &callbackError{status: http.StatusForbidden, reason: "binding_not_confirmed",
				err: errors.New("the binding login came back for another subject"),
				msg: "The identity provider did not confirm that your verified identity matches this account."}
		}
		if acr, ok := l.bindingACRMet(login.Claims); !ok {
			return &callbackError{status: http.StatusForbidden, reason: "binding_not_confirmed",
				err: fmt.Errorf("the binding login has acr %q, below the acr_values asked for (%s)", web.Clip(acr, 64), strings.Join(l.binding.ACRValues, " ")),
				msg: "The identity provider did not confirm your identity at the level this account requires."}
		}
	}

	binding := ""
	if rec.BindSubject != "" {
		binding = "verified"
	}
	s, cbErr := l.sessions.create(w, r, login, rec.StepUps, binding)
	if cbErr != nil {
		return cbErr
	}
	if rec.BindAlias != "" {
		l.feedback.link(s, rec.BindAlias)
	}
	l.logger.Info("login", zap.String("reason", "login_ok"), zap.String("sub_hash", sessionHash(login.Subject)),
		zap.String("session_hash", sessionHash(s.ID)), zap.Bool("signed_userinfo", login.SignedUserinfo))
	l.event(eventLogin, map[string]any{"reason": "login_ok", "method": "code", "sub_hash": sessionHash(login.Subject), "session_hash": sessionHash(s.ID)})
	target := rec.ReturnTo
	if !web.IsSafePath(target) {
		target = "/"
	}
	http.Redirect(w, r, target, http.StatusFound)
	return nil
}

// bindingACRMet reports whether a binding login reached the acr_values it asked for, like
// `require acr_at_least` with the weakest of them: with acr_levels, the login's acr must be
// at or above that level; without, it must be one of the values. No acr_values: met.
func (l *loginFlow) bindingACRMet(claims map[string]any) (string, bool) {
	acr, _ := claims["acr"].(string)
	acr = strings.TrimSpace(acr)
	want := l.binding.ACRValues
	if len(want) == 0 {
		return acr, true
	}
	if slices.Contains(want, acr) {
		return acr, true
	}
	got := slices.Index(l.acrLevels, acr)
	if got < 0 {
		return acr, false
	}
	for _, v := range want {
		if i := slices.Index(l.acrLevels, v); i >= 0 && got >= i {
			return acr, true
		}
	}
	return acr, false
}

// rememberBindDenial marks the browser's session (if any) with a recent binding denial.
func (l *loginFlow) rememberBindDenial(r *http.Request) {
	id, ok := l.sessions.id(r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), storeWriteTimeout)
	defer cancel()
	now := l.now()
	if err := l.sessions.updateLocked(ctx, id, func(ns *session.Session) {
		ns.StepUps = append(slices.Clone(ns.StepUps), session.StepUpMark{Policy: bindDenied, At: now.Unix()})
	}); err != nil {
		l.logger.Warn("could not record the binding denial on the session", zap.Error(err))
	}
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

// IdentityBindingConfig turns on identity binding.
type IdentityBindingConfig struct {
	// Header is the response header in which the application names the profile to bind:
	// base64url (or standard base64) of a JSON object of at most 4 KiB. With
	// login_hint_format jwt, claims such as name, given_name, family_name, phone_number,
	// email, birthdate, address; with iddataweb, the OIDC claims or ID Dataweb fields of the
	// mapping in provider/iddataweb_hint.go (anything else is refused). Default: X-Auth-Bind
	Header string `json:"header,omitempty"`
	// ACRValues are sent with the binding's authorization request.
	ACRValues []string `json:"acr_values,omitempty"`
}

// stateKey turns a login's state into a short non-reversible label for its replay key.
func stateKey(state string) string {
	sum := sha256.Sum256([]byte(state))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
