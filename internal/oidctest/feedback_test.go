package oidctest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestFeedbackAuthValueMatchesOpenSSL pins the HMAC the Provider expects to vectors computed
// outside Go:
//
//	printf '%s' "$TOKEN" | openssl dgst -sha256 -hmac "$SECRET" -binary | base64
//
// (cross-checked with Python's hmac module). The non-ASCII pair pins the seed's Java
// sample, which takes the UTF-8 bytes of both strings.
func TestFeedbackAuthValueMatchesOpenSSL(t *testing.T) {
	tests := []struct{ secret, token, want string }{
		{"the-client-secret", "the-access-token", "KA1Q/JbTESAFN/j03pQFBKWbyuYnGzOql+rGhS2Cwb4="},
		{"trustgate-dev-secret", "the-access-token", "ABJ38Ak+frkSe+v4Xja66OdF3T3ts+IqZguQwbF8frI="},
		{"sécret-ключ-秘密", "jëtón-∂-ß", "CPzmIkHp0WWpP9awt84e68vF76paVMWLebG36ff4aFA="},
	}
	for _, tt := range tests {
		if got := FeedbackAuthValue(tt.secret, tt.token); got != tt.want {
			t.Errorf("FeedbackAuthValue(%q, %q) = %q, want %q (openssl)", tt.secret, tt.token, got, tt.want)
		}
	}
}

// feedbackCall posts body (JSON-encoded unless it is a string) to /session-feedback with the
// given Authorization values (none when empty) and Content-Type application/json.
func feedbackCall(tb testing.TB, op *Provider, auth []string, body any) (int, map[string]any) {
	tb.Helper()
	return feedbackCallCT(tb, op, auth, "application/json", body)
}

func feedbackCallCT(tb testing.TB, op *Provider, auth []string, contentType string, body any) (int, map[string]any) {
	tb.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			tb.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, op.Issuer()+PathSessionFeedback, bytes.NewReader(b))
	if err != nil {
		tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	resp, rb := do(tb, req)
	var m map[string]any
	if err := json.Unmarshal(rb, &m); err != nil {
		tb.Fatalf("feedback response %q is not a JSON object: %v", rb, err)
	}
	if resp.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "BindIdBackend ") {
		tb.Errorf("401 WWW-Authenticate = %q, want the BindIdBackend scheme", resp.Header.Get("WWW-Authenticate"))
	}
	return resp.StatusCode, m
}

// feedbackHeader is the seed's Authorization value for token, keyed with secret.
func feedbackHeader(secret, token string) string {
	return "BindIdBackend AccessToken " + token + "; " + FeedbackAuthValue(secret, token)
}

// feedbackBody is the seed's body for one authentication_performed report.
func feedbackBody(token, alias string, at int64) map[string]any {
	return map[string]any{
		"subject_session_at": token,
		"reports":            []any{map[string]any{"type": "authentication_performed", "alias": alias, "time": at}},
	}
}

// loginClaims logs subject in (default client) and returns the verified ID token claims and
// the userinfo claims.
func loginClaims(tb testing.TB, op *Provider, subject string) (idt, ui map[string]any) {
	tb.Helper()
	tok := mustTokens(tb, op, subject)
	idt, err := verifyJWT(tb, op, tok["id_token"].(string))
	if err != nil {
		tb.Fatalf("verify ID token: %v", err)
	}
	resp, body := userinfo(tb, op, tok["access_token"].(string))
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("userinfo status = %d, want 200", resp.StatusCode)
	}
	return idt, decodeObject(tb, body)
}

func TestSessionFeedbackDiscoveryAndMethod(t *testing.T) {
	op := NewTest(t, Options{})
	_, body := get(t, op.Issuer()+PathDiscovery)
	doc := decodeObject(t, body)
	if got, want := doc["session_feedback_endpoint"], op.Issuer()+"/session-feedback"; got != want {
		t.Errorf("discovery session_feedback_endpoint = %v, want %q", got, want)
	}
	resp, _ := get(t, op.Issuer()+PathSessionFeedback)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET /session-feedback = %d Allow %q, want 405 Allow POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if got := op.Counts().Feedback; got != 1 {
		t.Errorf("Counts().Feedback = %d, want 1 (every request counts)", got)
	}
}

