package provider

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The shapes of ID Dataweb's prefill fields, and the splitting of OIDC values (E.164
// phone numbers, birthdates, street addresses) into them.

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
