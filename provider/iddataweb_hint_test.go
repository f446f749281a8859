package provider

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

var hintNow = time.Unix(1765000000, 0)

func hintOpts() HintOptions { return HintOptions{Subject: "idw-0001", Now: hintNow} }

// fields are the ID Dataweb fields of claims (without sub, iat, exp).
func fields(c map[string]any) map[string]any {
	out := maps.Clone(c)
	delete(out, "sub")
	delete(out, "iat")
	delete(out, "exp")
	return out
}

func TestIDDatawebHintClaimsMapping(t *testing.T) {
	tests := []struct {
		name    string
		profile string
		want    map[string]any
	}{
		{"seed 002 Andrew Roshell in OIDC names",
			`{"given_name":"Andrew","family_name":"Roshell","phone_number":"+15555550100","email":"andrew.roshell@example.org"}`,
			map[string]any{"fname": "Andrew", "lname": "Roshell", "dialCode": "1", "telephone": "5555550100", "email": "andrew.roshell@example.org"}},
		{"the same in ID Dataweb's names",
			`{"fname":"Andrew","lname":"Roshell","dialCode":"1","telephone":"5555550100","email":"andrew.roshell@example.org"}`,
			map[string]any{"fname": "Andrew", "lname": "Roshell", "dialCode": "1", "telephone": "5555550100", "email": "andrew.roshell@example.org"}},
		{"mixed, the same field twice with the same value",
			`{"given_name":"Andrew","fname":"Andrew","lname":"Roshell","middle_name":"J"}`,
			map[string]any{"fname": "Andrew", "lname": "Roshell", "mname": "J"}},
		{"birthdate", `{"birthdate":"1970-04-09"}`, map[string]any{"dobyear": "1970", "dobmonth": "04", "dobday": "09"}},
		{"birthdate year only", `{"birthdate":"1970"}`, map[string]any{"dobyear": "1970"}},
		{"birthdate year withheld", `{"birthdate":"0000-02-29"}`, map[string]any{"dobmonth": "02", "dobday": "29"}},
		{"dob fields normalised", `{"dobday":"9","dobmonth":"4","dobyear":"1970","birthdate":"1970-04-09"}`,
			map[string]any{"dobyear": "1970", "dobmonth": "04", "dobday": "09"}},
		{"address", `{"address":{"street_address":"1600 Pennsylvania Ave NW","locality":"Washington","region":"DC","postal_code":"20500","country":"us"}}`,
			map[string]any{"street_number": "1600", "route": "Pennsylvania Ave NW", "locality": "Washington",
				"administrative_area_level_1": "DC", "postal_code": "20500", "country": "US"}},
		{"address without a house number, second line", `{"address":{"street_address":"Main Street\nApt 4"}}`,
			map[string]any{"route": "Main Street", "subpremise": "Apt 4"}},
		{"house number with a letter", `{"address":{"street_address":"221B Baker Street"}}`,
			map[string]any{"street_number": "221B", "route": "Baker Street"}},
		{"UK number (two-digit code)", `{"phone_number":"+442071838750"}`, map[string]any{"dialCode": "44", "telephone": "2071838750"}},
		{"Ireland (three-digit 35x)", `{"phone_number":"+353861234567"}`, map[string]any{"dialCode": "353", "telephone": "861234567"}},
		{"Russia (7)", `{"phone_number":"+74951234567"}`, map[string]any{"dialCode": "7", "telephone": "4951234567"}},
		{"Norway (47)", `{"phone_number":"+4795871775"}`, map[string]any{"dialCode": "47", "telephone": "95871775"}},
		{"China (86)", `{"phone_number":"+8613812345678"}`, map[string]any{"dialCode": "86", "telephone": "13812345678"}},
		{"phone in both names, same", `{"phone_number":"+12125556789","dialCode":"1","telephone":"2125556789"}`,
			map[string]any{"dialCode": "1", "telephone": "2125556789"}},
		{"null and empty strings are left out", `{"fname":"Andrew","mname":"","middle_name":null,"address":null}`, map[string]any{"fname": "Andrew"}},
		{"text trimmed, non-ASCII kept", `{"given_name":"  Åse ","family_name":"Øvrebø"}`, map[string]any{"fname": "Åse", "lname": "Øvrebø"}},
		{"ssn with encryption", `{"ssn4":"6789","ssn9":"123-45-6789"}`, map[string]any{"ssn4": "6789", "ssn9": "123456789"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := hintOpts()
			o.Encrypted = true
			c, err := IDDatawebHintClaims([]byte(tt.profile), o)
			if err != nil {
				t.Fatalf("IDDatawebHintClaims() error = %v", err)
			}
			if got := fields(c); !maps.Equal(got, tt.want) {
				t.Errorf("fields = %v, want %v", got, tt.want)
			}
			if c["sub"] != "idw-0001" || c["iat"] != hintNow.Unix() || c["exp"] != hintNow.Add(5*time.Minute).Unix() {
				t.Errorf("sub, iat, exp = %v %v %v", c["sub"], c["iat"], c["exp"])
			}
		})
	}
}

