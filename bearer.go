package trustgate

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/trust"
)

// HeaderScopes carries the scopes granted to a bearer access token, space-separated as in
// the token's scope claim (a scope name never contains a space, but may contain a comma).
// It is sent only for requests authenticated by a bearer token.
const HeaderScopes = "X-Auth-Scopes"

// Bearer defaults.
const (
	defaultBearerCacheSize = 10000
	// bearerCacheMaxTTL bounds how long a verified token is served from the cache without
	// a new verification (it never outlives the token's exp).
	bearerCacheMaxTTL = 5 * time.Minute
)

// BearerConfig lets APIs authenticate with JWT access tokens of the same provider
// (`Authorization: Bearer <JWT>`) instead of a session cookie. A request that sends a
// Bearer authorization is judged by its token alone: a token that does not verify gets 401
// with `WWW-Authenticate: Bearer error="invalid_token"`, never a cookie fallback or a
// redirect. A request without one is handled as before (cookie session).
//
// The token must be a compact JWS signed with the provider's keys (its JWKS, the ID token
// algorithm allow-list: never none or HS*), with iss the issuer, aud containing one of
// Audiences, exp not passed and nbf not in the future (with clock_leeway), a sub, and no
// nonce (an ID token is not an access token). Tokens over 16 KiB are refused unparsed.
type BearerConfig struct {
	// Audiences: the token's aud must contain at least one of these (the API's resource
	// identifier at the provider). Required; placeholders such as {env.API_AUDIENCE} are
	// expanded at start. Caddyfile: audience <aud>...
	Audiences []string `json:"audiences,omitempty"`
	// RequireATJWT requires the JOSE header typ at+jwt (RFC 9068 JWT access tokens).
	// Without it, typ may also be absent or JWT. Caddyfile: require_at_jwt
	RequireATJWT bool `json:"require_at_jwt,omitempty"`
	// CacheSize bounds the verified tokens kept in memory (keyed by a SHA-256 of the token,
	// each kept at most 5 minutes and never past its exp). Default: 10000.
	CacheSize int `json:"cache_size,omitempty"`

	cache *bearerCache
}

// unmarshalBearer parses
//
//	bearer {
//		audience       <aud>...
//		require_at_jwt
//		cache_size     <n>
//	}
func (h *Handler) unmarshalBearer(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	b := new(BearerConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "audience":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("bearer audience needs at least one value")
			}
			b.Audiences = append(b.Audiences, args...)
		case "require_at_jwt":
			if d.NextArg() {
				return d.ArgErr()
			}
			b.RequireATJWT = true
		case "cache_size":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 1 {
				return d.Errf("bearer cache_size must be a positive integer")
			}
			b.CacheSize = n
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized bearer subdirective '%s'", d.Val())
		}
	}
	if len(b.Audiences) == 0 {
		return d.Errf("bearer needs at least one audience")
	}
	h.Bearer = b
	return nil
}

// provisionBearer checks the bearer configuration and makes its cache.
func (h *Handler) provisionBearer() error {
	b := h.Bearer
	if b == nil {
		return nil
	}
	if len(b.Audiences) == 0 {
		return errors.New("bearer: at least one audience is required")
	}
	repl := caddy.NewReplacer() // {env.*}, {file.*}
	for i, a := range b.Audiences {
		a = repl.ReplaceAll(a, "")
		if a == "" || strings.TrimSpace(a) != a {
			return errors.New("bearer: an audience is empty (after expanding placeholders) or has leading or trailing spaces")
		}
		b.Audiences[i] = a
	}
	if b.CacheSize < 0 {
		return errors.New("bearer: cache_size must not be negative")
	}
	if b.CacheSize == 0 {
		b.CacheSize = defaultBearerCacheSize
	}
	b.cache = &bearerCache{m: make(map[[32]byte]*bearerEntry), max: b.CacheSize}
	return nil
}

// bearerEntry is a verified token with its rendering, valid until until.
type bearerEntry struct {
	until  time.Time
	st     *authState
	scopes string
}

// bearerCache maps SHA-256(token) to its verification. Only verified tokens enter it.
type bearerCache struct {
	mu  sync.RWMutex
	m   map[[32]byte]*bearerEntry
	max int
}

func (c *bearerCache) get(k [32]byte, now time.Time) *bearerEntry {
	c.mu.RLock()
	e := c.m[k]
	c.mu.RUnlock()
	if e == nil || !now.Before(e.until) {
		return nil
	}
	return e
}

