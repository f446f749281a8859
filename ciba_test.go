package trustgate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/redistest"
	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/session"
)

// CIBA (threat model CIBA-*): browserless login through the gateway.

func withCIBA(clk *testClock) gatewayOption {
	return func(h *Handler, o *oidctest.Options) {
		h.CIBA = &CIBAConfig{}
		if h.storage == nil {
			// CIBA confirmations are signed with the assertion keys, kept in Caddy's storage.
			h.storage = &memoryStorage{m: map[string][]byte{}}
		}
		if clk != nil {
			h.now, o.Now = clk.Now, clk.Now
		}
		o.CIBAInterval = 5 * time.Second
		o.CIBAExpiresIn = 2 * time.Minute
	}
}

// cibaCall posts JSON to a CIBA endpoint with client c and decodes the JSON answer.
func (g *gateway) cibaCall(c *http.Client, base, endpoint string, body map[string]any) (int, map[string]any, http.Header) {
	g.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, base+"/.trustgate/ciba/"+endpoint, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	resp, raw := do(g.t, c, req)
	var out map[string]any
	_ = json.Unmarshal([]byte(raw), &out)
	return resp.StatusCode, out, resp.Header
}

func (g *gateway) cibaStart(c *http.Client, hint string) string {
	g.t.Helper()
	st, out, _ := g.cibaCall(c, g.srv.URL, "start", map[string]any{"login_hint": hint, "binding_message": "Kiosk 7"})
	id, _ := out["request_id"].(string)
	if st != http.StatusOK || id == "" {
		g.t.Fatalf("ciba/start: %d %v", st, out)
	}
	return id
}

func TestCIBAFullLoginFromACommandLineClient(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	jar, _ := cookiejar.New(nil)
	cli := &http.Client{Jar: jar} // what curl -c/-b does

	st, out, _ := g.cibaCall(cli, g.srv.URL, "start", map[string]any{"login_hint": "bindid-known", "binding_message": "Kiosk 7", "acr_values": []any{acrPhone}})
	requestID, _ := out["request_id"].(string)
	if st != http.StatusOK || requestID == "" || out["expires_in"] != float64(120) || out["interval"] != float64(5) {
		t.Fatalf("start: %d %v", st, out)
	}
	authReqID, ok := g.op.CIBAByHint("bindid-known")
	if !ok || strings.Contains(requestID, authReqID) || requestID == authReqID {
		t.Fatalf("the client's request_id must not be (or contain) the provider's auth_req_id")
	}
	if q := g.op.LastCIBARequest(); q.Get("binding_message") != "Kiosk 7" || q.Get("login_hint") != "bindid-known" || q.Get("acr_values") != acrPhone {
		t.Errorf("bc-authorize parameters: %v", q)
	}
	poll := func() (int, map[string]any) {
		st, out, _ := g.cibaCall(cli, g.srv.URL, "poll", map[string]any{"request_id": requestID})
		return st, out
	}
	// Too early: pending, and the provider is not asked (the interval holds for the client).
	if st, out := poll(); st != http.StatusOK || out["status"] != "pending" || g.op.Counts().CIBAPoll != 0 {
		t.Fatalf("early poll: %d %v, %d provider polls", st, out, g.op.Counts().CIBAPoll)
	}
	clk.Advance(5 * time.Second)
	if st, out := poll(); st != http.StatusOK || out["status"] != "pending" || g.op.Counts().CIBAPoll != 1 {
		t.Fatalf("poll after the interval: %d %v, %d provider polls", st, out, g.op.Counts().CIBAPoll)
	}
	// The user confirms on the phone.
	if err := g.op.CIBAApprove(authReqID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Second)
	st, out = poll()
	profile, _ := out["profile"].(map[string]any)
	if st != http.StatusOK || out["status"] != "authenticated" || profile["sub"] != oidctest.SubjectBindIDKnown {
		t.Fatalf("poll after approval: %d %v", st, out)
	}
	// The cookie jar now holds the session: protected URLs work.
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/api/orders", nil)
	req.Header.Set("Accept", "application/json")
	if resp, _ := do(t, cli, req); resp.StatusCode != http.StatusOK || g.upstream.Header().Get("X-Auth-Subject") != oidctest.SubjectBindIDKnown {
		t.Errorf("protected URL with the CIBA session: %d", resp.StatusCode)
	}
	// The transaction is finished: polling it again finds nothing, and no second session.
	if st, _ := poll(); st != http.StatusNotFound || g.store.Len() != 1 {
		t.Errorf("poll after completion: %d, sessions %d; want 404 and 1", st, g.store.Len())
	}
}

func TestCIBA04_SlowDownRaisesTheIntervalForGood(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	g.op.SetFaults(oidctest.Faults{CIBASlowDownOnPoll: []int{1}})
	id := g.cibaStart(http.DefaultClient, "bindid-known")
	poll := func() map[string]any {
		_, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": id})
		return out
	}
	clk.Advance(5 * time.Second)
	if out := poll(); out["slow_down"] != true || out["interval"] != float64(10) {
		t.Fatalf("slow_down answer: %v", out)
	}
	clk.Advance(5 * time.Second) // 5 s later: too early under the raised interval
	poll()
	if n := g.op.Counts().CIBAPoll; n != 1 {
		t.Errorf("provider polls 5 s after slow_down = %d, want still 1", n)
	}
	clk.Advance(5 * time.Second)
	poll()
	clk.Advance(10 * time.Second)
	poll()
	if n := g.op.Counts().CIBAPoll; n != 3 {
		t.Errorf("provider polls = %d, want 3 (each 10 s apart after the slow_down)", n)
	}
}

func TestCIBA06_DeniedAndExpired(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	id := g.cibaStart(http.DefaultClient, "bindid-known")
	authReqID, _ := g.op.CIBAByHint("bindid-known")
	_ = g.op.CIBADeny(authReqID)
	clk.Advance(5 * time.Second)
	st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": id})
	if st != http.StatusForbidden || out["error"] != "access_denied" || g.store.Len() != 0 {
		t.Errorf("denied: %d %v, sessions %d", st, out, g.store.Len())
	}
	if st, _, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": id}); st != http.StatusNotFound {
		t.Errorf("poll after the denial: %d, want 404 (never polled again)", st)
	}

	id = g.cibaStart(http.DefaultClient, "ola") // another user (one start per user per minute)
	clk.Advance(121 * time.Second)
	st, out, _ = g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": id})
	if st != http.StatusGone || out["error"] != "expired_token" {
		t.Errorf("expired: %d %v, want 410 expired_token", st, out)
	}
	if g.store.Len() != 0 {
		t.Error("a session was created")
	}
}

