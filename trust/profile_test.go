package trust

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// seedBindID is the BindID trust profile of the seed 000 user.
func seedBindID() *BindID {
	return &BindID{
		FirstLogin:           1605180504,
		LastLogin:            1605180577,
		FirstConfirmedLogin:  1605180577,
		DeviceFirstLogin:     1605180500,
		DeviceLastLogin:      1605180574,
		AuthenticatingDevice: &Device{BrowserType: "Mobile", BrowserVersion: "Safari", OSType: "iOS", OSVersion: "14.1"},
		OriginatingDevice:    &Device{BrowserType: "Chrome", BrowserVersion: "86.0.4240.183", OSType: "Mac OS", OSVersion: "10.15.7"},
		UserRegistered:       1605180498,
		DeviceRegistered:     1605180500,
		DeviceLastSeen:       1605180691,
		UserLastSeen:         1605180694,
		ConfirmedAppCount:    ptr(int64(1)),
		DeviceCount:          ptr(int64(2)),
	}
}

// seedDerived is the derived signals of the seed 000 user: every time in bindid_info and
// bindid_network_info lies less than a day before auth_time 1605180698.
func seedDerived() *Derived {
	return &Derived{
		ReferenceTime:      1605180698,
		NewDevice:          ptr(false), // first (1605180500) != last (1605180574) login from the device
		AccountAgeDays:     ptr(int64(0)),
		DeviceKnownSince:   1605180500, // registration and first login from the device agree
		DeviceAgeDays:      ptr(int64(0)),
		DaysSinceLastLogin: ptr(int64(0)),
	}
}

// seedAddress is the seed 003 address object as compact JSON with sorted keys: the newline
// in "formatted" stays the two characters \n.
const seedAddress = `{"formatted":"Veien 311\nOslo 0772","locality":"0772","postal_code":"Oslo","street_address":"Veien 311"}`

