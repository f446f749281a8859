package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"

	"github.com/trustgate/trustgate/internal/redistest"
)

// lifecycleTokenTTL is how long the provider's access tokens for the lifecycle client live:
// the gateway refreshes such a session at half that life (a token living less than two
// minutes), so a refresh happens within seconds of a login.
const lifecycleTokenTTL = 20 * time.Second

// opGrant is one answer of the provider's token endpoint (GET /test/grants).
type opGrant struct {
	GrantType string `json:"grant_type"`
	GrantID   string `json:"grant_id"`
	Rotated   bool   `json:"rotated"`
	At        int64  `json:"at"` // Unix milliseconds
	Error     string `json:"error"`
	// ErrorDetail is the provider's own reason for Error, which it does not send.
	ErrorDetail string `json:"error_detail"`
}

// opGrants lists the token endpoint's answers to clientID, oldest first.
func opGrants(t *testing.T, clientID string) []opGrant {
	t.Helper()
	var got []opGrant
	opTestGet(t, "/test/grants?client_id="+url.QueryEscape(clientID), &got)
	return got
}

// opBackchannelLogout is one back-channel logout request the provider sent.
type opBackchannelLogout struct {
	SID   string `json:"sid"`
	Error string `json:"error"`
}

// opBackchannelLogouts lists the back-channel logouts the provider sent to clientID.
func opBackchannelLogouts(t *testing.T, clientID string) []opBackchannelLogout {
	t.Helper()
	var got []opBackchannelLogout
	opTestGet(t, "/test/backchannel-logouts?client_id="+url.QueryEscape(clientID), &got)
	return got
}

func opTestGet(t *testing.T, path string, into any) {
	t.Helper()
	resp, err := http.Get(e2e.opURL + path)
	if err != nil {
		t.Fatalf("asking the provider (%s): %v", path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the provider's %s: %s %v", path, resp.Status, err)
	}
}

// cookie reads the browser's cookie name for siteURL through the DevTools protocol (the
// gateway's cookie is HttpOnly, so the page cannot see it).
func (b *browser) cookie(siteURL, name string) *http.Cookie {
	b.t.Helper()
	c := b.cookieOrNil(siteURL, name)
	if c == nil {
		b.t.Fatalf("the browser has no cookie %s for %s", name, siteURL)
	}
	if !c.HTTPOnly {
		b.t.Errorf("cookie %s is not HttpOnly", name)
	}
	return &http.Cookie{Name: c.Name, Value: c.Value}
}

// keepConsole records what the browser reports in its console and log (CSP violations,
// blocked navigations, failed loads) and prints it when the test fails.
func (b *browser) keepConsole() {
	b.t.Helper()
	var (
		mu      sync.Mutex
		entries []string
	)
	_, err := chromedp.Run(b.ctx, chromedp.Action[chromedp.Void](func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		events := cdp.Events(b.tab, t, cdplog.EntryAdded) // subscribed from here on
		go func() {
			for ev, err := range events {
				if err != nil {
					return
				}
				mu.Lock()
				entries = append(entries, fmt.Sprintf("%s %s: %s (%s)", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
				mu.Unlock()
			}
		}()
		_, err := cdp.Call(ctx, t, cdplog.Enable, cdp.Empty{})
		return chromedp.Void{}, err
	}))
	if err != nil {
		b.t.Fatalf("enabling the browser's log: %v", err)
	}
	b.t.Cleanup(func() {
		if !b.t.Failed() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		b.t.Logf("browser log (%d entries):\n%s", len(entries), strings.Join(entries, "\n"))
	})
}

// noRedirects is a plain Go HTTP client that shows redirects instead of following them.
var noRedirects = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// apiGet sends GET u as an API client (Accept: application/json) with cookie, and returns
// the status and, for a 200, the upstream's echo.
func apiGet(u string, cookie *http.Cookie) (int, echoed, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0, echoed{}, err
	}
	req.Header.Set("Accept", "application/json")
	req.AddCookie(cookie)
	resp, err := noRedirects.Do(req)
	if err != nil {
		return 0, echoed{}, err
	}
	defer resp.Body.Close()
	var e echoed
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			return resp.StatusCode, e, fmt.Errorf("the answer is not the upstream's echo: %w", err)
		}
	}
	return resp.StatusCode, e, nil
}

