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
// handler_login.go cannot exist without the file that declares Handler); -recv=false
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
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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

// ---- the graph ----

type edge struct {
	from, to string
	n        int            // uses
	names    map[string]int // object name → uses
}

type graph struct {
	pkg      string
	files    []string // base names, sorted
	lines    map[string]int
	edges    map[[2]string]*edge
	methods  map[string]map[string]int // type name → file → methods declared there
	typeErrs []error
}

func (g *graph) sortedEdges() []*edge {
	es := make([]*edge, 0, len(g.edges))
	for _, e := range g.edges {
		es = append(es, e)
	}
	sort.Slice(es, func(i, j int) bool {
		if es[i].from != es[j].from {
			return es[i].from < es[j].from
		}
		return es[i].to < es[j].to
	})
	return es
}

func (g *graph) methodCount(typ string) int {
	n := 0
	for _, c := range g.methods[typ] {
		n += c
	}
	return n
}

// load parses and type-checks the package in dir and builds its file graph.
func load(dir string, recv, fields bool) (*graph, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	var files []*ast.File
	g := &graph{lines: map[string]int{}, edges: map[[2]string]*edge{}, methods: map[string]map[string]int{}}
	imports := map[string]bool{}
	for _, ent := range ents {
		name := ent.Name()
		if ent.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		if ok, err := build.Default.MatchFile(dir, name); err != nil || !ok {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		if g.pkg == "" {
			g.pkg = f.Name.Name
		} else if f.Name.Name != g.pkg {
			return nil, fmt.Errorf("%s: package %s, but %s elsewhere", name, f.Name.Name, g.pkg)
		}
		files = append(files, f)
		g.files = append(g.files, name)
		g.lines[name] = fset.File(f.Pos()).LineCount()
		for _, is := range f.Imports {
			if p, err := strconv.Unquote(is.Path.Value); err == nil && p != "unsafe" && p != "C" {
				imports[p] = true
			}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no non-test Go files", dir)
	}
	sort.Strings(g.files)

	exports, err := exportData(dir, imports)
	if err != nil {
		g.typeErrs = append(g.typeErrs, err)
	}
	conf := types.Config{
		Importer: importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
			if f := exports[path]; f != "" {
				return os.Open(f)
			}
			return nil, fmt.Errorf("no export data for %q", path)
		}),
		Error: func(err error) { g.typeErrs = append(g.typeErrs, err) },
	}
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}}
	pkg, _ := conf.Check(g.pkg, fset, files, info) // errors are collected by conf.Error

	fileOf := func(pos token.Pos) string {
		if !pos.IsValid() {
			return ""
		}
		return filepath.Base(fset.Position(pos).Filename)
	}
	inPkg := map[string]bool{}
	for _, f := range g.files {
		inPkg[f] = true
	}

	// Methods per type and file (declared methods only: interfaces and promoted methods do
	// not count).
	for _, name := range pkg.Scope().Names() {
		tn, ok := pkg.Scope().Lookup(name).(*types.TypeName)
		if !ok || tn.IsAlias() {
			continue
		}
		named, ok := tn.Type().(*types.Named)
		if !ok {
			continue
		}
		for i := 0; i < named.NumMethods(); i++ {
			m := named.Method(i)
			if g.methods[name] == nil {
				g.methods[name] = map[string]int{}
			}
			g.methods[name][fileOf(m.Pos())]++
		}
	}

	for _, f := range files {
		from := fileOf(f.Pos())
		skip := map[*ast.Ident]bool{}
		if !recv {
			for _, d := range f.Decls {
				if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv != nil {
					for _, fl := range fd.Recv.List {
						ast.Inspect(fl.Type, func(n ast.Node) bool {
							if id, ok := n.(*ast.Ident); ok {
								skip[id] = true
							}
							return true
						})
					}
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			id, ok := n.(*ast.Ident)
			if !ok || skip[id] {
				return true
			}
			obj := info.Uses[id]
			if obj == nil || obj.Pkg() != pkg {
				return true
			}
			name := objName(obj, fields)
			if name == "" {
				return true
			}
			to := fileOf(obj.Pos())
			if to == from || !inPkg[to] {
				return true
			}
			k := [2]string{from, to}
			e := g.edges[k]
			if e == nil {
				e = &edge{from: from, to: to, names: map[string]int{}}
				g.edges[k] = e
			}
			e.n++
			e.names[name]++
			return true
		})
	}
	return g, nil
}

