package trustgate

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/session"
)

// logoutFlow ends sessions: RP-initiated logout at <prefix>/logout (a form on GET, the
// local logout and then the provider's end_session_endpoint on POST), the signed-out page,
// and the provider's back-channel logout at <prefix>/backchannel-logout.
type logoutFlow struct {
	*base
	sessions         *jar
	issuer, clientID string
	prefix           string         // path_prefix
	postLogoutURL    string         // post_logout_redirect_url, or ""
	clockLeeway      time.Duration  // for the logout token's iat
	limit            *windowLimiter // back-channel logout requests per second
}

// maxLogoutRequestsPerSecond bounds the back-channel logout requests one trustgate block
// verifies per second (each costs a signature check, perhaps a key fetch); more answer 429
// with Retry-After, which a provider retries (threat model LIM-*).
const maxLogoutRequestsPerSecond = 50

// windowLimiter allows max events per wall-clock second.
type windowLimiter struct {
	mu     sync.Mutex
	second int64
	n, max int
}

// take reports whether another event may happen this second.
func (l *windowLimiter) take(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sec := now.Unix(); sec != l.second {
		l.second, l.n = sec, 0
	}
	if l.n >= l.max {
		return false
	}
	l.n++
	return true
}

// maxLogoutRequestBytes bounds the back-channel logout request body (a logout token is a
// few KiB; threat model LO-11).
const maxLogoutRequestBytes = 64 << 10

// jtiKey is the replay key of a logout token: its issuer and jti, hashed.
func jtiKey(iss, jti string) string {
	sum := sha256.Sum256([]byte(url.QueryEscape(iss) + " " + jti))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// serveLogout ends the local session. Only a POST ends it; a GET shows a confirmation form, so a
// link or an image on another site cannot log anyone out.
func (o *logoutFlow) serveLogout(w http.ResponseWriter, r *http.Request) error {
	web.NoStore(w)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		o.logoutForm(w, r)
		return nil
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		return o.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusMethodNotAllowed, Reason: "method_not_allowed", Message: "use POST to sign out", Form: web.JSON})
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" {
		return o.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusForbidden, Reason: "cross_site", Message: "sign-out must be requested from this site", Form: web.JSON})
	}
	// The session is deleted here (every instance) before the browser goes anywhere; its ID
	// token is kept only for the provider's id_token_hint.
	var idTokenHint string
	s, err := o.sessions.current(r)
	switch {
	case err == nil:
		idTokenHint = s.IDToken
		if err := o.store.Delete(r.Context(), s.ID); err != nil {
			o.metrics.storeError("delete")
			// The cookie is kept: the session still exists and must not outlive a silent failure.
			o.logger.Error("logout: session store unavailable", zap.String("reason", "store_unavailable"), zap.Error(err))
			return o.serviceUnavailable(w, r, 5*time.Second, "store_unavailable", "Signing out failed because the session store is not reachable. Please retry in a few seconds.")
		}
		o.logger.Info("logout", zap.String("reason", "logout_ok"), zap.String("session_hash", sessionHash(s.ID)))
		o.event(eventLogout, map[string]any{"reason": "logout_ok", "method": "rp", "sub_hash": sessionHash(s.Subject), "session_hash": sessionHash(s.ID)})
	case errors.Is(err, session.ErrNotFound):
	default:
		o.metrics.storeError("get")
		o.logger.Error("logout: session store unavailable", zap.String("reason", "store_unavailable"), zap.Error(err))
		return o.serviceUnavailable(w, r, 5*time.Second, "store_unavailable", "Signing out failed because the session store is not reachable. Please retry in a few seconds.")
	}
	http.SetCookie(w, o.sessions.cookie(o.sessions.cookieName, "", -1))

	// Then sign out at the provider too (RP-initiated logout), when it offers it and the
	// user had a session with an ID token to name.
	var endURL string
	if idTokenHint != "" {
		ctx, cancel := opContext(r)
		defer cancel()
		u, ok, err := o.client.EndSessionURL(ctx, idTokenHint, o.postLogoutURL, oidcflow.NewTransaction().State)
		switch {
		case err != nil:
			o.logger.Warn("logout: signed out here, but the provider's end-session endpoint is unknown (discovery failed)",
				zap.String("reason", oidcflow.ReasonCode(err)), zap.Error(err))
		case ok:
			endURL = u
		}
	}
	if web.WantsHTML(r) {
		if endURL != "" {
			http.Redirect(w, r, endURL, http.StatusSeeOther)
			return nil
		}
		web.WritePage(w, http.StatusOK, web.Page{Title: "Signed out", Message: "You are signed out of this site.", Link: o.prefix + "/login"})
		return nil
	}
	// A script gets the provider's end-session URL without the ID token (a same-origin
	// script must not read it; threat model HDR-09); the provider may ask the user to confirm.
	if endURL != "" {
		ctx, cancel := opContext(r)
		defer cancel()
		endURL, _, _ = o.client.EndSessionURL(ctx, "", o.postLogoutURL, oidcflow.NewTransaction().State)
	}
	web.WriteJSON(w, http.StatusOK, logoutResult{Status: "signed_out", EndSessionURL: endURL})
	return nil
}

