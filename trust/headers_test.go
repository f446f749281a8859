package trust

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// seedKnownHeaders is everything the upstream receives for the seed 000 user, in order.
var seedKnownHeaders = []Header{
	{"X-Auth-Subject", "123e4567-e89b-12d3-a456-426652340000"},
	{"X-Auth-Issuer", bindIDIssuer},
	{"X-Auth-Email-Verified", "true"},
	{"X-Auth-Phone", "+12125556789"},
	{"X-Auth-Phone-Verified", "true"},
	{"X-Auth-Alias", "username@domain"},
	{"X-Auth-Acr", "ts.bindid.iac.phone_number"},
	{"X-Auth-Amr", "ts.bind_id.ama,ts.bind_id.mfca"},
	{"X-Auth-Time", "1605180698"},
	{"X-Trust-First-Login", "1605180504"},
	{"X-Trust-Last-Login", "1605180577"},
	{"X-Trust-First-Confirmed-Login", "1605180577"},
	{"X-Trust-Device-First-Login", "1605180500"},
	{"X-Trust-Device-Last-Login", "1605180574"},
	{"X-Trust-Authenticating-Device", `{"browser_type":"Mobile","browser_version":"Safari","os_type":"iOS","os_version":"14.1"}`},
	{"X-Trust-Originating-Device", `{"browser_type":"Chrome","browser_version":"86.0.4240.183","os_type":"Mac OS","os_version":"10.15.7"}`},
	{"X-Trust-User-Registered", "1605180498"},
	{"X-Trust-Device-Registered", "1605180500"},
	{"X-Trust-Device-Last-Seen", "1605180691"},
	{"X-Trust-User-Last-Seen", "1605180694"},
	{"X-Trust-Confirmed-App-Count", "1"},
	{"X-Trust-Device-Count", "2"},
	// Derived, relative to auth_time 1605180698: every earlier time is the same day.
	{"X-Trust-New-Device", "false"},
	{"X-Trust-Account-Age-Days", "0"},
	{"X-Trust-Device-Known-Since", "1605180500"},
	{"X-Trust-Device-Age-Days", "0"},
	{"X-Trust-Days-Since-Last-Login", "0"},
}

func TestHeaders(t *testing.T) {
	newUser := slices.Clone(seedKnownHeaders)
	i := slices.Index(newUser, Header{"X-Auth-Alias", "username@domain"})
	newUser[i] = Header{"X-Auth-New-User", "true"} // no X-Auth-Alias; same place

	tests := []struct {
		name   string
		claims map[string]any
		want   []Header
	}{
		{name: "bindid known user (seed 000)", claims: bindIDKnownClaims(t), want: seedKnownHeaders},
		{name: "bindid new user", claims: bindIDNewClaims(t), want: newUser},
		{
			name:   "bankid Ola Normann (seed 003)",
			claims: loadClaims(t, "bankid_userinfo.json"),
			want: []Header{
				{"X-Auth-Subject", "9578-6000-4-00001"},
				{"X-Auth-Issuer", "https://userinfo.current.bankid.no"},
				{"X-Auth-Email", "normann@example.org"},
				{"X-Auth-Name", "Ola Normann"},
				{"X-Auth-Phone", "95871775"},
				{"X-Auth-Given-Name", "Ola"},
				{"X-Auth-Family-Name", "Normann"},
				{"X-Auth-Birthdate", "110286"},
				{"X-Auth-Address", seedAddress},
				{"X-Auth-New-User", "true"},
			},
		},
		{
			name: "bankid seed 003 with a non-ASCII name and address",
			claims: with(loadClaims(t, "bankid_userinfo.json"),
				"name", "Åse Øvrebø", "given_name", "Åse", "family_name", "Øvrebø",
				"address", map[string]any{"formatted": "Øvre Slottsgate 1\n0157 Oslo", "street_address": "Øvre Slottsgate 1", "locality": "Oslo", "postal_code": "0157"}),
			want: []Header{
				{"X-Auth-Subject", "9578-6000-4-00001"},
				{"X-Auth-Issuer", "https://userinfo.current.bankid.no"},
				{"X-Auth-Email", "normann@example.org"},
				{"X-Auth-Name", "=?UTF-8?B?w4VzZSDDmHZyZWLDuA==?="},
				{"X-Auth-Phone", "95871775"},
				{"X-Auth-Given-Name", "=?UTF-8?B?w4VzZQ==?="},
				{"X-Auth-Family-Name", "=?UTF-8?B?w5h2cmViw7g=?="},
				{"X-Auth-Birthdate", "110286"},
				// {"formatted":"Øvre Slottsgate 1\n0157 Oslo","locality":"Oslo","postal_code":"0157","street_address":"Øvre Slottsgate 1"}
				{"X-Auth-Address", "=?UTF-8?B?eyJmb3JtYXR0ZWQiOiLDmHZyZSBTbG90dHNnYXRlIDFcbjAxNTcgT3NsbyIs?= " +
					"=?UTF-8?B?ImxvY2FsaXR5IjoiT3NsbyIsInBvc3RhbF9jb2RlIjoiMDE1NyIsInN0cmVl?= " +
					"=?UTF-8?B?dF9hZGRyZXNzIjoiw5h2cmUgU2xvdHRzZ2F0ZSAxIn0=?="},
				{"X-Auth-New-User", "true"},
			},
		},
		{
			name:   "bank userinfo (seed 004) with non-ASCII name",
			claims: loadClaims(t, "bank_ciba_userinfo.json"),
			want: []Header{
				{"X-Auth-Subject", "b1c3f0a2-5d1e-4f7a-9c2b-7e8d9a0b1c2d"},
				{"X-Auth-Issuer", "https://bank.example.com"},
				{"X-Auth-Email", "ase@example.org"},
				{"X-Auth-Email-Verified", "true"},
				{"X-Auth-Name", "=?UTF-8?B?w4VzZSDDmHZyZWLDuA==?="},
				{"X-Auth-Phone", "4795871775"},
				{"X-Auth-Given-Name", "=?UTF-8?B?w4VzZQ==?="},
				{"X-Auth-Family-Name", "=?UTF-8?B?w5h2cmViw7g=?="},
				{"X-Auth-Birthdate", "1986-02-11"},
				{"X-Auth-Personal-Id", "11028600000"},
				{"X-Auth-New-User", "true"},
			},
		},
		{
			name: "zero count is sent, absent count is not",
			claims: map[string]any{
				"sub": "s", "bindid_alias": "a",
				"bindid_network_info": map[string]any{"confirmed_capp_count": 0.0},
			},
			want: []Header{
				{"X-Auth-Subject", "s"},
				{"X-Auth-Alias", "a"},
				{"X-Trust-Confirmed-App-Count", "0"},
			},
		},
		{
			name: "non-ASCII device field encodes the whole JSON",
			claims: map[string]any{
				"sub": "s", "bindid_alias": "a",
				"bindid_info": map[string]any{"originating_device": map[string]any{"os_type": "Ubuntu ©"}},
			},
			want: []Header{
				{"X-Auth-Subject", "s"},
				{"X-Auth-Alias", "a"},
				{"X-Trust-Originating-Device", EncodeValue(`{"os_type":"Ubuntu ©"}`)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, dropped := NewProfile(tt.claims, bindIDOpts).Headers(Options{Standard: StandardAll})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Headers() = %q, want %q", got, tt.want)
			}
			if len(dropped) != 0 {
				t.Errorf("Headers() dropped = %+v, want none", dropped)
			}
		})
	}
}

