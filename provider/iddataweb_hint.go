package provider

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
)

// ID Dataweb's login_hint (prefill) for identity binding (shared/seeds/002, "How Account
// Data Gets Prefilled": Login Hint; ID Dataweb's Gateway documentation): a JWT signed HS256
// with the client secret, or that JWT encrypted to ID Dataweb's key, carrying the account's
// profile in ID Dataweb's own field names.
//
// The application names the profile in a JSON object (X-Auth-Bind, base64url). It may use
// OpenID Connect standard claim names or ID Dataweb's own names, mixed as it likes; a field
// given twice under both names must have the same value. The mapping:
//
//	| application (OIDC claim)          | ID Dataweb field                 | shape                                   |
//	|-----------------------------------|----------------------------------|-----------------------------------------|
//	| given_name                        | fname                            | text                                    |
//	| middle_name                       | mname                            | text                                    |
//	| family_name                       | lname                            | text                                    |
//	| email                             | email                            | an e-mail address                       |
//	| phone_number (E.164)              | dialCode + telephone             | +12125556789 -> "1" + "2125556789"      |
//	| birthdate (YYYY-MM-DD)            | dobyear + dobmonth + dobday      | 1970-04-09 -> "1970", "04", "09"        |
//	| address.street_address            | street_number + route            | "12 Main St" -> "12" + "Main St"; a     |
//	|                                   | (+ subpremise)                   | second line becomes subpremise          |
//	| address.locality                  | locality                         | text                                    |
//	| address.region                    | administrative_area_level_1      | text                                    |
//	| address.postal_code               | postal_code                      | text                                    |
//	| address.country                   | country                          | ISO 3166-1 alpha-2 ("US")               |
//	| —                                 | ssn4, ssn9                       | 4 / 9 digits (ssn9 may be ddd-dd-dddd); |
//	|                                   |                                  | only with login_hint_encryption_key     |
//	| (set by the gateway)              | sub, iat, exp                    | the session's subject; exp = iat + 5 min|
//
// ID Dataweb's own names are accepted as they are: fname, mname, lname, email, dialCode
// (1-3 digits of a known country calling code), telephone (4-14 digits), street_number,
// route, subpremise, locality, postal_code, administrative_area_level_1, country, dobday
// (1-31), dobmonth (1-12), dobyear (4 digits), ssn4, ssn9. Every value is a JSON string
// (address a JSON object); an empty string or null leaves the field out. Any other key, a
// value of another shape, a profile that is not a JSON object or is larger than 4 KiB is
// refused (ReasonBindProfileInvalid) naming the key, never the value; nothing is sent.

// Reason codes of a profile that cannot become a login_hint.
const (
	// ReasonBindProfileInvalid: the application's profile is not a JSON object of known
	// fields of the right shape (the error names the key).
	ReasonBindProfileInvalid = "bind_profile_invalid"
	// ReasonBindProfileNeedsEncryption: the profile holds ssn4 or ssn9 and no
	// login_hint_encryption_key is configured, so it is never sent.
	ReasonBindProfileNeedsEncryption = "bind_profile_needs_encryption"
)

// Limits of the application's profile and of the hint.
const (
	// MaxBindProfileBytes bounds the application's profile (the JSON object).
	MaxBindProfileBytes = 4096
	// HintLifetime is exp - iat of the login_hint.
	HintLifetime = 5 * time.Minute
	// maxFieldBytes bounds one text value.
	maxFieldBytes = 256
)

// HintError is a profile that cannot become a login_hint. Key is the offending key of the
// application's profile ("" when the profile as a whole is wrong); Detail says what is
// wrong with it. Neither ever holds a value of the profile.
type HintError struct {
	Reason string
	Key    string
	Detail string
}

func (e *HintError) Error() string {
	if e.Key == "" {
		return e.Detail
	}
	return fmt.Sprintf("%s: %s", e.Key, e.Detail)
}

func invalid(key, detail string) *HintError {
	return &HintError{Reason: ReasonBindProfileInvalid, Key: key, Detail: detail}
}

