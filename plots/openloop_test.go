package plots

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var sloFiles = []string{"testdata/slo/vllm.txt", "testdata/slo/friendli.txt"}

// rateLineOf is an open-loop result line with the given units.
func rateLineOf(rate string, units map[string]float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "BenchmarkServe/rate=%s-2\t40\t1000000 ns/op", rate)
	for _, u := range sortedKeys(boolKeys(units)) {
		fmt.Fprintf(&b, "\t%g %s", units[u], u)
	}
	return b.String() + "\n"
}

func boolKeys[V any](m map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func TestRateLines(t *testing.T) {
	tests := []struct {
		name  string
		units []string // on the open-loop line, besides tok/s
		want  []string // units drawn, in order
		tail  int
	}{
		// Everything: p50 and p99, from the send and the intended send.
		{"p99 both", []string{"ttft-p50-ns", "ttft-p99-ns", "queued-ttft-p50-ns", "queued-ttft-p99-ns", "ttft-p90-ns", "queued-ttft-p90-ns"},
			[]string{"ttft-p50-ns", "queued-ttft-p50-ns", "ttft-p99-ns", "queued-ttft-p99-ns"}, 99},
		// A p99 from the send only: the tail falls to p90, which both origins have, so the two stay comparable.
		{"p99 one origin", []string{"ttft-p50-ns", "ttft-p99-ns", "ttft-p90-ns", "queued-ttft-p50-ns", "queued-ttft-p90-ns"},
			[]string{"ttft-p50-ns", "queued-ttft-p50-ns", "ttft-p90-ns", "queued-ttft-p90-ns"}, 90},
		// Short samples (n < 36): p50 only.
		{"no tail", []string{"ttft-p50-ns", "queued-ttft-p50-ns"}, []string{"ttft-p50-ns", "queued-ttft-p50-ns"}, 0},
		// No latency from the intended send at all: the send's lines alone.
		{"send only", []string{"ttft-p50-ns", "ttft-p95-ns"}, []string{"ttft-p50-ns", "ttft-p95-ns"}, 95},
		// No TTFT on the lines: nothing.
		{"none", []string{"e2e-p50-ns"}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			units := map[string]float64{"tok/s": 5}
			for _, u := range tt.units {
				units[u] = 1e7
			}
			d := loadT(t, writeFile(t, "e.txt", rateLineOf("2", units)))
			lines, tail := rateLines(d, "ttft")
			var got []string
			for _, l := range lines {
				got = append(got, l.unit)
				assert.Equal(t, strings.HasPrefix(l.unit, "queued-"), l.queued, l.unit)
			}
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.tail, tail)
		})
	}
	assert.Equal(t, "p99 from the intended send", rateLine{p: 99, queued: true}.label())
	assert.Equal(t, "p50 from the send", rateLine{p: 50}.label())
}

func TestShortfalls(t *testing.T) {
	line := func(rate string, achieved, scheduled float64) string {
		return rateLineOf(rate, map[string]float64{"tok/s": 5, UnitAchieved: achieved, UnitScheduled: scheduled})
	}
	tests := []struct {
		name    string
		content string
		want    []shortfall
	}{
		// 95 % of the schedule is the schedule kept; 87.5 % is not (the threshold is 90 %).
		{"one behind", line("2", 1.9, 2) + line("8", 7, 8), []shortfall{{"e", 8, 7, 8}}},
		// The medians decide: two of three samples at 50 % make the median 50 %.
		{"median", line("4", 4, 4) + line("4", 2, 4) + line("4", 2, 4), []shortfall{{"e", 4, 2, 4}}},
		// Achieved above the schedule (rounding, a short sample) is no shortfall.
		{"ahead", line("2", 2.2, 2), nil},
		// Without scheduled-req/s there is nothing to compare with.
		{"no schedule", rateLineOf("2", map[string]float64{"tok/s": 5, UnitAchieved: 1}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, shortfalls(loadT(t, writeFile(t, "e.txt", tt.content))))
		})
	}
	// The checked-in -slo run: vllm past its capacity at 12/s behind -max-concurrency=32.
	sf := shortfalls(loadT(t, sloFiles...))
	require.Len(t, sf, 1)
	assert.Equal(t, "vllm", sf[0].engine)
	assert.Equal(t, 12.0, sf[0].rate)
	assert.InDelta(t, 0.72, sf[0].achieved/sf[0].scheduled, 0.005)
}

