package trust

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// mustCompile compiles rules given as header, claim pairs.
func mustCompile(tb testing.TB, pairs ...string) *Mappings {
	tb.Helper()
	var rules []Mapping
	for i := 0; i+1 < len(pairs); i += 2 {
		rules = append(rules, Mapping{Header: pairs[i], Claim: pairs[i+1]})
	}
	m, err := CompileMappings(rules)
	if err != nil {
		tb.Fatalf("CompileMappings(%v) error: %v", rules, err)
	}
	return m
}

func TestCompileMappings(t *testing.T) {
	m := mustCompile(t, "x-employee-id", "employee.id", "X-ROLES", "https://example.com/roles", "X-Dept-2", "dept")
	if got, want := m.Names(), []string{"X-Employee-Id", "X-Roles", "X-Dept-2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %q, want %q (canonical, rule order)", got, want)
	}
	names := m.Names()
	names[0] = "Changed"
	if got := m.Names()[0]; got != "X-Employee-Id" {
		t.Errorf("Names()[0] after the caller changed its copy = %q, want X-Employee-Id", got)
	}

	for _, rules := range [][]Mapping{nil, {}} {
		m, err := CompileMappings(rules)
		if m != nil || err != nil {
			t.Errorf("CompileMappings(%#v) = %v, %v, want nil, nil", rules, m, err)
		}
	}
	var none *Mappings
	if got := none.Names(); got != nil {
		t.Errorf("(*Mappings)(nil).Names() = %q, want nil", got)
	}

	most := make([]Mapping, MaxMappings)
	for i := range most {
		most[i] = Mapping{Header: fmt.Sprintf("X-Claim-%d", i), Claim: "c"}
	}
	if _, err := CompileMappings(most); err != nil {
		t.Errorf("CompileMappings(%d rules) error: %v, want none", MaxMappings, err)
	}
}

func TestCompileMappingsErrors(t *testing.T) {
	tests := []struct {
		name   string
		rules  []Mapping
		header string // the rule the message must name
		reason string // and a substring of the reason
	}{
		{name: "empty name", rules: []Mapping{{"", "email"}}, header: `header ""`, reason: "empty"},
		{name: "underscore", rules: []Mapping{{"X_Employee_Id", "id"}}, header: `header "X_Employee_Id"`, reason: "letters, digits and '-'"},
		{name: "space", rules: []Mapping{{"X Employee", "id"}}, header: `header "X Employee"`, reason: "invalid header name"},
		{name: "colon", rules: []Mapping{{"X-Employee:", "id"}}, header: `header "X-Employee:"`, reason: "invalid header name"},
		{name: "dot", rules: []Mapping{{"X.Employee", "id"}}, header: `header "X.Employee"`, reason: "invalid header name"},
		{name: "CRLF", rules: []Mapping{{"X-A\r\nX-B", "id"}}, header: `header "X-A\r\nX-B"`, reason: "invalid header name"},
		{name: "non-ASCII", rules: []Mapping{{"X-Ansatt-Nø", "id"}}, header: `header "X-Ansatt-Nø"`, reason: "invalid header name"},
		{name: "built-in", rules: []Mapping{{"X-Auth-Email", "upn"}}, header: `header "X-Auth-Email"`, reason: "is a built-in header"},
		{name: "built-in in lowercase", rules: []Mapping{{"x-auth-email", "upn"}}, header: `header "x-auth-email"`, reason: "is a built-in header"},
		{name: "built-in derived", rules: []Mapping{{"X-Trust-New-Device", "d"}}, header: `header "X-Trust-New-Device"`, reason: "is a built-in header"},
		{name: "the signed assertion", rules: []Mapping{{"X-Auth-Assertion", "a"}}, header: `header "X-Auth-Assertion"`, reason: "reserved"},
		{
			name:   "duplicate in another case",
			rules:  []Mapping{{"X-Employee-Id", "employee.id"}, {"x-EMPLOYEE-id", "emp"}},
			header: `header "x-EMPLOYEE-id"`, reason: `already mapped (to claim "employee.id")`,
		},
		{name: "empty claim", rules: []Mapping{{"X-Employee-Id", ""}}, header: `header "X-Employee-Id"`, reason: "claim path is empty"},
		{name: "X-Forwarded-For", rules: []Mapping{{"X-Forwarded-For", "ip"}}, header: `header "X-Forwarded-For"`, reason: "X-Forwarded-*"},
		{name: "x-forwarded-anything", rules: []Mapping{{"x-forwarded-user", "u"}}, header: `header "x-forwarded-user"`, reason: "X-Forwarded-*"},
	}
	for _, name := range []string{
		"Host", "Content-Length", "Content-Type", "Content-Encoding", "Transfer-Encoding", "Connection",
		"Keep-Alive", "Te", "Trailer", "Upgrade", "Proxy-Authorization", "Proxy-Authenticate",
		"Proxy-Connection", "Authorization", "Cookie", "Set-Cookie", "Forwarded", "Expect", "Via",
		"X-Real-Ip", "Http2-Settings", "Max-Forwards",
	} {
		for _, spelling := range []string{name, strings.ToLower(name), strings.ToUpper(name)} {
			tests = append(tests, struct {
				name   string
				rules  []Mapping
				header string
				reason string
			}{name: "reserved " + spelling, rules: []Mapping{{spelling, "c"}}, header: fmt.Sprintf("header %q", spelling), reason: "reserved"})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := append([]Mapping{{"X-Ok", "ok"}}, tt.rules...)
			m, err := CompileMappings(rules)
			if err == nil {
				t.Fatalf("CompileMappings(%q) = %v, want an error", rules, m.Names())
			}
			if m != nil {
				t.Errorf("CompileMappings(%q) returned mappings with its error", rules)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.header) || !strings.Contains(msg, tt.reason) {
				t.Errorf("CompileMappings(%q) error = %q, want it to name %s and say %q", rules, msg, tt.header, tt.reason)
			}
		})
	}

	t.Run("too many rules", func(t *testing.T) {
		rules := make([]Mapping, MaxMappings+1)
		for i := range rules {
			rules[i] = Mapping{Header: fmt.Sprintf("X-Claim-%d", i), Claim: "c"}
		}
		_, err := CompileMappings(rules)
		if err == nil || !strings.Contains(err.Error(), "65 header mapping rules, at most 64") {
			t.Errorf("CompileMappings(65 rules) error = %v, want one that gives both counts", err)
		}
	})
}

