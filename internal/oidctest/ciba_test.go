package oidctest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// bcAuthorize posts form to the backchannel authentication endpoint as the default client
// (client_secret_basic) and returns the status and the JSON answer.
func bcAuthorize(tb testing.TB, op *Provider, form url.Values) (int, map[string]any) {
	tb.Helper()
	return bcAuthorizeAs(tb, op, form, DefaultClientID, DefaultClientSecret)
}

func bcAuthorizeAs(tb testing.TB, op *Provider, form url.Values, id, secret string) (int, map[string]any) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, op.Issuer()+PathBackchannelAuthorize, strings.NewReader(form.Encode()))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, body := do(tb, req)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		tb.Fatalf("backchannel authentication response %q: %v", body, err)
	}
	return resp.StatusCode, m
}

// cibaForm is a valid backchannel authentication request for login_hint.
func cibaForm(hint string) url.Values {
	return url.Values{"scope": {"openid email"}, "login_hint": {hint}}
}

// mustCIBA starts a request for login_hint and returns its auth_req_id.
func mustCIBA(tb testing.TB, op *Provider, hint string) string {
	tb.Helper()
	status, ack := bcAuthorize(tb, op, cibaForm(hint))
	if status != http.StatusOK {
		tb.Fatalf("backchannel authentication status = %d (%v), want 200", status, ack)
	}
	id, _ := ack["auth_req_id"].(string)
	if id == "" {
		tb.Fatalf("ack = %v, want an auth_req_id", ack)
	}
	return id
}

// poll makes one CIBA token request as the default client.
func poll(tb testing.TB, op *Provider, authReqID string) (int, map[string]any) {
	tb.Helper()
	return tokenCall(tb, op, url.Values{"grant_type": {GrantTypeCIBA}, "auth_req_id": {authReqID}}, DefaultClientID, DefaultClientSecret)
}

// wantPollError polls and checks the OAuth error of the answer.
func wantPollError(tb testing.TB, op *Provider, authReqID, want string) {
	tb.Helper()
	status, m := poll(tb, op, authReqID)
	if status != http.StatusBadRequest || m["error"] != want {
		tb.Fatalf("poll = %d %v, want 400 %s", status, m, want)
	}
}

func TestCIBADiscovery(t *testing.T) {
	op := NewTest(t, Options{})
	_, body := get(t, op.Issuer()+PathDiscovery)
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if got, want := doc["backchannel_authentication_endpoint"], op.Issuer()+PathBackchannelAuthorize; got != want {
		t.Errorf("backchannel_authentication_endpoint = %v, want %q", got, want)
	}
	if got := toStrings(doc["backchannel_token_delivery_modes_supported"]); !slices.Equal(got, []string{"poll"}) {
		t.Errorf("backchannel_token_delivery_modes_supported = %v, want [poll]", got)
	}
	if doc["backchannel_user_code_parameter_supported"] != true {
		t.Errorf("backchannel_user_code_parameter_supported = %v, want true", doc["backchannel_user_code_parameter_supported"])
	}
	if got := toStrings(doc["grant_types_supported"]); !slices.Contains(got, GrantTypeCIBA) {
		t.Errorf("grant_types_supported = %v, want it to contain %s", got, GrantTypeCIBA)
	}
}

