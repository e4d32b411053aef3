package plots

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/inferbench/inferbench/internal/report"
)

// Widths of charts with a legend column: one panel, and two side by side.
const (
	onePanelWidth = 20 * vg.Centimeter
	twoPanelWidth = 26 * vg.Centimeter
)

// sendShortfall is the share of the schedule's rate below which the
// latency-vs-rate chart says that an engine's requests were sent slower
// than scheduled: Poisson arrivals of one seed give every engine the same
// schedule, so only the client or -max-concurrency holding arrivals back
// makes achieved-req/s fall below scheduled-req/s.
const sendShortfall = 0.9

// rateLine is one line style of latency-rate.png: a percentile of TTFT or
// E2E, counted from the send or from the intended send.
type rateLine struct {
	unit   string
	p      int
	queued bool
}

func (l rateLine) label() string {
	from := "from the send"
	if l.queued {
		from = "from the intended send"
	}
	return fmt.Sprintf("p%d %s", l.p, from)
}

// dashes: the median solid, the tail dashed.
func (l rateLine) dashes() []vg.Length {
	if l.p == 50 {
		return nil
	}
	return dashed
}

// shape: ● from the send, ▲ from the intended send.
func (l rateLine) shape() draw.GlyphDrawer {
	if l.queued {
		return draw.PyramidGlyph{}
	}
	return draw.CircleGlyph{}
}

// rateLines are the lines latency-rate.png draws for quantity q ("ttft" or
// "e2e"): p50 and one tail, from the send and from the intended send, as
// far as the open-loop lines carry them. The tail is the highest of p99,
// p95 and p90 that the lines carry from both origins, so the two are the
// same percentile: a line carries a tail only when its sample can bound it
// (n ≥ 368 for p99, 36 for p90), so short samples have p90 and no p99.
func rateLines(d *Data, q string) (lines []rateLine, tail int) {
	has := func(queued bool, p int) bool {
		u := fmt.Sprintf("%s-p%d-ns", q, p)
		if queued {
			u = "queued-" + u
		}
		return d.HasRateUnit(u)
	}
	queued := has(true, 50)
	for _, p := range []int{99, 95, 90} {
		if has(false, p) && (!queued || has(true, p)) {
			tail = p
			break
		}
	}
	for _, p := range []int{50, tail} {
		if p == 0 {
			continue
		}
		for _, qd := range []bool{false, true} {
			if has(qd, p) {
				u := fmt.Sprintf("%s-p%d-ns", q, p)
				if qd {
					u = "queued-" + u
				}
				lines = append(lines, rateLine{u, p, qd})
			}
		}
	}
	return lines, tail
}

// shortfall is an engine at a rate whose requests were sent measurably
// slower than their schedule.
type shortfall struct {
	engine              string
	rate                float64
	achieved, scheduled float64 // medians, requests/s
}

// shortfalls are the engine-rates whose median achieved-req/s is below
// sendShortfall × the median scheduled-req/s, by engine and rate.
func shortfalls(d *Data) []shortfall {
	var out []shortfall
	for _, e := range d.Engines {
		sched := byRate(d.RateSeries(UnitScheduled, e))
		for _, a := range d.RateSeries(UnitAchieved, e) {
			s, ok := sched[a.Rate]
			if ok && s.Median > 0 && a.Median < sendShortfall*s.Median {
				out = append(out, shortfall{e, a.Rate, a.Median, s.Median})
			}
		}
	}
	return out
}

func byRate(pts []Point) map[float64]Point {
	m := make(map[float64]Point, len(pts))
	for _, p := range pts {
		m[p.Rate] = p
	}
	return m
}

