package oidcflow

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// Regression tests for bugs found by review of oidcflow's classification of failures.

func TestDecodeObjectRejectsTrailingClosingBrackets(t *testing.T) {
	for _, in := range []string{`{"sub":"a"}}`, `{"sub":"a"}]`, `{"sub":"a"}]]]}`} {
		if got, err := decodeObject([]byte(in)); err == nil {
			t.Errorf("decodeObject(%q) = %v, nil; want a trailing-data error", in, got)
		}
	}
}

// A 5xx is the OP failing, whatever its body says: temporary, with the OP's error kept.
func TestExchangeTokenEndpoint5xxWithErrorBodyIsTemporary(t *testing.T) {
	tests := []struct {
		name   string
		status int
		code   string
	}{
		{"500 server_error", http.StatusInternalServerError, "server_error"},
		{"503 temporarily_unavailable", http.StatusServiceUnavailable, "temporarily_unavailable"},
		{"502 invalid_request", http.StatusBadGateway, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := oidctest.NewTest(t, oidctest.Options{})
			op.SetAutoLogin(oidctest.SubjectAse)
			op.SetFaults(oidctest.Faults{TokenError: tt.code, TokenErrorStatus: tt.status})
			c := newClient(t, opConfig(op))
			_, err := loginAndExchange(t, c)
			e := wantError(t, err, CodeTokenEndpoint, true)
			if e.OPError != tt.code {
				t.Errorf("Error.OPError = %q, want %q", e.OPError, tt.code)
			}
		})
	}
}

// A 200 that is not a usable token response is a bad answer, not an outage.
func TestExchangeTokenResponseWithoutAccessTokenIsRejected(t *testing.T) {
	tests := []struct {
		name   string
		faults oidctest.Faults
	}{
		{"no access_token", oidctest.Faults{MutateTokenResponse: func(r map[string]any) { delete(r, "access_token") }}},
		{"empty access_token", oidctest.Faults{MutateTokenResponse: func(r map[string]any) { r["access_token"] = "" }}},
		{"HTML 200", oidctest.Faults{TokenHTML: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := oidctest.NewTest(t, oidctest.Options{})
			op.SetAutoLogin(oidctest.SubjectAse)
			op.SetFaults(tt.faults)
			c := newClient(t, opConfig(op))
			_, err := loginAndExchange(t, c)
			wantError(t, err, CodeTokenResponse, false)
		})
	}
}

// OPS-06: the OP's keys cannot be fetched: the provider is unavailable (temporary), which
// the gateway answers with 502, not with "your sign-in could not be verified".
func TestOPS06_JWKSUnavailableIsTemporary(t *testing.T) {
	tests := []struct {
		name string
		rt   func(next http.RoundTripper) http.RoundTripper
	}{
		{"unreachable", func(next http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.URL.Path == oidctest.PathJWKS {
					return nil, errors.New("connection refused")
				}
				return next.RoundTrip(r)
			})
		}},
		{"503", func(next http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.URL.Path == oidctest.PathJWKS {
					return &http.Response{StatusCode: 503, Status: "503 Service Unavailable", Header: http.Header{},
						Body: io.NopCloser(strings.NewReader("down")), Request: r}, nil
				}
				return next.RoundTrip(r)
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := oidctest.NewTest(t, oidctest.Options{})
			op.SetAutoLogin(oidctest.SubjectAse)
			cfg := opConfig(op)
			lt := cfg.HTTPClient.Transport.(*limitTransport)
			lt.base = tt.rt(lt.base)
			c := newClient(t, cfg)
			_, err := loginAndExchange(t, c)
			wantError(t, err, CodeKeys, true)
		})
	}
	t.Run("a bad signature with keys available stays a token failure", func(t *testing.T) {
		op := oidctest.NewTest(t, oidctest.Options{})
		op.SetAutoLogin(oidctest.SubjectAse)
		op.SetFaults(oidctest.Faults{IDTokenBadSignature: true})
		c := newClient(t, opConfig(op))
		_, err := loginAndExchange(t, c)
		wantError(t, err, CodeIDToken, false)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