func TestCIBAAck(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		op := NewTest(t, Options{})
		form := cibaForm("kari")
		form.Set("binding_message", "Kjøp 42 – ordre W4-1")
		form.Set("user_code", "1234")
		form.Set("acr_values", "urn:bankid:bid")
		status, ack := bcAuthorize(t, op, form)
		if status != http.StatusOK {
			t.Fatalf("status = %d (%v), want 200", status, ack)
		}
		id, _ := ack["auth_req_id"].(string)
		if len(id) < 22 { // 128 bits of base64url
			t.Errorf("auth_req_id = %q, want at least 128 bits", id)
		}
		if got := ack["expires_in"]; got != float64(120) {
			t.Errorf("expires_in = %v, want 120", got)
		}
		if _, ok := ack["interval"]; ok {
			t.Errorf("ack = %v, want no interval by default", ack)
		}
		_, ack2 := bcAuthorize(t, op, cibaForm("kari"))
		if ack2["auth_req_id"] == id {
			t.Errorf("two requests got the same auth_req_id")
		}
		rec := op.LastCIBARequest()
		if rec.Get("login_hint") != "kari" || rec.Get("auth") != "basic" {
			t.Errorf("LastCIBARequest() = %v, want login_hint kari and auth basic", rec)
		}
		if got := op.Counts().CIBAAuthorize; got != 2 {
			t.Errorf("Counts().CIBAAuthorize = %d, want 2", got)
		}
		if got, ok := op.CIBAByHint("kari"); !ok || got != ack2["auth_req_id"] {
			t.Errorf("CIBAByHint(kari) = %q, %v; want the newest request", got, ok)
		}
		if got, ok := op.CIBAByHint(SubjectKari); !ok || got != ack2["auth_req_id"] {
			t.Errorf("CIBAByHint(subject) = %q, %v; want the newest request", got, ok)
		}
	})
	t.Run("options and requested_expiry", func(t *testing.T) {
		op := NewTest(t, Options{CIBAExpiresIn: time.Minute, CIBAInterval: 7 * time.Second})
		_, ack := bcAuthorize(t, op, cibaForm("kari"))
		if ack["expires_in"] != float64(60) || ack["interval"] != float64(7) {
			t.Errorf("ack = %v, want expires_in 60 and interval 7", ack)
		}
		form := cibaForm("kari")
		form.Set("requested_expiry", "30")
		_, ack = bcAuthorize(t, op, form)
		if ack["expires_in"] != float64(30) {
			t.Errorf("ack with requested_expiry 30 = %v, want expires_in 30", ack)
		}
	})
}

func TestCIBAAuthorizeValidation(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(url.Values)
		id, secret string
		wantStatus int
		wantError  string
	}{
		{name: "no client authentication", id: "-", wantStatus: 401, wantError: "invalid_client"},
		{name: "wrong secret", secret: "nope", wantStatus: 401, wantError: "invalid_client"},
		{name: "no openid", edit: func(f url.Values) { f.Set("scope", "email") }, wantStatus: 400, wantError: "invalid_scope"},
		{name: "no hint", edit: func(f url.Values) { f.Del("login_hint") }, wantStatus: 400, wantError: "invalid_request"},
		{name: "empty hint", edit: func(f url.Values) { f.Set("login_hint", "") }, wantStatus: 400, wantError: "invalid_request"},
		{name: "two hints", edit: func(f url.Values) { f.Set("login_hint_token", "x") }, wantStatus: 400, wantError: "invalid_request"},
		{name: "repeated hint", edit: func(f url.Values) { f.Add("login_hint", "ola") }, wantStatus: 400, wantError: "invalid_request"},
		{name: "unknown user", edit: func(f url.Values) { f.Set("login_hint", "nobody@example.org") }, wantStatus: 400, wantError: "unknown_user_id"},
		{name: "binding_message 65 characters", edit: func(f url.Values) { f.Set("binding_message", strings.Repeat("ø", 65)) }, wantStatus: 400, wantError: "invalid_binding_message"},
		{name: "binding_message with a line break", edit: func(f url.Values) { f.Set("binding_message", "a\nb") }, wantStatus: 400, wantError: "invalid_binding_message"},
		{name: "user_code 65 characters", edit: func(f url.Values) { f.Set("user_code", strings.Repeat("1", 65)) }, wantStatus: 400, wantError: "invalid_user_code"},
		{name: "user_code not ASCII", edit: func(f url.Values) { f.Set("user_code", "12ø4") }, wantStatus: 400, wantError: "invalid_user_code"},
		{name: "requested_expiry fraction", edit: func(f url.Values) { f.Set("requested_expiry", "2.5") }, wantStatus: 400, wantError: "invalid_request"},
		{name: "requested_expiry negative", edit: func(f url.Values) { f.Set("requested_expiry", "-1") }, wantStatus: 400, wantError: "invalid_request"},
		{name: "requested_expiry with a sign", edit: func(f url.Values) { f.Set("requested_expiry", "+5") }, wantStatus: 400, wantError: "invalid_request"},
		{name: "requested_expiry zero", edit: func(f url.Values) { f.Set("requested_expiry", "0") }, wantStatus: 400, wantError: "invalid_request"},
		{name: "login_hint_token not signed here", edit: func(f url.Values) { f.Del("login_hint"); f.Set("login_hint_token", "a.b.c") }, wantStatus: 400, wantError: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := NewTest(t, Options{})
			form := cibaForm("kari")
			if tt.edit != nil {
				tt.edit(form)
			}
			id, secret := DefaultClientID, DefaultClientSecret
			if tt.id == "-" {
				id = ""
			}
			if tt.secret != "" {
				secret = tt.secret
			}
			status, m := bcAuthorizeAs(t, op, form, id, secret)
			if status != tt.wantStatus || m["error"] != tt.wantError {
				t.Errorf("answer = %d %v, want %d %s", status, m, tt.wantStatus, tt.wantError)
			}
			if _, ok := m["auth_req_id"]; ok {
				t.Errorf("answer carries an auth_req_id")
			}
			if got, ok := op.CIBAByHint(SubjectKari); ok {
				t.Errorf("CIBAByHint() = %q after a refused request, want none", got)
			}
		})
	}
}

