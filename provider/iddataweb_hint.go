package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
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
