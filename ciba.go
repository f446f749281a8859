package trustgate

import (
	"bytes"
	"context"
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

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/session"
)

// cibaFlow is CIBA for browserless clients: <prefix>/ciba/start sends the backchannel
// authentication request, <prefix>/ciba/poll asks the provider until the user answers
// and then creates the session (or confirms a from_session transaction), and
// <prefix>/ciba/user-code sends the user code the provider asked for.
type cibaFlow struct {
	*base
	sessions         *jar
	records          *cibaRecords
	login            *loginFlow // logs a refused login like the callback does
	assertion        *asserter  // signs confirmations (X-Auth-Confirmation)
	cfg              *CIBAConfig
	issuer, clientID string
	prefix           string
}

// CIBA (OpenID Connect Client-Initiated Backchannel Authentication, poll mode): a client
// without a browser — a kiosk, an agent's tool, a CLI — starts a login for a user, the user
// confirms on their phone, the client polls the gateway, and gets a session cookie.
//
// Two more uses follow the bank of seed 004:
//   - user codes: the provider may want the user's code first (CIBA Core 13
//     missing_user_code); the start answers user_code_required and the client sends the code
//     the user typed to <prefix>/ciba/user-code, which asks the provider again with it and
//     the request's id_token_hint (seed 004 step 3);
//   - transaction confirmation: a signed-in browser session starts with from_session and a
//     binding_message ("Pay 120 EUR to ACME"); once the user confirms on the phone, the
//     session's next request carries X-Auth-Confirmation, a JWT signed by the gateway, to
//     the upstream, once. No new session is made.

// CIBAConfig turns on the CIBA endpoints (<path_prefix>/ciba/start, /ciba/poll and
// /ciba/user-code).
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
	defaultCIBAMaxExpiry = 10 * time.Minute
	maxCIBAClaimsBytes   = oidcflow.MaxCIBAClaimsBytes
	maxCIBAUserCodeTries = 5
	// cibaTombstone is how long an expired request is remembered after its expiry, so that
	// its poll answers 410 expired_token rather than 404.
	cibaTombstone = 10 * time.Minute
	// confirmationLifetime is the exp - iat of X-Auth-Confirmation.
	confirmationLifetime = 5 * time.Minute
	headerConfirmation   = "X-Auth-Confirmation"
	minCIBAInterval      = 2 * time.Second
	defaultHintInterval  = time.Minute
	cibaRecordKeyPrefix  = "ciba:"
	cibaHintKeyPrefix    = "ciba-h:" // the id_token_hint of a request, kept for a user code
	cibaClaimsKeyPrefix  = "ciba-c:" // the claims request of a request, kept for a user code
	cibaPollLockPrefix   = "ciba-poll:"
	cibaHintLockPrefix   = "ciba-hint:"
	cibaIPSlotLockPrefix = "ciba-ip:"
)

// fail answers a CIBA endpoint error as JSON, never cacheable.
func (f *cibaFlow) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) error {
	return f.refuser.Refuse(w, r, &web.Refusal{Status: status, Reason: code, Message: msg, Form: web.JSON})
}