func TestNewProfile(t *testing.T) {
	known := bindIDKnownClaims(t)
	bankID := loadClaims(t, "bankid_userinfo.json")
	tests := []struct {
		name   string
		claims map[string]any
		opts   Options
		want   Profile // Claims is checked by TestNewProfileCopiesClaims
	}{
		{
			name:   "bindid known user (seed 000)",
			claims: known,
			want: Profile{
				Subject:       "123e4567-e89b-12d3-a456-426652340000",
				Issuer:        bindIDIssuer,
				EmailVerified: ptr(true), // email is "" in the seed: absent
				Phone:         "+12125556789",
				PhoneVerified: ptr(true),
				Alias:         "username@domain",
				ACR:           "ts.bindid.iac.phone_number", // seed has a leading space
				AMR:           []string{"ts.bind_id.ama", "ts.bind_id.mfca"},
				AuthTime:      1605180698,
				BindID:        seedBindID(),
				Derived:       seedDerived(),
			},
		},
		{
			name:   "bindid new user (no bindid_alias)",
			claims: bindIDNewClaims(t),
			want: Profile{
				Subject:       "123e4567-e89b-12d3-a456-426652340000",
				Issuer:        bindIDIssuer,
				EmailVerified: ptr(true),
				Phone:         "+12125556789",
				PhoneVerified: ptr(true),
				NewUser:       true,
				ACR:           "ts.bindid.iac.phone_number",
				AMR:           []string{"ts.bind_id.ama", "ts.bind_id.mfca"},
				AuthTime:      1605180698,
				BindID:        seedBindID(),
				Derived:       seedDerived(),
			},
		},
		{
			name:   "empty alias is a new user",
			claims: with(known, "bindid_alias", ""),
			want: func() Profile {
				p := *NewProfile(bindIDNewClaims(t), bindIDOpts)
				p.Claims = nil
				return p
			}(),
		},
		{
			name:   "bankid Ola Normann (seed 003)",
			claims: bankID,
			want: Profile{
				Subject:    "9578-6000-4-00001",
				Issuer:     "https://userinfo.current.bankid.no",
				Email:      "normann@example.org",
				Name:       "Ola Normann",
				Phone:      "95871775",
				GivenName:  "Ola",
				FamilyName: "Normann",
				Birthdate:  "110286",
				Address:    seedAddress,
				NewUser:    true,
			},
		},
		{
			name:   "name from given_name and family_name",
			claims: with(bankID, "name", nil),
			want: Profile{
				Subject: "9578-6000-4-00001", Issuer: "https://userinfo.current.bankid.no",
				Email: "normann@example.org", Name: "Ola Normann", Phone: "95871775", NewUser: true,
				GivenName: "Ola", FamilyName: "Normann", Birthdate: "110286", Address: seedAddress,
			},
		},
		{
			name:   "name from given_name alone",
			claims: with(bankID, "name", nil, "family_name", nil),
			want: Profile{
				Subject: "9578-6000-4-00001", Issuer: "https://userinfo.current.bankid.no",
				Email: "normann@example.org", Name: "Ola", Phone: "95871775", NewUser: true,
				GivenName: "Ola", Birthdate: "110286", Address: seedAddress,
			},
		},
		{
			name:   "bank userinfo (seed 004): msisdn, given/family, string email_verified",
			claims: loadClaims(t, "bank_ciba_userinfo.json"),
			want: Profile{
				Subject:       "b1c3f0a2-5d1e-4f7a-9c2b-7e8d9a0b1c2d",
				Issuer:        "https://bank.example.com",
				Email:         "ase@example.org",
				EmailVerified: ptr(true),
				Name:          "Åse Øvrebø",
				Phone:         "4795871775",
				GivenName:     "Åse",
				FamilyName:    "Øvrebø",
				Birthdate:     "1986-02-11",
				PersonalID:    "11028600000",
				NewUser:       true,
			},
		},
		{
			name: "address as a string is kept as is; personal_id_number as a number",
			claims: map[string]any{
				"sub": "s", "address": "Veien 311, 0772 Oslo", "personal_id_number": 11028600000.0,
				"birthdate": "1986-02-11",
			},
			want: Profile{Subject: "s", Address: "Veien 311, 0772 Oslo", PersonalID: "11028600000", Birthdate: "1986-02-11", NewUser: true},
		},
		{
			name:   "empty address object and non-object address are absent",
			claims: map[string]any{"sub": "s", "address": map[string]any{}, "given_name": []any{"Ola"}},
			want:   Profile{Subject: "s", NewUser: true},
		},
		{
			name:   "address that is a number is absent",
			claims: map[string]any{"sub": "s", "address": 311.0},
			want:   Profile{Subject: "s", NewUser: true},
		},
		{
			name: "non-ASCII address object keeps its characters (encoding is for headers)",
			claims: map[string]any{"sub": "s", "address": map[string]any{
				"street_address": "Øvre Slottsgate 1", "formatted": "Øvre Slottsgate 1\n0157 Oslo", "country": nil,
			}},
			want: Profile{Subject: "s", NewUser: true, Address: `{"country":null,"formatted":"Øvre Slottsgate 1\n0157 Oslo","street_address":"Øvre Slottsgate 1"}`},
		},
		{
			name:   "phone_number wins over msisdn",
			claims: map[string]any{"sub": "s", "phone_number": "+4795871775", "msisdn": "4700000000"},
			want:   Profile{Subject: "s", Phone: "+4795871775", NewUser: true},
		},
		{
			name:   "custom alias claim",
			claims: with(known, "legacy_user", "u-42"),
			opts:   Options{AliasClaim: "legacy_user"},
			want: func() Profile {
				p := *NewProfile(known, bindIDOpts)
				p.Claims = nil
				p.Alias = "u-42"
				return p
			}(),
		},
		{
			name:   "custom alias claim absent means new user even with bindid_alias",
			claims: known,
			opts:   Options{AliasClaim: "legacy_user"},
			want: func() Profile {
				p := *NewProfile(known, bindIDOpts)
				p.Claims = nil
				p.Alias = ""
				p.NewUser = true
				return p
			}(),
		},
		{
			name: "lenient scalars: numeric sub, string auth_time, single amr string",
			claims: map[string]any{
				"sub": 12345.0, "auth_time": "1605180698", "amr": "pwd", "bindid_alias": "a",
			},
			want: Profile{Subject: "12345", Alias: "a", AMR: []string{"pwd"}, AuthTime: 1605180698},
		},
		{
			name: "wrong types are absent",
			claims: map[string]any{
				"sub": "s", "email": []any{"a@b"}, "name": map[string]any{"x": "y"},
				"email_verified": "yes", "phone_number_verified": 1.0, "acr": true,
				"amr": []any{1.0, "", "otp", nil}, "auth_time": "soon", "bindid_info": "x",
				"bindid_alias": false,
			},
			want: Profile{Subject: "s", NewUser: true, AMR: []string{"otp"}},
		},
		{
			name: "fractional auth_time truncated, negative and huge dropped",
			claims: map[string]any{
				"sub": "s", "auth_time": 1605180698.9, "bindid_alias": "a",
				"bindid_network_info": map[string]any{"user_last_seen": -5.0, "user_registration_time": 1e300},
			},
			want: Profile{Subject: "s", Alias: "a", AuthTime: 1605180698, BindID: &BindID{}, Derived: &Derived{ReferenceTime: 1605180698}},
		},
		{
			name: "network info alone; zero count kept, negative count dropped",
			claims: map[string]any{
				"sub": "s", "bindid_alias": "a",
				"bindid_network_info": map[string]any{"confirmed_capp_count": 0.0, "device_count": -1.0, "user_last_seen": 1605180694.0},
			},
			want: Profile{Subject: "s", Alias: "a", BindID: &BindID{UserLastSeen: 1605180694, ConfirmedAppCount: ptr(int64(0))}},
		},
		{
			name: "empty device object is absent",
			claims: map[string]any{
				"sub": "s", "bindid_alias": "a",
				"bindid_info": map[string]any{"authenticating_device": map[string]any{}, "originating_device": map[string]any{"os_type": "Linux"}},
			},
			want: Profile{Subject: "s", Alias: "a", BindID: &BindID{OriginatingDevice: &Device{OSType: "Linux"}}},
		},
		{
			name: "json.Number claims (decoder with UseNumber)",
			claims: map[string]any{
				"sub": "s", "bindid_alias": "a", "auth_time": json.Number("1605180698"),
				"bindid_network_info": map[string]any{"device_count": json.Number("2"), "user_last_seen": json.Number("1.605180694e9")},
			},
			want: Profile{
				Subject: "s", Alias: "a", AuthTime: 1605180698,
				BindID:  &BindID{UserLastSeen: 1605180694, DeviceCount: ptr(int64(2))},
				Derived: &Derived{ReferenceTime: 1605180698},
			},
		},
		{
			name:   "nil claims",
			claims: nil,
			want:   Profile{NewUser: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if opts == (Options{}) {
				opts = bindIDOpts
			}
			got := NewProfile(tt.claims, opts)
			got.Claims = nil
			if !reflect.DeepEqual(*got, tt.want) {
				gotJSON, _ := json.Marshal(got)
				wantJSON, _ := json.Marshal(tt.want)
				t.Errorf("NewProfile() = %s, want %s", gotJSON, wantJSON)
			}
		})
	}
}

