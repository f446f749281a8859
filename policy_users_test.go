package trustgate

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/trust"
)

// Who the user is: user_claim, groups_claim, require group and
// allow_unverified_email through the real endpoints, against the in-process OP.

// Users of these tests: ID token claims only (userinfo off), so each case is exactly the
// claims written here. The default users' claims are unchanged.
const (
	subjectAdmin   = "sub-admin"
	subjectPlain   = "sub-plain"
	subjectNoName  = "sub-noname"
	subjectBadList = "sub-badlist"
	subjectKC      = "sub-keycloak"
)

func withGroupUsers(h *Handler, o *oidctest.Options) {
	h.Userinfo = "off"
	o.Users = []oidctest.User{
		{Subject: subjectAdmin, Label: "admin", IDTokenClaims: map[string]any{
			"preferred_username": "ada", "groups": []any{"eng", "admins"}}},
		{Subject: subjectPlain, Label: "plain", IDTokenClaims: map[string]any{
			"preferred_username": "pat", "groups": []any{"eng", "secret-project-x"}}},
		{Subject: subjectNoName, Label: "noname", IDTokenClaims: map[string]any{"groups": "admins"}},
		{Subject: subjectBadList, Label: "badlist", IDTokenClaims: map[string]any{
			"preferred_username": "bob",
			"groups":             []any{"eng", "admins,root", "ops\r\nX-Evil: 1", "qa\x00TOPSECRET"}}},
		{Subject: subjectKC, Label: "keycloak", IDTokenClaims: map[string]any{
			"preferred_username": "kim", "realm_access": map[string]any{"roles": []any{"offline_access", "admins"}}}},
	}
}

// placeholderRecorder records the identity placeholders the upstream sees.
type placeholderRecorder struct {
	mu   sync.Mutex
	seen map[string]string
}

func (p *placeholderRecorder) install(g *gateway) {
	g.upstream.respond = func(_ http.ResponseWriter, r *http.Request) {
		repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.seen = map[string]string{}
		for _, k := range []string{"http.auth.user.id", "http.auth.user.groups", "http.auth.user.preferred_username"} {
			if v, ok := repl.GetString(k); ok {
				p.seen[k] = v
			}
		}
	}
}

func (p *placeholderRecorder) get(key string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.seen[key]
	return v, ok
}

func TestHDR02_UserAndGroupsHeadersAndPlaceholders(t *testing.T) {
	for _, tc := range []struct {
		name, user                 string
		userClaim, groupsClaim     string
		std                        string
		wantUser, wantID           string // wantUser "" = X-Auth-User absent
		wantGroups, wantGroupsRepl string // "" = absent
	}{
		{name: "defaults: no X-Auth-User, id is sub, groups at identity", user: "admin", std: "identity",
			wantID: subjectAdmin, wantGroups: "eng,admins", wantGroupsRepl: "eng,admins"},
		{name: "user_claim preferred_username", user: "admin", userClaim: "preferred_username", std: "identity",
			wantUser: "ada", wantID: "ada", wantGroups: "eng,admins", wantGroupsRepl: "eng,admins"},
		{name: "basic: X-Auth-User yes, X-Auth-Groups no", user: "admin", userClaim: "preferred_username", std: "basic",
			wantUser: "ada", wantID: "ada", wantGroupsRepl: "eng,admins"},
		{name: "user claim absent: no header, id falls back to sub", user: "noname", userClaim: "preferred_username", std: "all",
			wantID: subjectNoName, wantGroups: "admins", wantGroupsRepl: "admins"},
		{name: "Keycloak realm_access.roles", user: "keycloak", userClaim: "preferred_username", groupsClaim: "realm_access.roles", std: "identity",
			wantUser: "kim", wantID: "kim", wantGroups: "offline_access,admins", wantGroupsRepl: "offline_access,admins"},
		{name: "groups_claim without that claim: nothing", user: "admin", groupsClaim: "roles", std: "identity",
			wantID: subjectAdmin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t, withGroupUsers, withStandardHeaders(tc.std), func(h *Handler, _ *oidctest.Options) {
				h.UserClaim, h.GroupsClaim = tc.userClaim, tc.groupsClaim
			})
			var ph placeholderRecorder
			ph.install(g)
			g.mustLogin(tc.user)
			// A client's own X-Auth-User / X-Auth-Groups never reach the upstream.
			req := mustRequest(t, http.MethodGet, g.srv.URL+"/app")
			req.Header.Set("X-Auth-User", "forged")
			req.Header.Set("X-Auth-Groups", "admins")
			req.Header.Set("X_Auth_Groups", "admins")
			if resp, _ := do(t, g.browser, req); resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /app = %d", resp.StatusCode)
			}
			hd := g.upstream.Header()
			if got := hd.Values("X-Auth-User"); (tc.wantUser == "" && len(got) != 0) || (tc.wantUser != "" && (len(got) != 1 || got[0] != tc.wantUser)) {
				t.Errorf("X-Auth-User = %q, want %q", got, tc.wantUser)
			}
			if got := hd.Values("X-Auth-Groups"); (tc.wantGroups == "" && len(got) != 0) || (tc.wantGroups != "" && (len(got) != 1 || got[0] != tc.wantGroups)) {
				t.Errorf("X-Auth-Groups = %q, want %q", got, tc.wantGroups)
			}
			if _, ok := hd["X_auth_groups"]; ok {
				t.Error("X_Auth_Groups (underscore spelling) reached the upstream")
			}
			if got, _ := ph.get("http.auth.user.id"); got != tc.wantID {
				t.Errorf("{http.auth.user.id} = %q, want %q", got, tc.wantID)
			}
			got, ok := ph.get("http.auth.user.groups")
			if ok != (tc.wantGroupsRepl != "") || got != tc.wantGroupsRepl {
				t.Errorf("{http.auth.user.groups} = %q (set %v), want %q", got, ok, tc.wantGroupsRepl)
			}
		})
	}
}

