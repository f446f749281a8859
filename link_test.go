package trustgate

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/go-jose/go-jose/v4"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
)

// New-user linking: session feedback and identity binding.

func withFeedback(h *Handler, _ *oidctest.Options) {
	h.FeedbackEndpoint = "http://127.0.0.1:1/placeholder" // replaced by the OP's in newLinkGateway
	h.AliasClaim = "bindid_alias"                         // BindID's; the generic profile has none
}

// newLinkGateway is a gateway with session feedback at the in-process OP; the application
// answers GET /legacy-login with the alias header when g.upstream.respond says so.
func newLinkGateway(t *testing.T, opts ...gatewayOption) *gateway {
	t.Helper()
	g := newGateway(t, append([]gatewayOption{withFeedback}, opts...)...)
	g.h.FeedbackEndpoint = g.op.Issuer() + oidctest.PathSessionFeedback
	g.h.feedback.endpoint = g.h.FeedbackEndpoint // the feature took the placeholder at Provision
	fast := feedbackRetries
	feedbackRetries = []time.Duration{0, 10 * time.Millisecond, 20 * time.Millisecond}
	t.Cleanup(func() { feedbackRetries = fast })
	return g
}

// answerWith makes the application add header: value to its answer for path.
func (g *gateway) answerWith(path, header, value string) {
	g.upstream.mu.Lock()
	defer g.upstream.mu.Unlock()
	g.upstream.respond = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path {
			w.Header().Set(header, value)
		}
	}
}

// waitFor polls cond for up to 3 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFeedbackLinksANewUser(t *testing.T) {
	g := newLinkGateway(t)
	g.mustLogin("bindid-new")
	if g.upstream.Header().Get("X-Auth-New-User") != "true" {
		t.Fatal("bindid-new is not a new user")
	}
	g.answerWith("/legacy-login", "X-Auth-Set-Alias", "username@domain")
	resp, body := g.navigate(g.browser, "/legacy-login")
	if resp.StatusCode != http.StatusOK || body != "upstream: /legacy-login" {
		t.Fatalf("the application's answer was changed: %d %q", resp.StatusCode, body)
	}
	if v := resp.Header.Values("X-Auth-Set-Alias"); len(v) != 0 {
		t.Errorf("the browser received the linking header %q", v)
	}
	waitFor(t, "the session feedback", func() bool { return g.op.LastFeedback() != nil })
	fb := g.op.LastFeedback()
	if fb.Alias != "username@domain" || fb.Subject != oidctest.SubjectBindIDNew || fb.ClientID != g.h.ClientID {
		t.Errorf("feedback = %+v", fb)
	}
	// The session carries the alias from now on (the provider accepted the HMAC).
	waitFor(t, "the alias in the session", func() bool { return g.stored().Claims["bindid_alias"] == "username@domain" })
	g.answerWith("", "", "")
	g.navigate(g.browser, "/next")
	got := g.upstream.Header()
	if got.Get("X-Auth-Alias") != "username@domain" || got.Get("X-Auth-New-User") != "" {
		t.Errorf("after linking: X-Auth-Alias %q, X-Auth-New-User %q", got.Get("X-Auth-Alias"), got.Get("X-Auth-New-User"))
	}
	// The provider knows the alias too: the next login says so.
	g.op.SetAutoLogin("bindid-new")
	other := g.newBrowser()
	g.navigate(other, "/again")
	if g.upstream.Header().Get("X-Auth-Alias") != "username@domain" {
		t.Error("a new login after the feedback has no alias")
	}
}

