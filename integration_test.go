package trustgate

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/trustgate/trustgate/internal/oidctest"
	"github.com/trustgate/trustgate/internal/web"
)

// These tests run a real Caddy in this process (caddytest): one global server per test
// binary, admin on localhost:2999, so they must not run in parallel.

func echoUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.RequestURI(), "headers": r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func caddyConfig(op *oidctest.Provider, upstream, extra string) string {
	return fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
}
http://localhost:9080 {
	trustgate {
		provider bindid
		issuer %s
		client_id trustgate
		client_secret {env.TG_IT_CLIENT_SECRET}
		secret {env.TG_IT_SECRET}
		insecure_cookie
	}
	request_header X-Gateway-User {http.auth.user.id}
	request_header X-Seen-Alias {http.request.header.X-Auth-Alias}
	%s
	reverse_proxy %s
}`, op.Issuer(), extra, strings.TrimPrefix(upstream, "http://"))
}

type echoed struct {
	Path    string      `json:"path"`
	Headers http.Header `json:"headers"`
}

func getEcho(t *testing.T, c *http.Client, url, accept string) (int, echoed) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", accept)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var e echoed
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatalf("GET %s: upstream answer is not the echo: %v", url, err)
		}
	}
	return resp.StatusCode, e
}

func TestIntegrationLoginThroughCaddyAndReloadKeepsSession(t *testing.T) {
	t.Setenv("TG_IT_CLIENT_SECRET", oidctest.DefaultClient().Secret)
	t.Setenv("TG_IT_SECRET", testSecret)
	op := oidctest.NewTest(t, oidctest.Options{})
	op.SetAutoLogin("bindid-known")
	up := echoUpstream(t)

	tester := caddytest.NewTester(t)
	tester.InitServer(caddyConfig(op, up.URL, ""), "caddyfile")

	// An API call without a session: 401 JSON, no redirect.
	status, _ := getEcho(t, tester.Client, "http://localhost:9080/api", "application/json")
	if status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated API call = %d, want 401", status)
	}

	// A browser navigation logs in through the OP and lands on the original URL.
	status, e := getEcho(t, tester.Client, "http://localhost:9080/app?x=1", "text/html")
	if status != http.StatusOK || e.Path != "/app?x=1" {
		t.Fatalf("after login: %d %q, want 200 /app?x=1", status, e.Path)
	}
	if got := e.Headers.Get("X-Auth-Subject"); got != oidctest.SubjectBindIDKnown {
		t.Errorf("X-Auth-Subject = %q", got)
	}
	if got := e.Headers.Get("X-Gateway-User"); got != oidctest.SubjectBindIDKnown {
		t.Errorf("{http.auth.user.id} in request_header = %q, want the subject", got)
	}
	if got := e.Headers.Get("X-Auth-Alias"); got != "username@domain" {
		t.Errorf("X-Auth-Alias = %q", got)
	}
	// Later handlers read the identity headers through Caddy's request placeholders.
	if got := e.Headers.Get("X-Seen-Alias"); got != "username@domain" {
		t.Errorf("{http.request.header.X-Auth-Alias} in request_header = %q, want username@domain", got)
	}
	if strings.Contains(e.Headers.Get("Cookie"), "trustgate") {
		t.Errorf("upstream Cookie %q carries a gateway cookie", e.Headers.Get("Cookie"))
	}
	authorizations := op.Counts().Authorize

	// caddy reload with a changed configuration keeps the session (memory store pooled).
	tester.InitServer(caddyConfig(op, up.URL, "header X-Reloaded yes"), "caddyfile")
	req, _ := http.NewRequest(http.MethodGet, "http://localhost:9080/after-reload", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := tester.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Reloaded") != "yes" {
		t.Fatalf("after reload: %d (X-Reloaded %q), want 200 from the new config with the old session", resp.StatusCode, resp.Header.Get("X-Reloaded"))
	}
	if op.Counts().Authorize != authorizations {
		t.Error("the reload forced a new login at the OP")
	}
}

func TestIntegrationConfigErrors(t *testing.T) {
	t.Setenv("TG_IT_SHORT", "short")
	for _, tc := range []struct{ name, block, want string }{
		{"missing issuer", "client_id x", "issuer is required"},
		{"short secret from env", "issuer https://idp.example.com\n\t\tclient_id x\n\t\tsecret {env.TG_IT_SHORT}", "secret #1 is 5 bytes"},
		{"plain http issuer", "issuer http://idp.example.com\n\t\tclient_id x", "only https is accepted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caddytest.AssertLoadError(t, `{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
}
http://localhost:9080 {
	trustgate {
		`+tc.block+`
	}
}`, "caddyfile", tc.want)
		})
	}
}

// Behind Caddy's rewrites: a single-page app with try_files (every path rewritten to
// /index.html before trustgate runs), and an app mounted under a prefix with handle_path
// (the prefix stripped). The callback must be recognised by the path the browser sees, and
// request_header editing identity headers must not change them for later requests.
func TestIntegrationBehindRewrites(t *testing.T) {
	t.Setenv("TG_IT_CLIENT_SECRET", oidctest.DefaultClient().Secret)
	t.Setenv("TG_IT_SECRET", testSecret)
	op := oidctest.NewTest(t, oidctest.Options{})
	op.SetAutoLogin("bindid-known")
	up := echoUpstream(t)
	upstream := strings.TrimPrefix(up.URL, "http://")
	block := func(extra string) string {
		return fmt.Sprintf(`trustgate {
			provider bindid
			issuer %s
			client_id trustgate
			client_secret {env.TG_IT_CLIENT_SECRET}
			secret {env.TG_IT_SECRET}
			insecure_cookie
			%s
		}`, op.Issuer(), extra)
	}
	spa := t.TempDir() // the single-page app's files: only index.html
	if err := os.WriteFile(filepath.Join(spa, "index.html"), []byte("<html>app</html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	tester := caddytest.NewTester(t)
	tester.InitServer(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
}
http://localhost:9080 {
	root * `+spa+`
	try_files {path} /index.html
	`+block("")+`
	request_header X-Auth-Alias "^" "edited-"
	reverse_proxy `+upstream+`
}
http://127.0.0.1:9080 {
	handle_path /app/* {
		`+block("path_prefix /app/.trustgate")+`
		reverse_proxy `+upstream+`
	}
	respond "not the app" 404
}`, "caddyfile")

	t.Run("try_files", func(t *testing.T) {
		status, e := getEcho(t, tester.Client, "http://localhost:9080/dashboard", "text/html")
		if status != http.StatusOK || e.Path != "/index.html" {
			t.Fatalf("after login behind try_files: %d %q, want 200 with the rewritten /index.html (no login loop)", status, e.Path)
		}
		for i := range 3 {
			_, e = getEcho(t, tester.Client, "http://localhost:9080/dashboard", "application/json")
			if got := e.Headers.Get("X-Auth-Alias"); got != "edited-username@domain" {
				t.Errorf("request %d: X-Auth-Alias after request_header = %q, want edited-username@domain (edited once, not cumulatively)", i, got)
			}
		}
	})
	t.Run("handle_path", func(t *testing.T) {
		status, e := getEcho(t, tester.Client, "http://127.0.0.1:9080/app/reports?y=1", "text/html")
		if status != http.StatusOK || e.Path != "/reports?y=1" {
			t.Fatalf("after login under handle_path: %d %q, want 200 /reports?y=1 (prefix stripped)", status, e.Path)
		}
		if got := e.Headers.Get("X-Auth-Subject"); got != oidctest.SubjectBindIDKnown {
			t.Errorf("X-Auth-Subject = %q", got)
		}
		req := op.LastTokenRequest()
		if got := req.Get("redirect_uri"); got != "http://127.0.0.1:9080/app/.trustgate/callback" {
			t.Errorf("redirect_uri = %q, want the path the browser sees", got)
		}
	})
}