// A site that mapped X-Auth-Groups itself (header X-Auth-Groups <claim>) before it was built
// in starts as before and sends its own mapping, once.
func TestOwnXAuthGroupsMappingKeepsWorking(t *testing.T) {
	g := newGateway(t, withGroupUsers, withStandardHeaders("all"), func(h *Handler, _ *oidctest.Options) {
		h.HeaderMappings = []trust.Mapping{{Header: "X-Auth-Groups", Claim: "preferred_username"}}
	})
	g.mustLogin("admin")
	if got := g.upstream.Header().Values("X-Auth-Groups"); len(got) != 1 || got[0] != "ada" {
		t.Errorf("X-Auth-Groups = %q, want exactly the mapped claim [ada]", got)
	}
}

// HDR-04/HDR-05: a group value with a comma or a control character is left out of X-Auth-Groups
// and the placeholder, whole; the warning names the header and the count, never the value.
func TestHDR05_GroupValueRefusedThroughTheGateway(t *testing.T) {
	g := newGateway(t, withGroupUsers, withStandardHeaders("all"))
	logs := observeLogs(g.h)
	var ph placeholderRecorder
	ph.install(g)
	g.mustLogin("badlist")
	g.navigate(g.browser, "/app/again") // the cached rendering: the warning is not repeated

	hd := g.upstream.Header()
	if got := hd.Values("X-Auth-Groups"); len(got) != 1 || got[0] != "eng" {
		t.Errorf("X-Auth-Groups = %q, want [eng] (the refused values left out, the others kept)", got)
	}
	if got, _ := ph.get("http.auth.user.groups"); got != "eng" {
		t.Errorf("{http.auth.user.groups} = %q, want eng", got)
	}
	if _, ok := hd["X-Evil"]; ok {
		t.Error("a group value injected a header")
	}
	for name, vals := range hd {
		for _, v := range vals {
			for _, leak := range []string{"root", "X-Evil", "TOPSECRET"} {
				if strings.Contains(v, leak) {
					t.Errorf("header %s = %q carries the refused value (%s)", name, v, leak)
				}
			}
		}
	}
	warnings := 0
	for _, e := range logs.entries() {
		for _, leak := range []string{"admins,root", "root", "X-Evil", "TOPSECRET"} {
			if strings.Contains(e.Message+e.Fields, leak) {
				t.Errorf("log line %q %s carries the refused value (%s)", e.Message, e.Fields, leak)
			}
		}
		if strings.Contains(e.Fields, "reason=group_value_refused") {
			warnings++
			for _, want := range []string{"header=X-Auth-Groups", "refused=3", "claim=groups", "session_hash="} {
				if !strings.Contains(e.Fields, want) {
					t.Errorf("group_value_refused warning %s lacks %s", e.Fields, want)
				}
			}
			if e.Level.String() != "warn" {
				t.Errorf("group_value_refused logged at %s, want warn", e.Level)
			}
		}
	}
	if warnings != 1 {
		t.Errorf("group_value_refused warnings = %d, want 1 (once per session rendering, not per request)", warnings)
	}
	// The refused value does not satisfy a group rule by its prefix.
	g.addPolicyBlock(&PolicyConfig{Groups: []string{"admins"}})
	if resp, _ := g.api("/admin"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("member of \"admins,root\" only: /admin = %d, want 403", resp.StatusCode)
	}
}

