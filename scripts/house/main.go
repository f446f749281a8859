// Command house measures whether the files of one Go package stack up like a house: files
// are rooms, calls are paths between them, and drawn floor by floor every arrow points down.
//
//	go run ./scripts/house [flags] [dir]
//
// dir (default ".") is the package to measure; its non-test .go files that the build
// constraints of the host select are parsed with go/parser and type-checked with go/types.
// The export data of the imported packages comes from `go list -export` (the build cache,
// so the first run after a change of dependencies compiles them; later runs take a few
// seconds). Type errors do not stop the tool — a package in the middle of a refactoring
// still gets measured; they are counted in a warning on stderr.
//
// Edges. File A → file B (A ≠ B) when an identifier in A resolves (go/types Info.Uses) to
// an object of the package declared in B: a function, a method, a type, a variable or a
// constant (with -fields also a struct field: h.store in A, field declared in B). Each
// distinct (A, B) pair is one edge; its weight is the number of uses. The receiver type of
// a method declaration is a use of the type (a method of Handler written in
// handler.go cannot exist without the file that declares Handler); -recv=false
// leaves those out.
//
// Floors. The floors file (-floors, default scripts/house/floors.txt) lists the floors top
// to bottom, one line per floor, file names or filepath.Match patterns separated by spaces;
// '#' starts a comment. A file named exactly goes to that floor; otherwise the topmost
// floor with a matching pattern takes it. Files of one floor may use each other freely; an
// edge from a lower floor to a higher one is an arrow that runs back up. A file of the
// package on no floor is unplaced.
//
// Output: the up-arrows (from.go → to.go  (n uses: names…)) and their count, the number of
// methods of every type with more than -max-methods methods (with the files they are in),
// the non-test files longer than -max-lines lines, and the unplaced files. -check makes the
// exit status 1 when there are more than -max-up up-arrows, a type has more than
// -max-methods methods, a file has more than -max-lines lines, or a file is unplaced.
// -dot prints a Graphviz graph instead (up-arrows red).
//
// -auto ignores the floors file: it prints a suggested floor order — the strongly connected
// components of the file graph, each on one floor, floors ordered so that every edge
// between components points down (a component's floor is set by its longest path to a
// file that uses no other file, so shared glue sinks to the bottom) — in the floors file
// format, followed by the edges inside every cycle. The edges marked "↑" are one small
// set whose removal would break the cycle: the backward edges of an order of the cycle's
// files found by the greedy Eades–Lin–Smyth heuristic (by uses), then improved by moving
// single files while that lowers the number of backward edges (then their uses). Small,
// not necessarily minimal.
// With -auto, -check only looks at methods and lines.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	check, dot, auto  bool
	recv, fields      bool
	maxUp, maxMethods int
	maxLines          int
	floorsPath, dir   string
	showNames         int
	stdout, stderr    io.Writer
}

// run is main without os.Exit: 0 ok, 1 -check failed, 2 usage or load error.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("house", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{stdout: stdout, stderr: stderr}
	fs.BoolVar(&o.check, "check", false, "exit 1 when a limit is exceeded or a file is unplaced")
	fs.BoolVar(&o.dot, "dot", false, "print a Graphviz dot graph instead of the report")
	fs.BoolVar(&o.auto, "auto", false, "ignore the floors file; suggest floors from the strongly connected components")
	fs.BoolVar(&o.recv, "recv", true, "count the receiver type of a method declaration as a use")
	fs.BoolVar(&o.fields, "fields", false, "also count uses of struct fields")
	fs.IntVar(&o.maxUp, "max-up", 4, "most up-arrows -check accepts")
	fs.IntVar(&o.maxMethods, "max-methods", 15, "most methods of one type -check accepts")
	fs.IntVar(&o.maxLines, "max-lines", 600, "most lines of one non-test file -check accepts")
	fs.IntVar(&o.showNames, "names", 4, "names shown per edge")
	fs.StringVar(&o.floorsPath, "floors", filepath.Join("scripts", "house", "floors.txt"), "the floors file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./scripts/house [flags] [dir]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch fs.NArg() {
	case 0:
		o.dir = "."
	case 1:
		o.dir = fs.Arg(0)
	default:
		fs.Usage()
		return 2
	}
	g, err := load(o.dir, o.recv, o.fields)
	if err != nil {
		fmt.Fprintln(stderr, "house:", err)
		return 2
	}
	if len(g.typeErrs) > 0 {
		fmt.Fprintf(stderr, "house: warning: %d type errors (first: %v); uses inside broken expressions may be missed\n", len(g.typeErrs), g.typeErrs[0])
	}
	if o.auto {
		return reportAuto(g, &o)
	}
	floors, err := readFloors(o.floorsPath)
	if err != nil {
		fmt.Fprintln(stderr, "house:", err)
		return 2
	}
	return reportFloors(g, floors, &o)
}