// mappedClaims exercises every shape of claim value a mapping can meet.
func mappedClaims() map[string]any {
	return map[string]any{
		"sub": "s",
		"employee": map[string]any{
			"id":   4711.0,
			"dept": map[string]any{"name": "Ops"},
		},
		"https://example.com/roles": []any{"reader", "writer"},
		"https://example.com":       map[string]any{"roles": "shadowed"}, // the exact name wins
		"groups":                    []any{"eng,admins", "ops"},
		"address":                   map[string]any{"street_address": "Veien 311", "formatted": "Veien 311\nOslo 0772"},
		"updated_at":                1605180698.0,
		"ratio":                     0.5,
		"mfa":                       true,
		"optout":                    false,
		"empty":                     "",
		"blank":                     " \t ",
		"nothing":                   nil,
		"name":                      "Åse Øvrebø",
	}
}

func TestMappedHeaders(t *testing.T) {
	tests := []struct {
		claim string
		want  string // "" = no header
	}{
		{claim: "employee.id", want: "4711"},
		{claim: "employee.dept.name", want: "Ops"},
		{claim: "employee.dept", want: `{"name":"Ops"}`},
		{claim: "https://example.com/roles", want: "reader,writer"},
		{claim: "groups", want: `["eng,admins","ops"]`},
		{claim: "address", want: `{"formatted":"Veien 311\nOslo 0772","street_address":"Veien 311"}`},
		{claim: "updated_at", want: "1605180698"},
		{claim: "ratio", want: "0.5"},
		{claim: "mfa", want: "true"},
		{claim: "optout", want: "false"},
		{claim: "name", want: "=?UTF-8?B?w4VzZSDDmHZyZWLDuA==?="},
		{claim: "missing"},
		{claim: "employee.missing"},
		{claim: "employee.id.deeper"},
		{claim: "empty"},
		{claim: "blank"},
		{claim: "nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.claim, func(t *testing.T) {
			m := mustCompile(t, "X-Mapped", tt.claim)
			hs, dropped := NewProfile(mappedClaims(), bindIDOpts).Headers(Options{Standard: StandardAll, Mappings: m})
			if len(dropped) != 0 {
				t.Errorf("Headers() dropped = %+v, want none", dropped)
			}
			got, ok := headerMap(t, hs)["X-Mapped"]
			switch {
			case tt.want == "" && ok:
				t.Errorf("Headers()[X-Mapped] for claim %q = %q, want no header", tt.claim, got)
			case tt.want != "" && got != tt.want:
				t.Errorf("Headers()[X-Mapped] for claim %q = %q, want %q", tt.claim, got, tt.want)
			}
			assertWireSafe(t, "X-Mapped", got)
		})
	}

	t.Run("after the built-ins, in rule order", func(t *testing.T) {
		m := mustCompile(t, "X-Roles", "https://example.com/roles", "X-Missing", "missing", "X-Employee-Id", "employee.id")
		known := NewProfile(with(bindIDKnownClaims(t), "employee", mappedClaims()["employee"], "https://example.com/roles", []any{"r"}), bindIDOpts)
		hs, _ := known.Headers(Options{Standard: StandardAll, Mappings: m})
		want := append(slices.Clone(seedKnownHeaders), Header{"X-Roles", "r"}, Header{"X-Employee-Id", "4711"})
		if !reflect.DeepEqual(hs, want) {
			t.Errorf("Headers() = %q, want %q", hs, want)
		}
	})

	t.Run("address value is reversible", func(t *testing.T) {
		m := mustCompile(t, "X-Address", "address")
		claims := mappedClaims()
		hs, _ := NewProfile(claims, bindIDOpts).Headers(Options{Standard: StandardAll, Mappings: m})
		var back map[string]any
		if err := json.Unmarshal([]byte(decodeHeader(t, headerMap(t, hs)["X-Address"])), &back); err != nil {
			t.Fatalf("X-Address is not JSON: %v", err)
		}
		if !reflect.DeepEqual(back, claims["address"]) {
			t.Errorf("X-Address decodes to %v, want the claim %v", back, claims["address"])
		}
	})
}

