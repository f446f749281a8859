// Package trustgate is a Caddy v2 HTTP handler that puts OpenID Connect login in front of
// applications that know nothing about it, and forwards the user's verified identity and
// trust signals to them as request headers.
//
// The Caddy side lives here (module registration, configuration, ServeHTTP); the protocol
// is in oidcflow, sessions and cookies in session, and claims-to-headers in trust.
package trustgate

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/provider"
	"github.com/trustgate/trustgate/session"
	"github.com/trustgate/trustgate/trust"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults, documented on the fields that use them.
const (
	defaultPathPrefix  = "/.trustgate"
	defaultIdleTimeout = time.Hour
	defaultLifetime    = 12 * time.Hour
	defaultMaxSessions = 100000
	defaultCookieName  = "trustgate"
	// loginTimeout is how long a started login (the transaction cookie) stays valid.
	loginTimeout = 10 * time.Minute
	// maxPendingLogins bounds the login transactions one browser may have at once (tabs);
	// starting another evicts the oldest (SECURITY.md LIM-03).
	maxPendingLogins = 5
	minSecretBytes   = 32
)

// Handler protects the routes it is placed on with OpenID Connect login.
//
// An authenticated request is passed on with identity headers (X-Auth-*: by default who the
// user is; with standard_headers identity or all also the assurance, and with all the trust
// signals as X-Trust-*); client-sent headers with those prefixes are always removed first,
// in any letter case and with '_' for '-'. An unauthenticated browser navigation is
// redirected to the OpenID Provider; any other unauthenticated request gets 401 with a JSON
// body. The gateway's own endpoints live under path_prefix: callback, login, logout, me.
//
// Placeholders set for authenticated requests:
//
//	{http.auth.user.id}       the user_claim of the logged-in user (default: sub); sub
//	                          when the login lacks that claim
//	{http.auth.user.groups}   the groups (groups_claim) comma-joined; values with a comma or
//	                          a control character left out; absent without groups
//	{http.auth.user.<claim>}  every other top-level claim whose name is lowercase letters,
//	                          digits and '_' (arrays comma-joined, objects as JSON)
//	{http.auth.oidc.session_expires}  Unix time at which the session ends at the latest
type Handler struct {
	// Provider selects a provider profile: bindid, iddataweb, bankid or generic. The
	// profile sets what that provider needs (alias claim, userinfo format and issuer,
	// login_hint format, the decision a login must carry, trust headers); any key set
	// explicitly overrides the profile's value. The Caddyfile adapter writes the resolved
	// values into the JSON config, so `caddy adapt` shows them. Default: generic
	Provider string `json:"provider,omitempty"`

	// Issuer is the OpenID Provider's issuer URL, exactly as in its discovery document.
	// Required. Must be https (plain http is accepted for loopback hosts only, for
	// development). Discovery happens on first use, never during provisioning, so
	// `caddy validate` needs no provider.
	Issuer string `json:"issuer,omitempty"`

	// ClientID is the client identifier registered at the provider. Required.
	ClientID string `json:"client_id,omitempty"`

	// ClientSecret authenticates the gateway at the token endpoint. Use a placeholder such
	// as {env.OIDC_CLIENT_SECRET} or {file./run/secrets/oidc}; it is expanded when the config
	// is loaded and never logged. Leave it out for a public client (PKCE only).
	ClientSecret string `json:"client_secret,omitempty"`

	// Secrets protect the session and login cookies (encryption and authentication keys are
	// derived from them). Each must be at least 32 bytes. The first one creates cookies; all
	// are accepted, so a new secret can be put in front and an old one removed later
	// (rotation). Use placeholders ({env.*}, {file.*}). Default: a random key generated once
	// and kept in Caddy's data directory (trustgate/cookie-secret) — set an explicit secret
	// when several instances serve the same site.
	Secrets []string `json:"secrets,omitempty"`

	// Scopes requested from the provider; "openid" is always added. Default: openid email profile.
	Scopes []string `json:"scopes,omitempty"`

	// PathPrefix is where the gateway's own endpoints are served (callback, login, logout,
	// me). Default: /.trustgate
	PathPrefix string `json:"path_prefix,omitempty"`

	// RedirectURL is the absolute callback URL registered at the provider, e.g.
	// https://app.example.com/.trustgate/callback. Default: built from the request's own
	// scheme and Host (X-Forwarded-* headers are never used). Set it when the site accepts
	// more than one Host name or runs behind a TLS-terminating proxy.
	RedirectURL string `json:"redirect_url,omitempty"`

	// TokenAuthMethod is how the gateway authenticates at the token endpoint:
	// client_secret_basic, client_secret_post or none. Default: client_secret_basic (none
	// when there is no client secret).
	TokenAuthMethod string `json:"token_auth_method,omitempty"`

	// Userinfo is how the userinfo endpoint is called after login: get, post (both send the
	// access token in the Authorization header) or off (claims from the ID token only).
	// Default: get
	Userinfo string `json:"userinfo,omitempty"`

	// UserinfoRequireSigned rejects a login whose userinfo answer is not a JWT signed by the
	// provider (application/jwt). Set it for clients registered with
	// userinfo_signed_response_alg, so a plain JSON answer cannot be substituted. Default: false
	UserinfoRequireSigned bool `json:"userinfo_require_signed,omitempty"`

	// UserinfoIssuer is the exact "iss" expected in a signed userinfo, for providers whose
	// userinfo is issued by a service of its own (BankID: the UserInfo API). The signature
	// (the provider's JWKS and allowed algorithms), aud = client_id and sub = the ID token's
	// sub are checked as always. Default: the provider profile's, else issuer
	UserinfoIssuer string `json:"userinfo_issuer,omitempty"`

	// LoginHintFormat is the format of the login_hint of an identity binding: jwt (ES256,
	// signed with the gateway's keys, verifiable at <path_prefix>/jwks.json, OIDC claim
	// names) or iddataweb (HS256 keyed with the client secret, ID Dataweb's field names).
	// Default: the provider profile's, else jwt
	LoginHintFormat string `json:"login_hint_format,omitempty"`

	// LoginHintEncryptionKey wraps the signed login_hint in a JWE to the provider's key
	// (RSA-OAEP-256 with A256GCM unless the key says otherwise), as ID Dataweb recommends
	// whenever the hint carries personal data: a PEM public key (use {file.*}) or an https
	// JWKS URL. Without it, a profile that holds ssn4 or ssn9 is never sent.
	LoginHintEncryptionKey string `json:"login_hint_encryption_key,omitempty"`

	// TLSTrustedCACerts is a PEM file of the CA certificates that every call to the provider
	// (discovery, JWKS, token, userinfo, refresh, CIBA, session feedback, logout, and the
	// login_hint_encryption_key JWKS URL) is verified against, instead of the system's
	// trusted CAs: for a provider whose certificate a private CA signed. Placeholders are
	// expanded. Default: the system's trusted CAs
	TLSTrustedCACerts string `json:"tls_trusted_ca_certs,omitempty"`

	// AuthParams are extra parameters added to every authorization request, such as
	// Google's hd, Entra ID's domain_hint, Auth0's audience or prompt. Values may use
	// placeholders. The parameters the gateway sets itself (state, nonce, redirect_uri,
	// client_id, response_type, response_mode, code_challenge, code_challenge_method, scope,
	// request, request_uri, login_hint, id_token_hint, claims, acr_values, max_age) are
	// refused; a prompt the gateway sends for a step-up login wins over this one.
	AuthParams map[string]string `json:"auth_params,omitempty"`

	// SessionStore selects where sessions live. Default: memory.
	SessionStore *SessionStoreConfig `json:"session_store,omitempty"`

	// IdleTimeout ends a session that has not been used for this long. Default: 1h
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`

	// Lifetime ends a session this long after login, however active it is. Default: 12h
	Lifetime caddy.Duration `json:"lifetime,omitempty"`

	// CookieName is the session cookie's name; with secure cookies it gets the __Host-
	// prefix. Login transaction cookies are named <name>_tx_<state>. Default: trustgate
	CookieName string `json:"cookie_name,omitempty"`

	// AliasClaim names the claim that carries the user's alias in the application (BindID
	// style). When a user has none, the upstream gets X-Auth-New-User: true, and the
	// application can link one (feedback_endpoint). Default: the provider profile's
	// (bindid: bindid_alias); generic has none, so no user is reported as new
	AliasClaim string `json:"alias_claim,omitempty"`

	// UserClaim names the claim that identifies the user to the application, a path as for
	// `header` (preferred_username, email, employee.login). It fills X-Auth-User
	// (standard_headers basic and above) and {http.auth.user.id}, which Caddy's access log
	// writes as user_id. When a login lacks the claim, X-Auth-User is not sent and
	// {http.auth.user.id} is sub, so the log always names the user. Default: sub for
	// {http.auth.user.id}; X-Auth-User is sent only when user_claim is set (with sub it
	// would repeat X-Auth-Subject)
	UserClaim string `json:"user_claim,omitempty"`

	// GroupsClaim names the claim that lists the user's groups, a path as for `header`: an
	// array of strings or a single string. It fills X-Auth-Groups (standard_headers identity
	// and all), {http.auth.user.groups} and `require group`. Entra ID sends groups (group
	// object ids) or roles (app roles); Keycloak realm_access.roles. A value that contains a
	// comma or a control character is left out whole (never cut or escaped, so the list
	// splits back on commas exactly) and a warning with reason group_value_refused names the
	// header, never the value. Default: groups
	GroupsClaim string `json:"groups_claim,omitempty"`

	// AllowUnverifiedEmail lets `require email_domain` accept an e-mail address from a login
	// without any email_verified claim, for providers that never send it (Microsoft Entra
	// ID). An explicit email_verified false is still refused. It applies to this block's
	// rules and to the policy blocks that check its sessions.
	//
	// Risk: without email_verified nothing says the user controls the address. At some
	// providers the e-mail claim is whatever the user or a tenant administrator typed into
	// the profile, so anyone who can edit it passes `email_domain your-company.example`.
	// Use it only with a provider that vouches for the address (an Entra ID single-tenant
	// app whose tenant owns the domain); prefer `require claim tid <tenant-id>` or
	// `require group` where the provider assigns those. A warning is logged at start when
	// it is set. Default: false
	AllowUnverifiedEmail bool `json:"allow_unverified_email,omitempty"`

	// ClockLeeway is the clock skew tolerated when checking token times. Default: 1m
	ClockLeeway caddy.Duration `json:"clock_leeway,omitempty"`

	// TrustedAudiences are audiences, besides client_id, that an ID token may also name.
	// An ID token naming any other audience is rejected.
	TrustedAudiences []string `json:"trusted_audiences,omitempty"`

	// TrustRefresh, when set, refreshes a session with a refresh token at this interval even
	// while its access token is valid, so trust signals (acr, the BindID profile, userinfo)
	// stay current. Sessions are always refreshed shortly before the access token expires.
	// A refresh never extends the session's lifetime.
	TrustRefresh caddy.Duration `json:"trust_refresh,omitempty"`

	// PostLogoutRedirectURL is where the provider sends the browser after the gateway's
	// logout continued at its end_session_endpoint (RP-initiated logout). It must be
	// registered at the provider as a post-logout redirect URI. <path_prefix>/signed-out is a
	// plain "signed out" page of the gateway. Default: none (the provider shows its own page).
	PostLogoutRedirectURL string `json:"post_logout_redirect_url,omitempty"`

	// FeedbackEndpoint is the provider's session-feedback URL (BindID /session-feedback).
	// When set, the application links a new user (no alias_claim) by answering one of that
	// session's requests with the response header alias_header naming the user's alias; the
	// gateway removes the header, reports the alias to this endpoint (HMAC-SHA256 of the
	// access token with the client secret) and the session carries the alias from then on.
	FeedbackEndpoint string `json:"feedback_endpoint,omitempty"`

	// AliasHeader is the response header the application sets to link an alias.
	// Default: X-Auth-Set-Alias
	AliasHeader string `json:"alias_header,omitempty"`

	// IdentityBinding, when present, lets the application bind a verified identity to the
	// signed-in account: it answers with the response header identity_binding.header (a
	// base64url JSON profile); the gateway turns the profile into a short-lived login_hint
	// in the login_hint_format (jwt: signed with the keys at <path_prefix>/jwks.json;
	// iddataweb: ID Dataweb's HS256 prefill JWT), sends the browser to the provider with it,
	// and on a confirmed binding (same subject, acr_values met, the provider's verdict
	// approve) the upstream gets X-Auth-Binding: verified.
	IdentityBinding *IdentityBindingConfig `json:"identity_binding,omitempty"`

	// CIBA, when present, serves <path_prefix>/ciba/start, /ciba/poll and /ciba/user-code:
	// browserless login, and transaction confirmation for a signed-in user, with
	// confirmation on the user's device (OpenID Connect CIBA, poll mode).
	CIBA *CIBAConfig `json:"ciba,omitempty"`

	// StandardHeaders selects the built-in upstream headers: basic (X-Auth-Subject,
	// X-Auth-Email and X-Auth-Email-Verified, X-Auth-Alias, X-Auth-New-User), identity (every
	// X-Auth-* header: also issuer, name, phone, bank identity, acr, amr, auth time), all
	// (identity and the X-Trust-* trust signals) or none (only the `header` mappings and the
	// assertion). Each forwarded header costs every request in the proxy and the upstream
	// (bench/RESULTS.md), and personal data goes only where it is asked for: send what the
	// application reads. Default: basic
	StandardHeaders string `json:"standard_headers,omitempty"`

	// HeaderMappings add upstream headers from any claim: the claim at a path ("employee_id",
	// "address.locality", or an exact top-level name such as "https://example.com/roles").
	// Objects are sent as compact JSON, arrays comma-joined, numbers as integers, non-ASCII
	// as RFC 2047 encoded-words. Client-sent headers of these names are always removed.
	HeaderMappings []trust.Mapping `json:"header_mappings,omitempty"`

	// MaxHeaderBytes bounds each identity header value (encoded); a longer value is not
	// sent (never cut) and a warning names the header. Default: 4096
	MaxHeaderBytes int `json:"max_header_bytes,omitempty"`

	// MaxTotalHeaderBytes bounds all identity headers of a request together (names and
	// values); headers past the limit are not sent and a warning names them. Default: 16384
	MaxTotalHeaderBytes int `json:"max_total_header_bytes,omitempty"`

	// ACRLevels orders the provider's acr values from the weakest to the strongest, for
	// `require acr_at_least`. Policy blocks inside routes use the levels of the trustgate
	// block that logged the user in unless they set their own.
	ACRLevels []string `json:"acr_levels,omitempty"`

	// Require is the route policy: every rule set must hold, or the request is refused
	// (403) or, when logging in again can help, the browser is sent to the provider for a
	// step-up login. A trustgate block with only require (and acr_levels) lines is a policy
	// block: it checks the session found by the trustgate block before it on the route.
	Require *PolicyConfig `json:"require,omitempty"`

	// Bearer, when present, authenticates requests that send `Authorization: Bearer <JWT>`
	// by the provider's JWT access token instead of a session cookie (see BearerConfig).
	Bearer *BearerConfig `json:"bearer,omitempty"`

	// Assertion, when present, adds X-Auth-Assertion: a short-lived JWT signed by the
	// gateway with the user's identity and trust profile, verifiable with the keys at
	// <path_prefix>/jwks.json.
	Assertion *AssertionConfig `json:"assertion,omitempty"`

	// InsecureCookie drops the Secure attribute and the __Host- prefix from cookies, so that
	// login works over plain http. For local development only: cookies then travel in clear
	// text. A warning is logged when it is set. Default: false
	InsecureCookie bool `json:"insecure_cookie,omitempty"`

	logger       *zap.Logger
	profile      *provider.Profile // the provider profile (never nil after Provision)
	decoded      *decodeCache      // verified session cookie values -> session ids
	client       *oidcflow.Client
	clientKey    string
	store        session.Store
	storeKey     string
	sessCodec    *session.Codec
	txCodec      *session.Codec
	cookieName   string // session cookie
	txPrefix     string // login transaction cookies: txPrefix + state
	redirectURL  *url.URL
	trustOpts    trust.Options
	now          func() time.Time
	clientSecret string        // expanded
	policyOnly   bool          // a block with only require/acr_levels: checks the outer block's session
	policy       *trust.Policy // nil: no rules (for a policy block: compiled per outer block, see policyFor)
	policies     *sync.Map     // policy blocks: *Handler (outer) -> its compiled policy or error
	assert       *assertionKeys
	assertKey    string            // assertionKeyPool key, for Cleanup
	storage      certmagic.Storage // tests: instead of Caddy's configured storage
	logoutLimit  *windowLimiter    // back-channel logout requests per second
	aliasHeader  string            // canonical AliasHeader
	bindHeader   string            // canonical IdentityBinding.Header

	// metrics are the Prometheus collectors (metrics.go); nil counts nothing.
	metrics *metrics
	// emitEvent emits a Caddy event (the events app), or is nil.
	emitEvent func(name string, data map[string]any)
	// metricsRegistry, when set (tests), is used instead of the config's metrics registry.
	metricsRegistry *prometheus.Registry
	// health caches the answer of <path_prefix>/healthz for a few seconds.
	health *healthCheck

	caPool *x509.CertPool // tls_trusted_ca_certs, nil for the system's CAs
	caSum  string         // hex SHA-256 of the tls_trusted_ca_certs file, "" without it
}

// SessionStoreConfig selects the session store; at most one member may be set.
type SessionStoreConfig struct {
	// Memory keeps sessions in this process. They survive `caddy reload` but not a restart,
	// and are not shared between instances.
	Memory *MemoryStoreConfig `json:"memory,omitempty"`

	// Redis keeps sessions in Redis (standalone, Sentinel or Cluster), shared by every
	// instance that uses the same Redis, key prefix and secret. Values are encrypted.
	Redis *RedisStoreConfig `json:"redis,omitempty"`
}

// RedisStoreConfig configures the Redis session store. One client (with its local cache
// and invalidation subscription) serves every handler with the same store configuration
// and secret, and is kept across `caddy reload`.
type RedisStoreConfig struct {
	// Addrs are host:port addresses: one for a standalone server, several for a Cluster
	// (any of its nodes), or the sentinels when master_name is set. Required.
	Addrs []string `json:"addrs,omitempty"`

	// MasterName is the name the sentinels know the master by; it selects Sentinel mode.
	MasterName string `json:"master_name,omitempty"`

	// Username and Password authenticate at Redis (ACL user, or just the password for
	// requirepass). Use a placeholder such as {env.REDIS_PASSWORD}; never logged.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`

	// SentinelUsername and SentinelPassword authenticate at the sentinels (requirepass or an
	// ACL user in sentinel.conf), with master_name only. Use a placeholder such as
	// {env.REDIS_SENTINEL_PASSWORD}; never logged. Default: none
	SentinelUsername string `json:"sentinel_username,omitempty"`
	SentinelPassword string `json:"sentinel_password,omitempty"`

	// DB is the database number (standalone and Sentinel only). Default: 0
	DB int `json:"db,omitempty"`

	// TLS, when present, connects with TLS.
	TLS *RedisTLSConfig `json:"tls,omitempty"`

	// KeyPrefix starts every key trustgate writes, so several gateways (or other
	// applications) can share one Redis. Default: trustgate:
	KeyPrefix string `json:"key_prefix,omitempty"`

	// DialTimeout bounds connecting; ReadTimeout bounds every command. A request that needs
	// Redis answers 503 within about these when Redis is down. Default: 2s and 1s
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	ReadTimeout caddy.Duration `json:"read_timeout,omitempty"`

	// LocalCacheTTL is how long this instance serves a session from its own memory without
	// asking Redis, while it receives the invalidations other instances publish (a logout
	// anywhere reaches every instance within a second). Negative turns the local cache off
	// (every request reads Redis). Default: 1m
	LocalCacheTTL caddy.Duration `json:"local_cache_ttl,omitempty"`

	// LocalCacheSize bounds the sessions cached per instance. Default: 10000
	LocalCacheSize int `json:"local_cache_size,omitempty"`
}

