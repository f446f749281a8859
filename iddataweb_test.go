package trustgate

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/certmagic"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/provider"
)

// ID Dataweb (provider iddataweb) through the gateway's real endpoints, against the
// in-process OP playing ID Dataweb's Gateway as published: the ID token's policyDecision
// decides every login, and an identity binding sends ID Dataweb's own login_hint (HS256
// with the client secret, ID Dataweb's field names, optionally a JWE to its key).

// newIDWGateway is a gateway with `provider iddataweb`, standard_headers all and identity
// binding on, with its log lines captured.
func newIDWGateway(t *testing.T, opts ...gatewayOption) (*gateway, *observedLogs) {
	t.Helper()
	g := newGateway(t, append([]gatewayOption{func(h *Handler, _ *oidctest.Options) {
		h.Provider = provider.IDDataweb
		h.StandardHeaders = "all"
		h.IdentityBinding = &IdentityBindingConfig{}
		h.storage = &certmagic.FileStorage{Path: t.TempDir()}
	}}, opts...)...)
	return g, observeLogs(g.h)
}

// setHintKey configures login_hint_encryption_key once the OP (which owns the key) is up,
// as Provision does.
func (g *gateway) setHintKey(key string) {
	g.t.Helper()
	g.h.LoginHintEncryptionKey = key
	if err := g.h.Validate(); err != nil {
		g.t.Fatalf("Validate() = %v", err)
	}
	src, err := hintSourceFor(key, g.h.caPool, g.h.caSum)
	if err != nil {
		g.t.Fatalf("hintSourceFor() = %v", err)
	}
	g.h.linker.hintSource = src
}

// withUserVerdict gives the OP user subject this policyDecision in the ID token.
func withUserVerdict(subject, decision string) gatewayOption {
	return func(_ *Handler, o *oidctest.Options) {
		users := o.Users
		if users == nil {
			users = oidctest.DefaultUsers()
		}
		for i := range users {
			if users[i].Subject == subject {
				users[i].IDTokenClaims[oidctest.ClaimPolicyDecision] = decision
			}
		}
		o.Users = users
	}
}

// andrewOIDC is Andrew Roshell's account record (seed 002) as the application knows it, in
// OIDC claim names.
var andrewOIDC = map[string]any{
	"given_name": "Andrew", "family_name": "Roshell", "phone_number": "+15555550100", "email": "andrew.roshell@example.org",
}

// startBind makes the application answer /account/verify with the profile header value
// and returns the gateway's answer (not following redirects).
func (g *gateway) startBind(value string) (*http.Response, string) {
	g.t.Helper()
	g.answerWith("/account/verify", "X-Auth-Bind", value)
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/account/verify", nil)
	req.Header.Set("Accept", "text/html")
	return do(g.t, g.noRedirects(), req)
}

// finishBind lets the OP answer the binding's authorization URL and follows the callback.
func (g *gateway) finishBind(resp *http.Response) (*http.Response, string) {
	g.t.Helper()
	if resp.StatusCode != http.StatusFound {
		g.t.Fatalf("binding start = %d, want 302 to the provider", resp.StatusCode)
	}
	auth, _ := url.Parse(resp.Header.Get("Location"))
	cb := g.authorize(auth)
	return g.navigate(g.browser, cb.RequestURI())
}

// hintOf returns the login_hint of a binding's redirect to the provider.
func hintOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	auth, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("binding start = %d %q, want 302 to the provider", resp.StatusCode, resp.Header.Get("Location"))
	}
	return auth.Query().Get("login_hint")
}

// verifyHS256 checks an HS256 compact JWS with secret by hand, as ID Dataweb does, and
// returns its header and claims.
func verifyHS256(t *testing.T, jws, secret string) (hdr, claims map[string]any) {
	t.Helper()
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("login_hint has %d parts, want a compact JWS", len(parts))
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if !hmac.Equal(sig, mac.Sum(nil)) {
		t.Fatal("the login_hint's HS256 signature does not verify with the client secret")
	}
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(cb, &claims) != nil {
		t.Fatal("login_hint header or claims are not JSON")
	}
	return hdr, claims
}