// TestHDR04_MappedValueInjection: a mapped claim cannot split the header or smuggle a
// second one, an over-long value is dropped and reported, never cut.
func TestHDR04_MappedValueInjection(t *testing.T) {
	m := mustCompile(t, "X-Employee-Id", "employee_id")
	tests := []struct {
		name  string
		value any
		want  string // as the upstream decodes it; "" = no header
	}{
		{name: "CRLF", value: "42\r\nX-Auth-Admin: true", want: "42X-Auth-Admin: true"},
		{name: "bare LF", value: "42\nX: y", want: "42X: y"},
		{name: "NUL", value: "4\x002", want: "42"},
		{name: "only controls", value: "\r\n\x00", want: ""},
		{name: "CRLF inside an array element", value: []any{"a\r\nX: 1", "b"}, want: "aX: 1,b"},
		{name: "CRLF inside an object", value: map[string]any{"k": "a\r\nb"}, want: `{"k":"a\r\nb"}`},
		{name: "non-ASCII", value: "Øvrebø", want: "Øvrebø"},
		{name: "forged encoded-word", value: "=?UTF-8?B?YWRtaW4=?=", want: "=?UTF-8?B?YWRtaW4=?="},
		{name: "invalid UTF-8", value: "a\xffb", want: "a\uFFFDb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs, dropped := NewProfile(map[string]any{"sub": "s", "employee_id": tt.value}, bindIDOpts).Headers(Options{Standard: StandardAll, Mappings: m})
			if len(dropped) != 0 {
				t.Errorf("Headers() dropped = %+v, want none", dropped)
			}
			for _, h := range hs {
				assertWireSafe(t, h.Name, h.Value)
			}
			got, ok := headerMap(t, hs)["X-Employee-Id"]
			switch {
			case tt.want == "" && ok:
				t.Errorf("X-Employee-Id = %q, want no header", got)
			case tt.want != "" && !ok:
				t.Errorf("X-Employee-Id absent, want %q", tt.want)
			case tt.want != "" && decodeHeader(t, got) != tt.want:
				t.Errorf("X-Employee-Id decodes to %q, want %q", decodeHeader(t, got), tt.want)
			}
			sendThroughHTTP(t, hs)
		})
	}

	t.Run("50 KB value is dropped whole and reported", func(t *testing.T) {
		big := strings.Repeat("A", 50<<10)
		hs, dropped := NewProfile(map[string]any{"sub": "s", "employee_id": big}, bindIDOpts).Headers(Options{Standard: StandardAll, Mappings: m})
		if v, ok := headerMap(t, hs)["X-Employee-Id"]; ok {
			t.Errorf("X-Employee-Id sent with %d bytes, want it dropped", len(v))
		}
		want := []Dropped{{Name: "X-Employee-Id", Reason: DropValueTooLong, Bytes: 50 << 10}}
		if !reflect.DeepEqual(dropped, want) {
			t.Errorf("Headers() dropped = %+v, want %+v", dropped, want)
		}
		if got := headerMap(t, hs)[HeaderSubject]; got != "s" {
			t.Errorf("X-Auth-Subject = %q, want s: one oversized mapping must not cost the others", got)
		}
	})
}

