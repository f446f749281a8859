package trust

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// policyNow is the clock of the policy tests.
var policyNow = time.Unix(1_700_000_000, 0)

func policyBool(b bool) *bool { return &b }

// policyUser is a returning user who signed in just now with BankID, without e-mail.
func policyUser() *Profile {
	return &Profile{
		Subject:  "u1",
		Issuer:   "https://op.example",
		Alias:    "alias-1",
		ACR:      "urn:bankid:bid",
		AMR:      []string{"pwd", "otp"},
		AuthTime: policyNow.Unix(),
		Claims:   map[string]any{},
	}
}

func profileWith(edit func(p *Profile)) *Profile {
	p := policyUser()
	edit(p)
	return p
}

// checkCase is one Check expectation: the unmet rule names, in order, and the step-up.
type checkCase struct {
	name      string
	policy    Policy
	profile   *Profile
	wantRules []string
	wantStep  *StepUp
}

func runCheckCases(t *testing.T, cases []checkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.policy.Validate(); err != nil {
				t.Fatalf("test policy is invalid: %v", err)
			}
			unmet, step := tc.policy.Check(tc.profile, policyNow)
			var rules []string
			for _, u := range unmet {
				rules = append(rules, u.Rule)
				if u.Reason == "" {
					t.Errorf("rule %s: empty reason", u.Rule)
				}
			}
			if !reflect.DeepEqual(rules, tc.wantRules) {
				t.Errorf("unmet rules = %q, want %q (reasons: %+v)", rules, tc.wantRules, unmet)
			}
			if !reflect.DeepEqual(step, tc.wantStep) {
				t.Errorf("stepUp = %+v, want %+v", step, tc.wantStep)
			}
		})
	}
}

func TestPolicyZeroAllowsEverySignIn(t *testing.T) {
	var p Policy
	if !p.IsZero() {
		t.Fatal("zero Policy: IsZero false")
	}
	if (*Policy)(nil).IsZero() != true {
		t.Fatal("nil Policy: IsZero false")
	}
	unmet, step := p.Check(&Profile{NewUser: true}, policyNow)
	if unmet != nil || step != nil {
		t.Fatalf("zero policy: unmet %+v, stepUp %+v", unmet, step)
	}
	for name, q := range map[string]Policy{
		"acr":           {ACR: []string{"a"}},
		"acr_at_least":  {ACRAtLeast: "a"},
		"acr_levels":    {ACRLevels: []string{"a"}},
		"amr":           {AMR: []string{"mfa"}},
		"claims":        {Claims: []ClaimRule{{Claim: "c", Values: []string{"v"}}}},
		"email_domains": {EmailDomains: []string{"example.com"}},
		"max_auth_age":  {MaxAuthAge: time.Minute},
		"known_user":    {KnownUser: true},
	} {
		if q.IsZero() {
			t.Errorf("policy with only %s: IsZero true", name)
		}
	}
}

func TestPolicyACR(t *testing.T) {
	p := Policy{ACR: []string{"urn:bankid:bid", "urn:bankid:bis"}}
	step := &StepUp{ACRValues: []string{"urn:bankid:bid", "urn:bankid:bis"}, PromptLogin: true}
	runCheckCases(t, []checkCase{
		{name: "first value", policy: p, profile: policyUser()},
		{name: "second value", policy: p, profile: profileWith(func(p *Profile) { p.ACR = "urn:bankid:bis" })},
		{name: "other value", policy: p, profile: profileWith(func(p *Profile) { p.ACR = "ts.bindid.iac.email" }),
			wantRules: []string{"acr"}, wantStep: step},
		{name: "prefix of a value", policy: p, profile: profileWith(func(p *Profile) { p.ACR = "urn:bankid" }),
			wantRules: []string{"acr"}, wantStep: step},
		{name: "case differs", policy: p, profile: profileWith(func(p *Profile) { p.ACR = "URN:BANKID:BID" }),
			wantRules: []string{"acr"}, wantStep: step},
		{name: "absent", policy: p, profile: profileWith(func(p *Profile) { p.ACR = "" }),
			wantRules: []string{"acr"}, wantStep: step},
	})
}

func TestPolicyACRAtLeast(t *testing.T) {
	levels := []string{"loa1", "loa2", "loa3", "loa4"}
	p := Policy{ACRAtLeast: "loa2", ACRLevels: levels}
	step := &StepUp{ACRValues: []string{"loa2", "loa3", "loa4"}, PromptLogin: true}
	acr := func(v string) *Profile { return profileWith(func(p *Profile) { p.ACR = v }) }
	runCheckCases(t, []checkCase{
		{name: "the required level", policy: p, profile: acr("loa2")},
		{name: "a higher level", policy: p, profile: acr("loa4")},
		{name: "a lower level", policy: p, profile: acr("loa1"), wantRules: []string{"acr_at_least"}, wantStep: step},
		{name: "not a known level", policy: p, profile: acr("urn:other"), wantRules: []string{"acr_at_least"}, wantStep: step},
		{name: "absent", policy: p, profile: acr(""), wantRules: []string{"acr_at_least"}, wantStep: step},
		{name: "lowest level required", policy: Policy{ACRAtLeast: "loa1", ACRLevels: levels}, profile: acr("loa1")},
		{name: "highest level required", policy: Policy{ACRAtLeast: "loa4", ACRLevels: levels}, profile: acr("loa3"),
			wantRules: []string{"acr_at_least"}, wantStep: &StepUp{ACRValues: []string{"loa4"}, PromptLogin: true}},
	})
}