// TestEncodeValueRoundTrip covers the non-ASCII path: what EncodeValue sends decodes back
// to the claim through mime.WordDecoder, and each encoded-word stays within RFC 2047.
func TestEncodeValueRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "Norwegian name", in: "Åse Øvrebø"},
		{name: "Latin-1 accents", in: "Renée Éloïse"},
		{name: "emoji", in: "smile 🙂 please"},
		{name: "CJK", in: "山田太郎"},
		{name: "long mixed text splits into words", in: strings.Repeat("Åse Øvrebø går på tur. ", 20)[:400]},
		{name: "three-byte runes at every word boundary", in: strings.Repeat("€", 100)},
		{name: "ASCII that looks like an encoded-word", in: "=?UTF-8?B?YWRtaW4=?="},
		{name: "ASCII with an encoded-word inside", in: "user =?UTF-8?Q?admin?= x"},
		{name: "ASCII ending in =?", in: "a=?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EncodeValue(tt.in)
			if !strings.HasPrefix(got, "=?UTF-8?B?") || !strings.HasSuffix(got, "?=") {
				t.Fatalf("EncodeValue(%q) = %q, want RFC 2047 B encoded-words", tt.in, got)
			}
			assertWireSafe(t, "EncodeValue", got)
			for _, w := range strings.Split(got, " ") {
				if len(w) > 75 {
					t.Errorf("EncodeValue(%q) word %q is %d characters, want <= 75", tt.in, w, len(w))
				}
			}
			if dec := decodeHeader(t, got); dec != tt.in {
				t.Errorf("DecodeHeader(EncodeValue(%q)) = %q, want the input back", tt.in, dec)
			}
		})
	}
}