// msLine is a series of points in ms at x = key(point), with its CI bars
// where a point has one, leaving out points that a log axis cannot show.
func msLine(pts []Point, x func(Point) float64) (line, bars xy, zeros []Point) {
	for _, pt := range pts {
		ms := pt.Median / 1e6
		if !(ms > 0) || math.IsInf(ms, 0) {
			zeros = append(zeros, pt)
			continue
		}
		line.add(x(pt), ms, ms, ms)
		if pt.HasCI() && pt.Lo > 0 {
			bars.add(x(pt), ms, pt.Lo/1e6, pt.Hi/1e6)
		}
	}
	return line, bars, zeros
}

func rateOf(p Point) float64 { return p.Rate }

// latencyRateFigure draws TTFT and E2E (p50 and a tail) against the target
// rate of open-loop results, each from the send and from the intended send,
// one panel per quantity.
func latencyRateFigure(d *Data) (*figure, []error) {
	rates := d.Rates()
	if len(rates) == 0 {
		return nil, []error{&SkipError{LatencyRatePNG, "no open-loop (rate=R) results: chart not drawn (run with -rate=R1,R2,…)"}}
	}
	var warnings []error
	f := newFigure(d, LatencyRatePNG, "Open-loop latency vs arrival rate")
	f.ylabel = "latency (ms, log scale)"
	var panels []*plot.Plot
	var missing []string
	var keys []rateLine // legend entries: unit-free line styles
	tails := map[string]int{}
	queuedDrawn := false
	for _, q := range []struct{ name, label string }{{"ttft", "TTFT"}, {"e2e", "E2E"}} {
		lines, tail := rateLines(d, q.name)
		if len(lines) == 0 {
			warnings = append(warnings, &SkipError{LatencyRatePNG, fmt.Sprintf("no %s values on the open-loop lines: %s panel left out", q.name, q.label)})
			continue
		}
		if tail == 0 {
			warnings = append(warnings, &SkipError{LatencyRatePNG, fmt.Sprintf("no %s tail (p90, p95 or p99) on any open-loop line: %s p50 only (a p90 needs n ≥ %d requests per sample)", q.name, q.label, report.MinForCI(90, report.Confidence))})
		}
		tails[q.label] = tail
		p := newPlot()
		p.Title.Text = q.label
		p.Title.TextStyle.Font = sans(11, true)
		logRateX(p, rates)
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
		lo, hi := math.Inf(1), math.Inf(-1)
		for i, e := range d.Engines {
			p50 := byRate(d.RateSeries(q.name+"-p50-ns", e))
			for _, l := range lines {
				pts := d.RateSeries(l.unit, e)
				if l.p != 50 {
					have := byRate(pts)
					for r := range p50 {
						if _, ok := have[r]; !ok {
							// Once per engine-rate, whichever origin lacks it.
							if m := fmt.Sprintf("%s %s p%d at %g/s", e, q.label, l.p, r); !slices.Contains(missing, m) {
								missing = append(missing, m)
							}
						}
					}
				}
				line, bars, zeros := msLine(pts, rateOf)
				for _, z := range zeros {
					warnings = append(warnings, &SkipError{LatencyRatePNG, fmt.Sprintf("%s %s %s at rate %g is %g ms: point left out of the log axis", e, q.label, l.label(), z.Rate, z.Median/1e6)})
				}
				if line.Len() == 0 {
					continue
				}
				pl, s, err := plotter.NewLinePoints(&line)
				if err != nil {
					warnings = append(warnings, &SkipError{LatencyRatePNG, fmt.Sprintf("%s %s %s: %v", e, q.label, l.label(), err)})
					continue
				}
				styleLine(pl, s, i)
				pl.Dashes = l.dashes()
				s.Shape = l.shape()
				s.Radius = vg.Points(2.4)
				if l.queued {
					pl.Width = vg.Points(2.2)
					queuedDrawn = true
				} else {
					pl.Width = vg.Points(1.2)
				}
				p.Add(pl, s)
				for j := range line.Len() {
					lo, hi = min(lo, line.y[j]), max(hi, line.y[j])
				}
				if bars.Len() > 0 {
					if eb, err := plotter.NewYErrorBars(&bars); err == nil {
						eb.Color = EngineColor(i)
						eb.Width = vg.Points(1)
						eb.CapWidth = vg.Points(5)
						p.Add(eb)
						f.bars[e+" "+l.unit] = eb
						for j := range bars.Len() {
							lo, hi = min(lo, bars.lo[j]), max(hi, bars.hi[j])
						}
					}
				}
				f.lines[e] = append(f.lines[e], pl)
				f.named[e+" "+l.unit] = pl
			}
		}
		if math.IsInf(lo, 0) {
			warnings = append(warnings, &SkipError{LatencyRatePNG, "no positive " + q.label + " values: panel left out"})
			continue
		}
		p.Y.Min, p.Y.Max = lo/1.3, headroom(hi, 1.5) // room for the labels
		for _, l := range lines {
			k := rateLine{p: l.p, queued: l.queued}
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		panels = append(panels, p)
	}
	if len(panels) == 0 {
		return nil, append(warnings, &SkipError{LatencyRatePNG, "no TTFT or E2E values on the open-loop lines: chart not drawn"})
	}
	f.plot, f.panels = panels[0], panels[1:]
	f.width = onePanelWidth
	if len(panels) > 1 {
		f.width = twoPanelWidth
	}
	f.side = newSideLegend()
	for i, e := range d.Engines {
		f.side.Add(e, swatch(i))
	}
	// p50 lines first, then the tails.
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].p < keys[j].p })
	for _, l := range keys {
		w := vg.Points(1.2)
		if l.queued {
			w = vg.Points(2.2)
		}
		f.side.Add(l.label(), styleKey(l.dashes(), w, l.shape())...)
	}

	sf := shortfalls(d)
	if lab := shortfallLabels(d, sf); lab != nil {
		f.plot.Add(lab...)
	}
	note := "x: target rate (rate=R). ● from the send; ▲ from the intended send, the arrival's scheduled instant"
	if queuedDrawn {
		note += " (▲ above ●: waiting to be sent, hidden by a closed loop)."
	} else {
		note += ": these results carry none."
	}
	lo, hi := d.RateSampleRange()
	f.footer = append(f.footer, note, samplesNoteRange(lo, hi, true))
	if len(sf) > 0 {
		var parts []string
		for _, s := range sf {
			parts = append(parts, fmt.Sprintf("%s at %g/s sent %.0f %%", s.engine, s.rate, 100*s.achieved/s.scheduled))
		}
		f.footer = append(f.footer, "Sent behind schedule (median achieved ÷ scheduled req/s): "+strings.Join(parts, ", ")+".")
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		var ps []string
		for _, label := range []string{"TTFT", "E2E"} {
			if t := tails[label]; t > 0 {
				ps = append(ps, fmt.Sprintf("p%d needs n ≥ %d", t, report.MinForCI(float64(t), report.Confidence)))
			}
		}
		f.footer = append(f.footer, fmt.Sprintf("Tails absent from the lines at %d engine-rates (too few requests per sample: %s).", len(missing), strings.Join(uniq(ps), ", ")))
		warnings = append(warnings, &SkipError{LatencyRatePNG, fmt.Sprintf("tails absent from the open-loop lines at %d engine-rates (%s): too few requests per sample", len(missing), strings.Join(missing[:min(3, len(missing))], ", ")+ellipsis(len(missing) > 3))})
	}
	return f, warnings
}

