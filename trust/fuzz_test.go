package trust

import (
	"bytes"
	"encoding/json"
	"math"
	"mime"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Fuzz targets for claim-to-header rendering and header stripping (threat model LIM-08,
// HDR-01..04). `go test` runs the seeds in testdata/fuzz/<target>; to fuzz one:
//
//	go test -run '^$' -fuzz '^FuzzLIM08_Headers$' -fuzztime 60s ./trust
//	go test -run '^$' -fuzz '^FuzzStripManaged$' -fuzztime 60s ./trust

// fuzzFixedMappings are mapping rules every FuzzLIM08_Headers input gets, so nested and
// dotted claim paths are rendered whatever the fuzzer does with its own rule.
var fuzzFixedMappings = []Mapping{
	{Header: "X-Custom", Claim: "custom"},
	{Header: "X-Custom-Deep", Claim: "custom.a.a"},
	{Header: "X-Roles", Claim: "https://example.com/roles"},
}

// fuzzClean is the oracle for what a header value decodes back to: the input with each
// invalid UTF-8 byte replaced by U+FFFD, control characters (C0, DEL, C1) removed, and
// surrounding spaces trimmed.
func fuzzClean(s string) string {
	var b strings.Builder
	for _, r := range s { // an invalid byte comes out as one U+FFFD
		if !unicode.IsControl(r) {
			b.WriteRune(r)
		}
	}
	return strings.Trim(b.String(), " ")
}

// fuzzCheckWireValue checks a header value: printable ASCII, no surrounding space, encoded
// words of at most 75 characters, and that it decodes (mime.WordDecoder) to want.
func fuzzCheckWireValue(t *testing.T, what, v, want string) {
	t.Helper()
	if v == "" {
		if want != "" {
			t.Fatalf("%s = \"\", want a value decoding to %q", what, want)
		}
		return
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e {
			t.Fatalf("%s = %q: byte %#x at %d is not printable ASCII", what, v, c, i)
		}
	}
	if v[0] == ' ' || v[len(v)-1] == ' ' {
		t.Fatalf("%s = %q: starts or ends with a space", what, v)
	}
	if strings.HasPrefix(v, "=?") {
		for _, w := range strings.Split(v, " ") {
			if len(w) > 75 || !strings.HasPrefix(w, "=?UTF-8?B?") || !strings.HasSuffix(w, "?=") {
				t.Fatalf("%s = %q: word %q is not an RFC 2047 B word of at most 75 characters", what, v, w)
			}
		}
	} else if strings.Contains(v, "=?") {
		t.Fatalf("%s = %q: plain value contains \"=?\"", what, v)
	}
	dec, err := new(mime.WordDecoder).DecodeHeader(v)
	if err != nil {
		t.Fatalf("%s = %q: DecodeHeader error %v", what, v, err)
	}
	if dec != want {
		t.Fatalf("%s = %q decodes to %q, want %q", what, v, dec, want)
	}
}

// fuzzNest returns depth levels of {"a": ...} around leaf.
func fuzzNest(depth int, leaf any) any {
	v := leaf
	for range depth {
		v = map[string]any{"a": v, "n": float64(depth)}
	}
	return v
}

// FuzzLIM08_Headers renders profiles of arbitrary claims: fuzzed strings (any bytes) and a number
// in every claim Headers reads, nested objects, arrays, and a fuzzed JSON document laid
// over them (numbers as json.Number, as the verifier produces them). Properties:
//
//   - every header name is a token, emitted once, and managed (StripManaged removes a
//     client's copy, so an absent header cannot be forged);
//   - every value is printable ASCII without CR, LF or NUL, without surrounding spaces,
//     within MaxHeaderBytes, and all together within MaxTotalHeaderBytes;
//   - a value decodes (mime.WordDecoder) exactly to the sanitized claim text;
//   - no header with a non-empty value is lost silently: it is emitted or reported dropped;
//   - EncodeValue of the raw strings obeys the same rules; placeholders hold no control
//     characters.
func FuzzLIM08_Headers(f *testing.F) {
	f.Add([]byte(`{}`), "123e4567-e89b-12d3-a456-426652340000", "Åse Øvrebø", 1605180698.0, uint8(2), uint16(0), uint16(0), uint8(0), uint16(0xffff), "X-Employee-Id", "employee_id")
	f.Add([]byte(`{"custom":{"a":{"a":"deep"}},"https://example.com/roles":["a","b,c"]}`), "user\r\nX-Auth-Admin: true", "=?UTF-8?B?YWRtaW4=?=", math.Inf(1), uint8(3), uint16(64), uint16(300), uint8(2), uint16(0xffff), "X-A", "custom.a")
	f.Add([]byte(`{"sub":1e999,"auth_time":-1,"amr":"pwd","address":{}}`), "\x00\xff\xfe", " \t x \u0085", math.Copysign(0, -1), uint8(0), uint16(1), uint16(1), uint8(1), uint16(0x0f0f), "x_auth_email", "")

	f.Fuzz(func(t *testing.T, doc []byte, s1, s2 string, n float64, depth uint8, maxHeader, maxTotal uint16, std uint8, mask uint16, mapHeader, mapClaim string) {
		claims := map[string]any{}
		set := func(bit int, name string, v any) {
			if mask&(1<<bit) != 0 {
				claims[name] = v
			}
		}
		set(0, "sub", s1)
		set(1, "iss", s2)
		set(2, "email", s1+"@"+s2)
		set(3, "name", s2)
		set(4, "given_name", s1)
		set(4, "family_name", s2)
		set(5, "phone_number", n)
		set(5, "msisdn", s1)
		set(6, "birthdate", s2)
		set(6, "personal_id_number", s1)
		set(7, "address", map[string]any{"formatted": s2, "locality": s1, "n": n})
		set(8, "bindid_alias", s2)
		set(9, "acr", s1)
		set(10, "amr", []any{s1, s2, n, nil, map[string]any{"x": s1}})
		set(11, "auth_time", n)
		set(11, "email_verified", s2)
		set(12, "bindid_info", map[string]any{
			"capp_first_login": n, "capp_last_login": n + 86400,
			"capp_first_login_from_authenticating_device": n,
			"authenticating_device":                       map[string]any{"browser_type": s1, "os_type": s2},
		})
		set(13, "bindid_network_info", map[string]any{"device_count": n, "user_registration_time": n - 1, "confirmed_capp_count": s1})
		set(14, "custom", fuzzNest(int(depth%40), s1))
		set(15, "https://example.com/roles", []string{s1, s2})
		if len(doc) > 0 {
			dec := json.NewDecoder(bytes.NewReader(doc))
			dec.UseNumber()
			var over map[string]any
			if dec.Decode(&over) == nil {
				for k, v := range over {
					claims[k] = v
				}
			}
		}

		rules := fuzzFixedMappings
		m, err := CompileMappings(append(slices.Clone(rules), Mapping{Header: mapHeader, Claim: mapClaim}))
		if err == nil {
			rules = append(slices.Clone(rules), Mapping{Header: mapHeader, Claim: mapClaim})
		} else if m, err = CompileMappings(rules); err != nil {
			t.Fatalf("CompileMappings(fixed rules) = %v", err)
		}
		opts := Options{
			AliasClaim:          BindIDAliasClaim,
			MaxHeaderBytes:      int(maxHeader),
			MaxTotalHeaderBytes: int(maxTotal),
			Standard:            []StandardHeaders{StandardAll, StandardAll, StandardIdentity, StandardNone, "bogus", StandardBasic, ""}[std%7], // 0 was "" = all when the corpus was recorded
			Mappings:            m,
		}
		limit, budget := opts.maxHeaderBytes(), opts.maxTotalHeaderBytes()

		p := NewProfile(claims, opts)
		hs, dropped := p.Headers(opts)

		// What each header must decode to, where it is plain text.
		want := map[string]string{}
		basicOn := opts.Standard == "" || opts.Standard == StandardBasic
		authOn := opts.Standard == StandardAll || opts.Standard == StandardIdentity
		if basicOn || authOn {
			if s, ok := claims["sub"].(string); ok {
				want[HeaderSubject] = fuzzClean(s)
			}
		}
		if basicOn {
			want[HeaderEmail], want[HeaderAlias] = fuzzClean(p.Email), fuzzClean(p.Alias)
		}
		if authOn {
			for name, raw := range map[string]string{
				HeaderIssuer: p.Issuer, HeaderEmail: p.Email, HeaderName: p.Name, HeaderPhone: p.Phone,
				HeaderGivenName: p.GivenName, HeaderFamilyName: p.FamilyName, HeaderBirthdate: p.Birthdate,
				HeaderPersonalID: p.PersonalID, HeaderAddress: p.Address, HeaderAlias: p.Alias, HeaderACR: p.ACR,
			} {
				want[name] = fuzzClean(raw)
			}
		}
		for _, r := range rules {
			if v, ok := LookupClaim(claims, r.Claim); ok {
				if s, ok := ClaimString(v); ok {
					want[http.CanonicalHeaderKey(r.Header)] = fuzzClean(s)
				}
			}
		}

		seen := map[string]bool{}
		total := 0
		for _, h := range hs {
			key := strings.ToLower(h.Name)
			if seen[key] {
				t.Fatalf("header %s emitted twice", h.Name)
			}
			seen[key] = true
			if h.Name == "" || strings.IndexFunc(h.Name, func(r rune) bool {
				return r > 0x7e || r <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r)
			}) >= 0 {
				t.Fatalf("header name %q is not a token", h.Name)
			}
			if !IsManagedHeader(h.Name, m) || !fuzzManaged(h.Name, m.Names()) {
				t.Fatalf("header %s is emitted but not managed: a client's copy would not be stripped", h.Name)
			}
			if h.Value == "" {
				t.Fatalf("header %s emitted with an empty value", h.Name)
			}
			if len(h.Value) > limit {
				t.Fatalf("header %s value is %d bytes, over MaxHeaderBytes %d", h.Name, len(h.Value), limit)
			}
			total += len(h.Name) + len(h.Value) + 4
			w, ok := want[h.Name]
			if !ok { // not plain text (numbers, booleans, devices): only the wire rules
				w, _ = new(mime.WordDecoder).DecodeHeader(h.Value)
			}
			fuzzCheckWireValue(t, "header "+h.Name, h.Value, w)
		}
		if total > budget {
			t.Fatalf("headers total %d bytes, over MaxTotalHeaderBytes %d", total, budget)
		}
		// Each level emits its own built-in headers and no other (data protection by default).
		mapped := map[string]bool{}
		for _, r := range rules {
			mapped[strings.ToLower(r.Header)] = true
		}
		for _, h := range append(slices.Clone(hs), droppedHeaders(dropped)...) {
			if mapped[strings.ToLower(h.Name)] {
				continue
			}
			ok := authOn && (strings.HasPrefix(h.Name, "X-Auth-") || opts.Standard == StandardAll)
			if basicOn {
				ok = slices.Contains([]string{HeaderSubject, HeaderEmail, HeaderEmailVerified, HeaderAlias, HeaderNewUser}, h.Name)
			}
			if !ok {
				t.Fatalf("standard_headers %q emitted built-in header %s", opts.Standard, h.Name)
			}
		}
		// basic: the verified flag qualifies the email beside it, never stands alone.
		if basicOn && seen[strings.ToLower(HeaderEmailVerified)] && !seen[strings.ToLower(HeaderEmail)] {
			t.Fatalf("standard_headers %q sent %s without %s", opts.Standard, HeaderEmailVerified, HeaderEmail)
		}
		gone := map[string]bool{}
		for _, d := range dropped {
			if d.Reason != DropValueTooLong && d.Reason != DropTotalTooLarge {
				t.Fatalf("dropped %s with reason %q", d.Name, d.Reason)
			}
			if d.Reason == DropValueTooLong && d.Bytes <= limit {
				t.Fatalf("dropped %s as too long at %d bytes, limit %d", d.Name, d.Bytes, limit)
			}
			gone[d.Name] = true
		}
		for name, w := range want {
			if w != "" && !seen[strings.ToLower(name)] && !gone[name] {
				t.Fatalf("header %s (value %q) neither emitted nor reported dropped", name, w)
			}
		}

		for name, v := range p.Placeholders() {
			if !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
				t.Fatalf("placeholder %s = %q has invalid UTF-8 or control characters", name, v)
			}
		}
		for _, s := range []string{s1, s2, string(doc), strconv.FormatFloat(n, 'g', -1, 64)} {
			fuzzCheckWireValue(t, "EncodeValue("+strconv.Quote(s)+")", EncodeValue(s), fuzzClean(s))
		}
	})
}

