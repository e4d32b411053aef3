package plots

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"
	"sort"
	"strconv"
	"strings"

	xfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/inferbench/inferbench/internal/report"
)

// Chart size: 16×10 cm at 192 dpi is 1209×756 pixels, legible on screen and
// still readable when a README shrinks it to half width.
const (
	chartWidth  = 16 * vg.Centimeter
	chartHeight = 10 * vg.Centimeter
	chartDPI    = 192
)

// File names of the charts.
const (
	ThroughputPNG  = "throughput.png"
	LatencyPNG     = "latency.png"
	ParetoPNG      = "pareto.png"
	LatencyRatePNG = "latency-rate.png"
	GoodputPNG     = "goodput.png"
)

// Titles are the charts' titles by file name, for a page that shows them
// (report.html).
var Titles = map[string]string{
	ThroughputPNG:  "Output throughput vs concurrency",
	LatencyPNG:     "Latency vs concurrency",
	ParetoPNG:      "System vs per-user throughput (Pareto steps)",
	LatencyRatePNG: "Open-loop latency vs arrival rate",
	GoodputPNG:     "Goodput under the SLO vs load",
}

// SimulatedMark is printed on every chart of simulated engines.
const SimulatedMark = "SIMULATED ENGINES — not measurements of real engines"

// palette is the Okabe–Ito colour-blind-safe palette (without yellow, which
// is unreadable on white). Engines take colours in sorted-name order.
var palette = []color.RGBA{
	{0x00, 0x72, 0xB2, 0xFF}, // blue
	{0xD5, 0x5E, 0x00, 0xFF}, // vermillion
	{0x00, 0x9E, 0x73, 0xFF}, // bluish green
	{0xCC, 0x79, 0xA7, 0xFF}, // reddish purple
	{0xE6, 0x9F, 0x00, 0xFF}, // orange
	{0x56, 0xB4, 0xE9, 0xFF}, // sky blue
	{0x00, 0x00, 0x00, 0xFF}, // black
}

// EngineColor returns the colour of the i-th engine in sorted order.
func EngineColor(i int) color.RGBA { return palette[i%len(palette)] }

var (
	darkGrey = color.RGBA{0x33, 0x33, 0x33, 0xFF}
	midGrey  = color.RGBA{0x88, 0x88, 0x88, 0xFF}
	markRed  = color.RGBA{0xC0, 0x00, 0x00, 0xFF}
)

// SkipError says that a chart, or a part of one, was left out, and why. Render
// and Generate return these as warnings, not failures.
type SkipError struct {
	// Plot is the chart's file name.
	Plot string
	// Reason says what was left out and why.
	Reason string
}

func (e *SkipError) Error() string { return e.Plot + ": " + e.Reason }

// Image is one rendered chart.
type Image struct {
	// Name is the file name, e.g. "throughput.png".
	Name string
	// PNG is the encoded image.
	PNG []byte
}

// figure is a chart before rasterisation: the plot plus the text drawn
// around it. lines records each engine's data lines for tests, named the
// same lines by what they show.
type figure struct {
	name   string
	title  string
	sub    string
	banner string
	footer []string
	plot   *plot.Plot
	// panels are further plots drawn right of plot, side by side.
	panels []*plot.Plot
	// width, when set, replaces chartWidth.
	width vg.Length
	// side, when set, is a legend drawn in a column right of the plots,
	// where it hides no data.
	side  *plot.Legend
	lines map[string][]*plotter.Line
	named map[string]*plotter.Line
	bars  map[string]*plotter.YErrorBars
	// marks are the SLO states of a series' markers, named like named.
	marks map[string][]sloState
	// ylabel, when set, is drawn by the figure instead of the plot: gonum
	// places the y label's glyph box at the arithmetic mid-range, which on a
	// log axis lies near the top and shrinks the data area for nothing.
	ylabel string
}

