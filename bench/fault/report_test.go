//go:build soak || chaos

package fault

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/bench/internal/results"
)

// Settings from the environment, and where results go.

// envDuration reads a duration setting; it reports whether the environment set it.
func envDuration(tb testing.TB, name string, def time.Duration) (time.Duration, bool) {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def, false
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		tb.Fatalf("%s=%q: want a positive duration such as 1m", name, v)
	}
	return d, d != def
}

// envInt reads an integer setting; it reports whether the environment changed it.
func envInt(tb testing.TB, name string, def int) (int, bool) {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		tb.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n, n != def
}

// outputDir is where a run writes RESULTS.md and its SVGs: FAULT_RESULTS_DIR when set;
// bench/ for a full run; else a temporary directory that is kept (its path is logged).
func outputDir(tb testing.TB, full bool) string {
	tb.Helper()
	if d := os.Getenv("FAULT_RESULTS_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
		return d
	}
	if full {
		return ".."
	}
	d := filepath.Join(os.TempDir(), "trustgate-fault-results")
	if err := os.MkdirAll(d, 0o755); err != nil {
		tb.Fatal(err)
	}
	return d
}

// writeSection writes body as the section name of dir/RESULTS.md.
func writeSection(tb testing.TB, dir, name, body string) {
	tb.Helper()
	path := filepath.Join(dir, "RESULTS.md")
	if err := results.WriteSection(path, name, body); err != nil {
		tb.Errorf("writing the %s section: %v", name, err)
		return
	}
	tb.Logf("wrote the %q section of %s", name, path)
}

// machine is the line that says where and on what a run ran.
func machine(full bool) string {
	commit := "unknown"
	if out, err := exec.Command("git", "-C", "../..", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
		if out, err := exec.Command("git", "-C", "../..", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/RESULTS.md", ":(exclude)bench/*.svg", ":(exclude)*.md").Output(); err == nil && len(out) > 0 {
			commit += " (with uncommitted changes)"
		}
	}
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	redis := "redis-server"
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		if f := strings.Fields(string(out)); len(f) >= 3 {
			redis = "Redis " + strings.TrimPrefix(f[2], "v=")
		}
	}
	kind := "full run"
	if !full {
		kind = "quick run (settings changed through the environment)"
	}
	load, _ := os.ReadFile("/proc/loadavg")
	return fmt.Sprintf("%s, %s UTC, commit `%s`, %d CPUs (nproc; %s), %s, %s, load average before: %s",
		kind, time.Now().UTC().Format("2006-01-02 15:04"), commit, runtime.NumCPU(), cpu, runtime.Version(), redis,
		strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "))
}

// verdict is "pass" or "**FAIL**".
func verdict(ok bool) string {
	if ok {
		return "pass"
	}
	return "**FAIL**"
}

// mib formats bytes as MiB.
func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
