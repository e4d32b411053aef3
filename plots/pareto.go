package plots

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/inferbench/inferbench/internal/report"
)

// tpotSource says where the Pareto chart's TPOT p90 comes from.
type tpotSource int

const (
	tpotNone   tpotSource = iota // neither the lines nor a summary.json have one
	tpotLines                    // the median over samples of the lines' tpot-p90-ns
	tpotPooled                   // summary.json's TPOT p90, pooled over every request of the level
)

// p90Source picks the TPOT p90 of the whole chart: the result lines' when
// any carries one, else the pooled one of summary.json. One source per
// chart, so that one curve never mixes a median of per-sample p90s with a
// pooled p90.
func p90Source(d *Data) tpotSource {
	switch {
	case d.HasUnit(UnitTPOTP90):
		return tpotLines
	case d.Pooled != nil:
		return tpotPooled
	}
	return tpotNone
}

// describe is the legend's account of a curve's TPOT.
func (s tpotSource) describe() string {
	switch s {
	case tpotLines:
		return "median of samples' p90"
	case tpotPooled:
		return "p90 pooled over all requests, summary.json"
	}
	return "none"
}

// paretoPoint is one engine at one concurrency level on pareto.png.
type paretoPoint struct {
	c int
	// perUser is one user's output rate, tok/s: 1000 / TPOT in ms.
	perUser float64
	// system is the median steady-state output tok/s.
	system float64
	slo    sloState
}

// noPooledTPOT is why a level of a summary.json without its TPOT is left
// out (the summary of another run, or outputs of one token).
const noPooledTPOT = "no pooled TPOT in summary.json"

// leftOut is a level whose point a curve cannot show, and why.
type leftOut struct {
	engine string
	c      int
	why    string
	// unbounded: a p90 of too few requests to bound it (none on the
	// lines, or a pooled one not certified).
	unbounded bool
}

// paretoPoints are engine e's points at TPOT percentile p: 50 is the median
// over samples of the lines' tpot-p50-ns, 90 comes from src. Levels without
// tok/s, without that TPOT, or whose TPOT cannot be inverted (0, or a pooled
// p90 too few requests bound) are left out and listed.
func paretoPoints(d *Data, e string, p int, src tpotSource) ([]paretoPoint, []leftOut) {
	tput := byLevel(d.Series(UnitTokPerSec, e))
	met := byLevel(d.Series(UnitSLOMet, e))
	var pts []paretoPoint
	var left []leftOut
	for _, c := range d.Levels() {
		t, ok := tput[c]
		if !ok {
			continue
		}
		var tpot float64 // ns
		switch {
		case p == 50 || src == tpotLines:
			unit := UnitTPOTP50
			if p != 50 {
				unit = UnitTPOTP90
			}
			pt, ok := byLevel(d.Series(unit, e))[c]
			if !ok {
				// A line carries a p90 only when its sample bounds it.
				left = append(left, leftOut{e, c, "no " + unit + " on its lines", p != 50})
				continue
			}
			tpot = pt.Median
		case src == tpotPooled:
			pool, ok := d.pooled(e, c)
			if !ok || pool.TPOT.N == 0 {
				left = append(left, leftOut{e, c, noPooledTPOT, false})
				continue
			}
			tl := pool.TPOT.P90
			if !tl.Certified {
				left = append(left, leftOut{e, c, fmt.Sprintf("pooled TPOT p90 of n=%d < %d cannot be bounded", tl.N, tl.NeedN), true})
				continue
			}
			tpot = float64(tl.Value)
		default:
			continue
		}
		if !(tpot > 0) {
			left = append(left, leftOut{e, c, fmt.Sprintf("TPOT p%d is 0 (no multi-token response?)", p), false})
			continue
		}
		x := 1e9 / tpot
		if math.IsInf(x, 0) || math.IsInf(t.Median, 0) {
			left = append(left, leftOut{e, c, fmt.Sprintf("TPOT p%d of %g ns gives no finite per-user rate", p, tpot), false})
			continue
		}
		m, ok := met[c]
		pts = append(pts, paretoPoint{c: c, perUser: x, system: t.Median, slo: sloOf(m, ok)})
	}
	return pts, left
}

