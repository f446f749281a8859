package trustgate

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/session"
)

// The bank's user-code step (seed 004, step 3): a second bc-authorize with the code the
// user typed and the id_token_hint of the request.

// userCode is POST <prefix>/ciba/user-code with request_id and user_code, the code the
// user typed: the backchannel request is sent again with it and the request's id_token_hint
// (seed 004 step 3), and the request goes on with the provider's new auth_req_id. It answers
// {"status":"pending", "expires_in", "interval"}; poll on as before.
func (f *cibaFlow) userCode(w http.ResponseWriter, r *http.Request) error {
	in, ok, err := f.input(w, r)
	if !ok {
		return err
	}
	requestID, code := in["request_id"], in["user_code"]
	if !session.ValidID(requestID) {
		return f.fail(w, r, http.StatusBadRequest, "invalid_request", "request_id is missing or malformed")
	}
	if code == "" || len(code) > oidcflow.MaxUserCodeLength || strings.ContainsFunc(code, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return f.refuse(w, r, http.StatusBadRequest, "invalid_request", "ciba_invalid_request", "user_code must be 1 to 64 printable ASCII characters")
	}
	ctx := r.Context()
	key := cibaKey(requestID)
	rec, err := f.records.get(ctx, key)
	if err != nil {
		return f.lookupError(w, r, err)
	}
	if f.records.expired(ctx, requestID, rec) {
		return f.expiredAnswer(w, r)
	}
	if !rec.Hint && rec.Session == "" {
		return f.refuse(w, r, http.StatusConflict, "id_token_hint_required", "ciba_hint_required", "a user code is sent with the id_token_hint the sign-in was started with, and this one was started without; start again with id_token_hint (or from_session)")
	}
	// Serialized with the polls of this request, across instances.
	lockKey := cibaPollLockPrefix + key
	token, ok, err := f.store.Lock(ctx, lockKey, cibaPollLease)
	if err != nil {
		return f.storeUnavailable(w, r, "lock", err)
	}
	if !ok {
		w.Header().Set("Retry-After", "1")
		return f.fail(w, r, http.StatusTooManyRequests, "slow_down", "this sign-in is being polled right now; retry in a second")
	}
	defer func() { _ = f.store.Unlock(context.WithoutCancel(ctx), lockKey, token) }()
	if rec, err = f.records.get(ctx, key); err != nil {
		return f.lookupError(w, r, err)
	}
	if f.records.expired(ctx, requestID, rec) {
		return f.expiredAnswer(w, r)
	}
	if rec.Tries >= maxCIBAUserCodeTries {
		f.records.end(ctx, requestID, rec, false)
		return f.refuse(w, r, http.StatusTooManyRequests, "too_many_attempts", "ciba_user_code_attempts", "too many user codes were tried for this sign-in; start a new one")
	}
	req := oidcflow.CIBARequest{UserCode: code, BindingMessage: rec.Binding, ACRValues: strings.Fields(rec.ACR), Scopes: strings.Fields(rec.Scope),
		RequestedExpiry: time.Duration(rec.Expiry) * time.Second}
	var idTokenHint string
	if rec.Hint {
		b, err := f.store.GetRecord(ctx, cibaHintKeyPrefix+key)
		if errors.Is(err, session.ErrNotFound) {
			f.records.end(ctx, requestID, rec, true)
			return f.expiredAnswer(w, r)
		}
		if err != nil {
			return f.storeUnavailable(w, r, "record", err)
		}
		idTokenHint = string(b)
		req.IDTokenHint = idTokenHint
	} else {
		s, err := f.store.Get(ctx, rec.Session)
		if err == nil && (s.Issuer != f.issuer || s.ClientID != f.clientID || s.IDToken == "") {
			err = session.ErrNotFound
		}
		if errors.Is(err, session.ErrNotFound) {
			f.records.end(ctx, requestID, rec, false)
			return f.refuse(w, r, http.StatusConflict, "session_ended", "ciba_session_ended", "the session this confirmation was for has ended (signed out or expired); start again from a signed-in session")
		}
		if err != nil {
			return f.storeUnavailable(w, r, "get", err)
		}
		req.IDTokenHint = s.IDToken
	}
	if rec.Claims {
		b, err := f.store.GetRecord(ctx, cibaClaimsKeyPrefix+key)
		if err != nil && !errors.Is(err, session.ErrNotFound) {
			return f.storeUnavailable(w, r, "record", err)
		}
		req.Claims = b
	}
	// Every code sent counts, whatever the provider answers.
	now := f.now()
	rec.Tries++
	if err := f.records.put(ctx, requestID, *rec, now, "", nil); err != nil {
		return f.storeUnavailable(w, r, "record", err)
	}
	octx, cancel := opContext(r)
	defer cancel()
	ack, err := f.client.BackchannelAuthorize(octx, req)
	if err != nil {
		f.metrics.cibaOutcome("failed", "")
		return f.providerError(w, r, "ciba user code", err)
	}
	now = f.now()
	f.records.acknowledge(rec, ack, now)
	if err := f.records.put(ctx, requestID, *rec, now, idTokenHint, req.Claims); err != nil {
		return f.storeUnavailable(w, r, "record", err)
	}
	f.metrics.cibaOutcome("user_code_sent", "")
	f.logger.Info("CIBA user code accepted by the provider", zap.String("reason", "ciba_user_code_sent"), zap.String("request_hash", sessionHash(requestID)),
		zap.Int64("expires_in", rec.Expires-now.Unix()), zap.Int64("interval", rec.Interval))
	web.WriteJSON(w, http.StatusOK, map[string]any{"status": "pending", "expires_in": rec.Expires - now.Unix(), "interval": rec.Interval})
	return nil
}
