// Package results is what the benchmark programs share to write bench/RESULTS.md: each program
// owns one named section of the file and replaces only that ([WriteSection]), so `make bench`,
// `make bench-scale`, `make soak` and `make chaos` can run in any order and the file keeps the
// latest result of each; and the SVG line charts the sections embed ([LineChart]).
package results

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Title is the first line of a RESULTS.md that WriteSection creates.
const Title = "# trustgate benchmark results\n\n" +
	"Each section below is written by one program (named in it) and replaced only by that program's next run; " +
	"how to run them and read them: [README.md](README.md).\n"

func markers(name string) (begin, end string) {
	return "<!-- begin " + name + " (generated; do not edit by hand) -->\n", "<!-- end " + name + " -->\n"
}

// WriteSection replaces the section called name in the markdown file at path with body, keeping
// every other section. A section missing from the file is appended; a missing file is created
// with [Title]. The name must be a single word; body should start with a heading.
func WriteSection(path, name, body string) error {
	if name == "" || strings.ContainsAny(name, " \n<>-") {
		return fmt.Errorf("results: bad section name %q", name)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = []byte(Title), nil
	}
	if err != nil {
		return err
	}
	out, err := replaceSection(data, name, body)
	if err != nil {
		return fmt.Errorf("results: %s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}

func replaceSection(data []byte, name, body string) ([]byte, error) {
	begin, end := markers(name)
	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	block := begin + body + end
	i := bytes.Index(data, []byte(begin))
	if i < 0 {
		if bytes.Contains(data, []byte(end)) {
			return nil, fmt.Errorf("section %q has an end marker and no begin marker", name)
		}
		out := bytes.TrimRight(data, "\n")
		out = append(out, "\n\n"...)
		return append(out, block...), nil
	}
	j := bytes.Index(data[i:], []byte(end))
	if j < 0 {
		return nil, fmt.Errorf("section %q has a begin marker and no end marker", name)
	}
	j += i + len(end)
	out := make([]byte, 0, len(data)-(j-i)+len(block))
	out = append(out, data[:i]...)
	out = append(out, block...)
	return append(out, data[j:]...), nil
}
