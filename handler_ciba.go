package trustgate

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/session"
)

// CIBA (OpenID Connect Client-Initiated Backchannel Authentication, poll mode): a client
// without a browser — a kiosk, an agent's tool, a CLI — starts a login for a user, the user
// confirms on their phone, the client polls the gateway, and gets a session cookie.

// CIBAConfig turns on the CIBA endpoints (<path_prefix>/ciba/start and /ciba/poll).
type CIBAConfig struct {
	// StartsPerIP bounds the logins one client IP (Caddy's client_ip, trusted_proxies
	// aware) may start per minute. Default: 10
	StartsPerIP int `json:"starts_per_ip,omitempty"`
	// HintInterval is how long after a start for a user (login_hint) the next start for that
	// user is refused, so nobody can flood a user's phone with requests. Default: 1m
	HintInterval caddy.Duration `json:"hint_interval,omitempty"`
	// MaxExpiry caps the requested_expiry a caller may ask for, and the lifetime of any
	// pending CIBA login whatever the provider says. Default: 10m
	MaxExpiry caddy.Duration `json:"max_expiry,omitempty"`
}

// CIBA limits.
const (
	maxCIBARequestBytes  = 16 << 10
	maxCIBAHintBytes     = 256
	cibaSlowDownStep     = 5 * time.Second
	cibaPollLease        = 30 * time.Second
	defaultStartsPerIP   = 10
	maxCIBAExpiry        = 10 * time.Minute
	minCIBAInterval      = 2 * time.Second
	defaultHintInterval  = time.Minute
	cibaRecordKeyPrefix  = "ciba:"
	cibaPollLockPrefix   = "ciba-poll:"
	cibaHintLockPrefix   = "ciba-hint:"
	cibaIPSlotLockPrefix = "ciba-ip:"
)

// cibaRecord is a pending CIBA login, kept in the store under the hash of its request_id
// (which only the client knows); the provider's auth_req_id never leaves the gateway.
type cibaRecord struct {
	AuthReqID string `json:"a"`
	Expires   int64  `json:"e"` // unix seconds
	Interval  int64  `json:"i"` // seconds, raised by slow_down
	NextPoll  int64  `json:"n"` // unix milliseconds: no provider poll before this
}

func cibaKey(requestID string) string {
	sum := sha256.Sum256([]byte(requestID))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// cibaError answers a CIBA endpoint error as JSON, never cacheable.
func cibaError(w http.ResponseWriter, status int, code, msg string) error {
	writeJSON(w, status, apiError{Error: code, Message: msg})
	return nil
}

// readCIBAForm reads a JSON object or a form body into a map of single strings.
func readCIBAForm(w http.ResponseWriter, r *http.Request) (map[string]string, error) {
	if r.Method != http.MethodPost {
		return nil, errors.New("use POST")
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCIBARequestBytes))
	if err != nil {
		return nil, errors.New("the request body is larger than 16 KiB")
	}
	out := map[string]string{}
	switch mt {
	case "application/json":
		var raw map[string]any
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, errors.New("the body is not a JSON object")
		}
		for k, v := range raw {
			switch v := v.(type) {
			case string:
				out[k] = v
			case []any: // acr_values as a JSON array
				parts := make([]string, 0, len(v))
				for _, e := range v {
					s, ok := e.(string)
					if !ok {
						return nil, fmt.Errorf("%s must be strings", k)
					}
					parts = append(parts, s)
				}
				out[k] = strings.Join(parts, " ")
			case nil:
			default:
				return nil, fmt.Errorf("%s must be a string", k)
			}
		}
	case "application/x-www-form-urlencoded":
		vs, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errors.New("the form body is malformed")
		}
		for k, v := range vs {
			if len(v) != 1 {
				return nil, fmt.Errorf("%s is repeated", k)
			}
			out[k] = v[0]
		}
	default:
		return nil, errors.New("send application/json or application/x-www-form-urlencoded")
	}
	return out, nil
}