// idwFields are ID Dataweb's prefill fields an application may name directly, each with the
// check of a value (the normalised value, or "" and why not).
var idwFields = map[string]func(string) (string, string){
	"fname": checkText, "mname": checkText, "lname": checkText,
	"email":    checkEmail,
	"dialCode": checkDialCode, "telephone": checkTelephone,
	"street_number": checkText, "route": checkText, "subpremise": checkText,
	"locality": checkText, "postal_code": checkText, "administrative_area_level_1": checkText,
	"country": checkCountry,
	"dobday":  checkDay, "dobmonth": checkMonth, "dobyear": checkYear,
	"ssn4": checkSSN4, "ssn9": checkSSN9,
}

// oidcText are the OIDC claims that map one to one onto an ID Dataweb field.
var oidcText = map[string]string{
	"given_name": "fname", "middle_name": "mname", "family_name": "lname", "email": "email",
}

// addressText are the members of the OIDC address claim that map one to one.
var addressText = map[string]string{
	"locality": "locality", "region": "administrative_area_level_1", "postal_code": "postal_code", "country": "country",
}

// HintOptions is what the gateway adds to the profile.
type HintOptions struct {
	// Subject is the session's subject (sub).
	Subject string
	// Now is the time of issue (iat); exp is Now + HintLifetime.
	Now time.Time
	// Encrypted tells whether the hint will be encrypted (ssn4 and ssn9 need it).
	Encrypted bool
}

// IDDatawebHintClaims turns the application's profile (a JSON object) into the claims of
// ID Dataweb's login_hint: the fields in ID Dataweb's names, sub, iat and exp. A profile it
// cannot map is a *HintError.
func IDDatawebHintClaims(profile []byte, o HintOptions) (map[string]any, error) {
	if len(profile) > MaxBindProfileBytes {
		return nil, invalid("", fmt.Sprintf("the profile is larger than %d bytes", MaxBindProfileBytes))
	}
	raw, err := decodeObject(profile)
	if err != nil {
		return nil, invalid("", "the profile is not a JSON object")
	}
	if len(raw) == 0 {
		return nil, invalid("", "the profile is empty")
	}
	out := map[string]string{}
	from := map[string]string{} // ID Dataweb field -> the key it came from
	set := func(key, field, v string) error {
		if prev, ok := out[field]; ok && prev != v {
			return invalid(key, fmt.Sprintf("gives %s a different value than %s", field, from[field]))
		}
		out[field] = v
		if _, ok := from[field]; !ok {
			from[field] = key
		}
		return nil
	}
	for _, key := range slices.Sorted(maps.Keys(raw)) {
		v := raw[key]
		if key == "address" {
			if err := mapAddress(v, set); err != nil {
				return nil, err
			}
			continue
		}
		if key == "sub" || key == "iat" || key == "exp" {
			return nil, invalid(key, "is set by the gateway, not the application")
		}
		check, idw := idwFields[key]
		field := key
		if !idw {
			field, idw = oidcText[key]
			check = idwFields[field]
		}
		if !idw && key != "phone_number" && key != "birthdate" {
			return nil, invalid(key, "is not a field of the profile (see the mapping table)")
		}
		s, present, err := stringValue(key, v)
		if err != nil {
			return nil, err
		}
		if !present {
			continue
		}
		switch key {
		case "phone_number":
			dial, tel, why := splitE164(s)
			if why != "" {
				return nil, invalid(key, why)
			}
			if err := set(key, "dialCode", dial); err != nil {
				return nil, err
			}
			if err := set(key, "telephone", tel); err != nil {
				return nil, err
			}
		case "birthdate":
			y, m, d, why := splitBirthdate(s)
			if why != "" {
				return nil, invalid(key, why)
			}
			for f, v := range map[string]string{"dobyear": y, "dobmonth": m, "dobday": d} {
				if v == "" {
					continue
				}
				if err := set(key, f, v); err != nil {
					return nil, err
				}
			}
		default:
			norm, why := check(s)
			if why != "" {
				return nil, invalid(key, why)
			}
			if err := set(key, field, norm); err != nil {
				return nil, err
			}
		}
	}
	if len(out) == 0 {
		return nil, invalid("", "the profile has no field with a value")
	}
	if (out["dialCode"] == "") != (out["telephone"] == "") {
		key := "dialCode"
		if out["dialCode"] != "" {
			key = "telephone"
		}
		return nil, invalid(key, "is missing: dialCode and telephone go together (or give phone_number)")
	}
	if !o.Encrypted {
		for _, f := range []string{"ssn4", "ssn9"} {
			if _, ok := out[f]; ok {
				return nil, &HintError{Reason: ReasonBindProfileNeedsEncryption, Key: from[f],
					Detail: "holds a social security number, which is only sent encrypted (configure login_hint_encryption_key)"}
			}
		}
	}
	claims := make(map[string]any, len(out)+3)
	for k, v := range out {
		claims[k] = v
	}
	claims["sub"] = o.Subject
	claims["iat"] = o.Now.Unix()
	claims["exp"] = o.Now.Add(HintLifetime).Unix()
	return claims, nil
}

