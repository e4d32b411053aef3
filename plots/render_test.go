package plots

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
)

var twoFiles = []string{"testdata/two/vllm.txt", "testdata/two/friendli.txt"}
var simFiles = []string{"testdata/sim/sim-vllm-like.txt", "testdata/sim/sim-friendli-like.txt"}

func loadT(t *testing.T, paths ...string) *Data {
	t.Helper()
	d, err := Load(paths)
	require.NoError(t, err)
	return d
}

// figureByName builds the charts and returns them by file name.
func figureByName(t *testing.T, d *Data) (map[string]*figure, []error) {
	t.Helper()
	figs, warnings, err := figures(d)
	require.NoError(t, err)
	m := map[string]*figure{}
	for _, f := range figs {
		m[f.name] = f
	}
	return m, warnings
}

// closedOnlySkips are the warnings of closed-loop results without -slo, -rate
// or a summary.json: the charts they cannot have.
var closedOnlySkips = []string{
	"pareto.png: no TPOT p90: the result lines carry none and no summary.json was given: the 1000/TPOT p90 curve is left out",
	"latency-rate.png: no open-loop (rate=R) results: chart not drawn (run with -rate=R1,R2,…)",
	"goodput.png: no goodput-req/s values: chart not drawn (run with -slo=…)",
}

func errorStrings(errs []error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func TestFiguresLinesPerEngine(t *testing.T) {
	d := loadT(t, twoFiles...)
	figs, warnings := figureByName(t, d)
	assert.Equal(t, closedOnlySkips, errorStrings(warnings))
	tests := []struct {
		chart         string
		linesPerEng   int
		pointsPerLine int
	}{
		{ThroughputPNG, 1, 7}, // One tok/s line per engine, a point per level.
		{LatencyPNG, 3, 7},    // TTFT p50, TTFT p99 and ITL p50 per engine.
		{ParetoPNG, 1, 13},    // One p50 step per engine: 7 frontier points, 6 steps between.
	}
	for _, tt := range tests {
		t.Run(tt.chart, func(t *testing.T) {
			f := figs[tt.chart]
			require.NotNil(t, f)
			require.Len(t, f.lines, len(d.Engines))
			for i, e := range d.Engines {
				require.Len(t, f.lines[e], tt.linesPerEng, e)
				for _, l := range f.lines[e] {
					assert.Equal(t, color.Color(EngineColor(i)), l.Color, e)
					assert.Equal(t, tt.pointsPerLine, l.XYs.Len(), e)
				}
			}
		})
	}
	// Line styles tell the latency metrics apart.
	ls := figs[LatencyPNG].lines["vllm"]
	assert.Nil(t, ls[0].Dashes)
	assert.NotEqual(t, ls[1].Dashes, ls[2].Dashes)
	// Throughput points are the medians; bars span benchstat's CI.
	tp := figs[ThroughputPNG]
	x, y := tp.lines["vllm"][0].XYs.XY(6)
	p := d.Series(UnitTokPerSec, "vllm")[6]
	assert.Equal(t, [2]float64{64, p.Median}, [2]float64{x, y})
	bars := tp.bars["vllm"]
	require.NotNil(t, bars)
	assert.Equal(t, p.Median-p.Lo, bars.YErrors[6].Low)
	assert.Equal(t, p.Hi-p.Median, bars.YErrors[6].High)
	// The pareto x is per-user tok/s: 1e9 / median TPOT; the steps start
	// at the slowest per user (the highest level) and end at level 1.
	step := figs[ParetoPNG].lines["vllm"][0].XYs
	px, py := step.XY(0)
	assert.InEpsilon(t, 1e9/d.Series(UnitTPOTP50, "vllm")[6].Median, px, 1e-12)
	assert.Equal(t, d.Series(UnitTokPerSec, "vllm")[6].Median, py)
	px, py = step.XY(12)
	assert.InEpsilon(t, 1e9/d.Series(UnitTPOTP50, "vllm")[0].Median, px, 1e-12)
	assert.Equal(t, d.Series(UnitTokPerSec, "vllm")[0].Median, py)
}

func TestFiguresText(t *testing.T) {
	figs, _ := figureByName(t, loadT(t, twoFiles...))
	tp := figs[ThroughputPNG]
	assert.Contains(t, tp.sub, "model test-model")
	assert.Contains(t, tp.sub, "input 64 / output 128 tokens")
	assert.Empty(t, tp.banner, "real engines carry no simulated mark")
	assert.Contains(t, tp.footer[0], "median of n=6 runs")
	assert.Contains(t, tp.footer[0], "95 % CI")
	assert.Contains(t, tp.footer[1], "friendli ÷ vllm")
	assert.Equal(t, "output tokens/s (steady state)", tp.plot.Y.Label.Text)
	assert.Equal(t, 0.0, tp.plot.Y.Min)
	assert.Equal(t, "latency (ms, log scale)", figs[LatencyPNG].ylabel)
	assert.Equal(t, "tok/s per user = 1000 / TPOT (ms)", figs[ParetoPNG].plot.X.Label.Text)

	sims, _ := figureByName(t, loadT(t, simFiles...))
	for name, f := range sims {
		assert.Equal(t, SimulatedMark, f.banner, name)
	}
	st := sims[ThroughputPNG]
	assert.Contains(t, st.footer[0], "n=3")
	assert.Contains(t, st.footer[0], "no CI")
	assert.Empty(t, st.bars, "3 samples: no error bars")
}

func TestRatioLabels(t *testing.T) {
	d := loadT(t, twoFiles...)
	l, note := ratioLabels(d)
	require.NotNil(t, l)
	require.Len(t, l.Labels, 7)
	// benchstat: friendli is +21.48 % at c=1 and +84.98 % at c=64.
	assert.Equal(t, "×1.21", l.Labels[0])
	assert.Equal(t, "×1.85", l.Labels[6])
	assert.Equal(t, "×r above each level: friendli ÷ vllm, ratio of median tok/s.", note)

	one := loadT(t, "testdata/two/vllm.txt")
	l, _ = ratioLabels(one)
	assert.Nil(t, l, "one engine: nothing to compare")
}

func TestKLabel(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0"},        // Zero stays plain.
		{950, "950"},    // Below a thousand: plain.
		{1500, "1.5k"},  // Thousands get k.
		{15000, "15k"},  // "15k" style.
		{2.5e6, "2.5M"}, // Millions get M.
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, kLabel(tt.v))
	}
}

