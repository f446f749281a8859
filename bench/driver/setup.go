package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/session"
)

// Setting up: the work directory, the upstream, Redis, Caddy, and a scripted login per
// trustgate site (the Caddyfile itself is written in main.go).

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

	// The benchmark mode of the provider: it signs with a fixed, pre-generated key and keeps
	// everything in memory. The peer's client is registered with its exact redirect URI.
	clients := []oidctest.Client{oidctest.DefaultClient()}
	if b.peerEnabled() {
		if b.apache, err = newApachePeer(); err != nil {
			return err
		}
		clients = append(clients, b.apache.client())
	}
	op, err := oidctest.NewBench(oidctest.Options{Clients: clients, SigningAlg: b.o.opAlg})
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
	jar, body, err := signIn(ctx, s.url(), "/__probe")
	if err != nil {
		return "", fmt.Errorf("%w\nCaddy's log:\n%s", err, tailFile(b.caddy.logPath, 20))
	}
	subject, n, err := parseProbe(body)
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
	if ck := sessionCookie(jar, s.url(), s.cookieName); ck != nil {
		return ck.Name + "=" + ck.Value, nil
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
