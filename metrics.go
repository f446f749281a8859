package trustgate

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"

	"github.com/trustgate/trustgate/session"
)

// Prometheus metrics and Caddy events. Every label value is a fixed word of this
// package (a result, a reason code, a rule name); never a subject, session id or token.

// Names of the Caddy events trustgate emits. Their data holds only non-secret fields:
// reason, method, sub_hash and session_hash (as in the logs), rules, sessions.
const (
	eventLogin       = "trustgate.login"
	eventLogout      = "trustgate.logout"
	eventStepUp      = "trustgate.step_up"
	eventAliasLinked = "trustgate.alias_linked"
)

// metrics are the collectors of one metrics registry. All methods are safe on a nil
// *metrics (a handler that was not provisioned counts nothing).
type metrics struct {
	reg              prometheus.Registerer
	loginsStarted    *prometheus.CounterVec
	logins           *prometheus.CounterVec
	callbackDuration prometheus.Histogram
	refreshes        *prometheus.CounterVec
	backchannel      *prometheus.CounterVec
	ciba             *prometheus.CounterVec
	feedback         *prometheus.CounterVec
	policyDenials    *prometheus.CounterVec
	stepUps          prometheus.Counter
	storeErrors      *prometheus.CounterVec
	// bearer counts bearer requests by result; the children are resolved once, since
	// accepted is counted on the warm path.
	bearer map[string]prometheus.Counter
}

// registerOnce registers c, or returns the collector of the same description that is
// already registered (another trustgate handler of the same config registered it first).
func registerOnce[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{reg: reg}
	var errs []error
	vec := func(dst **prometheus.CounterVec, c *prometheus.CounterVec) {
		var err error
		*dst, err = registerOnce(reg, c)
		errs = append(errs, err)
	}
	vec(&m.loginsStarted, counterVec("trustgate_logins_started_total", "Logins sent to the provider, by kind (login, step_up, binding, ciba).", "kind"))
	vec(&m.logins, counterVec("trustgate_logins_total", "Finished logins, by result, method (code, ciba) and reason code.", "result", "method", "reason"))
	vec(&m.refreshes, counterVec("trustgate_refreshes_total", "Session refreshes, by result (ok, ended, failed).", "result"))
	vec(&m.backchannel, counterVec("trustgate_backchannel_logouts_total", "Back-channel logout requests, by result.", "result"))
	vec(&m.ciba, counterVec("trustgate_ciba_total", "CIBA endpoint answers, by outcome.", "outcome"))
	vec(&m.feedback, counterVec("trustgate_feedback_total", "Session feedback (alias linking) calls to the provider, by result.", "result"))
	vec(&m.policyDenials, counterVec("trustgate_policy_denials_total", "Requests refused (403) by a route policy, by unmet rule.", "rule"))
	vec(&m.storeErrors, counterVec("trustgate_store_errors_total", "Session store failures answered by the gateway, by operation.", "op"))
	var bearer *prometheus.CounterVec
	vec(&bearer, counterVec("trustgate_bearer_requests_total", "Requests that sent a bearer token, by result (accepted, refused, unavailable).", "result"))
	m.bearer = map[string]prometheus.Counter{}
	for _, result := range []string{"accepted", "refused", "unavailable"} {
		m.bearer[result] = bearer.WithLabelValues(result)
	}
	var err error
	m.callbackDuration, err = registerOnce[prometheus.Histogram](reg, prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "trustgate_callback_duration_seconds",
		Help:    "Time to answer the login callback (code exchange, userinfo, session store), in seconds.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}))
	errs = append(errs, err)
	m.stepUps, err = registerOnce[prometheus.Counter](reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "trustgate_step_ups_total", Help: "Step-up logins started by a route policy.",
	}))
	errs = append(errs, err)
	return m, errors.Join(errs...)
}

// metricsFor takes the collectors from the config's metrics registry (or reg, in tests),
// and an emitter from Caddy's events app, if there is one (emit, when set by a test, is
// kept).
func metricsFor(ctx caddy.Context, reg *prometheus.Registry, emit func(string, map[string]any), logger *zap.Logger) (*metrics, func(string, map[string]any)) {
	var m *metrics
	if reg == nil {
		reg = ctx.GetMetricsRegistry()
	}
	if reg != nil {
		var err error
		if m, err = newMetrics(reg); err != nil {
			logger.Warn("some trustgate metrics could not be registered", zap.Error(err))
		}
	}
	if emit != nil {
		return m, emit // tests
	}
	app, err := ctx.AppIfConfigured("events")
	if ea, ok := app.(*caddyevents.App); err == nil && ok {
		return m, func(name string, data map[string]any) { ea.Emit(ctx, name, data) }
	}
	if !eventsWarned.Swap(true) {
		logger.Info("Caddy's events app is not available: trustgate emits no events", zap.Error(err))
	}
	return m, nil
}

