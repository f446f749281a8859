package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// browser is one isolated browser context (its own cookies) in the shared Chromium.
type browser struct {
	t   *testing.T
	ctx context.Context // the tab, with the test's deadline
	tab context.Context // the tab without deadline, for artifacts after a timeout
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	tab, cancel := chromedp.NewContext(e2e.browser, chromedp.WithNewBrowserContext())
	ctx, cancelTimeout := context.WithTimeout(tab, 45*time.Second)
	b := &browser{t: t, ctx: ctx, tab: tab}
	t.Cleanup(func() {
		if t.Failed() {
			b.saveArtifacts()
		}
		cancelTimeout()
		cancel()
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("opening a browser tab: %v", err)
	}
	return b
}

// saveArtifacts keeps a screenshot and the current URL of a failed test next to the
// provider's and Caddy's logs.
func (b *browser) saveArtifacts() {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(b.t.Name())
	ctx, cancel := context.WithTimeout(b.tab, 5*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90)); err == nil {
		_ = os.WriteFile(filepath.Join(e2e.artifacts, name+".jpeg"), png, 0o644)
	}
	url, _ := chromedp.Run(ctx, chromedp.Location())
	b.t.Logf("artifacts in %s: %s.jpeg (page %s), op.log, caddy.log", e2e.artifacts, name, url)
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// clickAndWait clicks sel and waits for the page load that follows.
func (b *browser) clickAndWait(what, sel string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel)))); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// login opens the protected URL, signs in as user on the provider's own login page,
// consents, and returns what the upstream received on landing back at the URL.
func (b *browser) login(protected, user string) echoed {
	b.t.Helper()
	b.do("opening "+protected, chromedp.Navigate(protected))
	b.do("waiting for the provider's login page",
		chromedp.WaitVisible(chromedp.CSS(`input[name="login"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="login"]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "any password"))
	b.clickAndWait("submitting the login form", `button[type="submit"]`)
	b.do("waiting for the provider's consent page", chromedp.WaitReady(chromedp.CSS(`input[name="prompt"][value="consent"]`)))
	b.clickAndWait("consenting", `button[type="submit"]`)
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](fmt.Sprintf(`location.href === %q`, protected), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		url, _ := chromedp.Run(b.ctx, chromedp.Location())
		b.t.Fatalf("after login the browser is at %s, want the original URL %s", url, protected)
	}
	return b.pageEcho()
}

// pageEcho decodes the upstream's JSON answer shown as the current page.
func (b *browser) pageEcho() echoed {
	b.t.Helper()
	text, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(document.querySelector("pre") || document.body).innerText`))
	if err != nil {
		b.t.Fatalf("reading the page: %v", err)
	}
	var e echoed
	if err := json.Unmarshal([]byte(text), &e); err != nil {
		b.t.Fatalf("the page is not the upstream's echo: %v\n%.500s", err, text)
	}
	return e
}

// fetch runs fetch() in the page (same origin, with its cookies) and returns status and body.
func (b *browser) fetch(method, path string, headers map[string]string) (int, string) {
	b.t.Helper()
	if headers == nil {
		headers = map[string]string{}
	}
	h, _ := json.Marshal(headers)
	type result struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	r, err := chromedp.Run(b.ctx, chromedp.Evaluate[result](fmt.Sprintf(
		`fetch(%q, {method: %q, headers: %s, redirect: "manual"}).then(async r => ({status: r.status, body: await r.text()}))`,
		path, method, h), chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("fetch %s %s in the page: %v", method, path, err)
	}
	return r.Status, r.Body
}

func wantHeaders(t *testing.T, got http.Header, want map[string]string, absent ...string) {
	t.Helper()
	for k, v := range want {
		if g := got.Values(k); len(g) != 1 || g[0] != v {
			t.Errorf("upstream %s = %q, want %q", k, g, v)
		}
	}
	for _, k := range absent {
		if g := got.Values(k); len(g) != 0 {
			t.Errorf("upstream %s = %q, want absent", k, g)
		}
	}
	if strings.Contains(got.Get("Cookie"), "tg_") {
		t.Errorf("upstream Cookie %q carries a gateway cookie", got.Get("Cookie"))
	}
	for _, k := range []string{"Authorization"} {
		if got.Get(k) != "" {
			t.Errorf("upstream received %s", k)
		}
	}
}

// The seed-000 BindID user: alias, acr/amr from the login, the whole trust profile.
func TestE2EKnownBindIDUser(t *testing.T) {
	b := newBrowser(t)
	e := b.login(e2e.plainURL+"/account/overview?tab=trust", "bindid-known")
	if e.Path != "/account/overview?tab=trust" || e.Method != http.MethodGet {
		t.Errorf("upstream got %s %s, want GET /account/overview?tab=trust", e.Method, e.Path)
	}
	wantHeaders(t, e.Headers, map[string]string{
		"X-Auth-Subject":                "123e4567-e89b-12d3-a456-426652340000",
		"X-Auth-Issuer":                 e2e.opURL,
		"X-Auth-Alias":                  "username@domain",
		"X-Auth-Email":                  "known@example.com",
		"X-Auth-Email-Verified":         "true",
		"X-Auth-Phone":                  "+12125556789",
		"X-Auth-Acr":                    "ts.bindid.iac.phone_number",
		"X-Auth-Amr":                    "ts.bind_id.ama,ts.bind_id.mfca",
		"X-Trust-First-Login":           "1605180504",
		"X-Trust-Last-Login":            "1605180577",
		"X-Trust-First-Confirmed-Login": "1605180577",
		"X-Trust-Device-First-Login":    "1605180500",
		"X-Trust-Device-Last-Login":     "1605180574",
		"X-Trust-Authenticating-Device": `{"browser_type":"Mobile","browser_version":"Safari","os_type":"iOS","os_version":"14.1"}`,
		"X-Trust-Originating-Device":    `{"browser_type":"Chrome","browser_version":"86.0.4240.183","os_type":"Mac OS","os_version":"10.15.7"}`,
		"X-Trust-User-Registered":       "1605180498",
		"X-Trust-Device-Registered":     "1605180500",
		"X-Trust-Device-Last-Seen":      "1605180691",
		"X-Trust-User-Last-Seen":        "1605180694",
		"X-Trust-Confirmed-App-Count":   "1",
		"X-Trust-Device-Count":          "2",
	}, "X-Auth-New-User")
	if at := e.Headers.Get("X-Auth-Time"); at == "" || at == "0" {
		t.Errorf("X-Auth-Time = %q, want the login's auth_time", at)
	}
}

// A user the provider knows without alias: the upstream is told it is new (the plain site
// is `provider bindid`, whose alias claim is bindid_alias; the generic profile has none,
// see TestE2EGenericProfileNoNewUser).
func TestE2ENewUser(t *testing.T) {
	b := newBrowser(t)
	e := b.login(e2e.plainURL+"/welcome", "bindid-new")
	wantHeaders(t, e.Headers, map[string]string{
		"X-Auth-Subject":        "123e4567-e89b-12d3-a456-426652340001",
		"X-Auth-New-User":       "true",
		"X-Auth-Email-Verified": "false",
		"X-Trust-Device-Count":  "2",
	}, "X-Auth-Alias")
}

// The client registered with userinfo_signed_response_alg RS256: the gateway requires and
// verifies the signed userinfo (BankID-style user of seed 003).
func TestE2ESignedUserinfoClient(t *testing.T) {
	b := newBrowser(t)
	e := b.login(e2e.signedURL+"/bank", "ola")
	wantHeaders(t, e.Headers, map[string]string{
		"X-Auth-Subject": "9578-6000-4-00001",
		"X-Auth-Name":    "Ola Normann",
		"X-Auth-Email":   "normann@example.org",
		"X-Auth-Phone":   "95871775",
		"X-Auth-Acr":     "urn:bankid:bid",
		"X-Auth-Amr":     "BID",
	}, "X-Trust-Device-Count")
	if !strings.Contains(tail(e2e.caddyLog), `"signed_userinfo":true`) {
		t.Error("caddy's login log line does not say the userinfo was a signed JWT")
	}
}

// The page's own fetch() sends forged identity headers in several spellings; the upstream
// sees only the gateway's values.
func TestE2ESpoofedHeadersFromThePage(t *testing.T) {
	b := newBrowser(t)
	b.login(e2e.plainURL+"/app", "bindid-new")
	status, body := b.fetch(http.MethodGet, "/api/echo", map[string]string{
		"X-Auth-Subject": "admin", "X_Auth_Subject": "admin", "X-AUTH-ALIAS": "admin@domain",
		"x_trust_device_count": "99", "X-Auth-New-User": "false",
	})
	if status != http.StatusOK {
		t.Fatalf("fetch with a session = %d, want 200", status)
	}
	var e echoed
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("echo: %v", err)
	}
	wantHeaders(t, e.Headers, map[string]string{
		"X-Auth-Subject":       "123e4567-e89b-12d3-a456-426652340001",
		"X-Auth-New-User":      "true",
		"X-Trust-Device-Count": "2",
	}, "X-Auth-Alias")
	for name, vs := range e.Headers {
		if strings.Contains(name, "_") {
			t.Errorf("upstream received %s: %q", name, vs)
		}
	}
}

// Logout ends the session: afterwards the same browser is no longer signed in, and
// requests that are not navigations get 401 instead of a redirect.
func TestE2ELogout(t *testing.T) {
	b := newBrowser(t)
	b.login(e2e.plainURL+"/app", "bindid-known")
	if status, body := b.fetch(http.MethodGet, "/.trustgate/me", nil); status != http.StatusOK || !strings.Contains(body, `"alias":"username@domain"`) {
		t.Fatalf("me before logout = %d %.200s", status, body)
	}
	if status, _ := b.fetch(http.MethodPost, "/.trustgate/logout", map[string]string{"Accept": "application/json"}); status != http.StatusOK {
		t.Fatalf("logout = %d, want 200", status)
	}
	if status, _ := b.fetch(http.MethodGet, "/.trustgate/me", nil); status != http.StatusUnauthorized {
		t.Errorf("me after logout = %d, want 401", status)
	}
	if status, body := b.fetch(http.MethodGet, "/api/data", map[string]string{"Accept": "application/json"}); status != http.StatusUnauthorized || !strings.Contains(body, "login_required") {
		t.Errorf("API call after logout = %d %.200s, want 401 login_required", status, body)
	}
}

// Without a session: an API client gets 401 JSON and never a redirect; the upstream is not
// reached.
func TestE2EUnauthenticatedAPI(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, e2e.plainURL+"/api/data", nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Auth-Subject", "admin")
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "OIDC ") {
		t.Errorf("API without session = %d %q, want 401 with WWW-Authenticate", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}
