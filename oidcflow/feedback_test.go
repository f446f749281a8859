package oidcflow

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// Fixed vectors computed outside Go, with the seed's definition (HMAC-SHA256 keyed with the
// client secret over the access token, standard padded base64):
//
//	printf '%s' 'the-access-token' | openssl dgst -sha256 -hmac 'the-client-secret' -binary | base64
//	printf '%s' 'the-access-token' | openssl dgst -sha256 -hmac 'sécret-ключ-秘密' -binary | base64
//	printf '%s' 'jëtón-∂-ß' | openssl dgst -sha256 -hmac 'sécret-ключ-秘密' -binary | base64
//
// (UTF-8 terminal; cross-checked with Python's hmac module). The non-ASCII ones pin the
// seed's Java sample, which hashes the UTF-8 bytes of both strings.
const (
	vecSecret       = "the-client-secret"
	vecToken        = "the-access-token"
	vecMAC          = "KA1Q/JbTESAFN/j03pQFBKWbyuYnGzOql+rGhS2Cwb4="
	vecUTF8Secret   = "sécret-ключ-秘密"
	vecUTF8MAC      = "R43cI4bCoZIzuYLY8xebKQ1wLYmBn/WZ6LiLmkLsS/A=" // secret vecUTF8Secret, token vecToken
	vecUTF8Token    = "jëtón-∂-ß"
	vecUTF8BothMAC  = "CPzmIkHp0WWpP9awt84e68vF76paVMWLebG36ff4aFA=" // secret vecUTF8Secret, token vecUTF8Token
	feedbackAliasEx = "jdoe@bank.example"
)

func TestFeedbackAuthValueOpenSSLVectors(t *testing.T) {
	for _, tt := range []struct{ secret, token, want string }{
		{vecSecret, vecToken, vecMAC},
		{vecUTF8Secret, vecToken, vecUTF8MAC},
		{vecUTF8Secret, vecUTF8Token, vecUTF8BothMAC},
	} {
		if got := feedbackAuthValue(tt.secret, tt.token); got != tt.want {
			t.Errorf("feedbackAuthValue(%q, %q) = %q, want %q (openssl)", tt.secret, tt.token, got, tt.want)
		}
	}
}

// feedbackRecorder is a session feedback endpoint that records what it receives and answers
// with status and body.
type feedbackRecorder struct {
	status      int
	contentType string
	body        string
	delay       time.Duration

	mu     sync.Mutex
	reqs   []*http.Request
	bodies [][]byte
	hits   atomic.Int64
}

func (f *feedbackRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Clone(context.Background()))
	f.bodies = append(f.bodies, b)
	f.mu.Unlock()
	if f.delay > 0 {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(f.delay):
		}
	}
	if f.contentType != "" {
		w.Header().Set("Content-Type", f.contentType)
	}
	w.WriteHeader(f.status)
	_, _ = io.WriteString(w, f.body)
}

func (f *feedbackRecorder) last(tb testing.TB) (*http.Request, []byte) {
	tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		tb.Fatal("the feedback endpoint received no request")
	}
	return f.reqs[len(f.reqs)-1], f.bodies[len(f.bodies)-1]
}

// feedbackEnv is a Client with secret and a recording endpoint; the Client never needs
// discovery for SessionFeedback with an explicit endpoint.
func feedbackEnv(t *testing.T, secret string, rec *feedbackRecorder, timeout time.Duration) (*Client, string) {
	t.Helper()
	base := startServer(t, func(string) http.Handler { return rec })
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	c := newClient(t, Config{Issuer: closedLoopbackURL(t), ClientID: "app", ClientSecret: secret, HTTPClient: NewHTTPClient(timeout, 1<<20)})
	return c, base + "/session-feedback"
}

// noSecrets fails when err's text contains any of secrets.
func noSecrets(tb testing.TB, err error, secrets ...string) {
	tb.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			tb.Errorf("error %q contains a secret value %q", err, s)
		}
	}
}

