package oidcflow

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// Threat model cases (docs/threat-model.md) that belong to the protocol library:
// clock skew between the provider and the gateway on an injected clock, and claim sets
// that are pathological JSON.

// TestOPS09_ClockSkewInjectedClock runs the provider on a clock offset from the gateway's
// (both injected, so the outcome does not depend on scheduling) and checks that the
// configured leeway absorbs the skew and no more, with a reason naming the time claim.
func TestOPS09_ClockSkewInjectedClock(t *testing.T) {
	tests := []struct {
		name   string
		skew   time.Duration // provider clock minus gateway clock
		leeway time.Duration // 0: the default (60s)
		reason string        // "" = accepted
	}{
		{name: "provider 30s ahead", skew: 30 * time.Second},
		{name: "provider 30s behind", skew: -30 * time.Second},
		{name: "provider 59s ahead", skew: 59 * time.Second},
		{name: "provider 2m behind", skew: -2 * time.Minute},
		{name: "provider 2m ahead", skew: 2 * time.Minute, reason: "iat is in the future"},
		{name: "provider 2m ahead, leeway 3m", skew: 2 * time.Minute, leeway: 3 * time.Minute},
		{name: "provider 10m ahead", skew: 10 * time.Minute, reason: "iat is in the future"},
		{name: "provider 10m behind", skew: -10 * time.Minute, reason: "expired"},
		{name: "provider 10m behind, leeway 5m", skew: -10 * time.Minute, leeway: 5 * time.Minute, reason: "expired"},
		{name: "provider 6m behind, leeway 1m", skew: -6 * time.Minute, reason: "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw := newFakeClock()
			opNow := func() time.Time { return gw.Now().Add(tt.skew) }
			op := oidctest.NewTest(t, oidctest.Options{Now: opNow})
			op.SetAutoLogin(oidctest.SubjectAse)
			cfg := opConfig(op)
			cfg.Now, cfg.ClockLeeway = gw.Now, tt.leeway
			c := newClient(t, cfg)
			login, err := loginAndExchange(t, c)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Exchange() error = %v, want the skew absorbed", err)
				}
				if login.Subject != oidctest.SubjectAse {
					t.Errorf("Subject = %q", login.Subject)
				}
				return
			}
			wantError(t, err, CodeIDToken, false)
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Exchange() error = %q, want the reason %q", err, tt.reason)
			}
			if n := op.Counts().Userinfo; n != 0 {
				t.Errorf("userinfo calls after the refused ID token = %d, want 0", n)
			}
		})
	}
}

// TestLIM04_ClaimSetParsing feeds decodeObject (every claim set: ID token, userinfo, logout
// token) pathological JSON: deep nesting, many members, duplicates, non-objects. It must
// answer an error or a map quickly, never panic or hang.
func TestLIM04_ClaimSetParsing(t *testing.T) {
	many := func(n int) []byte {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"c` + strconv.Itoa(i) + `":` + strconv.Itoa(i))
		}
		b.WriteString("}")
		return []byte(b.String())
	}
	tests := []struct {
		name    string
		in      []byte
		wantErr bool
	}{
		{"nested 100000 deep", []byte(`{"a":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`), true},
		{"objects nested 100000 deep", []byte(strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000)), true},
		{"unterminated nesting", []byte(`{"a":` + strings.Repeat("[", 100000)), true},
		{"two sub members", []byte(`{"sub":"alice","sub":"admin"}`), true},
		{"duplicate after many members", append(many(10000)[:len(many(10000))-1], []byte(`,"c0":1}`)...), true},
		{"top-level array", []byte(`[{"sub":"alice"}]`), true},
		{"top-level null", []byte(`null`), true},
		{"trailing data", []byte(`{"sub":"alice"}{"sub":"admin"}`), true},
		{"invalid UTF-8 in a string", []byte("{\"sub\":\"al\xffice\"}"), false},
		{"10000 members", many(10000), false},
		{"1 MB string", []byte(`{"sub":"` + strings.Repeat("s", 1<<20) + `"}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			m, err := decodeObject(tt.in)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("decodeObject took %v", d)
			}
			if tt.wantErr != (err != nil) {
				t.Fatalf("decodeObject() = %d members, error %v; want error %v", len(m), err, tt.wantErr)
			}
		})
	}
}
