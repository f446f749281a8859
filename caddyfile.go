package trustgate

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/provider"
	"github.com/trustgate/trustgate/trust"
)

func init() {
	httpcaddyfile.RegisterDirective("trustgate", parseDirective)
	// After basic_auth, so rate limiters ordered before basic_auth run first; before
	// request_header, handle/route and reverse_proxy, so they can use {http.auth.user.*}.
	httpcaddyfile.RegisterDirectiveOrder("trustgate", httpcaddyfile.After, "basic_auth")
}

// parseCaddyfile reads a trustgate block. A block without issuer (and without provider)
// cannot sign anyone in: it is a route policy block, module trustgate_require, and may hold
// only require, acr_levels and allow_unverified_email.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	if m.Issuer != "" || m.Provider != "" {
		return m, nil
	}
	rh, err := policyBlock(m)
	if err != nil {
		return nil, h.Err(err.Error())
	}
	return rh, nil
}

// policyBlock turns a block without issuer into a route policy block, or says why it is
// not one.
func policyBlock(m *Handler) (*RequireHandler, error) {
	if m.Require == nil {
		return nil, errors.New("issuer is required (the provider's URL); a trustgate block without issuer is a route policy block only when it has require lines")
	}
	if extra := policyBlockExtras(m); len(extra) > 0 {
		return nil, fmt.Errorf("a trustgate block without issuer is a route policy block: only require, acr_levels and allow_unverified_email belong in it, not %s; "+
			"put %s in the trustgate block that signs users in (the one with issuer), or add issuer here", strings.Join(extra, ", "), strings.Join(extra, ", "))
	}
	return &RequireHandler{Require: m.Require, ACRLevels: m.ACRLevels, AllowUnverifiedEmail: m.AllowUnverifiedEmail}, nil
}

// policyBlockExtras names the keys (JSON names) a block without issuer sets beyond what a
// policy block may hold.
func policyBlockExtras(m *Handler) []string {
	allowed := map[string]bool{"require": true, "acr_levels": true, "allow_unverified_email": true}
	var extra []string
	v, t := reflect.ValueOf(m).Elem(), reflect.TypeFor[Handler]()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "" || name == "-" || allowed[name] || v.Field(i).IsZero() {
			continue
		}
		extra = append(extra, name)
	}
	return extra
}

// parseDirective is what httpcaddyfile.RegisterHandlerDirective does (the optional matcher
// token becomes the route's matcher), plus one thing: a trustgate block with a matcher also
// matches its own endpoints. The handler never sees its route's matcher, so a matcher such
// as `@app path /app/*` would otherwise keep the callback, login and logout from ever
// reaching it (the browser would come back from the provider to a 404 or to the upstream).
// The route therefore gets a second matcher set (sets are ORed): the path the browser sent,
// before any rewrite, under path_prefix, exactly as ServeHTTP recognises its endpoints.
// Requests the user's matcher selects never evaluate it; `caddy adapt` shows it.
func parseDirective(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	if !h.Next() {
		return nil, h.ArgErr()
	}
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	m, err := parseCaddyfile(h)
	if err != nil {
		return nil, err
	}
	vals := h.NewRoute(matcherSet, m)
	main, isMain := m.(*Handler)
	if matcherSet == nil || !isMain || len(vals) != 1 {
		return vals, nil // no matcher, or a policy block (it has no endpoints)
	}
	route, ok := vals[0].Value.(caddyhttp.Route)
	if !ok {
		return vals, nil
	}
	route.MatcherSetsRaw = append(route.MatcherSetsRaw, endpointMatcherSet(main.PathPrefix))
	vals[0].Value = route
	return vals, nil
}

