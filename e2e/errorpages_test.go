package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// error_pages caddy: the gateway returns its refusals to Caddy as errors, and the site's
// own handle_errors route renders them with {http.error.status_code} and
// {http.auth.trustgate.reason}; the refusal's headers are still set.

// errorPagesSite is a site whose refusals a handle_errors route renders.
func errorPagesSite(site func(url, clientID, cookie, headers, extra, routes string) string) string {
	return site(e2e.errorPagesURL, plainClientID, "tg_errpages", "basic", "error_pages caddy", `handle_errors {
		respond "site page: {http.error.status_code} {http.auth.trustgate.reason}" {http.error.status_code}
	}`)
}

func TestE2EErrorPagesCaddy(t *testing.T) {
	get := func(path string, header http.Header) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e2e.errorPagesURL+path, nil)
		req.Header = header
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	// An API request without a session: 401 login_required, rendered by the site.
	resp, body := get("/api/errpages-items", http.Header{"Accept": {"application/json"}})
	if resp.StatusCode != http.StatusUnauthorized || body != "site page: 401 login_required" {
		t.Errorf("API without a session: %d %q, want 401 %q", resp.StatusCode, body, "site page: 401 login_required")
	}
	if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "OIDC ") {
		t.Errorf("WWW-Authenticate = %q, want the gateway's OIDC challenge kept", ch)
	}
	if seen := upstreamSaw("/api/errpages-items"); len(seen) != 0 {
		t.Errorf("the upstream was reached: %v", seen)
	}

	// A callback no login of this browser started: 400 callback_unknown_state.
	resp, body = get("/.trustgate/callback?state=not-a-login&code=x", http.Header{"Accept": {"text/html"}})
	if resp.StatusCode != http.StatusBadRequest || body != "site page: 400 callback_unknown_state" {
		t.Errorf("stray callback: %d %q, want 400 %q", resp.StatusCode, body, "site page: 400 callback_unknown_state")
	}

	// A navigation is not a refusal: it is still sent to the provider.
	resp, _ = get("/page", http.Header{"Accept": {"text/html"}, "Sec-Fetch-Mode": {"navigate"}})
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), e2e.opURL) {
		t.Errorf("navigation: %d Location %q, want 302 to the provider", resp.StatusCode, resp.Header.Get("Location"))
	}
}