// TestLIM06_TotalHeaderCap: the headers together stay within MaxTotalHeaderBytes; the first
// header that does not fit and every later one are dropped and reported, none is cut.
func TestLIM06_TotalHeaderCap(t *testing.T) {
	// Five mapped headers of 3 KB each after "X-Auth-Subject: s" and "X-Auth-New-User: true".
	claims := map[string]any{"sub": "s"}
	var pairs []string
	for i := range 5 {
		claims[fmt.Sprintf("c%d", i)] = strings.Repeat(string(rune('a'+i)), 3000)
		pairs = append(pairs, fmt.Sprintf("X-Claim-%d", i), fmt.Sprintf("c%d", i))
	}
	m := mustCompile(t, pairs...)
	p := NewProfile(claims, bindIDOpts)
	cost := func(name, value string) int { return len(name) + len(value) + 4 }
	builtins := cost(HeaderSubject, "s") + cost(HeaderNewUser, "true")
	each := cost("X-Claim-0", strings.Repeat("a", 3000)) // 3013

	tests := []struct {
		name      string
		total     int
		wantSent  int // mapped headers sent
		wantTotal bool
	}{
		{name: "default 16 KB holds all", total: 0, wantSent: 5},
		{name: "exactly enough for all", total: builtins + 5*each, wantSent: 5},
		{name: "one byte short drops the last", total: builtins + 5*each - 1, wantSent: 4},
		{name: "room for two and a half", total: builtins + 2*each + each/2, wantSent: 2},
		{name: "not even the built-ins", total: 10, wantSent: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{Standard: StandardAll, Mappings: m, MaxTotalHeaderBytes: tt.total}
			hs, dropped := p.Headers(opts)
			sum := 0
			for _, h := range hs {
				sum += cost(h.Name, h.Value)
			}
			limit := tt.total
			if limit == 0 {
				limit = DefaultMaxTotalHeaderBytes
			}
			if sum > limit {
				t.Errorf("Headers() sent %d bytes, want at most %d", sum, limit)
			}
			var sent []string
			for _, h := range hs {
				if strings.HasPrefix(h.Name, "X-Claim-") {
					sent = append(sent, h.Name)
					if len(h.Value) != 3000 {
						t.Errorf("%s has %d bytes, want 3000: never cut", h.Name, len(h.Value))
					}
				}
			}
			if len(sent) != tt.wantSent {
				t.Errorf("Headers() sent %q, want the first %d mapped headers", sent, tt.wantSent)
			}
			// Every header after the cut-off is reported, with its size.
			var want []Dropped
			all := append([]Header{{HeaderSubject, "s"}, {HeaderNewUser, "true"}}, func() []Header {
				var out []Header
				for i := range 5 {
					out = append(out, Header{fmt.Sprintf("X-Claim-%d", i), claims[fmt.Sprintf("c%d", i)].(string)})
				}
				return out
			}()...)
			for _, h := range all[len(hs):] {
				want = append(want, Dropped{Name: h.Name, Reason: DropTotalTooLarge, Bytes: len(h.Value)})
			}
			if !reflect.DeepEqual(dropped, want) {
				t.Errorf("Headers() dropped = %+v, want %+v", dropped, want)
			}
			if !reflect.DeepEqual(hs, all[:len(hs)]) {
				t.Errorf("Headers() = a %d-header list that is not a prefix of the full rendering", len(hs))
			}
		})
	}

	t.Run("a smaller header after the cut-off is still dropped (stop at the first overflow)", func(t *testing.T) {
		small := mustCompile(t, "X-Claim-0", "c0", "X-Small", "small")
		p := NewProfile(with(claims, "small", "x"), bindIDOpts)
		hs, dropped := p.Headers(Options{Standard: StandardAll, Mappings: small, MaxTotalHeaderBytes: builtins + each - 1})
		if _, ok := headerMap(t, hs)["X-Small"]; ok {
			t.Errorf("X-Small sent after an earlier header overflowed the total, want it dropped")
		}
		want := []Dropped{
			{Name: "X-Claim-0", Reason: DropTotalTooLarge, Bytes: 3000},
			{Name: "X-Small", Reason: DropTotalTooLarge, Bytes: 1},
		}
		if !reflect.DeepEqual(dropped, want) {
			t.Errorf("Headers() dropped = %+v, want %+v", dropped, want)
		}
	})

	t.Run("too long beats total", func(t *testing.T) {
		hs, dropped := p.Headers(Options{Standard: StandardAll, Mappings: m, MaxHeaderBytes: 2000, MaxTotalHeaderBytes: 100})
		if len(hs) != 2 {
			t.Errorf("Headers() = %q, want only the two built-ins", hs)
		}
		for _, d := range dropped {
			if d.Reason != DropValueTooLong {
				t.Errorf("Headers() dropped %+v, want reason %s: the value alone exceeds the per-header limit", d, DropValueTooLong)
			}
		}
		if len(dropped) != 5 {
			t.Errorf("Headers() dropped %d headers, want 5", len(dropped))
		}
	})

	t.Run("the built-ins of the seed fit the default", func(t *testing.T) {
		if _, dropped := NewProfile(bindIDKnownClaims(t), bindIDOpts).Headers(Options{Standard: StandardAll}); len(dropped) != 0 {
			t.Errorf("Headers() dropped = %+v, want none", dropped)
		}
	})
}

