package oidctest

import (
	"net/url"
	"slices"
	"strings"
)

// Default client credentials (DefaultClient).
const (
	DefaultClientID     = "trustgate"
	DefaultClientSecret = "trustgate-dev-secret"
)

// Values the fault switches put into tokens, so tests can assert on them.
const (
	// OtherClientID is the foreign audience / azp used by the audience faults.
	OtherClientID = "other-client"
	// WrongIssuer is the iss used by IDTokenWrongIssuer, UserinfoJWTWrongIssuer and
	// AuthorizeWrongIssuer.
	WrongIssuer = "https://wrong-issuer.example"
)

// Subjects of DefaultUsers. Their labels are "bindid-known", "bindid-new", "ola", "ase",
// "kari", "andrew", "idw-deny" and "idw-none".
const (
	SubjectBindIDKnown = "123e4567-e89b-12d3-a456-426652340000" // seed 000, bindid_alias present
	SubjectBindIDNew   = "123e4567-e89b-12d3-a456-426652340001" // seed 000 shape, no bindid_alias
	SubjectOla         = "9578-6000-4-00001"                    // seed 003, signed userinfo
	SubjectAse         = "ase-0001"                             // non-ASCII name, JSON userinfo
	SubjectKari        = "bank-0001"                            // seed 004 bank claims, signed userinfo
	SubjectAndrew      = "idw-0001"                             // seed 002 account record Andrew Roshell, no bindid_alias
	SubjectIDWDeny     = "idw-0002"                             // ID Dataweb login with policyDecision deny
	SubjectIDWNone     = "idw-0003"                             // ID Dataweb-shaped login without policyDecision
)

// Client is a registered relying party.
type Client struct {
	ID, Secret string
	// RedirectURIs are compared exactly. The entry "*" allows any loopback http(s) URL
	// (localhost, *.localhost, 127.0.0.0/8, [::1]) without userinfo or fragment.
	RedirectURIs []string
	// SignedUserinfo makes /userinfo answer application/jwt for this client
	// (userinfo_signed_response_alg).
	SignedUserinfo bool
	// PostLogoutRedirectURIs are the allowed post_logout_redirect_uri values, matched like
	// RedirectURIs.
	PostLogoutRedirectURIs []string
}

// User is an end user shown on the login page.
type User struct {
	Subject string
	// Label is shown on the login page; SetAutoLogin also accepts it.
	Label string
	// IDTokenClaims are added to the ID token (acr, amr, bindid_alias, ...). They cannot
	// override the protocol claims iss, sub, aud, azp, exp, iat, nonce and at_hash. auth_time
	// defaults to the login time; set it here to override.
	IDTokenClaims map[string]any
	// UserinfoClaims are returned by /userinfo. sub is always the user's subject. If the map
	// has the keys auth_time or nonce (the BindID userinfo of seed 000 has both), their values
	// are replaced by the login's auth time and nonce (nonce is removed when the login had
	// none).
	UserinfoClaims map[string]any
	// SignedUserinfo makes this user's userinfo a signed JWT whatever the client asks (BankID
	// style).
	SignedUserinfo bool
	// ACRLevels are the acr values this user can authenticate at (a step-up OP). When an
	// authorization request carries acr_values, the ID token's acr is the first requested
	// value in this list; when none is, the user's own acr (IDTokenClaims) is kept.
	ACRLevels []string
	// HighRisk marks the session risk of this user's logins as high: an identity-binding
	// request is denied before any profile matching, as seed 002's Session Risk step does
	// (ID Dataweb's format: policyDecision deny in the ID token; trustgate's generic JWT:
	// access_denied "high risk"). Other logins are not affected.
	HighRisk bool
}

// reachedACR is the acr a login reaches for the space-separated acr_values, or "".
func (u User) reachedACR(acrValues string) string {
	for _, v := range strings.Fields(acrValues) {
		if slices.Contains(u.ACRLevels, v) {
			return v
		}
	}
	return ""
}

// DefaultClient is the client used when Options.Clients is empty: ID "trustgate", secret
// "trustgate-dev-secret", any loopback redirect and post-logout redirect URI.
//
// The secret is 20 bytes, shorter than the 32 bytes RFC 7518 requires for an HS256 key, so
// JOSE libraries refuse it as an HMAC key; register a client with a longer secret to test
// HS256 handling where the key size must not be the reason for a rejection.
func DefaultClient() Client {
	return Client{
		ID:                     DefaultClientID,
		Secret:                 DefaultClientSecret,
		RedirectURIs:           []string{"*"},
		PostLogoutRedirectURIs: []string{"*"},
	}
}

