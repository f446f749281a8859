package oidcflow

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMergeClaims(t *testing.T) {
	id := func() map[string]any {
		return map[string]any{
			"iss": "https://op.example", "sub": "alice", "aud": "app", "exp": 2.0, "iat": 1.0,
			"nonce": "n-1", "azp": "app", "at_hash": "h-1", "auth_time": 1.0, "acr": "id-acr",
			"email": "id@example.org", "name": "From ID token",
		}
	}
	tests := []struct {
		name string
		id   map[string]any
		ui   map[string]any
		want map[string]any
		// idFirst are the provider's verdict claims (Config.IDTokenFirstClaims).
		idFirst []string
	}{
		{
			name: "no userinfo",
			id:   id(),
			ui:   nil,
			want: id(),
		},
		{
			name: "userinfo never overrides protocol claims",
			id:   id(),
			ui: map[string]any{
				"iss": "https://evil.example", "sub": "mallory", "aud": "other", "exp": 9e9, "iat": 9e9,
				"nonce": "n-evil", "azp": "other", "at_hash": "h-evil",
				ClaimAuthReqID: "another-request",
			},
			want: id(),
		},
		{
			name: "userinfo never adds protocol claims the ID token lacks",
			id:   map[string]any{"sub": "alice"},
			ui: map[string]any{
				"nbf": 1.0, "c_hash": "c", "jti": "j", "sid": "s", "iss": "i", "aud": "a", "exp": 1.0,
				"iat": 1.0, "nonce": "n", "azp": "z", "at_hash": "h",
			},
			want: map[string]any{"sub": "alice"},
		},
		{
			name:    "a provider's verdict in the ID token wins over userinfo's",
			id:      map[string]any{"sub": "alice", "policyDecision": "approve", "idwRiskScore": "100"},
			ui:      map[string]any{"policyDecision": "deny", "idwRiskScore": "1", "idwTrustScore": "7"},
			idFirst: []string{"policyDecision", "idwRiskScore", "idwTrustScore"},
			want:    map[string]any{"sub": "alice", "policyDecision": "approve", "idwRiskScore": "100", "idwTrustScore": "7"},
		},
		{
			name: "without idFirst userinfo updates the same claims",
			id:   map[string]any{"sub": "alice", "policyDecision": "approve"},
			ui:   map[string]any{"policyDecision": "deny"},
			want: map[string]any{"sub": "alice", "policyDecision": "deny"},
		},
		{
			name: "assurance claims of the ID token win",
			id:   id(),
			ui:   map[string]any{"acr": "ui-acr", "auth_time": 5.0},
			want: id(),
		},
		{
			name: "assurance claims from userinfo fill gaps",
			id:   map[string]any{"sub": "alice"},
			ui:   map[string]any{"acr": "ui-acr", "amr": []any{"pwd"}, "auth_time": 5.0},
			want: map[string]any{"sub": "alice", "acr": "ui-acr", "amr": []any{"pwd"}, "auth_time": 5.0},
		},
		{
			name: "assurance claim present but empty in the ID token still wins",
			id:   map[string]any{"sub": "alice", "acr": ""},
			ui:   map[string]any{"acr": "ui-acr"},
			want: map[string]any{"sub": "alice", "acr": ""},
		},
		{
			name: "profile claims from userinfo override and add",
			id:   map[string]any{"sub": "alice", "email": "old@example.org", "name": "Old"},
			ui:   map[string]any{"sub": "alice", "email": "new@example.org", "phone_number": "+4712345678"},
			want: map[string]any{"sub": "alice", "email": "new@example.org", "name": "Old", "phone_number": "+4712345678"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idCopy := make(map[string]any, len(tt.id))
			for k, v := range tt.id {
				idCopy[k] = v
			}
			got := mergeClaims(tt.id, tt.ui, tt.idFirst...)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("mergeClaims() = %v, want %v", got, tt.want)
			}
			got["injected"] = true
			if !reflect.DeepEqual(tt.id, idCopy) {
				t.Errorf("mergeClaims() changed its ID token input: %v, want %v", tt.id, idCopy)
			}
		})
	}
}

