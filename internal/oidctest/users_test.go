package oidctest

import (
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"testing"
)

// seed000Userinfo is the BindID userinfo body of shared/seeds/000 (braces restored).
const seed000Userinfo = `{
"sub": "123e4567-e89b-12d3-a456-426652340000",
"auth_time": 1605180698,
"nonce": "n-077-RsA2Kh",
"acr": " ts.bindid.iac.phone_number",
"amr": ["ts.bind_id.ama", "ts.bind_id.mfca"],
"bindid_alias": "username@domain",
"email": "",
"email_verified": true,
"phone_number": "+12125556789",
"phone_number_verified": true,
"bindid_info": {
"capp_first_login_from_authenticating_device": 1605180500,
"authenticating_device": {
"browser_type": "Mobile",
"os_type": "iOS",
"os_version": "14.1",
"browser_version": "Safari"
},
"capp_last_login_from_authenticating_device": 1605180574,
"capp_last_login": 1605180577,
"capp_first_login": 1605180504,
"capp_first_confirmed_login": 1605180577,
"originating_device": {
"browser_type": "Chrome",
"os_type": "Mac OS",
"os_version": "10.15.7",
"browser_version": "86.0.4240.183"
}
},
"bindid_network_info": {
"user_registration_time": 1605180498,
"authenticating_device_registration_time": 1605180500,
"authenticating_device_last_seen": 1605180691,
"user_last_seen": 1605180694,
"confirmed_capp_count": 1,
"device_count": 2
}
}`

// seed003Userinfo is the BankID signed-userinfo payload of shared/seeds/003.
const seed003Userinfo = `{
  "iss": "https://userinfo.current.bankid.no",
  "sub": "9578-6000-4-00001",
  "aud": "oidc-testclient",
  "name": "Ola Normann",
  "given_name": "Ola",
  "family_name": "Normann",
  "updated_at": 1519992419860,
  "email": "normann@example.org",
  "birthdate": "110286",
  "phone_number": "95871775",
  "address": {
    "formatted": "Veien 311\nOslo 0772",
    "street_address": "Veien 311",
    "locality": "0772",
    "postal_code": "Oslo"
  }
}`

// normalise round-trips v through JSON so Go values compare with decoded seeds.
func normalise(tb testing.TB, v any) any {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		tb.Fatal(err)
	}
	return out
}

func decodeSeed(tb testing.TB, s string) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		tb.Fatalf("seed: %v", err)
	}
	return m
}

func userByLabel(tb testing.TB, label string) User {
	tb.Helper()
	for _, u := range DefaultUsers() {
		if u.Label == label {
			return u
		}
	}
	tb.Fatalf("DefaultUsers() has no user labelled %q", label)
	return User{}
}