// DefaultUsers returns fresh copies of the built-in users, in login-page order:
//
//   - "bindid-known" (SubjectBindIDKnown): the BindID user of seed 000 — acr (with the seed's
//     leading space), amr, bindid_alias "username@domain", email, phone and the full
//     bindid_info and bindid_network_info, in the ID token and in JSON userinfo.
//   - "bindid-new" (SubjectBindIDNew): the same shape without bindid_alias (a user new to
//     BindID).
//   - "ola" (SubjectOla): the BankID user Ola Normann of seed 003; userinfo is always a
//     signed JWT (RS256 or ES256, with kid). The address is kept exactly as in the seed
//     (which has locality and postal_code swapped), as is updated_at (milliseconds).
//   - "ase" (SubjectAse): "Åse Øvrebø", non-ASCII names in the ID token and JSON userinfo.
//   - "kari" (SubjectKari): a bank customer with the claims seed 004 names (given_name,
//     family_name, personal_id_number, birthdate, email, msisdn); userinfo is a signed JWT.
//     The values are made up (the seed names the claims only).
//   - "andrew" (SubjectAndrew): Andrew Roshell, the account record of seed 002's test table,
//     for identity binding: name, given_name, family_name, a made-up phone_number
//     (+15555550100) and email, verified, in the ID token and JSON userinfo; no
//     bindid_alias, so he is also a new user for session feedback. His ID token also carries
//     ID Dataweb's verdict of a plain login: policyDecision "approve", idwRiskScore and
//     idwTrustScore "100" (and a jti); an identity binding replaces the verdict with the
//     binding's.
//   - "idw-deny" (SubjectIDWDeny): Dana Deny, an ID Dataweb login the Gateway denied
//     (policyDecision "deny", scores "0").
//   - "idw-none" (SubjectIDWNone): Nora None, an ID Dataweb-shaped user whose ID token has
//     no policyDecision at all.
func DefaultUsers() []User {
	known := bindIDClaims(true)
	knownUI := bindIDClaims(true)
	knownUI["auth_time"] = int64(1605180698) // replaced by the login time
	knownUI["nonce"] = "n-077-RsA2Kh"        // replaced by the login nonce
	fresh := bindIDClaims(false)
	freshUI := bindIDClaims(false)
	freshUI["auth_time"] = int64(1605180698)
	freshUI["nonce"] = "n-077-RsA2Kh"
	ase := map[string]any{
		"name":           "Åse Øvrebø",
		"given_name":     "Åse",
		"family_name":    "Øvrebø",
		"email":          "ase@example.org",
		"email_verified": true,
	}
	return []User{
		// The known user can also authenticate at the BankID level when asked (step-up).
		{Subject: SubjectBindIDKnown, Label: "bindid-known", IDTokenClaims: known, UserinfoClaims: knownUI, ACRLevels: []string{"urn:bankid:bid"}},
		{Subject: SubjectBindIDNew, Label: "bindid-new", IDTokenClaims: fresh, UserinfoClaims: freshUI},
		{
			Subject: SubjectOla, Label: "ola",
			IDTokenClaims: map[string]any{},
			UserinfoClaims: map[string]any{
				"name":         "Ola Normann",
				"given_name":   "Ola",
				"family_name":  "Normann",
				"updated_at":   int64(1519992419860),
				"email":        "normann@example.org",
				"birthdate":    "110286",
				"phone_number": "95871775",
				"address": map[string]any{
					"formatted":      "Veien 311\nOslo 0772",
					"street_address": "Veien 311",
					"locality":       "0772",
					"postal_code":    "Oslo",
				},
			},
			SignedUserinfo: true,
		},
		{Subject: SubjectAse, Label: "ase", IDTokenClaims: ase, UserinfoClaims: cloneMap(ase)},
		{
			Subject: SubjectKari, Label: "kari",
			IDTokenClaims:  map[string]any{},
			UserinfoClaims: kariClaims(),
			SignedUserinfo: true,
		},
		{Subject: SubjectAndrew, Label: "andrew", IDTokenClaims: idwVerdict(andrewClaims(), DecisionApprove), UserinfoClaims: andrewClaims()},
		{Subject: SubjectIDWDeny, Label: "idw-deny", IDTokenClaims: idwVerdict(idwPerson("Dana", "Deny", "+15555550111"), DecisionDeny), UserinfoClaims: idwPerson("Dana", "Deny", "+15555550111")},
		{Subject: SubjectIDWNone, Label: "idw-none", IDTokenClaims: idwPerson("Nora", "None", "+15555550122"), UserinfoClaims: idwPerson("Nora", "None", "+15555550122")},
	}
}

