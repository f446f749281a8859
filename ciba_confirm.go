package trustgate

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/session"
)

// Transaction confirmation (CIBA from_session): a signed-in user confirms on their phone,
// and the session's next request carries the single-use X-Auth-Confirmation.

// confirm ends a from_session request the user confirmed: the polled login must be the
// session's own user; then the session gets a signed confirmation that its next request
// carries to the upstream (X-Auth-Confirmation). No session is created; a refusal changes
// nothing.
func (f *cibaFlow) confirm(w http.ResponseWriter, r *http.Request, requestID string, rec *cibaRecord, login *oidcflow.Login) error {
	ctx := r.Context()
	s, err := f.store.Get(ctx, rec.Session)
	if err == nil && (s.Issuer != f.issuer || s.ClientID != f.clientID) {
		err = session.ErrNotFound
	}
	if errors.Is(err, session.ErrNotFound) {
		f.metrics.cibaOutcome("failed", "ciba_session_ended")
		return f.refuse(w, r, http.StatusConflict, "session_ended", "ciba_session_ended", "the session this confirmation was for has ended (signed out or expired); nothing was confirmed")
	}
	if err != nil {
		return f.storeUnavailable(w, r, "get", err)
	}
	if login.Subject != s.Subject {
		f.metrics.cibaOutcome("failed", "ciba_subject_mismatch")
		f.logger.Warn("CIBA confirmation refused: another user confirmed it", zap.String("reason", "ciba_subject_mismatch"),
			zap.String("session_hash", sessionHash(s.ID)), zap.String("sub_hash", sessionHash(login.Subject)))
		return f.fail(w, r, http.StatusForbidden, "subject_mismatch", "the confirmation came from another user than the one signed in; nothing was confirmed")
	}
	if f.assertion.keys == nil {
		f.logger.Error("CIBA confirmation cannot be signed: no assertion keys", zap.String("reason", "assertion_failed"))
		return f.fail(w, r, http.StatusInternalServerError, "confirmation_failed", "the confirmation could not be signed; the site's administrator has been told")
	}
	now := f.now()
	iss := f.assertion.origin(r)
	aud := iss
	if f.assertion.cfg != nil {
		iss = cmp.Or(f.assertion.cfg.Issuer, iss)
		aud = cmp.Or(f.assertion.cfg.Audience, iss)
	}
	exp := now.Add(confirmationLifetime)
	// txn ties the confirmation to the transaction the application started (the hash of
	// its request_id; an X-Auth-Assertion never has one); acr, amr and auth_time say how
	// the user confirmed on the phone.
	claims := map[string]any{"iss": iss, "aud": aud, "sub": s.Subject, "iat": now.Unix(), "exp": exp.Unix(), "jti": session.NewID(),
		"txn": cibaKey(requestID)}
	if rec.Binding != "" {
		claims["binding_message"] = rec.Binding
	}
	for _, k := range []string{"acr", "amr", "auth_time"} {
		if v, ok := login.IDTokenClaims[k]; ok {
			claims[k] = v
		}
	}
	if acr, ok := claims["acr"].(string); ok {
		claims["acr"] = strings.TrimSpace(acr) // as X-Auth-Acr (BindID sends " ts.bindid...")
	}
	tok, err := f.assertion.keys.current(now).Sign(claims)
	if err != nil {
		f.logger.Error("cannot sign the CIBA confirmation", zap.String("reason", "assertion_failed"), zap.Error(err))
		return f.fail(w, r, http.StatusInternalServerError, "confirmation_failed", "the confirmation could not be signed; the site's administrator has been told")
	}
	c := &session.Confirmation{Token: tok, Expires: exp.Unix()}
	if err := f.sessions.updateLocked(ctx, s.ID, func(ns *session.Session) { ns.Confirmation = c }); err != nil {
		if errors.Is(err, session.ErrNotFound) {
			return f.refuse(w, r, http.StatusConflict, "session_ended", "ciba_session_ended", "the session this confirmation was for has ended (signed out or expired); nothing was confirmed")
		}
		return f.storeUnavailable(w, r, "update", err)
	}
	f.metrics.cibaOutcome("confirmed", "")
	f.logger.Info("CIBA transaction confirmed", zap.String("reason", "ciba_confirmed"), zap.String("request_hash", sessionHash(requestID)),
		zap.String("session_hash", sessionHash(s.ID)))
	web.WriteJSON(w, http.StatusOK, map[string]any{"status": "confirmed"})
	return nil
}

// takeConfirmation removes the session's waiting confirmation (under the session's lock,
// so that exactly one request gets it) and returns its token, or "" when another request
// took it, it has expired, or the store could not be updated (then it waits for the next
// request).
func (c *cibaRecords) takeConfirmation(ctx context.Context, s *session.Session) string {
	var took *session.Confirmation
	err := c.sessions.updateLocked(ctx, s.ID, func(ns *session.Session) {
		took, ns.Confirmation = ns.Confirmation, nil
	})
	if err != nil {
		c.logger.Warn("CIBA confirmation not passed on: the session could not be updated; the next request tries again",
			zap.String("reason", "confirmation_deferred"), zap.String("session_hash", sessionHash(s.ID)), zap.Error(err))
		return ""
	}
	if took == nil || c.now().Unix() >= took.Expires {
		return ""
	}
	return took.Token
}
