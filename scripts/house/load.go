package main

import (
	"bytes"
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
