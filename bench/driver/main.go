// Command driver is trustgate's load benchmark (`make bench`, via bench/run.sh). In one run it
// starts a fast upstream (bench/upstream), redis-server, the in-process OpenID Provider
// (internal/oidctest) and one Caddy process built from caddy-build/, logs in through the
// gateway with a scripted browser (net/http and a cookie jar), and loads eight configurations
// with wrk in interleaved rounds, the order rotated by one each round:
//
//	a  plain reverse_proxy (the baseline)
//	b  trustgate, memory store, default headers, + the same reverse_proxy
//	c  trustgate, Redis store with its local cache warm, default headers
//	d  trustgate, Redis store with local_cache_ttl off (one Redis round trip per request)
//	e  b's site without a cookie, as a browser navigation: the 302 to the provider
//	f  plain reverse_proxy + the headers b forwards, set with request_header (b's control)
//	g  trustgate, memory store, standard_headers all (the full BindID profile)
//	h  plain reverse_proxy + the headers g forwards, set with request_header (g's control)
//
// It reports per configuration the median of the rounds (req/s, p50, p99), the min-max of
// req/s, and the ratio to a: the median over the rounds of each run's req/s over a's run in
// the same round. Diagnostics: CPU per request and per process, Redis commands per request,
// upstream request counts. It prints the table and writes it to bench/RESULTS.md. At the end,
// with -cpuprofile (the default), it restarts Caddy with its admin API on a loopback port and
// records a CPU profile of configuration b (or -profile-config) under load.
//
// Every process listens on 127.0.0.1 only and is stopped when the driver exits, also on an
// error or Ctrl-C. See bench/README.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/session"
)

type options struct {
	caddyBin, upstreamBin, wrkBin, redisBin string
	rounds, threads, conns                  int
	duration, pause, warmup                 time.Duration
	configs                                 string
	cpuProfile                              bool
	profileConfig                           string
	profileSeconds                          int
	out, workDir                            string
	logLevel                                string
	maxOther                                float64
	retries                                 int
	quietWait                               time.Duration
}

func main() {
	os.Exit(realMain())
}

func realMain() int {
	var o options
	flag.StringVar(&o.caddyBin, "caddy", ".cache/bench/caddy", "the custom Caddy binary (go build -o .cache/bench/caddy ./caddy-build)")
	flag.StringVar(&o.upstreamBin, "upstream", ".cache/bench/upstream", "the upstream binary (go build ./bench/upstream)")
	flag.StringVar(&o.wrkBin, "wrk", "wrk", "the wrk load generator")
	flag.StringVar(&o.redisBin, "redis-server", "redis-server", "the redis-server binary")
	flag.IntVar(&o.rounds, "rounds", 5, "interleaved rounds (each loads every configuration once)")
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "length of each wrk run")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads (-t)")
	flag.IntVar(&o.conns, "connections", 32, "wrk connections (-c)")
	flag.DurationVar(&o.pause, "pause", time.Second, "pause before each wrk run")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unrecorded wrk run per configuration before the rounds (0: none)")
	flag.StringVar(&o.configs, "configs", "a,b,c,d,e,f,g,h", "configurations to load, in this order in round 1; each next round starts one later (a is always included)")
	flag.BoolVar(&o.cpuProfile, "cpuprofile", true, "after the rounds, restart Caddy with its admin API on a loopback port and record a CPU profile of configuration -profile-config under load")
	flag.IntVar(&o.profileSeconds, "profile-seconds", 10, "length of the CPU profile")
	flag.StringVar(&o.profileConfig, "profile-config", "b", "the configuration loaded while the CPU profile is taken")
	flag.StringVar(&o.out, "out", "bench/RESULTS.md", "where to write the results (markdown)")
	flag.StringVar(&o.workDir, "workdir", ".cache/bench/run", "logs, Caddyfile, Caddy's data dirs and the profile (emptied at the start)")
	flag.StringVar(&o.logLevel, "caddy-log-level", "WARN", "Caddy's log level (WARN or ERROR keeps logging out of the measurement)")
	flag.Float64Var(&o.maxOther, "max-other", 0.25, "a run during which processes the benchmark did not start used more cores than this is discarded and repeated")
	flag.IntVar(&o.retries, "retries", 3, "how often a disturbed run is repeated before it is kept (and reported)")
	flag.DurationVar(&o.quietWait, "quiet-wait", time.Minute, "before the rounds, wait up to this long for other processes to use at most -max-other cores")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: bench/run.sh [flags]   (or: make bench)\n\nLoad benchmark of trustgate against Caddy's plain reverse_proxy; see bench/README.md.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		return 2
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{o: o}
	err := b.run(ctx)
	b.shutdown()
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "bench: interrupted; every process stopped")
		return 130
	case err != nil:
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	case len(b.problems) > 0:
		fmt.Fprintf(os.Stderr, "bench: the results are not trustworthy, see %q:\n  - %s\n", o.out, strings.Join(b.problems, "\n  - "))
		return 1
	}
	return 0
}

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
	lvl := strings.ToUpper(o.logLevel)
	if lvl != "WARN" && lvl != "ERROR" {
		return errors.New("-caddy-log-level must be WARN or ERROR")
	}
	o.logLevel = lvl
	return nil
}

