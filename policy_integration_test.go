package trustgate

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/trustgate/trustgate/internal/oidctest"
)

// Route policies through a real Caddy: a policy block inside `route`, reached through
// Caddy's own path matching (threat model HDR-07).

func policyCaddyConfig(op *oidctest.Provider, upstream string) string {
	return fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
}
http://localhost:9080 {
	trustgate {
		issuer %s
		client_id trustgate
		client_secret {env.TG_IT_CLIENT_SECRET}
		secret {env.TG_IT_SECRET}
		insecure_cookie
		header X-Locality address.locality
	}
	route /admin* {
		trustgate {
			require claim groups admins
		}
	}
	reverse_proxy %s
}`, op.Issuer(), strings.TrimPrefix(upstream, "http://"))
}

// rawGet sends path exactly as written (no client-side cleaning) with the session cookie.
func rawGet(t *testing.T, rawPath, cookie string) (int, echoed) {
	t.Helper()
	conn, err := net.Dial("tcp", "127.0.0.1:9080")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: localhost:9080\r\nAccept: application/json\r\nCookie: %s\r\nConnection: close\r\n\r\n", rawPath, cookie)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", rawPath, err)
	}
	defer resp.Body.Close()
	var e echoed
	if resp.StatusCode == http.StatusOK {
		_ = json.NewDecoder(resp.Body).Decode(&e)
	}
	return resp.StatusCode, e
}

// resolves is the path an upstream may end up serving: percent-decoded, backslashes read
// as slashes, ';' path parameters dropped from every segment (Tomcat, Jetty), dot segments
// removed, case folded (case-insensitive file systems).
func resolves(p string) string {
	p, _, _ = strings.Cut(p, "?")
	if dec, err := url.PathUnescape(p); err == nil {
		p = dec
	}
	p = strings.ReplaceAll(p, "\\", "/")
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i], _, _ = strings.Cut(s, ";")
	}
	return strings.ToLower(path.Clean("/" + strings.Join(segs, "/")))
}

func TestHDR07_PolicyRouteAndPathNormalization(t *testing.T) {
	t.Setenv("TG_IT_CLIENT_SECRET", oidctest.DefaultClient().Secret)
	t.Setenv("TG_IT_SECRET", testSecret)
	op := oidctest.NewTest(t, oidctest.Options{})
	op.SetAutoLogin("ola") // BankID user: address claim, no groups claim
	up := echoUpstream(t)
	tester := caddytest.NewTester(t)
	tester.InitServer(policyCaddyConfig(op, up.URL), "caddyfile")

	status, e := getEcho(t, tester.Client, "http://localhost:9080/public/x", "text/html")
	if status != http.StatusOK {
		t.Fatalf("login: %d", status)
	}
	if got := e.Headers.Get("X-Locality"); got != "0772" {
		t.Errorf("mapped header X-Locality = %q, want 0772 (address.locality of seed 003)", got)
	}
	u, _ := url.Parse("http://localhost:9080/")
	var cookie string
	for _, c := range tester.Client.Jar.Cookies(u) {
		cookie += c.Name + "=" + c.Value + "; "
	}

	// The protected route itself is refused with the rule named.
	if status, _ := rawGet(t, "/admin/users", cookie); status != http.StatusForbidden {
		t.Fatalf("/admin/users without the group = %d, want 403", status)
	}
	for _, p := range []string{
		"/admin", "//admin", "/ADMIN", "/Admin/users", "/admin/", "/public/../admin", "/public/%2e%2e/admin",
		"/public/..%2fadmin", "/public%2fadmin", `/public\..\admin`, "/public/x%23/../admin", "/admin;x=1",
		"/admin?x=/public/", "/public/x#frag", "/./admin", "/public/./../admin/x", "/%61dmin",
		"/admin;x=1/users", "/public/..;/admin/users", "/public/.;/../admin", "/admin%3Bx/users",
	} {
		status, e := rawGet(t, p, cookie)
		switch {
		case status == http.StatusForbidden:
		case status == http.StatusOK && !strings.HasPrefix(resolves(e.Path), "/admin"):
		case status == http.StatusBadRequest || status == http.StatusNotFound:
		default:
			t.Errorf("%s: %d, upstream got %q (resolves to %q): the policy was bypassed", p, status, e.Path, resolves(e.Path))
		}
	}
	// A spoofed X-Forwarded-Uri or mapped header does not change the decision or the value,
	// and naming identity headers in Connection does not remove them (threat model HDR-01).
	conn, err := net.Dial("tcp", "127.0.0.1:9080")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /public/y HTTP/1.1\r\nHost: localhost:9080\r\nAccept: application/json\r\nCookie: %s\r\nX-Forwarded-Uri: /admin\r\nX_Locality: forged\r\nx-locality: forged\r\nConnection: close, X-Locality, X-Auth-Subject, X-Trust-New-Device\r\n\r\n", cookie)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	e = echoed{}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusOK || len(e.Headers.Values("X-Locality")) != 1 || e.Headers.Get("X-Locality") != "0772" {
		t.Errorf("spoofed mapped header: %d, X-Locality %q", resp.StatusCode, e.Headers.Values("X-Locality"))
	}
	// Naming them in Connection (hop-by-hop) did not make Caddy drop the gateway's values.
	if e.Headers.Get("X-Auth-Subject") != oidctest.SubjectOla {
		t.Errorf("X-Auth-Subject = %q after a Connection header naming it, want %q", e.Headers.Get("X-Auth-Subject"), oidctest.SubjectOla)
	}
	for name := range e.Headers {
		if strings.EqualFold(strings.ReplaceAll(name, "_", "-"), "x-locality") && name != "X-Locality" {
			t.Errorf("upstream received the variant %q of a mapped header", name)
		}
	}
}
