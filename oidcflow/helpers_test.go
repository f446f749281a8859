package oidcflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// testRedirectURL is a loopback callback; oidctest accepts any loopback redirect URI and the
// tests never follow the redirect to it.
const testRedirectURL = "http://127.0.0.1:1/callback"

// noRedirect returns redirects instead of following them (it plays the browser at /authorize).
var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// fakeClock is an injectable clock (Config.Now) that only moves when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// metadataFor is a complete, acceptable discovery document for issuer, with every endpoint
// under base.
func metadataFor(issuer, base string) map[string]any {
	return map[string]any{
		"issuer":                                issuer,
		"authorization_endpoint":                base + "/authorize",
		"token_endpoint":                        base + "/token",
		"userinfo_endpoint":                     base + "/userinfo",
		"jwks_uri":                              base + "/jwks",
		"end_session_endpoint":                  base + "/logout",
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// startServer starts a plain-HTTP loopback server. handler is built with the server's base
// URL ("http://127.0.0.1:PORT") before the server starts, so handlers can name themselves
// without a data race.
func startServer(tb testing.TB, handler func(base string) http.Handler) string {
	tb.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	srv.Config.Handler = handler(base)
	srv.Start()
	tb.Cleanup(srv.Close)
	return base
}

// discoveryServer serves metadataFor(base, base), edited by mutate when it is not nil, at the
// discovery path; other paths are 404. It returns the issuer (= base).
func discoveryServer(tb testing.TB, mutate func(doc map[string]any, base string)) string {
	tb.Helper()
	return startServer(tb, func(base string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/.well-known/openid-configuration" {
				http.NotFound(w, r)
				return
			}
			doc := metadataFor(base, base)
			if mutate != nil {
				mutate(doc, base)
			}
			writeJSON(w, http.StatusOK, doc)
		})
	})
}

// releaseOnCleanup closes ch when tb ends. Handlers that hang select on such a channel as
// well as on the request context, which the server cancels only once the request body has
// been read. Register it after startServer, so that it runs before the server's Close
// (cleanups run last-in, first-out) and Close never waits for a hanging handler.
func releaseOnCleanup(tb testing.TB, ch chan struct{}) {
	tb.Cleanup(func() { close(ch) })
}

// startTLSServer starts an HTTPS server reachable as https://example.com:PORT (a host the
// httptest certificate covers) and returns that base URL and a NewHTTPClient-built client
// that trusts the test certificate and dials the server whatever the host name. The issuer
// is therefore not a loopback host, so the plain-http development exception does not apply.
func startTLSServer(tb testing.TB, handler func(base string) http.Handler) (string, *http.Client) {
	tb.Helper()
	srv := httptest.NewUnstartedServer(nil)
	addr := srv.Listener.Addr().String()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		tb.Fatal(err)
	}
	base := "https://example.com:" + port
	srv.Config.Handler = handler(base)
	srv.StartTLS()
	tb.Cleanup(srv.Close)

	hc := NewHTTPClient(5*time.Second, 1<<20)
	tr := baseTransport(tb, hc)
	tr.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tr.Proxy = nil
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return base, hc
}

// baseTransport is the *http.Transport under NewHTTPClient's size-limiting transport.
func baseTransport(tb testing.TB, hc *http.Client) *http.Transport {
	tb.Helper()
	lt, ok := hc.Transport.(*limitTransport)
	if !ok {
		tb.Fatalf("NewHTTPClient().Transport = %T, want *limitTransport", hc.Transport)
	}
	tr, ok := lt.base.(*http.Transport)
	if !ok {
		tb.Fatalf("limitTransport.base = %T, want *http.Transport", lt.base)
	}
	return tr
}

// rewriteTransport replaces the body of responses to one path. It sits under
// limitTransport, so the size cap sees the rewritten body exactly as it would a server's.
type rewriteTransport struct {
	next    http.RoundTripper
	path    string
	chunked bool // no Content-Length, as a streamed response
	rewrite func(body []byte) []byte
}

