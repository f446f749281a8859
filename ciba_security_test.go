package trustgate

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/session"
)

// Threat model (docs/threat-model.md) CIBA-05, CIBA-08: the CIBA flow (ciba.go) up to the provider's deadline, in poll mode only.

func TestCIBA05_PendingUntilTheDeadline(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withCIBA(clk))
	// The store runs on the same clock as the gateway, so the pending login's lifetime is
	// the ack's expires_in in test time.
	store := session.NewMemoryStore(session.MemoryOptions{MaxSessions: 1000, Now: clk.Now})
	t.Cleanup(func() { _ = store.Close() })
	g.h.store, g.store = store, store
	// The provider announces 30 s but would answer authorization_pending for its own 2 min.
	g.op.SetFaults(oidctest.Faults{CIBAAckExpiresIn: 30})
	id := g.cibaStart(http.DefaultClient, "bindid-known")
	poll := func() (int, map[string]any) {
		st, out, _ := g.cibaCall(http.DefaultClient, g.srv.URL, "poll", map[string]any{"request_id": id})
		return st, out
	}
	// Polled at every interval until the deadline: pending each time, one provider poll each.
	for at := 5 * time.Second; at < 30*time.Second; at += 5 * time.Second {
		clk.Advance(5 * time.Second)
		if st, out := poll(); st != http.StatusOK || out["status"] != "pending" {
			t.Fatalf("poll at %v: %d %v, want pending", at, st, out)
		}
	}
	polls := g.op.Counts().CIBAPoll
	if polls != 5 {
		t.Errorf("provider polls before the deadline = %d, want 5 (one per 5 s interval)", polls)
	}
	// At the deadline the gateway stops by itself: the client gets a final answer and the
	// provider is not asked again, however often the client polls.
	clk.Advance(6 * time.Second) // past the 30 s deadline
	for range 3 {
		st, out := poll()
		if st == http.StatusOK || (st != http.StatusGone && st != http.StatusNotFound) {
			t.Fatalf("poll after expires_in: %d %v, want 410 or 404", st, out)
		}
		clk.Advance(5 * time.Second)
	}
	if n := g.op.Counts().CIBAPoll; n != polls {
		t.Errorf("provider polls after the deadline = %d, want none", n-polls)
	}
	if g.store.Len() != 0 {
		t.Error("a session was created")
	}
	// Nothing polls in the background for an abandoned login.
	g.cibaStart(http.DefaultClient, "bindid-new")
	before := g.op.Counts().CIBAPoll
	clk.Advance(time.Minute)
	time.Sleep(50 * time.Millisecond)
	if n := g.op.Counts().CIBAPoll; n != before {
		t.Errorf("the gateway polled the provider %d times for a login nobody asks about", n-before)
	}
}

// TestCIBAPingModeIsNotOffered backs the N/A of CIBA-08: the gateway uses the CIBA poll
// mode only. It sends no client_notification_token, serves no ping callback, and refuses a
// provider that offers ping (or push) but not poll before asking it anything.
func TestCIBAPingModeIsNotOffered(t *testing.T) {
	g := newGateway(t, withCIBA(nil))
	g.cibaStart(http.DefaultClient, "bindid-known")
	if q := g.op.LastCIBARequest(); q.Has("client_notification_token") {
		t.Error("the backchannel request carries a client_notification_token (ping mode)")
	}
	for _, p := range []string{"/.trustgate/ciba/ping", "/.trustgate/ciba/notify", "/.trustgate/ciba/callback", "/.trustgate/ciba-notification"} {
		req, _ := http.NewRequest(http.MethodPost, g.srv.URL+p, strings.NewReader(`{"auth_req_id":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer anything")
		if resp, _ := do(t, http.DefaultClient, req); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404 (no ping callback)", p, resp.StatusCode)
		}
	}
	bc, hits := sweepAttackerHost(t, nil)
	for _, modes := range [][]string{{"ping"}, {"push"}, {"ping", "push"}} {
		issuer := sweepStubIssuer(t, func(doc map[string]any) {
			doc["backchannel_authentication_endpoint"] = bc.URL + "/bc-authorize"
			doc["backchannel_token_delivery_modes_supported"] = modes
			doc["grant_types_supported"] = []string{"authorization_code", "urn:openid:params:grant-type:ciba"}
		})
		h, _ := sweepHandlerFor(t, issuer, func(h *Handler) { h.CIBA = &CIBAConfig{} })
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "http://app.test/.trustgate/ciba/start", strings.NewReader(`{"login_hint":"`+strings.Join(modes, "-")+`"}`))
		req.Header.Set("Content-Type", "application/json")
		if err := h.ServeHTTP(w, req, &recorder{}); err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusNotImplemented {
			t.Errorf("provider with modes %v: ciba/start = %d %q, want 501", modes, w.Code, web.Clip(w.Body.String(), 120))
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the backchannel endpoint of a ping/push-only provider was called %d times", n)
	}
}
