//go:build chaos

package fault

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/redistest"
)

// chaosSentinelFailover kills the Redis primary of a Sentinel group under load (signed-in
// requests and fresh logins) and proves:
//   - requests fail for at most a few seconds (while the sentinels promote the replica), only
//     with 503 and Retry-After, never a redirect to the login, a 401 or a hang, and then
//     succeed again by themselves;
//   - no session is lost: every session whose login completed more than a second before the
//     kill is still accepted on every instance. Sessions written in the last instant may not
//     have reached the replica (replication is asynchronous and the store does not WAIT for
//     it); how many were lost is reported, not asserted.
//
// The instances run with local_cache_ttl off, so that every request needs Redis: with the
// local cache (the default) warm requests would not notice the failover at all.
func chaosSentinelFailover(t *testing.T, rep *chaosReport, nUsers int) {
	ctx := t.Context()
	rs := redistest.StartSentinel(t, "trustgate")
	op := oidctest.NewTest(t, oidctest.Options{})
	op.SetAutoLogin(oidctest.SubjectBindIDKnown)
	gws := startGateways(t, 3, gatewayOptions{issuer: op.Issuer(), secret: newSecret(), store: storeConfig{
		"addrs " + strings.Join(rs.SentinelAddrs(), " "), "master_name " + rs.MasterName(), "key_prefix chaos:", "local_cache_ttl off",
	}})
	sr := rep.add("Kill the Sentinel primary",
		fmt.Sprintf("Redis Sentinel (a primary, one replica, three sentinels, down-after-milliseconds 2000), `local_cache_ttl off` so that every request reads Redis. %d signed-in browsers send API requests (300/s) and fresh browsers sign in (about 10/s) while the primary is killed with SIGKILL.", nUsers))
	users := newBrowsers(nUsers)
	if err := loginAll(ctx, users, gws, op.Issuer(), 8); err != nil {
		t.Fatalf("signing in before the fault: %v", err)
	}

	ld := startLoad(ctx, users, gws, 8, 300)
	logins := startLoginStream(ctx, gws, op.Issuer(), 100*time.Millisecond)
	time.Sleep(3 * time.Second)
	killAt := time.Now()
	rs.Failover(t) // SIGKILL the primary; returns once every sentinel names the replica
	promoted := time.Since(killAt)
	time.Sleep(8 * time.Second)
	samples := ld.stop()
	fresh := logins.stop()

	es := summarize(samples)
	var loginFails []string
	loginFailStatuses := map[string]int{}
	for _, l := range fresh {
		if l.err != nil {
			loginFails = append(loginFails, l.err.Error())
			loginFailStatuses[l.status]++
		}
	}
	// Every session: the ones signed in before, and every fresh login that completed.
	type lostSession struct {
		loginBeforeKill time.Duration
		where           string
	}
	var lost []lostSession
	checked := 0
	all := append([]*browser(nil), users...)
	for _, l := range fresh {
		if l.err == nil {
			all = append(all, l.b)
		}
	}
	for _, u := range all {
		checked++
		for _, g := range gws {
			if r := u.api(ctx, g.URL(), "/after"); !good(r) {
				lost = append(lost, lostSession{loginBeforeKill: killAt.Sub(u.loginAt), where: fmt.Sprintf("%s: %v", g.name, r)})
				break
			}
		}
	}
	lostOld, lostRecent := 0, 0
	for _, l := range lost {
		if l.loginBeforeKill > time.Second {
			lostOld++
		} else {
			lostRecent++
		}
	}

	sr.measure("sentinels named the replica as primary", "%.1f s after the kill", promoted.Seconds())
	sr.measure("API requests during the run", "%d, %d failed", es.total, es.failed)
	sr.measure("longest error window (first to last failed request)", "%.1f s", es.window().Seconds())
	if es.failed > 0 {
		sr.measure("first / last failure after the kill", "%.1f s / %.1f s", es.first.Sub(killAt).Seconds(), es.last.Sub(killAt).Seconds())
	}
	sr.measure("statuses of the failed requests", "%s", es.statusList())
	sr.measure("fresh logins during the run", "%d, %d failed (%s)", len(fresh), len(loginFails), countList(loginFailStatuses))
	sr.measure("sessions checked after the failover", "%d on 3 instances each", checked)

	sr.check(t, es.window() <= 10*time.Second, "errors last at most a few seconds (≤ 10 s)", fmt.Sprintf("%.1f s", es.window().Seconds()),
		"requests kept failing long after the primary was killed: the store did not follow the failover soon")
	sr.check(t, es.otherThan503 == 0 && es.no503RetryAfter == 0, "every failure is a 503 with Retry-After",
		fmt.Sprintf("%d other statuses, %d 503s without Retry-After (%s)", es.otherThan503, es.no503RetryAfter, es.statusList()),
		"a store outage must answer 503 with Retry-After, never a login redirect, a 401 (a lost session) or a transport error; first: "+strings.Join(es.firstExamples, "; "))
	tail := 0
	for _, s := range samples {
		if s.end.After(killAt.Add(promoted+5*time.Second)) && !good(s.result) {
			tail++
		}
	}
	sr.check(t, tail == 0, "requests succeed again by themselves", fmt.Sprintf("%d failures later than 5 s after the promotion", tail),
		"the gateways did not recover from the failover without help")
	badLogins := 0
	for _, l := range fresh {
		if l.err != nil && !(strings.HasPrefix(l.status, "503 ") && strings.Contains(l.status, "Retry-After")) {
			badLogins++
		}
	}
	sr.check(t, badLogins == 0, "a login during the failover fails only with 503 and Retry-After", fmt.Sprintf("%d other failures (%s)", badLogins, countList(loginFailStatuses)),
		"a login whose session cannot be written must answer 503 with Retry-After, so the browser can try again")
	sr.check(t, lostOld == 0, "no session lost (logged in > 1 s before the kill)", fmt.Sprintf("%d of %d lost", lostOld, checked),
		"sessions that had long reached Redis were gone after the failover")
	sr.note("Sessions whose login completed within 1 s before the kill, or during the failover, and were lost: %d (not asserted: the store writes to the primary and does not wait for the replica, so a write in the last instant before a crash can be lost; on loopback replication takes well under a millisecond).", lostRecent)
	for i, l := range lost[:min(3, len(lost))] {
		t.Logf("lost session %d: logged in %v before the kill; %s", i+1, l.loginBeforeKill.Round(time.Millisecond), l.where)
	}
	if len(loginFails) > 0 {
		t.Logf("fresh logins that failed (%d): first: %s", len(loginFails), loginFails[0])
	}
}