func TestCIBALoginHintMatchesUsers(t *testing.T) {
	op := NewTest(t, Options{})
	for _, hint := range []string{SubjectKari, "kari", "KARI.Nordmann@example.org"} {
		status, m := bcAuthorize(t, op, cibaForm(hint))
		if status != http.StatusOK {
			t.Errorf("login_hint %q: %d %v, want 200", hint, status, m)
			continue
		}
		op.mu.Lock()
		got := op.ciba.m[m["auth_req_id"].(string)].v.subject
		op.mu.Unlock()
		if got != SubjectKari {
			t.Errorf("login_hint %q resolved to %q, want %q", hint, got, SubjectKari)
		}
	}
}

func TestCIBAIDTokenHint(t *testing.T) {
	clock := newFakeClock()
	other := Client{ID: "other", Secret: "other-secret", RedirectURIs: []string{"*"}}
	op := NewTest(t, Options{Now: clock.Now, Clients: []Client{DefaultClient(), other}})
	idToken := mustTokens(t, op, SubjectKari)["id_token"].(string)

	hintForm := func(hint string) url.Values {
		return url.Values{"scope": {"openid"}, "id_token_hint": {hint}}
	}
	if status, m := bcAuthorize(t, op, hintForm(idToken)); status != http.StatusOK {
		t.Fatalf("valid id_token_hint: %d %v, want 200", status, m)
	}
	if _, ok := op.CIBAByHint(idToken); !ok {
		t.Errorf("CIBAByHint(id token) found nothing")
	}

	foreign := op.LogoutClaims(DefaultClientID, "nobody", "")
	delete(foreign, "events")
	unknownSub := op.LogoutToken(foreign, LogoutTokenOptions{Typ: "JWT"})
	logoutToken := op.LogoutToken(op.LogoutClaims(DefaultClientID, SubjectKari, ""), LogoutTokenOptions{})
	tests := []struct {
		name, hint string
		id, secret string
		want       string
	}{
		{name: "bad signature", hint: flipLastSignatureByte(idToken), want: "invalid_id_token_hint"},
		{name: "not a JWT", hint: "not-a-jwt", want: "invalid_id_token_hint"},
		{name: "issued to another client", hint: idToken, id: other.ID, secret: other.Secret, want: "invalid_id_token_hint"},
		{name: "a logout token", hint: logoutToken, want: "invalid_id_token_hint"},
		{name: "unknown subject", hint: unknownSub, want: "unknown_user_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, secret := DefaultClientID, DefaultClientSecret
			if tt.id != "" {
				id, secret = tt.id, tt.secret
			}
			status, m := bcAuthorizeAs(t, op, hintForm(tt.hint), id, secret)
			if status != http.StatusBadRequest || m["error"] != tt.want {
				t.Errorf("answer = %d %v, want 400 %s", status, m, tt.want)
			}
		})
	}
	t.Run("with a login_hint too", func(t *testing.T) {
		form := hintForm(idToken)
		form.Set("login_hint", "kari")
		status, m := bcAuthorize(t, op, form)
		if status != http.StatusBadRequest || m["error"] != "invalid_request" {
			t.Errorf("answer = %d %v, want 400 invalid_request", status, m)
		}
	})
	t.Run("expired", func(t *testing.T) {
		clock.Advance(AccessTokenLifetime + time.Second)
		status, m := bcAuthorize(t, op, hintForm(idToken))
		if status != http.StatusBadRequest || m["error"] != "expired_id_token_hint" {
			t.Errorf("answer = %d %v, want 400 expired_id_token_hint", status, m)
		}
	})
}

