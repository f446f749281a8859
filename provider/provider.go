// Package provider holds what trustgate knows about particular OpenID Providers: one file
// per provider profile (generic, bindid, iddataweb, bankid), each data and a few small
// functions. A profile names the claims the provider uses (the alias, the verification
// verdict), the userinfo it sends and the issuer that signs it, the login_hint format it
// reads and the decision a login must carry. The gateway asks the profile; nowhere else
// is there an "if provider == ..." branch.
//
// Every value here follows what the provider publishes (shared/seeds/ and the providers'
// own documentation, cited in each file), never what trustgate's own test OP does.
package provider

import (
	"fmt"
	"slices"
	"strings"

	"github.com/trustgate/trustgate/trust"
)

// Profile names.
const (
	Generic   = "generic"
	BindID    = "bindid"
	IDDataweb = "iddataweb"
	BankID    = "bankid"
)

// Login hint formats (Profile.LoginHintFormat, the login_hint_format key).
const (
	// HintJWT is trustgate's own login_hint: an ES256 JWT signed with the gateway's
	// assertion keys (verifiable at <path_prefix>/jwks.json), with OIDC claim names.
	HintJWT = "jwt"
	// HintIDDataweb is ID Dataweb's prefill format: HS256 keyed with the client secret
	// (optionally wrapped in a JWE to the provider's key), with ID Dataweb's field names.
	HintIDDataweb = "iddataweb"
)

// Profile is the data of one provider profile. Its zero value is the generic profile.
type Profile struct {
	// Name is the profile's name, as written after `provider`.
	Name string
	// Title is the provider's name for people (logs, pages).
	Title string
	// AliasClaim is the claim that names the user's account in the application; when it is
	// absent the user is new (X-Auth-New-User) and can be linked. "": the provider has no
	// alias claim, so nobody is reported as new.
	AliasClaim string
	// Userinfo is how userinfo is called (get, post, off); "" leaves the gateway's default.
	Userinfo string
	// UserinfoRequireSigned: the provider always signs userinfo (application/jwt), so a
	// plain JSON answer is refused.
	UserinfoRequireSigned bool
	// UserinfoIssuers maps an OIDC issuer of this provider to the "iss" its signed
	// userinfo carries, where the provider publishes that they differ.
	UserinfoIssuers map[string]string
	// LoginHintFormat is the format of an identity-binding login_hint (HintJWT or
	// HintIDDataweb); "" means HintJWT.
	LoginHintFormat string
	// Decision, when set, is the provider's verdict every login must carry.
	Decision *Decision
	// Verification names the claims of the provider's verdict and scores, sent upstream as
	// X-Trust-Policy-Decision, X-Trust-Risk-Score and X-Trust-Trust-Score.
	Verification trust.VerificationClaims
}

var profiles = map[string]*Profile{
	Generic:   &generic,
	BindID:    &bindID,
	IDDataweb: &idDataweb,
	BankID:    &bankID,
}

// Names returns the profile names, sorted.
func Names() []string {
	out := make([]string, 0, len(profiles))
	for n := range profiles {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Lookup returns the profile called name; "" is the generic one.
func Lookup(name string) (*Profile, error) {
	if name == "" {
		name = Generic
	}
	p, ok := profiles[name]
	if !ok {
		return nil, fmt.Errorf("unknown provider %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return p, nil
}

// UserinfoIssuer returns the "iss" the provider's signed userinfo carries for the OIDC
// issuer, or "" when it is the issuer itself (or not published).
func (p *Profile) UserinfoIssuer(issuer string) string {
	return p.UserinfoIssuers[strings.TrimSuffix(issuer, "/")]
}

// IDTokenFirstClaims are the claims of the provider's verdict: the ID token decides them,
// userinfo only fills them in when the ID token has none (like acr, amr and auth_time).
func (p *Profile) IDTokenFirstClaims() []string {
	var out []string
	for _, c := range []string{p.Verification.Decision, p.Verification.RiskScore, p.Verification.TrustScore} {
		if c != "" {
			out = append(out, c)
		}
	}
	if p.Decision != nil && !slices.Contains(out, p.Decision.Claim) {
		out = append(out, p.Decision.Claim)
	}
	return out
}
