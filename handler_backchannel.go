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

// maxLogoutRequestsPerSecond bounds the back-channel logout requests one trustgate block
// verifies per second (each costs a signature check, perhaps a key fetch); more answer 429
// with Retry-After, which a provider retries (SECURITY.md LIM-*, issue 10).
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
// few KiB; SECURITY.md LO-11).
const maxLogoutRequestBytes = 64 << 10

// backchannelLogout serves OpenID Connect Back-Channel Logout 1.0: the provider POSTs a
// logout_token; when it verifies, every session of that sid (or subject) at this provider
// ends, on every instance that shares the store. 200 when done (also when no session
// matched), 400 for a bad request or token, 503 when the store failed (never 200 then, so
// the provider retries). It needs no cookie and never redirects.
func (h *Handler) backchannelLogout(w http.ResponseWriter, r *http.Request) error {
	web.NoStore(w)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusMethodNotAllowed, Reason: "method_not_allowed", Message: "the back-channel logout endpoint takes a POST from the provider", Form: web.JSON})
	}
	if !h.logoutLimit.take(time.Now()) {
		h.metrics.backchannelResult("rate_limited")
		w.Header().Set("Retry-After", "1")
		return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusTooManyRequests, Reason: "slow_down", Message: "too many back-channel logout requests; retry in a second", Form: web.JSON})
	}
	refuse := func(status int, code, msg string) error {
		h.metrics.backchannelRefused(code)
		h.logger.Warn("back-channel logout refused", zap.String("reason", code), zap.String("detail", msg))
		return h.refuser.Refuse(w, r, &web.Refusal{Status: status, Reason: code, Message: msg, Form: web.JSON})
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
	lt, err := h.client.VerifyLogoutToken(ctx, tokens[0])
	if err != nil {
		if oidcflow.IsTemporary(err) {
			h.logger.Error("back-channel logout: the provider's keys are unavailable", zap.String("reason", oidcflow.ReasonCode(err)), zap.Error(err))
			w.Header().Set("Retry-After", "5")
			return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusServiceUnavailable, Reason: "temporarily_unavailable", Message: "the provider's keys could not be fetched; retry", Form: web.JSON})
		}
		return refuse(http.StatusBadRequest, "invalid_logout_token", err.Error())
	}

	// Each token is used once (SECURITY.md LO-08): its (iss, jti) is taken as a lock that is
	// kept as the replay record when the logout succeeds, and given back when the store
	// fails, so the provider's retry of the same token is not mistaken for a replay.
	leeway := time.Duration(h.ClockLeeway)
	if leeway == 0 {
		leeway = time.Minute
	}
	ttl := 2*leeway + 10*time.Minute + 10*time.Second
	if !lt.Expiry.IsZero() {
		ttl = max(ttl, time.Until(lt.Expiry)+2*leeway)
	}
	key := "bcl:" + jtiKey(lt.Issuer, lt.JTI)
	held, first, err := h.store.Lock(ctx, key, ttl)
	if err != nil {
		h.metrics.storeError("lock")
		h.metrics.backchannelResult("store_error")
		h.logger.Error("back-channel logout: the replay record could not be written", zap.String("reason", "store_unavailable"), zap.Error(err))
		w.Header().Set("Retry-After", "5")
		return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusServiceUnavailable, Reason: "store_unavailable", Message: "the logout could not be recorded; retry", Form: web.JSON})
	}
	if !first {
		return refuse(http.StatusBadRequest, "logout_token_replayed", "this logout token (jti) was already used")
	}
	// And only sessions authenticated at the provider before the token was issued end
	// (auth_time against iat: two times of the provider's clock), of this client only.
	n, err := h.store.DeleteMatching(ctx, session.Match{Issuer: h.Issuer, ClientID: h.ClientID, Subject: lt.Subject, SID: lt.SID, AuthBefore: lt.IssuedAt})
	if err != nil {
		if uerr := h.store.Unlock(context.WithoutCancel(ctx), key, held); uerr != nil {
			h.logger.Warn("back-channel logout: the replay record could not be released; a retry of this token will be refused", zap.Error(uerr))
		}
		h.metrics.storeError("delete")
		h.metrics.backchannelResult("store_error")
		h.logger.Error("back-channel logout: sessions could not be deleted; the provider should retry", zap.String("reason", "store_unavailable"), zap.Error(err))
		w.Header().Set("Retry-After", "5")
		return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusServiceUnavailable, Reason: "store_unavailable", Message: "the sessions could not be ended; retry", Form: web.JSON})
	}
	fields := []zap.Field{zap.String("reason", "backchannel_logout"), zap.Int("sessions", n),
		zap.Bool("by_sid", lt.SID != ""), zap.String("sub_hash", sessionHash(lt.Subject))}
	if n == 0 {
		h.logger.Warn("back-channel logout: no session matched (already ended?)", fields...)
	} else {
		h.logger.Info("back-channel logout", fields...)
	}
	h.metrics.backchannelResult("ok")
	h.event(eventLogout, map[string]any{"reason": "backchannel_logout", "method": "backchannel", "sub_hash": sessionHash(lt.Subject), "sessions": n})
	w.WriteHeader(http.StatusOK)
	return nil
}

// jtiKey is the replay key of a logout token: its issuer and jti, hashed.
func jtiKey(iss, jti string) string {
	sum := sha256.Sum256([]byte(url.QueryEscape(iss) + " " + jti))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
