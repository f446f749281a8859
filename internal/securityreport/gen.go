package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var (
	sectionRe = regexp.MustCompile(`^### (C\.[0-9]+) (.+) \(([0-9]+)\)$`)
	itemRe    = regexp.MustCompile(`^[0-9]+\. \*\*([A-Z]+-[0-9]+)\*\* · \*(.+?)\*`)
)

// generateCases builds cases.txt from the text of SECURITY.md: its Part C sections and
// their numbered cases, checking each section's announced count.
func generateCases(securityMD string) (string, error) {
	var b strings.Builder
	b.WriteString("# The SECURITY.md checklist (Part C), generated from it by\n")
	b.WriteString("#   go test ./internal/securityreport -run TestCasesMatchSecurityMD -update\n")
	b.WriteString("# (SECURITY.md lives outside the repository, at ../shared/SECURITY.md).\n")
	b.WriteString("# \"group <ID prefix> <section title>\", then \"<case ID> <case title>\" lines.\n")
	type section struct {
		name, title string
		want, got   int
		prefix      string
		lines       []string
	}
	var secs []*section
	var cur *section
	for _, line := range strings.Split(securityMD, "\n") {
		line = strings.TrimRight(line, "\r")
		if m := sectionRe.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[3])
			cur = &section{name: m[1], title: m[2], want: n}
			secs = append(secs, cur)
			continue
		}
		if strings.HasPrefix(line, "## ") {
			cur = nil // another part
			continue
		}
		m := itemRe.FindStringSubmatch(line)
		if m == nil || cur == nil {
			continue
		}
		prefix, _, _ := strings.Cut(m[1], "-")
		if cur.prefix == "" {
			cur.prefix = prefix
		} else if cur.prefix != prefix {
			return "", fmt.Errorf("%s %s: case %s does not share the section's prefix %s", cur.name, cur.title, m[1], cur.prefix)
		}
		cur.got++
		cur.lines = append(cur.lines, m[1]+" "+m[2])
	}
	if len(secs) == 0 {
		return "", fmt.Errorf("no \"### C.n <title> (<count>)\" section found")
	}
	for _, s := range secs {
		if s.got != s.want || s.got == 0 {
			return "", fmt.Errorf("%s %s announces %d cases, lists %d", s.name, s.title, s.want, s.got)
		}
		fmt.Fprintf(&b, "\ngroup %s %s %s\n", s.prefix, s.name, s.title)
		for _, l := range s.lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String(), nil
}
