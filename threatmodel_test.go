package trustgate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// threatModelDoc has one entry for each case of the security checklist (SECURITY.md, Part C).
const threatModelDoc = "docs/threat-model.md"

// threatModelCases are the 99 case IDs of SECURITY.md Part C, in its order. SECURITY.md is
// kept outside the repository, so the list is copied here once. It is also compared with
// internal/securityreport/cases.txt, which is generated from SECURITY.md and checked
// against it by that package's TestCasesMatchSecurityMD.
var threatModelCases = []string{
	"IDT-01", "IDT-02", "IDT-03", "IDT-04", "IDT-05", "IDT-06", "IDT-07", "IDT-08", "IDT-09",
	"IDT-10", "IDT-11", "IDT-12", "IDT-13", "IDT-14", "IDT-15", "IDT-16", "IDT-17",
	"UI-01", "UI-02", "UI-03", "UI-04", "UI-05", "UI-06",
	"FL-01", "FL-02", "FL-03", "FL-04", "FL-05", "FL-06", "FL-07", "FL-08", "FL-09", "FL-10",
	"FL-11", "FL-12", "FL-13", "FL-14", "FL-15",
	"SES-01", "SES-02", "SES-03", "SES-04", "SES-05", "SES-06", "SES-07", "SES-08",
	"HDR-01", "HDR-02", "HDR-03", "HDR-04", "HDR-05", "HDR-06", "HDR-07", "HDR-08", "HDR-09",
	"LO-01", "LO-02", "LO-03", "LO-04", "LO-05", "LO-06", "LO-07", "LO-08", "LO-09", "LO-10",
	"LO-11", "LO-12", "LO-13", "LO-14",
	"CIBA-01", "CIBA-02", "CIBA-03", "CIBA-04", "CIBA-05", "CIBA-06", "CIBA-07", "CIBA-08",
	"CIBA-09", "CIBA-10",
	"OPS-01", "OPS-02", "OPS-03", "OPS-04", "OPS-05", "OPS-06", "OPS-07", "OPS-08", "OPS-09",
	"OPS-10", "OPS-11", "OPS-12",
	"LIM-01", "LIM-02", "LIM-03", "LIM-04", "LIM-05", "LIM-06", "LIM-07", "LIM-08",
}

// threatModelPrefixes are the ID prefixes of the nine groups of Part C.
const threatModelPrefixes = `IDT|UI|FL|SES|HDR|LO|CIBA|OPS|LIM`

var (
	// threatCiteText is a case ID written out: "IDT-11", "SECURITY.md LO-14".
	threatCiteText = regexp.MustCompile(`\b(` + threatModelPrefixes + `)-([0-9]+)\b`)
	// threatCiteTest is a test or fuzz target named after a case: "TestIDT11_" is IDT-11.
	threatCiteTest = regexp.MustCompile(`\b(?:Test|Fuzz)(` + threatModelPrefixes + `)([0-9]+)_`)
	// threatDocEntry is a table row of the doc whose first cell is an ID: "| IDT-11 | ... |".
	threatDocEntry = regexp.MustCompile("^\\|\\s*[*`]*([A-Z]+-[0-9]+)[*`]*\\s*\\|")
)

// threatModelNotCases are IDs that a file cites on purpose although they are no case, by
// file (slash-separated, from the repository root), with the reason.
var threatModelNotCases = map[string]map[string]string{
	"internal/securityreport/main_test.go": {
		"IDT-18": "TestIDT18_Typo is input that securityreport must flag as named after no case",
	},
}

// threatModelSkipDirs are directories of downloaded or generated files, not the project's.
var threatModelSkipDirs = map[string]bool{".git": true, ".cache": true, "node_modules": true}

// threatCaseID spells a cited ID as Part C does: a two-digit number ("CIBA5" is CIBA-05, as
// `make security-report` reads test names).
func threatCaseID(prefix, num string) string {
	n, err := strconv.Atoi(num)
	if err != nil {
		return prefix + "-" + num
	}
	return fmt.Sprintf("%s-%02d", prefix, n)
}

type threatCitation struct {
	file string
	line int
}

func (c threatCitation) String() string { return fmt.Sprintf("%s:%d", c.file, c.line) }

