package trustgate

import (
	"bytes"
	"context"
	"errors"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/session"
)

// Back-channel and RP-initiated logout (threat model LO-*, SES-06).

const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// postLogoutToken posts a form to the back-channel endpoint as a provider does.
func (g *gateway) postLogoutToken(form url.Values) *http.Response {
	g.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/.trustgate/backchannel-logout", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, _ := do(g.t, http.DefaultClient, req)
	return resp
}

func (g *gateway) logoutToken(sub, sid string, edit func(map[string]any), o oidctest.LogoutTokenOptions) string {
	c := g.op.LogoutClaims(g.h.ClientID, sub, sid)
	if edit != nil {
		edit(c)
	}
	return g.op.LogoutToken(c, o)
}

// sid is the provider session id of the browser's session (the ID token's sid claim).
func (g *gateway) sid() string {
	g.t.Helper()
	sid, _ := g.stored().Claims["sid"].(string)
	if sid == "" {
		g.t.Fatal("the session has no sid claim (the test OP puts one in every ID token)")
	}
	return sid
}

// assertUnauthenticated checks that the browser's cookie no longer opens a session, as
// another client replaying it would find (threat model SES-06).
func (g *gateway) assertUnauthenticated(cookie string) {
	g.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/app", nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Cookie", g.h.sessions.cookieName+"="+cookie)
	if resp, _ := do(g.t, http.DefaultClient, req); resp.StatusCode != http.StatusUnauthorized {
		g.t.Errorf("old cookie after logout: %d, want 401", resp.StatusCode)
	}
}