func TestSLOOf(t *testing.T) {
	tests := []struct {
		name    string
		samples []float64
		ok      bool
		want    sloState
	}{
		// Every sample met: the level passes.
		{"all met", []float64{1, 1, 1, 1, 1, 1}, true, sloMet},
		// One of six missed: it does not (BenchmarkCapacity's rule).
		{"one missed", []float64{1, 1, 0, 1, 1, 1}, true, sloMissed},
		// All missed.
		{"all missed", []float64{0, 0}, true, sloMissed},
		// No slo-met on the lines: unknown, drawn as an ordinary point.
		{"absent", nil, false, sloUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, sloOf(Point{Samples: tt.samples}, tt.ok))
		})
	}
}

// TestLatencyRateFigure draws the checked-in -slo run's open-loop half.
func TestLatencyRateFigure(t *testing.T) {
	d := loadT(t, sloFiles...)
	figs, warnings := figureByName(t, d)
	f := figs[LatencyRatePNG]
	require.NotNil(t, f, "warnings: %v", warnings)
	require.Len(t, f.panels, 1, "TTFT and E2E panels")
	assert.Equal(t, "TTFT", f.plot.Title.Text)
	assert.Equal(t, "E2E", f.panels[0].Title.Text)
	assert.Equal(t, "target arrival rate, requests/s (log scale)", f.plot.X.Label.Text)
	for _, e := range d.Engines {
		for _, u := range []string{"ttft-p50-ns", "queued-ttft-p50-ns", "ttft-p99-ns", "queued-ttft-p99-ns",
			"e2e-p50-ns", "queued-e2e-p50-ns", "e2e-p99-ns", "queued-e2e-p99-ns"} {
			l := f.named[e+" "+u]
			require.NotNil(t, l, "%s %s", e, u)
			require.Equal(t, 5, l.XYs.Len(), "a point per rate")
			pts := d.RateSeries(u, e)
			for i, r := range []float64{2, 4, 6, 8, 12} {
				x, y := l.XYs.XY(i)
				assert.Equal(t, r, x, "x is the target rate")
				assert.Equal(t, pts[i].Median/1e6, y, "y is the median in ms")
			}
			require.NotNil(t, f.bars[e+" "+u], "6 samples: CI bars")
		}
	}
	// Coordinated omission shows: at 12/s vllm's TTFT p50 from the intended
	// send is many times the one from the send.
	_, sent := f.named["vllm ttft-p50-ns"].XYs.XY(4)
	_, queued := f.named["vllm queued-ttft-p50-ns"].XYs.XY(4)
	assert.Greater(t, queued, 10*sent)
	footer := strings.Join(f.footer, "\n")
	assert.Contains(t, footer, "x: target rate (rate=R)")
	assert.Contains(t, footer, "median of n=6 runs")
	assert.Contains(t, footer, "vllm at 12/s sent 72 %")
	assert.Equal(t, twoPanelWidth, f.width)
	require.NotNil(t, f.side)
}