// RedisTLSConfig configures TLS to Redis. Verification against the system roots (or
// ca_file) is always on unless insecure_skip_verify is set.
type RedisTLSConfig struct {
	// CAFile is a PEM file of CA certificates to trust instead of the system roots.
	CAFile string `json:"ca_file,omitempty"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `json:"server_name,omitempty"`
	// ClientCertFile and ClientKeyFile are a PEM certificate and key for mutual TLS.
	ClientCertFile string `json:"client_cert_file,omitempty"`
	ClientKeyFile  string `json:"client_key_file,omitempty"`
	// InsecureSkipVerify accepts any server certificate. For testing only; logs a warning.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// MemoryStoreConfig configures the in-process session store.
type MemoryStoreConfig struct {
	// MaxSessions bounds the number of sessions kept; when full, the session idle the
	// longest (approximately) is dropped. Default: 100000
	MaxSessions int `json:"max_sessions,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.trustgate",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision expands placeholders, fills in defaults and takes the shared provider client and
// session store from their pools. It does no network I/O.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.now == nil {
		h.now = time.Now // tests may set another clock before provisioning
	}
	h.provisionMetrics(ctx)
	if h.isPolicyOnly() {
		return h.provisionPolicyOnly()
	}
	repl := caddy.NewReplacer()

	h.Issuer = repl.ReplaceAll(h.Issuer, "")
	h.ClientID = repl.ReplaceAll(h.ClientID, "")
	if h.ClientSecret != "" {
		h.clientSecret = repl.ReplaceAll(h.ClientSecret, "")
		if h.clientSecret == "" {
			return errors.New("client_secret is empty after expanding placeholders: is the environment variable or file it names set?")
		}
	}
	h.RedirectURL = repl.ReplaceAll(h.RedirectURL, "")
	h.PostLogoutRedirectURL = repl.ReplaceAll(h.PostLogoutRedirectURL, "")
	h.FeedbackEndpoint = repl.ReplaceAll(h.FeedbackEndpoint, "")
	if h.PathPrefix == "" {
		h.PathPrefix = defaultPathPrefix
	}
	if h.IdleTimeout == 0 {
		h.IdleTimeout = caddy.Duration(defaultIdleTimeout)
	}
	if h.Lifetime == 0 {
		h.Lifetime = caddy.Duration(defaultLifetime)
	}
	if h.CookieName == "" {
		h.CookieName = defaultCookieName
	}
	profile, err := h.applyProvider()
	if err != nil {
		return err
	}
	h.profile = profile
	h.UserinfoIssuer = repl.ReplaceAll(h.UserinfoIssuer, "")
	h.LoginHintEncryptionKey = repl.ReplaceAll(h.LoginHintEncryptionKey, "")
	if err := h.Validate(); err != nil {
		return err
	}
	h.PathPrefix = strings.TrimSuffix(h.PathPrefix, "/")
	if h.RedirectURL != "" {
		h.redirectURL, _ = url.Parse(h.RedirectURL)
	}

	h.cookieName = h.CookieName
	if !h.InsecureCookie {
		h.cookieName = "__Host-" + h.CookieName
	} else {
		h.logger.Warn("insecure_cookie is set: session cookies are sent over plain http; use this for local development only")
	}
	h.txPrefix = h.cookieName + "_tx_"
	if err := h.provisionTrust(); err != nil {
		return err
	}
	if err := h.provisionTrustedCAs(repl); err != nil {
		return err
	}
	if err := h.provisionHintKey(); err != nil {
		return err
	}
	if h.Assertion != nil || h.CIBA != nil || (h.IdentityBinding != nil && h.LoginHintFormat != provider.HintIDDataweb) {
		// The binding's login_hint (jwt format) and CIBA's transaction confirmations are
		// signed with the assertion keys.
		if err := h.provisionAssertion(ctx); err != nil {
			return err
		}
	}
	h.logoutLimit = &windowLimiter{max: maxLogoutRequestsPerSecond}
	h.health = new(healthCheck)
	h.aliasHeader = http.CanonicalHeaderKey(cmp.Or(h.AliasHeader, defaultAliasHeader))
	if h.IdentityBinding != nil {
		h.bindHeader = http.CanonicalHeaderKey(cmp.Or(h.IdentityBinding.Header, defaultBindHeader))
	}

	secrets, err := h.cookieSecrets(repl)
	if err != nil {
		return err
	}
	h.decoded = newDecodeCache(decodeCacheSize)
	if h.sessCodec, err = session.NewCodec(secrets, time.Duration(h.Lifetime)); err != nil {
		return fmt.Errorf("session cookie keys: %w", err)
	}
	if h.txCodec, err = session.NewCodec(secrets, loginTimeout); err != nil {
		return fmt.Errorf("login cookie keys: %w", err)
	}

	if err := h.provisionClient(); err != nil {
		return err
	}
	if err := h.provisionBearer(); err != nil {
		return err
	}
	return h.provisionStore(secrets)
}

