package main

import (
	"fmt"
	"sort"
	"strings"
)

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
