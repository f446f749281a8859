package oidcflow

import (
	"context"
	"maps"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// refreshEnv is a logged-in session against an in-process OP.
type refreshEnv struct {
	op    *oidctest.Provider
	c     *Client
	login *Login
}

// newRefreshEnv logs subject in through a fresh OP and Client (cfg edits the Config).
func newRefreshEnv(t *testing.T, subject string, opts oidctest.Options, cfg func(*Config)) *refreshEnv {
	t.Helper()
	op := oidctest.NewTest(t, opts)
	op.SetAutoLogin(subject)
	conf := opConfig(op)
	if cfg != nil {
		cfg(&conf)
	}
	c := newClient(t, conf)
	login, err := loginAndExchange(t, c)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if login.RefreshToken == "" {
		t.Fatal("login gave no refresh token")
	}
	return &refreshEnv{op: op, c: c, login: login}
}

func (e *refreshEnv) refresh(ctx context.Context) (*Login, error) {
	return e.c.Refresh(ctx, RefreshRequest{RefreshToken: e.login.RefreshToken, Claims: e.login.Claims})
}

// TestIDT17_RefreshIDTokenIdentity: a refreshed ID token must keep the session's identity
// (OIDC Core 12.2); a refresh answer without an ID token is fine.
func TestIDT17_RefreshIDTokenIdentity(t *testing.T) {
	mismatches := []struct {
		name   string
		claims func(login *Login) map[string]any
	}{
		{"iss of another issuer", func(*Login) map[string]any { return map[string]any{"iss": oidctest.WrongIssuer} }},
		{"iss with a trailing slash", func(l *Login) map[string]any { return map[string]any{"iss": l.Claims["iss"].(string) + "/"} }},
		{"another sub", func(*Login) map[string]any { return map[string]any{"sub": oidctest.SubjectBindIDKnown} }},
		{"aud of another client", func(*Login) map[string]any { return map[string]any{"aud": oidctest.OtherClientID} }},
		{"aud with an extra audience", func(*Login) map[string]any {
			return map[string]any{"aud": []any{oidctest.DefaultClientID, oidctest.OtherClientID}}
		}},
		{"azp of another client", func(*Login) map[string]any { return map[string]any{"azp": oidctest.OtherClientID} }},
		{"azp removed", func(*Login) map[string]any { return map[string]any{"azp": nil} }},
		{"auth_time moved", func(l *Login) map[string]any {
			return map[string]any{"auth_time": int64(l.Claims["auth_time"].(float64)) + 60}
		}},
		{"nonce not the original", func(*Login) map[string]any { return map[string]any{"nonce": "another-nonce"} }},
	}
	for _, tt := range mismatches {
		t.Run(tt.name, func(t *testing.T) {
			e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
			e.op.SetFaults(oidctest.Faults{RefreshIDTokenClaims: tt.claims(e.login)})
			before := e.op.Counts().Userinfo
			got, err := e.refresh(t.Context())
			wantError(t, err, CodeRefreshIdentityMismatch, false)
			if got != nil {
				t.Errorf("Refresh() = %+v, want nil with the error", got)
			}
			if n := e.op.Counts().Userinfo - before; n != 0 {
				t.Errorf("userinfo calls after a mismatching ID token = %d, want 0", n)
			}
		})
	}

	t.Run("session of another issuer", func(t *testing.T) {
		// The configured issuer changed since the session was created: the OP's answer is
		// right for the client but not for this session.
		e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
		e.login.Claims["iss"] = oidctest.WrongIssuer
		_, err := e.refresh(t.Context())
		wantError(t, err, CodeRefreshIdentityMismatch, false)
	})

	t.Run("aud array with the same single audience is the same audience", func(t *testing.T) {
		e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
		e.op.SetFaults(oidctest.Faults{RefreshIDTokenClaims: map[string]any{"aud": []any{oidctest.DefaultClientID}}})
		if _, err := e.refresh(t.Context()); err != nil {
			t.Fatalf("Refresh() error = %v, want nil", err)
		}
	})

	t.Run("the original nonce is accepted", func(t *testing.T) {
		e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
		e.op.SetFaults(oidctest.Faults{RefreshIDTokenClaims: map[string]any{"nonce": e.login.Claims["nonce"]}})
		if _, err := e.refresh(t.Context()); err != nil {
			t.Fatalf("Refresh() error = %v, want nil", err)
		}
	})

	t.Run("a new ID token with the same identity is taken", func(t *testing.T) {
		clock := newFakeClock()
		e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{Now: clock.Now}, func(c *Config) { c.Now = clock.Now })
		clock.Advance(2 * time.Minute)
		got, err := e.refresh(t.Context())
		if err != nil {
			t.Fatalf("Refresh() error = %v", err)
		}
		if got.IDToken == "" || got.IDToken == e.login.IDToken {
			t.Errorf("IDToken = %.20q, want a new ID token", got.IDToken)
		}
		if got.IDTokenClaims == nil {
			t.Fatal("IDTokenClaims = nil, want the new ID token's claims")
		}
		wantIat := float64(clock.Now().Unix())
		if got.IDTokenClaims["iat"] != wantIat || got.Claims["iat"] != wantIat {
			t.Errorf("iat: IDTokenClaims %v, Claims %v, want %v (the new token's)", got.IDTokenClaims["iat"], got.Claims["iat"], wantIat)
		}
		for _, k := range []string{"sub", "sid", "auth_time", "iss", "aud", "azp", "nonce"} {
			if !reflect.DeepEqual(got.Claims[k], e.login.Claims[k]) {
				t.Errorf("Claims[%s] = %v, want the session's %v", k, got.Claims[k], e.login.Claims[k])
			}
		}
		if got.Subject != oidctest.SubjectAse {
			t.Errorf("Subject = %q, want %q", got.Subject, oidctest.SubjectAse)
		}
	})

	t.Run("no ID token: claims kept, userinfo refreshed", func(t *testing.T) {
		e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
		e.login.Claims["custom_session_claim"] = "kept"
		e.op.SetFaults(oidctest.Faults{
			RefreshIDTokenOmit: true,
			MutateUserinfo:     func(_, c map[string]any) { c["name"] = "Renamed After Refresh" },
		})
		before := e.op.Counts().Userinfo
		got, err := e.refresh(t.Context())
		if err != nil {
			t.Fatalf("Refresh() error = %v, want nil (an ID token is optional on refresh)", err)
		}
		if got.IDToken != "" || got.IDTokenClaims != nil {
			t.Errorf("IDToken, IDTokenClaims = %.20q, %v, want empty", got.IDToken, got.IDTokenClaims)
		}
		if n := e.op.Counts().Userinfo - before; n != 1 {
			t.Errorf("userinfo calls = %d, want 1", n)
		}
		if got.Claims["name"] != "Renamed After Refresh" || got.UserinfoClaims["name"] != "Renamed After Refresh" {
			t.Errorf("name = %v (userinfo %v), want the refreshed userinfo's", got.Claims["name"], got.UserinfoClaims["name"])
		}
		for _, k := range []string{"iat", "exp", "sid", "auth_time", "custom_session_claim"} {
			if !reflect.DeepEqual(got.Claims[k], e.login.Claims[k]) {
				t.Errorf("Claims[%s] = %v, want the session's %v", k, got.Claims[k], e.login.Claims[k])
			}
		}
		if got.UserinfoStale {
			t.Error("UserinfoStale = true, want false")
		}
	})
}