// applyProvider looks up the provider profile and fills in every key the configuration
// leaves empty with the profile's value. It runs when the Caddyfile is adapted (so the JSON
// shows the resolved values) and again at Provision (for JSON configurations); explicit
// keys always win.
func (h *Handler) applyProvider() (*provider.Profile, error) {
	p, err := provider.Lookup(h.Provider)
	if err != nil {
		return nil, err
	}
	if h.AliasClaim == "" {
		h.AliasClaim = p.AliasClaim
	}
	if h.Userinfo == "" && p.Userinfo != "" {
		h.Userinfo = p.Userinfo
	}
	if p.UserinfoRequireSigned && h.Userinfo != oidcflow.UserinfoOff {
		// A provider that always signs userinfo (BankID) gets no unsigned answer through,
		// whatever method is chosen: a JSON answer there can only be a substitution.
		h.UserinfoRequireSigned = true
	}
	if h.UserinfoIssuer == "" {
		h.UserinfoIssuer = p.UserinfoIssuer(h.Issuer)
	}
	if h.LoginHintFormat == "" && p.LoginHintFormat != "" && p.LoginHintFormat != provider.HintJWT {
		h.LoginHintFormat = p.LoginHintFormat
	}
	return p, nil
}

// provisionTrust compiles the header options and the route policy.
func (h *Handler) provisionTrust() error {
	std, err := trust.ParseStandardHeaders(h.StandardHeaders)
	if err != nil {
		return fmt.Errorf("standard_headers: %w", err)
	}
	mappings, err := trust.CompileMappings(h.HeaderMappings)
	if err != nil {
		return err
	}
	if h.MaxHeaderBytes < 0 || h.MaxTotalHeaderBytes < 0 {
		return errors.New("max_header_bytes and max_total_header_bytes must not be negative")
	}
	h.trustOpts = trust.Options{
		AliasClaim:          h.AliasClaim,
		Verification:        h.profile.Verification,
		Standard:            std,
		Mappings:            mappings,
		MaxHeaderBytes:      h.MaxHeaderBytes,
		MaxTotalHeaderBytes: h.MaxTotalHeaderBytes,
		UserClaim:           h.UserClaim,
		GroupsClaim:         h.GroupsClaim,
	}
	h.warnUnverifiedEmail()
	if h.Require != nil {
		if h.policy, err = h.Require.compile(h.ACRLevels, h.AllowUnverifiedEmail); err != nil {
			return err
		}
	}
	return nil
}

