package trustgate

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/session"
)

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
	*base
	group singleflight.Group
	mu    sync.Mutex
	at    time.Time // when doc was computed; zero: never
	doc   healthDoc
	retry time.Duration // Retry-After when unavailable
}

// serve answers whether this gateway can log users in and serve sessions: 200 when the
// provider's discovery is loaded (or loads within healthProviderTimeout) and the session
// store answers, 503 with Retry-After otherwise. It needs no session and never redirects.
func (c *healthCheck) serve(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return c.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusMethodNotAllowed, Reason: "method_not_allowed", Message: "use GET or HEAD", Form: web.JSON})
	}
	doc, retry := c.get()
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
func (c *healthCheck) get() (healthDoc, time.Duration) {
	c.mu.Lock()
	if !c.at.IsZero() && c.now().Sub(c.at) < healthCacheTTL {
		doc, retry := c.doc, c.retry
		c.mu.Unlock()
		return doc, retry
	}
	c.mu.Unlock()
	v, _, _ := c.group.Do("health", func() (any, error) {
		doc, retry := c.check()
		c.mu.Lock()
		c.at, c.doc, c.retry = c.now(), doc, retry
		c.mu.Unlock()
		return healthResult{doc, retry}, nil
	})
	res := v.(healthResult)
	return res.doc, res.retry
}

// check asks the provider client (discovery: cached once loaded, backed off after
// failures) and the store (a ping), both at once and bounded. It runs on its own context:
// one health client giving up does not fail the check for the others.
func (c *healthCheck) check() (healthDoc, time.Duration) {
	doc := healthDoc{Status: "ok", Provider: "ok", Store: "ok"}
	var retry time.Duration
	storeErr := make(chan error, 1)
	go func() {
		p, ok := c.store.(session.Pinger)
		if !ok {
			storeErr <- nil
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), healthStoreTimeout)
		defer cancel()
		storeErr <- p.Ping(ctx)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), healthProviderTimeout)
	_, err := c.client.Discover(ctx)
	cancel()
	if err != nil {
		doc.Status, doc.Provider = "unavailable", "down: discovery failed"
		retry = max(c.client.RetryAfter(), time.Second)
		c.logger.Warn("health check: provider discovery failed", zap.String("reason", oidcflow.ReasonCode(err)), zap.Error(err))
	}
	if err := <-storeErr; err != nil {
		doc.Status, doc.Store = "unavailable", "down: not reachable"
		retry = max(retry, 5*time.Second)
		c.logger.Warn("health check: session store unavailable", zap.String("reason", "store_unavailable"), zap.Error(err))
	}
	return doc, retry
}