// configKeys are the configurations, in the default order.
var configKeys = []string{"a", "b", "c", "d", "e", "f", "g", "h"}

// title describes configuration k. forwarded holds the number of identity headers the
// upstream got from each trustgate site at the login (nil or missing: not known yet).
func title(k string, forwarded map[string]int) string {
	n, known := forwarded[k]
	switch k {
	case "a":
		return "plain `reverse_proxy`"
	case "b":
		if known {
			return fmt.Sprintf("trustgate, memory store, default headers (`basic`: %d for this user)", n)
		}
		return "trustgate, memory store, default headers (`basic`)"
	case "c":
		return "trustgate, Redis, local cache warm, default headers"
	case "d":
		return "trustgate, Redis, `local_cache_ttl off`, default headers"
	case "e":
		return "no cookie: 302 to the provider"
	case "f":
		return fmt.Sprintf("plain `reverse_proxy` + (b)'s %d headers (`request_header`; same cookie, removed)", len(defaultControl.headers))
	case "g":
		if known {
			return fmt.Sprintf("trustgate, memory store, `standard_headers all` (full BindID profile: %d headers)", n)
		}
		return "trustgate, memory store, `standard_headers all` (full BindID profile)"
	case "h":
		return fmt.Sprintf("plain `reverse_proxy` + (g)'s %d headers (`request_header`; same cookie, removed)", len(fullControl.headers))
	}
	return k
}

func (b *bench) title(k string) string { return title(k, b.forwarded) }

// A controlList is the identity headers a control site sets statically with request_header:
// what a trustgate site forwards for "bindid-known", without trustgate.
type controlList struct {
	key     string // the control configuration
	name    string // the Go variable, for messages
	headers [][2]string
}

var (
	defaultControl = &controlList{"f", "defaultControlHeaders", defaultControlHeaders}
	fullControl    = &controlList{"h", "fullControlHeaders", fullControlHeaders}
)

// defaultControlHeaders are the headers trustgate's default built-in set (`basic`) sends for
// "bindid-known" (no email claim), set on site (f).
var defaultControlHeaders = [][2]string{
	{"X-Auth-Subject", "123e4567-e89b-12d3-a456-426652340000"},
	{"X-Auth-Alias", "username@domain"},
}

// fullControlHeaders are the identity and trust headers trustgate sends for "bindid-known"
// (seed 000) with `standard_headers all`, set on site (h).
var fullControlHeaders = [][2]string{
	{"X-Auth-Subject", "123e4567-e89b-12d3-a456-426652340000"},
	{"X-Auth-Issuer", "http://127.0.0.1:40000"},
	{"X-Auth-Email-Verified", "true"},
	{"X-Auth-Phone", "+12125556789"},
	{"X-Auth-Phone-Verified", "true"},
	{"X-Auth-Alias", "username@domain"},
	{"X-Auth-Acr", "ts.bindid.iac.phone_number"},
	{"X-Auth-Amr", "ts.bind_id.ama,ts.bind_id.mfca"},
	{"X-Auth-Time", "1795245000"},
	{"X-Trust-First-Login", "1605180504"},
	{"X-Trust-Last-Login", "1605180577"},
	{"X-Trust-First-Confirmed-Login", "1605180577"},
	{"X-Trust-Device-First-Login", "1605180500"},
	{"X-Trust-Device-Last-Login", "1605180574"},
	{"X-Trust-Authenticating-Device", `{"browser_type":"Mobile","browser_version":"Safari","os_type":"iOS","os_version":"14.1"}`},
	{"X-Trust-Originating-Device", `{"browser_type":"Chrome","browser_version":"86.0.4240.183","os_type":"Mac OS","os_version":"10.15.7"}`},
	{"X-Trust-User-Registered", "1605180498"},
	{"X-Trust-Device-Registered", "1605180500"},
	{"X-Trust-Device-Last-Seen", "1605180691"},
	{"X-Trust-User-Last-Seen", "1605180694"},
	{"X-Trust-Confirmed-App-Count", "1"},
	{"X-Trust-Device-Count", "2"},
	{"X-Trust-New-Device", "false"},
	{"X-Trust-Account-Age-Days", "2196"},
	{"X-Trust-Device-Known-Since", "1605180500"},
	{"X-Trust-Device-Age-Days", "2196"},
	{"X-Trust-Days-Since-Last-Login", "2196"},
}