func TestCIBABadRequests(t *testing.T) {
	g := newGateway(t, withCIBA(nil))
	for _, tc := range []struct {
		name     string
		endpoint string
		body     map[string]any
		status   int
	}{
		{"no hint", "start", map[string]any{"binding_message": "x"}, http.StatusBadRequest},
		{"two hints", "start", map[string]any{"login_hint": "a", "id_token_hint": "b"}, http.StatusBadRequest},
		{"unknown user", "start", map[string]any{"login_hint": "nobody@example.org"}, http.StatusBadRequest},
		{"tampered request_id", "poll", map[string]any{"request_id": strings.Repeat("A", 43)}, http.StatusNotFound},
		{"malformed request_id", "poll", map[string]any{"request_id": "../x"}, http.StatusBadRequest},
	} {
		st, out, hdr := g.cibaCall(http.DefaultClient, g.srv.URL, tc.endpoint, tc.body)
		if st != tc.status || hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d %v, want %d (no-store)", tc.name, st, out, tc.status)
		}
	}
	if n := g.op.Counts().CIBAPoll; n != 0 {
		t.Errorf("bad requests polled the provider %d times", n)
	}
	g2 := newGateway(t)
	if st, _, _ := g2.cibaCall(http.DefaultClient, g2.srv.URL, "start", map[string]any{"login_hint": "bindid-known"}); st != http.StatusNotFound {
		t.Errorf("CIBA not configured: %d, want 404", st)
	}
}

// Push spam: starts are limited per user and per client address.
func TestCIBAStartLimits(t *testing.T) {
	g := newGateway(t, withCIBA(nil), func(h *Handler, _ *oidctest.Options) { h.CIBA.StartsPerIP = 2 })
	g.cibaStart(http.DefaultClient, "bindid-known")
	if st, _, hdr := g.cibaCall(http.DefaultClient, g.srv.URL, "start", map[string]any{"login_hint": "bindid-known"}); st != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Errorf("second start for the same user: %d, want 429 with Retry-After", st)
	}
	g.cibaStart(http.DefaultClient, "ola")
	if st, _, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "start", map[string]any{"login_hint": "ase"}); st != http.StatusTooManyRequests {
		t.Errorf("third start from one address with starts_per_ip 2: %d, want 429", st)
	}
	if n := g.op.Counts().CIBAAuthorize; n != 2 {
		t.Errorf("bc-authorize requests = %d, want 2", n)
	}
}

// CIBA-09: two instances polling one transaction: the provider sees one poll per interval
// and exactly one session is created.
func TestCIBA09_TwoInstancesPollOnce(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	b := twoInstances(t, g)
	id := g.cibaStart(http.DefaultClient, "bindid-known")
	authReqID, _ := g.op.CIBAByHint("bindid-known")
	_ = g.op.CIBAApprove(authReqID)
	clk.Advance(5 * time.Second)
	var wg sync.WaitGroup
	answers := make([]string, 20)
	for i := range answers {
		base := g.srv.URL
		if i%2 == 1 {
			base = b.URL
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, out, _ := g.cibaCall(http.DefaultClient, base, "poll", map[string]any{"request_id": id})
			status, _ := out["status"].(string)
			answers[i] = http.StatusText(st) + "/" + status
		}()
	}
	wg.Wait()
	authenticated := 0
	for _, a := range answers {
		if a == "OK/authenticated" {
			authenticated++
		}
	}
	if n := g.op.Counts().CIBAPoll; n != 1 {
		t.Errorf("provider polls = %d, want 1", n)
	}
	if authenticated != 1 {
		t.Errorf("authenticated answers = %d, want exactly 1: %v", authenticated, answers)
	}
}

// memoryStorage is a certmagic.Storage in memory, for the gateway's assertion keys.
type memoryStorage struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memoryStorage) Lock(context.Context, string) error   { return nil }
func (s *memoryStorage) Unlock(context.Context, string) error { return nil }

func (s *memoryStorage) Store(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = bytes.Clone(value)
	return nil
}

func (s *memoryStorage) Load(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return bytes.Clone(v), nil
}

func (s *memoryStorage) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *memoryStorage) Exists(_ context.Context, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[key]
	return ok
}

func (s *memoryStorage) List(_ context.Context, prefix string, _ bool) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out, nil
}

func (s *memoryStorage) Stat(_ context.Context, key string) (certmagic.KeyInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return certmagic.KeyInfo{}, fs.ErrNotExist
	}
	return certmagic.KeyInfo{Key: key, Size: int64(len(v)), IsTerminal: true}, nil
}

// --- CIBA as the bank of seed 004 describes it ------------------------------------------

// cibaForm posts a form body to a CIBA endpoint and decodes the JSON answer.
func (g *gateway) cibaForm(c *http.Client, endpoint string, form url.Values) (int, map[string]any, http.Header) {
	g.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/.trustgate/ciba/"+endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, raw := do(g.t, c, req)
	var out map[string]any
	_ = json.Unmarshal([]byte(raw), &out)
	return resp.StatusCode, out, resp.Header
}

// browserSession is the stored session of the browser c.
func (g *gateway) browserSession(c *http.Client) *session.Session {
	g.t.Helper()
	var id string
	if err := g.h.sessions.codec.Decode(g.h.sessions.cookieName, g.sessionCookie(c), &id); err != nil {
		g.t.Fatalf("the browser has no session cookie: %v", err)
	}
	s, err := g.store.Reload(context.Background(), id)
	if err != nil {
		g.t.Fatalf("the browser's session: %v", err)
	}
	return s
}

// wantCIBARefusal checks a refusal: status, JSON error, no-store, and no session cookie.
func wantCIBARefusal(t *testing.T, what string, st int, out map[string]any, hdr http.Header, wantStatus int, wantError string) {
	t.Helper()
	if st != wantStatus || out["error"] != wantError {
		t.Errorf("%s: %d %v, want %d %s", what, st, out, wantStatus, wantError)
	}
	if m, _ := out["message"].(string); m == "" {
		t.Errorf("%s: no message saying what happened", what)
	}
	if hdr.Get("Cache-Control") != "no-store" || hdr.Get("Set-Cookie") != "" {
		t.Errorf("%s: Cache-Control %q, Set-Cookie %q; want no-store and no cookie", what, hdr.Get("Cache-Control"), hdr.Get("Set-Cookie"))
	}
}