// assertNoPII fails when a log line holds the hint or a value of Andrew's profile.
func assertNoPII(t *testing.T, logs *observedLogs, extra ...string) {
	t.Helper()
	for _, e := range logs.entries() {
		line := e.Message + e.Fields
		for _, v := range append([]string{"Roshell", "5555550100", "andrew.roshell", "6789"}, extra...) {
			if v != "" && strings.Contains(line, v) {
				t.Errorf("log line %q holds %q", web.Clip(line, 200), web.Clip(v, 20))
			}
		}
	}
}

func TestIDDatawebLoginApproved(t *testing.T) {
	g, logs := newIDWGateway(t)
	g.mustLogin("andrew")
	got := g.upstream.Header()
	for name, want := range map[string]string{"X-Trust-Policy-Decision": "approve", "X-Trust-Risk-Score": "100", "X-Trust-Trust-Score": "100", "X-Auth-Subject": oidctest.SubjectAndrew} {
		if got.Get(name) != want {
			t.Errorf("%s = %q, want %q", name, got.Get(name), want)
		}
	}
	if g.store.Len() != 1 {
		t.Errorf("sessions = %d, want 1", g.store.Len())
	}
	assertNoPII(t, logs)
}

// ID Dataweb reports its verdict in the ID token; a userinfo that says otherwise neither
// changes the decision nor what the upstream is told.
func TestIDDatawebVerdictIsTheIDTokens(t *testing.T) {
	g, _ := newIDWGateway(t)
	g.op.SetFaults(oidctest.Faults{MutateUserinfo: func(_, c map[string]any) {
		if c != nil {
			c["policyDecision"], c["idwRiskScore"] = "deny", "1"
		}
	}})
	g.mustLogin("andrew")
	got := g.upstream.Header()
	if got.Get("X-Trust-Policy-Decision") != "approve" || got.Get("X-Trust-Risk-Score") != "100" {
		t.Errorf("verdict headers = %q / %q, want the ID token's approve / 100", got.Get("X-Trust-Policy-Decision"), got.Get("X-Trust-Risk-Score"))
	}
}

// A login that ID Dataweb did not approve (deny, no verdict, an unknown one) creates no
// session: 403, a page that says so with a sign-in link, reason policy_denied.
func TestIDDatawebLoginNotApprovedCreatesNoSession(t *testing.T) {
	for _, tc := range []struct {
		name, user string
		faults     oidctest.Faults
	}{
		{"policyDecision deny", "idw-deny", oidctest.Faults{}},
		{"no policyDecision", "idw-none", oidctest.Faults{}},
		{"unknown policyDecision", "andrew", oidctest.Faults{MutateIDToken: func(_, c map[string]any) { c["policyDecision"] = "review" }}},
		{"policyDecision Approve (case)", "andrew", oidctest.Faults{MutateIDToken: func(_, c map[string]any) { c["policyDecision"] = "Approve" }}},
		{"policyDecision not a string", "andrew", oidctest.Faults{MutateIDToken: func(_, c map[string]any) { c["policyDecision"] = true }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, logs := newIDWGateway(t)
			g.op.SetFaults(tc.faults)
			resp, body := g.login(tc.user, "/app")
			g.assertRejectedLogin(resp, body, http.StatusForbidden)
			g.assertNoPendingLogin()
			if !strings.Contains(body, "was not approved by ID Dataweb") || !strings.Contains(body, `href="/.trustgate/login"`) {
				t.Errorf("page %q: want it to say the verification was not approved, with a sign-in link", web.Clip(body, 600))
			}
			if !logs.has(func(e observedEntry) bool { return strings.Contains(e.Fields, "reason=policy_denied") }) {
				t.Errorf("no log line with reason policy_denied: %v", logs.entries())
			}
		})
	}
}

// bindingGateway is an ID Dataweb gateway with Andrew signed in.
func bindingGateway(t *testing.T, opts ...gatewayOption) (*gateway, *observedLogs, string) {
	t.Helper()
	g, logs := newIDWGateway(t, opts...)
	g.mustLogin("andrew")
	return g, logs, g.sessionCookie(g.browser)
}

