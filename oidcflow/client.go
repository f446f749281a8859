package oidcflow

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"
)

// Token endpoint client authentication methods.
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthNone              = "none" // public client: PKCE only
)

// Userinfo request methods.
const (
	UserinfoGet  = "get"
	UserinfoPost = "post"
	UserinfoOff  = "off"
)

// Config configures a Client. Only Issuer and ClientID are required.
type Config struct {
	// Issuer is the OP's issuer identifier, compared exactly (no trailing-slash folding) with
	// the discovery document's "issuer" and with every token's "iss". It must be https, or
	// http on a loopback host (development).
	Issuer       string
	ClientID     string
	ClientSecret string
	// Scopes requested; "openid" is always included. Default: openid email profile.
	Scopes []string
	// AuthMethod is the token endpoint client authentication: client_secret_basic (default;
	// none when ClientSecret is empty), client_secret_post, none, private_key_jwt, or
	// tls_client_auth / self_signed_tls_client_auth (with ClientCertificate).
	AuthMethod string
	// ClientCertificate is the client's TLS certificate for the mutual-TLS methods (RFC
	// 8705). HTTPClient must present it (NewHTTPClientFor); the Client uses it to choose
	// the provider's mtls_endpoint_aliases.
	ClientCertificate *tls.Certificate
	// DPoPKey, when set, makes every token request, pushed request and userinfo call carry
	// a DPoP proof signed with it (RFC 9449): ES256 with an EC P-256 key or PS256 with RSA.
	// A nil Key asks New for a generated EC P-256 key. Its KID is not used.
	DPoPKey *ClientKey
	// Profile "fapi2" applies the FAPI 2.0 Security Profile (checkFAPI2); "" applies none.
	Profile string
	// RequestObject "signed" sends authorization requests as request objects signed with
	// ClientKeys[0] (JAR, RFC 9101); "" sends plain parameters.
	RequestObject string
	// PAR says when authorization requests are pushed (RFC 9126): PARAuto (default: when
	// the OP requires it), PAROn (whenever the OP offers it), PARRequired or PAROff.
	PAR string
	// ClientKeys are the client's private keys for private_key_jwt; the first one signs,
	// all are published by ClientJWKS (rotation).
	ClientKeys []ClientKey
	// Userinfo is how the userinfo endpoint is called: get (default), post or off.
	Userinfo string
	// RequireSignedUserinfo rejects a userinfo answer that is not a signed JWT
	// (application/jwt), for clients registered with userinfo_signed_response_alg.
	RequireSignedUserinfo bool
	// UserinfoIssuer is the exact "iss" a signed userinfo must carry, for OPs whose
	// userinfo is issued by a service of its own (BankID's UserInfo API). The signature
	// (the OP's keys, the allowed algorithms), aud and sub are checked as always.
	// Default: Issuer.
	UserinfoIssuer string
	// IDTokenFirstClaims are claims the ID token decides, like acr, amr and auth_time:
	// userinfo fills them only when the ID token has none (a provider's verdict, such as
	// ID Dataweb's policyDecision and scores).
	IDTokenFirstClaims []string
	// TrustedAudiences are audiences besides ClientID that an ID token may also carry.
	TrustedAudiences []string
	// ClockLeeway tolerates clock skew on exp, nbf and iat. Default: 60s.
	ClockLeeway time.Duration
	// MaxTokenAge is how old (by iat) an ID token may be. Default: 10m.
	MaxTokenAge time.Duration
	// AuthParams are extra parameters of every authorization request (Google hd, Entra
	// domain_hint, Auth0 audience, prompt). Names the gateway sets itself are refused
	// (ReservedAuthParams); a prompt the gateway sets for one request (step-up) wins.
	AuthParams map[string]string
	// HTTPClient makes every call to the OP. Default: NewHTTPClient(10s, 1 MiB).
	HTTPClient *http.Client
	// DiscoveryTimeout bounds one discovery attempt. Default: 10s.
	DiscoveryTimeout time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// ReservedAuthParams are the authorization request parameters the gateway owns: they carry
// the login's security (state, nonce, PKCE, redirect_uri) or are set per request (login_hint,
// acr_values, max_age for step-up and identity binding), so Config.AuthParams may not set them.
var ReservedAuthParams = []string{
	"state", "nonce", "redirect_uri", "client_id", "response_type", "response_mode",
	"code_challenge", "code_challenge_method", "scope", "request", "request_uri",
	"login_hint", "id_token_hint", "claims", "acr_values", "max_age",
}

// MaxTokenBytes caps the size of an ID token or signed userinfo accepted for parsing.
const MaxTokenBytes = 64 << 10

// Client is the gateway's view of one OP and one client registration. It is safe for
// concurrent use and meant to be shared.
type Client struct {
	cfg Config
	// bg carries the HTTP client for work not tied to one request (discovery, JWKS).
	bg     context.Context
	cancel context.CancelFunc

	group singleflight.Group

	mu       sync.Mutex
	prov     *provider // nil until discovery succeeded
	lastErr  error     // last discovery failure, returned until retryAt
	retryAt  time.Time
	failures int
}

// provider is what discovery yields; immutable once built.
type provider struct {
	oauth      oauth2.Config
	idVerifier *oidc.IDTokenVerifier
	uiVerifier *oidc.IDTokenVerifier
	rfVerifier *oidc.IDTokenVerifier // refreshed ID tokens: iss and aud checked by Refresh
	keys       *keySet
	idAlgs     []string // the ID token (and logout token) alg allow-list
	provider   *oidc.Provider
	meta       Metadata
}

// Metadata holds the discovery fields the gateway uses beyond go-oidc's own.
type Metadata struct {
	AuthorizationEndpoint       string   `json:"authorization_endpoint"`
	TokenEndpoint               string   `json:"token_endpoint"`
	UserinfoEndpoint            string   `json:"userinfo_endpoint"`
	JWKSURI                     string   `json:"jwks_uri"`
	EndSessionEndpoint          string   `json:"end_session_endpoint"`
	IDTokenSigningAlgs          []string `json:"id_token_signing_alg_values_supported"`
	UserinfoSigningAlgs         []string `json:"userinfo_signing_alg_values_supported"`
	CodeChallengeMethods        []string `json:"code_challenge_methods_supported"`
	AuthorizationResponseIssuer bool     `json:"authorization_response_iss_parameter_supported"`
	// SessionFeedbackEndpoint is BindID's session feedback URL, a non-standard discovery
	// field (session_feedback_endpoint). "" when the OP advertises none, or advertises a
	// value that is not an absolute https URL (http only when the issuer and the endpoint
	// are on loopback hosts): an unusable optional extension is ignored, not fatal.
	SessionFeedbackEndpoint string `json:"session_feedback_endpoint"`
	// BackchannelAuthenticationEndpoint is the CIBA endpoint (CIBA Core 4); "" when the OP
	// offers none. When present it must be an absolute https URL (http only on loopback),
	// like the other endpoints, or discovery fails.
	BackchannelAuthenticationEndpoint string `json:"backchannel_authentication_endpoint"`
	// BackchannelTokenDeliveryModes are the CIBA modes the OP supports (poll, ping, push);
	// the gateway uses poll, and assumes it when the list is absent.
	BackchannelTokenDeliveryModes []string `json:"backchannel_token_delivery_modes_supported"`
	// BackchannelUserCodeParameter reports that the OP accepts user_code in a backchannel
	// authentication request.
	BackchannelUserCodeParameter bool `json:"backchannel_user_code_parameter_supported"`
	// IntrospectionEndpoint is the RFC 7662 token introspection endpoint (RFC 8414
	// introspection_endpoint); "" when the OP offers none. When present it must be an
	// absolute https URL (http only on loopback), like the other endpoints.
	IntrospectionEndpoint string `json:"introspection_endpoint"`
	// PushedAuthorizationRequestEndpoint is the RFC 9126 PAR endpoint; "" when the OP
	// offers none. When present it must be an absolute https URL (http only on loopback).
	PushedAuthorizationRequestEndpoint string `json:"pushed_authorization_request_endpoint"`
	// RequirePushedAuthorizationRequests: the OP accepts authorization requests only
	// through PAR (RFC 9126 §5).
	RequirePushedAuthorizationRequests bool `json:"require_pushed_authorization_requests"`
	// MTLSEndpointAliases are the endpoints a mutual-TLS client calls instead of the ones
	// above (RFC 8705 §5); used only with tls_client_auth.
	MTLSEndpointAliases map[string]string `json:"mtls_endpoint_aliases"`
	// TLSClientCertificateBoundAccessTokens: the OP binds access tokens to the client
	// certificate (RFC 8705 §3).
	TLSClientCertificateBoundAccessTokens bool `json:"tls_client_certificate_bound_access_tokens"`
	// DPoPSigningAlgs are the DPoP proof algorithms the OP accepts (RFC 9449 §5.1); nil
	// when it offers no DPoP.
	DPoPSigningAlgs []string `json:"dpop_signing_alg_values_supported"`
}

// New checks cfg and returns a Client. It does no network I/O.
func New(cfg Config) (*Client, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg}
	if cfg.AuthMethod == AuthPrivateKeyJWT || cfg.DPoPKey != nil {
		// Every client authentication to the provider, x/oauth2's included, gets a fresh
		// assertion (clientauth.go), and every call that obtains or presents a token a
		// fresh DPoP proof (dpop.go). The proof is outside: its nonce retry then gets a
		// fresh assertion too.
		hc := *cfg.HTTPClient
		next := hc.Transport
		if next == nil {
			next = http.DefaultTransport
		}
		if cfg.AuthMethod == AuthPrivateKeyJWT {
			next = &assertingTransport{next: next, c: c}
		}
		if cfg.DPoPKey != nil {
			next = &dpopTransport{next: next, c: c}
		}
		hc.Transport = next
		c.cfg.HTTPClient = &hc
	}
	c.bg, c.cancel = context.WithCancel(oidc.ClientContext(context.Background(), c.cfg.HTTPClient))
	return c, nil
}