func TestNewProfileCopiesClaims(t *testing.T) {
	claims := bindIDKnownClaims(t)
	p := NewProfile(claims, bindIDOpts)
	if !reflect.DeepEqual(p.Claims, claims) {
		t.Fatalf("NewProfile().Claims = %v, want %v", p.Claims, claims)
	}
	claims["sub"] = "changed"
	if got := p.Claims["sub"]; got != "123e4567-e89b-12d3-a456-426652340000" {
		t.Errorf("NewProfile().Claims[sub] after caller changed its map = %v, want the original", got)
	}
	if got := NewProfile(nil, bindIDOpts).Claims; got == nil {
		t.Errorf("NewProfile(nil).Claims = nil, want an empty map (JSON {})")
	}
}

// TestProfileJSON checks the /.trustgate/me document: the keys of the contract, and no
// token material even when the claims were merged from a token response.
func TestProfileJSON(t *testing.T) {
	raw, err := json.Marshal(NewProfile(bindIDKnownClaims(t), bindIDOpts))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"sub", "iss", "email_verified", "phone_number", "phone_number_verified", "alias", "new_user", "acr", "amr", "auth_time", "bindid", "derived", "claims"} {
		if _, ok := doc[key]; !ok {
			t.Errorf("json.Marshal(Profile) has no %q key: %s", key, raw)
		}
	}
	for _, key := range []string{"email", "name", "access_token", "id_token", "refresh_token"} {
		if _, ok := doc[key]; ok {
			t.Errorf("json.Marshal(Profile) has key %q, want it absent: %s", key, raw)
		}
	}
	bindid, _ := doc["bindid"].(map[string]any)
	if got := bindid["confirmed_capp_count"]; got != 1.0 {
		t.Errorf("json bindid.confirmed_capp_count = %v, want 1", got)
	}
	dev, _ := bindid["authenticating_device"].(map[string]any)
	if got := dev["os_version"]; got != "14.1" {
		t.Errorf("json bindid.authenticating_device.os_version = %v, want 14.1", got)
	}

	derived, _ := doc["derived"].(map[string]any)
	if want := map[string]any{
		"reference_time": 1605180698.0, "new_device": false, "account_age_days": 0.0,
		"device_known_since": 1605180500.0, "device_age_days": 0.0, "days_since_last_login": 0.0,
	}; !reflect.DeepEqual(derived, want) {
		t.Errorf("json derived = %v, want %v", derived, want)
	}

	raw, _ = json.Marshal(NewProfile(loadClaims(t, "bank_ciba_userinfo.json"), bindIDOpts))
	doc = nil
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"given_name": "Åse", "family_name": "Øvrebø", "birthdate": "1986-02-11", "personal_id_number": "11028600000",
	} {
		if got := doc[key]; got != want {
			t.Errorf("json %s = %v, want %q", key, got, want)
		}
	}

	raw, _ = json.Marshal(NewProfile(map[string]any{"sub": "s"}, bindIDOpts))
	if want := `{"sub":"s","iss":"","new_user":true,"claims":{"sub":"s"}}`; string(raw) != want {
		t.Errorf("json.Marshal(minimal Profile) = %s, want %s", raw, want)
	}
	if strings.Contains(string(raw), "bindid") {
		t.Errorf("json.Marshal(Profile without BindID claims) = %s, want no bindid key", raw)
	}
}

