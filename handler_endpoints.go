package trustgate

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/session"
	"github.com/trustgate/trustgate/trust"
)

// serveEndpoint serves the gateway's own endpoints. They never reach the upstream.
func (h *Handler) serveEndpoint(w http.ResponseWriter, r *http.Request, name string) error {
	switch name {
	case "callback":
		return h.login.callback(w, r)
	case "login":
		return h.login.serveLogin(w, r)
	case "logout":
		return h.logout.serveLogout(w, r)
	case "me":
		return h.me(w, r)
	case "jwks.json":
		return h.assertion.serveJWKS(w, r)
	case "backchannel-logout":
		return h.logout.serveBackchannel(w, r)
	case "signed-out":
		return h.logout.serveSignedOut(w, r)
	case "ciba/start":
		return h.ciba.start(w, r)
	case "ciba/poll":
		return h.ciba.poll(w, r)
	case "ciba/user-code":
		return h.ciba.userCode(w, r)
	case "healthz":
		return h.healthz(w, r)
	default:
		return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusNotFound, Reason: "not_found", Message: "no such gateway endpoint",
			Title: "Not found", PageMessage: "There is no such gateway endpoint."})
	}
}

// logoutResult answers a non-browser logout; a script continues at end_session_url to sign
// out at the provider too.
type logoutResult struct {
	Status        string `json:"status"`
	EndSessionURL string `json:"end_session_url,omitempty"`
}

// meDocument is /.trustgate/me: the profile and session times. Never a token.
type meDocument struct {
	*trust.Profile
	Session meSession `json:"session"`
}

type meSession struct {
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (h *Handler) me(w http.ResponseWriter, r *http.Request) error {
	web.NoStore(w)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusMethodNotAllowed, Reason: "method_not_allowed", Message: "use GET", Form: web.JSON})
	}
	s, err := h.sessions.current(r)
	if errors.Is(err, session.ErrNotFound) {
		return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusUnauthorized, Reason: "login_required", Message: "not signed in", Form: web.JSON,
			Fields: map[string]any{"login_url": h.PathPrefix + "/login"}})
	}
	if err != nil {
		return h.storeUnavailable(w, r, "get", err)
	}
	web.WriteJSON(w, http.StatusOK, meDocument{
		Profile: h.sessions.render(s).profile,
		Session: meSession{CreatedAt: s.CreatedAt.UTC(), ExpiresAt: s.ExpiresAt.UTC()},
	})
	return nil
}

// Health check bounds: a check waits at most healthProviderTimeout for discovery and
// healthStoreTimeout for the store, and its answer is reused for healthCacheTTL, so that a
// flood of health checks makes at most one discovery attempt and one store ping every few
// seconds (and discovery itself backs off after failures).
const (
	healthCacheTTL        = 3 * time.Second
	healthProviderTimeout = 2 * time.Second
	healthStoreTimeout    = time.Second
)

// healthDoc is the body of <path_prefix>/healthz. It names what is down, never why in
// detail: no URL, credential, token or provider message (those go to the log).
type healthDoc struct {
	Status   string `json:"status"`   // ok | unavailable
	Provider string `json:"provider"` // ok | down: ...
	Store    string `json:"store"`    // ok | down: ...
}

// healthCheck caches the last health answer of a handler; shared by concurrent checks.
type healthCheck struct {
	group singleflight.Group
	mu    sync.Mutex
	at    time.Time // when doc was computed; zero: never
	doc   healthDoc
	retry time.Duration // Retry-After when unavailable
}

// healthz answers whether this gateway can log users in and serve sessions: 200 when the
// provider's discovery is loaded (or loads within healthProviderTimeout) and the session
// store answers, 503 with Retry-After otherwise. It needs no session and never redirects.
func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusMethodNotAllowed, Reason: "method_not_allowed", Message: "use GET or HEAD", Form: web.JSON})
	}
	doc, retry := h.health.get(h)
	if doc.Status != "ok" {
		w.Header().Set("Retry-After", strconv.Itoa(max(int(retry.Round(time.Second)/time.Second), 1)))
		web.WriteJSON(w, http.StatusServiceUnavailable, doc)
		return nil
	}
	web.WriteJSON(w, http.StatusOK, doc)
	return nil
}

type healthResult struct {
	doc   healthDoc
	retry time.Duration
}

// get returns the cached answer while it is fresh, else computes one (once for all
// concurrent callers).
func (c *healthCheck) get(h *Handler) (healthDoc, time.Duration) {
	c.mu.Lock()
	if !c.at.IsZero() && h.now().Sub(c.at) < healthCacheTTL {
		doc, retry := c.doc, c.retry
		c.mu.Unlock()
		return doc, retry
	}
	c.mu.Unlock()
	v, _, _ := c.group.Do("health", func() (any, error) {
		doc, retry := h.checkHealth()
		c.mu.Lock()
		c.at, c.doc, c.retry = h.now(), doc, retry
		c.mu.Unlock()
		return healthResult{doc, retry}, nil
	})
	res := v.(healthResult)
	return res.doc, res.retry
}

// checkHealth asks the provider client (discovery: cached once loaded, backed off after
// failures) and the store (a ping), both at once and bounded. It runs on its own context:
// one health client giving up does not fail the check for the others.
func (h *Handler) checkHealth() (healthDoc, time.Duration) {
	doc := healthDoc{Status: "ok", Provider: "ok", Store: "ok"}
	var retry time.Duration
	storeErr := make(chan error, 1)
	go func() {
		p, ok := h.store.(session.Pinger)
		if !ok {
			storeErr <- nil
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), healthStoreTimeout)
		defer cancel()
		storeErr <- p.Ping(ctx)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), healthProviderTimeout)
	_, err := h.client.Discover(ctx)
	cancel()
	if err != nil {
		doc.Status, doc.Provider = "unavailable", "down: discovery failed"
		retry = max(h.client.RetryAfter(), time.Second)
		h.logger.Warn("health check: provider discovery failed", zap.String("reason", oidcflow.ReasonCode(err)), zap.Error(err))
	}
	if err := <-storeErr; err != nil {
		doc.Status, doc.Store = "unavailable", "down: not reachable"
		retry = max(retry, 5*time.Second)
		h.logger.Warn("health check: session store unavailable", zap.String("reason", "store_unavailable"), zap.Error(err))
	}
	return doc, retry
}
