package trustgate

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/provider"
	"github.com/trustgate/trustgate/session"
)

// New-user linking. The upstream application, after its own login of a user the
// provider does not know yet, answers with a response header naming the user's alias
// (X-Auth-Set-Alias); the gateway removes it from the response and reports the alias to the
// provider (BindID session feedback), and the session carries the alias from then on. With
// identity binding, the application answers with a profile (X-Auth-Bind) instead; the
// gateway turns it into a login_hint in the provider's format (login_hint_format: jwt,
// trustgate's ES256 JWT; iddataweb, ID Dataweb's HS256 prefill, encrypted with
// login_hint_encryption_key) and sends the browser to the provider, which verifies that
// the user matches that account.

// Linking defaults and limits.
const (
	defaultAliasHeader = "X-Auth-Set-Alias"
	defaultBindHeader  = "X-Auth-Bind"
	maxAliasBytes      = 128
	maxBindBytes       = provider.MaxBindProfileBytes
	bindHintLifetime   = provider.HintLifetime
)

// validAlias reports whether an alias the application sent can be reported: 1 to 128
// characters out of letters, digits and . _ @ + - (an account identifier, never markup or a
// header-splitting character).
func validAlias(a string) bool {
	if a == "" || len(a) > maxAliasBytes {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '@' || c == '+' || c == '-') {
			return false
		}
	}
	return true
}

// linker acts on what the application answers for a signed-in user (New-user linking):
// an alias header is reported to the provider (aliasFeedback), and a binding profile
// starts an identity-binding login with a login_hint in the provider's format.
type linker struct {
	*base
	login        *loginFlow
	feedback     *aliasFeedback
	assertion    *asserter // signs a jwt-format login_hint
	profile      *provider.Profile
	issuer       string
	clientSecret string                 // keys an ID Dataweb login_hint (HS256)
	linkAliases  bool                   // feedback is on (the alias header is read)
	binding      *IdentityBindingConfig // identity_binding, or nil
	hintFormat   string                 // login_hint_format
	hintSource   *hintKeySource         // login_hint_encryption_key, or nil
	aliasHeader  string                 // canonical
	bindHeader   string                 // canonical
}

// on reports whether the application's answers are watched at all.
func (l *linker) on() bool { return l.linkAliases || l.binding != nil }

// watch wraps the response writer of a session's request.
func (l *linker) watch(w http.ResponseWriter, r *http.Request, s *session.Session, rd *rendered) http.ResponseWriter {
	return &linkWriter{ResponseWriter: w, l: l, r: r, s: s, rd: rd}
}

// hintKey returns the key to encrypt the login_hint to, or nil when none is configured.
func (l *linker) hintKey(ctx context.Context) (*jose.JSONWebKey, error) {
	if l.hintSource == nil {
		return nil, nil
	}
	return l.hintSource.get(ctx, l.now())
}

// linkWriter watches the upstream's response of one session's request for the linking
// headers. It removes them before anything reaches the browser.
type linkWriter struct {
	http.ResponseWriter
	l       *linker
	r       *http.Request
	s       *session.Session
	rd      *rendered
	decided bool
	swallow bool // the response was replaced by a redirect to the provider
}

func (lw *linkWriter) Unwrap() http.ResponseWriter { return lw.ResponseWriter }

func (lw *linkWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Informational answers (103 Early Hints) go out as they are; the decision is for the
		// final answer, whose headers are not yet complete. The linking headers are never
		// sent with them.
		hdr := lw.Header()
		saved := map[string][]string{}
		for _, name := range []string{lw.l.aliasHeader, lw.l.bindHeader} {
			if v, ok := hdr[name]; ok && name != "" {
				saved[name] = v
				delete(hdr, name)
			}
		}
		lw.ResponseWriter.WriteHeader(code)
		for k, v := range saved {
			hdr[k] = v
		}
		return
	}
	if !lw.decided {
		code = lw.decide(code)
	}
	lw.ResponseWriter.WriteHeader(code)
}

func (lw *linkWriter) Write(b []byte) (int, error) {
	if !lw.decided {
		lw.WriteHeader(http.StatusOK)
	}
	if lw.swallow {
		return len(b), nil
	}
	return lw.ResponseWriter.Write(b)
}

