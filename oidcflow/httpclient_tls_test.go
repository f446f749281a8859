package oidcflow

import (
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// NewHTTPClientWithRoots verifies the OP's certificate against the given roots only.
func TestNewHTTPClientWithRoots(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	resp, err := NewHTTPClientWithRoots(5*time.Second, 1<<10, roots).Get(srv.URL)
	if err != nil {
		t.Fatalf("with the server's CA: %v", err)
	}
	resp.Body.Close()
	for name, c := range map[string]*http.Client{
		"system roots":      NewHTTPClient(5*time.Second, 1<<10),
		"nil roots":         NewHTTPClientWithRoots(5*time.Second, 1<<10, nil),
		"another CA's pool": NewHTTPClientWithRoots(5*time.Second, 1<<10, x509.NewCertPool()),
	} {
		if _, err := c.Get(srv.URL); err == nil || !strings.Contains(err.Error(), "x509:") {
			t.Errorf("%s: error = %v, want an x509 verification failure", name, err)
		}
	}
}

// The client honours HTTPS_PROXY and NO_PROXY, and never proxies a loopback address. It runs
// in a child process: net/http reads the proxy variables once per process.
func TestNewHTTPClientProxyFromEnvironment(t *testing.T) {
	if os.Getenv("TG_PROXY_CHILD") != "" {
		c := NewHTTPClient(2*time.Second, 1<<10)
		for _, u := range strings.Fields(os.Getenv("TG_PROXY_CHILD")) {
			if resp, err := c.Get(u); err == nil {
				resp.Body.Close()
			}
		}
		return
	}
	var connects atomic.Value
	connects.Store("")
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			connects.Store(connects.Load().(string) + r.Host + " ")
		}
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer proxy.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestNewHTTPClientProxyFromEnvironment$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		"TG_PROXY_CHILD=https://idp.example.test/.well-known/openid-configuration https://direct.example.test/ https://127.0.0.1:1/ https://localhost:1/",
		"HTTPS_PROXY="+proxy.URL, "https_proxy="+proxy.URL, "NO_PROXY=direct.example.test", "no_proxy=direct.example.test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if got := connects.Load().(string); got != "idp.example.test:443 " {
		t.Errorf("proxy CONNECTs = %q, want only idp.example.test:443 (direct.example.test is in NO_PROXY; loopback is never proxied)", got)
	}
}
