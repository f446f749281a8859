package trustgate

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
)

// Threat model (docs/threat-model.md) IDT-16: at_hash, and the auth_time and acr checks of the route policy (policy.go).

func TestIDT16_OptionalClaimChecks(t *testing.T) {
	t.Run("at_hash present but wrong", func(t *testing.T) {
		runIDTokenRejections(t, []idtCase{{"bad at_hash", oidctest.Faults{IDTokenBadAtHash: true}}})
	})
	// max_age is the route policy's max_auth_age: its step-up sends max_age and
	// prompt=login; a login that still cannot show a recent auth_time gets 403, never the
	// upstream, and never a second trip to the provider.
	// (The BindID userinfo also carries auth_time, which fills in for an ID token without
	// one; "no auth_time" removes it from both.)
	for _, tc := range []struct {
		name   string
		faults oidctest.Faults
	}{
		{"max_auth_age and no auth_time", oidctest.Faults{
			MutateIDToken:  func(_, c map[string]any) { delete(c, "auth_time") },
			MutateUserinfo: func(_, c map[string]any) { delete(c, "auth_time") },
		}},
		{"max_auth_age and auth_time too old", mutateID(func(_, c map[string]any) { c["auth_time"] = time.Now().Add(-2 * time.Hour).Unix() })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t)
			g.op.SetFaults(tc.faults)
			g.mustLogin("bindid-known") // /app has no policy
			g.addPolicyBlock(&PolicyConfig{MaxAuthAge: caddy.Duration(10 * time.Minute)})
			calls, before := g.upstream.Calls(), g.op.Counts().Authorize
			resp, body := g.navigate(g.browser, "/admin/account")
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%s: %d %q, want 403", tc.name, resp.StatusCode, web.Clip(body, 300))
			}
			if n := g.op.Counts().Authorize - before; n != 1 {
				t.Errorf("authorization requests = %d, want 1 (one step-up, no loop)", n)
			}
			if q := g.op.LastAuthorize(); q.Get("max_age") != "600" || q.Get("prompt") != "login" {
				t.Errorf("step-up max_age=%q prompt=%q, want 600 and login", q.Get("max_age"), q.Get("prompt"))
			}
			if g.upstream.Calls() != calls {
				t.Error("the upstream saw the request")
			}
			if resp, _ := g.api("/admin/account"); resp.StatusCode != http.StatusForbidden {
				t.Errorf("API request: %d, want 403", resp.StatusCode)
			}
		})
	}
	t.Run("essential acr not met: one step-up, then 403", func(t *testing.T) {
		g := newGateway(t, withStepUpUsers())
		g.mustLogin("bindid-new") // its acr cannot reach acrHigh
		g.addPolicyBlock(&PolicyConfig{ACRAtLeast: acrHigh})
		calls, before := g.upstream.Calls(), g.op.Counts().Authorize
		resp, _ := g.navigate(g.browser, "/admin")
		if resp.StatusCode != http.StatusForbidden || g.op.Counts().Authorize-before != 1 || g.upstream.Calls() != calls {
			t.Errorf("acr below acr_at_least: %d, %d step-ups, upstream calls +%d; want 403, 1, 0",
				resp.StatusCode, g.op.Counts().Authorize-before, g.upstream.Calls()-calls)
		}
		if got := g.op.LastAuthorize().Get("acr_values"); !strings.HasPrefix(got, acrHigh) {
			t.Errorf("step-up acr_values = %q, want %s first", got, acrHigh)
		}
	})
}