// endpointMatcherSet matches the original request path (before try_files, uri or
// handle_path rewrote it) at path_prefix or under it, as Handler.endpoint does.
func endpointMatcherSet(prefix string) caddy.ModuleMap {
	if prefix == "" {
		prefix = defaultPathPrefix
	}
	pattern := "^" + regexp.QuoteMeta(strings.TrimSuffix(prefix, "/")) + "(?:/|$)"
	raw, _ := json.Marshal(map[string]map[string]string{
		"{http.request.orig_uri.path}": {"name": "trustgate_endpoint", "pattern": pattern},
	})
	return caddy.ModuleMap{"vars_regexp": raw}
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	trustgate [<matcher>] [<issuer>] {
//		provider          bindid|iddataweb|bankid|generic   # a preset; explicit keys override it
//		issuer            <url>
//		client_id         <id>
//		client_secret     <secret>
//		secret            <key> [<older_key>...]    # repeatable; first creates, all accepted
//		scopes            <scope>...
//		path_prefix       <path>
//		redirect_url      <url>
//		token_auth_method client_secret_basic|client_secret_post|none|private_key_jwt|tls_client_auth|self_signed_tls_client_auth
//		par               [required|off]           # push the authorization request (RFC 9126)
//		request_object    signed                    # JAR (RFC 9101), with client_auth's key
//		client_auth       <method> [{               # the same, with the keys of private_key_jwt
//			key <pem, e.g. {file./etc/trustgate/client.pem}>   # each key line starts a key;
//			alg PS256|RS256|ES256                               # the first key signs
//			kid <key id>
//		}]
//		client_auth       tls_client_auth|self_signed_tls_client_auth {   # mutual TLS (RFC 8705)
//			cert <pem, e.g. {file./etc/trustgate/client-cert.pem}>
//			key  <pem, e.g. {file./etc/trustgate/client-key.pem}>
//		}
//		dpop              [{                        # DPoP-bound tokens (RFC 9449)
//			key <pem>                               # default: a generated EC P-256 key
//			alg ES256|PS256
//		}]
//		profile           fapi2                     # FAPI 2.0 Security Profile
//		userinfo          get|post|off [require_signed]
//		userinfo_issuer   <url>                     # iss of a signed userinfo (BankID)
//		login_hint_format jwt|iddataweb
//		login_hint_encryption_key <pem or https JWKS URL>
//		tls_trusted_ca_certs <pem file>             # CAs of the provider's certificates; default: the system's
//		auth_params       {                     # extra authorization request parameters
//			<name> <value>
//		}
//		session_store     memory {
//			max_sessions <n>
//		}
//		session_store     redis {               # instead of memory; see unmarshalRedis
//			addrs <host:port>...
//		}
//		idle_timeout      <duration>
//		lifetime          <duration>
//		trust_refresh     <duration>
//		post_logout_redirect_url <url>
//		feedback_endpoint <url>
//		alias_header      <response header>
//		ciba              [{
//			starts_per_ip <n>
//			hint_interval <duration>
//			max_expiry    <duration>
//		}]
//		identity_binding  [{
//			header     <response header>
//			acr_values <value>...
//		}]
//		cookie_name       <name>
//		alias_claim       <claim>
//		user_claim        <claim.path>              # X-Auth-User, {http.auth.user.id}; default sub
//		groups_claim      <claim.path>              # X-Auth-Groups, require group; default groups
//		allow_unverified_email                      # email_domain accepts a login without email_verified
//		clock_leeway      <duration>
//		trusted_audiences <audience>...
//		insecure_cookie
//		standard_headers  basic|identity|all|none
//		header            <Header-Name> <claim.path>   # repeatable
//		max_header_bytes  <n>
//		max_total_header_bytes <n>
//		acr_levels        <weakest> ... <strongest>
//		require           <rule> <args>...             # repeatable; see unmarshalRule
//		assertion         [{ ... }]                     # see unmarshalAssertion
//	}
//
// A block with only require (and acr_levels) lines is a policy block for a route: it checks
// the session found by the trustgate block before it.
//
// Placeholders such as {env.OIDC_CLIENT_SECRET} are kept as written and expanded when the
// configuration is provisioned.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Issuer = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if seen[key] && key != "secret" && key != "header" && key != "require" {
			return d.Errf("%s already specified", key)
		}
		seen[key] = true
		switch key {
		case "issuer":
			if h.Issuer != "" {
				return d.Err("issuer already specified")
			}
			if !d.AllArgs(&h.Issuer) {
				return d.ArgErr()
			}
		case "provider":
			if !d.AllArgs(&h.Provider) {
				return d.ArgErr()
			}
			if _, err := provider.Lookup(h.Provider); err != nil {
				return d.Err(err.Error())
			}
		case "userinfo_issuer":
			if !d.AllArgs(&h.UserinfoIssuer) {
				return d.ArgErr()
			}
		case "login_hint_format":
			if !d.AllArgs(&h.LoginHintFormat) {
				return d.ArgErr()
			}
		case "login_hint_encryption_key":
			if !d.AllArgs(&h.LoginHintEncryptionKey) {
				return d.ArgErr()
			}
		case "tls_trusted_ca_certs":
			if !d.AllArgs(&h.TLSTrustedCACerts) {
				return d.ArgErr()
			}
		case "client_id":
			if !d.AllArgs(&h.ClientID) {
				return d.ArgErr()
			}
		case "client_secret":
			if !d.AllArgs(&h.ClientSecret) {
				return d.ArgErr()
			}
		case "secret":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.Secrets = append(h.Secrets, args...)
		case "scopes":
			h.Scopes = d.RemainingArgs()
			if len(h.Scopes) == 0 {
				return d.ArgErr()
			}
		case "path_prefix":
			if !d.AllArgs(&h.PathPrefix) {
				return d.ArgErr()
			}
		case "redirect_url":
			if !d.AllArgs(&h.RedirectURL) {
				return d.ArgErr()
			}
		case "token_auth_method":
			if !d.AllArgs(&h.TokenAuthMethod) {
				return d.ArgErr()
			}
		case "request_object":
			if !d.AllArgs(&h.RequestObject) {
				return d.ArgErr()
			}
		case "par":
			h.PAR = oidcflow.PAROn
			if d.NextArg() {
				h.PAR = d.Val()
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "client_auth":
			if h.TokenAuthMethod != "" {
				return d.Err("client_auth and token_auth_method set the same thing; keep one")
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.TokenAuthMethod = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
			if h.TokenAuthMethod == oidcflow.AuthTLSClientAuth || h.TokenAuthMethod == oidcflow.AuthSelfSignedTLSClientAuth {
				cert, err := unmarshalClientCertificate(d)
				if err != nil {
					return err
				}
				h.ClientCertificate = cert
				break
			}
			keys, err := unmarshalClientKeys(d)
			if err != nil {
				return err
			}
			h.ClientKeys = keys
		case "dpop":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.DPoP = &DPoPConfig{}
			if err := unmarshalStringBlock(d, "dpop", map[string]*string{"key": &h.DPoP.Key, "alg": &h.DPoP.Alg}); err != nil {
				return err
			}
		case "profile":
			if !d.AllArgs(&h.Profile) {
				return d.ArgErr()
			}
		case "userinfo":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.Userinfo = d.Val()
			if d.NextArg() {
				if d.Val() != "require_signed" || h.Userinfo == "off" {
					return d.Errf("unexpected '%s' after userinfo %s (only get|post take require_signed)", d.Val(), h.Userinfo)
				}
				h.UserinfoRequireSigned = true
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "auth_params":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.AuthParams = map[string]string{}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				name := d.Val()
				var v string
				if !d.AllArgs(&v) {
					return d.Errf("auth_params %s needs one value", name)
				}
				if _, dup := h.AuthParams[name]; dup {
					return d.Errf("auth_params %s already specified", name)
				}
				h.AuthParams[name] = v
			}
			if len(h.AuthParams) == 0 {
				return d.Err("auth_params needs a block of <name> <value> lines")
			}
		case "session_store":
			var err error
			if h.SessionStore, err = unmarshalStore(d); err != nil {
				return err
			}
		case "idle_timeout", "lifetime", "clock_leeway", "trust_refresh":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dst := map[string]*caddy.Duration{"idle_timeout": &h.IdleTimeout, "lifetime": &h.Lifetime, "clock_leeway": &h.ClockLeeway, "trust_refresh": &h.TrustRefresh}[key]
			if err := parseDuration(d, key, v, dst, false); err != nil {
				return err
			}
		case "post_logout_redirect_url":
			if !d.AllArgs(&h.PostLogoutRedirectURL) {
				return d.ArgErr()
			}
		case "feedback_endpoint":
			if !d.AllArgs(&h.FeedbackEndpoint) {
				return d.ArgErr()
			}
		case "alias_header":
			if !d.AllArgs(&h.AliasHeader) {
				return d.ArgErr()
			}
		case "ciba":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.CIBA = new(CIBAConfig)
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				opt := d.Val()
				var v string
				if !d.AllArgs(&v) {
					return d.ArgErr()
				}
				switch opt {
				case "starts_per_ip":
					n, err := strconv.Atoi(v)
					if err != nil || n <= 0 || n > 1000 {
						return d.Errf("ciba starts_per_ip must be a number from 1 to 1000, not '%s'", v)
					}
					h.CIBA.StartsPerIP = n
				case "hint_interval":
					if err := parseDuration(d, "hint_interval", v, &h.CIBA.HintInterval, true); err != nil {
						return err
					}
				case "max_expiry":
					if err := parseDuration(d, "max_expiry", v, &h.CIBA.MaxExpiry, true); err != nil {
						return err
					}
				default:
					return d.Errf("unrecognized ciba option '%s'", opt)
				}
			}
		case "identity_binding":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.IdentityBinding = new(IdentityBindingConfig)
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch opt := d.Val(); opt {
				case "header":
					if !d.AllArgs(&h.IdentityBinding.Header) {
						return d.ArgErr()
					}
				case "acr_values":
					if h.IdentityBinding.ACRValues = d.RemainingArgs(); len(h.IdentityBinding.ACRValues) == 0 {
						return d.ArgErr()
					}
				default:
					return d.Errf("unrecognized identity_binding option '%s'", opt)
				}
			}
		case "cookie_name":
			if !d.AllArgs(&h.CookieName) {
				return d.ArgErr()
			}
		case "alias_claim":
			if !d.AllArgs(&h.AliasClaim) {
				return d.ArgErr()
			}
		case "user_claim":
			if !d.AllArgs(&h.UserClaim) {
				return d.Errf("user_claim needs one claim path: user_claim preferred_username")
			}
		case "groups_claim":
			if !d.AllArgs(&h.GroupsClaim) {
				return d.Errf("groups_claim needs one claim path: groups_claim realm_access.roles")
			}
		case "allow_unverified_email":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.AllowUnverifiedEmail = true
		case "trusted_audiences":
			h.TrustedAudiences = d.RemainingArgs()
			if len(h.TrustedAudiences) == 0 {
				return d.ArgErr()
			}
		case "insecure_cookie":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.InsecureCookie = true
		case "header":
			var name, claim string
			if !d.AllArgs(&name, &claim) {
				return d.Errf("header needs a header name and a claim path: header X-Employee-Id employee_id")
			}
			h.HeaderMappings = append(h.HeaderMappings, trust.Mapping{Header: name, Claim: claim})
		case "error_pages":
			if !d.AllArgs(&h.ErrorPages) {
				return d.ArgErr()
			}
		case "standard_headers":
			if !d.AllArgs(&h.StandardHeaders) {
				return d.ArgErr()
			}
		case "max_header_bytes", "max_total_header_bytes":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return d.Errf("%s must be a positive number of bytes, not '%s'", key, v)
			}
			if key == "max_header_bytes" {
				h.MaxHeaderBytes = n
			} else {
				h.MaxTotalHeaderBytes = n
			}
		case "acr_levels":
			h.ACRLevels = d.RemainingArgs()
			if len(h.ACRLevels) == 0 {
				return d.Errf("acr_levels needs the provider's acr values, weakest first")
			}
		case "require":
			if h.Require == nil {
				h.Require = new(PolicyConfig)
			}
			if err := h.Require.unmarshalRule(d); err != nil {
				return err
			}
		case "assertion":
			var err error
			if h.Assertion, err = unmarshalAssertion(d); err != nil {
				return err
			}
		case "bearer":
			var err error
			if h.Bearer, err = unmarshalBearer(d); err != nil {
				return err
			}
		default:
			return d.Errf("unrecognized subdirective '%s'", key)
		}
	}
	if d.Next() {
		return d.Errf("unexpected token '%s' after the trustgate block", d.Val())
	}
	// The adapted JSON shows the provider profile's values (caddy adapt); Provision fills
	// them again for JSON configurations.
	if _, err := h.applyProvider(); err != nil {
		return d.Err(err.Error())
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
