package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Logins under load (DESIGN.md: the gateway's CPU per login at most 0.5 ms): after the
// request rounds, -login-clients clients sign in to the trustgate sites again and again
// for -logins each, the whole code flow as the scripted login does it (the protected URL,
// the redirect to the provider, which signs bindid-known in without a page, the callback,
// the first authenticated request). Caddy's CPU from /proc, divided by the logins, is the
// gateway's own cost: the provider and the clients run in the driver's process, whose CPU
// is reported beside it.

// loginResult is one site's login run.
type loginResult struct {
	key                 string
	logins, failures    int64
	wall                time.Duration
	caddyCPU, driverCPU time.Duration
	firstFailure        string
}

// loginGoalUs is DESIGN.md's budget for the gateway's CPU per login.
const loginGoalUs = 500

// measureLogins runs the login load against each trustgate site among the configurations
// with the memory store and with Redis ((b) and (c)), -login-rounds times, alternating the
// sites and the one that starts, so that drifts of the machine spread over both.
func (b *bench) measureLogins(ctx context.Context) error {
	if b.o.loginDuration <= 0 {
		return nil
	}
	var keys []string
	for _, key := range []string{"b", "c"} {
		if b.sites[key] != nil && strings.Contains(b.o.configs, key) {
			keys = append(keys, key)
		}
	}
	for round := range max(1, b.o.loginRounds) {
		for _, key := range rotate(keys, round) {
			b.logf("login round %d/%d (%s): %d clients for %s", round+1, b.o.loginRounds, key, b.o.loginClients, b.o.loginDuration)
			r, err := b.loginRun(ctx, key, b.sites[key])
			if err != nil {
				return fmt.Errorf("(%s) logins: %w", key, err)
			}
			if r.failures > 0 {
				b.problem("(%s) %d of %d logins failed under load; the first: %s", key, r.failures, r.logins+r.failures, r.firstFailure)
			}
			b.logins = append(b.logins, r)
		}
	}
	return nil
}

func (b *bench) loginRun(ctx context.Context, key string, s *site) (*loginResult, error) {
	r := &loginResult{key: key}
	caddyBefore, err := b.caddy.cpuTime()
	if err != nil {
		return nil, err
	}
	selfBefore := selfCPU()
	start := time.Now()
	deadline := start.Add(b.o.loginDuration)
	var logins, failures atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	for range b.o.loginClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := loginOnce(ctx, s); err != nil {
					failures.Add(1)
					once.Do(func() { r.firstFailure = err.Error() })
					continue
				}
				logins.Add(1)
			}
		}()
	}
	wg.Wait()
	r.wall = time.Since(start)
	caddyAfter, err := b.caddy.cpuTime()
	if err != nil {
		return nil, err
	}
	r.caddyCPU, r.driverCPU = caddyAfter-caddyBefore, selfCPU()-selfBefore
	r.logins, r.failures = logins.Load(), failures.Load()
	return r, ctx.Err()
}

// loginOnce is one complete login at s with a fresh browser (cookie jar): it must end at
// the upstream with a session cookie.
func loginOnce(ctx context.Context, s *site) error {
	jar, _, err := signIn(ctx, s, "/__login")
	if err != nil {
		return err
	}
	if sessionCookie(jar, s) == nil {
		return fmt.Errorf("no %s cookie after the login", s.cookieName)
	}
	return nil
}

// signIn signs in at s as a browser would, with a fresh cookie jar: it navigates to path,
// follows the redirects through the provider (which logs bindid-known in without a page)
// and back, and returns the jar and the upstream's answer, which must be 200.
func signIn(ctx context.Context, s *site, path string) (*cookiejar.Jar, string, error) {
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url()+path, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("the login ended at %s with %s: %.300s", resp.Request.URL.Path, resp.Status, body)
	}
	return jar, string(body), nil
}

// sessionCookie is s's session cookie in jar, or nil.
func sessionCookie(jar *cookiejar.Jar, s *site) *http.Cookie {
	u, _ := url.Parse(s.url() + "/")
	for _, ck := range jar.Cookies(u) {
		if ck.Name == s.cookieName {
			return ck
		}
	}
	return nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loginReport is the Logins section of RESULTS.md: per site the medians over the login
// rounds, and their min–max.
func (b *bench) loginReport(p func(string, ...any)) {
	if len(b.logins) == 0 {
		return
	}
	p("\n## Logins\n\n")
	p("%d clients sign in again and again, %s per run, %s per site, the sites alternating; each login is the whole code flow with a fresh cookie jar: the protected URL, the redirect to the provider (in the driver's process; it signs the ID token RS256 with a 2048-bit key), the callback (code exchange, ID token verification, userinfo, a new session), the first request to the upstream. Caddy's CPU per login is the gateway's own cost; the driver's (the provider and the clients) is beside it. Medians over the runs, min–max in brackets. Goal (DESIGN.md): at most %d µs of gateway CPU per login.\n\n",
		b.o.loginClients, b.o.loginDuration, plural(b.o.loginRounds, "run"), loginGoalUs)
	p("| | store | logins | logins/s | Caddy CPU per login | goal | driver CPU per login (provider, clients) | failed |\n|---|---|---:|---:|---:|---|---:|---:|\n")
	for _, key := range []string{"b", "c"} {
		var rate, caddy, driver []float64
		var logins, failed int64
		for _, r := range b.logins {
			if r.key != key {
				continue
			}
			n := float64(max(r.logins, 1))
			rate = append(rate, float64(r.logins)/r.wall.Seconds())
			caddy = append(caddy, float64(r.caddyCPU.Microseconds())/n)
			driver = append(driver, float64(r.driverCPU.Microseconds())/n)
			logins += r.logins
			failed += r.failures
		}
		if len(rate) == 0 {
			continue
		}
		per := median(caddy)
		verdict := "met"
		if per > loginGoalUs {
			verdict = "**not met**"
		}
		store := map[string]string{"b": "memory", "c": "Redis"}[key]
		p("| (%s) | %s | %d | %.0f [%.0f–%.0f] | %.0f µs [%.0f–%.0f] | %s | %.0f µs | %d |\n", key, store, logins,
			median(rate), slices.Min(rate), slices.Max(rate), per, slices.Min(caddy), slices.Max(caddy), verdict, median(driver), failed)
	}
	p("\nNot measured here yet: the same clients against Apache mod_auth_openidc on the same provider (DESIGN.md asks for 1.5× its logins per second).\n")
}
