package trust

import (
	"reflect"
	"strings"
	"testing"
)

// Who the user is: user_claim, groups_claim, X-Auth-User, X-Auth-Groups, the
// id and groups placeholders, and the group rule.

func TestUserClaim(t *testing.T) {
	base := map[string]any{
		"sub": "s-1", "iss": "https://op.example",
		"preferred_username": "ola.normann",
		"email":              "ola@example.org",
		"employee":           map[string]any{"login": "ON4711", "no": float64(4711)},
		"upn_list":           []any{"a", "b"},
		"blank":              "  ",
		"ctl":                "ola\r\nX-Admin: 1",
	}
	for _, tc := range []struct {
		name       string
		claim      string
		wantHeader string // "" = no X-Auth-User
		wantID     string
	}{
		{name: "not configured: no header, id is sub", claim: "", wantHeader: "", wantID: "s-1"},
		{name: "sub configured explicitly", claim: "sub", wantHeader: "s-1", wantID: "s-1"},
		{name: "preferred_username", claim: "preferred_username", wantHeader: "ola.normann", wantID: "ola.normann"},
		{name: "email", claim: "email", wantHeader: "ola@example.org", wantID: "ola@example.org"},
		{name: "dotted path", claim: "employee.login", wantHeader: "ON4711", wantID: "ON4711"},
		{name: "number as an integer", claim: "employee.no", wantHeader: "4711", wantID: "4711"},
		{name: "absent: no header, id falls back to sub", claim: "upn", wantHeader: "", wantID: "s-1"},
		{name: "array is not a name: absent", claim: "upn_list", wantHeader: "", wantID: "s-1"},
		{name: "object is not a name: absent", claim: "employee", wantHeader: "", wantID: "s-1"},
		{name: "only spaces: absent", claim: "blank", wantHeader: "", wantID: "s-1"},
		{name: "HDR-01 control characters removed", claim: "ctl", wantHeader: "olaX-Admin: 1", wantID: "olaX-Admin: 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, std := range []StandardHeaders{StandardBasic, StandardIdentity, StandardAll} {
				opts := Options{UserClaim: tc.claim, Standard: std}
				p := NewProfile(base, opts)
				hs, dropped := p.Headers(opts)
				if len(dropped) != 0 {
					t.Fatalf("dropped %+v", dropped)
				}
				got, sent := headerMap(t, hs)[HeaderUser]
				if sent != (tc.wantHeader != "") || got != tc.wantHeader {
					t.Errorf("%s: X-Auth-User = %q (sent %v), want %q", std, got, sent, tc.wantHeader)
				}
				if got := headerMap(t, hs)[HeaderSubject]; got != "s-1" {
					t.Errorf("%s: X-Auth-Subject = %q, want s-1 whatever user_claim says", std, got)
				}
				if id := p.Placeholders()["id"]; id != tc.wantID {
					t.Errorf("%s: placeholder id = %q, want %q", std, id, tc.wantID)
				}
			}
			none := Options{UserClaim: tc.claim, Standard: StandardNone}
			if hs, _ := NewProfile(base, none).Headers(none); len(hs) != 0 {
				t.Errorf("standard_headers none sent %+v", hs)
			}
		})
	}
}

// X-Auth-User comes right after X-Auth-Subject.
func TestUserHeaderOrder(t *testing.T) {
	opts := Options{UserClaim: "preferred_username"}
	hs, _ := NewProfile(map[string]any{"sub": "s", "preferred_username": "u", "email": "e@x.example"}, opts).Headers(opts)
	var names []string
	for _, h := range hs {
		names = append(names, h.Name)
	}
	if want := []string{HeaderSubject, HeaderUser, HeaderEmail}; !reflect.DeepEqual(names, want) {
		t.Errorf("basic headers = %q, want %q", names, want)
	}
}