// Flush keeps streaming responses working.
func (lw *linkWriter) Flush() {
	if !lw.decided {
		lw.WriteHeader(http.StatusOK)
	}
	if f, ok := lw.ResponseWriter.(http.Flusher); ok && !lw.swallow {
		f.Flush()
	}
}

// decide runs once, before the status is written: it strips the linking headers and acts on
// them; it returns the status to write.
func (lw *linkWriter) decide(code int) int {
	lw.decided = true
	l, hdr := lw.l, lw.Header()
	var alias, bind string
	var hasAlias, hasBind bool
	if l.linkAliases {
		alias, hasAlias = takeHeader(hdr, l.aliasHeader)
	}
	if l.binding != nil {
		bind, hasBind = takeHeader(hdr, l.bindHeader)
	}
	if code < 200 || code >= 400 {
		return code // only a successful answer of the application links anything
	}
	if hasAlias && !validAlias(alias) {
		l.logger.Warn("alias not linked: the application's value is not a valid alias (1-128 letters, digits, . _ @ + -)",
			zap.String("reason", "alias_invalid"), zap.Int("bytes", len(alias)), zap.String("session_hash", sessionHash(lw.s.ID)))
		hasAlias, alias = false, ""
	}
	if hasBind && (!web.IsNavigation(lw.r) || lw.r.Method != http.MethodGet) {
		// A binding goes through the provider's pages: only a browser navigation can follow
		// it; an API or a form POST keeps the application's answer.
		l.logger.Info("identity binding not started: not a browser navigation (GET)", zap.String("reason", "bind_not_navigation"), zap.String("session_hash", sessionHash(lw.s.ID)))
		hasBind = false
	}
	if hasBind && bindDeniedRecently(lw.s, l.now()) {
		l.logger.Info("identity binding not started: the provider denied one moments ago", zap.String("reason", "bind_backoff"), zap.String("session_hash", sessionHash(lw.s.ID)))
		hasBind = false
	}
	if hasBind && lw.s.Binding != "" {
		// Already bound: an application that keeps sending the header must not start a
		// binding on every answer (a loop through the provider).
		l.logger.Info("identity binding not started: the session is already bound", zap.String("reason", "bind_present"), zap.String("session_hash", sessionHash(lw.s.ID)))
		hasBind = false
	}
	if hasBind {
		if loc, ok := lw.startBinding(bind, alias); ok {
			for _, k := range []string{"Content-Type", "Content-Length", "Content-Encoding", "Etag", "Last-Modified"} {
				hdr.Del(k)
			}
			hdr.Set("Location", loc)
			web.NoStore(lw.ResponseWriter)
			lw.swallow = true
			return http.StatusFound
		}
		return code
	}
	if hasAlias {
		if lw.rd.profile.Alias != "" {
			l.logger.Info("alias not linked: the session already has one", zap.String("reason", "alias_present"), zap.String("session_hash", sessionHash(lw.s.ID)))
		} else if lw.rd.linking.CompareAndSwap(false, true) {
			l.feedback.link(lw.s, alias)
		}
	}
	return code
}

// takeHeader removes every value of name (canonical spelling) and returns the first.
func takeHeader(hdr http.Header, name string) (string, bool) {
	vs, ok := hdr[name]
	if !ok {
		return "", false
	}
	delete(hdr, name)
	if len(vs) == 0 {
		return "", true
	}
	return vs[0], true
}

