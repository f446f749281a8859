package oidcflow

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// cibaEnv is the in-process OP and a Client for its default client, sharing a fake clock
// (the OP enforces the polling interval on its clock).
type cibaEnv struct {
	op    *oidctest.Provider
	c     *Client
	clock *fakeClock
}

func newCIBAEnv(tb testing.TB, opts oidctest.Options, edit func(*Config)) *cibaEnv {
	tb.Helper()
	clock := newFakeClock()
	opts.Now = clock.Now
	op := oidctest.NewTest(tb, opts)
	cfg := opConfig(op)
	cfg.Now = clock.Now
	if edit != nil {
		edit(&cfg)
	}
	return &cibaEnv{op: op, c: newClient(tb, cfg), clock: clock}
}

// start sends a backchannel authentication request for login_hint and fails tb unless it
// is acknowledged.
func (e *cibaEnv) start(tb testing.TB, hint string) *CIBAAck {
	tb.Helper()
	ack, err := e.c.BackchannelAuthorize(tb.Context(), CIBARequest{LoginHint: hint})
	if err != nil {
		tb.Fatalf("BackchannelAuthorize() error = %v", err)
	}
	return ack
}

// approveAndPoll approves the request at the OP, waits the interval and polls once.
func (e *cibaEnv) approveAndPoll(tb testing.TB, ack *CIBAAck) (*Login, error) {
	tb.Helper()
	if err := e.op.CIBAApprove(ack.AuthReqID); err != nil {
		tb.Fatalf("CIBAApprove() error = %v", err)
	}
	e.clock.Advance(ack.Interval)
	return e.c.PollCIBA(tb.Context(), ack.AuthReqID)
}

// stubOP serves a discovery document (edited by mutate) whose backchannel authentication
// endpoint (base+"/bc") and token endpoint (base+"/token") are answered by bc and token.
// It counts the requests to each.
type stubOP struct {
	issuer          string
	bcCalls, tokens atomic.Int32
}

func newStubOP(tb testing.TB, mutate func(doc map[string]any), bc, token http.HandlerFunc) *stubOP {
	tb.Helper()
	s := &stubOP{}
	s.issuer = startServer(tb, func(base string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/.well-known/openid-configuration":
				doc := metadataFor(base, base)
				doc["backchannel_authentication_endpoint"] = base + "/bc"
				doc["backchannel_token_delivery_modes_supported"] = []string{"poll"}
				if mutate != nil {
					mutate(doc)
				}
				writeJSON(w, http.StatusOK, doc)
			case "/bc":
				s.bcCalls.Add(1)
				if bc == nil {
					http.NotFound(w, r)
					return
				}
				bc(w, r)
			case "/token":
				s.tokens.Add(1)
				if token == nil {
					http.NotFound(w, r)
					return
				}
				token(w, r)
			default:
				http.NotFound(w, r)
			}
		})
	})
	return s
}

func (s *stubOP) client(tb testing.TB) *Client {
	tb.Helper()
	return newClient(tb, Config{Issuer: s.issuer, ClientID: "app", ClientSecret: "app-secret-value", HTTPClient: NewHTTPClient(5*time.Second, 1<<20)})
}