func TestLatencyRateSkips(t *testing.T) {
	full := func(rate string, p99 bool) string {
		u := map[string]float64{"tok/s": 5, "ttft-p50-ns": 3e7, "queued-ttft-p50-ns": 4e7}
		if p99 {
			u["ttft-p99-ns"], u["queued-ttft-p99-ns"] = 6e7, 8e7
		}
		return rateLineOf(rate, u)
	}
	tests := []struct {
		name     string
		content  string
		drawn    bool
		panels   int
		warnings []string
		footer   string
	}{
		// Closed loop only: the chart is not drawn, and the warning says how to get it.
		{"no rates", "BenchmarkServe/concurrency=1-2\t1\t10 tok/s\t5e7 ttft-p50-ns\n", false, 0,
			[]string{"latency-rate.png: no open-loop (rate=R) results: chart not drawn (run with -rate=R1,R2,…)"}, ""},
		// TTFT without E2E: one panel, and the E2E panel's absence is a warning.
		{"no e2e", full("2", true) + full("4", true), true, 1, []string{"latency-rate.png: no e2e values on the open-loop lines: E2E panel left out"}, ""},
		// A rate whose samples were too short for a p99: that point is absent, said in the footer and a warning.
		{"tail missing at one rate", full("2", false) + full("8", true), true, 1,
			[]string{"tails absent from the open-loop lines at 1 engine-rates (e TTFT p99 at 2/s): too few requests per sample"},
			"Tails absent from the lines at 1 engine-rates (too few requests per sample: p99 needs n ≥ 368)."},
		// A zero latency cannot sit on a log axis: left out, with a warning.
		{"zero", rateLineOf("2", map[string]float64{"tok/s": 5, "ttft-p50-ns": 0}) + rateLineOf("4", map[string]float64{"tok/s": 5, "ttft-p50-ns": 3e7}), true, 1,
			[]string{"latency-rate.png: e TTFT p50 from the send at rate 2 is 0 ms: point left out of the log axis"}, ""},
		// Only zero latencies: nothing to draw.
		{"all zero", rateLineOf("2", map[string]float64{"tok/s": 5, "ttft-p50-ns": 0}), false, 0,
			[]string{"latency-rate.png: no positive TTFT values: panel left out", "latency-rate.png: no TTFT or E2E values on the open-loop lines: chart not drawn"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, warnings := latencyRateFigure(loadT(t, writeFile(t, "e.txt", tt.content)))
			assert.Equal(t, tt.drawn, f != nil)
			joined := errors.Join(warnings...)
			for _, w := range tt.warnings {
				require.Error(t, joined)
				assert.Contains(t, joined.Error(), w)
			}
			for _, w := range warnings {
				var se *SkipError
				assert.ErrorAs(t, w, &se)
			}
			if f == nil {
				return
			}
			assert.Equal(t, tt.panels, 1+len(f.panels))
			if tt.footer != "" {
				assert.Contains(t, f.footer, tt.footer)
			}
		})
	}
}