func TestGroupsClaim(t *testing.T) {
	for _, tc := range []struct {
		name        string
		claimPath   string
		claims      map[string]any
		wantGroups  []string
		wantRefused int
		wantHeader  string // at identity; "" = absent
	}{
		{name: "array of strings", claims: map[string]any{"groups": []any{"admins", "eng"}},
			wantGroups: []string{"admins", "eng"}, wantHeader: "admins,eng"},
		{name: "typed string array", claims: map[string]any{"groups": []string{"admins"}},
			wantGroups: []string{"admins"}, wantHeader: "admins"},
		{name: "a single string is one group", claims: map[string]any{"groups": "admins"},
			wantGroups: []string{"admins"}, wantHeader: "admins"},
		{name: "absent", claims: map[string]any{}},
		{name: "null", claims: map[string]any{"groups": nil}},
		{name: "empty array", claims: map[string]any{"groups": []any{}}},
		{name: "empty strings and non-strings skipped", claims: map[string]any{"groups": []any{"", float64(7), true, nil, map[string]any{"a": "b"}, "ops"}},
			wantGroups: []string{"ops"}, wantHeader: "ops"},
		{name: "object is not a group list", claims: map[string]any{"groups": map[string]any{"admins": true}}},
		{name: "Entra roles", claimPath: "roles", claims: map[string]any{"roles": []any{"Task.Write"}, "groups": []any{"ignored"}},
			wantGroups: []string{"Task.Write"}, wantHeader: "Task.Write"},
		{name: "Keycloak realm_access.roles", claimPath: "realm_access.roles",
			claims:     map[string]any{"realm_access": map[string]any{"roles": []any{"offline_access", "admin"}}},
			wantGroups: []string{"offline_access", "admin"}, wantHeader: "offline_access,admin"},
		{name: "Entra group ids", claims: map[string]any{"groups": []any{"0b5a1c3e-0000-4000-8000-000000000001"}},
			wantGroups: []string{"0b5a1c3e-0000-4000-8000-000000000001"}, wantHeader: "0b5a1c3e-0000-4000-8000-000000000001"},
		{name: "non-ASCII group: the list is RFC 2047-encoded as a whole", claims: map[string]any{"groups": []any{"økonomi", "eng"}},
			wantGroups: []string{"økonomi", "eng"}, wantHeader: "=?UTF-8?B?w7hrb25vbWksZW5n?="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{GroupsClaim: tc.claimPath, Standard: StandardIdentity}
			p := NewProfile(tc.claims, opts)
			if !reflect.DeepEqual(p.Groups, tc.wantGroups) || p.GroupsRefused != tc.wantRefused {
				t.Errorf("Groups = %q refused %d, want %q refused %d", p.Groups, p.GroupsRefused, tc.wantGroups, tc.wantRefused)
			}
			hs, _ := p.Headers(opts)
			got, sent := headerMap(t, hs)[HeaderGroups]
			if sent != (tc.wantHeader != "") || got != tc.wantHeader {
				t.Errorf("X-Auth-Groups = %q (sent %v), want %q", got, sent, tc.wantHeader)
			}
			ph, has := p.Placeholders()["groups"]
			if want := strings.Join(tc.wantGroups, ","); has != (want != "") || ph != want {
				t.Errorf("placeholder groups = %q (set %v), want %q", ph, has, want)
			}
		})
	}
}

// X-Auth-Groups is sent at identity and all, not at basic or none.
func TestGroupsHeaderLevels(t *testing.T) {
	claims := map[string]any{"sub": "s", "groups": []any{"admins"}}
	for _, tc := range []struct {
		std  StandardHeaders
		want bool
	}{{"", false}, {StandardBasic, false}, {StandardNone, false}, {StandardIdentity, true}, {StandardAll, true}} {
		opts := Options{Standard: tc.std}
		hs, _ := NewProfile(claims, opts).Headers(opts)
		if _, sent := headerMap(t, hs)[HeaderGroups]; sent != tc.want {
			t.Errorf("standard_headers %q: X-Auth-Groups sent = %v, want %v", tc.std, sent, tc.want)
		}
	}
	// Last of the built-in headers, before the mapped ones.
	m, err := CompileMappings([]Mapping{{Header: "X-Dept", Claim: "dept"}})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Standard: StandardAll, Mappings: m}
	hs, _ := NewProfile(with(bindIDKnownClaims(t), "groups", []any{"admins"}, "dept", "it"), opts).Headers(opts)
	if n := len(hs); n < 2 || hs[n-2].Name != HeaderGroups || hs[n-1].Name != "X-Dept" {
		t.Errorf("X-Auth-Groups is not the last built-in header: %+v", hs)
	}
}

