package provider

import (
	"fmt"

	"github.com/trustgate/trustgate/trust"
)

// idDataweb is ID Dataweb's Gateway (OIDC) integration (shared/seeds/002 "Identity
// Binding", and ID Dataweb's "Interpreting Results — Gateway" and "The ID Token" pages):
//   - the ID token (RS256) carries the verification result: policyDecision, which the
//     Gateway always settles to "approve" or "deny", and the scores idwRiskScore and
//     idwTrustScore (strings such as "100");
//   - there is no alias claim: the application's account is matched by the prefilled
//     profile, which the login_hint carries in ID Dataweb's own format (iddataweb_hint.go).
var idDataweb = Profile{
	Name:            IDDataweb,
	Title:           "ID Dataweb",
	LoginHintFormat: HintIDDataweb,
	Decision:        &Decision{Claim: "policyDecision", Approve: "approve"},
	Verification: trust.VerificationClaims{
		Decision:   "policyDecision",
		RiskScore:  "idwRiskScore",
		TrustScore: "idwTrustScore",
	},
}

// Decision is a provider's verdict that a login must carry to create a session.
type Decision struct {
	// Claim is the claim that carries the verdict.
	Claim string
	// Approve is the one value that lets the login through; anything else, or no value,
	// is a denial.
	Approve string
}

// DecisionError is a login the provider did not approve.
type DecisionError struct {
	Claim string
	// Value is what the provider sent ("" when the claim was absent or not a string).
	Value string
}

func (e *DecisionError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("the provider's verdict (%s) is missing", e.Claim)
	}
	return fmt.Sprintf("the provider's verdict (%s) is %q, not approve", e.Claim, truncate(e.Value, 40))
}

// Check returns nil when the login is approved: the ID token's claim says Approve, or,
// when the ID token has no such claim, userinfo's. A missing or unknown value is a
// *DecisionError.
func (d *Decision) Check(idToken, userinfo map[string]any) error {
	v, inID := idToken[d.Claim]
	if !inID {
		v = userinfo[d.Claim]
	}
	s, _ := v.(string)
	if s != d.Approve {
		return &DecisionError{Claim: d.Claim, Value: s}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
