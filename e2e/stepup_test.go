package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The step-up site (e2e.stepupURL) logs in at any level and requires urn:bankid:bid under
// /admin/*. At the provider, bindid-known can reach urn:bankid:bid when asked for it and
// bindid-new cannot.
const stepUpACR = "urn:bankid:bid"

// opAuthorizations lists the parameters of every authorization request the provider has
// received from the step-up site's client, oldest first.
func opAuthorizations(t *testing.T) []map[string]string {
	t.Helper()
	resp, err := http.Get(e2e.opURL + "/test/authorizations?client_id=" + stepupClientID)
	if err != nil {
		t.Fatalf("asking the provider for its authorization requests: %v", err)
	}
	defer resp.Body.Close()
	var got []map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the provider's authorization requests: %s %v", resp.Status, err)
	}
	return got
}

// wantOneStepUpRequest checks that exactly one authorization request followed the first
// before, and that it asked for a fresh login at the required level.
func wantOneStepUpRequest(t *testing.T, before int) {
	t.Helper()
	auths := opAuthorizations(t)[before:]
	if len(auths) != 1 {
		t.Fatalf("the provider received %d authorization requests, want exactly 1: %v", len(auths), auths)
	}
	a := auths[0]
	if acr := strings.Fields(a["acr_values"]); len(acr) == 0 || acr[0] != stepUpACR {
		t.Errorf("authorization request acr_values = %q, want %s first", a["acr_values"], stepUpACR)
	}
	if !slices.Contains(strings.Fields(a["prompt"]), "login") {
		t.Errorf("authorization request prompt = %q, want login", a["prompt"])
	}
}

// waitLoginPage waits for the provider's login page, which a step-up shows even though the
// provider still has a session for the user.
func (b *browser) waitLoginPage() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`input[name="login"]`))); err != nil {
		url, _ := chromedp.Run(b.ctx, chromedp.Location())
		b.t.Fatalf("the provider's login page was not shown again (browser at %s): %v", url, err)
	}
}

