package trust

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Header names set for the upstream. They are in canonical form (http.CanonicalHeaderKey),
// so they can be used as http.Header keys directly. doc.go documents each one.
const (
	HeaderSubject       = "X-Auth-Subject"
	HeaderUser          = "X-Auth-User"
	HeaderIssuer        = "X-Auth-Issuer"
	HeaderEmail         = "X-Auth-Email"
	HeaderEmailVerified = "X-Auth-Email-Verified"
	HeaderName          = "X-Auth-Name"
	HeaderPhone         = "X-Auth-Phone"
	HeaderPhoneVerified = "X-Auth-Phone-Verified"
	HeaderGivenName     = "X-Auth-Given-Name"
	HeaderFamilyName    = "X-Auth-Family-Name"
	HeaderBirthdate     = "X-Auth-Birthdate"
	HeaderPersonalID    = "X-Auth-Personal-Id"
	HeaderAddress       = "X-Auth-Address"
	HeaderAlias         = "X-Auth-Alias"
	HeaderNewUser       = "X-Auth-New-User"
	HeaderACR           = "X-Auth-Acr"
	HeaderAMR           = "X-Auth-Amr"
	HeaderAuthTime      = "X-Auth-Time"

	HeaderFirstLogin           = "X-Trust-First-Login"
	HeaderLastLogin            = "X-Trust-Last-Login"
	HeaderFirstConfirmedLogin  = "X-Trust-First-Confirmed-Login"
	HeaderDeviceFirstLogin     = "X-Trust-Device-First-Login"
	HeaderDeviceLastLogin      = "X-Trust-Device-Last-Login"
	HeaderAuthenticatingDevice = "X-Trust-Authenticating-Device"
	HeaderOriginatingDevice    = "X-Trust-Originating-Device"
	HeaderUserRegistered       = "X-Trust-User-Registered"
	HeaderDeviceRegistered     = "X-Trust-Device-Registered"
	HeaderDeviceLastSeen       = "X-Trust-Device-Last-Seen"
	HeaderUserLastSeen         = "X-Trust-User-Last-Seen"
	HeaderConfirmedAppCount    = "X-Trust-Confirmed-App-Count"
	HeaderDeviceCount          = "X-Trust-Device-Count"

	HeaderNewDevice          = "X-Trust-New-Device"
	HeaderAccountAgeDays     = "X-Trust-Account-Age-Days"
	HeaderDeviceKnownSince   = "X-Trust-Device-Known-Since"
	HeaderDeviceAgeDays      = "X-Trust-Device-Age-Days"
	HeaderDaysSinceLastLogin = "X-Trust-Days-Since-Last-Login"

	HeaderPolicyDecision = "X-Trust-Policy-Decision"
	HeaderRiskScore      = "X-Trust-Risk-Score"
	HeaderTrustScore     = "X-Trust-Trust-Score"

	// HeaderGroups comes last of the built-in headers: it is the one that can be long
	// (Entra ID sends up to 200 group ids), so when max_total_header_bytes runs out the
	// fixed identity headers before it are still sent.
	HeaderGroups = "X-Auth-Groups"
)

// HeaderNames returns every built-in header name Headers can emit, in the order Headers
// emits them. Mapped headers (Options.Mappings) come after these and are not listed.
func HeaderNames() []string {
	return []string{
		HeaderSubject, HeaderUser, HeaderIssuer, HeaderEmail, HeaderEmailVerified, HeaderName,
		HeaderPhone, HeaderPhoneVerified, HeaderGivenName, HeaderFamilyName, HeaderBirthdate,
		HeaderPersonalID, HeaderAddress, HeaderAlias, HeaderNewUser, HeaderACR, HeaderAMR,
		HeaderAuthTime,
		HeaderFirstLogin, HeaderLastLogin, HeaderFirstConfirmedLogin, HeaderDeviceFirstLogin,
		HeaderDeviceLastLogin, HeaderAuthenticatingDevice, HeaderOriginatingDevice,
		HeaderUserRegistered, HeaderDeviceRegistered, HeaderDeviceLastSeen, HeaderUserLastSeen,
		HeaderConfirmedAppCount, HeaderDeviceCount,
		HeaderNewDevice, HeaderAccountAgeDays, HeaderDeviceKnownSince, HeaderDeviceAgeDays,
		HeaderDaysSinceLastLogin,
		HeaderPolicyDecision, HeaderRiskScore, HeaderTrustScore,
		HeaderGroups,
	}
}

