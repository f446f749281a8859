package trustgate

import (
	"context"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/session"
)

// base is what every feature of one trustgate block shares: the provider client, the
// session store, the logger, the metrics and events, the clock, and the refusal writer.
// Handler embeds it; Provision fills it, and each feature type gets a pointer to it when
// Provision builds the feature. It knows nothing of Handler or of any feature.
type base struct {
	logger  *zap.Logger
	client  *oidcflow.Client
	store   session.Store
	metrics *metrics // nil counts nothing
	// emitEvent emits a Caddy event (the events app), or is nil.
	emitEvent func(name string, data map[string]any)
	now       func() time.Time
	refuser   web.Refuser // error_pages
	bg        *background // goroutines beyond a request; stopped by Cleanup
}

func (b *base) storeUnavailable(w http.ResponseWriter, r *http.Request, op string, err error) error {
	b.metrics.storeError(op)
	b.logger.Error("session store unavailable", zap.String("reason", "store_unavailable"), zap.Error(err))
	return b.serviceUnavailable(w, r, 5*time.Second, "store_unavailable", "The session store is not reachable right now. Your session is kept; please retry in a few seconds.")
}

func (b *base) serviceUnavailable(w http.ResponseWriter, r *http.Request, retry time.Duration, code, msg string) error {
	return b.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusServiceUnavailable, Reason: code, Message: msg, RetryAfter: max(retry, time.Second), Title: "Temporarily unavailable"})
}

// opTimeout bounds the calls to the provider made for one request (discovery wait,
// code exchange, userinfo).
const opTimeout = 15 * time.Second

// opContext bounds the provider calls made for one request.
func opContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), opTimeout)
}

// event emits a Caddy event, when the events app is there.
func (b *base) event(name string, data map[string]any) {
	if b.emitEvent != nil {
		b.emitEvent(name, data)
	}
}

// background owns the goroutines a trustgate block starts beyond a request (alias
// feedback to the provider): they run on its context, and Cleanup (caddy reload or stop)
// cancels it and waits for them, a bounded time, so a reload leaks nothing.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newBackground() *background {
	ctx, cancel := context.WithCancel(context.Background())
	return &background{ctx: ctx, cancel: cancel}
}

// run starts f on the group's context, bounded by timeout.
func (g *background) run(timeout time.Duration, f func(ctx context.Context)) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		ctx, cancel := context.WithTimeout(g.ctx, timeout)
		defer cancel()
		f(ctx)
	}()
}

// stop lets the group's work finish for at most grace, then cancels it and waits at most
// wait more; it reports whether every goroutine ended.
func (g *background) stop(grace, wait time.Duration) bool {
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		g.cancel()
		return true
	case <-time.After(grace):
	}
	g.cancel()
	select {
	case <-done:
		return true
	case <-time.After(wait):
		return false
	}
}