func TestCIBAApproveIssuesTokens(t *testing.T) {
	clock := newFakeClock()
	op := NewTest(t, Options{Now: clock.Now})
	id := mustCIBA(t, op, "kari")
	start := clock.Now()

	clock.Advance(DefaultCIBAInterval)
	wantPollError(t, op, id, "authorization_pending")
	clock.Advance(2 * time.Second)
	approvedAt := clock.Now()
	if err := op.CIBAApprove(id); err != nil {
		t.Fatalf("CIBAApprove() error = %v", err)
	}
	if err := op.CIBAApprove(id); err == nil {
		t.Errorf("second CIBAApprove() error = nil, want one")
	}
	if _, ok := op.CIBAByHint("kari"); ok {
		t.Errorf("CIBAByHint() finds an approved request, want only pending ones")
	}
	clock.Advance(DefaultCIBAInterval)
	status, tok := poll(t, op, id)
	if status != http.StatusOK {
		t.Fatalf("poll after approval = %d %v, want 200", status, tok)
	}
	for _, k := range []string{"access_token", "refresh_token", "id_token"} {
		if s, _ := tok[k].(string); s == "" {
			t.Errorf("token response %s missing: %v", k, tok)
		}
	}
	claims, err := verifyJWT(t, op, tok["id_token"].(string))
	if err != nil {
		t.Fatalf("ID token does not verify: %v", err)
	}
	if _, ok := claims["nonce"]; ok {
		t.Errorf("ID token nonce = %v, want none", claims["nonce"])
	}
	if claims[ClaimAuthReqID] != id {
		t.Errorf("ID token %s = %v, want the auth_req_id", ClaimAuthReqID, claims[ClaimAuthReqID])
	}
	if claims["sub"] != SubjectKari || claims["aud"] != DefaultClientID || claims["iss"] != op.Issuer() {
		t.Errorf("ID token sub/aud/iss = %v/%v/%v", claims["sub"], claims["aud"], claims["iss"])
	}
	if s, _ := claims["sid"].(string); s == "" {
		t.Errorf("ID token has no sid")
	}
	if got := claims["auth_time"]; got != float64(approvedAt.Unix()) {
		t.Errorf("ID token auth_time = %v, want the approval time %d", got, approvedAt.Unix())
	}
	if resp, _ := userinfo(t, op, tok["access_token"].(string)); resp.StatusCode != http.StatusOK {
		t.Errorf("userinfo with the CIBA access token = %d, want 200", resp.StatusCode)
	}

	// Spent: any later poll is invalid_grant, and still recorded.
	clock.Advance(time.Minute)
	wantPollError(t, op, id, "invalid_grant")
	times := op.CIBAPollTimes(id)
	want := []time.Time{start.Add(DefaultCIBAInterval), approvedAt.Add(DefaultCIBAInterval), approvedAt.Add(DefaultCIBAInterval + time.Minute)}
	if !slices.EqualFunc(times, want, time.Time.Equal) {
		t.Errorf("CIBAPollTimes() = %v, want %v", times, want)
	}
	if got := op.Counts().CIBAPoll; got != 3 {
		t.Errorf("Counts().CIBAPoll = %d, want 3", got)
	}

	// The refresh token works, and a refreshed ID token does not carry the auth_req_id.
	status, ref := tokenCall(t, op, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, DefaultClientID, DefaultClientSecret)
	if status != http.StatusOK {
		t.Fatalf("refresh = %d %v, want 200", status, ref)
	}
	_, rc, _ := decodeJWT(t, ref["id_token"].(string))
	if _, ok := rc[ClaimAuthReqID]; ok {
		t.Errorf("refreshed ID token carries %s", ClaimAuthReqID)
	}
}

