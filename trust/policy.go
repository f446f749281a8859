package trust

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Names of the policy rules, as reported in Unmet.Rule.
const (
	RuleACR         = "acr"
	RuleACRAtLeast  = "acr_at_least"
	RuleAMR         = "amr"
	RuleClaim       = "claim"
	RuleGroup       = "group"
	RuleEmailDomain = "email_domain"
	RuleMaxAuthAge  = "max_auth_age"
	RuleKnownUser   = "known_user"
	RuleScope       = "scope"
)

// AuthTimeSkew is how far in the future auth_time may be (clock differences between the OP
// and the gateway) before the max_auth_age rule rejects it. Within it the sign-in counts as
// having happened just now.
const AuthTimeSkew = 5 * time.Minute

// ClaimRule requires the claim at path Claim (see LookupClaim) to equal one of Values. A
// string claim matches when it equals a value; an array claim matches when any element,
// rendered with ClaimString, equals a value (so ["eng,admins"] is the one element
// "eng,admins" and never matches "eng"); a number or boolean matches by its ClaimString
// form ("42", "true"). An object, null or an absent claim never matches.
type ClaimRule struct {
	Claim  string
	Values []string
}

// Policy is what a route requires of the signed-in user. Every rule that is set must hold;
// the zero Policy allows every signed-in user.
type Policy struct {
	// ACR lists the accepted authentication context classes: acr must equal one of them.
	ACR []string
	// ACRAtLeast requires acr to be this level or a later one in ACRLevels. An acr that
	// is not in ACRLevels does not meet it.
	ACRAtLeast string
	// ACRLevels orders the authentication context classes, lowest first. Required with
	// ACRAtLeast, which must be one of them.
	ACRLevels []string
	// AMR lists authentication methods that must all be in amr.
	AMR []string
	// Claims must all hold.
	Claims []ClaimRule
	// Groups requires the user to be in at least one of these groups: one of them must be
	// in Profile.Groups (Options.GroupsClaim, default groups), compared exactly (case
	// matters). A new sign-in cannot change a user's groups, so this rule never asks for
	// a step-up.
	Groups []string `json:",omitempty"`
	// EmailDomains accepts a verified e-mail address in one of these domains.
	// "example.com" matches exactly example.com; "*.example.com" matches any subdomain of
	// example.com (a.example.com, a.b.example.com) but not example.com itself. Domains are
	// compared case-insensitively and in ASCII (write internationalized domains in their
	// xn-- form). An address whose domain ends in a dot ("x@example.com.") never matches.
	EmailDomains []string
	// MaxAuthAge is the longest time since the user last authenticated at the OP
	// (auth_time). A sign-in without auth_time does not meet it. Zero means no limit.
	MaxAuthAge time.Duration
	// KnownUser requires the alias claim to be present (Profile.NewUser false).
	KnownUser bool
	// AllowUnverifiedEmail lets EmailDomains accept an address whose sign-in has no
	// email_verified claim at all (absent or null), for providers that never send it
	// (Microsoft Entra ID). An explicit false, or a value that is neither a boolean nor
	// "true"/"false", is still refused.
	//
	// This weakens the rule. Without email_verified nothing says that the user controls the
	// address: at some providers the e-mail claim is whatever the user or a tenant's
	// administrator typed into the profile, so anyone who can edit it can claim
	// name@your-company.example. Set it only for a provider that vouches for the address
	// without saying so (an Entra ID single-tenant app whose tenant owns the domain), and
	// prefer a claim rule on a provider-assigned value (tid, groups) where there is one.
	AllowUnverifiedEmail bool `json:",omitempty"`
	// Scopes must all be granted to the bearer access token that authenticates the request
	// (its scope claim). Check does not evaluate it, since a Profile carries no scopes: the
	// caller checks it with CheckScopes. A cookie session's scopes are unknown, so it never
	// meets this rule (CheckScopes with known false).
	Scopes []string `json:",omitempty"`
}

// Unmet is a rule a sign-in does not meet.
type Unmet struct {
	// Rule is the rule's name: "acr", "acr_at_least", "amr", "claim", "group",
	// "email_domain", "max_auth_age" or "known_user".
	Rule string
	// Reason is one plain sentence saying what is required and what this sign-in has, fit
	// for the user's error page, an API's JSON body and the log. Text taken from claims is
	// quoted, stripped of control characters and shortened; it is not HTML-escaped.
	Reason string
}