func (c *bearerCache) put(k [32]byte, e *bearerEntry, now time.Time) {
	c.mu.Lock()
	if len(c.m) >= c.max {
		// Expired entries first, then an arbitrary eighth (map order is random).
		for key, old := range c.m {
			if !now.Before(old.until) {
				delete(c.m, key)
			}
		}
		n := c.max / 8
		for key := range c.m {
			if len(c.m) < c.max || n <= 0 {
				break
			}
			delete(c.m, key)
			n--
		}
	}
	c.m[k] = e
	c.mu.Unlock()
}

// bearerToken returns the token of a Bearer authorization. ok is false when the request
// sends no Authorization with the Bearer scheme (then it is handled as before). Several
// Authorization headers of which one is Bearer, or a malformed one, give ok with a
// non-empty problem.
func bearerToken(auth []string) (token, problem string, ok bool) {
	isBearer := func(v string) bool {
		return len(v) >= 6 && strings.EqualFold(v[:6], "bearer") && (len(v) == 6 || v[6] == ' ' || v[6] == '\t')
	}
	found := false
	for _, v := range auth {
		if isBearer(strings.TrimLeft(v, " \t")) {
			found = true
		}
	}
	if !found {
		return "", "", false
	}
	if len(auth) != 1 {
		return "", "the request has more than one Authorization header", true
	}
	v := strings.TrimLeft(auth[0], " \t")
	if len(v) > oidcflow.MaxAccessTokenBytes+16 {
		return "", "the access token is longer than " + strconv.Itoa(oidcflow.MaxAccessTokenBytes) + " bytes", true
	}
	token = strings.Trim(v[6:], " \t")
	if token == "" || strings.ContainsAny(token, " \t,") {
		return "", "the Authorization header is not of the form Bearer <token>", true
	}
	return token, "", true
}

// tokenHash is the cache key of a token: its SHA-256. A typical token is hashed from a copy
// on the stack, which keeps the warm path free of a heap allocation the size of the token.
func tokenHash(token string) [32]byte {
	var buf [4096]byte
	if len(token) <= len(buf) {
		n := copy(buf[:], token)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(token))
}

// serveBearer authenticates a request by its bearer access token.
func (h *Handler) serveBearer(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, auth []string) (bool, error) {
	token, problem, ok := bearerToken(auth)
	if !ok {
		return false, nil
	}
	if problem != "" {
		h.bearerInvalid(w, problem)
		return true, nil
	}
	sum := tokenHash(token)
	now := h.now()
	e := h.Bearer.cache.get(sum, now)
	if e == nil {
		ctx, cancel := opContext(r)
		at, err := h.client.VerifyAccessToken(ctx, token, oidcflow.AccessTokenOptions{
			Audiences:    h.Bearer.Audiences,
			RequireATJWT: h.Bearer.RequireATJWT,
		})
		cancel()
		if err != nil {
			if oidcflow.IsTemporary(err) || r.Context().Err() != nil {
				code := oidcflow.ReasonCode(err)
				h.logger.Error("bearer token cannot be verified now", zap.String("reason", code), zap.Error(err))
				h.serviceUnavailable(w, r, max(h.client.RetryAfter(), 5*time.Second), code,
					"The access token cannot be checked right now (the identity provider is not reachable). Please retry in a few seconds.")
				return true, nil
			}
			// The message names the failed check, never the token.
			h.logger.Info("bearer token refused", zap.String("reason", oidcflow.CodeAccessToken), zap.Error(err))
			msg := "the access token is not valid"
			if oe, ok := errors.AsType[*oidcflow.Error](err); ok && oe.Code == oidcflow.CodeAccessToken {
				msg = oe.Err.Error()
			}
			h.bearerInvalid(w, msg)
			return true, nil
		}
		e = h.renderBearer(at, now)
		h.Bearer.cache.put(sum, e, now)
	}
	return true, h.serveBearerAuthenticated(w, r, next, e)
}

