package oidcflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// serveBody answers with body, with a Content-Length header or streamed (chunked).
func serveBody(w http.ResponseWriter, body []byte, contentLength bool, contentType string) {
	w.Header().Set("Content-Type", contentType)
	if contentLength {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush() // headers out now: no Content-Length, chunked
	}
	_, _ = w.Write(body)
}

// TestNewHTTPClientBodyLimit is OPS-08 / LIM-04 at the client: bodies up to the limit pass
// intact, one byte more fails with ErrBodyTooLarge, whether the size is announced or not.
func TestNewHTTPClientBodyLimit(t *testing.T) {
	const limit = 4096
	tests := []struct {
		name          string
		size          int
		contentLength bool
		wantErr       bool
	}{
		{"empty", 0, true, false},
		{"below the limit", limit - 1, true, false},
		{"exactly the limit, Content-Length", limit, true, false},
		{"exactly the limit, chunked", limit, false, false},
		{"one byte over, Content-Length", limit + 1, true, true},
		{"one byte over, chunked", limit + 1, false, true},
		{"10 MB, Content-Length", 10 << 20, true, true},
		{"10 MB, chunked", 10 << 20, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := bytes.Repeat([]byte("a"), tt.size)
			base := startServer(t, func(string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					serveBody(w, body, tt.contentLength, "application/octet-stream")
				})
			})
			hc := NewHTTPClient(5*time.Second, limit)
			var got []byte
			resp, err := hc.Get(base + "/")
			if err == nil {
				got, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if tt.wantErr {
				if !errors.Is(err, ErrBodyTooLarge) {
					t.Fatalf("GET %d bytes with limit %d: error = %v, want ErrBodyTooLarge", tt.size, limit, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("GET %d bytes with limit %d: error = %v, want nil", tt.size, limit, err)
			}
			if !bytes.Equal(got, body) {
				t.Errorf("GET body = %d bytes, want the %d bytes sent", len(got), len(body))
			}
		})
	}
}

func TestNewHTTPClientDefaults(t *testing.T) {
	hc := NewHTTPClient(0, 0)
	if hc.Timeout != 10*time.Second {
		t.Errorf("NewHTTPClient(0, 0).Timeout = %v, want 10s", hc.Timeout)
	}
	lt, ok := hc.Transport.(*limitTransport)
	if !ok {
		t.Fatalf("NewHTTPClient(0, 0).Transport = %T, want *limitTransport", hc.Transport)
	}
	if lt.max != 1<<20 {
		t.Errorf("NewHTTPClient(0, 0) body limit = %d, want %d", lt.max, 1<<20)
	}
	if tr := baseTransport(t, hc); tr.TLSClientConfig != nil && tr.TLSClientConfig.InsecureSkipVerify {
		t.Errorf("NewHTTPClient() skips TLS verification")
	}
}

// TestNewHTTPClientDoesNotFollowRedirects: a back-channel answer can never come from another
// host.
func TestNewHTTPClientDoesNotFollowRedirects(t *testing.T) {
	var otherHits atomic.Int64
	other := startServer(t, func(string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { otherHits.Add(1) })
	})
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			base := startServer(t, func(string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, other+"/elsewhere", status)
				})
			})
			resp, err := NewHTTPClient(5*time.Second, 0).Post(base+"/token", "application/x-www-form-urlencoded", strings.NewReader("code=x"))
			if err != nil {
				t.Fatalf("POST error = %v, want the redirect response itself", err)
			}
			resp.Body.Close()
			if resp.StatusCode != status {
				t.Errorf("POST status = %d, want %d (not followed)", resp.StatusCode, status)
			}
			if got := otherHits.Load(); got != 0 {
				t.Errorf("requests to the redirect target = %d, want 0", got)
			}
		})
	}
}

// TestNewHTTPClientTimeout: a hanging or trickling OP cannot hold a call past the timeout.
func TestNewHTTPClientTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	tests := []struct {
		name    string
		handler func(done <-chan struct{}) http.HandlerFunc
	}{
		{"no headers", func(done <-chan struct{}) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-done:
				}
			}
		}},
		{"headers, then a trickle", func(done <-chan struct{}) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				for {
					_, _ = w.Write([]byte(" "))
					w.(http.Flusher).Flush()
					select {
					case <-r.Context().Done():
						return
					case <-done:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			base := startServer(t, func(string) http.Handler { return tt.handler(done) })
			releaseOnCleanup(t, done)
			hc := NewHTTPClient(timeout, 1<<20)
			start := time.Now()
			resp, err := hc.Get(base + "/")
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			elapsed := time.Since(start)
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("GET error = %v, want a timeout", err)
			}
			if elapsed > 20*timeout {
				t.Errorf("GET took %v with a %v timeout", elapsed, timeout)
			}
		})
	}
}

