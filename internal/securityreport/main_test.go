package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite cases.txt from ../shared/SECURITY.md")

// securityMD is SECURITY.md next to the repository (../shared/SECURITY.md from its root);
// it is not part of the repository, so CI may not have it.
const securityMD = "../../../shared/SECURITY.md"

// TestCasesMatchSecurityMD checks that cases.txt is what SECURITY.md lists today (with
// -update it rewrites cases.txt). Without SECURITY.md it checks cases.txt alone: a skip
// would fail `make test`, and cases.txt is what CI has.
func TestCasesMatchSecurityMD(t *testing.T) {
	md, err := os.ReadFile(securityMD)
	if errors.Is(err, os.ErrNotExist) {
		if *update {
			t.Fatalf("-update needs %s", securityMD)
		}
		t.Logf("%s not found: cases.txt is checked on its own", securityMD)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	want, err := generateCases(string(md))
	if err != nil {
		t.Fatalf("reading %s: %v", securityMD, err)
	}
	if *update {
		if err := os.WriteFile("cases.txt", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if casesTxt != want {
		t.Errorf("cases.txt differs from %s; regenerate it:\n  go test ./internal/securityreport -run TestCasesMatchSecurityMD -update", securityMD)
	}
}

func TestCasesTxt(t *testing.T) {
	groups, titles, err := parseCases(casesTxt)
	if err != nil {
		t.Fatal(err)
	}
	if len(titles) != 99 || len(groups) != 9 {
		t.Errorf("cases.txt: %d cases in %d groups, want 99 in 9", len(titles), len(groups))
	}
	want := map[string]int{"IDT": 17, "UI": 6, "FL": 15, "SES": 8, "HDR": 9, "LO": 14, "CIBA": 10, "OPS": 12, "LIM": 8}
	for _, g := range groups {
		if len(g.Cases) != want[g.Prefix] {
			t.Errorf("group %s has %d cases, want %d", g.Prefix, len(g.Cases), want[g.Prefix])
		}
	}
}

func TestGenerateCasesRejectsMiscounts(t *testing.T) {
	for _, md := range []string{
		"no sections at all",
		"### C.1 ID token validation (2)\n\n1. **IDT-01** · *Bad signature* · x\n",
		"### C.1 ID token validation (2)\n\n1. **IDT-01** · *A* · x\n2. **UI-01** · *B* · y\n",
	} {
		if _, err := generateCases(md); err == nil {
			t.Errorf("generateCases(%q) = nil error", md)
		}
	}
	got, err := generateCases("## Part C\n### C.1 Userinfo (1)\n\n18. **UI-01** · *sub mismatch* · x\n\n## Part D\n1. **UI-02** · *not a case* · y\n")
	if err != nil || !strings.Contains(got, "group UI C.1 Userinfo\nUI-01 sub mismatch\n") || strings.Contains(got, "UI-02") {
		t.Errorf("generateCases() = %q, %v", got, err)
	}
}

func TestCaseOf(t *testing.T) {
	for in, want := range map[string]string{
		"TestIDT11_NonceMismatch":       "IDT-11",
		"TestCIBA5_Deadline":            "CIBA-05",
		"FuzzLIM08_Parsers":             "LIM-08",
		"TestIDT11_Nonce/wrong_nonce":   "",
		"TestIDT11":                     "",
		"TestIntegrationLogin":          "",
		"TestFeedbackLinksANewUser":     "",
		"BenchmarkIDT01_X":              "",
		"ExampleOPS01_":                 "",
		"TestOPS10_ConcurrentRefresh_2": "OPS-10",
	} {
		if got := caseOf(in); got != want {
			t.Errorf("caseOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// events builds go test -json lines: each entry is "action package test [output]".
func events(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		f := strings.SplitN(l, " ", 4)
		b.WriteString(`{"Action":"` + f[0] + `","Package":"` + f[1] + `"`)
		if len(f) > 2 && f[2] != "-" {
			b.WriteString(`,"Test":"` + f[2] + `"`)
		}
		if len(f) > 3 {
			b.WriteString(`,"Output":"` + f[3] + `\n"`)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// allPassing is a passing test for every case of cases.txt except those in skip.
func allPassing(t *testing.T, skip ...string) []string {
	t.Helper()
	groups, _, err := parseCases(casesTxt)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range groups {
		for _, id := range g.Cases {
			skipped := false
			for _, s := range skip {
				skipped = skipped || s == id
			}
			if !skipped {
				out = append(out, "pass p Test"+strings.ReplaceAll(id, "-", "")+"_X")
			}
		}
	}
	return out
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	cov := filepath.Join(dir, "SECURITY-COVERAGE.md")
	if err := os.WriteFile(cov, []byte("# Coverage\n\n| Case | Status | Why |\n|---|---|---|\n| LO-14 | N/A | no front-channel logout |\n| LIM-08 | elsewhere | the fuzz targets |\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		in       []string
		wantCode int
		want     []string
		notWant  []string
	}{
		{
			name:     "everything covered",
			in:       allPassing(t, "LO-14", "LIM-08"),
			wantCode: 0,
			want:     []string{"IDT   17/17 (17 tested)", "LO    14/14 (13 tested, 1 N/A)", "LIM    8/8  (7 tested, 1 elsewhere)", "total 99/99 covered"},
			notWant:  []string{"uncovered", "FAIL"},
		},
		{
			name:     "a test beats an N/A line",
			in:       allPassing(t),
			wantCode: 0,
			want:     []string{"LO    14/14 (14 tested)", "LIM    8/8  (8 tested)"},
		},
		{
			name:     "uncovered cases are listed",
			in:       allPassing(t, "LO-14", "LIM-08", "IDT-13", "IDT-14"),
			wantCode: 1,
			want:     []string{"IDT   15/17 (15 tested)", "uncovered: IDT-13, IDT-14", "total 97/99 covered"},
		},
		{
			name: "a failing covering test fails the report and shows its output",
			in: append(allPassing(t, "UI-05"),
				"run p TestUI05_Aggregated", "output p TestUI05_Aggregated/userinfo boom: token leaked",
				"fail p TestUI05_Aggregated/userinfo", "fail p TestUI05_Aggregated"),
			wantCode: 1,
			want:     []string{"UI     5/6  (5 tested)", "UI-05 (test failed)", "--- FAIL p TestUI05_Aggregated (UI-05)", "boom: token leaked"},
		},
		{
			name:     "one failing test of two fails the case",
			in:       append(allPassing(t), "fail q TestIDT01_Other"),
			wantCode: 1,
			want:     []string{"IDT-01 (test failed)"},
		},
		{
			name:     "a skipped test does not cover",
			in:       append(allPassing(t, "OPS-01"), "skip p TestOPS01_RedisDown"),
			wantCode: 1,
			want:     []string{"OPS-01 (test skipped)"},
		},
		{
			name:     "a test that never finished is a failure",
			in:       append(allPassing(t, "OPS-02"), "run p TestOPS02_Blackholed", "output p TestOPS02_Blackholed panic: boom"),
			wantCode: 1,
			want:     []string{"OPS-02 (test failed)", "panic: boom"},
		},
		{
			name:     "a test named after no case is reported, not counted",
			in:       append(allPassing(t), "pass p TestIDT18_Typo"),
			wantCode: 0,
			want:     []string{"TestIDT18_Typo (IDT-18)"},
		},
		{
			name:     "other tests are ignored; nothing at all is all uncovered",
			in:       []string{"pass p TestSomethingElse", "pass p -"},
			wantCode: 1,
			want:     []string{"total 2/99 covered"},
		},
		{
			name:     "a package that failed to build is named",
			in:       append(allPassing(t), "fail broken -"),
			wantCode: 0,
			want:     []string{"FAIL broken: no test ran"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			got := run(strings.NewReader(events(tt.in...)), &out, cov, false)
			if got != tt.wantCode {
				t.Errorf("run() = %d, want %d", got, tt.wantCode)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestParseCoverage(t *testing.T) {
	_, known, err := parseCases(casesTxt)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"| XYZ-01 | N/A | not a case |",
		"| LO-14 | N/A | |",
		"| LO-14 | maybe | unsure |",
		"| LO-14 | N/A | a |\n| LO-14 | N/A | b |",
	} {
		if _, err := parseCoverage(strings.NewReader(bad), known); err == nil {
			t.Errorf("parseCoverage(%q) = nil error", bad)
		}
	}
	notes, err := parseCoverage(strings.NewReader("prose | with a bar\n| Case | Status | Why |\n|---|---|---|\n| **CIBA-08** | n/a | ping mode is not offered |\n"), known)
	if err != nil || notes["CIBA-08"].Kind != "N/A" || notes["CIBA-08"].Reason != "ping mode is not offered" {
		t.Errorf("parseCoverage() = %v, %v", notes, err)
	}
}

// TestRepositoryCoverageFile checks the repository's own SECURITY-COVERAGE.md.
func TestRepositoryCoverageFile(t *testing.T) {
	f, err := os.Open("../../SECURITY-COVERAGE.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, known, err := parseCases(casesTxt)
	if err != nil {
		t.Fatal(err)
	}
	notes, err := parseCoverage(f, known)
	if err != nil {
		t.Fatalf("SECURITY-COVERAGE.md: %v", err)
	}
	if len(notes) == 0 {
		t.Error("SECURITY-COVERAGE.md has no case row")
	}
}

func TestRunShowsCompilerErrors(t *testing.T) {
	in := `{"ImportPath":"p [p.test]","Action":"build-output","Output":"./x_test.go:1:1: undefined: y\n"}
{"ImportPath":"p [p.test]","Action":"build-fail"}
{"Action":"output","Package":"p","Output":"FAIL\tp [build failed]\n"}
{"Action":"fail","Package":"p"}
not json at all
`
	var out bytes.Buffer
	if code := run(strings.NewReader(in), &out, "/nonexistent/SECURITY-COVERAGE.md", false); code != 1 {
		t.Errorf("run() = %d, want 1", code)
	}
	for _, w := range []string{"undefined: y", "not json at all", "FAIL p: no test ran", "total 0/99 covered"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
}