func without(m map[string]any, keys ...string) map[string]any {
	out := maps.Clone(m)
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

func TestDefaultUsersFollowSeeds(t *testing.T) {
	seed000 := decodeSeed(t, seed000Userinfo)
	seed003 := decodeSeed(t, seed003Userinfo)
	tests := []struct {
		name      string
		label     string
		subject   string
		signed    bool
		userinfo  map[string]any // expected UserinfoClaims + sub
		idToken   map[string]any // expected IDTokenClaims
		nonASCIIs string
	}{
		{
			name: "BindID known user", label: "bindid-known", subject: SubjectBindIDKnown,
			userinfo: seed000, idToken: without(seed000, "sub", "auth_time", "nonce"),
		},
		{
			name: "BindID new user", label: "bindid-new", subject: SubjectBindIDNew,
			userinfo: func() map[string]any {
				m := without(seed000, "bindid_alias")
				m["sub"] = SubjectBindIDNew
				return m
			}(),
			idToken: without(seed000, "sub", "auth_time", "nonce", "bindid_alias"),
		},
		{
			name: "BankID Ola Normann", label: "ola", subject: SubjectOla, signed: true,
			userinfo: without(seed003, "iss", "aud"), idToken: map[string]any{},
		},
		{
			name: "non-ASCII Åse", label: "ase", subject: SubjectAse,
			userinfo: map[string]any{"sub": SubjectAse, "name": "Åse Øvrebø", "given_name": "Åse", "family_name": "Øvrebø", "email": "ase@example.org", "email_verified": true},
			idToken:  map[string]any{"name": "Åse Øvrebø", "given_name": "Åse", "family_name": "Øvrebø", "email": "ase@example.org", "email_verified": true},
		},
		{
			name: "bank customer (seed 004 claims)", label: "kari", subject: SubjectKari, signed: true,
			userinfo: map[string]any{"sub": SubjectKari, "given_name": "Kari", "family_name": "Nordmann", "personal_id_number": "01017012345",
				"birthdate": "1970-01-01", "email": "kari.nordmann@example.org", "msisdn": "4791234567"},
			idToken: map[string]any{},
		},
		{
			// Seed 002's test account record; phone and e-mail are made up.
			name: "identity binding Andrew Roshell (seed 002)", label: "andrew", subject: SubjectAndrew,
			userinfo: map[string]any{"sub": SubjectAndrew, "name": "Andrew Roshell", "given_name": "Andrew", "family_name": "Roshell",
				"email": "andrew.roshell@example.org", "email_verified": true, "phone_number": "+15555550100", "phone_number_verified": true},
			// ID Dataweb's Gateway puts its verdict in the ID token (policyDecision, and the
			// scores as strings).
			idToken: map[string]any{"name": "Andrew Roshell", "given_name": "Andrew", "family_name": "Roshell",
				"email": "andrew.roshell@example.org", "email_verified": true, "phone_number": "+15555550100", "phone_number_verified": true,
				"policyDecision": "approve", "idwRiskScore": "100", "idwTrustScore": "100"},
		},
		{
			name: "ID Dataweb denied", label: "idw-deny", subject: SubjectIDWDeny,
			userinfo: map[string]any{"sub": SubjectIDWDeny, "name": "Dana Deny", "given_name": "Dana", "family_name": "Deny",
				"email": "dana.deny@example.org", "email_verified": true, "phone_number": "+15555550111", "phone_number_verified": true},
			idToken: map[string]any{"name": "Dana Deny", "given_name": "Dana", "family_name": "Deny",
				"email": "dana.deny@example.org", "email_verified": true, "phone_number": "+15555550111", "phone_number_verified": true,
				"policyDecision": "deny", "idwRiskScore": "0", "idwTrustScore": "0"},
		},
		{
			name: "ID Dataweb without a verdict", label: "idw-none", subject: SubjectIDWNone,
			userinfo: map[string]any{"sub": SubjectIDWNone, "name": "Nora None", "given_name": "Nora", "family_name": "None",
				"email": "nora.none@example.org", "email_verified": true, "phone_number": "+15555550122", "phone_number_verified": true},
			idToken: map[string]any{"name": "Nora None", "given_name": "Nora", "family_name": "None",
				"email": "nora.none@example.org", "email_verified": true, "phone_number": "+15555550122", "phone_number_verified": true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := userByLabel(t, tt.label)
			if u.Subject != tt.subject || u.SignedUserinfo != tt.signed {
				t.Errorf("user %q = sub %q signed %v, want %q %v", tt.label, u.Subject, u.SignedUserinfo, tt.subject, tt.signed)
			}
			ui := maps.Clone(u.UserinfoClaims)
			ui["sub"] = u.Subject
			if got, want := normalise(t, ui), normalise(t, tt.userinfo); !reflect.DeepEqual(got, want) {
				t.Errorf("UserinfoClaims + sub =\n%v\nwant\n%v", got, want)
			}
			if got, want := normalise(t, u.IDTokenClaims), normalise(t, tt.idToken); !reflect.DeepEqual(got, want) {
				t.Errorf("IDTokenClaims =\n%v\nwant\n%v", got, want)
			}
		})
	}
	if got := len(DefaultUsers()); got != len(tests) {
		t.Errorf("len(DefaultUsers()) = %d, want %d", got, len(tests))
	}
}

func TestDefaultClient(t *testing.T) {
	c := DefaultClient()
	if c.ID != "trustgate" || c.Secret != "trustgate-dev-secret" || len(c.RedirectURIs) != 1 || c.RedirectURIs[0] != "*" || c.SignedUserinfo {
		t.Errorf("DefaultClient() = %+v, want trustgate / trustgate-dev-secret / [*], JSON userinfo", c)
	}
}

func TestDefaultUsersAreFreshCopies(t *testing.T) {
	a := DefaultUsers()
	a[0].IDTokenClaims["bindid_info"].(map[string]any)["capp_last_login"] = int64(1)
	a[0].UserinfoClaims["amr"].([]any)[0] = "changed"
	b := DefaultUsers()
	if got := b[0].IDTokenClaims["bindid_info"].(map[string]any)["capp_last_login"]; got != int64(1605180577) {
		t.Errorf("DefaultUsers() after mutating an earlier result: capp_last_login = %v, want 1605180577", got)
	}
	if got := b[0].UserinfoClaims["amr"].([]any)[0]; got != "ts.bind_id.ama" {
		t.Errorf("DefaultUsers() after mutating an earlier result: amr[0] = %v, want ts.bind_id.ama", got)
	}
}

// TestProviderIsolatesClaims checks that neither the caller's maps nor MutateIDToken can
// change the claims of later tokens.
func TestProviderIsolatesClaims(t *testing.T) {
	users := DefaultUsers()
	op := NewTest(t, Options{Users: users})
	users[0].IDTokenClaims["bindid_alias"] = "changed-after-New"

	op.SetFaults(Faults{MutateIDToken: func(_, c map[string]any) {
		c["bindid_info"].(map[string]any)["capp_last_login"] = 1
	}})
	mustTokens(t, op, SubjectBindIDKnown)
	op.SetFaults(Faults{})
	_, c, _ := decodeJWT(t, mustTokens(t, op, SubjectBindIDKnown)["id_token"].(string))
	if c["bindid_alias"] != "username@domain" {
		t.Errorf("bindid_alias = %v, want username@domain (caller's later change ignored)", c["bindid_alias"])
	}
	if got := c["bindid_info"].(map[string]any)["capp_last_login"]; got != float64(1605180577) {
		t.Errorf("capp_last_login = %v, want 1605180577 (earlier mutation not kept)", got)
	}
}

// TestUserinfoSeedShapeThroughProvider checks the served userinfo: the seed 000 body with the
// login's auth_time and nonce, and no nonce when the login had none.
func TestUserinfoSeedShapeThroughProvider(t *testing.T) {
	clock := newFakeClock()
	op := NewTest(t, Options{Now: clock.Now})
	at := mustTokens(t, op, SubjectBindIDKnown)["access_token"].(string)
	resp, body := userinfo(t, op, at)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("userinfo status = %d, want 200", resp.StatusCode)
	}
	want := decodeSeed(t, seed000Userinfo)
	want["auth_time"] = float64(clock.Now().Unix())
	want["nonce"] = "nonce-456"
	if got := decodeObject(t, body); !reflect.DeepEqual(got, want) {
		t.Errorf("userinfo =\n%v\nwant\n%v", got, want)
	}

	verifier, challenge := pkcePair(t)
	p := authParams(challenge)
	p.Del("nonce")
	p.Set("user", SubjectBindIDKnown)
	resp, _ = postForm(t, op.Issuer()+PathAuthorize, p)
	_, tok := exchange(t, op, codeFrom(t, resp), verifier)
	_, body = userinfo(t, op, tok["access_token"].(string))
	if m := decodeObject(t, body); m["nonce"] != nil {
		t.Errorf("userinfo nonce without a login nonce = %v, want absent", m["nonce"])
	}
	if _, c, _ := decodeJWT(t, tok["id_token"].(string)); c["nonce"] != nil {
		t.Errorf("ID token nonce without a login nonce = %v, want absent", c["nonce"])
	}
}
