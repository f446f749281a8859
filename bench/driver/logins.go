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

	"github.com/trustgate/trustgate/internal/oidctest"
)

// Logins under load (DESIGN.md: the gateway's CPU per login at most 0.5 ms): after the
// request rounds, -login-clients clients sign in to the trustgate sites again and again
// for -logins each, the whole code flow as the scripted login does it (the protected URL,
// the redirect to the provider, which signs bindid-known in without a page, the callback,
// the first authenticated request). Caddy's CPU from /proc, divided by the logins, is the
// gateway's own cost: the provider and the clients run in the driver's process, whose CPU
// is reported beside it. With -peer-logins the same clients sign in to Apache
// mod_auth_openidc (apache.go) on the same provider, in the same rounds.

// loginTarget is a server the login load signs in to: a trustgate site of Caddy, or the peer.
type loginTarget struct {
	key        string // "b", "c" or peerKey
	url        string
	cookieName string                        // the session cookie a login must leave
	cpu        func() (time.Duration, error) // the server's CPU time so far (all its processes)
}

// loginResult is one login run of one target.
type loginResult struct {
	key                  string
	round                int
	logins, failures     int64
	wall                 time.Duration
	serverCPU, driverCPU time.Duration
	firstFailure         string
	op                   oidctest.Counts // the provider's requests during the run
}

// loginGoalUs is DESIGN.md's budget for the gateway's CPU per login.
const loginGoalUs = 500

// peerGoal is the goal for trustgate's logins per second over mod_auth_openidc's.
const peerGoal = 1.5

func (b *bench) peerEnabled() bool { return b.o.peerLogins && b.o.loginDuration > 0 }

// measureLogins runs the login load against each trustgate site among the configurations
// with the memory store and with Redis ((b) and (c)), and the peer, -login-rounds times,
// alternating the targets and the one that starts, so that drifts of the machine spread over
// all of them.
func (b *bench) measureLogins(ctx context.Context) error {
	if b.o.loginDuration <= 0 {
		return nil
	}
	var targets []loginTarget
	for _, key := range []string{"b", "c"} {
		if s := b.sites[key]; s != nil && strings.Contains(b.o.configs, key) {
			targets = append(targets, loginTarget{key: key, url: s.url(), cookieName: s.cookieName, cpu: b.caddy.cpuTime})
		}
	}
	if b.peerEnabled() {
		b.logf("starting the peer, Apache mod_auth_openidc, on %s", b.apache.url())
		if err := b.startApache(ctx); err != nil {
			return fmt.Errorf("the peer (Apache mod_auth_openidc): %w", err)
		}
		defer b.stopApache()
		targets = append(targets, b.peerTarget())
	}
	for round := range max(1, b.o.loginRounds) {
		for _, t := range rotate(targets, round) {
			b.logf("login round %d/%d (%s): %d clients for %s", round+1, b.o.loginRounds, t.key, b.o.loginClients, b.o.loginDuration)
			r, err := b.loginRun(ctx, t, b.o.loginDuration)
			if err != nil {
				return fmt.Errorf("(%s) logins: %w", t.key, err)
			}
			r.round = round
			if r.failures > 0 {
				b.problem("(%s) %d of %d logins failed under load; the first: %s", t.key, r.failures, r.logins+r.failures, r.firstFailure)
			}
			for _, p := range []*proc{b.caddy, b.upstream, b.redis, b.apacheProc()} {
				if p != nil && p.exited() {
					return p.exitErr()
				}
			}
			b.logf("login round %d/%d (%s): %.0f logins/s, server %.0f µs and driver %.0f µs of CPU per login, %d failed",
				round+1, b.o.loginRounds, t.key, float64(r.logins)/r.wall.Seconds(), perLogin(r.serverCPU, r), perLogin(r.driverCPU, r), r.failures)
			b.logins = append(b.logins, r)
		}
	}
	return nil
}

func (b *bench) apacheProc() *proc {
	if b.apache == nil {
		return nil
	}
	return b.apache.proc
}

func perLogin(cpu time.Duration, r *loginResult) float64 {
	return float64(cpu.Microseconds()) / float64(max(r.logins, 1))
}