// paretoFrontier returns the points no other point beats on both axes
// (higher per-user and higher system tok/s), sorted by per-user rate.
func paretoFrontier(pts []paretoPoint) []paretoPoint {
	s := append([]paretoPoint(nil), pts...)
	// Fastest per user first; among equals the higher system rate first.
	sort.SliceStable(s, func(i, j int) bool {
		if s[i].perUser != s[j].perUser {
			return s[i].perUser > s[j].perUser
		}
		return s[i].system > s[j].system
	})
	var front []paretoPoint
	best := math.Inf(-1)
	for _, p := range s {
		if p.system > best {
			front = append(front, p)
			best = p.system
		}
	}
	// Slowest per user (highest system rate) first.
	for i, j := 0, len(front)-1; i < j; i, j = i+1, j-1 {
		front[i], front[j] = front[j], front[i]
	}
	return front
}

// paretoSteps is the frontier as a step function of per-user rate x: the
// highest system rate measured at x or faster per user, drawn only between
// measured points (no interpolation, no extrapolation). Going right from
// each frontier point the curve drops at once to the next point's system
// rate and runs flat to it: (x1,y1) (x1,y2) (x2,y2) (x2,y3) … (xn,yn).
func paretoSteps(front []paretoPoint) plotter.XYs {
	var xys plotter.XYs
	for i, p := range front {
		if i > 0 {
			xys = append(xys, plotter.XY{X: front[i-1].perUser, Y: p.system})
		}
		xys = append(xys, plotter.XY{X: p.perUser, Y: p.system})
	}
	return xys
}

// paretoCurve is one TPOT percentile's drawing style on pareto.png.
type paretoCurve struct {
	p      int
	dashes []vg.Length
	width  vg.Length
	shape  draw.GlyphDrawer
}