func TestEncodeValue(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "plain ASCII unchanged", in: "username@domain", want: "username@domain"},
		{name: "empty", in: "", want: ""},
		{name: "inner spaces kept", in: "Mac OS 10", want: "Mac OS 10"},
		{name: "lone ?= is plain", in: "a?=b", want: "a?=b"},
		{name: "surrounding spaces trimmed", in: " ts.bindid.iac.phone_number  ", want: "ts.bindid.iac.phone_number"},
		{name: "only spaces", in: "   ", want: ""},
		{name: "CRLF removed", in: "Ola\r\nX-Evil: 1", want: "OlaX-Evil: 1"},
		{name: "NUL removed", in: "a\x00b", want: "ab"},
		{name: "TAB removed", in: "a\tb", want: "ab"},
		{name: "DEL and ESC removed", in: "a\x7fb\x1b[31m", want: "ab[31m"},
		{name: "only controls", in: "\r\n\x00", want: ""},
		{name: "C1 control removed", in: "a\u0085b", want: "ab"},
		{name: "CR around non-ASCII", in: "Åse\rØ", want: "=?UTF-8?B?w4VzZcOY?="},
		{name: "Åse Øvrebø", in: "Åse Øvrebø", want: "=?UTF-8?B?w4VzZSDDmHZyZWLDuA==?="},
		{name: "invalid UTF-8 becomes U+FFFD", in: "a\xffb", want: "=?UTF-8?B?Ye+/vWI=?="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EncodeValue(tt.in); got != tt.want {
				t.Errorf("EncodeValue(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestHDR04_ValueInjection puts hostile values in every text claim: no CR, LF, NUL or
// other CTL and no raw 8-bit byte ever reaches a header value, Go's HTTP client accepts
// every header (no 502 loop), and an over-long value is dropped whole and reported.
func TestHDR04_ValueInjection(t *testing.T) {
	hostile := []struct {
		name string
		in   string
		want string // what the upstream decodes; "" = header absent
	}{
		{name: "CRLF header splitting", in: "Ola\r\nX-Auth-Admin: true", want: "OlaX-Auth-Admin: true"},
		{name: "bare LF", in: "a\nb", want: "ab"},
		{name: "bare CR", in: "a\rb", want: "ab"},
		{name: "NUL", in: "a\x00b", want: "ab"},
		{name: "every C0 control and DEL", in: "x" + ctlString() + "y", want: "xy"},
		{name: "only CTLs", in: "\r\n\x00\x7f", want: ""},
		{name: "invalid UTF-8", in: "Åse\xc3\x28\xff", want: "Åse\uFFFD(\uFFFD"},
		{name: "non-ASCII with CRLF", in: "Øvrebø\r\nX: y", want: "ØvrebøX: y"},
		{name: "e-acute and emoji", in: "é 🙂", want: "é 🙂"},
		{name: "forged encoded-word", in: "=?UTF-8?B?YWRtaW4=?=", want: "=?UTF-8?B?YWRtaW4=?="},
	}
	// Claims whose value is copied into a header as text.
	textClaims := map[string]string{
		"sub":          HeaderSubject,
		"iss":          HeaderIssuer,
		"email":        HeaderEmail,
		"name":         HeaderName,
		"phone_number": HeaderPhone,
		"bindid_alias": HeaderAlias,
		"acr":          HeaderACR,
	}
	for _, tt := range hostile {
		for claim, header := range textClaims {
			t.Run(tt.name+"/"+claim, func(t *testing.T) {
				claims := with(bindIDKnownClaims(t), claim, tt.in)
				hs, dropped := NewProfile(claims, bindIDOpts).Headers(Options{Standard: StandardAll})
				if len(dropped) != 0 {
					t.Fatalf("Headers() dropped = %+v, want none", dropped)
				}
				for _, h := range hs {
					assertWireSafe(t, h.Name, h.Value)
				}
				got, ok := headerMap(t, hs)[header]
				switch {
				case tt.want == "" && ok:
					t.Errorf("Headers()[%s] = %q, want absent", header, got)
				case tt.want != "" && !ok:
					t.Errorf("Headers()[%s] absent, want %q", header, tt.want)
				case tt.want != "" && decodeHeader(t, got) != tt.want:
					t.Errorf("DecodeHeader(Headers()[%s]) = %q, want %q", header, decodeHeader(t, got), tt.want)
				}
				sendThroughHTTP(t, hs)
			})
		}
	}

	t.Run("hostile amr element", func(t *testing.T) {
		claims := with(bindIDKnownClaims(t), "amr", []any{"pwd\r\nX-Evil: 1", "otp"})
		hs, _ := NewProfile(claims, bindIDOpts).Headers(Options{Standard: StandardAll})
		if got, want := headerMap(t, hs)[HeaderAMR], "pwdX-Evil: 1,otp"; got != want {
			t.Errorf("Headers()[X-Auth-Amr] = %q, want %q", got, want)
		}
	})

	t.Run("50 KB value is dropped and reported", func(t *testing.T) {
		big := strings.Repeat("A", 50<<10)
		claims := with(bindIDKnownClaims(t), "name", big, "email", "Å"+big)
		hs, dropped := NewProfile(claims, bindIDOpts).Headers(Options{Standard: StandardAll})
		m := headerMap(t, hs)
		for _, name := range []string{HeaderName, HeaderEmail} {
			if v, ok := m[name]; ok {
				t.Errorf("Headers()[%s] has %d bytes, want it dropped", name, len(v))
			}
		}
		want := []Dropped{
			{Name: HeaderEmail, Reason: DropValueTooLong, Bytes: len(EncodeValue("Å" + big))},
			{Name: HeaderName, Reason: DropValueTooLong, Bytes: 50 << 10},
		}
		if !reflect.DeepEqual(dropped, want) {
			t.Errorf("Headers() dropped = %+v, want %+v", dropped, want)
		}
		if _, ok := m[HeaderSubject]; !ok {
			t.Errorf("Headers() lost X-Auth-Subject when another value was too long")
		}
		sendThroughHTTP(t, hs)
	})

	t.Run("limit applies to the encoded value, at the exact boundary", func(t *testing.T) {
		ase := EncodeValue("Åse Øvrebø") // 32 bytes on the wire for 13 bytes of UTF-8
		tests := []struct {
			name        string
			value       string
			max         int
			wantDropped bool
		}{
			{name: "ASCII at limit", value: strings.Repeat("a", 20), max: 20},
			{name: "ASCII one over", value: strings.Repeat("a", 21), max: 20, wantDropped: true},
			{name: "encoded at limit", value: "Åse Øvrebø", max: len(ase)},
			{name: "encoded one over", value: "Åse Øvrebø", max: len(ase) - 1, wantDropped: true},
		}
		for _, tc := range tests {
			claims := map[string]any{"sub": "s", "bindid_alias": "a", "name": tc.value}
			hs, dropped := NewProfile(claims, bindIDOpts).Headers(Options{Standard: StandardAll, MaxHeaderBytes: tc.max})
			_, present := headerMap(t, hs)[HeaderName]
			report := Dropped{Name: HeaderName, Reason: DropValueTooLong, Bytes: len(EncodeValue(tc.value))}
			if present == tc.wantDropped || slices.Contains(dropped, report) != tc.wantDropped {
				t.Errorf("%s: Headers(MaxHeaderBytes=%d) present=%v dropped=%+v, want dropped=%v",
					tc.name, tc.max, present, dropped, tc.wantDropped)
			}
		}
	})
}

func ctlString() string {
	var b strings.Builder
	for c := byte(0); c < 0x20; c++ {
		b.WriteByte(c)
	}
	b.WriteByte(0x7f)
	return b.String()
}

// sendThroughHTTP sets hs on a real request through net/http to a test server and checks
// that the client accepts every value and the server receives each one unchanged.
func sendThroughHTTP(tb testing.TB, hs []Header) {
	tb.Helper()
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	}))
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for _, h := range hs {
		req.Header[h.Name] = []string{h.Value}
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		tb.Fatalf("sending rendered headers: %v", err)
	}
	resp.Body.Close()
	recv := <-got
	for _, h := range hs {
		if v := recv.Values(h.Name); len(v) != 1 || v[0] != h.Value {
			tb.Errorf("upstream received %s = %q, want [%q]", h.Name, v, h.Value)
		}
	}
}

