package main

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/oidctest"
)

const wrkOK = `Running 8s test @ http://127.0.0.1:41001/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.87ms    8.10ms  70.39ms   94.23%
    Req/Sec    27.51k    10.42k   47.13k    70.00%
  Latency Distribution
     50%  446.00us
     75%    1.72ms
     90%    5.06ms
     99%   46.07ms
  110422 requests in 2.05s, 16.53MB read
Requests/sec:  53985.61
Transfer/sec:      8.08MB
`

const wrkErrors = `Running 3s test @ http://127.0.0.1:41001/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20s   300.00ms   1.90s    80.00%
    Req/Sec     5.00      2.00    10.00     60.00%
  Latency Distribution
     50%    1.05s 
     75%    1.50s 
     90%    1.80s 
     99%    1.90s 
  30 requests in 3.01s, 4.00KB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 7
Requests/sec:      9.97
Transfer/sec:      1.33KB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkOK)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS != 53985.61 || r.Requests != 110422 || r.Elapsed != 2050*time.Millisecond {
		t.Errorf("rps, requests, elapsed = %v, %v, %v", r.RPS, r.Requests, r.Elapsed)
	}
	if r.P50 != 446*time.Microsecond || r.P99 != 46070*time.Microsecond {
		t.Errorf("p50, p99 = %v, %v", r.P50, r.P99)
	}
	if r.socketErrors() != 0 || r.Non2xx3xx != 0 {
		t.Errorf("errors = %v, %v, want none", r.SocketErr, r.Non2xx3xx)
	}

	r, err = parseWrk(wrkErrors)
	if err != nil {
		t.Fatal(err)
	}
	if r.SocketErr != [4]int64{1, 2, 3, 4} || r.Non2xx3xx != 7 {
		t.Errorf("errors = %v, %v, want [1 2 3 4], 7", r.SocketErr, r.Non2xx3xx)
	}
	if r.P50 != 1050*time.Millisecond || r.P99 != 1900*time.Millisecond {
		t.Errorf("p50, p99 = %v, %v", r.P50, r.P99)
	}
}

func TestParseWrkWithoutLatency(t *testing.T) {
	// Without --latency there is no distribution: an error, never a zero percentile.
	out := "Running 1s test @ http://127.0.0.1:1/\n  1 requests in 1.00s, 1KB read\nRequests/sec: 1.00\n"
	if _, err := parseWrk(out); err == nil {
		t.Error("parseWrk without a latency distribution: no error")
	}
}

func TestWrkArgs(t *testing.T) {
	got := wrkArgs(2, 32, 8*time.Second, []string{"Cookie: a=b"}, "http://127.0.0.1:1/")
	want := []string{"-t2", "-c32", "-d8s", "--latency", "-H", "Cookie: a=b", "http://127.0.0.1:1/"}
	if len(got) != len(want) {
		t.Fatalf("wrkArgs = %q, want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("wrkArgs = %q, want %q", got, want)
		}
	}
	if d := wrkDuration(2500 * time.Millisecond); d != "2.5s" {
		t.Errorf("wrkDuration(2.5s) = %q", d)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{7}, 7}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median(nil) is not NaN")
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999.4: "999", 1000: "1,000", 12345.6: "12,346", 1234567: "1,234,567"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestRotate(t *testing.T) {
	keys := []string{"a", "b", "c", "d"}
	for round, want := range []string{"a b c d", "b c d a", "c d a b", "d a b c", "a b c d"} {
		if got := strings.Join(rotate(keys, round), " "); got != want {
			t.Errorf("round %d: rotate = %q, want %q", round+1, got, want)
		}
	}
	if strings.Join(keys, " ") != "a b c d" {
		t.Errorf("rotate changed its argument: %q", keys)
	}
	if rotate([]string(nil), 3) != nil {
		t.Error("rotate(nil) is not nil")
	}
}

func TestPairedRatios(t *testing.T) {
	// (a) drifts between rounds; the per-round ratio follows it, the ratio of medians does not.
	a := []float64{100, 200, 150}
	b := []float64{90, 190, 120}
	got := pairedRatios(b, a)
	want := []float64{0.9, 0.95, 0.8}
	if len(got) != len(want) {
		t.Fatalf("pairedRatios = %v, want %v", got, want)
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("pairedRatios = %v, want %v", got, want)
		}
	}
	if m := median(got); math.Abs(m-0.9) > 1e-12 {
		t.Errorf("median of the per-round ratios = %v, want 0.9", m)
	}
	if pairedRatios(b, a[:2]) != nil || pairedRatios(nil, nil) != nil {
		t.Error("pairedRatios of unequal or empty rounds is not nil")
	}
}

func TestParseProbe(t *testing.T) {
	subject, n, err := parseProbe("subject=123e4567\nidentity-headers=27\n")
	if err != nil || subject != "123e4567" || n != 27 {
		t.Errorf("parseProbe = %q, %d, %v; want 123e4567, 27, nil", subject, n, err)
	}
	for _, bad := range []string{"", "hello\n", "subject=x\n", "subject=x\nidentity-headers=many\n"} {
		if _, _, err := parseProbe(bad); err == nil {
			t.Errorf("parseProbe(%q): no error", bad)
		}
	}
}

func TestTitles(t *testing.T) {
	for _, k := range configKeys {
		if title(k, nil) == k {
			t.Errorf("configuration %q has no title", k)
		}
	}
	if got, want := title("b", map[string]int{"b": 2}), "trustgate, memory store, default headers (`basic`: 2 for this user)"; got != want {
		t.Errorf("title(b) = %q, want %q", got, want)
	}
	if got := title("b", nil); strings.Contains(got, ":") {
		t.Errorf("title(b) without a probe = %q: claims a count", got)
	}
	if got, want := title("h", nil), fmt.Sprintf("(g)'s %d headers", len(fullControlHeaders)); !strings.Contains(got, want) {
		t.Errorf("title(h) = %q, want it to say %q", got, want)
	}
	// The control sites send the user's subject, which the upstream's /__probe reports.
	for _, l := range []*controlList{defaultControl, fullControl} {
		if l.headers[0] != [2]string{"X-Auth-Subject", oidctest.SubjectBindIDKnown} {
			t.Errorf("%s does not start with X-Auth-Subject: %s", l.name, oidctest.SubjectBindIDKnown)
		}
	}
}
