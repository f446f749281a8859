package trust

import (
	"encoding/json"
	"maps"
	"mime"
	"os"
	"path/filepath"
	"testing"
)

// bindIDIssuer is the issuer merged into the seed 000 userinfo (which carries no iss) the
// way the handler merges the verified ID token's claims.
const bindIDIssuer = "https://signin.bindid-sandbox.io"

// loadClaims reads a claim set from testdata exactly as an OP's JSON response decodes.
func loadClaims(tb testing.TB, name string) map[string]any {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		tb.Fatalf("decoding %s: %v", name, err)
	}
	return claims
}

// bindIDKnownClaims is the seed 000 user (bindid_alias present) plus the ID token's iss.
func bindIDKnownClaims(tb testing.TB) map[string]any {
	tb.Helper()
	c := loadClaims(tb, "bindid_userinfo.json")
	c["iss"] = bindIDIssuer
	return c
}

// bindIDNewClaims is the seed 000 user as BindID sends it for an unknown user: no alias.
func bindIDNewClaims(tb testing.TB) map[string]any {
	tb.Helper()
	c := bindIDKnownClaims(tb)
	delete(c, "bindid_alias")
	return c
}

// with returns a copy of claims with the given claims set (nil value = deleted).
func with(claims map[string]any, kv ...any) map[string]any {
	c := maps.Clone(claims)
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(c, k)
			continue
		}
		c[k] = kv[i+1]
	}
	return c
}

// headerMap indexes rendered headers by name and fails on a duplicate name.
func headerMap(tb testing.TB, hs []Header) map[string]string {
	tb.Helper()
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		if _, dup := m[h.Name]; dup {
			tb.Fatalf("Headers() emitted %s twice", h.Name)
		}
		m[h.Name] = h.Value
	}
	return m
}

// decodeHeader decodes an RFC 2047 header value the way an upstream would.
func decodeHeader(tb testing.TB, v string) string {
	tb.Helper()
	var d mime.WordDecoder
	s, err := d.DecodeHeader(v)
	if err != nil {
		tb.Fatalf("mime.WordDecoder.DecodeHeader(%q) error: %v", v, err)
	}
	return s
}

// assertWireSafe fails unless v consists of printable ASCII only (no CTL, no 8-bit byte)
// and has no surrounding space.
func assertWireSafe(tb testing.TB, name, v string) {
	tb.Helper()
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			tb.Fatalf("%s value %q has byte 0x%02x at %d, want printable ASCII only", name, v, v[i], i)
		}
	}
	if v != "" && (v[0] == ' ' || v[len(v)-1] == ' ') {
		tb.Fatalf("%s value %q has surrounding space", name, v)
	}
}

func ptr[T any](v T) *T { return &v }

// bindIDOpts are the options of the bindid provider profile: most fixtures here are BindID's
// (seed 000), whose known users carry bindid_alias and whose new users do not.
var bindIDOpts = Options{AliasClaim: BindIDAliasClaim}