// cookieSecrets expands the configured secrets, or loads (creating once) the generated key
// in Caddy's data directory.
func (h *Handler) cookieSecrets(repl *caddy.Replacer) ([][]byte, error) {
	var out [][]byte
	for i, s := range h.Secrets {
		v := repl.ReplaceAll(s, "")
		if len(v) < minSecretBytes {
			// Name the position, never the value.
			return nil, fmt.Errorf("secret #%d is %d bytes after expanding placeholders; at least %d are required (e.g. `openssl rand -base64 48`)", i+1, len(v), minSecretBytes)
		}
		out = append(out, []byte(v))
	}
	if len(out) > 0 {
		return out, nil
	}
	path := filepath.Join(caddy.AppDataDir(), "trustgate", "cookie-secret")
	key, created, err := loadOrCreateKey(path)
	if err != nil {
		return nil, fmt.Errorf("no secret configured, and the generated one could not be kept in %s: %w", path, err)
	}
	if created {
		h.logger.Warn("no secret configured: generated a cookie key and stored it in Caddy's data directory; configure `secret` explicitly when several instances serve this site", zap.String("path", path))
	}
	return [][]byte{key}, nil
}

// loadOrCreateKey reads a 64-byte hex key from path, creating it (0600) if it does not
// exist. Concurrent creators agree: only the first O_EXCL create wins, the others read it.
func loadOrCreateKey(path string) ([]byte, bool, error) {
	if b, err := os.ReadFile(path); err == nil {
		key := []byte(strings.TrimSpace(string(b)))
		if len(key) < minSecretBytes {
			return nil, false, fmt.Errorf("%s holds %d bytes; delete it to generate a new key", path, len(key))
		}
		return key, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	raw := make([]byte, 48)
	_, _ = rand.Read(raw)
	key := []byte(hex.EncodeToString(raw))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateKey(path)
	}
	if err != nil {
		return nil, false, err
	}
	if _, err := f.Write(append(key, '\n')); err != nil {
		f.Close()
		return nil, false, err
	}
	return key, true, f.Close()
}

