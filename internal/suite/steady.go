package suite

// The steady-state check of a closed-loop sample (-concurrency=auto's
// points), after MLPerf Endpoints' reporting basis (endpoints_rules.md
// §4.4): the gating metrics must show no trend across blocks of the
// sample's requests in issue order.

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/metrics"
	"github.com/inferbench/inferbench/internal/record"
)

// The steady-state rule (see checkSteady).
const (
	// steadyRounds is the fewest rounds of measured requests (c each at
	// concurrency c) a sample needs for its steady state to be checked:
	// MLPerf Endpoints' MIN_TREND_N of 4 super-passes, a round being our
	// closed loop's pass (every slot carries one request).
	steadyRounds = 4
	// steadyBlocks is the number of issue-order blocks (and of time slices
	// of the window, for tok/s) the trend is tested over. Mann–Kendall
	// cannot reject at p < 0.05 with 4 points (its smallest two-sided p is
	// 0.08); with 8 a steady monotone run of 6 of the 7 steps can.
	steadyBlocks = 8
	// steadyAlpha is the trend test's significance level (MLPerf's
	// steady_state_diagnostics default).
	steadyAlpha = 0.05
	// steadyChange is the smallest drift across the sample, as a fraction
	// of the metric's median, that fails the check: a statistically
	// significant trend smaller than this is reported, not flagged.
	steadyChange = 0.10
)

// steadyMinMeasured is the fewest measured requests that let a sample at
// concurrency c be checked: steadyRounds rounds, and at least one request
// per block.
func steadyMinMeasured(c int) int { return max(steadyRounds*c, steadyBlocks) }

// steadyRule states the check for the header and docs/load.md.
func steadyRule() string {
	return fmt.Sprintf("tok/s over %d equal slices of the window, and tpot-p50 and ttft-p50 over %d blocks of the measured requests in send order, show no Mann–Kendall trend at p < %.2f that moves them more than ±%.0f%% (Theil–Sen) across the sample; at least %d rounds of C measured requests (MLPerf Endpoints §4.4: gating metrics, MIN_TREND_N = 4)",
		steadyBlocks, steadyBlocks, steadyAlpha, 100*steadyChange, steadyRounds)
}

// steadyCheck is a sample's steady-state verdict.
type steadyCheck struct {
	// Verified is set when the sample was long enough to check; Steady
	// when it was checked and no gating metric drifts.
	Verified, Steady bool
	// Rounds is the measured requests ÷ the level.
	Rounds float64
	Trends []trend
	// Why says why the check could not run (Verified false).
	Why string
}

// trend is one gating metric's test.
type trend struct {
	Metric string
	// P is Mann–Kendall's two-sided p-value; Change the Theil–Sen slope
	// × (blocks − 1) ÷ the median: the fitted change across the sample.
	P, Change float64
	Drifts    bool
}

// checkSteady checks the steady state of a closed-loop sample at
// concurrency c from its records and measured window: the sample must have
// steadyRounds rounds of measured requests, and none of the gating metrics
// may drift. The gating metrics are the two coordinates of the Pareto
// point, system tok/s (output tokens per slice, OutputSeries, over
// steadyBlocks equal slices of the window) and per-user speed (the median
// TPOT of each of steadyBlocks blocks of the successful measured requests
// in send order), and the median TTFT per block (MLPerf Endpoints gates on
// TTFT and TPOT). A metric drifts when Mann–Kendall finds a trend at
// p < steadyAlpha and the Theil–Sen fit moves it by more than steadyChange
// across the sample. MLPerf Endpoints also bounds each metric's
// coefficient of variation; this check does not: blocks of one round at
// low concurrency vary by chance more than its 3–8 % bounds, and a point
// flagged for noise would hide the ones flagged for drift.
func checkSteady(recs []record.Record, w load.Window, c int) steadyCheck {
	var ok []*record.Record
	measured := 0
	for i := range recs {
		r := &recs[i]
		if r.Phase != record.Measured || r.Error == record.Canceled {
			continue
		}
		measured++
		if !r.Failed() && r.HasFirstToken() {
			ok = append(ok, r)
		}
	}
	st := steadyCheck{Rounds: float64(measured) / float64(max(c, 1))}
	switch {
	case measured < steadyMinMeasured(c):
		st.Why = fmt.Sprintf("%d measured requests (%.1f rounds) at concurrency %d: at least %d needed, %d rounds and one per block (-benchtime=%dx or more, or no -benchtime)",
			measured, st.Rounds, c, steadyMinMeasured(c), steadyRounds, steadyMinMeasured(c))
		return st
	case len(ok) < steadyBlocks:
		st.Why = fmt.Sprintf("%d of %d measured requests succeeded: at least %d needed, one per block", len(ok), measured, steadyBlocks)
		return st
	case w.Len() <= 0:
		st.Why = "empty window"
		return st
	}
	slices.SortStableFunc(ok, func(a, b *record.Record) int { return cmp.Compare(a.Sent, b.Sent) })
	bucket := (w.Len() + steadyBlocks - 1) / steadyBlocks
	series, err := metrics.OutputSeries(recs, w, bucket)
	if err != nil {
		st.Why = err.Error()
		return st
	}
	st.Verified = true
	st.Trends = append(st.Trends, testTrend("tok/s", series))
	for _, g := range []struct {
		name string
		of   func(*record.Record) (time.Duration, bool)
	}{{"tpot-p50", (*record.Record).TPOT}, {"ttft-p50", (*record.Record).TTFT}} {
		var medians []float64
		for b := range steadyBlocks {
			var ds []time.Duration
			for _, r := range ok[b*len(ok)/steadyBlocks : (b+1)*len(ok)/steadyBlocks] {
				if d, ok := g.of(r); ok {
					ds = append(ds, d)
				}
			}
			if len(ds) == 0 {
				medians = nil // a block without values (one-token outputs have no TPOT)
				break
			}
			slices.Sort(ds)
			medians = append(medians, float64(metrics.Percentile(ds, 50)))
		}
		if medians != nil {
			st.Trends = append(st.Trends, testTrend(g.name, medians))
		}
	}
	st.Steady = true
	for _, t := range st.Trends {
		st.Steady = st.Steady && !t.Drifts
	}
	return st
}

