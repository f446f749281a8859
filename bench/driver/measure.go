package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Measuring: one load run with wrk, the CPU snapshots around it, the rounds, and the
// CPU profile of one configuration.

func (o *options) check() error {
	switch {
	case o.rounds < 1:
		return errors.New("-rounds must be at least 1")
	case o.threads < 1 || o.conns < o.threads:
		return errors.New("-threads must be at least 1 and -connections at least -threads (wrk's rule)")
	case o.duration < time.Second:
		return errors.New("-duration must be at least 1s")
	case o.cpuProfile && o.profileSeconds < 1:
		return errors.New("-profile-seconds must be at least 1")
	}
	seen := map[string]bool{}
	for _, k := range strings.Split(o.configs, ",") {
		k = strings.TrimSpace(k)
		if !slices.Contains(configKeys, k) {
			return fmt.Errorf("-configs: unknown configuration %q (known: a,b,c,d,e,f,g,h)", k)
		}
		if seen[k] {
			return fmt.Errorf("-configs: %q twice", k)
		}
		seen[k] = true
	}
	if o.cpuProfile && !seen[o.profileConfig] {
		return fmt.Errorf("-profile-config %q is not in -configs %q", o.profileConfig, o.configs)
	}
	if !seen["a"] {
		o.configs = "a," + o.configs // every ratio is to a, measured in the same run
	}
	if o.opAlg != "RS256" && o.opAlg != "ES256" {
		return errors.New("-op-alg must be RS256 or ES256")
	}
	lvl := strings.ToUpper(o.logLevel)
	if lvl != "WARN" && lvl != "ERROR" {
		return errors.New("-caddy-log-level must be WARN or ERROR")
	}
	o.logLevel = lvl
	return nil
}

// runResult is one wrk run of one configuration plus what the driver observed around it.
type runResult struct {
	*wrkResult
	round        int
	upstreamReqs int64         // requests the upstream answered during the run
	redisCmds    int64         // Redis commands during the run, less the driver's INFO
	caddyCPU     time.Duration // CPU time of each process during the run
	upstreamCPU  time.Duration
	redisCPU     time.Duration
	driverCPU    time.Duration // this process (the OpenID Provider lives here)
	machine      machineCPU    // all CPUs, all processes
	wall         time.Duration
}

// ours is the CPU time of the processes the benchmark started (and of the driver).
func (r *runResult) ours() time.Duration {
	return r.caddyCPU + r.CPU + r.upstreamCPU + r.redisCPU + r.driverCPU
}

// otherCores is how many cores processes the benchmark did not start used during the run.
func (r *runResult) otherCores() float64 {
	return max(0, cores(r.machine.inProcesses()-r.ours(), r.wall))
}

type snapshot struct {
	at                         time.Time
	upstreamReqs, redisCmds    int64
	caddy, upstream, redis, me time.Duration
	machine                    machineCPU
}

func (b *bench) snap() (snapshot, error) {
	var s snapshot
	var err error
	if s.upstreamReqs, err = b.upstreamCount(); err != nil {
		return s, fmt.Errorf("upstream stats: %w", err)
	}
	if b.redis != nil {
		if s.redisCmds, err = redisCommands(b.redisAdr); err != nil {
			return s, fmt.Errorf("redis INFO: %w", err)
		}
		if s.redis, err = b.redis.cpuTime(); err != nil {
			return s, err
		}
	}
	if s.caddy, err = b.caddy.cpuTime(); err != nil {
		return s, err
	}
	if s.upstream, err = b.upstream.cpuTime(); err != nil {
		return s, err
	}
	if s.me, err = pidCPUTime(os.Getpid()); err != nil {
		return s, err
	}
	if s.machine, err = readMachineCPU(); err != nil {
		return s, err
	}
	s.at = time.Now()
	return s, nil
}

func (b *bench) upstreamCount() (int64, error) {
	resp, err := http.Get("http://" + b.upAddr + "/__stats")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	v, ok := strings.CutPrefix(strings.TrimSpace(string(body)), `{"requests":`)
	if !ok {
		return 0, fmt.Errorf("unexpected answer %q", body)
	}
	return strconv.ParseInt(strings.TrimSuffix(v, "}"), 10, 64)
}

