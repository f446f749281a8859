package provider

import (
	"errors"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	for _, tt := range []struct {
		name, want string
	}{
		{"", Generic}, {"generic", Generic}, {"bindid", BindID}, {"iddataweb", IDDataweb}, {"bankid", BankID},
	} {
		p, err := Lookup(tt.name)
		if err != nil || p.Name != tt.want {
			t.Errorf("Lookup(%q) = %v, %v; want %s", tt.name, p, err, tt.want)
		}
	}
	for _, bad := range []string{"BindID", "keycloak", "bind id"} {
		if _, err := Lookup(bad); err == nil || !strings.Contains(err.Error(), "bankid, bindid, generic, iddataweb") {
			t.Errorf("Lookup(%q) error = %v, want one naming the known profiles", bad, err)
		}
	}
}

// The profiles carry what each provider publishes (see each file's comment).
func TestProfilesFollowThePublishedFormats(t *testing.T) {
	bindid, _ := Lookup(BindID)
	if bindid.AliasClaim != "bindid_alias" {
		t.Errorf("bindid alias claim = %q, want bindid_alias (seed 000)", bindid.AliasClaim)
	}
	for _, name := range []string{Generic, IDDataweb, BankID} {
		if p, _ := Lookup(name); p.AliasClaim != "" {
			t.Errorf("%s alias claim = %q, want none: only BindID reports new users", name, p.AliasClaim)
		}
	}
	bankid, _ := Lookup(BankID)
	if !bankid.UserinfoRequireSigned || bankid.Userinfo != "get" {
		t.Errorf("bankid userinfo = %q signed %v, want get, signed JWT required (seed 003)", bankid.Userinfo, bankid.UserinfoRequireSigned)
	}
	if got := bankid.UserinfoIssuer("https://auth.current.bankid.no/auth/realms/current/"); got != "https://userinfo.current.bankid.no" {
		t.Errorf("bankid userinfo issuer for the current environment = %q, want https://userinfo.current.bankid.no (seed 003)", got)
	}
	if got := bankid.UserinfoIssuer("https://idp.example.com"); got != "" {
		t.Errorf("bankid userinfo issuer for an unknown issuer = %q, want \"\" (the issuer itself)", got)
	}
	idw, _ := Lookup(IDDataweb)
	if idw.LoginHintFormat != HintIDDataweb || idw.Decision == nil || idw.Decision.Claim != "policyDecision" ||
		idw.Verification.RiskScore != "idwRiskScore" || idw.Verification.TrustScore != "idwTrustScore" {
		t.Errorf("iddataweb profile = %+v, want policyDecision, idwRiskScore, idwTrustScore and its own login_hint", idw)
	}
	if g, _ := Lookup(Generic); g.Decision != nil || g.LoginHintFormat != "" || g.Userinfo != "" {
		t.Errorf("generic profile = %+v, want nothing beyond OpenID Connect", g)
	}
}

func TestDecisionCheck(t *testing.T) {
	d := &Decision{Claim: "policyDecision", Approve: "approve"}
	for _, tt := range []struct {
		name      string
		id, ui    map[string]any
		wantValue string
		approved  bool
	}{
		{"approved in the ID token", map[string]any{"policyDecision": "approve"}, nil, "", true},
		{"denied", map[string]any{"policyDecision": "deny"}, nil, "deny", false},
		{"missing everywhere", map[string]any{"sub": "s"}, map[string]any{"sub": "s"}, "", false},
		{"unknown value", map[string]any{"policyDecision": "obligation"}, nil, "obligation", false},
		{"case matters", map[string]any{"policyDecision": "Approve"}, nil, "Approve", false},
		{"not a string", map[string]any{"policyDecision": true}, nil, "", false},
		{"userinfo when the ID token has none", map[string]any{}, map[string]any{"policyDecision": "approve"}, "", true},
		{"userinfo never overrides the ID token", map[string]any{"policyDecision": "deny"}, map[string]any{"policyDecision": "approve"}, "deny", false},
	} {
		err := d.Check(tt.id, tt.ui)
		if tt.approved {
			if err != nil {
				t.Errorf("%s: Check() = %v, want approved", tt.name, err)
			}
			continue
		}
		var de *DecisionError
		if !errors.As(err, &de) || de.Value != tt.wantValue || de.Claim != "policyDecision" {
			t.Errorf("%s: Check() = %v, want a DecisionError with value %q", tt.name, err, tt.wantValue)
		}
	}
}