// fuzzManaged is the oracle for managed names: ASCII case folded and '_' read as '-', the
// name starts with x-auth- or x-trust-, or is one of mapped.
func fuzzManaged(name string, mapped []string) bool {
	norm := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			switch {
			case 'A' <= c && c <= 'Z':
				b[i] = c + 'a' - 'A'
			case c == '_':
				b[i] = '-'
			}
		}
		return string(b)
	}
	n := norm(name)
	if strings.HasPrefix(n, "x-auth-") || strings.HasPrefix(n, "x-trust-") {
		return true
	}
	for _, m := range mapped {
		if n == norm(m) {
			return true
		}
	}
	return false
}

// fuzzConnectionTokens returns the non-empty tokens of Connection lines, trimmed.
func fuzzConnectionTokens(lines []string) []string {
	var out []string
	for _, l := range lines {
		for _, tok := range strings.Split(l, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				out = append(out, tok)
			}
		}
	}
	return out
}

// FuzzStripManaged strips arbitrary header maps: keys are the lines of keys (set both as
// given and canonicalised), Connection the lines of conn, mapped rules the comma-separated
// names in mapped. Properties: afterwards no key normalises to x-auth-/x-trust- or a mapped
// name; no Connection token (trimmed as Caddy's proxy trims it, or more) names one, so the
// proxy cannot be made to delete the gateway's own values; every other key keeps its values;
// the other Connection tokens are kept in order; the count is right.
func FuzzStripManaged(f *testing.F) {
	f.Add("X-Auth-Subject\nx_auth_email\nAccept\nX-TRUST-NEW-DEVICE", "close, X-Auth-Subject", "X-Employee-Id")
	f.Add("X-Employee-Id\nx_employee_id\nX-Auth-\nX-Authx", "keep-alive,\tx_trust_device_count , Upgrade\nX-EMPLOYEE-ID", "X-Employee-Id,X-Team")
	f.Add("", "", "")

	f.Fuzz(func(t *testing.T, keys, conn, mapped string) {
		var rules []Mapping
		for _, n := range strings.Split(mapped, ",") {
			if n != "" {
				rules = append(rules, Mapping{Header: n, Claim: "c"})
			}
		}
		m, err := CompileMappings(rules)
		if err != nil {
			m = nil
		}
		names := m.Names()

		h := http.Header{}
		for i, k := range strings.Split(keys, "\n") {
			v := "v" + strconv.Itoa(i)
			h[k] = append(h[k], v)
			h.Add(k, v) // canonicalised when k is a valid name
		}
		if conn != "" {
			h["Connection"] = strings.Split(conn, "\n")
		}
		before := make(http.Header, len(h))
		for k, v := range h {
			before[k] = slices.Clone(v)
		}

		removed := StripManaged(h, m)

		wantRemoved := 0
		for k, v := range before {
			switch {
			case fuzzManaged(k, names):
				wantRemoved++
				if _, ok := h[k]; ok {
					t.Fatalf("key %q is still there after StripManaged (mapped %q)", k, names)
				}
			case k == "Connection":
			default:
				if !slices.Equal(h[k], v) {
					t.Fatalf("key %q = %q after StripManaged, want %q (not managed)", k, h[k], v)
				}
			}
		}
		for k := range h {
			if fuzzManaged(k, names) {
				t.Fatalf("key %q remains after StripManaged", k)
			}
		}
		var keptBefore []string
		for _, tok := range fuzzConnectionTokens(before["Connection"]) {
			if !fuzzManaged(tok, names) {
				keptBefore = append(keptBefore, tok)
			}
		}
		after := fuzzConnectionTokens(h["Connection"])
		for _, l := range h["Connection"] {
			for _, tok := range strings.Split(l, ",") {
				// Caddy's reverse proxy: textproto.TrimString, then Header.Del, which
				// canonicalises the name.
				name := textproto.CanonicalMIMEHeaderKey(textproto.TrimString(tok))
				if name != "" && fuzzManaged(name, names) {
					t.Fatalf("Connection %q still names managed header %q", h["Connection"], name)
				}
			}
		}
		if _, ok := before["Connection"]; ok && !fuzzManaged("Connection", names) && !slices.Equal(after, keptBefore) {
			t.Fatalf("Connection tokens after StripManaged = %q, want %q", after, keptBefore)
		}
		if len(keptBefore) == 0 && len(fuzzConnectionTokens(before["Connection"])) > 0 && len(h["Connection"]) > 0 {
			t.Fatalf("Connection = %q after StripManaged, want it removed (it named only managed headers)", h["Connection"])
		}
		if !slices.Equal(fuzzConnectionTokens(before["Connection"]), keptBefore) {
			wantRemoved++ // Connection was cleaned
		}
		if removed != wantRemoved {
			t.Fatalf("StripManaged() = %d, want %d", removed, wantRemoved)
		}
	})
}

// droppedHeaders names the dropped headers as Headers without values.
func droppedHeaders(ds []Dropped) []Header {
	hs := make([]Header, len(ds))
	for i, d := range ds {
		hs[i] = Header{Name: d.Name}
	}
	return hs
}