// settle waits until the upstream's count stops moving: requests that Caddy still forwards
// after the previous wrk run ended must not count for the next.
func (b *bench) settle(ctx context.Context) error {
	prev, err := b.upstreamCount()
	if err != nil {
		return fmt.Errorf("upstream stats: %w", err)
	}
	for range 60 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		cur, err := b.upstreamCount()
		if err != nil {
			return fmt.Errorf("upstream stats: %w", err)
		}
		if cur == prev {
			return nil
		}
		prev = cur
	}
	return errors.New("the upstream keeps receiving requests while no load runs: is something else using it?")
}

// load runs wrk once against c, with the snapshots around it.
func (b *bench) load(ctx context.Context, c *config, dur time.Duration) (*runResult, error) {
	if err := b.settle(ctx); err != nil {
		return nil, err
	}
	before, err := b.snap()
	if err != nil {
		return nil, err
	}
	w, err := runWrk(ctx, b.o.wrkBin, wrkArgs(b.o.threads, b.o.conns, dur, c.headers, c.site.url()+"/"))
	if err != nil {
		return nil, err
	}
	after, err := b.snap()
	if err != nil {
		return nil, err
	}
	for _, p := range []*proc{b.caddy, b.upstream, b.redis} {
		if p != nil && p.exited() {
			return nil, p.exitErr()
		}
	}
	r := &runResult{wrkResult: w,
		upstreamReqs: after.upstreamReqs - before.upstreamReqs,
		redisCmds:    after.redisCmds - before.redisCmds - 1,
		caddyCPU:     after.caddy - before.caddy,
		upstreamCPU:  after.upstream - before.upstream,
		redisCPU:     after.redis - before.redis,
		driverCPU:    after.me - before.me,
		machine:      after.machine.sub(before.machine),
		wall:         after.at.Sub(before.at),
	}
	return r, nil
}

// measure runs the warm-up and the interleaved rounds.
func (b *bench) measure(ctx context.Context) error {
	o := &b.o
	sleep := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	if o.warmup > 0 {
		b.logf("warm-up: %s per configuration (not recorded)", o.warmup)
		for _, c := range b.configs {
			if err := sleep(o.pause); err != nil {
				return err
			}
			r, err := b.load(ctx, c, o.warmup)
			if err != nil {
				return fmt.Errorf("(%s) warm-up: %w", c.key, err)
			}
			b.check(c, r, "warm-up")
		}
	}
	if err := b.waitQuiet(ctx); err != nil {
		return err
	}
	plainTitle := func(k string) string { return strings.ReplaceAll(b.title(k), "`", "") }
	width := 0
	for _, c := range b.configs {
		width = max(width, len(plainTitle(c.key)))
	}
	for round := 1; round <= o.rounds; round++ {
		for _, c := range rotate(b.configs, round-1) {
			var r *runResult
			for attempt := 0; ; attempt++ {
				if err := sleep(o.pause); err != nil {
					return err
				}
				var err error
				if r, err = b.load(ctx, c, o.duration); err != nil {
					return fmt.Errorf("(%s) round %d: %w", c.key, round, err)
				}
				b.check(c, r, fmt.Sprintf("round %d", round))
				other := r.otherCores()
				if other <= o.maxOther {
					break
				}
				if attempt < o.retries {
					b.logf("round %d/%d (%s) discarded (%.0f req/s): other processes used %.2f cores; again", round, o.rounds, c.key, r.RPS, other)
					b.redone[c.key]++
					continue
				}
				b.logf("round %d/%d (%s) kept although other processes used %.2f cores (-retries %d exhausted)", round, o.rounds, c.key, other, o.retries)
				b.disturbed++
				break
			}
			r.round = round
			b.results[c.key] = append(b.results[c.key], r)
			b.logf("round %d/%d (%s) %-*s %9.0f req/s  p50 %s  p99 %s  caddy %.2f cores  machine %.2f cores",
				round, o.rounds, c.key, width, plainTitle(c.key), r.RPS, fmtLatency(r.P50), fmtLatency(r.P99),
				cores(r.caddyCPU, r.wall), cores(r.machine.busy(), r.wall))
		}
		// After each round, the configurations still answer as they must (a session that
		// expired mid-run would show up as 401s, but say so plainly).
		for _, c := range b.configs {
			if err := b.probe(ctx, c); err != nil {
				return fmt.Errorf("(%s) after round %d: %w", c.key, round, err)
			}
		}
	}
	return nil
}