func testTrend(name string, x []float64) trend {
	t := trend{Metric: name, P: mannKendallP(x), Change: theilSenChange(x)}
	t.Drifts = t.P < steadyAlpha && math.Abs(t.Change) > steadyChange
	return t
}

// mannKendallP is the two-sided p-value of the Mann–Kendall trend test of
// x in order: S = Σ_{i<j} sign(x_j − x_i), its variance under no trend
// with the tie correction, z = (S − sign S)/√Var (continuity correction),
// p = erfc(|z|/√2). A constant series has p = 1.
func mannKendallP(x []float64) float64 {
	n := len(x)
	s := 0.0
	for i := range n {
		for j := i + 1; j < n; j++ {
			switch {
			case x[j] > x[i]:
				s++
			case x[j] < x[i]:
				s--
			}
		}
	}
	v := float64(n*(n-1)*(2*n+5)) / 18
	sorted := slices.Clone(x)
	slices.Sort(sorted)
	for i := 0; i < n; {
		j := i
		for j < n && sorted[j] == sorted[i] {
			j++
		}
		t := float64(j - i)
		v -= t * (t - 1) * (2*t + 5) / 18
		i = j
	}
	if v <= 0 || s == 0 {
		return 1
	}
	z := (math.Abs(s) - 1) / math.Sqrt(v)
	return math.Erfc(z / math.Sqrt2)
}

// theilSenChange is the median pairwise slope of x × (len − 1) ÷ the
// median of x: the relative change a robust line fit puts across x.
func theilSenChange(x []float64) float64 {
	n := len(x)
	if n < 2 {
		return 0
	}
	var slopes []float64
	for i := range n {
		for j := i + 1; j < n; j++ {
			slopes = append(slopes, (x[j]-x[i])/float64(j-i))
		}
	}
	med := median(slices.Clone(x))
	if med == 0 {
		return 0
	}
	return median(slopes) * float64(n-1) / med
}

func median(x []float64) float64 {
	slices.Sort(x)
	n := len(x)
	if n%2 == 1 {
		return x[n/2]
	}
	return (x[n/2-1] + x[n/2]) / 2
}

// describe is the verdict as one line (after "steady state" or the flag).
func (st steadyCheck) describe() string {
	if !st.Verified {
		return st.Why
	}
	parts := make([]string, len(st.Trends))
	for i, t := range st.Trends {
		parts[i] = fmt.Sprintf("%s %+.0f%% (Mann–Kendall p=%.2f)", t.Metric, 100*t.Change, t.P)
		if t.Drifts {
			parts[i] = "DRIFTS: " + parts[i]
		}
	}
	return fmt.Sprintf("%.1f rounds, %d blocks: %s", st.Rounds, steadyBlocks, strings.Join(parts, ", "))
}

// steadyComment is the result file's '#' line for a sample's verdict.
func steadyComment(st steadyCheck, n int, level string) string {
	switch {
	case !st.Verified:
		return fmt.Sprintf("# STEADY STATE NOT VERIFIED sample %d at %s: %s", n, level, st.describe())
	case !st.Steady:
		return fmt.Sprintf("# NOT STEADY sample %d at %s: %s", n, level, st.describe())
	}
	return fmt.Sprintf("# steady state verified sample %d at %s: %s", n, level, st.describe())
}
