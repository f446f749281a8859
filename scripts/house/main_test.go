package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakePackage writes a three-file package: top.go → mid.go → bottom.go, plus one call from
// bottom.go back up to top.go, and a type Big with 16 methods in bottom.go. It returns the
// directory and the path of a floors file that puts the three files on three floors.
func fakePackage(t *testing.T) (dir, floors string) {
	t.Helper()
	dir = t.TempDir()
	var big strings.Builder
	for i := range 16 {
		recv := "*Big"
		if i%2 == 1 {
			recv = "Big" // value receivers count too
		}
		fmt.Fprintf(&big, "func (b %s) M%d() int { return %d }\n", recv, i, i)
	}
	files := map[string]string{
		"go.mod": "module example.com/fake\n\ngo 1.22\n",
		// Top uses mid twice and Big once (a type use); Top2 is what bottom.go calls back.
		"top.go": `package fake

import "strings"

func Top() int { return mid() + mid() + len(strings.TrimSpace(" x ")) }

func Top2(b Big) int { return b.M1() }
`,
		"mid.go": `package fake

const midConst = 2

func mid() int { return bottom() * midConst }
`,
		// bottom calls Top2 (the up-call); the receivers of Big stay in this file.
		"bottom.go": "package fake\n\ntype Big struct{ n int }\n\nfunc bottom() int { return Top2(Big{}) }\n\n" + big.String(),
		// Test files are not part of the house.
		"top_test.go": "package fake\n\nimport \"testing\"\n\nfunc TestX(t *testing.T) { _ = bottom() }\n",
		// Nor are files the build constraints leave out.
		"ignored.go": "//go:build ignore\n\npackage fake\n\nfunc ignored() int { return mid() }\n",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	floors = filepath.Join(dir, "floors.txt")
	writeFile(t, floors, "# top to bottom\ntop.go\n\nm*.go   # a pattern\nbottom.go\n")
	return dir, floors
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func runHouse(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	if code == 2 {
		t.Fatalf("house %v: exit 2: %s", args, errb.String())
	}
	if errb.Len() > 0 {
		t.Errorf("house %v: stderr: %s", args, errb.String())
	}
	return code, out.String()
}

func TestGraph(t *testing.T) {
	dir, _ := fakePackage(t)
	g, err := load(dir, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.typeErrs) > 0 {
		t.Fatalf("type errors: %v", g.typeErrs)
	}
	if want := []string{"bottom.go", "mid.go", "top.go"}; !reflect.DeepEqual(g.files, want) {
		t.Fatalf("files %v, want %v", g.files, want)
	}
	got := map[string]int{}
	for _, e := range g.sortedEdges() {
		got[e.from+" → "+e.to] = e.n
	}
	want := map[string]int{
		"top.go → mid.go":    2, // mid, mid
		"top.go → bottom.go": 2, // Big, Big.M1
		"mid.go → bottom.go": 1, // bottom (midConst is mid.go's own)
		"bottom.go → top.go": 1, // Top2
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("edges %v, want %v", got, want)
	}
	if n := g.methodCount("Big"); n != 16 {
		t.Fatalf("Big has %d methods, want 16", n)
	}
	if g.lines["mid.go"] != 5 {
		t.Fatalf("mid.go has %d lines, want 5", g.lines["mid.go"])
	}
}

func TestFloorsReport(t *testing.T) {
	dir, floors := fakePackage(t)

	code, out := runHouse(t, "-floors", floors, dir)
	if code != 0 {
		t.Fatalf("without -check the exit status is %d", code)
	}
	for _, want := range []string{
		"up-arrows: 1 (max 4)",
		"bottom.go → top.go  (1 use: Top2)  [floor 3 → 1]",
		"unplaced files: 0",
		"types with more than 15 methods: 1",
		"Big: 16 methods (bottom.go 16)",
		"non-test files over 600 lines: 0",
		"check: failed: Big has 16 methods > 15",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// -check fails on the 16 methods, passes when they are allowed, and fails again on the
	// up-arrow, on a long file, and on an unplaced file.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-check"}, 1, "Big has 16 methods > 15"},
		{[]string{"-check", "-max-methods", "16"}, 0, "check: ok"},
		{[]string{"-check", "-max-methods", "16", "-max-up", "0"}, 1, "1 up-arrows > 0"},
		{[]string{"-check", "-max-methods", "16", "-max-lines", "4"}, 1, "mid.go has 5 lines > 4"},
		{[]string{"-max-methods", "16", "-max-lines", "4"}, 0, "mid.go has 5 lines > 4"}, // no -check: report only
	} {
		code, out := runHouse(t, append(append([]string{"-floors", floors}, c.args...), dir)...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d (want %d), output lacks %q?\n%s", c.args, code, c.code, c.want, out)
		}
	}

	writeFile(t, floors, "top.go\nbottom.go\n")
	code, out = runHouse(t, "-check", "-max-methods", "16", "-floors", floors, dir)
	if code != 1 || !strings.Contains(out, "unplaced files: 1\n  mid.go") {
		t.Errorf("unplaced mid.go: exit %d\n%s", code, out)
	}

	// All on one floor: no up-arrow.
	writeFile(t, floors, "*.go\n")
	if _, out = runHouse(t, "-floors", floors, dir); !strings.Contains(out, "up-arrows: 0") {
		t.Errorf("one floor:\n%s", out)
	}
}

func TestRecvAndFields(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.go"), "package p\n\ntype T struct{ f int }\n")
	writeFile(t, filepath.Join(dir, "b.go"), "package p\n\nfunc (t *T) get() int { return t.f }\n")
	for _, c := range []struct {
		recv, fields bool
		want         map[string]int
	}{
		{true, false, map[string]int{"b.go → a.go": 1}},
		{true, true, map[string]int{"b.go → a.go": 2}},
		{false, false, map[string]int{}},
		{false, true, map[string]int{"b.go → a.go": 1}},
	} {
		g, err := load(dir, c.recv, c.fields)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, e := range g.sortedEdges() {
			got[e.from+" → "+e.to] = e.n
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("recv=%v fields=%v: %v, want %v", c.recv, c.fields, got, c.want)
		}
	}
}

func TestPlace(t *testing.T) {
	files := []string{"a.go", "b.go", "b_x.go", "c.go"}
	floors := []floor{{patterns: []string{"b*.go"}}, {patterns: []string{"a.go", "b.go"}}, {patterns: []string{"gone.go"}}}
	at, unplaced, stale := place(files, floors)
	// b.go is named exactly on floor 2, so the pattern on floor 1 does not take it.
	if want := map[string]int{"a.go": 1, "b.go": 1, "b_x.go": 0}; !reflect.DeepEqual(at, want) {
		t.Errorf("at %v, want %v", at, want)
	}
	if !reflect.DeepEqual(unplaced, []string{"c.go"}) || !reflect.DeepEqual(stale, []string{"gone.go"}) {
		t.Errorf("unplaced %v, stale %v", unplaced, stale)
	}
}

func TestAuto(t *testing.T) {
	dir, _ := fakePackage(t)
	// A fourth file below the cycle, used by mid.go only.
	writeFile(t, filepath.Join(dir, "mid.go"), "package fake\n\nfunc mid() int { return bottom() * glue() }\n")
	writeFile(t, filepath.Join(dir, "glue.go"), "package fake\n\nfunc glue() int { return 2 }\n")
	code, out := runHouse(t, "-auto", "-floors", "/nonexistent", dir)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"2 components, 1 with cycles", // {bottom mid top} and {glue}
		"floors.txt format; one cycle = one floor):\nbottom.go mid.go top.go\nglue.go\n",
		"cycle 1: 3 files, 4 edges",
		"1 of them, marked ↑",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "↑ "); n != 1 {
		t.Errorf("%d edges marked, want 1:\n%s", n, out)
	}
	// The heavy edge top.go → mid.go (2 uses) is not the one to cut.
	if strings.Contains(out, "↑ top.go → mid.go") {
		t.Errorf("marked the heaviest edge:\n%s", out)
	}
	if code, _ := runHouse(t, "-auto", "-check", dir); code != 1 {
		t.Errorf("-auto -check with 16 methods: exit %d", code)
	}
}

func TestDot(t *testing.T) {
	dir, floors := fakePackage(t)
	_, out := runHouse(t, "-dot", "-floors", floors, dir)
	for _, want := range []string{"digraph house {", `label="floor 3"`, `"bottom.go" -> "top.go" [label=1, color=red`, `"top.go" -> "mid.go" [label=2];`} {
		if !strings.Contains(out, want) {
			t.Errorf("dot lacks %q:\n%s", want, out)
		}
	}
}
