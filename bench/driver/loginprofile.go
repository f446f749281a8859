package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// loginProfileParts are the slices of Caddy's CPU under the login load, as shares of its samples.
var loginProfileParts = []profilePart{
	{"trustgate's own work (its ServeHTTP without `reverse_proxy` and without the calls to the provider)", `trustgate\.\(\*Handler\)\.ServeHTTP`, `reverseproxy\.|net/http\.\(\*Client\)|net/http\.\(\*Transport\)|net/http\.\(\*persistConn\)`},
	{"calls to the provider (Go's HTTP client: token, userinfo; its connection goroutines included)", `net/http\.\(\*Client\)|net/http\.\(\*Transport\)|net/http\.\(\*persistConn\)`, ""},
	{"signature checks (ID token; crypto/rsa, crypto/ecdsa)", `crypto/rsa\.|crypto/ecdsa\.|crypto/internal/fips140/(rsa|ecdsa|bigmod|nistec)`, ""},
	{"JSON (token response, ID token, claims, userinfo, sessions)", `encoding/json\.`, ""},
	{"`reverse_proxy` (the first request upstream)", `reverseproxy\.\(\*Handler\)\.ServeHTTP`, ""},
	{"Caddy's HTTP server outside every handler (reading requests, writing responses)", `net/http\.\(\*conn\)\.serve`, `caddyhttp\.\(\*Server\)\.ServeHTTP`},
	{"garbage collector, background workers", `runtime\.gcBgMarkWorker`, ""},
	{"syscalls (network reads and writes)", `syscall\.Syscall|syscall\.RawSyscall`, ""},
}

// profileLogins records a CPU profile of the Caddy process that profileRun started (with its
// admin API on adminPort) while the login clients sign in to (b), and keeps the shares of
// loginProfileParts. It runs after the measured login runs, so it disturbs none of them.
func (b *bench) profileLogins(ctx context.Context, adminPort int) error {
	s := b.sites["b"]
	if s == nil || b.o.loginDuration <= 0 {
		return nil
	}
	t := loginTarget{key: "b", url: s.url(), cookieName: s.cookieName, cpu: b.caddy.cpuTime}
	seconds := b.o.profileSeconds
	b.logf("CPU profile of Caddy under the login load, (b), %ds", seconds)
	pr := &loginProfile{path: filepath.Join(b.work, "caddy-logins.cpu.pprof")}
	lead := 2 * time.Second
	fetched := fetchProfileAfter(ctx, lead, adminPort, seconds, pr.path)
	r, err := b.loginRun(ctx, t, lead+time.Duration(seconds)*time.Second+2*time.Second)
	if err != nil {
		return err
	}
	if err := <-fetched; err != nil {
		return fmt.Errorf("fetch the login profile: %w", err)
	}
	if r.failures > 0 {
		b.problem("(b) %d logins failed during the login profile; the first: %s", r.failures, r.firstFailure)
	}
	pr.logins = r.logins
	pr.perLogin = perLogin(r.serverCPU, r)
	if pr.top, pr.shares, err = readProfile(ctx, b.o.caddyBin, pr.path, loginProfileParts, "-cum", "-nodecount=40"); err != nil {
		return err
	}
	b.loginProfile = pr
	return nil
}

type loginProfile struct {
	path     string
	logins   int64
	perLogin float64 // µs of Caddy CPU per login during the profile
	top      string
	shares   []string // of loginProfileParts
}

// loginProfileReport is the section on where Caddy's CPU goes during logins.
func (b *bench) loginProfileReport(p func(string, ...any), rel func(string) string) {
	pr := b.loginProfile
	if pr == nil {
		return
	}
	p("### CPU profile of Caddy under the login load, (b)\n\n")
	p("The same Caddy process as the profile above, while the login clients signed in to (b) (%d logins, %.0f µs of Caddy CPU per login with the profiler attached). Profile: `%s`.\n\n", pr.logins, pr.perLogin, rel(pr.path))
	sharesTable(p, loginProfileParts, pr.shares)
	p("\n<details><summary><code>go tool pprof -top -cum -nodecount=40 caddy %s</code></summary>\n\n```text\n%s\n```\n\n</details>\n\n", filepath.Base(pr.path), pr.top)
}