func TestDecodeObject(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]any
		wantErr string // substring; "" = no error
	}{
		{name: "object", in: `{"sub":"a","n":1,"f":1.5,"o":{"x":[1]}}`, want: map[string]any{
			"sub": "a", "n": json.Number("1"), "f": json.Number("1.5"), "o": map[string]any{"x": []any{json.Number("1")}},
		}},
		{name: "empty object", in: `{}`, want: map[string]any{}},
		{name: "surrounding whitespace", in: " \n\t{\"sub\":\"a\"} \r\n", want: map[string]any{"sub": "a"}},
		{name: "names differing in case are distinct", in: `{"sub":"a","Sub":"b"}`, want: map[string]any{"sub": "a", "Sub": "b"}},
		{name: "same name nested in different objects", in: `{"a":{"sub":1},"b":{"sub":2}}`, want: map[string]any{
			"a": map[string]any{"sub": json.Number("1")}, "b": map[string]any{"sub": json.Number("2")},
		}},
		{name: "array", in: `[{"sub":"a"}]`, wantErr: "not a JSON object"},
		{name: "string", in: `"sub"`, wantErr: "not a JSON object"},
		{name: "number", in: `42`, wantErr: "not a JSON object"},
		{name: "true", in: `true`, wantErr: "not a JSON object"},
		{name: "null", in: `null`, wantErr: "not a JSON object"},
		{name: "empty", in: ``, wantErr: "not a JSON object"},
		{name: "truncated", in: `{"sub":"a"`, wantErr: "not a JSON object"},
		{name: "second object", in: `{"sub":"a"} {"sub":"b"}`, wantErr: "trailing data"},
		{name: "trailing garbage", in: `{"sub":"a"} x`, wantErr: "trailing data"},
		{name: "trailing comma", in: `{"sub":"a"},`, wantErr: "trailing data"},
		{name: "two sub members", in: `{"sub":"alice","sub":"mallory"}`, wantErr: `"sub" appears twice`},
		{name: "two sub members, one escaped", in: `{"sub":"alice","s\u0075b":"mallory"}`, wantErr: `"sub" appears twice`},
		{name: "duplicate far apart", in: `{"iss":"x","a":[1,{"sub":1}],"b":{},"iss":"y"}`, wantErr: `"iss" appears twice`},
		{name: "nested 100000 deep", in: `{"a":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, wantErr: "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeObject([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("decodeObject(%.40q) = %v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("decodeObject(%.40q) = %v, want nil on error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeObject(%q) error = %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decodeObject(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestTimeClaim(t *testing.T) {
	tests := []struct {
		name     string
		claims   map[string]any
		required bool
		want     time.Time
		wantErr  string
	}{
		{name: "missing, required", claims: map[string]any{}, required: true, wantErr: "has no exp"},
		{name: "missing, optional", claims: map[string]any{}, required: false, want: time.Time{}},
		{name: "normal", claims: map[string]any{"exp": json.Number("1700000000")}, want: time.Unix(1700000000, 0)},
		{name: "zero", claims: map[string]any{"exp": json.Number("0")}, want: time.Unix(0, 0)},
		{name: "fractional", claims: map[string]any{"exp": json.Number("1700000000.5")}, want: time.Unix(1700000000, 500000000)},
		{name: "exponent notation", claims: map[string]any{"exp": json.Number("1.7e9")}, want: time.Unix(1700000000, 0)},
		{name: "at the upper bound", claims: map[string]any{"exp": json.Number("1099511627776")}, want: time.Unix(1<<40, 0)},
		{name: "string", claims: map[string]any{"exp": "1700000000"}, wantErr: "not a number"},
		{name: "float64 (not decoded with UseNumber)", claims: map[string]any{"exp": 1700000000.0}, wantErr: "not a number"},
		{name: "bool", claims: map[string]any{"exp": true}, wantErr: "not a number"},
		{name: "null", claims: map[string]any{"exp": nil}, required: true, wantErr: "not a number"},
		{name: "null, optional", claims: map[string]any{"exp": nil}, wantErr: "not a number"},
		{name: "negative", claims: map[string]any{"exp": json.Number("-1")}, wantErr: "out of range"},
		{name: "just above the upper bound", claims: map[string]any{"exp": json.Number("1099511627777")}, wantErr: "out of range"},
		{name: "1e300", claims: map[string]any{"exp": json.Number("1e300")}, wantErr: "out of range"},
		{name: "1e400 (overflows float64)", claims: map[string]any{"exp": json.Number("1e400")}, wantErr: "out of range"},
		{name: "beyond int64", claims: map[string]any{"exp": json.Number("9223372036854775808")}, wantErr: "out of range"},
		{name: "not a number at all", claims: map[string]any{"exp": json.Number("soon")}, wantErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := timeClaim(tt.claims, "exp", tt.required)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("timeClaim() = %v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("timeClaim() error = %v", err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("timeClaim() = %v, want %v", got, tt.want)
			}
		})
	}
}

// topLevelMembers counts what the decoder keeps apart, whatever strings and nesting hold.
func TestTopLevelMembers(t *testing.T) {
	for in, want := range map[string]int{
		`{}`:      0,
		`{"a":1}`: 1,
		`{"a":"x:y","b":{"c":1,"d":[{"e":2}]},"f":"\"}:"}`: 3,
		`{"sub":"alice","s\u0075b":"mallory"}`:             2,
		` { "a" : [ "]" , { "b" : "}" } ] , "c" : null } `: 2,
		`{"a\\":1,"b":2}`: 2,
	} {
		if got := topLevelMembers([]byte(in)); got != want {
			t.Errorf("topLevelMembers(%s) = %d, want %d", in, got, want)
		}
	}
}
