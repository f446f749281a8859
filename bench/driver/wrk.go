package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	RPS       float64       // Requests/sec
	Requests  int64         // completed requests (any status)
	Elapsed   time.Duration // the run's measured duration
	P50, P99  time.Duration // from the "Latency Distribution" block (--latency)
	SocketErr [4]int64      // connect, read, write, timeout
	Non2xx3xx int64         // responses with status >= 400
	CPU       time.Duration // wrk's own CPU time (user + system)
	Output    string
}

func (r *wrkResult) socketErrors() int64 {
	return r.SocketErr[0] + r.SocketErr[1] + r.SocketErr[2] + r.SocketErr[3]
}

var (
	reRequests = regexp.MustCompile(`^(\d+) requests in ([0-9.]+[a-z]+),`)
	reSocket   = regexp.MustCompile(`^Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	rePercent  = regexp.MustCompile(`^(50|75|90|99)%\s+([0-9.]+)([a-z]+)$`)
)

// parseWrk reads wrk 4's text output (run with --latency).
func parseWrk(out string) (*wrkResult, error) {
	r := &wrkResult{Output: out}
	var haveRPS, haveReq, haveP50, haveP99, inDist bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "Latency Distribution":
			inDist = true
			continue
		case inDist && rePercent.MatchString(line):
			m := rePercent.FindStringSubmatch(line)
			d, err := parseWrkTime(m[2], m[3])
			if err != nil {
				return nil, err
			}
			switch m[1] {
			case "50":
				r.P50, haveP50 = d, true
			case "99":
				r.P99, haveP99 = d, true
			}
			continue
		}
		inDist = false
		switch {
		case strings.HasPrefix(line, "Requests/sec:"):
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "Requests/sec:")), 64)
			if err != nil {
				return nil, fmt.Errorf("wrk output: %q: %w", line, err)
			}
			r.RPS, haveRPS = v, true
		case reRequests.MatchString(line):
			m := reRequests.FindStringSubmatch(line)
			r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
			num, unit := splitNumUnit(m[2])
			d, err := parseWrkTime(num, unit)
			if err != nil {
				return nil, err
			}
			r.Elapsed, haveReq = d, true
		case reSocket.MatchString(line):
			m := reSocket.FindStringSubmatch(line)
			for i := range r.SocketErr {
				r.SocketErr[i], _ = strconv.ParseInt(m[i+1], 10, 64)
			}
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			v, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("wrk output: %q: %w", line, err)
			}
			r.Non2xx3xx = v
		}
	}
	var missing []string
	for name, ok := range map[string]bool{"Requests/sec": haveRPS, "N requests in T": haveReq, "50% latency": haveP50, "99% latency": haveP99} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("wrk output lacks %s (was --latency given?):\n%s", strings.Join(missing, ", "), out)
	}
	return r, nil
}

func splitNumUnit(s string) (string, string) {
	i := strings.IndexFunc(s, func(c rune) bool { return c >= 'a' && c <= 'z' })
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// parseWrkTime reads wrk's time format: a number with us, ms, s, m or h.
func parseWrkTime(num, unit string) (time.Duration, error) {
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("wrk time %q%s: %w", num, unit, err)
	}
	scale := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	if scale == 0 {
		return 0, fmt.Errorf("wrk time %q%s: unknown unit", num, unit)
	}
	return time.Duration(math.Round(v * float64(scale))), nil
}

// wrkArgs is wrk's command line for one run; headers are "Name: value".
func wrkArgs(threads, conns int, dur time.Duration, headers []string, url string) []string {
	args := []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns), "-d" + wrkDuration(dur), "--latency"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	return append(args, url)
}

func wrkDuration(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// runWrk runs wrk to the end and parses its output. wrk runs in a process group of its own
// and dies with the driver.
func runWrk(ctx context.Context, wrkBin string, args []string) (*wrkResult, error) {
	cmd := exec.CommandContext(ctx, wrkBin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("wrk %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	r, err := parseWrk(stdout.String())
	if err != nil {
		return nil, err
	}
	r.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r, nil
}

// wrkVersion is the first line of `wrk -v` without the copyright ("wrk 4.2.0 [epoll]").
func wrkVersion(wrkBin string) string {
	out, _ := exec.Command(wrkBin, "-v").CombinedOutput() // exits 1 after printing its usage
	line, _, _ := strings.Cut(string(out), "\n")
	line, _, _ = strings.Cut(line, " Copyright")
	if line = strings.TrimSpace(line); line == "" {
		return "unknown"
	}
	return line
}
