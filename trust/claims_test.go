package trust

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

func TestClaimString(t *testing.T) {
	type device struct {
		OS   string `json:"os_type"`
		Seen int    `json:"seen"`
	}
	address := loadClaims(t, "bankid_userinfo.json")["address"]
	tests := []struct {
		name   string
		in     any
		want   string
		wantOK bool
	}{
		{name: "string", in: "Ola Normann", want: "Ola Normann", wantOK: true},
		{name: "empty string", in: "", want: "", wantOK: true},
		{name: "string kept raw", in: "a\r\nb", want: "a\r\nb", wantOK: true},
		{name: "bool true", in: true, want: "true", wantOK: true},
		{name: "bool false", in: false, want: "false", wantOK: true},
		{name: "unix time float64", in: 1605180698.0, want: "1605180698", wantOK: true},
		{name: "milliseconds float64 (seed 003 updated_at)", in: 1519992419860.0, want: "1519992419860", wantOK: true},
		{name: "negative integral", in: -42.0, want: "-42", wantOK: true},
		{name: "negative zero", in: math.Copysign(0, -1), want: "0", wantOK: true},
		{name: "fraction", in: 1.5, want: "1.5", wantOK: true},
		{name: "shortest float", in: 0.1, want: "0.1", wantOK: true},
		{name: "tiny float uses exponent", in: 1e-7, want: "1e-7", wantOK: true},
		{name: "huge integral uses exponent", in: 1e21, want: "1e+21", wantOK: true},
		{name: "largest integral without exponent", in: 1e20, want: "100000000000000000000", wantOK: true},
		{name: "NaN", in: math.NaN(), wantOK: false},
		{name: "infinity", in: math.Inf(1), wantOK: false},
		{name: "float32", in: float32(0.1), want: "0.1", wantOK: true},
		{name: "json.Number integer", in: json.Number("1605180698"), want: "1605180698", wantOK: true},
		{name: "json.Number big integer kept exact", in: json.Number("123456789012345678901234567890"), want: "123456789012345678901234567890", wantOK: true},
		{name: "json.Number integral float", in: json.Number("1.0"), want: "1", wantOK: true},
		{name: "json.Number exponent", in: json.Number("1e3"), want: "1000", wantOK: true},
		{name: "json.Number fraction", in: json.Number("2.50"), want: "2.5", wantOK: true},
		{name: "json.Number negative zero", in: json.Number("-0"), want: "0", wantOK: true},
		{name: "json.Number garbage", in: json.Number("x1"), wantOK: false},
		{name: "int", in: 7, want: "7", wantOK: true},
		{name: "int64", in: int64(-9007199254740993), want: "-9007199254740993", wantOK: true},
		{name: "uint64 max", in: uint64(math.MaxUint64), want: "18446744073709551615", wantOK: true},
		{name: "nil", in: nil, wantOK: false},
		{name: "array of strings", in: []any{"ts.bind_id.ama", "ts.bind_id.mfca"}, want: "ts.bind_id.ama,ts.bind_id.mfca", wantOK: true},
		{name: "array of mixed scalars", in: []any{1.0, true, "x"}, want: "1,true,x", wantOK: true},
		{name: "empty array", in: []any{}, want: "", wantOK: true},
		{name: "element with comma makes JSON", in: []any{"eng,admins", "ops"}, want: `["eng,admins","ops"]`, wantOK: true},
		{name: "null element makes JSON", in: []any{nil, "a"}, want: `[null,"a"]`, wantOK: true},
		{name: "nested array makes JSON", in: []any{[]any{"a", "b"}, "c"}, want: `[["a","b"],"c"]`, wantOK: true},
		{name: "single-key object element", in: []any{map[string]any{"a": 1.0}}, want: `{"a":1}`, wantOK: true},
		{name: "multi-key object element makes JSON", in: []any{map[string]any{"b": 1.0, "a": 2.0}}, want: `[{"a":2,"b":1}]`, wantOK: true},
		{name: "[]string", in: []string{"x", "y"}, want: "x,y", wantOK: true},
		{name: "[]string with comma", in: []string{"x,y"}, want: `["x,y"]`, wantOK: true},
		{name: "object sorted keys, no HTML escaping", in: map[string]any{"b": "<b>&", "a": 1.0}, want: `{"a":1,"b":"<b>&"}`, wantOK: true},
		{name: "address object (seed 003)", in: address, want: `{"formatted":"Veien 311\nOslo 0772","locality":"0772","postal_code":"Oslo","street_address":"Veien 311"}`, wantOK: true},
		{name: "non-ASCII object stays UTF-8", in: map[string]any{"n": "Åse"}, want: `{"n":"Åse"}`, wantOK: true},
		{name: "struct via its JSON form", in: device{OS: "iOS", Seen: 3}, want: `{"os_type":"iOS","seen":3}`, wantOK: true},
		{name: "typed slice via its JSON form", in: []int{1, 2}, want: "1,2", wantOK: true},
		{name: "map[string]string", in: map[string]string{"k": "v"}, want: `{"k":"v"}`, wantOK: true},
		{name: "unmarshalable", in: func() {}, wantOK: false},
		{name: "object holding NaN", in: map[string]any{"x": math.NaN()}, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ClaimString(tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ClaimString(%#v) = %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestPlaceholders(t *testing.T) {
	claims := with(loadClaims(t, "bankid_userinfo.json"),
		"Upper_Case", "skipped",
		"x-dash", "skipped",
		"id", "shadow",
		"picture", nil,
		"nickname", nil,
		"note", "line1\r\nline2\x00",
		"groups", []any{"eng", "ops"},
		"email_verified", true,
	)
	claims["middle_name"] = nil // present but null: not renderable
	got := NewProfile(claims, bindIDOpts).Placeholders()
	want := map[string]string{
		"id":             "9578-6000-4-00001",
		"sub":            "9578-6000-4-00001",
		"iss":            "https://userinfo.current.bankid.no",
		"aud":            "oidc-testclient",
		"name":           "Ola Normann",
		"given_name":     "Ola",
		"family_name":    "Normann",
		"updated_at":     "1519992419860",
		"email":          "normann@example.org",
		"email_verified": "true",
		"birthdate":      "110286",
		"phone_number":   "95871775",
		"address":        `{"formatted":"Veien 311\nOslo 0772","locality":"0772","postal_code":"Oslo","street_address":"Veien 311"}`,
		"note":           "line1line2",
		"groups":         "eng,ops",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Placeholders() = %q, want %q", got, want)
	}

	ase := NewProfile(map[string]any{"sub": "s", "name": "Åse Øvrebø"}, bindIDOpts).Placeholders()
	if ase["name"] != "Åse Øvrebø" {
		t.Errorf("Placeholders()[name] = %q, want raw UTF-8 %q", ase["name"], "Åse Øvrebø")
	}
}

func TestLookupClaim(t *testing.T) {
	claims := map[string]any{
		"sub":                       "s1",
		"address":                   map[string]any{"locality": "0772", "deep": map[string]any{"x": 1.0}},
		"https://example.com/roles": []any{"a", "b"},
		"null":                      nil,
		"address.locality":          "flat wins",
		"list":                      []any{map[string]any{"a": "b"}},
	}
	for _, tc := range []struct {
		path string
		want any
		ok   bool
	}{
		{"sub", "s1", true},
		{"address.deep.x", 1.0, true},
		{"address.locality", "flat wins", true}, // an exact top-level name is preferred
		{"https://example.com/roles", []any{"a", "b"}, true},
		{"null", nil, false},
		{"", nil, false},
		{"missing", nil, false},
		{"address.missing", nil, false},
		{"sub.x", nil, false},  // not an object
		{"list.a", nil, false}, // arrays are not walked
		{"address.", nil, false},
		{".sub", nil, false},
	} {
		got, ok := LookupClaim(claims, tc.path)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("LookupClaim(%q) = %v, %v; want %v, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}