// StandardHeaders selects the built-in headers Headers emits (Caddyfile: standard_headers).
type StandardHeaders string

// The values of StandardHeaders, from the fewest headers to the most.
const (
	// StandardNone emits no built-in header; only the mapped ones (Options.Mappings).
	StandardNone StandardHeaders = "none"
	// StandardBasic emits who the user is for the application and nothing more:
	// X-Auth-Subject, X-Auth-User (only with Options.UserClaim set), X-Auth-Email with X-Auth-Email-Verified (the flag only
	// together with an email), X-Auth-Alias and X-Auth-New-User. It is the default: the zero
	// value "" means the same. Personal data beyond these, and the trust signals, go
	// upstream only when the operator asks for them (data protection by default), and each
	// forwarded header costs every request (bench/RESULTS.md). X-Auth-Groups is not basic:
	// a group list can be long (it would cost every request of every site that never reads
	// it), and adding it would change what existing basic sites send upstream.
	StandardBasic StandardHeaders = "basic"
	// StandardIdentity emits every X-Auth-* built-in header (no X-Trust-* signal).
	StandardIdentity StandardHeaders = "identity"
	// StandardAll emits every built-in header: X-Auth-* and X-Trust-*.
	StandardAll StandardHeaders = "all"
)

// ParseStandardHeaders reads a standard_headers value: "none", "basic", "identity" or
// "all"; the empty string is "basic".
func ParseStandardHeaders(s string) (StandardHeaders, error) {
	switch v := StandardHeaders(s); v {
	case "", StandardBasic:
		return StandardBasic, nil
	case StandardNone, StandardIdentity, StandardAll:
		return v, nil
	}
	return "", fmt.Errorf("standard_headers %q: want one of basic (the default), identity, all, none", s)
}

// Levels of StandardHeaders, so that each level emits everything the one below does.
const (
	levelNone = iota
	levelBasic
	levelIdentity
	levelAll
)

// level reports how many built-in headers s selects. A value ParseStandardHeaders rejects
// selects none: a configuration mistake never sends more than was asked for.
func (s StandardHeaders) level() int {
	switch s {
	case "", StandardBasic:
		return levelBasic
	case StandardIdentity:
		return levelIdentity
	case StandardAll:
		return levelAll
	}
	return levelNone
}

// Header is one upstream request header. Value is already safe for the wire (EncodeValue).
type Header struct{ Name, Value string }

// Reasons in Dropped.
const (
	// DropValueTooLong: the encoded value is longer than Options.MaxHeaderBytes.
	DropValueTooLong = "value_too_long"
	// DropTotalTooLarge: the header would take the headers past
	// Options.MaxTotalHeaderBytes, or an earlier one already did.
	DropTotalTooLarge = "total_too_large"
)

// Dropped reports a header Headers left out because of a size limit. It never holds the
// value, so it can be logged as is.
type Dropped struct {
	Name   string // header name
	Reason string // DropValueTooLong or DropTotalTooLarge
	Bytes  int    // length of the encoded value
}

// builtinHeaders is len(HeaderNames()).
const builtinHeaders = 40

// headerOverhead is what a header line costs besides its name and value: ": " and CRLF.
const headerOverhead = 4