// TestHDR02_AbsentClaimHeaderAbsent removes one source claim at a time from the seed 000
// user: exactly that header disappears. And a client's forged copy of a header whose claim
// is absent does not survive StripManaged plus the rendered headers.
func TestHDR02_AbsentClaimHeaderAbsent(t *testing.T) {
	derived := []string{HeaderNewDevice, HeaderAccountAgeDays, HeaderDeviceKnownSince, HeaderDeviceAgeDays, HeaderDaysSinceLastLogin}
	tests := []struct {
		name    string
		remove  func(c map[string]any)
		header  string
		alsoNot []string // derived headers that lose their source too
		changed []Header // derived headers whose value changes
	}{
		{name: "sub", remove: del("sub"), header: HeaderSubject},
		{name: "iss", remove: del("iss"), header: HeaderIssuer},
		{name: "email_verified", remove: del("email_verified"), header: HeaderEmailVerified},
		{name: "phone_number", remove: del("phone_number"), header: HeaderPhone},
		{name: "phone_number_verified", remove: del("phone_number_verified"), header: HeaderPhoneVerified},
		{name: "acr", remove: del("acr"), header: HeaderACR},
		{name: "amr", remove: del("amr"), header: HeaderAMR},
		{name: "empty amr", remove: func(c map[string]any) { c["amr"] = []any{} }, header: HeaderAMR},
		// Without auth_time (and no iat) there is no reference time: no derived signal.
		{name: "auth_time", remove: del("auth_time"), header: HeaderAuthTime, alsoNot: derived},
		{name: "capp_first_login", remove: infoDel("bindid_info", "capp_first_login"), header: HeaderFirstLogin},
		{
			name: "capp_last_login", remove: infoDel("bindid_info", "capp_last_login"), header: HeaderLastLogin,
			alsoNot: []string{HeaderDaysSinceLastLogin},
		},
		{name: "capp_first_confirmed_login", remove: infoDel("bindid_info", "capp_first_confirmed_login"), header: HeaderFirstConfirmedLogin},
		{
			// The device registration time still dates the device; the app has never seen it.
			name: "capp_first_login_from_authenticating_device", remove: infoDel("bindid_info", "capp_first_login_from_authenticating_device"),
			header: HeaderDeviceFirstLogin, changed: []Header{{HeaderNewDevice, "true"}},
		},
		{name: "capp_last_login_from_authenticating_device", remove: infoDel("bindid_info", "capp_last_login_from_authenticating_device"), header: HeaderDeviceLastLogin},
		{name: "authenticating_device", remove: infoDel("bindid_info", "authenticating_device"), header: HeaderAuthenticatingDevice},
		{name: "originating_device", remove: infoDel("bindid_info", "originating_device"), header: HeaderOriginatingDevice},
		{
			name: "user_registration_time", remove: infoDel("bindid_network_info", "user_registration_time"), header: HeaderUserRegistered,
			alsoNot: []string{HeaderAccountAgeDays},
		},
		{name: "authenticating_device_registration_time", remove: infoDel("bindid_network_info", "authenticating_device_registration_time"), header: HeaderDeviceRegistered},
		{name: "authenticating_device_last_seen", remove: infoDel("bindid_network_info", "authenticating_device_last_seen"), header: HeaderDeviceLastSeen},
		{name: "user_last_seen", remove: infoDel("bindid_network_info", "user_last_seen"), header: HeaderUserLastSeen},
		{name: "confirmed_capp_count", remove: infoDel("bindid_network_info", "confirmed_capp_count"), header: HeaderConfirmedAppCount},
		{name: "device_count", remove: infoDel("bindid_network_info", "device_count"), header: HeaderDeviceCount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims := bindIDKnownClaims(t)
			tt.remove(claims)
			hs, _ := NewProfile(claims, bindIDOpts).Headers(Options{Standard: StandardAll})
			var want []Header
			for _, h := range seedKnownHeaders {
				if h.Name == tt.header || slices.Contains(tt.alsoNot, h.Name) {
					continue
				}
				for _, c := range tt.changed {
					if c.Name == h.Name {
						h = c
					}
				}
				want = append(want, h)
			}
			if !reflect.DeepEqual(hs, want) {
				t.Errorf("Headers() without %s = %q, want %q", tt.name, hs, want)
			}
		})
	}

	t.Run("new identity claims", func(t *testing.T) {
		full := loadClaims(t, "bank_ciba_userinfo.json")
		full["address"] = "Veien 311"
		for claim, header := range map[string]string{
			"given_name": HeaderGivenName, "family_name": HeaderFamilyName, "birthdate": HeaderBirthdate,
			"personal_id_number": HeaderPersonalID, "address": HeaderAddress,
		} {
			hs, _ := NewProfile(full, bindIDOpts).Headers(Options{Standard: StandardAll})
			if _, ok := headerMap(t, hs)[header]; !ok {
				t.Fatalf("Headers() with %s has no %s", claim, header)
			}
			for _, v := range []any{nil, "", "  ", "\r\n"} {
				hs, _ := NewProfile(with(full, claim, v), bindIDOpts).Headers(Options{Standard: StandardAll})
				if got, ok := headerMap(t, hs)[header]; ok {
					t.Errorf("Headers() with %s=%#v: %s = %q, want absent", claim, v, header, got)
				}
			}
		}
	})

	t.Run("forged headers for absent claims do not survive", func(t *testing.T) {
		// A user with no email, name, alias or BindID claims; the client forges them all.
		p := NewProfile(map[string]any{"sub": "s", "bindid_alias": "a"}, bindIDOpts)
		hs, _ := p.Headers(Options{Standard: StandardAll})
		h := http.Header{}
		h.Set("X-Auth-Email", "admin@example.com")
		h.Set("X-Auth-Name", "Admin")
		h.Set("X-Auth-Groups", "admins")
		h.Set("X-Auth-New-User", "true")
		h.Set("X-Trust-Device-Count", "1")
		h["X_Auth_Email"] = []string{"admin@example.com"}
		h.Set("Accept", "text/html")
		StripManaged(h, nil)
		for _, x := range hs {
			h[x.Name] = []string{x.Value}
		}
		want := http.Header{
			"Accept":         {"text/html"},
			"X-Auth-Subject": {"s"},
			"X-Auth-Alias":   {"a"},
		}
		if !reflect.DeepEqual(h, want) {
			t.Errorf("request headers = %v, want %v", h, want)
		}
	})
}