// rawJSON answers status with body as application/json.
func rawJSON(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func TestCIBA01_MalformedAck(t *testing.T) {
	t.Run("oidctest faults", func(t *testing.T) {
		tests := []struct {
			name string
			f    oidctest.Faults
		}{
			{"no auth_req_id", oidctest.Faults{CIBAAckOmit: "auth_req_id"}},
			{"no expires_in", oidctest.Faults{CIBAAckOmit: "expires_in"}},
			{"expires_in negative", oidctest.Faults{CIBAAckExpiresIn: -1}},
			{"expires_in zero", oidctest.Faults{CIBAAckExpiresIn: 0}},
			{"expires_in fraction", oidctest.Faults{CIBAAckExpiresIn: 2.5}},
			{"expires_in 120.0", oidctest.Faults{CIBAAckExpiresIn: json.RawMessage("120.0")}},
			{"expires_in exponent", oidctest.Faults{CIBAAckExpiresIn: json.RawMessage("1.2e2")}},
			{"expires_in string", oidctest.Faults{CIBAAckExpiresIn: "120"}},
			{"expires_in null", oidctest.Faults{CIBAAckExpiresIn: json.RawMessage("null")}},
			{"expires_in beyond int64", oidctest.Faults{CIBAAckExpiresIn: json.RawMessage("99999999999999999999")}},
			{"expires_in beyond a Duration", oidctest.Faults{CIBAAckExpiresIn: json.RawMessage("10000000000")}},
			{"interval negative", oidctest.Faults{CIBAAckInterval: -1}},
			{"interval fraction", oidctest.Faults{CIBAAckInterval: 2.5}},
			{"interval string", oidctest.Faults{CIBAAckInterval: "5"}},
			{"interval bool", oidctest.Faults{CIBAAckInterval: true}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := newCIBAEnv(t, oidctest.Options{}, nil)
				e.op.SetFaults(tt.f)
				ack, err := e.c.BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "kari"})
				if ack != nil {
					t.Errorf("BackchannelAuthorize() = %+v, want nil", ack)
				}
				wantError(t, err, CodeCIBAAckInvalid, false)
				if n := e.op.Counts(); n.Token != 0 || n.CIBAAuthorize != 1 {
					t.Errorf("Counts() = %+v, want 1 backchannel request and 0 token requests", n)
				}
			})
		}
	})
	t.Run("raw answers", func(t *testing.T) {
		for name, body := range map[string]string{
			"auth_req_id number":    `{"auth_req_id":42,"expires_in":120}`,
			"auth_req_id empty":     `{"auth_req_id":"","expires_in":120}`,
			"auth_req_id control":   `{"auth_req_id":"a\nb","expires_in":120}`,
			"auth_req_id too long":  `{"auth_req_id":"` + strings.Repeat("a", MaxAuthReqIDLength+1) + `","expires_in":120}`,
			"auth_req_id twice":     `{"auth_req_id":"a","auth_req_id":"b","expires_in":120}`,
			"not an object":         `["a",120]`,
			"html":                  `<html>ok</html>`,
			"trailing data":         `{"auth_req_id":"a","expires_in":120}{}`,
			"expires_in negative 0": `{"auth_req_id":"a","expires_in":-0}`,
		} {
			t.Run(name, func(t *testing.T) {
				s := newStubOP(t, nil, rawJSON(http.StatusOK, body), nil)
				_, err := s.client(t).BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "x"})
				wantError(t, err, CodeCIBAAckInvalid, false)
				if got := s.tokens.Load(); got != 0 {
					t.Errorf("token requests = %d, want 0", got)
				}
			})
		}
	})
	t.Run("well-formed raw answer", func(t *testing.T) {
		s := newStubOP(t, nil, rawJSON(http.StatusOK, `{"auth_req_id":"1c266114-a1be-4252-8ad1-04986c5b9ac1","expires_in":120,"interval":2,"extra":{"x":1}}`), nil)
		ack, err := s.client(t).BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "x"})
		if err != nil {
			t.Fatalf("BackchannelAuthorize() error = %v", err)
		}
		want := CIBAAck{AuthReqID: "1c266114-a1be-4252-8ad1-04986c5b9ac1", ExpiresIn: 120 * time.Second, Interval: 2 * time.Second}
		if *ack != want {
			t.Errorf("BackchannelAuthorize() = %+v, want %+v", *ack, want)
		}
	})
}