// TestHDR03_MappedNameVariants: a mapped header is stripped from the client's request in
// every spelling, like the X-Auth-* and X-Trust-* ones.
func TestHDR03_MappedNameVariants(t *testing.T) {
	m := mustCompile(t, "X-Employee-Id", "employee.id", "Remote-User", "preferred_username")
	for _, tt := range []struct {
		name string
		want bool
	}{
		{"X-Employee-Id", true},
		{"x-employee-id", true},
		{"x_employee_id", true},
		{"X-EMPLOYEE_ID", true},
		{"X_Employee-Id", true},
		{"Remote_User", true},
		{"REMOTE-USER", true},
		{"X-Employee-Idx", false},
		{"X-Employee", false},
		{"X-Employee-I", false},
		{"Y-Employee-Id", false},
		{"X-Employee.Id", false},
		{"Remote-Users", false},
		{"", false},
	} {
		if got := IsManagedHeader(tt.name, m); got != tt.want {
			t.Errorf("IsManagedHeader(%q, mappings) = %v, want %v", tt.name, got, tt.want)
		}
	}
	if IsManagedHeader("X-Employee-Id", nil) || IsManagedHeader("x_employee_id", nil) {
		t.Errorf("IsManagedHeader(X-Employee-Id, nil) = true, want false without the mapping")
	}

	t.Run("StripManaged on a parsed request", func(t *testing.T) {
		raw := "GET / HTTP/1.1\r\n" +
			"Host: app.example\r\n" +
			"X-Employee-Id: 1\r\n" +
			"X-Employee-Id: 2\r\n" + // two lines of the same header
			"x_employee_id: 3\r\n" +
			"X-EMPLOYEE_ID: 4\r\n" +
			"remote_user: admin\r\n" +
			"X-Auth-Email: admin@example.com\r\n" +
			"X-Employee-Idx: keep\r\n" +
			"Accept: text/html\r\n" +
			"\r\n"
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			t.Fatal(err)
		}
		removed := StripManaged(req.Header, m)
		want := http.Header{"X-Employee-Idx": {"keep"}, "Accept": {"text/html"}}
		if !reflect.DeepEqual(req.Header, want) {
			t.Errorf("StripManaged() left %v, want %v", req.Header, want)
		}
		// X-Employee-Id (both lines), x_employee_id, X-EMPLOYEE_ID, remote_user, X-Auth-Email.
		if removed != 5 {
			t.Errorf("StripManaged() = %d, want 5", removed)
		}
	})

	t.Run("no allocation", func(t *testing.T) {
		h := browserHeaders()
		if n := testing.AllocsPerRun(100, func() { StripManaged(h, m) }); n != 0 {
			t.Errorf("StripManaged(h, mappings) allocates %v times, want 0", n)
		}
		if len(h) != 10 {
			t.Errorf("StripManaged(h, mappings) removed unrelated headers: %v", h)
		}
		if n := testing.AllocsPerRun(100, func() {
			IsManagedHeader("X_EMPLOYEE_ID", m)
			IsManagedHeader("Accept-Language", m)
		}); n != 0 {
			t.Errorf("IsManagedHeader(name, mappings) allocates %v times, want 0", n)
		}
		forged := func() http.Header {
			return http.Header{"X-Employee-Id": {"1"}, "x_employee_id": {"2"}, "X-EMPLOYEE_ID": {"3"}, "Accept": {"*/*"}}
		}
		fresh := make([]http.Header, 101) // AllocsPerRun runs the function once more to warm up
		for i := range fresh {
			fresh[i] = forged()
		}
		i := 0
		if n := testing.AllocsPerRun(100, func() { StripManaged(fresh[i], m); i++ }); n != 0 {
			t.Errorf("StripManaged(forged headers, mappings) allocates %v times, want 0", n)
		}
		if len(fresh[0]) != 1 {
			t.Errorf("StripManaged(forged headers, mappings) left %v, want only Accept", fresh[0])
		}
	})
}