// TestSessionFeedbackRequestIsTheSeeds: method, path, headers and body exactly as seed 001.
func TestSessionFeedbackRequestIsTheSeeds(t *testing.T) {
	for _, tt := range []struct {
		name, secret, wantAuth string
	}{
		{"ASCII secret", vecSecret, "BindIdBackend AccessToken the-access-token; " + vecMAC},
		{"non-ASCII secret (UTF-8, as the Java sample)", vecUTF8Secret, "BindIdBackend AccessToken the-access-token; " + vecUTF8MAC},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &feedbackRecorder{status: http.StatusOK, contentType: "application/json", body: "{}"}
			c, endpoint := feedbackEnv(t, tt.secret, rec, 0)
			at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			if err := c.SessionFeedback(t.Context(), endpoint, vecToken, feedbackAliasEx, at); err != nil {
				t.Fatalf("SessionFeedback() error = %v", err)
			}
			r, body := rec.last(t)
			if r.Method != http.MethodPost || r.URL.Path != "/session-feedback" || r.URL.RawQuery != "" {
				t.Errorf("request = %s %s, want POST /session-feedback", r.Method, r.URL)
			}
			if got := r.Header.Values("Authorization"); len(got) != 1 || got[0] != tt.wantAuth {
				t.Errorf("Authorization = %q, want exactly %q", got, tt.wantAuth)
			}
			if got := r.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			var got map[string]any
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			want := map[string]any{
				"subject_session_at": vecToken,
				"reports": []any{map[string]any{
					"type": "authentication_performed", "alias": feedbackAliasEx, "time": json.Number("1772366400"),
				}},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("body = %s, want %v", body, want)
			}
			if rec.hits.Load() != 1 {
				t.Errorf("requests = %d, want 1", rec.hits.Load())
			}
		})
	}
}

func TestSessionFeedbackZeroTimeIsNow(t *testing.T) {
	rec := &feedbackRecorder{status: http.StatusNoContent}
	base := startServer(t, func(string) http.Handler { return rec })
	clock := newFakeClock()
	c := newClient(t, Config{Issuer: closedLoopbackURL(t), ClientID: "app", ClientSecret: vecSecret, Now: clock.Now, HTTPClient: NewHTTPClient(5*time.Second, 0)})
	if err := c.SessionFeedback(t.Context(), base+"/sf", vecToken, "a", time.Time{}); err != nil {
		t.Fatalf("SessionFeedback() error = %v", err)
	}
	_, body := rec.last(t)
	var b feedbackBody
	if err := json.Unmarshal(body, &b); err != nil || len(b.Reports) != 1 || b.Reports[0].Time != clock.Now().Unix() {
		t.Errorf("body = %s (%v), want time %d (the Client's clock)", body, err, clock.Now().Unix())
	}
}

func TestSessionFeedbackSuccessIsAny2xx(t *testing.T) {
	for _, rec := range []*feedbackRecorder{
		{status: http.StatusOK, contentType: "application/json", body: "{}"},
		{status: http.StatusNoContent},
		{status: http.StatusAccepted, contentType: "text/html", body: "<p>ok</p>"},
	} {
		c, endpoint := feedbackEnv(t, vecSecret, rec, 0)
		if err := c.SessionFeedback(t.Context(), endpoint, vecToken, "a", time.Unix(1, 0)); err != nil {
			t.Errorf("answer %d: SessionFeedback() error = %v, want nil", rec.status, err)
		}
	}
}

