package oidctest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Lifetimes and bounds. They are constants so that tests of the gateway can rely on them.
const (
	// CodeLifetime is how long an authorization code can be exchanged.
	CodeLifetime = 60 * time.Second
	// AccessTokenLifetime is the lifetime of ID tokens, and of access tokens (expires_in 300)
	// unless Options.AccessTokenLifetime says otherwise.
	AccessTokenLifetime = 5 * time.Minute
	// RefreshTokenLifetime is how long a refresh token can be used.
	RefreshTokenLifetime = 8 * time.Hour

	maxCodes         = 4096 // outstanding authorization codes
	maxTokens        = 8192 // outstanding access tokens, and separately refresh tokens
	maxUsedMarkers   = 4096 // remembered used codes / refresh tokens (reuse detection)
	usedMarkerTTL    = 10 * time.Minute
	maxBodyBytes     = 64 << 10 // request bodies
	maxHeaderBytes   = 64 << 10 // request line + headers
	shutdownDeadline = 2 * time.Second
)

// Options configures a Provider. The zero value is usable.
type Options struct {
	// Addr is the listen address. It must be a loopback address (127.0.0.0/8, ::1 or localhost).
	// Default: 127.0.0.1:0 (a free port).
	Addr string
	// Clients are the registered clients. Default: DefaultClient().
	Clients []Client
	// Users are the users shown on the login page. Default: DefaultUsers().
	Users []User
	// Now is the clock used for codes, tokens and claims. Default: time.Now.
	Now func() time.Time
	// SigningAlg is the algorithm of the signing key: "RS256" (default) or "ES256".
	SigningAlg string
	// AccessTokenLifetime is the lifetime of the access tokens issued (and so expires_in),
	// for tests that need them to expire soon. ID tokens keep the AccessTokenLifetime
	// constant. Default: AccessTokenLifetime.
	AccessTokenLifetime time.Duration
	// LoginHintJWKS returns the JSON Web Key Set (RFC 7517 JSON) that verifies login_hint
	// JWTs, the signed profiles of identity binding (seed 002; see the package doc). It is
	// called for every authorization request whose login_hint is a JWT, so a test can
	// rotate keys; return an error when the keys cannot be had (the request then fails
	// with temporarily_unavailable). Nil: a JWT login_hint is refused as invalid_request.
	LoginHintJWKS func() ([]byte, error)
	// UserinfoIssuer is the "iss" of signed userinfo, for an OP whose userinfo is issued by
	// a service of its own (BankID's UserInfo API, seed 003: https://userinfo.current.bankid.no).
	// The JWT is still signed with the OP's published keys. Default: the issuer.
	UserinfoIssuer string
	// CIBAExpiresIn is the lifetime of a backchannel authentication request (the ack's
	// expires_in) when the request carries no requested_expiry. Whole seconds.
	// Default: DefaultCIBAExpiresIn (120 s).
	CIBAExpiresIn time.Duration
	// CIBAInterval is the polling interval the ack announces ("interval", whole seconds)
	// and the Provider enforces. 0 omits interval from the ack; the Provider then enforces
	// DefaultCIBAInterval (5 s), the value CIBA Core 7.3 tells clients to assume.
	CIBAInterval time.Duration
	// DeviceConsole serves PathDevice, a page that plays the user's phone for CIBA requests
	// (Approve / Deny). For make demo; off in tests, which call CIBAApprove and CIBADeny.
	DeviceConsole bool
	// Logf, when set, receives one line per request (method, path, status, duration and a short
	// note such as the client or grant type). Tokens, codes and secrets are never passed to it.
	Logf func(format string, args ...any)
	// TLS serves https with a certificate for 127.0.0.1, ::1 and localhost, signed by a test
	// CA (TLSCACertPEM, TLSClient); the issuer is then https://127.0.0.1:PORT.
	TLS bool
}

// Counts is the number of requests each endpoint received, plus the misuses the Provider saw.
// Every request is counted, including rejected ones.
type Counts struct {
	Authorize, Token, Userinfo, JWKS, Discovery int
	// EndSession counts requests to the end-session endpoint.
	EndSession int
	// CodeReuse counts token requests that presented an already used authorization code.
	CodeReuse int
	// RefreshReuse counts token requests that presented an already rotated refresh token.
	RefreshReuse int
	// Refresh counts token requests with grant_type=refresh_token (also counted in Token).
	Refresh int
	// Feedback counts requests to the session feedback endpoint, accepted or not.
	Feedback int
	// CIBAAuthorize counts requests to the backchannel authentication endpoint.
	CIBAAuthorize int
	// CIBAPoll counts token requests with the CIBA grant type (also counted in Token).
	CIBAPoll int
	// Introspect counts requests to the introspection endpoint.
	Introspect int
}