func TestCIBA02_AuthorizeErrors(t *testing.T) {
	for _, code := range []string{
		"expired_id_token_hint", "invalid_id_token_hint", "unknown_user_id", "unauthorized_client",
		"access_denied", "invalid_request", "invalid_scope", "invalid_client", "invalid_binding_message",
	} {
		t.Run(code, func(t *testing.T) {
			e := newCIBAEnv(t, oidctest.Options{}, nil)
			status := http.StatusBadRequest
			if code == "invalid_client" {
				status = http.StatusUnauthorized
			}
			e.op.SetFaults(oidctest.Faults{CIBAAuthorizeError: code, CIBAAuthorizeErrorStatus: status})
			ack, err := e.c.BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "kari"})
			if ack != nil {
				t.Errorf("BackchannelAuthorize() = %+v, want nil", ack)
			}
			if got := wantError(t, err, CodeCIBARejected, false); got.OPError != code {
				t.Errorf("OPError = %q, want %q", got.OPError, code)
			}
			if n := e.op.Counts(); n.CIBAAuthorize != 1 || n.Token != 0 {
				t.Errorf("Counts() = %+v, want exactly one backchannel request and no token request", n)
			}
		})
	}
	t.Run("temporary", func(t *testing.T) {
		for _, status := range []int{500, 502, 503, 429, 408} {
			e := newCIBAEnv(t, oidctest.Options{}, nil)
			e.op.SetFaults(oidctest.Faults{CIBAAuthorizeError: "temporarily_unavailable", CIBAAuthorizeErrorStatus: status})
			_, err := e.c.BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "kari"})
			wantError(t, err, CodeCIBAEndpoint, true)
			if n := e.op.Counts().CIBAAuthorize; n != 1 {
				t.Errorf("HTTP %d: backchannel requests = %d, want 1 (no retry)", status, n)
			}
		}
	})
	t.Run("real OP refusals", func(t *testing.T) {
		e := newCIBAEnv(t, oidctest.Options{}, nil)
		_, err := e.c.BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "nobody@example.org"})
		if got := wantError(t, err, CodeCIBARejected, false); got.OPError != "unknown_user_id" {
			t.Errorf("unknown user: OPError = %q, want unknown_user_id", got.OPError)
		}
		e.op.SetAutoLogin(oidctest.SubjectKari)
		login, err := loginAndExchange(t, e.c)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(oidctest.AccessTokenLifetime + time.Second)
		_, err = e.c.BackchannelAuthorize(t.Context(), CIBARequest{IDTokenHint: login.IDToken})
		if got := wantError(t, err, CodeCIBARejected, false); got.OPError != "expired_id_token_hint" {
			t.Errorf("expired hint: OPError = %q, want expired_id_token_hint", got.OPError)
		}
		if strings.Contains(err.Error(), login.IDToken) {
			t.Errorf("error quotes the id_token_hint")
		}
	})
	t.Run("wrong client secret", func(t *testing.T) {
		e := newCIBAEnv(t, oidctest.Options{}, func(c *Config) { c.ClientSecret = "wrong-secret" })
		_, err := e.c.BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "kari"})
		if got := wantError(t, err, CodeCIBARejected, false); got.OPError != "invalid_client" {
			t.Errorf("OPError = %q, want invalid_client", got.OPError)
		}
	})
	t.Run("description clipped and sanitized", func(t *testing.T) {
		desc := "bad\x1b[31m hint eyJhbGciOi.secret.token app-secret-value\n" + strings.Repeat("x", 500)
		b, _ := json.Marshal(map[string]string{"error": "invalid_request\x00", "error_description": desc})
		s := newStubOP(t, nil, rawJSON(http.StatusBadRequest, string(b)), nil)
		_, err := s.client(t).BackchannelAuthorize(t.Context(), CIBARequest{IDTokenHint: "eyJhbGciOi.secret.token"})
		e := wantError(t, err, CodeCIBARejected, false)
		if e.OPError != "invalid_request" {
			t.Errorf("OPError = %q, want invalid_request", e.OPError)
		}
		msg := err.Error()
		if strings.ContainsAny(msg, "\x1b\x00\n") || strings.Contains(msg, "app-secret-value") || strings.Contains(msg, "eyJhbGciOi.secret.token") || len(msg) > 400 {
			t.Errorf("error = %q, want it clipped, without control characters, the secret or the hint", msg)
		}
	})
	t.Run("network failure and timeout", func(t *testing.T) {
		s := newStubOP(t, func(doc map[string]any) { doc["backchannel_authentication_endpoint"] = closedLoopbackURL(t) + "/bc" }, nil, nil)
		_, err := s.client(t).BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "x"})
		wantError(t, err, CodeCIBAEndpoint, true)

		release := make(chan struct{})
		slow := newStubOP(t, nil, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}, nil)
		releaseOnCleanup(t, release)
		c := slow.client(t)
		if _, err := c.Discover(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err = c.BackchannelAuthorize(ctx, CIBARequest{LoginHint: "x"})
		wantError(t, err, CodeCIBAEndpoint, true)
	})
	t.Run("redirect", func(t *testing.T) {
		s := newStubOP(t, nil, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example/bc", http.StatusFound)
		}, nil)
		_, err := s.client(t).BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "x"})
		wantError(t, err, CodeCIBARejected, false)
	})
}

func TestCIBA03_DefaultInterval(t *testing.T) {
	t.Run("none sent", func(t *testing.T) {
		e := newCIBAEnv(t, oidctest.Options{}, nil)
		ack := e.start(t, "kari")
		if ack.Interval != 5*time.Second || ack.ExpiresIn != 120*time.Second {
			t.Errorf("ack = %+v, want interval 5s and expires_in 120s", ack)
		}
		if len(ack.AuthReqID) < 22 {
			t.Errorf("AuthReqID = %q, want the OP's", ack.AuthReqID)
		}
	})
	t.Run("31", func(t *testing.T) {
		e := newCIBAEnv(t, oidctest.Options{CIBAInterval: 31 * time.Second, CIBAExpiresIn: 300 * time.Second}, nil)
		ack := e.start(t, "kari")
		if ack.Interval != 31*time.Second || ack.ExpiresIn != 300*time.Second {
			t.Errorf("ack = %+v, want interval 31s and expires_in 300s", ack)
		}
	})
	t.Run("0", func(t *testing.T) {
		e := newCIBAEnv(t, oidctest.Options{}, nil)
		e.op.SetFaults(oidctest.Faults{CIBAAckInterval: 0})
		if ack := e.start(t, "kari"); ack.Interval != 0 {
			t.Errorf("ack = %+v, want interval 0 as sent", ack)
		}
	})
}