// Render draws the charts into memory: throughput.png, latency.png and
// pareto.png from closed-loop (concurrency=N) results, latency-rate.png from
// open-loop (rate=R) results, and goodput.png from results that carry
// -slo's goodput-req/s. A chart whose results or units are absent, or
// points that cannot be drawn (a zero latency on a log axis), are left out
// and reported in warnings (*SkipError). err is non-nil only when the
// results are closed loop and the throughput chart cannot be drawn, or
// when no chart at all can be drawn.
func Render(d *Data) (images []Image, warnings []error, err error) {
	figs, warnings, err := figures(d)
	if err != nil {
		return nil, warnings, err
	}
	for _, f := range figs {
		png, err := f.render()
		if err != nil {
			return nil, warnings, fmt.Errorf("plots: %s: %w", f.name, err)
		}
		images = append(images, Image{Name: f.name, PNG: png})
	}
	return images, warnings, nil
}

// figures builds every chart that can be built.
func figures(d *Data) ([]*figure, []error, error) {
	var warnings []error
	var figs []*figure
	closed := []func(*Data) (*figure, []error){latencyFigure, paretoFigure}
	if len(d.Levels()) > 0 {
		tp, err := throughputFigure(d)
		if err != nil {
			return nil, nil, err
		}
		figs = append(figs, tp)
	} else {
		closed = nil
		warnings = append(warnings, &SkipError{ThroughputPNG + ", " + LatencyPNG + ", " + ParetoPNG,
			"no closed-loop (concurrency=N) results: not drawn"})
	}
	for _, build := range append(closed, latencyRateFigure, goodputFigure) {
		f, ws := build(d)
		warnings = append(warnings, ws...)
		if f != nil {
			figs = append(figs, f)
		}
	}
	if d.TraceResults > 0 {
		warnings = append(warnings, &SkipError{"trace", fmt.Sprintf("%d trace replay (trace=SPEEDx) results not plotted: a replay has no concurrency or rate to put on an axis", d.TraceResults)})
	}
	if len(figs) == 0 {
		return nil, warnings, fmt.Errorf("plots: no chart can be drawn: %w", errors.Join(warnings...))
	}
	return figs, warnings, nil
}

// sans returns the sans-serif face at a size (gonum's default is serif).
func sans(size float64, bold bool) font.Font {
	f := font.Font{Typeface: "Liberation", Variant: "Sans", Size: vg.Points(size)}
	if bold {
		f.Weight = xfont.WeightBold
	}
	return f
}

// newPlot returns a plot with sans-serif fonts sized for 16×10 cm.
func newPlot() *plot.Plot {
	p := plot.New()
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(11, false)
		a.Tick.Label.Font = sans(10, false)
	}
	styleLegend(&p.Legend)
	p.Add(plotter.NewGrid())
	return p
}

// styleLegend sets a legend's font and spacing for 16×10 cm.
func styleLegend(l *plot.Legend) {
	l.TextStyle.Font = sans(10, false)
	l.Padding = vg.Points(2)
	l.ThumbnailWidth = vg.Points(24)
}

// newSideLegend returns a legend for figure.side.
func newSideLegend() *plot.Legend {
	l := plot.NewLegend()
	styleLegend(&l)
	l.Top, l.Left = true, true
	return &l
}