// TestHDR02_AbsentMappedClaim: a user without the mapped claim cannot keep the client's
// copy of the mapped header.
func TestHDR02_AbsentMappedClaim(t *testing.T) {
	m := mustCompile(t, "X-Employee-Id", "employee.id", "X-Groups", "groups")
	opts := Options{AliasClaim: BindIDAliasClaim, Mappings: m}
	hs, _ := NewProfile(map[string]any{"sub": "s", "bindid_alias": "a", "groups": []any{"staff"}}, opts).Headers(opts)
	h := http.Header{"X-Employee-Id": {"1"}, "X_Employee_Id": {"1"}, "X-Groups": {"admins"}, "Accept": {"*/*"}}
	StripManaged(h, m)
	for _, x := range hs {
		h[x.Name] = []string{x.Value}
	}
	want := http.Header{
		"Accept":         {"*/*"},
		"X-Auth-Subject": {"s"},
		"X-Auth-Alias":   {"a"},
		"X-Groups":       {"staff"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("request headers = %v, want %v", h, want)
	}
}

func TestStandardHeaders(t *testing.T) {
	m := mustCompile(t, "X-Employee-Id", "sub")
	claims := bindIDKnownClaims(t)
	p := NewProfile(claims, bindIDOpts)
	names := func(hs []Header) []string {
		var out []string
		for _, h := range hs {
			out = append(out, h.Name)
		}
		return out
	}
	var allNames, authNames []string
	for _, h := range seedKnownHeaders {
		allNames = append(allNames, h.Name)
		if strings.HasPrefix(h.Name, "X-Auth-") {
			authNames = append(authNames, h.Name)
		}
	}
	tests := []struct {
		std  StandardHeaders
		want []string
	}{
		{std: "", want: []string{"X-Auth-Subject", "X-Auth-Alias", "X-Employee-Id"}}, // basic; no email claim
		{std: StandardBasic, want: []string{"X-Auth-Subject", "X-Auth-Alias", "X-Employee-Id"}},
		{std: StandardAll, want: append(slices.Clone(allNames), "X-Employee-Id")},
		{std: StandardIdentity, want: append(slices.Clone(authNames), "X-Employee-Id")},
		{std: StandardNone, want: []string{"X-Employee-Id"}},
		{std: "bogus", want: []string{"X-Employee-Id"}}, // unvalidated: never more than asked for
	}
	for _, tt := range tests {
		t.Run(string(tt.std), func(t *testing.T) {
			hs, _ := p.Headers(Options{Standard: tt.std, Mappings: m})
			if got := names(hs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Headers(Standard=%q) = %q, want %q", tt.std, got, tt.want)
			}
		})
	}
	if len(authNames) != 9 || len(allNames) != 27 {
		t.Fatalf("seed has %d X-Auth-* and %d headers in all, want 9 and 27", len(authNames), len(allNames))
	}

	// basic: the email with its verified flag, the new-user flag; nothing else of the profile.
	ola := NewProfile(map[string]any{"sub": "s", "email": "ola@example.com", "email_verified": true, "name": "Ola",
		"phone_number": "+4799999999", "acr": "x", "personal_id_number": "01017012345"}, Options{})
	newUser := NewProfile(bindIDNewClaims(t), bindIDOpts)
	for _, tt := range []struct {
		p    *Profile
		want []Header
	}{
		// A provider without an alias claim (the generic profile): nobody is new.
		{ola, []Header{{"X-Auth-Subject", "s"}, {"X-Auth-Email", "ola@example.com"}, {"X-Auth-Email-Verified", "true"}}},
		{newUser, []Header{{"X-Auth-Subject", newUser.Subject}, {"X-Auth-New-User", "true"}}},
	} {
		for _, std := range []StandardHeaders{"", StandardBasic} {
			if hs, _ := tt.p.Headers(Options{Standard: std}); !reflect.DeepEqual(hs, tt.want) {
				t.Errorf("Headers(Standard=%q) of %s = %q, want %q", std, tt.p.Subject, hs, tt.want)
			}
		}
	}

	// The verified flag never stands alone: not when the email cleans to nothing, not when
	// the email is dropped for its size.
	for _, email := range []string{"  ", "\r\n", strings.Repeat("e", 5000) + "@example.com"} {
		p := NewProfile(map[string]any{"sub": "s", "bindid_alias": "a", "email": email, "email_verified": true}, bindIDOpts)
		hs, _ := p.Headers(Options{})
		if got := names(hs); !reflect.DeepEqual(got, []string{"X-Auth-Subject", "X-Auth-Alias"}) {
			t.Errorf("basic with email %.20q = %q, want subject and alias only", email, got)
		}
	}

	// Stripping does not depend on what is emitted: a client's X-Trust-* never survives.
	h := http.Header{"X-Trust-Device-Count": {"9"}}
	StripManaged(h, m)
	if len(h) != 0 {
		t.Errorf("StripManaged() left %v with standard_headers identity, want nothing", h)
	}
}

func TestParseStandardHeaders(t *testing.T) {
	for in, want := range map[string]StandardHeaders{
		"": StandardBasic, "basic": StandardBasic, "all": StandardAll, "identity": StandardIdentity, "none": StandardNone,
	} {
		got, err := ParseStandardHeaders(in)
		if err != nil || got != want {
			t.Errorf("ParseStandardHeaders(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"ALL", "None", "trust", "identity ", "x"} {
		_, err := ParseStandardHeaders(in)
		if err == nil || !strings.Contains(err.Error(), "basic (the default), identity, all, none") || !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) {
			t.Errorf("ParseStandardHeaders(%q) error = %v, want one naming the value and listing every value", in, err)
		}
	}
}

// TestOptionsComparable keeps Options usable as a cache key (the handler compares with ==).
func TestOptionsComparable(t *testing.T) {
	m := mustCompile(t, "X-A", "a")
	a := Options{AliasClaim: "x", MaxHeaderBytes: 1, MaxTotalHeaderBytes: 2, Standard: StandardNone, Mappings: m}
	b := a
	if a != b {
		t.Errorf("copies of Options compare unequal")
	}
	b.Mappings = mustCompile(t, "X-A", "a")
	if a == b {
		t.Errorf("Options with separately compiled Mappings compare equal, want unequal (pointer identity)")
	}
}

func BenchmarkStripManagedMappings(b *testing.B) {
	pairs := make([]string, 0, 2*16)
	for i := range 16 {
		pairs = append(pairs, fmt.Sprintf("X-Claim-%d", i), "c")
	}
	m := mustCompile(b, pairs...)
	h := browserHeaders()
	b.ReportAllocs()
	for b.Loop() {
		StripManaged(h, m)
	}
}
