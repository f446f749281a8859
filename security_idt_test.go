package trustgate

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
)

// Tests for the threat model (docs/threat-model.md) section C.1 (ID token validation). Each feeds one bad ID token through the
// whole login and asserts REJECT-LOGIN: 401, no session, no cookie, no upstream call, and
// (the OpenID conformance suite's oracle) no userinfo call after the token was rejected.

type idtCase struct {
	name   string
	faults oidctest.Faults
}

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

func withSigningAlg(alg string) gatewayOption {
	return func(_ *Handler, o *oidctest.Options) { o.SigningAlg = alg }
}

func TestIDT01_BadSignature(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"RS256 flipped signature byte", oidctest.Faults{IDTokenBadSignature: true}},
		{"signed with an unpublished key under a published kid", oidctest.Faults{IDTokenUnpublishedKey: true}},
	})
	runIDTokenRejections(t, []idtCase{
		{"ES256 flipped signature byte", oidctest.Faults{IDTokenBadSignature: true}},
	}, withSigningAlg("ES256"))
}

// longSecretClient is a client whose secret is long enough (>= 32 bytes) for a valid
// HS256 MAC, so that a rejection proves the algorithm allow-list, not a key-size check.
func longSecretClient(h *Handler, o *oidctest.Options) {
	c := oidctest.DefaultClient()
	c.Secret = "a-client-secret-that-is-long-enough-for-hs256"
	o.Clients = []oidctest.Client{c}
	h.ClientSecret = c.Secret
}

func TestIDT02_HS256AlgorithmConfusion(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"HS256 with a MAC-sized client secret", oidctest.Faults{IDTokenHS256: true}},
	}, longSecretClient)
	runIDTokenRejections(t, []idtCase{
		{"HS256 keyed with the client secret", oidctest.Faults{IDTokenHS256: true}},
		{"HS384 keyed with the client secret", mutateID(func(h, _ map[string]any) { h["alg"] = "HS384"; delete(h, "kid") })},
		{"HS256 under the RSA key's kid", mutateID(func(h, _ map[string]any) { h["alg"] = "HS256" })},
	})
}

func TestIDT03_AlgNone(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"alg none", oidctest.Faults{IDTokenAlgNone: true}},
		{"alg None", mutateID(func(h, _ map[string]any) { h["alg"] = "None"; delete(h, "kid") })},
		{"alg nOnE", mutateID(func(h, _ map[string]any) { h["alg"] = "nOnE"; delete(h, "kid") })},
		{"header without alg", mutateID(func(h, _ map[string]any) { delete(h, "alg") })},
	})
}

func TestIDT04_AlternateAlgorithm(t *testing.T) {
	// The OP advertises RS256 only; a token validly signed with the same RSA key under
	// another algorithm is still refused.
	runIDTokenRejections(t, []idtCase{
		{"PS256 with the RSA key", mutateID(func(h, _ map[string]any) { h["alg"] = "PS256" })},
		{"RS384 with the RSA key", mutateID(func(h, _ map[string]any) { h["alg"] = "RS384" })},
		{"ES256 header on the RSA kid", mutateID(func(h, _ map[string]any) { h["alg"] = "ES256" })},
	})
}

func TestIDT05_IssuerMismatch(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"wrong iss", oidctest.Faults{IDTokenWrongIssuer: true}},
		{"missing iss", mutateID(func(_, c map[string]any) { delete(c, "iss") })},
		{"trailing slash", mutateID(func(_, c map[string]any) { c["iss"] = c["iss"].(string) + "/" })},
		{"host case", mutateID(func(_, c map[string]any) { c["iss"] = strings.ToUpper(c["iss"].(string)) })},
		{"other tenant path", mutateID(func(_, c map[string]any) { c["iss"] = c["iss"].(string) + "/tenant2" })},
	})
}

func TestIDT06_Audience(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"another client", oidctest.Faults{IDTokenWrongAudience: true}},
		{"missing", oidctest.Faults{IDTokenMissingAudience: true}},
		{"empty array", mutateID(func(_, c map[string]any) { c["aud"] = []any{} })},
		{"client id in other case", mutateID(func(_, c map[string]any) { c["aud"] = strings.ToUpper(oidctest.DefaultClient().ID) })},
	})
	t.Run("single-element array accepted", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetFaults(mutateID(func(_, c map[string]any) { c["aud"] = []any{oidctest.DefaultClient().ID} }))
		g.mustLogin("bindid-known")
	})
}

func TestIDT07_ExtraAudienceAndAzp(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"untrusted extra audience", oidctest.Faults{IDTokenExtraAudience: true}},
		{"extra audience without azp", oidctest.Faults{IDTokenExtraAudience: true, MutateIDToken: func(_, c map[string]any) { delete(c, "azp") }}},
		{"azp is another client", oidctest.Faults{IDTokenAzpOther: true}},
	})
	t.Run("extra audience configured as trusted", func(t *testing.T) {
		g := newGateway(t, func(h *Handler, _ *oidctest.Options) { h.TrustedAudiences = []string{oidctest.OtherClientID} })
		g.op.SetFaults(oidctest.Faults{IDTokenExtraAudience: true})
		g.mustLogin("bindid-known")
	})
}