func TestFeedbackRefusesBadAliasesAndKnownUsers(t *testing.T) {
	for _, tc := range []struct{ name, user, alias string }{
		{"markup", "bindid-new", "<script>alert(1)</script>"},
		{"space", "bindid-new", "user name"},
		{"too long", "bindid-new", strings.Repeat("a", 129)},
		{"empty", "bindid-new", ""},
		{"user already has an alias", "bindid-known", "other@domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newLinkGateway(t)
			g.mustLogin(tc.user)
			before := g.stored().Claims["bindid_alias"]
			g.answerWith("/legacy-login", "X-Auth-Set-Alias", tc.alias)
			resp, _ := g.navigate(g.browser, "/legacy-login")
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Auth-Set-Alias") != "" {
				t.Errorf("answer %d, linking header %q", resp.StatusCode, resp.Header.Get("X-Auth-Set-Alias"))
			}
			time.Sleep(50 * time.Millisecond) // a feedback would have been sent by now
			if n := g.op.Counts().Feedback; n != 0 {
				t.Errorf("feedback requests = %d, want 0", n)
			}
			if got := g.stored().Claims["bindid_alias"]; got != before {
				t.Errorf("alias changed from %v to %v", before, got)
			}
		})
	}
}

func TestFeedbackFailureLeavesTheSessionIntact(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		attempts int
	}{
		{"rejected", http.StatusBadRequest, 1},
		{"bad HMAC", http.StatusUnauthorized, 1},
		{"provider down, retried", http.StatusServiceUnavailable, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newLinkGateway(t)
			g.mustLogin("bindid-new")
			g.op.SetFaults(oidctest.Faults{FeedbackStatus: tc.status})
			g.answerWith("/legacy-login", "X-Auth-Set-Alias", "username@domain")
			if resp, _ := g.navigate(g.browser, "/legacy-login"); resp.StatusCode != http.StatusOK {
				t.Fatalf("the user's answer: %d", resp.StatusCode)
			}
			waitFor(t, "the feedback attempts", func() bool { return g.op.Counts().Feedback >= tc.attempts })
			time.Sleep(60 * time.Millisecond)
			if n := g.op.Counts().Feedback; n != tc.attempts {
				t.Errorf("feedback attempts = %d, want %d", n, tc.attempts)
			}
			if _, ok := g.stored().Claims["bindid_alias"]; ok {
				t.Error("the session got an alias the provider did not accept")
			}
			g.answerWith("", "", "")
			if resp, _ := g.api("/still"); resp.StatusCode != http.StatusOK || g.upstream.Header().Get("X-Auth-New-User") != "true" {
				t.Errorf("after the failure: %d, X-Auth-New-User %q", resp.StatusCode, g.upstream.Header().Get("X-Auth-New-User"))
			}
		})
	}
}

// Only a response to one session's request links that session (and no other).
func TestFeedbackOnlyForTheSessionOfTheRequest(t *testing.T) {
	g := newLinkGateway(t)
	g.mustLogin("bindid-new")
	other := g.newBrowser()
	g.op.SetAutoLogin("ase")
	g.navigate(other, "/app")
	g.answerWith("/legacy-login", "X-Auth-Set-Alias", "ase.account")
	g.navigate(other, "/legacy-login") // ase's request
	waitFor(t, "the feedback", func() bool { return g.op.LastFeedback() != nil })
	if fb := g.op.LastFeedback(); fb.Subject != oidctest.SubjectAse {
		t.Errorf("the feedback named %q, want ase's session", fb.Subject)
	}
	if _, ok := g.stored().Claims["bindid_alias"]; ok {
		t.Error("another user's answer linked this session")
	}
}

func TestFeedbackNotOnErrorAnswers(t *testing.T) {
	g := newLinkGateway(t)
	g.mustLogin("bindid-new")
	g.upstream.mu.Lock()
	g.upstream.respond = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Auth-Set-Alias", "username@domain")
		w.WriteHeader(http.StatusInternalServerError)
	}
	g.upstream.mu.Unlock()
	resp, _ := g.navigate(g.browser, "/legacy-login")
	if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("X-Auth-Set-Alias") != "" {
		t.Errorf("error answer: %d, linking header %q", resp.StatusCode, resp.Header.Get("X-Auth-Set-Alias"))
	}
	time.Sleep(50 * time.Millisecond)
	if g.op.Counts().Feedback != 0 {
		t.Error("an error answer of the application linked an alias")
	}
}