// site is one Caddy site: a loopback port and, for trustgate, its cookie name.
type site struct {
	key        string // a, b, c, d, f, g, h (e uses b's site)
	port       int
	cookieName string       // "" for a site without trustgate (a, f, h)
	store      string       // "", "memory", "redis", "redis-nocache"
	extra      string       // more lines for the trustgate block
	set        *controlList // a control site (f, h): these headers, with request_header
	match      *controlList // a trustgate site: it must forward as many identity headers as this control
}

func (s *site) url() string { return "http://127.0.0.1:" + strconv.Itoa(s.port) }

// config is one loaded configuration.
type config struct {
	key     string
	site    *site
	cookie  string   // "name=value", or "" (a, e)
	headers []string // for wrk
	reaches bool     // every request reaches the upstream (a-d), or none does (e)
}

type bench struct {
	o          options
	work       string
	env        []string // for Caddy: private XDG dirs
	secret     string
	op         *oidctest.Provider
	upstream   *proc
	upAddr     string
	redis      *proc
	redisAdr   string
	caddy      *proc
	sites      map[string]*site
	configs    []*config
	body       string // the upstream's answer
	problems   []string
	results    map[string][]*runResult
	redone     map[string]int // runs discarded because other processes disturbed them
	disturbed  int            // runs kept although disturbed (after -retries)
	noisyStart string         // the machine was not quiet when the rounds began
	profile    *profileResult
	facts      facts
	forwarded  map[string]int // per trustgate site: X-Auth-* and X-Trust-* headers the upstream got at the login
}

func (b *bench) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.problems = append(b.problems, msg)
	fmt.Fprintf(os.Stderr, "bench: PROBLEM: %s\n", msg)
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func (b *bench) run(ctx context.Context) error {
	o := &b.o
	for name, path := range map[string]*string{"Caddy": &o.caddyBin, "upstream": &o.upstreamBin, "wrk": &o.wrkBin, "redis-server": &o.redisBin} {
		if name == "redis-server" && !b.needRedis() {
			continue
		}
		p, err := exec.LookPath(*path)
		if err != nil {
			hint := map[string]string{
				"Caddy":        "build it with: go build -o .cache/bench/caddy ./caddy-build (bench/run.sh does)",
				"upstream":     "build it with: go build -o .cache/bench/upstream ./bench/upstream (bench/run.sh does)",
				"wrk":          "install it with: sudo apt-get install -y wrk (bench/run.sh does, as root)",
				"redis-server": "install it with: sudo apt-get install -y redis-server (scripts/e2e-deps.sh does, as root)",
			}[name]
			return fmt.Errorf("%s not found (%s): %s", name, *path, hint)
		}
		if *path, err = filepath.Abs(p); err != nil {
			return err
		}
	}
	if _, err := exec.LookPath("go"); err != nil && o.cpuProfile {
		return errors.New("-cpuprofile needs `go tool pprof`, but go is not in PATH")
	}

	work, err := filepath.Abs(o.workDir)
	if err != nil {
		return err
	}
	if err := resetWorkDir(work); err != nil {
		return err
	}
	b.work = work
	b.env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(work, "data"), "XDG_CONFIG_HOME="+filepath.Join(work, "config"))
	key := make([]byte, 48)
	_, _ = rand.Read(key)
	b.secret = base64.RawStdEncoding.EncodeToString(key)
	b.facts = collectFacts(o)
	b.results = map[string][]*runResult{}
	b.redone = map[string]int{}

	b.logf("%s; logs in %s", b.facts.summary(), work)
	if err := b.startBackends(ctx); err != nil {
		return err
	}
	if err := b.startCaddy(ctx, 0); err != nil {
		return err
	}
	if err := b.prepare(ctx); err != nil {
		return err
	}
	if err := b.measure(ctx); err != nil {
		return err
	}
	if o.cpuProfile {
		if err := b.profileRun(ctx); err != nil {
			return fmt.Errorf("CPU profile run: %w", err)
		}
	}
	b.checkLogs()
	b.facts.loadAfter = loadavg()
	return b.report()
}

