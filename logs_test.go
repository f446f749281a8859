package trustgate

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// TestSES07_NoSecretsInLogs captures every log line, at debug level, of a successful login,
// a logout and refused logins, and checks that no token, code, state, cookie value or
// secret appears in any of them.
func TestSES07_NoSecretsInLogs(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	g := newGateway(t)
	g.h.logger = zap.New(core)

	g.op.SetAutoLogin("bindid-known")
	authURL := g.startLogin(g.browser, "/app")
	cb := g.authorize(authURL)
	if resp, _ := g.get(g.noRedirects(), cb.String()); resp.StatusCode != http.StatusFound {
		t.Fatalf("login callback = %d", resp.StatusCode)
	}
	s := g.storeOnly(t)
	cookie := g.sessionCookie(g.browser)
	g.get(g.browser, cb.String()) // replayed callback: refused

	for _, f := range []oidctest.Faults{{IDTokenWrongNonce: true}, {UserinfoStatus: 500}, {TokenError: "invalid_grant"}} {
		g.op.SetFaults(f)
		g.navigate(g.newBrowser(), "/app")
	}
	g.op.SetFaults(oidctest.Faults{})
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/.trustgate/logout", nil)
	do(t, g.browser, req)

	secrets := map[string]string{
		"access token": s.AccessToken, "id token": s.IDToken, "refresh token": s.RefreshToken,
		"code": cb.Query().Get("code"), "state": cb.Query().Get("state"), "nonce": authURL.Query().Get("nonce"),
		"session cookie": cookie, "client secret": oidctest.DefaultClient().Secret, "cookie secret": testSecret,
	}
	if logs.Len() < 6 {
		t.Fatalf("captured %d log lines; the test needs the login, refusals and logout logged", logs.Len())
	}
	for _, e := range logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + fmt.Sprint(v)
		}
		for what, secret := range secrets {
			if secret != "" && strings.Contains(line, secret) {
				t.Errorf("log line %q contains the %s", e.Message, what)
			}
		}
	}
}
