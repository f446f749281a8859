package trust

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Defaults for Options.
const (
	// BindIDAliasClaim is the claim in which BindID names the user's account alias
	// (shared/seeds/000); the bindid provider profile sets it as Options.AliasClaim.
	BindIDAliasClaim = "bindid_alias"
	// DefaultMaxHeaderBytes is the largest header value Headers emits.
	DefaultMaxHeaderBytes = 4096
	// DefaultMaxTotalHeaderBytes bounds the size of all headers Headers emits together.
	DefaultMaxTotalHeaderBytes = 16384
	// DefaultUserClaim is the claim that names the user when Options.UserClaim is empty.
	DefaultUserClaim = "sub"
	// DefaultGroupsClaim is the claim that lists the user's groups when
	// Options.GroupsClaim is empty.
	DefaultGroupsClaim = "groups"
)

// Options tune how claims become a Profile and headers. The zero value is ready to use.
//
// Options is comparable with ==, so a caller can key a cache of renderings by it: it holds
// no slices or maps, and Mappings is compared by pointer (compile the rules once).
type Options struct {
	// AliasClaim is the claim holding the user's alias in the application; when it is
	// absent or empty the user is new (Profile.NewUser). "" (the default) means the provider
	// has no such claim: no alias, and no user is ever reported as new.
	AliasClaim string
	// Verification names the claims of the provider's identity-verification verdict (ID
	// Dataweb: policyDecision, idwRiskScore, idwTrustScore). Zero: none.
	Verification VerificationClaims
	// MaxHeaderBytes bounds each header value as sent (after encoding). Longer values are
	// dropped, never cut, and reported by Headers. Default: 4096.
	MaxHeaderBytes int
	// MaxTotalHeaderBytes bounds all emitted headers together, counted as
	// len(name)+len(value)+4 each (": " and CRLF). The first header that does not fit and
	// every header after it are dropped and reported. Default: 16384.
	MaxTotalHeaderBytes int
	// Standard selects which built-in headers Headers emits: StandardBasic (also ""),
	// StandardIdentity, StandardAll or StandardNone. Default: basic.
	Standard StandardHeaders
	// Mappings are the operator's own header rules (CompileMappings), emitted after the
	// built-in headers and stripped from client requests like them. nil: none.
	Mappings *Mappings
	// UserClaim is the path (LookupClaim) of the claim that names the user for the
	// application, e.g. "preferred_username" or "email": Profile.User, X-Auth-User and the
	// "id" placeholder. "" (the default) means sub for the placeholder and no X-Auth-User
	// (it would repeat X-Auth-Subject). When the claim is absent, X-Auth-User is absent and
	// the placeholder falls back to sub.
	UserClaim string
	// GroupsClaim is the path (LookupClaim) of the claim that lists the user's groups:
	// Profile.Groups, X-Auth-Groups, the "groups" placeholder and Policy.Groups, e.g.
	// "roles" (Entra ID app roles) or "realm_access.roles" (Keycloak). Default: groups.
	GroupsClaim string
}

// VerificationClaims names the claims in which a provider reports its verdict on the
// user's identity verification. An empty name is not read.
type VerificationClaims struct {
	Decision   string // e.g. policyDecision: "approve" or "deny"
	RiskScore  string // e.g. idwRiskScore
	TrustScore string // e.g. idwTrustScore
}

func (o Options) groupsClaim() string {
	if o.GroupsClaim == "" {
		return DefaultGroupsClaim
	}
	return o.GroupsClaim
}

func (o Options) maxHeaderBytes() int {
	if o.MaxHeaderBytes <= 0 {
		return DefaultMaxHeaderBytes
	}
	return o.MaxHeaderBytes
}

func (o Options) maxTotalHeaderBytes() int {
	if o.MaxTotalHeaderBytes <= 0 {
		return DefaultMaxTotalHeaderBytes
	}
	return o.MaxTotalHeaderBytes
}