func del(key string) func(map[string]any) {
	return func(c map[string]any) { delete(c, key) }
}

func infoDel(obj, key string) func(map[string]any) {
	return func(c map[string]any) {
		m := c[obj].(map[string]any)
		delete(m, key)
	}
}

// TestHDR03_NameVariants checks that every spelling of a managed header is recognised and
// stripped, while look-alike names are kept.
func TestHDR03_NameVariants(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"X-Auth-User", true},
		{"X-Auth_User", true},
		{"X_Auth_User", true},
		{"X_AUTH_USER", true},
		{"x-auth-user", true},
		{"X-AUTH-USER", true},
		{"x_auth-user", true},
		{"X-Auth-", true},
		{"X-Auth-Email", true},
		{"X-Trust-Device-Count", true},
		{"x_trust_foo", true},
		{"X-TRUST_FOO", true},
		{"X-Authz", false},
		{"X-Author", false},
		{"X-Auth", false},
		{"X-Trust", false},
		{"X-Trustee", false},
		{"Authorization", false},
		{"X-Authorization", false},
		{"Remote-User", false},
		{"XAuth-User", false},
		{"X--Auth-User", false},
		{"X-Auth.User", false},
		{"", false},
		{"x", false},
		{"X-Aut\u212a-User", false}, // Kelvin sign: not ASCII folding
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsManagedHeader(tt.name, nil); got != tt.want {
				t.Errorf("IsManagedHeader(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}

	t.Run("StripManaged on a parsed request", func(t *testing.T) {
		raw := "GET / HTTP/1.1\r\n" +
			"Host: app.example\r\n" +
			"X-Auth-User: a\r\n" +
			"X-Auth-User: b\r\n" + // two lines of the same header
			"X-Auth_User: c\r\n" +
			"X_Auth_User: d\r\n" +
			"x-auth-user: e\r\n" +
			"X-AUTH-USER: f\r\n" +
			"x_trust_foo: g\r\n" +
			"X-Authz: keep\r\n" +
			"X-Author: keep\r\n" +
			"Authorization: Bearer keep\r\n" +
			"\r\n"
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			t.Fatal(err)
		}
		before := len(req.Header)
		removed := StripManaged(req.Header, nil)
		var left []string
		for k := range req.Header {
			left = append(left, k)
		}
		slices.Sort(left)
		if want := []string{"Authorization", "X-Author", "X-Authz"}; !reflect.DeepEqual(left, want) {
			t.Errorf("StripManaged() left %q, want %q", left, want)
		}
		if removed != before-3 {
			t.Errorf("StripManaged() = %d, want %d (every managed key)", removed, before-3)
		}
	})

	t.Run("StripManaged on a hand-built map with every spelling", func(t *testing.T) {
		h := http.Header{
			"X-Auth-User":   {"1", "2"},
			"X-Auth_User":   {"3"},
			"X_Auth_User":   {"4"},
			"x-auth-user":   {"5"},
			"X-AUTH-USER":   {"6"},
			"x_trust_foo":   {"7"},
			"X-Authz":       {"k"},
			"X-Author":      {"k"},
			"Authorization": {"k"},
		}
		if got := StripManaged(h, nil); got != 6 {
			t.Errorf("StripManaged() = %d, want 6", got)
		}
		want := http.Header{"X-Authz": {"k"}, "X-Author": {"k"}, "Authorization": {"k"}}
		if !reflect.DeepEqual(h, want) {
			t.Errorf("StripManaged() left %v, want %v", h, want)
		}
		if got := StripManaged(h, nil); got != 0 {
			t.Errorf("StripManaged() second call = %d, want 0", got)
		}
		if got := StripManaged(nil, nil); got != 0 {
			t.Errorf("StripManaged(nil, nil) = %d, want 0", got)
		}
	})
}

