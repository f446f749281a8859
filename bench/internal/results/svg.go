package results

import (
	"errors"
	"fmt"
	"html"
	"math"
	"os"
	"strconv"
	"strings"
)

// Series is one line of a [LineChart]: points (X[i], Y[i]), in order.
type Series struct {
	Name string
	X, Y []float64
}

// LineChart is a plain SVG line chart: one or more series over shared axes, with the y axis
// starting at zero, so that a flat line looks flat and a drop looks as big as it is.
type LineChart struct {
	Title, XLabel, YLabel string
	// LogX spaces the x axis logarithmically (session counts 1,000 … 1,000,000); every X
	// must then be positive.
	LogX   bool
	Series []Series
}

const (
	chartW, chartH                     = 640, 360
	padLeft, padRight, padTop, padBott = 70, 20, 40, 70
)

// palette is colour-blind safe (Okabe–Ito).
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"}

// SVG renders the chart. It fails on a series without points or with X and Y of different
// lengths, and on a non-positive X with LogX.
func (c LineChart) SVG() ([]byte, error) {
	if len(c.Series) == 0 {
		return nil, errors.New("results: chart has no series")
	}
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range c.Series {
		if len(s.X) == 0 || len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("results: series %q has %d x and %d y values", s.Name, len(s.X), len(s.Y))
		}
		for i, x := range s.X {
			if c.LogX && x <= 0 {
				return nil, fmt.Errorf("results: series %q: x %v on a log axis", s.Name, x)
			}
			xmin, xmax = math.Min(xmin, c.fx(x)), math.Max(xmax, c.fx(x))
			ymax = math.Max(ymax, s.Y[i])
		}
	}
	if xmax == xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	ystep := niceStep(ymax / 5)
	if ymax <= 0 {
		ystep = 1
	}
	ytop := math.Ceil(ymax/ystep) * ystep
	if ytop == 0 {
		ytop = ystep
	}
	pw, ph := float64(chartW-padLeft-padRight), float64(chartH-padTop-padBott)
	px := func(x float64) float64 { return padLeft + (c.fx(x)-xmin)/(xmax-xmin)*pw }
	py := func(y float64) float64 { return padTop + ph - y/ytop*ph }

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", chartW, chartH, chartW, chartH)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", padLeft, html.EscapeString(c.Title))
	for y := 0.0; y <= ytop+ystep/2; y += ystep {
		p(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", padLeft, chartW-padRight, py(y), py(y))
		p(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", padLeft-6, py(y)+4, formatNum(y))
	}
	for _, x := range c.ticks(xmin, xmax) {
		p(`<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/>`+"\n", px(x), px(x), padTop, chartH-padBott)
		p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px(x), chartH-padBott+16, formatNum(x))
	}
	p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", padLeft+pw/2, chartH-padBott+34, html.EscapeString(c.XLabel))
	p(`<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", padTop+ph/2, html.EscapeString(c.YLabel))
	for i, s := range c.Series {
		col := palette[i%len(palette)]
		var pts []string
		for j := range s.X {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.X[j]), py(s.Y[j])))
		}
		p(`<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", col, strings.Join(pts, " "))
		if len(s.X) <= 20 {
			for j := range s.X {
				p(`<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(s.X[j]), py(s.Y[j]), col)
			}
		}
		lx := padLeft + 10 + i*180
		p(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"/>`, lx, lx+20, chartH-14, chartH-14, col)
		p(`<text x="%d" y="%d">%s</text>`+"\n", lx+26, chartH-10, html.EscapeString(s.Name))
	}
	p("</svg>\n")
	return []byte(b.String()), nil
}

// WriteSVG renders the chart into the file at path.
func (c LineChart) WriteSVG(path string) error {
	data, err := c.SVG()
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// fx maps x to the axis: log10 with LogX.
func (c LineChart) fx(x float64) float64 {
	if c.LogX {
		return math.Log10(x)
	}
	return x
}

// ticks are the x values to label, in data units: powers of ten on a log axis, else about 6
// round values.
func (c LineChart) ticks(lo, hi float64) []float64 {
	var out []float64
	if c.LogX {
		for e := math.Ceil(lo); e <= hi; e++ {
			out = append(out, math.Pow(10, e))
		}
		return out
	}
	step := niceStep((hi - lo) / 6)
	for x := math.Ceil(lo/step) * step; x <= hi+step/1e6; x += step {
		out = append(out, x)
	}
	return out
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// formatNum writes 1500000 as 1.5M, 2000 as 2k, 0.25 as 0.25.
func formatNum(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case a >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	default:
		return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
	}
}
