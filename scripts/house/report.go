package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

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