func TestLO01_BackchannelLogoutBySidAndBySub(t *testing.T) {
	t.Run("sid", func(t *testing.T) {
		g := newGateway(t)
		g.mustLogin("bindid-known")
		cookie, sid := g.sessionCookie(g.browser), g.sid()
		other := g.newBrowser() // another user's session stays
		g.op.SetAutoLogin("ola")
		g.navigate(other, "/app")
		resp := g.postLogoutToken(url.Values{"logout_token": {g.logoutToken("", sid, func(c map[string]any) { c["extra"] = "ignored" }, oidctest.LogoutTokenOptions{})}})
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("valid logout token: %d, Cache-Control %q; want exactly 200 and no-store", resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
		g.assertUnauthenticated(cookie)
		if g.store.Len() != 1 {
			t.Errorf("sessions left = %d, want 1 (the other user's)", g.store.Len())
		}
	})
	t.Run("sub ends every session of the user", func(t *testing.T) {
		g := newGateway(t)
		g.mustLogin("bindid-known")
		first := g.sessionCookie(g.browser)
		second := g.newBrowser()
		g.navigate(second, "/app")
		if g.store.Len() != 2 {
			t.Fatalf("sessions = %d, want 2", g.store.Len())
		}
		if resp := g.postLogoutToken(url.Values{"logout_token": {g.logoutToken(oidctest.SubjectBindIDKnown, "", nil, oidctest.LogoutTokenOptions{})}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("logout by sub: %d", resp.StatusCode)
		}
		g.assertUnauthenticated(first)
		if g.store.Len() != 0 {
			t.Errorf("sessions left = %d, want 0", g.store.Len())
		}
	})
}

// Every invalid token is 400 and ends nothing (LO-02..LO-07, LO-09).
func TestLO02to07_InvalidLogoutTokens(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	sid := g.sid()
	idToken := g.stored().IDToken
	del := func(k string) func(map[string]any) { return func(c map[string]any) { delete(c, k) } }
	set := func(k string, v any) func(map[string]any) { return func(c map[string]any) { c[k] = v } }
	now := time.Now().Unix()
	for _, tc := range []struct {
		name string
		tok  string
	}{
		{"LO02 alg none", g.logoutToken("", sid, nil, oidctest.LogoutTokenOptions{Alg: "none"})},
		{"LO03 HS256 with the client secret", g.logoutToken("", sid, nil, oidctest.LogoutTokenOptions{Alg: "HS256"})},
		{"LO03 other algorithm, unpublished key", g.logoutToken("", sid, nil, oidctest.LogoutTokenOptions{OtherAlgKey: true})},
		{"LO03 foreign key under the real kid", g.logoutToken("", sid, nil, oidctest.LogoutTokenOptions{ForeignKey: true})},
		{"LO04 wrong iss", g.logoutToken("", sid, set("iss", "https://evil.example"), oidctest.LogoutTokenOptions{})},
		{"LO04 wrong aud", g.logoutToken("", sid, set("aud", "other-client"), oidctest.LogoutTokenOptions{})},
		{"LO05 no events", g.logoutToken("", sid, del("events"), oidctest.LogoutTokenOptions{})},
		{"LO05 wrong event", g.logoutToken("", sid, set("events", map[string]any{"http://schemas.openid.net/event/foobar": map[string]any{}}), oidctest.LogoutTokenOptions{})},
		{"LO05 event value not an object", g.logoutToken("", sid, set("events", map[string]any{backchannelEvent: "yes"}), oidctest.LogoutTokenOptions{})},
		{"LO06 nonce", g.logoutToken("", sid, set("nonce", "n-1"), oidctest.LogoutTokenOptions{})},
		{"LO07 neither sid nor sub", g.logoutToken("", "", nil, oidctest.LogoutTokenOptions{})},
		{"LO07 no iat", g.logoutToken("", sid, del("iat"), oidctest.LogoutTokenOptions{})},
		{"LO07 no jti", g.logoutToken("", sid, del("jti"), oidctest.LogoutTokenOptions{})},
		{"LO07 expired", g.logoutToken("", sid, set("exp", now-600), oidctest.LogoutTokenOptions{})},
		{"LO07 iat a day old", g.logoutToken("", sid, set("iat", now-86400), oidctest.LogoutTokenOptions{})},
		{"LO07 iat in the future", g.logoutToken("", sid, set("iat", now+3600), oidctest.LogoutTokenOptions{})},
		{"LO09 an ID token", idToken},
		{"LO09 typ JWT", g.logoutToken("", sid, nil, oidctest.LogoutTokenOptions{Typ: "JWT+id"})},
		{"garbage", "not.a.jwt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := g.postLogoutToken(url.Values{"logout_token": {tc.tok}})
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s: %d, want 400", tc.name, resp.StatusCode)
			}
			if g.store.Len() != 1 {
				t.Fatalf("%s ended the session", tc.name)
			}
		})
	}
	t.Run("LO04 aud array with an untrusted extra audience", func(t *testing.T) {
		// As for ID tokens (BCL 2.6 step 4): an extra audience not in trusted_audiences.
		tok := g.logoutToken("", sid, set("aud", []any{"someone", g.h.ClientID}), oidctest.LogoutTokenOptions{})
		if resp := g.postLogoutToken(url.Values{"logout_token": {tok}}); resp.StatusCode != http.StatusBadRequest || g.store.Len() != 1 {
			t.Errorf("aud with an untrusted extra audience: %d, sessions %d; want 400, 1", resp.StatusCode, g.store.Len())
		}
	})
	t.Run("LO04 aud array with the client", func(t *testing.T) {
		tok := g.logoutToken("", sid, set("aud", []any{g.h.ClientID}), oidctest.LogoutTokenOptions{})
		if resp := g.postLogoutToken(url.Values{"logout_token": {tok}}); resp.StatusCode != http.StatusOK || g.store.Len() != 0 {
			t.Errorf("aud array containing the client: %d, sessions %d; want 200, 0", resp.StatusCode, g.store.Len())
		}
	})
}

