package trustgate

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/redistest"
	"github.com/trustgate/trustgate/internal/web"
	"github.com/trustgate/trustgate/session"
)

// Session lifecycle: refresh, its failures, and refresh across instances.

// testClock is one clock for the provider and the gateway.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Now()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// withClock drives the gateway and the provider by c; access tokens live accessTTL.
func withClock(c *testClock, accessTTL time.Duration) gatewayOption {
	return func(h *Handler, o *oidctest.Options) {
		h.now, o.Now, o.AccessTokenLifetime = c.Now, c.Now, accessTTL
	}
}

// stored is the browser's session as the store has it.
func (g *gateway) stored() *session.Session {
	g.t.Helper()
	var id string
	if err := g.h.sessions.codec.Decode(g.h.sessions.cookieName, g.sessionCookie(g.browser), &id); err != nil {
		g.t.Fatalf("session cookie: %v", err)
	}
	s, err := g.store.Get(context.Background(), id)
	if err != nil {
		g.t.Fatalf("stored session: %v", err)
	}
	return s
}

func TestRefreshBeforeExpiryRotatesAndKeepsTheLifetime(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withClock(clk, 5*time.Minute))
	g.mustLogin("bindid-known")
	s0 := g.stored()
	if s0.RefreshToken == "" || s0.TokenExpiry.IsZero() {
		t.Fatalf("login stored no refresh token or expiry: %v %v", s0.RefreshToken != "", s0.TokenExpiry)
	}

	clk.Advance(3 * time.Minute) // not yet due
	if resp, _ := g.api("/app"); resp.StatusCode != http.StatusOK || g.op.Counts().Refresh != 0 {
		t.Fatalf("3 min in: %d with %d refreshes, want 200 and none", resp.StatusCode, g.op.Counts().Refresh)
	}
	clk.Advance(90 * time.Second) // within a minute of expiry
	if resp, _ := g.api("/app"); resp.StatusCode != http.StatusOK {
		t.Fatalf("at expiry: %d", resp.StatusCode)
	}
	if n := g.op.Counts().Refresh; n != 1 {
		t.Fatalf("refresh grants = %d, want 1", n)
	}
	s1 := g.stored()
	if s1.RefreshToken == s0.RefreshToken || s1.AccessToken == s0.AccessToken {
		t.Error("the rotated tokens were not stored")
	}
	if !s1.ExpiresAt.Equal(s0.ExpiresAt) {
		t.Errorf("refresh moved the absolute end from %v to %v", s0.ExpiresAt, s1.ExpiresAt)
	}
	if !s1.RefreshedAt.Equal(clk.Now()) || s1.Subject != s0.Subject || s1.ID != s0.ID {
		t.Errorf("refreshed session: refreshed_at %v, sub %q, same id %v", s1.RefreshedAt, s1.Subject, s1.ID == s0.ID)
	}
	if g.upstream.Header().Get("X-Auth-Subject") != oidctest.SubjectBindIDKnown {
		t.Error("the refreshed request lost its identity headers")
	}
	// The next request uses the refreshed session without another grant.
	g.api("/app")
	if n := g.op.Counts().Refresh; n != 1 || g.op.Counts().RefreshReuse != 0 {
		t.Errorf("after the refresh: %d grants, %d reuses; want 1, 0", n, g.op.Counts().RefreshReuse)
	}
}

func TestOPS11_RefreshRejectedEndsTheSession(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withClock(clk, 5*time.Minute))
	g.mustLogin("bindid-known")
	g.op.SetFaults(oidctest.Faults{RefreshError: "invalid_grant", RefreshErrorStatus: http.StatusBadRequest})
	clk.Advance(5 * time.Minute)
	calls := g.upstream.Calls()
	resp, body := g.api("/app")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "login_required") {
		t.Errorf("API after invalid_grant: %d %q, want 401 login_required", resp.StatusCode, web.Clip(body, 200))
	}
	if g.store.Len() != 0 {
		t.Error("the session survived invalid_grant")
	}
	if g.upstream.Calls() != calls {
		t.Error("the request reached the upstream")
	}
	// A browser with the old cookie is sent to log in.
	if u := g.startLogin(g.browser, "/app"); u.Path != "/authorize" {
		t.Errorf("browser after invalid_grant went to %s", u)
	}
}

