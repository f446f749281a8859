package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/bench/internal/results"
)

// A RESULTS.md written whole by an earlier driver loses the old report but keeps the sections
// other programs appended after it; a file already in sections is left alone.
func TestDropWholeFileReport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "RESULTS.md")
	soak := "<!-- begin soak (generated; do not edit by hand) -->\n## Soak\n<!-- end soak -->\n"
	if err := os.WriteFile(path, []byte(oldReportHeading+"\nold table\n\n"+soak), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := dropWholeFileReport(path); err != nil {
		t.Fatal(err)
	}
	if err := results.WriteSection(path, "bench", "## Load benchmark\n\nnew\n"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	got := string(data)
	if !strings.HasPrefix(got, results.Title) || strings.Contains(got, "old table") || !strings.Contains(got, soak) || !strings.Contains(got, "new\n") {
		t.Errorf("after the migration and a write:\n%s", got)
	}
	if err := dropWholeFileReport(path); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(path)
	if string(again) != got {
		t.Errorf("a file in sections was changed:\n%s", again)
	}
}