// rotate returns xs started at index k mod len(xs) and wrapped around: round r of the
// measurement runs rotate(configs, r-1), so every configuration takes every position.
func rotate[T any](xs []T, k int) []T {
	if len(xs) == 0 {
		return nil
	}
	k %= len(xs)
	return append(slices.Clone(xs[k:]), xs[:k]...)
}

// waitQuiet waits up to -quiet-wait until processes the benchmark did not start use at most
// -max-other cores (measured over 2 s while everything of the benchmark idles).
func (b *bench) waitQuiet(ctx context.Context) error {
	deadline := time.Now().Add(b.o.quietWait)
	said := false
	for {
		before, err := b.snap()
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
		after, err := b.snap()
		if err != nil {
			return err
		}
		wall := after.at.Sub(before.at)
		ours := (after.caddy - before.caddy) + (after.upstream - before.upstream) + (after.redis - before.redis) + (after.me - before.me)
		other := max(0, cores(after.machine.sub(before.machine).inProcesses()-ours, wall))
		if other <= b.o.maxOther {
			if said {
				b.logf("the machine is quiet now")
			}
			return nil
		}
		if time.Now().After(deadline) {
			b.noisyStart = fmt.Sprintf("%.2f cores", other)
			b.logf("starting although other processes use %.2f cores (waited %s)", other, b.o.quietWait)
			return nil
		}
		if !said {
			b.logf("waiting up to %s for the machine to be quiet: other processes use %.2f cores", b.o.quietWait, other)
			said = true
		}
	}
}

type profileResult struct {
	run    *runResult
	top    string
	shares []string // of profileParts
	path   string
}

// profileRun restarts Caddy with the admin API on a loopback port (for /debug/pprof) and
// records a CPU profile of configuration -profile-config while wrk loads it.
func (b *bench) profileRun(ctx context.Context) error {
	c := b.config(b.o.profileConfig)
	b.caddy.stop(10 * time.Second)
	adminPort, err := freePort()
	if err != nil {
		return err
	}
	if err := b.startCaddy(ctx, adminPort); err != nil {
		return err
	}
	if c.cookie != "" {
		// A new process: the memory store is empty, so log in again.
		ck, err := b.login(ctx, c.site)
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		c.cookie, c.headers = ck, []string{"Cookie: " + ck}
	}
	if err := b.probe(ctx, c); err != nil {
		return err
	}
	if b.o.warmup > 0 {
		if _, err := b.load(ctx, c, b.o.warmup); err != nil {
			return err
		}
	}
	b.logf("CPU profile of Caddy, configuration %s, %ds under load", c.key, b.o.profileSeconds)
	lead := 2 * time.Second
	pr := &profileResult{path: filepath.Join(b.work, "caddy-"+c.key+".cpu.pprof")}
	fetched := fetchProfileAfter(ctx, lead, adminPort, b.o.profileSeconds, pr.path)
	r, err := b.load(ctx, c, lead+time.Duration(b.o.profileSeconds)*time.Second+2*time.Second)
	if err != nil {
		return err
	}
	b.check(c, r, "profile run")
	pr.run = r
	if err := <-fetched; err != nil {
		return fmt.Errorf("fetch the profile: %w", err)
	}
	if pr.top, pr.shares, err = readProfile(ctx, b.o.caddyBin, pr.path, profileParts, "-nodecount=25"); err != nil {
		return err
	}
	b.profile = pr
	return b.profileLogins(ctx, adminPort)
}

