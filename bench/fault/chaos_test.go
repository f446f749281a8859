//go:build chaos

package fault

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestChaos runs four faults, each under load against three gateway instances that share one
// Redis (see the scenario functions for what each proves), and writes one table per fault
// into the "chaos" section of RESULTS.md.
//
// Settings (environment): CHAOS_USERS (browsers under load, 60), CHAOS_SESSIONS (sessions
// whose tokens expire at once, 1000). A run with other values, or of only some scenarios
// (-run TestChaos/<name>), is a quick run: its section goes to a temporary directory.
func TestChaos(t *testing.T) {
	users, c1 := envInt(t, "CHAOS_USERS", 60)
	sessions, c2 := envInt(t, "CHAOS_SESSIONS", 1000)
	rep := &chaosReport{}
	scenarios := []struct {
		name string
		run  func(*testing.T, *chaosReport)
	}{
		{"sentinel_failover", func(t *testing.T, r *chaosReport) { chaosSentinelFailover(t, r, users) }},
		{"op_down", func(t *testing.T, r *chaosReport) { chaosProviderDown(t, r, users) }},
		{"expiry_herd", func(t *testing.T, r *chaosReport) { chaosExpiryHerd(t, r, sessions) }},
		{"redis_restart", func(t *testing.T, r *chaosReport) { chaosRedisRestart(t, r, users) }},
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) { s.run(t, rep) })
	}
	all := len(rep.scenarios) == len(scenarios)
	full := all && !c1 && !c2
	facts := machine(full)
	var b strings.Builder
	fmt.Fprintf(&b, "## Chaos\n\nWritten by `make chaos` (bench/fault/chaos_*_test.go); %s.\n\n", facts)
	b.WriteString("Each fault runs under load against three gateway instances (separate Caddy processes, the same `secret`, `session_store redis`), the in-process OpenID Provider, and one load client whose browsers (a cookie jar each) send their requests round-robin over the instances. Every criterion is asserted; a **FAIL** fails `make chaos`.\n")
	for _, s := range rep.scenarios {
		b.WriteString(s.markdown())
	}
	if !all {
		fmt.Fprintf(&b, "\nOnly %d of %d scenarios ran.\n", len(rep.scenarios), len(scenarios))
	}
	writeSection(t, outputDir(t, full), "chaos", b.String())
	t.Logf("\n%s", b.String())
}

// chaosReport collects the scenarios' tables.
type chaosReport struct {
	scenarios []*scenarioReport
}

// scenarioReport is one fault: what was set up, what was measured, and each criterion.
type scenarioReport struct {
	title, setup string
	measures     [][2]string
	criteria     []criterion
	notes        []string
}

type criterion struct {
	what, result string
	ok           bool
}

func (r *chaosReport) add(title, setup string) *scenarioReport {
	s := &scenarioReport{title: title, setup: setup}
	r.scenarios = append(r.scenarios, s)
	return s
}

func (s *scenarioReport) measure(what, format string, args ...any) {
	s.measures = append(s.measures, [2]string{what, fmt.Sprintf(format, args...)})
}

// check records a criterion and fails the test when it does not hold, with a message that
// says what happened and what it means.
func (s *scenarioReport) check(t *testing.T, ok bool, what, result, meaning string) {
	t.Helper()
	s.criteria = append(s.criteria, criterion{what: what, result: result, ok: ok})
	if !ok {
		t.Errorf("%s: %s: %s", what, result, meaning)
	}
}

func (s *scenarioReport) note(format string, args ...any) {
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

func (s *scenarioReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### %s\n\n%s\n\n", s.title, s.setup)
	if len(s.measures) > 0 {
		b.WriteString("| measured | value |\n|---|---|\n")
		for _, m := range s.measures {
			fmt.Fprintf(&b, "| %s | %s |\n", m[0], m[1])
		}
		b.WriteString("\n")
	}
	b.WriteString("| criterion | result | verdict |\n|---|---|---|\n")
	for _, c := range s.criteria {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", c.what, c.result, verdict(c.ok))
	}
	for _, n := range s.notes {
		fmt.Fprintf(&b, "\n%s\n", n)
	}
	return b.String()
}

// errorSummary describes the failed samples of a load: when the first and last failed,
// the statuses seen (with counts), and how many 503s lacked Retry-After.
type errorSummary struct {
	failed          int
	first, last     time.Time
	statuses        map[string]int
	byCode          map[int]int // 0: transport error
	no503RetryAfter int
	otherThan503    int
	firstExamples   []string
	total           int
}

func summarize(samples []sample) errorSummary {
	e := errorSummary{statuses: map[string]int{}, byCode: map[int]int{}, total: len(samples)}
	for _, s := range samples {
		if good(s.result) {
			continue
		}
		e.failed++
		if e.first.IsZero() || s.end.Before(e.first) {
			e.first = s.end
		}
		if s.end.After(e.last) {
			e.last = s.end
		}
		key := "transport error"
		if s.err == nil {
			key = fmt.Sprint(s.status)
			if s.reason != "" {
				key += " " + s.reason
			}
		}
		e.statuses[key]++
		e.byCode[s.status]++
		switch {
		case s.status == 503 && s.retryAfter == "":
			e.no503RetryAfter++
		case s.status != 503:
			e.otherThan503++
		}
		if len(e.firstExamples) < 3 {
			e.firstExamples = append(e.firstExamples, fmt.Sprintf("%v %.120q", s.result, s.body))
		}
	}
	return e
}

// window is how long requests failed: from the first failure to the last.
func (e errorSummary) window() time.Duration {
	if e.failed == 0 {
		return 0
	}
	return e.last.Sub(e.first)
}

func (e errorSummary) statusList() string { return countList(e.statuses) }

// countList formats counts by name as "a ×2, b ×1", or "none".
func countList(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var keys []string
	for k, n := range m {
		keys = append(keys, fmt.Sprintf("%s ×%d", k, n))
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}