// workMarker marks a directory the driver created, so that it only ever empties its own.
const workMarker = ".trustgate-bench-workdir"

// resetWorkDir empties work (which must be the driver's own: new, empty, or marked) and marks it.
func resetWorkDir(work string) error {
	entries, err := os.ReadDir(work)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(work, workMarker)); err != nil {
			return fmt.Errorf("-workdir %s is not empty and was not made by the benchmark: refusing to empty it", work)
		}
		if err := os.RemoveAll(work); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(work, workMarker), nil, 0o600)
}

// startBackends starts the upstream, redis-server and the OpenID Provider.
func (b *bench) startBackends(ctx context.Context) error {
	first := make(chan string, 1)
	up, err := startProc("upstream", filepath.Join(b.work, "upstream.log"), os.Environ(), first, b.o.upstreamBin, "-listen", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b.upstream = up
	select {
	case line := <-first:
		addr, ok := strings.CutPrefix(line, "listening on ")
		if !ok {
			return fmt.Errorf("upstream: unexpected first line %q", line)
		}
		b.upAddr = addr
	case <-up.done:
		return up.exitErr()
	case <-time.After(10 * time.Second):
		return errors.New("upstream did not report its address within 10s")
	case <-ctx.Done():
		return ctx.Err()
	}
	resp, err := http.Get("http://" + b.upAddr + "/")
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		return fmt.Errorf("upstream answered %s with %d bytes, want 200 with a body", resp.Status, len(body))
	}
	b.body = string(body)

	if b.needRedis() {
		if err := b.startRedis(ctx); err != nil {
			return err
		}
	}

	op, err := oidctest.New(oidctest.Options{})
	if err != nil {
		return fmt.Errorf("OpenID Provider: %w", err)
	}
	b.op = op
	op.SetAutoLogin("bindid-known")
	return nil
}

func (b *bench) needRedis() bool {
	return strings.Contains(b.o.configs, "c") || strings.Contains(b.o.configs, "d")
}

func (b *bench) startRedis(ctx context.Context) error {
	dir := filepath.Join(b.work, "redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		p, err := startProc("redis-server", filepath.Join(b.work, "redis.log"), os.Environ(), nil, b.o.redisBin,
			"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--protected-mode", "yes",
			"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--logfile", "")
		if err != nil {
			return err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if lastErr = waitPorts(ctx, p, 10*time.Second, addr); lastErr == nil {
			if _, lastErr = redisDo(addr, "PING"); lastErr == nil {
				b.redis, b.redisAdr = p, addr
				return nil
			}
		}
		p.stop(2 * time.Second)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("redis-server: %w", lastErr)
}

// startCaddy writes the Caddyfile and starts Caddy; adminPort 0 means admin off.
func (b *bench) startCaddy(ctx context.Context, adminPort int) error {
	if b.sites == nil {
		b.sites = map[string]*site{}
		for _, s := range []*site{
			{key: "a"},
			{key: "b", cookieName: "bench_b", store: "memory", match: defaultControl},
			{key: "c", cookieName: "bench_c", store: "redis", match: defaultControl},
			{key: "d", cookieName: "bench_d", store: "redis-nocache", match: defaultControl},
			{key: "f", set: defaultControl},
			{key: "g", cookieName: "bench_g", store: "memory", extra: "\t\tstandard_headers all\n", match: fullControl},
			{key: "h", set: fullControl},
		} {
			if s.key != "a" && s.key != "b" && !strings.Contains(b.o.configs, s.key) {
				continue
			}
			port, err := freePort()
			if err != nil {
				return err
			}
			s.port = port
			b.sites[s.key] = s
		}
	}
	cfPath := filepath.Join(b.work, "Caddyfile")
	if err := os.WriteFile(cfPath, []byte(b.caddyfile(adminPort)), 0o600); err != nil {
		return err
	}
	name := "caddy"
	logName := "caddy.log"
	if adminPort != 0 {
		name, logName = "caddy (profile run)", "caddy-profile.log"
	}
	p, err := startProc(name, filepath.Join(b.work, logName), b.env, nil, b.o.caddyBin, "run", "--config", cfPath, "--adapter", "caddyfile")
	if err != nil {
		return err
	}
	b.caddy = p
	var addrs []string
	for _, k := range []string{"a", "b", "c", "d", "f", "g", "h"} {
		if s, ok := b.sites[k]; ok {
			addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(s.port))
		}
	}
	if adminPort != 0 {
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(adminPort))
	}
	return waitPorts(ctx, p, 30*time.Second, addrs...)
}