// pooledClient shares one provider client (and so one discovery and JWKS cache) among all
// handlers with the same provider configuration, across config reloads.
type pooledClient struct{ *oidcflow.Client }

func (p pooledClient) Destruct() error { p.Close(); return nil }

var clients = caddy.NewUsagePool()

func (h *Handler) provisionClient() error {
	cfg := oidcflow.Config{
		Issuer:                h.Issuer,
		ClientID:              h.ClientID,
		ClientSecret:          h.clientSecret,
		Scopes:                h.Scopes,
		AuthMethod:            h.TokenAuthMethod,
		Userinfo:              h.Userinfo,
		RequireSignedUserinfo: h.UserinfoRequireSigned,
		UserinfoIssuer:        h.UserinfoIssuer,
		IDTokenFirstClaims:    h.profile.IDTokenFirstClaims(),
		TrustedAudiences:      h.TrustedAudiences,
		ClockLeeway:           time.Duration(h.ClockLeeway),
		Now:                   h.now,
	}
	if len(h.AuthParams) > 0 {
		repl := caddy.NewReplacer()
		cfg.AuthParams = make(map[string]string, len(h.AuthParams))
		for k, v := range h.AuthParams {
			cfg.AuthParams[k] = repl.ReplaceAll(v, "")
		}
	}
	// The key identifies the configuration without holding the secret itself.
	sum := sha256.Sum256([]byte(cfg.ClientSecret))
	kb, err := json.Marshal([]any{cfg.Issuer, cfg.ClientID, hex.EncodeToString(sum[:]), cfg.Scopes, cfg.AuthMethod,
		cfg.Userinfo, cfg.RequireSignedUserinfo, cfg.UserinfoIssuer, cfg.IDTokenFirstClaims, cfg.TrustedAudiences, cfg.ClockLeeway,
		cfg.AuthParams, h.caSum})
	if err != nil {
		return fmt.Errorf("provider pool key: %w", err)
	}
	key := string(kb)
	v, _, err := clients.LoadOrNew(key, func() (caddy.Destructor, error) {
		cfg.HTTPClient = oidcflow.NewHTTPClientWithRoots(10*time.Second, 1<<20, h.caPool)
		c, err := oidcflow.New(cfg)
		if err != nil {
			return nil, err
		}
		return pooledClient{c}, nil
	})
	if err != nil {
		return err
	}
	h.clientKey = key
	h.client = v.(pooledClient).Client
	return nil
}