// header returns the chart's subtitle: the run configuration.
func header(d *Data) string {
	var parts []string
	if d.Config.Model != "" {
		parts = append(parts, "model "+d.Config.Model)
	}
	if d.Config.InputTokens != "" || d.Config.OutputTokens != "" {
		parts = append(parts, fmt.Sprintf("input %s / output %s tokens", orUnknown(d.Config.InputTokens), orUnknown(d.Config.OutputTokens)))
	}
	if d.Config.Workload != "" {
		parts = append(parts, "workload: "+d.Config.Workload)
	}
	if len(parts) == 0 {
		return "model and workload not recorded in the input files"
	}
	return strings.Join(parts, " · ")
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// newFigure fills the parts every chart shares.
func newFigure(d *Data, name, title string) *figure {
	f := &figure{name: name, title: title, sub: header(d), plot: newPlot(),
		lines: map[string][]*plotter.Line{}, named: map[string]*plotter.Line{}, bars: map[string]*plotter.YErrorBars{},
		marks: map[string][]sloState{}}
	if d.Config.Simulated {
		f.banner = SimulatedMark
	}
	return f
}

// samplesNote says what a line and its bars are. withCI is set for charts
// that draw CI bars where they exist.
func samplesNote(d *Data, withCI bool) string {
	lo, hi := d.SampleRange()
	return samplesNoteRange(lo, hi, withCI)
}

// samplesNoteRange is samplesNote for points of lo to hi samples.
func samplesNoteRange(lo, hi int, withCI bool) string {
	n := strconv.Itoa(hi)
	if lo != hi {
		n = fmt.Sprintf("%d–%d", lo, hi)
	}
	switch {
	case !withCI:
		return fmt.Sprintf("Points: median of n=%s runs per level.", n)
	case lo >= 6:
		return fmt.Sprintf("Line: median of n=%s runs per level; bars: 95 %% CI of the median (benchstat's method).", n)
	case hi >= 6:
		return fmt.Sprintf("Line: median of n=%s runs per level; bars: 95 %% CI of the median where n ≥ 6 (none where fewer).", n)
	default:
		return fmt.Sprintf("Line: median of n=%s runs per level; no CI (a 95 %% CI needs n ≥ 6 runs).", n)
	}
}

// xy is a plotter.XYer and plotter.YErrorer over points.
type xy struct {
	x, y, lo, hi []float64
}

func (p *xy) add(x, y, lo, hi float64) {
	p.x, p.y, p.lo, p.hi = append(p.x, x), append(p.y, y), append(p.lo, lo), append(p.hi, hi)
}
func (p *xy) Len() int                        { return len(p.x) }
func (p *xy) XY(i int) (float64, float64)     { return p.x[i], p.y[i] }
func (p *xy) YError(i int) (float64, float64) { return p.y[i] - p.lo[i], p.hi[i] - p.y[i] }

// levelTicks marks each concurrency level present on a log x axis.
func levelTicks(levels []int) plot.ConstantTicks {
	var ticks plot.ConstantTicks
	for _, c := range levels {
		ticks = append(ticks, plot.Tick{Value: float64(c), Label: strconv.Itoa(c)})
	}
	return ticks
}

// kTicks labels about five evenly spaced values of a linear axis in 1, 2,
// 2.5 or 5 steps (gonum's default labels two or three), "5k", "10k", … once
// values reach a thousand.
var kTicks = plot.TickerFunc(func(min, max float64) []plot.Tick {
	if ts := niceTicks(min, max); ts != nil {
		return ts
	}
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = kLabel(ts[i].Value)
		}
	}
	return ts
})

// niceTicks are the labelled ticks of kTicks, or nil when the range is
// degenerate (empty, not finite, or too narrow for its magnitude).
func niceTicks(min, max float64) []plot.Tick {
	span := max - min
	if !(span > 0) || math.IsInf(span, 0) {
		return nil
	}
	raw := span / 5
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * p
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*p >= raw {
			step = m * p
			break
		}
	}
	first, last := math.Ceil(min/step), math.Floor(max/step)
	if !(last-first >= 1) || last-first > 20 {
		return nil
	}
	var ts []plot.Tick
	for k := first; k <= last; k++ {
		// Through text and back: 3 × 0.1 is 0.30000000000000004.
		v, _ := strconv.ParseFloat(strconv.FormatFloat(k*step, 'g', 12, 64), 64)
		ts = append(ts, plot.Tick{Value: v, Label: kLabel(v)})
		if k+0.5 <= last {
			ts = append(ts, plot.Tick{Value: (k + 0.5) * step}) // a minor tick
		}
	}
	return ts
}

// kLabel formats v compactly: 950, 1.5k, 15k, 2M.
func kLabel(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case a >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
}