func uniq(ss []string) []string {
	var out []string
	for _, s := range ss {
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// shortfallLabels write "sent N %" in the engine's colour at its TTFT p50
// from the intended send, where the sends fell behind the schedule.
func shortfallLabels(d *Data, sf []shortfall) []plot.Plotter {
	var out []plot.Plotter
	for i, e := range d.Engines {
		at := byRate(d.RateSeries(UnitQueuedTTFT50, e))
		var lab plotter.XYLabels
		for _, s := range sf {
			p, ok := at[s.rate]
			if s.engine != e || !ok || !(p.Median > 0) {
				continue
			}
			lab.XYs = append(lab.XYs, plotter.XY{X: s.rate, Y: p.Median / 1e6})
			lab.Labels = append(lab.Labels, "sent "+strconv.FormatFloat(100*s.achieved/s.scheduled, 'f', 0, 64)+" %")
		}
		if len(lab.Labels) == 0 {
			continue
		}
		l, err := plotter.NewLabels(lab)
		if err != nil {
			continue
		}
		for j := range l.TextStyle {
			l.TextStyle[j].Font = sans(8.5, true)
			l.TextStyle[j].Color = EngineColor(i)
			l.TextStyle[j].XAlign = draw.XRight
			l.TextStyle[j].YAlign = draw.YCenter
		}
		l.Offset = vg.Point{X: -vg.Points(5)}
		out = append(out, l)
	}
	return out
}

// goodputFigure draws goodput-req/s against the load: concurrency for
// closed-loop results, the target rate for open-loop ones (a panel each),
// with the throughput offered or completed for reference and the
// SLO-passing points filled.
func goodputFigure(d *Data) (*figure, []error) {
	closed := d.HasUnit(UnitGoodput) && len(d.Levels()) > 0
	open := d.HasRateUnit(UnitGoodput)
	if !closed && !open {
		return nil, []error{&SkipError{GoodputPNG, "no goodput-req/s values: chart not drawn (run with -slo=…)"}}
	}
	var warnings []error
	f := newFigure(d, GoodputPNG, "Goodput under the SLO vs load")
	f.ylabel = "requests/s"
	var panels []*plot.Plot
	anySLO := false
	if closed {
		p, slo, ws := goodputPanel(d, f, false)
		panels, anySLO, warnings = append(panels, p), anySLO || slo, append(warnings, ws...)
	}
	if open {
		p, slo, ws := goodputPanel(d, f, true)
		panels, anySLO, warnings = append(panels, p), anySLO || slo, append(warnings, ws...)
	}
	leg := newSideLegend()
	for i, e := range d.Engines {
		leg.Add(e, swatch(i))
	}
	leg.Add("goodput", styleKey(nil, vg.Points(1.8), draw.CircleGlyph{})...)
	if closed {
		leg.Add("completed req/s (closed)", styleKey(dashed, vg.Points(1.2), nil)...)
	}
	if open {
		leg.Add("sent req/s (open)", styleKey(dashed, vg.Points(1.2), nil)...)
		leg.Add("target rate", &plotter.Line{LineStyle: draw.LineStyle{Color: midGrey, Width: vg.Points(1.2), Dashes: dotted}})
	}
	if anySLO {
		sloLegend(leg, draw.CircleGlyph{})
	}
	f.plot, f.panels, f.side = panels[0], panels[1:], leg
	f.width = onePanelWidth
	if len(panels) > 1 {
		f.width = twoPanelWidth
	}
	lo, hi := goodputSampleRange(d, closed, open)
	slo := d.Config.SLO
	if slo == "" {
		slo = "not recorded in the input files"
	}
	f.footer = append(f.footer,
		"SLO (-slo): "+slo+". Goodput: requests that met every per-request limit ÷ the window (DistServe).",
		samplesNoteRange(lo, hi, true))
	if anySLO {
		f.footer = append(f.footer, "Filled: slo-met = 1 (every percentile limit held) in every sample at that load; hollow: not in at least one.")
	}
	return f, warnings
}

// goodputSampleRange is the range of samples per point over the panels
// drawn.
func goodputSampleRange(d *Data, closed, open bool) (lo, hi int) {
	lo = math.MaxInt
	if closed {
		l, h := d.SampleRange()
		lo, hi = min(lo, l), max(hi, h)
	}
	if open {
		l, h := d.RateSampleRange()
		lo, hi = min(lo, l), max(hi, h)
	}
	return lo, hi
}

// goodputPanel draws one load axis of goodput.png and reports whether any
// point carries slo-met.
func goodputPanel(d *Data, f *figure, open bool) (*plot.Plot, bool, []error) {
	var warnings []error
	p := newPlot()
	p.Title.TextStyle.Font = sans(11, true)
	series := d.Series
	key := func(pt Point) float64 { return float64(pt.Concurrency) }
	ref, refName := UnitReqPerSec, "completed"
	if open {
		series = d.RateSeries
		key = rateOf
		ref, refName = UnitAchieved, "sent"
		p.Title.Text = "open loop: arrivals at a target rate"
		logRateX(p, d.Rates())
	} else {
		p.Title.Text = "closed loop: C requests in flight"
		logX(p, d.Levels())
	}
	p.Y.Tick.Marker = kTicks
	ymax := 0.0
	anySLO := false
	loop := "closed"
	if open {
		loop = "open"
	}
	if open {
		// The target rate itself, for reference: what was offered.
		var tgt plotter.XYs
		for _, r := range d.Rates() {
			tgt = append(tgt, plotter.XY{X: r, Y: r})
			ymax = max(ymax, r)
		}
		if l, err := plotter.NewLine(tgt); err == nil {
			l.Color, l.Width, l.Dashes = midGrey, vg.Points(1.2), dotted
			p.Add(l)
			f.named["target rate"] = l
		}
	}
	for i, e := range d.Engines {
		met := series(UnitSLOMet, e)
		metAt := map[float64]Point{}
		for _, m := range met {
			metAt[key(m)] = m
		}
		var line, bars xy
		var states []sloState
		for _, pt := range series(UnitGoodput, e) {
			line.add(key(pt), pt.Median, pt.Median, pt.Median)
			ymax = max(ymax, pt.Median)
			if pt.HasCI() {
				bars.add(key(pt), pt.Median, pt.Lo, pt.Hi)
				ymax = max(ymax, pt.Hi)
			}
			m, ok := metAt[key(pt)]
			st := sloOf(m, ok)
			anySLO = anySLO || st != sloUnknown
			states = append(states, st)
		}
		if line.Len() > 0 {
			l, err := plotter.NewLine(&line)
			if err != nil {
				warnings = append(warnings, &SkipError{GoodputPNG, fmt.Sprintf("%s %s loop goodput: %v", e, loop, err)})
			} else {
				l.Color, l.Width = EngineColor(i), vg.Points(1.8)
				xys, _ := plotter.CopyXYs(&line)
				p.Add(l, sloMarkers(xys, EngineColor(i), draw.CircleGlyph{}, vg.Points(3), states))
				f.marks[e+" "+loop+" "+UnitGoodput] = states
				f.lines[e] = append(f.lines[e], l)
				f.named[e+" "+loop+" "+UnitGoodput] = l
				if bars.Len() > 0 {
					if eb, err := plotter.NewYErrorBars(&bars); err == nil {
						eb.Color, eb.Width, eb.CapWidth = EngineColor(i), vg.Points(1), vg.Points(5)
						p.Add(eb)
						f.bars[e+" "+loop+" "+UnitGoodput] = eb
					}
				}
			}
		}
		var rl xy
		for _, pt := range series(ref, e) {
			rl.add(key(pt), pt.Median, pt.Median, pt.Median)
			ymax = max(ymax, pt.Median)
		}
		if rl.Len() == 0 {
			warnings = append(warnings, &SkipError{GoodputPNG, fmt.Sprintf("%s: no %s on the %s-loop lines: %s req/s reference left out", e, ref, loop, refName)})
			continue
		}
		if l, err := plotter.NewLine(&rl); err == nil {
			l.Color, l.Width, l.Dashes = EngineColor(i), vg.Points(1.2), dashed
			p.Add(l)
			f.lines[e] = append(f.lines[e], l)
			f.named[e+" "+loop+" "+ref] = l
		}
	}
	p.Y.Min, p.Y.Max = 0, math.Max(headroom(ymax, 1.08), 1)
	return p, anySLO, warnings
}
