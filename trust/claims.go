package trust

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// ClaimString renders a JSON claim value as text:
//
//   - a string as is;
//   - a bool as "true" or "false";
//   - a number as an integer when it is integral (1605180698, never 1.605180698e+09),
//     otherwise as the shortest float that reads back the same (JSON/ECMAScript form);
//   - an array as its elements rendered recursively and joined with ","; when an element
//     contains a comma or cannot be rendered, the whole array as compact JSON instead, so
//     a delimiter inside a value can never split it (["eng,admins"] stays one element);
//   - an object as compact JSON with sorted keys.
//
// Other Go values are rendered as their JSON form would be. It returns false for null
// (nil), NaN, infinities and values that cannot be marshalled to JSON. The result is
// raw: it may hold any character; use EncodeValue before putting it in a header.
func ClaimString(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", false
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return formatFloat(v, 64)
	case float32:
		return formatFloat(float64(v), 32)
	case json.Number:
		return formatNumber(v)
	case int:
		return strconv.FormatInt(int64(v), 10), true
	case int8:
		return strconv.FormatInt(int64(v), 10), true
	case int16:
		return strconv.FormatInt(int64(v), 10), true
	case int32:
		return strconv.FormatInt(int64(v), 10), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint:
		return strconv.FormatUint(uint64(v), 10), true
	case uint8:
		return strconv.FormatUint(uint64(v), 10), true
	case uint16:
		return strconv.FormatUint(uint64(v), 10), true
	case uint32:
		return strconv.FormatUint(uint64(v), 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case []any:
		return joinArray(v)
	case []string:
		for _, s := range v {
			if strings.IndexByte(s, ',') >= 0 {
				return compactJSON(v)
			}
		}
		return strings.Join(v, ","), true
	case map[string]any:
		return compactJSON(v)
	}
	// Any other Go value (structs, typed slices and maps, ...) is normalised through its
	// JSON form so it renders exactly as the same claim received from an OP would.
	raw, err := json.Marshal(v)
	if err != nil {
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return "", false
	}
	return ClaimString(generic)
}

func joinArray(v []any) (string, bool) {
	parts := make([]string, len(v))
	for i, e := range v {
		s, ok := ClaimString(e)
		if !ok || strings.IndexByte(s, ',') >= 0 {
			return compactJSON(v)
		}
		parts[i] = s
	}
	return strings.Join(parts, ","), true
}

// compactJSON marshals v without HTML escaping (the value is text, not markup) and with
// map keys sorted (encoding/json sorts them).
func compactJSON(v any) (string, bool) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", false
	}
	return strings.TrimSuffix(buf.String(), "\n"), true
}

func formatFloat(f float64, bits int) (string, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", false
	}
	abs := math.Abs(f)
	if f == math.Trunc(f) && abs < 1e21 {
		if f == 0 {
			return "0", true // also for -0
		}
		return strconv.FormatFloat(f, 'f', -1, bits), true
	}
	// The ECMAScript rule encoding/json uses: exponent only for very small or large values.
	format := byte('f')
	if abs < 1e-6 || abs >= 1e21 {
		format = 'e'
	}
	s := strconv.FormatFloat(f, format, -1, bits)
	if format == 'e' {
		// Clean up e-09 to e-9, as encoding/json does.
		if n := len(s); n >= 4 && s[n-4] == 'e' && s[n-3] == '-' && s[n-2] == '0' {
			s = s[:n-2] + s[n-1:]
		}
	}
	return s, true
}

func formatNumber(n json.Number) (string, bool) {
	s := string(n)
	if isIntegerLiteral(s) {
		if s == "-0" {
			return "0", true
		}
		return s, true // exact, however large
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return "", false
	}
	return formatFloat(f, 64)
}

// isIntegerLiteral reports whether s is a JSON integer: -?(0|[1-9][0-9]*).
func isIntegerLiteral(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Placeholders returns the values for Caddy placeholders http.auth.user.<key>: "id" is
// Profile.User (the user claim, default sub), or the subject when the user claim is
// absent or empty; "groups" is Profile.Groups comma-joined (absent without groups, and
// never the raw claim named "groups"); and every other top-level claim whose name matches
// [a-z0-9_]+ and whose value ClaimString can render is included under its own name (a
// claim named "id" never shadows the user). Values are raw UTF-8, not RFC 2047-encoded, but with
// control characters removed and invalid UTF-8 replaced, because operators paste
// placeholders into header_up, log fields and responses, where CR/LF would split lines.
func (p *Profile) Placeholders() map[string]string {
	m := make(map[string]string, len(p.Claims)+2)
	for name, v := range p.Claims {
		if !isPlaceholderName(name) {
			continue
		}
		s, ok := ClaimString(v)
		if !ok {
			continue
		}
		m[name] = sanitize(s)
	}
	// Last, so that claims named "id" or "groups" cannot shadow these.
	delete(m, "groups")
	if len(p.Groups) > 0 {
		m["groups"] = sanitize(strings.Join(p.Groups, ","))
	}
	id := sanitize(p.User)
	if strings.TrimSpace(id) == "" {
		id = sanitize(p.Subject) // no user claim: the subject, as before user_claim existed
	}
	m["id"] = id
	return m
}

func isPlaceholderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// LookupClaim finds a claim by path: the top-level claim of exactly that name first (names
// may hold dots, e.g. "https://example.com/roles"), otherwise dot-separated names into
// nested objects ("address.locality"). A JSON null is absent. It returns false when the path
// is empty or any step is missing or not an object.
func LookupClaim(claims map[string]any, path string) (any, bool) {
	if path == "" {
		return nil, false
	}
	if v, ok := claims[path]; ok {
		return v, v != nil
	}
	cur := claims
	for {
		name, rest, more := strings.Cut(path, ".")
		v, ok := cur[name]
		if !ok || v == nil || name == "" {
			return nil, false
		}
		if !more {
			return v, true
		}
		next, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, path = next, rest
	}
}