// signIn submits the provider's login page as user, and its consent page if the provider
// asks again.
func (b *browser) signIn(user string) {
	b.t.Helper()
	b.do("filling the login form",
		chromedp.SendKeys(chromedp.CSS(`input[name="login"]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "any password"))
	b.clickAndWait("submitting the login form", `button[type="submit"]`)
	consent, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`!!document.querySelector('input[name="prompt"][value="consent"]')`))
	if err != nil {
		b.t.Fatalf("reading the page after login: %v", err)
	}
	if consent {
		b.clickAndWait("consenting", `button[type="submit"]`)
	}
}

// waitGateway waits until the browser shows a page of the step-up site and returns its URL,
// HTTP status and text.
func (b *browser) waitGateway() (url string, status int, text string) {
	b.t.Helper()
	return b.waitSitePage(e2e.stepupURL)
}

// waitSitePage waits until the browser shows a page of siteURL and returns its URL, HTTP
// status and text.
func (b *browser) waitSitePage(siteURL string) (url string, status int, text string) {
	b.t.Helper()
	cond := fmt.Sprintf(`location.origin === %q && document.readyState === "complete"`, siteURL)
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		url, _ := chromedp.Run(b.ctx, chromedp.Location())
		b.t.Fatalf("the browser did not come back to the gateway, it is at %s: %v", url, err)
	}
	type page struct {
		URL    string `json:"url"`
		Status int    `json:"status"`
		Text   string `json:"text"`
	}
	p, err := chromedp.Run(b.ctx, chromedp.Evaluate[page](
		`({url: location.href, status: performance.getEntriesByType("navigation")[0].responseStatus, text: document.body.innerText})`))
	if err != nil {
		b.t.Fatalf("reading the page: %v", err)
	}
	return p.URL, p.Status, p.Text
}

// A session at the BindID level opens /admin/…: the gateway sends the browser back to the
// provider for a fresh BankID login, returns to the same URL, and the upstream sees the
// raised level; the new session serves the rest of the site.
func TestE2EStepUpRaisesACR(t *testing.T) {
	b := newBrowser(t)
	e := b.login(e2e.stepupURL+"/", "bindid-known")
	wantHeaders(t, e.Headers, map[string]string{"X-Auth-Acr": "ts.bindid.iac.phone_number"})
	sub := e.Headers.Get("X-Auth-Subject")

	before := len(opAuthorizations(t))
	target := e2e.stepupURL + "/admin/page?x=1"
	b.do("opening "+target, chromedp.Navigate(target))
	b.waitLoginPage()
	wantOneStepUpRequest(t, before)
	b.signIn("bindid-known")
	if url, status, text := b.waitGateway(); url != target || status != http.StatusOK {
		t.Fatalf("after the step-up login the browser shows %d at %s, want 200 at %s\n%.500s", status, url, target, text)
	}
	e = b.pageEcho()
	if e.Path != "/admin/page?x=1" {
		t.Errorf("upstream got %s, want /admin/page?x=1", e.Path)
	}
	wantHeaders(t, e.Headers, map[string]string{"X-Auth-Subject": sub, "X-Auth-Acr": stepUpACR})
	if amr := e.Headers.Get("X-Auth-Amr"); !slices.Contains(strings.Split(amr, ","), "bankid") {
		t.Errorf("upstream X-Auth-Amr = %q, want the BankID login's amr", amr)
	}

	// The raised session serves the site and the admin area without another trip.
	b.do("opening /", chromedp.Navigate(e2e.stepupURL+"/"))
	e = b.pageEcho()
	wantHeaders(t, e.Headers, map[string]string{"X-Auth-Subject": sub, "X-Auth-Acr": stepUpACR})
	if status, body := b.fetch(http.MethodGet, "/admin/api", nil); status != http.StatusOK {
		t.Errorf("fetch /admin/api after the step-up = %d %.300s, want 200", status, body)
	}
	if n := len(opAuthorizations(t)) - before; n != 1 {
		t.Errorf("the provider received %d authorization requests since the step-up began, want 1", n)
	}
}

// A user who cannot reach the level logs in again, comes back at the lower level and gets
// a 403 page that names the level: one trip to the provider, no loop, and the upstream
// never sees the request.
func TestE2EStepUpRefusedNoLoop(t *testing.T) {
	b := newBrowser(t)
	e := b.login(e2e.stepupURL+"/home", "bindid-new")
	wantHeaders(t, e.Headers, map[string]string{"X-Auth-Acr": "ts.bindid.iac.phone_number"})

	before := len(opAuthorizations(t))
	target := e2e.stepupURL + "/admin/refused?y=2"
	b.do("opening "+target, chromedp.Navigate(target))
	b.waitLoginPage()
	b.signIn("bindid-new")
	url, status, text := b.waitGateway()
	if status != http.StatusForbidden || !strings.Contains(text, stepUpACR) {
		t.Errorf("after a login that cannot reach %s the browser shows %d at %s, want 403 naming the level\n%.500s", stepUpACR, status, url, text)
	}
	wantOneStepUpRequest(t, before)
	if saw := upstreamSaw("/admin/refused"); len(saw) != 0 {
		t.Errorf("the upstream received %q", saw)
	}
}

// fetch() with a session below the level gets 403 JSON naming the rule: no redirect, no
// trip to the provider, nothing at the upstream.
func TestE2EStepUpAPIGets403JSON(t *testing.T) {
	b := newBrowser(t)
	b.login(e2e.stepupURL+"/app", "bindid-new")
	before := len(opAuthorizations(t))

	status, body := b.fetch(http.MethodGet, "/admin/x", nil)
	var got struct {
		Error       string `json:"error"`
		Message     string `json:"message"`
		Requirement string `json:"requirement"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || status != http.StatusForbidden {
		t.Fatalf("fetch /admin/x below the level = %d %.300s, want 403 JSON (%v)", status, body, err)
	}
	if got.Error != "insufficient_authentication" || got.Requirement != "acr_at_least" || got.Message == "" {
		t.Errorf("403 body = %+v, want error insufficient_authentication, requirement acr_at_least and a message", got)
	}
	if n := len(opAuthorizations(t)) - before; n != 0 {
		t.Errorf("the provider received %d authorization requests, want none", n)
	}
	if saw := upstreamSaw("/admin/x"); len(saw) != 0 {
		t.Errorf("the upstream received %q", saw)
	}
}