// Check reports what New would reject in cfg, without creating anything.
func Check(cfg Config) error {
	_, err := withDefaults(cfg)
	return err
}

func withDefaults(cfg Config) (Config, error) {
	if err := checkIssuer(cfg.Issuer); err != nil {
		return cfg, err
	}
	if cfg.ClientID == "" {
		return cfg, errors.New("client id is required")
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	if !slices.Contains(cfg.Scopes, oidc.ScopeOpenID) {
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.AuthParams)) {
		if name == "" {
			return cfg, errors.New("auth_params: a parameter name is empty")
		}
		if slices.Contains(ReservedAuthParams, name) {
			return cfg, fmt.Errorf("auth_params: %q is set by the gateway and cannot be configured (reserved: %s)", name, strings.Join(ReservedAuthParams, ", "))
		}
	}
	switch cfg.AuthMethod {
	case "":
		cfg.AuthMethod = AuthClientSecretBasic
		if cfg.ClientSecret == "" {
			cfg.AuthMethod = AuthNone
		}
	case AuthClientSecretBasic, AuthClientSecretPost:
		if cfg.ClientSecret == "" {
			return cfg, fmt.Errorf("token auth method %s needs a client secret", cfg.AuthMethod)
		}
	case AuthNone:
	case AuthPrivateKeyJWT:
		if err := checkClientKeys(cfg.ClientKeys); err != nil {
			return cfg, err
		}
	case AuthTLSClientAuth, AuthSelfSignedTLSClientAuth:
		if err := checkClientCertificate(cfg.ClientCertificate); err != nil {
			return cfg, err
		}
	default:
		return cfg, fmt.Errorf("unknown token auth method %q (want %s, %s, %s, %s, %s or %s)", cfg.AuthMethod,
			AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT, AuthTLSClientAuth, AuthSelfSignedTLSClientAuth, AuthNone)
	}
	if k := cfg.DPoPKey; k != nil && k.Key == nil {
		if k.Alg != "" && k.Alg != "ES256" {
			return cfg, fmt.Errorf("dpop: a generated key is EC P-256 (ES256); give a key to sign with %s", k.Alg)
		}
		gen, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return cfg, fmt.Errorf("dpop: generating a key: %w", err)
		}
		cfg.DPoPKey = &ClientKey{Key: gen, Alg: "ES256"}
	}
	if cfg.DPoPKey != nil {
		if err := checkDPoPKey(cfg.DPoPKey); err != nil {
			return cfg, err
		}
	}
	switch cfg.RequestObject {
	case "":
	case RequestObjectSigned:
		if err := checkClientKeys(cfg.ClientKeys); err != nil {
			return cfg, fmt.Errorf("request_object signed: %w (the client's keys, from client_auth)", err)
		}
	default:
		return cfg, fmt.Errorf("request_object must be signed, not %q", cfg.RequestObject)
	}
	switch cfg.PAR {
	case PARAuto, PAROn, PARRequired, PAROff:
	default:
		return cfg, fmt.Errorf("par must be on, required or off, not %q", cfg.PAR)
	}
	switch cfg.Profile {
	case "":
	case ProfileFAPI2:
		if err := checkFAPI2(&cfg); err != nil {
			return cfg, err
		}
	default:
		return cfg, fmt.Errorf("profile must be fapi2, not %q", cfg.Profile)
	}
	switch cfg.Userinfo {
	case "":
		cfg.Userinfo = UserinfoGet
	case UserinfoGet, UserinfoPost, UserinfoOff:
	default:
		return cfg, fmt.Errorf("unknown userinfo method %q (want get, post or off)", cfg.Userinfo)
	}
	if cfg.RequireSignedUserinfo && cfg.Userinfo == UserinfoOff {
		return cfg, errors.New("signed userinfo is required but userinfo is off")
	}
	if cfg.UserinfoIssuer == "" {
		cfg.UserinfoIssuer = cfg.Issuer
	} else if err := checkIssuer(cfg.UserinfoIssuer); err != nil {
		return cfg, fmt.Errorf("userinfo issuer: %w", err)
	}
	if cfg.ClockLeeway <= 0 {
		cfg.ClockLeeway = 60 * time.Second
	}
	if cfg.MaxTokenAge <= 0 {
		cfg.MaxTokenAge = 10 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = NewHTTPClient(10*time.Second, 1<<20)
	}
	if cfg.DiscoveryTimeout <= 0 {
		cfg.DiscoveryTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}