// Headers renders the profile as upstream headers: the built-in ones opts.Standard selects,
// in the order of HeaderNames, then one per opts.Mappings rule, in rule order. A claim that
// is absent (or empty once cleaned) yields no header. Size limits drop headers whole, never
// cut them, and report them in dropped so the caller can log them:
//
//   - a value longer than opts.MaxHeaderBytes once encoded (DropValueTooLong);
//   - once the running total of len(name)+len(value)+4 over the emitted headers would
//     exceed opts.MaxTotalHeaderBytes, that header and every later one (DropTotalTooLarge,
//     unless the value alone is too long). Stopping at the first overflow keeps the result
//     predictable: always a prefix, in emission order, of what fits.
//
// Callers render once per session version and cache the result; the caller must still
// delete every managed header from the request (StripManaged, with the same Mappings)
// before adding these, so an absent header cannot be forged.
func (p *Profile) Headers(opts Options) (hs []Header, dropped []Dropped) {
	limit, budget := opts.maxHeaderBytes(), opts.maxTotalHeaderBytes()
	full := false
	hs = make([]Header, 0, builtinHeaders+opts.Mappings.len())
	add := func(name, raw string) {
		v := EncodeValue(raw)
		cost := len(name) + len(v) + headerOverhead
		switch {
		case v == "":
		case len(v) > limit:
			dropped = append(dropped, Dropped{Name: name, Reason: DropValueTooLong, Bytes: len(v)})
		case full || cost > budget:
			full = true
			dropped = append(dropped, Dropped{Name: name, Reason: DropTotalTooLarge, Bytes: len(v)})
		default:
			budget -= cost
			hs = append(hs, Header{Name: name, Value: v})
		}
	}
	addUnix := func(name string, t int64) {
		if t > 0 {
			add(name, strconv.FormatInt(t, 10))
		}
	}
	addCount := func(name string, n *int64) {
		if n != nil {
			add(name, strconv.FormatInt(*n, 10))
		}
	}
	addBool := func(name string, b *bool) {
		if b != nil {
			add(name, strconv.FormatBool(*b))
		}
	}
	addDevice := func(name string, d *Device) {
		if d == nil {
			return
		}
		// Device fields are declared in key order, so the JSON keys come out sorted.
		if s, ok := compactJSON(d); ok {
			add(name, s)
		}
	}

	// X-Auth-User and X-Auth-Groups leave the way to an operator's own mapping of that name
	// (written before they were built in): the site keeps sending what it sent.
	addUser := func() {
		if p.User != "" && !opts.Mappings.matches(HeaderUser) { // p.User: only with user_claim
			add(HeaderUser, p.User)
		}
	}

	level := opts.Standard.level()
	switch level {
	case levelBasic:
		add(HeaderSubject, p.Subject)
		addUser()
		n := len(hs)
		add(HeaderEmail, p.Email)
		if len(hs) > n { // the flag only beside the email it qualifies (sent, not dropped)
			addBool(HeaderEmailVerified, p.EmailVerified)
		}
		add(HeaderAlias, p.Alias)
		if p.NewUser {
			add(HeaderNewUser, "true")
		}
	case levelIdentity, levelAll:
		add(HeaderSubject, p.Subject)
		addUser()
		add(HeaderIssuer, p.Issuer)
		add(HeaderEmail, p.Email)
		addBool(HeaderEmailVerified, p.EmailVerified)
		add(HeaderName, p.Name)
		add(HeaderPhone, p.Phone)
		addBool(HeaderPhoneVerified, p.PhoneVerified)
		add(HeaderGivenName, p.GivenName)
		add(HeaderFamilyName, p.FamilyName)
		add(HeaderBirthdate, p.Birthdate)
		add(HeaderPersonalID, p.PersonalID)
		add(HeaderAddress, p.Address)
		add(HeaderAlias, p.Alias)
		if p.NewUser {
			add(HeaderNewUser, "true")
		}
		add(HeaderACR, p.ACR)
		if len(p.AMR) > 0 {
			s, _ := ClaimString(p.AMR) // joins with ","; JSON array if an element has a comma
			add(HeaderAMR, s)
		}
		addUnix(HeaderAuthTime, p.AuthTime)
	}
	trustHeaders := level == levelAll

	if b := p.BindID; b != nil && trustHeaders {
		addUnix(HeaderFirstLogin, b.FirstLogin)
		addUnix(HeaderLastLogin, b.LastLogin)
		addUnix(HeaderFirstConfirmedLogin, b.FirstConfirmedLogin)
		addUnix(HeaderDeviceFirstLogin, b.DeviceFirstLogin)
		addUnix(HeaderDeviceLastLogin, b.DeviceLastLogin)
		addDevice(HeaderAuthenticatingDevice, b.AuthenticatingDevice)
		addDevice(HeaderOriginatingDevice, b.OriginatingDevice)
		addUnix(HeaderUserRegistered, b.UserRegistered)
		addUnix(HeaderDeviceRegistered, b.DeviceRegistered)
		addUnix(HeaderDeviceLastSeen, b.DeviceLastSeen)
		addUnix(HeaderUserLastSeen, b.UserLastSeen)
		addCount(HeaderConfirmedAppCount, b.ConfirmedAppCount)
		addCount(HeaderDeviceCount, b.DeviceCount)
	}
	if d := p.Derived; d != nil && trustHeaders {
		addBool(HeaderNewDevice, d.NewDevice)
		addCount(HeaderAccountAgeDays, d.AccountAgeDays)
		addUnix(HeaderDeviceKnownSince, d.DeviceKnownSince)
		addCount(HeaderDeviceAgeDays, d.DeviceAgeDays)
		addCount(HeaderDaysSinceLastLogin, d.DaysSinceLastLogin)
	}
	if v := p.Verification; v != nil && trustHeaders {
		add(HeaderPolicyDecision, v.Decision)
		add(HeaderRiskScore, v.RiskScore)
		add(HeaderTrustScore, v.TrustScore)
	}
	if len(p.Groups) > 0 && level >= levelIdentity && !opts.Mappings.matches(HeaderGroups) {
		// Refused values (a comma, a control character) never reach Groups, so the list
		// splits back on "," exactly.
		add(HeaderGroups, strings.Join(p.Groups, ","))
	}

	if m := opts.Mappings; m != nil {
		for _, r := range m.rules {
			v, ok := LookupClaim(p.Claims, r.claim)
			if !ok {
				continue
			}
			if s, ok := ClaimString(v); ok {
				add(r.name, s)
			}
		}
	}
	return hs, dropped
}

