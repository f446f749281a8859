package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trustgate/trustgate/bench/internal/results"
)

// facts describes the machine and the software of a run.
type facts struct {
	cores         int
	cpuQuota      string // cgroup v2 cpu.max when it limits, else ""
	cpuModel      string
	goVersion     string
	wrkVersion    string
	caddyVersion  string
	redisVersion  string
	kernel        string
	commit        string
	date          time.Time
	loadBefore    string
	loadAfter     string
	invokedAs     string
	effective     string
	caddyLogLines int
	// the login benchmark's peer (-peer-logins): `apache2 -v` and the module package
	apacheVersion, moduleVersion string
	apacheLogLines               int
	peerEvictions                int // mod_auth_openidc's "dropping LRU entry" warnings
}

func collectFacts(o *options, peer bool) facts {
	f := facts{
		cores:      runtime.NumCPU(),
		cpuModel:   cpuModel(),
		goVersion:  runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		wrkVersion: wrkVersion(o.wrkBin),
		date:       time.Now().UTC(),
		loadBefore: loadavg(),
		kernel:     strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")),
	}
	if q := strings.TrimSpace(readFile("/sys/fs/cgroup/cpu.max")); q != "" && !strings.HasPrefix(q, "max") {
		f.cpuQuota = q
	}
	f.caddyVersion = "unknown"
	if v := strings.Fields(command(o.caddyBin, "version")); len(v) > 0 {
		f.caddyVersion = v[0]
	}
	f.redisVersion = "unknown"
	for _, field := range strings.Fields(command(o.redisBin, "--version")) {
		if v, ok := strings.CutPrefix(field, "v="); ok {
			f.redisVersion = v
		}
	}
	if peer {
		f.apacheVersion, f.moduleVersion = apacheVersions(o.apacheBin)
	}
	f.commit = firstLine(command("git", "rev-parse", "--short=12", "HEAD"))
	// The report itself (the previous run's) does not count as a change to the measured code.
	if f.commit != "" && strings.TrimSpace(command("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/RESULTS.md")) != "" {
		f.commit += " + uncommitted changes"
	}
	f.invokedAs = os.Getenv("BENCH_INVOKED_AS")
	if f.invokedAs == "" {
		f.invokedAs = strings.Join(append([]string{filepath.Base(os.Args[0])}, os.Args[1:]...), " ")
	}
	f.effective = fmt.Sprintf("bench/run.sh -rounds %d -duration %s -threads %d -connections %d -pause %s -warmup %s -configs %s -max-other %g -retries %d -quiet-wait %s -caddy-log-level %s -cpuprofile=%t",
		o.rounds, o.duration, o.threads, o.conns, o.pause, o.warmup, o.configs, o.maxOther, o.retries, o.quietWait, o.logLevel, o.cpuProfile)
	if o.cpuProfile {
		f.effective += fmt.Sprintf(" -profile-config %s -profile-seconds %d", o.profileConfig, o.profileSeconds)
	}
	f.effective += fmt.Sprintf(" -logins %s -login-clients %d -login-rounds %d -peer-logins=%t -op-alg %s", o.loginDuration, o.loginClients, o.loginRounds, o.peerLogins, o.opAlg)
	if o.peerLogins && o.peerShmMax > 0 {
		f.effective += fmt.Sprintf(" -peer-shm-max %d", o.peerShmMax)
	}
	return f
}

