package trustgate

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// reasonCodePatterns find the reason codes the gateway writes: log fields
// zap.String("reason", "..."), refusals' reason: "...", oidcflow's Code... constants, and the
// codes of the back-channel logout and CIBA refusal helpers.
var reasonCodePatterns = []*regexp.Regexp{
	regexp.MustCompile(`"reason",\s*"([a-z0-9_]+)"`),
	regexp.MustCompile(`reason:\s*"([a-z0-9_]+)"`),
	// refusals: web.Refusal{..., Reason: "code", ...}
	regexp.MustCompile(`Reason:\s*"([a-z0-9_]+)"`),
	regexp.MustCompile(`\bCode\w+\s*=\s*"([a-z0-9_]+)"`),
	// back-channel logout refusals: refuse(status, "code", msg), logged as the reason
	regexp.MustCompile(`\brefuse\(http\.\w+,\s*"([a-z0-9_]+)"`),
	// CIBA refusals: f.refuse(w, r, status, "json_error", "reason", msg)
	regexp.MustCompile(`\.refuse\(w,\s*r,\s*http\.\w+,\s*"[a-z0-9_]+",\s*"([a-z0-9_]+)"`),
}

// TestEveryReasonCodeIsDocumented keeps docs/troubleshooting.md complete: every reason
// code in the gateway's non-test sources (root, oidcflow, session, trust, provider) has a
// row there, so an operator who greps a log line finds what it means and what to do.
func TestEveryReasonCodeIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("docs/troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, dir := range []string{".", "oidcflow", "session", "trust", "provider"} {
		m, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	codes := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range reasonCodePatterns {
			for _, m := range re.FindAllSubmatch(src, -1) {
				codes[string(m[1])] = f
			}
		}
	}
	if len(codes) < 40 {
		t.Fatalf("found only %d reason codes; the patterns no longer match the sources", len(codes))
	}
	var missing []string
	for c, f := range codes {
		if !strings.Contains(string(doc), "`"+c+"`") {
			missing = append(missing, c+" ("+f+")")
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("reason code %s has no row in docs/troubleshooting.md", m)
	}
}
