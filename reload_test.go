package trustgate

import (
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// TestReloadLeaksNothing reloads a running Caddy 100 times, each time with a changed
// configuration (so every reload provisions new handlers and cleans the old ones up), with
// a signed-in session in use throughout. The session survives every reload, and the
// goroutines come back to what they were: no provider client, store, key loader or
// background group is left behind by a reload.
func TestReloadLeaksNothing(t *testing.T) {
	t.Setenv("TG_IT_CLIENT_SECRET", oidctest.DefaultClient().Secret)
	t.Setenv("TG_IT_SECRET", testSecret)
	op := oidctest.NewTest(t, oidctest.Options{})
	op.SetAutoLogin("bindid-known")
	tester := caddytest.NewTester(t)
	// The application is a respond handler: reverse_proxy keeps an idle connection to its
	// upstream per reload until it times out (Caddy's own behaviour, measured without
	// trustgate), which would hide what trustgate leaves behind.
	config := func(i int) string {
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
		ciba
		assertion
	}
	header X-Generation %d
	respond "app"
}`, op.Issuer(), i)
	}
	tester.InitServer(config(0), "caddyfile")
	req, _ := http.NewRequest(http.MethodGet, "http://localhost:9080/app", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := tester.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d, want 200", resp.StatusCode)
	}
	get := func(i int) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://localhost:9080/api", nil)
		req.Header.Set("Accept", "application/json")
		resp, err := tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := fmt.Sprint(i); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Generation") != want {
			t.Fatalf("after reload %d: %d (X-Generation %q), want 200 from generation %s with the same session", i, resp.StatusCode, resp.Header.Get("X-Generation"), want)
		}
	}
	// A first reload, so that what lives for the process (pools, HTTP keep-alives) exists
	// before the count is taken.
	tester.InitServer(config(1), "caddyfile")
	get(1)
	before := settledGoroutines(0)

	for i := 2; i <= 101; i++ {
		tester.InitServer(config(i), "caddyfile")
		get(i)
	}
	after := settledGoroutines(before)
	t.Logf("goroutines: %d before 100 reloads, %d after", before, after)
	if after > before+5 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Errorf("goroutines grew from %d to %d over 100 reloads; stacks:\n%s", before, after, buf[:n])
	}
}

// settledGoroutines waits up to 5 s for the goroutine count to drop to target (0: just
// for it to settle) and returns it.
func settledGoroutines(target int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		m := runtime.NumGoroutine()
		if (target > 0 && m <= target) || (target == 0 && m == n) {
			return m
		}
		n = m
	}
	return n
}