// cibaInput is the common start of both CIBA endpoints: CIBA on, a POST, a readable body.
// When it returns false it has answered the request.
func (h *Handler) cibaInput(w http.ResponseWriter, r *http.Request) (map[string]string, bool) {
	noStore(w)
	if h.CIBA == nil {
		_ = cibaError(w, http.StatusNotFound, "not_found", "CIBA is not enabled on this site (ciba)")
		return nil, false
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		_ = cibaError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return nil, false
	}
	in, err := readCIBAForm(w, r)
	if err != nil {
		_ = cibaError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return nil, false
	}
	return in, true
}

// cibaStart starts a CIBA login: POST <prefix>/ciba/start with one of login_hint,
// id_token_hint, login_hint_token, and optional binding_message, user_code, acr_values,
// scope. It answers {"request_id", "expires_in", "interval"}.
func (h *Handler) cibaStart(w http.ResponseWriter, r *http.Request) error {
	in, ok := h.cibaInput(w, r)
	if !ok {
		return nil
	}
	req := oidcflow.CIBARequest{
		LoginHint: in["login_hint"], IDTokenHint: in["id_token_hint"], LoginHintToken: in["login_hint_token"],
		BindingMessage: in["binding_message"], UserCode: in["user_code"],
		ACRValues: strings.Fields(in["acr_values"]), Scopes: strings.Fields(in["scope"]),
	}
	hint := req.LoginHint + req.IDTokenHint + req.LoginHintToken
	switch n := countNonEmpty(req.LoginHint, req.IDTokenHint, req.LoginHintToken); {
	case n != 1:
		return cibaError(w, http.StatusBadRequest, "invalid_request", "exactly one of login_hint, id_token_hint and login_hint_token is required")
	case req.LoginHint != "" && (len(req.LoginHint) > maxCIBAHintBytes || !validLoginHint(req.LoginHint)):
		return cibaError(w, http.StatusBadRequest, "invalid_request", "login_hint must be at most 256 printable characters")
	}

	// Abuse limits: one start per user per hint_interval, starts_per_ip per minute per client.
	ctx := r.Context()
	hintTTL := time.Duration(h.CIBA.HintInterval)
	if hintTTL <= 0 {
		hintTTL = defaultHintInterval
	}
	if _, ok, err := h.store.Lock(ctx, cibaHintLockPrefix+cibaKey(h.Issuer+"\x00"+hint), hintTTL); err != nil {
		return h.storeUnavailable(w, r, "lock", err)
	} else if !ok {
		h.metrics.cibaOutcome("rate_limited", "")
		w.Header().Set("Retry-After", strconv.Itoa(int(hintTTL/time.Second)))
		return cibaError(w, http.StatusTooManyRequests, "slow_down", "a sign-in for this user was started moments ago; wait before starting another")
	}
	if ok, err := h.takeIPSlot(ctx, r); err != nil {
		return h.storeUnavailable(w, r, "lock", err)
	} else if !ok {
		h.metrics.cibaOutcome("rate_limited", "")
		w.Header().Set("Retry-After", "60")
		return cibaError(w, http.StatusTooManyRequests, "slow_down", "too many sign-ins started from this address; retry in a minute")
	}

	octx, cancel := opContext(r)
	defer cancel()
	ack, err := h.client.BackchannelAuthorize(octx, req)
	if err != nil {
		h.metrics.cibaOutcome("failed", "")
		return h.cibaProviderError(w, "ciba start", err)
	}
	// The provider's numbers, within reason: a pending login lives at most maxCIBAExpiry,
	// and the provider is never polled more often than every minCIBAInterval.
	ack.ExpiresIn = min(ack.ExpiresIn, maxCIBAExpiry)
	ack.Interval = max(ack.Interval, minCIBAInterval)
	requestID := session.NewID()
	now := h.now()
	rec := cibaRecord{AuthReqID: ack.AuthReqID, Expires: now.Add(ack.ExpiresIn).Unix(),
		Interval: int64(ack.Interval / time.Second), NextPoll: now.Add(ack.Interval).UnixMilli()}
	if err := h.putCIBA(ctx, requestID, rec, now); err != nil {
		return h.storeUnavailable(w, r, "record", err)
	}
	h.metrics.cibaOutcome("started", "")
	h.logger.Info("CIBA login started", zap.String("reason", "ciba_started"), zap.String("request_hash", sessionHash(requestID)),
		zap.Int64("expires_in", int64(ack.ExpiresIn/time.Second)), zap.Int64("interval", rec.Interval))
	writeJSON(w, http.StatusOK, map[string]any{"request_id": requestID, "expires_in": int64(ack.ExpiresIn / time.Second), "interval": rec.Interval})
	return nil
}