func TestCIBAIntervalEnforced(t *testing.T) {
	t.Run("default interval, slow_down adds 5 s", func(t *testing.T) {
		clock := newFakeClock()
		op := NewTest(t, Options{Now: clock.Now})
		id := mustCIBA(t, op, "kari")
		clock.Advance(DefaultCIBAInterval - time.Second) // 4 s after the ack
		wantPollError(t, op, id, "slow_down")
		clock.Advance(DefaultCIBAInterval) // 5 s after, but the interval is now 10 s
		wantPollError(t, op, id, "slow_down")
		clock.Advance(15 * time.Second) // exactly the interval (now 15 s)
		wantPollError(t, op, id, "authorization_pending")
		clock.Advance(14 * time.Second)
		wantPollError(t, op, id, "slow_down")
	})
	t.Run("interval 31", func(t *testing.T) {
		clock := newFakeClock()
		op := NewTest(t, Options{Now: clock.Now, CIBAInterval: 31 * time.Second})
		_, ack := bcAuthorize(t, op, cibaForm("kari"))
		if ack["interval"] != float64(31) {
			t.Fatalf("ack = %v, want interval 31", ack)
		}
		id := ack["auth_req_id"].(string)
		clock.Advance(30 * time.Second)
		wantPollError(t, op, id, "slow_down")
		clock.Advance(36 * time.Second)
		wantPollError(t, op, id, "authorization_pending")
	})
}

func TestCIBADenyAndExpire(t *testing.T) {
	t.Run("deny", func(t *testing.T) {
		clock := newFakeClock()
		op := NewTest(t, Options{Now: clock.Now})
		id := mustCIBA(t, op, "kari")
		if err := op.CIBADeny(id); err != nil {
			t.Fatalf("CIBADeny() error = %v", err)
		}
		if err := op.CIBAApprove(id); err == nil {
			t.Errorf("CIBAApprove() after CIBADeny() error = nil, want one")
		}
		clock.Advance(DefaultCIBAInterval)
		wantPollError(t, op, id, "access_denied")
		clock.Advance(DefaultCIBAInterval)
		wantPollError(t, op, id, "invalid_grant")
	})
	t.Run("expire", func(t *testing.T) {
		clock := newFakeClock()
		op := NewTest(t, Options{Now: clock.Now, CIBAExpiresIn: 30 * time.Second})
		id := mustCIBA(t, op, "kari")
		clock.Advance(30 * time.Second)
		if err := op.CIBAApprove(id); err == nil {
			t.Errorf("CIBAApprove() after expiry error = nil, want one")
		}
		if _, ok := op.CIBAByHint("kari"); ok {
			t.Errorf("CIBAByHint() finds an expired request")
		}
		wantPollError(t, op, id, "expired_token")
		clock.Advance(DefaultCIBAInterval)
		wantPollError(t, op, id, "invalid_grant")
	})
	t.Run("unknown", func(t *testing.T) {
		op := NewTest(t, Options{})
		if err := op.CIBAApprove("nope"); err == nil {
			t.Errorf("CIBAApprove(unknown) error = nil, want one")
		}
		if err := op.CIBADeny("nope"); err == nil {
			t.Errorf("CIBADeny(unknown) error = nil, want one")
		}
		wantPollError(t, op, "nope", "invalid_grant")
		if got := op.CIBAPollTimes("nope"); got != nil {
			t.Errorf("CIBAPollTimes(unknown) = %v, want nil", got)
		}
	})
}