func TestIDDatawebBindingApproved(t *testing.T) {
	g, logs, cookie := bindingGateway(t)
	resp, body := g.startBind(bindProfile(andrewOIDC))
	if strings.Contains(body, "upstream:") || resp.Header.Get("X-Auth-Bind") != "" {
		t.Errorf("the application's answer or its profile header reached the browser")
	}
	hint := hintOf(t, resp)
	hdr, claims := verifyHS256(t, hint, oidctest.DefaultClientSecret)
	if hdr["alg"] != "HS256" {
		t.Errorf("login_hint header = %v", hdr)
	}
	want := map[string]any{"fname": "Andrew", "lname": "Roshell", "dialCode": "1", "telephone": "5555550100", "email": "andrew.roshell@example.org", "sub": oidctest.SubjectAndrew}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("login_hint %s = %v, want %v", k, claims[k], v)
		}
	}
	if len(claims) != len(want)+2 || claims["exp"].(float64)-claims["iat"].(float64) != 300 {
		t.Errorf("login_hint claims = %v, want exactly ID Dataweb's fields, sub, iat and exp = iat + 300", claims)
	}
	resp, body = g.finishBind(resp)
	if resp.StatusCode != http.StatusOK || body != "upstream: /account/verify" {
		t.Fatalf("after the binding: %d %q", resp.StatusCode, web.Clip(body, 200))
	}
	if b := g.op.LastBinding(); b == nil || b.Format != oidctest.HintFormatIDDataweb || b.Decision != oidctest.DecisionApprove || b.Encrypted {
		t.Errorf("the OP's binding = %+v, want an approved plain ID Dataweb hint", b)
	}
	if g.sessionCookie(g.browser) == cookie || g.store.Len() != 1 {
		t.Errorf("the binding login did not replace the session (sessions %d)", g.store.Len())
	}
	g.answerWith("", "", "")
	g.navigate(g.browser, "/app")
	if got := g.upstream.Header(); got.Get("X-Auth-Binding") != "verified" || got.Get("X-Trust-Policy-Decision") != "approve" {
		t.Errorf("X-Auth-Binding %q, X-Trust-Policy-Decision %q, want verified, approve", got.Get("X-Auth-Binding"), got.Get("X-Trust-Policy-Decision"))
	}
	assertNoPII(t, logs, hint)
}

// Seed 002 "Account mismatch — deny": the provider's deny changes nothing.
func TestIDDatawebBindingDeniedChangesNothing(t *testing.T) {
	g, logs, cookie := bindingGateway(t)
	before := g.stored()
	resp, body := g.finishBind(func() *http.Response {
		r, _ := g.startBind(bindProfile(map[string]any{"given_name": "Andrea", "family_name": "Roswell", "phone_number": "+15555550100"}))
		return r
	}())
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Identity binding not completed") || !strings.Contains(body, "unchanged") {
		t.Errorf("denied binding: %d %q, want a 403 page saying nothing changed", resp.StatusCode, web.Clip(body, 300))
	}
	if b := g.op.LastBinding(); b == nil || b.Decision != oidctest.DecisionDeny {
		t.Errorf("the OP's binding = %+v, want deny", b)
	}
	if g.sessionCookie(g.browser) != cookie || g.store.Len() != 1 || g.stored().ID != before.ID || g.stored().Binding != "" {
		t.Error("a denied binding changed the session")
	}
	if !logs.has(func(e observedEntry) bool { return strings.Contains(e.Fields, "reason=policy_denied") }) {
		t.Error("no log line with reason policy_denied")
	}
	g.answerWith("", "", "")
	g.navigate(g.browser, "/app")
	if g.upstream.Header().Get("X-Auth-Binding") != "" {
		t.Error("a denied binding was marked verified")
	}
}

