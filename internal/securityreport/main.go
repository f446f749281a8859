// Command securityreport reads `go test -json` output on stdin and prints, per group of the
// SECURITY.md checklist (Part C), how many of its cases are covered: by a passing test named
// after the case (Test<GROUP><NN>_… or Fuzz<GROUP><NN>_…, e.g. TestIDT11_NonceMismatch for
// IDT-11), or by a line of SECURITY-COVERAGE.md that says why the case does not apply (N/A)
// or where else it is covered. It lists the uncovered cases and the failed covering tests,
// and exits non-zero when any case is uncovered or any covering test failed. `make
// security-report` runs it.
//
// The list of cases is cases.txt, generated from SECURITY.md (which lives outside the
// repository); its test checks it against SECURITY.md when that file is at hand.
package main

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

//go:embed cases.txt
var casesTxt string

func main() {
	coverage := flag.String("coverage", "SECURITY-COVERAGE.md", "the file of cases covered otherwise (N/A, or elsewhere), one table row each")
	verbose := flag.Bool("v", false, "also list, per case, the tests that cover it")
	flag.Parse()
	os.Exit(run(os.Stdin, os.Stdout, *coverage, *verbose))
}

// Group is a section of Part C: the ID prefix of its cases, its title and its case IDs.
type Group struct {
	Prefix string
	Title  string
	Cases  []string
}

// parseCases reads cases.txt: "group <PREFIX> <title>" lines, each followed by its
// "<ID> <title>" lines; '#' starts a comment line.
func parseCases(s string) ([]Group, map[string]string, error) {
	var groups []Group
	titles := map[string]string{}
	for n, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "group "); ok {
			prefix, title, _ := strings.Cut(rest, " ")
			groups = append(groups, Group{Prefix: prefix, Title: title})
			continue
		}
		id, title, _ := strings.Cut(line, " ")
		m := caseID.FindStringSubmatch(id)
		if m == nil || len(groups) == 0 || m[1] != groups[len(groups)-1].Prefix {
			return nil, nil, fmt.Errorf("cases.txt:%d: %q is not a case of the group above it", n+1, line)
		}
		if _, dup := titles[id]; dup {
			return nil, nil, fmt.Errorf("cases.txt:%d: %s listed twice", n+1, id)
		}
		g := &groups[len(groups)-1]
		g.Cases = append(g.Cases, id)
		titles[id] = title
	}
	if len(titles) == 0 {
		return nil, nil, errors.New("cases.txt lists no case")
	}
	return groups, titles, nil
}

var (
	caseID = regexp.MustCompile(`^([A-Z]+)-([0-9]+)$`)
	// testName is a top-level test or fuzz target named after a case.
	testName = regexp.MustCompile(`^(?:Test|Fuzz)([A-Z]+)([0-9]+)_`)
)

// caseOf returns the case ID a test name claims ("TestIDT11_Nonce" -> "IDT-11"), or "".
func caseOf(test string) string {
	if strings.Contains(test, "/") {
		return "" // a subtest; its top-level test stands for it
	}
	m := testName.FindStringSubmatch(test)
	if m == nil {
		return ""
	}
	n, err := strconv.Atoi(m[2])
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s-%02d", m[1], n)
}

// Note is a SECURITY-COVERAGE.md row: a case covered other than by a test named after it.
type Note struct {
	Kind   string // "N/A" or "elsewhere"
	Reason string
}

// parseCoverage reads the table rows "| <ID> | N/A | <why> |" and
// "| <ID> | elsewhere | <where> |" of SECURITY-COVERAGE.md; other lines are prose.
func parseCoverage(r io.Reader, known map[string]string) (map[string]Note, error) {
	notes := map[string]Note{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		id := strings.Trim(cells[0], "*`")
		if !caseID.MatchString(id) {
			continue // header or separator row
		}
		if _, ok := known[id]; !ok {
			return nil, fmt.Errorf("line %d: %s is not a case of SECURITY.md", n, id)
		}
		if len(cells) < 3 || cells[2] == "" {
			return nil, fmt.Errorf("line %d: %s: give the status (N/A or elsewhere) and the reason", n, id)
		}
		kind := strings.ToLower(cells[1])
		switch kind {
		case "n/a":
			kind = "N/A"
		case "elsewhere":
		default:
			return nil, fmt.Errorf("line %d: %s: status %q, want N/A or elsewhere", n, id, cells[1])
		}
		if _, dup := notes[id]; dup {
			return nil, fmt.Errorf("line %d: %s appears twice", n, id)
		}
		notes[id] = Note{Kind: kind, Reason: cells[2]}
	}
	return notes, sc.Err()
}

type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output and build-fail events
}

// result is what happened to one covering test (package + name).
type result struct {
	pkg, test string
	action    string // pass, fail, skip; "" if it never finished
	output    []string
}