// loginStream signs fresh browsers in, one every interval, round-robin over the instances.
type loginStream struct {
	mu     sync.Mutex
	done   []freshLogin
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type freshLogin struct {
	b      *browser
	err    error
	status string // the status of the failed step, for a failure
}

func startLoginStream(ctx context.Context, gws []*instance, issuer string, every time.Duration) *loginStream {
	ctx, cancel := context.WithCancel(ctx)
	ls := &loginStream{cancel: cancel}
	ls.wg.Add(1)
	go func() {
		defer ls.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 100000; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			ls.wg.Add(1)
			go func() {
				defer ls.wg.Done()
				b := newBrowser(i)
				nav := b.navigate(ctx, gws[i%len(gws)].URL(), "/", issuer)
				if ctx.Err() != nil {
					return
				}
				fl := freshLogin{b: b}
				if good(nav.final) && nav.authorizeHops == 1 {
					b.loggedIn, b.loginAt = true, time.Now()
				} else {
					fl.status = nav.final.String()
					fl.err = fmt.Errorf("login at %s: %v %.120q", gws[i%len(gws)].name, nav.final, nav.final.body)
				}
				ls.mu.Lock()
				ls.done = append(ls.done, fl)
				ls.mu.Unlock()
			}()
		}
	}()
	return ls
}

func (ls *loginStream) stop() []freshLogin {
	ls.cancel()
	ls.wg.Wait()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.done
}

