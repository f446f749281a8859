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
// upstream request counts. After the rounds it measures logins under load against (b) and (c)
// and, with -peer-logins (the default), against Apache mod_auth_openidc on the same provider
// (apache.go). It prints the report and writes it as the "bench" section of bench/RESULTS.md
// (bench/internal/results). At the end,
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
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
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
	loginDuration                           time.Duration
	loginClients, loginRounds               int
	peerLogins                              bool   // the same login load against Apache mod_auth_openidc
	apacheBin, apacheModules, apacheUser    string // the peer's binary, module directory, and user when run as root
	opAlg                                   string // the provider's signing algorithm
	peerShmMax                              int    // OIDCCacheShmMax of the peer; 0: the module's default
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
	flag.StringVar(&o.out, "out", "bench/RESULTS.md", "the markdown file whose \"bench\" section the results replace (other programs own the other sections)")
	flag.StringVar(&o.workDir, "workdir", ".cache/bench/run", "logs, Caddyfile, Caddy's data dirs and the profile (emptied at the start)")
	flag.StringVar(&o.logLevel, "caddy-log-level", "WARN", "Caddy's log level (WARN or ERROR keeps logging out of the measurement)")
	flag.Float64Var(&o.maxOther, "max-other", 0.25, "a run during which processes the benchmark did not start used more cores than this is discarded and repeated")
	flag.IntVar(&o.retries, "retries", 3, "how often a disturbed run is repeated before it is kept (and reported)")
	flag.DurationVar(&o.loginDuration, "logins", 8*time.Second, "after the rounds, sign in to (b) and (c) again and again for this long per run and report the gateway's CPU per login (0: skip)")
	flag.IntVar(&o.loginClients, "login-clients", 8, "concurrent clients of the login runs")
	flag.IntVar(&o.loginRounds, "login-rounds", 3, "login runs per site, alternating the sites")
	flag.BoolVar(&o.peerLogins, "peer-logins", true, "run the same login load against Apache mod_auth_openidc on the same provider, alternating with (b) and (c), and report the ratio (false: for machines without apt)")
	flag.StringVar(&o.apacheBin, "apache", "apache2", "the Apache httpd binary of the peer (looked up in PATH, then /usr/sbin)")
	flag.StringVar(&o.apacheModules, "apache-modules", "/usr/lib/apache2/modules", "the directory of Apache's modules (mod_auth_openidc.so, mod_mpm_event.so, ...)")
	flag.StringVar(&o.apacheUser, "apache-user", "www-data", "the user and group Apache's workers run as when the driver runs as root")
	flag.IntVar(&o.peerShmMax, "peer-shm-max", 0, "the peer's OIDCCacheShmMax: entries of mod_auth_openidc's shm session cache (0: its default, 500)")
	flag.StringVar(&o.opAlg, "op-alg", "RS256", "the provider's ID token signing algorithm, RS256 (what most providers use) or ES256")
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
	apache     *apachePeer // the login benchmark's peer (-peer-logins), nil without it
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
	// loginProfile is where Caddy's CPU went during logins (profileLogins).
	loginProfile *loginProfile
	facts        facts
	forwarded    map[string]int // per trustgate site: X-Auth-* and X-Trust-* headers the upstream got at the login
	logins       []*loginResult // the login runs (logins.go)
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
	if b.peerEnabled() {
		p, err := findApache(o.apacheBin)
		if err != nil {
			return err
		}
		o.apacheBin = p
		if _, err := os.Stat(filepath.Join(o.apacheModules, "mod_auth_openidc.so")); err != nil {
			return fmt.Errorf("mod_auth_openidc is missing (%v): install it with: sudo apt-get install -y libapache2-mod-auth-openidc (bench/run.sh does, as root), or skip the peer with -peer-logins=false", err)
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
	b.facts = collectFacts(o, b.peerEnabled())
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
	if err := b.measureLogins(ctx); err != nil {
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
	b.stopApache()
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