// logX sets a log concurrency axis with a little room either side.
func logX(p *plot.Plot, levels []int) {
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = levelTicks(levels)
	p.X.Min = float64(levels[0]) / 1.35
	p.X.Max = float64(levels[len(levels)-1]) * 1.35
	p.X.Label.Text = "concurrent requests (log scale)"
}

// styleLine colours a line and its points for engine i.
func styleLine(l *plotter.Line, s *plotter.Scatter, i int) {
	l.Color = EngineColor(i)
	l.Width = vg.Points(1.6)
	if s != nil {
		s.Color = EngineColor(i)
		s.Radius = vg.Points(2.6)
		s.Shape = draw.CircleGlyph{}
	}
}

// throughputFigure draws output tok/s against concurrency.
func throughputFigure(d *Data) (*figure, error) {
	if !d.HasUnit(UnitTokPerSec) {
		return nil, fmt.Errorf("plots: %s: no %s values in the input, nothing to draw", ThroughputPNG, UnitTokPerSec)
	}
	f := newFigure(d, ThroughputPNG, "Output throughput vs concurrency")
	p := f.plot
	logX(p, d.Levels())
	p.Y.Label.Text = "output tokens/s (steady state)"
	p.Y.Tick.Marker = kTicks
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), -vg.Points(4)

	ymax := 0.0
	for i, e := range d.Engines {
		pts := d.Series(UnitTokPerSec, e)
		if len(pts) == 0 {
			continue
		}
		var line, bars xy
		for _, pt := range pts {
			line.add(float64(pt.Concurrency), pt.Median, pt.Median, pt.Median)
			ymax = max(ymax, pt.Median)
			if pt.HasCI() {
				bars.add(float64(pt.Concurrency), pt.Median, pt.Lo, pt.Hi)
				ymax = max(ymax, pt.Hi)
			}
		}
		l, s, err := plotter.NewLinePoints(&line)
		if err != nil {
			return nil, fmt.Errorf("plots: %s: engine %s: %w", ThroughputPNG, e, err)
		}
		styleLine(l, s, i)
		p.Add(l, s)
		if bars.Len() > 0 {
			eb, err := plotter.NewYErrorBars(&bars)
			if err != nil {
				return nil, fmt.Errorf("plots: %s: engine %s: %w", ThroughputPNG, e, err)
			}
			eb.Color = EngineColor(i)
			eb.Width = vg.Points(1.2)
			eb.CapWidth = vg.Points(7)
			p.Add(eb)
			f.bars[e] = eb
		}
		p.Legend.Add(e, l, s)
		f.lines[e] = append(f.lines[e], l)
	}
	f.footer = append(f.footer, samplesNote(d, true))
	if ratio, note := ratioLabels(d); ratio != nil {
		p.Add(ratio)
		f.footer = append(f.footer, note)
		p.X.Min = float64(d.Levels()[0]) / 1.8 // room for the first label
	}
	p.Y.Min = 0
	p.Y.Max = math.Max(ymax*1.18, 1) // room above the highest point for the ratio labels
	return f, nil
}

