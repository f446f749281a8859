package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

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