// andrewClaims are the profile of seed 002's test account record, Andrew Roshell; the phone
// number (a 555-01xx fictional number) and the e-mail address are made up.
func andrewClaims() map[string]any {
	return map[string]any{
		"name":                  "Andrew Roshell",
		"given_name":            "Andrew",
		"family_name":           "Roshell",
		"email":                 "andrew.roshell@example.org",
		"email_verified":        true,
		"phone_number":          "+15555550100",
		"phone_number_verified": true,
	}
}

// idwVerdict adds ID Dataweb's verdict claims (policyDecision, idwRiskScore,
// idwTrustScore) to an ID token's claims.
func idwVerdict(c map[string]any, decision string) map[string]any {
	c[ClaimPolicyDecision] = decision
	c[ClaimRiskScore], c[ClaimTrustScore] = idwScores(decision)
	return c
}

// idwPerson is a made-up ID Dataweb user's profile.
func idwPerson(given, family, phone string) map[string]any {
	return map[string]any{
		"name":                  given + " " + family,
		"given_name":            given,
		"family_name":           family,
		"email":                 strings.ToLower(given+"."+family) + "@example.org",
		"email_verified":        true,
		"phone_number":          phone,
		"phone_number_verified": true,
	}
}

// kariClaims are the bank userinfo claims of seed 004, with made-up values.
func kariClaims() map[string]any {
	return map[string]any{
		"given_name":         "Kari",
		"family_name":        "Nordmann",
		"personal_id_number": "01017012345",
		"birthdate":          "1970-01-01",
		"email":              "kari.nordmann@example.org",
		"msisdn":             "4791234567",
	}
}

// bindIDClaims is the claim set of seed 000 without the per-login claims (sub, auth_time,
// nonce), with or without bindid_alias.
func bindIDClaims(withAlias bool) map[string]any {
	c := map[string]any{
		"acr":                   " ts.bindid.iac.phone_number",
		"amr":                   []any{"ts.bind_id.ama", "ts.bind_id.mfca"},
		"email":                 "",
		"email_verified":        true,
		"phone_number":          "+12125556789",
		"phone_number_verified": true,
		"bindid_info": map[string]any{
			"capp_first_login_from_authenticating_device": int64(1605180500),
			"authenticating_device": map[string]any{
				"browser_type":    "Mobile",
				"os_type":         "iOS",
				"os_version":      "14.1",
				"browser_version": "Safari",
			},
			"capp_last_login_from_authenticating_device": int64(1605180574),
			"capp_last_login":            int64(1605180577),
			"capp_first_login":           int64(1605180504),
			"capp_first_confirmed_login": int64(1605180577),
			"originating_device": map[string]any{
				"browser_type":    "Chrome",
				"os_type":         "Mac OS",
				"os_version":      "10.15.7",
				"browser_version": "86.0.4240.183",
			},
		},
		"bindid_network_info": map[string]any{
			"user_registration_time":                  int64(1605180498),
			"authenticating_device_registration_time": int64(1605180500),
			"authenticating_device_last_seen":         int64(1605180691),
			"user_last_seen":                          int64(1605180694),
			"confirmed_capp_count":                    int64(1),
			"device_count":                            int64(2),
		},
	}
	if withAlias {
		c["bindid_alias"] = "username@domain"
	}
	return c
}

func (c Client) clone() Client {
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
	return c
}

func (u User) clone() User {
	u.IDTokenClaims = cloneMap(u.IDTokenClaims)
	u.UserinfoClaims = cloneMap(u.UserinfoClaims)
	return u
}

// allowedURI reports whether uri matches one of the registered entries: exactly, or, for
// "*", any loopback http(s) URL.
func allowedURI(registered []string, uri string) bool {
	for _, r := range registered {
		if r == uri || (r == "*" && isLoopbackURL(uri)) {
			return true
		}
	}
	return false
}

func isLoopbackURL(s string) bool {
	if strings.ContainsAny(s, "\\ \t\r\n") {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return false
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return false
	}
	return u.Host != "" && isLoopbackHost(u.Hostname())
}

// cloneMap deep-copies JSON-like values so that callers (and MutateIDToken) can change the
// result freely.
func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	case []string:
		return slices.Clone(x)
	case []map[string]any:
		out := make([]map[string]any, len(x))
		for i, e := range x {
			out[i] = cloneMap(e)
		}
		return out
	default:
		return v
	}
}
