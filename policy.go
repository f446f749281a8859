package trustgate

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

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

// isPolicyOnly reports whether the handler is a policy block: require (and acr_levels)
// lines, nothing that configures a provider or a store.
func (h *Handler) isPolicyOnly() bool {
	return h.Require != nil && h.Provider == "" && h.Issuer == "" && h.ClientID == "" && h.ClientSecret == "" &&
		len(h.Secrets) == 0 && len(h.Scopes) == 0 && h.SessionStore == nil && h.RedirectURL == "" &&
		h.Assertion == nil && len(h.HeaderMappings) == 0 && h.StandardHeaders == "" && h.CookieName == "" && h.Bearer == nil
}

// provisionPolicyOnly sets up a policy block. Its acr_at_least rule may use the acr_levels
// of the block that logged the user in; then it is compiled on first use per outer block.
func (h *Handler) provisionPolicyOnly() error {
	h.policyOnly = true
	h.policies = new(sync.Map)
	if h.UserClaim != "" || h.GroupsClaim != "" {
		return errors.New("user_claim and groups_claim belong in the trustgate block that signs users in; a policy block (only require lines) uses that block's")
	}
	h.warnUnverifiedEmail()
	// acr_at_least without own levels uses the outer block's; email_domain without own
	// allow_unverified_email follows the outer block's. Then check everything else now and
	// compile per outer block on first use (policyFor).
	laterLevels := h.Require.ACRAtLeast != "" && len(h.ACRLevels) == 0
	laterEmail := len(h.Require.EmailDomains) > 0 && !h.AllowUnverifiedEmail
	if laterLevels || laterEmail {
		probe := *h.Require
		if laterLevels {
			probe.ACRAtLeast = ""
		}
		if _, err := probe.compile(h.ACRLevels, h.AllowUnverifiedEmail); err != nil {
			return err
		}
		return nil
	}
	p, err := h.Require.compile(h.ACRLevels, h.AllowUnverifiedEmail)
	if err != nil {
		return err
	}
	if p == nil {
		return errors.New("require: a trustgate block without issuer needs at least one require rule")
	}
	h.policy = p
	return nil
}

func (h *Handler) policyFor(outer *policyGate) (*trust.Policy, error) {
	if h.policy != nil || !h.policyOnly {
		return h.policy, nil
	}
	if v, ok := h.policies.Load(outer); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.(*trust.Policy), nil
	}
	levels := h.ACRLevels
	if len(levels) == 0 {
		levels = outer.levels
	}
	p, err := h.Require.compile(levels, h.AllowUnverifiedEmail || outer.allowUnverifiedEmail)
	if err != nil {
		err = fmt.Errorf("%w (acr_levels of the trustgate block for %s)", err, outer.issuer)
		h.policies.Store(outer, err)
		return nil, err
	}
	h.policies.Store(outer, p)
	return p, nil
}

// warnUnverifiedEmail logs, at start, that allow_unverified_email weakens email_domain.
func (h *Handler) warnUnverifiedEmail() {
	if h.AllowUnverifiedEmail {
		h.logger.Warn("allow_unverified_email is set: require email_domain accepts e-mail addresses the provider does not mark verified; at some providers anyone who can edit their profile's e-mail passes the rule",
			zap.String("reason", "unverified_email_allowed"))
	}
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

// servePolicyOnly checks the policy of a policy block against the session found by the
// trustgate block before it on this route.
func (h *Handler) servePolicyOnly(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	st, _ := caddyhttp.GetVar(r.Context(), authVar).(*authState)
	if st == nil {
		// Fail closed: this route has no authenticating block before the policy.
		h.logger.Error("a trustgate policy block (only require lines) ran before any trustgate block that signs users in; put policy blocks inside `route` (or handle/handle_path): Caddy sorts site-level trustgate blocks with path matchers ahead of the one without",
			zap.String("reason", "policy_without_login"), zap.String("path", r.URL.Path))
		return h.refuser.Refuse(w, r, configError("policy_without_login"))
	}
	p, err := h.policyFor(st.gate)
	if err != nil {
		h.logger.Error("route policy cannot be checked", zap.String("reason", "policy_invalid"), zap.Error(err))
		return h.refuser.Refuse(w, r, configError("policy_invalid"))
	}
	if done, err := st.gate.enforce(w, r, p, st); done {
		return err
	}
	return next.ServeHTTP(w, r)
}

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
		Header: http.Header{"Www-Authenticate": {`Bearer realm="trustgate", error="insufficient_scope", error_description="` + authParam(u.Reason) + `", scope="` + authParam(scope) + `"`}}}
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