// TestHDR05_EmailVerified covers the boolean-or-string email_verified (and
// phone_number_verified) claims: only true/false and "true"/"false" count.
func TestHDR05_EmailVerified(t *testing.T) {
	tests := []struct {
		name  string
		value any // nil = claim absent
		want  *bool
	}{
		{name: "bool true", value: true, want: ptr(true)},
		{name: "bool false", value: false, want: ptr(false)},
		{name: "string true", value: "true", want: ptr(true)},
		{name: "string false", value: "false", want: ptr(false)},
		{name: "absent", value: nil, want: nil},
		{name: "string TRUE", value: "TRUE", want: nil},
		{name: "string yes", value: "yes", want: nil},
		{name: "string 1", value: "1", want: nil},
		{name: "empty string", value: "", want: nil},
		{name: "number 1", value: 1.0, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims := map[string]any{"sub": "s", "email": "x@allowed.com"}
			if tt.value != nil {
				claims["email_verified"] = tt.value
				claims["phone_number_verified"] = tt.value
			}
			p := NewProfile(claims, bindIDOpts)
			if !reflect.DeepEqual(p.EmailVerified, tt.want) {
				t.Errorf("NewProfile().EmailVerified = %v, want %v", fmtBool(p.EmailVerified), fmtBool(tt.want))
			}
			if !reflect.DeepEqual(p.PhoneVerified, tt.want) {
				t.Errorf("NewProfile().PhoneVerified = %v, want %v", fmtBool(p.PhoneVerified), fmtBool(tt.want))
			}
			hs, _ := p.Headers(Options{Standard: StandardAll})
			got, ok := headerMap(t, hs)[HeaderEmailVerified]
			switch {
			case tt.want == nil && ok:
				t.Errorf("Headers()[X-Auth-Email-Verified] = %q, want absent", got)
			case tt.want != nil && got != fmtBool(tt.want):
				t.Errorf("Headers()[X-Auth-Email-Verified] = %q, want %q", got, fmtBool(tt.want))
			}
		})
	}
}