// ratioLabels annotates each level where the first two engines (in sorted
// order) both have tok/s with the ratio of their medians. The engine with the
// larger geometric mean over those levels is the numerator, so the labels
// read "how many times faster".
func ratioLabels(d *Data) (*plotter.Labels, string) {
	if len(d.Engines) < 2 {
		return nil, ""
	}
	a, b := d.Engines[0], d.Engines[1]
	pa, pb := byLevel(d.Series(UnitTokPerSec, a)), byLevel(d.Series(UnitTokPerSec, b))
	var levels []int
	logSum := 0.0
	for c, x := range pa {
		if y, ok := pb[c]; ok && x.Median > 0 && y.Median > 0 {
			levels = append(levels, c)
			logSum += math.Log(x.Median / y.Median)
		}
	}
	if len(levels) == 0 {
		return nil, ""
	}
	sort.Ints(levels)
	num, den, pnum, pden := a, b, pa, pb
	if logSum < 0 {
		num, den, pnum, pden = b, a, pb, pa
	}
	var lab plotter.XYLabels
	for _, c := range levels {
		top := 0.0
		for _, pt := range []Point{pnum[c], pden[c]} {
			top = max(top, pt.Median)
			if pt.HasCI() {
				top = max(top, pt.Hi)
			}
		}
		lab.XYs = append(lab.XYs, plotter.XY{X: float64(c), Y: top})
		lab.Labels = append(lab.Labels, "×"+ratioString(pnum[c].Median/pden[c].Median))
	}
	l, err := plotter.NewLabels(lab)
	if err != nil {
		return nil, ""
	}
	for i := range l.TextStyle {
		l.TextStyle[i].Font = sans(9.5, true)
		l.TextStyle[i].Color = darkGrey
		// Up and to the left of the level: the lines leave each point
		// towards the upper right, so a centred label would sit on them.
		l.TextStyle[i].XAlign = draw.XRight
		l.TextStyle[i].YAlign = draw.YBottom
	}
	l.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(4)}
	return l, fmt.Sprintf("×r above each level: %s ÷ %s, ratio of median tok/s.", num, den)
}

// ratioString formats a ratio with two significant decimals below 10.
func ratioString(r float64) string {
	if r >= 9.95 {
		return strconv.FormatFloat(r, 'f', 0, 64)
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}

func byLevel(pts []Point) map[int]Point {
	m := make(map[int]Point, len(pts))
	for _, p := range pts {
		m[p.Concurrency] = p
	}
	return m
}

// latencyMetric is one line style of the latency chart.
type latencyMetric struct {
	unit, label string
	dashes      []vg.Length
	// pooled picks the metric's percentile from pooled statistics.
	pooled func(report.Pooled) report.Tail
}

var latencyMetrics = []latencyMetric{
	{UnitTTFTP50, "TTFT p50", nil, func(p report.Pooled) report.Tail { return p.TTFT.P50 }},
	{UnitTTFTP99, "TTFT p99", []vg.Length{vg.Points(7), vg.Points(3)}, func(p report.Pooled) report.Tail { return p.TTFT.P99 }},
	{UnitITLP50, "ITL p50", []vg.Length{vg.Points(1.5), vg.Points(2.5)}, func(p report.Pooled) report.Tail { return p.ITL.P50 }},
}

// latencyPoint is one drawn latency value in ms, with its interval when it
// has one.
type latencyPoint struct {
	c             int
	ms, lo, hi    float64
	ci, fromPool  bool
	uncertified   bool // a pooled tail whose sample cannot bound it: not drawn
	n, needN      int
	engine, label string
}

// latencyPoints are engine e's values of m by level: the pooled percentile
// where the summary has the level (its 95 % CI as the interval), otherwise
// the median over the result lines that carry the unit.
func latencyPoints(d *Data, m latencyMetric, e string) []latencyPoint {
	var out []latencyPoint
	seen := map[int]bool{}
	for _, c := range d.Levels() {
		p, ok := d.pooled(e, c)
		if !ok {
			continue
		}
		seen[c] = true
		t := m.pooled(p)
		if t.N == 0 {
			continue
		}
		lp := latencyPoint{c: c, ms: float64(t.Value) / 1e6, fromPool: true, n: t.N, needN: t.NeedN, engine: e, label: m.label}
		if t.P > 50 && !t.Certified {
			lp.uncertified = true
		}
		if t.Lo != nil && t.Hi != nil {
			lp.ci, lp.lo, lp.hi = true, float64(*t.Lo)/1e6, float64(*t.Hi)/1e6
		}
		out = append(out, lp)
	}
	for _, pt := range d.Series(m.unit, e) {
		if seen[pt.Concurrency] {
			continue
		}
		out = append(out, latencyPoint{c: pt.Concurrency, ms: pt.Median / 1e6, engine: e, label: m.label})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].c < out[j].c })
	return out
}