// A refreshed ID token is verified like one at login; a bad one is id_token_invalid (the
// session is kept and retried), not an identity mismatch.
func TestRefreshVerifiesTheNewIDToken(t *testing.T) {
	tests := []struct {
		name   string
		faults oidctest.Faults
		code   string
	}{
		{"bad signature", oidctest.Faults{IDTokenBadSignature: true}, CodeIDToken},
		{"alg none", oidctest.Faults{IDTokenAlgNone: true}, CodeIDToken},
		{"HS256 with the client secret", oidctest.Faults{IDTokenHS256: true}, CodeIDToken},
		{"unpublished key", oidctest.Faults{IDTokenUnpublishedKey: true}, CodeIDToken},
		{"expired", oidctest.Faults{IDTokenExpired: true}, CodeIDToken},
		{"iat in the future", oidctest.Faults{IDTokenIatFuture: true}, CodeIDToken},
		{"bad at_hash", oidctest.Faults{IDTokenBadAtHash: true}, CodeIDToken},
		{"typ logout+jwt", oidctest.Faults{MutateIDToken: func(h, _ map[string]any) { h["typ"] = "logout+jwt" }}, CodeIDToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
			e.op.SetFaults(tt.faults)
			_, err := e.refresh(t.Context())
			wantError(t, err, tt.code, false)
		})
	}
}