func (f facts) summary() string {
	return fmt.Sprintf("%d cores (%s), %s, %s, Caddy %s", f.cores, f.cpuModel, f.goVersion, f.wrkVersion, f.caddyVersion)
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func command(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(l)
}

func cpuModel() string {
	for _, l := range strings.Split(readFile("/proc/cpuinfo"), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name", "Model", "cpu model", "Hardware":
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func loadavg() string {
	fields := strings.Fields(readFile("/proc/loadavg"))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// summary is one configuration over all rounds.
type summary struct {
	key                        string
	rps, rpsMin, rpsMax, ratio float64
	p50, p99                   time.Duration
	caddyUsPerReq              float64 // Caddy CPU microseconds per request
	caddyCores, wrkCores       float64
	upstreamCores, redisCores  float64
	otherCores, machineCores   float64
	stealCores, irqCores       float64
	redisCmdsPerReq            float64
	requests                   int64 // all rounds
	spread                     float64
}

func summarize(key string, runs []*runResult) summary {
	s := summary{key: key, rpsMin: math.Inf(1)}
	col := func(f func(r *runResult) float64) float64 {
		xs := make([]float64, len(runs))
		for i, r := range runs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	for _, r := range runs {
		s.rpsMin = min(s.rpsMin, r.RPS)
		s.rpsMax = max(s.rpsMax, r.RPS)
		s.requests += r.Requests
	}
	s.rps = col(func(r *runResult) float64 { return r.RPS })
	s.p50 = time.Duration(col(func(r *runResult) float64 { return float64(r.P50) }))
	s.p99 = time.Duration(col(func(r *runResult) float64 { return float64(r.P99) }))
	s.caddyUsPerReq = col(func(r *runResult) float64 { return float64(r.caddyCPU.Microseconds()) / float64(max(r.Requests, 1)) })
	s.caddyCores = col(func(r *runResult) float64 { return cores(r.caddyCPU, r.wall) })
	s.wrkCores = col(func(r *runResult) float64 { return cores(r.CPU, r.wall) })
	s.upstreamCores = col(func(r *runResult) float64 { return cores(r.upstreamCPU, r.wall) })
	s.redisCores = col(func(r *runResult) float64 { return cores(r.redisCPU, r.wall) })
	s.machineCores = col(func(r *runResult) float64 { return cores(r.machine.busy(), r.wall) })
	s.irqCores = col(func(r *runResult) float64 { return cores(r.machine.irq, r.wall) })
	s.stealCores = col(func(r *runResult) float64 { return cores(r.machine.steal, r.wall) })
	s.otherCores = col(func(r *runResult) float64 { return r.otherCores() })
	s.redisCmdsPerReq = col(func(r *runResult) float64 { return float64(r.redisCmds) / float64(max(r.Requests, 1)) })
	if s.rps > 0 {
		s.spread = (s.rpsMax - s.rpsMin) / s.rps
	}
	return s
}

func fmtLatency(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 1:
		return strconv.FormatFloat(ms, 'f', 3, 64) + " ms"
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 2, 64) + " ms"
	default:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	}
}

// thousands formats n rounded, with thin grouping commas: 12,345.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// budget is DESIGN.md's performance budget: these configurations at least this ratio to (a).
var budget = map[string]float64{"b": 0.95, "c": 0.95}

// Goals for Redis without the local cache, (d): throughput ratio to (a), and p99 ÷ (a)'s p99.
const goalNoCache, goalNoCacheP99 = 0.85, 1.5

// report writes RESULTS.md and prints it.
func (b *bench) report() error {
	var sums []summary
	byKey := map[string]summary{}
	for _, c := range b.configs {
		s := summarize(c.key, b.results[c.key])
		sums = append(sums, s)
		byKey[c.key] = s
	}
	for i := range sums {
		sums[i].ratio = median(b.paired(sums[i].key, "a"))
		byKey[sums[i].key] = sums[i]
	}
	f := b.facts
	o := b.o
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }

	p("## Load benchmark (`make bench`)\n\n")
	p("Written by `bench/run.sh` (`make bench`); how to read it: [README.md](README.md). ")
	p("One Caddy process serves every configuration; each row is the median of %s of %s, ", plural(o.rounds, "interleaved round"), o.duration)
	p("`wrk -t%d -c%d --latency`, against a trivial upstream, on this machine; the order of the configurations rotates by one each round. ", o.threads, o.conns)
	p("Ratios are to (a) in this same run; absolute numbers are only comparable on the same machine.")
	var users []string
	if n, ok := b.forwarded["b"]; ok {
		users = append(users, fmt.Sprintf("with the default headers (`basic`) trustgate adds %d `X-Auth-*` headers to each upstream request", n))
	}
	if n, ok := b.forwarded["g"]; ok {
		users = append(users, fmt.Sprintf("with `standard_headers all` %d `X-Auth-*`/`X-Trust-*` headers", n))
	}
	if len(users) > 0 {
		p(" The user is `bindid-known` (a BindID user with the full trust profile and no email claim): %s.", strings.Join(users, "; "))
	}
	p("\n\n")

	p("| | configuration | req/s (median) | req/s min–max | p50 | p99 | ratio to (a) | ratio in each round, min–max |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range sums {
		rs := b.paired(s.key, "a")
		p("| (%s) | %s | %s | %s–%s | %s | %s | %.3f | %.3f–%.3f |\n", s.key, b.title(s.key), thousands(s.rps), thousands(s.rpsMin), thousands(s.rpsMax),
			fmtLatency(s.p50), fmtLatency(s.p99), s.ratio, slices.Min(rs), slices.Max(rs))
	}
	p("\nReq/s, p50 and p99 are medians of the rounds. Ratio to (a) is the median over the rounds of the per-round ratio: each run's req/s ÷ the req/s of the (a) run in the same round; the last column is the min–max of those per-round ratios.\n\n")
	var verdicts []string
	for _, k := range []string{"b", "c"} {
		if s, ok := byKey[k]; ok {
			v := "meets it"
			if s.ratio < budget[k] {
				v = "**below**"
			}
			verdicts = append(verdicts, fmt.Sprintf("(%s) %.3f %s", k, s.ratio, v))
		}
	}
	if len(verdicts) > 0 {
		p("Budget (DESIGN.md: trustgate with the memory store or Redis with a warm cache at least 0.95 of (a)'s throughput): %s.\n\n", strings.Join(verdicts, ", "))
	}
	if d, ok := byKey["d"]; ok {
		a := byKey["a"]
		v := func(ok bool) string {
			if ok {
				return "met"
			}
			return "**not met**"
		}
		p99 := float64(d.p99) / float64(a.p99)
		p("Redis without the local cache, (d) (issue 21: at least %.2f of (a), p99 within %.1f× of (a)'s): ratio %.3f, %s; p99 %s against %s, %.2f×, %s; %.3f Redis commands per request in one pipelined round trip (the blob and the idle clock).\n\n",
			goalNoCache, goalNoCacheP99, d.ratio, v(d.ratio >= goalNoCache), fmtLatency(d.p99), fmtLatency(a.p99), p99, v(p99 <= goalNoCacheP99), d.redisCmdsPerReq)
	}
	var own []string
	for _, l := range []struct {
		ctl  *controlList
		what string
		keys []string
	}{{defaultControl, "the default set", []string{"b", "c"}}, {fullControl, "`standard_headers all`", []string{"g"}}} {
		var rs []string
		for _, k := range l.keys {
			if r := b.paired(k, l.ctl.key); r != nil {
				rs = append(rs, fmt.Sprintf("(%s)/(%s) = %.3f", k, l.ctl.key, median(r)))
			}
		}
		if len(rs) > 0 {
			own = append(own, fmt.Sprintf("- %d headers (%s): %s", len(l.ctl.headers), l.what, strings.Join(rs, ", ")))
		}
	}
	if len(own) > 0 {
		p("Trustgate's own cost at equal forwarded headers — (f) and (h) forward the same headers as (b) and (g) with plain `request_header` — as the median of the per-round ratios:\n\n%s\n\n", strings.Join(own, "\n"))
		p("What the request itself costs — the session cookie read and removed, the headers added (by `request_header` there) and forwarded — is visible as (f) vs (a) and (h) vs (a); between them, what the %d more headers cost: Caddy's `reverse_proxy` and the upstream pay per header, not trustgate.\n\n", len(fullControl.headers)-len(defaultControl.headers))
	}
	if s, ok := byKey["e"]; ok {
		p("(e) counts redirects: %s responses over %s, every one a 302 to the provider's `/authorize` (checked: none reached the upstream, none had a status ≥ 400, and a probe before and after each round got the 302).\n\n",
			thousands(float64(s.requests)), plural(o.rounds, "round"))
	}

	p("Machine: **%d cores** (`nproc`), %s", f.cores, f.cpuModel)
	if f.cpuQuota != "" {
		p(", cgroup cpu.max %s", f.cpuQuota)
	}
	p("; Linux %s; %s; %s; Caddy %s; Redis %s", f.kernel, f.goVersion, f.wrkVersion, f.caddyVersion, f.redisVersion)
	if f.apacheVersion != "" {
		p("; %s with mod_auth_openidc %s", f.apacheVersion, f.moduleVersion)
	}
	p("; commit %s; %s. Load average before %s, after %s.\n\n", f.commit, f.date.Format("2006-01-02 15:04 MST"), f.loadBefore, f.loadAfter)
	p("Command: `%s`", f.invokedAs)
	if f.invokedAs != f.effective {
		p(" — with every setting: `%s`", f.effective)
	}
	p("\n\n")

	if notes := b.notes(sums, byKey); len(notes) > 0 || len(b.problems) > 0 {
		p("### Warnings\n\n")
		for _, pr := range b.problems {
			p("- **Not trustworthy:** %s\n", strings.ReplaceAll(pr, "\n", " "))
		}
		for _, n := range notes {
			p("- %s\n", n)
		}
		p("\n")
	}

	p("### Where the CPU went (medians of the rounds)\n\n")
	p("Cores = CPU seconds per second of the run, from `/proc`. \"softirq\" is kernel time in interrupts and softirqs (mostly loopback TCP); ")
	switch {
	case !irqTimeKnown:
		p("whether this kernel also charges it to the interrupted process is unknown (its config is not readable); ")
	case irqTimeSeparate:
		p("this kernel (`CONFIG_IRQ_TIME_ACCOUNTING=y`) charges it to no process; ")
	default:
		p("this kernel (tick-based accounting, no `CONFIG_IRQ_TIME_ACCOUNTING`) also charges it to the process it interrupted, so it is included in the per-process columns; ")
	}
	p("\"other\" is CPU used by processes the benchmark did not start. ")
	p("Caddy CPU per request is the gateway's cost, independent of how the cores are shared with wrk and the upstream.\n\n")
	p("| | Caddy CPU/request | vs (a) | Caddy | wrk | upstream | Redis | softirq | other | machine busy (of %d) | Redis commands/request |\n", f.cores)
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range sums {
		redis := "—"
		if s.key == "c" || s.key == "d" {
			redis = strconv.FormatFloat(s.redisCmdsPerReq, 'f', 3, 64)
		}
		p("| (%s) | %.1f µs | %.2f× | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s |\n", s.key, s.caddyUsPerReq, s.caddyUsPerReq/byKey["a"].caddyUsPerReq,
			s.caddyCores, s.wrkCores, s.upstreamCores, s.redisCores, s.irqCores, s.otherCores, s.machineCores, redis)
	}
	b.loginReport(p)
	p("\n### Every round (req/s)\n\n| round | order |")
	for _, c := range b.configs {
		p(" (%s) |", c.key)
	}
	p(" other cores (max) |\n|---|---|")
	for range b.configs {
		p("---:|")
	}
	p("---:|\n")
	for i := range o.rounds {
		var order []string
		for _, c := range rotate(b.configs, i) {
			order = append(order, c.key)
		}
		p("| %d | %s |", i+1, strings.Join(order, " "))
		var other float64
		for _, c := range b.configs {
			r := b.results[c.key][i]
			p(" %s |", thousands(r.RPS))
			other = max(other, r.otherCores())
		}
		p(" %.2f |\n", other)
	}
	p("| spread | |")
	for _, s := range sums {
		p(" %.1f%% |", 100*s.spread)
	}
	p(" |\n\nSpread = (max − min) / median. Round 1 runs %s; each next round starts one configuration later (the order column), so that no configuration always runs in the same place. A %s pause comes before each run", o.configs, o.pause)
	if o.warmup > 0 {
		p(", after an unrecorded %s warm-up run of each configuration", o.warmup)
	}
	p(". A run during which other processes used more than %.2f cores was discarded and repeated (up to %d times)", o.maxOther, o.retries)
	var redone []string
	for _, c := range b.configs {
		if n := b.redone[c.key]; n > 0 {
			redone = append(redone, fmt.Sprintf("(%s) %d", c.key, n))
		}
	}
	if len(redone) > 0 {
		p("; repeated: %s", strings.Join(redone, ", "))
	} else {
		p("; none was")
	}
	p(".\n\n")

	if pr := b.profile; pr != nil {
		p("### CPU profile of Caddy, configuration (%s)\n\n", o.profileConfig)
		p("A second Caddy process with the same sites and `admin 127.0.0.1:<port>` (the measured one runs with `admin off`), a new login where the configuration needs one, then `GET /debug/pprof/profile?seconds=%d` while wrk loaded (%s) (%s req/s with the profiler attached; not comparable with the table). ",
			o.profileSeconds, o.profileConfig, thousands(pr.run.RPS))
		rel := pr.path
		if wd, err := os.Getwd(); err == nil {
			if r, err := filepath.Rel(wd, pr.path); err == nil {
				rel = r
			}
		}
		p("Profile: `%s` (`go tool pprof -http=127.0.0.1:0 .cache/bench/caddy %s`).\n\n", rel, rel)
		sharesTable(p, profileParts, pr.shares)
		p("\n```text\n$ go tool pprof -top -nodecount=25 caddy %s\n%s\n```\n\n", filepath.Base(rel), pr.top)
	}
	b.loginProfileReport(p, func(path string) string {
		if wd, err := os.Getwd(); err == nil {
			if r, err := filepath.Rel(wd, path); err == nil {
				return r
			}
		}
		return path
	})

	p("### How it ran\n\n")
	p("Caddyfile (ports are chosen per run; the `secret` is random per run):\n\n```caddyfile\n%s```\n\n", strings.ReplaceAll(b.caddyfile(0), b.secret, "<random per run>"))
	p("wrk commands (the cookie is the session of a scripted login as `bindid-known` at the in-process provider, %s):\n\n```sh\n", b.op.Issuer())
	for _, c := range b.configs {
		args := wrkArgs(o.threads, o.conns, o.duration, c.headers, c.site.url()+"/")
		for i, a := range args {
			if strings.HasPrefix(a, "Cookie: ") {
				name, _, _ := strings.Cut(strings.TrimPrefix(a, "Cookie: "), "=")
				a = "Cookie: " + name + "=<session>"
			}
			if strings.ContainsAny(a, " <>") {
				a = "'" + a + "'"
			}
			args[i] = a
		}
		p("wrk %s   # (%s)\n", strings.Join(args, " "), c.key)
	}
	p("```\n\nCaddy wrote %d log lines at level %s (%s/caddy.log).\n", f.caddyLogLines, o.logLevel, o.workDir)
	if b.apache != nil && b.loginStats(peerKey) != nil {
		dir := filepath.Join(o.workDir, "apache")
		p("\nThe login benchmark's peer, `%s -d %s -f %s/apache.conf -DFOREGROUND` (the port is chosen per run, the client secret and the passphrase are random per run):\n\n```apache\n%s```\n",
			filepath.Base(o.apacheBin), dir, o.workDir, b.apacheConf(dir, filepath.Join(o.workDir, "apache-error.log"), false))
	}

	out := w.String()
	fmt.Println()
	fmt.Print(out)
	if err := dropWholeFileReport(o.out); err != nil {
		return err
	}
	if err := results.WriteSection(o.out, "bench", out); err != nil {
		return fmt.Errorf("write %s: %w", o.out, err)
	}
	b.logf("wrote %s", o.out)
	return nil
}

// notes are observations that do not invalidate the run but matter when reading it.
func (b *bench) notes(sums []summary, byKey map[string]summary) []string {
	var notes []string
	f := b.facts
	var busy, wrk, other, steal float64
	for _, s := range sums {
		busy = max(busy, s.machineCores)
		wrk = max(wrk, s.wrkCores)
		other = max(other, s.otherCores)
		steal = max(steal, s.stealCores)
		if s.spread > 0.10 {
			notes = append(notes, fmt.Sprintf("(%s) varies by %.0f%% between rounds (min–max over median): compare ratios with care, or run more rounds.", s.key, 100*s.spread))
		}
	}
	if busy >= 0.9*float64(f.cores) {
		notes = append(notes, fmt.Sprintf("The machine's %d cores were saturated (up to %.2f busy): wrk (up to %.2f cores), the upstream and Caddy share them, so the throughput ratios include wrk's and the upstream's fixed cost per request and understate Caddy's own overhead. \"Caddy CPU/request\" below shows it directly.", f.cores, busy, wrk))
	}
	if b.noisyStart != "" {
		notes = append(notes, fmt.Sprintf("The machine was not quiet when the rounds began (other processes used %s after waiting %s).", b.noisyStart, b.o.quietWait))
	}
	if b.disturbed > 0 {
		notes = append(notes, fmt.Sprintf("%d runs were kept although other processes used more than %.2f cores during them (after %d repeats each): the machine was busy with other work, the numbers are disturbed.", b.disturbed, b.o.maxOther, b.o.retries))
	} else if other > b.o.maxOther {
		notes = append(notes, fmt.Sprintf("Other processes used up to %.2f cores during the runs (median of the rounds).", other))
	}
	if steal > 0.05 {
		notes = append(notes, fmt.Sprintf("The hypervisor took up to %.2f cores (steal time): a noisy virtual machine.", steal))
	}
	if s, ok := byKey["c"]; ok && s.redisCmdsPerReq > 0.01 {
		notes = append(notes, fmt.Sprintf("(c) made %.3f Redis commands per request: the local cache was not warm (the budget assumes none).", s.redisCmdsPerReq))
	}
	if s, ok := byKey["d"]; ok && s.redisCmdsPerReq < 0.5 {
		notes = append(notes, fmt.Sprintf("(d) made only %.3f Redis commands per request with the local cache off: is `local_cache_ttl off` honoured?", s.redisCmdsPerReq))
	}
	return notes
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// paired is key's req/s over base's in the same round, per round (nil when either was not
// loaded).
func (b *bench) paired(key, base string) []float64 {
	return pairedRatios(rpsOf(b.results[key]), rpsOf(b.results[base]))
}

func rpsOf(runs []*runResult) []float64 {
	xs := make([]float64, len(runs))
	for i, r := range runs {
		xs[i] = r.RPS
	}
	return xs
}

// pairedRatios is xs[i] / base[i] for every round i (nil when the lengths differ or are 0).
func pairedRatios(xs, base []float64) []float64 {
	if len(xs) == 0 || len(xs) != len(base) {
		return nil
	}
	rs := make([]float64, len(xs))
	for i := range xs {
		rs[i] = xs[i] / base[i]
	}
	return rs
}

// oldReportHeading began the whole file when the driver wrote all of RESULTS.md.
const oldReportHeading = "# trustgate load benchmark\n"

// dropWholeFileReport turns a RESULTS.md that an earlier driver wrote as a whole (it begins
// with oldReportHeading) into one that results.WriteSection keeps sections in: the old report
// goes, sections other programs appended after it stay, under results.Title.
func dropWholeFileReport(path string) error {
	data, err := os.ReadFile(path)
	if err != nil || !strings.HasPrefix(string(data), oldReportHeading) {
		return nil // missing (WriteSection creates it) or already in sections
	}
	rest := ""
	if i := strings.Index(string(data), "<!-- begin "); i >= 0 {
		rest = "\n" + string(data[i:])
	}
	return os.WriteFile(path, []byte(results.Title+rest), 0o644)
}
