package plots

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/report"
)

// pooledSummary writes a summary.json with pooled latencies for the engines
// of twoFiles at every level: TTFT p50 = c ms, TTFT p99 = 10·c ms (certified
// only from level 8 up), ITL p50 = c/10 ms, every CI ±10 %.
func pooledSummary(t *testing.T, levels []int) string {
	t.Helper()
	tail := func(p float64, v time.Duration, certified bool) report.Tail {
		tl := report.Tail{P: p, N: 1000, Value: v, NeedN: report.MinForCI(p, report.Confidence)}
		lo := v - v/10
		tl.Lo = &lo
		if certified {
			hi := v + v/10
			tl.Hi = &hi
			tl.Certified = true
		} else {
			tl.N = 100
		}
		return tl
	}
	f := &report.File{Schema: report.Schema, Levels: levels}
	for _, e := range []string{"vllm", "friendli"} {
		f.Engines = append(f.Engines, report.Engine{Name: e})
		for _, c := range levels {
			ms := time.Duration(c) * time.Millisecond
			p := report.Pooled{Engine: e, Concurrency: c}
			p.TTFT.P50 = tail(50, ms, true)
			p.TTFT.P99 = tail(99, 10*ms, c >= 8)
			p.ITL.P50 = tail(50, ms/10, true)
			f.Pooled = append(f.Pooled, p)
		}
	}
	path := filepath.Join(t.TempDir(), "summary.json")
	require.NoError(t, report.Write(path, f))
	return path
}

// TestLatencyDrawsPooledTails: given a summary.json, the latency chart draws
// its pooled percentiles with their CIs as bars, and leaves out a p99 the
// pooled sample cannot bound, saying so.
func TestLatencyDrawsPooledTails(t *testing.T) {
	levels := loadT(t, twoFiles...).Levels()
	d := loadT(t, append(append([]string(nil), twoFiles...), pooledSummary(t, levels))...)
	require.NotNil(t, d.Pooled)
	figs, warnings := figureByName(t, d)
	lat := figs[LatencyPNG]
	require.NotNil(t, lat)
	ls := lat.lines["vllm"]
	require.Len(t, ls, 3, "TTFT p50, TTFT p99, ITL p50")
	for i, c := range levels {
		x, y := ls[0].XYs.XY(i)
		assert.Equal(t, [2]float64{float64(c), float64(c)}, [2]float64{x, y}, "TTFT p50 is the pooled value in ms")
	}
	certified := 0
	for _, c := range levels {
		if c >= 8 {
			certified++
		}
	}
	require.Equal(t, certified, ls[1].XYs.Len(), "p99 only where certified")
	x, y := ls[1].XYs.XY(0)
	assert.Equal(t, [2]float64{8, 80}, [2]float64{x, y})
	bars := lat.bars["vllm TTFT p99"]
	require.NotNil(t, bars)
	assert.InDelta(t, 8, bars.YErrors[0].Low, 1e-9, "the CI's lower end: 72 ms")
	assert.InDelta(t, 8, bars.YErrors[0].High, 1e-9)
	assert.Contains(t, strings.Join(lat.footer, " "), "pooled")
	assert.Contains(t, strings.Join(lat.footer, " "), "TTFT p99 left out")
	var found bool
	for _, w := range warnings {
		found = found || strings.Contains(w.Error(), "TTFT p99 left out")
	}
	assert.True(t, found, "the leftover p99 is a warning: %v", warnings)

	// Without the summary the chart is the per-sample medians, as before.
	plain, _ := figureByName(t, loadT(t, twoFiles...))
	assert.Equal(t, len(levels), plain[LatencyPNG].lines["vllm"][1].XYs.Len())
}

func TestLoadSummaryErrors(t *testing.T) {
	levels := loadT(t, twoFiles...).Levels()
	sum := pooledSummary(t, levels)
	_, err := Load(append(append([]string(nil), twoFiles...), sum, sum))
	assert.ErrorContains(t, err, "only one summary.json")
	bad := filepath.Join(t.TempDir(), "summary.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"schema":"other"}`), 0o644))
	_, err = Load(append(append([]string(nil), twoFiles...), bad))
	assert.ErrorContains(t, err, "schema")
	_, err = Load([]string{sum})
	assert.ErrorContains(t, err, "no input files", "a summary alone has no result lines")
}