func TestCIBAPollByAnotherClient(t *testing.T) {
	clock := newFakeClock()
	other := Client{ID: "other", Secret: "other-secret", RedirectURIs: []string{"*"}}
	op := NewTest(t, Options{Now: clock.Now, Clients: []Client{DefaultClient(), other}})
	id := mustCIBA(t, op, "kari")
	if err := op.CIBAApprove(id); err != nil {
		t.Fatal(err)
	}
	clock.Advance(DefaultCIBAInterval)
	status, m := tokenCall(t, op, url.Values{"grant_type": {GrantTypeCIBA}, "auth_req_id": {id}}, other.ID, other.Secret)
	if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("poll by another client = %d %v, want 400 invalid_grant", status, m)
	}
	if got := op.CIBAPollTimes(id); len(got) != 0 {
		t.Errorf("CIBAPollTimes() = %v, want the foreign poll not counted", got)
	}
	if status, m := poll(t, op, id); status != http.StatusOK {
		t.Errorf("poll by the right client = %d %v, want 200", status, m)
	}
}

func TestCIBAFaults(t *testing.T) {
	t.Run("ack members", func(t *testing.T) {
		op := NewTest(t, Options{})
		op.SetFaults(Faults{CIBAAckOmit: "auth_req_id"})
		if _, ack := bcAuthorize(t, op, cibaForm("kari")); ack["auth_req_id"] != nil || ack["expires_in"] == nil {
			t.Errorf("ack with CIBAAckOmit auth_req_id = %v", ack)
		}
		op.SetFaults(Faults{CIBAAckOmit: "expires_in"})
		if _, ack := bcAuthorize(t, op, cibaForm("kari")); ack["expires_in"] != nil || ack["auth_req_id"] == nil {
			t.Errorf("ack with CIBAAckOmit expires_in = %v", ack)
		}
		op.SetFaults(Faults{CIBAAckExpiresIn: 2.5, CIBAAckInterval: "5"})
		if _, ack := bcAuthorize(t, op, cibaForm("kari")); ack["expires_in"] != 2.5 || ack["interval"] != "5" {
			t.Errorf("ack with raw expires_in and interval = %v", ack)
		}
	})
	t.Run("authorize error", func(t *testing.T) {
		op := NewTest(t, Options{})
		op.SetFaults(Faults{CIBAAuthorizeError: "expired_id_token_hint"})
		if status, m := bcAuthorize(t, op, cibaForm("kari")); status != 400 || m["error"] != "expired_id_token_hint" {
			t.Errorf("answer = %d %v, want 400 expired_id_token_hint", status, m)
		}
		op.SetFaults(Faults{CIBAAuthorizeError: "server_error", CIBAAuthorizeErrorStatus: 503})
		if status, m := bcAuthorize(t, op, cibaForm("kari")); status != 503 || m["error"] != "server_error" {
			t.Errorf("answer = %d %v, want 503 server_error", status, m)
		}
		if _, ok := op.CIBAByHint("kari"); ok {
			t.Errorf("a request was created despite the fault")
		}
	})
	t.Run("slow_down on poll 2 adds to the interval", func(t *testing.T) {
		clock := newFakeClock()
		op := NewTest(t, Options{Now: clock.Now})
		op.SetFaults(Faults{CIBASlowDownOnPoll: []int{2}})
		id := mustCIBA(t, op, "kari")
		clock.Advance(5 * time.Second)
		wantPollError(t, op, id, "authorization_pending")
		clock.Advance(5 * time.Second)
		wantPollError(t, op, id, "slow_down")
		clock.Advance(5 * time.Second) // the interval is 10 s now
		wantPollError(t, op, id, "slow_down")
		clock.Advance(15 * time.Second)
		wantPollError(t, op, id, "authorization_pending")
	})
	t.Run("error on poll 3 spends the auth_req_id", func(t *testing.T) {
		clock := newFakeClock()
		op := NewTest(t, Options{Now: clock.Now})
		op.SetFaults(Faults{CIBATokenErrorOnPoll: 3, CIBATokenError: "invalid_request"})
		id := mustCIBA(t, op, "kari")
		if err := op.CIBAApprove(id); err != nil {
			t.Fatal(err)
		}
		op.SetFaults(Faults{CIBATokenErrorOnPoll: 1, CIBATokenError: "authorization_pending"})
		clock.Advance(5 * time.Second)
		wantPollError(t, op, id, "authorization_pending")
		op.SetFaults(Faults{CIBATokenErrorOnPoll: 2, CIBATokenError: "slow_down"})
		clock.Advance(5 * time.Second)
		wantPollError(t, op, id, "slow_down")
		op.SetFaults(Faults{CIBATokenErrorOnPoll: 3, CIBATokenError: "invalid_request"})
		clock.Advance(10 * time.Second)
		wantPollError(t, op, id, "invalid_request")
		op.SetFaults(Faults{})
		clock.Advance(10 * time.Second)
		wantPollError(t, op, id, "invalid_grant")
	})
	t.Run("ID token faults apply", func(t *testing.T) {
		clock := newFakeClock()
		op := NewTest(t, Options{Now: clock.Now})
		op.SetFaults(Faults{IDTokenExtraAudience: true, IDTokenAlgNone: true})
		id := mustCIBA(t, op, "kari")
		if err := op.CIBAApprove(id); err != nil {
			t.Fatal(err)
		}
		clock.Advance(5 * time.Second)
		status, tok := poll(t, op, id)
		if status != http.StatusOK {
			t.Fatalf("poll = %d %v, want 200", status, tok)
		}
		h, c, _ := decodeJWT(t, tok["id_token"].(string))
		if h["alg"] != "none" || len(audiences(c["aud"])) != 2 {
			t.Errorf("ID token header %v, aud %v; want alg none and two audiences", h, c["aud"])
		}
	})
}