// Profile is what trustgate knows about the signed-in user, built from verified claims.
// Its JSON form is the /.trustgate/me document; it never holds a token.
type Profile struct {
	Subject       string         `json:"sub"`
	User          string         `json:"user,omitempty"` // the claim at Options.UserClaim as text; "" when absent or no UserClaim is configured
	Issuer        string         `json:"iss"`
	Email         string         `json:"email,omitempty"`
	EmailVerified *bool          `json:"email_verified,omitempty"` // bool, or the strings "true"/"false"; anything else is nil
	Name          string         `json:"name,omitempty"`           // name, else given_name + " " + family_name
	Phone         string         `json:"phone_number,omitempty"`   // phone_number, else msisdn
	PhoneVerified *bool          `json:"phone_number_verified,omitempty"`
	GivenName     string         `json:"given_name,omitempty"`
	FamilyName    string         `json:"family_name,omitempty"`
	Birthdate     string         `json:"birthdate,omitempty"`          // as sent: "1986-02-11", or "110286" (BankID)
	PersonalID    string         `json:"personal_id_number,omitempty"` // national identity number (bank OPs)
	Address       string         `json:"address,omitempty"`            // an object as compact JSON with sorted keys, a string as is
	Alias         string         `json:"alias,omitempty"`
	NewUser       bool           `json:"new_user"` // an alias claim is configured and absent or empty
	ACR           string         `json:"acr,omitempty"`
	AMR           []string       `json:"amr,omitempty"`
	AuthTime      int64          `json:"auth_time,omitempty"`    // unix seconds
	BindID        *BindID        `json:"bindid,omitempty"`       // nil when neither bindid_info nor bindid_network_info is present
	Derived       *Derived       `json:"derived,omitempty"`      // signals computed from BindID; nil without BindID or a reference time
	Verification  *Verification  `json:"verification,omitempty"` // the provider's verification verdict; nil when none is configured or sent
	Groups        []string       `json:"groups,omitempty"`       // the groups at Options.GroupsClaim (default groups), refused values left out (see GroupsRefused)
	GroupsRefused int            `json:"-"`                      // group values left out of Groups (comma, control character, invalid UTF-8); log the count, never the values
	Claims        map[string]any `json:"claims"`                 // every verified claim (a shallow copy of the input)
}

// Verification is a provider's verdict on the user's identity verification (ID Dataweb's
// policyDecision with its risk and trust scores), as sent: strings, numbers as integers.
type Verification struct {
	Decision   string `json:"decision,omitempty"`
	RiskScore  string `json:"risk_score,omitempty"`
	TrustScore string `json:"trust_score,omitempty"`
}

// BindID holds the BindID trust profile: the bindid_info and bindid_network_info claims.
// Times are unix seconds; zero means the claim was absent. Counts are pointers because
// zero is a real count; nil means absent.
type BindID struct {
	// From bindid_info.
	FirstLogin           int64   `json:"capp_first_login,omitempty"`
	LastLogin            int64   `json:"capp_last_login,omitempty"`
	FirstConfirmedLogin  int64   `json:"capp_first_confirmed_login,omitempty"`
	DeviceFirstLogin     int64   `json:"capp_first_login_from_authenticating_device,omitempty"`
	DeviceLastLogin      int64   `json:"capp_last_login_from_authenticating_device,omitempty"`
	AuthenticatingDevice *Device `json:"authenticating_device,omitempty"`
	OriginatingDevice    *Device `json:"originating_device,omitempty"`

	// From bindid_network_info.
	UserRegistered    int64  `json:"user_registration_time,omitempty"`
	DeviceRegistered  int64  `json:"authenticating_device_registration_time,omitempty"`
	DeviceLastSeen    int64  `json:"authenticating_device_last_seen,omitempty"`
	UserLastSeen      int64  `json:"user_last_seen,omitempty"`
	ConfirmedAppCount *int64 `json:"confirmed_capp_count,omitempty"`
	DeviceCount       *int64 `json:"device_count,omitempty"`
}

// Device describes a device in bindid_info. Fields are in JSON key order so that
// json.Marshal yields sorted keys.
type Device struct {
	BrowserType    string `json:"browser_type,omitempty"`
	BrowserVersion string `json:"browser_version,omitempty"`
	OSType         string `json:"os_type,omitempty"`
	OSVersion      string `json:"os_version,omitempty"`
}