func (t *rewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || req.URL.Path != t.path {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	body = t.rewrite(body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.Header.Del("Content-Length")
	resp.ContentLength = int64(len(body))
	if t.chunked {
		resp.ContentLength = -1
	}
	return resp, nil
}

// withRewrite installs a rewriteTransport under hc's size limit.
func withRewrite(tb testing.TB, hc *http.Client, rt *rewriteTransport) {
	tb.Helper()
	lt, ok := hc.Transport.(*limitTransport)
	if !ok {
		tb.Fatalf("NewHTTPClient().Transport = %T, want *limitTransport", hc.Transport)
	}
	rt.next = lt.base
	lt.base = rt
}

// recordingTransport keeps a copy of every request it forwards.
type recordingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []*http.Request
}

func (t *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.reqs = append(t.reqs, req.Clone(context.Background()))
	t.mu.Unlock()
	return t.next.RoundTrip(req)
}

func (t *recordingTransport) requestsTo(path string) []*http.Request {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*http.Request
	for _, r := range t.reqs {
		if r.URL.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// newClient is New that fails tb on error and closes the Client when tb ends.
func newClient(tb testing.TB, cfg Config) *Client {
	tb.Helper()
	c, err := New(cfg)
	if err != nil {
		tb.Fatalf("New() error = %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// opConfig is the Config for the default client of op, with its own HTTP client.
func opConfig(op *oidctest.Provider) Config {
	return Config{
		Issuer:       op.Issuer(),
		ClientID:     oidctest.DefaultClientID,
		ClientSecret: oidctest.DefaultClientSecret,
		HTTPClient:   NewHTTPClient(5*time.Second, 1<<20),
	}
}

// authorize plays the browser: it follows c's authorization URL to op (which must have an
// auto-login user) and returns the code from the redirect back.
func authorize(tb testing.TB, c *Client, tx Transaction) string {
	tb.Helper()
	u, err := c.AuthCodeURL(tb.Context(), AuthRequest{RedirectURL: testRedirectURL, Transaction: tx})
	if err != nil {
		tb.Fatalf("AuthCodeURL() error = %v", err)
	}
	resp, err := noRedirect.Get(u)
	if err != nil {
		tb.Fatalf("GET authorization URL: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		tb.Fatalf("GET authorization URL status = %d, want %d", resp.StatusCode, http.StatusFound)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		tb.Fatalf("authorization response Location: %v", err)
	}
	q := loc.Query()
	if got := q.Get("state"); got != tx.State {
		tb.Fatalf("authorization response state = %q, want %q", got, tx.State)
	}
	code := q.Get("code")
	if code == "" {
		tb.Fatalf("authorization response = %q, want a code (error %q)", loc, q.Get("error"))
	}
	return code
}

// loginAndExchange runs one authorization-code login against op through c.
func loginAndExchange(tb testing.TB, c *Client) (*Login, error) {
	tb.Helper()
	tx := NewTransaction()
	code := authorize(tb, c, tx)
	return c.Exchange(tb.Context(), code, testRedirectURL, tx)
}

// wantCode checks that err is an *Error with code, whatever its temporariness.
func wantCode(tb testing.TB, err error, code string) *Error {
	tb.Helper()
	if err == nil {
		tb.Fatalf("error = nil, want *Error with code %q", code)
	}
	var e *Error
	if !errors.As(err, &e) {
		tb.Fatalf("error = %v (%T), want *Error with code %q", err, err, code)
	}
	if e.Code != code {
		tb.Errorf("Error.Code = %q, want %q (error: %v)", e.Code, code, err)
	}
	if got := ReasonCode(err); got != code {
		tb.Errorf("ReasonCode() = %q, want %q", got, code)
	}
	return e
}

// wantError checks that err is an *Error with code and the given temporariness.
func wantError(tb testing.TB, err error, code string, temporary bool) *Error {
	tb.Helper()
	e := wantCode(tb, err, code)
	if e.Temporary != temporary {
		tb.Errorf("Error.Temporary = %v, want %v (error: %v)", e.Temporary, temporary, err)
	}
	if got := IsTemporary(err); got != temporary {
		tb.Errorf("IsTemporary() = %v, want %v", got, temporary)
	}
	return e
}

// Temporariness a table expects; nil means either is acceptable.
var (
	temporary = ptrTo(true)
	permanent = ptrTo(false)
)

func ptrTo[T any](v T) *T { return &v }

// wantErrorMaybe is wantError when temporary is set, wantCode otherwise.
func wantErrorMaybe(tb testing.TB, err error, code string, temporary *bool) *Error {
	tb.Helper()
	if temporary == nil {
		return wantCode(tb, err, code)
	}
	return wantError(tb, err, code, *temporary)
}

// closedLoopbackURL is an http URL on a loopback port that nothing listens on.
func closedLoopbackURL(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return "http://" + addr
}