func TestPolicyACRAndACRAtLeastRequestOnlyValuesMeetingBoth(t *testing.T) {
	p := Policy{
		ACR:        []string{"loa4", "loa1", "loa3"},
		ACRAtLeast: "loa3",
		ACRLevels:  []string{"loa1", "loa2", "loa3", "loa4"},
	}
	// acr met (loa1 is listed), acr_at_least not: the new sign-in must meet both, so only
	// loa4 and loa3 (in acr's order of preference) are requested.
	runCheckCases(t, []checkCase{
		{name: "acr met, level too low", policy: p, profile: profileWith(func(p *Profile) { p.ACR = "loa1" }),
			wantRules: []string{"acr_at_least"}, wantStep: &StepUp{ACRValues: []string{"loa4", "loa3"}, PromptLogin: true}},
		{name: "level met, acr not listed", policy: p, profile: profileWith(func(p *Profile) { p.ACR = "loa2" }),
			wantRules: []string{"acr", "acr_at_least"}, wantStep: &StepUp{ACRValues: []string{"loa4", "loa3"}, PromptLogin: true}},
		{name: "both met", policy: p, profile: profileWith(func(p *Profile) { p.ACR = "loa3" })},
	})
}

func TestPolicyAMR(t *testing.T) {
	p := Policy{AMR: []string{"otp", "hwk"}}
	step := &StepUp{PromptLogin: true}
	amr := func(v ...string) *Profile { return profileWith(func(p *Profile) { p.AMR = v }) }
	runCheckCases(t, []checkCase{
		{name: "all present, with others", policy: p, profile: amr("pwd", "hwk", "otp")},
		{name: "one missing", policy: p, profile: amr("pwd", "otp"), wantRules: []string{"amr"}, wantStep: step},
		{name: "none", policy: p, profile: amr(), wantRules: []string{"amr"}, wantStep: step},
		{name: "case differs", policy: p, profile: amr("OTP", "HWK"), wantRules: []string{"amr"}, wantStep: step},
	})
}

func TestPolicyClaimRules(t *testing.T) {
	claims := func(kv ...any) *Profile {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return profileWith(func(p *Profile) { p.Claims = m })
	}
	groups := Policy{Claims: []ClaimRule{{Claim: "groups", Values: []string{"admins", "ops"}}}}
	eng := Policy{Claims: []ClaimRule{{Claim: "groups", Values: []string{"eng"}}}}
	unmet := []string{"claim"}
	runCheckCases(t, []checkCase{
		{name: "string equal", policy: groups, profile: claims("groups", "ops")},
		{name: "string differs", policy: groups, profile: claims("groups", "opsx"), wantRules: unmet},
		{name: "array containing a value", policy: groups, profile: claims("groups", []any{"eng", "admins"})},
		{name: "typed string array containing a value", policy: groups, profile: claims("groups", []string{"admins"})},
		{name: "array without a value", policy: groups, profile: claims("groups", []any{"eng", "dev"}), wantRules: unmet},
		{name: "HDR-05 element with a comma is one value", policy: eng, profile: claims("groups", []any{"eng,admins"}), wantRules: unmet},
		{name: "HDR-05 string with a comma is one value", policy: eng, profile: claims("groups", "eng,admins"), wantRules: unmet},
		{name: "empty array", policy: groups, profile: claims("groups", []any{}), wantRules: unmet},
		{name: "absent", policy: groups, profile: claims(), wantRules: unmet},
		{name: "null", policy: groups, profile: profileWith(func(p *Profile) { p.Claims = map[string]any{"groups": nil} }), wantRules: unmet},
		{name: "object never matches", policy: Policy{Claims: []ClaimRule{{Claim: "groups", Values: []string{`{"a":"admins"}`}}}},
			profile: claims("groups", map[string]any{"a": "admins"}), wantRules: unmet},
		{name: "number by its text", policy: Policy{Claims: []ClaimRule{{Claim: "level", Values: []string{"42"}}}},
			profile: claims("level", float64(42))},
		{name: "large number by its integer text", policy: Policy{Claims: []ClaimRule{{Claim: "id", Values: []string{"1605180698"}}}},
			profile: claims("id", float64(1605180698))},
		{name: "bool by its text", policy: Policy{Claims: []ClaimRule{{Claim: "staff", Values: []string{"true"}}}},
			profile: claims("staff", true)},
		{name: "bool false is not true", policy: Policy{Claims: []ClaimRule{{Claim: "staff", Values: []string{"true"}}}},
			profile: claims("staff", false), wantRules: unmet},
		{name: "number inside an array", policy: Policy{Claims: []ClaimRule{{Claim: "roles", Values: []string{"7"}}}},
			profile: claims("roles", []any{float64(3), float64(7)})},
		{name: "nested path", policy: Policy{Claims: []ClaimRule{{Claim: "org.team", Values: []string{"red"}}}},
			profile: claims("org", map[string]any{"team": "red"})},
		{name: "name with dots taken whole", policy: Policy{Claims: []ClaimRule{{Claim: "https://example.com/role", Values: []string{"admin"}}}},
			profile: claims("https://example.com/role", "admin")},
		{name: "every rule must hold",
			policy:  Policy{Claims: []ClaimRule{{Claim: "groups", Values: []string{"admins"}}, {Claim: "dept", Values: []string{"it"}}}},
			profile: claims("groups", "admins", "dept", "hr"), wantRules: unmet},
		{name: "each failing rule reported",
			policy:  Policy{Claims: []ClaimRule{{Claim: "groups", Values: []string{"admins"}}, {Claim: "dept", Values: []string{"it"}}}},
			profile: claims(), wantRules: []string{"claim", "claim"}},
	})
}