// withBinding turns on identity binding; the OP verifies login_hint JWTs with the gateway's
// jwks.json.
func withBinding(t *testing.T, g **gateway) gatewayOption {
	return func(h *Handler, o *oidctest.Options) {
		h.IdentityBinding = &IdentityBindingConfig{ACRValues: []string{"urn:idw:high"}}
		h.storage = &certmagic.FileStorage{Path: t.TempDir()}
		// A binding counts only at the acr_values asked for: the users can reach it.
		o.Users = oidctest.DefaultUsers()
		for i := range o.Users {
			o.Users[i].ACRLevels = append(o.Users[i].ACRLevels, "urn:idw:high")
		}
		o.LoginHintJWKS = func() ([]byte, error) {
			resp, err := http.Get((*g).srv.URL + "/.trustgate/jwks.json")
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			var set json.RawMessage
			err = json.NewDecoder(resp.Body).Decode(&set)
			return set, err
		}
	}
}

func bindProfile(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestBindingApprovedLinksTheAccount(t *testing.T) {
	var g *gateway
	g = newLinkGateway(t, withBinding(t, &g))
	g.mustLogin("andrew")
	cookie := g.sessionCookie(g.browser)
	// After its own login, the application answers with the account's profile and alias.
	g.upstream.mu.Lock()
	g.upstream.respond = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/account/verify" {
			w.Header().Set("X-Auth-Bind", bindProfile(map[string]any{"name": "Andrew Roshell", "phone_number": "+15555550100"}))
			w.Header().Set("X-Auth-Set-Alias", "andrew.roshell")
		}
	}
	g.upstream.mu.Unlock()
	resp, body := do(t, g.noRedirects(), navRequest(t, g.srv.URL+"/account/verify"))
	if resp.StatusCode != http.StatusFound || strings.Contains(body, "upstream:") || resp.Header.Get("X-Auth-Bind") != "" {
		t.Fatalf("binding start: %d %q (X-Auth-Bind %q), want 302 to the provider without the application's body", resp.StatusCode, web.Clip(body, 100), resp.Header.Get("X-Auth-Bind"))
	}
	auth, _ := url.Parse(resp.Header.Get("Location"))
	q := auth.Query()
	if q.Get("acr_values") != "urn:idw:high" || q.Get("prompt") != "login" {
		t.Errorf("binding authorization: acr_values %q prompt %q", q.Get("acr_values"), q.Get("prompt"))
	}
	// login_hint is a JWT signed by the gateway's keys, for the provider.
	if _, err := jose.ParseSignedCompact(q.Get("login_hint"), []jose.SignatureAlgorithm{jose.ES256}); err != nil {
		t.Fatalf("login_hint is not an ES256 JWS: %v", err)
	}
	hint := verifyAssertion(t, q.Get("login_hint"), g.fetchJWKS())
	if hint["aud"] != g.op.Issuer() || hint["iss"] != g.srv.URL || hint["name"] != "Andrew Roshell" || hint["sub"] != oidctest.SubjectAndrew {
		t.Errorf("login_hint claims = %v", hint)
	}
	if exp, iat := hint["exp"].(float64), hint["iat"].(float64); exp-iat > 300 {
		t.Errorf("login_hint lives %v s, want at most 300", exp-iat)
	}
	// The provider verifies the match and the browser comes back.
	cb := g.authorize(auth)
	resp, body = g.navigate(g.browser, cb.RequestURI())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the binding: %d %q", resp.StatusCode, web.Clip(body, 200))
	}
	if g.sessionCookie(g.browser) == cookie {
		t.Error("the binding login kept the old session cookie")
	}
	g.upstream.mu.Lock()
	g.upstream.respond = nil
	g.upstream.mu.Unlock()
	g.navigate(g.browser, "/app")
	if got := g.upstream.Header().Get("X-Auth-Binding"); got != "verified" {
		t.Errorf("X-Auth-Binding = %q, want verified", got)
	}
	// The alias named with the binding is linked once it is confirmed.
	waitFor(t, "the alias feedback", func() bool { fb := g.op.LastFeedback(); return fb != nil && fb.Alias == "andrew.roshell" })
}

func TestBindingDeniedChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		profile map[string]any
	}{
		{"account mismatch", map[string]any{"name": "Someone Else", "phone_number": "+15555550100"}},
		{"other phone", map[string]any{"name": "Andrew Roshell", "phone_number": "+15555550199"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g *gateway
			g = newLinkGateway(t, withBinding(t, &g))
			g.mustLogin("andrew")
			cookie := g.sessionCookie(g.browser)
			g.answerWith("/account/verify", "X-Auth-Bind", bindProfile(tc.profile))
			resp, body := g.navigate(g.browser, "/account/verify")
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Identity binding not completed") || !strings.Contains(body, "unchanged") {
				t.Errorf("denied binding: %d %q, want a 403 page that says nothing changed", resp.StatusCode, web.Clip(body, 300))
			}
			if g.sessionCookie(g.browser) != cookie || g.store.Len() != 1 {
				t.Error("a denied binding changed the session")
			}
			g.answerWith("", "", "")
			g.navigate(g.browser, "/app")
			if g.upstream.Header().Get("X-Auth-Binding") != "" || g.op.Counts().Feedback != 0 {
				t.Error("a denied binding was marked verified or linked an alias")
			}
		})
	}
}

func TestBindingBadProfileIsIgnored(t *testing.T) {
	var g *gateway
	g = newLinkGateway(t, withBinding(t, &g))
	g.mustLogin("andrew")
	before := g.op.Counts().Authorize
	for _, bad := range []string{"%%%not-base64", base64.RawURLEncoding.EncodeToString([]byte("[1,2]")), strings.Repeat("A", 5000)} {
		g.answerWith("/account/verify", "X-Auth-Bind", bad)
		resp, body := g.navigate(g.browser, "/account/verify")
		if resp.StatusCode != http.StatusOK || body != "upstream: /account/verify" || resp.Header.Get("X-Auth-Bind") != "" {
			t.Errorf("bad profile %.20q: %d %q", bad, resp.StatusCode, web.Clip(body, 100))
		}
	}
	if g.op.Counts().Authorize != before {
		t.Error("a bad profile started a binding")
	}
}

func TestLoginHintPassedOnAndValidated(t *testing.T) {
	g := newGateway(t)
	c := g.noRedirects()
	resp, _ := do(t, c, navRequest(t, g.srv.URL+"/.trustgate/login?login_hint="+url.QueryEscape("ola@example.org")+"&prompt=none&scope=admin"))
	u, _ := url.Parse(resp.Header.Get("Location"))
	if q := u.Query(); q.Get("login_hint") != "ola@example.org" || q.Get("prompt") != "" || strings.Contains(q.Get("scope"), "admin") {
		t.Errorf("authorization URL %s: want login_hint passed on and nothing else from the client (FL-11)", u)
	}
	for _, bad := range []string{strings.Repeat("a", 257), "a\nb", ""} {
		resp, _ := do(t, c, navRequest(t, g.srv.URL+"/.trustgate/login?login_hint="+url.QueryEscape(bad)))
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("login_hint %.20q: %d, want 400", bad, resp.StatusCode)
		}
	}
}

func navRequest(t *testing.T, u string) *http.Request {
	t.Helper()
	req := mustRequest(t, http.MethodGet, u)
	req.Header.Set("Accept", "text/html")
	return req
}