// paretoFigure draws system output tok/s against per-user tok/s (1000 /
// TPOT in ms) as MLPerf Endpoints' Pareto steps, for TPOT p90 and p50, with
// SLO-passing levels filled when the lines carry slo-met.
func paretoFigure(d *Data) (*figure, []error) {
	if !d.HasUnit(UnitTPOTP50) && p90Source(d) == tpotNone {
		return nil, []error{&SkipError{ParetoPNG, "no " + UnitTPOTP50 + " values in the input: chart not drawn"}}
	}
	var warnings []error
	src := p90Source(d)
	curves := []paretoCurve{
		{90, nil, vg.Points(1.8), draw.CircleGlyph{}},
		{50, dashed, vg.Points(1.2), draw.BoxGlyph{}},
	}
	if src == tpotNone {
		warnings = append(warnings, &SkipError{ParetoPNG, "no TPOT p90: the result lines carry none and no summary.json was given: the 1000/TPOT p90 curve is left out"})
		curves = curves[1:]
	}
	f := newFigure(d, ParetoPNG, "System vs per-user throughput (Pareto steps)")
	p := f.plot
	p.X.Label.Text = "tok/s per user = 1000 / TPOT (ms)"
	p.Y.Label.Text = "system output tok/s (steady state)"
	p.X.Tick.Marker = kTicks
	p.Y.Tick.Marker = kTicks
	f.side = newSideLegend()
	f.width = onePanelWidth
	xmax, ymax := 0.0, 0.0
	type engineLabels struct {
		engine int
		lab    plotter.XYLabels
	}
	var pending []engineLabels
	drawn := map[int]bool{}
	anySLO := false
	var unbounded, nopool []string
	for i, e := range d.Engines {
		labelled := false
		for _, cv := range curves {
			pts, left := paretoPoints(d, e, cv.p, src)
			for _, l := range left {
				if l.unbounded {
					unbounded = append(unbounded, fmt.Sprintf("%s c=%d", l.engine, l.c))
					continue
				}
				if l.why == noPooledTPOT {
					nopool = append(nopool, fmt.Sprintf("%s c=%d", l.engine, l.c))
					continue
				}
				warnings = append(warnings, &SkipError{ParetoPNG, fmt.Sprintf("%s at concurrency %d: %s: p%d point left out", l.engine, l.c, l.why, cv.p)})
			}
			if len(pts) == 0 {
				continue
			}
			drawn[cv.p] = true
			front := paretoFrontier(pts)
			steps := paretoSteps(front)
			if len(steps) > 1 {
				l, err := plotter.NewLine(steps)
				if err != nil {
					warnings = append(warnings, &SkipError{ParetoPNG, fmt.Sprintf("%s p%d: %v", e, cv.p, err)})
					continue
				}
				l.Color, l.Width, l.Dashes = EngineColor(i), cv.width, cv.dashes
				p.Add(l)
				f.lines[e] = append(f.lines[e], l)
				f.named[fmt.Sprintf("%s p%d", e, cv.p)] = l
			}
			var xys plotter.XYs
			var states []sloState
			var lab plotter.XYLabels
			for _, pt := range pts {
				xys = append(xys, plotter.XY{X: pt.perUser, Y: pt.system})
				states = append(states, pt.slo)
				anySLO = anySLO || pt.slo != sloUnknown
				xmax, ymax = max(xmax, pt.perUser), max(ymax, pt.system)
				lab.XYs = append(lab.XYs, plotter.XY{X: pt.perUser, Y: pt.system})
				lab.Labels = append(lab.Labels, strconv.Itoa(pt.c))
			}
			p.Add(sloMarkers(xys, EngineColor(i), cv.shape, vg.Points(3), states))
			f.marks[fmt.Sprintf("%s p%d", e, cv.p)] = states
			if !labelled { // the concurrency once, on the first curve drawn
				pending = append(pending, engineLabels{i, lab})
				labelled = true
			}
		}
		if labelled {
			f.side.Add(e, swatch(i))
		}
	}
	if xmax == 0 {
		return nil, append(warnings, &SkipError{ParetoPNG, "no level has both tok/s and a positive TPOT: chart not drawn"})
	}
	for _, cv := range curves {
		if !drawn[cv.p] {
			continue
		}
		how := "median of samples' p50"
		if cv.p == 90 {
			how = src.describe()
		}
		f.side.Add(fmt.Sprintf("1000/TPOT p%d", cv.p), styleKey(cv.dashes, cv.width, cv.shape)...)
		f.side.Add("   " + how)
	}
	if anySLO {
		sloLegend(f.side, draw.CircleGlyph{})
	}
	var said []string
	for _, cv := range curves {
		if drawn[cv.p] {
			how := "median of samples' p50, dashed ■"
			if cv.p == 90 {
				how = src.describe() + ", solid ●"
			}
			said = append(said, fmt.Sprintf("1000/TPOT p%d (%s)", cv.p, how))
		}
	}
	perUserNote := "Per user: " + strings.Join(said, "; ") + "."
	// Labels go up-right of their point, or to another corner when that
	// would collide with a nearby label (low levels crowd together).
	for _, el := range pending {
		for k, sl := range splitLabels(el.lab, xmax, ymax) {
			side := labelSides[k]
			if len(sl.Labels) == 0 {
				continue
			}
			labels, err := plotter.NewLabels(sl)
			if err != nil {
				warnings = append(warnings, &SkipError{ParetoPNG, fmt.Sprintf("%s labels: %v", d.Engines[el.engine], err)})
				continue
			}
			for j := range labels.TextStyle {
				labels.TextStyle[j].Font = sans(9, false)
				labels.TextStyle[j].Color = EngineColor(el.engine)
				labels.TextStyle[j].XAlign = side.xa
				labels.TextStyle[j].YAlign = side.ya
			}
			labels.Offset = side.offset
			p.Add(labels)
		}
	}
	p.X.Min, p.X.Max = 0, headroom(xmax, 1.12)
	p.Y.Min, p.Y.Max = 0, headroom(ymax, 1.12)
	f.footer = append(f.footer,
		"Steps: the most system tok/s measured at that per-user rate or faster; measured levels only, no interpolation (MLPerf Endpoints).",
		samplesNote(d, false)+" Numbers: concurrency. Up and right is better; a marker off its step is dominated.",
		perUserNote)
	if anySLO {
		f.footer = append(f.footer, "Filled: slo-met = 1 in every sample at that level (SLO "+orUnknown(d.Config.SLO)+"); hollow: not in at least one.")
	}
	if len(nopool) > 0 {
		warnings = append(warnings, &SkipError{ParetoPNG, fmt.Sprintf("TPOT p90 left out at %d engine-levels that the summary.json has no TPOT for (%s): is it this run's?", len(nopool), strings.Join(nopool[:min(3, len(nopool))], ", ")+ellipsis(len(nopool) > 3))})
	}
	if len(unbounded) > 0 {
		need := report.MinForCI(90, report.Confidence)
		f.footer = append(f.footer, fmt.Sprintf("TPOT p90 left out at %d engine-levels: too few requests to bound it (needs n ≥ %d).", len(unbounded), need))
		warnings = append(warnings, &SkipError{ParetoPNG, fmt.Sprintf("TPOT p90 left out at %d engine-levels with fewer than %d requests (%s)", len(unbounded), need, strings.Join(unbounded[:min(3, len(unbounded))], ", ")+ellipsis(len(unbounded) > 3))})
	}
	return f, warnings
}
