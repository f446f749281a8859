package results

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteSectionKeepsTheOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "RESULTS.md")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(WriteSection(path, "bench", "## Bench\n\nfirst"))
	must(WriteSection(path, "soak", "## Soak\n\nten minutes\n"))
	must(WriteSection(path, "bench", "## Bench\n\nsecond\n"))
	data, err := os.ReadFile(path)
	must(err)
	s := string(data)
	if !strings.HasPrefix(s, Title) {
		t.Errorf("the file does not start with the title:\n%s", s)
	}
	if strings.Contains(s, "first") || !strings.Contains(s, "second") || !strings.Contains(s, "ten minutes") {
		t.Errorf("the bench section was not replaced, or the soak section was lost:\n%s", s)
	}
	if strings.Index(s, "## Bench") > strings.Index(s, "## Soak") {
		t.Errorf("a replaced section moved:\n%s", s)
	}
	if strings.Count(s, "<!-- begin bench") != 1 || strings.Count(s, "<!-- end bench -->") != 1 {
		t.Errorf("markers duplicated:\n%s", s)
	}
}

func TestWriteSectionRefusesABrokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "RESULTS.md")
	begin, _ := markers("soak")
	before := "# x\n\n" + begin + "## Soak\nno end marker\n"
	if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteSection(path, "soak", "## Soak\n")
	if err == nil || !strings.Contains(err.Error(), "no end marker") {
		t.Fatalf("err = %v, want one naming the missing end marker", err)
	}
	after, _ := os.ReadFile(path)
	if string(after) != before {
		t.Errorf("the file changed although the write was refused:\n%s", after)
	}
	if err := WriteSection(path, "two words", "x"); err == nil {
		t.Error("a section name with a space was accepted")
	}
}
