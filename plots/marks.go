package plots

import (
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// sloState is whether a point met -slo's percentile limits.
type sloState int

const (
	sloUnknown sloState = iota // the lines carry no slo-met
	sloMet                     // slo-met was 1 in every sample
	sloMissed                  // slo-met was not 1 in at least one sample
)

// sloOf is the state of a point's slo-met samples (ok: the point exists).
// A level passes only when every sample met the SLO, the rule
// BenchmarkCapacity applies to its repeated samples near the boundary: one
// lucky sample out of six does not make a level pass.
func sloOf(p Point, ok bool) sloState {
	if !ok || len(p.Samples) == 0 {
		return sloUnknown
	}
	for _, v := range p.Samples {
		if v != 1 {
			return sloMissed
		}
	}
	return sloMet
}

// hollowGlyph draws filled's shape white inside a coloured outline 1.3
// points wide: gonum's outline glyphs are 0.5 points wide, too thin to tell
// from a filled marker at a glance, and let the line show through.
type hollowGlyph struct{ filled draw.GlyphDrawer }

func (g hollowGlyph) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	g.filled.DrawGlyph(c, sty, pt) // the canvas colour is sty.Color
	inner := sty
	inner.Radius = max(sty.Radius-vg.Points(1.3), 0)
	c.SetColor(color.White)
	g.filled.DrawGlyph(c, inner, pt)
}

// sloMarkers draws a marker at each of xys in col, hollow where states
// says the SLO was missed.
func sloMarkers(xys plotter.XYs, col color.Color, shape draw.GlyphDrawer, radius vg.Length, states []sloState) *plotter.Scatter {
	s := &plotter.Scatter{XYs: xys, GlyphStyle: draw.GlyphStyle{Color: col, Radius: radius, Shape: shape}}
	s.GlyphStyleFunc = func(i int) draw.GlyphStyle {
		g := s.GlyphStyle
		if i < len(states) && states[i] == sloMissed {
			g.Shape = hollowGlyph{shape}
		}
		return g
	}
	return s
}

// sloLegend adds the legend entries that explain filled and hollow markers.
func sloLegend(l *plot.Legend, shape draw.GlyphDrawer) {
	met := &plotter.Scatter{GlyphStyle: draw.GlyphStyle{Color: darkGrey, Radius: vg.Points(3), Shape: shape}}
	missed := &plotter.Scatter{GlyphStyle: draw.GlyphStyle{Color: darkGrey, Radius: vg.Points(3), Shape: hollowGlyph{shape}}}
	l.Add("every sample met the SLO", met)
	l.Add("a sample missed it", missed)
}

// rateTicks marks each rate present on a log x axis.
func rateTicks(rates []float64) plot.ConstantTicks {
	var ticks plot.ConstantTicks
	for _, r := range rates {
		ticks = append(ticks, plot.Tick{Value: r, Label: strconv.FormatFloat(r, 'g', 4, 64)})
	}
	return ticks
}

// logRateX sets a log target-rate axis with a little room either side.
func logRateX(p *plot.Plot, rates []float64) {
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = rateTicks(rates)
	p.X.Min = rates[0] / 1.35
	p.X.Max = rates[len(rates)-1] * 1.35
	p.X.Label.Text = "target arrival rate, requests/s (log scale)"
}

// headroom is v·k, or v when that overflows: an axis maximum must stay
// finite.
func headroom(v, k float64) float64 {
	if h := v * k; !math.IsInf(h, 0) {
		return h
	}
	return v
}

// styleKey is a legend thumbnail in dark grey: a line style with a marker.
func styleKey(dashes []vg.Length, width vg.Length, shape draw.GlyphDrawer) []plot.Thumbnailer {
	l := &plotter.Line{LineStyle: draw.LineStyle{Color: darkGrey, Width: width, Dashes: dashes}}
	if shape == nil {
		return []plot.Thumbnailer{l}
	}
	return []plot.Thumbnailer{l, &plotter.Scatter{GlyphStyle: draw.GlyphStyle{Color: darkGrey, Radius: vg.Points(2.6), Shape: shape}}}
}

// Dash patterns shared by the charts.
var (
	dashed = []vg.Length{vg.Points(7), vg.Points(3)}
	dotted = []vg.Length{vg.Points(1.5), vg.Points(2.5)}
)