// loginRun runs the login clients against t for d.
func (b *bench) loginRun(ctx context.Context, t loginTarget, d time.Duration) (*loginResult, error) {
	r := &loginResult{key: t.key}
	serverBefore, err := t.cpu()
	if err != nil {
		return nil, err
	}
	selfBefore := selfCPU()
	opBefore := b.op.Counts()
	start := time.Now()
	deadline := start.Add(d)
	var logins, failures atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	for range b.o.loginClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := loginOnce(ctx, t); err != nil {
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
	serverAfter, err := t.cpu()
	if err != nil {
		return nil, err
	}
	r.serverCPU, r.driverCPU = serverAfter-serverBefore, selfCPU()-selfBefore
	opAfter := b.op.Counts()
	r.op = oidctest.Counts{Authorize: opAfter.Authorize - opBefore.Authorize, Token: opAfter.Token - opBefore.Token,
		Userinfo: opAfter.Userinfo - opBefore.Userinfo, Discovery: opAfter.Discovery - opBefore.Discovery, JWKS: opAfter.JWKS - opBefore.JWKS}
	r.logins, r.failures = logins.Load(), failures.Load()
	return r, ctx.Err()
}

// loginOnce is one complete login at t with a fresh browser (cookie jar): it must end at
// the upstream's /__probe, which must have received the user's subject, with t's session
// cookie in the jar.
func loginOnce(ctx context.Context, t loginTarget) error {
	jar, body, err := signIn(ctx, t.url, "/__probe")
	if err != nil {
		return err
	}
	subject, _, err := parseProbe(body)
	if err != nil {
		return fmt.Errorf("upstream probe: %w", err)
	}
	if subject != oidctest.SubjectBindIDKnown {
		return fmt.Errorf("after the login the upstream saw subject %q, want %q", subject, oidctest.SubjectBindIDKnown)
	}
	if sessionCookie(jar, t.url, t.cookieName) == nil {
		return fmt.Errorf("no %s cookie after the login", t.cookieName)
	}
	return nil
}

// loginTransport is the scripted browsers' connection pool. Like a browser, each keeps its
// connections to the server and the provider open between the requests of a login
// (http.DefaultTransport keeps 2 idle per host, so 8 clients would keep opening new ones).
var loginTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}()

// signIn signs in at the server at base as a browser would, with a fresh cookie jar: it
// navigates to path, follows the redirects through the provider (which logs bindid-known in
// without a page) and back (the callback, then path again), and returns the jar and the
// upstream's answer, which must be 200.
func signIn(ctx context.Context, base, path string) (*cookiejar.Jar, string, error) {
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: loginTransport}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
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