func TestIDDatawebHintClaimsRefusals(t *testing.T) {
	big := `{"fname":"` + strings.Repeat("a", MaxBindProfileBytes) + `"}`
	tests := []struct {
		name    string
		profile string
		reason  string
		key     string
	}{
		{"not JSON", `not json`, ReasonBindProfileInvalid, ""},
		{"an array", `["fname"]`, ReasonBindProfileInvalid, ""},
		{"trailing data", `{"fname":"A"} {}`, ReasonBindProfileInvalid, ""},
		{"empty object", `{}`, ReasonBindProfileInvalid, ""},
		{"only empty values", `{"fname":""}`, ReasonBindProfileInvalid, ""},
		{"larger than 4 KiB", big, ReasonBindProfileInvalid, ""},
		{"unknown key", `{"fname":"A","favourite_colour":"blue"}`, ReasonBindProfileInvalid, "favourite_colour"},
		{"name is not a field", `{"name":"Andrew Roshell"}`, ReasonBindProfileInvalid, "name"},
		{"unknown address member", `{"address":{"formatted":"1 Main St"}}`, ReasonBindProfileInvalid, "address.formatted"},
		{"address not an object", `{"address":"1 Main St"}`, ReasonBindProfileInvalid, "address"},
		{"number for a string", `{"telephone":2125556789}`, ReasonBindProfileInvalid, "telephone"},
		{"bool for a string", `{"fname":true}`, ReasonBindProfileInvalid, "fname"},
		{"object for a string", `{"given_name":{"x":"y"}}`, ReasonBindProfileInvalid, "given_name"},
		{"number in the address", `{"address":{"postal_code":20500}}`, ReasonBindProfileInvalid, "address.postal_code"},
		{"malformed date", `{"birthdate":"09/04/1970"}`, ReasonBindProfileInvalid, "birthdate"},
		{"impossible date", `{"birthdate":"1970-02-30"}`, ReasonBindProfileInvalid, "birthdate"},
		{"dobmonth 13", `{"dobmonth":"13"}`, ReasonBindProfileInvalid, "dobmonth"},
		{"dobyear two digits", `{"dobyear":"70"}`, ReasonBindProfileInvalid, "dobyear"},
		{"phone without +", `{"phone_number":"12125556789"}`, ReasonBindProfileInvalid, "phone_number"},
		{"phone with spaces", `{"phone_number":"+1 212 555 6789"}`, ReasonBindProfileInvalid, "phone_number"},
		{"phone too short", `{"phone_number":"+1212"}`, ReasonBindProfileInvalid, "phone_number"},
		{"phone too long", `{"phone_number":"+1212555678901234"}`, ReasonBindProfileInvalid, "phone_number"},
		{"unknown calling code (35 alone is no code, 359 is; 0 is none)", `{"phone_number":"+0123456789"}`, ReasonBindProfileInvalid, "phone_number"},
		{"unassigned three-digit code", `{"phone_number":"+2591234567"}`, ReasonBindProfileInvalid, "phone_number"},
		{"unknown dialCode", `{"dialCode":"999","telephone":"12345678"}`, ReasonBindProfileInvalid, "dialCode"},
		{"telephone without dialCode", `{"telephone":"2125556789"}`, ReasonBindProfileInvalid, "dialCode"},
		{"email without @", `{"email":"andrew"}`, ReasonBindProfileInvalid, "email"},
		{"control character", `{"fname":"A\nB"}`, ReasonBindProfileInvalid, "fname"},
		{"country not alpha-2", `{"country":"United States"}`, ReasonBindProfileInvalid, "country"},
		{"ssn4 wrong length", `{"ssn4":"12345"}`, ReasonBindProfileInvalid, "ssn4"},
		{"ssn9 letters", `{"ssn9":"12345678x"}`, ReasonBindProfileInvalid, "ssn9"},
		{"sub from the application", `{"fname":"A","sub":"other"}`, ReasonBindProfileInvalid, "sub"},
		{"exp from the application", `{"fname":"A","exp":1}`, ReasonBindProfileInvalid, "exp"},
		{"given_name and fname differ", `{"given_name":"Andrew","fname":"Andrea"}`, ReasonBindProfileInvalid, "given_name"},
		{"phone_number and telephone differ", `{"phone_number":"+12125556789","telephone":"2125550000","dialCode":"1"}`, ReasonBindProfileInvalid, "telephone"},
		{"street_address and route differ", `{"route":"Elm St","address":{"street_address":"12 Main St"}}`, ReasonBindProfileInvalid, "route"},
		{"ssn4 unencrypted", `{"fname":"Andrew","ssn4":"6789"}`, ReasonBindProfileNeedsEncryption, "ssn4"},
		{"ssn9 unencrypted", `{"ssn9":"123456789"}`, ReasonBindProfileNeedsEncryption, "ssn9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := IDDatawebHintClaims([]byte(tt.profile), hintOpts())
			var he *HintError
			if !errors.As(err, &he) {
				t.Fatalf("IDDatawebHintClaims() = %v, %v, want a *HintError", c, err)
			}
			if he.Reason != tt.reason || he.Key != tt.key {
				t.Errorf("error reason, key = %q, %q (%v), want %q, %q", he.Reason, he.Key, err, tt.reason, tt.key)
			}
			// The error never repeats a value of the profile.
			for _, v := range []string{"blue", "Andrea", "2125550000", "6789", "123456789", "20500", "United States", "09/04/1970", "Elm St", "other"} {
				if strings.Contains(tt.profile, v) && strings.Contains(err.Error(), v) {
					t.Errorf("error %q repeats the value %q", err, v)
				}
			}
		})
	}
}