func TestRenderImages(t *testing.T) {
	t.Parallel() // rendering is the slow part of this package's tests
	for _, set := range [][]string{twoFiles, simFiles} {
		images, warnings, err := Render(loadT(t, set...))
		require.NoError(t, err)
		assert.Equal(t, closedOnlySkips, errorStrings(warnings))
		require.Len(t, images, 3)
		for _, im := range images {
			img, err := png.Decode(bytes.NewReader(im.PNG))
			require.NoError(t, err, im.Name)
			b := img.Bounds()
			assert.GreaterOrEqual(t, b.Dx(), 800, im.Name)
			assert.GreaterOrEqual(t, b.Dy(), 450, im.Name)
			colours, ink := pixelStats(img)
			assert.Greater(t, len(colours), 50, "%s: too few colours, blank?", im.Name)
			assert.Greater(t, ink, b.Dx()*b.Dy()/50, "%s: almost no non-white pixels", im.Name)
			// Each engine's colour is really drawn.
			for i := range 2 {
				c := EngineColor(i)
				assert.Greater(t, colours[c], 300, "%s: engine %d colour %v", im.Name, i, c)
			}
		}
	}
}

// TestRenderOpenLoopAndSLO: a -slo run with closed levels, open rates and
// its summary.json renders all five charts, none blank, every engine's
// colour on each.
func TestRenderOpenLoopAndSLO(t *testing.T) {
	t.Parallel() // rendering is the slow part of this package's tests
	slo := loadT(t, sloFiles...)
	d := loadT(t, append(append([]string(nil), sloFiles...), sloSummary(t, slo))...)
	images, _, err := Render(d)
	require.NoError(t, err)
	var names []string
	for _, im := range images {
		names = append(names, im.Name)
		img, err := png.Decode(bytes.NewReader(im.PNG))
		require.NoError(t, err, im.Name)
		b := img.Bounds()
		assert.GreaterOrEqual(t, b.Dx(), 1200, "%s: the charts with a legend column are wider", im.Name)
		colours, ink := pixelStats(img)
		assert.Greater(t, ink, b.Dx()*b.Dy()/50, "%s: almost no non-white pixels", im.Name)
		for i := range 2 {
			assert.Greater(t, colours[EngineColor(i)], 300, "%s: engine %d colour", im.Name, i)
		}
		_, hasTitle := Titles[im.Name]
		assert.True(t, hasTitle, "%s has a title for report pages", im.Name)
	}
	assert.Equal(t, []string{ThroughputPNG, LatencyPNG, ParetoPNG, LatencyRatePNG, GoodputPNG}, names)
}