func TestNewRejectsBadCIBAOptions(t *testing.T) {
	for _, o := range []Options{
		{CIBAExpiresIn: -time.Second},
		{CIBAExpiresIn: 1500 * time.Millisecond},
		{CIBAInterval: -time.Second},
		{CIBAInterval: 500 * time.Millisecond},
	} {
		if p, err := New(o); err == nil {
			p.Close()
			t.Errorf("New(%+v) error = nil, want one", o)
		}
	}
}

func TestDeviceConsole(t *testing.T) {
	off := NewTest(t, Options{})
	if resp, err := http.Get(off.Issuer() + PathDevice); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("device page without DeviceConsole: %v %v, want 404", resp, err)
	}
	op := NewTest(t, Options{DeviceConsole: true})
	id := mustCIBA(t, op, "kari")
	resp, err := http.Get(op.Issuer() + PathDevice)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), id) || !strings.Contains(string(body), "kari") {
		t.Fatalf("device page does not list the pending request: %s", body)
	}
	nc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = nc.PostForm(op.Issuer()+PathDevice, url.Values{"auth_req_id": {id}, "decision": {"deny"}})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("deny: %v %v", resp, err)
	}
	if err := op.CIBAApprove(id); err == nil {
		t.Error("the request is still pending after Deny on the device page")
	}
	resp, _ = nc.PostForm(op.Issuer()+PathDevice, url.Values{"auth_req_id": {id}, "decision": {"approve"}})
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("a second decision: %d, want 409", resp.StatusCode)
	}
}

