package trustgate

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// CIBA (issue 9; SECURITY.md CIBA-*): browserless login through the gateway.

func withCIBA(clk *testClock) gatewayOption {
	return func(h *Handler, o *oidctest.Options) {
		h.CIBA = &CIBAConfig{}
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
	if st != http.StatusGone && st != http.StatusNotFound {
		t.Errorf("expired: %d %v, want 410 (or 404 once the record is gone)", st, out)
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