// StepUp says how to ask the OP for a new sign-in that can meet the policy. It asks for
// everything the policy needs from a sign-in, not only what the current one lacks, so that
// fixing one rule cannot break another (for example, a fresh sign-in for max_auth_age
// still requests the required acr).
type StepUp struct {
	// ACRValues to request (acr_values), in order of preference. Empty: none requested.
	ACRValues []string
	// MaxAge to request (max_age, in whole seconds). Zero: not requested.
	MaxAge time.Duration
	// PromptLogin requests prompt=login: the user must authenticate again.
	PromptLogin bool
}

// IsZero reports whether p has no rules, so that it allows every signed-in user.
func (p *Policy) IsZero() bool {
	return p == nil || (len(p.ACR) == 0 && p.ACRAtLeast == "" && len(p.ACRLevels) == 0 &&
		len(p.AMR) == 0 && len(p.Claims) == 0 && len(p.Groups) == 0 && len(p.EmailDomains) == 0 &&
		p.MaxAuthAge == 0 && !p.KnownUser && len(p.Scopes) == 0)
}

// Fingerprint returns a short, stable hex digest of the policy's rules (16 characters). Two
// policies with the same rules in the same order have the same fingerprint, in any process.
func (p *Policy) Fingerprint() string {
	var q Policy
	if p != nil {
		q = *p
	}
	// A struct of strings, slices, an int64 and a bool: json.Marshal cannot fail and is
	// unambiguous (every string is quoted, every list bracketed).
	raw, err := json.Marshal(q)
	if err != nil {
		panic("trust: marshalling a Policy: " + err.Error())
	}
	sum := sha256.Sum256(append([]byte("trustgate policy v1\n"), raw...))
	return hex.EncodeToString(sum[:8])
}