// sessionCookie is the cookie called name that jar holds for base, or nil.
func sessionCookie(jar *cookiejar.Jar, base, name string) *http.Cookie {
	u, _ := url.Parse(base + "/")
	for _, ck := range jar.Cookies(u) {
		if ck.Name == name {
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

// loginStats is one target's login runs: medians over the runs, and their min–max.
type loginStats struct {
	rate, server, serverCores, driver, driverCores []float64
	byRound                                        map[int]float64 // logins/s per round
	logins, failed                                 int64
	op                                             oidctest.Counts // the provider's requests, all runs
}

func (b *bench) loginStats(key string) *loginStats {
	st := &loginStats{byRound: map[int]float64{}}
	for _, r := range b.logins {
		if r.key != key {
			continue
		}
		rate := float64(r.logins) / r.wall.Seconds()
		st.rate = append(st.rate, rate)
		st.byRound[r.round] = rate
		st.server = append(st.server, perLogin(r.serverCPU, r))
		st.serverCores = append(st.serverCores, cores(r.serverCPU, r.wall))
		st.driver = append(st.driver, perLogin(r.driverCPU, r))
		st.driverCores = append(st.driverCores, cores(r.driverCPU, r.wall))
		st.logins += r.logins
		st.failed += r.failures
		st.op.Authorize += r.op.Authorize
		st.op.Token += r.op.Token
		st.op.Userinfo += r.op.Userinfo
		st.op.Discovery += r.op.Discovery
		st.op.JWKS += r.op.JWKS
	}
	if len(st.rate) == 0 {
		return nil
	}
	return st
}

// loginReport is the Logins section of RESULTS.md: per target the medians over the login
// rounds, and their min–max; with the peer, trustgate's logins per second over the peer's.
func (b *bench) loginReport(p func(string, ...any)) {
	if len(b.logins) == 0 {
		return
	}
	o := b.o
	peer := b.loginStats(peerKey)
	p("\n### Logins\n\n")
	p("%d clients sign in again and again, %s per run, %s per server, the servers alternating (the one that starts rotates each round); each login is the whole code flow with a fresh cookie jar and kept-alive connections: the protected URL, the redirect to the provider, the callback (code exchange with PKCE, ID token verification, userinfo, a new server-side session), the first request to the upstream, which must receive the user's subject (`/__probe`). ",
		o.loginClients, o.loginDuration, plural(o.loginRounds, "run"))
	p("The provider is `internal/oidctest` in its benchmark mode (`oidctest.NewBench`), in the driver's process: it signs the ID token %s with a fixed, pre-generated key (%s) and answers from memory. ", o.opAlg, map[string]string{"RS256": "RSA 2048", "ES256": "P-256"}[o.opAlg])
	if peer != nil {
		p("The peer is Apache httpd with mod_auth_openidc on the same machine and provider, configured like (b): its default server-side session cache in shared memory, PKCE, the same scopes, the subject and alias sent upstream as the same two headers, `ProxyPass` to the same upstream; event MPM, 2 processes × 32 threads (configuration below). ")
	}
	p("Server CPU is from `/proc` (Caddy's process; all of Apache's); the driver's (the provider and the clients) is beside it, so it shows how much of the %d cores the provider and the clients took. Medians over the runs, min–max in brackets. Goal (DESIGN.md): at most %d µs of gateway CPU per login.\n\n",
		b.facts.cores, loginGoalUs)
	p("| | server | logins | logins/s | server CPU per login | goal | server cores | driver CPU per login (provider, clients) | driver cores | provider requests per login | failed |\n|---|---|---:|---:|---:|---|---:|---:|---:|---|---:|\n")
	for _, key := range []string{"b", "c", peerKey} {
		st := b.loginStats(key)
		if st == nil {
			continue
		}
		name := map[string]string{"b": "trustgate, memory store", "c": "trustgate, Redis", peerKey: "Apache mod_auth_openidc, shm cache"}[key]
		label := "(" + key + ")"
		verdict := "—"
		if key == peerKey {
			label = "peer"
		} else if median(st.server) > loginGoalUs {
			verdict = "**not met**"
		} else {
			verdict = "met"
		}
		n := float64(max(st.logins+st.failed, 1))
		reqs := fmt.Sprintf("%.2f authorize, %.2f token, %.2f userinfo", float64(st.op.Authorize)/n, float64(st.op.Token)/n, float64(st.op.Userinfo)/n)
		if meta := st.op.Discovery + st.op.JWKS; meta > 0 {
			reqs += fmt.Sprintf(", %d discovery/JWKS in all", meta)
		}
		p("| %s | %s | %d | %.0f [%.0f–%.0f] | %.0f µs [%.0f–%.0f] | %s | %.2f | %.0f µs | %.2f | %s | %d |\n", label, name, st.logins,
			median(st.rate), slices.Min(st.rate), slices.Max(st.rate), median(st.server), slices.Min(st.server), slices.Max(st.server), verdict,
			median(st.serverCores), median(st.driver), median(st.driverCores), reqs, st.failed)
	}
	if peer == nil {
		p("\nThe peer (Apache mod_auth_openidc) was not run (`-peer-logins=false`).\n")
		return
	}
	var ratios []string
	for _, key := range []string{"b", "c"} {
		st := b.loginStats(key)
		if st == nil {
			continue
		}
		var rs []float64
		for round, rate := range st.byRound {
			if pr, ok := peer.byRound[round]; ok && pr > 0 {
				rs = append(rs, rate/pr)
			}
		}
		if len(rs) == 0 {
			continue
		}
		verdict := "met"
		if median(rs) < peerGoal {
			verdict = "**not met**"
		}
		ratios = append(ratios, fmt.Sprintf("(%s) **%.2f×** [%.2f–%.2f] %s", key, median(rs), slices.Min(rs), slices.Max(rs), verdict))
	}
	if len(ratios) > 0 {
		p("\nLogins per second, trustgate ÷ mod_auth_openidc (in each round, the site's logins/s over the peer's of the same round; median [min–max]), against the goal of at least %.1f×: %s.\n", peerGoal, strings.Join(ratios, "; "))
	}
	p("\n%s, mod_auth_openidc %s (Debian package libapache2-mod-auth-openidc); its error log (LogLevel warn, Debian's default) had %d lines (%s/apache-error.log)",
		b.facts.apacheVersion, b.facts.moduleVersion, b.facts.apacheLogLines, o.workDir)
	if n := b.facts.peerEvictions; n > 0 {
		shm := "its default of 500 entries"
		if o.peerShmMax > 0 {
			shm = fmt.Sprintf("`OIDCCacheShmMax %d`", o.peerShmMax)
		}
		p(", %d of them the warning that the shm cache (%s, searched linearly under one lock on every get and set) dropped an entry younger than an hour: under this load, sessions and ID-token replay records are evicted within seconds of their creation. A deployment expecting this rate would enlarge the cache (`-peer-shm-max`; each entry reserves about 16 KB and is scanned) or use Redis or memcache", n, shm)
	}
	p(".\n")
}