func (o *logoutFlow) logoutForm(w http.ResponseWriter, r *http.Request) {
	// The form's POST is answered with a redirect to the provider's end-session endpoint,
	// and browsers hold redirects after a form submission to form-action too.
	formAction := web.OriginOf(o.issuer)
	ctx, cancel := opContext(r)
	defer cancel()
	if md, err := o.client.Discover(ctx); err == nil && md.EndSessionEndpoint != "" {
		if origin := web.OriginOf(md.EndSessionEndpoint); origin != formAction {
			formAction += " " + origin
		}
	}
	web.WritePage(w, http.StatusOK, web.Page{Title: "Sign out", Message: "Do you want to sign out of this site?", Form: o.prefix + "/logout", FormAction: formAction})
}

// serveSignedOut is a plain page to land on after the provider's logout. It reads no parameter
// (the provider's state and anything else are ignored; threat model LO-13).
func (o *logoutFlow) serveSignedOut(w http.ResponseWriter, r *http.Request) error {
	web.NoStore(w)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return o.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusMethodNotAllowed, Reason: "method_not_allowed", Message: "use GET", Form: web.JSON})
	}
	web.WritePage(w, http.StatusOK, web.Page{Title: "Signed out", Message: "You are signed out.", Link: o.prefix + "/login"})
	return nil
}