// waitBrowser evaluates the JavaScript condition cond in the page until it holds, or fails
// the test naming what was awaited and where the browser is. It goes on across page loads
// (an evaluation during a navigation fails, and is simply tried again).
func (b *browser) waitBrowser(what, cond string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](cond))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			loc, _ := chromedp.Run(b.ctx, chromedp.Location())
			text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			b.t.Fatalf("waiting for %s: after %v the browser is at %s (last error: %v)\n%.500s", what, timeout, loc, err, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// location is the browser's current URL, parsed.
func (b *browser) location() *url.URL {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatalf("reading the browser's location: %v", err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		b.t.Fatalf("the browser's location %q: %v", loc, err)
	}
	return u
}

// opLogoutConfirm is oidc-provider's own end-session confirmation: "Yes, sign me out" ends
// the provider session and sends the back-channel logouts.
const opLogoutConfirm = `button[name="logout"][value="yes"]`

// waitOPLogoutPage waits for the provider's end-session confirmation page.
func (b *browser) waitOPLogoutPage() {
	b.t.Helper()
	b.waitBrowser("the provider's end-session page", fmt.Sprintf(`location.origin === %q && location.pathname === "/session/end" && !!document.querySelector(%q)`,
		e2e.opURL, opLogoutConfirm), 15*time.Second)
}

// logLines returns Caddy's JSON log lines of path written after offset whose msg is msg.
func logLines(t *testing.T, path string, offset int64, msg string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	if offset > int64(len(b)) {
		offset = 0
	}
	var got []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b[offset:]))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		raw := sc.Bytes()
		if i := bytes.IndexByte(raw, '{'); i > 0 {
			raw = raw[i:] // anything before the JSON object is not Caddy's
		}
		var line map[string]any
		if json.Unmarshal(raw, &line) == nil && line["msg"] == msg {
			got = append(got, line)
		}
	}
	return got
}