func (b *bench) caddyfile(adminPort int) string {
	var w strings.Builder
	admin := "admin off"
	if adminPort != 0 {
		admin = "admin 127.0.0.1:" + strconv.Itoa(adminPort)
	}
	fmt.Fprintf(&w, `# Generated by bench/driver for one benchmark run.
{
	%s
	auto_https off
	persist_config off
	log {
		output stderr
		level %s
	}
}
`, admin, b.o.logLevel)
	for _, k := range []string{"a", "b", "c", "d", "f", "g", "h"} {
		s, ok := b.sites[k]
		if !ok {
			continue
		}
		fmt.Fprintf(&w, "\n# (%s) %s\nhttp://:%d {\n\tbind 127.0.0.1\n", k, strings.ReplaceAll(title(k, nil), "`", ""), s.port)
		if s.store != "" {
			// provider bindid: the in-process OP's bindid-known is a BindID user, and the
			// controls forward its alias too (the same headers as before the profiles).
			fmt.Fprintf(&w, "\ttrustgate {\n\t\tprovider bindid\n\t\tissuer %s\n\t\tclient_id %s\n\t\tclient_secret %s\n\t\tsecret %s\n\t\tcookie_name %s\n\t\tinsecure_cookie\n",
				b.op.Issuer(), oidctest.DefaultClientID, oidctest.DefaultClientSecret, b.secret, s.cookieName)
			switch s.store {
			case "memory":
				fmt.Fprintf(&w, "\t\tsession_store memory\n")
			case "redis":
				fmt.Fprintf(&w, "\t\tsession_store redis {\n\t\t\taddrs %s\n\t\t\tkey_prefix bench:%s:\n\t\t}\n", b.redisAdr, k)
			case "redis-nocache":
				fmt.Fprintf(&w, "\t\tsession_store redis {\n\t\t\taddrs %s\n\t\t\tkey_prefix bench:%s:\n\t\t\tlocal_cache_ttl off\n\t\t}\n", b.redisAdr, k)
			}
			w.WriteString(s.extra)
			fmt.Fprintf(&w, "\t}\n")
		}
		if s.set != nil {
			// The control gets the same request as its trustgate site (wrk sends a session
			// cookie of the same size) and, like trustgate, keeps the cookie from the upstream.
			w.WriteString("\trequest_header -Cookie\n")
			for _, h := range s.set.headers {
				fmt.Fprintf(&w, "\trequest_header %s `%s`\n", h[0], strings.ReplaceAll(strings.ReplaceAll(h[1], "{", "\\{"), "}", "\\}"))
			}
		}
		fmt.Fprintf(&w, "\treverse_proxy %s\n}\n", b.upAddr)
	}
	return w.String()
}

// prepare logs in to every trustgate site, checks every configuration answers as it must, and
// builds the wrk runs.
func (b *bench) prepare(ctx context.Context) error {
	b.configs = nil
	for _, k := range strings.Split(b.o.configs, ",") {
		k = strings.TrimSpace(k)
		c := &config{key: k, reaches: k != "e"}
		switch k {
		case "a":
			c.site = b.sites["a"]
		case "e":
			c.site = b.sites["b"]
			c.headers = []string{"Accept: text/html"}
		default:
			c.site = b.sites[k]
		}
		b.configs = append(b.configs, c)
	}
	cookies := map[string]string{}
	for _, c := range b.configs {
		if c.key == "e" || c.site.cookieName == "" {
			continue
		}
		if _, done := cookies[c.key]; !done {
			ck, err := b.login(ctx, c.site)
			if err != nil {
				return fmt.Errorf("(%s) login: %w", c.key, err)
			}
			cookies[c.key] = ck
		}
		c.cookie = cookies[c.key]
		c.headers = []string{"Cookie: " + c.cookie}
	}
	for _, c := range b.configs {
		if c.site.set != nil {
			ck, err := b.controlCookie("bench_" + c.key)
			if err != nil {
				return fmt.Errorf("(%s) cookie: %w", c.key, err)
			}
			c.headers = []string{"Cookie: " + ck}
		}
	}
	for _, c := range b.configs {
		if err := b.probe(ctx, c); err != nil {
			return fmt.Errorf("(%s) %s: %w", c.key, b.title(c.key), err)
		}
	}
	return nil
}

