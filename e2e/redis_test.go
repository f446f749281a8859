package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trustgate/trustgate/internal/redistest"
)

// startRedisInstance runs one more Caddy process: a gateway on port whose sessions live
// in the Redis at redisAddr.
func startRedisInstance(t *testing.T, port int, redisAddr string) string {
	t.Helper()
	url := fmt.Sprintf("http://localhost:%d", port)
	caddyfile := fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
}
%s {
	trustgate {
		issuer %s
		client_id %s
		client_secret {env.E2E_CLIENT_SECRET}
		secret {env.E2E_COOKIE_SECRET}
		scopes openid email phone profile address bindid
		cookie_name tg_redis
		provider bindid
		insecure_cookie
		session_store redis {
			addrs %s
			dial_timeout 500ms
			read_timeout 500ms
		}
	}
	reverse_proxy %s
}
`, url, e2e.opURL, redisClientID, redisAddr, strings.TrimPrefix(e2e.upstream.URL, "http://"))
	runCaddy(t, caddyfile, fmt.Sprintf("caddy-redis-%d.log", port), url)
	return url
}

// Two gateway instances share one Redis: a login on A is a session on B, a logout on A is
// refused on B within a second, a Redis crash answers 503 (never a login, never the
// upstream), and once Redis is back the session resumes without restarting Caddy.
func TestE2ERedisTwoInstances(t *testing.T) {
	redis := redistest.Start(t, redistest.WithArgs("--appendonly", "yes", "--appendfsync", "always"))
	a := startRedisInstance(t, e2e.redisPorts[0], redis.Addr())
	bURL := startRedisInstance(t, e2e.redisPorts[1], redis.Addr())

	br := newBrowser(t)
	e := br.login(a+"/on-a", "bindid-known")
	// No standard_headers line here: the default (basic) sends who the user is, not the
	// rest of the profile.
	wantHeaders(t, e.Headers, map[string]string{"X-Auth-Subject": "123e4567-e89b-12d3-a456-426652340000", "X-Auth-Alias": "username@domain"},
		"X-Auth-Acr", "X-Auth-Phone", "X-Auth-Issuer", "X-Trust-Device-Count", "X-Trust-New-Device")

	// Instance B, in another tab of the same browser (same cookies): signed in, no login.
	tabB, cancel := chromedp.NewContext(br.ctx)
	defer cancel()
	b := &browser{t: t, ctx: tabB, tab: tabB}
	b.do("opening instance B", chromedp.Navigate(bURL+"/on-b"))
	if got := b.pageEcho(); got.Path != "/on-b" || got.Headers.Get("X-Auth-Subject") != "123e4567-e89b-12d3-a456-426652340000" {
		t.Fatalf("instance B answered %q for %q, want the session made on A", got.Headers.Get("X-Auth-Subject"), got.Path)
	}
	if status, _ := b.fetch(http.MethodGet, "/api", map[string]string{"Accept": "application/json"}); status != http.StatusOK {
		t.Fatalf("B with A's session = %d, want 200", status)
	}

	// Logout on A; B refuses the session within a second.
	if status, _ := br.fetch(http.MethodPost, "/.trustgate/logout", map[string]string{"Accept": "application/json"}); status != http.StatusOK {
		t.Fatalf("logout on A = %d", status)
	}
	start := time.Now()
	for {
		status, _ := b.fetch(http.MethodGet, "/api", map[string]string{"Accept": "application/json"})
		if status == http.StatusUnauthorized {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("B still accepts the session %v after the logout on A (status %d), want refused within 1s", time.Since(start), status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("logout on A refused on B after %v", time.Since(start).Round(time.Millisecond))

	// Logging out of the gateway leaves the provider's own session (RP-initiated logout is
	// another step): a new navigation on B signs in again without a login page.
	e = b.navigateTo(bURL + "/again")
	if e.Headers.Get("X-Auth-Subject") != "123e4567-e89b-12d3-a456-426652340000" {
		t.Fatalf("second login on B: %v", e.Headers)
	}

	// Redis crashes.
	redis.Stop()
	time.Sleep(1100 * time.Millisecond) // past the 1 s trust of local copies without invalidations
	status, body := b.fetch(http.MethodGet, "/api", map[string]string{"Accept": "application/json"})
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "store_unavailable") {
		t.Fatalf("with Redis down: %d %.200s, want 503 store_unavailable", status, body)
	}
	redis.Restart(t)
	restarted := time.Now()
	for {
		status, _ = b.fetch(http.MethodGet, "/api", map[string]string{"Accept": "application/json"})
		if status == http.StatusOK {
			break
		}
		if time.Since(restarted) > 10*time.Second {
			t.Fatalf("after Redis came back: %d, want the session to resume without restarting Caddy", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("session resumed %v after Redis restarted", time.Since(restarted).Round(time.Millisecond))
}

// navigateTo opens url and waits until the browser is there (after any redirects through
// the provider), returning the upstream's echo.
func (b *browser) navigateTo(url string) echoed {
	b.t.Helper()
	b.do("opening "+url, chromedp.Navigate(url))
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](fmt.Sprintf(`location.href === %q`, url), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		b.t.Fatalf("the browser is at %s, want %s", loc, url)
	}
	return b.pageEcho()
}