// NewProfile builds a Profile from verified claims (ID token merged with userinfo). Claims
// of an unexpected type are treated as absent. The claims map itself is copied (shallowly),
// so later changes to it do not affect the Profile.
func NewProfile(claims map[string]any, opts Options) *Profile {
	p := &Profile{Claims: make(map[string]any, len(claims))}
	for k, v := range claims {
		p.Claims[k] = v
	}
	p.Subject = textClaim(claims["sub"])
	p.Issuer = textClaim(claims["iss"])
	p.Email = textClaim(claims["email"])
	p.EmailVerified = boolClaim(claims["email_verified"])
	p.Name = textClaim(claims["name"])
	if p.Name == "" {
		p.Name = strings.TrimSpace(textClaim(claims["given_name"]) + " " + textClaim(claims["family_name"]))
	}
	p.Phone = textClaim(claims["phone_number"])
	if p.Phone == "" {
		p.Phone = textClaim(claims["msisdn"])
	}
	p.PhoneVerified = boolClaim(claims["phone_number_verified"])
	p.GivenName = textClaim(claims["given_name"])
	p.FamilyName = textClaim(claims["family_name"])
	p.Birthdate = textClaim(claims["birthdate"])
	p.PersonalID = textClaim(claims["personal_id_number"])
	p.Address = addressClaim(claims["address"])
	if opts.AliasClaim != "" {
		p.Alias = textClaim(claims[opts.AliasClaim])
		p.NewUser = p.Alias == ""
	}
	p.ACR = strings.TrimSpace(textClaim(claims["acr"]))
	p.AMR = stringsClaim(claims["amr"])
	p.AuthTime = unixClaim(claims["auth_time"])
	p.BindID = newBindID(claims)
	p.Derived = newDerived(claims, p)
	p.Verification = newVerification(claims, opts.Verification)
	if opts.UserClaim != "" {
		// Only when configured: with the default (sub) X-Auth-User and "user" would only
		// repeat the subject, and existing sites keep exactly the headers they had.
		if v, ok := LookupClaim(claims, opts.UserClaim); ok {
			p.User = textClaim(v)
		}
	}
	p.Groups, p.GroupsRefused = groupsClaim(claims, opts.groupsClaim())
	return p
}

// groupsClaim reads the groups at path: an array of strings or a single string (one
// group). Empty strings and non-string array elements are skipped. A value with a comma, a
// control character or invalid UTF-8 is refused: left out whole (never cut or escaped, so
// a refused "admins,x" can never read as "admins" in the comma-joined header) and counted.
func groupsClaim(claims map[string]any, path string) (groups []string, refused int) {
	v, ok := LookupClaim(claims, path)
	if !ok {
		return nil, 0
	}
	take := func(s string) {
		switch {
		case s == "":
		case !validGroup(s):
			refused++
		default:
			groups = append(groups, s)
		}
	}
	switch v := v.(type) {
	case string:
		take(v)
	case []string:
		for _, s := range v {
			take(s)
		}
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				take(s)
			}
		}
	}
	return groups, refused
}

// validGroup reports whether s can be one element of the comma-joined groups: valid UTF-8
// without a comma or a control character.
func validGroup(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == ',' || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func newVerification(claims map[string]any, names VerificationClaims) *Verification {
	read := func(name string) string {
		if name == "" {
			return ""
		}
		return textClaim(claims[name])
	}
	v := Verification{Decision: read(names.Decision), RiskScore: read(names.RiskScore), TrustScore: read(names.TrustScore)}
	if v == (Verification{}) {
		return nil
	}
	return &v
}

// addressClaim renders the OIDC address claim: a JSON object as compact JSON with sorted
// keys (so "Veien 311\nOslo 0772" keeps its newline as the two characters \n), a string as
// is. An empty object and anything else are absent.
func addressClaim(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		if len(v) == 0 {
			return ""
		}
		s, _ := compactJSON(v)
		return s
	}
	return ""
}

