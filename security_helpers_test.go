package trustgate

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/session"
)

// Helpers of the *_security_test.go files (docs/threat-model.md): provider faults, forged keys, logs, a failing store.

func (g *gateway) get(c *http.Client, rawURL string) (*http.Response, string) {
	g.t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	return do(g.t, c, req)
}

// storeOnly returns the only session in the gateway's store.
func (g *gateway) storeOnly(t *testing.T) *sessionView {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL, nil)
	req.Header.Set("Cookie", g.h.sessions.cookieName+"="+g.sessionCookie(g.browser))
	s, err := g.h.sessions.current(req)
	if err != nil {
		t.Fatalf("no session: %v", err)
	}
	return &sessionView{AccessToken: s.AccessToken, IDToken: s.IDToken, RefreshToken: s.RefreshToken}
}

type sessionView struct{ AccessToken, IDToken, RefreshToken string }

type idtCase struct {
	name   string
	faults oidctest.Faults
}

// runIDTokenRejections feeds each case's bad ID token through the whole login and asserts
// REJECT-LOGIN: 401, no session, no cookie, no upstream call, and (the OpenID conformance
// suite's oracle) no userinfo call after the token was rejected.
func runIDTokenRejections(t *testing.T, cases []idtCase, opts ...gatewayOption) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t, opts...)
			g.op.SetFaults(tc.faults)
			resp, body := g.login("bindid-known", "/app")
			g.assertRejectedLogin(resp, body, http.StatusUnauthorized)
			g.assertNoPendingLogin()
			if n := g.op.Counts().Userinfo; n != 0 {
				t.Errorf("userinfo calls after a rejected ID token = %d, want 0", n)
			}
			if n := g.op.Counts().Token; n != 1 {
				t.Errorf("token calls = %d, want exactly 1", n)
			}
		})
	}
}

func mutateID(f func(header, claims map[string]any)) oidctest.Faults {
	return oidctest.Faults{MutateIDToken: f}
}

// faultStore wraps the gateway's store and fails the operations a test switches off, as a
// Redis outage would.
type faultStore struct {
	session.Store
	mu                                  sync.Mutex
	failGet, failPut, failDel, failOnce bool
}

var errStoreDown = errors.New("store: connection refused")

func (f *faultStore) set(get, put, del, once bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failGet, f.failPut, f.failDel, f.failOnce = get, put, del, once
}

func (f *faultStore) fails() (get, put, del, once bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failGet, f.failPut, f.failDel, f.failOnce
}

func (f *faultStore) Get(ctx context.Context, id string) (*session.Session, error) {
	if get, _, _, _ := f.fails(); get {
		return nil, errStoreDown
	}
	return f.Store.Get(ctx, id)
}

func (f *faultStore) Put(ctx context.Context, s *session.Session) error {
	if _, put, _, _ := f.fails(); put {
		return errStoreDown
	}
	return f.Store.Put(ctx, s)
}

func (f *faultStore) Delete(ctx context.Context, id string) error {
	if _, _, del, _ := f.fails(); del {
		return errStoreDown
	}
	return f.Store.Delete(ctx, id)
}

func (f *faultStore) Once(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if _, _, _, once := f.fails(); once {
		return false, errStoreDown
	}
	return f.Store.Once(ctx, key, ttl)
}

func withFaultStore(g *gateway) *faultStore {
	f := &faultStore{Store: g.store}
	g.h.store = f
	return f
}

// observedLogs captures a handler's log lines (every level).
type observedLogs struct{ o *observer.ObservedLogs }

// observedEntry is one log line, its context fields flattened into one string.
type observedEntry struct {
	Level   zapcore.Level
	Message string
	Fields  string
}

func observeLogs(h *Handler) *observedLogs {
	core, logs := observer.New(zapcore.DebugLevel)
	h.logger = zap.New(core)
	return &observedLogs{logs}
}

func (l *observedLogs) entries() []observedEntry {
	var out []observedEntry
	for _, e := range l.o.All() {
		var b strings.Builder
		for k, v := range e.ContextMap() {
			b.WriteString(" " + k + "=" + fmt.Sprint(v))
		}
		out = append(out, observedEntry{Level: e.Level, Message: e.Message, Fields: b.String()})
	}
	return out
}

func (l *observedLogs) has(match func(observedEntry) bool) bool {
	for _, e := range l.entries() {
		if match(e) {
			return true
		}
	}
	return false
}

// sweepRejected checks REJECT-LOGIN for a login that went to the token endpoint: the given
// status, nothing created, the transaction spent, and no userinfo call.
func (g *gateway) sweepRejected(resp *http.Response, body string, status int) {
	g.t.Helper()
	g.assertRejectedLogin(resp, body, status)
	g.assertNoPendingLogin()
	if n := g.op.Counts().Userinfo; n != 0 {
		g.t.Errorf("userinfo calls after a refused login = %d, want 0", n)
	}
}