// input is the common start of both CIBA endpoints: CIBA on, a POST, a readable body.
// When it returns false it has answered the request.
func (f *cibaFlow) input(w http.ResponseWriter, r *http.Request) (map[string]string, bool, error) {
	web.NoStore(w)
	if f.cfg == nil {
		return nil, false, f.fail(w, r, http.StatusNotFound, "not_found", "CIBA is not enabled on this site (ciba)")
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return nil, false, f.fail(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
	}
	if crossSite(r) {
		// Another site's page must not drive these endpoints in the user's browser: a
		// form posted to ciba/poll would plant a session of the attacker's account
		// (login CSRF), one posted to ciba/start would confirm from the user's session.
		// Browsers say where a request comes from; clients without a browser send neither
		// header and are not affected.
		return nil, false, f.refuse(w, r, http.StatusForbidden, "cross_site", "ciba_cross_site", "CIBA requests from another site's page are refused")
	}
	in, err := readCIBAForm(w, r)
	if err != nil {
		return nil, false, f.fail(w, r, http.StatusBadRequest, "invalid_request", err.Error())
	}
	return in, true, nil
}

// start starts a CIBA login: POST <prefix>/ciba/start with one of login_hint,
// id_token_hint, login_hint_token (or from_session: the session's ID token), and optional
// binding_message, user_code, acr_values, scope, claims (a JSON object) and
// requested_expiry (seconds, capped by max_expiry). It answers {"status":"pending",
// "request_id", "expires_in", "interval"}, or {"status":"user_code_required", "request_id",
// "expires_in"} when the provider wants the user's code first (then POST ciba/user-code).
func (f *cibaFlow) start(w http.ResponseWriter, r *http.Request) error {
	in, ok, err := f.input(w, r)
	if !ok {
		return err
	}
	req := oidcflow.CIBARequest{
		LoginHint: in["login_hint"], IDTokenHint: in["id_token_hint"], LoginHintToken: in["login_hint_token"],
		BindingMessage: in["binding_message"], UserCode: in["user_code"],
		ACRValues: strings.Fields(in["acr_values"]), Scopes: strings.Fields(in["scope"]),
	}
	hint := req.LoginHint + req.IDTokenHint + req.LoginHintToken
	var fromSession *session.Session
	switch fs := in["from_session"]; fs {
	case "", "false":
	case "true":
		if countNonEmpty(req.LoginHint, req.IDTokenHint, req.LoginHintToken) != 0 {
			return f.refuse(w, r, http.StatusBadRequest, "invalid_request", "ciba_invalid_request", "from_session names the user by the session's ID token: send no login_hint, id_token_hint or login_hint_token with it")
		}
		s, err := f.sessions.current(r)
		if errors.Is(err, session.ErrNotFound) {
			return f.refuse(w, r, http.StatusUnauthorized, "session_required", "ciba_no_session", "from_session needs a signed-in session: send the session cookie, or sign in at "+f.prefix+"/login first")
		}
		if err != nil {
			return f.storeUnavailable(w, r, "get", err)
		}
		if s.IDToken == "" {
			return f.refuse(w, r, http.StatusConflict, "id_token_hint_required", "ciba_hint_required", "this session keeps no ID token to name the user to the sign-in service; sign in again, then retry")
		}
		fromSession, req.IDTokenHint = s, s.IDToken
		hint = "\x00sub\x00" + s.Subject
	default:
		return f.refuse(w, r, http.StatusBadRequest, "invalid_request", "ciba_invalid_request", "from_session must be true or false")
	}
	switch n := countNonEmpty(req.LoginHint, req.IDTokenHint, req.LoginHintToken); {
	case n != 1:
		return f.fail(w, r, http.StatusBadRequest, "invalid_request", "exactly one of login_hint, id_token_hint and login_hint_token is required")
	case req.LoginHint != "" && (len(req.LoginHint) > maxCIBAHintBytes || !validLoginHint(req.LoginHint)):
		return f.fail(w, r, http.StatusBadRequest, "invalid_request", "login_hint must be at most 256 printable characters")
	case fromSession == nil && len(req.IDTokenHint) > session.MaxRecordSize:
		// It is kept (encrypted) for a user code, within a record's 4 KiB.
		return f.refuse(w, r, http.StatusBadRequest, "invalid_request", "ciba_invalid_request", "id_token_hint is larger than 4 KiB")
	}
	maxExpiry := f.records.maxExpiry()
	if v, ok := in["requested_expiry"]; ok {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs <= 0 || strings.Trim(v, "0123456789") != "" {
			return f.refuse(w, r, http.StatusBadRequest, "invalid_request", "ciba_invalid_request", "requested_expiry must be a positive whole number of seconds")
		}
		// Longer than max_expiry: max_expiry is asked for (and expires_in says so).
		req.RequestedExpiry = time.Duration(min(secs, int64(maxExpiry/time.Second))) * time.Second
	}
	if c, ok := in["claims"]; ok {
		var m map[string]any
		var b bytes.Buffer
		if json.Unmarshal([]byte(c), &m) != nil || m == nil || json.Compact(&b, []byte(c)) != nil {
			return f.refuse(w, r, http.StatusBadRequest, "invalid_request", "ciba_invalid_request", "claims must be a JSON object (OpenID Connect Core 5.5)")
		}
		if b.Len() > maxCIBAClaimsBytes {
			return f.refuse(w, r, http.StatusBadRequest, "invalid_request", "ciba_invalid_request", "claims is larger than 4 KiB")
		}
		req.Claims = b.Bytes()
	}

	// A request the provider would never get is refused before it spends the user's or the
	// client's start slots, so the corrected retry goes through.
	if err := f.client.CheckCIBARequest(req); err != nil {
		return f.providerError(w, r, "ciba start", err)
	}
	// Abuse limits: one start per user per hint_interval, starts_per_ip per minute per client.
	ctx := r.Context()
	hintTTL := time.Duration(f.cfg.HintInterval)
	if hintTTL <= 0 {
		hintTTL = defaultHintInterval
	}
	if _, ok, err := f.store.Lock(ctx, cibaHintLockPrefix+cibaKey(f.issuer+"\x00"+hint), hintTTL); err != nil {
		return f.storeUnavailable(w, r, "lock", err)
	} else if !ok {
		f.metrics.cibaOutcome("rate_limited", "")
		w.Header().Set("Retry-After", strconv.Itoa(int(hintTTL/time.Second)))
		return f.fail(w, r, http.StatusTooManyRequests, "slow_down", "a sign-in for this user was started moments ago; wait before starting another")
	}
	if ok, err := f.takeIPSlot(ctx, r); err != nil {
		return f.storeUnavailable(w, r, "lock", err)
	} else if !ok {
		f.metrics.cibaOutcome("rate_limited", "")
		w.Header().Set("Retry-After", "60")
		return f.fail(w, r, http.StatusTooManyRequests, "slow_down", "too many sign-ins started from this address; retry in a minute")
	}

	octx, cancel := opContext(r)
	defer cancel()
	ack, err := f.client.BackchannelAuthorize(octx, req)
	var oe *oidcflow.Error
	needCode := errors.As(err, &oe) && oe.Code == oidcflow.CodeCIBARejected && oe.OPError == "missing_user_code"
	if err != nil && !needCode {
		f.metrics.cibaOutcome("failed", "")
		return f.providerError(w, r, "ciba start", err)
	}
	requestID := session.NewID()
	now := f.now()
	rec := cibaRecord{Binding: req.BindingMessage, ACR: strings.Join(req.ACRValues, " "), Scope: strings.Join(req.Scopes, " "),
		Expiry: int64(req.RequestedExpiry / time.Second), Hint: fromSession == nil && req.IDTokenHint != "", Claims: len(req.Claims) > 0}
	if fromSession != nil {
		rec.Session = fromSession.ID
	}
	var answer map[string]any
	if needCode {
		// The provider wants the user's code (CIBA Core 13): the client asks the user and
		// sends it to ciba/user-code within the request's lifetime.
		life := maxExpiry
		if req.RequestedExpiry > 0 {
			life = req.RequestedExpiry
		}
		rec.Deadline = now.Add(maxExpiry).Unix()
		rec.Expires = min(now.Add(life).Unix(), rec.Deadline)
		answer = map[string]any{"status": "user_code_required", "request_id": requestID, "expires_in": int64(life / time.Second)}
	} else {
		// The provider's numbers, within reason: a pending login lives at most max_expiry,
		// and the provider is never polled more often than every minCIBAInterval.
		f.records.acknowledge(&rec, ack, now)
		answer = map[string]any{"status": "pending", "request_id": requestID, "expires_in": int64(min(ack.ExpiresIn, maxExpiry) / time.Second), "interval": rec.Interval}
	}
	var idTokenHint string
	if rec.Hint {
		idTokenHint = req.IDTokenHint
	}
	if err := f.records.put(ctx, requestID, rec, now, idTokenHint, req.Claims); err != nil {
		return f.storeUnavailable(w, r, "record", err)
	}
	outcome, reason := "started", "ciba_started"
	if needCode {
		outcome, reason = "user_code_required", "ciba_user_code_required"
	}
	f.metrics.cibaOutcome(outcome, "")
	f.logger.Info("CIBA login started", zap.String("reason", reason), zap.String("request_hash", sessionHash(requestID)),
		zap.Bool("from_session", fromSession != nil), zap.Int64("expires_in", rec.Expires-now.Unix()), zap.Int64("interval", rec.Interval))
	web.WriteJSON(w, http.StatusOK, answer)
	return nil
}

// refuse answers a refusal of a CIBA endpoint and logs its reason code.
func (f *cibaFlow) refuse(w http.ResponseWriter, r *http.Request, status int, code, reason, msg string) error {
	f.logger.Info("CIBA request refused: "+msg, zap.String("reason", reason), zap.Int("status", status))
	return f.fail(w, r, status, code, msg)
}

// takeIPSlot takes one of starts_per_ip one-minute slots for the request's client IP.
func (f *cibaFlow) takeIPSlot(ctx context.Context, r *http.Request) (bool, error) {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if ip == "" {
		ip, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	n := f.cfg.StartsPerIP
	if n <= 0 {
		n = defaultStartsPerIP
	}
	for i := range n {
		_, ok, err := f.store.Lock(ctx, cibaIPSlotLockPrefix+cibaKey(ip)+":"+strconv.Itoa(i), time.Minute)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// providerError maps a provider failure of a CIBA call.
func (f *cibaFlow) providerError(w http.ResponseWriter, r *http.Request, what string, err error) error {
	code := oidcflow.ReasonCode(err)
	var oe *oidcflow.Error
	opErr := ""
	if errors.As(err, &oe) {
		opErr = oe.OPError
	}
	f.logger.Warn(what+": the provider refused or failed", zap.String("reason", code), zap.String("op_error", opErr), zap.Error(err))
	switch {
	case oidcflow.IsTemporary(err):
		w.Header().Set("Retry-After", "5")
		return f.fail(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", "the sign-in service did not answer properly; retry")
	case code == oidcflow.CodeCIBAUnsupported:
		return f.fail(w, r, http.StatusNotImplemented, "not_supported", "the sign-in service does not offer CIBA (poll mode)")
	case code == oidcflow.CodeCIBAInvalid:
		return f.fail(w, r, http.StatusBadRequest, "invalid_request", err.Error())
	case code == oidcflow.CodeCIBARejected && opErr == "access_denied":
		return f.fail(w, r, http.StatusForbidden, "access_denied", "the sign-in service refused this request")
	case code == oidcflow.CodeCIBARejected:
		return f.fail(w, r, http.StatusBadRequest, opErr, "the sign-in service refused this request ("+opErr+")")
	default:
		return f.fail(w, r, http.StatusBadGateway, "bad_provider_response", "the sign-in service answered in a way that cannot be used")
	}
}

// poll is POST <prefix>/ciba/poll with request_id: {"status":"pending"} until the user
// decides, then the session (cookie) and the profile — or, for a from_session request,
// {"status":"confirmed"} and the confirmation waiting in that session — or 403 (denied) /
// 410 (expired). {"status":"user_code_required"} while the provider waits for the user's
// code. The provider is polled at most once per interval across all instances.
func (f *cibaFlow) poll(w http.ResponseWriter, r *http.Request) error {
	in, ok, err := f.input(w, r)
	if !ok {
		return err
	}
	requestID := in["request_id"]
	if !session.ValidID(requestID) {
		return f.fail(w, r, http.StatusBadRequest, "invalid_request", "request_id is missing or malformed")
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
	pending := func(rec *cibaRecord, slowDown bool) error {
		if rec.AuthReqID == "" {
			web.WriteJSON(w, http.StatusOK, map[string]any{"status": "user_code_required"})
			return nil
		}
		wait := max(time.UnixMilli(rec.NextPoll).Sub(f.now()), 0)
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		f.metrics.cibaOutcome("pending", "")
		web.WriteJSON(w, http.StatusOK, map[string]any{"status": "pending", "interval": rec.Interval, "slow_down": slowDown})
		return nil
	}
	if rec.AuthReqID == "" {
		return pending(rec, false) // nothing to poll before the user code
	}
	// One poller per transaction across instances; the others answer "pending" at once.
	lockKey := cibaPollLockPrefix + key
	token, ok, err := f.store.Lock(ctx, lockKey, cibaPollLease)
	if err != nil {
		return f.storeUnavailable(w, r, "lock", err)
	}
	if !ok {
		return pending(rec, false)
	}
	defer func() { _ = f.store.Unlock(context.WithoutCancel(ctx), lockKey, token) }()
	if rec, err = f.records.get(ctx, key); err != nil { // recheck under the lock
		return f.lookupError(w, r, err)
	}
	if f.records.expired(ctx, requestID, rec) {
		return f.expiredAnswer(w, r)
	}
	now := f.now()
	if rec.AuthReqID == "" || now.UnixMilli() < rec.NextPoll {
		return pending(rec, false) // the provider's interval is kept for every caller
	}
	octx, cancel := opContext(r)
	defer cancel()
	login, err := f.client.PollCIBA(octx, rec.AuthReqID)
	now = f.now()
	done := func() { f.records.end(ctx, requestID, rec, false) }
	switch code := oidcflow.ReasonCode(err); {
	case err == nil:
	case code == oidcflow.CodeCIBAPending, code == oidcflow.CodeCIBASlowDown || oidcflow.IsTemporary(err):
		slow := code == oidcflow.CodeCIBASlowDown
		if slow {
			rec.Interval += int64(cibaSlowDownStep / time.Second) // kept for every later poll
		}
		rec.NextPoll = now.Add(time.Duration(rec.Interval) * time.Second).UnixMilli()
		if perr := f.records.put(ctx, requestID, *rec, now, "", nil); perr != nil {
			return f.storeUnavailable(w, r, "record", perr)
		}
		if oidcflow.IsTemporary(err) {
			f.metrics.cibaOutcome("failed", "")
			return f.providerError(w, r, "ciba poll", err)
		}
		return pending(rec, slow)
	case code == oidcflow.CodeCIBADenied:
		done()
		f.metrics.cibaOutcome("denied", "")
		f.logger.Info("CIBA login denied by the user", zap.String("reason", "ciba_denied"), zap.String("request_hash", sessionHash(requestID)))
		return f.fail(w, r, http.StatusForbidden, "access_denied", "the user declined the sign-in")
	case code == oidcflow.CodeCIBAExpired:
		f.records.end(ctx, requestID, rec, true)
		return f.expiredAnswer(w, r)
	default:
		// A terminal answer (invalid_request, invalid_grant, a token that does not verify):
		// never poll this auth_req_id again (threat model CIBA-06, CIBA-07).
		done()
		f.metrics.cibaOutcome("failed", code)
		f.logger.Warn("CIBA login failed", zap.String("reason", code), zap.Error(err))
		if code == oidcflow.CodeCIBAFailed {
			return f.fail(w, r, http.StatusBadRequest, "ciba_failed", "the sign-in service ended this sign-in request")
		}
		return f.fail(w, r, http.StatusUnauthorized, "login_failed", "the sign-in could not be verified, so it was refused")
	}
	done()
	if rec.Session != "" {
		return f.confirm(w, r, requestID, rec, login)
	}
	s, cbErr := f.sessions.create(w, r, login, nil, "")
	if cbErr != nil {
		f.metrics.cibaOutcome("failed", cbErr.reason)
		f.login.logRefusal(cbErr)
		return f.fail(w, r, cbErr.status, cbErr.reason, cbErr.msg)
	}
	f.logger.Info("login", zap.String("reason", "login_ok"), zap.String("method", "ciba"), zap.String("sub_hash", sessionHash(login.Subject)),
		zap.String("session_hash", sessionHash(s.ID)))
	f.metrics.cibaOutcome("authenticated", "")
	f.event(eventLogin, map[string]any{"reason": "login_ok", "method": "ciba", "sub_hash": sessionHash(login.Subject), "session_hash": sessionHash(s.ID)})
	web.WriteJSON(w, http.StatusOK, map[string]any{"status": "authenticated", "profile": f.sessions.render(s).profile})
	return nil
}

// lookupError answers a failed read of a request's record.
func (f *cibaFlow) lookupError(w http.ResponseWriter, r *http.Request, err error) error {
	if errors.Is(err, session.ErrNotFound) {
		return f.fail(w, r, http.StatusNotFound, "unknown_request", "no pending sign-in has this request_id (unknown or finished)")
	}
	return f.storeUnavailable(w, r, "record", err)
}

func (f *cibaFlow) expiredAnswer(w http.ResponseWriter, r *http.Request) error {
	f.metrics.cibaOutcome("expired", "")
	return f.fail(w, r, http.StatusGone, "expired_token", "the sign-in request expired before the user confirmed it; start a new one")
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
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
			return nil, errors.New("the body is not a JSON object")
		}
		for k, rv := range raw {
			if k == "claims" {
				// The claims request is a JSON object, passed on as it is (compacted).
				if t := bytes.TrimSpace(rv); len(t) == 0 || t[0] != '{' {
					return nil, errors.New("claims must be a JSON object (OpenID Connect Core 5.5)")
				}
				var b bytes.Buffer
				if err := json.Compact(&b, rv); err != nil {
					return nil, errors.New("claims must be a JSON object (OpenID Connect Core 5.5)")
				}
				out[k] = b.String()
				continue
			}
			dec := json.NewDecoder(bytes.NewReader(rv))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				return nil, errors.New("the body is not a JSON object")
			}
			switch v := v.(type) {
			case string:
				out[k] = v
			case json.Number: // requested_expiry
				out[k] = v.String()
			case bool: // from_session
				out[k] = strconv.FormatBool(v)
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

// crossSite reports a browser request sent by another site's page: Sec-Fetch-Site
// cross-site, or an Origin header ("null" included) whose host is not the request's.
func crossSite(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return true
	}
	origin, ok := r.Header["Origin"]
	if !ok || len(origin) == 0 {
		return false
	}
	u, err := url.Parse(origin[0])
	return err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host)
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
