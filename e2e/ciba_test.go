package e2e

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CIBA (poll mode) through the gateway, as a command-line client does it: a plain HTTP
// client with a cookie jar (curl -c/-b) starts a login, the user answers at the provider
// (the provider's test controls stand in for the phone), the client polls the gateway as
// often as the gateway says, and ends up with a session cookie.

const cibaGrantType = "urn:openid:params:grant-type:ciba"

// requestIDPattern is a gateway request_id: 32 random bytes, base64url without padding.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// cibaAnswer is one answer of a gateway CIBA endpoint.
type cibaAnswer struct {
	status     int
	body       map[string]any
	retryAfter string
	cookies    []*http.Cookie // Set-Cookie
	at         time.Time      // when the answer arrived
}

// cibaClient is a command-line client of the CIBA site; it logs every exchange.
type cibaClient struct {
	t    *testing.T
	http *http.Client
	form bool   // send application/x-www-form-urlencoded (curl -d), else JSON
	site string // the gateway site; default the CIBA site
}

func newCIBAClient(t *testing.T, form bool) *cibaClient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &cibaClient{t: t, http: &http.Client{Jar: jar, Timeout: 15 * time.Second}, form: form, site: e2e.cibaURL}
}

// post sends params to <site>/.trustgate/ciba/<endpoint> and logs the request and the answer
// (status, JSON body, Retry-After, the names of the cookies set).
func (c *cibaClient) post(endpoint string, params map[string]string) cibaAnswer {
	c.t.Helper()
	var body, ctype, shown string
	if c.form {
		v := url.Values{}
		for k, p := range params {
			v.Set(k, p)
		}
		body, ctype, shown = v.Encode(), "application/x-www-form-urlencoded", v.Encode()
	} else {
		b, _ := json.Marshal(params)
		body, ctype, shown = string(b), "application/json", string(b)
	}
	req, err := http.NewRequest(http.MethodPost, c.site+"/.trustgate/ciba/"+endpoint, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("POST /.trustgate/ciba/%s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := cibaAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), cookies: resp.Cookies(), at: time.Now()}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		c.t.Fatalf("POST /.trustgate/ciba/%s answered %d with a body that is not JSON: %q", endpoint, resp.StatusCode, raw)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		c.t.Errorf("POST /.trustgate/ciba/%s: Cache-Control %q, want no-store", endpoint, cc)
	}
	names := make([]string, 0, len(a.cookies))
	for _, ck := range a.cookies {
		names = append(names, ck.Name)
	}
	c.t.Logf("POST /.trustgate/ciba/%s (%s) %s\n    → %d %s  Retry-After: %q  Set-Cookie: %v",
		endpoint, ctype, shown, a.status, strings.TrimSpace(string(raw)), a.retryAfter, names)
	return a
}

// waitRetryAfter sleeps as long as the gateway's answer asked (Retry-After, else the
// interval it gave), counted from when the answer arrived.
func (c *cibaClient) waitRetryAfter(a cibaAnswer, interval time.Duration) {
	c.t.Helper()
	wait := interval
	if a.retryAfter != "" {
		n, err := strconv.Atoi(a.retryAfter)
		if err != nil || n < 0 {
			c.t.Fatalf("Retry-After %q is not a number of seconds", a.retryAfter)
		}
		wait = time.Duration(n) * time.Second
	}
	if d := time.Until(a.at.Add(wait)); d > 0 {
		time.Sleep(d)
	}
}

// siteCookie is the jar's cookie name for the CIBA site, or nil.
func (c *cibaClient) siteCookie(name string) *http.Cookie {
	u, _ := url.Parse(c.site + "/")
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

// opCIBAControl answers the user's pending CIBA request at the provider (approve or deny).
func opCIBAControl(t *testing.T, action, loginHint string) {
	t.Helper()
	resp, err := http.Post(e2e.opURL+"/test/ciba/"+action+"?login_hint="+url.QueryEscape(loginHint), "", nil)
	if err != nil {
		t.Fatalf("the provider's CIBA %s control: %v", action, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	t.Logf("(the user answers at the provider) POST /test/ciba/%s?login_hint=%s → %d", action, loginHint, resp.StatusCode)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("the provider's CIBA %s control: %s %s", action, resp.Status, raw)
	}
}

// opCIBAPolls lists the provider's answers to CIBA token requests of the CIBA client.
func opCIBAPolls(t *testing.T) []opGrant {
	t.Helper()
	var polls []opGrant
	for _, g := range opGrants(t, cibaClientID) {
		if g.GrantType == cibaGrantType {
			polls = append(polls, g)
		}
	}
	return polls
}

// opTokenRequestWith presents authReqID to the provider's token endpoint as the CIBA client
// would, and returns the OAuth error code of the answer ("" for a token).
func opTokenRequestWith(t *testing.T, authReqID string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e2e.opURL+"/token",
		strings.NewReader(url.Values{"grant_type": {cibaGrantType}, "auth_req_id": {authReqID}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(cibaClientID, clientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the provider's token endpoint: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out.Error
}

// A command-line client signs in with CIBA: start, poll as told, the user approves at the
// provider, the next poll gives the profile and the session cookie, and the cookie opens a
// protected URL. The provider never sees the client's request_id, and is polled no faster
// than the interval.
func TestE2ECIBAApprove(t *testing.T) {
	const user, wantSub = "bindid-known", "123e4567-e89b-12d3-a456-426652340000"
	c := newCIBAClient(t, true) // curl -c jar -b jar -d login_hint=… -d binding_message=…

	started := time.Now()
	start := c.post("start", map[string]string{"login_hint": user, "binding_message": "Kiosk 7"})
	requestID, _ := start.body["request_id"].(string)
	interval, _ := start.body["interval"].(float64)
	expiresIn, _ := start.body["expires_in"].(float64)
	if start.status != http.StatusOK || requestID == "" || interval < 1 || expiresIn < 1 {
		t.Fatalf("start: %d %v", start.status, start.body)
	}
	// 5 s: oidc-provider sends no interval, so the gateway uses CIBA's default; 120 s is the
	// provider's BackchannelAuthenticationRequest lifetime.
	if interval != 5 || expiresIn != 120 {
		t.Errorf("start: interval %v, expires_in %v; want 5 and 120 (the provider's)", interval, expiresIn)
	}
	if len(start.cookies) != 0 {
		t.Errorf("start set cookies: %v", start.cookies)
	}
	// request_id is the gateway's own (32 random bytes), not the provider's auth_req_id: the
	// provider does not know it as an auth_req_id of this client.
	if !requestIDPattern.MatchString(requestID) {
		t.Errorf("request_id %q is not 43 base64url characters", requestID)
	} else if b, err := base64.RawURLEncoding.DecodeString(requestID); err != nil || len(b) != 32 {
		t.Errorf("request_id %q does not decode to 32 bytes: %v", requestID, err)
	}
	if got := opTokenRequestWith(t, requestID); got != "invalid_grant" {
		t.Errorf("the provider's token endpoint given the request_id as auth_req_id answered %q, want invalid_grant "+
			"(authorization_pending would mean the gateway handed out the provider's auth_req_id)", got)
	}
	pollsBefore := len(opCIBAPolls(t)) // from here on, only the gateway's polls
	iv := time.Duration(interval) * time.Second

	// At once: pending, and the gateway does not ask the provider before the interval.
	a := c.post("poll", map[string]string{"request_id": requestID})
	if a.status != http.StatusOK || a.body["status"] != "pending" || a.retryAfter == "" {
		t.Fatalf("first poll: %d %v (Retry-After %q), want 200 pending with Retry-After", a.status, a.body, a.retryAfter)
	}
	if n := len(opCIBAPolls(t)) - pollsBefore; n != 0 {
		t.Errorf("the provider was polled %d times before the interval had passed", n)
	}
	// After Retry-After: the gateway polls the provider, which answers authorization_pending.
	c.waitRetryAfter(a, iv)
	a = c.post("poll", map[string]string{"request_id": requestID})
	if a.status != http.StatusOK || a.body["status"] != "pending" || a.body["interval"] != interval {
		t.Fatalf("poll after the interval: %d %v, want 200 pending with interval %v", a.status, a.body, interval)
	}
	if polls := opCIBAPolls(t)[pollsBefore:]; len(polls) != 1 || !strings.HasPrefix(polls[0].Error, "authorization_pending") {
		t.Fatalf("the provider's CIBA token answers after one interval: %+v, want one authorization_pending", polls)
	}

	// The user approves on the phone; the next poll (after Retry-After) is the login.
	opCIBAControl(t, "approve", user)
	c.waitRetryAfter(a, iv)
	a = c.post("poll", map[string]string{"request_id": requestID})
	profile, _ := a.body["profile"].(map[string]any)
	if a.status != http.StatusOK || a.body["status"] != "authenticated" || profile == nil {
		t.Fatalf("poll after the approval: %d %v, want 200 authenticated with a profile", a.status, a.body)
	}
	if profile["sub"] != wantSub || profile["iss"] != e2e.opURL {
		t.Errorf("profile sub %v iss %v, want %s and %s", profile["sub"], profile["iss"], wantSub, e2e.opURL)
	}
	// The acr and amr the provider issued for this user's CIBA login (server.mjs's approve
	// control: the account's own).
	amr, _ := profile["amr"].([]any)
	if profile["acr"] != "ts.bindid.iac.phone_number" || !slices.Equal(amr, []any{"ts.bind_id.ama", "ts.bind_id.mfca"}) {
		t.Errorf("profile acr %v amr %v, want ts.bindid.iac.phone_number [ts.bind_id.ama ts.bind_id.mfca]", profile["acr"], profile["amr"])
	}
	if len(a.cookies) != 1 || a.cookies[0].Name != "tg_ciba" || !a.cookies[0].HttpOnly {
		t.Errorf("Set-Cookie on the authenticated poll: %v, want one HttpOnly tg_ciba", a.cookies)
	}
	if c.siteCookie("tg_ciba") == nil {
		t.Fatal("the cookie jar holds no tg_ciba for the site")
	}

	// The provider saw one poll per interval at most: the first no sooner than an interval
	// after the start, each next one no sooner than an interval after the last answer.
	polls := opCIBAPolls(t)[pollsBefore:]
	if len(polls) != 2 || polls[1].Error != "" || polls[1].GrantID == "" {
		t.Fatalf("the provider's CIBA token answers: %+v, want authorization_pending then a grant", polls)
	}
	if first := time.UnixMilli(polls[0].At); first.Sub(started) < iv {
		t.Errorf("the provider's first poll came %v after the start, within the interval %v", first.Sub(started), iv)
	}
	t.Logf("the provider answered the gateway's CIBA token requests %v (%s) and %v (tokens) after the start",
		time.UnixMilli(polls[0].At).Sub(started).Round(time.Millisecond), strings.SplitN(polls[0].Error, ":", 2)[0],
		time.UnixMilli(polls[1].At).Sub(started).Round(time.Millisecond))
	for i := 1; i < len(polls); i++ {
		if gap := time.Duration(polls[i].At-polls[i-1].At) * time.Millisecond; gap < iv {
			t.Errorf("the provider's polls %d and %d were %v apart, less than the interval %v", i-1, i, gap, iv)
		}
	}

	// The jar's session opens a protected URL: the upstream gets the user's identity.
	req, _ := http.NewRequest(http.MethodGet, e2e.cibaURL+"/ciba/orders", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e echoed
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /ciba/orders with the CIBA session: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("GET /ciba/orders: not the upstream's echo: %v", err)
	}
	t.Logf("GET /ciba/orders (cookie tg_ciba from the jar) → %d; upstream saw X-Auth-Subject %q", resp.StatusCode, e.Headers.Get("X-Auth-Subject"))
	if got := e.Headers.Get("X-Auth-Subject"); got != wantSub {
		t.Errorf("upstream X-Auth-Subject %q, want %q", got, wantSub)
	}

	// Finished: the request_id is spent, and the provider is not asked again.
	a = c.post("poll", map[string]string{"request_id": requestID})
	if a.status != http.StatusNotFound || len(a.cookies) != 0 {
		t.Errorf("poll after the login: %d %v, want 404 and no cookie", a.status, a.body)
	}
	if n := len(opCIBAPolls(t)) - pollsBefore; n != 2 {
		t.Errorf("the provider's CIBA token answers: %d, want still 2", n)
	}
}

// The user denies: the next poll is 403 access_denied without a cookie, and the request_id
// is spent (404), never polled at the provider again.
func TestE2ECIBADeny(t *testing.T) {
	const user = "ola" // not the approve test's user: one start per user per hint_interval
	c := newCIBAClient(t, false)
	pollsBefore := len(opCIBAPolls(t))

	start := c.post("start", map[string]string{"login_hint": user, "binding_message": "Kiosk 8"})
	requestID, _ := start.body["request_id"].(string)
	interval, _ := start.body["interval"].(float64)
	if start.status != http.StatusOK || !requestIDPattern.MatchString(requestID) || interval < 1 {
		t.Fatalf("start: %d %v", start.status, start.body)
	}
	opCIBAControl(t, "deny", user)
	c.waitRetryAfter(start, time.Duration(interval)*time.Second) // start has no Retry-After: the interval

	a := c.post("poll", map[string]string{"request_id": requestID})
	if a.status != http.StatusForbidden || a.body["error"] != "access_denied" {
		t.Fatalf("poll after the denial: %d %v, want 403 access_denied", a.status, a.body)
	}
	if len(a.cookies) != 0 || c.siteCookie("tg_ciba") != nil {
		t.Errorf("a denied login set cookies: %v", a.cookies)
	}
	if polls := opCIBAPolls(t)[pollsBefore:]; len(polls) != 1 || !strings.HasPrefix(polls[0].Error, "access_denied") {
		t.Errorf("the provider's CIBA token answers: %+v, want one access_denied", polls)
	}

	a = c.post("poll", map[string]string{"request_id": requestID})
	if a.status != http.StatusNotFound || len(a.cookies) != 0 {
		t.Errorf("poll after the denial was answered: %d %v, want 404", a.status, a.body)
	}
	if n := len(opCIBAPolls(t)) - pollsBefore; n != 1 {
		t.Errorf("the provider was polled %d times, want 1 (never again after the denial)", n)
	}
}