// TestSessionFeedbackLinksNewUser: BindID's "Confirm New Users" (seed 001) through the
// Provider: a new user's later logins carry the reported alias.
func TestSessionFeedbackLinksNewUser(t *testing.T) {
	clock := newFakeClock()
	op := NewTest(t, Options{Now: clock.Now})
	idt, ui := loginClaims(t, op, SubjectBindIDNew)
	if idt["bindid_alias"] != nil || ui["bindid_alias"] != nil {
		t.Fatalf("new user before feedback: bindid_alias = %v / %v, want absent", idt["bindid_alias"], ui["bindid_alias"])
	}

	tok := mustTokens(t, op, SubjectBindIDNew)
	at := tok["access_token"].(string)
	reported := clock.Now().Add(-30 * time.Second).Unix()
	status, m := feedbackCall(t, op, []string{feedbackHeader(DefaultClientSecret, at)}, feedbackBody(at, "jdoe@bank.example", reported))
	if status != http.StatusOK || len(m) != 0 {
		t.Fatalf("feedback = %d %v, want 200 {}", status, m)
	}
	want := Feedback{ClientID: DefaultClientID, Subject: SubjectBindIDNew, Alias: "jdoe@bank.example", Time: time.Unix(reported, 0)}
	if got := op.LastFeedback(); got == nil || *got != want {
		t.Errorf("LastFeedback() = %+v, want %+v", got, want)
	}

	// The session that reported it does not change (BindID: "after subsequent logins").
	resp, body := userinfo(t, op, at)
	if resp.StatusCode != http.StatusOK || decodeObject(t, body)["bindid_alias"] != nil {
		t.Errorf("userinfo of the reporting session = %d %s, want 200 without bindid_alias", resp.StatusCode, body)
	}

	idt, ui = loginClaims(t, op, SubjectBindIDNew)
	if idt["bindid_alias"] != "jdoe@bank.example" {
		t.Errorf("next login's ID token bindid_alias = %v, want jdoe@bank.example", idt["bindid_alias"])
	}
	if ui["bindid_alias"] != "jdoe@bank.example" {
		t.Errorf("next login's userinfo bindid_alias = %v, want jdoe@bank.example", ui["bindid_alias"])
	}
	// Only that user.
	if idt, _ := loginClaims(t, op, SubjectAse); idt["bindid_alias"] != nil {
		t.Errorf("another user's bindid_alias = %v, want absent", idt["bindid_alias"])
	}
	if got := op.Counts().Feedback; got != 1 {
		t.Errorf("Counts().Feedback = %d, want 1", got)
	}
}

func TestSessionFeedbackReplacesAlias(t *testing.T) {
	op := NewTest(t, Options{})
	at := mustTokens(t, op, SubjectBindIDKnown)["access_token"].(string)
	if status, m := feedbackCall(t, op, []string{feedbackHeader(DefaultClientSecret, at)}, feedbackBody(at, "new-alias", 1700000000)); status != http.StatusOK {
		t.Fatalf("feedback = %d %v, want 200", status, m)
	}
	idt, ui := loginClaims(t, op, SubjectBindIDKnown)
	if idt["bindid_alias"] != "new-alias" || ui["bindid_alias"] != "new-alias" {
		t.Errorf("bindid_alias after feedback = %v / %v, want new-alias (the seed's username@domain replaced)", idt["bindid_alias"], ui["bindid_alias"])
	}
}