// TestNewHTTPClientVerifiesTLS: a self-signed certificate is refused (OPS-08).
func TestNewHTTPClientVerifiesTLS(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	c := newClient(t, Config{Issuer: srv.URL, ClientID: "app", HTTPClient: NewHTTPClient(5*time.Second, 0)})
	_, err := c.Discover(t.Context())
	wantCode(t, err, CodeDiscovery)
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Discover() error = %q, want a certificate error", err)
	}
	if got := hits.Load(); got != 0 {
		t.Errorf("requests served over the untrusted connection = %d, want 0", got)
	}
}

// paddedDiscovery is a valid discovery document for base padded with trailing spaces (still
// valid JSON) to exactly size bytes.
func paddedDiscovery(tb testing.TB, base string, size int) []byte {
	tb.Helper()
	b, err := json.Marshal(metadataFor(base, base))
	if err != nil {
		tb.Fatal(err)
	}
	if len(b) > size {
		tb.Fatalf("discovery document is %d bytes, more than %d", len(b), size)
	}
	return append(b, bytes.Repeat([]byte(" "), size-len(b))...)
}

// TestDiscoveryBodyLimit is OPS-08 / LIM-04 for the discovery document.
func TestDiscoveryBodyLimit(t *testing.T) {
	const limit = 16 << 10
	tests := []struct {
		name          string
		size          int
		contentLength bool
		wantErr       bool
	}{
		{"exactly the limit, Content-Length", limit, true, false},
		{"exactly the limit, chunked", limit, false, false},
		{"one byte over, Content-Length", limit + 1, true, true},
		{"one byte over, chunked", limit + 1, false, true},
		{"10 MB, Content-Length", 10 << 20, true, true},
		{"10 MB, chunked", 10 << 20, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issuer := startServer(t, func(base string) http.Handler {
				body := paddedDiscovery(t, base, tt.size)
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					serveBody(w, body, tt.contentLength, "application/json")
				})
			})
			c := newClient(t, Config{Issuer: issuer, ClientID: "app", HTTPClient: NewHTTPClient(5*time.Second, limit)})
			_, err := c.Discover(t.Context())
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Discover() of %d bytes with limit %d: error = %v, want nil", tt.size, limit, err)
				}
				return
			}
			wantCode(t, err, CodeDiscovery)
			// go-oidc formats body read errors with %v, so only an announced size keeps
			// ErrBodyTooLarge in the chain (see the report); the text is there either way.
			if tt.contentLength && !errors.Is(err, ErrBodyTooLarge) {
				t.Errorf("Discover() error = %v, want it to wrap ErrBodyTooLarge", err)
			}
			if !strings.Contains(err.Error(), ErrBodyTooLarge.Error()) {
				t.Errorf("Discover() error = %q, want it to mention %q", err, ErrBodyTooLarge)
			}
		})
	}
}

// userinfoPadding returns a MutateUserinfo hook that pads JSON userinfo with a "pad" claim
// so that the body is exactly size bytes.
func userinfoPadding(size int) func(header, claims map[string]any) {
	return func(_, claims map[string]any) {
		claims["pad"] = ""
		b, _ := json.Marshal(claims)
		claims["pad"] = strings.Repeat("a", size-len(b))
	}
}

// TestUserinfoBodyLimit is OPS-08 / LIM-04 for the userinfo response.
func TestUserinfoBodyLimit(t *testing.T) {
	const limit = 64 << 10
	tests := []struct {
		name    string
		size    int
		wantErr bool
	}{
		{"exactly the limit", limit, false},
		{"one byte over", limit + 1, true},
		{"10 MB", 10 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := oidctest.NewTest(t, oidctest.Options{})
			op.SetAutoLogin(oidctest.SubjectAse)
			op.SetFaults(oidctest.Faults{MutateUserinfo: userinfoPadding(tt.size)})
			cfg := opConfig(op)
			cfg.HTTPClient = NewHTTPClient(5*time.Second, limit)
			c := newClient(t, cfg)
			login, err := loginAndExchange(t, c)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Exchange() with %d bytes of userinfo and limit %d: error = %v, want nil", tt.size, limit, err)
				}
				if got := len(login.UserinfoClaims["pad"].(string)); got == 0 {
					t.Errorf("Exchange().UserinfoClaims[pad] is empty, want the padding")
				}
				return
			}
			wantError(t, err, CodeUserinfoInvalid, false)
			if !errors.Is(err, ErrBodyTooLarge) {
				t.Errorf("Exchange() error = %v, want it to wrap ErrBodyTooLarge", err)
			}
		})
	}
}