// latencyFigure draws TTFT p50/p99 and ITL p50 in ms on a log axis: the
// pooled percentiles of the run's summary.json with their 95 % CIs where it
// was given, the median of the per-sample values elsewhere.
func latencyFigure(d *Data) (*figure, []error) {
	var warnings []error
	var metrics []latencyMetric
	for _, m := range latencyMetrics {
		if d.HasUnit(m.unit) || d.Pooled != nil {
			metrics = append(metrics, m)
		} else {
			warnings = append(warnings, &SkipError{LatencyPNG, "no " + m.unit + " values: " + m.label + " left out"})
		}
	}
	if len(metrics) == 0 {
		return nil, []error{&SkipError{LatencyPNG, "no TTFT or ITL values in the input: chart not drawn"}}
	}
	f := newFigure(d, LatencyPNG, "Latency vs concurrency")
	p := f.plot
	logX(p, d.Levels())
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{}
	f.ylabel = "latency (ms, log scale)"
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), -vg.Points(4)

	lo, hi := math.Inf(1), math.Inf(-1)
	pooledPts, withCI := 0, 0
	var uncertified []string
	for i, e := range d.Engines {
		drawn := false
		for _, m := range metrics {
			var line, bars xy
			for _, pt := range latencyPoints(d, m, e) {
				if pt.uncertified {
					uncertified = append(uncertified, fmt.Sprintf("%s c=%d (n=%d)", e, pt.c, pt.n))
					continue
				}
				if pt.ms <= 0 {
					warnings = append(warnings, &SkipError{LatencyPNG, fmt.Sprintf("%s %s at concurrency %d is 0 (no successful request?): point left out of the log axis", e, m.label, pt.c)})
					continue
				}
				line.add(float64(pt.c), pt.ms, pt.ms, pt.ms)
				lo, hi = min(lo, pt.ms), max(hi, pt.ms)
				if pt.fromPool {
					pooledPts++
				}
				if pt.ci && pt.lo > 0 {
					bars.add(float64(pt.c), pt.ms, pt.lo, pt.hi)
					lo, hi = min(lo, pt.lo), max(hi, pt.hi)
					withCI++
				}
			}
			if line.Len() == 0 {
				continue
			}
			l, s, err := plotter.NewLinePoints(&line)
			if err != nil {
				warnings = append(warnings, &SkipError{LatencyPNG, fmt.Sprintf("%s %s: %v", e, m.label, err)})
				continue
			}
			styleLine(l, s, i)
			l.Dashes = m.dashes
			s.Radius = vg.Points(2)
			p.Add(l, s)
			if bars.Len() > 0 {
				if eb, err := plotter.NewYErrorBars(&bars); err == nil {
					eb.Color = EngineColor(i)
					eb.Width = vg.Points(1)
					eb.CapWidth = vg.Points(5)
					p.Add(eb)
					f.bars[e+" "+m.label] = eb
				}
			}
			f.lines[e] = append(f.lines[e], l)
			if !drawn {
				p.Legend.Add(e, swatch(i))
				drawn = true
			}
		}
	}
	if math.IsInf(lo, 0) {
		return nil, append(warnings, &SkipError{LatencyPNG, "no positive latency values: chart not drawn"})
	}
	for _, m := range metrics {
		p.Legend.Add(m.label, metricKey(m))
	}
	p.Y.Min, p.Y.Max = lo/1.5, hi*2.5 // headroom for the legend
	if pooledPts > 0 {
		note := "Percentiles pooled over all runs' requests"
		if withCI > 0 {
			note += "; bars: 95 % CIs (order statistics)"
		}
		f.footer = append(f.footer, note+". ITL: per-token gap.")
	} else {
		f.footer = append(f.footer, samplesNote(d, false)+" TTFT: time to first token; ITL: gap between output chunks per token.")
	}
	if len(uncertified) > 0 {
		need := report.MinForCI(99, report.Confidence)
		f.footer = append(f.footer, fmt.Sprintf("TTFT p99 left out at %d engine-levels: too few requests to bound it (needs n ≥ %d).", len(uncertified), need))
		warnings = append(warnings, &SkipError{LatencyPNG, fmt.Sprintf("TTFT p99 left out at %d engine-levels with fewer than %d pooled requests (%s)", len(uncertified), need, strings.Join(uncertified[:min(3, len(uncertified))], ", ")+ellipsis(len(uncertified) > 3))})
	}
	return f, warnings
}