func newBindID(claims map[string]any) *BindID {
	info, okInfo := claims["bindid_info"].(map[string]any)
	network, okNetwork := claims["bindid_network_info"].(map[string]any)
	if !okInfo && !okNetwork {
		return nil
	}
	// A nil map reads as empty, so a missing half simply leaves its fields zero.
	return &BindID{
		FirstLogin:           unixClaim(info["capp_first_login"]),
		LastLogin:            unixClaim(info["capp_last_login"]),
		FirstConfirmedLogin:  unixClaim(info["capp_first_confirmed_login"]),
		DeviceFirstLogin:     unixClaim(info["capp_first_login_from_authenticating_device"]),
		DeviceLastLogin:      unixClaim(info["capp_last_login_from_authenticating_device"]),
		AuthenticatingDevice: deviceClaim(info["authenticating_device"]),
		OriginatingDevice:    deviceClaim(info["originating_device"]),
		UserRegistered:       unixClaim(network["user_registration_time"]),
		DeviceRegistered:     unixClaim(network["authenticating_device_registration_time"]),
		DeviceLastSeen:       unixClaim(network["authenticating_device_last_seen"]),
		UserLastSeen:         unixClaim(network["user_last_seen"]),
		ConfirmedAppCount:    countClaim(network["confirmed_capp_count"]),
		DeviceCount:          countClaim(network["device_count"]),
	}
}

func deviceClaim(v any) *Device {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	d := &Device{
		BrowserType:    textClaim(m["browser_type"]),
		BrowserVersion: textClaim(m["browser_version"]),
		OSType:         textClaim(m["os_type"]),
		OSVersion:      textClaim(m["os_version"]),
	}
	if *d == (Device{}) {
		return nil
	}
	return d
}

// textClaim returns a string claim, or a number rendered as text (some OPs send phone
// numbers or ids as JSON numbers). Anything else is absent ("").
func textClaim(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64, float32, json.Number, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		s, _ := ClaimString(v)
		return s
	}
	return ""
}

// boolClaim accepts a JSON boolean or exactly the strings "true" and "false".
func boolClaim(v any) *bool {
	var b bool
	switch v := v.(type) {
	case bool:
		b = v
	case string:
		switch v {
		case "true":
			b = true
		case "false":
			b = false
		default:
			return nil
		}
	default:
		return nil
	}
	return &b
}

// stringsClaim accepts an array of strings (non-string and empty elements are skipped)
// or a single non-empty string.
func stringsClaim(v any) []string {
	var out []string
	switch v := v.(type) {
	case string:
		if v != "" {
			out = []string{v}
		}
	case []string:
		for _, s := range v {
			if s != "" {
				out = append(out, s)
			}
		}
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// unixClaim reads a positive unix time in seconds. Fractions are truncated; non-positive,
// non-finite and non-numeric values are absent (0). A string of decimal digits is accepted.
func unixClaim(v any) int64 {
	n, ok := int64Claim(v)
	if !ok || n <= 0 {
		return 0
	}
	return n
}

// countClaim reads a non-negative count; nil when absent or not a number.
func countClaim(v any) *int64 {
	n, ok := int64Claim(v)
	if !ok || n < 0 {
		return nil
	}
	return &n
}

func int64Claim(v any) (int64, bool) {
	switch v := v.(type) {
	case float64:
		return floatToInt64(v)
	case float32:
		return floatToInt64(float64(v))
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n, true
		}
		f, err := v.Float64()
		if err != nil {
			return 0, false
		}
		return floatToInt64(f)
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	case int:
		return int64(v), true
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case uint:
		return uintToInt64(uint64(v))
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint64:
		return uintToInt64(v)
	}
	return 0, false
}

func floatToInt64(f float64) (int64, bool) {
	// 2^63 is exactly representable; anything at or beyond it does not fit.
	if math.IsNaN(f) || f >= 1<<63 || f < -(1<<63) {
		return 0, false
	}
	return int64(math.Trunc(f)), true
}

func uintToInt64(u uint64) (int64, bool) {
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}