// eventsWarned makes the "no events app" line appear once per process.
var eventsWarned atomic.Bool

// registerSessionsGauge adds trustgate_sessions_active, the sessions in the memory store
// (not for Redis, whose sessions this instance cannot count cheaply). It asks the handler's
// store at each scrape, if that store is a session.SessionCounter.
func (m *metrics) registerSessionsGauge(current func() session.Store, logger *zap.Logger) {
	if m == nil {
		return
	}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "trustgate_sessions_active", Help: "Sessions in the in-memory session store.",
	}, func() float64 {
		if c, ok := unwrapStore(current()).(session.SessionCounter); ok {
			return float64(c.Len())
		}
		return 0
	})
	if _, err := registerOnce[prometheus.GaugeFunc](m.reg, g); err != nil {
		logger.Warn("the trustgate_sessions_active metric could not be registered", zap.Error(err))
	}
}

func (m *metrics) loginStarted(kind string) {
	if m != nil {
		m.loginsStarted.WithLabelValues(kind).Inc()
	}
}

// login counts a finished login: reason "" is success.
func (m *metrics) login(method, reason string) {
	if m == nil {
		return
	}
	if reason == "" {
		m.logins.WithLabelValues("ok", method, "ok").Inc()
	} else {
		m.logins.WithLabelValues("failed", method, reason).Inc()
	}
}

// callbackDone counts a finished callback (cbErr nil: a login) and its duration.
func (m *metrics) callbackDone(start time.Time, reason string) {
	if m == nil {
		return
	}
	m.callbackDuration.Observe(time.Since(start).Seconds())
	m.login("code", reason)
}

// bearerResult counts a request that sent a bearer token: accepted, refused (401) or
// unavailable (503, the token could not be judged).
func (m *metrics) bearerResult(result string) {
	if m != nil {
		m.bearer[result].Inc()
	}
}

// refreshed counts a refresh's result: ok, ended or failed.
func (m *metrics) refreshed(result string) {
	if m != nil {
		m.refreshes.WithLabelValues(result).Inc()
	}
}

// backchannelResult counts a back-channel logout request: ok, invalid, replayed,
// store_error or rate_limited.
func (m *metrics) backchannelResult(result string) {
	if m != nil {
		m.backchannel.WithLabelValues(result).Inc()
	}
}

// backchannelRefused counts a refused back-channel logout by its error code.
func (m *metrics) backchannelRefused(code string) {
	if code == "logout_token_replayed" {
		m.backchannelResult("replayed")
	} else {
		m.backchannelResult("invalid")
	}
}

// cibaOutcome counts a CIBA answer: started, pending, authenticated, denied, expired,
// failed or rate_limited. A start also counts as a started login, and the poll's end
// (authenticated, denied, expired, failed with a reason) as a finished one.
func (m *metrics) cibaOutcome(outcome, reason string) {
	if m == nil {
		return
	}
	m.ciba.WithLabelValues(outcome).Inc()
	switch outcome {
	case "started":
		m.loginStarted("ciba")
	case "authenticated":
		m.login("ciba", "")
	case "denied", "expired":
		m.login("ciba", "ciba_"+outcome)
	case "failed":
		if reason != "" {
			m.login("ciba", reason)
		}
	}
}

func (m *metrics) feedbackResult(err error) {
	if m == nil {
		return
	}
	if err == nil {
		m.feedback.WithLabelValues("ok").Inc()
	} else {
		m.feedback.WithLabelValues("failed").Inc()
	}
}

// policyDenied counts a 403 of a route policy, once per unmet rule.
func (m *metrics) policyDenied(rules []string) {
	if m == nil {
		return
	}
	for _, r := range rules {
		m.policyDenials.WithLabelValues(r).Inc()
	}
}

func (m *metrics) stepUp() {
	if m != nil {
		m.stepUps.Inc()
	}
}

// storeError counts a store failure the gateway answered (503 or a kept session): op is
// get, put, delete, lock or record.
func (m *metrics) storeError(op string) {
	if m != nil {
		m.storeErrors.WithLabelValues(op).Inc()
	}
}