// swatch is a legend thumbnail in an engine's colour.
func swatch(i int) plot.Thumbnailer {
	l := &plotter.Line{LineStyle: draw.LineStyle{Color: EngineColor(i), Width: vg.Points(4)}}
	return l
}

// metricKey is a legend thumbnail showing a metric's line style.
func metricKey(m latencyMetric) plot.Thumbnailer {
	return &plotter.Line{LineStyle: draw.LineStyle{Color: darkGrey, Width: vg.Points(1.6), Dashes: m.dashes}}
}

// logTicks labels 1-2-5 steps on a log axis spanning up to four decades,
// and powers of ten (at most about eight) on wider ones.
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	lo, hi := math.Floor(math.Log10(min)), math.Ceil(math.Log10(max))
	mantissas, step := []float64{1, 2, 5}, 1.0
	if hi-lo > 4 {
		mantissas, step = []float64{1}, math.Ceil((hi-lo)/8)
	}
	ts := logTicksOf(lo, hi, step, mantissas, min, max)
	if len(ts) < 3 && hi-lo <= 2 { // under a decade or so: finer steps
		ts = logTicksOf(lo, hi, step, []float64{1, 1.5, 2, 3, 4, 5, 6, 8}, min, max)
	}
	if len(ts) < 2 { // a narrow range: fall back to linear ticks
		return plot.DefaultTicks{}.Ticks(min, max)
	}
	return ts
}

// logTicksOf are the values m·10^e in [min, max] for e from lo to hi.
func logTicksOf(lo, hi, step float64, mantissas []float64, min, max float64) []plot.Tick {
	var ts []plot.Tick
	for e := lo; e <= hi; e += step {
		for _, m := range mantissas {
			v := m * math.Pow(10, e)
			if v < min || v > max {
				continue
			}
			ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
		}
	}
	return ts
}

// labelSide is where a point label sits relative to its point.
type labelSide struct {
	xa     text.XAlignment
	ya     text.YAlignment
	offset vg.Point
}

// labelSides are tried in order: up-right, down-left, up-left, down-right.
var labelSides = []labelSide{
	{draw.XLeft, draw.YBottom, vg.Point{X: vg.Points(4), Y: vg.Points(3)}},
	{draw.XRight, draw.YTop, vg.Point{X: -vg.Points(4), Y: -vg.Points(3)}},
	{draw.XRight, draw.YBottom, vg.Point{X: -vg.Points(4), Y: vg.Points(3)}},
	{draw.XLeft, draw.YTop, vg.Point{X: vg.Points(4), Y: -vg.Points(3)}},
}

// splitLabels assigns each label the first side in labelSides where no
// earlier label on that side is within 6 % of the axis ranges, so labels of
// crowded points (the low levels) do not print over each other.
func splitLabels(lab plotter.XYLabels, xr, yr float64) []plotter.XYLabels {
	const near = 0.06
	out := make([]plotter.XYLabels, len(labelSides))
	for j, pt := range lab.XYs {
		side := 0
	sides:
		for k := range out {
			for _, q := range out[k].XYs {
				if math.Abs(pt.X-q.X) < near*xr && math.Abs(pt.Y-q.Y) < near*yr {
					continue sides
				}
			}
			side = k
			break
		}
		out[side].XYs = append(out[side].XYs, pt)
		out[side].Labels = append(out[side].Labels, lab.Labels[j])
	}
	return out
}

// Text layout around the plot, in points.
const (
	titleSize  = 13
	subSize    = 9.5
	bannerSize = 11
	footerSize = 8.5
	lineGap    = 1.35
	margin     = 5
)