func TestLO08_ReplayNeverEndsANewSession(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	tok := g.logoutToken(oidctest.SubjectBindIDKnown, "", nil, oidctest.LogoutTokenOptions{})
	if resp := g.postLogoutToken(url.Values{"logout_token": {tok}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("first post: %d", resp.StatusCode)
	}
	if resp := g.postLogoutToken(url.Values{"logout_token": {tok}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("replay: %d, want 400", resp.StatusCode)
	}
	// The user signs in again; replaying the old token must not end the new session.
	g.mustLogin("bindid-known")
	g.postLogoutToken(url.Values{"logout_token": {tok}})
	if g.store.Len() != 1 {
		t.Error("a replayed logout token ended a session created after it")
	}
	// Nor does a fresh token (new jti) that was issued before the session began.
	old := g.logoutToken(oidctest.SubjectBindIDKnown, "", func(c map[string]any) { c["iat"] = time.Now().Add(-5 * time.Minute).Unix() }, oidctest.LogoutTokenOptions{})
	if resp := g.postLogoutToken(url.Values{"logout_token": {old}}); resp.StatusCode != http.StatusOK || g.store.Len() != 1 {
		t.Errorf("token issued before the session: %d, sessions %d; want 200 and the session kept", resp.StatusCode, g.store.Len())
	}
}

func TestLO10_TokenOfAnotherProvider(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	other := oidctest.NewTest(t, oidctest.Options{})
	other.RotateKeys() // its own key (test providers share one by default)
	c := other.LogoutClaims(g.h.ClientID, oidctest.SubjectBindIDKnown, "")
	if resp := g.postLogoutToken(url.Values{"logout_token": {other.LogoutToken(c, oidctest.LogoutTokenOptions{})}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("token of another provider: %d, want 400", resp.StatusCode)
	}
	c["iss"] = g.op.Issuer() // our issuer, their key
	if resp := g.postLogoutToken(url.Values{"logout_token": {other.LogoutToken(c, oidctest.LogoutTokenOptions{})}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("our iss signed by another provider's key: %d, want 400", resp.StatusCode)
	}
	if g.store.Len() != 1 {
		t.Error("a foreign token ended the session")
	}
}

func TestLO11_EndpointTransport(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	tok := g.logoutToken(oidctest.SubjectBindIDKnown, "", nil, oidctest.LogoutTokenOptions{})
	endpoint := g.srv.URL + "/.trustgate/backchannel-logout"
	send := func(method, ctype string, body []byte, withCookie bool) *http.Response {
		req, _ := http.NewRequest(method, endpoint, bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if withCookie {
			req.Header.Set("Cookie", g.h.sessions.cookieName+"="+g.sessionCookie(g.browser))
		}
		resp, _ := do(t, &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, req)
		return resp
	}
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("logout_token", tok)
	_ = mw.Close()
	for _, tc := range []struct {
		name   string
		resp   *http.Response
		status int
	}{
		{"GET", send(http.MethodGet, "", nil, false), http.StatusMethodNotAllowed},
		{"JSON body", send(http.MethodPost, "application/json", []byte(`{"logout_token":"`+tok+`"}`), false), http.StatusBadRequest},
		{"multipart", send(http.MethodPost, mw.FormDataContentType(), mp.Bytes(), false), http.StatusBadRequest},
		{"missing", send(http.MethodPost, "application/x-www-form-urlencoded", []byte("x=1"), false), http.StatusBadRequest},
		{"duplicated", send(http.MethodPost, "application/x-www-form-urlencoded", []byte("logout_token="+tok+"&logout_token="+tok), false), http.StatusBadRequest},
		{"1 MB", send(http.MethodPost, "application/x-www-form-urlencoded", []byte("logout_token="+strings.Repeat("a", 1<<20)), false), http.StatusRequestEntityTooLarge},
	} {
		if tc.resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, tc.resp.StatusCode, tc.status)
		}
		if tc.resp.Header.Get("Location") != "" || tc.resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Location %q, Cache-Control %q", tc.name, tc.resp.Header.Get("Location"), tc.resp.Header.Get("Cache-Control"))
		}
	}
	if g.store.Len() != 1 {
		t.Fatal("a malformed request ended the session")
	}
	// A browser cookie on the request changes nothing: the token decides.
	if resp := send(http.MethodPost, "application/x-www-form-urlencoded", []byte("logout_token="+tok), true); resp.StatusCode != http.StatusOK || g.store.Len() != 0 {
		t.Errorf("valid token with a cookie: %d, sessions %d", resp.StatusCode, g.store.Len())
	}
}

// failingDeletes makes DeleteMatching fail while on.
type failingDeletes struct {
	session.Store
	on bool
}

func (f *failingDeletes) DeleteMatching(ctx context.Context, m session.Match) (int, error) {
	if f.on {
		return 0, errors.New("store down")
	}
	return f.Store.DeleteMatching(ctx, m)
}

func TestLO12_BackchannelStoreFailureIsNot200(t *testing.T) {
	g := newGateway(t)
	g.mustLogin("bindid-known")
	f := &failingDeletes{Store: g.store, on: true}
	g.h.store = f
	tok := g.logoutToken(oidctest.SubjectBindIDKnown, "", nil, oidctest.LogoutTokenOptions{})
	if resp := g.postLogoutToken(url.Values{"logout_token": {tok}}); resp.StatusCode < 500 {
		t.Errorf("store failure: %d, want a 5xx (never 200)", resp.StatusCode)
	}
	// The provider retries the same token once the store is back: not a replay.
	f.on = false
	if resp := g.postLogoutToken(url.Values{"logout_token": {tok}}); resp.StatusCode != http.StatusOK || g.store.Len() != 0 {
		t.Errorf("retry after recovery: %d, sessions %d; want 200, 0", resp.StatusCode, g.store.Len())
	}
	// A token for a session that is already gone: 200 (idempotent).
	tok2 := g.logoutToken(oidctest.SubjectBindIDKnown, "", nil, oidctest.LogoutTokenOptions{})
	if resp := g.postLogoutToken(url.Values{"logout_token": {tok2}}); resp.StatusCode != http.StatusOK {
		t.Errorf("no matching session: %d, want 200", resp.StatusCode)
	}
}

func TestLO13_RPInitiatedLogout(t *testing.T) {
	g := newGateway(t, func(h *Handler, _ *oidctest.Options) {
		h.PostLogoutRedirectURL = "http://127.0.0.1:1/.trustgate/signed-out"
	})
	g.mustLogin("bindid-known")
	cookie, idToken := g.sessionCookie(g.browser), g.stored().IDToken
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/.trustgate/logout", nil)
	req.Header.Set("Accept", "text/html")
	resp, _ := do(t, g.noRedirects(), req)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d, want 303 to the provider", resp.StatusCode)
	}
	// The session is gone before the browser leaves.
	if g.store.Len() != 0 {
		t.Error("the session still exists when the browser is sent to the provider")
	}
	g.assertUnauthenticated(cookie)
	u, _ := url.Parse(resp.Header.Get("Location"))
	q := u.Query()
	if !strings.HasPrefix(u.String(), g.op.Issuer()+oidctest.PathEndSession) || q.Get("id_token_hint") != idToken ||
		q.Get("client_id") != g.h.ClientID || q.Get("post_logout_redirect_uri") != g.h.PostLogoutRedirectURL || len(q.Get("state")) < 20 {
		t.Errorf("end-session redirect %s: want id_token_hint, client_id, post_logout_redirect_uri and a fresh state", u)
	}
	// The provider's way back: a plain page whatever the parameters (LO-13: other state,
	// none, and a would-be redirect target).
	for _, back := range []string{"?state=other", "", "?state=x&rd=//evil.example&post_logout_redirect_uri=https://evil.example"} {
		resp, body := do(t, g.noRedirects(), mustRequest(t, http.MethodGet, g.srv.URL+"/.trustgate/signed-out"+back))
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" || !strings.Contains(body, "signed out") {
			t.Errorf("signed-out page %q: %d, Location %q", back, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// A script gets the end-session URL in JSON.
	g.mustLogin("bindid-known")
	req, _ = http.NewRequest(http.MethodPost, g.srv.URL+"/.trustgate/logout", nil)
	req.Header.Set("Accept", "application/json")
	_, body := do(t, g.noRedirects(), req)
	if !strings.Contains(body, `"end_session_url":"`+g.op.Issuer()) {
		t.Errorf("JSON logout: %s, want end_session_url", body)
	}
}

// Back-channel logout requests are rate limited per process: a flood of (even invalid)
// tokens gets 429 with Retry-After instead of unbounded signature checks (limits).
func TestBackchannelLogoutRateLimit(t *testing.T) {
	g := newGateway(t)
	limited := 0
	for range maxLogoutRequestsPerSecond * 3 {
		resp := g.postLogoutToken(url.Values{"logout_token": {"not.a.jwt"}})
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
			if resp.Header.Get("Retry-After") != "1" {
				t.Fatalf("429 without Retry-After: 1")
			}
		}
	}
	if limited == 0 {
		t.Errorf("%d back-channel logout requests in quick succession: none limited", maxLogoutRequestsPerSecond*3)
	}
	// The next second is open again.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	if resp := g.postLogoutToken(url.Values{"logout_token": {"not.a.jwt"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("after the window: %d, want 400 (verified and refused)", resp.StatusCode)
	}
}