// emailProfile is a known user with the given e-mail and email_verified.
func emailProfile(email string, verified *bool) *Profile {
	return profileWith(func(p *Profile) { p.Email, p.EmailVerified = email, verified })
}

func TestHDR05_EmailDomainRuleComparesTheWholeDomain(t *testing.T) {
	exact := Policy{EmailDomains: []string{"allowed.com"}}
	wild := Policy{EmailDomains: []string{"*.allowed.com"}}
	yes := policyBool(true)
	unmet := []string{"email_domain"}
	runCheckCases(t, []checkCase{
		{name: "exact domain", policy: exact, profile: emailProfile("x@allowed.com", yes)},
		{name: "upper case address", policy: exact, profile: emailProfile("X@ALLOWED.COM", yes)},
		{name: "upper case rule", policy: Policy{EmailDomains: []string{"Allowed.COM"}}, profile: emailProfile("x@allowed.com", yes)},
		{name: "second @ after the allowed domain", policy: exact, profile: emailProfile("victim@allowed.com@evil.com", yes), wantRules: unmet},
		{name: "second @ before the allowed domain", policy: exact, profile: emailProfile("victim@evil.com@allowed.com", yes), wantRules: unmet},
		{name: "allowed domain as a prefix", policy: exact, profile: emailProfile("x@allowed.com.evil.com", yes), wantRules: unmet},
		{name: "allowed domain as a suffix without dot", policy: exact, profile: emailProfile("x@evilallowed.com", yes), wantRules: unmet},
		{name: "subdomain of an exact rule", policy: exact, profile: emailProfile("x@a.allowed.com", yes), wantRules: unmet},
		{name: "trailing dot", policy: exact, profile: emailProfile("x@allowed.com.", yes), wantRules: unmet},
		{name: "no local part", policy: exact, profile: emailProfile("@allowed.com", yes), wantRules: unmet},
		{name: "no @", policy: exact, profile: emailProfile("allowed.com", yes), wantRules: unmet},
		{name: "no e-mail", policy: exact, profile: emailProfile("", yes), wantRules: unmet},
		{name: "wildcard: subdomain", policy: wild, profile: emailProfile("x@a.allowed.com", yes)},
		{name: "wildcard: deeper subdomain", policy: wild, profile: emailProfile("x@a.b.ALLOWED.com", yes)},
		{name: "wildcard: not the parent itself", policy: wild, profile: emailProfile("x@allowed.com", yes), wantRules: unmet},
		{name: "wildcard: suffix without dot", policy: wild, profile: emailProfile("x@evilallowed.com", yes), wantRules: unmet},
		{name: "wildcard: allowed domain as a prefix", policy: wild, profile: emailProfile("x@a.allowed.com.evil.com", yes), wantRules: unmet},
		{name: "wildcard: empty label", policy: wild, profile: emailProfile("x@.allowed.com", yes), wantRules: unmet},
		{name: "wildcard: trailing dot", policy: wild, profile: emailProfile("x@a.allowed.com.", yes), wantRules: unmet},
		{name: "wildcard: second @", policy: wild, profile: emailProfile("victim@a.allowed.com@evil.com", yes), wantRules: unmet},
		{name: "wildcard: second @ before an allowed subdomain", policy: wild, profile: emailProfile("victim@evil.com@a.allowed.com", yes), wantRules: unmet},
		{name: "any of several rules", policy: Policy{EmailDomains: []string{"other.org", "allowed.com"}}, profile: emailProfile("x@allowed.com", yes)},
	})
}