func textStyle(f font.Font, c color.Color) text.Style {
	return text.Style{Color: c, Font: f, XAlign: draw.XCenter, YAlign: draw.YTop, Handler: plot.DefaultTextHandler}
}

// draw lays out the header (title, configuration, simulated mark), the plot
// and the footer notes on c.
func (f *figure) draw(c draw.Canvas) {
	type row struct {
		txt string
		sty text.Style
	}
	head := []row{{f.title, textStyle(sans(titleSize, true), color.Black)}}
	if f.sub != "" {
		head = append(head, row{f.sub, textStyle(sans(subSize, false), darkGrey)})
	}
	if f.banner != "" {
		head = append(head, row{f.banner, textStyle(sans(bannerSize, true), markRed)})
	}
	var foot []row
	for _, n := range f.footer {
		foot = append(foot, row{n, textStyle(sans(footerSize, false), darkGrey)})
	}
	y := c.Max.Y - vg.Points(margin)
	midX := (c.Min.X + c.Max.X) / 2
	for _, r := range head {
		c.FillText(r.sty, vg.Point{X: midX, Y: y}, r.txt)
		y -= r.sty.Font.Size * lineGap
	}
	headH := c.Max.Y - y
	footH := vg.Points(margin)
	for _, r := range foot {
		footH += r.sty.Font.Size * lineGap
	}
	y = c.Min.Y + footH - vg.Points(margin)/2
	for _, r := range foot {
		c.FillText(r.sty, vg.Point{X: midX, Y: y}, r.txt)
		y -= r.sty.Font.Size * lineGap
	}
	inner := draw.Crop(c, vg.Points(margin), -vg.Points(margin+4), footH, -headH)
	if f.side != nil {
		r := f.side.Rectangle(inner)
		w := r.Max.X - r.Min.X + vg.Points(10)
		f.side.Draw(draw.Crop(inner, inner.Max.X-inner.Min.X-w+vg.Points(10), 0, 0, -vg.Points(16)))
		inner = draw.Crop(inner, 0, -w, 0, 0)
	}
	if f.ylabel != "" {
		// Also the shared y label of side-by-side panels: the first
		// panel's own label would sit inside its tile.
		f.drawYLabel(&inner)
	}
	if len(f.panels) > 0 {
		all := append([]*plot.Plot{f.plot}, f.panels...)
		tiles := draw.Tiles{Rows: 1, Cols: len(all), PadX: vg.Points(10)}
		for i, p := range all {
			p.Draw(tiles.At(inner, i, 0))
		}
		return
	}
	f.plot.Draw(inner)
}

// drawYLabel draws f.ylabel rotated at the left of c and narrows c by it.
func (f *figure) drawYLabel(c *draw.Canvas) {
	sty := f.plot.Y.Label.TextStyle
	h := sty.Height(f.ylabel)
	rot := sty
	rot.Rotation += math.Pi / 2
	descent := sty.FontExtents().Descent
	c.FillText(rot, vg.Point{X: c.Min.X + h - descent, Y: c.Center().Y}, f.ylabel)
	*c = draw.Crop(*c, h+f.plot.Y.Label.Padding+vg.Points(3), 0, 0, 0) // clear of the tick labels
}

// render rasterises the figure to PNG.
func (f *figure) render() (png []byte, err error) {
	defer func() {
		// gonum panics on some degenerate inputs (e.g. a log axis over
		// non-positive values); turn that into an error, never a crash.
		if r := recover(); r != nil {
			png, err = nil, fmt.Errorf("drawing failed: %v", r)
		}
	}()
	w := chartWidth
	if f.width > 0 {
		w = f.width
	}
	img := vgimg.NewWith(vgimg.UseWH(w, chartHeight), vgimg.UseDPI(chartDPI))
	f.draw(draw.New(img))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func ellipsis(more bool) string {
	if more {
		return ", …"
	}
	return ""
}