func TestRefreshRotatesRefreshToken(t *testing.T) {
	e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
	got, err := e.refresh(t.Context())
	if err != nil {
		t.Fatalf("Refresh() error = %v", err)
	}
	if got.RefreshToken == "" || got.RefreshToken == e.login.RefreshToken {
		t.Errorf("RefreshToken not rotated: %.10q (old %.10q)", got.RefreshToken, e.login.RefreshToken)
	}
	if got.AccessToken == "" || got.AccessToken == e.login.AccessToken {
		t.Error("AccessToken not renewed")
	}
	if d := time.Until(got.Expiry); d < 4*time.Minute || d > 6*time.Minute {
		t.Errorf("Expiry in %v, want about %v", d, oidctest.AccessTokenLifetime)
	}
	tr := e.op.LastTokenRequest()
	if tr.Get("grant_type") != "refresh_token" || tr.Get("auth") != "basic" || tr.Get("refresh_token") != e.login.RefreshToken {
		t.Errorf("token request = grant_type %q auth %q, want refresh_token over client_secret_basic with the session's token", tr.Get("grant_type"), tr.Get("auth"))
	}
	if tr.Has("scope") {
		t.Errorf("refresh sent scope %q, want none (the original grant's scope)", tr.Get("scope"))
	}

	// The rotated-away token is spent: the OP refuses it, and that ends the session.
	_, err = e.refresh(t.Context())
	wantError(t, err, CodeRefreshRejected, false)
	if n := e.op.Counts().RefreshReuse; n != 1 {
		t.Errorf("Counts().RefreshReuse = %d, want 1", n)
	}
	// The new one works.
	if _, err := e.c.Refresh(t.Context(), RefreshRequest{RefreshToken: got.RefreshToken, Claims: got.Claims}); err != nil {
		t.Errorf("Refresh() with the rotated token error = %v", err)
	}
}

func TestRefreshKeepsRefreshTokenWhenNotRotated(t *testing.T) {
	e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
	e.op.SetFaults(oidctest.Faults{MutateTokenResponse: func(r map[string]any) { delete(r, "refresh_token") }})
	got, err := e.refresh(t.Context())
	if err != nil {
		t.Fatalf("Refresh() error = %v", err)
	}
	if got.RefreshToken != e.login.RefreshToken {
		t.Errorf("RefreshToken = %.10q, want the one sent (%.10q) when the OP does not rotate", got.RefreshToken, e.login.RefreshToken)
	}
}

func TestRefreshClientSecretPost(t *testing.T) {
	e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, func(c *Config) { c.AuthMethod = AuthClientSecretPost })
	if _, err := e.refresh(t.Context()); err != nil {
		t.Fatalf("Refresh() error = %v", err)
	}
	if tr := e.op.LastTokenRequest(); tr.Get("auth") != "post" || tr.Get("grant_type") != "refresh_token" {
		t.Errorf("token request auth %q grant_type %q, want post / refresh_token", tr.Get("auth"), tr.Get("grant_type"))
	}
}

// TestOPS11_RefreshFailureSemantics: only a dead grant is refresh_rejected (the session
// ends); an OP blip or the gateway's own misconfiguration is temporary (the session stays).
func TestOPS11_RefreshFailureSemantics(t *testing.T) {
	tests := []struct {
		name      string
		faults    oidctest.Faults
		code      string
		temporary bool
		opError   string
	}{
		{"invalid_grant", oidctest.Faults{RefreshError: "invalid_grant"}, CodeRefreshRejected, false, "invalid_grant"},
		{"invalid_token", oidctest.Faults{RefreshError: "invalid_token", RefreshErrorStatus: 401}, CodeRefreshRejected, false, "invalid_token"},
		{"unauthorized_client", oidctest.Faults{RefreshError: "unauthorized_client"}, CodeRefreshRejected, false, "unauthorized_client"},
		{"invalid_grant in a 200", oidctest.Faults{RefreshError: "invalid_grant", RefreshErrorStatus: 200}, CodeRefreshRejected, false, "invalid_grant"},
		{"invalid_client", oidctest.Faults{RefreshError: "invalid_client", RefreshErrorStatus: 401}, CodeClientRejected, true, "invalid_client"},
		{"unsupported_grant_type", oidctest.Faults{RefreshError: "unsupported_grant_type"}, CodeClientRejected, true, "unsupported_grant_type"},
		{"server_error 503", oidctest.Faults{RefreshError: "server_error", RefreshErrorStatus: 503}, CodeTokenEndpoint, true, "server_error"},
		{"server_error 500", oidctest.Faults{RefreshError: "server_error", RefreshErrorStatus: 500}, CodeTokenEndpoint, true, "server_error"},
		{"429", oidctest.Faults{RefreshError: "slow_down", RefreshErrorStatus: 429}, CodeTokenEndpoint, true, "slow_down"},
		{"HTML page", oidctest.Faults{TokenHTML: true}, CodeTokenResponse, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
			e.op.SetFaults(tt.faults)
			_, err := e.refresh(t.Context())
			got := wantError(t, err, tt.code, tt.temporary)
			if got != nil && got.OPError != tt.opError {
				t.Errorf("OPError = %q, want %q", got.OPError, tt.opError)
			}
			// The faults answer before the token is looked at: it is still good.
			e.op.SetFaults(oidctest.Faults{})
			if _, err := e.refresh(t.Context()); err != nil {
				t.Errorf("Refresh() after the fault error = %v", err)
			}
		})
	}

	t.Run("timeout", func(t *testing.T) {
		e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
		e.op.SetFaults(oidctest.Faults{RefreshDelay: time.Hour})
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := e.refresh(ctx)
		wantError(t, err, CodeTokenEndpoint, true)
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("Refresh() returned after %v, want soon after the deadline", el)
		}
	})

	t.Run("token endpoint unreachable", func(t *testing.T) {
		e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
		e.op.Close()
		_, err := e.refresh(t.Context())
		wantError(t, err, CodeTokenEndpoint, true)
	})

	t.Run("unknown refresh token", func(t *testing.T) {
		e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
		_, err := e.c.Refresh(t.Context(), RefreshRequest{RefreshToken: "not-a-token-of-this-op", Claims: e.login.Claims})
		wantError(t, err, CodeRefreshRejected, false)
	})
}

