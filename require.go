package trustgate

import (
	"errors"
	"fmt"
	"net/http"
	"sync"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/trust"
)

// RequireHandler is a route policy block (http.handlers.trustgate_require): a trustgate
// block with only require lines, placed inside a route after the trustgate block that
// signs users in. It checks its rules against the session (or bearer token) that block
// found, through that block's policyGate: a browser that can meet them by signing in
// again is sent to a step-up login, anyone else gets 403 naming the unmet rules. In the
// Caddyfile it is still written `trustgate { require ... }`.
type RequireHandler struct {
	// Require holds the rules (see PolicyConfig).
	Require *PolicyConfig `json:"require,omitempty"`
	// ACRLevels orders acr values for an acr_at_least rule; default: those of the block that
	// signed the user in.
	ACRLevels []string `json:"acr_levels,omitempty"`
	// AllowUnverifiedEmail lets email_domain accept addresses without email_verified; also
	// on when the signing-in block has it.
	AllowUnverifiedEmail bool `json:"allow_unverified_email,omitempty"`

	logger   *zap.Logger
	policy   *trust.Policy // compiled at Provision, or nil: per signing-in block (policies)
	policies *sync.Map     // *policyGate -> *trust.Policy or error
}

// CaddyModule returns the Caddy module information.
func (RequireHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.trustgate_require",
		New: func() caddy.Module { return new(RequireHandler) },
	}
}

// Provision compiles the rules. Its acr_at_least rule may use the acr_levels
// of the block that logged the user in; then it is compiled on first use per outer block.
func (h *RequireHandler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.policies = new(sync.Map)
	if err := h.Validate(); err != nil {
		return err
	}
	warnUnverifiedEmail(h.logger, h.AllowUnverifiedEmail)
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

// Validate checks that the block has rules.
func (h *RequireHandler) Validate() error {
	if h.Require == nil {
		return errors.New("trustgate_require: no require rule; a policy block needs at least one require line")
	}
	return nil
}

// policyFor is the block's policy for users signed in by outer: compiled once per outer
// block when it depends on that block's acr_levels or allow_unverified_email.
func (h *RequireHandler) policyFor(outer *policyGate) (*trust.Policy, error) {
	if h.policy != nil {
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

// ServeHTTP checks the policy of a policy block against the session found by the
// trustgate block before it on this route.
func (h *RequireHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	st, _ := caddyhttp.GetVar(r.Context(), authVar).(*authState)
	if st == nil {
		// Fail closed: this route has no authenticating block before the policy.
		h.logger.Error("a trustgate policy block (only require lines) ran before any trustgate block that signs users in; put policy blocks inside `route` (or handle/handle_path): Caddy sorts site-level trustgate blocks with path matchers ahead of the one without",
			zap.String("reason", "policy_without_login"), zap.String("path", r.URL.Path))
		return web.Refuser{}.Refuse(w, r, configError("policy_without_login")) // no block to take error_pages from
	}
	p, err := h.policyFor(st.gate)
	if err != nil {
		h.logger.Error("route policy cannot be checked", zap.String("reason", "policy_invalid"), zap.Error(err))
		return st.gate.refuser.Refuse(w, r, configError("policy_invalid"))
	}
	if done, err := st.gate.enforce(w, r, p, st); done {
		return err
	}
	return next.ServeHTTP(w, r)
}

// warnUnverifiedEmail logs, at start, that allow_unverified_email weakens email_domain.
func warnUnverifiedEmail(logger *zap.Logger, on bool) {
	if on {
		logger.Warn("allow_unverified_email is set: require email_domain accepts e-mail addresses the provider does not mark verified; at some providers anyone who can edit their profile's e-mail passes the rule",
			zap.String("reason", "unverified_email_allowed"))
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*RequireHandler)(nil)
	_ caddy.Validator             = (*RequireHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*RequireHandler)(nil)
)