// Open paths: a named matcher on the directive leaves paths open (trustgate does not run
// there), and the gateway's own endpoints still reach it, also when the matcher selects only
// some paths (the adapter adds a matcher set for path_prefix).
func TestIntegrationMatcherOpenPathsAndEndpoints(t *testing.T) {
	t.Setenv("TG_IT_CLIENT_SECRET", oidctest.DefaultClient().Secret)
	t.Setenv("TG_IT_SECRET", testSecret)
	op := oidctest.NewTest(t, oidctest.Options{})
	op.SetAutoLogin("bindid-known")
	up := echoUpstream(t)
	upstream := strings.TrimPrefix(up.URL, "http://")
	block := fmt.Sprintf(`{
		provider bindid
		issuer %s
		client_id trustgate
		client_secret {env.TG_IT_CLIENT_SECRET}
		secret {env.TG_IT_SECRET}
		insecure_cookie
	}`, op.Issuer())
	tester := caddytest.NewTester(t)
	tester.InitServer(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
}
http://localhost:9080 {
	@open path /health /public/*
	@protected not path /health /public/*
	trustgate @protected `+block+`
	request_header @open -X-Auth-*
	request_header @open -X-Trust-*
	reverse_proxy `+upstream+`
}
http://127.0.0.1:9080 {
	@protected path /app/*
	trustgate @protected `+block+`
	reverse_proxy `+upstream+`
}`, "caddyfile")

	for _, host := range []string{"localhost", "127.0.0.1"} {
		t.Run(host, func(t *testing.T) {
			base := "http://" + host + ":9080"
			open, protected := "/public/x", "/app"
			if host == "127.0.0.1" {
				open, protected = "/other/x", "/app/x"
			}
			before := op.Counts().Authorize
			req, _ := http.NewRequest(http.MethodGet, base+open, nil)
			req.Header.Set("Accept", "text/html")
			req.Header.Set("X-Auth-Subject", "spoofed")
			resp, err := tester.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var e echoed
			_ = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || e.Path != open || op.Counts().Authorize != before {
				t.Fatalf("open path %s: %d %q (authorizations %d -> %d), want 200 from the upstream without login", open, resp.StatusCode, e.Path, before, op.Counts().Authorize)
			}
			if host == "localhost" && e.Headers.Get("X-Auth-Subject") != "" {
				t.Errorf("open path: X-Auth-Subject %q reached the upstream despite request_header -X-Auth-*", e.Headers.Get("X-Auth-Subject"))
			}

			// The protected path: unauthenticated API call 401, then a browser login
			// through the callback (a gateway endpoint outside /app/*).
			if status, _ := getEcho(t, tester.Client, base+protected+"?api=1", "application/json"); status != http.StatusUnauthorized {
				t.Fatalf("protected %s without session = %d, want 401", protected, status)
			}
			status, e := getEcho(t, tester.Client, base+protected+"?y=1", "text/html")
			if status != http.StatusOK || e.Path != protected+"?y=1" || e.Headers.Get("X-Auth-Subject") != oidctest.SubjectBindIDKnown {
				t.Fatalf("after login: %d %q subject %q, want 200 %s?y=1 as the user", status, e.Path, e.Headers.Get("X-Auth-Subject"), protected)
			}
			if got := op.LastTokenRequest().Get("redirect_uri"); got != base+"/.trustgate/callback" {
				t.Errorf("redirect_uri = %q", got)
			}
			// The other endpoints: me, healthz, login and logout.
			for _, p := range []string{"/.trustgate/me", "/.trustgate/healthz"} {
				req, _ := http.NewRequest(http.MethodGet, base+p, nil)
				req.Header.Set("Accept", "application/json")
				resp, err := tester.Client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || strings.Contains(string(body), `"path"`) {
					t.Errorf("GET %s = %d %q, want 200 from the gateway", p, resp.StatusCode, web.Clip(string(body), 120))
				}
			}
			noFollow := &http.Client{Jar: tester.Client.Jar, Transport: tester.Client.Transport,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err = noFollow.Get(base + "/.trustgate/login?rd=/app/x")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), op.Issuer()) {
				t.Errorf("login endpoint = %d %q, want 302 to the provider", resp.StatusCode, resp.Header.Get("Location"))
			}
			req, _ = http.NewRequest(http.MethodPost, base+"/.trustgate/logout", nil)
			req.Header.Set("Accept", "application/json")
			resp, err = tester.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "signed_out") {
				t.Fatalf("logout = %d %q, want 200 signed_out", resp.StatusCode, body)
			}
			if status, _ := getEcho(t, tester.Client, base+protected, "application/json"); status != http.StatusUnauthorized {
				t.Errorf("after logout %s = %d, want 401", protected, status)
			}
		})
	}
}
