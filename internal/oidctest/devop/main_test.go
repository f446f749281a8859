package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	var stderr strings.Builder
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-listen", "127.0.0.1:0", "-client-id", "demo", "-redirect", "http://127.0.0.1:9001/.trustgate/callback"}, outW, &stderr)
		outW.Close()
	}()

	var issuer string
	var printed []string
	sc := bufio.NewScanner(outR)
	for sc.Scan() {
		line := sc.Text()
		printed = append(printed, line)
		if v, ok := strings.CutPrefix(line, "issuer:"); ok {
			issuer = strings.TrimSpace(v)
		}
		if strings.Contains(line, "ase-0001") {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	if !strings.HasPrefix(issuer, "http://127.0.0.1:") {
		t.Fatalf("printed issuer = %q (output %q), want http://127.0.0.1:PORT", issuer, printed)
	}
	if !slices.ContainsFunc(printed, func(s string) bool { return strings.Contains(s, "client_id: demo") }) {
		t.Errorf("output %q does not name the client", printed)
	}

	resp, err := http.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil || doc["issuer"] != issuer {
		t.Errorf("discovery issuer = %v (%v), want %s", doc["issuer"], err, issuer)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run() = %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run() did not return after cancel")
	}
	if !strings.Contains(stderr.String(), "GET /.well-known/openid-configuration 200") {
		t.Errorf("stderr = %q, want a request log line", stderr.String())
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "non-loopback listen", args: []string{"-listen", "0.0.0.0:0"}},
		{name: "bad alg", args: []string{"-listen", "127.0.0.1:0", "-signing-alg", "none"}},
		{name: "empty client id", args: []string{"-listen", "127.0.0.1:0", "-client-id", ""}},
		{name: "unknown flag", args: []string{"-nope"}},
		{name: "extra argument", args: []string{"extra"}},
		{name: "missing login_hint JWKS file", args: []string{"-listen", "127.0.0.1:0", "-login-hint-jwks", "/nonexistent/jwks.json"}},
		{name: "login_hint JWKS URL without host", args: []string{"-listen", "127.0.0.1:0", "-login-hint-jwks", "http:///jwks.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // would return at once if it started serving
			if err := run(ctx, tt.args, io.Discard, io.Discard); err == nil {
				t.Errorf("run(%q) = nil, want an error", tt.args)
			}
		})
	}
}

func TestSplitList(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{name: "star", in: "*", want: []string{"*"}},
		{name: "several", in: "http://a/cb, http://b/cb,,", want: []string{"http://a/cb", "http://b/cb"}},
		{name: "empty", in: "", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := splitList(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("splitList(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestJWKSSource(t *testing.T) {
	const set = `{"keys":[]}`
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, []byte(set), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.trustgate/jwks.json" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, set)
	}))
	t.Cleanup(srv.Close)
	for _, src := range []string{file, srv.URL + "/.trustgate/jwks.json"} {
		get, err := jwksSource(src)
		if err != nil {
			t.Fatalf("jwksSource(%q) error = %v", src, err)
		}
		if b, err := get(); err != nil || string(b) != set {
			t.Errorf("jwksSource(%q)() = %q, %v, want %q", src, b, err, set)
		}
	}
	get, err := jwksSource(srv.URL + "/missing")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get(); err == nil {
		t.Errorf("jwksSource(404 URL)() error = nil, want the HTTP status")
	}
}