// Provider is an OpenID Provider serving on a loopback address. All methods are safe for
// concurrent use.
type Provider struct {
	issuer     string
	now        func() time.Time
	alg        string
	atLifetime time.Duration // access token lifetime
	clients    map[string]Client
	users      []User // login page order
	userIndex  map[string]int
	logf       func(format string, args ...any)
	device     bool // serve PathDevice (Options.DeviceConsole)
	hintJWKS   func() ([]byte, error)
	uiIssuer   string        // iss of signed userinfo ("" = issuer)
	hintKeys   hintEncKeys   // decrypt ID Dataweb login_hints (PathHintKeys)
	cibaExpiry time.Duration // default lifetime of a backchannel authentication request
	cibaIntvl  time.Duration // announced interval; 0 = omitted (DefaultCIBAInterval enforced)
	ln         net.Listener
	srv        *http.Server
	done       chan struct{} // closed by Close; aborts delayed responses
	served     chan struct{} // closed when Serve returns
	closeOnce  sync.Once
	keyGenLock sync.Mutex // serialises RotateKeys so two rotations do not interleave

	mu        sync.Mutex
	keys      []*signingKey // [0] signs; [1] is the previous key, still published
	autoLogin string
	faults    Faults
	counts    Counts
	lastToken url.Values
	// introspection answers by token (SetIntrospection), the forced status and the last
	// request
	introspect       map[string]map[string]any
	introspectStatus int
	lastIntrospect   url.Values
	lastAuthorize    url.Values
	lastUserinfo     *recordedRequest
	lastEndSession   url.Values
	lastFeedback     *Feedback
	lastBinding      *Binding
	aliases          map[string]string // subject -> alias reported by session feedback
	codes            *expiringMap[*authCode]
	usedCodes        *expiringMap[string] // code -> grant family
	access           *expiringMap[*grant]
	refresh          *expiringMap[*grant]
	usedRefresh      *expiringMap[string] // refresh token -> grant family
	lastCIBA         url.Values
	ciba             *expiringMap[*cibaRequest] // auth_req_id -> backchannel authentication request
}

// recordedRequest is a userinfo request kept for LastUserinfoRequest.
type recordedRequest struct {
	req  *http.Request // body replaced by http.NoBody
	body []byte
}