// approveAndPoll lets the user approve the pending request of hint at the OP and polls
// request_id after the interval.
func (g *gateway) approveAndPoll(clk *testClock, c *http.Client, hint, requestID string) (int, map[string]any, http.Header) {
	g.t.Helper()
	authReqID, ok := g.op.CIBAByHint(hint)
	if !ok {
		g.t.Fatalf("no pending request at the OP for the hint")
	}
	if err := g.op.CIBAApprove(authReqID); err != nil {
		g.t.Fatal(err)
	}
	clk.Advance(5 * time.Second)
	return g.cibaCall(c, g.srv.URL, "poll", map[string]any{"request_id": requestID})
}

// CIBA-10: the claims request parameter (OpenID Connect Core 5.5, CIBA Core 7.1) reaches
// the provider as the client sent it, from a JSON body (an object) or a form (a JSON
// string); anything but an object of at most 4 KiB is refused before the provider is asked.
func TestCIBA10_ClaimsPassedToTheProvider(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	// Seed 004, step 1: "optional claims"; step 5 names the bank's claims.
	claims := map[string]any{"id_token": map[string]any{"personal_id_number": map[string]any{"essential": true}, "given_name": nil}}
	st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "start", map[string]any{"login_hint": "kari", "claims": claims})
	id, _ := out["request_id"].(string)
	if st != http.StatusOK || out["status"] != "pending" || id == "" {
		t.Fatalf("start with claims: %d %v", st, out)
	}
	if got := g.op.LastCIBARequest().Get("claims"); got != `{"id_token":{"given_name":null,"personal_id_number":{"essential":true}}}` {
		t.Errorf("bc-authorize claims = %q", got)
	}
	st, out, _ = g.approveAndPoll(clk, http.DefaultClient, "kari", id)
	profile, _ := out["profile"].(map[string]any)
	if st != http.StatusOK || out["status"] != "authenticated" || profile["sub"] != oidctest.SubjectKari {
		t.Fatalf("poll: %d %v", st, out)
	}

	// A form body carries the claims as a JSON string.
	form := url.Values{"login_hint": {"ola"}, "claims": {`{"userinfo": {"email": null}}`}}
	if st, out, _ := g.cibaForm(http.DefaultClient, "start", form); st != http.StatusOK || out["status"] != "pending" {
		t.Fatalf("form start with claims: %d %v", st, out)
	}
	if got := g.op.LastCIBARequest().Get("claims"); got != `{"userinfo":{"email":null}}` {
		t.Errorf("bc-authorize claims from a form = %q", got)
	}

	authorizes, sessions := g.op.Counts().CIBAAuthorize, g.store.Len()
	for _, tc := range []struct {
		name string
		body any // map for JSON, url.Values for a form
	}{
		{"array", map[string]any{"login_hint": "ase", "claims": []any{"email"}}},
		{"string in JSON", map[string]any{"login_hint": "ase", "claims": `{"userinfo":{}}`}},
		{"number", map[string]any{"login_hint": "ase", "claims": 5}},
		{"over 4 KiB", map[string]any{"login_hint": "ase", "claims": map[string]any{"userinfo": map[string]any{"x": map[string]any{"value": strings.Repeat("a", 4096)}}}}},
		{"form: not JSON", url.Values{"login_hint": {"ase"}, "claims": {`{"userinfo":`}}},
		{"form: an array", url.Values{"login_hint": {"ase"}, "claims": {`["email"]`}}},
	} {
		var st int
		var out map[string]any
		var hdr http.Header
		if f, ok := tc.body.(url.Values); ok {
			st, out, hdr = g.cibaForm(http.DefaultClient, "start", f)
		} else {
			st, out, hdr = g.cibaCall(http.DefaultClient, g.srv.URL, "start", tc.body.(map[string]any))
		}
		wantCIBARefusal(t, "claims "+tc.name, st, out, hdr, http.StatusBadRequest, "invalid_request")
	}
	if n := g.op.Counts().CIBAAuthorize; n != authorizes || g.store.Len() != sessions {
		t.Errorf("refused claims: bc-authorize %d -> %d, sessions %d -> %d; want nothing sent, nothing created", authorizes, n, sessions, g.store.Len())
	}
}

// CIBA-10: requested_expiry is whole positive seconds, capped by max_expiry: above the cap
// the cap is asked for, and expires_in says what the provider granted (still capped).
func TestCIBA10_RequestedExpiryCapped(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk), func(h *Handler, _ *oidctest.Options) { h.CIBA.MaxExpiry = caddy.Duration(3 * time.Minute) })
	st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "start", map[string]any{"login_hint": "kari", "requested_expiry": 3600})
	if st != http.StatusOK || out["expires_in"] != float64(180) {
		t.Errorf("requested_expiry 3600 with max_expiry 3m: %d %v, want expires_in 180", st, out)
	}
	if got := g.op.LastCIBARequest().Get("requested_expiry"); got != "180" {
		t.Errorf("bc-authorize requested_expiry = %q, want the cap 180", got)
	}
	id, _ := out["request_id"].(string)
	st, out, _ = g.cibaForm(http.DefaultClient, "start", url.Values{"login_hint": {"ola"}, "requested_expiry": {"60"}})
	if st != http.StatusOK || out["expires_in"] != float64(60) || g.op.LastCIBARequest().Get("requested_expiry") != "60" {
		t.Errorf("requested_expiry 60 (form): %d %v, sent %q", st, out, g.op.LastCIBARequest().Get("requested_expiry"))
	}
	// Without requested_expiry the provider's 120 s stand (below the cap).
	if _, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "start", map[string]any{"login_hint": "ase"}); out["expires_in"] != float64(120) || g.op.LastCIBARequest().Has("requested_expiry") {
		t.Errorf("no requested_expiry: %v", out)
	}
	authorizes := g.op.Counts().CIBAAuthorize
	for _, v := range []any{0, -5, 1.5, "abc", "", 1e30} {
		st, out, hdr := g.cibaCall(http.DefaultClient, g.srv.URL, "start", map[string]any{"login_hint": "andrew", "requested_expiry": v})
		wantCIBARefusal(t, fmt.Sprintf("requested_expiry %v", v), st, out, hdr, http.StatusBadRequest, "invalid_request")
	}
	if n := g.op.Counts().CIBAAuthorize; n != authorizes {
		t.Errorf("bad requested_expiry sent %d requests", n-authorizes)
	}
	// The capped lifetime holds at the gateway: after 180 s the request is expired.
	clk.Advance(181 * time.Second)
	st, out, hdr := g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": id})
	wantCIBARefusal(t, "poll after the capped expiry", st, out, hdr, http.StatusGone, "expired_token")
}