// controlCookie is what wrk sends to a control site: a session cookie as trustgate makes
// one (same codec, a name as long as bench_b), for a session that does not exist. The control site deletes
// it, so the control reads the same request bytes as its trustgate site and forwards the same.
func (b *bench) controlCookie(name string) (string, error) {
	codec, err := session.NewCodec([][]byte{[]byte(b.secret)}, time.Hour) // as trustgate reads `secret`
	if err != nil {
		return "", err
	}
	v, err := codec.Encode(name, session.NewID())
	if err != nil {
		return "", err
	}
	return name + "=" + v, nil
}

// login signs in to a trustgate site as a browser would: follow the redirects through the
// provider (which logs "bindid-known" in without a page) back to the site, and returns the
// session cookie as "name=value". The upstream must have received the user's subject.
func (b *bench) login(ctx context.Context, s *site) (string, error) {
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url()+"/__probe", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the login ended at %s with %s: %.300s\nCaddy's log:\n%s", resp.Request.URL, resp.Status, body, tailFile(b.caddy.logPath, 20))
	}
	subject, n, err := parseProbe(string(body))
	if err != nil {
		return "", fmt.Errorf("upstream probe: %w", err)
	}
	if subject != oidctest.SubjectBindIDKnown {
		return "", fmt.Errorf("after the login the upstream saw subject %q, want %q (is X-Auth-Subject sent?)", subject, oidctest.SubjectBindIDKnown)
	}
	if b.forwarded == nil {
		b.forwarded = map[string]int{}
	}
	prev, again := b.forwarded[s.key] // the profile run logs in again
	b.forwarded[s.key] = n
	if m := s.match; m != nil && n != len(m.headers) && (!again || prev != n) {
		b.problem("(%s) trustgate sent %d identity headers, but its control (%s) forwards %d: update %s in bench/driver", s.key, n, m.key, len(m.headers), m.name)
	}
	u, _ := url.Parse(s.url() + "/")
	for _, ck := range jar.Cookies(u) {
		if ck.Name == s.cookieName {
			return ck.Name + "=" + ck.Value, nil
		}
	}
	return "", fmt.Errorf("no %q cookie after the login", s.cookieName)
}

// probe sends the configuration's request once, as wrk will, and checks the answer; for a
// trustgate site it also checks that the same request without the cookie is refused, so the
// 200 is the cookie's doing.
func (b *bench) probe(ctx context.Context, c *config) error {
	get := func(headers []string) (*http.Response, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.site.url()+"/", nil)
		for _, h := range headers {
			name, value, _ := strings.Cut(h, ": ")
			req.Header.Set(name, value)
		}
		client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			return nil, "", err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return resp, string(body), nil
	}
	resp, body, err := get(c.headers)
	if err != nil {
		return err
	}
	if c.key == "e" {
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, b.op.Issuer()+"/authorize?") {
			return fmt.Errorf("got %s to %q, want 302 to %s/authorize", resp.Status, loc, b.op.Issuer())
		}
		return nil
	}
	if resp.StatusCode != http.StatusOK || body != b.body {
		return fmt.Errorf("got %s %.200q, want 200 with the upstream's body", resp.Status, body)
	}
	if set := c.site.set; set != nil {
		// A control site: the upstream gets the user's subject and every header of the list.
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.site.url()+"/__probe", nil)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return err
		}
		pb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/__probe: got %s, want 200", resp.Status)
		}
		subject, n, err := parseProbe(string(pb))
		if err != nil {
			return fmt.Errorf("upstream probe: %w", err)
		}
		if subject != oidctest.SubjectBindIDKnown || n != len(set.headers) {
			return fmt.Errorf("the upstream got subject %q and %d identity headers, want %q and the %d of %s: the request_header lines do not arrive",
				subject, n, oidctest.SubjectBindIDKnown, len(set.headers), set.name)
		}
	}
	if c.cookie != "" {
		resp, _, err := get(nil)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("without the cookie: got %s, want 401", resp.Status)
		}
	}
	return nil
}