// threat model IDT-08: the provider approves a binding, but for another subject than the
// session's: refused, nothing changes.
func TestIDT08_IDDatawebBindingForAnotherSubject(t *testing.T) {
	g, logs := newIDWGateway(t, withUserVerdict(oidctest.SubjectAse, oidctest.DecisionApprove))
	g.mustLogin("ase")
	cookie := g.sessionCookie(g.browser)
	g.op.SetAutoLogin("andrew") // Andrew completes the binding at the provider, and matches
	resp, body := g.finishBind(func() *http.Response { r, _ := g.startBind(bindProfile(andrewOIDC)); return r }())
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Identity binding not completed") {
		t.Errorf("binding for another subject: %d %q, want 403", resp.StatusCode, web.Clip(body, 200))
	}
	if b := g.op.LastBinding(); b == nil || b.Decision != oidctest.DecisionApprove || b.Subject != oidctest.SubjectAndrew {
		t.Errorf("the OP's binding = %+v, want approved for andrew", b)
	}
	if g.sessionCookie(g.browser) != cookie || g.store.Len() != 1 || g.stored().Subject != oidctest.SubjectAse || g.stored().Binding != "" {
		t.Error("the session changed")
	}
	if !logs.has(func(e observedEntry) bool { return strings.Contains(e.Fields, "reason=binding_not_confirmed") }) {
		t.Error("no log line with reason binding_not_confirmed")
	}
}

// An invalid profile sends nothing to the provider: the application's answer goes out
// unchanged, and the log names the key and the reason (threat model LIM-04 for the size).
func TestIDDatawebBindProfileInvalid(t *testing.T) {
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name, value, reason, key string
	}{
		{"unknown key", bindProfile(map[string]any{"given_name": "Andrew", "favourite_colour": "blue"}), "bind_profile_invalid", "favourite_colour"},
		{"name is not a field", bindProfile(map[string]any{"name": "Andrew Roshell"}), "bind_profile_invalid", "name"},
		{"not JSON", b64("Andrew Roshell"), "bind_profile_invalid", ""},
		{"not base64", "%%%not-base64", "bind_profile_invalid", ""},
		{"LIM-04 larger than 4 KiB", bindProfile(map[string]any{"given_name": strings.Repeat("A", 4100)}), "bind_profile_invalid", ""},
		{"number for a string", b64(`{"given_name":"Andrew","telephone":5555550100,"dialCode":"1"}`), "bind_profile_invalid", "telephone"},
		{"malformed phone", bindProfile(map[string]any{"phone_number": "555-0100"}), "bind_profile_invalid", "phone_number"},
		{"malformed date", bindProfile(map[string]any{"given_name": "Andrew", "birthdate": "04/09/1970"}), "bind_profile_invalid", "birthdate"},
		{"same field twice, different", bindProfile(map[string]any{"given_name": "Andrew", "fname": "Andrea"}), "bind_profile_invalid", "given_name"},
		{"ssn without encryption", bindProfile(map[string]any{"given_name": "Andrew", "family_name": "Roshell", "ssn4": "6789"}), "bind_profile_needs_encryption", "ssn4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, logs, cookie := bindingGateway(t)
			before := g.op.Counts().Authorize
			resp, body := g.startBind(tc.value)
			if resp.StatusCode != http.StatusOK || body != "upstream: /account/verify" || resp.Header.Get("X-Auth-Bind") != "" {
				t.Errorf("the application's answer changed: %d %q (X-Auth-Bind %q)", resp.StatusCode, web.Clip(body, 80), resp.Header.Get("X-Auth-Bind"))
			}
			if n := g.op.Counts().Authorize - before; n != 0 {
				t.Errorf("the OP saw %d authorization requests, want none", n)
			}
			if g.sessionCookie(g.browser) != cookie || g.store.Len() != 1 || g.stored().Binding != "" {
				t.Error("the session changed")
			}
			if !logs.has(func(e observedEntry) bool {
				return strings.Contains(e.Fields, "reason="+tc.reason) && (tc.key == "" || strings.Contains(e.Fields, "key="+tc.key))
			}) {
				t.Errorf("no log line with reason %s and key %q: %v", tc.reason, tc.key, logs.entries())
			}
			assertNoPII(t, logs, "blue", "Andrea", "04/09/1970", "555-0100")
		})
	}
}