// CIBA-02 and seed 004 step 3: the provider wants the user's code (missing_user_code); the
// start says user_code_required, the client sends the code the user typed to
// ciba/user-code, the gateway sends the second bc-authorize with user_code and the
// request's id_token_hint, and polling goes on to a session.
func TestCIBA02_UserCodeRequiredThenUserCode(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	g.mustLogin("kari") // an ID token the provider issued to this client, to hint with
	idToken := g.browserSession(g.browser).IDToken
	g.op.SetCIBAUserCode(oidctest.SubjectKari, "4711")
	cli := &http.Client{} // the kiosk: no cookies

	claims := map[string]any{"id_token": map[string]any{"personal_id_number": nil}}
	st, out, _ := g.cibaCall(cli, g.srv.URL, "start", map[string]any{"id_token_hint": idToken, "binding_message": "Kiosk 7", "claims": claims, "acr_values": "urn:bankid:bid"})
	id, _ := out["request_id"].(string)
	if st != http.StatusOK || out["status"] != "user_code_required" || id == "" || out["expires_in"] != float64(600) {
		t.Fatalf("start for a user with a user code: %d %v, want user_code_required with a request_id", st, out)
	}
	if strings.Contains(fmt.Sprint(out), idToken) {
		t.Error("the answer carries the id_token_hint")
	}
	// Nothing to poll yet.
	clk.Advance(5 * time.Second)
	if st, out, _ := g.cibaCall(cli, g.srv.URL, "poll", map[string]any{"request_id": id}); st != http.StatusOK || out["status"] != "user_code_required" || g.op.Counts().CIBAPoll != 0 {
		t.Errorf("poll before the user code: %d %v, %d provider polls", st, out, g.op.Counts().CIBAPoll)
	}
	// A wrong code: the provider's error, and the request goes on.
	st, out, hdr := g.cibaCall(cli, g.srv.URL, "user-code", map[string]any{"request_id": id, "user_code": "1234"})
	wantCIBARefusal(t, "wrong user code", st, out, hdr, http.StatusBadRequest, "invalid_user_code")
	// The right code, as a form.
	st, out, _ = g.cibaForm(cli, "user-code", url.Values{"request_id": {id}, "user_code": {"4711"}})
	if st != http.StatusOK || out["status"] != "pending" || out["interval"] != float64(5) || out["expires_in"] != float64(120) {
		t.Fatalf("user-code: %d %v", st, out)
	}
	q := g.op.LastCIBARequest()
	if q.Get("user_code") != "4711" || q.Get("id_token_hint") != idToken || q.Has("login_hint") || q.Get("binding_message") != "Kiosk 7" ||
		q.Get("claims") != `{"id_token":{"personal_id_number":null}}` || q.Get("acr_values") != "urn:bankid:bid" {
		t.Errorf("second bc-authorize = %v, want user_code, the id_token_hint and the start's parameters", q)
	}
	sessions := g.store.Len()
	st, out, hdr = g.approveAndPoll(clk, cli, idToken, id)
	profile, _ := out["profile"].(map[string]any)
	if st != http.StatusOK || out["status"] != "authenticated" || profile["sub"] != oidctest.SubjectKari || g.store.Len() != sessions+1 {
		t.Fatalf("poll after the user code: %d %v, sessions %d -> %d", st, out, sessions, g.store.Len())
	}
	if !strings.Contains(hdr.Get("Set-Cookie"), g.h.sessions.cookieName+"=") {
		t.Error("no session cookie after the CIBA login")
	}
	// Finished: the user-code endpoint knows it no more.
	st, out, hdr = g.cibaCall(cli, g.srv.URL, "user-code", map[string]any{"request_id": id, "user_code": "4711"})
	wantCIBARefusal(t, "user-code after completion", st, out, hdr, http.StatusNotFound, "unknown_request")
}

// A request started without id_token_hint cannot take a user code (seed 004 step 3 sends
// it with id_token_hint): 409, nothing sent, nothing created. An unknown request_id: 404.
func TestCIBAUserCodeRefusals(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	g.op.SetCIBAUserCode(oidctest.SubjectOla, "2468")
	st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "start", map[string]any{"login_hint": "ola"})
	id, _ := out["request_id"].(string)
	if st != http.StatusOK || out["status"] != "user_code_required" {
		t.Fatalf("start: %d %v", st, out)
	}
	authorizes := g.op.Counts().CIBAAuthorize
	st, out, hdr := g.cibaCall(http.DefaultClient, g.srv.URL, "user-code", map[string]any{"request_id": id, "user_code": "2468"})
	wantCIBARefusal(t, "user-code without id_token_hint", st, out, hdr, http.StatusConflict, "id_token_hint_required")
	st, out, hdr = g.cibaCall(http.DefaultClient, g.srv.URL, "user-code", map[string]any{"request_id": session.NewID(), "user_code": "2468"})
	wantCIBARefusal(t, "user-code for an unknown request", st, out, hdr, http.StatusNotFound, "unknown_request")
	for _, body := range []map[string]any{
		{"request_id": "../x", "user_code": "2468"},
		{"request_id": id},
		{"request_id": id, "user_code": "24\n68"},
		{"request_id": id, "user_code": strings.Repeat("1", 65)},
	} {
		st, out, hdr := g.cibaCall(http.DefaultClient, g.srv.URL, "user-code", body)
		wantCIBARefusal(t, fmt.Sprintf("user-code %v", body), st, out, hdr, http.StatusBadRequest, "invalid_request")
	}
	if n := g.op.Counts().CIBAAuthorize; n != authorizes || g.store.Len() != 0 {
		t.Errorf("refused user codes: %d bc-authorize requests, %d sessions; want none", n-authorizes, g.store.Len())
	}
	// The request itself is intact.
	if st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": id}); st != http.StatusOK || out["status"] != "user_code_required" {
		t.Errorf("poll after the refusals: %d %v", st, out)
	}

	// Guessing codes: at most 5 are sent for one request, then it is over.
	g.mustLogin("kari")
	g.op.SetCIBAUserCode(oidctest.SubjectKari, "4711")
	_, out, _ = g.cibaCall(http.DefaultClient, g.srv.URL, "start", map[string]any{"id_token_hint": g.browserSession(g.browser).IDToken})
	id, _ = out["request_id"].(string)
	for i := range 5 {
		if st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "user-code", map[string]any{"request_id": id, "user_code": fmt.Sprint(1000 + i)}); out["error"] != "invalid_user_code" {
			t.Fatalf("guess %d: %d %v", i, st, out)
		}
	}
	authorizes = g.op.Counts().CIBAAuthorize
	st, out, hdr = g.cibaCall(http.DefaultClient, g.srv.URL, "user-code", map[string]any{"request_id": id, "user_code": "4711"})
	wantCIBARefusal(t, "sixth user code", st, out, hdr, http.StatusTooManyRequests, "too_many_attempts")
	if g.op.Counts().CIBAAuthorize != authorizes {
		t.Error("the sixth user code was sent to the provider")
	}
}