func fmtBool(b *bool) string {
	switch {
	case b == nil:
		return "<nil>"
	case *b:
		return "true"
	default:
		return "false"
	}
}

// TestHDR05_ListDelimiter checks that a comma inside a list element cannot be read as a
// second element: the list is then sent as a JSON array.
func TestHDR05_ListDelimiter(t *testing.T) {
	tests := []struct {
		name string
		amr  any
		want string
	}{
		{name: "seed amr", amr: []any{"ts.bind_id.ama", "ts.bind_id.mfca"}, want: "ts.bind_id.ama,ts.bind_id.mfca"},
		{name: "single element", amr: []any{"hwk"}, want: "hwk"},
		{name: "single string", amr: "pwd", want: "pwd"},
		{name: "element with comma", amr: []any{"pwd,mfa", "otp"}, want: `["pwd,mfa","otp"]`},
		{name: "empty elements skipped", amr: []any{"", "otp"}, want: "otp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs, _ := NewProfile(map[string]any{"sub": "s", "amr": tt.amr}, bindIDOpts).Headers(Options{Standard: StandardAll})
			if got := headerMap(t, hs)[HeaderAMR]; got != tt.want {
				t.Errorf("Headers()[X-Auth-Amr] = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHeadersACRTrimmed(t *testing.T) {
	tests := []struct {
		name string
		acr  any
		want string // "" = absent
	}{
		{name: "seed leading space", acr: " ts.bindid.iac.phone_number", want: "ts.bindid.iac.phone_number"},
		{name: "both sides and tab", acr: "\t urn:mace:incommon:iap:silver \n", want: "urn:mace:incommon:iap:silver"},
		{name: "only space", acr: "   ", want: ""},
		{name: "number", acr: 2.0, want: "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewProfile(map[string]any{"sub": "s", "acr": tt.acr}, bindIDOpts)
			if p.ACR != tt.want {
				t.Errorf("NewProfile().ACR = %q, want %q", p.ACR, tt.want)
			}
			hs, _ := p.Headers(Options{Standard: StandardAll})
			got, ok := headerMap(t, hs)[HeaderACR]
			if ok != (tt.want != "") || got != tt.want {
				t.Errorf("Headers()[X-Auth-Acr] = %q (present %v), want %q", got, ok, tt.want)
			}
		})
	}
}

// TestHeaderNames checks that every header the package sets is one StripManaged removes,
// and is already canonical, so a client can never pre-set one and have it survive.
func TestHeaderNames(t *testing.T) {
	names := HeaderNames()
	if len(names) != builtinHeaders || builtinHeaders != 40 {
		t.Errorf("len(HeaderNames()) = %d, builtinHeaders = %d, want 40", len(names), builtinHeaders)
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("HeaderNames() lists %s twice", n)
		}
		seen[n] = true
		if !IsManagedHeader(n, nil) {
			t.Errorf("IsManagedHeader(%q) = false, want true", n)
		}
		if c := http.CanonicalHeaderKey(n); c != n {
			t.Errorf("HeaderNames() has %q, want canonical %q", n, c)
		}
	}
	// Every emitted header is listed, in the listed order.
	all := with(bindIDNewClaims(t), "email", "a@b.example", "name", "N", "given_name", "G", "family_name", "F",
		"birthdate", "1986-02-11", "personal_id_number", "11028600000", "address", map[string]any{"locality": "Oslo"},
		"policyDecision", "approve", "idwRiskScore", "10", "idwTrustScore", "90",
		"preferred_username", "u", "groups", []any{"g"})
	opts := bindIDOpts
	opts.UserClaim = "preferred_username"
	opts.Verification = VerificationClaims{Decision: "policyDecision", RiskScore: "idwRiskScore", TrustScore: "idwTrustScore"}
	hs, _ := NewProfile(all, opts).Headers(Options{Standard: StandardAll})
	var got []string
	for _, h := range hs {
		got = append(got, h.Name)
	}
	want := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == HeaderAlias })
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Headers() names = %q, want %q", got, want)
	}
}

// TestDocListsEveryHeader keeps doc.go, the header reference the README copies, complete.
func TestDocListsEveryHeader(t *testing.T) {
	raw, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, n := range HeaderNames() {
		if !strings.Contains(doc, "\n//\t"+n+" ") {
			t.Errorf("doc.go has no header reference row for %s", n)
		}
	}
}

