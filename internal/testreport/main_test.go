package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantCode int
		wantOut  string
	}{
		{"all pass", `{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"pass","Package":"p","Test":"TestA/sub"}
{"Action":"pass","Package":"p","Elapsed":0.5}`, 0, "ok    p (0.5s, 1 tests)"},
		{"a failure shows its output", `{"Action":"output","Package":"p","Test":"TestA","Output":"boom\n"}
{"Action":"fail","Package":"p","Test":"TestA"}`, 1, "--- FAIL p TestA\nboom"},
		{"a skip fails the run", `{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestB","Output":"no redis\n"}
{"Action":"skip","Package":"p","Test":"TestB"}`, 1, "--- SKIP p TestB"},
		{"no tests at all fails", `{"Action":"pass","Package":"p"}`, 1, "0 passed"},
		{"build error text passes through", "# p\nx.go:1: undefined: y\n" + `{"Action":"fail","Package":"p","Output":""}`, 1, "undefined: y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if got := run(strings.NewReader(tt.in), &out); got != tt.wantCode {
				t.Errorf("run() = %d, want %d; output:\n%s", got, tt.wantCode, out.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("run() output = %q, want containing %q", out.String(), tt.wantOut)
			}
		})
	}
}