func TestHDR05_EmailDomainRuleRequiresAVerifiedAddress(t *testing.T) {
	p := Policy{EmailDomains: []string{"allowed.com"}}
	unmet := []string{"email_domain"}
	runCheckCases(t, []checkCase{
		{name: "verified", policy: p, profile: emailProfile("x@allowed.com", policyBool(true))},
		{name: "unverified", policy: p, profile: emailProfile("x@allowed.com", policyBool(false)), wantRules: unmet},
		{name: "email_verified absent", policy: p, profile: emailProfile("x@allowed.com", nil), wantRules: unmet},
	})

	// The claim as an OP sends it, through NewProfile: the string "true" counts as true,
	// the string "false" and anything else do not.
	for _, tc := range []struct {
		name     string
		verified any
		want     bool
	}{
		{"bool true", true, true},
		{`string "true"`, "true", true},
		{"bool false", false, false},
		{`string "false"`, "false", false},
		{`string "yes"`, "yes", false},
		{`string "True"`, "True", false},
		{"number 1", float64(1), false},
		{"absent", nil, false},
	} {
		t.Run("claim "+tc.name, func(t *testing.T) {
			claims := map[string]any{"sub": "u1", "iss": "https://op.example", "email": "x@allowed.com"}
			if tc.verified != nil {
				claims["email_verified"] = tc.verified
			}
			unmet, step := p.Check(NewProfile(claims, bindIDOpts), policyNow)
			if got := len(unmet) == 0; got != tc.want {
				t.Fatalf("email_verified %#v: allowed = %v, want %v (unmet %+v)", tc.verified, got, tc.want, unmet)
			}
			if step != nil {
				t.Fatalf("e-mail rule offered a step-up: %+v", step)
			}
		})
	}
}

func TestPolicyMaxAuthAge(t *testing.T) {
	p := Policy{MaxAuthAge: 15 * time.Minute}
	step := &StepUp{MaxAge: 15 * time.Minute, PromptLogin: true}
	at := func(d time.Duration) *Profile {
		return profileWith(func(p *Profile) { p.AuthTime = policyNow.Add(d).Unix() })
	}
	unmet := []string{"max_auth_age"}
	runCheckCases(t, []checkCase{
		{name: "just now", policy: p, profile: at(0)},
		{name: "exactly the limit", policy: p, profile: at(-15 * time.Minute)},
		{name: "one second over", policy: p, profile: at(-15*time.Minute - time.Second), wantRules: unmet, wantStep: step},
		{name: "a day old", policy: p, profile: at(-24 * time.Hour), wantRules: unmet, wantStep: step},
		{name: "absent", policy: p, profile: profileWith(func(p *Profile) { p.AuthTime = 0 }), wantRules: unmet, wantStep: step},
		{name: "future within the skew", policy: p, profile: at(AuthTimeSkew)},
		{name: "future beyond the skew: no step-up", policy: p, profile: at(AuthTimeSkew + time.Second), wantRules: unmet},
		{name: "far future", policy: p, profile: profileWith(func(p *Profile) { p.AuthTime = 1 << 62 }), wantRules: unmet},
	})
}

func TestPolicyKnownUser(t *testing.T) {
	p := Policy{KnownUser: true}
	runCheckCases(t, []checkCase{
		{name: "alias present", policy: p, profile: policyUser()},
		{name: "new user: no step-up", policy: p, profile: profileWith(func(p *Profile) { p.NewUser, p.Alias = true, "" }),
			wantRules: []string{"known_user"}},
	})
}

func TestPolicyStepUpMergesTheUnmetRules(t *testing.T) {
	acrAge := Policy{ACR: []string{"urn:bankid:bid"}, MaxAuthAge: 10 * time.Minute}
	full := &StepUp{ACRValues: []string{"urn:bankid:bid"}, MaxAge: 10 * time.Minute, PromptLogin: true}
	oldLowACR := profileWith(func(p *Profile) { p.ACR = "pwd"; p.AuthTime = policyNow.Add(-time.Hour).Unix() })
	runCheckCases(t, []checkCase{
		{name: "acr and max_auth_age", policy: acrAge, profile: oldLowACR,
			wantRules: []string{"acr", "max_auth_age"}, wantStep: full},
		// A new sign-in must meet the whole policy: the step-up for one rule still
		// requests what the others need.
		{name: "only acr unmet still requests max_age", policy: acrAge,
			profile: profileWith(func(p *Profile) { p.ACR = "pwd" }), wantRules: []string{"acr"}, wantStep: full},
		{name: "only max_auth_age unmet still requests acr", policy: acrAge,
			profile:   profileWith(func(p *Profile) { p.AuthTime = policyNow.Add(-time.Hour).Unix() }),
			wantRules: []string{"max_auth_age"}, wantStep: full},
		{name: "amr and acr_at_least",
			policy:  Policy{ACRAtLeast: "b", ACRLevels: []string{"a", "b", "c"}, AMR: []string{"hwk"}},
			profile: profileWith(func(p *Profile) { p.ACR = "a" }), wantRules: []string{"acr_at_least", "amr"},
			wantStep: &StepUp{ACRValues: []string{"b", "c"}, PromptLogin: true}},
		{name: "acr and known_user: a new sign-in cannot fix known_user",
			policy:    Policy{ACR: []string{"urn:bankid:bid"}, KnownUser: true},
			profile:   profileWith(func(p *Profile) { p.ACR = "pwd"; p.NewUser = true }),
			wantRules: []string{"acr", "known_user"}},
		{name: "max_auth_age and claim",
			policy:  Policy{MaxAuthAge: time.Minute, Claims: []ClaimRule{{Claim: "groups", Values: []string{"admins"}}}},
			profile: profileWith(func(p *Profile) { p.AuthTime = 0 }), wantRules: []string{"claim", "max_auth_age"}},
		{name: "amr and email_domain",
			policy:  Policy{AMR: []string{"hwk"}, EmailDomains: []string{"example.com"}},
			profile: policyUser(), wantRules: []string{"amr", "email_domain"}},
		{name: "acr and future auth_time",
			policy:    acrAge,
			profile:   profileWith(func(p *Profile) { p.ACR = "pwd"; p.AuthTime = policyNow.Add(time.Hour).Unix() }),
			wantRules: []string{"acr", "max_auth_age"}},
		{name: "all met despite other claims", policy: acrAge, profile: policyUser()},
	})
}