func TestRequireGroupThroughTheGateway(t *testing.T) {
	t.Run("member passes", func(t *testing.T) {
		g := newGateway(t, withGroupUsers)
		g.mustLogin("admin")
		g.addPolicyBlock(&PolicyConfig{Groups: []string{"ops", "admins"}})
		if resp, body := g.navigate(g.browser, "/admin/x"); resp.StatusCode != http.StatusOK || body != "upstream: /admin/x" {
			t.Errorf("member: %d %q, want the upstream", resp.StatusCode, web.Clip(body, 200))
		}
	})
	t.Run("groups_claim of the login block", func(t *testing.T) {
		g := newGateway(t, withGroupUsers, func(h *Handler, _ *oidctest.Options) { h.GroupsClaim = "realm_access.roles" })
		g.mustLogin("keycloak")
		g.addPolicyBlock(&PolicyConfig{Groups: []string{"admins"}})
		if resp, _ := g.api("/admin/x"); resp.StatusCode != http.StatusOK {
			t.Errorf("Keycloak role admins: %d, want 200", resp.StatusCode)
		}
	})
	t.Run("non-member: 403, no step-up, nothing lost", func(t *testing.T) {
		g := newGateway(t, withGroupUsers)
		g.mustLogin("plain")
		g.addPolicyBlock(&PolicyConfig{Groups: []string{"admins"}})
		logs := observeLogs(g.h)
		calls, before, sessions := g.upstream.Calls(), g.op.Counts().Authorize, g.store.Len()
		cookie := g.sessionCookie(g.browser)

		resp, body := g.navigate(g.browser, "/admin/page")
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("non-member navigation: %d, want 403 (body %q)", resp.StatusCode, web.Clip(body, 300))
		}
		if !strings.Contains(body, "admins") || strings.Contains(body, "signed in again") {
			t.Errorf("403 page does not name the required group, or claims a step-up: %q", web.Clip(body, 600))
		}
		if strings.Contains(body, "secret-project-x") {
			t.Error("the 403 page lists the user's own groups")
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("403 Cache-Control = %q, want no-store", cc)
		}
		// Again: still 403, never a login loop.
		if resp, _ := g.navigate(g.browser, "/admin/page"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("second try = %d, want 403", resp.StatusCode)
		}
		resp, body = g.api("/admin/page")
		var got policyError
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("API 403 body is not JSON: %q", body)
		}
		if resp.StatusCode != http.StatusForbidden || got.Error != "insufficient_authentication" || got.Requirement != "group" ||
			len(got.Unmet) != 1 || got.Unmet[0].Rule != "group" || !strings.Contains(got.Message, `"admins"`) {
			t.Errorf("API: %d %+v, want 403 insufficient_authentication naming the group rule and admins", resp.StatusCode, got)
		}
		if strings.Contains(body, "secret-project-x") {
			t.Error("the 403 JSON lists the user's own groups")
		}
		if n := g.op.Counts().Authorize - before; n != 0 {
			t.Errorf("authorization requests = %d, want 0 (a group cannot be fixed by logging in again)", n)
		}
		if g.upstream.Calls() != calls {
			t.Error("a refused request reached the upstream")
		}
		if g.store.Len() != sessions || g.sessionCookie(g.browser) != cookie {
			t.Error("the refusal created, replaced or removed a session")
		}
		if resp, body := g.navigate(g.browser, "/app"); resp.StatusCode != http.StatusOK || body != "upstream: /app" {
			t.Errorf("the rest of the site after a refusal: %d %q", resp.StatusCode, body)
		}
		denied := false
		for _, e := range logs.entries() {
			if strings.Contains(e.Fields, "reason=policy_unmet") && strings.Contains(e.Fields, "group") {
				denied = true
			}
			if strings.Contains(e.Message+e.Fields, "secret-project-x") {
				t.Errorf("log line names the user's groups: %q %s", e.Message, e.Fields)
			}
		}
		if !denied {
			t.Error("no policy_unmet log line naming the group rule")
		}
	})
	t.Run("on the login block: 403 after the login, no step-up", func(t *testing.T) {
		g := newGateway(t, withGroupUsers, func(h *Handler, _ *oidctest.Options) {
			h.Require = &PolicyConfig{Groups: []string{"admins"}}
		})
		g.op.SetAutoLogin("plain")
		resp, _ := g.navigate(g.browser, "/app")
		if resp.StatusCode != http.StatusForbidden || g.op.Counts().Authorize != 1 {
			t.Errorf("site-wide group rule: %d after %d authorizations, want 403 after the one login", resp.StatusCode, g.op.Counts().Authorize)
		}
		if g.upstream.Calls() != 0 {
			t.Error("the upstream was called")
		}
	})
}

