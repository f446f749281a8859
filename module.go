// Package trustgate is a Caddy v2 HTTP handler that puts OpenID Connect login in front of
// applications that know nothing about it, and forwards the user's verified identity and
// trust signals to them as request headers.
//
// The Caddy side lives here (module registration, configuration, ServeHTTP); the protocol
// is in oidcflow, sessions and cookies in session, and claims-to-headers in trust.
package trustgate

import (
	"cmp"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/provider"
	"github.com/trustgate/trustgate/session"
	"github.com/trustgate/trustgate/trust"
)

func init() {
	caddy.RegisterModule(RequireHandler{})
	caddy.RegisterModule(Handler{})
}

// Defaults, documented on the fields that use them.
const (
	defaultPathPrefix  = "/.trustgate"
	defaultIdleTimeout = time.Hour
	defaultLifetime    = 12 * time.Hour
	defaultCookieName  = "trustgate"
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

	// ErrorPages chooses who renders a refusal (401, 403, 503, a failed sign-in, ...):
	// "gateway" (default), the gateway's own plain page for a browser and JSON for an API
	// client; or "caddy": the refusal is returned to Caddy as an error, so the site's
	// handle_errors routes render it, with {http.error.status_code}, {http.error.message}
	// and {http.auth.trustgate.reason} (headers such as Retry-After and WWW-Authenticate
	// are set either way). Redirects to the provider are not refusals and are unchanged.
	ErrorPages string `json:"error_pages,omitempty"`

	// RedirectURL is the absolute callback URL registered at the provider, e.g.
	// https://app.example.com/.trustgate/callback. Default: built from the request's own
	// scheme and Host (X-Forwarded-* headers are never used). Set it when the site accepts
	// more than one Host name or runs behind a TLS-terminating proxy.
	RedirectURL string `json:"redirect_url,omitempty"`

	// TokenAuthMethod is how the gateway authenticates to the provider (token, PAR,
	// backchannel authentication and introspection endpoints): client_secret_basic,
	// client_secret_post, none, private_key_jwt (with ClientKeys), or tls_client_auth /
	// self_signed_tls_client_auth (with ClientCertificate). Default:
	// client_secret_basic (none when there is no client secret). Caddyfile:
	// token_auth_method <method>, or client_auth <method> [{ key ... alg ... kid ... }].
	TokenAuthMethod string `json:"token_auth_method,omitempty"`

	// RequestObject "signed" sends authorization requests as request objects (JAR, RFC
	// 9101) signed with the first of ClientKeys. Caddyfile: request_object signed
	RequestObject string `json:"request_object,omitempty"`

	// PAR says when the authorization request is pushed to the provider first (RFC 9126),
	// so that the browser carries only client_id and a request_uri: "" (default: when the
	// provider requires it), "on" (whenever it offers it), "required" (a provider without a
	// PAR endpoint cannot start a login) or "off". Caddyfile: par [required|off]
	PAR string `json:"par,omitempty"`

	// ClientKeys are the gateway's private keys for private_key_jwt; the first signs, all
	// are published at <path_prefix>/client-jwks.json (rotation).
	ClientKeys []ClientKeyConfig `json:"client_keys,omitempty"`

	// ClientCertificate is the TLS client certificate of token_auth_method
	// tls_client_auth or self_signed_tls_client_auth (RFC 8705). Caddyfile:
	// client_auth tls_client_auth { cert <pem> key <pem> }
	ClientCertificate *ClientCertConfig `json:"client_certificate,omitempty"`

	// DPoP makes the gateway prove possession of a key of its own on token requests,
	// pushed requests and userinfo calls (RFC 9449), so the provider binds the tokens to it.
	// Caddyfile: dpop [{ key <pem> alg ES256|PS256 }]
	DPoP *DPoPConfig `json:"dpop,omitempty"`

	// Profile "fapi2" applies the FAPI 2.0 Security Profile: PAR required, PKCE S256,
	// private_key_jwt or mutual TLS, DPoP or certificate-bound tokens, the authorization
	// response's iss required (RFC 9207), PS256, ES256 or EdDSA only. A setting that
	// contradicts it is a configuration error. Caddyfile: profile fapi2
	Profile string `json:"profile,omitempty"`

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

	base // the services every feature shares (base.go)
	// sessions reads and writes the session cookies and renders sessions (sessions.go).
	sessions *jar
	// feedback reports linked aliases to the provider (feedback.go).
	feedback *aliasFeedback
	// login runs the authorization-code flow (login.go).
	login *loginFlow
	// assertion signs X-Auth-Assertion and serves its keys (assertion.go).
	assertion *asserter
	// refresher renews sessions' tokens (refresh.go).
	refresher *refresher
	// logout ends sessions: RP-initiated and back-channel logout (logout.go).
	logout *logoutFlow
	// gate checks route policies and starts step-up logins (policy.go).
	gate *policyGate
	// ciba is CIBA for browserless clients (ciba*.go); its endpoints answer 404 without ciba.
	ciba *cibaFlow
	// bearer lets API requests in by their access token (bearer.go); nil without bearer.
	bearer *bearerGate
	// linker acts on the application's linking headers (link.go).
	linker       *linker
	profile      *provider.Profile // the provider profile (never nil after Provision)
	clientKey    string
	storeKey     string
	redirectURL  *url.URL
	clientSecret string         // expanded
	material     clientMaterial // parsed ClientKeys, ClientCertificate and DPoP
	policy       *trust.Policy  // the block's own require rules, compiled; nil: none
	assert       *assertionKeys
	assertKey    string            // assertionKeyPool key, for Cleanup
	storage      certmagic.Storage // tests: instead of Caddy's configured storage
	aliasHeader  string            // canonical AliasHeader
	bindHeader   string            // canonical IdentityBinding.Header

	// metricsRegistry, when set (tests), is used instead of the config's metrics registry.
	metricsRegistry *prometheus.Registry
	// health caches the answer of <path_prefix>/healthz for a few seconds.
	health *healthCheck

	caPool *x509.CertPool // tls_trusted_ca_certs, nil for the system's CAs
	caSum  string         // hex SHA-256 of the tls_trusted_ca_certs file, "" without it
}