func countNonEmpty(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

// takeIPSlot takes one of starts_per_ip one-minute slots for the request's client IP.
func (h *Handler) takeIPSlot(ctx context.Context, r *http.Request) (bool, error) {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if ip == "" {
		ip, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	n := h.CIBA.StartsPerIP
	if n <= 0 {
		n = defaultStartsPerIP
	}
	for i := range n {
		_, ok, err := h.store.Lock(ctx, cibaIPSlotLockPrefix+cibaKey(ip)+":"+strconv.Itoa(i), time.Minute)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (h *Handler) putCIBA(ctx context.Context, requestID string, rec cibaRecord, now time.Time) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	ttl := time.Unix(rec.Expires, 0).Sub(now)
	if ttl < time.Second {
		ttl = time.Second
	}
	return h.store.PutRecord(ctx, cibaRecordKeyPrefix+cibaKey(requestID), b, ttl)
}

// cibaProviderError maps a provider failure of a CIBA call.
func (h *Handler) cibaProviderError(w http.ResponseWriter, what string, err error) error {
	code := oidcflow.ReasonCode(err)
	var oe *oidcflow.Error
	opErr := ""
	if errors.As(err, &oe) {
		opErr = oe.OPError
	}
	h.logger.Warn(what+": the provider refused or failed", zap.String("reason", code), zap.String("op_error", opErr), zap.Error(err))
	switch {
	case oidcflow.IsTemporary(err):
		w.Header().Set("Retry-After", "5")
		return cibaError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the sign-in service did not answer properly; retry")
	case code == oidcflow.CodeCIBAUnsupported:
		return cibaError(w, http.StatusNotImplemented, "not_supported", "the sign-in service does not offer CIBA (poll mode)")
	case code == oidcflow.CodeCIBAInvalid:
		return cibaError(w, http.StatusBadRequest, "invalid_request", err.Error())
	case code == oidcflow.CodeCIBARejected && opErr == "access_denied":
		return cibaError(w, http.StatusForbidden, "access_denied", "the sign-in service refused this request")
	case code == oidcflow.CodeCIBARejected:
		return cibaError(w, http.StatusBadRequest, opErr, "the sign-in service refused this request ("+opErr+")")
	default:
		return cibaError(w, http.StatusBadGateway, "bad_provider_response", "the sign-in service answered in a way that cannot be used")
	}
}

// cibaPoll is POST <prefix>/ciba/poll with request_id: {"status":"pending"} until the user
// decides, then the session (cookie) and the profile, or 403 (denied) / 410 (expired). The
// provider is polled at most once per interval across all instances.
func (h *Handler) cibaPoll(w http.ResponseWriter, r *http.Request) error {
	in, ok := h.cibaInput(w, r)
	if !ok {
		return nil
	}
	requestID := in["request_id"]
	if !session.ValidID(requestID) {
		return cibaError(w, http.StatusBadRequest, "invalid_request", "request_id is missing or malformed")
	}
	ctx := r.Context()
	key := cibaKey(requestID)
	rec, err := h.getCIBA(ctx, key)
	if errors.Is(err, session.ErrNotFound) {
		return cibaError(w, http.StatusNotFound, "unknown_request", "no pending sign-in has this request_id (unknown, finished or expired)")
	}
	if err != nil {
		return h.storeUnavailable(w, r, "record", err)
	}
	pending := func(rec *cibaRecord, slowDown bool) error {
		wait := max(time.UnixMilli(rec.NextPoll).Sub(h.now()), 0)
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		h.metrics.cibaOutcome("pending", "")
		writeJSON(w, http.StatusOK, map[string]any{"status": "pending", "interval": rec.Interval, "slow_down": slowDown})
		return nil
	}
	// One poller per transaction across instances; the others answer "pending" at once.
	lockKey := cibaPollLockPrefix + key
	token, ok, err := h.store.Lock(ctx, lockKey, cibaPollLease)
	if err != nil {
		return h.storeUnavailable(w, r, "lock", err)
	}
	if !ok {
		return pending(rec, false)
	}
	defer func() { _ = h.store.Unlock(context.WithoutCancel(ctx), lockKey, token) }()
	if rec, err = h.getCIBA(ctx, key); err != nil { // recheck under the lock
		if errors.Is(err, session.ErrNotFound) {
			return cibaError(w, http.StatusNotFound, "unknown_request", "no pending sign-in has this request_id (unknown, finished or expired)")
		}
		return h.storeUnavailable(w, r, "record", err)
	}
	now := h.now()
	if now.UnixMilli() < rec.NextPoll {
		return pending(rec, false) // the provider's interval is kept for every caller
	}
	octx, cancel := opContext(r)
	defer cancel()
	login, err := h.client.PollCIBA(octx, rec.AuthReqID)
	now = h.now()
	done := func() { _ = h.store.DeleteRecord(context.WithoutCancel(ctx), cibaRecordKeyPrefix+key) }
	switch code := oidcflow.ReasonCode(err); {
	case err == nil:
	case code == oidcflow.CodeCIBAPending, code == oidcflow.CodeCIBASlowDown || oidcflow.IsTemporary(err):
		slow := code == oidcflow.CodeCIBASlowDown
		if slow {
			rec.Interval += int64(cibaSlowDownStep / time.Second) // kept for every later poll
		}
		rec.NextPoll = now.Add(time.Duration(rec.Interval) * time.Second).UnixMilli()
		if perr := h.putCIBA(ctx, requestID, *rec, now); perr != nil {
			return h.storeUnavailable(w, r, "record", perr)
		}
		if oidcflow.IsTemporary(err) {
			h.metrics.cibaOutcome("failed", "")
			return h.cibaProviderError(w, "ciba poll", err)
		}
		return pending(rec, slow)
	case code == oidcflow.CodeCIBADenied:
		done()
		h.metrics.cibaOutcome("denied", "")
		h.logger.Info("CIBA login denied by the user", zap.String("reason", "ciba_denied"), zap.String("request_hash", sessionHash(requestID)))
		return cibaError(w, http.StatusForbidden, "access_denied", "the user declined the sign-in")
	case code == oidcflow.CodeCIBAExpired:
		done()
		h.metrics.cibaOutcome("expired", "")
		return cibaError(w, http.StatusGone, "expired_token", "the sign-in request expired before the user confirmed it")
	default:
		// A terminal answer (invalid_request, invalid_grant, a token that does not verify):
		// never poll this auth_req_id again (SECURITY.md CIBA-06, CIBA-07).
		done()
		h.metrics.cibaOutcome("failed", code)
		h.logger.Warn("CIBA login failed", zap.String("reason", code), zap.Error(err))
		if code == oidcflow.CodeCIBAFailed {
			return cibaError(w, http.StatusBadRequest, "ciba_failed", "the sign-in service ended this sign-in request")
		}
		return cibaError(w, http.StatusUnauthorized, "login_failed", "the sign-in could not be verified, so it was refused")
	}
	done()
	s, cbErr := h.createSession(w, r, login, nil, "")
	if cbErr != nil {
		h.metrics.cibaOutcome("failed", cbErr.reason)
		h.logRefusal(cbErr)
		return cibaError(w, cbErr.status, cbErr.reason, cbErr.msg)
	}
	h.logger.Info("login", zap.String("reason", "login_ok"), zap.String("method", "ciba"), zap.String("sub_hash", sessionHash(login.Subject)),
		zap.String("session_hash", sessionHash(s.ID)))
	h.metrics.cibaOutcome("authenticated", "")
	h.event(eventLogin, map[string]any{"reason": "login_ok", "method": "ciba", "sub_hash": sessionHash(login.Subject), "session_hash": sessionHash(s.ID)})
	writeJSON(w, http.StatusOK, map[string]any{"status": "authenticated", "profile": h.render(s).profile})
	return nil
}

func (h *Handler) getCIBA(ctx context.Context, key string) (*cibaRecord, error) {
	b, err := h.store.GetRecord(ctx, cibaRecordKeyPrefix+key)
	if err != nil {
		return nil, err
	}
	var rec cibaRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, session.ErrNotFound
	}
	return &rec, nil
}
