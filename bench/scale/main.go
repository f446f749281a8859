// Command scale measures trustgate's sessions at scale (`make bench-scale`): the memory a
// session takes in the memory store and in Redis, and whether warm requests stay as fast
// with 100,000 and 1,000,000 sessions stored as with 1,000 (DESIGN.md, "Memory"). It runs
// the root package's BenchmarkSessionsAtScale and BenchmarkRedisBytesPerSession (real
// sessions of a real login, a real redis-server) and writes bench/SCALE.md: each figure
// next to its goal, ratios to the 1,000-session run of the same invocation, the machine,
// the commit and the date.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Goals from DESIGN.md, "Performance budget".
const (
	goalMemoryBytes = 1024 // per session, memory store
	goalRedisBytes  = 1536 // per session, Redis (encrypted)
	goalThroughput  = 0.95 // req/s at the largest count ÷ req/s at 1,000
	goalP99         = 1.2  // p99 at the largest count ÷ p99 at 1,000
)

type row struct {
	sessions                          int
	nsPerOp, p50, p99, heapPerSession float64
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

func main() {
	counts := flag.String("sessions", "1000,100000,1000000", "session counts (the first is the reference)")
	benchtime := flag.String("benchtime", "5s", "go test -benchtime per count")
	out := flag.String("out", "bench/SCALE.md", "report file")
	flag.Parse()

	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "^(BenchmarkSessionsAtScale|BenchmarkRedisBytesPerSession)$",
		"-benchtime", *benchtime, "-timeout", "60m", ".")
	cmd.Env = append(os.Environ(), "TRUSTGATE_SCALE_SESSIONS="+*counts)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, os.Stderr
	fmt.Fprintf(os.Stderr, "scale: go test -bench (sessions %s, %s each; 1,000,000 sessions take about 8 GB and a few minutes)\n", *counts, *benchtime)
	if err := cmd.Run(); err != nil {
		os.Stdout.Write(buf.Bytes())
		fmt.Fprintf(os.Stderr, "scale: %v\n", err)
		os.Exit(1)
	}
	var rows []row
	var redisBytes, redisKeys, jsonBytes float64
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		metrics := map[string]float64{}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				metrics[f[i+1]] = v
			}
		}
		switch {
		case strings.HasPrefix(m[1], "SessionsAtScale/sessions="):
			n, _ := strconv.Atoi(strings.TrimPrefix(m[1], "SessionsAtScale/sessions="))
			rows = append(rows, row{n, metrics["ns/op"], metrics["p50-ns"], metrics["p99-ns"], metrics["B/session"]})
			jsonBytes = metrics["json-B"]
		case m[1] == "RedisBytesPerSession":
			redisBytes, redisKeys = metrics["B/session"], metrics["keys/session"]
		}
	}
	if len(rows) == 0 || redisBytes == 0 {
		os.Stdout.Write(buf.Bytes())
		fmt.Fprintln(os.Stderr, "scale: no benchmark results in the output")
		os.Exit(1)
	}
	report := render(rows, redisBytes, redisKeys, jsonBytes, *counts, *benchtime)
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(report)
}

func render(rows []row, redisBytes, redisKeys, jsonBytes float64, counts, benchtime string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	ref := rows[0]
	last := rows[len(rows)-1]
	p("# trustgate sessions at scale")
	p("")
	p("Written by `bench/scale.sh` (`make bench-scale`): `BenchmarkSessionsAtScale` and `BenchmarkRedisBytesPerSession` of the root package, one `go test` run. Each session is a copy of a real login's session (the BindID user `bindid-known` with the full trust profile, its ID, access and refresh tokens; %.0f bytes as JSON), decoded from JSON on its own and given its own id, subject and `sid`, as a login makes it. Requests are warm authenticated requests through the gateway's `ServeHTTP` (in process, no network, the upstream a no-op), spread over the same 1,000 active sessions whatever the number stored, so what changes between rows is only how many sessions the store holds. Ratios are to the first row of this same run; absolute numbers are this machine's.", jsonBytes)
	p("")
	p("| sessions stored | ns/request | req/s (1 core) | throughput vs %s | p50 | p99 | p99 vs %s | heap per session |", commas(ref.sessions), commas(ref.sessions))
	p("|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		p("| %s | %.0f | %s | %.2f | %.1f µs | %.1f µs | %.2f× | %s B |", commas(r.sessions), r.nsPerOp, commas(int(1e9/r.nsPerOp)),
			ref.nsPerOp/r.nsPerOp, r.p50/1000, r.p99/1000, r.p99/ref.p99, commas(int(r.heapPerSession)))
	}
	p("")
	p("| figure | measured | goal (DESIGN.md) | |")
	p("|---|---:|---:|---|")
	p("| memory store, Go heap per session (after GC, %s sessions) | %s B | ≤ %s B | %s |", commas(last.sessions), commas(int(last.heapPerSession)), commas(goalMemoryBytes), verdict(last.heapPerSession <= goalMemoryBytes))
	p("| Redis, `used_memory` per session (encrypted blob, idle clock, sub and sid indexes: %.0f keys) | %s B | ≤ %s B | %s |", redisKeys, commas(int(redisBytes)), commas(goalRedisBytes), verdict(redisBytes <= goalRedisBytes))
	tp := ref.nsPerOp / last.nsPerOp
	p("| throughput at %s ÷ at %s | %.2f | ≥ %.2f | %s |", commas(last.sessions), commas(ref.sessions), tp, goalThroughput, verdict(tp >= goalThroughput))
	pr := last.p99 / ref.p99
	p("| p99 at %s ÷ at %s | %.2f× | ≤ %.1f× | %s |", commas(last.sessions), commas(ref.sessions), pr, goalP99, verdict(pr <= goalP99))
	p("")
	commit, _ := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	goVersion, _ := exec.Command("go", "env", "GOVERSION").Output()
	p("Machine: **%d cores**, %s; %s %s/%s; commit %s; %s. Command: `bench/scale.sh -sessions %s -benchtime %s`.",
		runtime.NumCPU(), cpuModel(), strings.TrimSpace(string(goVersion)), runtime.GOOS, runtime.GOARCH, strings.TrimSpace(string(commit)),
		time.Now().UTC().Format("2006-01-02 15:04 MST"), counts, benchtime)
	return b.String()
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func commas(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