// TestJWKSBodyLimit is OPS-08 / LIM-04 for the key set: the JWKS response (padded with
// spaces by a transport under the size limit) is capped like every other answer.
func TestJWKSBodyLimit(t *testing.T) {
	const limit = 64 << 10
	tests := []struct {
		name    string
		size    int
		chunked bool
		wantErr bool
	}{
		{"exactly the limit", limit, false, false},
		{"exactly the limit, chunked", limit, true, false},
		{"one byte over", limit + 1, false, true},
		{"10 MB", 10 << 20, false, true},
		{"10 MB, chunked", 10 << 20, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := oidctest.NewTest(t, oidctest.Options{})
			op.SetAutoLogin(oidctest.SubjectAse)
			cfg := opConfig(op)
			cfg.HTTPClient = NewHTTPClient(5*time.Second, limit)
			withRewrite(t, cfg.HTTPClient, &rewriteTransport{
				path:    oidctest.PathJWKS,
				chunked: tt.chunked,
				rewrite: func(b []byte) []byte {
					if len(b) > tt.size {
						t.Errorf("JWKS is %d bytes, more than %d", len(b), tt.size)
						return b
					}
					return append(b, bytes.Repeat([]byte(" "), tt.size-len(b))...)
				},
			})
			c := newClient(t, cfg)
			_, err := loginAndExchange(t, c)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Exchange() with a %d-byte JWKS and limit %d: error = %v, want nil", tt.size, limit, err)
				}
				return
			}
			// An oversized JWKS is a key fetch failure: the OP is unusable, not the token bad.
			wantCode(t, err, CodeKeys)
			if !IsTemporary(err) {
				t.Errorf("IsTemporary(%v) = false, want true", err)
			}
			// go-oidc formats key-fetch errors with %v, so ErrBodyTooLarge is not in the
			// chain; the refusal is still due to the cap.
			if !strings.Contains(err.Error(), ErrBodyTooLarge.Error()) {
				t.Errorf("Exchange() error = %q, want it to mention %q", err, ErrBodyTooLarge)
			}
			if got := op.Counts().Userinfo; got != 0 {
				t.Errorf("userinfo calls = %d, want 0", got)
			}
		})
	}
}

// TestDiscoveryRedirectNotFollowed is OPS-05 / OPS-08 "302 to another host".
func TestDiscoveryRedirectNotFollowed(t *testing.T) {
	var otherHits atomic.Int64
	other := startServer(t, func(base string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			otherHits.Add(1)
			writeJSON(w, http.StatusOK, metadataFor(base, base))
		})
	})
	issuer := startServer(t, func(string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other+r.URL.Path, http.StatusFound)
		})
	})
	for _, tt := range []struct {
		name string
		hc   *http.Client
	}{
		{"NewHTTPClient", NewHTTPClient(5*time.Second, 0)},
		{"default client", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, Config{Issuer: issuer, ClientID: "app", HTTPClient: tt.hc})
			_, err := c.Discover(t.Context())
			wantCode(t, err, CodeDiscovery)
			if !strings.Contains(err.Error(), "302") {
				t.Errorf("Discover() error = %q, want it to mention the 302", err)
			}
			if got := otherHits.Load(); got != 0 {
				t.Errorf("requests to the redirect target = %d, want 0", got)
			}
		})
	}
}

// TestDiscoveryTimeout: both the HTTP client's timeout and Config.DiscoveryTimeout bound one
// discovery attempt against an OP that never answers.
func TestDiscoveryTimeout(t *testing.T) {
	tests := []struct {
		name              string
		clientTimeout     time.Duration
		discoveryTimeout  time.Duration
		effectiveDeadline time.Duration
	}{
		{"client timeout", 100 * time.Millisecond, 0, 100 * time.Millisecond},
		{"discovery timeout", 10 * time.Second, 100 * time.Millisecond, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			issuer := startServer(t, func(string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					select {
					case <-r.Context().Done():
					case <-done:
					}
				})
			})
			releaseOnCleanup(t, done)
			c := newClient(t, Config{
				Issuer: issuer, ClientID: "app",
				HTTPClient:       NewHTTPClient(tt.clientTimeout, 0),
				DiscoveryTimeout: tt.discoveryTimeout,
			})
			start := time.Now()
			_, err := c.Discover(t.Context())
			elapsed := time.Since(start)
			wantError(t, err, CodeDiscovery, true)
			if elapsed > 20*tt.effectiveDeadline {
				t.Errorf("Discover() took %v, want about %v", elapsed, tt.effectiveDeadline)
			}
		})
	}
}

// TestUserinfoTimeout: a hanging userinfo endpoint fails the login within the client
// timeout, as a Temporary userinfo_failed.
func TestUserinfoTimeout(t *testing.T) {
	const timeout = 500 * time.Millisecond
	op := oidctest.NewTest(t, oidctest.Options{})
	op.SetAutoLogin(oidctest.SubjectAse)
	op.SetFaults(oidctest.Faults{UserinfoDelay: time.Minute})
	cfg := opConfig(op)
	cfg.HTTPClient = NewHTTPClient(timeout, 0)
	c := newClient(t, cfg)
	tx := NewTransaction()
	code := authorize(t, c, tx)
	start := time.Now()
	_, err := c.Exchange(t.Context(), code, testRedirectURL, tx)
	elapsed := time.Since(start)
	wantError(t, err, CodeUserinfoFailed, true)
	if elapsed > 10*timeout {
		t.Errorf("Exchange() took %v with a %v client timeout", elapsed, timeout)
	}
}
