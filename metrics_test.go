package trustgate

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/session"
)

// Metrics and events.

func withRegistry(reg *prometheus.Registry) gatewayOption {
	return func(h *Handler, _ *oidctest.Options) { h.metricsRegistry = reg }
}

// metricValue is the value of the counter, gauge or histogram (its sample count) name
// whose labels include want; 0 when there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// eventLog records the Caddy events a handler emits.
type eventLog struct {
	mu     sync.Mutex
	events []string // name and data, formatted
	names  []string
}

func (l *eventLog) emit(name string, data map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.names = append(l.names, name)
	l.events = append(l.events, fmt.Sprintf("%s %v", name, data))
}

func TestMetricsAndEventsOfAGatewayLifecycle(t *testing.T) {
	clk := newTestClock()
	reg := prometheus.NewPedanticRegistry()
	g := newGateway(t, withClock(clk, 5*time.Minute), withCIBA(clk), withRegistry(reg))
	events := &eventLog{}
	g.h.emitEvent = events.emit
	value := func(name string, labels map[string]string) float64 { return metricValue(t, reg, name, labels) }

	// A login.
	g.mustLogin("bindid-known")
	s := g.stored()
	if v := value("trustgate_logins_started_total", map[string]string{"kind": "login"}); v != 1 {
		t.Errorf("logins started (login) = %v, want 1", v)
	}
	if v := value("trustgate_logins_total", map[string]string{"result": "ok", "method": "code", "reason": "ok"}); v != 1 {
		t.Errorf("logins ok = %v, want 1", v)
	}
	if v := value("trustgate_sessions_active", nil); v != 1 {
		t.Errorf("sessions_active = %v, want 1", v)
	}

	// A callback that belongs to no login started here.
	resp, _ := g.navigate(g.newBrowser(), "/.trustgate/callback?state="+session.NewID()+"&code=abc")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("stray callback: %d, want 400", resp.StatusCode)
	}
	if v := value("trustgate_logins_total", map[string]string{"result": "failed", "method": "code", "reason": "callback_unknown_state"}); v != 1 {
		t.Errorf("logins failed (callback_unknown_state) = %v, want 1", v)
	}
	if v := value("trustgate_callback_duration_seconds", nil); v != 2 {
		t.Errorf("callback duration observations = %v, want 2", v)
	}

	// A refresh.
	clk.Advance(4*time.Minute + 30*time.Second)
	if resp, _ := g.api("/app"); resp.StatusCode != http.StatusOK {
		t.Fatalf("API at refresh time: %d", resp.StatusCode)
	}
	if v := value("trustgate_refreshes_total", map[string]string{"result": "ok"}); v != 1 {
		t.Errorf("refreshes ok = %v, want 1", v)
	}
	refreshed := g.stored()

	// A back-channel logout, its replay, and an invalid token.
	token := g.logoutToken("", g.sid(), nil, oidctest.LogoutTokenOptions{})
	for range 2 {
		g.postLogoutToken(url.Values{"logout_token": {token}})
	}
	g.postLogoutToken(url.Values{"logout_token": {"not-a-jwt"}})
	for result, want := range map[string]float64{"ok": 1, "replayed": 1, "invalid": 1, "store_error": 0} {
		if v := value("trustgate_backchannel_logouts_total", map[string]string{"result": result}); v != want {
			t.Errorf("back-channel logouts %s = %v, want %v", result, v, want)
		}
	}
	if v := value("trustgate_sessions_active", nil); v != 0 {
		t.Errorf("sessions_active after the logout = %v, want 0", v)
	}

	// A CIBA start, and a second one for the same user at once (rate limited).
	cli := &http.Client{}
	g.cibaStart(cli, "bindid-known")
	if st, _, _ := g.cibaCall(cli, g.srv.URL, "start", map[string]any{"login_hint": "bindid-known"}); st != http.StatusTooManyRequests {
		t.Fatalf("second CIBA start: %d, want 429", st)
	}
	for outcome, want := range map[string]float64{"started": 1, "rate_limited": 1} {
		if v := value("trustgate_ciba_total", map[string]string{"outcome": outcome}); v != want {
			t.Errorf("ciba %s = %v, want %v", outcome, v, want)
		}
	}
	if v := value("trustgate_logins_started_total", map[string]string{"kind": "ciba"}); v != 1 {
		t.Errorf("logins started (ciba) = %v, want 1", v)
	}
	if v := value("trustgate_store_errors_total", nil); v != 0 {
		t.Errorf("store errors = %v, want 0", v)
	}

	// Events: a login and a back-channel logout.
	events.mu.Lock()
	names, all := strings.Join(events.names, ","), strings.Join(events.events, "\n")
	events.mu.Unlock()
	if names != eventLogin+","+eventLogout {
		t.Errorf("events = %s, want %s,%s", names, eventLogin, eventLogout)
	}
	if !strings.Contains(all, "sub_hash:"+sessionHash(s.Subject)) || !strings.Contains(all, "session_hash:"+sessionHash(s.ID)) {
		t.Errorf("events lack the hashes: %s", all)
	}

	// No label value and no event carries a subject, session id or token.
	secrets := []string{s.Subject, s.ID, s.AccessToken, s.RefreshToken, s.IDToken, refreshed.AccessToken, refreshed.RefreshToken, "bindid-known", token}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels = append(labels, labelValues(m)...)
		}
	}
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		for _, l := range labels {
			if strings.Contains(l, secret) {
				t.Errorf("label value %q contains a subject or token", l)
			}
		}
		if strings.Contains(all, secret) {
			t.Errorf("an event contains a subject or token: %s", all)
		}
	}
}

func labelValues(m *dto.Metric) []string {
	var out []string
	for _, l := range m.GetLabel() {
		out = append(out, l.GetValue())
	}
	return out
}

// Several handlers of one config share the registry: the second one reuses the first
// one's collectors instead of failing with AlreadyRegisteredError.
func TestMetricsRegisterOncePerRegistry(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	a := newGateway(t, withRegistry(reg))
	b := newGateway(t, withRegistry(reg))
	if a.h.metrics == nil || a.h.metrics.logins != b.h.metrics.logins || a.h.metrics.callbackDuration != b.h.metrics.callbackDuration {
		t.Fatal("the second handler did not reuse the registered collectors")
	}
	a.mustLogin("bindid-known")
	b.mustLogin("bindid-known")
	if v := metricValue(t, reg, "trustgate_logins_total", map[string]string{"result": "ok"}); v != 2 {
		t.Errorf("logins ok = %v, want 2 (both handlers)", v)
	}
}