// CIBA-06: an expired request answers 410 expired_token on poll and user-code, also after
// the provider said expired_token; a request that never existed is still 404.
func TestCIBA06_ExpiredAnswers410(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	g.mustLogin("kari")
	sessions := g.store.Len()
	id := g.cibaStart(http.DefaultClient, "bindid-known")
	clk.Advance(121 * time.Second)
	for range 2 {
		st, out, hdr := g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": id})
		wantCIBARefusal(t, "poll of an expired request", st, out, hdr, http.StatusGone, "expired_token")
	}
	st, out, hdr := g.cibaCall(http.DefaultClient, g.srv.URL, "user-code", map[string]any{"request_id": id, "user_code": "1"})
	wantCIBARefusal(t, "user-code of an expired request", st, out, hdr, http.StatusGone, "expired_token")
	if n := g.op.Counts().CIBAPoll; n != 0 {
		t.Errorf("the provider was polled %d times for an expired request", n)
	}
	st, out, hdr = g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": session.NewID()})
	wantCIBARefusal(t, "poll of a request that never existed", st, out, hdr, http.StatusNotFound, "unknown_request")

	// The provider's expired_token (CIBA Core 11) is remembered the same way.
	g.op.SetFaults(oidctest.Faults{CIBATokenError: "expired_token", CIBATokenErrorOnPoll: 1})
	id = g.cibaStart(http.DefaultClient, "ola")
	clk.Advance(5 * time.Second)
	for range 2 {
		st, out, hdr := g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": id})
		wantCIBARefusal(t, "poll after the provider's expired_token", st, out, hdr, http.StatusGone, "expired_token")
	}
	if n := g.op.Counts().CIBAPoll; n != 1 {
		t.Errorf("provider polls = %d, want 1 (never again after expired_token)", n)
	}
	if g.store.Len() != sessions {
		t.Errorf("sessions %d -> %d", sessions, g.store.Len())
	}
	// Long after, the tombstone is gone too.
	clk.Advance(cibaTombstone + time.Minute)
	if st, _, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": id}); st != http.StatusNotFound && st != http.StatusGone {
		t.Errorf("poll long after expiry: %d", st)
	}
}

// apiGet is a fetch() of path with the browser c's cookies.
func (g *gateway) apiGet(c *http.Client, path string, hdr map[string]string) *http.Response {
	g.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+path, nil)
	req.Header.Set("Accept", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, _ := do(g.t, c, req)
	return resp
}