// sweepTransport passes every call to the provider through edit (after the real answer came
// back), under the provider client's own timeout and redirect policy.
type sweepTransport struct {
	next http.RoundTripper
	edit func(req *http.Request, resp *http.Response)
}

func (t *sweepTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || t.edit == nil {
		return resp, err
	}
	t.edit(req, resp)
	return resp, nil
}

// sweepSetBody replaces a response body (the original is drained and closed).
func sweepSetBody(resp *http.Response, body []byte) {
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
}

// sweepUseClient replaces the gateway's provider client with one of the same configuration
// whose calls to the provider go through hc. The gateway's production client is built by
// provisionClient; this lets a test put a fault between the gateway and the provider (a
// short timeout, a rewritten discovery document) without another provider implementation.
func (g *gateway) sweepUseClient(hc *http.Client) {
	g.t.Helper()
	cfg := g.h.client.Config()
	cfg.HTTPClient = hc
	c, err := oidcflow.New(cfg)
	if err != nil {
		g.t.Fatalf("oidcflow.New() error = %v", err)
	}
	g.t.Cleanup(c.Close)
	g.h.client = c
}

// sweepClient is the production HTTP client for provider calls (timeout, 1 MiB body cap, no
// redirects), with edit applied to each answer before the body cap reads it.
func sweepClient(timeout time.Duration, edit func(req *http.Request, resp *http.Response)) *http.Client {
	base := oidcflow.NewHTTPClient(timeout, 1<<20)
	base.Transport = &sweepTransport{next: base.Transport, edit: edit}
	return base
}

// sweepStubIssuer serves an OpenID Provider's discovery document (complete, every endpoint
// under its own URL) edited by edit; other paths answer 404. It returns the issuer.
func sweepStubIssuer(t *testing.T, edit func(doc map[string]any)) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != oidctest.PathDiscovery {
			http.NotFound(w, r)
			return
		}
		doc := map[string]any{
			"issuer": base, "authorization_endpoint": base + "/authorize", "token_endpoint": base + "/token",
			"jwks_uri": base + "/jwks", "userinfo_endpoint": base + "/userinfo",
			"id_token_signing_alg_values_supported": []string{"RS256"}, "code_challenge_methods_supported": []string{"S256"},
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		}
		if edit != nil {
			edit(doc)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	})
	srv.Start()
	t.Cleanup(srv.Close)
	return base
}

// sweepHandlerFor provisions a handler for issuer (the default client, a test cookie secret)
// with its logs captured.
func sweepHandlerFor(t *testing.T, issuer string, edit func(h *Handler)) (*Handler, *observedLogs) {
	t.Helper()
	h := &Handler{Issuer: issuer, ClientID: oidctest.DefaultClientID, ClientSecret: oidctest.DefaultClientSecret, Secrets: []string{testSecret}, InsecureCookie: true}
	if edit != nil {
		edit(h)
	}
	if err := provision(t, h); err != nil {
		t.Fatalf("Provision() error = %v", err)
	}
	logs := observeLogs(h)
	return h, logs
}

// sweepAttackerHost is a server that must never be contacted: it counts its requests.
func sweepAttackerHost(t *testing.T, body func(w http.ResponseWriter)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if body != nil {
			body(w)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// sweepECKey is a fresh P-256 key (fast to generate) and its public JWK as a JSON object.
func sweepECKey(t *testing.T, kid string) (*ecdsa.PrivateKey, map[string]any) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return k, m
}

// sweepSignES256 signs header and payload as a compact JWS with key, whatever the header says.
func sweepSignES256(header map[string]any, payload []byte, key *ecdsa.PrivateKey) string {
	hb, _ := json.Marshal(header)
	input := b64url(hb) + "." + b64url(payload)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		panic(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64url(sig)
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// sweepPayload is the decoded claims segment of a compact JWS, or nil.
func sweepPayload(jws string) []byte {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return nil
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	return b
}

// sweepRaw sends one request exactly as written to Caddy's port 9080 and returns the status
// and body.
func sweepRaw(t *testing.T, method, target, host string, headers map[string]string) (int, string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, host)
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	if method == http.MethodPost {
		b.WriteString("Content-Length: 0\r\n")
	}
	b.WriteString("\r\n")
	conn, err := sweepDial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func sweepDial() (net.Conn, error) { return net.DialTimeout("tcp", "127.0.0.1:9080", 5*time.Second) }

// sweepCaddyGlobal is the global options block, plus extra, of the tests that run through a
// real Caddy (caddytest: one server per test binary, not in parallel).
func sweepCaddyGlobal(extra string) string {
	return `{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	` + extra + `
}
`
}