// A userinfo failure after the tokens were rotated must not lose the new refresh token.
func TestRefreshUserinfoFailureReturnsTokens(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusUnauthorized} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
			prev := maps.Clone(e.login.Claims)
			e.op.SetFaults(oidctest.Faults{UserinfoStatus: status})
			got, err := e.refresh(t.Context())
			if err != nil {
				t.Fatalf("Refresh() error = %v, want the tokens with UserinfoStale", err)
			}
			if !got.UserinfoStale || got.UserinfoErr == nil {
				t.Errorf("UserinfoStale, UserinfoErr = %v, %v, want true and the reason", got.UserinfoStale, got.UserinfoErr)
			}
			if !reflect.DeepEqual(got.Claims, prev) {
				t.Errorf("Claims = %v, want the previous claims %v", got.Claims, prev)
			}
			if got.RefreshToken == "" || got.RefreshToken == e.login.RefreshToken || got.AccessToken == "" {
				t.Fatal("want the new tokens with a stale userinfo")
			}
			e.op.SetFaults(oidctest.Faults{})
			if _, err := e.c.Refresh(t.Context(), RefreshRequest{RefreshToken: got.RefreshToken, Claims: got.Claims}); err != nil {
				t.Errorf("Refresh() with the token returned alongside the stale userinfo: %v", err)
			}
		})
	}

	t.Run("userinfo naming another subject ends the session", func(t *testing.T) {
		e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
		e.op.SetFaults(oidctest.Faults{UserinfoSubMismatch: true})
		_, err := e.refresh(t.Context())
		wantError(t, err, CodeRefreshIdentityMismatch, false)
	})
}

func TestRefreshRequestValidation(t *testing.T) {
	e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
	before := e.op.Counts().Token
	_, err := e.c.Refresh(t.Context(), RefreshRequest{Claims: e.login.Claims})
	wantError(t, err, CodeRefreshInvalid, false)
	noSub := maps.Clone(e.login.Claims)
	delete(noSub, "sub")
	_, err = e.c.Refresh(t.Context(), RefreshRequest{RefreshToken: e.login.RefreshToken, Claims: noSub})
	wantError(t, err, CodeRefreshInvalid, false)
	if n := e.op.Counts().Token - before; n != 0 {
		t.Errorf("token requests for invalid refresh requests = %d, want 0", n)
	}
}

// The caller's claims are not modified, and an ID token's claims overlay them before
// userinfo is merged as at login.
func TestRefreshClaimsMerge(t *testing.T) {
	e := newRefreshEnv(t, oidctest.SubjectAse, oidctest.Options{}, nil)
	prev := maps.Clone(e.login.Claims)
	e.op.SetFaults(oidctest.Faults{
		RefreshIDTokenClaims: map[string]any{"acr": "from-id-token", "email": "id@example.com"},
		MutateUserinfo: func(_, c map[string]any) {
			c["acr"] = "from-userinfo"          // assurance: the ID token's wins
			c["email"] = "userinfo@example.com" // profile: userinfo updates
			c["sid"] = "userinfo-sid"           // protocol: never from userinfo
		},
	})
	got, err := e.refresh(t.Context())
	if err != nil {
		t.Fatalf("Refresh() error = %v", err)
	}
	if !reflect.DeepEqual(e.login.Claims, prev) {
		t.Error("Refresh() modified RefreshRequest.Claims")
	}
	if got.Claims["acr"] != "from-id-token" || got.Claims["email"] != "userinfo@example.com" || got.Claims["sid"] != prev["sid"] {
		t.Errorf("acr, email, sid = %v, %v, %v; want from-id-token, userinfo@example.com, %v", got.Claims["acr"], got.Claims["email"], got.Claims["sid"], prev["sid"])
	}
}