// startBinding turns the application's profile into the binding's login_hint (the
// provider's format: login_hint_format) and prepares the binding login; it returns the
// provider URL to send the browser to. A profile that cannot be sent is logged with its
// reason and the offending key (never a value, never the hint), and the application's
// answer goes out unchanged.
func (lw *linkWriter) startBinding(raw, alias string) (string, bool) {
	l := lw.l
	refuse := func(reason, msg string, fields ...zap.Field) (string, bool) {
		fields = append([]zap.Field{zap.String("reason", reason), zap.String("session_hash", sessionHash(lw.s.ID))}, fields...)
		l.logger.Warn("identity binding not started: "+msg, fields...)
		return "", false
	}
	if len(raw) > base64.RawURLEncoding.EncodedLen(maxBindBytes)+2 {
		return refuse(provider.ReasonBindProfileInvalid, "the profile is larger than 4 KiB")
	}
	js, err := base64.RawURLEncoding.DecodeString(trimPadding(raw))
	if err != nil {
		if js, err = base64.StdEncoding.DecodeString(raw); err != nil {
			return refuse(provider.ReasonBindProfileInvalid, "the profile is not base64url")
		}
	}
	if len(js) > maxBindBytes {
		return refuse(provider.ReasonBindProfileInvalid, "the profile is larger than 4 KiB")
	}
	now := l.now()
	var hint string
	if l.hintFormat == provider.HintIDDataweb {
		var ok bool
		if hint, ok = lw.idDatawebHint(js, now, refuse); !ok {
			return "", false
		}
	} else {
		var profile map[string]any
		if err := json.Unmarshal(js, &profile); err != nil || len(profile) == 0 {
			return refuse(provider.ReasonBindProfileInvalid, "the profile is not a JSON object of claims")
		}
		for _, k := range []string{"iss", "aud", "exp", "iat", "nbf", "jti", "sub"} {
			delete(profile, k) // the gateway sets these
		}
		claims := map[string]any{
			"iss": l.assertion.origin(lw.r), "aud": l.issuer, "sub": lw.s.Subject,
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(bindHintLifetime).Unix(),
		}
		maps.Copy(claims, profile)
		if hint, err = l.assertion.keys.current(now).Sign(claims); err != nil {
			return refuse("bind_sign_failed", "the login_hint could not be signed", zap.Error(err))
		}
	}
	returnTo := "/" // after the application's own login form (a POST), its home
	if lw.r.Method == http.MethodGet {
		returnTo = web.ReturnTo(lw.r)
	}
	loc, lerr := l.login.begin(lw.ResponseWriter, lw.r, loginRequest{
		returnTo:  returnTo,
		loginHint: hint,
		bind:      &bindRequest{subject: lw.s.Subject, alias: alias, acr: l.binding.ACRValues},
	})
	if lerr != nil {
		return "", false
	}
	l.logger.Info("identity binding started", zap.String("reason", "bind_started"), zap.String("session_hash", sessionHash(lw.s.ID)))
	return loc, true
}

// idDatawebHint builds ID Dataweb's login_hint from the profile (provider/iddataweb_hint.go):
// the fields mapped to ID Dataweb's names, sub the session's subject, HS256 with the client
// secret, encrypted to login_hint_encryption_key when one is configured. The profile is
// checked before the key is fetched, so a bad profile costs no request to the provider.
func (lw *linkWriter) idDatawebHint(js []byte, now time.Time, refuse func(string, string, ...zap.Field) (string, bool)) (string, bool) {
	l := lw.l
	opts := provider.HintOptions{Subject: lw.s.Subject, Now: now, Encrypted: l.hintSource != nil}
	claims, err := provider.IDDatawebHintClaims(js, opts)
	if err != nil {
		var he *provider.HintError
		if errors.As(err, &he) {
			fields := []zap.Field{zap.String("detail", he.Detail)}
			if he.Key != "" {
				fields = append(fields, zap.String("key", he.Key))
			}
			return refuse(he.Reason, "the application's profile cannot be sent to "+l.profile.Title, fields...)
		}
		return refuse(provider.ReasonBindProfileInvalid, "the application's profile cannot be sent to "+l.profile.Title)
	}
	key, err := l.hintKey(lw.r.Context())
	if err != nil {
		return refuse("bind_key_unavailable", "the provider's login_hint encryption key (login_hint_encryption_key) is unavailable", zap.Error(err))
	}
	hint, err := provider.SignIDDatawebHint(claims, []byte(l.clientSecret))
	if err == nil && key != nil {
		hint, err = provider.EncryptHint(hint, key)
	}
	if err != nil {
		return refuse("bind_sign_failed", "the login_hint could not be signed or encrypted", zap.Error(err))
	}
	return hint, true
}

func bindDeniedRecently(s *session.Session, now time.Time) bool {
	for _, m := range s.StepUps {
		if m.Policy == bindDenied && now.Sub(time.Unix(m.At, 0)) < bindDeniedPeriod {
			return true
		}
	}
	return false
}

func trimPadding(s string) string {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return s
}