func TestStripManagedNoAllocs(t *testing.T) {
	h := browserHeaders()
	if n := testing.AllocsPerRun(100, func() { StripManaged(h, nil) }); n != 0 {
		t.Errorf("StripManaged() without managed headers allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		IsManagedHeader("X_Trust_Device_Count", nil)
		IsManagedHeader("Accept-Language", nil)
	}); n != 0 {
		t.Errorf("IsManagedHeader() allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { EncodeValue("123e4567-e89b-12d3-a456-426652340000") }); n != 0 {
		t.Errorf("EncodeValue(plain ASCII) allocates %v times, want 0", n)
	}
	if len(h) != 10 {
		t.Errorf("StripManaged() removed normal headers: %v", h)
	}
}

// FuzzEncodeValue: whatever the claim, the value is wire-safe, decodes, and decodes to the
// input whenever the input needed no cleaning.
func FuzzEncodeValue(f *testing.F) {
	for _, s := range []string{"Åse Øvrebø", "a\r\nb", "=?UTF-8?B?YQ==?=", "\xff\xfe", " x ", "", strings.Repeat("ø", 60)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := EncodeValue(in)
		assertWireSafe(t, "EncodeValue", out)
		dec := decodeHeader(t, out)
		if !utf8.ValidString(dec) {
			t.Fatalf("DecodeHeader(EncodeValue(%q)) = %q, not valid UTF-8", in, dec)
		}
		if sanitize(in) == in && strings.TrimSpace(in) == in && dec != in {
			t.Fatalf("DecodeHeader(EncodeValue(%q)) = %q, want the input back", in, dec)
		}
	})
}

// browserHeaders is a typical request's headers: 10 keys, none managed.
func browserHeaders() http.Header {
	return http.Header{
		"Accept":                    {"text/html,application/xhtml+xml"},
		"Accept-Encoding":           {"gzip, deflate, br"},
		"Accept-Language":           {"nb-NO,nb;q=0.9,en;q=0.8"},
		"Cache-Control":             {"max-age=0"},
		"Connection":                {"keep-alive"},
		"Cookie":                    {"theme=dark"},
		"Sec-Fetch-Mode":            {"navigate"},
		"Upgrade-Insecure-Requests": {"1"},
		"User-Agent":                {"Mozilla/5.0 (X11; Linux x86_64)"},
		"X-Forwarded-For":           {"192.0.2.10"},
	}
}

func BenchmarkStripManaged(b *testing.B) {
	h := browserHeaders()
	b.ReportAllocs()
	for b.Loop() {
		StripManaged(h, nil)
	}
}

func BenchmarkIsManagedHeader(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		IsManagedHeader("Accept-Language", nil)
		IsManagedHeader("X_Auth_Subject", nil)
	}
}

func BenchmarkHeaders(b *testing.B) {
	p := NewProfile(bindIDKnownClaims(b), bindIDOpts)
	b.ReportAllocs()
	for b.Loop() {
		p.Headers(Options{Standard: StandardAll})
	}
}

func BenchmarkNewProfile(b *testing.B) {
	claims := bindIDKnownClaims(b)
	b.ReportAllocs()
	for b.Loop() {
		NewProfile(claims, bindIDOpts)
	}
}

func BenchmarkEncodeValue(b *testing.B) {
	b.Run("ascii", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			EncodeValue("ts.bindid.iac.phone_number")
		}
	})
	b.Run("non-ascii", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			EncodeValue("Åse Øvrebø")
		}
	})
}

// A client naming an identity header in Connection would make the proxy delete the
// gateway's value after it was set (hop-by-hop): those tokens are taken out of Connection.
func TestHDR01_ConnectionNamesManagedHeader(t *testing.T) {
	m, err := CompileMappings([]Mapping{{Header: "X-Employee-Id", Claim: "employee_id"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		conn []string
		want []string // nil: Connection removed
	}{
		{[]string{"close, X-Auth-New-User, x_trust_new_device"}, []string{"close"}},
		{[]string{"X-Auth-Subject", "keep-alive, X-EMPLOYEE-ID , Upgrade"}, []string{"keep-alive, Upgrade"}},
		{[]string{"X-Auth-Assertion,X-Trust-Device-Count"}, nil},
		{[]string{"keep-alive"}, []string{"keep-alive"}},
		{[]string{"close, X-Application"}, []string{"close, X-Application"}},
	} {
		h := http.Header{"Connection": append([]string(nil), tc.conn...)}
		StripManaged(h, m)
		if got := h["Connection"]; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Connection %q after StripManaged = %q, want %q", tc.conn, got, tc.want)
		}
	}
	h := http.Header{"Connection": {"keep-alive"}, "Accept": {"*/*"}}
	if n := testing.AllocsPerRun(100, func() { StripManaged(h, m) }); n != 0 {
		t.Errorf("StripManaged with a plain Connection header allocates %v times", n)
	}
}