// pixelStats counts pixels per colour and the non-white pixels.
func pixelStats(img image.Image) (map[color.RGBA]int, int) {
	colours := map[color.RGBA]int{}
	ink := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			colours[c]++
			if c != (color.RGBA{0xFF, 0xFF, 0xFF, 0xFF}) {
				ink++
			}
		}
	}
	return colours, ink
}

func TestRenderSkips(t *testing.T) {
	t.Parallel() // rendering is the slow part of this package's tests
	tests := []struct {
		name     string
		content  string
		images   []string
		warnings []string
	}{
		// No TPOT and no latencies: only throughput is drawn, the others are reported.
		{
			"tok/s only",
			"BenchmarkServe/concurrency=1-2\t1\t10 tok/s\nBenchmarkServe/concurrency=2-2\t1\t18 tok/s\n",
			[]string{ThroughputPNG},
			[]string{"latency.png: no TTFT or ITL values", "pareto.png: no tpot-p50-ns values"},
		},
		// A zero TTFT (a level where every request failed) cannot sit on a log axis: that point is left out, with a warning.
		{
			"zero latency",
			"BenchmarkServe/concurrency=1-2\t1\t10 tok/s\t5e7 ttft-p50-ns\t6e7 ttft-p99-ns\t1e7 itl-p50-ns\t1e7 tpot-p50-ns\n" +
				"BenchmarkServe/concurrency=2-2\t1\t0 tok/s\t0 ttft-p50-ns\t0 ttft-p99-ns\t0 itl-p50-ns\t0 tpot-p50-ns\n",
			[]string{ThroughputPNG, LatencyPNG, ParetoPNG},
			[]string{"e TTFT p50 at concurrency 2 is 0", "e at concurrency 2: TPOT p50 is 0"},
		},
		// Extreme values (1e308 tok/s, a huge level, an infinite per-user rate) draw or are reported, never panic or hang.
		{
			"extreme values",
			"BenchmarkServe/concurrency=1-2\t1\t1e308 tok/s\t1e300 tpot-p50-ns\t1e-300 ttft-p50-ns\n" +
				"BenchmarkServe/concurrency=9223372036854775807-2\t1\t1e-300 tok/s\t1e-300 tpot-p50-ns\t1e308 ttft-p50-ns\n",
			[]string{ThroughputPNG, LatencyPNG, ParetoPNG},
			[]string{"pareto.png: e at concurrency 9223372036854775807: TPOT p50 of 1e-300 ns gives no finite per-user rate: p50 point left out"},
		},
		// Every TPOT zero: the Pareto chart has nothing to draw and says so.
		{
			"no positive TPOT",
			"BenchmarkServe/concurrency=1-2\t1\t10 tok/s\t0 tpot-p50-ns\t5e7 ttft-p50-ns\n",
			[]string{ThroughputPNG, LatencyPNG},
			[]string{"pareto.png: no level has both tok/s and a positive TPOT"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			images, warnings, err := Render(loadT(t, writeFile(t, "e.txt", tt.content)))
			require.NoError(t, err)
			var names []string
			for _, im := range images {
				names = append(names, im.Name)
			}
			assert.Equal(t, tt.images, names)
			joined := errors.Join(warnings...).Error()
			for _, w := range tt.warnings {
				assert.Contains(t, joined, w)
			}
			for _, w := range warnings {
				var se *SkipError
				assert.ErrorAs(t, w, &se)
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	t.Parallel() // rendering is the slow part of this package's tests
	out := filepath.Join(t.TempDir(), "new", "dir")
	written, err := Generate(twoFiles, out)
	// The charts closed-loop results without -slo cannot have are warnings.
	var skip *SkipError
	require.ErrorAs(t, err, &skip)
	assert.Equal(t, strings.Join(closedOnlySkips, "\n"), err.Error())
	assert.Equal(t, []string{filepath.Join(out, ThroughputPNG), filepath.Join(out, LatencyPNG), filepath.Join(out, ParetoPNG)}, written)
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	assert.Len(t, entries, 3, "no temporary files left behind")
	for _, w := range written {
		fi, err := os.Stat(w)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	}

	// TTFT p50 without p99 and ITL: all charts, and a warning saying what is missing.
	out2 := t.TempDir()
	written, err = Generate([]string{"testdata/bad/partial-latency.txt"}, out2)
	assert.Len(t, written, 3)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no ttft-p99-ns values")
	// Only throughput can be drawn: it is written and the rest is a warning.
	written, err = Generate([]string{writeFile(t, "e.txt", "BenchmarkServe/concurrency=1-2\t1\t10 tok/s\n")}, out2)
	assert.Equal(t, []string{filepath.Join(out2, ThroughputPNG)}, written)
	var se *SkipError
	assert.ErrorAs(t, err, &se)
}

func TestGenerateBadInputWritesNothing(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		want  []string
	}{
		// A malformed Benchmark line: file and line named.
		{"malformed", []string{"testdata/bad/malformed.txt"}, []string{"testdata/bad/malformed.txt:5:"}},
		// Only a header: nothing to plot.
		{"no results", []string{"testdata/bad/noresults.txt"}, []string{"testdata/bad/noresults.txt"}},
		// Engines with different unit sets.
		{"units differ", []string{"testdata/bad/units-a.txt", "testdata/bad/units-b.txt"}, []string{"testdata/bad/units-b.txt:3:"}},
		// Engines of different models.
		{"model differs", []string{"testdata/bad/model-a.txt", "testdata/bad/model-b.txt"}, []string{"testdata/bad/model-b.txt:2:"}},
		// No tok/s anywhere: the throughput chart, the one that matters, cannot be drawn.
		{"no tok/s", []string{"testdata/bad/notok.txt"}, []string{"no tok/s values"}},
		// A missing file.
		{"missing", []string{"testdata/two/nope.txt"}, []string{"testdata/two/nope.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			written, err := Generate(tt.paths, out)
			require.Error(t, err)
			assert.Empty(t, written)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			entries, err := os.ReadDir(out)
			require.NoError(t, err)
			assert.Empty(t, entries, "nothing written on bad input")
		})
	}
}

func TestWriteImagesFailureLeavesNothing(t *testing.T) {
	// The output "directory" is a file: nothing can be written, and the error says where.
	blocker := writeFile(t, "file", "x")
	_, err := WriteImages([]Image{{Name: "a.png", PNG: []byte("x")}}, blocker)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "output directory")

	// A name that cannot be created fails before any rename: the earlier image is not in place either.
	dir := t.TempDir()
	_, err = WriteImages([]Image{{Name: "a.png", PNG: []byte("x")}, {Name: "no/such/b.png", PNG: []byte("y")}}, dir)
	require.Error(t, err)
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Empty(t, names)
}

func TestSplitLabels(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64 // points at (x, x) on 100×100 axes
		want [][]string
	}{
		// Far-apart points all go up-right.
		{"apart", []float64{10, 50, 90}, [][]string{{"0", "1", "2"}, nil, nil, nil}},
		// Three crowded points take three different corners.
		{"crowded", []float64{10, 12, 14}, [][]string{{"0"}, {"1"}, {"2"}, nil}},
		// Five crowded points: the fifth has no free corner and goes up-right.
		{"overfull", []float64{10, 11, 12, 13, 14}, [][]string{{"0", "4"}, {"1"}, {"2"}, {"3"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lab plotter.XYLabels
			for i, x := range tt.xs {
				lab.XYs = append(lab.XYs, plotter.XY{X: x, Y: x})
				lab.Labels = append(lab.Labels, strconv.Itoa(i))
			}
			got := splitLabels(lab, 100, 100)
			require.Len(t, got, len(labelSides))
			for k := range got {
				assert.Equal(t, tt.want[k], got[k].Labels, "side %d", k)
			}
		})
	}
}

func TestLogTicks(t *testing.T) {
	values := func(ts []plot.Tick) []float64 {
		var vs []float64
		for _, tk := range ts {
			vs = append(vs, tk.Value)
		}
		return vs
	}
	tests := []struct {
		name     string
		min, max float64
		want     []plot.Tick
	}{
		// Three decades: 1-2-5 steps.
		{"ms range", 7, 3000, []plot.Tick{{Value: 10}, {Value: 20}, {Value: 50}, {Value: 100}, {Value: 200}, {Value: 500}, {Value: 1000}, {Value: 2000}}},
		// A narrow range without two 1-2-5 values: linear ticks instead.
		{"narrow", 21, 24, plot.DefaultTicks{}.Ticks(21, 24)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, values(tt.want), values(logTicks{}.Ticks(tt.min, tt.max)))
		})
	}
	// 600 decades (extreme input) stay a handful of ticks.
	assert.LessOrEqual(t, len(logTicks{}.Ticks(1e-300, 1e300)), 10)
}