func TestAllowUnverifiedEmailThroughTheGateway(t *testing.T) {
	mailUser := func(label string, verified any) oidctest.User {
		claims := map[string]any{"email": "x@example.org"}
		if verified != nil {
			claims["email_verified"] = verified
		}
		return oidctest.User{Subject: "sub-" + label, Label: label, IDTokenClaims: claims}
	}
	users := func(h *Handler, o *oidctest.Options) {
		h.Userinfo = "off"
		o.Users = []oidctest.User{mailUser("absent", nil), mailUser("false", false), mailUser("string-false", "false"), mailUser("true", true)}
	}
	for _, tc := range []struct {
		name       string
		outer      bool // allow_unverified_email on the login block
		own        bool // on the policy block
		onLogin    bool // the rule on the login block itself instead of a policy block
		user       string
		wantStatus int
	}{
		{name: "off: absent refused", user: "absent", wantStatus: http.StatusForbidden},
		{name: "off: true passes", user: "true", wantStatus: http.StatusOK},
		{name: "login block: absent passes", outer: true, user: "absent", wantStatus: http.StatusOK},
		{name: "login block: explicit false refused", outer: true, user: "false", wantStatus: http.StatusForbidden},
		{name: `login block: "false" refused`, outer: true, user: "string-false", wantStatus: http.StatusForbidden},
		{name: "policy block's own: absent passes", own: true, user: "absent", wantStatus: http.StatusOK},
		{name: "policy block's own: explicit false refused", own: true, user: "false", wantStatus: http.StatusForbidden},
		{name: "rule on the login block: absent passes", outer: true, onLogin: true, user: "absent", wantStatus: http.StatusOK},
		{name: "rule on the login block: false refused", outer: true, onLogin: true, user: "false", wantStatus: http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t, users, func(h *Handler, _ *oidctest.Options) {
				h.AllowUnverifiedEmail = tc.outer
				if tc.onLogin {
					h.Require = &PolicyConfig{EmailDomains: []string{"example.org"}}
				}
			})
			path := "/app"
			if !tc.onLogin {
				g.mustLogin(tc.user)
				p := &RequireHandler{Require: &PolicyConfig{EmailDomains: []string{"example.org"}}, AllowUnverifiedEmail: tc.own}
				ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
				t.Cleanup(cancel)
				if err := p.Provision(ctx); err != nil {
					t.Fatalf("policy block: %v", err)
				}
				g.policy = p
				path = "/admin/mail"
			} else {
				g.op.SetAutoLogin(tc.user)
				g.navigate(g.browser, "/") // log in; the answer is checked below
			}
			calls, before := g.upstream.Calls(), g.op.Counts().Authorize
			resp, body := g.api(path)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("%s: %d, want %d (%s)", tc.user, resp.StatusCode, tc.wantStatus, web.Clip(body, 300))
			}
			if tc.wantStatus == http.StatusForbidden {
				var got policyError
				_ = json.Unmarshal([]byte(body), &got)
				if got.Requirement != "email_domain" || !strings.Contains(got.Message, "not verified") {
					t.Errorf("403 JSON = %+v, want email_domain saying the address is not verified", got)
				}
				if g.upstream.Calls() != calls || g.op.Counts().Authorize != before {
					t.Error("a refused request reached the upstream or started a login")
				}
			}
		})
	}
}

func TestProvisionUserAndGroupErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    *Handler
		want string
	}{
		{"group with a comma", &Handler{Require: &PolicyConfig{Groups: []string{"a,b"}}}, `group "a,b" contains a comma`},
		{"empty group", &Handler{Require: &PolicyConfig{Groups: []string{""}}}, "group: empty value"},
		{"groups_claim on a policy block", &Handler{GroupsClaim: "roles", Require: &PolicyConfig{Groups: []string{"a"}}}, "not groups_claim; put groups_claim in the trustgate block that signs users in"},
		{"user_claim on a policy block", &Handler{UserClaim: "email", Require: &PolicyConfig{KnownUser: true}}, "not user_claim; put user_claim in the trustgate block"},
		{"bad e-mail domain with allow_unverified_email", &Handler{AllowUnverifiedEmail: true, Require: &PolicyConfig{EmailDomains: []string{"@x.example"}}}, "without '@'"},
		{"bad e-mail domain deferred to the outer block", &Handler{Require: &PolicyConfig{EmailDomains: []string{"@x.example"}}}, "without '@'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := provisionPolicyBlock(t, tc.h)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Provision() error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// allow_unverified_email logs a warning at start with a reason code.
func TestAllowUnverifiedEmailWarnsAtStart(t *testing.T) {
	h := &Handler{}
	logs := observeLogs(h)
	warnUnverifiedEmail(h.logger, true)
	if !logs.has(func(e observedEntry) bool {
		return e.Level.String() == "warn" && strings.Contains(e.Fields, "reason=unverified_email_allowed")
	}) {
		t.Error("no unverified_email_allowed warning")
	}
}