// EncodeValue makes a claim string safe as an HTTP header value:
//
//   - invalid UTF-8 is replaced by U+FFFD;
//   - control characters are removed: C0 (including NUL, TAB, CR, LF), DEL and C1;
//   - leading and trailing spaces are trimmed (the wire cannot carry them);
//   - a value that then contains non-ASCII, or contains "=?" anywhere, is sent as RFC 2047
//     encoded-words "=?UTF-8?B?...?=" (base64 of UTF-8, at most 75 characters per word, words
//     separated by one space, never splitting a character). Decode it with
//     mime.WordDecoder.DecodeHeader. Because any "=?" forces encoding, a plain ASCII result
//     never looks like an encoded-word, so decoding is unambiguous.
//
// Printable ASCII that needs none of this is returned unchanged without allocating. The
// result contains only printable ASCII (0x20-0x7E), and never starts or ends with a space.
func EncodeValue(s string) string {
	if isPlainValue(s) {
		return s
	}
	s = strings.Trim(sanitize(s), " ")
	if s == "" || isPlainValue(s) {
		return s
	}
	return bEncode(s)
}

// isPlainValue reports whether s is printable ASCII without surrounding spaces and without
// "=?", so it can be sent as is.
func isPlainValue(s string) bool {
	if s == "" {
		return true
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return false
		}
		if c == '=' && i+1 < len(s) && s[i+1] == '?' {
			return false
		}
	}
	return true
}