// objName names a used object of the package for the report ("Handler.login" for a
// method, ".field" for a field), or returns "" for objects that do not make edges.
func objName(obj types.Object, fields bool) string {
	switch o := obj.(type) {
	case *types.Func:
		o = o.Origin()
		if sig, ok := o.Type().(*types.Signature); ok && sig.Recv() != nil {
			t := sig.Recv().Type()
			if p, ok := t.(*types.Pointer); ok {
				t = p.Elem()
			}
			switch t := t.(type) {
			case *types.Named:
				return t.Obj().Name() + "." + o.Name()
			case *types.Alias:
				return t.Obj().Name() + "." + o.Name()
			}
			return "." + o.Name() // method of an interface literal
		}
		return o.Name()
	case *types.Var:
		if o.IsField() {
			if !fields {
				return ""
			}
			return "." + o.Origin().Name()
		}
		return o.Name()
	case *types.TypeName, *types.Const:
		return o.Name()
	}
	return "" // package names, labels, builtins, nil
}

// exportData maps the packages imported by dir to their export data files, via `go list
// -export` run in dir (which builds what the cache lacks). The package itself is not
// built, so a package that does not compile yet can still be measured.
func exportData(dir string, imports map[string]bool) (map[string]string, error) {
	out := map[string]string{}
	if len(imports) == 0 {
		return out, nil
	}
	args := []string{"list", "-e", "-export", "-f", "{{.ImportPath}}\t{{.Export}}\t{{with .Error}}{{.Err}}{{end}}"}
	for p := range imports {
		args = append(args, p)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("go list -export: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var missing []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, "\t", 3)
		if len(parts) < 2 {
			continue
		}
		if parts[1] != "" {
			out[parts[0]] = parts[1]
		} else {
			missing = append(missing, parts[0])
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return out, fmt.Errorf("go list -export: no export data for %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// ---- floors ----

type floor struct {
	line     int      // in the floors file
	patterns []string // names or filepath.Match patterns
}

// readFloors reads the floors file: one floor per line, top first; '#' starts a comment.
func readFloors(path string) ([]floor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var floors []floor
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		pats := strings.Fields(line)
		if len(pats) == 0 {
			continue
		}
		for _, p := range pats {
			if _, err := filepath.Match(p, ""); err != nil {
				return nil, fmt.Errorf("%s:%d: bad pattern %q", path, n, p)
			}
		}
		floors = append(floors, floor{line: n, patterns: pats})
	}
	if len(floors) == 0 {
		return nil, fmt.Errorf("%s: no floors", path)
	}
	return floors, nil
}

// place assigns each file its floor index (0 = top): an exact name first, otherwise the
// topmost matching pattern. It also returns the unplaced files and the patterns that
// match no file (stale entries after a rename).
func place(files []string, floors []floor) (map[string]int, []string, []string) {
	at := map[string]int{}
	used := map[string]bool{}
	var unplaced []string
	for _, f := range files {
		fl := -1
		for i, fr := range floors {
			for _, p := range fr.patterns {
				if p == f {
					fl = i
					used[p] = true
				}
			}
			if fl >= 0 {
				break
			}
		}
		if fl < 0 {
		search:
			for i, fr := range floors {
				for _, p := range fr.patterns {
					if ok, _ := filepath.Match(p, f); ok {
						fl = i
						used[p] = true
						break search
					}
				}
			}
		}
		if fl < 0 {
			unplaced = append(unplaced, f)
			continue
		}
		at[f] = fl
	}
	var stale []string
	for _, fr := range floors {
		for _, p := range fr.patterns {
			if !used[p] {
				// A pattern shadowed by an exact name elsewhere is not stale if it matches.
				match := false
				for _, f := range files {
					if ok, _ := filepath.Match(p, f); ok {
						match = true
					}
				}
				if !match {
					stale = append(stale, p)
				}
			}
		}
	}
	return at, unplaced, stale
}

// ---- reports ----

func (o *options) names(e *edge) string {
	ns := make([]string, 0, len(e.names))
	for n := range e.names {
		ns = append(ns, n)
	}
	sort.Slice(ns, func(i, j int) bool {
		if e.names[ns[i]] != e.names[ns[j]] {
			return e.names[ns[i]] > e.names[ns[j]]
		}
		return ns[i] < ns[j]
	})
	more := ""
	if len(ns) > o.showNames {
		ns, more = ns[:o.showNames], ", …"
	}
	use := "uses"
	if e.n == 1 {
		use = "use"
	}
	return fmt.Sprintf("%d %s: %s%s", e.n, use, strings.Join(ns, ", "), more)
}

// limits reports the methods and lines over the limits; it returns the failures.
func limits(g *graph, o *options) []string {
	w := o.stdout
	var fails []string
	var big []string
	for t := range g.methods {
		if g.methodCount(t) > o.maxMethods {
			big = append(big, t)
		}
	}
	sort.Slice(big, func(i, j int) bool { return g.methodCount(big[i]) > g.methodCount(big[j]) })
	fmt.Fprintf(w, "\ntypes with more than %d methods: %d\n", o.maxMethods, len(big))
	for _, t := range big {
		var per []string
		for f, n := range g.methods[t] {
			per = append(per, fmt.Sprintf("%s %d", f, n))
		}
		sort.Strings(per)
		fmt.Fprintf(w, "  %s: %d methods (%s)\n", t, g.methodCount(t), strings.Join(per, ", "))
		fails = append(fails, fmt.Sprintf("%s has %d methods > %d", t, g.methodCount(t), o.maxMethods))
	}
	var long []string
	for _, f := range g.files {
		if g.lines[f] > o.maxLines {
			long = append(long, f)
		}
	}
	fmt.Fprintf(w, "\nnon-test files over %d lines: %d\n", o.maxLines, len(long))
	for _, f := range long {
		fmt.Fprintf(w, "  %s: %d lines\n", f, g.lines[f])
		fails = append(fails, fmt.Sprintf("%s has %d lines > %d", f, g.lines[f], o.maxLines))
	}
	return fails
}

func verdict(o *options, fails []string) int {
	if len(fails) == 0 {
		fmt.Fprintln(o.stdout, "\ncheck: ok")
		return 0
	}
	fmt.Fprintf(o.stdout, "\ncheck: failed: %s\n", strings.Join(fails, "; "))
	if o.check {
		return 1
	}
	return 0
}

func reportFloors(g *graph, floors []floor, o *options) int {
	at, unplaced, stale := place(g.files, floors)
	var ups []*edge
	for _, e := range g.sortedEdges() {
		fa, oka := at[e.from]
		fb, okb := at[e.to]
		if oka && okb && fa > fb {
			ups = append(ups, e)
		}
	}
	if o.dot {
		groups := make([][]string, len(floors))
		for _, f := range g.files {
			if fl, ok := at[f]; ok {
				groups[fl] = append(groups[fl], f)
			}
		}
		labels := make([]string, len(floors))
		for i := range floors {
			labels[i] = fmt.Sprintf("floor %d", i+1)
		}
		if len(unplaced) > 0 {
			groups = append(groups, unplaced)
			labels = append(labels, "unplaced")
		}
		red := map[[2]string]bool{}
		for _, e := range ups {
			red[[2]string{e.from, e.to}] = true
		}
		writeDot(o.stdout, g, groups, labels, red)
		if o.check && (len(ups) > o.maxUp || len(unplaced) > 0) {
			return 1
		}
		return 0
	}
	w := o.stdout
	fmt.Fprintf(w, "house: package %s, %d files, %d edges, %d floors (%s)\n", g.pkg, len(g.files), len(g.edges), len(floors), o.floorsPath)
	for i, fr := range floors {
		var fs []string
		for _, f := range g.files {
			if fl, ok := at[f]; ok && fl == i {
				fs = append(fs, f)
			}
		}
		fmt.Fprintf(w, "  floor %d (line %d): %s\n", i+1, fr.line, strings.Join(fs, " "))
	}
	if len(stale) > 0 {
		fmt.Fprintf(w, "  (entries matching no file: %s)\n", strings.Join(stale, " "))
	}
	fmt.Fprintf(w, "\nup-arrows: %d (max %d)\n", len(ups), o.maxUp)
	for _, e := range ups {
		fmt.Fprintf(w, "  %s → %s  (%s)  [floor %d → %d]\n", e.from, e.to, o.names(e), at[e.from]+1, at[e.to]+1)
	}
	var fails []string
	if len(ups) > o.maxUp {
		fails = append(fails, fmt.Sprintf("%d up-arrows > %d", len(ups), o.maxUp))
	}
	fmt.Fprintf(w, "\nunplaced files: %d\n", len(unplaced))
	for _, f := range unplaced {
		fmt.Fprintf(w, "  %s\n", f)
		fails = append(fails, f+" is unplaced")
	}
	fails = append(fails, limits(g, o)...)
	return verdict(o, fails)
}

func writeDot(w io.Writer, g *graph, groups [][]string, labels []string, red map[[2]string]bool) {
	fmt.Fprintln(w, "digraph house {")
	fmt.Fprintln(w, "  rankdir=TB; newrank=true; node [shape=box, fontname=\"Helvetica\"]; edge [fontname=\"Helvetica\", fontsize=9];")
	for i, grp := range groups {
		fmt.Fprintf(w, "  subgraph cluster_%d { label=%q; rank=same;", i, labels[i])
		for _, f := range grp {
			fmt.Fprintf(w, " %q;", f)
		}
		fmt.Fprintln(w, " }")
	}
	for _, e := range g.sortedEdges() {
		attr := fmt.Sprintf("label=%d", e.n)
		if red[[2]string{e.from, e.to}] {
			attr += ", color=red, fontcolor=red, constraint=false"
		}
		fmt.Fprintf(w, "  %q -> %q [%s];\n", e.from, e.to, attr)
	}
	fmt.Fprintln(w, "}")
}

// ---- -auto ----

// sccs returns the strongly connected components of the file graph (Tarjan), each sorted,
// in reverse topological order: a component comes after every component it uses, so the
// sinks come first.
func sccs(g *graph) [][]string {
	succ := map[string][]string{}
	for _, e := range g.sortedEdges() {
		succ[e.from] = append(succ[e.from], e.to)
	}
	index := map[string]int{}
	low := map[string]int{}
	on := map[string]bool{}
	var stack []string
	var out [][]string
	var visit func(v string)
	visit = func(v string) {
		index[v] = len(index)
		low[v] = index[v]
		stack = append(stack, v)
		on[v] = true
		for _, u := range succ[v] {
			if _, seen := index[u]; !seen {
				visit(u)
				low[v] = min(low[v], low[u])
			} else if on[u] {
				low[v] = min(low[v], index[u])
			}
		}
		if low[v] == index[v] {
			var c []string
			for {
				u := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				on[u] = false
				c = append(c, u)
				if u == v {
					break
				}
			}
			sort.Strings(c)
			out = append(out, c)
		}
	}
	for _, f := range g.files {
		if _, seen := index[f]; !seen {
			visit(f)
		}
	}
	return out
}

// autoFloors puts each component on the floor given by its height (the longest path to a
// component that uses no other): top floor first.
func autoFloors(g *graph) (floors [][]string, comps [][]string) {
	comps = sccs(g) // sinks first
	comp := map[string]int{}
	for i, c := range comps {
		for _, f := range c {
			comp[f] = i
		}
	}
	height := make([]int, len(comps))
	for i := range comps { // every successor component has a smaller index
		for _, e := range g.edges {
			if comp[e.from] == i && comp[e.to] != i {
				height[i] = max(height[i], height[comp[e.to]]+1)
			}
		}
	}
	top := 0
	for _, h := range height {
		top = max(top, h)
	}
	floors = make([][]string, top+1)
	for i, c := range comps {
		floors[top-height[i]] = append(floors[top-height[i]], c...)
	}
	for _, fl := range floors {
		sort.Strings(fl)
	}
	return floors, comps
}

// cycleOrder orders the files of one component so that few edges run backwards: greedy
// Eades–Lin–Smyth by uses, then improveOrder.
func cycleOrder(g *graph, c []string) []string {
	in := map[string]bool{}
	for _, f := range c {
		in[f] = true
	}
	left := map[string]bool{}
	for _, f := range c {
		left[f] = true
	}
	weight := func(f string, out bool) int {
		n := 0
		for _, e := range g.edges {
			if out && e.from == f && left[e.to] && e.to != f {
				n += e.n
			}
			if !out && e.to == f && left[e.from] && e.from != f {
				n += e.n
			}
		}
		return n
	}
	var s1, s2 []string
	for len(left) > 0 {
		changed := true
		for changed {
			changed = false
			for _, f := range c {
				if left[f] && weight(f, true) == 0 {
					s2 = append([]string{f}, s2...)
					delete(left, f)
					changed = true
				}
			}
			for _, f := range c {
				if left[f] && weight(f, false) == 0 {
					s1 = append(s1, f)
					delete(left, f)
					changed = true
				}
			}
		}
		best, bestD := "", 0
		for _, f := range c {
			if !left[f] {
				continue
			}
			if d := weight(f, true) - weight(f, false); best == "" || d > bestD {
				best, bestD = f, d
			}
		}
		if best != "" {
			s1 = append(s1, best)
			delete(left, best)
		}
	}
	return improveOrder(g, append(s1, s2...))
}

// backCost counts the edges of order that run backwards (later file → earlier file) and
// their uses.
func backCost(g *graph, order []string) (edges, uses int) {
	pos := map[string]int{}
	for i, f := range order {
		pos[f] = i
	}
	for _, e := range g.edges {
		pa, oka := pos[e.from]
		pb, okb := pos[e.to]
		if oka && okb && pa > pb {
			edges++
			uses += e.n
		}
	}
	return edges, uses
}

// improveOrder moves single files to other places in the order while that lowers the
// number of backward edges (then their uses); the greedy order is a start, not an optimum.
func improveOrder(g *graph, order []string) []string {
	be, bu := backCost(g, order)
	for improved := true; improved; {
		improved = false
		for i := range order {
			for j := range order {
				if i == j {
					continue
				}
				cand := make([]string, 0, len(order))
				cand = append(cand, order[:i]...)
				cand = append(cand, order[i+1:]...)
				cand = append(cand[:j:j], append([]string{order[i]}, cand[j:]...)...)
				if e, u := backCost(g, cand); e < be || (e == be && u < bu) {
					order, be, bu, improved = cand, e, u, true
				}
			}
		}
	}
	return order
}

func reportAuto(g *graph, o *options) int {
	floors, comps := autoFloors(g)
	var cycles [][]string
	for i := len(comps) - 1; i >= 0; i-- { // top first
		if len(comps[i]) > 1 {
			cycles = append(cycles, comps[i])
		}
	}
	back := map[[2]string]bool{}
	orders := make([][]string, len(cycles))
	for i, c := range cycles {
		orders[i] = cycleOrder(g, c)
		pos := map[string]int{}
		for j, f := range orders[i] {
			pos[f] = j
		}
		for _, e := range g.edges {
			if pa, ok := pos[e.from]; ok {
				if pb, ok := pos[e.to]; ok && pa > pb {
					back[[2]string{e.from, e.to}] = true
				}
			}
		}
	}
	if o.dot {
		labels := make([]string, len(floors))
		for i := range floors {
			labels[i] = fmt.Sprintf("floor %d", i+1)
		}
		writeDot(o.stdout, g, floors, labels, back)
		return 0
	}
	w := o.stdout
	fmt.Fprintf(w, "house -auto: package %s, %d files, %d edges, %d components, %d with cycles\n", g.pkg, len(g.files), len(g.edges), len(comps), len(cycles))
	fmt.Fprintln(w, "\nsuggested floors (top to bottom, floors.txt format; one cycle = one floor):")
	for _, fl := range floors {
		fmt.Fprintf(w, "%s\n", strings.Join(fl, " "))
	}
	for i, c := range cycles {
		var es []*edge
		for _, e := range g.sortedEdges() {
			if contains(c, e.from) && contains(c, e.to) {
				es = append(es, e)
			}
		}
		nb := 0
		for _, e := range es {
			if back[[2]string{e.from, e.to}] {
				nb++
			}
		}
		fmt.Fprintf(w, "\ncycle %d: %d files, %d edges; order %s\n  %d of them, marked ↑, run back up that order; without them no cycle is left:\n", i+1, len(c), len(es), strings.Join(orders[i], " "), nb)
		for _, e := range es {
			mark := " "
			if back[[2]string{e.from, e.to}] {
				mark = "↑"
			}
			fmt.Fprintf(w, "  %s %s → %s  (%s)\n", mark, e.from, e.to, o.names(e))
		}
	}
	return verdict(o, limits(g, o))
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}