// verifyConfirmation checks an X-Auth-Confirmation independently: an ES256 JWS whose kid is
// in jwks.json and whose signature verifies with that key (go-jose); it returns the claims.
func (g *gateway) verifyConfirmation(tok string) map[string]any {
	g.t.Helper()
	set := g.fetchJWKS()
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		g.t.Fatalf("X-Auth-Confirmation is not an ES256 JWS: %v", err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		g.t.Fatalf("kid %q is not in jwks.json", jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		g.t.Fatalf("X-Auth-Confirmation does not verify with jwks.json: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		g.t.Fatal(err)
	}
	return claims
}

// from_session: a signed-in user confirms a transaction on their phone. The session's ID
// token is the id_token_hint; on success no session is made, and the session's next request
// (only that one) carries X-Auth-Confirmation, signed by the gateway.
func TestCIBAFromSessionConfirmsATransaction(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	g.mustLogin("bindid-known")
	before := g.browserSession(g.browser)

	st, out, _ := g.cibaCall(g.browser, g.srv.URL, "start", map[string]any{"from_session": true, "binding_message": "Pay 120 EUR to ACME"})
	id, _ := out["request_id"].(string)
	if st != http.StatusOK || out["status"] != "pending" || id == "" {
		t.Fatalf("from_session start: %d %v", st, out)
	}
	if q := g.op.LastCIBARequest(); q.Get("id_token_hint") != before.IDToken || q.Get("binding_message") != "Pay 120 EUR to ACME" || q.Has("login_hint") {
		t.Errorf("bc-authorize = %v, want the session's ID token as id_token_hint and the binding message", q)
	}
	// The poll may come from anywhere that holds the request_id; no cookie is set.
	st, out, hdr := g.approveAndPoll(clk, http.DefaultClient, before.IDToken, id)
	if st != http.StatusOK || out["status"] != "confirmed" || len(out) != 1 || hdr.Get("Set-Cookie") != "" {
		t.Fatalf("poll: %d %v (Set-Cookie %q), want {\"status\":\"confirmed\"} and no cookie", st, out, hdr.Get("Set-Cookie"))
	}
	if g.store.Len() != 1 || g.browserSession(g.browser).Confirmation == nil {
		t.Fatalf("sessions = %d, want the one session, now with a confirmation", g.store.Len())
	}

	if resp := g.apiGet(g.browser, "/pay", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("next request: %d", resp.StatusCode)
	}
	tok := g.upstream.Header().Get("X-Auth-Confirmation")
	if tok == "" {
		t.Fatal("the next request carried no X-Auth-Confirmation")
	}
	claims := g.verifyConfirmation(tok)
	iat, _ := claims["iat"].(float64)
	exp, _ := claims["exp"].(float64)
	jti, _ := claims["jti"].(string)
	if claims["binding_message"] != "Pay 120 EUR to ACME" || claims["sub"] != oidctest.SubjectBindIDKnown || len(jti) < 22 ||
		claims["iss"] != g.srv.URL || claims["aud"] != g.srv.URL || int64(iat) != clk.Now().Unix() || exp-iat != 300 {
		t.Errorf("confirmation claims = %v", claims)
	}
	// txn names the transaction the application started: base64url(SHA-256(request_id)).
	sum := sha256.Sum256([]byte(id))
	if claims["txn"] != base64.RawURLEncoding.EncodeToString(sum[:]) || claims["acr"] == nil {
		t.Errorf("confirmation txn = %v, acr = %v; want the request's hash and the phone login's acr", claims["txn"], claims["acr"])
	}
	// Single use: gone from the session and from the next request.
	if g.browserSession(g.browser).Confirmation != nil {
		t.Error("the confirmation is still in the session after it was sent")
	}
	if resp := g.apiGet(g.browser, "/pay", nil); resp.StatusCode != http.StatusOK || g.upstream.Header().Get("X-Auth-Confirmation") != "" {
		t.Errorf("the request after: %d, X-Auth-Confirmation %q; want none", resp.StatusCode, g.upstream.Header().Get("X-Auth-Confirmation"))
	}
	if after := g.browserSession(g.browser); after.Subject != before.Subject || after.IDToken != before.IDToken || !after.ExpiresAt.Equal(before.ExpiresAt) {
		t.Error("the session changed beyond its confirmation")
	}
}

// from_session without a session: 401, nothing sent, nothing created. With another hint:
// 400.
func TestCIBAFromSessionWithoutASession(t *testing.T) {
	g := newGateway(t, withCIBA(nil))
	st, out, hdr := g.cibaCall(http.DefaultClient, g.srv.URL, "start", map[string]any{"from_session": true, "binding_message": "Pay 120 EUR to ACME"})
	wantCIBARefusal(t, "from_session without a session", st, out, hdr, http.StatusUnauthorized, "session_required")
	st, out, hdr = g.cibaForm(http.DefaultClient, "start", url.Values{"from_session": {"true"}})
	wantCIBARefusal(t, "from_session (form) without a session", st, out, hdr, http.StatusUnauthorized, "session_required")
	g.mustLogin("bindid-known")
	st, out, hdr = g.cibaCall(g.browser, g.srv.URL, "start", map[string]any{"from_session": true, "login_hint": "ola"})
	wantCIBARefusal(t, "from_session with a login_hint", st, out, hdr, http.StatusBadRequest, "invalid_request")
	st, out, hdr = g.cibaCall(g.browser, g.srv.URL, "start", map[string]any{"from_session": "yes"})
	wantCIBARefusal(t, "from_session yes", st, out, hdr, http.StatusBadRequest, "invalid_request")
	if n := g.op.Counts().CIBAAuthorize; n != 0 || g.store.Len() != 1 {
		t.Errorf("bc-authorize requests %d, sessions %d; want 0 and the browser's 1", n, g.store.Len())
	}
}

// CIBA-09: the confirmation is bound to the session's user. A poll whose login is another
// user is refused (403) and changes nothing: no confirmation, no new session, the session
// works as before.
func TestCIBA09_ConfirmationByAnotherUserRefused(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	g.mustLogin("bindid-known")
	before := g.browserSession(g.browser)
	_, out, _ := g.cibaCall(g.browser, g.srv.URL, "start", map[string]any{"from_session": true, "binding_message": "Pay 120 EUR to ACME"})
	id, _ := out["request_id"].(string)
	// The provider answers with Åse's tokens (ID token and userinfo agree on her).
	g.op.SetFaults(oidctest.Faults{
		MutateIDToken:  func(_, c map[string]any) { c["sub"] = oidctest.SubjectAse },
		MutateUserinfo: func(_, c map[string]any) { c["sub"] = oidctest.SubjectAse },
	})
	st, out, hdr := g.approveAndPoll(clk, http.DefaultClient, before.IDToken, id)
	wantCIBARefusal(t, "confirmation by another user", st, out, hdr, http.StatusForbidden, "subject_mismatch")
	after := g.browserSession(g.browser)
	if g.store.Len() != 1 || after.Confirmation != nil || after.Version != before.Version || after.Subject != before.Subject {
		t.Errorf("sessions %d, confirmation %v, version %d -> %d; want the session unchanged", g.store.Len(), after.Confirmation, before.Version, after.Version)
	}
	g.op.SetFaults(oidctest.Faults{})
	if resp := g.apiGet(g.browser, "/pay", nil); resp.StatusCode != http.StatusOK || g.upstream.Header().Get("X-Auth-Confirmation") != "" ||
		g.upstream.Header().Get("X-Auth-Subject") != oidctest.SubjectBindIDKnown {
		t.Errorf("the session after the refusal: %d, confirmation %q", resp.StatusCode, g.upstream.Header().Get("X-Auth-Confirmation"))
	}
	st, out, hdr = g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": id})
	wantCIBARefusal(t, "poll after the refusal", st, out, hdr, http.StatusNotFound, "unknown_request")
}

// HDR-01: X-Auth-Confirmation is a managed header: a client's copy (any case, '_' for '-')
// never reaches the upstream, with or without a confirmation waiting.
func TestHDR01_ClientConfirmationHeaderRemoved(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	g.mustLogin("bindid-known")
	for _, name := range []string{"X-Auth-Confirmation", "x-auth-confirmation", "X_Auth_Confirmation"} {
		req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/pay", nil)
		req.Header.Set("Accept", "application/json")
		req.Header[name] = []string{"eyJhbGciOiJub25lIn0.eyJiaW5kaW5nX21lc3NhZ2UiOiJQYXkgMSBFVVIifQ."}
		if resp, _ := do(t, g.browser, req); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", name, resp.StatusCode)
		}
		for k := range g.upstream.Header() {
			if n := strings.ToLower(strings.ReplaceAll(k, "_", "-")); n == "x-auth-confirmation" {
				t.Errorf("client-sent %s reached the upstream as %s", name, k)
			}
		}
	}
	// With a real confirmation waiting, the upstream gets the gateway's, not the client's.
	_, out, _ := g.cibaCall(g.browser, g.srv.URL, "start", map[string]any{"from_session": true, "binding_message": "Pay 120 EUR to ACME"})
	id, _ := out["request_id"].(string)
	if st, out, _ := g.approveAndPoll(clk, http.DefaultClient, g.browserSession(g.browser).IDToken, id); out["status"] != "confirmed" {
		t.Fatalf("poll: %d %v", st, out)
	}
	g.apiGet(g.browser, "/pay", map[string]string{"X-Auth-Confirmation": "forged"})
	if got := g.upstream.Header().Values("X-Auth-Confirmation"); len(got) != 1 || got[0] == "forged" {
		t.Fatalf("X-Auth-Confirmation = %q, want only the gateway's", got)
	}
	if g.verifyConfirmation(g.upstream.Header().Get("X-Auth-Confirmation"))["binding_message"] != "Pay 120 EUR to ACME" {
		t.Error("the upstream's confirmation is not the gateway's")
	}
}

// SES-07: with Redis, what a pending CIBA request keeps (the id_token_hint, the claims
// request, the binding message) and the session's waiting confirmation are encrypted at
// rest; none of it, nor the user code, is logged. The from_session confirmation works
// through Redis (the session's encoding keeps it) and is sent once.
func TestSES07_CIBARecordsAndConfirmationEncryptedInRedis(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	srv := redistest.Start(t)
	rs, err := session.NewRedisStore(session.RedisOptions{Addrs: []string{srv.Addr()}, Secrets: [][]byte{[]byte(testSecret)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	g.h.store = rs
	logs := observeLogs(g.h)
	g.mustLogin("kari")
	var sid string
	_ = g.h.sessions.codec.Decode(g.h.sessions.cookieName, g.sessionCookie(g.browser), &sid)
	stored := func() *session.Session {
		s, err := rs.Reload(t.Context(), sid)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	idToken := stored().IDToken
	g.op.SetCIBAUserCode(oidctest.SubjectKari, "4711")

	// dump is every key and value in Redis, as text.
	dump := func() string {
		var b strings.Builder
		keys, _ := srv.Do(t, "KEYS", "*").([]any)
		for _, k := range keys {
			key := fmt.Sprint(k)
			b.WriteString(key + " ")
			switch typ := fmt.Sprint(srv.Do(t, "TYPE", key)); typ {
			case "string":
				b.WriteString(fmt.Sprint(srv.Do(t, "GET", key)))
			case "hash":
				b.WriteString(fmt.Sprint(srv.Do(t, "HGETALL", key)))
			case "set":
				b.WriteString(fmt.Sprint(srv.Do(t, "SMEMBERS", key)))
			case "zset":
				b.WriteString(fmt.Sprint(srv.Do(t, "ZRANGE", key, "0", "-1")))
			case "list":
				b.WriteString(fmt.Sprint(srv.Do(t, "LRANGE", key, "0", "-1")))
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	const binding, claimName = "Pay 120 EUR to ACME", "personal_id_number"
	_, out, _ := g.cibaCall(g.browser, g.srv.URL, "start", map[string]any{"from_session": true, "binding_message": binding,
		"claims": map[string]any{"id_token": map[string]any{claimName: nil}}})
	id, _ := out["request_id"].(string)
	if out["status"] != "user_code_required" {
		t.Fatalf("start: %v", out)
	}
	_, out, _ = g.cibaCall(http.DefaultClient, g.srv.URL, "start", map[string]any{"id_token_hint": idToken, "requested_expiry": 300})
	if out["status"] != "user_code_required" {
		t.Fatalf("start with id_token_hint: %v", out)
	}
	d := dump()
	if n := strings.Count(d, "\n"); n < 5 { // a session, two requests with their hint/claims records, locks
		t.Fatalf("Redis holds %d keys; the test needs the records there:\n%s", n, d)
	}
	for what, v := range map[string]string{"id_token_hint": idToken[strings.LastIndexByte(idToken, '.')+1:], "binding message": binding, "claims": claimName, "request_id": id} {
		if strings.Contains(d, v) {
			t.Errorf("Redis holds the %s in clear", what)
		}
	}
	if st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "user-code", map[string]any{"request_id": id, "user_code": "4711"}); st != http.StatusOK || out["status"] != "pending" {
		t.Fatalf("user-code: %d %v", st, out)
	}
	if q := g.op.LastCIBARequest(); q.Get("id_token_hint") != idToken || q.Get("binding_message") != binding || !strings.Contains(q.Get("claims"), claimName) {
		t.Errorf("second bc-authorize = %v", q)
	}
	if st, out, _ := g.approveAndPoll(clk, http.DefaultClient, idToken, id); out["status"] != "confirmed" {
		t.Fatalf("poll: %d %v", st, out)
	}
	c := stored().Confirmation
	if c == nil {
		t.Fatal("no confirmation in the stored session")
	}
	if strings.Contains(dump(), c.Token[strings.LastIndexByte(c.Token, '.')+1:]) {
		t.Error("Redis holds the confirmation in clear")
	}
	g.apiGet(g.browser, "/pay", nil)
	if got := g.upstream.Header().Get("X-Auth-Confirmation"); got != c.Token {
		t.Error("the next request did not carry the confirmation")
	}
	g.apiGet(g.browser, "/pay", nil)
	if g.upstream.Header().Get("X-Auth-Confirmation") != "" || stored().Confirmation != nil {
		t.Error("the confirmation was sent twice or kept")
	}
	if len(logs.entries()) < 4 {
		t.Fatal("too few log lines captured to check")
	}
	for _, e := range logs.entries() {
		line := e.Message + e.Fields
		for what, v := range map[string]string{"id token": idToken, "confirmation": c.Token, "user code": "4711", "request_id": id} {
			if strings.Contains(line, v) {
				t.Errorf("log line %q contains the %s", e.Message, what)
			}
		}
	}
}

// ciba/user-code also works on a request that is already pending (the provider asked for no
// code at first): the request goes on with the new auth_req_id only.
func TestCIBAUserCodeOnAPendingRequest(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	g.mustLogin("kari")
	idToken := g.browserSession(g.browser).IDToken
	st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "start", map[string]any{"id_token_hint": idToken})
	id, _ := out["request_id"].(string)
	if st != http.StatusOK || out["status"] != "pending" {
		t.Fatalf("start: %d %v", st, out)
	}
	first, _ := g.op.CIBAByHint(idToken)
	g.op.SetCIBAUserCode(oidctest.SubjectKari, "4711")
	clk.Advance(time.Second) // CIBAByHint finds the newer request
	if st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "user-code", map[string]any{"request_id": id, "user_code": "4711"}); st != http.StatusOK || out["status"] != "pending" {
		t.Fatalf("user-code on a pending request: %d %v", st, out)
	}
	second, _ := g.op.CIBAByHint(idToken)
	if second == first || g.op.LastCIBARequest().Get("user_code") != "4711" {
		t.Fatal("no new auth_req_id from the second bc-authorize")
	}
	_ = g.op.CIBAApprove(first) // approving the old one does not finish the request
	clk.Advance(5 * time.Second)
	if st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": id}); st != http.StatusOK || out["status"] != "pending" {
		t.Fatalf("poll with the old auth_req_id approved: %d %v, want pending (the new one is polled)", st, out)
	}
	if times := g.op.CIBAPollTimes(first); len(times) != 0 {
		t.Errorf("the replaced auth_req_id was polled %d times", len(times))
	}
	clk.Advance(5 * time.Second) // the interval since the poll above
	if st, out, _ := g.approveAndPoll(clk, http.DefaultClient, idToken, id); st != http.StatusOK || out["status"] != "authenticated" {
		t.Errorf("poll after approving the new one: %d %v", st, out)
	}
}

// A confirmation that waited past its exp is dropped, not sent.
func TestCIBAConfirmationExpiresUnsent(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	g.mustLogin("bindid-known")
	_, out, _ := g.cibaCall(g.browser, g.srv.URL, "start", map[string]any{"from_session": true, "binding_message": "Pay 120 EUR to ACME"})
	id, _ := out["request_id"].(string)
	if _, out, _ := g.approveAndPoll(clk, http.DefaultClient, g.browserSession(g.browser).IDToken, id); out["status"] != "confirmed" {
		t.Fatalf("poll: %v", out)
	}
	clk.Advance(confirmationLifetime)
	if resp := g.apiGet(g.browser, "/pay", nil); resp.StatusCode != http.StatusOK || g.upstream.Header().Get("X-Auth-Confirmation") != "" {
		t.Errorf("%d, X-Auth-Confirmation %q; want an expired confirmation dropped", resp.StatusCode, g.upstream.Header().Get("X-Auth-Confirmation"))
	}
	if g.browserSession(g.browser).Confirmation != nil {
		t.Error("the expired confirmation is still in the session")
	}
}

// TestFL01_CIBALoginCSRF: another site's page cannot drive the CIBA endpoints in the user's
// browser. An attacker who approved a login of their own account on their own phone posts
// a form to ciba/poll from their page; the browser must not get the attacker's session.
// Every endpoint refuses a cross-site request (Sec-Fetch-Site or a foreign Origin) with 403
// cross_site, before reading the body: no provider call, no cookie, nothing stored or spent.
func TestFL01_CIBALoginCSRF(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	attacker := &http.Client{}
	requestID := g.cibaStart(attacker, "bindid-known")
	authReqID, _ := g.op.CIBAByHint("bindid-known")
	if err := g.op.CIBAApprove(authReqID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Second)
	polls := g.op.Counts().CIBAPoll

	for _, tc := range []struct {
		name, endpoint string
		hdr            map[string]string
	}{
		{"poll, Sec-Fetch-Site cross-site", "poll", map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"poll, foreign Origin", "poll", map[string]string{"Origin": "https://attacker.example"}},
		{"poll, Origin null (sandboxed frame)", "poll", map[string]string{"Origin": "null"}},
		{"user-code, foreign Origin", "user-code", map[string]string{"Origin": "https://attacker.example"}},
		{"start, Sec-Fetch-Site cross-site", "start", map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"request_id": {requestID}, "user_code": {"1234"}, "login_hint": {"ola"}}
			req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/.trustgate/ciba/"+tc.endpoint, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			resp, raw := do(t, g.browser, req)
			var out map[string]any
			_ = json.Unmarshal([]byte(raw), &out)
			if resp.StatusCode != http.StatusForbidden || out["error"] != "cross_site" {
				t.Errorf("%s: %d %v, want 403 cross_site", tc.endpoint, resp.StatusCode, out)
			}
			if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
				t.Errorf("%s: Set-Cookie %q on a refused cross-site request", tc.endpoint, sc)
			}
		})
	}
	if g.sessionCookie(g.browser) != "" || g.store.Len() != 0 {
		t.Errorf("cross-site requests left a session: cookie %v, %d sessions", g.sessionCookie(g.browser) != "", g.store.Len())
	}
	if n := g.op.Counts().CIBAPoll; n != polls {
		t.Errorf("provider polls = %d, want %d: a refused request must not reach the provider", n, polls)
	}
	// The request was not spent: its own client (no browser headers; a same-origin page
	// would send its own Origin) still finishes the login.
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/.trustgate/ciba/poll", strings.NewReader(`{"request_id":"`+requestID+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", g.srv.URL)
	jar, _ := cookiejar.New(nil)
	if resp, raw := do(t, &http.Client{Jar: jar}, req); resp.StatusCode != http.StatusOK || !strings.Contains(raw, `"authenticated"`) {
		t.Errorf("same-origin poll after the refusals: %d %s", resp.StatusCode, web.Clip(raw, 200))
	}
}

// max_expiry is a hard cap from the start: a user code sent late gets a new
// acknowledgement from the provider, but not a longer life for the request.
func TestCIBAUserCodeDoesNotExtendMaxExpiry(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk), func(h *Handler, _ *oidctest.Options) { h.CIBA.MaxExpiry = caddy.Duration(2 * time.Minute) })
	g.mustLogin("kari")
	idToken := g.browserSession(g.browser).IDToken
	st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "start", map[string]any{"id_token_hint": idToken})
	id, _ := out["request_id"].(string)
	if st != http.StatusOK {
		t.Fatalf("start: %d %v", st, out)
	}
	g.op.SetCIBAUserCode(oidctest.SubjectKari, "4711")
	clk.Advance(100 * time.Second) // 20 s of max_expiry left
	if st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "user-code", map[string]any{"request_id": id, "user_code": "4711"}); st != http.StatusOK {
		t.Fatalf("user-code: %d %v", st, out)
	}
	clk.Advance(21 * time.Second) // past the original deadline, within the new ack's 120 s
	st, out, _ = g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": id})
	if st != http.StatusGone || out["error"] != "expired_token" {
		t.Errorf("poll past the original deadline: %d %v, want 410 expired_token", st, out)
	}
	if g.store.Len() != 1 {
		t.Errorf("sessions = %d, want only kari's browser session", g.store.Len())
	}
}

// A start refused before anything is sent (here a binding_message over 64 characters)
// spends neither the user's start slot nor the client's: the corrected retry goes through.
func TestCIBA10_RefusedStartSpendsNoSlot(t *testing.T) {
	g := newGateway(t, withCIBA(newTestClock()), func(h *Handler, _ *oidctest.Options) { h.CIBA.StartsPerIP = 1 })
	st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "start", map[string]any{"login_hint": "ola", "binding_message": strings.Repeat("x", 65)})
	if st != http.StatusBadRequest || out["error"] != "invalid_request" || g.op.Counts().CIBAAuthorize != 0 {
		t.Fatalf("start with a long binding_message: %d %v, %d bc-authorize calls; want 400 invalid_request and none", st, out, g.op.Counts().CIBAAuthorize)
	}
	if st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "start", map[string]any{"login_hint": "ola", "binding_message": "Kiosk 7"}); st != http.StatusOK {
		t.Errorf("corrected start: %d %v, want 200 (the refused one took no slot)", st, out)
	}
}