// mapAddress maps the OIDC address claim.
func mapAddress(v any, set func(key, field, v string) error) error {
	if v == nil {
		return nil
	}
	addr, ok := v.(map[string]any)
	if !ok {
		return invalid("address", "is not a JSON object")
	}
	for _, m := range slices.Sorted(maps.Keys(addr)) {
		key := "address." + m
		s, present, err := stringValue(key, addr[m])
		if err != nil {
			return err
		}
		if m == "street_address" {
			if !present {
				continue
			}
			number, route, sub, why := splitStreet(s)
			if why != "" {
				return invalid(key, why)
			}
			for f, v := range map[string]string{"street_number": number, "route": route, "subpremise": sub} {
				if v == "" {
					continue
				}
				if err := set(key, f, v); err != nil {
					return err
				}
			}
			continue
		}
		field, ok := addressText[m]
		if !ok {
			return invalid(key, "is not a field of the profile (see the mapping table)")
		}
		if !present {
			continue
		}
		norm, why := idwFields[field](s)
		if why != "" {
			return invalid(key, why)
		}
		if err := set(key, field, norm); err != nil {
			return err
		}
	}
	return nil
}

// stringValue is v as a string; present is false for null and "".
func stringValue(key string, v any) (s string, present bool, err error) {
	switch x := v.(type) {
	case nil:
		return "", false, nil
	case string:
		return x, x != "", nil
	default:
		return "", false, invalid(key, "is not a JSON string")
	}
}

// decodeObject decodes one JSON object and nothing after it; numbers stay json.Number, so
// a number is never taken for text.
func decodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return m, nil
}

func checkText(s string) (string, string) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", "is blank"
	case len(s) > maxFieldBytes:
		return "", fmt.Sprintf("is longer than %d bytes", maxFieldBytes)
	case !utf8.ValidString(s):
		return "", "is not valid UTF-8"
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "", "contains a control character"
	}
	return s, ""
}