// pooledMemoryStore keeps the memory store alive across `caddy reload`: the new config's
// handlers take it from the pool before the old ones release it.
type pooledMemoryStore struct{ *session.MemoryStore }

func (p pooledMemoryStore) Destruct() error { return p.Close() }

var stores = caddy.NewUsagePool()

func (h *Handler) provisionStore(secrets [][]byte) error {
	if h.SessionStore != nil && h.SessionStore.Redis != nil {
		return h.provisionRedis(secrets)
	}
	maxSessions := defaultMaxSessions
	if h.SessionStore != nil && h.SessionStore.Memory != nil && h.SessionStore.Memory.MaxSessions > 0 {
		maxSessions = h.SessionStore.Memory.MaxSessions
	}
	const key = "memory"
	v, loaded, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		return pooledMemoryStore{session.NewMemoryStore(session.MemoryOptions{MaxSessions: maxSessions})}, nil
	})
	if err != nil {
		return err
	}
	h.storeKey = key
	ms := v.(pooledMemoryStore).MemoryStore
	if loaded {
		ms.SetMaxSessions(maxSessions)
	}
	h.store = ms
	h.registerSessionsGauge()
	return nil
}

// Validate checks the configuration. It runs after Provision, so placeholders are expanded.
func (h *Handler) Validate() error {
	if h.policyOnly {
		return nil // checked by provisionPolicyOnly
	}
	if h.Issuer == "" {
		return errors.New("issuer is required")
	}
	if h.ClientID == "" {
		return errors.New("client_id is required")
	}
	if err := oidcflow.Check(oidcflow.Config{
		Issuer: h.Issuer, ClientID: h.ClientID, ClientSecret: h.clientSecret, Scopes: h.Scopes,
		AuthMethod: h.TokenAuthMethod, Userinfo: h.Userinfo, RequireSignedUserinfo: h.UserinfoRequireSigned,
		UserinfoIssuer: h.UserinfoIssuer, AuthParams: h.AuthParams,
	}); err != nil {
		return err
	}
	switch h.LoginHintFormat {
	case "", provider.HintJWT:
	case provider.HintIDDataweb:
		if h.IdentityBinding != nil && h.clientSecret == "" {
			return errors.New("login_hint_format iddataweb needs client_secret: ID Dataweb's login_hint is signed HS256 with it")
		}
	default:
		return fmt.Errorf("login_hint_format must be jwt or iddataweb, not %q", h.LoginHintFormat)
	}
	if h.LoginHintEncryptionKey != "" && h.LoginHintFormat != provider.HintIDDataweb {
		return errors.New("login_hint_encryption_key is only used with login_hint_format iddataweb")
	}
	if !strings.HasPrefix(h.PathPrefix, "/") || strings.ContainsAny(h.PathPrefix, "?#*{}") || strings.TrimSuffix(h.PathPrefix, "/") == "" {
		return fmt.Errorf("path_prefix %q must be an absolute path other than /", h.PathPrefix)
	}
	if h.RedirectURL != "" {
		u, err := url.Parse(h.RedirectURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("redirect_url %q must be an absolute http(s) URL without query or fragment", h.RedirectURL)
		}
		if want := strings.TrimSuffix(h.PathPrefix, "/") + "/callback"; u.Path != want {
			return fmt.Errorf("redirect_url path is %q, but the callback is served at %q (path_prefix + /callback)", u.Path, want)
		}
		if u.Scheme == "http" && !h.InsecureCookie {
			return errors.New("redirect_url uses http, but cookies are Secure-only; use https, or set insecure_cookie for local development")
		}
	}
	if h.IdleTimeout < 0 || h.Lifetime < 0 || h.ClockLeeway < 0 {
		return errors.New("idle_timeout, lifetime and clock_leeway must not be negative")
	}
	if h.Lifetime > 0 && time.Duration(h.Lifetime) < time.Minute {
		return fmt.Errorf("lifetime %s is shorter than a minute", time.Duration(h.Lifetime))
	}
	if h.IdleTimeout > 0 && h.Lifetime > 0 && h.IdleTimeout > h.Lifetime {
		return fmt.Errorf("idle_timeout %s is longer than lifetime %s", time.Duration(h.IdleTimeout), time.Duration(h.Lifetime))
	}
	if h.TrustRefresh < 0 || (h.TrustRefresh > 0 && time.Duration(h.TrustRefresh) < time.Minute) {
		return fmt.Errorf("trust_refresh %s must be at least 1m", time.Duration(h.TrustRefresh))
	}
	if h.FeedbackEndpoint != "" {
		u, err := url.Parse(h.FeedbackEndpoint)
		if err != nil || u.Host == "" || u.User != nil || !(u.Scheme == "https" || u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
			return fmt.Errorf("feedback_endpoint %q must be an absolute https URL (plain http only on a loopback host)", h.FeedbackEndpoint)
		}
		if h.clientSecret == "" {
			return errors.New("feedback_endpoint needs client_secret: the feedback request is authenticated with an HMAC keyed with it")
		}
		if h.AliasClaim == "" {
			return errors.New("feedback_endpoint needs an alias claim to link: set `provider bindid` (alias_claim bindid_alias) or alias_claim; the generic profile has none")
		}
	}
	for name, v := range map[string]string{"alias_header": h.AliasHeader, "identity_binding header": bindHeaderOf(h.IdentityBinding)} {
		if v != "" && !validHeaderName(v) {
			return fmt.Errorf("%s %q is not a valid header name (letters, digits and '-')", name, v)
		}
	}
	if h.PostLogoutRedirectURL != "" {
		u, err := url.Parse(h.PostLogoutRedirectURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
			return fmt.Errorf("post_logout_redirect_url %q must be an absolute http(s) URL without fragment", h.PostLogoutRedirectURL)
		}
		if u.Scheme == "http" && !h.InsecureCookie {
			return errors.New("post_logout_redirect_url uses http; use https, or set insecure_cookie for local development")
		}
	}
	if time.Duration(h.ClockLeeway) > 5*time.Minute {
		return fmt.Errorf("clock_leeway %s is more than 5m; fix the clocks instead", time.Duration(h.ClockLeeway))
	}
	if h.CookieName != "" && !validCookieName(h.CookieName) {
		return fmt.Errorf("cookie_name %q may only contain letters, digits, '-' and '_'", h.CookieName)
	}
	if c := h.CIBA; c != nil && (c.MaxExpiry < 0 || c.HintInterval < 0 || c.StartsPerIP < 0) {
		return errors.New("ciba: max_expiry, hint_interval and starts_per_ip must not be negative")
	}
	if st := h.SessionStore; st != nil {
		if st.Memory != nil && st.Redis != nil {
			return errors.New("session_store: choose memory or redis, not both")
		}
		if st.Memory != nil && st.Memory.MaxSessions < 0 {
			return errors.New("session_store memory max_sessions must be positive")
		}
		if st.Redis != nil {
			if err := st.Redis.validate(); err != nil {
				return fmt.Errorf("session_store redis: %w", err)
			}
		}
	}
	return nil
}

func bindHeaderOf(c *IdentityBindingConfig) string {
	if c == nil {
		return ""
	}
	return c.Header
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return len(s) > 0 && len(s) <= 64
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validCookieName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return len(s) > 0 && len(s) <= 64
}

// Cleanup releases the pooled client and store. It works after a partial Provision.
func (h *Handler) Cleanup() error {
	var errs []error
	if h.clientKey != "" {
		if _, err := clients.Delete(h.clientKey); err != nil {
			errs = append(errs, err)
		}
		h.clientKey = ""
	}
	if h.storeKey != "" {
		if _, err := stores.Delete(h.storeKey); err != nil {
			errs = append(errs, err)
		}
		h.storeKey = ""
	}
	if h.assertKey != "" {
		if _, err := assertionKeyPool.Delete(h.assertKey); err != nil {
			errs = append(errs, err)
		}
		h.assertKey = ""
	}
	return errors.Join(errs...)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddy.Destructor            = pooledClient{}
	_ caddy.Destructor            = pooledMemoryStore{}
)