// HDR-04/HDR-05: a group value with a comma or a control character is refused whole: it
// never reaches the header or the placeholder, cut, escaped or otherwise, so "admins,x"
// can never read as the group "admins". Only the count is reported.
func TestHDR05_GroupValueWithCommaOrControlRefused(t *testing.T) {
	const secret = "TOPSECRET"
	for _, tc := range []struct {
		name  string
		group any
	}{
		{"comma", "admins," + secret},
		{"comma alone", ","},
		{"CR LF", secret + "\r\nX-Admin: 1"},
		{"LF", "admins\n" + secret},
		{"NUL", "admins\x00" + secret},
		{"TAB", "admins\t" + secret},
		{"DEL", "admins\x7f" + secret},
		{"C1 NEL", "admins\u0085" + secret},
		{"invalid UTF-8", "admins\xff" + secret},
		{"single string with a comma", "admins," + secret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims := map[string]any{"sub": "s", "groups": []any{"eng", tc.group, "ops"}}
			if tc.name == "single string with a comma" {
				claims["groups"] = tc.group
			}
			for _, std := range []StandardHeaders{StandardBasic, StandardIdentity, StandardAll} {
				opts := Options{Standard: std}
				p := NewProfile(claims, opts)
				if p.GroupsRefused != 1 {
					t.Errorf("GroupsRefused = %d, want 1", p.GroupsRefused)
				}
				for _, g := range p.Groups {
					if g != "eng" && g != "ops" {
						t.Errorf("Groups holds %q", g)
					}
				}
				hs, dropped := p.Headers(opts)
				for _, h := range hs {
					if strings.Contains(decodeHeader(t, h.Value), secret) || strings.Contains(h.Value, "admins") {
						t.Errorf("%s: header %s = %q carries the refused value", std, h.Name, h.Value)
					}
					assertWireSafe(t, h.Name, h.Value)
				}
				for _, d := range dropped {
					t.Errorf("refusal reported as a size drop: %+v", d)
				}
				if std != StandardBasic && tc.name != "single string with a comma" {
					if got := headerMap(t, hs)[HeaderGroups]; got != "eng,ops" {
						t.Errorf("%s: X-Auth-Groups = %q, want eng,ops (the other groups kept)", std, got)
					}
				}
				if got := p.Placeholders()["groups"]; strings.Contains(got, secret) || strings.Contains(got, "admins") {
					t.Errorf("placeholder groups = %q carries the refused value", got)
				}
			}
		})
	}
}

// The groups placeholder is the checked list, never the raw claim named "groups".
func TestGroupsPlaceholderIsTheCheckedList(t *testing.T) {
	claims := map[string]any{"sub": "s", "groups": []any{"a,b", "c"}, "roles": []any{"r1", "r2"}}
	got := NewProfile(claims, Options{}).Placeholders()
	if got["groups"] != "c" {
		t.Errorf("groups = %q, want c (the value with a comma refused)", got["groups"])
	}
	got = NewProfile(claims, Options{GroupsClaim: "roles"}).Placeholders()
	if got["groups"] != "r1,r2" || got["roles"] != "r1,r2" {
		t.Errorf("groups_claim roles: groups = %q roles = %q, want r1,r2 for both", got["groups"], got["roles"])
	}
	got = NewProfile(map[string]any{"sub": "s", "groups": []any{"g"}}, Options{GroupsClaim: "roles"}).Placeholders()
	if v, ok := got["groups"]; ok {
		t.Errorf("groups_claim roles without roles: groups = %q, want absent (not the raw groups claim)", v)
	}
}

func TestPolicyGroupRule(t *testing.T) {
	inGroups := func(gs ...string) *Profile { return profileWith(func(p *Profile) { p.Groups = gs }) }
	admins := Policy{Groups: []string{"admins"}}
	either := Policy{Groups: []string{"admins", "ops"}}
	unmet := []string{"group"}
	runCheckCases(t, []checkCase{
		{name: "member", policy: admins, profile: inGroups("eng", "admins")},
		{name: "member of the second of two", policy: either, profile: inGroups("ops")},
		{name: "not a member", policy: either, profile: inGroups("eng"), wantRules: unmet},
		{name: "no groups", policy: admins, profile: inGroups(), wantRules: unmet},
		{name: "case matters", policy: admins, profile: inGroups("Admins"), wantRules: unmet},
		{name: "no prefix match", policy: admins, profile: inGroups("admins2"), wantRules: unmet},
		{name: "nil profile", policy: admins, profile: nil, wantRules: unmet},
		// Never a step-up, even beside a rule a new login could fix.
		{name: "with acr: no step-up", policy: Policy{Groups: []string{"admins"}, ACR: []string{"urn:x"}},
			profile: inGroups("eng"), wantRules: []string{"acr", "group"}},
		{name: "claim before group before email_domain", policy: Policy{Claims: []ClaimRule{{Claim: "dept", Values: []string{"it"}}}, Groups: []string{"admins"}, EmailDomains: []string{"x.example"}},
			profile: inGroups(), wantRules: []string{"claim", "group", "email_domain"}},
	})

	// Through NewProfile: a refused value cannot satisfy the rule by its prefix, and the
	// groups come from groups_claim.
	for _, tc := range []struct {
		name   string
		opts   Options
		claims map[string]any
		want   bool
	}{
		{"comma value does not count as admins", Options{}, map[string]any{"groups": []any{"admins,eng"}}, false},
		{"control value does not count", Options{}, map[string]any{"groups": []any{"admins\n"}}, false},
		{"single string", Options{}, map[string]any{"groups": "admins"}, true},
		{"Keycloak path", Options{GroupsClaim: "realm_access.roles"}, map[string]any{"realm_access": map[string]any{"roles": []any{"admins"}}}, true},
		{"another claim than groups_claim is not read", Options{GroupsClaim: "roles"}, map[string]any{"groups": []any{"admins"}}, false},
	} {
		t.Run("claims "+tc.name, func(t *testing.T) {
			unmet, step := admins.Check(NewProfile(tc.claims, tc.opts), policyNow)
			if got := len(unmet) == 0; got != tc.want {
				t.Errorf("allowed = %v, want %v (%+v)", got, tc.want, unmet)
			}
			if step != nil {
				t.Errorf("group rule offered a step-up: %+v", step)
			}
		})
	}
}