// Config returns the effective configuration (defaults filled in).
func (c *Client) Config() Config { return c.cfg }

// Close stops background work (JWKS refreshes in flight).
func (c *Client) Close() { c.cancel() }

// checkIssuer accepts https issuers, and http only on loopback hosts.
func checkIssuer(issuer string) error {
	if issuer == "" {
		return errors.New("issuer is required")
	}
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("issuer %q is not an absolute URL without query or fragment", issuer)
	}
	return checkEndpointURL("issuer", u, u)
}

func checkEndpointURL(what string, u, issuer *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) && isLoopback(issuer.Hostname()) {
			return nil
		}
		return fmt.Errorf("%s %q uses plain http; only https is accepted (http only on loopback hosts, for development)", what, u.Redacted())
	default:
		return fmt.Errorf("%s %q must be an https URL", what, u.Redacted())
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// backoff returns the wait after n consecutive discovery failures: 1s, 2s, 4s ... capped at 1m.
func backoff(n int) time.Duration {
	n = min(max(n, 1), 7)
	return min(time.Duration(1<<(n-1))*time.Second, time.Minute)
}

// Discover fetches the OP metadata if it is not cached yet. Concurrent callers share one
// attempt; after a failure, callers get the same error until the backoff has passed.
func (c *Client) Discover(ctx context.Context) (Metadata, error) {
	p, err := c.discover(ctx)
	if err != nil {
		return Metadata{}, err
	}
	return p.meta, nil
}

