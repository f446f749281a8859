package trust

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Checking a Policy once, when the configuration is loaded.

// Validate reports every mistake in the policy, each naming the setting at fault (joined
// with errors.Join). A list that is set but empty is a mistake too: it usually comes from
// a placeholder that expanded to nothing, and it would silently drop the rule.
func (p *Policy) Validate() error {
	if p == nil {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	checkList := func(name string, list []string) {
		if list != nil && len(list) == 0 {
			bad("%s: the list is empty; name at least one value or leave %s out", name, name)
			return
		}
		seen := make(map[string]bool, len(list))
		for _, v := range list {
			switch {
			case v == "":
				bad("%s: empty value", name)
			case strings.TrimSpace(v) != v:
				bad("%s: value %s has leading or trailing spaces", name, strconv.Quote(v))
			case hasControl(v):
				bad("%s: value %s contains control characters", name, strconv.Quote(v))
			case seen[v]:
				bad("%s: value %s is listed twice", name, strconv.Quote(v))
			}
			seen[v] = true
		}
	}
	checkList(RuleACR, p.ACR)
	checkList("acr_levels", p.ACRLevels)
	checkList(RuleAMR, p.AMR)

	switch {
	case p.ACRAtLeast != "" && len(p.ACRLevels) == 0:
		bad("acr_at_least %s needs acr_levels, the accepted levels in order, lowest first", strconv.Quote(p.ACRAtLeast))
	case p.ACRAtLeast != "" && !slices.Contains(p.ACRLevels, p.ACRAtLeast):
		bad("acr_at_least %s is not one of acr_levels [%s]", strconv.Quote(p.ACRAtLeast), quoteAll(p.ACRLevels))
	case p.ACRAtLeast == "" && len(p.ACRLevels) > 0:
		bad("acr_levels is set without acr_at_least; name the lowest accepted level in acr_at_least")
	case p.ACRAtLeast != "" && len(p.ACR) > 0 && len(p.requestedACR()) == 0:
		bad("acr [%s] and acr_at_least %s can never both hold: no value of acr is at or above %s in acr_levels",
			quoteAll(p.ACR), strconv.Quote(p.ACRAtLeast), strconv.Quote(p.ACRAtLeast))
	}

	if p.Claims != nil && len(p.Claims) == 0 {
		bad("claim: the list of claim rules is empty; name at least one or leave it out")
	}
	for i, r := range p.Claims {
		name := strconv.Quote(r.Claim)
		if r.Claim == "" {
			name = "#" + strconv.Itoa(i+1)
			bad("claim rule %s: the claim name is empty", name)
		}
		if len(r.Values) == 0 {
			bad("claim %s: no values; name at least one accepted value", name)
		}
		for _, v := range r.Values {
			if v == "" {
				bad("claim %s: empty value", name)
			}
		}
	}

	checkList(RuleGroup, p.Groups)
	for _, g := range p.Groups {
		if strings.Contains(g, ",") {
			bad("group %s contains a comma; a group value with a comma is never among the user's groups (it cannot be told apart in X-Auth-Groups), so the rule could never hold", strconv.Quote(g))
		}
	}

	if p.EmailDomains != nil && len(p.EmailDomains) == 0 {
		bad("email_domain: the list is empty; name at least one domain or leave it out")
	}
	seenDomain := make(map[string]bool, len(p.EmailDomains))
	for _, d := range p.EmailDomains {
		if err := checkDomainPattern(d); err != nil {
			bad("email_domain %s: %v", strconv.Quote(d), err)
			continue
		}
		if key := strings.ToLower(d); seenDomain[key] {
			bad("email_domain %s is listed twice", strconv.Quote(d))
		} else {
			seenDomain[key] = true
		}
	}

	checkList(RuleScope, p.Scopes)
	for _, sc := range p.Scopes {
		if strings.ContainsAny(sc, " \t\"\\") {
			bad("scope %s contains a space, a quote or a backslash; no scope name can (RFC 6749 3.3)", strconv.Quote(sc))
		}
	}

	switch {
	case p.MaxAuthAge < 0:
		bad("max_auth_age %s is negative; it must be at least 1s", p.MaxAuthAge)
	case p.MaxAuthAge > 0 && p.MaxAuthAge < time.Second:
		bad("max_auth_age %s is shorter than 1s; OpenID Connect max_age counts whole seconds", p.MaxAuthAge)
	}
	return errors.Join(errs...)
}

// checkDomainPattern accepts "example.com" or "*.example.com": ASCII labels of letters,
// digits and hyphens, no empty label, no label starting or ending with a hyphen.
func checkDomainPattern(d string) error {
	host := strings.TrimPrefix(d, "*.")
	switch {
	case d == "":
		return errors.New("empty domain")
	case strings.HasPrefix(d, "@") || strings.Contains(d, "@"):
		return errors.New("write the domain without '@' (example.com, not @example.com)")
	case strings.Contains(host, "*"):
		return errors.New("a wildcard is only allowed as the whole first label (*.example.com)")
	case strings.HasSuffix(d, "."):
		return errors.New("remove the trailing dot")
	case len(host) > 253:
		return errors.New("domain is longer than 253 characters")
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" {
			return errors.New("empty label (two dots in a row, or a leading dot)")
		}
		if len(label) > 63 {
			return errors.New("a label is longer than 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %s starts or ends with '-'", strconv.Quote(label))
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				if c >= utf8.RuneSelf {
					return errors.New("write internationalized domains in their ASCII (xn--) form")
				}
				return fmt.Errorf("character %s is not allowed in a domain", strconv.QuoteRune(rune(c)))
			}
		}
	}
	return nil
}