// Seed 004 step 3: a user who registered a user code gets missing_user_code first; the
// client asks the user for the code and sends it with id_token_hint; that request gets a
// new auth_req_id, which is approved and polled as usual.
func TestCIBAUserCode(t *testing.T) {
	clock := newFakeClock()
	op := NewTest(t, Options{Now: clock.Now})
	idToken := mustTokens(t, op, SubjectKari)["id_token"].(string)
	op.SetCIBAUserCode(SubjectKari, "4711")

	status, m := bcAuthorize(t, op, cibaForm("kari"))
	if status != http.StatusBadRequest || m["error"] != "missing_user_code" {
		t.Fatalf("without user_code: %d %v, want 400 missing_user_code (CIBA Core 13)", status, m)
	}
	withCode := func(code string) url.Values {
		return url.Values{"scope": {"openid"}, "id_token_hint": {idToken}, "user_code": {code}}
	}
	if status, m := bcAuthorize(t, op, withCode("1234")); status != http.StatusBadRequest || m["error"] != "invalid_user_code" {
		t.Errorf("wrong user_code: %d %v, want 400 invalid_user_code", status, m)
	}
	if _, ok := op.CIBAByHint(SubjectKari); ok {
		t.Error("a refused request is pending")
	}
	status, ack := bcAuthorize(t, op, withCode("4711"))
	id, _ := ack["auth_req_id"].(string)
	if status != http.StatusOK || id == "" {
		t.Fatalf("with the user code and id_token_hint: %d %v, want an ack", status, ack)
	}
	if got, _ := op.CIBAByHint(idToken); got != id {
		t.Errorf("CIBAByHint(id token) = %q, want the new auth_req_id", got)
	}
	if err := op.CIBAApprove(id); err != nil {
		t.Fatal(err)
	}
	clock.Advance(DefaultCIBAInterval)
	if status, tok := poll(t, op, id); status != http.StatusOK || tok["id_token"] == nil {
		t.Errorf("poll = %d %v, want tokens", status, tok)
	}
	// Other users need no code; the requirement can be removed.
	mustCIBA(t, op, "ola")
	op.SetCIBAUserCode(SubjectKari, "")
	mustCIBA(t, op, "kari")
}

// OpenID Connect Core 5.5: claims asked for in the id_token member come in the ID token of
// the CIBA grant (when the user has them); acr values asked for there are honoured.
func TestCIBAClaimsRequest(t *testing.T) {
	clock := newFakeClock()
	op := NewTest(t, Options{Now: clock.Now})
	form := cibaForm("bindid-known")
	form.Set("claims", `{"id_token":{"email":{"essential":true},"no_such_claim":null,"sub":{"value":"someone-else"},"acr":{"values":["urn:bankid:bid"]}},"userinfo":{"email":null}}`)
	status, ack := bcAuthorize(t, op, form)
	id, _ := ack["auth_req_id"].(string)
	if status != http.StatusOK || id == "" {
		t.Fatalf("ack = %d %v", status, ack)
	}
	if got := op.LastCIBARequest().Get("claims"); got != form.Get("claims") {
		t.Errorf("LastCIBARequest claims = %q", got)
	}
	_ = op.CIBAApprove(id)
	clock.Advance(DefaultCIBAInterval)
	status, tok := poll(t, op, id)
	if status != http.StatusOK {
		t.Fatalf("poll = %d %v", status, tok)
	}
	_, claims, _ := decodeJWT(t, tok["id_token"].(string))
	if claims["sub"] != SubjectBindIDKnown || claims["acr"] != "urn:bankid:bid" {
		t.Errorf("ID token sub/acr = %v/%v, want the user's subject (not the claims request's) and urn:bankid:bid", claims["sub"], claims["acr"])
	}
	if _, ok := claims["no_such_claim"]; ok {
		t.Error("a claim the user does not have was invented")
	}

	// Kari's bank claims are userinfo claims; asked for in the id_token member they come in
	// the ID token too.
	form = cibaForm("kari")
	form.Set("claims", `{"id_token":{"personal_id_number":{"essential":true},"given_name":null}}`)
	_, ack = bcAuthorize(t, op, form)
	id, _ = ack["auth_req_id"].(string)
	_ = op.CIBAApprove(id)
	clock.Advance(DefaultCIBAInterval)
	_, tok = poll(t, op, id)
	_, claims, _ = decodeJWT(t, tok["id_token"].(string))
	if claims["personal_id_number"] != "01017012345" || claims["given_name"] != "Kari" || claims["birthdate"] != nil {
		t.Errorf("ID token = %v, want personal_id_number and given_name only", claims)
	}

	for _, bad := range []string{`[]`, `"x"`, `{"id_token":[]}`, `{"userinfo":{"email":true}}`, `{} {}`, `{"userinfo":{"x":"` + strings.Repeat("a", 4096) + `"}}`} {
		form := cibaForm("ola")
		form.Set("claims", bad)
		if status, m := bcAuthorize(t, op, form); status != http.StatusBadRequest || m["error"] != "invalid_request" {
			t.Errorf("claims %.40q: %d %v, want 400 invalid_request", bad, status, m)
		}
	}
}