// sanitize replaces invalid UTF-8 with U+FFFD and removes control characters (Cc: C0, DEL,
// C1). It returns s itself when there is nothing to change.
func sanitize(s string) string {
	clean := true
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || unicode.IsControl(r) {
			clean = false
			break
		}
		i += size
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case unicode.IsControl(r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

const (
	wordPrefix = "=?UTF-8?B?"
	wordSuffix = "?="
	// RFC 2047 §2: an encoded-word is at most 75 characters, so at most 63 characters of
	// base64 fit: 15 quanta (60 characters), which carry 45 bytes of UTF-8.
	maxWordChars = (75 - len(wordPrefix) - len(wordSuffix)) / 4 * 4
	maxWordBytes = maxWordChars / 4 * 3
)

// bEncode encodes valid UTF-8 s as RFC 2047 B encoded-words.
func bEncode(s string) string {
	var b strings.Builder
	words := len(s)/maxWordBytes + 1
	b.Grow(base64.StdEncoding.EncodedLen(len(s)) + words*(len(wordPrefix)+len(wordSuffix)+1))
	var buf [maxWordChars]byte
	for start := 0; start < len(s); {
		end := start
		for end < len(s) {
			_, size := utf8.DecodeRuneInString(s[end:])
			if end-start+size > maxWordBytes {
				break
			}
			end += size
		}
		if start > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(wordPrefix)
		n := base64.StdEncoding.EncodedLen(end - start)
		base64.StdEncoding.Encode(buf[:n], []byte(s[start:end]))
		b.Write(buf[:n])
		b.WriteString(wordSuffix)
		start = end
	}
	return b.String()
}

// IsManagedHeader reports whether name is a header trustgate owns: lowercased and with '_'
// read as '-', it starts with "x-auth-" or "x-trust-", or it is one of the mapped headers
// of m (which may be nil). Upstreams such as php_fastcgi and WSGI merge '_' and '-', and Go
// does not canonicalise '_', so every spelling counts. It does not allocate.
func IsManagedHeader(name string, m *Mappings) bool {
	return hasHeaderPrefix(name, "x-auth-") || hasHeaderPrefix(name, "x-trust-") || m.matches(name)
}

// hasHeaderPrefix compares name's start with a lowercase, '-'-separated prefix, ASCII case
// insensitively and with '_' equal to '-'.
func hasHeaderPrefix(name, prefix string) bool {
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// StripManaged deletes every managed header (IsManagedHeader with m, which may be nil) from
// h, in every spelling, with all its values, and takes their names out of the Connection
// header (a hop-by-hop name would make the proxy delete the gateway's own value). It returns
// the number of keys it deleted (plus one when Connection was cleaned). Call it on every
// request before setting the gateway's own headers, with the Mappings the headers were
// rendered with. It does not allocate unless Connection names a managed header.
func StripManaged(h http.Header, m *Mappings) (removed int) {
	for k := range h {
		if IsManagedHeader(k, m) {
			delete(h, k)
			removed++
		}
	}
	if conn, ok := h["Connection"]; ok && namesManaged(conn, m) {
		stripConnectionTokens(h, m)
		removed++
	}
	return removed
}

// namesManaged reports whether a Connection header names a managed header. A header named in
// Connection is hop-by-hop: a proxy (Caddy's reverse_proxy among them) deletes it before
// forwarding, so a client could name X-Trust-New-Device there to have the gateway's value
// removed on the way to the upstream. It does not allocate.
func namesManaged(conn []string, m *Mappings) bool {
	for _, v := range conn {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if IsManagedHeader(strings.TrimSpace(tok), m) {
				return true
			}
		}
	}
	return false
}

// stripConnectionTokens removes the managed header names from the Connection header,
// keeping its other tokens (close, keep-alive, Upgrade, ...).
func stripConnectionTokens(h http.Header, m *Mappings) {
	var out []string
	for _, v := range h["Connection"] {
		var keep []string
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if tok = strings.TrimSpace(tok); tok != "" && !IsManagedHeader(tok, m) {
				keep = append(keep, tok)
			}
		}
		if len(keep) > 0 {
			out = append(out, strings.Join(keep, ", "))
		}
	}
	if len(out) == 0 {
		delete(h, "Connection")
		return
	}
	h["Connection"] = out
}
