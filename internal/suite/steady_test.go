package suite

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/record"
)

func TestMannKendallP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		x    []float64
		want float64
	}{
		// S = 28, Var = 8·7·21/18, z = 27/√Var = 3.340: p = erfc(z/√2).
		{"rising", []float64{1, 2, 3, 4, 5, 6, 7, 8}, 0.000838},
		// The same falling: two-sided.
		{"falling", []float64{8, 7, 6, 5, 4, 3, 2, 1}, 0.000838},
		// No trend at all.
		{"constant", []float64{5, 5, 5, 5, 5, 5, 5, 5}, 1},
		// Four points cannot reach p < 0.05 (S = 6, z = 5/√8.67 = 1.70).
		{"four rising", []float64{1, 2, 3, 4}, 0.0894},
		// Alternating: S = 10 − 6 = 4; two tie groups of 4 cut the variance
		// to (8·7·21 − 2·4·3·13)/18 = 48: z = 3/√48, p = 0.665.
		{"zigzag", []float64{1, 3, 1, 3, 1, 3, 1, 3}, 0.665},
		// One step up: S = 16, Var = 48, z = 15/√48 = 2.165.
		{"step", []float64{1, 1, 1, 1, 2, 2, 2, 2}, 0.0304},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.InDelta(t, tt.want, mannKendallP(tt.x), tt.want*0.01+1e-9)
		})
	}
}

func TestTheilSenChange(t *testing.T) {
	t.Parallel()
	// A line from 100 to 130 over 8 points: slope 30/7, × 7 ÷ median 115.
	x := make([]float64, 8)
	for i := range x {
		x[i] = 100 + 30*float64(i)/7
	}
	assert.InDelta(t, 30.0/115, theilSenChange(x), 1e-9)
	// One outlier does not move the median slope.
	y := []float64{100, 100, 100, 100, 100, 100, 100, 500}
	assert.InDelta(t, 0, theilSenChange(y), 1e-9)
}

// closedLoop builds the records of a closed loop at concurrency c: every
// slot sends its next request when the previous one ends; the first of
// each slot is a warm-up, the next measured ones (in send order) are
// measured, the rest cooldown. A request sent at t has TTFT ttft and 16
// one-token chunks tpot(t) apart. The window is the measured requests'
// first send to last end, as load.Run computes it.
func closedLoop(c, measured int, ttft time.Duration, tpot func(t time.Duration) time.Duration) ([]record.Record, load.Window) {
	const tokens = 16
	var warm, rest []record.Record
	for slot := range c {
		at := time.Duration(slot) * 60 * time.Millisecond / time.Duration(c) // starts spread over one request
		for k := range measured/c + 3 {
			r := record.Record{Concurrency: c, Sent: at, OutputTokens: tokens, TokenSource: record.Usage, Phase: record.Cooldown}
			next := at + ttft
			for range tokens {
				r.Chunks = append(r.Chunks, record.Chunk{At: next, Tokens: 1})
				next += tpot(at)
			}
			r.Done = r.Chunks[tokens-1].At
			at = r.Done
			if k == 0 {
				r.Phase = record.Warmup
				warm = append(warm, r)
				continue
			}
			rest = append(rest, r)
		}
	}
	slices.SortFunc(rest, func(a, b record.Record) int { return int(a.Sent - b.Sent) })
	var w load.Window
	for i := range min(measured, len(rest)) {
		rest[i].Phase = record.Measured
		if i == 0 {
			w.Start = rest[i].Sent
		}
		w.End = max(w.End, rest[i].Done)
	}
	return append(warm, rest...), w
}

func TestCheckSteady(t *testing.T) {
	t.Parallel()
	const ttft = 30 * time.Millisecond
	flat := func(time.Duration) time.Duration { return 2 * time.Millisecond }
	// TPOT rising by 60 % per second of the run: the engine slows down.
	rising := func(t time.Duration) time.Duration {
		return time.Duration(float64(2*time.Millisecond) * (1 + 0.6*t.Seconds()))
	}
	// A little deterministic noise, ±3 %, no trend.
	noisy := func(t time.Duration) time.Duration {
		return time.Duration(float64(2*time.Millisecond) * (1 + 0.03*math.Sin(float64(t.Microseconds()))))
	}
	tests := []struct {
		name          string
		c, measured   int
		tpot          func(time.Duration) time.Duration
		verified      bool
		steady        bool
		drifting      []string
		whyOrDescribe string
	}{
		// Constant speed: every metric flat.
		{"flat", 4, 64, flat, true, true, nil, "16.0 rounds, 8 blocks"},
		// Noise without a trend is not flagged.
		{"noisy", 4, 64, noisy, true, true, nil, "tok/s"},
		// A slowing engine: per-user speed and system tok/s both drift.
		{"slowing", 4, 64, rising, true, false, []string{"tok/s", "tpot-p50"}, "DRIFTS: tpot-p50"},
		// Two rounds at concurrency 8 are too short to judge (MLPerf's
		// MIN_TREND_N): not verified, with what would make it so.
		{"too short", 8, 16, flat, false, false, nil, "-benchtime=32x"},
		// Fewer measured requests than blocks, even at concurrency 1.
		{"fewer than the blocks", 1, 5, flat, false, false, nil, "at least 8 needed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, w := closedLoop(tt.c, tt.measured, ttft, tt.tpot)
			st := checkSteady(recs, w, tt.c)
			assert.Equal(t, tt.verified, st.Verified, st.describe())
			assert.Equal(t, tt.steady, st.Steady, st.describe())
			var drifting []string
			for _, tr := range st.Trends {
				if tr.Drifts {
					drifting = append(drifting, tr.Metric)
				}
			}
			assert.Equal(t, tt.drifting, drifting, st.describe())
			assert.Contains(t, st.describe(), tt.whyOrDescribe)
		})
	}
}

func TestCheckSteadyIgnoresFailuresForLatency(t *testing.T) {
	t.Parallel()
	recs, w := closedLoop(2, 32, 30*time.Millisecond, func(time.Duration) time.Duration { return 2 * time.Millisecond })
	// A failed measured request has no latency to test, but counts as a
	// measured request for the rounds.
	for i := range recs {
		if recs[i].Phase == record.Measured {
			recs[i].Error, recs[i].Chunks = record.HTTPStatus, nil
			break
		}
	}
	st := checkSteady(recs, w, 2)
	require.True(t, st.Verified, st.describe())
	assert.True(t, st.Steady, st.describe())
	assert.InDelta(t, 16, st.Rounds, 1e-9)
}

func TestSteadyComment(t *testing.T) {
	t.Parallel()
	ok := steadyCheck{Verified: true, Steady: true, Rounds: 4, Trends: []trend{{Metric: "tok/s", P: 0.5, Change: 0.01}}}
	assert.Equal(t, "# steady state verified sample 2 at concurrency=8: 4.0 rounds, 8 blocks: tok/s +1% (Mann–Kendall p=0.50)", steadyComment(ok, 2, "concurrency=8"))
	bad := steadyCheck{Verified: true, Rounds: 4, Trends: []trend{{Metric: "tpot-p50", P: 0.001, Change: 0.3, Drifts: true}}}
	assert.Equal(t, "# NOT STEADY sample 0 at concurrency=8: 4.0 rounds, 8 blocks: DRIFTS: tpot-p50 +30% (Mann–Kendall p=0.00)", steadyComment(bad, 0, "concurrency=8"))
	short := steadyCheck{Why: "too short"}
	assert.Equal(t, "# STEADY STATE NOT VERIFIED sample 0 at concurrency=8: too short", steadyComment(short, 0, "concurrency=8"))
}