func TestPolicyCheckReportsEveryUnmetRuleInFieldOrder(t *testing.T) {
	p := Policy{
		ACR:          []string{"loa3"},
		ACRAtLeast:   "loa3",
		ACRLevels:    []string{"loa1", "loa2", "loa3"},
		AMR:          []string{"hwk"},
		Claims:       []ClaimRule{{Claim: "groups", Values: []string{"admins"}}},
		EmailDomains: []string{"example.com"},
		MaxAuthAge:   time.Minute,
		KnownUser:    true,
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, prof := range []*Profile{{NewUser: true}, nil} {
		unmet, step := p.Check(prof, policyNow)
		var rules []string
		for _, u := range unmet {
			rules = append(rules, u.Rule)
		}
		want := []string{"acr", "acr_at_least", "amr", "claim", "email_domain", "max_auth_age", "known_user"}
		if !reflect.DeepEqual(rules, want) {
			t.Errorf("profile %v: rules = %q, want %q", prof, rules, want)
		}
		if step != nil {
			t.Errorf("profile %v: stepUp %+v, want nil", prof, step)
		}
	}
}

func TestPolicyReasonWording(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		profile *Profile
		want    string
	}{
		{"acr_at_least",
			Policy{ACRAtLeast: "urn:bankid:bid", ACRLevels: []string{"ts.bindid.iac.email", "urn:bankid:bid"}},
			profileWith(func(p *Profile) { p.ACR = "ts.bindid.iac.phone_number" }),
			`this page requires an authentication level of at least "urn:bankid:bid"; this sign-in has "ts.bindid.iac.phone_number"`},
		{"acr, one value, none present",
			Policy{ACR: []string{"urn:bankid:bid"}},
			profileWith(func(p *Profile) { p.ACR = "" }),
			`this page requires the authentication level "urn:bankid:bid"; this sign-in has none`},
		{"acr, three values",
			Policy{ACR: []string{"a", "b", "c"}},
			profileWith(func(p *Profile) { p.ACR = "x" }),
			`this page requires an authentication level of "a", "b" or "c"; this sign-in has "x"`},
		{"amr",
			Policy{AMR: []string{"otp", "hwk", "pwd"}},
			policyUser(),
			`this page requires the authentication method "hwk"; this sign-in used "pwd" and "otp"`},
		{"claim absent",
			Policy{Claims: []ClaimRule{{Claim: "groups", Values: []string{"admins", "ops"}}}},
			policyUser(),
			`this page requires the claim "groups" to be "admins" or "ops"; this sign-in does not have it`},
		{"claim other value",
			Policy{Claims: []ClaimRule{{Claim: "groups", Values: []string{"eng"}}}},
			profileWith(func(p *Profile) { p.Claims = map[string]any{"groups": []any{"eng,admins"}} }),
			`this page requires the claim "groups" to be "eng"; this sign-in has "[\"eng,admins\"]"`},
		{"email other domain",
			Policy{EmailDomains: []string{"example.com", "*.example.org"}},
			emailProfile("x@Evil.com", policyBool(true)),
			`this page requires a verified e-mail address in "example.com" or "*.example.org"; this sign-in's e-mail address is in "evil.com"`},
		{"email unverified",
			Policy{EmailDomains: []string{"example.com"}},
			emailProfile("x@example.com", nil),
			`this page requires a verified e-mail address in "example.com"; this sign-in's e-mail address is not verified`},
		{"email malformed",
			Policy{EmailDomains: []string{"example.com"}},
			emailProfile("victim@example.com@evil.com", policyBool(true)),
			`this page requires a verified e-mail address in "example.com"; this sign-in's e-mail address is not of the form name@domain`},
		{"max_auth_age old",
			Policy{MaxAuthAge: 15 * time.Minute},
			profileWith(func(p *Profile) { p.AuthTime = policyNow.Add(-2*time.Hour - 3*time.Minute).Unix() }),
			`this page requires a sign-in within the last 15m; this sign-in happened 2h3m ago`},
		{"max_auth_age absent",
			Policy{MaxAuthAge: time.Hour},
			profileWith(func(p *Profile) { p.AuthTime = 0 }),
			`this page requires a sign-in within the last 1h; this sign-in does not say when it happened (no auth_time)`},
		{"max_auth_age future",
			Policy{MaxAuthAge: 90 * time.Second},
			profileWith(func(p *Profile) { p.AuthTime = policyNow.Add(time.Hour).Unix() }),
			`this page requires a sign-in within the last 1m30s; this sign-in's time (auth_time) is 1h in the future, so the identity provider's clock or the gateway's is wrong`},
		{"known_user",
			Policy{KnownUser: true},
			profileWith(func(p *Profile) { p.NewUser = true }),
			`this page requires a sign-in linked to an existing account; this sign-in is not linked to an account yet`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			unmet, _ := tc.policy.Check(tc.profile, policyNow)
			if len(unmet) != 1 {
				t.Fatalf("unmet = %+v, want one rule", unmet)
			}
			if unmet[0].Reason != tc.want {
				t.Errorf("reason\n got %s\nwant %s", unmet[0].Reason, tc.want)
			}
		})
	}
}

