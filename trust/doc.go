// Package trust turns verified OpenID Connect claims into what the upstream application
// sees: a Profile (identity, assurance, the BindID trust profile and signals derived from
// it), the X-Auth-* and X-Trust-* request headers plus the operator's own mapped headers,
// and the values of Caddy placeholders.
//
// Everything here is a pure function of the claims. The package does no I/O, keeps no
// state, never reads the clock, never logs, and imports only the standard library.
//
// # Usage
//
//	// At provision, once: the operator's "header <Header-Name> <claim.path>" rules.
//	m, err := trust.CompileMappings([]trust.Mapping{{Header: "X-Employee-Id", Claim: "employee.id"}})
//	if err != nil {
//		return err // names the rule, e.g. header "X-Auth-Email": is a built-in header ...
//	}
//	opts := trust.Options{Mappings: m} // comparable: usable as a cache key
//
//	// At login, with the verified ID token claims merged with userinfo:
//	p := trust.NewProfile(claims, opts)
//	hs, dropped := p.Headers(opts) // render once, cache per session version
//	for _, d := range dropped {
//		// log d.Name, d.Reason ("value_too_long" or "total_too_large") and d.Bytes;
//		// Dropped never holds the value
//	}
//
//	// On every request, before the upstream sees it:
//	trust.StripManaged(r.Header, opts.Mappings) // forged managed headers, in any spelling
//	for _, h := range hs {
//		r.Header[h.Name] = []string{h.Value}
//	}
//
// # Managed headers
//
// A header belongs to trustgate (IsManagedHeader) when its name, lowercased and with '_'
// read as '-', starts with "x-auth-" or "x-trust-", or equals one of the mapped header
// names. StripManaged removes all of them from the client's request, whatever their case
// or separator (X-Auth-Email, x_auth_email, X-AUTH_EMAIL, x_employee_id, ...), before the
// gateway adds its own. So an upstream can trust these headers: when a claim is absent its
// header is absent, never the client's. This holds for every X-Auth-* and X-Trust-* name,
// also those standard_headers does not emit. Pass StripManaged the same *Mappings the
// headers were rendered with.
//
// # Header values
//
// Values go through EncodeValue: control characters (CR, LF, NUL, TAB, DEL, C1) are
// removed, invalid UTF-8 becomes U+FFFD, surrounding spaces are trimmed, and a value with
// non-ASCII characters (or containing "=?") is sent as RFC 2047 encoded-words in UTF-8 and
// base64, for example
//
//	X-Auth-Name: =?UTF-8?B?w4VzZSDDmHZyZWLDuA==?=
//
// which decodes to "Åse Øvrebø". Long values are split into several words separated by a
// space. Decode with Go's mime.WordDecoder.DecodeHeader, Python's email.header, PHP's
// iconv_mime_decode, or any RFC 2047 decoder. A value that does not start with "=?" is
// plain ASCII text and needs no decoding.
//
// Times are unix seconds; counts and day counts are decimal integers; booleans are "true"
// or "false"; lists are joined with ",", unless an element itself contains a comma, in
// which case the value is the list as a compact JSON array; objects are compact JSON with
// sorted keys, so a newline inside a string stays the two characters \n and the value
// parses back to the claim. A claim that is absent, null, or empty once cleaned sends no
// header.
//
// # Size limits
//
// Headers never cuts a value; it leaves a header out whole and reports it as a Dropped
// {Name, Reason, Bytes} (Bytes is the encoded value's length; the value is never
// reported), so the caller can log one clear line:
//
//   - Reason "value_too_long": the encoded value is longer than Options.MaxHeaderBytes
//     (default 4096).
//   - Reason "total_too_large": every emitted header counts len(name)+len(value)+4 (": "
//     and CRLF) against Options.MaxTotalHeaderBytes (default 16384). The first header that
//     would take the sum past it is dropped, and so is every header after it in emission
//     order, even a smaller one that would still fit. What is sent is therefore always a
//     prefix of the full rendering: the built-in identity headers first, mapped headers
//     last. A value that is itself too long is reported as value_too_long and costs
//     nothing.
//
// # Selecting the built-in headers
//
// Options.Standard (Caddyfile: standard_headers) picks which built-in headers are emitted;
// mapped headers are always emitted:
//
//	basic     X-Auth-Subject, X-Auth-User (only with user_claim), X-Auth-Email with
//	          X-Auth-Email-Verified (the flag only with an email), X-Auth-Alias,
//	          X-Auth-New-User (default; also the empty value)
//	identity  every X-Auth-* header (X-Auth-Groups included); no X-Trust-* header
//	all       every header in the reference below
//	none      no built-in header; only the mapped headers
//
// The default is basic: who the user is for the application, and nothing more of the
// person (data protection by default). Every forwarded header also costs each request in
// the proxy and the upstream (bench/RESULTS.md).
//
// ParseStandardHeaders checks a configured value. A value it rejects, if set anyway, emits
// no built-in header (never more than was asked for). Stripping is not affected: every
// X-Auth-* and X-Trust-* header is removed from client requests in every mode.
//
// # Mapping rules
//
// An operator adds headers with rules "header <Header-Name> <claim.path>" (Mapping,
// compiled once by CompileMappings). The claim path is looked up with LookupClaim: the
// top-level claim of exactly that name first (so "https://example.com/roles" works),
// otherwise dot-separated names into nested objects ("address.locality",
// "employee.dept.name"). Mapped headers come after the built-in ones, in rule order, and
// their values follow the rules above (ClaimString, then EncodeValue):
//
//	Claim value                            Header value
//	"E-4711"                               E-4711
//	4711, 1605180698                       4711, 1605180698 (never 1.605180698e+09)
//	0.5                                    0.5
//	true                                   true
//	["reader","writer"]                    reader,writer
//	["eng,admins","ops"]                   ["eng,admins","ops"]
//	{"street_address":"Veien 311"}         {"street_address":"Veien 311"}
//	"Åse Øvrebø"                           =?UTF-8?B?w4VzZSDDmHZyZWLDuA==?=
//	"42\r\nX-Admin: 1"                     42X-Admin: 1
//	absent, null, "" or only spaces        (no header)
//
// CompileMappings canonicalises the names (x-employee-id becomes X-Employee-Id) and
// rejects, naming the rule: an empty name; a name with anything but ASCII letters, digits
// and '-' ('_' is merged with '-' by CGI, PHP and WSGI, and nginx and Apache drop names
// with '_', '.' or other symbols); a built-in header name (the reference below; except
// X-Auth-User and X-Auth-Groups, which sites mapped themselves before they were built in:
// such a rule still works and replaces the built-in header); two rules
// for the same name in any spelling; an empty claim path; more than 64 rules; and names
// that would break the request or cross a security boundary: Host, Content-Length,
// Content-Type, Content-Encoding, Transfer-Encoding, Connection, Keep-Alive, Te, Trailer,
// Upgrade, Expect, Http2-Settings, Proxy-Connection, Via, Max-Forwards, Authorization,
// Proxy-Authorization, Proxy-Authenticate, Cookie, Set-Cookie, Forwarded, X-Real-Ip,
// X-Forwarded-*, and X-Auth-Assertion (the gateway's signed assertion). Every mapped name
// joins the strip list (Managed headers), so a client cannot pre-set it.
//
// # Header reference
//
// The examples come from the source documents' claim sets: the BindID userinfo of a known
// user (000), the BankID userinfo of Ola Normann (003), and a bank's userinfo with the
// claims its documentation names (004; here Åse Øvrebø). Headers are emitted in the order
// listed (HeaderNames).
//
// Identity and assurance (from the ID token and userinfo):
//
//	Header                 Source claim                           Example
//	X-Auth-Subject         sub                                    123e4567-e89b-12d3-a456-426652340000
//	X-Auth-User            Options.UserClaim (user_claim), a path  ola.normann (preferred_username); only with user_claim set
//	X-Auth-Issuer          iss                                    https://userinfo.current.bankid.no
//	X-Auth-Email           email                                  normann@example.org
//	X-Auth-Email-Verified  email_verified (true or "true")        true
//	X-Auth-Name            name, else given_name family_name      Ola Normann; Åse Øvrebø is =?UTF-8?B?w4VzZSDDmHZyZWLDuA==?=
//	X-Auth-Phone           phone_number, else msisdn              +12125556789 (000); 4795871775 (004, msisdn)
//	X-Auth-Phone-Verified  phone_number_verified (true or "true") true
//	X-Auth-Given-Name      given_name                             Ola; Åse is =?UTF-8?B?w4VzZQ==?=
//	X-Auth-Family-Name     family_name                            Normann; Øvrebø is =?UTF-8?B?w5h2cmViw7g=?=
//	X-Auth-Birthdate       birthdate, as sent                     110286 (003, DDMMYY); 1986-02-11 (004)
//	X-Auth-Personal-Id     personal_id_number                     11028600000
//	X-Auth-Address         address (object as JSON; string as is) {"formatted":"Veien 311\nOslo 0772","locality":"0772","postal_code":"Oslo","street_address":"Veien 311"}
//	X-Auth-Alias           Options.AliasClaim (bindid: bindid_alias) username@domain
//	X-Auth-New-User        alias claim configured, absent/empty   true  (only for a new user; never without an alias claim)
//	X-Auth-Acr             acr, surrounding spaces trimmed        ts.bindid.iac.phone_number
//	X-Auth-Amr             amr, joined with ","                   ts.bind_id.ama,ts.bind_id.mfca
//	X-Auth-Time            auth_time (unix seconds)               1605180698
//
// Groups (last of the built-in headers, so that a long list cannot push the ones above out
// of max_total_header_bytes; identity and all, not basic):
//
//	Header                 Source claim                           Example
//	X-Auth-Groups          Options.GroupsClaim (groups_claim, default groups; an array of strings or one string)  admins,eng (["admins","eng"]); realm_access.roles for Keycloak
//
// A string claim stands for itself; a number in a text claim (a phone number or personal
// id sent as a JSON number) is written as an integer; any other type is absent. In
// X-Auth-Address the "\n" is the two characters backslash and n, as in the JSON text; a
// non-ASCII address is RFC 2047-encoded as a whole. An address sent as a plain string
// loses its control characters (newlines included) like every value.
//
// BindID trust profile (bindid_info and bindid_network_info, seed 000):
//
//	Header                         Source claim                                                 Example
//	X-Trust-First-Login            bindid_info.capp_first_login                                 1605180504
//	X-Trust-Last-Login             bindid_info.capp_last_login                                  1605180577
//	X-Trust-First-Confirmed-Login  bindid_info.capp_first_confirmed_login                       1605180577
//	X-Trust-Device-First-Login     bindid_info.capp_first_login_from_authenticating_device      1605180500
//	X-Trust-Device-Last-Login      bindid_info.capp_last_login_from_authenticating_device       1605180574
//	X-Trust-Authenticating-Device  bindid_info.authenticating_device                            {"browser_type":"Mobile","browser_version":"Safari","os_type":"iOS","os_version":"14.1"}
//	X-Trust-Originating-Device     bindid_info.originating_device                               {"browser_type":"Chrome","browser_version":"86.0.4240.183","os_type":"Mac OS","os_version":"10.15.7"}
//	X-Trust-User-Registered        bindid_network_info.user_registration_time                   1605180498
//	X-Trust-Device-Registered      bindid_network_info.authenticating_device_registration_time  1605180500
//	X-Trust-Device-Last-Seen       bindid_network_info.authenticating_device_last_seen          1605180691
//	X-Trust-User-Last-Seen         bindid_network_info.user_last_seen                           1605180694
//	X-Trust-Confirmed-App-Count    bindid_network_info.confirmed_capp_count                     1
//	X-Trust-Device-Count           bindid_network_info.device_count                             2
//
// The device headers carry the device object as compact JSON with the keys browser_type,
// browser_version, os_type and os_version (sorted; absent ones left out). Times are unix
// seconds. A count of 0 is sent as "0"; an absent count sends no header.
//
// Derived trust signals (Profile.Derived). They are computed relative to the reference
// time R: the auth_time claim, else the iat claim (unix seconds). Never the wall clock: the
// same claims always give the same values, which stay fixed for the whole session. Without
// R, or without bindid_info and bindid_network_info, none of these headers is sent. Days
// are whole days, rounded down: floor((R - t) / 86400).
//
//	Header                         Definition                                                    Example (000)
//	X-Trust-New-Device             see below                                                     false
//	X-Trust-Account-Age-Days       floor((R - user_registration_time) / 86400)                   0
//	X-Trust-Device-Known-Since     earliest of the two device times below (unix seconds)         1605180500
//	X-Trust-Device-Age-Days        floor((R - X-Trust-Device-Known-Since) / 86400)               0
//	X-Trust-Days-Since-Last-Login  floor((R - capp_last_login) / 86400)                          0
//
// In detail:
//
//   - X-Trust-New-Device is "true" when bindid_info is present and either has no
//     capp_first_login_from_authenticating_device, or that time equals
//     capp_last_login_from_authenticating_device: this app has seen no earlier login from
//     the device. It is "false" when bindid_info is present otherwise, and absent without
//     bindid_info. Seed 000: first 1605180500 and last 1605180574 differ, so false.
//   - X-Trust-Account-Age-Days is absent when user_registration_time is absent or after R.
//     Seed 000: (1605180698 - 1605180498) / 86400 = 0.002, so 0; a user registered 400
//     days and one hour before R shows 400.
//   - X-Trust-Device-Known-Since is the earlier of
//     bindid_network_info.authenticating_device_registration_time and
//     bindid_info.capp_first_login_from_authenticating_device, whichever are present;
//     absent when both are. X-Trust-Device-Age-Days is absent when Known-Since is absent
//     or after R.
//   - X-Trust-Days-Since-Last-Login is absent when capp_last_login is absent or after R.
//
// Verification verdict (Options.Verification; the iddataweb provider profile names ID
// Dataweb's claims), sent as given, strings or integers:
//
//	Header                   Source claim (iddataweb)   Example
//	X-Trust-Policy-Decision  policyDecision             approve
//	X-Trust-Risk-Score       idwRiskScore               100
//	X-Trust-Trust-Score      idwTrustScore              100
//
// X-Auth-User is the claim at Options.UserClaim as text (a string, or a number as an
// integer); it is sent only when user_claim is configured (with the default, sub, it would
// repeat X-Auth-Subject) and is absent when that claim is. X-Auth-Groups joins the groups
// with "," and nothing else. A group value that contains a comma, a control character or
// invalid UTF-8 is left out whole (Profile.GroupsRefused counts it; the gateway logs the
// count with reason group_value_refused, never the value): it is never cut or escaped, so
// splitting the header on "," gives back exactly the groups that were sent. Non-string
// array elements and empty strings are skipped. A group list with non-ASCII is
// RFC 2047-encoded as a whole, like every value: decode first, then split. X-Auth-Groups
// is not in basic: group lists can be long (Entra ID sends up to 200 ids), each header
// costs every request, and existing basic sites keep sending what they sent before.
//
// The signed assertion header (X-Auth-Assertion) is documented with the assertion.
//
// # Placeholders
//
// Profile.Placeholders gives the values for Caddy's {http.auth.user.*} placeholders:
// "id" is the user claim (Options.UserClaim; sub when none is configured, and sub again
// when the configured claim is absent, so the access log's user_id is never empty),
// "groups" is the groups comma-joined exactly as in X-Auth-Groups (absent without groups),
// and every other top-level claim named [a-z0-9_]+ maps to its ClaimString value,
// e.g. {http.auth.user.email} or {http.auth.user.address} (compact JSON). These are raw
// UTF-8, not RFC 2047-encoded, with control characters removed.
package trust