// TestSessionFeedbackErrorClassification: 4xx refusals are permanent (feedback_rejected),
// 408/429/5xx temporary (feedback_failed); one request each (SessionFeedback never retries).
func TestSessionFeedbackErrorClassification(t *testing.T) {
	type answer struct {
		status      int
		contentType string
		body        string
	}
	tests := []struct {
		name      string
		rec       answer
		code      string
		temporary bool
		opError   string
		inMessage string
	}{
		{"401 invalid_token", answer{status: 401, contentType: "application/json", body: `{"error":"invalid_token","error_description":"the access token is invalid or expired"}`},
			CodeFeedbackRejected, false, "invalid_token", "the access token is invalid or expired"},
		{"401 invalid_client", answer{status: 401, contentType: "application/json", body: `{"error":"invalid_client","error_description":"bad HMAC"}`},
			CodeFeedbackRejected, false, "invalid_client", "bad HMAC"},
		{"400 invalid_request", answer{status: 400, contentType: "application/json; charset=utf-8", body: `{"error":"invalid_request","error_description":"reports must be a non-empty array"}`},
			CodeFeedbackRejected, false, "invalid_request", "reports must be a non-empty array"},
		{"403 without a body", answer{status: 403}, CodeFeedbackRejected, false, "", "HTTP 403"},
		{"404 HTML", answer{status: 404, contentType: "text/html", body: `{"error":"not_json"}`}, CodeFeedbackRejected, false, "", "HTTP 404"},
		{"302 redirect", answer{status: 302, body: ""}, CodeFeedbackRejected, false, "", "redirects are not followed"},
		{"503", answer{status: 503, contentType: "application/json", body: `{"error":"server_error","error_description":"down"}`}, CodeFeedbackFailed, true, "server_error", "HTTP 503"},
		{"500 HTML", answer{status: 500, contentType: "text/html", body: "<h1>oops</h1>"}, CodeFeedbackFailed, true, "", "HTTP 500"},
		{"429", answer{status: 429}, CodeFeedbackFailed, true, "", "HTTP 429"},
		{"408", answer{status: 408}, CodeFeedbackFailed, true, "", "HTTP 408"},
		{"long, control-laden description is clipped", answer{status: 400, contentType: "application/json",
			body: `{"error":"invalid_request\r\nX: y","error_description":"` + strings.Repeat("d", 1000) + `"}`},
			CodeFeedbackRejected, false, "invalid_requestX: y", strings.Repeat("d", 200) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &feedbackRecorder{status: tt.rec.status, contentType: tt.rec.contentType, body: tt.rec.body}
			c, endpoint := feedbackEnv(t, vecSecret, rec, 0)
			err := c.SessionFeedback(t.Context(), endpoint, vecToken, feedbackAliasEx, time.Unix(1700000000, 0))
			e := wantError(t, err, tt.code, tt.temporary)
			if e.OPError != tt.opError {
				t.Errorf("OPError = %q, want %q", e.OPError, tt.opError)
			}
			if !strings.Contains(err.Error(), tt.inMessage) {
				t.Errorf("error = %q, want it to contain %q", err, tt.inMessage)
			}
			if strings.Contains(err.Error(), strings.Repeat("d", 201)) {
				t.Errorf("error = %q, want the description clipped", err)
			}
			if n := rec.hits.Load(); n != 1 {
				t.Errorf("requests = %d, want 1 (no retry)", n)
			}
			noSecrets(t, err, vecToken, vecSecret, vecMAC)
		})
	}
}

func TestSessionFeedbackNetworkFailuresAreTemporary(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		c := newClient(t, Config{Issuer: closedLoopbackURL(t), ClientID: "app", ClientSecret: vecSecret, HTTPClient: NewHTTPClient(5*time.Second, 0)})
		err := c.SessionFeedback(t.Context(), closedLoopbackURL(t)+"/session-feedback", vecToken, "a", time.Unix(1, 0))
		wantError(t, err, CodeFeedbackFailed, true)
		noSecrets(t, err, vecToken, vecSecret, vecMAC)
	})
	t.Run("timeout", func(t *testing.T) {
		rec := &feedbackRecorder{status: 200, delay: time.Minute}
		c, endpoint := feedbackEnv(t, vecSecret, rec, 200*time.Millisecond)
		start := time.Now()
		err := c.SessionFeedback(t.Context(), endpoint, vecToken, "a", time.Unix(1, 0))
		wantError(t, err, CodeFeedbackFailed, true)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("SessionFeedback() took %v with a 200ms client timeout", d)
		}
		noSecrets(t, err, vecToken, vecSecret, vecMAC)
	})
	t.Run("caller's deadline", func(t *testing.T) {
		rec := &feedbackRecorder{status: 200, delay: time.Minute}
		c, endpoint := feedbackEnv(t, vecSecret, rec, 0)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		err := c.SessionFeedback(ctx, endpoint, vecToken, "a", time.Unix(1, 0))
		wantError(t, err, CodeFeedbackFailed, true)
	})
}

func TestSessionFeedbackNeedsClientSecret(t *testing.T) {
	rec := &feedbackRecorder{status: 200}
	c, endpoint := feedbackEnv(t, "", rec, 0)
	err := c.SessionFeedback(t.Context(), endpoint, vecToken, "a", time.Unix(1, 0))
	wantError(t, err, CodeFeedbackUnavailable, false)
	if !strings.Contains(err.Error(), "client secret") {
		t.Errorf("error = %q, want it to say the client secret is needed", err)
	}
	if n := rec.hits.Load(); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
	noSecrets(t, err, vecToken)
}

