// Command testreport reads `go test -json` output on stdin, prints the output of failed
// tests and a summary, and exits non-zero when any test failed or was skipped. make test
// uses it so that a test which silently skips (caddytest does, when it cannot start Caddy)
// fails the run instead of passing unnoticed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

func run(in io.Reader, out io.Writer) int {
	outputs := map[string][]string{} // package/test -> lines
	var failed, skipped []string
	passed := 0
	pkgs := map[string]string{}
	perPkg := map[string]int{} // tests (not subtests) that ran, per package
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if json.Unmarshal(line, &e) != nil || e.Action == "" {
			// Not test2json (e.g. a build error printed by go vet): show it as is.
			fmt.Fprintln(out, string(line))
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			if len(outputs[key]) < 400 {
				outputs[key] = append(outputs[key], e.Output)
			}
		case "pass":
			if e.Test != "" {
				passed++
				if !strings.Contains(e.Test, "/") {
					perPkg[e.Package]++
				}
			} else {
				pkgs[e.Package] = fmt.Sprintf("ok    %s (%.1fs, %d tests)", e.Package, e.Elapsed, perPkg[e.Package])
			}
		case "fail":
			if e.Test != "" {
				failed = append(failed, key)
			} else {
				pkgs[e.Package] = fmt.Sprintf("FAIL  %s (%.1fs)", e.Package, e.Elapsed)
				if len(outputs[key]) > 0 {
					failed = append(failed, key)
				}
			}
		case "skip":
			if e.Test != "" {
				skipped = append(skipped, key)
			}
		}
	}
	var names []string
	for p := range pkgs {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		fmt.Fprintln(out, pkgs[p])
	}
	for _, k := range failed {
		fmt.Fprintf(out, "\n--- FAIL %s\n%s", k, strings.Join(outputs[k], ""))
	}
	for _, k := range skipped {
		fmt.Fprintf(out, "\n--- SKIP %s (skipped tests fail the run: a missing prerequisite must be installed, not ignored)\n%s", k, strings.Join(outputs[k], ""))
	}
	fmt.Fprintf(out, "\n%d passed (tests and subtests), %d failed, %d skipped\n", passed, len(failed), len(skipped))
	if len(failed) > 0 || len(skipped) > 0 || passed == 0 {
		return 1
	}
	return 0
}