func TestKnownCallingCodes(t *testing.T) {
	for _, c := range []string{"1", "7", "20", "27", "30", "49", "51", "58", "60", "66", "81", "82", "84", "86", "90", "95", "98", "351", "420", "972", "998"} {
		if !knownCallingCode(c) {
			t.Errorf("%s is not known", c)
		}
	}
	for _, c := range []string{"0", "2", "35", "37", "38", "42", "50", "59", "80", "99", "259", "384", "999", "1234"} {
		if knownCallingCode(c) {
			t.Errorf("%s is known, want not (no country code, or a prefix of three-digit codes)", c)
		}
	}
	// No code is a prefix of another: a split is never ambiguous.
	all := append(append(append([]string{}, callingCodes1...), callingCodes2...), callingCodes3...)
	for _, a := range all {
		for _, b := range all {
			if a != b && strings.HasPrefix(b, a) {
				t.Errorf("calling code %s is a prefix of %s", a, b)
			}
		}
	}
}

// verifyHS256 checks a compact HS256 JWS with secret by hand (independently of go-jose,
// which refuses short keys) and returns its header and claims.
func verifyHS256(t *testing.T, jws string, secret []byte) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("hint has %d parts, want a compact JWS", len(parts))
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if !hmac.Equal(sig, mac.Sum(nil)) {
		t.Fatal("HS256 signature does not verify with the client secret")
	}
	var hdr, claims map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(cb, &claims) != nil {
		t.Fatal("hint header or claims are not JSON")
	}
	return hdr, claims
}