// CheckScopes checks the Scopes rule against the scopes granted to the request's access
// token. known is false for a request without one (a cookie session), which never meets a
// scope rule. It returns nil when the rule holds (or there is none); the Unmet's Reason
// names the missing scopes only.
func (p *Policy) CheckScopes(granted []string, known bool) *Unmet {
	if p == nil || len(p.Scopes) == 0 {
		return nil
	}
	if !known {
		return &Unmet{Rule: RuleScope, Reason: "this resource requires an access token with the scope " +
			reasonList(p.Scopes, "and") + "; a browser session carries no scopes, so send an access token"}
	}
	var missing []string
	for _, s := range p.Scopes {
		if !slices.Contains(granted, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &Unmet{Rule: RuleScope, Reason: "this resource requires the access token scope " +
		reasonList(missing, "and") + ", which this token was not granted"}
}

// Check evaluates every rule against the profile at time now. It returns each unmet rule,
// in the order of Policy's fields, and, when every unmet rule can be met by signing in
// again, how to ask the OP for that sign-in (nil otherwise, and nil when all rules hold).
// A nil profile meets no rule.
func (p *Policy) Check(prof *Profile, now time.Time) (unmet []Unmet, stepUp *StepUp) {
	if p.IsZero() {
		return nil, nil
	}
	if prof == nil {
		prof = &Profile{NewUser: true}
	}
	fixable := true
	add := func(rule, reason string, canStepUp bool) {
		unmet = append(unmet, Unmet{Rule: rule, Reason: reason})
		fixable = fixable && canStepUp
	}

	if len(p.ACR) > 0 && (prof.ACR == "" || !slices.Contains(p.ACR, prof.ACR)) {
		need := "an authentication level of " + reasonList(p.ACR, "or")
		if len(p.ACR) == 1 {
			need = "the authentication level " + reasonQuote(p.ACR[0])
		}
		add(RuleACR, "this page requires "+need+"; this sign-in has "+reasonHas(prof.ACR), true)
	}
	if p.ACRAtLeast != "" && !p.acrAtLeast(prof.ACR) {
		add(RuleACRAtLeast, "this page requires an authentication level of at least "+
			reasonQuote(p.ACRAtLeast)+"; this sign-in has "+reasonHas(prof.ACR), true)
	}
	if missing := missingAMR(p.AMR, prof.AMR); len(missing) > 0 {
		word := "methods"
		if len(missing) == 1 {
			word = "method"
		}
		has := "none"
		if len(prof.AMR) > 0 {
			has = reasonList(prof.AMR, "and")
		}
		add(RuleAMR, "this page requires the authentication "+word+" "+reasonList(missing, "and")+
			"; this sign-in used "+has, true)
	}
	for _, r := range p.Claims {
		if ok, has := claimRuleHolds(r, prof.Claims); !ok {
			add(RuleClaim, "this page requires the claim "+reasonQuote(r.Claim)+" to be "+
				reasonList(r.Values, "or")+"; this sign-in "+has, false)
		}
	}
	if len(p.Groups) > 0 && !slices.ContainsFunc(p.Groups, func(g string) bool { return slices.Contains(prof.Groups, g) }) {
		// Names the required groups only: the user's own groups stay out of the page and
		// the log.
		need := "membership of one of the groups " + reasonList(p.Groups, "or") + "; this sign-in is in none of them"
		if len(p.Groups) == 1 {
			need = "membership of the group " + reasonQuote(p.Groups[0]) + "; this sign-in is not in it"
		}
		add(RuleGroup, "this page requires "+need, false)
	}
	if len(p.EmailDomains) > 0 {
		if ok, has := p.emailDomainHolds(prof); !ok {
			what := "a verified e-mail address"
			if p.AllowUnverifiedEmail {
				what = "an e-mail address (not marked unverified)"
			}
			add(RuleEmailDomain, "this page requires "+what+" in "+
				reasonList(p.EmailDomains, "or")+"; "+has, false)
		}
	}
	if p.MaxAuthAge > 0 {
		if reason, canStepUp := p.authAgeUnmet(prof.AuthTime, now); reason != "" {
			add(RuleMaxAuthAge, reason, canStepUp)
		}
	}
	if p.KnownUser && prof.NewUser {
		add(RuleKnownUser, "this page requires a sign-in linked to an existing account; "+
			"this sign-in is not linked to an account yet", false)
	}

	if len(unmet) == 0 || !fixable {
		return unmet, nil
	}
	stepUp = &StepUp{PromptLogin: true, MaxAge: p.MaxAuthAge}
	if len(p.ACR) > 0 || p.ACRAtLeast != "" {
		stepUp.ACRValues = p.requestedACR()
	}
	return unmet, stepUp
}

// acrLevel is the index of acr in ACRLevels, or -1.
func (p *Policy) acrLevel(acr string) int {
	if acr == "" {
		return -1
	}
	return slices.Index(p.ACRLevels, acr)
}

func (p *Policy) acrAtLeast(acr string) bool {
	have, need := p.acrLevel(acr), p.acrLevel(p.ACRAtLeast)
	return have >= 0 && need >= 0 && have >= need
}

// requestedACR is the acr_values a step-up asks for: the values that meet both acr rules.
// With ACR set, its values (in its order) that also meet acr_at_least; otherwise the levels
// from acr_at_least upward, the required level first.
func (p *Policy) requestedACR() []string {
	if len(p.ACR) > 0 {
		if p.ACRAtLeast == "" {
			return slices.Clone(p.ACR)
		}
		var out []string
		for _, v := range p.ACR {
			if p.acrAtLeast(v) {
				out = append(out, v)
			}
		}
		return out
	}
	if i := p.acrLevel(p.ACRAtLeast); i >= 0 {
		return slices.Clone(p.ACRLevels[i:])
	}
	return nil
}

func missingAMR(need, have []string) []string {
	var missing []string
	for _, m := range need {
		if !slices.Contains(have, m) {
			missing = append(missing, m)
		}
	}
	return missing
}

// claimRuleHolds reports whether the rule holds and, when it does not, what the sign-in
// has, as the end of a sentence starting with "this sign-in".
func claimRuleHolds(r ClaimRule, claims map[string]any) (bool, string) {
	v, ok := LookupClaim(claims, r.Claim)
	if !ok {
		return false, "does not have it"
	}
	switch v := v.(type) {
	case map[string]any:
		return false, "has an object"
	case []any:
		for _, e := range v {
			if s, ok := ClaimString(e); ok && slices.Contains(r.Values, s) {
				return true, ""
			}
		}
	case []string:
		for _, s := range v {
			if slices.Contains(r.Values, s) {
				return true, ""
			}
		}
	default:
		if s, ok := ClaimString(v); ok && slices.Contains(r.Values, s) {
			return true, ""
		}
	}
	s, ok := ClaimString(v)
	if !ok {
		return false, "has a value that cannot be read as text"
	}
	return false, "has " + reasonQuote(s)
}

// emailDomainHolds applies the e-mail domain rule (threat model HDR-05) and, when it does
// not hold, says why as a clause about this sign-in.
func (p *Policy) emailDomainHolds(prof *Profile) (bool, string) {
	if prof.Email == "" {
		return false, "this sign-in has no e-mail address"
	}
	if v := prof.EmailVerified; v == nil || !*v {
		_, sent := LookupClaim(prof.Claims, "email_verified")
		if v != nil || sent || !p.AllowUnverifiedEmail {
			return false, "this sign-in's e-mail address is not verified"
		}
		// allow_unverified_email: no email_verified claim at all is accepted.
	}
	local, domain, ok := strings.Cut(prof.Email, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return false, "this sign-in's e-mail address is not of the form name@domain"
	}
	domain = strings.ToLower(domain)
	for _, pattern := range p.EmailDomains {
		if emailDomainMatches(strings.ToLower(pattern), domain) {
			return true, ""
		}
	}
	return false, "this sign-in's e-mail address is in " + reasonQuote(domain)
}

// emailDomainMatches compares a lowercased pattern ("example.com" or "*.example.com") with
// a lowercased address domain. The whole domain is compared: a wildcard matches only at a
// dot boundary and never the bare parent, and a domain with a trailing dot (or any empty
// label) never matches.
func emailDomainMatches(pattern, domain string) bool {
	if domain == "" || strings.HasSuffix(domain, ".") || strings.HasPrefix(domain, ".") || strings.Contains(domain, "..") {
		return false
	}
	if parent, ok := strings.CutPrefix(pattern, "*."); ok {
		return len(domain) > len(parent)+1 && strings.HasSuffix(domain, "."+parent)
	}
	return domain == pattern
}

// authAgeUnmet returns why the max_auth_age rule fails ("" when it holds) and whether a
// new sign-in can fix it. A sign-in that is too old or undated can be redone; an auth_time
// more than AuthTimeSkew in the future comes from a wrong clock, and a new sign-in at the
// same OP would carry the same error, so asking for one would only loop.
func (p *Policy) authAgeUnmet(authTime int64, now time.Time) (reason string, canStepUp bool) {
	need := "this page requires a sign-in within the last " + reasonDuration(p.MaxAuthAge)
	if authTime <= 0 {
		return need + "; this sign-in does not say when it happened (no auth_time)", true
	}
	age := now.Sub(time.Unix(authTime, 0))
	if age < -AuthTimeSkew {
		return need + "; this sign-in's time (auth_time) is " + reasonDuration(-age) +
			" in the future, so the identity provider's clock or the gateway's is wrong", false
	}
	if age > p.MaxAuthAge {
		return need + "; this sign-in happened " + reasonDuration(age) + " ago", true
	}
	return "", false
}

// reasonMaxValue bounds each quoted value in a Reason, in bytes before quoting.
const reasonMaxValue = 64

// reasonMaxItems bounds how many items of a list a Reason shows.
const reasonMaxItems = 5

// reasonQuote quotes claim-derived or configured text for a Reason: control and format
// characters are removed, invalid UTF-8 becomes U+FFFD, the text is cut to reasonMaxValue
// bytes at a character boundary (marked with "…"), then Go-quoted.
func reasonQuote(s string) string {
	var b strings.Builder
	cut := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if (r != utf8.RuneError || size != 1) && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) {
			continue // invalid UTF-8 decodes as U+FFFD and is kept as that
		}
		if b.Len()+utf8.RuneLen(r) > reasonMaxValue {
			cut = true
			break
		}
		b.WriteRune(r)
	}
	if cut {
		b.WriteString("…")
	}
	return strconv.Quote(b.String())
}