func TestSessionFeedbackRejectsBadInput(t *testing.T) {
	rec := &feedbackRecorder{status: 200}
	c, endpoint := feedbackEnv(t, vecSecret, rec, 0)
	tests := []struct {
		name, endpoint, token, alias string
	}{
		{"empty token", endpoint, "", "a"},
		{"token with a space", endpoint, "abc def", "a"},
		{"token with a newline", endpoint, "abc\r\nX-Evil: 1", "a"},
		{"non-ASCII token", endpoint, vecUTF8Token, "a"},
		{"empty alias", endpoint, vecToken, ""},
		{"alias too long", endpoint, vecToken, strings.Repeat("a", MaxFeedbackAliasBytes+1)},
		{"alias with a newline", endpoint, vecToken, "a\nb"},
		{"alias not UTF-8", endpoint, vecToken, "a\xffb"},
		{"endpoint not absolute", "/session-feedback", vecToken, "a"},
		{"endpoint ftp", "ftp://127.0.0.1/sf", vecToken, "a"},
		{"endpoint plain http off loopback", "http://idp.example.com/session-feedback", vecToken, "a"},
		{"endpoint unparsable", "http://[::1", vecToken, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.SessionFeedback(t.Context(), tt.endpoint, tt.token, tt.alias, time.Unix(1, 0))
			wantError(t, err, CodeFeedbackInvalid, false)
			noSecrets(t, err, tt.token, vecSecret)
		})
	}
	if n := rec.hits.Load(); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
	// The longest alias is fine.
	if err := c.SessionFeedback(t.Context(), endpoint, vecToken, strings.Repeat("é", MaxFeedbackAliasBytes/2), time.Unix(1, 0)); err != nil {
		t.Errorf("SessionFeedback(alias of %d bytes) error = %v", MaxFeedbackAliasBytes-1, err)
	}
}

// TestSessionFeedbackNeverLeaksSecrets: an OP that echoes the request in its error
// description does not get the token, the secret or the HMAC into the error.
func TestSessionFeedbackNeverLeaksSecrets(t *testing.T) {
	for _, status := range []int{400, 401, 403, 500, 503} {
		base := startServer(t, func(string) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				writeJSON(w, status, map[string]string{
					"error":             r.Header.Get("Authorization"),
					"error_description": "got " + r.Header.Get("Authorization") + " and " + string(b) + " for " + vecSecret,
				})
			})
		})
		c := newClient(t, Config{Issuer: closedLoopbackURL(t), ClientID: "app", ClientSecret: vecSecret, HTTPClient: NewHTTPClient(5*time.Second, 0)})
		err := c.SessionFeedback(t.Context(), base+"/sf", vecToken, "a", time.Unix(1, 0))
		if err == nil {
			t.Fatalf("status %d: SessionFeedback() = nil, want an error", status)
		}
		noSecrets(t, err, vecToken, vecSecret, vecMAC)
		if !strings.Contains(err.Error(), "[redacted]") {
			t.Errorf("status %d: error = %q, want the echoed values redacted", status, err)
		}
	}
}

// newFeedbackOP is an oidctest Provider with a logged-in new BindID user.
func newFeedbackOP(t *testing.T) (*oidctest.Provider, *Client, *Login) {
	t.Helper()
	op := oidctest.NewTest(t, oidctest.Options{})
	op.SetAutoLogin(oidctest.SubjectBindIDNew)
	c := newClient(t, opConfig(op))
	login, err := loginAndExchange(t, c)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if _, ok := login.Claims["bindid_alias"]; ok {
		t.Fatalf("new user's claims have bindid_alias = %v, want none", login.Claims["bindid_alias"])
	}
	return op, c, login
}