func TestIDT08_Subject(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"missing", oidctest.Faults{IDTokenMissingSub: true}},
		{"empty", mutateID(func(_, c map[string]any) { c["sub"] = "" })},
		{"number", mutateID(func(_, c map[string]any) { c["sub"] = 12345 })},
		{"array", mutateID(func(_, c map[string]any) { c["sub"] = []any{"a", "b"} })},
		{"10 KB", mutateID(func(_, c map[string]any) { c["sub"] = strings.Repeat("s", 10<<10) })},
		{"control characters", mutateID(func(_, c map[string]any) { c["sub"] = "alice\r\nX-Auth-Admin: yes" })},
	})
}

func TestIDT09_IssuedAt(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"missing", oidctest.Faults{IDTokenMissingIat: true}},
		{"a week old", oidctest.Faults{IDTokenIatWeekOld: true}},
		{"10 minutes in the future", oidctest.Faults{IDTokenIatFuture: true}},
	})
}

func TestIDT10_ExpiryAndNotBefore(t *testing.T) {
	setExp := func(d time.Duration) oidctest.Faults {
		return mutateID(func(_, c map[string]any) { c["exp"] = time.Now().Add(d).Unix() })
	}
	runIDTokenRejections(t, []idtCase{
		{"expired 6 minutes ago", oidctest.Faults{IDTokenExpired: true}},
		{"expired 61s ago (leeway 60s)", setExp(-61 * time.Second)},
		{"missing exp", mutateID(func(_, c map[string]any) { delete(c, "exp") })},
		{"nbf 10 minutes ahead", mutateID(func(_, c map[string]any) { c["nbf"] = time.Now().Add(10 * time.Minute).Unix() })},
		{"exp 1e300", mutateID(func(_, c map[string]any) { c["exp"] = 1e300 })},
		{"exp negative", mutateID(func(_, c map[string]any) { c["exp"] = -1 })},
		{"exp string", mutateID(func(_, c map[string]any) { c["exp"] = "9999999999" })},
	})
	t.Run("expired 30s ago passes within the 60s leeway", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetFaults(setExp(-30 * time.Second))
		g.mustLogin("bindid-known")
	})
}

func TestIDT11_Nonce(t *testing.T) {
	runIDTokenRejections(t, []idtCase{
		{"wrong nonce", oidctest.Faults{IDTokenWrongNonce: true}},
		{"missing nonce", oidctest.Faults{IDTokenMissingNonce: true}},
	})
	t.Run("nonce of another in-flight login of the same browser", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		first := g.startLogin(g.browser, "/a")
		second := g.startLogin(g.browser, "/b")
		otherNonce := first.Query().Get("nonce")
		g.op.SetFaults(mutateID(func(_, c map[string]any) { c["nonce"] = otherNonce }))
		cb := g.authorize(second)
		resp, body := do(t, g.browser, &http.Request{Method: http.MethodGet, URL: cb, Header: http.Header{}})
		g.assertRejectedLogin(resp, body, http.StatusUnauthorized)
		if n := g.op.Counts().Userinfo; n != 0 {
			t.Errorf("userinfo calls = %d, want 0", n)
		}
	})
}

func TestIDT12_CallbackReplay(t *testing.T) {
	t.Run("same callback URL after a completed login", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		cb := g.authorize(g.startLogin(g.browser, "/app"))
		// Keep the transaction cookie as an attacker who copied the whole request would.
		jarCopy := g.newBrowser()
		jarCopy.Jar.SetCookies(cb, g.browser.Jar.Cookies(cb))

		resp, _ := do(t, g.noRedirects(), &http.Request{Method: http.MethodGet, URL: cb, Header: http.Header{}})
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("first callback = %d, want 302", resp.StatusCode)
		}
		if g.store.Len() != 1 {
			t.Fatalf("sessions after login = %d, want 1", g.store.Len())
		}
		tokenCalls := g.op.Counts().Token
		resp, body := do(t, jarCopy, &http.Request{Method: http.MethodGet, URL: cb, Header: http.Header{}})
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already used") {
			t.Errorf("replayed callback = %d %q, want 400 'already used'", resp.StatusCode, web.Clip(body, 200))
		}
		if g.op.Counts().Token != tokenCalls {
			t.Error("the replayed callback reached the token endpoint")
		}
		if g.store.Len() != 1 {
			t.Errorf("sessions after replay = %d, want still 1", g.store.Len())
		}
	})
	t.Run("ID token of one transaction through another browser's transaction", func(t *testing.T) {
		g := newGateway(t)
		g.op.SetAutoLogin("bindid-known")
		victim := g.authorize(g.startLogin(g.browser, "/app"))
		attacker := g.newBrowser()
		resp, body := do(t, attacker, &http.Request{Method: http.MethodGet, URL: victim, Header: http.Header{}})
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("callback in another browser = %d, want 400", resp.StatusCode)
		}
		if g.op.Counts().Token != 0 || g.store.Len() != 0 {
			t.Errorf("token calls %d, sessions %d; want 0, 0", g.op.Counts().Token, g.store.Len())
		}
		_ = body
	})
}
