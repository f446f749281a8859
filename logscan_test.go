package trustgate

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
)

// TestSES07_NoSecretInAnyLogLine drives every flow that logs — login, step-up, refresh,
// refused refresh, alias linking, logout, back-channel logout (valid, invalid, replayed), a
// refused callback, CIBA — with every log level captured, then scans each line for the
// tokens, codes, cookies and secrets that passed through (DESIGN.md: none is logged).
func TestSES07_NoSecretInAnyLogLine(t *testing.T) {
	clk := newTestClock()
	g := newLinkGateway(t, withClock(clk, 5*time.Minute), withStepUpUsers(), withCIBA(clk))
	logs := observeLogs(g.h)

	var secrets []string
	remember := func() {
		s := g.stored()
		cookie := g.sessionCookie(g.browser)
		secrets = append(secrets, s.AccessToken, s.RefreshToken, s.IDToken, cookie, s.ID)
	}
	g.mustLogin("bindid-new")
	remember()
	// Step-up, then a refresh, then a refused refresh.
	p := g.addPolicyBlock(&PolicyConfig{ACRAtLeast: acrHigh})
	p.logger = g.h.logger
	g.navigate(g.browser, "/admin/x")
	remember()
	clk.Advance(5 * time.Minute)
	g.api("/app")
	remember()
	// Alias linking.
	g.answerWith("/legacy-login", "X-Auth-Set-Alias", "username@domain")
	g.navigate(g.browser, "/legacy-login")
	waitFor(t, "the feedback", func() bool { return g.op.LastFeedback() != nil })
	g.answerWith("", "", "")
	// A refused callback with a code in it.
	do(t, g.noRedirects(), navRequest(t, g.srv.URL+"/.trustgate/callback?state="+strings.Repeat("A", 43)+"&code=the-secret-code-value"))
	secrets = append(secrets, "the-secret-code-value")
	// Back-channel logout: invalid, valid, replayed.
	tok := g.logoutToken(oidctest.SubjectBindIDNew, "", nil, oidctest.LogoutTokenOptions{})
	secrets = append(secrets, tok)
	g.postLogoutToken(url.Values{"logout_token": {tok + "x"}})
	g.postLogoutToken(url.Values{"logout_token": {tok}})
	g.postLogoutToken(url.Values{"logout_token": {tok}})
	// A new login, a refresh the provider refuses, a logout.
	g.op.SetAutoLogin("bindid-known")
	g.navigate(g.browser, "/again")
	remember()
	g.op.SetFaults(oidctest.Faults{RefreshError: "invalid_grant", RefreshErrorStatus: http.StatusBadRequest})
	clk.Advance(5 * time.Minute)
	g.api("/app")
	g.op.SetFaults(oidctest.Faults{})
	g.mustLogin("bindid-known")
	remember()
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/.trustgate/logout", nil)
	req.Header.Set("Accept", "text/html")
	do(t, g.noRedirects(), req)
	// CIBA.
	id := g.cibaStart(http.DefaultClient, "ola")
	secrets = append(secrets, id)
	if auth, ok := g.op.CIBAByHint("ola"); ok {
		secrets = append(secrets, auth)
		_ = g.op.CIBAApprove(auth)
	}
	clk.Advance(5 * time.Second)
	g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": id})
	secrets = append(secrets, oidctest.DefaultClientSecret, testSecret)

	entries := logs.entries()
	if len(entries) < 10 {
		t.Fatalf("only %d log lines captured; the flows did not run", len(entries))
	}
	for _, e := range entries {
		line := e.Message + " " + e.Fields
		for _, s := range secrets {
			if len(s) >= 12 && strings.Contains(line, s) {
				t.Errorf("log line %q contains a secret (%.12s…)", web.Clip(line, 200), s)
			}
			// Also no long fragment of a token (a clipped token is still a leak).
			if len(s) >= 60 && strings.Contains(line, s[len(s)/2:len(s)/2+24]) {
				t.Errorf("log line %q contains a fragment of a secret", web.Clip(line, 200))
			}
		}
	}
}