// TestSessionFeedbackAuthorization: the header must be exactly the seed's, keyed with the
// secret of the client the token was issued to.
func TestSessionFeedbackAuthorization(t *testing.T) {
	const secondSecret = "second-client-secret-0123456789abcdef"
	clock := newFakeClock()
	second := Client{ID: "second", Secret: secondSecret, RedirectURIs: []string{"*"}}
	op := NewTest(t, Options{Now: clock.Now, Clients: []Client{DefaultClient(), second}})

	// An expired token (of another Provider on the same clock).
	expOP := NewTest(t, Options{Now: clock.Now})
	expired := mustTokens(t, expOP, SubjectBindIDNew)["access_token"].(string)
	clock.Advance(AccessTokenLifetime + time.Second)

	// A token whose HMAC has a + or /, so that its base64url spelling differs.
	at := mustTokens(t, op, SubjectBindIDNew)["access_token"].(string)
	for i := 0; i < 100 && !strings.ContainsAny(FeedbackAuthValue(DefaultClientSecret, at), "+/"); i++ {
		at = mustTokens(t, op, SubjectBindIDNew)["access_token"].(string)
	}
	other := mustTokens(t, op, SubjectAse)["access_token"].(string)
	// A token of the second client.
	verifier, challenge := pkcePair(t)
	form := authParams(challenge)
	form.Set("client_id", "second")
	form.Set("user", SubjectBindIDNew)
	resp, _ := postForm(t, op.Issuer()+PathAuthorize, form)
	status, tok := tokenCall(t, op, url.Values{
		"grant_type": {"authorization_code"}, "code": {codeFrom(t, resp)},
		"redirect_uri": {testRedirectURI}, "code_verifier": {verifier},
	}, "second", secondSecret)
	if status != http.StatusOK {
		t.Fatalf("second client token = %d %v", status, tok)
	}
	secondAT := tok["access_token"].(string)

	mac := FeedbackAuthValue(DefaultClientSecret, at)
	raw, _ := base64.StdEncoding.DecodeString(mac)
	tests := []struct {
		name  string
		op    *Provider
		auth  []string
		token string // subject_session_at
		code  string
	}{
		{"no Authorization", op, nil, at, "invalid_request"},
		{"two Authorization headers", op, []string{feedbackHeader(DefaultClientSecret, at), feedbackHeader(DefaultClientSecret, at)}, at, "invalid_request"},
		{"missing scheme", op, []string{"AccessToken " + at + "; " + mac}, at, "invalid_request"},
		{"Bearer scheme", op, []string{"Bearer " + at}, at, "invalid_request"},
		{"scheme in other case", op, []string{"bindidbackend AccessToken " + at + "; " + mac}, at, "invalid_request"},
		{"no AccessToken word", op, []string{"BindIdBackend " + at + "; " + mac}, at, "invalid_request"},
		{"no separator", op, []string{"BindIdBackend AccessToken " + at + " " + mac}, at, "invalid_request"},
		{"no HMAC", op, []string{"BindIdBackend AccessToken " + at + "; "}, at, "invalid_request"},
		{"unknown token", op, []string{feedbackHeader(DefaultClientSecret, "not-a-token")}, "not-a-token", "invalid_token"},
		{"expired token", expOP, []string{feedbackHeader(DefaultClientSecret, expired)}, expired, "invalid_token"},
		{"wrong secret", op, []string{feedbackHeader("trustgate-dev-secreT", at)}, at, "invalid_client"},
		{"HMAC of another token", op, []string{"BindIdBackend AccessToken " + at + "; " + FeedbackAuthValue(DefaultClientSecret, other)}, at, "invalid_client"},
		{"secret of another client", op, []string{feedbackHeader(DefaultClientSecret, secondAT)}, secondAT, "invalid_client"},
		{"key and message swapped", op, []string{"BindIdBackend AccessToken " + at + "; " + FeedbackAuthValue(at, DefaultClientSecret)}, at, "invalid_client"},
		{"unpadded base64", op, []string{"BindIdBackend AccessToken " + at + "; " + base64.RawStdEncoding.EncodeToString(raw)}, at, "invalid_client"},
		{"base64url", op, []string{"BindIdBackend AccessToken " + at + "; " + base64.URLEncoding.EncodeToString(raw)}, at, "invalid_client"},
		{"hex HMAC", op, []string{"BindIdBackend AccessToken " + at + "; " + hexOf(raw)}, at, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.op.Counts().Feedback
			status, m := feedbackCall(t, tt.op, tt.auth, feedbackBody(tt.token, "mallory", 1700000000))
			if status != http.StatusUnauthorized || m["error"] != tt.code {
				t.Errorf("feedback = %d %v, want 401 %s", status, m, tt.code)
			}
			if got := tt.op.Counts().Feedback - before; got != 1 {
				t.Errorf("Counts().Feedback grew by %d, want 1", got)
			}
			if f := tt.op.LastFeedback(); f != nil {
				t.Errorf("LastFeedback() = %+v after a refusal, want nil", f)
			}
		})
	}
	if idt, _ := loginClaims(t, op, SubjectBindIDNew); idt["bindid_alias"] != nil {
		t.Errorf("bindid_alias after refused feedback = %v, want absent", idt["bindid_alias"])
	}

	// The same client's own, correct header is accepted (the table's negatives are not
	// failing for another reason).
	if status, m := feedbackCall(t, op, []string{feedbackHeader(secondSecret, secondAT)}, feedbackBody(secondAT, "second-alias", 1700000000)); status != http.StatusOK {
		t.Errorf("feedback with the second client's own secret = %d %v, want 200", status, m)
	}
	if f := op.LastFeedback(); f == nil || f.ClientID != "second" || f.Subject != SubjectBindIDNew {
		t.Errorf("LastFeedback() = %+v, want client second, subject %s", f, SubjectBindIDNew)
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestSessionFeedbackBody(t *testing.T) {
	op := NewTest(t, Options{})
	at := mustTokens(t, op, SubjectBindIDNew)["access_token"].(string)
	other := mustTokens(t, op, SubjectAse)["access_token"].(string)
	report := func(mut func(r map[string]any)) map[string]any {
		r := map[string]any{"type": "authentication_performed", "alias": "a@b", "time": 1700000000}
		mut(r)
		return map[string]any{"subject_session_at": at, "reports": []any{r}}
	}
	tests := []struct {
		name string
		ct   string
		body any
	}{
		{"not JSON", "application/json", "alias=a"},
		{"JSON array", "application/json", `[{"subject_session_at":"x"}]`},
		{"trailing data", "application/json", `{"subject_session_at":"` + at + `","reports":[{"type":"authentication_performed","alias":"a","time":1}]}{}`},
		{"form content type", "application/x-www-form-urlencoded", feedbackBody(at, "a@b", 1700000000)},
		{"no content type", "", feedbackBody(at, "a@b", 1700000000)},
		{"no subject_session_at", "application/json", map[string]any{"reports": feedbackBody(at, "a", 1)["reports"]}},
		{"subject_session_at not a string", "application/json", map[string]any{"subject_session_at": 1, "reports": feedbackBody(at, "a", 1)["reports"]}},
		{"subject_session_at another token", "application/json", feedbackBody(other, "a@b", 1700000000)},
		{"no reports", "application/json", map[string]any{"subject_session_at": at}},
		{"empty reports", "application/json", map[string]any{"subject_session_at": at, "reports": []any{}}},
		{"reports an object", "application/json", map[string]any{"subject_session_at": at, "reports": map[string]any{"type": "authentication_performed"}}},
		{"unknown report type", "application/json", report(func(r map[string]any) { r["type"] = "authentication_failed" })},
		{"no type", "application/json", report(func(r map[string]any) { delete(r, "type") })},
		{"no alias", "application/json", report(func(r map[string]any) { delete(r, "alias") })},
		{"empty alias", "application/json", report(func(r map[string]any) { r["alias"] = "" })},
		{"alias a number", "application/json", report(func(r map[string]any) { r["alias"] = 42 })},
		{"alias with a newline", "application/json", report(func(r map[string]any) { r["alias"] = "a\nb" })},
		{"no time", "application/json", report(func(r map[string]any) { delete(r, "time") })},
		{"time a string", "application/json", report(func(r map[string]any) { r["time"] = "1700000000" })},
		{"negative time", "application/json", report(func(r map[string]any) { r["time"] = -1 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := feedbackCallCT(t, op, []string{feedbackHeader(DefaultClientSecret, at)}, tt.ct, tt.body)
			if status != http.StatusBadRequest || m["error"] != "invalid_request" {
				t.Errorf("feedback = %d %v, want 400 invalid_request", status, m)
			}
			if f := op.LastFeedback(); f != nil {
				t.Errorf("LastFeedback() = %+v after a bad body, want nil", f)
			}
		})
	}
	// Content-Type parameters are fine, and so is a fractional time.
	status, m := feedbackCallCT(t, op, []string{feedbackHeader(DefaultClientSecret, at)}, "application/json; charset=utf-8",
		`{"subject_session_at":"`+at+`","reports":[{"type":"authentication_performed","alias":"ok","time":1700000000.5}]}`)
	if status != http.StatusOK {
		t.Fatalf("feedback with charset and a fractional time = %d %v, want 200", status, m)
	}
	if f := op.LastFeedback(); f == nil || f.Alias != "ok" || !f.Time.Equal(time.Unix(1700000000, 5e8)) {
		t.Errorf("LastFeedback() = %+v, want alias ok at 1700000000.5", f)
	}
}

func TestSessionFeedbackFaults(t *testing.T) {
	op := NewTest(t, Options{})
	at := mustTokens(t, op, SubjectBindIDNew)["access_token"].(string)
	auth := []string{feedbackHeader(DefaultClientSecret, at)}
	for _, tt := range []struct {
		status int
		code   string
	}{{503, "server_error"}, {500, "server_error"}, {429, "slow_down"}, {400, "invalid_request"}, {401, "invalid_token"}} {
		op.SetFaults(Faults{FeedbackStatus: tt.status})
		status, m := feedbackCall(t, op, auth, feedbackBody(at, "faulty", 1700000000))
		if status != tt.status || m["error"] != tt.code {
			t.Errorf("FeedbackStatus %d: feedback = %d %v, want %d %s", tt.status, status, m, tt.status, tt.code)
		}
	}
	if f := op.LastFeedback(); f != nil {
		t.Errorf("LastFeedback() = %+v after status faults, want nil (nothing recorded)", f)
	}
	if idt, _ := loginClaims(t, op, SubjectBindIDNew); idt["bindid_alias"] != nil {
		t.Errorf("bindid_alias after status faults = %v, want absent", idt["bindid_alias"])
	}

	op.SetFaults(Faults{FeedbackDelay: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	b, _ := json.Marshal(feedbackBody(at, "slow", 1700000000))
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, op.Issuer()+PathSessionFeedback, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", auth[0])
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("delayed feedback answered %d, want the client to time out", resp.StatusCode)
	}
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("delayed feedback: %v after %v, want a deadline error after ~200ms", err, time.Since(start))
	}
	op.SetFaults(Faults{})
	if status, m := feedbackCall(t, op, auth, feedbackBody(at, "after-faults", 1700000000)); status != http.StatusOK {
		t.Errorf("feedback after SetFaults(Faults{}) = %d %v, want 200", status, m)
	}
}
