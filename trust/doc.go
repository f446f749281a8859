// Package trust turns verified OpenID Connect claims into what the upstream application
// sees: a Profile (identity, assurance and the BindID trust profile), the X-Auth-* and
// X-Trust-* request headers, and the values of Caddy placeholders.
//
// Everything here is a pure function of the claims. The package does no I/O, keeps no
// state, never logs, and imports only the standard library.
//
// # Usage
//
//	// At login, with the verified ID token claims merged with userinfo:
//	p := trust.NewProfile(claims, opts)
//	hs, dropped := p.Headers(opts) // render once, cache per session version
//	for _, name := range dropped {
//		// log: header value longer than opts.MaxHeaderBytes, not sent
//	}
//
//	// On every request, before the upstream sees it:
//	trust.StripManaged(r.Header) // forged X-Auth-* / X-Trust-* in any spelling
//	for _, h := range hs {
//		r.Header[h.Name] = []string{h.Value}
//	}
//
// # Managed headers
//
// Every header whose name, lowercased and with '_' read as '-', starts with "x-auth-" or
// "x-trust-" belongs to trustgate (IsManagedHeader). StripManaged removes all of them
// from the client's request, whatever their case or separator (X-Auth-Email,
// x_auth_email, X-AUTH_EMAIL, ...), before the gateway adds its own. So an upstream can
// trust these headers: when a claim is absent its header is absent, never the client's.
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
// A value longer than Options.MaxHeaderBytes (default 4096) after encoding is not sent at
// all (never truncated), and Headers reports its name. Times are unix seconds; counts are
// decimal integers; booleans are "true" or "false"; lists are joined with ",", unless an
// element itself contains a comma, in which case the value is the list as a compact JSON
// array; objects are compact JSON with sorted keys.
//
// # Header reference
//
// Identity and assurance (from the ID token and userinfo):
//
//	Header                 Source claim                       Example
//	X-Auth-Subject         sub                                123e4567-e89b-12d3-a456-426652340000
//	X-Auth-Issuer          iss                                https://userinfo.current.bankid.no
//	X-Auth-Email           email                              normann@example.org
//	X-Auth-Email-Verified  email_verified (true or "true")    true
//	X-Auth-Name            name, else given_name family_name  Ola Normann
//	X-Auth-Phone           phone_number, else msisdn          +12125556789
//	X-Auth-Alias           bindid_alias (Options.AliasClaim)  username@domain
//	X-Auth-New-User        alias claim absent or empty        true  (only sent for a new user)
//	X-Auth-Acr             acr, surrounding spaces trimmed    ts.bindid.iac.phone_number
//	X-Auth-Amr             amr, joined with ","               ts.bind_id.ama,ts.bind_id.mfca
//	X-Auth-Time            auth_time (unix seconds)           1605180698
//
// BindID trust profile (bindid_info and bindid_network_info):
//
//	Header                         Source claim                                             Example
//	X-Trust-First-Login            bindid_info.capp_first_login                             1605180504
//	X-Trust-Last-Login             bindid_info.capp_last_login                              1605180577
//	X-Trust-First-Confirmed-Login  bindid_info.capp_first_confirmed_login                   1605180577
//	X-Trust-Device-First-Login     bindid_info.capp_first_login_from_authenticating_device  1605180500
//	X-Trust-Device-Last-Login      bindid_info.capp_last_login_from_authenticating_device   1605180574
//	X-Trust-Authenticating-Device  bindid_info.authenticating_device                        {"browser_type":"Mobile","browser_version":"Safari","os_type":"iOS","os_version":"14.1"}
//	X-Trust-Originating-Device     bindid_info.originating_device                           {"browser_type":"Chrome","browser_version":"86.0.4240.183","os_type":"Mac OS","os_version":"10.15.7"}
//	X-Trust-User-Registered        bindid_network_info.user_registration_time               1605180498
//	X-Trust-Device-Registered      bindid_network_info.authenticating_device_registration_time  1605180500
//	X-Trust-Device-Last-Seen       bindid_network_info.authenticating_device_last_seen      1605180691
//	X-Trust-User-Last-Seen         bindid_network_info.user_last_seen                       1605180694
//	X-Trust-Confirmed-App-Count    bindid_network_info.confirmed_capp_count                 1
//	X-Trust-Device-Count           bindid_network_info.device_count                         2
//
// The device headers carry the device object as compact JSON with the keys browser_type,
// browser_version, os_type and os_version (sorted; absent ones left out). Times are unix
// seconds. A count of 0 is sent as "0"; an absent count sends no header.
//
// # Placeholders
//
// Profile.Placeholders gives the values for Caddy's {http.auth.user.*} placeholders:
// "id" is sub, and every top-level claim named [a-z0-9_]+ maps to its ClaimString value,
// e.g. {http.auth.user.email} or {http.auth.user.address} (compact JSON). These are raw
// UTF-8, not RFC 2047-encoded, with control characters removed.
package trust