// waitLogLines waits up to two seconds for n log lines msg after offset, and returns those
// there are then.
func waitLogLines(t *testing.T, path string, offset int64, msg string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		lines := logLines(t, path, offset, msg)
		if len(lines) >= n || time.Now().After(deadline) {
			return lines
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fileSize is the current length of a log file, to read only what a test adds.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return fi.Size()
}

// startBCLInstance runs one more Caddy process on port: a gateway of the back-channel
// logout client whose sessions live in the Redis at redisAddr. It returns the site's URL
// and Caddy's log file.
func startBCLInstance(t *testing.T, port int, redisAddr string) (siteURL, logPath string) {
	t.Helper()
	siteURL = fmt.Sprintf("http://localhost:%d", port)
	caddyfile := fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
}
%s {
	trustgate {
		issuer %s
		client_id %s
		client_secret {env.E2E_CLIENT_SECRET}
		secret {env.E2E_COOKIE_SECRET}
		scopes openid email phone profile address bindid
		cookie_name tg_bcl
		insecure_cookie
		session_store redis {
			addrs %s
			dial_timeout 500ms
			read_timeout 500ms
		}
	}
	reverse_proxy %s
}
`, siteURL, e2e.opURL, bclClientID, redisAddr, strings.TrimPrefix(e2e.upstream.URL, "http://"))
	return siteURL, runCaddy(t, caddyfile, fmt.Sprintf("caddy-bcl-%d.log", port), siteURL)
}

// The user signs out with the gateway's own button: the session ends at the gateway, the
// browser continues at the provider's end-session endpoint (id_token_hint, client_id,
// post_logout_redirect_uri, state), confirms there, and lands on the gateway's signed-out
// page. The old cookie is then no session, and the provider's session is gone too: the
// next visit shows the provider's login page.
func TestE2ERPInitiatedLogout(t *testing.T) {
	b := newBrowser(t)
	b.keepConsole()
	e := b.login(e2e.lifecycleURL+"/app", "bindid-known")
	sub := e.Headers.Get("X-Auth-Subject")
	if sub != "123e4567-e89b-12d3-a456-426652340000" {
		t.Fatalf("upstream X-Auth-Subject = %q after login", sub)
	}
	old := b.cookie(e2e.lifecycleURL, "tg_life")
	if status, _, err := apiGet(e2e.lifecycleURL+"/api/before", old); err != nil || status != http.StatusOK {
		t.Fatalf("the session cookie from a Go client before logout = %d %v, want 200", status, err)
	}
	bclBefore := len(opBackchannelLogouts(t, lifecycleClientID))

	// The gateway's sign-out page: a form, so that a link elsewhere cannot sign anyone out.
	b.do("opening the gateway's sign-out page", chromedp.Navigate(e2e.lifecycleURL+"/.trustgate/logout"))
	b.do("waiting for the Sign out button", chromedp.WaitVisible(chromedp.CSS(`form[method="post"] button[type="submit"]`)))
	b.do("clicking Sign out", chromedp.Click(chromedp.CSS(`form[method="post"] button[type="submit"]`)))

	// The provider's end-session page, reached with what the gateway sent.
	b.waitOPLogoutPage()
	q := b.location().Query()
	if q.Get("id_token_hint") == "" || q.Get("client_id") != lifecycleClientID ||
		q.Get("post_logout_redirect_uri") != e2e.lifecycleURL+"/.trustgate/signed-out" || q.Get("state") == "" {
		t.Errorf("the gateway sent the browser to the end-session endpoint with %v, want id_token_hint, client_id %s, post_logout_redirect_uri %s/.trustgate/signed-out and a state",
			redactHint(q), lifecycleClientID, e2e.lifecycleURL)
	}
	state := q.Get("state")
	b.do("confirming the sign-out at the provider", chromedp.Click(chromedp.CSS(opLogoutConfirm)))

	// Back on the gateway's signed-out page.
	b.waitBrowser("the gateway's signed-out page", fmt.Sprintf(`location.origin === %q && location.pathname === "/.trustgate/signed-out" && document.readyState === "complete"`,
		e2e.lifecycleURL), 15*time.Second)
	if got := b.location().Query().Get("state"); got != state {
		t.Errorf("the provider returned state %q, want the gateway's %q", got, state)
	}
	text, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil || !strings.Contains(strings.ToLower(text), "signed out") {
		t.Errorf("the signed-out page says %.300q (%v), want \"signed out\"", text, err)
	}

	// The old cookie, replayed by another client, is no session.
	if status, _, err := apiGet(e2e.lifecycleURL+"/api/after", old); err != nil || status != http.StatusUnauthorized {
		t.Errorf("the old session cookie replayed after logout = %d %v, want 401", status, err)
	}
	// The provider also told the gateway through the back channel (its session was already
	// gone there); the gateway accepted the provider's logout token.
	if bcl := opBackchannelLogouts(t, lifecycleClientID)[bclBefore:]; len(bcl) != 1 || bcl[0].Error != "" {
		t.Errorf("back-channel logouts the provider sent to the gateway during the sign-out: %+v, want one that succeeded", bcl)
	}

	// The provider's session is gone: the next visit asks for a login again.
	b.do("opening the site again", chromedp.Navigate(e2e.lifecycleURL+"/again"))
	b.waitLoginPage()
	if saw := upstreamSaw("/again"); len(saw) != 0 {
		t.Errorf("the upstream received %q without a session", saw)
	}
}

// redactHint shows end-session parameters without the ID token.
func redactHint(q url.Values) url.Values {
	r := url.Values{}
	for k, v := range q {
		r[k] = v
	}
	if r.Get("id_token_hint") != "" {
		r.Set("id_token_hint", "<present>")
	}
	return r
}

// Two gateway instances share one Redis; the provider knows one back-channel logout URI,
// instance A's. The user signs out at the provider: the provider posts its logout token to
// A, A ends the session, and B refuses the same cookie right after.
func TestE2EBackchannelLogoutTwoInstances(t *testing.T) {
	redis := redistest.Start(t)
	a, aLog := startBCLInstance(t, e2e.bclPorts[0], redis.Addr())
	bURL, _ := startBCLInstance(t, e2e.bclPorts[1], redis.Addr())

	br := newBrowser(t)
	br.keepConsole()
	e := br.login(a+"/on-a", "bindid-known")
	sub := e.Headers.Get("X-Auth-Subject")
	cookie := br.cookie(a, "tg_bcl")
	status, got, err := apiGet(bURL+"/on-b", cookie)
	if err != nil || status != http.StatusOK || got.Headers.Get("X-Auth-Subject") != sub {
		t.Fatalf("instance B with A's session = %d %v, upstream X-Auth-Subject %q, want 200 and %q", status, err, got.Headers.Get("X-Auth-Subject"), sub)
	}
	if status, _, err := apiGet(a+"/on-a/api", cookie); err != nil || status != http.StatusOK {
		t.Fatalf("instance A with its session = %d %v, want 200", status, err)
	}
	logFrom := fileSize(t, aLog)
	bclBefore := len(opBackchannelLogouts(t, bclClientID))

	// The user signs out at the provider (its own end-session page, no client involved).
	br.do("opening the provider's end-session page", chromedp.Navigate(e2e.opURL+"/session/end"))
	br.waitOPLogoutPage()
	start := time.Now()
	br.do("confirming the sign-out at the provider", chromedp.Click(chromedp.CSS(opLogoutConfirm)))
	for {
		status, _, err := apiGet(bURL+"/on-b/api", cookie)
		if err == nil && status == http.StatusUnauthorized {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("B still answers %d (%v) for the session %v after the sign-out at the provider, want 401", status, err, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("sign-out at the provider refused on B after %v", time.Since(start).Round(time.Millisecond))
	br.waitBrowser("the provider's signed-out page", fmt.Sprintf(`location.origin === %q && location.pathname === "/session/end/success"`, e2e.opURL), 15*time.Second)

	if bcl := opBackchannelLogouts(t, bclClientID)[bclBefore:]; len(bcl) != 1 || bcl[0].Error != "" || bcl[0].SID == "" {
		t.Errorf("back-channel logouts the provider sent: %+v, want one with a sid that A accepted", bcl)
	}
	lines := waitLogLines(t, aLog, logFrom, "back-channel logout", 1)
	if len(lines) != 1 || lines[0]["sessions"] != float64(1) || lines[0]["by_sid"] != true {
		t.Errorf("A's log lines \"back-channel logout\": %v, want one with sessions 1 and by_sid true\n%s", lines, tail(aLog))
	}
	if status, _, err := apiGet(a+"/on-a/api", cookie); err != nil || status != http.StatusUnauthorized {
		t.Errorf("A after the back-channel logout = %d %v, want 401", status, err)
	}
	// The provider's session is gone as well: a visit to B asks for a login.
	br.do("opening B", chromedp.Navigate(bURL+"/again"))
	br.waitLoginPage()
}

// The provider's access tokens for the lifecycle client live 20 s, and every refresh
// rotates the refresh token. While the browser and a Go client keep using the session
// (several requests at a time), the gateway refreshes it once when the token is due, stores
// the rotated refresh token, and refreshes again with it when the new token is due; every
// request reaches the upstream with the user's identity.
func TestE2ERefreshWithRotation(t *testing.T) {
	grantsBefore := len(opGrants(t, lifecycleClientID))
	logFrom := fileSize(t, e2e.caddyLog)
	b := newBrowser(t)
	b.keepConsole()
	e := b.login(e2e.lifecycleURL+"/app", "bindid-new")
	sub := e.Headers.Get("X-Auth-Subject")
	if sub != "123e4567-e89b-12d3-a456-426652340001" {
		t.Fatalf("upstream X-Auth-Subject = %q after login", sub)
	}
	var grantID string
	var codeAt int64
	for _, g := range opGrants(t, lifecycleClientID)[grantsBefore:] {
		if g.GrantType == "authorization_code" && g.Error == "" {
			grantID, codeAt = g.GrantID, g.At
		}
	}
	if grantID == "" {
		t.Fatal("the provider recorded no authorization_code grant for the login")
	}
	refreshes := func() (ok, failed []opGrant) {
		for _, g := range opGrants(t, lifecycleClientID)[grantsBefore:] {
			switch {
			case g.Error != "":
				failed = append(failed, g)
			case g.GrantType == "refresh_token" && g.GrantID == grantID:
				ok = append(ok, g)
			}
		}
		return ok, failed
	}
	cookie := b.cookie(e2e.lifecycleURL, "tg_life")

	// Use the session from the page and from three Go clients at once, until the provider
	// has answered two refreshes of this grant and a second more, at most three token lives.
	var (
		mu       sync.Mutex
		requests int
		failures []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	loggedIn := time.Now()
	deadline := loggedIn.Add(3 * lifecycleTokenTTL / 2)
	var done time.Time
	for i := 0; done.IsZero() || time.Now().Before(done); i++ {
		var wg sync.WaitGroup
		for c := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				path := fmt.Sprintf("/api/go/%d/%d", i, c)
				status, got, err := apiGet(e2e.lifecycleURL+path, cookie)
				switch {
				case err != nil || status != http.StatusOK:
					fail("Go client %s = %d %v", path, status, err)
				case got.Headers.Get("X-Auth-Subject") != sub || got.Path != path:
					fail("Go client %s: upstream got %s with X-Auth-Subject %q", path, got.Path, got.Headers.Get("X-Auth-Subject"))
				}
			}()
		}
		path := fmt.Sprintf("/api/page/%d", i)
		status, body := b.fetch(http.MethodGet, path, map[string]string{"Accept": "application/json"})
		var got echoed
		if err := json.Unmarshal([]byte(body), &got); status != http.StatusOK || err != nil || got.Headers.Get("X-Auth-Subject") != sub {
			fail("page fetch %s = %d, upstream X-Auth-Subject %q: %.200s", path, status, got.Headers.Get("X-Auth-Subject"), body)
		}
		wg.Wait()
		requests += 4
		ok, failed := refreshes()
		if len(failed) > 0 {
			t.Fatalf("the provider refused token requests of the client: %+v", failed)
		}
		if len(ok) >= 2 && done.IsZero() {
			done = time.Now().Add(time.Second)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the login the provider saw %d refreshes of the session, want 2 (failed requests: %q)", time.Since(loggedIn).Round(time.Second), len(ok), failures)
		}
		time.Sleep(150 * time.Millisecond)
	}
	for _, f := range failures {
		t.Errorf("request failed: %s", f)
	}

	ok, _ := refreshes()
	if len(ok) != 2 {
		t.Fatalf("the provider answered %d refresh grants for the session, want 2 (one per due token): %+v", len(ok), ok)
	}
	for i, g := range ok {
		if !g.Rotated {
			t.Errorf("refresh %d did not rotate the refresh token", i+1)
		}
	}
	// One refresh per due token: the first came when the login's token reached half its
	// life, the second a half life after the first, not from concurrent requests racing on
	// the first.
	first := time.Duration(ok[0].At-codeAt) * time.Millisecond
	gap := time.Duration(ok[1].At-ok[0].At) * time.Millisecond
	if first < lifecycleTokenTTL/2-time.Second || gap < lifecycleTokenTTL/2-time.Second {
		t.Errorf("the refreshes came %v after the login and %v after each other, want about %v each (half the token's life)", first, gap, lifecycleTokenTTL/2)
	}
	if n := len(waitLogLines(t, e2e.caddyLog, logFrom, "session refreshed", 2)); n != 2 {
		t.Errorf("caddy logged %d \"session refreshed\" lines since offset %d (size now %d, %d in the whole log), want 2", n, logFrom, fileSize(t, e2e.caddyLog), len(logLines(t, e2e.caddyLog, 0, "session refreshed")))
	}
	t.Logf("%d requests (4 at a time) over %v after the login: %d refresh grants at the provider, %v after the code and %v apart, each rotating the refresh token",
		requests, time.Since(loggedIn).Round(100*time.Millisecond), len(ok), first.Round(time.Millisecond), gap.Round(time.Millisecond))
}
