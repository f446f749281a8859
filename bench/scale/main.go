// Command scale measures trustgate's sessions at scale (`make bench-scale`): the memory a
// session takes in the memory store and in Redis, whether warm requests stay as fast with
// 100,000 and 1,000,000 sessions stored as with 1,000, and whether the memory store keeps
// those figures at its max_sessions bound while sessions are created and expire for minutes
// (DESIGN.md, "Memory"). It runs the root package's BenchmarkSessionsAtScale,
// BenchmarkHeapPerSessionStandard, BenchmarkRedisBytesPerSession and BenchmarkSessionChurn
// (real sessions of a real login, a real redis-server) in one `go test` run, and writes the
// "scale" section of bench/RESULTS.md (each figure next to its goal, ratios to the
// 1,000-session run of the same invocation, the machine, the commit and the date) and three
// charts: bench/scale-throughput.svg, bench/scale-p99.svg and bench/scale-churn.svg.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trustgate/trustgate/bench/internal/results"
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

// window is one 10 s line of BenchmarkSessionChurn.
type window struct {
	t, sessions, heapPerSession, reqPerSec, p99, created float64
}

type figures struct {
	rows                         []row
	redisBytes, redisKeys        float64
	jsonBytes                    float64
	standardBytes, standardJSON  float64
	churn                        []window
	counts, benchtime, churnTime string
}

var (
	benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)
	churnLine = regexp.MustCompile(`^churn: (.*)$`)
)

func main() {
	var f figures
	flag.StringVar(&f.counts, "sessions", "1000,100000,1000000", "session counts (the first is the reference)")
	flag.StringVar(&f.benchtime, "benchtime", "5s", "go test -benchtime per count")
	flag.StringVar(&f.churnTime, "churn", "5m", "how long the churn benchmark runs (0 skips it)")
	out := flag.String("out", "bench/RESULTS.md", "the report: its \"scale\" section is replaced; the charts go next to it")
	flag.Parse()

	bench := "^(BenchmarkSessionsAtScale|BenchmarkHeapPerSessionStandard|BenchmarkRedisBytesPerSession"
	if f.churnTime != "0" {
		bench += "|BenchmarkSessionChurn"
	}
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", bench+")$", "-benchtime", f.benchtime, "-timeout", "90m", ".")
	cmd.Env = append(os.Environ(), "TRUSTGATE_SCALE_SESSIONS="+f.counts, "TRUSTGATE_CHURN="+f.churnTime)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, os.Stderr
	fmt.Fprintf(os.Stderr, "scale: go test -bench (sessions %s, %s each, churn %s; 1,000,000 sessions take about 4 GB and a few minutes)\n", f.counts, f.benchtime, f.churnTime)
	if err := cmd.Run(); err != nil {
		os.Stdout.Write(buf.Bytes())
		fail("scale: %v", err)
	}
	if err := f.parse(buf.Bytes()); err != nil {
		os.Stdout.Write(buf.Bytes())
		fail("scale: %v", err)
	}
	dir := filepath.Dir(*out)
	if err := f.charts(dir); err != nil {
		fail("scale: charts: %v", err)
	}
	report := f.render()
	if err := results.WriteSection(*out, "scale", report); err != nil {
		fail("scale: %v", err)
	}
	fmt.Print(report)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func (f *figures) parse(output []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(output))
	for sc.Scan() {
		if m := churnLine.FindStringSubmatch(sc.Text()); m != nil {
			kv := map[string]float64{}
			for field := range strings.FieldsSeq(m[1]) {
				if k, v, ok := strings.Cut(field, "="); ok {
					kv[k], _ = strconv.ParseFloat(v, 64)
				}
			}
			f.churn = append(f.churn, window{kv["t"], kv["sessions"], kv["heap-per-session"], kv["req/s"], kv["p99-ns"], kv["created"]})
			continue
		}
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		metrics := map[string]float64{}
		fields := strings.Fields(m[2])
		for i := 0; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				metrics[fields[i+1]] = v
			}
		}
		switch {
		case strings.HasPrefix(m[1], "SessionsAtScale/sessions="):
			n, _ := strconv.Atoi(strings.TrimPrefix(m[1], "SessionsAtScale/sessions="))
			f.rows = append(f.rows, row{n, metrics["ns/op"], metrics["p50-ns"], metrics["p99-ns"], metrics["B/session"]})
			f.jsonBytes = metrics["json-B"]
		case m[1] == "RedisBytesPerSession":
			f.redisBytes, f.redisKeys = metrics["B/session"], metrics["keys/session"]
		case m[1] == "HeapPerSessionStandard":
			f.standardBytes, f.standardJSON = metrics["B/session"], metrics["json-B"]
		}
	}
	switch {
	case len(f.rows) == 0 || f.redisBytes == 0 || f.standardBytes == 0:
		return fmt.Errorf("no benchmark results in the output")
	case f.churnTime != "0" && len(f.churn) == 0:
		return fmt.Errorf("the churn benchmark printed no window")
	}
	return nil
}