// TestSessionFeedbackAgainstOP: the in-process OP accepts the request, and the next login of
// the user carries the alias (seed 001: a new user becomes a known one).
func TestSessionFeedbackAgainstOP(t *testing.T) {
	for _, viaDiscovery := range []bool{false, true} {
		name := "explicit endpoint"
		if viaDiscovery {
			name = "endpoint from discovery"
		}
		t.Run(name, func(t *testing.T) {
			op, c, login := newFeedbackOP(t)
			endpoint := op.Issuer() + oidctest.PathSessionFeedback
			if viaDiscovery {
				endpoint = ""
				meta, err := c.Discover(t.Context())
				if err != nil || meta.SessionFeedbackEndpoint != op.Issuer()+"/session-feedback" {
					t.Fatalf("Discover() SessionFeedbackEndpoint = %q (%v), want the OP's", meta.SessionFeedbackEndpoint, err)
				}
			}
			at := time.Unix(1772366400, 0)
			if err := c.SessionFeedback(t.Context(), endpoint, login.AccessToken, feedbackAliasEx, at); err != nil {
				t.Fatalf("SessionFeedback() error = %v", err)
			}
			f := op.LastFeedback()
			if f == nil || f.Alias != feedbackAliasEx || f.ClientID != oidctest.DefaultClientID || f.Subject != oidctest.SubjectBindIDNew || !f.Time.Equal(at) {
				t.Errorf("LastFeedback() = %+v, want alias %s for %s at %v", f, feedbackAliasEx, oidctest.SubjectBindIDNew, at)
			}
			next, err := loginAndExchange(t, c)
			if err != nil {
				t.Fatal(err)
			}
			if next.IDTokenClaims["bindid_alias"] != feedbackAliasEx || next.Claims["bindid_alias"] != feedbackAliasEx {
				t.Errorf("next login bindid_alias = %v (ID token %v), want %s", next.Claims["bindid_alias"], next.IDTokenClaims["bindid_alias"], feedbackAliasEx)
			}
		})
	}
}

func TestSessionFeedbackAgainstOPRefusals(t *testing.T) {
	t.Run("wrong client secret", func(t *testing.T) {
		op, _, login := newFeedbackOP(t)
		conf := opConfig(op)
		conf.ClientSecret = "not-the-secret"
		other := newClient(t, conf)
		err := other.SessionFeedback(t.Context(), op.Issuer()+oidctest.PathSessionFeedback, login.AccessToken, "x", time.Now())
		e := wantError(t, err, CodeFeedbackRejected, false)
		if e.OPError != "invalid_client" {
			t.Errorf("OPError = %q, want invalid_client", e.OPError)
		}
		noSecrets(t, err, login.AccessToken, "not-the-secret")
		if op.Counts().Feedback != 1 || op.LastFeedback() != nil {
			t.Errorf("Counts().Feedback = %d, LastFeedback() = %v; want 1 request, nothing recorded", op.Counts().Feedback, op.LastFeedback())
		}
	})
	t.Run("unknown access token", func(t *testing.T) {
		op, c, _ := newFeedbackOP(t)
		err := c.SessionFeedback(t.Context(), op.Issuer()+oidctest.PathSessionFeedback, "no-such-token", "x", time.Now())
		if e := wantError(t, err, CodeFeedbackRejected, false); e.OPError != "invalid_token" {
			t.Errorf("OPError = %q, want invalid_token", e.OPError)
		}
	})
	for _, tt := range []struct {
		status    int
		code      string
		temporary bool
	}{{503, CodeFeedbackFailed, true}, {429, CodeFeedbackFailed, true}, {400, CodeFeedbackRejected, false}} {
		t.Run("fault "+http.StatusText(tt.status), func(t *testing.T) {
			op, c, login := newFeedbackOP(t)
			op.SetFaults(oidctest.Faults{FeedbackStatus: tt.status})
			err := c.SessionFeedback(t.Context(), op.Issuer()+oidctest.PathSessionFeedback, login.AccessToken, "x", time.Now())
			wantError(t, err, tt.code, tt.temporary)
			if op.Counts().Feedback != 1 {
				t.Errorf("Counts().Feedback = %d, want 1 (no retry)", op.Counts().Feedback)
			}
		})
	}
	t.Run("fault delay", func(t *testing.T) {
		op, _, login := newFeedbackOP(t)
		op.SetFaults(oidctest.Faults{FeedbackDelay: time.Minute})
		conf := opConfig(op)
		conf.HTTPClient = NewHTTPClient(200*time.Millisecond, 0)
		c := newClient(t, conf)
		err := c.SessionFeedback(t.Context(), op.Issuer()+oidctest.PathSessionFeedback, login.AccessToken, "x", time.Now())
		wantError(t, err, CodeFeedbackFailed, true)
	})
}