func TestPolicyReasonIsSanitizedAndBounded(t *testing.T) {
	hostile := "admin\r\nX-Injected: 1\x00\u202e\x1b[31m" + strings.Repeat("A\n", 5000) // ~10 KB
	many := make([]any, 50)
	for i := range many {
		many[i] = hostile
	}
	p := Policy{
		ACR:          []string{"urn:bankid:bid"},
		ACRAtLeast:   "urn:bankid:bid",
		ACRLevels:    []string{"urn:bankid:bid"},
		AMR:          []string{"hwk"},
		Claims:       []ClaimRule{{Claim: "groups", Values: []string{"admins"}}, {Claim: "dept", Values: []string{"it"}}},
		EmailDomains: []string{"example.com"},
	}
	prof := profileWith(func(p *Profile) {
		p.ACR = hostile
		p.AMR = []string{hostile, hostile, hostile, hostile, hostile, hostile, hostile}
		p.Email = "x@" + hostile
		p.EmailVerified = policyBool(true)
		p.Claims = map[string]any{"groups": hostile, "dept": many}
	})
	unmet, _ := p.Check(prof, policyNow)
	if len(unmet) != 6 {
		t.Fatalf("unmet = %d rules, want 6: %+v", len(unmet), unmet)
	}
	for _, u := range unmet {
		if len(u.Reason) > 700 {
			t.Errorf("%s: reason is %d bytes: %.200q…", u.Rule, len(u.Reason), u.Reason)
		}
		if !utf8.ValidString(u.Reason) {
			t.Errorf("%s: reason is not valid UTF-8", u.Rule)
		}
		for _, r := range u.Reason {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Errorf("%s: reason holds %U: %q", u.Rule, r, u.Reason)
				break
			}
		}
		if !strings.Contains(u.Reason, "…") {
			t.Errorf("%s: a cut value is not marked with …: %q", u.Rule, u.Reason)
		}
	}
	// Control characters are dropped, not shown as escapes.
	for _, u := range unmet {
		for _, esc := range []string{`\r`, `\n`, `\x00`, `\x1b`, `\u202e`} {
			if strings.Contains(u.Reason, esc) {
				t.Errorf("%s: reason holds the escape %s: %.120q", u.Rule, esc, u.Reason)
			}
		}
	}
	// A list longer than the shown items says how long it is.
	if got := unmet[2].Reason; !strings.Contains(got, "(7 in all)") {
		t.Errorf("amr reason does not count the list: %q", got)
	}
	// Invalid UTF-8 is replaced, never passed through.
	q := reasonQuote("a\xffb")
	if q != `"a�b"` {
		t.Errorf("reasonQuote(invalid UTF-8) = %s", q)
	}
}