// TestGoodputFigure: goodput against both load axes, the SLO passes marked,
// the reference throughputs drawn.
func TestGoodputFigure(t *testing.T) {
	d := loadT(t, sloFiles...)
	figs, _ := figureByName(t, d)
	f := figs[GoodputPNG]
	require.NotNil(t, f)
	require.Len(t, f.panels, 1, "closed and open loop side by side")
	assert.Equal(t, "closed loop: C requests in flight", f.plot.Title.Text)
	assert.Equal(t, "open loop: arrivals at a target rate", f.panels[0].Title.Text)
	M, X := sloMet, sloMissed
	tests := []struct {
		series string
		xs     []float64
		marks  []sloState
	}{
		// vllm misses the SLO in every sample from 32 requests in flight.
		{"vllm closed goodput-req/s", []float64{1, 2, 4, 8, 16, 32, 64}, []sloState{M, M, M, M, M, X, X}},
		// friendli misses it in one of six samples at 32: not a pass.
		{"friendli closed goodput-req/s", []float64{1, 2, 4, 8, 16, 32, 64}, []sloState{M, M, M, M, M, X, X}},
		// Open loop: vllm fails from 8/s, friendli meets it at every rate.
		{"vllm open goodput-req/s", []float64{2, 4, 6, 8, 12}, []sloState{M, M, M, X, X}},
		{"friendli open goodput-req/s", []float64{2, 4, 6, 8, 12}, []sloState{M, M, M, M, M}},
	}
	for _, tt := range tests {
		t.Run(tt.series, func(t *testing.T) {
			l := f.named[tt.series]
			require.NotNil(t, l)
			engine, loop, _ := strings.Cut(tt.series, " ")
			series := d.Series
			if strings.HasPrefix(loop, "open") {
				series = d.RateSeries
			}
			pts := series(UnitGoodput, engine)
			require.Equal(t, len(tt.xs), l.XYs.Len())
			for i, x := range tt.xs {
				gx, gy := l.XYs.XY(i)
				assert.Equal(t, x, gx)
				assert.Equal(t, pts[i].Median, gy, "the median goodput")
			}
			assert.Equal(t, tt.marks, f.marks[tt.series])
			require.NotNil(t, f.bars[tt.series])
		})
	}
	// References: completed req/s (closed), sent req/s (open), the target rate.
	assert.Equal(t, 7, f.named["vllm closed req/s"].XYs.Len())
	assert.Equal(t, 5, f.named["vllm open achieved-req/s"].XYs.Len())
	tgt := f.named["target rate"]
	require.NotNil(t, tgt)
	for i := range tgt.XYs.Len() {
		x, y := tgt.XYs.XY(i)
		assert.Equal(t, x, y, "offered = the target rate")
	}
	footer := strings.Join(f.footer, "\n")
	assert.Contains(t, footer, "SLO (-slo): ttft-p99=150ms,tpot-p99=40ms.")
	assert.Contains(t, footer, "Filled: slo-met = 1")

	// Without -slo there is no goodput chart, and the warning says so.
	_, ws := goodputFigure(loadT(t, twoFiles...))
	assert.Equal(t, []string{"goodput.png: no goodput-req/s values: chart not drawn (run with -slo=…)"}, errorStrings(ws))
	// Closed-loop goodput only: one panel.
	one, _ := goodputFigure(loadT(t, writeFile(t, "e.txt",
		"BenchmarkServe/concurrency=1-2\t1\t10 tok/s\t0.1 req/s\t0.1 goodput-req/s\t1 slo-met\n")))
	require.NotNil(t, one)
	assert.Empty(t, one.panels)
	assert.Equal(t, []sloState{sloMet}, one.marks["e closed goodput-req/s"])
}

// TestFiguresOpenLoopOnly: a run of -rate alone draws its chart, warns of
// the closed-loop ones, and fails only when nothing at all can be drawn.
func TestFiguresOpenLoopOnly(t *testing.T) {
	d := loadT(t, writeFile(t, "e.txt", rateLineOf("2", map[string]float64{"tok/s": 5, "ttft-p50-ns": 3e7})))
	figs, warnings, err := figures(d)
	require.NoError(t, err)
	require.Len(t, figs, 1)
	assert.Equal(t, LatencyRatePNG, figs[0].name)
	assert.Contains(t, errorStrings(warnings), "throughput.png, latency.png, pareto.png: no closed-loop (concurrency=N) results: not drawn")

	// No latency and no goodput: no chart at all is an error.
	_, _, err = figures(loadT(t, writeFile(t, "e.txt", rateLineOf("2", map[string]float64{"tok/s": 5}))))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no chart can be drawn")
	assert.Contains(t, err.Error(), "no TTFT or E2E values on the open-loop lines")

	// Trace replays read beside other results are a warning.
	d = loadT(t, writeFile(t, "e.txt", "BenchmarkServe/trace=2x-2\t1\t5 tok/s\nBenchmarkServe/concurrency=1-2\t1\t5 tok/s\n"))
	_, warnings, err = figures(d)
	require.NoError(t, err)
	assert.Contains(t, errorStrings(warnings), "trace: 1 trace replay (trace=SPEEDx) results not plotted: a replay has no concurrency or rate to put on an axis")
}