func TestSessionFeedbackEndpointFromDiscovery(t *testing.T) {
	t.Run("none advertised", func(t *testing.T) {
		issuer := discoveryServer(t, nil)
		c := newClient(t, Config{Issuer: issuer, ClientID: "app", ClientSecret: vecSecret, HTTPClient: NewHTTPClient(5*time.Second, 0)})
		err := c.SessionFeedback(t.Context(), "", vecToken, "a", time.Unix(1, 0))
		wantError(t, err, CodeFeedbackUnavailable, false)
	})
	t.Run("unusable value ignored", func(t *testing.T) {
		issuer := discoveryServer(t, func(doc map[string]any, base string) {
			doc["session_feedback_endpoint"] = "http://idp.example.com/session-feedback" // plain http off loopback
		})
		c := newClient(t, Config{Issuer: issuer, ClientID: "app", ClientSecret: vecSecret, HTTPClient: NewHTTPClient(5*time.Second, 0)})
		meta, err := c.Discover(t.Context())
		if err != nil {
			t.Fatalf("Discover() error = %v, want the unusable extension ignored", err)
		}
		if meta.SessionFeedbackEndpoint != "" {
			t.Errorf("SessionFeedbackEndpoint = %q, want \"\"", meta.SessionFeedbackEndpoint)
		}
		wantError(t, c.SessionFeedback(t.Context(), "", vecToken, "a", time.Unix(1, 0)), CodeFeedbackUnavailable, false)
	})
}

// TestAuthCodeURLLongLoginHint: an identity-binding login_hint JWT of a few KiB goes
// through AuthCodeURL unchanged (and the OP verifies its signature, so any change would
// show).
func TestAuthCodeURLLongLoginHint(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv.Public(), KeyID: "gw", Algorithm: "ES256", Use: "sig"}}})
	op := oidctest.NewTest(t, oidctest.Options{LoginHintJWKS: func() ([]byte, error) { return set, nil }})
	op.SetAutoLogin("andrew")
	c := newClient(t, opConfig(op))

	now := time.Now()
	claims := map[string]any{
		"iss": "http://127.0.0.1:9001", "aud": op.Issuer(), "sub": oidctest.SubjectAndrew,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"name": "Andrew Roshell", "phone_number": "+15555550100",
		"address": map[string]any{"formatted": strings.Repeat("1 Long Street, Springfield; ", 80)},
	}
	payload, _ := json.Marshal(claims)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "gw"))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	hint, _ := jws.CompactSerialize()
	if n := len(hint); n < 2048 || n > 4096 {
		t.Fatalf("login_hint is %d bytes, want 2-4 KiB", n)
	}

	tx := NewTransaction()
	raw, err := c.AuthCodeURL(t.Context(), AuthRequest{RedirectURL: testRedirectURL, Transaction: tx, LoginHint: hint, ACRValues: "urn:idw:loa:high"})
	if err != nil {
		t.Fatalf("AuthCodeURL() error = %v", err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Query()["login_hint"]; len(got) != 1 || got[0] != hint {
		t.Fatalf("AuthCodeURL() login_hint differs from the %d-byte hint sent", len(hint))
	}
	if !strings.Contains(raw, "login_hint="+hint) {
		t.Errorf("AuthCodeURL() does not carry the base64url hint verbatim")
	}

	resp, err := noRedirect.Get(raw)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("authorization response = %v, want a code", loc.Query())
	}
	login, err := c.Exchange(t.Context(), code, testRedirectURL, tx)
	if err != nil {
		t.Fatalf("Exchange() error = %v", err)
	}
	// The OP verified the hint (any change to it would break the signature) and approved the
	// binding for the same subject; no claim of its own says so.
	if b := op.LastBinding(); login.Subject != oidctest.SubjectAndrew || b == nil || b.Decision != oidctest.DecisionApprove || b.Subject != oidctest.SubjectAndrew {
		t.Errorf("bound login: sub %q, OP binding %+v, want %s approved", login.Subject, b, oidctest.SubjectAndrew)
	}
	if got := op.LastAuthorize().Get("login_hint"); got != hint {
		t.Errorf("the OP received a different login_hint")
	}
}