func (f *figures) charts(dir string) error {
	var x, tp, p99 []float64
	ref := f.rows[0]
	for _, r := range f.rows {
		x = append(x, float64(r.sessions))
		tp = append(tp, 1e9/r.nsPerOp)
		p99 = append(p99, r.p99/1000)
	}
	err := results.LineChart{Title: "Warm requests by sessions stored (memory store, 1 core)", XLabel: "sessions stored",
		YLabel: "requests per second", LogX: true, Series: []results.Series{
			{Name: "req/s", X: x, Y: tp},
			{Name: fmt.Sprintf("goal: %.2f × at %s", goalThroughput, commas(ref.sessions)), X: x, Y: repeat(goalThroughput*1e9/ref.nsPerOp, len(x))},
		}}.WriteSVG(filepath.Join(dir, "scale-throughput.svg"))
	if err != nil {
		return err
	}
	err = results.LineChart{Title: "p99 latency of a warm request by sessions stored", XLabel: "sessions stored",
		YLabel: "p99 (µs)", LogX: true, Series: []results.Series{
			{Name: "p99", X: x, Y: p99},
			{Name: fmt.Sprintf("goal: %.1f × at %s", goalP99, commas(ref.sessions)), X: x, Y: repeat(goalP99*ref.p99/1000, len(x))},
		}}.WriteSVG(filepath.Join(dir, "scale-p99.svg"))
	if err != nil || len(f.churn) == 0 {
		return err
	}
	var t, heap, rps []float64
	for _, w := range f.churn {
		t = append(t, w.t)
		heap = append(heap, w.heapPerSession)
		rps = append(rps, w.reqPerSec/100)
	}
	return results.LineChart{Title: "Churn at the max_sessions bound (100,000 sessions)", XLabel: "seconds",
		YLabel: "bytes / session; req/s ÷ 100", Series: []results.Series{
			{Name: "heap per session (B)", X: t, Y: heap},
			{Name: "warm req/s ÷ 100", X: t, Y: rps},
		}}.WriteSVG(filepath.Join(dir, "scale-churn.svg"))
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func (f *figures) render() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	ref, last := f.rows[0], f.rows[len(f.rows)-1]
	p("## Sessions at scale (`make bench-scale`)")
	p("")
	p("Written by `bench/scale.sh`: the root package's `BenchmarkSessionsAtScale`, `BenchmarkHeapPerSessionStandard`, `BenchmarkRedisBytesPerSession` and `BenchmarkSessionChurn`, one `go test` run. Each session is a copy of a real login's session, decoded from JSON on its own and given its own id, subject and `sid`, as a login makes it: the BindID user `bindid-known` with the full trust profile (%.0f bytes as JSON; the heavy end) and, for one row, a user with standard claims only (`ase`, %.0f bytes; what Keycloak, Entra ID or Google give). Memory is measured after a sweep interval, when the janitor has packed every session nobody used (see session/pack.go); the active sessions are decoded again by their first request. Requests are warm authenticated requests through the gateway's `ServeHTTP` (in process, no network, the upstream a no-op, a fresh Caddy replacer each), spread over the same 1,000 active sessions whatever the number stored. Ratios are to the first row of this same run; absolute numbers are this machine's.", f.jsonBytes, f.standardJSON)
	p("")
	p("| sessions stored | ns/request | req/s (1 core) | throughput vs %s | p50 | p99 | p99 vs %s | heap per session |", commas(ref.sessions), commas(ref.sessions))
	p("|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range f.rows {
		p("| %s | %.0f | %s | %.2f | %.1f µs | %.1f µs | %.2f× | %s B |", commas(r.sessions), r.nsPerOp, commas(int(1e9/r.nsPerOp)),
			ref.nsPerOp/r.nsPerOp, r.p50/1000, r.p99/1000, r.p99/ref.p99, commas(int(r.heapPerSession)))
	}
	p("")
	p("![Warm requests per second by sessions stored](scale-throughput.svg) ![p99 by sessions stored](scale-p99.svg)")
	p("")
	p("| figure | measured | goal (DESIGN.md) | |")
	p("|---|---:|---:|---|")
	p("| memory store, Go heap per idle session, BindID full trust profile (%s sessions) | %s B | ≤ %s B | %s |", commas(last.sessions), commas(int(last.heapPerSession)), commas(goalMemoryBytes), verdict(last.heapPerSession <= goalMemoryBytes))
	p("| memory store, Go heap per idle session, standard claims (100,000 sessions) | %s B | ≤ %s B | %s |", commas(int(f.standardBytes)), commas(goalMemoryBytes), verdict(f.standardBytes <= goalMemoryBytes))
	p("| Redis, `used_memory` per session, BindID (encrypted packed blob, idle clock, sub and sid indexes: %.0f keys) | %s B | ≤ %s B | %s |", f.redisKeys, commas(int(f.redisBytes)), commas(goalRedisBytes), verdict(f.redisBytes <= goalRedisBytes))
	tp := ref.nsPerOp / last.nsPerOp
	p("| throughput at %s ÷ at %s | %.2f | ≥ %.2f | %s |", commas(last.sessions), commas(ref.sessions), tp, goalThroughput, verdict(tp >= goalThroughput))
	pr := last.p99 / ref.p99
	p("| p99 at %s ÷ at %s | %.2f× | ≤ %.1f× | %s |", commas(last.sessions), commas(ref.sessions), pr, goalP99, verdict(pr <= goalP99))
	if len(f.churn) > 0 {
		mid, end := f.churn[len(f.churn)/2], f.churn[len(f.churn)-1]
		maxHeap := 0.0
		for _, w := range f.churn {
			maxHeap = max(maxHeap, w.heapPerSession)
		}
		half := len(f.churn) / 2
		rpsFirst, rpsSecond := medianOf(f.churn[:half], rps), medianOf(f.churn[half:], rps)
		growth := end.heapPerSession/mid.heapPerSession - 1
		p("| churn, %s at the max_sessions bound of 100,000: growth of the heap per stored session over the second half (highest %s B, last %s B) | %+.1f%% | ≤ +5%% (levels off) | %s |", f.churnTime, commas(int(maxHeap)), commas(int(end.heapPerSession)), 100*growth, verdict(growth <= 0.05))
		p("| churn: warm req/s, median of the second half ÷ of the first; every warm request accepted | %.2f | ≥ %.2f | %s |", rpsSecond/rpsFirst, goalThroughput, verdict(rpsSecond >= goalThroughput*rpsFirst))
		p("")
		p("Churn (`BenchmarkSessionChurn`, %s): the store bounded at 100,000 sessions and full; new sessions (copies of the BindID login, living 1 to 3 minutes) at 400 a second, about the logins a second this gateway completes on 2 cores, so that new sessions evict the idle ones and expire all the time; warm requests over 1,000 active sessions in between; the janitor on its real schedule. A session stays decoded for 30 s after its last use, so the sessions made in the last 30–40 s are decoded: that is what the heap per session settles on. %s sessions were created; every warm request was accepted (one refused would have failed the run).", f.churnTime, commas(int(end.created)))
		p("")
		p("![Churn: heap per session and warm requests over time](scale-churn.svg)")
		p("")
		p("| seconds | sessions stored | heap per stored session | warm req/s | p99 | created so far |")
		p("|---:|---:|---:|---:|---:|---:|")
		for _, w := range f.churn {
			p("| %.0f | %s | %s B | %s | %.1f µs | %s |", w.t, commas(int(w.sessions)), commas(int(w.heapPerSession)), commas(int(w.reqPerSec)), w.p99/1000, commas(int(w.created)))
		}
	}
	p("")
	commit, _ := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	goVersion, _ := exec.Command("go", "env", "GOVERSION").Output()
	p("Machine: **%d cores**, %s; %s %s/%s; commit %s; %s. Command: `bench/scale.sh -sessions %s -benchtime %s -churn %s`.",
		runtime.NumCPU(), cpuModel(), strings.TrimSpace(string(goVersion)), runtime.GOOS, runtime.GOARCH, strings.TrimSpace(string(commit)),
		time.Now().UTC().Format("2006-01-02 15:04 MST"), f.counts, f.benchtime, f.churnTime)
	return b.String()
}

func rps(w window) float64 { return w.reqPerSec }

// medianOf is the median of v over the windows.
func medianOf(ws []window, v func(window) float64) float64 {
	vals := make([]float64, len(ws))
	for i, w := range ws {
		vals[i] = v(w)
	}
	slices.Sort(vals)
	return vals[len(vals)/2]
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