// TestEveryCaseIDResolves keeps docs/threat-model.md complete. The doc has one entry for
// each of the 99 cases of SECURITY.md Part C, no more and no fewer. Every case ID cited in
// the repository's .go and .md files (test names like TestIDT11_, text like IDT-11) has an
// entry in it. `go test` runs in the package directory, which is the repository root.
func TestEveryCaseIDResolves(t *testing.T) {
	if _, err := os.Stat("go.mod"); err != nil {
		t.Fatalf("the test must run in the repository root (the package directory): %v", err)
	}

	want := map[string]bool{}
	for _, id := range threatModelCases {
		if want[id] {
			t.Errorf("threatModelCases lists %s twice", id)
		}
		want[id] = true
	}
	if len(threatModelCases) != 99 {
		t.Errorf("threatModelCases has %d IDs, want the 99 of SECURITY.md Part C", len(threatModelCases))
	}
	threatCheckCasesTxt(t)

	entries := threatDocEntries(t)
	for _, id := range threatModelCases {
		if _, ok := entries[id]; !ok {
			t.Errorf("%s: no entry for %s (a case of SECURITY.md Part C)", threatModelDoc, id)
		}
	}
	for id, line := range entries {
		if !want[id] {
			t.Errorf("%s:%d: entry %s is not a case of SECURITY.md Part C", threatModelDoc, line, id)
		}
	}

	cited, files := threatCitations(t)
	if files == 0 || len(cited) == 0 {
		t.Fatalf("scanned %d files and found %d case IDs; the walk did not see the repository", files, len(cited))
	}
	used := map[string]bool{}
	ids := make([]string, 0, len(cited))
	for id := range cited {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if _, ok := entries[id]; ok {
			continue
		}
		for _, c := range cited[id] {
			if _, ok := threatModelNotCases[c.file][id]; ok {
				used[c.file+" "+id] = true
				continue
			}
			t.Errorf("%s: %s has no entry in %s", c, id, threatModelDoc)
		}
	}
	for file, m := range threatModelNotCases {
		for id := range m {
			if !used[file+" "+id] {
				t.Errorf("threatModelNotCases: %s no longer cites %s; remove the exemption", file, id)
			}
		}
	}
	t.Logf("%d .go/.md files scanned: %d distinct case IDs cited; %s has %d entries",
		files, len(cited), threatModelDoc, len(entries))
}

// threatDocEntries returns the entries of the doc: ID -> line. An entry is a table row whose
// first cell is the ID, with a threat and a defence after it.
func threatDocEntries(t *testing.T) map[string]int {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(threatModelDoc))
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]int{}
	for i, line := range strings.Split(string(b), "\n") {
		m := threatDocEntry.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		id, n := m[1], i+1
		if prev, dup := entries[id]; dup {
			t.Errorf("%s:%d: %s already has an entry at line %d", threatModelDoc, n, id, prev)
			continue
		}
		entries[id] = n
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) < 3 || strings.TrimSpace(cells[1]) == "" || strings.TrimSpace(cells[2]) == "" {
			t.Errorf("%s:%d: the entry for %s needs a threat and a defence", threatModelDoc, n, id)
		}
	}
	return entries
}

// threatCitations walks the repository's .go and .md files and returns, per case ID, where
// it is cited, and how many files it read. This file is left out: it is the list itself.
func threatCitations(t *testing.T) (map[string][]threatCitation, int) {
	t.Helper()
	cited := map[string][]threatCitation{}
	files := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && threatModelSkipDirs[d.Name()] {
				return filepath.SkipDir
			}
			return nil
		}
		rel := filepath.ToSlash(path)
		if !d.Type().IsRegular() || rel == "threatmodel_test.go" {
			return nil
		}
		if ext := filepath.Ext(rel); ext != ".go" && ext != ".md" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for i, line := range strings.Split(string(b), "\n") {
			for _, re := range []*regexp.Regexp{threatCiteText, threatCiteTest} {
				for _, m := range re.FindAllStringSubmatch(line, -1) {
					id := threatCaseID(m[1], m[2])
					cited[id] = append(cited[id], threatCitation{rel, i + 1})
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return cited, files
}

// threatCheckCasesTxt compares threatModelCases with internal/securityreport/cases.txt, the
// case list `make security-report` counts against.
func threatCheckCasesTxt(t *testing.T) {
	t.Helper()
	const casesTxt = "internal/securityreport/cases.txt"
	b, err := os.ReadFile(filepath.FromSlash(casesTxt))
	if errors.Is(err, fs.ErrNotExist) {
		t.Logf("%s not found: threatModelCases is checked on its own", casesTxt)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "group ") {
			continue
		}
		id, _, _ := strings.Cut(line, " ")
		got = append(got, id)
	}
	if strings.Join(got, " ") != strings.Join(threatModelCases, " ") {
		t.Errorf("%s lists other cases than threatModelCases: SECURITY.md changed; update threatModelCases and %s",
			casesTxt, threatModelDoc)
	}
}