func TestSignIDDatawebHint(t *testing.T) {
	profile := []byte(`{"given_name":"Andrew","family_name":"Roshell","phone_number":"+15555550100"}`)
	for _, secret := range []string{"trustgate-dev-secret", strings.Repeat("s", 48)} {
		t.Run(fmt.Sprintf("secret of %d bytes", len(secret)), func(t *testing.T) {
			hint, err := IDDatawebHint(profile, hintOpts(), []byte(secret), nil)
			if err != nil {
				t.Fatal(err)
			}
			hdr, claims := verifyHS256(t, hint, []byte(secret))
			if hdr["alg"] != "HS256" || hdr["typ"] != "JWT" {
				t.Errorf("header = %v", hdr)
			}
			if claims["fname"] != "Andrew" || claims["lname"] != "Roshell" || claims["dialCode"] != "1" || claims["telephone"] != "5555550100" ||
				claims["sub"] != "idw-0001" || claims["exp"].(float64)-claims["iat"].(float64) != 300 {
				t.Errorf("claims = %v", claims)
			}
			if _, err := IDDatawebHint(profile, hintOpts(), []byte(secret+"x"), nil); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := SignIDDatawebHint(map[string]any{"fname": "A"}, nil); err == nil {
		t.Error("signing without a client secret succeeded")
	}
}

func TestEncryptIDDatawebHint(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("trustgate-dev-secret")
	profile := []byte(`{"fname":"Andrew","lname":"Roshell","ssn4":"6789"}`)
	tests := []struct {
		name string
		pub  jose.JSONWebKey
		priv any
		alg  string
	}{
		{"RSA default", jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "idw-enc"}, rsaKey, "RSA-OAEP-256"},
		{"RSA-OAEP named by the key", jose.JSONWebKey{Key: &rsaKey.PublicKey, Algorithm: "RSA-OAEP"}, rsaKey, "RSA-OAEP"},
		{"EC default", jose.JSONWebKey{Key: &ecKey.PublicKey}, ecKey, "ECDH-ES+A256KW"},
		{"EC named by the key", jose.JSONWebKey{Key: &ecKey.PublicKey, Algorithm: "ECDH-ES+A256KW"}, ecKey, "ECDH-ES+A256KW"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hint, err := IDDatawebHint(profile, hintOpts(), secret, &tt.pub)
			if err != nil {
				t.Fatal(err)
			}
			jwe, err := jose.ParseEncryptedCompact(hint, HintKeyAlgorithms, []jose.ContentEncryption{jose.A256GCM})
			if err != nil {
				t.Fatalf("not a compact JWE: %v", err)
			}
			if string(jwe.Header.Algorithm) != tt.alg || jwe.Header.ExtraHeaders["cty"] != "JWT" || jwe.Header.ExtraHeaders["enc"] != "A256GCM" {
				t.Errorf("JWE header = alg %s %v", jwe.Header.Algorithm, jwe.Header.ExtraHeaders)
			}
			if jwe.Header.KeyID != tt.pub.KeyID {
				t.Errorf("kid = %q, want %q", jwe.Header.KeyID, tt.pub.KeyID)
			}
			inner, err := jwe.Decrypt(tt.priv)
			if err != nil {
				t.Fatal(err)
			}
			if _, claims := verifyHS256(t, string(inner), secret); claims["ssn4"] != "6789" || claims["fname"] != "Andrew" {
				t.Errorf("inner claims = %v", claims)
			}
		})
	}
	for _, bad := range []jose.JSONWebKey{
		{Key: &rsaKey.PublicKey, Algorithm: "ECDH-ES+A256KW"},
		{Key: &ecKey.PublicKey, Algorithm: "RSA-OAEP-256"},
		{Key: &rsaKey.PublicKey, Algorithm: "RSA1_5"},
		{Key: []byte("symmetric")},
	} {
		if _, err := IDDatawebHint(profile, hintOpts(), secret, &bad); err == nil {
			t.Errorf("key %T alg %q accepted", bad.Key, bad.Algorithm)
		}
	}
}
