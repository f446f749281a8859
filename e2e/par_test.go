package e2e

import (
	"net/url"
	"testing"
)

// Pushed authorization requests (RFC 9126): the site has par required and its client is
// registered with require_pushed_authorization_requests, so oidc-provider refuses any
// authorization request that was not pushed.

const parClientID = "trustgate-e2e-par"

func TestE2EPushedAuthorizationRequest(t *testing.T) {
	// The browser is sent to the provider with client_id and request_uri only: state,
	// nonce, the PKCE challenge and the scopes went over the back channel.
	wantPushedOnly(t, authorizationQuery(t, e2e.parURL+"/par-page"), parClientID)

	// A whole login through the pushed request.
	b := newBrowser(t)
	e := b.login(e2e.parURL+"/par", "bindid-new")
	wantHeaders(t, e.Headers, map[string]string{"X-Auth-Subject": "123e4567-e89b-12d3-a456-426652340001"})
}

// wantPushedOnly checks that an authorization URL's query is client_id and request_uri only:
// everything else went over the back channel (PAR).
func wantPushedOnly(t *testing.T, q url.Values, clientID string) {
	t.Helper()
	if len(q) != 2 || q.Get("client_id") != clientID || q.Get("request_uri") == "" {
		t.Errorf("authorization URL query = %v, want only client_id and request_uri", q)
	}
}