// RetryAfter reports how long until the next discovery attempt, when discovery is failing.
func (c *Client) RetryAfter() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prov != nil || c.lastErr == nil {
		return 0
	}
	return max(c.retryAt.Sub(c.cfg.Now()), 0)
}

func (c *Client) discover(ctx context.Context) (*provider, error) {
	if p, err := c.cached(); p != nil || err != nil {
		return p, err
	}

	// One attempt for all concurrent callers. It runs on the client's own context, so one
	// caller giving up does not fail the others; each caller still stops waiting at its
	// own deadline.
	ch := c.group.DoChan("discover", func() (any, error) {
		// Re-check: an attempt may have finished between the check above and this call.
		if p, err := c.cached(); p != nil || err != nil {
			return p, err
		}
		p, err := c.fetchProvider()
		c.mu.Lock()
		defer c.mu.Unlock()
		if err != nil {
			c.failures++
			c.lastErr = err
			c.retryAt = c.cfg.Now().Add(backoff(c.failures))
			return nil, err
		}
		c.prov, c.lastErr, c.failures = p, nil, 0
		return p, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*provider), nil
	case <-ctx.Done():
		return nil, newErr(CodeDiscovery, true, "waiting for discovery of %s: %w", c.cfg.Issuer, ctx.Err())
	}
}