// parseProbe reads the upstream's answer to /__probe: the X-Auth-Subject it got and how many
// X-Auth-* and X-Trust-* headers.
func parseProbe(body string) (subject string, n int, err error) {
	first, second, _ := strings.Cut(body, "\n")
	subject, ok1 := strings.CutPrefix(first, "subject=")
	count, ok2 := strings.CutPrefix(strings.TrimSpace(second), "identity-headers=")
	if n, err = strconv.Atoi(count); !ok1 || !ok2 || err != nil {
		return "", 0, fmt.Errorf("unexpected answer %.300q", body)
	}
	return subject, n, nil
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

// check records what makes a run untrustworthy.
func (b *bench) check(c *config, r *runResult, what string) {
	if n := r.socketErrors(); n > 0 {
		b.problem("(%s) %s: wrk socket errors (connect %d, read %d, write %d, timeout %d)", c.key, what, r.SocketErr[0], r.SocketErr[1], r.SocketErr[2], r.SocketErr[3])
	}
	if r.Non2xx3xx > 0 {
		b.problem("(%s) %s: %d of %d responses had status >= 400", c.key, what, r.Non2xx3xx, r.Requests)
	}
	if r.Requests == 0 {
		b.problem("(%s) %s: no request completed", c.key, what)
	}
	if c.reaches {
		// Every response counted by wrk came from the upstream; requests still in flight when
		// wrk stopped may have reached it too.
		if r.upstreamReqs < r.Requests || r.upstreamReqs > r.Requests+int64(b.o.conns) {
			b.problem("(%s) %s: the upstream answered %d requests, wrk counted %d", c.key, what, r.upstreamReqs, r.Requests)
		}
	} else if r.upstreamReqs != 0 {
		b.problem("(%s) %s: %d requests reached the upstream, want none (no session)", c.key, what, r.upstreamReqs)
	}
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
	fetched := make(chan error, 1)
	go func() {
		select {
		case <-time.After(lead):
		case <-ctx.Done():
			fetched <- ctx.Err()
			return
		}
		fetched <- fetchProfile(ctx, adminPort, b.o.profileSeconds, pr.path)
	}()
	r, err := b.load(ctx, c, lead+time.Duration(b.o.profileSeconds)*time.Second+2*time.Second)
	if err != nil {
		return err
	}
	b.check(c, r, "profile run")
	pr.run = r
	if err := <-fetched; err != nil {
		return fmt.Errorf("fetch the profile: %w", err)
	}
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", b.o.caddyBin, pr.path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof: %v\n%s", err, out)
	}
	pr.top = strings.TrimSpace(string(out))
	for _, part := range profileParts {
		share, err := pprofShare(ctx, b.o.caddyBin, pr.path, part.focus, part.ignore)
		if err != nil {
			return err
		}
		pr.shares = append(pr.shares, share)
	}
	b.profile = pr
	return nil
}

// profileParts are the slices of the profile reported as shares of Caddy's CPU time.
var profileParts = []struct{ name, focus, ignore string }{
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

func (b *bench) config(key string) *config {
	for _, c := range b.configs {
		if c.key == key {
			return c
		}
	}
	return nil
}

// checkLogs flags a Caddy log that grew during the load: per-request logging would be
// measured along with the gateway.
func (b *bench) checkLogs() {
	for _, name := range []string{"caddy.log", "caddy-profile.log"} {
		path := filepath.Join(b.work, name)
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		lines := strings.Count(string(data), "\n")
		b.facts.caddyLogLines += lines
		if lines > 50 {
			b.problem("Caddy logged %d lines (%s): logging on the request path distorts the numbers; the end of it:\n%s", lines, path, tailFile(path, 5))
		}
	}
}

// shutdown stops every process the driver started, Caddy first.
func (b *bench) shutdown() {
	if b.caddy != nil {
		b.caddy.stop(10 * time.Second)
	}
	if b.op != nil {
		b.op.Close()
	}
	for _, p := range []*proc{b.upstream, b.redis} {
		if p != nil {
			p.stop(5 * time.Second)
		}
	}
}

func cores(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return cpu.Seconds() / wall.Seconds()
}