// serveBackchannel serves OpenID Connect Back-Channel Logout 1.0: the provider POSTs a
// logout_token; when it verifies, every session of that sid (or subject) at this provider
// ends, on every instance that shares the store. 200 when done (also when no session
// matched), 400 for a bad request or token, 503 when the store failed (never 200 then, so
// the provider retries). It needs no cookie and never redirects.
func (o *logoutFlow) serveBackchannel(w http.ResponseWriter, r *http.Request) error {
	web.NoStore(w)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return o.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusMethodNotAllowed, Reason: "method_not_allowed", Message: "the back-channel logout endpoint takes a POST from the provider", Form: web.JSON})
	}
	if !o.limit.take(time.Now()) {
		o.metrics.backchannelResult("rate_limited")
		w.Header().Set("Retry-After", "1")
		return o.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusTooManyRequests, Reason: "slow_down", Message: "too many back-channel logout requests; retry in a second", Form: web.JSON})
	}
	refuse := func(status int, code, msg string) error {
		o.metrics.backchannelRefused(code)
		o.logger.Warn("back-channel logout refused", zap.String("reason", code), zap.String("detail", msg))
		return o.refuser.Refuse(w, r, &web.Refusal{Status: status, Reason: code, Message: msg, Form: web.JSON})
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return refuse(http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded with logout_token")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLogoutRequestBytes)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return refuse(http.StatusRequestEntityTooLarge, "request_too_large", "the request body is larger than 64 KiB")
		}
		return refuse(http.StatusBadRequest, "invalid_request", "the form body could not be read")
	}
	tokens := r.PostForm["logout_token"]
	if len(tokens) != 1 || tokens[0] == "" || len(r.URL.Query()["logout_token"]) > 0 {
		return refuse(http.StatusBadRequest, "invalid_request", "exactly one logout_token is required, in the body")
	}

	ctx, cancel := opContext(r)
	defer cancel()
	lt, err := o.client.VerifyLogoutToken(ctx, tokens[0])
	if err != nil {
		if oidcflow.IsTemporary(err) {
			o.logger.Error("back-channel logout: the provider's keys are unavailable", zap.String("reason", oidcflow.ReasonCode(err)), zap.Error(err))
			w.Header().Set("Retry-After", "5")
			return o.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusServiceUnavailable, Reason: "temporarily_unavailable", Message: "the provider's keys could not be fetched; retry", Form: web.JSON})
		}
		return refuse(http.StatusBadRequest, "invalid_logout_token", err.Error())
	}

	// Each token is used once (threat model LO-08): its (iss, jti) is taken as a lock that is
	// kept as the replay record when the logout succeeds, and given back when the store
	// fails, so the provider's retry of the same token is not mistaken for a replay.
	leeway := o.clockLeeway
	if leeway == 0 {
		leeway = time.Minute
	}
	ttl := 2*leeway + 10*time.Minute + 10*time.Second
	if !lt.Expiry.IsZero() {
		ttl = max(ttl, time.Until(lt.Expiry)+2*leeway)
	}
	key := "bcl:" + jtiKey(lt.Issuer, lt.JTI)
	held, first, err := o.store.Lock(ctx, key, ttl)
	if err != nil {
		o.metrics.storeError("lock")
		o.metrics.backchannelResult("store_error")
		o.logger.Error("back-channel logout: the replay record could not be written", zap.String("reason", "store_unavailable"), zap.Error(err))
		w.Header().Set("Retry-After", "5")
		return o.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusServiceUnavailable, Reason: "store_unavailable", Message: "the logout could not be recorded; retry", Form: web.JSON})
	}
	if !first {
		return refuse(http.StatusBadRequest, "logout_token_replayed", "this logout token (jti) was already used")
	}
	// And only sessions authenticated at the provider before the token was issued end
	// (auth_time against iat: two times of the provider's clock), of this client only.
	n, err := o.store.DeleteMatching(ctx, session.Match{Issuer: o.issuer, ClientID: o.clientID, Subject: lt.Subject, SID: lt.SID, AuthBefore: lt.IssuedAt})
	if err != nil {
		if uerr := o.store.Unlock(context.WithoutCancel(ctx), key, held); uerr != nil {
			o.logger.Warn("back-channel logout: the replay record could not be released; a retry of this token will be refused", zap.Error(uerr))
		}
		o.metrics.storeError("delete")
		o.metrics.backchannelResult("store_error")
		o.logger.Error("back-channel logout: sessions could not be deleted; the provider should retry", zap.String("reason", "store_unavailable"), zap.Error(err))
		w.Header().Set("Retry-After", "5")
		return o.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusServiceUnavailable, Reason: "store_unavailable", Message: "the sessions could not be ended; retry", Form: web.JSON})
	}
	fields := []zap.Field{zap.String("reason", "backchannel_logout"), zap.Int("sessions", n),
		zap.Bool("by_sid", lt.SID != ""), zap.String("sub_hash", sessionHash(lt.Subject))}
	if n == 0 {
		o.logger.Warn("back-channel logout: no session matched (already ended?)", fields...)
	} else {
		o.logger.Info("back-channel logout", fields...)
	}
	o.metrics.backchannelResult("ok")
	o.event(eventLogout, map[string]any{"reason": "backchannel_logout", "method": "backchannel", "sub_hash": sessionHash(lt.Subject), "sessions": n})
	w.WriteHeader(http.StatusOK)
	return nil
}

// logoutResult answers a non-browser logout; a script continues at end_session_url to sign
// out at the provider too.
type logoutResult struct {
	Status        string `json:"status"`
	EndSessionURL string `json:"end_session_url,omitempty"`
}
