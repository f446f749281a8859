package trustgate

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/internal/web"
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
	// bearerCacheMaxTTL is the default cache_ttl: how long a verified token is served from
	// the cache without a new verification (it never outlives the token's exp).
	bearerCacheMaxTTL = 5 * time.Minute
	// bearerRefusedTTL is how long a token the provider's introspection refused is refused
	// from memory, so that a client repeating a dead token does not call the provider on
	// every request.
	bearerRefusedTTL = 10 * time.Second
	// maxRefusedTokens bounds the refused tokens remembered.
	maxRefusedTokens = 1000
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
	// Introspection judges tokens at the provider's RFC 7662 introspection endpoint (from
	// discovery), authenticated as the gateway's client: "opaque" for tokens that are not a
	// JWT (a JWT is still verified locally), "all" for every token (a revoked JWT is then
	// refused too). "" (default): no introspection, and an opaque token is refused.
	// Caddyfile: introspection [opaque|all]
	Introspection string `json:"introspection,omitempty"`
	// CacheTTL is how long a verified token is served from memory without asking again
	// (never past its exp): the longest a token revoked at the provider is still accepted
	// when introspection is on. Default: 5m. Caddyfile: cache_ttl <duration>
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`
	// CacheSize bounds the verified tokens kept in memory (each kept at most CacheTTL and
	// never past its exp). Default: 10000. Tokens introspection refused are kept apart, at
	// most 1000, so that a flood of bad tokens cannot push good ones out.
	CacheSize int `json:"cache_size,omitempty"`

	cache   *bearerCache
	refused *bearerCache
	// calls makes concurrent requests with the same token share one introspection call.
	calls singleflight.Group
}

// Introspection modes.
const (
	introspectOpaque = "opaque"
	introspectAll    = "all"
)

// unmarshalBearer parses
//
//	bearer {
//		audience       <aud>...
//		require_at_jwt
//		introspection  [opaque|all]
//		cache_ttl      <duration>
//		cache_size     <n>
//	}
func unmarshalBearer(d *caddyfile.Dispenser) (*BearerConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	b := new(BearerConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "audience":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.Errf("bearer audience needs at least one value")
			}
			b.Audiences = append(b.Audiences, args...)
		case "require_at_jwt":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			b.RequireATJWT = true
		case "introspection":
			b.Introspection = introspectOpaque
			if d.NextArg() {
				b.Introspection = d.Val()
				if b.Introspection != introspectOpaque && b.Introspection != introspectAll {
					return nil, d.Errf("bearer introspection must be opaque (the default) or all, not %q", d.Val())
				}
			}
			if d.NextArg() {
				return nil, d.ArgErr()
			}
		case "cache_ttl":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return nil, d.Errf("bearer cache_ttl must be a positive duration such as 1m")
			}
			b.CacheTTL = caddy.Duration(dur)
			if d.NextArg() {
				return nil, d.ArgErr()
			}
		case "cache_size":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 1 {
				return nil, d.Errf("bearer cache_size must be a positive integer")
			}
			b.CacheSize = n
			if d.NextArg() {
				return nil, d.ArgErr()
			}
		default:
			return nil, d.Errf("unrecognized bearer subdirective '%s'", d.Val())
		}
	}
	if len(b.Audiences) == 0 {
		return nil, d.Errf("bearer needs at least one audience")
	}
	return b, nil
}

// provisionBearer checks the bearer configuration and makes its cache.
func (b *BearerConfig) provision() error {
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
	if b.CacheTTL < 0 {
		return errors.New("bearer: cache_ttl must not be negative")
	}
	if b.CacheTTL == 0 {
		b.CacheTTL = caddy.Duration(bearerCacheMaxTTL)
	}
	switch b.Introspection {
	case "", introspectOpaque, introspectAll:
	default:
		return fmt.Errorf("bearer: introspection must be opaque or all, not %q", b.Introspection)
	}
	if b.CacheSize == 0 {
		b.CacheSize = defaultBearerCacheSize
	}
	b.cache = &bearerCache{m: make(map[string]*bearerEntry), max: b.CacheSize}
	b.refused = &bearerCache{m: make(map[string]*bearerEntry), max: min(b.CacheSize, maxRefusedTokens)}
	return nil
}

// bearerEntry is a verified token with its rendering, valid until until; or, with refused
// set, a token that introspection refused (st is then nil).
type bearerEntry struct {
	until   time.Time
	st      *authState
	scopes  string
	refused string
}

// bearerCache maps a verified token to its verification, as the session cookie's decode
// cache maps a cookie value: the warm path is one map lookup, with no hashing of its own.
// Only verified tokens enter under their own value (so the cache cannot be filled with
// garbage, and an entry's size is bounded by what the provider issues). Tokens that
// introspection refused are remembered in a second, smaller one, under refusedKey (33
// bytes, whatever the token's size).
type bearerCache struct {
	mu  sync.RWMutex
	m   map[string]*bearerEntry
	max int
}

// refusedKey is the cache key of a refused token: a NUL (which no header value carries, so
// no token can be this key) and the token's SHA-256.
func refusedKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "\x00" + string(sum[:])
}

func (c *bearerCache) get(k string, now time.Time) *bearerEntry {
	c.mu.RLock()
	e := c.m[k]
	c.mu.RUnlock()
	if e == nil || !now.Before(e.until) {
		return nil
	}
	return e
}

func (c *bearerCache) put(k string, e *bearerEntry, now time.Time) {
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
	if token == "" {
		return "", bearerFormProblem, true
	}
	return token, "", true
}

// bearerFormProblem is the refusal of an Authorization header that is not Bearer <token>.
const bearerFormProblem = "the Authorization header is not of the form Bearer <token>"

// tokenFormProblem is bearerFormProblem when token has a space, tab or comma (two tokens,
// or auth parameters), "" otherwise. It runs on a cache miss only: a cached token passed it.
func tokenFormProblem(token string) string {
	if strings.ContainsAny(token, " \t,") {
		return bearerFormProblem
	}
	return ""
}

// bearerGate lets API requests in by their `Authorization: Bearer` access token (a JWT
// verified with the provider's keys, or an opaque token introspected), with the same
// identity headers as a session and the route policy's scope rules.
type bearerGate struct {
	*base
	sessions  *jar          // the rendering options (trust.Options)
	gate      *policyGate   // the route policy, with require scope
	assertion *asserter     // X-Auth-Assertion, when configured
	cfg       *BearerConfig // audiences, introspection, caches
}

// bearerExpires is {http.auth.oidc.session_expires} of a bearer request: the token's exp in
// Unix seconds, or "" for an introspected token without one.
func bearerExpires(exp time.Time) string {
	if exp.IsZero() {
		return ""
	}
	return strconv.FormatInt(exp.Unix(), 10)
}

// serve authenticates a request by its bearer access token.
func (g *bearerGate) serve(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, auth []string) (bool, error) {
	token, problem, ok := bearerToken(auth)
	if !ok {
		return false, nil
	}
	if problem != "" {
		return true, g.invalid(w, r, problem)
	}
	now := g.now()
	b := g.cfg
	e := b.cache.get(token, now)
	if e == nil {
		if problem := tokenFormProblem(token); problem != "" {
			g.metrics.bearerResult("refused")
			return true, g.invalid(w, r, problem)
		}
		e = b.refused.get(refusedKey(token), now)
	}
	if e == nil {
		var err error
		if e, err = g.verify(r, token, now); err != nil {
			code := oidcflow.ReasonCode(err)
			if code != oidcflow.CodeAccessToken {
				// Not judged: the provider's keys or introspection endpoint failed, or the
				// gateway cannot introspect at all (a configuration fault).
				g.logger.Error("bearer token cannot be checked now", zap.String("reason", code), zap.Error(err))
				g.metrics.bearerResult("unavailable")
				return true, g.serviceUnavailable(w, r, max(g.client.RetryAfter(), 5*time.Second), code,
					"The access token cannot be checked right now (the identity provider is not reachable). Please retry in a few seconds.")
			}
			// The message names the failed check, never the token.
			g.logger.Info("bearer token refused", zap.String("reason", code), zap.Error(err))
			msg := "the access token is not valid"
			if oe, ok := errors.AsType[*oidcflow.Error](err); ok {
				msg = oe.Err.Error()
			}
			g.metrics.bearerResult("refused")
			return true, g.invalid(w, r, msg)
		}
	}
	if e.refused != "" {
		g.metrics.bearerResult("refused")
		return true, g.invalid(w, r, e.refused)
	}
	g.metrics.bearerResult("accepted")
	return true, g.forward(w, r, next, e)
}

// verify judges a token that is not in the cache and caches the verdict: a JWT is
// verified with the provider's keys, unless introspection is "all"; an opaque token is
// introspected when introspection is on. Concurrent requests with the same token share one
// introspection call, and a token introspection refused is refused from memory for
// bearerRefusedTTL. The error is the failure of a JWT check or of the provider.
func (g *bearerGate) verify(r *http.Request, token string, now time.Time) (*bearerEntry, error) {
	b := g.cfg
	opts := oidcflow.AccessTokenOptions{Audiences: b.Audiences, RequireATJWT: b.RequireATJWT}
	introspect := b.Introspection == introspectAll || b.Introspection == introspectOpaque && oidcflow.IsOpaqueToken(token)
	if !introspect {
		ctx, cancel := opContext(r)
		defer cancel()
		at, err := g.client.VerifyAccessToken(ctx, token, opts)
		if err != nil {
			return nil, err
		}
		e := g.render(at, now)
		b.cache.put(token, e, now)
		return e, nil
	}
	ch := b.calls.DoChan(token, func() (any, error) {
		// Shared by every request waiting for this token: not cancelled with the first one.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), opTimeout)
		defer cancel()
		at, err := g.client.IntrospectAccessToken(ctx, token, opts)
		if err != nil {
			if oidcflow.ReasonCode(err) != oidcflow.CodeAccessToken {
				return nil, err
			}
			e := &bearerEntry{until: now.Add(bearerRefusedTTL), refused: err.(*oidcflow.Error).Err.Error()}
			b.refused.put(refusedKey(token), e, now)
			g.logger.Info("bearer token refused", zap.String("reason", oidcflow.CodeAccessToken), zap.Error(err))
			return e, nil
		}
		e := g.render(at, now)
		b.cache.put(token, e, now)
		return e, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*bearerEntry), nil
	case <-r.Context().Done():
		return nil, &oidcflow.Error{Code: oidcflow.CodeIntrospectionFailed, Temporary: true, Err: r.Context().Err()}
	}
}

// render renders the headers of a verified access token, as for a session, plus
// X-Auth-Scopes.
func (g *bearerGate) render(at *oidcflow.AccessToken, now time.Time) *bearerEntry {
	prof := trust.NewProfile(at.Claims, g.sessions.trustOpts)
	hs, dropped := prof.Headers(g.sessions.trustOpts)
	for _, d := range dropped {
		g.logger.Warn("identity header not sent: over the size limit (values are never cut)",
			zap.String("reason", d.Reason), zap.String("header", d.Name), zap.Int("bytes", d.Bytes),
			zap.Int("max_header_bytes", g.sessions.trustOpts.MaxHeaderBytes), zap.Int("max_total_header_bytes", g.sessions.trustOpts.MaxTotalHeaderBytes))
	}
	rd := &rendered{
		opts:         g.sessions.trustOpts,
		profile:      prof,
		headers:      make([]trust.Header, 0, len(hs)+1),
		placeholders: prof.Placeholders(),
		expires:      bearerExpires(at.Expiry),
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
		maxOne, maxTotal := cmp.Or(g.sessions.trustOpts.MaxHeaderBytes, trust.DefaultMaxHeaderBytes), cmp.Or(g.sessions.trustOpts.MaxTotalHeaderBytes, trust.DefaultMaxTotalHeaderBytes)
		n := len(HeaderScopes) + len(scopes) + 4
		switch {
		case strings.ContainsFunc(scopes, func(c rune) bool { return c < 0x20 || c == 0x7f }):
		case len(scopes) > maxOne || rd.headerBytes+n > maxTotal:
			reason := trust.DropValueTooLong
			if len(scopes) <= maxOne {
				reason = trust.DropTotalTooLarge
			}
			g.logger.Warn("identity header not sent: over the size limit (values are never cut)",
				zap.String("reason", reason), zap.String("header", HeaderScopes), zap.Int("bytes", len(scopes)),
				zap.Int("max_header_bytes", maxOne), zap.Int("max_total_header_bytes", maxTotal))
		default:
			rd.headers = append(rd.headers, trust.Header{Name: HeaderScopes, Value: scopes})
			rd.headerBytes += n
		}
	}
	// Never past exp: the leeway is for clock skew at verification, not for the cache. An
	// introspected token without exp is kept for cache_ttl.
	until := now.Add(time.Duration(g.cfg.CacheTTL))
	if !at.Expiry.IsZero() && at.Expiry.Before(until) {
		until = at.Expiry
	}
	return &bearerEntry{
		until:  until,
		st:     &authState{gate: g.gate, rd: rd, scopes: at.Scopes, bearer: true},
		scopes: scopes,
	}
}

func (g *bearerGate) forward(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, e *bearerEntry) error {
	rd := e.st.rd
	caddyhttp.SetVar(r.Context(), authVar, e.st)
	if done, err := g.gate.enforce(w, r, g.gate.own, e.st); done {
		return err
	}
	var assertion string
	if g.assertion.cfg != nil {
		var err error
		if assertion, err = g.assertion.sign(r, rd); err != nil {
			g.logger.Error("cannot sign the identity assertion", zap.String("reason", "assertion_failed"), zap.Error(err))
			return g.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusInternalServerError, Reason: "assertion_failed", Form: web.JSON,
				Message: "Your identity could not be passed on to the application. Please try again; the site's administrator has been told."})
		}
	}
	setIdentityHeaders(r, rd.headers, assertion)
	// The access token is the client's credential for the gateway; like every token it
	// does not reach the upstream, which gets the verified identity instead.
	r.Header.Del("Authorization")
	g.sessions.strip(r)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(rd.provider)
	}
	return next.ServeHTTP(w, r)
}

// invalid answers 401 invalid_token (RFC 6750 §3.1): no cookie, no redirect.
func (g *bearerGate) invalid(w http.ResponseWriter, r *http.Request, msg string) error {
	return g.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusUnauthorized, Reason: oidcflow.CodeAccessToken, Message: msg, Form: web.JSON,
		Header: http.Header{"Www-Authenticate": {`Bearer realm="trustgate", error="invalid_token", error_description="` + web.AuthParam(msg) + `"`}}})
}