// The 403 reason names the required groups, never the user's own groups.
func TestPolicyGroupReasonNamesOnlyTheRequiredGroups(t *testing.T) {
	p := Policy{Groups: []string{"admins", "ops"}}
	unmet, _ := p.Check(profileWith(func(pr *Profile) { pr.Groups = []string{"secret-project-x", "eng"} }), policyNow)
	if len(unmet) != 1 {
		t.Fatalf("unmet = %+v", unmet)
	}
	r := unmet[0].Reason
	if want := `this page requires membership of one of the groups "admins" or "ops"; this sign-in is in none of them`; r != want {
		t.Errorf("reason = %q, want %q", r, want)
	}
	if strings.Contains(r, "secret-project-x") || strings.Contains(r, "eng") {
		t.Errorf("reason %q names the user's groups", r)
	}
	one := Policy{Groups: []string{"admins"}}
	unmet, _ = one.Check(policyUser(), policyNow)
	if want := `this page requires membership of the group "admins"; this sign-in is not in it`; len(unmet) != 1 || unmet[0].Reason != want {
		t.Errorf("reason = %+v, want %q", unmet, want)
	}
}

func TestPolicyGroupValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		groups []string
		want   string // "" = valid
	}{
		{"one", []string{"admins"}, ""},
		{"several", []string{"admins", "Task.Write", "0b5a1c3e-0000-4000-8000-000000000001"}, ""},
		{"empty list", []string{}, "group: the list is empty"},
		{"empty value", []string{""}, "group: empty value"},
		{"comma", []string{"a,b"}, `group "a,b" contains a comma`},
		{"control", []string{"a\nb"}, "control characters"},
		{"spaces", []string{" a"}, "leading or trailing spaces"},
		{"twice", []string{"a", "a"}, "listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Policy{Groups: tc.groups}
			err := p.Validate()
			if tc.want == "" {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if (&Policy{Groups: []string{"a"}}).IsZero() {
		t.Error("a policy with only a group rule is zero")
	}
}

// Adding the group rule and allow_unverified_email did not change the fingerprint of
// existing policies (a step-up mark in a live session names it).
func TestPolicyFingerprintUnchangedByNewFields(t *testing.T) {
	old := Policy{ACR: []string{"a"}}
	if got, want := old.Fingerprint(), (&Policy{ACR: []string{"a"}, Groups: nil, AllowUnverifiedEmail: false}).Fingerprint(); got != want {
		t.Errorf("fingerprints differ: %s %s", got, want)
	}
	a, b := Policy{Groups: []string{"x"}}, Policy{Groups: []string{"y"}}
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("different groups, same fingerprint")
	}
	c, d := Policy{EmailDomains: []string{"x.example"}}, Policy{EmailDomains: []string{"x.example"}, AllowUnverifiedEmail: true}
	if c.Fingerprint() == d.Fingerprint() {
		t.Error("allow_unverified_email does not change the fingerprint")
	}
}

func TestAllowUnverifiedEmail(t *testing.T) {
	strict := Policy{EmailDomains: []string{"allowed.com"}}
	lenient := Policy{EmailDomains: []string{"allowed.com"}, AllowUnverifiedEmail: true}
	for _, tc := range []struct {
		name       string
		verified   any // nil = absent
		null       bool
		email      string
		wantStrict bool
		wantLax    bool
	}{
		{name: "verified true", verified: true, email: "x@allowed.com", wantStrict: true, wantLax: true},
		{name: `verified "true"`, verified: "true", email: "x@allowed.com", wantStrict: true, wantLax: true},
		{name: "absent (Entra ID)", email: "x@allowed.com", wantStrict: false, wantLax: true},
		{name: "null", null: true, email: "x@allowed.com", wantStrict: false, wantLax: true},
		{name: "explicit false", verified: false, email: "x@allowed.com", wantStrict: false, wantLax: false},
		{name: `explicit "false"`, verified: "false", email: "x@allowed.com", wantStrict: false, wantLax: false},
		{name: `unreadable "yes"`, verified: "yes", email: "x@allowed.com", wantStrict: false, wantLax: false},
		{name: "unreadable 0", verified: float64(0), email: "x@allowed.com", wantStrict: false, wantLax: false},
		{name: "absent, other domain", email: "x@evil.com", wantStrict: false, wantLax: false},
		{name: "absent, second @", email: "x@allowed.com@evil.com", wantStrict: false, wantLax: false},
		{name: "absent, no e-mail", email: "", wantStrict: false, wantLax: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims := map[string]any{"sub": "u1"}
			if tc.email != "" {
				claims["email"] = tc.email
			}
			if tc.verified != nil {
				claims["email_verified"] = tc.verified
			}
			if tc.null {
				claims["email_verified"] = nil
			}
			prof := NewProfile(claims, Options{})
			for _, c := range []struct {
				p    Policy
				want bool
			}{{strict, tc.wantStrict}, {lenient, tc.wantLax}} {
				unmet, step := c.p.Check(prof, policyNow)
				if got := len(unmet) == 0; got != c.want {
					t.Errorf("allow_unverified_email %v: allowed = %v, want %v (%+v)", c.p.AllowUnverifiedEmail, got, c.want, unmet)
				}
				if step != nil {
					t.Errorf("e-mail rule offered a step-up: %+v", step)
				}
				if len(unmet) == 1 && unmet[0].Rule != RuleEmailDomain {
					t.Errorf("unmet rule %q, want email_domain", unmet[0].Rule)
				}
			}
		})
	}
	unmet, _ := lenient.Check(NewProfile(map[string]any{"sub": "u", "email": "x@allowed.com", "email_verified": false}, Options{}), policyNow)
	if len(unmet) != 1 || !strings.Contains(unmet[0].Reason, "not verified") || !strings.Contains(unmet[0].Reason, "not marked unverified") {
		t.Errorf("reason = %+v, want one saying the address is not verified", unmet)
	}
}