// Values of error_pages.
const (
	errorPagesGateway = "gateway"
	errorPagesCaddy   = "caddy"
)

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
	h.bg = newBackground()
	if h.now == nil {
		h.now = time.Now // tests may set another clock before provisioning
	}
	h.metrics, h.emitEvent = metricsFor(ctx, h.metricsRegistry, h.emitEvent, h.logger)
	if h.Issuer == "" && h.Require != nil && h.Provider == "" && len(policyBlockExtras(h)) == 0 {
		return errors.New("a trustgate handler without issuer that has require rules is a route policy block: in JSON use the handler trustgate_require (the Caddyfile does this for `trustgate { require ... }`)")
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
	var err error
	if h.material, err = loadClientMaterial(h.ClientKeys, h.ClientCertificate, h.DPoP, repl); err != nil {
		return err
	}
	h.RedirectURL = repl.ReplaceAll(h.RedirectURL, "")
	h.PostLogoutRedirectURL = repl.ReplaceAll(h.PostLogoutRedirectURL, "")
	h.FeedbackEndpoint = repl.ReplaceAll(h.FeedbackEndpoint, "")
	if h.PathPrefix == "" {
		h.PathPrefix = defaultPathPrefix
	}
	h.refuser = web.Refuser{CaddyErrors: h.ErrorPages == errorPagesCaddy}
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

	h.sessions = &jar{base: &h.base, issuer: h.Issuer, clientID: h.ClientID, insecure: h.InsecureCookie, cookieName: h.CookieName, loginURL: h.PathPrefix + "/login",
		lifetime: time.Duration(h.Lifetime), idleTimeout: time.Duration(h.IdleTimeout), profile: h.profile}
	if !h.InsecureCookie {
		h.sessions.cookieName = "__Host-" + h.CookieName
	} else {
		h.logger.Warn("insecure_cookie is set: session cookies are sent over plain http; use this for local development only")
	}
	h.sessions.txPrefix = h.sessions.cookieName + "_tx_"
	if err := h.provisionTrust(); err != nil {
		return err
	}
	if h.caPool, h.caSum, err = loadTrustedCAs(h.TLSTrustedCACerts, repl); err != nil {
		return err
	}
	hints, err := hintSourceFor(h.LoginHintEncryptionKey, h.caPool, h.caSum)
	if err != nil {
		return err
	}
	if hints == nil && h.IdentityBinding != nil && h.LoginHintFormat == provider.HintIDDataweb {
		h.logger.Warn("identity binding sends the application's profile (name, birth date, address, phone) as a signed but readable login_hint in the URL to the provider; "+
			"configure login_hint_encryption_key with the provider's key, as ID Dataweb recommends (a profile with ssn4/ssn9 is never sent without it)",
			zap.String("reason", "bind_hint_unencrypted"))
	}
	if h.Assertion != nil || h.CIBA != nil || (h.IdentityBinding != nil && h.LoginHintFormat != provider.HintIDDataweb) {
		// The binding's login_hint (jwt format) and CIBA's transaction confirmations are
		// signed with the assertion keys.
		if h.assert, h.assertKey, err = loadAssertionKeys(ctx, h.Assertion, h.storage, h.logger); err != nil {
			return err
		}
	}
	h.assertion = &asserter{base: &h.base, cfg: h.Assertion, keys: h.assert, redirect: h.redirectURL, trustOpts: h.sessions.trustOpts}
	h.health = &healthCheck{base: &h.base}
	h.aliasHeader = http.CanonicalHeaderKey(cmp.Or(h.AliasHeader, defaultAliasHeader))
	if h.IdentityBinding != nil {
		h.bindHeader = http.CanonicalHeaderKey(cmp.Or(h.IdentityBinding.Header, defaultBindHeader))
	}

	h.feedback = &aliasFeedback{base: &h.base, sessions: h.sessions, endpoint: h.FeedbackEndpoint, aliasClaim: h.AliasClaim}
	h.refresher = &refresher{base: &h.base, sessions: h.sessions, trustRefresh: time.Duration(h.TrustRefresh), aliasClaim: h.AliasClaim}
	h.logout = &logoutFlow{base: &h.base, sessions: h.sessions, issuer: h.Issuer, clientID: h.ClientID, prefix: h.PathPrefix,
		postLogoutURL: h.PostLogoutRedirectURL, clockLeeway: time.Duration(h.ClockLeeway), limit: &windowLimiter{max: maxLogoutRequestsPerSecond}}
	h.login = &loginFlow{base: &h.base, sessions: h.sessions, feedback: h.feedback, issuer: h.Issuer, prefix: h.PathPrefix,
		redirectURL: h.RedirectURL, acrLevels: h.ACRLevels, binding: h.IdentityBinding}
	h.linker = &linker{base: &h.base, login: h.login, feedback: h.feedback, assertion: h.assertion, profile: h.profile,
		issuer: h.Issuer, clientSecret: h.clientSecret, linkAliases: h.FeedbackEndpoint != "", binding: h.IdentityBinding,
		hintFormat: h.LoginHintFormat, hintSource: hints, aliasHeader: h.aliasHeader, bindHeader: h.bindHeader}
	// Built also without ciba: its endpoints then answer 404.
	records := &cibaRecords{base: &h.base, sessions: h.sessions, cfg: h.CIBA, issuer: h.Issuer, clientID: h.ClientID}
	h.ciba = &cibaFlow{base: &h.base, sessions: h.sessions, records: records, login: h.login, assertion: h.assertion,
		cfg: h.CIBA, issuer: h.Issuer, clientID: h.ClientID, prefix: h.PathPrefix}
	h.gate = &policyGate{base: &h.base, login: h.login, own: h.policy, levels: h.ACRLevels, allowUnverifiedEmail: h.AllowUnverifiedEmail, issuer: h.Issuer}

	secrets, err := cookieSecrets(h.Secrets, repl, h.logger)
	if err != nil {
		return err
	}
	h.sessions.decoded = newDecodeCache(decodeCacheSize)
	if h.sessions.codec, err = session.NewCodec(secrets, time.Duration(h.Lifetime)); err != nil {
		return fmt.Errorf("session cookie keys: %w", err)
	}
	if h.sessions.txCodec, err = session.NewCodec(secrets, loginTimeout); err != nil {
		return fmt.Errorf("login cookie keys: %w", err)
	}

	if h.client, h.clientKey, err = pooledOIDCClient(oidcConfig(h), h.caPool, h.caSum, h.material.sum); err != nil {
		return err
	}
	if h.Bearer != nil {
		if err := h.Bearer.provision(); err != nil {
			return err
		}
		h.bearer = &bearerGate{base: &h.base, sessions: h.sessions, gate: h.gate, assertion: h.assertion, cfg: h.Bearer}
	}
	h.store, h.storeKey, err = openStore(h.SessionStore, secrets, h.logger, h.metrics, func() session.Store { return h.store })
	return err
}

// Cleanup releases the pooled client and store. It works after a partial Provision.
func (h *Handler) Cleanup() error {
	var errs []error
	if h.bg != nil && !h.bg.stop(2*time.Second, time.Second) {
		h.logger.Warn("background work (alias feedback) did not end within 3s of the reload or stop; it was cancelled")
	}
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