// With login_hint_encryption_key, the hint (ssn included) goes out as a JWE to the OP's key;
// the OP decrypts it, verifies it and approves.
func TestIDDatawebBindingEncrypted(t *testing.T) {
	profile := map[string]any{"given_name": "Andrew", "family_name": "Roshell", "phone_number": "+15555550100", "ssn4": "6789"}
	for _, tc := range []struct {
		name, alg string
		key       func(op *oidctest.Provider) string
	}{
		{"PEM", "RSA-OAEP-256", func(op *oidctest.Provider) string { return op.HintEncryptionKeyPEM() }},
		{"EC PEM", "ECDH-ES+A256KW", func(op *oidctest.Provider) string { return op.HintEncryptionECKeyPEM() }},
		{"JWKS URL", "RSA-OAEP-256", func(op *oidctest.Provider) string { return op.HintKeysURL() }},
		{"JWKS URL, EC key", "ECDH-ES+A256KW", func(op *oidctest.Provider) string { return op.HintKeysURL() + "?kty=EC" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, logs, _ := bindingGateway(t)
			g.setHintKey(tc.key(g.op))
			resp, _ := g.startBind(bindProfile(profile))
			hint := hintOf(t, resp)
			jwe, err := jose.ParseEncryptedCompact(hint, provider.HintKeyAlgorithms, []jose.ContentEncryption{jose.A256GCM})
			if err != nil {
				t.Fatalf("login_hint is not a compact JWE: %v", err)
			}
			if string(jwe.Header.Algorithm) != tc.alg || jwe.Header.ExtraHeaders["cty"] != "JWT" {
				t.Errorf("JWE header alg %s cty %v, want %s, JWT", jwe.Header.Algorithm, jwe.Header.ExtraHeaders["cty"], tc.alg)
			}
			resp, body := g.finishBind(resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("after the binding: %d %q", resp.StatusCode, web.Clip(body, 200))
			}
			b := g.op.LastBinding()
			if b == nil || !b.Encrypted || b.Decision != oidctest.DecisionApprove || b.Claims["ssn4"] != "6789" || b.Claims["telephone"] != "5555550100" {
				t.Errorf("the OP's binding = %+v, want an approved encrypted hint with ssn4", b)
			}
			g.answerWith("", "", "")
			g.navigate(g.browser, "/app")
			if g.upstream.Header().Get("X-Auth-Binding") != "verified" {
				t.Error("X-Auth-Binding is not verified")
			}
			assertNoPII(t, logs, hint)
		})
	}
}

// threat model OPS-06: the JWKS URL of login_hint_encryption_key does not answer: the
// binding is not started (bind_key_unavailable), the application's answer goes out
// unchanged, nothing is sent to the provider.
func TestOPS06_IDDatawebHintKeyUnavailable(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	g, logs, cookie := bindingGateway(t)
	g.setHintKey(down.URL + "/jwks")
	before := g.op.Counts().Authorize
	resp, body := g.startBind(bindProfile(andrewOIDC))
	if resp.StatusCode != http.StatusOK || body != "upstream: /account/verify" {
		t.Errorf("the application's answer changed: %d %q", resp.StatusCode, web.Clip(body, 80))
	}
	if g.op.Counts().Authorize != before || g.sessionCookie(g.browser) != cookie || g.store.Len() != 1 {
		t.Error("something was sent to the OP, or the session changed")
	}
	if !logs.has(func(e observedEntry) bool { return strings.Contains(e.Fields, "reason=bind_key_unavailable") }) {
		t.Errorf("no log line with reason bind_key_unavailable: %v", logs.entries())
	}
}

// threat model SES-07: across a whole binding (plain and encrypted), no log line holds the
// hint, the profile's values or the client secret; debug lines included.
func TestSES07_IDDatawebHintNeverLogged(t *testing.T) {
	g, logs, _ := bindingGateway(t)
	resp, _ := g.startBind(bindProfile(andrewOIDC))
	hint := hintOf(t, resp)
	g.finishBind(resp)
	g.setHintKey(g.op.HintEncryptionKeyPEM())
	g.answerWith("", "", "")
	g.browser = g.newBrowser()
	g.mustLogin("andrew") // a fresh, unbound session
	resp, _ = g.startBind(bindProfile(map[string]any{"given_name": "Andrew", "family_name": "Roshell", "ssn9": "123-45-6789"}))
	encrypted := hintOf(t, resp)
	g.finishBind(resp)
	if len(logs.entries()) == 0 {
		t.Fatal("no log lines captured")
	}
	assertNoPII(t, logs, hint, encrypted[:40], "123456789", "123-45-6789", oidctest.DefaultClientSecret)
}