func TestOPS11_TransientRefreshFailureKeepsTheSession(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withClock(clk, 5*time.Minute))
	g.mustLogin("bindid-known")
	g.op.SetFaults(oidctest.Faults{RefreshError: "server_error", RefreshErrorStatus: http.StatusServiceUnavailable})
	clk.Advance(5 * time.Minute)
	for i := range 3 {
		if resp, _ := g.api("/app"); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d during the provider's outage: %d, want 200 (session kept)", i, resp.StatusCode)
		}
	}
	if n := g.op.Counts().Refresh; n != 1 {
		t.Errorf("refresh attempts during the outage = %d, want 1 (then a pause, no storm)", n)
	}
	// After the pause the refresh is tried again and works.
	g.op.SetFaults(oidctest.Faults{})
	clk.Advance(refreshRetry + time.Second)
	if resp, _ := g.api("/app"); resp.StatusCode != http.StatusOK || g.op.Counts().Refresh != 2 {
		t.Errorf("after the outage: %d with %d attempts, want 200 and 2", resp.StatusCode, g.op.Counts().Refresh)
	}
	if g.stored().RefreshedAt.IsZero() {
		t.Error("the retried refresh was not stored")
	}
}

func TestIDT17_RefreshedIDTokenForAnotherUserEndsTheSession(t *testing.T) {
	for _, tc := range []struct {
		name   string
		claims map[string]any
	}{
		{"other subject", map[string]any{"sub": "someone-else"}},
		{"other issuer", map[string]any{"iss": "https://evil.example"}},
		{"other audience", map[string]any{"aud": "other-client"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newTestClock()
			g := newGateway(t, withClock(clk, 5*time.Minute))
			g.mustLogin("bindid-known")
			g.op.SetFaults(oidctest.Faults{RefreshIDTokenClaims: tc.claims})
			clk.Advance(5 * time.Minute)
			calls := g.upstream.Calls()
			if resp, _ := g.api("/app"); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("refresh with an ID token of %s: %d, want 401", tc.name, resp.StatusCode)
			}
			if g.store.Len() != 0 || g.upstream.Calls() != calls {
				t.Error("the session survived, or the upstream was called")
			}
		})
	}
	t.Run("no ID token in the refresh response", func(t *testing.T) {
		clk := newTestClock()
		g := newGateway(t, withClock(clk, 5*time.Minute))
		g.mustLogin("bindid-known")
		before := g.stored()
		g.op.SetFaults(oidctest.Faults{RefreshIDTokenOmit: true})
		clk.Advance(5 * time.Minute)
		if resp, _ := g.api("/app"); resp.StatusCode != http.StatusOK {
			t.Fatalf("refresh without an ID token: %d, want 200", resp.StatusCode)
		}
		after := g.stored()
		if after.IDToken != before.IDToken || after.Subject != before.Subject || after.RefreshedAt.IsZero() {
			t.Error("refresh without an ID token: want the old ID token and identity kept, and the refresh recorded")
		}
	})
}

func TestTrustRefreshRenewsWhileTheAccessTokenIsValid(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withClock(clk, time.Hour), func(h *Handler, _ *oidctest.Options) {
		h.TrustRefresh = caddy.Duration(10 * time.Minute)
	})
	g.mustLogin("bindid-known")
	clk.Advance(9 * time.Minute)
	g.api("/app")
	if g.op.Counts().Refresh != 0 {
		t.Fatal("refreshed before trust_refresh was due")
	}
	clk.Advance(2 * time.Minute)
	g.api("/app")
	if g.op.Counts().Refresh != 1 || g.op.Counts().Userinfo < 2 {
		t.Errorf("trust_refresh: %d refreshes, %d userinfo calls; want 1 and the userinfo fetched again", g.op.Counts().Refresh, g.op.Counts().Userinfo)
	}
}

