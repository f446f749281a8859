package trustgate

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/session"
	"github.com/trustgate/trustgate/trust"
)

// PolicyConfig is a route policy: every rule that is set must hold.
type PolicyConfig struct {
	// ACR: the login's acr must be one of these.
	ACR []string `json:"acr,omitempty"`
	// ACRAtLeast: the login's acr must be this level or a stronger one in acr_levels.
	ACRAtLeast string `json:"acr_at_least,omitempty"`
	// AMR: every one of these must be among the login's amr values.
	AMR []string `json:"amr,omitempty"`
	// Claims: each claim (a path, as for header mappings) must equal one of its values (for
	// an array claim: contain one of them).
	Claims []ClaimRequirement `json:"claims,omitempty"`
	// Groups: the user must be in at least one of these groups (groups_claim, compared
	// exactly). Logging in again cannot change a user's groups, so an unmet group rule is
	// answered with 403, never with a step-up login.
	Groups []string `json:"groups,omitempty"`
	// EmailDomains: the e-mail must be verified and in one of these domains; "example.com"
	// is that domain only, "*.example.com" any subdomain of it. allow_unverified_email on the
	// trustgate block also accepts a login without email_verified.
	EmailDomains []string `json:"email_domains,omitempty"`
	// MaxAuthAge: the user must have authenticated at the provider at most this long ago
	// (auth_time).
	MaxAuthAge caddy.Duration `json:"max_auth_age,omitempty"`
	// KnownUser: the user must have an alias (alias_claim), i.e. be linked to an account.
	KnownUser bool `json:"known_user,omitempty"`
	// Scopes: the bearer access token (bearer) must have been granted every one of these
	// scopes; otherwise 403 insufficient_scope. A cookie session never meets this rule (its
	// scopes are unknown to the gateway): it gets 403, never a step-up.
	Scopes []string `json:"scopes,omitempty"`
}

// ClaimRequirement requires the claim at Claim to equal one of Values.
type ClaimRequirement struct {
	Claim  string   `json:"claim"`
	Values []string `json:"values"`
}

// stepUpGuard is how long after a step-up login an unmet policy is answered with 403
// rather than another trip to the provider: the provider was asked and did not deliver,
// so asking again at once would loop.
const stepUpGuard = 5 * time.Minute

// maxRecentStepUps bounds the step-ups within stepUpGuard, whatever policies asked for them.
const maxRecentStepUps = 3

// compile checks the policy and turns it into a trust.Policy; allowUnverifiedEmail is the
// block's allow_unverified_email (for a policy block: its own or the outer block's).
func (c *PolicyConfig) compile(levels []string, allowUnverifiedEmail bool) (*trust.Policy, error) {
	if c.ACRAtLeast == "" {
		levels = nil // acr_levels only serve acr_at_least
	}
	p := &trust.Policy{
		ACR:          c.ACR,
		ACRAtLeast:   c.ACRAtLeast,
		ACRLevels:    levels,
		AMR:          c.AMR,
		EmailDomains: c.EmailDomains,
		MaxAuthAge:   time.Duration(c.MaxAuthAge),
		KnownUser:    c.KnownUser,
		Groups:       c.Groups,
		Scopes:       c.Scopes,
	}
	if len(c.EmailDomains) > 0 {
		p.AllowUnverifiedEmail = allowUnverifiedEmail // only where it changes a rule (fingerprint)
	}
	for _, cr := range c.Claims {
		p.Claims = append(p.Claims, trust.ClaimRule{Claim: cr.Claim, Values: cr.Values})
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("require: %w", err)
	}
	if p.IsZero() {
		return nil, nil
	}
	return p, nil
}

// policyGate checks a route policy for an authenticated request: it lets the request on,
// starts a step-up login (a browser whose session can meet the rules by signing in again),
// or refuses with 403 naming the unmet rules. One per authenticating trustgate block; the
// policy blocks after it on a route use it too, with their own rules.
type policyGate struct {
	*base
	login *loginFlow    // step-up logins
	own   *trust.Policy // the block's own require rules, or nil
	// For the policy blocks after this one: the acr_levels an acr_at_least rule without
	// its own levels uses, and whether email_domain accepts unverified addresses.
	levels               []string
	allowUnverifiedEmail bool
	issuer               string // names the block in a policy block's configuration error
}

// authState is what an authenticating block leaves for the policy blocks after it.
type authState struct {
	gate *policyGate
	s    *session.Session // nil for a bearer request
	rd   *rendered
	// bearer: the request was authenticated by a bearer access token granted scopes.
	bearer bool
	scopes []string
}

// String keeps the state out of anything that prints Caddy variables ({vars.*}).
func (*authState) String() string { return "trustgate" }

const authVar = "trustgate.auth"

// configError is the 500 of a route whose policy cannot be checked (the log says why).
func configError(reason string) *web.Refusal {
	return &web.Refusal{Status: http.StatusInternalServerError, Reason: reason, Form: web.HTML, Title: "Configuration error",
		Message: "This page is protected by a rule that cannot be checked. The site's administrator has been told."}
}