// renderBearer renders the headers of a verified access token, as for a session, plus
// X-Auth-Scopes.
func (h *Handler) renderBearer(at *oidcflow.AccessToken, now time.Time) *bearerEntry {
	prof := trust.NewProfile(at.Claims, h.trustOpts)
	hs, dropped := prof.Headers(h.trustOpts)
	for _, d := range dropped {
		h.logger.Warn("identity header not sent: over the size limit (values are never cut)",
			zap.String("reason", d.Reason), zap.String("header", d.Name), zap.Int("bytes", d.Bytes),
			zap.Int("max_header_bytes", h.trustOpts.MaxHeaderBytes), zap.Int("max_total_header_bytes", h.trustOpts.MaxTotalHeaderBytes))
	}
	rd := &rendered{
		opts:         h.trustOpts,
		profile:      prof,
		headers:      make([]trust.Header, 0, len(hs)+1),
		placeholders: prof.Placeholders(),
		expires:      strconv.FormatInt(at.Expiry.Unix(), 10),
	}
	if prof.User == "" {
		rd.placeholders["id"] = at.Subject
	}
	rd.provider = rd.placeholder
	for _, hd := range hs {
		rd.headers = append(rd.headers, trust.Header{Name: http.CanonicalHeaderKey(hd.Name), Value: hd.Value})
		rd.headerBytes += len(hd.Name) + len(hd.Value) + 4
	}
	scopes := strings.Join(at.Scopes, " ")
	if scopes != "" {
		// Within max_header_bytes and the total budget like the other identity headers, or
		// not sent at all (never cut); a control character (a forged scope) is never sent.
		maxOne, maxTotal := cmp.Or(h.trustOpts.MaxHeaderBytes, trust.DefaultMaxHeaderBytes), cmp.Or(h.trustOpts.MaxTotalHeaderBytes, trust.DefaultMaxTotalHeaderBytes)
		n := len(HeaderScopes) + len(scopes) + 4
		switch {
		case strings.ContainsFunc(scopes, func(c rune) bool { return c < 0x20 || c == 0x7f }):
		case len(scopes) > maxOne || rd.headerBytes+n > maxTotal:
			reason := trust.DropValueTooLong
			if len(scopes) <= maxOne {
				reason = trust.DropTotalTooLarge
			}
			h.logger.Warn("identity header not sent: over the size limit (values are never cut)",
				zap.String("reason", reason), zap.String("header", HeaderScopes), zap.Int("bytes", len(scopes)),
				zap.Int("max_header_bytes", maxOne), zap.Int("max_total_header_bytes", maxTotal))
		default:
			rd.headers = append(rd.headers, trust.Header{Name: HeaderScopes, Value: scopes})
			rd.headerBytes += n
		}
	}
	// Never past exp: the leeway is for clock skew at verification, not for the cache.
	until := now.Add(bearerCacheMaxTTL)
	if at.Expiry.Before(until) {
		until = at.Expiry
	}
	return &bearerEntry{
		until:  until,
		st:     &authState{h: h, rd: rd, scopes: at.Scopes, bearer: true},
		scopes: scopes,
	}
}

func (h *Handler) serveBearerAuthenticated(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, e *bearerEntry) error {
	rd := e.st.rd
	caddyhttp.SetVar(r.Context(), authVar, e.st)
	if h.enforce(w, r, h.policy, e.st) {
		return nil
	}
	var assertion string
	if h.Assertion != nil {
		var err error
		if assertion, err = h.assertionFor(r, rd); err != nil {
			h.logger.Error("cannot sign the identity assertion", zap.String("reason", "assertion_failed"), zap.Error(err))
			writeJSON(w, http.StatusInternalServerError, apiError{Error: "assertion_failed", Message: "Your identity could not be passed on to the application. Please try again; the site's administrator has been told."})
			return nil
		}
	}
	setIdentityHeaders(r, rd.headers, assertion)
	// The access token is the client's credential for the gateway; like every token it
	// does not reach the upstream, which gets the verified identity instead.
	r.Header.Del("Authorization")
	h.stripGatewayCookies(r)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(rd.provider)
	}
	return next.ServeHTTP(w, r)
}

// bearerError is the JSON body of a refused bearer request.
type bearerError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Scope   string `json:"scope,omitempty"`
}

// bearerInvalid answers 401 invalid_token (RFC 6750 §3.1): no cookie, no redirect.
func (h *Handler) bearerInvalid(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="trustgate", error="invalid_token", error_description="`+authParam(msg)+`"`)
	writeJSON(w, http.StatusUnauthorized, bearerError{Error: "bearer_invalid", Message: msg})
}

// insufficientScope answers 403 insufficient_scope (RFC 6750 §3.1) for a bearer request.
func (h *Handler) insufficientScope(w http.ResponseWriter, p *trust.Policy, u *trust.Unmet) {
	scope := strings.Join(p.Scopes, " ")
	w.Header().Set("WWW-Authenticate", `Bearer realm="trustgate", error="insufficient_scope", error_description="`+authParam(u.Reason)+`", scope="`+authParam(scope)+`"`)
	writeJSON(w, http.StatusForbidden, bearerError{Error: "insufficient_scope", Message: u.Reason, Scope: scope})
}

// authParam makes s safe inside a quoted WWW-Authenticate parameter: RFC 6750 §3 allows
// %x20-21 / %x23-5B / %x5D-7E in error_description and scope.
func authParam(s string) string {
	b := make([]byte, 0, min(len(s), 200))
	for i := 0; i < len(s) && len(b) < 200; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			c = '\''
			if s[i] < 0x20 || s[i] > 0x7e {
				c = ' '
			}
		}
		b = append(b, c)
	}
	return string(b)
}
