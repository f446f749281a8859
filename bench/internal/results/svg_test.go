package results

import (
	"encoding/xml"
	"strings"
	"testing"
)

func TestLineChartIsWellFormedSVG(t *testing.T) {
	c := LineChart{
		Title: "warm requests <by sessions stored>", XLabel: "sessions stored", YLabel: "req/s", LogX: true,
		Series: []Series{{Name: "memory", X: []float64{1e3, 1e5, 1e6}, Y: []float64{165000, 160000, 158000}}},
	}
	data, err := c.SVG()
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(strings.NewReader(string(data)))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("not well-formed XML: %v\n%s", err, data)
			}
			break
		}
	}
	s := string(data)
	for _, want := range []string{"&lt;by sessions stored&gt;", ">1k<", ">1M<", "<polyline", ">memory<"} {
		if !strings.Contains(s, want) {
			t.Errorf("the SVG lacks %q", want)
		}
	}
}

func TestLineChartRefusesBadSeries(t *testing.T) {
	for name, c := range map[string]LineChart{
		"no series":      {},
		"lengths differ": {Series: []Series{{Name: "a", X: []float64{1, 2}, Y: []float64{1}}}},
		"zero on log x":  {LogX: true, Series: []Series{{Name: "a", X: []float64{0, 10}, Y: []float64{1, 2}}}},
	} {
		if _, err := c.SVG(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestFormatNum(t *testing.T) {
	for v, want := range map[float64]string{1500000: "1.5M", 20000: "20k", 2000: "2k", 950: "950", 0.25: "0.25", 0: "0"} {
		if got := formatNum(v); got != want {
			t.Errorf("formatNum(%v) = %q, want %q", v, got, want)
		}
	}
}