// fetchProfileAfter waits lead (the load getting under way), then fetches a CPU profile of
// seconds into path; the channel gets the outcome.
func fetchProfileAfter(ctx context.Context, lead time.Duration, adminPort, seconds int, path string) <-chan error {
	fetched := make(chan error, 1)
	go func() {
		select {
		case <-time.After(lead):
		case <-ctx.Done():
			fetched <- ctx.Err()
			return
		}
		fetched <- fetchProfile(ctx, adminPort, seconds, path)
	}()
	return fetched
}

// profilePart is a slice of a CPU profile reported as a share of Caddy's samples: the stacks
// matching focus and not ignore (pprof's -focus, -ignore).
type profilePart struct{ name, focus, ignore string }

// readProfile returns `go tool pprof -top` of the profile at path (with the extra flags) and
// the share of each part.
func readProfile(ctx context.Context, bin, path string, parts []profilePart, flags ...string) (top string, shares []string, err error) {
	args := append(append([]string{"tool", "pprof", "-top"}, flags...), bin, path)
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return "", nil, fmt.Errorf("go tool pprof: %v\n%s", err, out)
	}
	for _, part := range parts {
		share, err := pprofShare(ctx, bin, path, part.focus, part.ignore)
		if err != nil {
			return "", nil, err
		}
		shares = append(shares, share)
	}
	return strings.TrimSpace(string(out)), shares, nil
}

// sharesTable writes the table of the parts' shares.
func sharesTable(p func(string, ...any), parts []profilePart, shares []string) {
	p("Shares of Caddy's CPU samples (stacks matching `-focus`, not `-ignore`; they overlap):\n\n| part | focus | share |\n|---|---|---:|\n")
	for i, part := range parts {
		f := "`" + part.focus + "`"
		if part.ignore != "" {
			f += ", ignore `" + part.ignore + "`"
		}
		p("| %s | %s | %s |\n", part.name, strings.ReplaceAll(f, "|", "\\|"), shares[i])
	}
}

// profileParts are the slices of the profile reported as shares of Caddy's CPU time.
var profileParts = []profilePart{
	{"trustgate's own code (its ServeHTTP without the handlers after it)", `trustgate\.\(\*Handler\)\.ServeHTTP`, `reverseproxy\.`},
	{"`reverse_proxy` (its ServeHTTP, the upstream round trip included)", `reverseproxy\.\(\*Handler\)\.ServeHTTP`, ""},
	{"zap (log entries and fields built on the request path, whatever the level)", `go\.uber\.org/zap`, ""},
	{"garbage collector, background workers (allocations anywhere)", `runtime\.gcBgMarkWorker`, ""},
	{"syscalls (network reads and writes)", `syscall\.Syscall|syscall\.RawSyscall`, ""},
}

var reShowing = regexp.MustCompile(`Showing nodes accounting for [^,]+, ([0-9.]+)% of`)

// pprofShare is the share of the profile's samples whose stack matches focus and not ignore.
func pprofShare(ctx context.Context, bin, profile, focus, ignore string) (string, error) {
	args := []string{"tool", "pprof", "-top", "-nodecount=1000000", "-nodefraction=0", "-edgefraction=0", "-focus=" + focus}
	if ignore != "" {
		args = append(args, "-ignore="+ignore)
	}
	out, err := exec.CommandContext(ctx, "go", append(args, bin, profile)...).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "no samples") || strings.Contains(string(out), "matched no samples") {
			return "0%", nil
		}
		return "", fmt.Errorf("go tool pprof -focus=%s: %v\n%s", focus, err, out)
	}
	m := reShowing.FindStringSubmatch(string(out))
	if m == nil {
		if strings.Contains(string(out), "no samples") || strings.Contains(string(out), "no matches found") {
			return "0%", nil
		}
		return "", fmt.Errorf("go tool pprof -focus=%s: no summary line in:\n%.500s", focus, out)
	}
	return m[1] + "%", nil
}

func fetchProfile(ctx context.Context, adminPort, seconds int, path string) error {
	u := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", adminPort, seconds)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := (&http.Client{Timeout: time.Duration(seconds)*time.Second + 30*time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %.300s", u, resp.Status, data)
	}
	return os.WriteFile(path, data, 0o600)
}

func cores(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return cpu.Seconds() / wall.Seconds()
}