// A site that mapped X-Auth-Groups or X-Auth-User itself before they were built in keeps
// its rule: the mapping is accepted and replaces the built-in header (never two values).
func TestOwnMappingOfXAuthGroupsAndUserKeepsWorking(t *testing.T) {
	m, err := CompileMappings([]Mapping{{Header: "x-auth-groups", Claim: "roles"}, {Header: "X-Auth-User", Claim: "upn"}})
	if err != nil {
		t.Fatalf("CompileMappings(X-Auth-Groups, X-Auth-User) = %v, want accepted", err)
	}
	claims := map[string]any{"sub": "s", "groups": []any{"g1"}, "roles": []any{"r1", "r,2"}, "upn": "u@x.example", "preferred_username": "pu"}
	opts := Options{Standard: StandardAll, Mappings: m, UserClaim: "preferred_username"}
	hs, _ := NewProfile(claims, opts).Headers(opts)
	count := map[string]int{}
	for _, h := range hs {
		count[h.Name]++
	}
	if count[HeaderGroups] != 1 || count[HeaderUser] != 1 {
		t.Fatalf("headers %+v: want one X-Auth-Groups and one X-Auth-User", hs)
	}
	got := headerMap(t, hs)
	if got[HeaderGroups] != `["r1","r,2"]` || got[HeaderUser] != "u@x.example" {
		t.Errorf("X-Auth-Groups = %q, X-Auth-User = %q; want the mapped claims as before (roles as JSON, upn)", got[HeaderGroups], got[HeaderUser])
	}
	for _, n := range []string{"X-Auth-Subject", "X-Auth-Acr", "X-Trust-New-Device"} {
		if _, err := CompileMappings([]Mapping{{Header: n, Claim: "c"}}); err == nil || !strings.Contains(err.Error(), "built-in") {
			t.Errorf("CompileMappings(%s) = %v, want the built-in refusal", n, err)
		}
	}
}
