package plots

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot/plotter"

	"github.com/inferbench/inferbench/internal/report"
)

func TestParetoFrontier(t *testing.T) {
	pt := func(c int, x, y float64) paretoPoint { return paretoPoint{c: c, perUser: x, system: y} }
	tests := []struct {
		name string
		in   []paretoPoint
		want []int // levels on the frontier, slowest per user first
	}{
		// More users: more system tok/s, fewer per user; every level is on the frontier.
		{"monotone", []paretoPoint{pt(1, 90, 90), pt(4, 80, 320), pt(16, 50, 800)}, []int{16, 4, 1}},
		// Level 8 is beaten on both axes by level 4 (past saturation): off the frontier.
		{"dominated", []paretoPoint{pt(1, 90, 90), pt(4, 80, 320), pt(8, 70, 300)}, []int{4, 1}},
		// Equal per-user rates: only the higher system rate counts.
		{"tie", []paretoPoint{pt(1, 50, 40), pt(2, 50, 60)}, []int{2}},
		// Identical points: one of them.
		{"duplicate", []paretoPoint{pt(1, 50, 60), pt(2, 50, 60)}, []int{1}},
		// A single level is its own frontier.
		{"single", []paretoPoint{pt(1, 5, 5)}, []int{1}},
		// Nothing in, nothing out.
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			for _, p := range paretoFrontier(tt.in) {
				got = append(got, p.c)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParetoSteps(t *testing.T) {
	pt := func(x, y float64) paretoPoint { return paretoPoint{perUser: x, system: y} }
	tests := []struct {
		name  string
		front []paretoPoint
		want  plotter.XYs
	}{
		// Right of each point the curve drops to the next point's system
		// rate and runs flat to it: no line joins two points directly.
		{"three", []paretoPoint{pt(1, 30), pt(2, 20), pt(3, 10)},
			plotter.XYs{{X: 1, Y: 30}, {X: 1, Y: 20}, {X: 2, Y: 20}, {X: 2, Y: 10}, {X: 3, Y: 10}}},
		// One point: a point, nothing drawn beyond it (no extrapolation).
		{"one", []paretoPoint{pt(4, 4)}, plotter.XYs{{X: 4, Y: 4}}},
		// No frontier, no steps.
		{"none", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, paretoSteps(tt.front))
		})
	}
}

// sloSummary writes a summary.json for testdata/slo whose pooled TPOT p90 is
// 1.25 × the median of the lines' tpot-p50-ns at each level: too few
// requests to certify it at concurrency 1, and no entry at all for
// friendli at 64. Its TTFT and ITL are the lines' medians.
func sloSummary(t *testing.T, d *Data) string {
	t.Helper()
	f := &report.File{Schema: report.Schema, Levels: d.Levels()}
	for _, e := range d.Engines {
		f.Engines = append(f.Engines, report.Engine{Name: e})
		for _, pt := range d.Series(UnitTPOTP50, e) {
			c := pt.Concurrency
			if e == "friendli" && c == 64 {
				continue
			}
			v := time.Duration(1.25 * pt.Median)
			tl := report.Tail{P: 90, N: 60 * c, Value: v, NeedN: report.MinForCI(90, report.Confidence)}
			lo, hi := v-v/20, v+v/20
			tl.Lo, tl.Hi, tl.Certified = &lo, &hi, true
			if c == 1 {
				tl.N, tl.Hi, tl.Certified = 20, nil, false
			}
			p := report.Pooled{Engine: e, Concurrency: c}
			p.TPOT.N = tl.N
			p.TPOT.P90 = tl
			// The latency chart's pooled values: the lines' medians.
			for _, m := range []struct {
				dst  *report.Tail
				unit string
				p    float64
			}{{&p.TTFT.P50, UnitTTFTP50, 50}, {&p.TTFT.P99, UnitTTFTP99, 99}, {&p.ITL.P50, UnitITLP50, 50}} {
				v := time.Duration(byLevel(d.Series(m.unit, e))[c].Median)
				*m.dst = report.Tail{P: m.p, N: 60 * c, Value: v, Lo: &v, Hi: &v, Certified: true, NeedN: report.MinForCI(m.p, report.Confidence)}
			}
			f.Pooled = append(f.Pooled, p)
		}
	}
	path := filepath.Join(t.TempDir(), "summary.json")
	require.NoError(t, report.Write(path, f))
	return path
}

func TestParetoPoints(t *testing.T) {
	slo := loadT(t, sloFiles...)
	pooled := loadT(t, append(append([]string(nil), sloFiles...), sloSummary(t, slo))...)
	lineP90 := loadT(t, writeFile(t, "e.txt", "slo: x\n"+
		"BenchmarkServe/concurrency=1-2\t40\t1 ns/op\t100 tok/s\t1e7 tpot-p50-ns\t2e7 tpot-p90-ns\t1 slo-met\n"+
		"BenchmarkServe/concurrency=2-2\t40\t1 ns/op\t180 tok/s\t1.25e7 tpot-p50-ns\t2.5e7 tpot-p90-ns\t0 slo-met\n"+
		"BenchmarkServe/concurrency=4-2\t8\t1 ns/op\t300 tok/s\t2e7 tpot-p50-ns\t1 slo-met\n"))
	M, X := sloMet, sloMissed
	tests := []struct {
		name string
		d    *Data
		p    int
		src  tpotSource
		want []paretoPoint
		left []leftOut
	}{
		// p90 from the lines: 1e9 / tpot-p90-ns; level 4's sample (8 requests) carried none.
		{"line p90", lineP90, 90, tpotLines,
			[]paretoPoint{{1, 50, 100, M}, {2, 40, 180, X}},
			[]leftOut{{"e", 4, "no tpot-p90-ns on its lines", true}}},
		// p50 from the lines, every level.
		{"line p50", lineP90, 50, tpotLines,
			[]paretoPoint{{1, 100, 100, M}, {2, 80, 180, X}, {4, 50, 300, M}}, nil},
		// p90 pooled: 1e9 / (1.25 × the p50 median); level 1 uncertified, friendli 64 absent.
		{"pooled p90", pooled, 90, tpotPooled, nil, []leftOut{
			{"friendli", 1, "pooled TPOT p90 of n=20 < 36 cannot be bounded", true},
			{"friendli", 64, noPooledTPOT, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.src, p90Source(tt.d))
			e := tt.d.Engines[0]
			pts, left := paretoPoints(tt.d, e, tt.p, tt.src)
			assert.Equal(t, tt.left, left)
			if tt.want != nil {
				assert.Equal(t, tt.want, pts)
				return
			}
			// The pooled case, against the summary's own numbers.
			p50 := byLevel(tt.d.Series(UnitTPOTP50, e))
			tput := byLevel(tt.d.Series(UnitTokPerSec, e))
			require.Len(t, pts, 5, "levels 2 to 32")
			for _, pt := range pts {
				assert.Equal(t, 1e9/float64(time.Duration(1.25*p50[pt.c].Median)), pt.perUser, "c=%d", pt.c)
				assert.Equal(t, tput[pt.c].Median, pt.system)
			}
			assert.Equal(t, []sloState{M, M, M, M, X}, []sloState{pts[0].slo, pts[1].slo, pts[2].slo, pts[3].slo, pts[4].slo},
				"friendli missed the SLO in a sample at 32")
		})
	}
	assert.Equal(t, tpotNone, p90Source(slo), "no p90 on the lines and no summary")
}

// TestParetoFigure: both curves as steps, labelled with their source, the
// SLO passes marked; without a p90 anywhere, p50 alone and a warning.
func TestParetoFigure(t *testing.T) {
	slo := loadT(t, sloFiles...)
	d := loadT(t, append(append([]string(nil), sloFiles...), sloSummary(t, slo))...)
	figs, warnings := figureByName(t, d)
	f := figs[ParetoPNG]
	require.NotNil(t, f)
	M, X := sloMet, sloMissed
	// vllm: p90 from level 2 (level 1 uncertified), p50 at every level.
	assert.Equal(t, []sloState{M, M, M, M, X, X}, f.marks["vllm p90"])
	assert.Equal(t, []sloState{M, M, M, M, M, X, X}, f.marks["vllm p50"])
	// Every vllm level is on its frontier: 6 points make 11 step vertices.
	require.NotNil(t, f.named["vllm p90"])
	assert.Equal(t, 11, f.named["vllm p90"].XYs.Len())
	assert.Equal(t, 13, f.named["vllm p50"].XYs.Len())
	assert.NotNil(t, f.named["friendli p90"])
	footer := strings.Join(f.footer, "\n")
	assert.Contains(t, footer, "Per user: 1000/TPOT p90 (p90 pooled over all requests, summary.json, solid ●); 1000/TPOT p50 (median of samples' p50, dashed ■).")
	assert.Contains(t, footer, "no interpolation")
	assert.Contains(t, footer, "Filled: slo-met = 1 in every sample at that level (SLO ttft-p99=150ms,tpot-p99=40ms)")
	assert.Contains(t, footer, "TPOT p90 left out at 2 engine-levels: too few requests to bound it (needs n ≥ 36).")
	joined := strings.Join(errorStrings(warnings), "\n")
	assert.Contains(t, joined, "pareto.png: TPOT p90 left out at 1 engine-levels that the summary.json has no TPOT for (friendli c=64)")
	assert.Contains(t, joined, "pareto.png: TPOT p90 left out at 2 engine-levels with fewer than 36 requests (friendli c=1, vllm c=1)")

	// No summary: the p50 steps alone, and the missing p90 is a warning.
	figs, warnings = figureByName(t, slo)
	f = figs[ParetoPNG]
	require.NotNil(t, f)
	assert.Nil(t, f.named["vllm p90"])
	assert.NotNil(t, f.named["vllm p50"])
	assert.Contains(t, errorStrings(warnings), "pareto.png: no TPOT p90: the result lines carry none and no summary.json was given: the 1000/TPOT p90 curve is left out")
	assert.Contains(t, strings.Join(f.footer, "\n"), "Per user: 1000/TPOT p50 (median of samples' p50, dashed ■).")
}
