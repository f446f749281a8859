package trustgate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// TestCaddyfileAdapt compares the JSON that each testdata/caddyfile_adapt/*.caddyfiletest
// Caddyfile adapts to with the JSON after its "----------" line. When the part after the
// line is not JSON, it is a substring of the expected adapt error.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no adapt fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(data), "----------")
			if !ok {
				t.Fatalf("%s has no ---------- separator", f)
			}
			want = strings.TrimSpace(want)
			if !strings.HasPrefix(want, "{") {
				_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("Adapt() error = %v, want containing %q", err, want)
				}
				return
			}
			if !caddytest.CompareAdapt(t, f, input, "caddyfile", want) {
				t.Fail()
			}
		})
	}
}