// serveLike wraps h as Caddy would for a test server: a replacer and the vars map.
func serveLike(h *Handler, next caddyhttp.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer())
		ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
		if err := h.ServeHTTP(w, r.WithContext(ctx), next); err != nil {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
}

// twoInstances is the gateway g plus a second instance: another Handler with the same
// configuration, each with its own Redis client (and local cache) on one Redis.
func twoInstances(t *testing.T, g *gateway) (b *httptest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	newStore := func() *session.RedisStore {
		rs, err := session.NewRedisStore(session.RedisOptions{Addrs: []string{srv.Addr()}, Secrets: [][]byte{[]byte(testSecret)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rs.Close() })
		return rs
	}
	g.h.store = newStore()
	h2 := &Handler{Issuer: g.h.Issuer, ClientID: g.h.ClientID, ClientSecret: g.h.ClientSecret, Secrets: g.h.Secrets,
		InsecureCookie: true, TrustRefresh: g.h.TrustRefresh}
	h2.now = g.h.now
	if err := provision(t, h2); err != nil {
		t.Fatal(err)
	}
	h2.store = newStore()
	b = httptest.NewServer(serveLike(h2, g.upstream))
	t.Cleanup(b.Close)
	return b
}

func TestOPS10_ConcurrentRefreshOnTwoInstancesSharingRedis(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withClock(clk, 5*time.Minute))
	b := twoInstances(t, g)
	g.mustLogin("bindid-known")
	cookie := g.h.sessions.cookieName + "=" + g.sessionCookie(g.browser)
	// A slow provider widens the window in which the requests overlap.
	g.op.SetFaults(oidctest.Faults{RefreshDelay: 300 * time.Millisecond})
	clk.Advance(5 * time.Minute)

	const n = 50
	var wg sync.WaitGroup
	statuses := make([]int, n)
	start := make(chan struct{})
	for i := range n {
		base := g.srv.URL
		if i%2 == 1 {
			base = b.URL
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest(http.MethodGet, base+"/app", nil)
			req.Header.Set("Accept", "application/json")
			req.Header.Set("Cookie", cookie)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusOK {
			t.Errorf("request %d (instance %c) = %d, want 200", i, "ab"[i%2], st)
		}
	}
	c := g.op.Counts()
	t.Logf("50 parallel requests at expiry on two instances: %d refresh grant(s) at the provider, %d reused refresh tokens", c.Refresh, c.RefreshReuse)
	if c.Refresh != 1 || c.RefreshReuse != 0 {
		t.Errorf("refresh grants = %d, reuses = %d; want exactly 1 and 0", c.Refresh, c.RefreshReuse)
	}
}

// A back-channel logout received by one instance ends the session on the other, whose local
// cache held it (SES-06 across instances); the test reports how long that took.
func TestLO01_BackchannelLogoutReachesTheOtherInstance(t *testing.T) {
	g := newGateway(t)
	b := twoInstances(t, g)
	g.mustLogin("bindid-known")
	cookie := g.h.sessions.cookieName + "=" + g.sessionCookie(g.browser)
	get := func(base string) int {
		req, _ := http.NewRequest(http.MethodGet, base+"/app", nil)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Cookie", cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if get(b.URL) != http.StatusOK {
		t.Fatal("the second instance does not see the session")
	}
	tok := g.logoutToken(oidctest.SubjectBindIDKnown, "", nil, oidctest.LogoutTokenOptions{})
	start := time.Now()
	if resp := g.postLogoutToken(url.Values{"logout_token": {tok}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("back-channel logout at instance A: %d", resp.StatusCode)
	}
	accepted := time.Since(start)
	for get(b.URL) != http.StatusUnauthorized {
		if time.Since(start) > 3*time.Second {
			t.Fatal("instance B still accepts the session 3 s after the logout at A")
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("back-channel logout: A answered 200 after %v; B refused the old cookie %v after the POST", accepted.Round(time.Microsecond), time.Since(start).Round(time.Microsecond))
}

// A logout while a refresh of the same session is at the provider is not undone by the
// refresh's write (review finding: the session came back).
func TestSES06_LogoutDuringRefreshStaysALogout(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withClock(clk, 5*time.Minute))
	g.mustLogin("bindid-known")
	cookie := g.sessionCookie(g.browser)
	g.op.SetFaults(oidctest.Faults{RefreshDelay: 400 * time.Millisecond})
	clk.Advance(5 * time.Minute)
	done := make(chan int)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/app", nil)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Cookie", g.h.sessions.cookieName+"="+cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	waitFor(t, "the refresh to reach the provider", func() bool { return g.op.Counts().Refresh == 1 })
	if resp := g.postLogoutToken(url.Values{"logout_token": {g.logoutToken(oidctest.SubjectBindIDKnown, "", nil, oidctest.LogoutTokenOptions{})}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("back-channel logout during the refresh: %d", resp.StatusCode)
	}
	if st := <-done; st != http.StatusUnauthorized {
		t.Errorf("the request whose refresh raced the logout: %d, want 401", st)
	}
	if g.store.Len() != 0 {
		t.Fatal("the refresh brought the logged-out session back")
	}
	g.assertUnauthenticated(cookie)
}

// LO-01 with the provider's clock behind the gateway's: the logout token's iat and the
// session's auth_time are compared on the provider's clock, so the logout still applies
// (review finding: 200 "no session matched" and the session stayed).
func TestLO01_BackchannelLogoutWithProviderClockBehind(t *testing.T) {
	behind := &testClock{t: time.Now().Add(-150 * time.Second)}
	g := newGateway(t, func(h *Handler, o *oidctest.Options) {
		o.Now = behind.Now
		h.ClockLeeway = caddy.Duration(5 * time.Minute)
	})
	g.mustLogin("bindid-known")
	behind.Advance(30 * time.Second)
	if resp := g.postLogoutToken(url.Values{"logout_token": {g.logoutToken(oidctest.SubjectBindIDKnown, "", nil, oidctest.LogoutTokenOptions{})}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if g.store.Len() != 0 {
		t.Error("a logout from a provider whose clock is behind did not end the session")
	}
}

// A claim the provider no longer sends goes away at refresh (review finding: the old value
// stayed forever); an alias the session carries stays.
func TestRefreshDropsClaimsTheProviderNoLongerSends(t *testing.T) {
	clk := newTestClock()
	g := newGateway(t, withClock(clk, 5*time.Minute), withStandardHeaders("all"), func(h *Handler, _ *oidctest.Options) { h.Userinfo = "off" })
	g.mustLogin("bindid-known")
	if _, ok := g.stored().Claims["bindid_network_info"]; !ok {
		t.Fatal("the login has no bindid_network_info")
	}
	if g.upstream.Header().Get("X-Trust-Device-Count") != "2" {
		t.Fatalf("before the refresh X-Trust-Device-Count = %q, want 2", g.upstream.Header().Get("X-Trust-Device-Count"))
	}
	g.op.SetFaults(oidctest.Faults{RefreshIDTokenClaims: map[string]any{"bindid_network_info": nil, "bindid_alias": nil}})
	clk.Advance(5 * time.Minute)
	if resp, _ := g.api("/app"); resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %d", resp.StatusCode)
	}
	c := g.stored().Claims
	if _, ok := c["bindid_network_info"]; ok {
		t.Error("bindid_network_info survived a refresh whose ID token no longer has it")
	}
	if c["bindid_alias"] != "username@domain" {
		t.Errorf("the linked alias was lost at refresh: %v", c["bindid_alias"])
	}
	if g.upstream.Header().Get("X-Trust-Device-Count") != "" {
		t.Error("the upstream still gets the trust signal the provider withdrew")
	}
}