// cached returns the discovered provider, or the last failure while its backoff lasts; both
// nil when a discovery attempt is due.
func (c *Client) cached() (*provider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prov != nil {
		return c.prov, nil
	}
	if c.lastErr != nil && c.cfg.Now().Before(c.retryAt) {
		return nil, c.lastErr
	}
	return nil, nil
}

func (c *Client) fetchProvider() (*provider, error) {
	ctx, cancel := context.WithTimeout(c.bg, c.cfg.DiscoveryTimeout)
	defer cancel()
	op, err := oidc.NewProvider(ctx, c.cfg.Issuer)
	if err != nil {
		var mismatch *oidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			return nil, newErr(CodeDiscovery, false, "discovery document of %s names issuer %q; the issuer must match exactly (check trailing slash and host)", c.cfg.Issuer, mismatch.Discovered)
		}
		return nil, newErr(CodeDiscovery, true, "fetching %s/.well-known/openid-configuration: %w", strings.TrimSuffix(c.cfg.Issuer, "/"), err)
	}
	var meta Metadata
	if err := op.Claims(&meta); err != nil {
		return nil, newErr(CodeDiscovery, false, "decoding discovery document: %w", err)
	}
	if usesMTLS(c.cfg.AuthMethod) {
		applyMTLSAliases(&meta)
	}
	iss, _ := url.Parse(c.cfg.Issuer)
	for _, ep := range []struct{ name, val string }{
		{"authorization_endpoint", meta.AuthorizationEndpoint},
		{"token_endpoint", meta.TokenEndpoint},
		{"jwks_uri", meta.JWKSURI},
		{"userinfo_endpoint", meta.UserinfoEndpoint},
		{"end_session_endpoint", meta.EndSessionEndpoint},
		{"backchannel_authentication_endpoint", meta.BackchannelAuthenticationEndpoint},
		{"introspection_endpoint", meta.IntrospectionEndpoint},
		{"pushed_authorization_request_endpoint", meta.PushedAuthorizationRequestEndpoint},
	} {
		if ep.val == "" {
			if ep.name == "authorization_endpoint" || ep.name == "token_endpoint" || ep.name == "jwks_uri" {
				return nil, newErr(CodeDiscovery, false, "discovery document has no %s", ep.name)
			}
			continue
		}
		u, err := url.Parse(ep.val)
		if err != nil || u.Host == "" {
			return nil, newErr(CodeDiscovery, false, "discovery document %s is not an absolute URL", ep.name)
		}
		if err := checkEndpointURL(ep.name, u, iss); err != nil {
			return nil, newErr(CodeDiscovery, false, "%w", err)
		}
	}
	if ep := meta.SessionFeedbackEndpoint; ep != "" {
		if u, err := url.Parse(ep); err != nil || u.Host == "" || u.Fragment != "" || checkEndpointURL("session_feedback_endpoint", u, iss) != nil {
			meta.SessionFeedbackEndpoint = ""
		}
	}
	if len(meta.CodeChallengeMethods) > 0 && !slices.Contains(meta.CodeChallengeMethods, "S256") {
		return nil, newErr(CodeDiscovery, false, "the OP does not support PKCE S256 (code_challenge_methods_supported=%v)", meta.CodeChallengeMethods)
	}

	// Signing algorithms: what the OP advertises, restricted to the asymmetric ones go-oidc
	// supports (never "none", never HS*). An OP that advertises nothing gets RS256 only.
	idAlgs := allowedAlgs(meta.IDTokenSigningAlgs)
	uiAlgs := allowedAlgs(meta.UserinfoSigningAlgs)
	if len(meta.UserinfoSigningAlgs) == 0 {
		uiAlgs = idAlgs
	}
	if c.cfg.Profile == ProfileFAPI2 {
		idAlgs = slices.DeleteFunc(idAlgs, func(a string) bool { return !slices.Contains(fapi2Algs, a) })
		uiAlgs = slices.DeleteFunc(uiAlgs, func(a string) bool { return !slices.Contains(fapi2Algs, a) })
		if len(uiAlgs) == 0 {
			// An empty list would let go-oidc fall back to RS256.
			uiAlgs = idAlgs
		}
		if c.cfg.DPoPKey == nil && !meta.TLSClientCertificateBoundAccessTokens {
			return nil, newErr(CodeDiscovery, false, "profile fapi2 with mutual TLS and without dpop needs certificate-bound access tokens, and the OP's discovery document does not say tls_client_certificate_bound_access_tokens; turn on dpop")
		}
	}
	if k := c.cfg.DPoPKey; k != nil && meta.DPoPSigningAlgs != nil && !slices.Contains(meta.DPoPSigningAlgs, k.Alg) {
		return nil, newErr(CodeDiscovery, false, "dpop signs with %s, but the OP accepts DPoP proofs signed with %v only (dpop_signing_alg_values_supported)", k.Alg, meta.DPoPSigningAlgs)
	}
	if len(idAlgs) == 0 {
		if c.cfg.Profile == ProfileFAPI2 {
			return nil, newErr(CodeDiscovery, false, "profile fapi2 accepts ID tokens signed with PS256, ES256 or EdDSA, and the OP advertises none of them (id_token_signing_alg_values_supported=%v)", meta.IDTokenSigningAlgs)
		}
		return nil, newErr(CodeDiscovery, false, "the OP advertises no supported ID token signing algorithm (id_token_signing_alg_values_supported=%v)", meta.IDTokenSigningAlgs)
	}

	// Expiry is checked by verifyIDToken with an explicit leeway; go-oidc has none for exp.
	// One key set (one rate-limited JWKS cache) for every verifier and for logout tokens.
	ks := newKeySet(c.bg, meta.JWKSURI, c.cfg.HTTPClient, c.cfg.DiscoveryTimeout, c.cfg.Now)
	keys := oidc.NewVerifier(c.cfg.Issuer, ks, &oidc.Config{ClientID: c.cfg.ClientID, SupportedSigningAlgs: idAlgs, SkipExpiryCheck: true})
	// Signed userinfo: iss is compared by userinfo itself (with UserinfoIssuer), so that a
	// mismatch has its own reason code and names both values.
	ui := oidc.NewVerifier(c.cfg.Issuer, ks, &oidc.Config{ClientID: c.cfg.ClientID, SupportedSigningAlgs: uiAlgs, SkipExpiryCheck: true, SkipIssuerCheck: true})
	// A refreshed ID token's iss and aud are compared with the session's by Refresh itself,
	// so that a change is reported as an identity mismatch (OIDC Core 12.2).
	rf := oidc.NewVerifier(c.cfg.Issuer, ks, &oidc.Config{SkipIssuerCheck: true, SkipClientIDCheck: true, SupportedSigningAlgs: idAlgs, SkipExpiryCheck: true})

	authStyle := oauth2.AuthStyleInHeader
	if c.cfg.AuthMethod != AuthClientSecretBasic {
		authStyle = oauth2.AuthStyleInParams
	}
	// x/oauth2 sends the secret it is given; only the secret methods may send one
	// (private_key_jwt's assertion is added by assertingTransport).
	secret := c.cfg.ClientSecret
	if c.cfg.AuthMethod != AuthClientSecretBasic && c.cfg.AuthMethod != AuthClientSecretPost {
		secret = ""
	}
	return &provider{
		oauth: oauth2.Config{
			ClientID:     c.cfg.ClientID,
			ClientSecret: secret,
			Scopes:       c.cfg.Scopes,
			Endpoint: oauth2.Endpoint{
				AuthURL:   meta.AuthorizationEndpoint,
				TokenURL:  meta.TokenEndpoint,
				AuthStyle: authStyle,
			},
		},
		idVerifier: keys,
		uiVerifier: ui,
		rfVerifier: rf,
		keys:       ks,
		idAlgs:     idAlgs,
		provider:   op,
		meta:       meta,
	}, nil
}

var asymmetricAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA,
}

func allowedAlgs(advertised []string) []string {
	if len(advertised) == 0 {
		return []string{oidc.RS256}
	}
	var out []string
	for _, a := range advertised {
		if slices.Contains(asymmetricAlgs, a) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}
