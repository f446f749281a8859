package trustgate

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/provider"
	"github.com/trustgate/trustgate/trust"
)

// Checking the configuration once, when it is loaded (`caddy validate` runs this too).

// Validate checks the configuration. It runs after Provision, so placeholders are expanded.
func (h *Handler) Validate() error {
	if h.Issuer == "" {
		return errors.New("issuer is required")
	}
	switch h.ErrorPages {
	case "", errorPagesGateway, errorPagesCaddy:
	default:
		return fmt.Errorf("error_pages must be gateway (the default: the gateway's own pages and JSON) or caddy (handle_errors renders refusals), not %q", h.ErrorPages)
	}
	if h.ClientID == "" {
		return errors.New("client_id is required")
	}
	if err := oidcflow.Check(oidcConfig(h)); err != nil {
		return err
	}
	if _, err := trust.ParseStandardHeaders(h.StandardHeaders); err != nil {
		return fmt.Errorf("standard_headers: %w", err)
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

func validCookieName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return len(s) > 0 && len(s) <= 64
}