func checkEmail(s string) (string, string) {
	s, why := checkText(s)
	if why != "" {
		return "", why
	}
	at := strings.IndexByte(s, '@')
	if at <= 0 || at != strings.LastIndexByte(s, '@') || at == len(s)-1 || strings.ContainsAny(s, " \t") {
		return "", "is not an e-mail address"
	}
	return s, ""
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func checkDialCode(s string) (string, string) {
	s = strings.TrimPrefix(s, "+")
	if !allDigits(s) || !knownCallingCode(s) {
		return "", "is not a known country calling code"
	}
	return s, ""
}

func checkTelephone(s string) (string, string) {
	if !allDigits(s) || len(s) < 4 || len(s) > 14 {
		return "", "is not a national number of 4 to 14 digits"
	}
	return s, ""
}

func checkCountry(s string) (string, string) {
	if len(s) != 2 || !isLetter(s[0]) || !isLetter(s[1]) {
		return "", "is not an ISO 3166-1 alpha-2 country code"
	}
	return strings.ToUpper(s), ""
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func checkNumber(s string, digits, lo, hi int) (string, bool) {
	if !allDigits(s) || len(s) > digits {
		return "", false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return "", false
	}
	return fmt.Sprintf("%0*d", digits, n), true
}

func checkDay(s string) (string, string) {
	if v, ok := checkNumber(s, 2, 1, 31); ok {
		return v, ""
	}
	return "", "is not a day of the month (1-31)"
}

func checkMonth(s string) (string, string) {
	if v, ok := checkNumber(s, 2, 1, 12); ok {
		return v, ""
	}
	return "", "is not a month (1-12)"
}

func checkYear(s string) (string, string) {
	if len(s) == 4 {
		if v, ok := checkNumber(s, 4, 1850, 9999); ok {
			return v, ""
		}
	}
	return "", "is not a year of four digits"
}

func checkSSN4(s string) (string, string) {
	if len(s) != 4 || !allDigits(s) {
		return "", "is not 4 digits"
	}
	return s, ""
}

func checkSSN9(s string) (string, string) {
	if len(s) == 11 && s[3] == '-' && s[6] == '-' {
		s = s[:3] + s[4:6] + s[7:]
	}
	if len(s) != 9 || !allDigits(s) {
		return "", "is not 9 digits"
	}
	return s, ""
}

// splitE164 splits an E.164 number (+ and 8 to 15 digits) into the country calling code
// and the national number.
func splitE164(s string) (dial, tel, why string) {
	if len(s) < 2 || s[0] != '+' || !allDigits(s[1:]) {
		return "", "", "is not an E.164 number (+ and the digits only)"
	}
	digits := s[1:]
	if len(digits) < 8 || len(digits) > 15 {
		return "", "", "is not an E.164 number (8 to 15 digits)"
	}
	for n := 1; n <= 3; n++ {
		if knownCallingCode(digits[:n]) {
			tel := digits[n:]
			if len(tel) < 4 || len(tel) > 14 {
				return "", "", "has a national number of the wrong length"
			}
			return digits[:n], tel, ""
		}
	}
	return "", "", "does not start with a known country calling code"
}

// splitBirthdate splits an OIDC birthdate: YYYY-MM-DD, YYYY (year only) or 0000-MM-DD
// (year withheld).
func splitBirthdate(s string) (y, m, d, why string) {
	if len(s) == 4 {
		if y, w := checkYear(s); w == "" {
			return y, "", "", ""
		}
		return "", "", "", "is not a date (YYYY-MM-DD)"
	}
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return "", "", "", "is not a date (YYYY-MM-DD)"
	}
	check := s
	if strings.HasPrefix(s, "0000-") {
		check = "2000" + s[4:] // a leap year, so 0000-02-29 is a date
	}
	if _, err := time.Parse(time.DateOnly, check); err != nil {
		return "", "", "", "is not a date (YYYY-MM-DD)"
	}
	if s[:4] != "0000" {
		if y, why = checkYear(s[:4]); why != "" {
			return "", "", "", why
		}
	}
	return y, s[5:7], s[8:10], ""
}

// splitStreet splits an OIDC street_address: a leading house number (a digit, then
// digits, letters, '-' or '/') becomes street_number, the rest of the first line route,
// and further lines (newline-separated, as OIDC allows) subpremise.
func splitStreet(s string) (number, route, sub, why string) {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	first := strings.TrimSpace(lines[0])
	var rest []string
	for _, l := range lines[1:] {
		if l = strings.TrimSpace(l); l != "" {
			rest = append(rest, l)
		}
	}
	if first != "" && first[0] >= '0' && first[0] <= '9' {
		if i := strings.IndexFunc(first, unicode.IsSpace); i > 0 && strings.IndexFunc(first[:i], func(r rune) bool {
			return !(r >= '0' && r <= '9' || r < 128 && isLetter(byte(r)) || r == '-' || r == '/')
		}) < 0 {
			number, first = first[:i], strings.TrimSpace(first[i:])
		}
	}
	if route, why = checkText(first); why != "" {
		return "", "", "", why
	}
	if len(rest) > 0 {
		if sub, why = checkText(strings.Join(rest, ", ")); why != "" {
			return "", "", "", why
		}
	}
	return number, route, sub, ""
}

// Country calling codes (ITU-T E.164 assignments to countries and territories; the shared
// and global codes are left out): one digit, two digits, and the three-digit codes in the
// blocks where every code has three digits. A number whose start is in none of them is
// refused rather than split at a guess.
var (
	callingCodes1 = []string{"1", "7"}
	callingCodes2 = []string{
		"20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
		"47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
		"64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
	}
	callingCodes3 = []string{
		"211", "212", "213", "216", "218",
		"220", "221", "222", "223", "224", "225", "226", "227", "228", "229",
		"230", "231", "232", "233", "234", "235", "236", "237", "238", "239",
		"240", "241", "242", "243", "244", "245", "246", "247", "248", "249",
		"250", "251", "252", "253", "254", "255", "256", "257", "258",
		"260", "261", "262", "263", "264", "265", "266", "267", "268", "269",
		"290", "291", "297", "298", "299",
		"350", "351", "352", "353", "354", "355", "356", "357", "358", "359",
		"370", "371", "372", "373", "374", "375", "376", "377", "378", "379",
		"380", "381", "382", "383", "385", "386", "387", "389",
		"420", "421", "423",
		"500", "501", "502", "503", "504", "505", "506", "507", "508", "509",
		"590", "591", "592", "593", "594", "595", "596", "597", "598", "599",
		"670", "672", "673", "674", "675", "676", "677", "678", "679",
		"680", "681", "682", "683", "685", "686", "687", "688", "689",
		"690", "691", "692",
		"850", "852", "853", "855", "856", "880", "886",
		"960", "961", "962", "963", "964", "965", "966", "967", "968",
		"970", "971", "972", "973", "974", "975", "976", "977",
		"992", "993", "994", "995", "996", "998",
	}
)

func knownCallingCode(s string) bool {
	switch len(s) {
	case 1:
		return slices.Contains(callingCodes1, s)
	case 2:
		return slices.Contains(callingCodes2, s)
	case 3:
		return slices.Contains(callingCodes3, s)
	}
	return false
}

// SignIDDatawebHint signs the hint's claims as a compact JWS, HS256 keyed with the client
// secret (typ JWT). go-jose refuses HMAC keys shorter than 32 bytes (RFC 7518 3.2); the
// client secret is the provider's choice, so a shorter one is MACed directly.
func SignIDDatawebHint(claims map[string]any, clientSecret []byte) (string, error) {
	if len(clientSecret) == 0 {
		return "", errors.New("no client secret to sign the login_hint with")
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	if len(clientSecret) < sha256.Size {
		in := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(payload)
		mac := hmac.New(sha256.New, clientSecret)
		mac.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: clientSecret}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// HintKeyAlgorithms are the key-management algorithms a login_hint can be encrypted with.
var HintKeyAlgorithms = []jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.RSA_OAEP, jose.ECDH_ES_A256KW}

// HintKeyAlgorithm is the key-management algorithm for key: the key's own alg when it
// names one (it must be one of HintKeyAlgorithms and fit the key type), else RSA-OAEP-256
// for an RSA key and ECDH-ES+A256KW for an EC key.
func HintKeyAlgorithm(key *jose.JSONWebKey) (jose.KeyAlgorithm, error) {
	var rsaKey bool
	switch key.Key.(type) {
	case *rsa.PublicKey:
		rsaKey = true
	case *ecdsa.PublicKey:
	default:
		return "", fmt.Errorf("the key is a %T, not an RSA or EC public key", key.Key)
	}
	if key.Algorithm == "" {
		if rsaKey {
			return jose.RSA_OAEP_256, nil
		}
		return jose.ECDH_ES_A256KW, nil
	}
	alg := jose.KeyAlgorithm(key.Algorithm)
	if !slices.Contains(HintKeyAlgorithms, alg) {
		return "", fmt.Errorf("the key's alg %q is not one of RSA-OAEP-256, RSA-OAEP, ECDH-ES+A256KW", key.Algorithm)
	}
	if rsaKey != (alg != jose.ECDH_ES_A256KW) {
		return "", fmt.Errorf("the key's alg %q does not fit its key type", key.Algorithm)
	}
	return alg, nil
}

// EncryptHint wraps a signed login_hint in a compact JWE to key (cty JWT, A256GCM).
func EncryptHint(signed string, key *jose.JSONWebKey) (string, error) {
	alg, err := HintKeyAlgorithm(key)
	if err != nil {
		return "", err
	}
	opts := (&jose.EncrypterOptions{}).WithContentType("JWT")
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: alg, Key: key.Key, KeyID: key.KeyID}, opts)
	if err != nil {
		return "", err
	}
	jwe, err := enc.Encrypt([]byte(signed))
	if err != nil {
		return "", err
	}
	return jwe.CompactSerialize()
}

// IDDatawebHint builds ID Dataweb's login_hint from the application's profile: the claims
// (IDDatawebHintClaims), signed HS256 with the client secret, and encrypted to key when key
// is not nil. A profile it cannot map is a *HintError; other errors are the gateway's.
func IDDatawebHint(profile []byte, o HintOptions, clientSecret []byte, key *jose.JSONWebKey) (string, error) {
	o.Encrypted = key != nil
	claims, err := IDDatawebHintClaims(profile, o)
	if err != nil {
		return "", err
	}
	signed, err := SignIDDatawebHint(claims, clientSecret)
	if err != nil || key == nil {
		return signed, err
	}
	return EncryptHint(signed, key)
}