// New validates opts, listens on a loopback address and starts serving.
func New(opts Options) (*Provider, error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	alg := opts.SigningAlg
	if alg == "" {
		alg = algRS256
	}
	if alg != algRS256 && alg != algES256 {
		return nil, fmt.Errorf("oidctest: signing alg %q: must be RS256 or ES256", alg)
	}
	atLifetime := opts.AccessTokenLifetime
	if atLifetime < 0 {
		return nil, fmt.Errorf("oidctest: access token lifetime %v is negative", atLifetime)
	}
	if atLifetime == 0 {
		atLifetime = AccessTokenLifetime
	}
	cibaExpiry, cibaIntvl, err := cibaOptions(opts)
	if err != nil {
		return nil, err
	}
	clients := opts.Clients
	if len(clients) == 0 {
		clients = []Client{DefaultClient()}
	}
	users := opts.Users
	if len(users) == 0 {
		users = DefaultUsers()
	}
	p := &Provider{
		now:         opts.Now,
		alg:         alg,
		atLifetime:  atLifetime,
		clients:     make(map[string]Client, len(clients)),
		userIndex:   make(map[string]int, len(users)),
		logf:        opts.Logf,
		device:      opts.DeviceConsole,
		hintJWKS:    opts.LoginHintJWKS,
		uiIssuer:    opts.UserinfoIssuer,
		cibaExpiry:  cibaExpiry,
		cibaIntvl:   cibaIntvl,
		aliases:     make(map[string]string),
		done:        make(chan struct{}),
		served:      make(chan struct{}),
		codes:       newExpiringMap[*authCode](maxCodes),
		usedCodes:   newExpiringMap[string](maxUsedMarkers),
		access:      newExpiringMap[*grant](maxTokens),
		refresh:     newExpiringMap[*grant](maxTokens),
		usedRefresh: newExpiringMap[string](maxUsedMarkers),
		ciba:        newExpiringMap[*cibaRequest](maxCIBARequests),
	}
	if p.now == nil {
		p.now = time.Now
	}
	for _, c := range clients {
		if c.ID == "" {
			return nil, errors.New("oidctest: client with empty ID")
		}
		if _, dup := p.clients[c.ID]; dup {
			return nil, fmt.Errorf("oidctest: client %q registered twice", c.ID)
		}
		p.clients[c.ID] = c.clone()
	}
	for _, u := range users {
		if u.Subject == "" {
			return nil, errors.New("oidctest: user with empty subject")
		}
		if _, dup := p.userIndex[u.Subject]; dup {
			return nil, fmt.Errorf("oidctest: user %q defined twice", u.Subject)
		}
		p.userIndex[u.Subject] = len(p.users)
		p.users = append(p.users, u.clone())
	}
	key, err := sharedKey(alg)
	if err != nil {
		return nil, err
	}
	p.keys = []*signingKey{key}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("oidctest: listen %s: %w", addr, err)
	}
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		_ = ln.Close()
		return nil, fmt.Errorf("oidctest: listen %s: bound to non-loopback address %s", addr, ln.Addr())
	}
	p.issuer = "http://" + ln.Addr().String()
	if opts.TLS {
		tc, err := serverTLSConfig()
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		ln = tls.NewListener(ln, tc)
		p.issuer = "https://" + ln.Addr().String()
	}
	p.ln = ln
	p.srv = &http.Server{
		Handler:           p.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	go func() {
		defer close(p.served)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// NewTest is New for tests: it fails tb on error and closes the Provider in tb.Cleanup.
func NewTest(tb testing.TB, opts Options) *Provider {
	tb.Helper()
	p, err := New(opts)
	if err != nil {
		tb.Fatalf("oidctest.New() error = %v", err)
	}
	tb.Cleanup(p.Close)
	return p
}

// Issuer is the issuer URL, "http://127.0.0.1:PORT" (https with Options.TLS; no trailing
// slash).
func (p *Provider) Issuer() string { return p.issuer }

// Close stops serving. Delayed responses are aborted; in-flight requests get a short grace
// period. Close is idempotent.
func (p *Provider) Close() {
	p.closeOnce.Do(func() {
		close(p.done)
		ctx, cancel := context.WithTimeout(context.Background(), shutdownDeadline)
		defer cancel()
		if err := p.srv.Shutdown(ctx); err != nil {
			_ = p.srv.Close()
		}
		<-p.served
	})
}

// SetAutoLogin makes GET /authorize log in the user with this subject (or, if no subject
// matches, this label) without showing the login page. "" shows the login page again.
func (p *Provider) SetAutoLogin(subject string) {
	p.mu.Lock()
	p.autoLogin = subject
	p.mu.Unlock()
}

// SetFaults replaces the active fault switches; Faults{} turns them all off. It applies to
// requests that start after the call.
func (p *Provider) SetFaults(f Faults) {
	p.mu.Lock()
	p.faults = f
	p.mu.Unlock()
}

// Counts reports how many requests each endpoint has received.
func (p *Provider) Counts() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

// LastAuthorize is a copy of the parameters of the last authorization request that was
// answered with a code (acr_values, prompt, max_age, ...). Nil before any.
func (p *Provider) LastAuthorize() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return cloneValues(p.lastAuthorize)
}

// LastTokenRequest is the form of the last /token request (body parameters only), plus
// "auth" = "basic", "post" or "none" for the client authentication it used. Nil before any.
func (p *Provider) LastTokenRequest() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return cloneValues(p.lastToken)
}

// LastUserinfoRequest is a copy of the last /userinfo request: method, URL (as received,
// with the query), Host, headers and body. Nil before any. Each call returns a new copy
// whose body can be read.
func (p *Provider) LastUserinfoRequest() *http.Request {
	p.mu.Lock()
	rec := p.lastUserinfo
	p.mu.Unlock()
	if rec == nil {
		return nil
	}
	r := rec.req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(rec.body))
	r.ContentLength = int64(len(rec.body))
	return r
}

// LastEndSessionRequest is the query or form of the last end-session request. Nil before any.
func (p *Provider) LastEndSessionRequest() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return cloneValues(p.lastEndSession)
}

// snapshot returns the current faults and auto-login subject.
func (p *Provider) snapshot() (Faults, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults, p.autoLogin
}

// user finds a user by subject.
func (p *Provider) user(subject string) (User, bool) {
	i, ok := p.userIndex[subject]
	if !ok {
		return User{}, false
	}
	return p.users[i], true
}

// autoLoginUser resolves the auto-login setting (subject first, then label).
func (p *Provider) autoLoginUser(s string) (User, bool) {
	if u, ok := p.user(s); ok {
		return u, true
	}
	for _, u := range p.users {
		if u.Label == s {
			return u, true
		}
	}
	return User{}, false
}

// wait sleeps for d unless the request or the Provider ends first. It reports whether the
// full delay passed.
func (p *Provider) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-p.done:
		return false
	}
}

// checkLoopback refuses listen addresses that are not loopback.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("oidctest: address %q: %w", addr, err)
	}
	if isLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("oidctest: address %q is not loopback", addr)
}

// isLoopbackHost reports whether host names the loopback interface: localhost (and
// *.localhost, RFC 6761), 127.0.0.0/8 or ::1.
func isLoopbackHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
