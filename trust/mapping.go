package trust

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// MaxMappings is the largest number of mapping rules CompileMappings accepts. Every rule
// adds a header to each proxied request and a name to the strip list.
const MaxMappings = 64

// Mapping is one operator rule "header <Header-Name> <claim.path>": send the claim at
// Claim (LookupClaim: an exact top-level name first, else a dot path into objects) to the
// upstream as the request header Header.
type Mapping struct {
	Header string `json:"header"`
	Claim  string `json:"claim"`
}

// Mappings is a checked, immutable set of mapping rules (CompileMappings). A nil
// *Mappings has no rules. Share one pointer: Options compares it by identity.
type Mappings struct {
	rules []mappingRule
}

type mappingRule struct {
	name  string // canonical (http.CanonicalHeaderKey), as emitted
	key   string // lowercase, for comparing with a client's spelling ('_' read as '-')
	claim string
}

// reservedNames are header names the gateway sets or that break the request or cross a
// security boundary when set from a claim; canonical spelling. X-Forwarded-* is matched
// as a prefix in checkMappingName.
var reservedNames = []string{
	// Framing and hop-by-hop: the proxy or the upstream would misread the request.
	"Host", "Content-Length", "Content-Type", "Content-Encoding", "Transfer-Encoding",
	"Connection", "Keep-Alive", "Te", "Trailer", "Upgrade", "Expect", "Http2-Settings",
	"Proxy-Connection", "Via", "Max-Forwards",
	// Credentials and client identity that other layers trust.
	"Authorization", "Proxy-Authorization", "Proxy-Authenticate", "Cookie", "Set-Cookie",
	"Forwarded", "X-Real-Ip",
	// Set by the gateway itself: the signed assertion.
	"X-Auth-Assertion",
}

// CompileMappings checks the rules and prepares them for Headers, StripManaged and
// IsManagedHeader. Header names are canonicalised (http.CanonicalHeaderKey). It rejects,
// with an error naming the rule:
//
//   - an empty name, or a name with a character other than ASCII letters, digits and '-'
//     (a subset of the RFC 9110 token: '_' is merged with '-' by CGI, PHP and WSGI, and
//     nginx and Apache drop names with '_', '.' or other symbols);
//   - a built-in header name (HeaderNames), except X-Auth-User and X-Auth-Groups: they
//     became built-in after sites had mapped them themselves, so such a rule still works
//     and replaces the built-in header (Headers then leaves the built-in one out);
//   - two rules for the same header, in any case and with '_' read as '-';
//   - headers that would break the request or cross a security boundary: Host,
//     Content-Length, Content-Type, Content-Encoding, Transfer-Encoding, Connection,
//     Keep-Alive, Te, Trailer, Upgrade, Expect, Http2-Settings, Proxy-Connection, Via,
//     Max-Forwards, Authorization, Proxy-Authorization, Proxy-Authenticate, Cookie,
//     Set-Cookie, Forwarded, X-Real-Ip, X-Forwarded-*, and X-Auth-Assertion (the
//     gateway's signed assertion);
//   - an empty claim path;
//   - more than MaxMappings rules.
//
// No rules gives (nil, nil).
func CompileMappings(rules []Mapping) (*Mappings, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	if len(rules) > MaxMappings {
		return nil, fmt.Errorf("%d header mapping rules, at most %d are allowed", len(rules), MaxMappings)
	}
	builtin := make(map[string]bool, len(HeaderNames()))
	for _, n := range HeaderNames() {
		if !isAdoptable(n) {
			builtin[strings.ToLower(n)] = true
		}
	}
	seen := make(map[string]string, len(rules))
	m := &Mappings{rules: make([]mappingRule, 0, len(rules))}
	for _, r := range rules {
		if err := checkMappingName(r.Header); err != nil {
			return nil, fmt.Errorf("header %q: %w", r.Header, err)
		}
		name := http.CanonicalHeaderKey(r.Header)
		key := strings.ToLower(name)
		switch {
		case builtin[key]:
			return nil, fmt.Errorf("header %q: is a built-in header of trustgate; pick another name", r.Header)
		case seen[key] != "":
			return nil, fmt.Errorf("header %q: is already mapped (to claim %q); each header takes one rule", r.Header, seen[key])
		case r.Claim == "":
			return nil, fmt.Errorf("header %q: the claim path is empty", r.Header)
		}
		seen[key] = r.Claim
		m.rules = append(m.rules, mappingRule{name: name, key: key, claim: r.Claim})
	}
	return m, nil
}

var (
	errEmptyName   = errors.New("the header name is empty")
	errInvalidName = errors.New("invalid header name: use ASCII letters, digits and '-' only ('_' and other symbols are merged or dropped by upstreams)")
)

// checkMappingName accepts a header name made of ASCII letters, digits and '-' that is not
// reserved (reservedNames, X-Forwarded-*).
func checkMappingName(name string) error {
	if name == "" {
		return errEmptyName
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' {
			return errInvalidName
		}
	}
	if hasHeaderPrefix(name, "x-forwarded-") {
		return errors.New("X-Forwarded-* headers carry the client's address and are set by the proxy; pick another name")
	}
	for _, r := range reservedNames {
		if strings.EqualFold(name, r) {
			return fmt.Errorf("%s is a reserved header: setting it from a claim would break the request or cross a security boundary; pick another name", r)
		}
	}
	return nil
}

// Names returns the mapped header names, canonical, in rule order. nil-safe.
func (m *Mappings) Names() []string {
	if m == nil {
		return nil
	}
	out := make([]string, len(m.rules))
	for i, r := range m.rules {
		out[i] = r.name
	}
	return out
}

// isAdoptable reports whether a mapping rule may take the built-in header name n:
// X-Auth-User and X-Auth-Groups, which sites mapped themselves before they were built in.
func isAdoptable(n string) bool { return n == HeaderUser || n == HeaderGroups }

// len returns the number of rules. nil-safe.
func (m *Mappings) len() int {
	if m == nil {
		return 0
	}
	return len(m.rules)
}

// matches reports whether name is one of the mapped headers in any spelling: ASCII case
// insensitive, '_' equal to '-'. It does not allocate.
func (m *Mappings) matches(name string) bool {
	if m == nil {
		return false
	}
	for i := range m.rules {
		if key := m.rules[i].key; len(key) == len(name) && hasHeaderPrefix(name, key) {
			return true
		}
	}
	return false
}
