package trustgate

import (
	"context"
	"net/http"
	"net/url"
	"testing"
)

// Threat model (docs/threat-model.md) LO-12, LO-14: RP-initiated logout (logout.go) with the store down, and no front-channel logout.

func TestLO12_LogoutWithStoreDownKeepsTheSession(t *testing.T) {
	g := newGateway(t)
	f := withFaultStore(g)
	g.mustLogin("bindid-known")
	f.set(false, false, true, false)
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/.trustgate/logout", nil)
	req.Header.Set("Accept", "application/json")
	resp, _ := do(t, g.browser, req)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("logout with the store down = %d, want 503 (never a success that did not happen)", resp.StatusCode)
	}
	if g.sessionCookie(g.browser) == "" {
		t.Error("the cookie was cleared although the session still exists")
	}
	f.set(false, false, false, false)
	if resp, _ := do(t, g.browser, req.Clone(context.Background())); resp.StatusCode != http.StatusOK || g.store.Len() != 0 {
		t.Errorf("logout after recovery = %d, sessions %d; want 200, 0", resp.StatusCode, g.store.Len())
	}
}

// TestFrontChannelLogoutIsNotOffered backs the N/A of LO-14: the gateway serves no
// front-channel logout URI, so an unauthenticated GET with iss and sid from anywhere ends
// nothing.
func TestFrontChannelLogoutIsNotOffered(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	sid := g.sid()
	q := url.Values{"iss": {g.op.Issuer()}, "sid": {sid}}.Encode()
	for _, p := range []string{"/.trustgate/frontchannel-logout", "/.trustgate/frontchannel_logout", "/.trustgate/logout/frontchannel", "/.trustgate/fc-logout"} {
		req, _ := http.NewRequest(http.MethodGet, g.srv.URL+p+"?"+q, nil)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, _ := do(t, http.DefaultClient, req)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404 (no front-channel logout endpoint)", p, resp.StatusCode)
		}
	}
	// GET on the logout endpoint itself only shows a confirmation form.
	resp, _ := do(t, http.DefaultClient, mustRequest(t, http.MethodGet, g.srv.URL+"/.trustgate/logout?"+q))
	if resp.StatusCode != http.StatusOK || g.store.Len() != 1 {
		t.Errorf("GET /.trustgate/logout?iss&sid: %d, sessions %d; want the form and the session kept", resp.StatusCode, g.store.Len())
	}
	if resp, _ := g.api("/app"); resp.StatusCode != http.StatusOK {
		t.Errorf("the session no longer works: %d", resp.StatusCode)
	}
}