// The provider confirms a binding, but for another user than the session's: refused, and
// nothing changes (the account must match the person, seed 002).
func TestBindingConfirmedForAnotherUserIsRefused(t *testing.T) {
	var g *gateway
	g = newLinkGateway(t, withBinding(t, &g))
	g.mustLogin("andrew")
	cookie := g.sessionCookie(g.browser)
	g.answerWith("/account/verify", "X-Auth-Bind", bindProfile(map[string]any{"name": "Åse Øvrebø"}))
	g.op.SetAutoLogin("ase") // someone else completes the binding at the provider
	resp, body := g.navigate(g.browser, "/account/verify")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Identity binding not completed") {
		t.Errorf("binding confirmed for another user: %d %q, want 403", resp.StatusCode, web.Clip(body, 200))
	}
	if g.sessionCookie(g.browser) != cookie || g.store.Len() != 1 || g.stored().Subject != oidctest.SubjectAndrew {
		t.Error("the session changed")
	}
}

// 103 Early Hints before the final answer: the linking header of the final answer is still
// removed and acted on (review finding: it reached the browser).
func TestFeedbackAfterEarlyHints(t *testing.T) {
	g := newLinkGateway(t)
	g.mustLogin("bindid-new")
	g.upstream.mu.Lock()
	g.upstream.respond = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("X-Auth-Set-Alias", "username@domain")
	}
	g.upstream.mu.Unlock()
	resp, _ := g.navigate(g.browser, "/legacy-login")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Auth-Set-Alias") != "" {
		t.Errorf("after 103: %d, linking header %q", resp.StatusCode, resp.Header.Get("X-Auth-Set-Alias"))
	}
	waitFor(t, "the feedback", func() bool { return g.op.LastFeedback() != nil })
}

// Binding needs a browser navigation; an API answer keeps its content, and after a denial
// the page is reachable again (review findings: a 302 for XHR, and a loop after a denial).
func TestBindingOnlyForNavigationsAndNotAgainRightAfterADenial(t *testing.T) {
	var g *gateway
	g = newLinkGateway(t, withBinding(t, &g))
	g.mustLogin("andrew")
	g.answerWith("/account/verify", "X-Auth-Bind", bindProfile(map[string]any{"name": "Someone Else"}))
	resp, body := g.api("/account/verify")
	if resp.StatusCode != http.StatusOK || body != "upstream: /account/verify" || resp.Header.Get("X-Auth-Bind") != "" {
		t.Errorf("API answer with a binding header: %d %q", resp.StatusCode, web.Clip(body, 80))
	}
	before := g.op.Counts().Authorize
	if resp, _ := g.navigate(g.browser, "/account/verify"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("denied binding: %d", resp.StatusCode)
	}
	if resp, body := g.navigate(g.browser, "/account/verify"); resp.StatusCode != http.StatusOK || body != "upstream: /account/verify" {
		t.Errorf("the page right after a denial: %d %q, want the application's answer", resp.StatusCode, web.Clip(body, 80))
	}
	if n := g.op.Counts().Authorize - before; n != 1 {
		t.Errorf("binding attempts = %d, want 1", n)
	}
}

// A generic provider's binding is confirmed by the same subject at the acr_values asked
// for: below them it is refused, and nothing changes (threat model IDT-16, essential acr).
func TestIDT16_BindingBelowACRValuesIsRefused(t *testing.T) {
	var g *gateway
	g = newLinkGateway(t, withBinding(t, &g), func(_ *Handler, o *oidctest.Options) { o.Users = oidctest.DefaultUsers() })
	g.mustLogin("andrew")
	cookie := g.sessionCookie(g.browser)
	g.answerWith("/account/verify", "X-Auth-Bind", bindProfile(map[string]any{"name": "Andrew Roshell", "phone_number": "+15555550100"}))
	resp, body := g.navigate(g.browser, "/account/verify")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "at the level this account requires") {
		t.Errorf("binding below acr_values: %d %q, want 403", resp.StatusCode, web.Clip(body, 300))
	}
	if g.sessionCookie(g.browser) != cookie || g.store.Len() != 1 || g.stored().Binding != "" {
		t.Error("the session changed")
	}
}