// scopeRefusal is 403 insufficient_scope (RFC 6750 §3.1) for a bearer request.
func scopeRefusal(p *trust.Policy, u *trust.Unmet) *web.Refusal {
	scope := strings.Join(p.Scopes, " ")
	return &web.Refusal{Status: http.StatusForbidden, Reason: "insufficient_scope", Message: u.Reason, Form: web.JSON,
		Fields: map[string]any{"scope": scope},
		Header: http.Header{"Www-Authenticate": {`Bearer realm="trustgate", error="insufficient_scope", error_description="` + web.AuthParam(u.Reason) + `", scope="` + web.AuthParam(scope) + `"`}}}
}

// policyRefusal is the 403 of an unmet route policy: JSON names the first unmet rule
// (requirement) and lists them all (unmet); the page lists their reasons under msg.
func policyRefusal(unmet []trust.Unmet, form web.Form, msg string) *web.Refusal {
	items := make([]string, len(unmet))
	for i, u := range unmet {
		items[i] = u.Reason
	}
	return &web.Refusal{Status: http.StatusForbidden, Reason: "insufficient_authentication", Message: unmet[0].Reason, Form: form,
		Title: "Access denied", PageMessage: msg, Items: items,
		Fields: map[string]any{"requirement": unmet[0].Rule, "unmet": unmetRules(unmet)}}
}

type unmetRule struct {
	Rule   string `json:"rule"`
	Reason string `json:"message"`
}

func unmetRules(us []trust.Unmet) []unmetRule {
	out := make([]unmetRule, len(us))
	for i, u := range us {
		out[i] = unmetRule{Rule: u.Rule, Reason: u.Reason}
	}
	return out
}

// enforce checks p for the session in st. It returns true when it has answered the
// request (with the refusal's error under error_pages caddy): a step-up login (browser)
// or a 403 (page or JSON).
func (g *policyGate) enforce(w http.ResponseWriter, r *http.Request, p *trust.Policy, st *authState) (bool, error) {
	if p == nil {
		return false, nil
	}
	unmet, stepUp := p.Check(st.rd.profile, g.now())
	if u := p.CheckScopes(st.scopes, st.bearer); u != nil {
		if st.bearer && len(unmet) == 0 {
			g.logger.Info("route policy not met", zap.String("reason", "insufficient_scope"), zap.Strings("rules", []string{u.Rule}), zap.Bool("bearer", true))
			g.metrics.policyDenied([]string{u.Rule})
			return true, g.refuser.Refuse(w, r, scopeRefusal(p, u))
		}
		unmet, stepUp = append(unmet, *u), nil // logging in again cannot grant scopes
	}
	if len(unmet) == 0 {
		return false, nil
	}
	if st.bearer {
		// A bearer request cannot step up: 403, never a redirect.
		rules := make([]string, len(unmet))
		for i, u := range unmet {
			rules[i] = u.Rule
		}
		g.logger.Info("route policy not met", zap.String("reason", "policy_unmet"), zap.Strings("rules", rules), zap.Bool("bearer", true))
		g.metrics.policyDenied(rules)
		return true, g.refuser.Refuse(w, r, policyRefusal(unmet, web.JSON, ""))
	}
	fp := p.Fingerprint()
	now := g.now()
	// A step-up for this policy within the guard window came back short: answer 403, not
	// another trip. The window is no longer than max_auth_age, so a step-up that met the
	// rule and then aged out can be repeated.
	window := stepUpGuard
	if p.MaxAuthAge > 0 && p.MaxAuthAge < window {
		window = p.MaxAuthAge
	}
	var recent []session.StepUpMark
	justSteppedUp := false
	for _, m := range st.s.StepUps {
		if age := now.Sub(time.Unix(m.At, 0)); age >= 0 && age < stepUpGuard {
			recent = append(recent, m)
			if m.Policy == fp && age < window {
				justSteppedUp = true
			}
		}
	}
	// Policies that take turns (a site rule and a route rule no login can meet together)
	// stop after a few step-ups in the window.
	if len(recent) >= maxRecentStepUps {
		justSteppedUp = true
	}
	rules := make([]string, len(unmet))
	for i, u := range unmet {
		rules[i] = u.Rule
	}
	if stepUp != nil && !justSteppedUp && web.IsNavigation(r) {
		g.logger.Info("step-up login", zap.String("reason", "step_up"), zap.Strings("rules", rules),
			zap.String("session_hash", sessionHash(st.s.ID)))
		g.metrics.stepUp()
		g.event(eventStepUp, map[string]any{"reason": "step_up", "rules": rules, "session_hash": sessionHash(st.s.ID)})
		marks := append(recent, session.StepUpMark{Policy: fp, At: now.Unix()})
		return true, g.login.start(w, r, loginRequest{returnTo: web.ReturnTo(r), stepUp: stepUp, marks: marks})
	}
	g.logger.Info("route policy not met", zap.String("reason", "policy_unmet"), zap.Strings("rules", rules),
		zap.Bool("after_step_up", justSteppedUp), zap.String("session_hash", sessionHash(st.s.ID)))
	g.metrics.policyDenied(rules)
	if !web.IsNavigation(r) {
		return true, g.refuser.Refuse(w, r, policyRefusal(unmet, web.JSON, ""))
	}
	msg := "This page needs more than your current sign-in provides:"
	if justSteppedUp {
		msg = "You signed in again, but this page's requirements are still not met:"
	}
	return true, g.refuser.Refuse(w, r, policyRefusal(unmet, web.HTML, msg))
}