// reasonHas describes a single claim value: quoted, or "none".
func reasonHas(s string) string {
	if s == "" {
		return "none"
	}
	return reasonQuote(s)
}

// reasonList quotes up to reasonMaxItems values joined with commas and conj ("or"/"and")
// before the last one; a longer list ends in "… (N in all)".
func reasonList(list []string, conj string) string {
	quoted := make([]string, 0, min(len(list), reasonMaxItems))
	for _, v := range list[:min(len(list), reasonMaxItems)] {
		quoted = append(quoted, reasonQuote(v))
	}
	return joinReason(quoted, len(list), conj)
}

func joinReason(items []string, total int, conj string) string {
	switch {
	case total > len(items):
		return strings.Join(items, ", ") + ", … (" + strconv.Itoa(total) + " in all)"
	case len(items) == 1:
		return items[0]
	case len(items) == 2:
		return items[0] + " " + conj + " " + items[1]
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + conj + " " + items[len(items)-1]
}

// reasonDuration renders d rounded to the second, without trailing zero units: "15m",
// "1h30m", "45s", "2h0m5s".
func reasonDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Second {
		return "less than 1s"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// hasControl reports whether s holds a control character or invalid UTF-8.
func hasControl(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// quoteAll quotes every value of a configured list for an error message.
func quoteAll(list []string) string {
	quoted := make([]string, len(list))
	for i, v := range list {
		quoted[i] = strconv.Quote(v)
	}
	return strings.Join(quoted, ", ")
}