// A provider without an alias claim (the generic profile: Keycloak, Entra ID, Okta, ...)
// reports nobody as new, whatever claims the user has; bindid_alias means nothing there.
func TestProfileWithoutAliasClaimReportsNoNewUser(t *testing.T) {
	for _, claims := range []map[string]any{
		{"sub": "s"},
		{"sub": "s", "bindid_alias": "username@domain"},
		bindIDNewClaims(t),
	} {
		p := NewProfile(claims, Options{})
		if p.NewUser || p.Alias != "" {
			t.Errorf("NewProfile(%v, no alias claim) = alias %q, new_user %v; want no alias and not new", claims["sub"], p.Alias, p.NewUser)
		}
		for _, std := range []StandardHeaders{StandardBasic, StandardIdentity, StandardAll} {
			hs, _ := p.Headers(Options{Standard: std})
			for _, h := range hs {
				if h.Name == HeaderNewUser || h.Name == HeaderAlias {
					t.Errorf("Headers(%s) without an alias claim sends %s: %q", std, h.Name, h.Value)
				}
			}
		}
	}
}

// ID Dataweb's verdict (its published ID token: policyDecision, idwRiskScore and
// idwTrustScore as strings) reaches the upstream at standard_headers all only.
func TestVerificationHeaders(t *testing.T) {
	names := VerificationClaims{Decision: "policyDecision", RiskScore: "idwRiskScore", TrustScore: "idwTrustScore"}
	claims := map[string]any{"sub": "andrew@example.com", "policyDecision": "approve", "idwRiskScore": "100", "idwTrustScore": 90.0}
	p := NewProfile(claims, Options{Verification: names})
	want := &Verification{Decision: "approve", RiskScore: "100", TrustScore: "90"}
	if !reflect.DeepEqual(p.Verification, want) {
		t.Fatalf("Verification = %+v, want %+v", p.Verification, want)
	}
	hs, _ := p.Headers(Options{Standard: StandardAll})
	got := map[string]string{}
	for _, h := range hs {
		got[h.Name] = h.Value
	}
	for name, v := range map[string]string{HeaderPolicyDecision: "approve", HeaderRiskScore: "100", HeaderTrustScore: "90"} {
		if got[name] != v {
			t.Errorf("Headers(all)[%s] = %q, want %q", name, got[name], v)
		}
	}
	for _, std := range []StandardHeaders{StandardBasic, StandardIdentity} {
		hs, _ := p.Headers(Options{Standard: std})
		for _, h := range hs {
			if strings.HasPrefix(h.Name, "X-Trust-") {
				t.Errorf("Headers(%s) sends %s; the verdict is only for standard_headers all", std, h.Name)
			}
		}
	}
	if p := NewProfile(claims, Options{}); p.Verification != nil {
		t.Errorf("without verification claims configured, Verification = %+v, want nil", p.Verification)
	}
}