func TestCIBAPollStates(t *testing.T) {
	t.Run("pending", func(t *testing.T) {
		e := newCIBAEnv(t, oidctest.Options{}, nil)
		ack := e.start(t, "kari")
		e.clock.Advance(ack.Interval)
		login, err := e.c.PollCIBA(t.Context(), ack.AuthReqID)
		if login != nil {
			t.Errorf("PollCIBA() = %+v, want nil", login)
		}
		wantError(t, err, CodeCIBAPending, false)
		if !IsCIBAPending(err) || IsCIBASlowDown(err) {
			t.Errorf("IsCIBAPending = %v, IsCIBASlowDown = %v; want true, false", IsCIBAPending(err), IsCIBASlowDown(err))
		}
		if got := e.op.Counts().CIBAPoll; got != 1 {
			t.Errorf("polls = %d, want exactly 1 per PollCIBA", got)
		}
		tr := e.op.LastTokenRequest()
		if tr.Get("grant_type") != GrantTypeCIBA || tr.Get("auth_req_id") != ack.AuthReqID || tr.Get("auth") != "basic" {
			t.Errorf("token request = %v, want the CIBA grant with the auth_req_id, client_secret_basic", tr)
		}
	})
	t.Run("slow_down", func(t *testing.T) {
		e := newCIBAEnv(t, oidctest.Options{}, nil)
		ack := e.start(t, "kari")
		e.clock.Advance(ack.Interval - time.Second)
		_, err := e.c.PollCIBA(t.Context(), ack.AuthReqID)
		wantError(t, err, CodeCIBASlowDown, false)
		if !IsCIBASlowDown(err) || IsCIBAPending(err) {
			t.Errorf("IsCIBASlowDown = %v, IsCIBAPending = %v; want true, false", IsCIBASlowDown(err), IsCIBAPending(err))
		}
		// The OP now wants 10 s; the caller adds CIBASlowDownIncrement.
		e.clock.Advance(ack.Interval + CIBASlowDownIncrement)
		_, err = e.c.PollCIBA(t.Context(), ack.AuthReqID)
		wantError(t, err, CodeCIBAPending, false)
	})
	t.Run("denied", func(t *testing.T) {
		e := newCIBAEnv(t, oidctest.Options{}, nil)
		ack := e.start(t, "kari")
		if err := e.op.CIBADeny(ack.AuthReqID); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(ack.Interval)
		_, err := e.c.PollCIBA(t.Context(), ack.AuthReqID)
		if got := wantError(t, err, CodeCIBADenied, false); got.OPError != "access_denied" {
			t.Errorf("OPError = %q, want access_denied", got.OPError)
		}
	})
	t.Run("expired", func(t *testing.T) {
		e := newCIBAEnv(t, oidctest.Options{CIBAExpiresIn: 30 * time.Second}, nil)
		ack := e.start(t, "kari")
		e.clock.Advance(ack.ExpiresIn)
		_, err := e.c.PollCIBA(t.Context(), ack.AuthReqID)
		wantError(t, err, CodeCIBAExpired, false)
		e.clock.Advance(ack.Interval)
		_, err = e.c.PollCIBA(t.Context(), ack.AuthReqID)
		if got := wantError(t, err, CodeCIBAFailed, false); got.OPError != "invalid_grant" {
			t.Errorf("poll after expired_token: OPError = %q, want invalid_grant", got.OPError)
		}
	})
	t.Run("temporary", func(t *testing.T) {
		for _, status := range []int{500, 503, 429} {
			e := newCIBAEnv(t, oidctest.Options{}, nil)
			ack := e.start(t, "kari")
			e.op.SetFaults(oidctest.Faults{TokenError: "temporarily_unavailable", TokenErrorStatus: status})
			e.clock.Advance(ack.Interval)
			_, err := e.c.PollCIBA(t.Context(), ack.AuthReqID)
			wantError(t, err, CodeTokenEndpoint, true)
		}
		s := newStubOP(t, func(doc map[string]any) { doc["token_endpoint"] = closedLoopbackURL(t) + "/token" }, nil, nil)
		_, err := s.client(t).PollCIBA(t.Context(), "abc")
		wantError(t, err, CodeTokenEndpoint, true)
	})
	t.Run("slow_down with 429", func(t *testing.T) {
		s := newStubOP(t, nil, nil, rawJSON(http.StatusTooManyRequests, `{"error":"slow_down"}`))
		_, err := s.client(t).PollCIBA(t.Context(), "abc")
		wantError(t, err, CodeCIBASlowDown, false)
	})
	t.Run("pending without a JSON content type", func(t *testing.T) {
		s := newStubOP(t, nil, nil, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"authorization_pending"}`))
		})
		_, err := s.client(t).PollCIBA(t.Context(), "abc")
		wantError(t, err, CodeCIBAPending, false)
	})
	t.Run("not a token response", func(t *testing.T) {
		e := newCIBAEnv(t, oidctest.Options{}, nil)
		ack := e.start(t, "kari")
		e.op.SetFaults(oidctest.Faults{TokenHTML: true})
		e.clock.Advance(ack.Interval)
		_, err := e.c.PollCIBA(t.Context(), ack.AuthReqID)
		wantError(t, err, CodeTokenResponse, false)
	})
	t.Run("invalid auth_req_id is not sent", func(t *testing.T) {
		e := newCIBAEnv(t, oidctest.Options{}, nil)
		for _, id := range []string{"", "a\nb", strings.Repeat("a", MaxAuthReqIDLength+1), "ø"} {
			_, err := e.c.PollCIBA(t.Context(), id)
			wantError(t, err, CodeCIBAInvalid, false)
		}
		if got := e.op.Counts().Token; got != 0 {
			t.Errorf("token requests = %d, want 0", got)
		}
	})
}

func TestCIBA06_TerminalTokenErrors(t *testing.T) {
	tests := []struct {
		opErr, code string
	}{
		{"access_denied", CodeCIBADenied},
		{"expired_token", CodeCIBAExpired},
		{"invalid_request", CodeCIBAFailed},
		{"invalid_grant", CodeCIBAFailed},
		{"unauthorized_client", CodeCIBAFailed},
		{"invalid_client", CodeCIBAFailed},
		{"something_new", CodeCIBAFailed},
	}
	for _, tt := range tests {
		t.Run(tt.opErr, func(t *testing.T) {
			e := newCIBAEnv(t, oidctest.Options{}, nil)
			e.op.SetFaults(oidctest.Faults{CIBATokenErrorOnPoll: 3, CIBATokenError: tt.opErr})
			ack := e.start(t, "kari")
			for i := 1; i <= 2; i++ {
				e.clock.Advance(ack.Interval)
				if _, err := e.c.PollCIBA(t.Context(), ack.AuthReqID); !IsCIBAPending(err) {
					t.Fatalf("poll %d error = %v, want ciba_pending", i, err)
				}
			}
			e.clock.Advance(ack.Interval)
			login, err := e.c.PollCIBA(t.Context(), ack.AuthReqID)
			if login != nil {
				t.Errorf("PollCIBA() = %+v, want nil", login)
			}
			got := wantError(t, err, tt.code, false)
			if got.OPError != tt.opErr {
				t.Errorf("OPError = %q, want %q", got.OPError, tt.opErr)
			}
			if IsCIBAPending(err) || IsCIBASlowDown(err) {
				t.Errorf("a terminal error reads as pending or slow_down")
			}
		})
	}
	t.Run("4xx without an OAuth error", func(t *testing.T) {
		s := newStubOP(t, nil, nil, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", http.StatusForbidden) })
		_, err := s.client(t).PollCIBA(t.Context(), "abc")
		wantError(t, err, CodeCIBAFailed, false)
	})
}

func TestCIBA07_IDTokenFromCIBAGrant(t *testing.T) {
	tests := []struct {
		name string
		f    oidctest.Faults
		code string
	}{
		{name: "bad signature", f: oidctest.Faults{IDTokenBadSignature: true}},
		{name: "unpublished key", f: oidctest.Faults{IDTokenUnpublishedKey: true}},
		{name: "alg none", f: oidctest.Faults{IDTokenAlgNone: true}},
		{name: "HS256", f: oidctest.Faults{IDTokenHS256: true}},
		{name: "alternate alg", f: oidctest.Faults{MutateIDToken: func(h, _ map[string]any) { h["alg"] = "PS256" }}},
		{name: "wrong iss", f: oidctest.Faults{IDTokenWrongIssuer: true}},
		{name: "wrong aud", f: oidctest.Faults{IDTokenWrongAudience: true}},
		{name: "extra untrusted aud", f: oidctest.Faults{IDTokenExtraAudience: true}},
		{name: "azp other", f: oidctest.Faults{IDTokenAzpOther: true}},
		{name: "expired 6 min", f: oidctest.Faults{IDTokenExpired: true}},
		{name: "iat a week old", f: oidctest.Faults{IDTokenIatWeekOld: true}},
		{name: "iat in the future", f: oidctest.Faults{IDTokenIatFuture: true}},
		{name: "missing aud", f: oidctest.Faults{IDTokenMissingAudience: true}},
		{name: "missing exp", f: oidctest.Faults{MutateIDToken: func(_, c map[string]any) { delete(c, "exp") }}},
		{name: "missing iss", f: oidctest.Faults{MutateIDToken: func(_, c map[string]any) { delete(c, "iss") }}},
		{name: "missing sub", f: oidctest.Faults{IDTokenMissingSub: true}},
		{name: "bad at_hash", f: oidctest.Faults{IDTokenBadAtHash: true}},
		{name: "auth_req_id of another request", f: oidctest.Faults{MutateIDToken: func(_, c map[string]any) { c[ClaimAuthReqID] = "another-request" }}},
		{name: "auth_req_id not a string", f: oidctest.Faults{MutateIDToken: func(_, c map[string]any) { c[ClaimAuthReqID] = 42 }}},
		{name: "no id_token", f: oidctest.Faults{IDTokenOmit: true}, code: CodeTokenResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCIBAEnv(t, oidctest.Options{}, nil)
			ack := e.start(t, "kari")
			e.op.SetFaults(tt.f)
			login, err := e.approveAndPoll(t, ack)
			if login != nil {
				t.Errorf("PollCIBA() = %+v, want nil", login)
			}
			code := tt.code
			if code == "" {
				code = CodeIDToken
			}
			wantError(t, err, code, false)
			// Nothing after a refused ID token (threat model CIBA-07).
			if n := e.op.Counts(); n.Userinfo != 0 || n.CIBAPoll != 1 || n.Token != 1 {
				t.Errorf("Counts() = %+v, want one token request and no userinfo request", n)
			}
		})
	}
	positive := []struct {
		name string
		f    oidctest.Faults
		edit func(*Config)
	}{
		{name: "aud as 1-element array", f: oidctest.Faults{MutateIDToken: func(_, c map[string]any) { c["aud"] = []any{oidctest.DefaultClientID} }}},
		{name: "extra trusted aud", f: oidctest.Faults{IDTokenExtraAudience: true}, edit: func(c *Config) { c.TrustedAudiences = []string{oidctest.OtherClientID} }},
		{name: "no auth_req_id claim", f: oidctest.Faults{MutateIDToken: func(_, c map[string]any) { delete(c, ClaimAuthReqID) }}},
		{name: "no nonce expected", f: oidctest.Faults{IDTokenMissingNonce: true}},
	}
	for _, tt := range positive {
		t.Run(tt.name, func(t *testing.T) {
			e := newCIBAEnv(t, oidctest.Options{}, tt.edit)
			ack := e.start(t, "kari")
			e.op.SetFaults(tt.f)
			if _, err := e.approveAndPoll(t, ack); err != nil {
				t.Errorf("PollCIBA() error = %v, want success", err)
			}
		})
	}
}

func TestCIBAApproveReturnsLogin(t *testing.T) {
	for _, method := range []string{AuthClientSecretBasic, AuthClientSecretPost} {
		t.Run(method, func(t *testing.T) {
			e := newCIBAEnv(t, oidctest.Options{}, func(c *Config) { c.AuthMethod = method })
			ack := e.start(t, "kari.nordmann@example.org")
			wantAuth := map[string]string{AuthClientSecretBasic: "basic", AuthClientSecretPost: "post"}[method]
			if got := e.op.LastCIBARequest().Get("auth"); got != wantAuth {
				t.Errorf("backchannel request client auth = %q, want %q", got, wantAuth)
			}
			login, err := e.approveAndPoll(t, ack)
			if err != nil {
				t.Fatalf("PollCIBA() error = %v", err)
			}
			if got := e.op.LastTokenRequest().Get("auth"); got != wantAuth {
				t.Errorf("token request client auth = %q, want %q", got, wantAuth)
			}
			if login.Subject != oidctest.SubjectKari {
				t.Errorf("Subject = %q, want %q", login.Subject, oidctest.SubjectKari)
			}
			if login.IDTokenClaims[ClaimAuthReqID] != ack.AuthReqID {
				t.Errorf("IDTokenClaims[%s] = %v, want the auth_req_id", ClaimAuthReqID, login.IDTokenClaims[ClaimAuthReqID])
			}
			// Userinfo (a signed JWT for this user) merged as at login.
			if !login.SignedUserinfo || login.UserinfoClaims == nil {
				t.Errorf("SignedUserinfo = %v, UserinfoClaims = %v; want signed userinfo", login.SignedUserinfo, login.UserinfoClaims)
			}
			if got := login.Claims["personal_id_number"]; got != "01017012345" {
				t.Errorf("Claims[personal_id_number] = %v, want the userinfo value", got)
			}
			if got := login.Claims["iss"]; got != e.op.Issuer() {
				t.Errorf("Claims[iss] = %v, want the ID token's", got)
			}
			if got, ok := login.Claims["auth_time"].(float64); !ok || int64(got) != e.clock.Now().Add(-ack.Interval).Unix() {
				t.Errorf("Claims[auth_time] = %v, want the approval time", login.Claims["auth_time"])
			}
			if login.AccessToken == "" || login.RefreshToken == "" || login.IDToken == "" {
				t.Errorf("tokens = %q/%q/%q, want all three", login.AccessToken, login.RefreshToken, login.IDToken)
			}
			if want := e.clock.Now().Add(oidctest.AccessTokenLifetime); !login.Expiry.Equal(want) {
				t.Errorf("Expiry = %v, want %v", login.Expiry, want)
			}
			if n := e.op.Counts(); n.Userinfo != 1 || n.CIBAPoll != 1 {
				t.Errorf("Counts() = %+v, want one poll and one userinfo request", n)
			}
			// The OP spent the auth_req_id: a further poll is final.
			e.clock.Advance(ack.Interval)
			_, err = e.c.PollCIBA(t.Context(), ack.AuthReqID)
			wantError(t, err, CodeCIBAFailed, false)
		})
	}
}

func TestCIBAUnsupported(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(map[string]any)
	}{
		{"no endpoint", func(d map[string]any) { delete(d, "backchannel_authentication_endpoint") }},
		{"ping and push only", func(d map[string]any) { d["backchannel_token_delivery_modes_supported"] = []string{"ping", "push"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStubOP(t, tt.mutate, rawJSON(200, `{"auth_req_id":"a","expires_in":60}`), nil)
			_, err := s.client(t).BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "x"})
			wantError(t, err, CodeCIBAUnsupported, false)
			if got := s.bcCalls.Load(); got != 0 {
				t.Errorf("backchannel requests = %d, want 0", got)
			}
		})
	}
	t.Run("modes absent means poll", func(t *testing.T) {
		s := newStubOP(t, func(d map[string]any) { delete(d, "backchannel_token_delivery_modes_supported") }, rawJSON(200, `{"auth_req_id":"a","expires_in":60}`), nil)
		if _, err := s.client(t).BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "x"}); err != nil {
			t.Errorf("BackchannelAuthorize() error = %v, want success", err)
		}
	})
	t.Run("plain http endpoint off loopback", func(t *testing.T) {
		s := newStubOP(t, func(d map[string]any) { d["backchannel_authentication_endpoint"] = "http://idp.example/bc" }, nil, nil)
		_, err := s.client(t).BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "x"})
		wantError(t, err, CodeDiscovery, false)
	})
}

func TestCIBA10_RequestConstruction(t *testing.T) {
	refused := []struct {
		name string
		r    CIBARequest
	}{
		{"no hint", CIBARequest{}},
		{"two hints", CIBARequest{LoginHint: "kari", IDTokenHint: "a.b.c"}},
		{"login_hint and login_hint_token", CIBARequest{LoginHint: "kari", LoginHintToken: "t"}},
		{"three hints", CIBARequest{LoginHint: "kari", IDTokenHint: "a.b.c", LoginHintToken: "t"}},
		{"hint with a line break", CIBARequest{LoginHint: "kari\r\nX: y"}},
		{"binding_message 65 characters", CIBARequest{LoginHint: "kari", BindingMessage: strings.Repeat("ø", 65)}},
		{"binding_message with a line break", CIBARequest{LoginHint: "kari", BindingMessage: "pay\n100"}},
		{"binding_message with a bidi override", CIBARequest{LoginHint: "kari", BindingMessage: "pay \u202e001"}},
		{"binding_message not UTF-8", CIBARequest{LoginHint: "kari", BindingMessage: "\xff"}},
		{"user_code 65 characters", CIBARequest{LoginHint: "kari", UserCode: strings.Repeat("7", 65)}},
		{"user_code not ASCII", CIBARequest{LoginHint: "kari", UserCode: "12ø4"}},
		{"user_code with a tab", CIBARequest{LoginHint: "kari", UserCode: "12\t4"}},
		{"requested_expiry negative", CIBARequest{LoginHint: "kari", RequestedExpiry: -time.Second}},
		{"requested_expiry fraction", CIBARequest{LoginHint: "kari", RequestedExpiry: 1500 * time.Millisecond}},
		{"scope with a space", CIBARequest{LoginHint: "kari", Scopes: []string{"email phone"}}},
		{"empty scope", CIBARequest{LoginHint: "kari", Scopes: []string{""}}},
		{"acr value with a space", CIBARequest{LoginHint: "kari", ACRValues: []string{"a b"}}},
		{"claims an array", CIBARequest{LoginHint: "kari", Claims: json.RawMessage(`[{"id_token":{}}]`)}},
		{"claims a string", CIBARequest{LoginHint: "kari", Claims: json.RawMessage(`"{}"`)}},
		{"claims not JSON", CIBARequest{LoginHint: "kari", Claims: json.RawMessage(`{"id_token":`)}},
		{"claims with trailing data", CIBARequest{LoginHint: "kari", Claims: json.RawMessage(`{} {}`)}},
		{"claims with a duplicate member", CIBARequest{LoginHint: "kari", Claims: json.RawMessage(`{"userinfo":{},"userinfo":{}}`)}},
		{"claims over 4 KiB", CIBARequest{LoginHint: "kari", Claims: json.RawMessage(`{"userinfo":{"x":"` + strings.Repeat("a", 4096) + `"}}`)}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			e := newCIBAEnv(t, oidctest.Options{}, nil)
			_, err := e.c.BackchannelAuthorize(t.Context(), tt.r)
			wantError(t, err, CodeCIBAInvalid, false)
			if n := e.op.Counts(); n.CIBAAuthorize != 0 {
				t.Errorf("backchannel requests = %d, want 0 (refused before sending)", n.CIBAAuthorize)
			}
		})
	}
	t.Run("user_code for an OP without user_code support", func(t *testing.T) {
		s := newStubOP(t, nil, rawJSON(200, `{"auth_req_id":"a","expires_in":60}`), nil)
		_, err := s.client(t).BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "x", UserCode: "1234"})
		if e := wantError(t, err, CodeCIBAInvalid, false); !strings.Contains(e.Error(), "user_code") {
			t.Errorf("error = %v, want it to name user_code", err)
		}
		if got := s.bcCalls.Load(); got != 0 {
			t.Errorf("backchannel requests = %d, want 0", got)
		}
	})

	e := newCIBAEnv(t, oidctest.Options{}, nil)
	e.op.SetAutoLogin(oidctest.SubjectKari)
	login, err := loginAndExchange(t, e.c)
	if err != nil {
		t.Fatal(err)
	}
	hintParams := []string{"login_hint", "id_token_hint", "login_hint_token"}
	for _, tt := range []struct {
		name  string
		r     CIBARequest
		param string
	}{
		{"login_hint", CIBARequest{LoginHint: "kari"}, "login_hint"},
		{"id_token_hint", CIBARequest{IDTokenHint: login.IDToken}, "id_token_hint"},
		{"login_hint_token", CIBARequest{LoginHintToken: login.IDToken}, "login_hint_token"},
	} {
		t.Run("exactly one hint: "+tt.name, func(t *testing.T) {
			if _, err := e.c.BackchannelAuthorize(t.Context(), tt.r); err != nil {
				t.Fatalf("BackchannelAuthorize() error = %v", err)
			}
			rec := e.op.LastCIBARequest()
			for _, p := range hintParams {
				if _, present := rec[p]; present != (p == tt.param) {
					t.Errorf("request %v: parameter %s present = %v, want %v", rec, p, present, p == tt.param)
				}
			}
			if len(rec[tt.param]) != 1 {
				t.Errorf("request %s = %v, want one value", tt.param, rec[tt.param])
			}
		})
	}
	t.Run("parameters", func(t *testing.T) {
		r := CIBARequest{
			LoginHint:       "kari",
			BindingMessage:  strings.Repeat("ø", 63) + " ",
			UserCode:        strings.Repeat("~", 64),
			ACRValues:       []string{"urn:bankid:bid", "urn:bankid:low"},
			Scopes:          []string{"phone", "openid", "phone"},
			RequestedExpiry: 90 * time.Second,
		}
		ack, err := e.c.BackchannelAuthorize(t.Context(), r)
		if err != nil {
			t.Fatalf("BackchannelAuthorize() error = %v", err)
		}
		rec := e.op.LastCIBARequest()
		want := map[string]string{
			"binding_message":  r.BindingMessage,
			"user_code":        r.UserCode,
			"acr_values":       "urn:bankid:bid urn:bankid:low",
			"scope":            "openid phone",
			"requested_expiry": "90",
			"auth":             "basic",
		}
		for k, v := range want {
			if got := rec.Get(k); got != v {
				t.Errorf("request %s = %q, want %q", k, got, v)
			}
		}
		if ack.ExpiresIn != 90*time.Second {
			t.Errorf("ExpiresIn = %v, want the requested 90s", ack.ExpiresIn)
		}
	})
	t.Run("claims (OpenID Connect Core 5.5, CIBA Core 7.1)", func(t *testing.T) {
		// OpenID Connect Core 5.5's example, spaced out: sent compacted, as one parameter.
		claims := json.RawMessage(`{
  "userinfo": {"given_name": {"essential": true}, "email": null},
  "id_token": {"auth_time": {"essential": true}, "acr": {"values": ["urn:mace:incommon:iap:silver"]}}
}`)
		if _, err := e.c.BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "kari", Claims: claims}); err != nil {
			t.Fatal(err)
		}
		got := e.op.LastCIBARequest()
		want := `{"userinfo":{"given_name":{"essential":true},"email":null},"id_token":{"auth_time":{"essential":true},"acr":{"values":["urn:mace:incommon:iap:silver"]}}}`
		if len(got["claims"]) != 1 || got.Get("claims") != want {
			t.Errorf("claims = %q, want %q", got["claims"], want)
		}
	})
	t.Run("configured scopes by default", func(t *testing.T) {
		if _, err := e.c.BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "kari"}); err != nil {
			t.Fatal(err)
		}
		if got := e.op.LastCIBARequest(); got.Get("scope") != "openid email profile" || got.Has("requested_expiry") || got.Has("binding_message") || got.Has("user_code") || got.Has("acr_values") || got.Has("claims") {
			t.Errorf("request = %v, want scope openid email profile and no optional parameters", got)
		}
	})
	t.Run("client_secret_post and none send client_id", func(t *testing.T) {
		for method, wantAuth := range map[string]string{AuthClientSecretPost: "post", AuthNone: "none"} {
			e := newCIBAEnv(t, oidctest.Options{}, func(c *Config) {
				c.AuthMethod = method
				if method == AuthNone {
					c.ClientSecret = ""
				}
			})
			_, err := e.c.BackchannelAuthorize(t.Context(), CIBARequest{LoginHint: "kari"})
			rec := e.op.LastCIBARequest()
			if rec.Get("auth") != wantAuth || rec.Get("client_id") != oidctest.DefaultClientID {
				t.Errorf("%s: request = %v, want auth %s and client_id", method, rec, wantAuth)
			}
			if method == AuthNone {
				// The OP requires a confidential client.
				if e := wantError(t, err, CodeCIBARejected, false); e.OPError != "invalid_client" {
					t.Errorf("none: OPError = %q, want invalid_client", e.OPError)
				}
			} else if err != nil {
				t.Errorf("%s: error = %v", method, err)
			}
		}
	})
}