// registerCacheCounters adds trustgate_local_cache_hits_total and _misses_total for the
// Redis store's local cache (hit ratio = hits / (hits + misses)), read from cs.
func (m *metrics) registerCacheCounters(cs session.CacheStatsReporter, logger *zap.Logger) {
	if m == nil {
		return
	}
	for _, c := range []struct {
		name, help string
		pick       func(hits, misses uint64) uint64
	}{
		{"trustgate_local_cache_hits_total", "Session lookups answered by the Redis store's local cache.", func(h, _ uint64) uint64 { return h }},
		{"trustgate_local_cache_misses_total", "Session lookups that read Redis.", func(_, m uint64) uint64 { return m }},
	} {
		f := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help}, func() float64 {
			return float64(c.pick(cs.CacheStats()))
		})
		if _, err := registerOnce[prometheus.CounterFunc](m.reg, f); err != nil {
			logger.Warn("a trustgate cache metric could not be registered", zap.String("metric", c.name), zap.Error(err))
		}
	}
}

// timedStore measures the session store operations that reach Redis
// (trustgate_store_operation_duration_seconds{store, op}); the observers are resolved once, so
// a measurement does not allocate.
// It wraps the Redis store only: memory-store operations never wait, and timing them would
// add two clock reads to every proxied request for nothing an operator can act on.
type timedStore struct {
	session.Store
	get, reload, put, update, del, lock, record prometheus.Observer
	observed                                    session.ObservedGetter // Store's own lookups, or nil
	observeGet                                  func(time.Duration)    // t.get, made once
}

// timeStore wraps s in a timedStore labelled store=kind, or returns s without metrics.
// observed, when not nil, is s seen as a session.ObservedGetter (the caller knows the
// concrete store): Get then times only the lookups that wait for the backend. With nil
// every Get is timed.
func (m *metrics) timeStore(s session.Store, kind string, observed session.ObservedGetter, logger *zap.Logger) session.Store {
	if m == nil {
		return s
	}
	hist, err := registerOnce(m.reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "trustgate_store_operation_duration_seconds",
		Help:    "Session store operations, by store (memory, redis) and operation, in seconds.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"store", "op"}))
	if err != nil {
		logger.Warn("the trustgate store latency metric could not be registered", zap.Error(err))
		return s
	}
	o := func(op string) prometheus.Observer { return hist.WithLabelValues(kind, op) }
	t := &timedStore{Store: s, get: o("get"), reload: o("reload"), put: o("put"), update: o("update"),
		del: o("delete"), lock: o("lock"), record: o("record"), observed: observed}
	t.observeGet = func(d time.Duration) { t.get.Observe(d.Seconds()) }
	return t
}

// unwrapStore is the store under the measuring wrapper, for identity (the refresh flight key).
func unwrapStore(s session.Store) session.Store {
	if t, ok := s.(*timedStore); ok {
		return t.Store
	}
	return s
}

func since(o prometheus.Observer, start time.Time) { o.Observe(time.Since(start).Seconds()) }

// Get times only lookups that wait for Redis: a local-cache hit, most requests, is counted
// by trustgate_local_cache_hits_total instead, and skips the clock and the histogram's
// shared counters on the request path.
// Ping forwards the health check's ping to the timed store, when it has one: wrapping a
// Redis store for its metrics must not hide it from <path_prefix>/healthz.
func (t *timedStore) Ping(ctx context.Context) error {
	if p, ok := t.Store.(session.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (t *timedStore) Get(ctx context.Context, id string) (*session.Session, error) {
	if t.observed != nil {
		return t.observed.GetObserved(ctx, id, t.observeGet)
	}
	defer since(t.get, time.Now())
	return t.Store.Get(ctx, id)
}

func (t *timedStore) Reload(ctx context.Context, id string) (*session.Session, error) {
	defer since(t.reload, time.Now())
	return t.Store.Reload(ctx, id)
}

func (t *timedStore) Put(ctx context.Context, s *session.Session) error {
	defer since(t.put, time.Now())
	return t.Store.Put(ctx, s)
}

func (t *timedStore) Update(ctx context.Context, s *session.Session) error {
	defer since(t.update, time.Now())
	return t.Store.Update(ctx, s)
}

func (t *timedStore) Delete(ctx context.Context, id string) error {
	defer since(t.del, time.Now())
	return t.Store.Delete(ctx, id)
}

func (t *timedStore) Lock(ctx context.Context, key string, ttl time.Duration) (string, bool, error) {
	defer since(t.lock, time.Now())
	return t.Store.Lock(ctx, key, ttl)
}

func (t *timedStore) GetRecord(ctx context.Context, key string) ([]byte, error) {
	defer since(t.record, time.Now())
	return t.Store.GetRecord(ctx, key)
}

func (t *timedStore) PutRecord(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	defer since(t.record, time.Now())
	return t.Store.PutRecord(ctx, key, value, ttl)
}