// chaosRedisRestart restarts a standalone Redis with an empty data set under load: browsers
// keep navigating (Accept: text/html, following redirects through the provider) and proves:
//   - the sessions are gone: every browser is sent to the provider to sign in again;
//   - exactly once each, and never into a loop: after the restart each browser makes exactly
//     one round trip to the provider, and then its navigations succeed on every instance.
func chaosRedisRestart(t *testing.T, rep *chaosReport, nUsers int) {
	ctx := t.Context()
	rs := redistest.Start(t)
	op := oidctest.NewTest(t, oidctest.Options{})
	op.SetAutoLogin(oidctest.SubjectBindIDKnown)
	gws := startGateways(t, 3, gatewayOptions{issuer: op.Issuer(), secret: newSecret(), store: storeConfig{"addrs " + rs.Addr(), "key_prefix chaos:"}})
	sr := rep.add("Restart Redis with an empty data set",
		fmt.Sprintf("Standalone Redis (no persistence) with the default local cache (`local_cache_ttl 1m`). %d signed-in browsers navigate (HTML requests, about 150/s, redirects followed through the provider) while Redis is killed and started again empty on the same port.", nUsers))
	users := newBrowsers(nUsers)
	if err := loginAll(ctx, users, gws, op.Issuer(), 8); err != nil {
		t.Fatalf("signing in before the fault: %v", err)
	}

	type userLog struct {
		logins  int           // round trips to the provider after the restart
		relogin time.Duration // restart -> the first login after it
		navs    int
	}
	logs := make([]userLog, nUsers)
	var restartAt time.Time
	var mu sync.Mutex
	var failures []string
	failStatus := map[string]int{}
	lctx, cancel := context.WithCancel(ctx)
	p := newPacer(lctx, 150)
	var wg sync.WaitGroup
	var next int
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p.wait(lctx) {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				u := users[i%nUsers]
				if !u.mu.TryLock() {
					continue
				}
				inst := (i + i/nUsers) % len(gws)
				start := time.Now()
				nav := u.navigate(lctx, gws[inst].URL(), fmt.Sprintf("/page/%d", i), op.Issuer())
				u.mu.Unlock()
				if lctx.Err() != nil {
					return
				}
				mu.Lock()
				if !restartAt.IsZero() && start.After(restartAt) {
					l := &logs[u.id]
					l.navs++
					if nav.authorizeHops > 0 && l.logins == 0 {
						l.relogin = time.Since(restartAt)
					}
					l.logins += nav.authorizeHops
				}
				if !good(nav.final) {
					failures = append(failures, fmt.Sprintf("browser %d at %s after %d hops: %v", u.id, gws[inst].name, nav.hops, nav.final))
					failStatus[nav.final.String()]++
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(3 * time.Second)
	mu.Lock()
	restartAt = time.Now()
	mu.Unlock()
	rs.Restart(t) // SIGKILL, then the same port with an empty data set
	restarted := time.Since(restartAt)
	// Until every browser has signed in again and made 5 more navigations, at most 90 s
	// (the local cache keeps a session at most a minute).
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		doneAll := true
		for _, l := range logs {
			if l.logins == 0 || l.navs < 6 {
				doneAll = false
				break
			}
		}
		mu.Unlock()
		if doneAll {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()

	zero, one, more := 0, 0, 0
	var slowest time.Duration
	for _, l := range logs {
		switch {
		case l.logins == 0:
			zero++
		case l.logins == 1:
			one++
		default:
			more++
		}
		slowest = max(slowest, l.relogin)
	}
	loops := 0
	for _, f := range failures {
		if strings.Contains(f, "redirect loop") {
			loops++
		}
	}
	// After the load: every browser is signed in (with its new session) on every instance.
	notSignedIn := 0
	for _, u := range users {
		for _, g := range gws {
			if r := u.api(ctx, g.URL(), "/after"); !good(r) {
				notSignedIn++
				break
			}
		}
	}
	sr.measure("Redis killed and answering again", "%.2f s", restarted.Seconds())
	sr.measure("browsers with 0 / 1 / more logins after the restart", "%d / %d / %d", zero, one, more)
	sr.measure("longest time from the restart to a browser's new login", "%.1f s", slowest.Seconds())
	sr.measure("navigations that did not end at the page", "%d (%s)", len(failures), countList(failStatus))
	sr.check(t, zero == 0, "sessions are gone: every browser signs in again", fmt.Sprintf("%d of %d never sent to the provider", zero, nUsers),
		"a session Redis no longer has was still accepted to the end of the run")
	sr.check(t, more == 0, "exactly one login per browser", fmt.Sprintf("%d of %d signed in more than once", more, nUsers),
		"a browser was sent to the provider again after it had signed in after the restart")
	sr.check(t, loops == 0, "never a redirect loop", fmt.Sprintf("%d navigations with more than %d redirects", loops, maxHops), "a browser went round between gateway and provider")
	sr.check(t, notSignedIn == 0, "then success on every instance", fmt.Sprintf("%d of %d not signed in at the end", notSignedIn, nUsers), "the new sessions do not work everywhere")
	if len(failures) > 0 {
		t.Logf("navigations that did not end at the page: %d; first: %s", len(failures), failures[0])
	}
}