func TestPolicyCheckFailsClosedOnAnInvalidPolicy(t *testing.T) {
	// Validate rejects these; Check must still not let an empty value match an absent claim.
	prof := profileWith(func(p *Profile) { p.ACR = ""; p.AMR = nil; p.Claims = map[string]any{} })
	for name, p := range map[string]Policy{
		"acr [\"\"]":          {ACR: []string{""}},
		"amr [\"\"]":          {AMR: []string{""}},
		"claim without name":  {Claims: []ClaimRule{{Values: []string{""}}}},
		"acr_at_least \"\"":   {ACRAtLeast: "", ACRLevels: []string{""}, ACR: []string{"x"}},
		"email_domain \"\"":   {EmailDomains: []string{""}},
		"email_domain \"*.\"": {EmailDomains: []string{"*."}},
	} {
		if p.Validate() == nil {
			t.Errorf("%s: Validate() = nil", name)
		}
		if unmet, _ := p.Check(prof, policyNow); len(unmet) == 0 {
			t.Errorf("%s: an absent claim met the rule", name)
		}
	}
	if unmet, _ := (&Policy{EmailDomains: []string{"*."}}).Check(emailProfile("x@a.", policyBool(true)), policyNow); len(unmet) == 0 {
		t.Error(`email_domain "*.": "x@a." met it`)
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		want   []string // substrings of the error; none = valid
	}{
		{name: "zero", policy: Policy{}},
		{name: "everything", policy: Policy{
			ACR: []string{"loa3", "loa2"}, ACRAtLeast: "loa2", ACRLevels: []string{"loa1", "loa2", "loa3"},
			AMR: []string{"hwk"}, Claims: []ClaimRule{{Claim: "groups", Values: []string{"admins"}}},
			EmailDomains: []string{"example.com", "*.example.org", "xn--bcher-kva.example", "a-b.c0m"},
			MaxAuthAge:   time.Second, KnownUser: true,
		}},
		{name: "acr_at_least not in acr_levels",
			policy: Policy{ACRAtLeast: "urn:bankid:bid", ACRLevels: []string{"loa1", "loa2"}},
			want:   []string{`acr_at_least "urn:bankid:bid" is not one of acr_levels ["loa1", "loa2"]`}},
		{name: "acr_at_least without acr_levels",
			policy: Policy{ACRAtLeast: "loa2"},
			want:   []string{`acr_at_least "loa2" needs acr_levels`}},
		{name: "acr_levels without acr_at_least",
			policy: Policy{ACRLevels: []string{"loa1"}},
			want:   []string{"acr_levels is set without acr_at_least"}},
		{name: "duplicate level",
			policy: Policy{ACRAtLeast: "loa1", ACRLevels: []string{"loa1", "loa2", "loa1"}},
			want:   []string{`acr_levels: value "loa1" is listed twice`}},
		{name: "acr and acr_at_least can never both hold",
			policy: Policy{ACR: []string{"loa1"}, ACRAtLeast: "loa2", ACRLevels: []string{"loa1", "loa2"}},
			want:   []string{`acr ["loa1"] and acr_at_least "loa2" can never both hold`}},
		{name: "empty acr list", policy: Policy{ACR: []string{}}, want: []string{"acr: the list is empty"}},
		{name: "empty acr value", policy: Policy{ACR: []string{""}}, want: []string{"acr: empty value"}},
		{name: "acr value with spaces", policy: Policy{ACR: []string{" loa1"}}, want: []string{`acr: value " loa1" has leading or trailing spaces`}},
		{name: "acr value with control", policy: Policy{ACR: []string{"lo\na1"}}, want: []string{`acr: value "lo\na1" contains control characters`}},
		{name: "empty amr list", policy: Policy{AMR: []string{}}, want: []string{"amr: the list is empty"}},
		{name: "duplicate amr", policy: Policy{AMR: []string{"otp", "otp"}}, want: []string{`amr: value "otp" is listed twice`}},
		{name: "empty claim rules", policy: Policy{Claims: []ClaimRule{}}, want: []string{"claim: the list of claim rules is empty"}},
		{name: "claim without name", policy: Policy{Claims: []ClaimRule{{Values: []string{"x"}}}}, want: []string{"claim rule #1: the claim name is empty"}},
		{name: "claim without values", policy: Policy{Claims: []ClaimRule{{Claim: "groups"}}}, want: []string{`claim "groups": no values`}},
		{name: "claim with empty value", policy: Policy{Claims: []ClaimRule{{Claim: "groups", Values: []string{""}}}}, want: []string{`claim "groups": empty value`}},
		{name: "empty domain list", policy: Policy{EmailDomains: []string{}}, want: []string{"email_domain: the list is empty"}},
		{name: "domain with @", policy: Policy{EmailDomains: []string{"@example.com"}}, want: []string{`email_domain "@example.com": write the domain without '@'`}},
		{name: "domain with bare *", policy: Policy{EmailDomains: []string{"*example.com"}}, want: []string{`email_domain "*example.com": a wildcard is only allowed as the whole first label`}},
		{name: "domain with inner *", policy: Policy{EmailDomains: []string{"a.*.example.com"}}, want: []string{"a wildcard is only allowed"}},
		{name: "domain with trailing dot", policy: Policy{EmailDomains: []string{"example.com."}}, want: []string{`email_domain "example.com.": remove the trailing dot`}},
		{name: "domain with leading dot", policy: Policy{EmailDomains: []string{".example.com"}}, want: []string{`email_domain ".example.com": empty label`}},
		{name: "domain with double dot", policy: Policy{EmailDomains: []string{"example..com"}}, want: []string{"empty label"}},
		{name: "domain with space", policy: Policy{EmailDomains: []string{"exa mple.com"}}, want: []string{`character ' ' is not allowed in a domain`}},
		{name: "domain with hyphen edge", policy: Policy{EmailDomains: []string{"-example.com"}}, want: []string{`label "-example" starts or ends with '-'`}},
		{name: "unicode domain", policy: Policy{EmailDomains: []string{"bücher.example"}}, want: []string{"xn--"}},
		{name: "empty domain", policy: Policy{EmailDomains: []string{""}}, want: []string{`email_domain "": empty domain`}},
		{name: "duplicate domain", policy: Policy{EmailDomains: []string{"example.com", "EXAMPLE.com"}}, want: []string{`email_domain "EXAMPLE.com" is listed twice`}},
		{name: "negative max_auth_age", policy: Policy{MaxAuthAge: -time.Minute}, want: []string{"max_auth_age -1m0s is negative"}},
		{name: "sub-second max_auth_age", policy: Policy{MaxAuthAge: time.Millisecond}, want: []string{"max_auth_age 1ms is shorter than 1s"}},
		{name: "every mistake reported",
			policy: Policy{ACR: []string{""}, AMR: []string{}, MaxAuthAge: -1},
			want:   []string{"acr: empty value", "amr: the list is empty", "max_auth_age"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestPolicyFingerprint(t *testing.T) {
	base := Policy{
		ACR: []string{"loa3"}, ACRAtLeast: "loa2", ACRLevels: []string{"loa1", "loa2", "loa3"},
		AMR: []string{"hwk"}, Claims: []ClaimRule{{Claim: "groups", Values: []string{"admins"}}},
		EmailDomains: []string{"example.com"}, MaxAuthAge: time.Hour, KnownUser: true,
	}
	fp := base.Fingerprint()
	if len(fp) != 16 || strings.Trim(fp, "0123456789abcdef") != "" {
		t.Fatalf("Fingerprint() = %q, want 16 lowercase hex digits", fp)
	}
	// Stable across processes and releases: sessions remember it.
	if want := "cf77ac3b98ba6f23"; fp != want {
		t.Errorf("Fingerprint() = %s, want %s (changing it invalidates recorded step-ups)", fp, want)
	}
	same := base
	same.ACR = []string{"loa3"}
	if same.Fingerprint() != fp {
		t.Error("equal policies have different fingerprints")
	}
	edits := map[string]func(p *Policy){
		"acr":           func(p *Policy) { p.ACR = []string{"loa2"} },
		"acr_at_least":  func(p *Policy) { p.ACRAtLeast = "loa3" },
		"acr_levels":    func(p *Policy) { p.ACRLevels = []string{"loa1", "loa2", "loa3", "loa4"} },
		"amr":           func(p *Policy) { p.AMR = []string{"otp"} },
		"claim name":    func(p *Policy) { p.Claims = []ClaimRule{{Claim: "roles", Values: []string{"admins"}}} },
		"claim values":  func(p *Policy) { p.Claims = []ClaimRule{{Claim: "groups", Values: []string{"admins", "ops"}}} },
		"email_domains": func(p *Policy) { p.EmailDomains = []string{"*.example.com"} },
		"max_auth_age":  func(p *Policy) { p.MaxAuthAge = time.Minute },
		"known_user":    func(p *Policy) { p.KnownUser = false },
		// Moving a value between fields must not collide.
		"amr moved into acr": func(p *Policy) { p.ACR = []string{"loa3", "hwk"}; p.AMR = nil },
	}
	seen := map[string]string{fp: "base"}
	for name, edit := range edits {
		q := base
		edit(&q)
		got := q.Fingerprint()
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: fingerprint %s equals that of %s", name, got, prev)
		}
		seen[got] = name
	}
	if (*Policy)(nil).Fingerprint() != (&Policy{}).Fingerprint() {
		t.Error("nil and zero policies differ")
	}
}

func TestPolicyScopes(t *testing.T) {
	p := &Policy{Scopes: []string{"read", "write"}}
	if p.IsZero() {
		t.Fatal("a scope rule is not zero")
	}
	if u, _ := p.Check(&Profile{Subject: "s"}, time.Now()); len(u) != 0 {
		t.Errorf("Check reported %v; scopes are checked by CheckScopes only", u)
	}
	if u := p.CheckScopes([]string{"write", "read", "x"}, true); u != nil {
		t.Errorf("all scopes granted: %v", u)
	}
	u := p.CheckScopes([]string{"read"}, true)
	if u == nil || u.Rule != RuleScope || !strings.Contains(u.Reason, `"write"`) || strings.Contains(u.Reason, `"read"`) {
		t.Errorf("missing write: %+v, want the missing scope named", u)
	}
	if u := p.CheckScopes(nil, false); u == nil || u.Rule != RuleScope {
		t.Errorf("a session (scopes unknown) met the rule: %v", u)
	}
	if u := (&Policy{}).CheckScopes(nil, false); u != nil {
		t.Errorf("no scope rule: %v", u)
	}
	for _, bad := range [][]string{{}, {""}, {"a b"}, {`a"b`}, {"a", "a"}} {
		if err := (&Policy{Scopes: bad}).Validate(); err == nil {
			t.Errorf("Validate(Scopes %q) = nil, want an error", bad)
		}
	}
	// Policies without scopes keep their fingerprints.
	if (&Policy{Groups: []string{"g"}}).Fingerprint() == (&Policy{Groups: []string{"g"}, Scopes: []string{"s"}}).Fingerprint() {
		t.Error("the scope rule does not change the fingerprint")
	}
}