func run(in io.Reader, out io.Writer, coveragePath string, verbose bool) int {
	groups, titles, err := parseCases(casesTxt)
	if err != nil {
		fmt.Fprintln(out, "securityreport:", err)
		return 2
	}
	notes := map[string]Note{}
	if f, err := os.Open(coveragePath); err == nil {
		notes, err = parseCoverage(f, titles)
		f.Close()
		if err != nil {
			fmt.Fprintf(out, "securityreport: %s: %v\n", coveragePath, err)
			return 2
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(out, "securityreport:", err)
		return 2
	}

	byCase := map[string][]*result{}
	results := map[string]*result{} // package + " " + test
	unknown := map[string]bool{}
	failedPkgs := map[string]bool{}
	pkgHadTests := map[string]bool{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Action == "" {
			fmt.Fprintln(out, sc.Text()) // not test2json (e.g. a build error): show it
			continue
		}
		if e.Action == "build-output" {
			fmt.Fprint(out, e.Output) // compiler errors: show them
			continue
		}
		if e.Test == "" {
			if e.Action == "fail" {
				failedPkgs[e.Package] = true
			}
			continue
		}
		pkgHadTests[e.Package] = true
		top, _, _ := strings.Cut(e.Test, "/")
		id := caseOf(top)
		if id == "" {
			continue
		}
		if _, ok := titles[id]; !ok {
			unknown[e.Package+" "+top+" ("+id+")"] = true
			continue
		}
		key := e.Package + " " + top
		r := results[key]
		if r == nil {
			r = &result{pkg: e.Package, test: top}
			results[key] = r
			byCase[id] = append(byCase[id], r)
		}
		switch e.Action {
		case "output":
			if len(r.output) < 200 {
				r.output = append(r.output, e.Output)
			}
		case "pass", "fail", "skip":
			if e.Test == top {
				r.action = e.Action
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(out, "securityreport: reading go test -json:", err)
		return 2
	}

	fmt.Fprintf(out, "SECURITY.md cases covered by a passing test (Test<GROUP><NN>_ / Fuzz<GROUP><NN>_) or by %s:\n", coveragePath)
	var uncoveredAll, failures []string
	total, covered := 0, 0
	for _, g := range groups {
		tested, na, elsewhere := 0, 0, 0
		var uncovered []string
		for _, id := range g.Cases {
			rs := byCase[id]
			passed, failed := false, false
			for _, r := range rs {
				switch r.action {
				case "pass":
					passed = true
				case "fail", "":
					// "" : started but never finished (the binary crashed or timed out)
					failed = true
					failures = append(failures, id+"  "+r.pkg+" "+r.test)
				}
			}
			switch note, hasNote := notes[id]; {
			case failed:
				uncovered = append(uncovered, id+" (test failed)")
			case passed:
				tested++
			case hasNote && note.Kind == "N/A":
				na++
			case hasNote:
				elsewhere++
			case len(rs) > 0:
				uncovered = append(uncovered, id+" (test skipped)")
			default:
				uncovered = append(uncovered, id)
			}
			if verbose {
				names := []string{}
				for _, r := range rs {
					names = append(names, r.test+":"+r.action)
				}
				fmt.Fprintf(out, "    %-8s %s\n", id, strings.Join(names, " "))
			}
		}
		n := len(g.Cases)
		ok := tested + na + elsewhere
		total += n
		covered += ok
		detail := fmt.Sprintf("%d tested", tested)
		if na > 0 {
			detail += fmt.Sprintf(", %d N/A", na)
		}
		if elsewhere > 0 {
			detail += fmt.Sprintf(", %d elsewhere", elsewhere)
		}
		line := fmt.Sprintf("%-5s %2d/%-2d (%s)  %s", g.Prefix, ok, n, detail, g.Title)
		if len(uncovered) > 0 {
			line += "\n      uncovered: " + strings.Join(uncovered, ", ")
			uncoveredAll = append(uncoveredAll, uncovered...)
		}
		fmt.Fprintln(out, line)
	}
	fmt.Fprintf(out, "total %d/%d covered\n", covered, total)

	if len(unknown) > 0 {
		var u []string
		for k := range unknown {
			u = append(u, k)
		}
		sort.Strings(u)
		fmt.Fprintf(out, "\nTests named after no case of SECURITY.md (typo?):\n  %s\n", strings.Join(u, "\n  "))
	}
	var broken []string
	for pkg := range failedPkgs {
		if !pkgHadTests[pkg] {
			broken = append(broken, pkg)
		}
	}
	sort.Strings(broken)
	for _, pkg := range broken {
		fmt.Fprintf(out, "\nFAIL %s: no test ran (build failure or TestMain error; see the lines above)\n", pkg)
	}
	sort.Strings(failures)
	for _, f := range failures {
		id, key, _ := strings.Cut(f, "  ")
		r := results[key]
		fmt.Fprintf(out, "\n--- FAIL %s (%s)\n%s", key, id, strings.Join(r.output, ""))
	}
	if len(uncoveredAll) > 0 || len(failures) > 0 {
		return 1
	}
	return 0
}
