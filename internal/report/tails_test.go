package report

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMinForCI(t *testing.T) {
	tests := []struct {
		p    float64
		want int
	}{
		{50, 6},  // benchstat's rule: a finite 95 % CI of the median needs 6 samples
		{90, 36}, // 0.9^36 = 0.0225 ≤ 0.025 < 0.9^35
		{95, 72}, // 0.95^72 = 0.0249
		{99, 368},
		{1, 368}, // symmetric: the low tail needs as many
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, MinForCI(tt.p, Confidence), "p%g", tt.p)
		n := tt.want
		lo, hi := QuantileCI(n, tt.p, Confidence)
		assert.True(t, lo > 0 && hi > 0, "p%g: n=%d must give both bounds (%d, %d)", tt.p, n, lo, hi)
		lo, hi = QuantileCI(n-1, tt.p, Confidence)
		assert.False(t, lo > 0 && hi > 0, "p%g: n=%d must not give both bounds (%d, %d)", tt.p, n-1, lo, hi)
	}
}

func TestQuantileCI(t *testing.T) {
	tests := []struct {
		n      int
		p      float64
		lo, hi int
	}{
		// The textbook 95 % CI of the median of 100 values: X(40)…X(61).
		{100, 50, 40, 61},
		// Six values: the whole sample, coverage 1 − 2/64.
		{6, 50, 1, 6},
		// Five values: no order statistic is safe on either side.
		{5, 50, 0, 0},
		// A p99 from 12 values: bounded below (X(11)), not above.
		{12, 99, 11, 0},
		// Nothing at all.
		{0, 99, 0, 0},
	}
	for _, tt := range tests {
		lo, hi := QuantileCI(tt.n, tt.p, Confidence)
		assert.Equal(t, [2]int{tt.lo, tt.hi}, [2]int{lo, hi}, "n=%d p%g", tt.n, tt.p)
	}
}

// TestQuantileCICoverage checks the ranks against an independent exact
// computation of the coverage P(lo ≤ B < hi), B ~ Binomial(n, p), by the
// pmf recurrence: at least 95 %, and each side's miss at most 2.5 %, with
// no rank that could move inward and still hold.
func TestQuantileCICoverage(t *testing.T) {
	for _, n := range []int{6, 20, 36, 72, 100, 368, 500, 2000, 20000} {
		for _, p := range []float64{50, 90, 95, 99} {
			lo, hi := QuantileCI(n, p, Confidence)
			if n < MinForCI(p, Confidence) {
				continue
			}
			require.True(t, lo > 0 && hi > 0, "n=%d p%g", n, p)
			cdf := exactCDF(n, p/100) // cdf[k] = P(B ≤ k)
			below := cdf[lo-1]        // P(B < lo) = P(B ≤ lo−1)
			above := 1 - cdf[hi-1]    // P(B ≥ hi)
			assert.LessOrEqual(t, below, 0.025+1e-9, "n=%d p%g lower miss", n, p)
			assert.LessOrEqual(t, above, 0.025+1e-9, "n=%d p%g upper miss", n, p)
			assert.Greater(t, cdf[lo], 0.025, "n=%d p%g: lo+1 would also hold, lo is not the tightest", n, p)
			if hi >= 2 {
				assert.Greater(t, 1-cdf[hi-2], 0.025, "n=%d p%g: hi−1 would also hold", n, p)
			}
		}
	}
}

// exactCDF is P(B ≤ k) for k = 0…n by the pmf recurrence in log space.
func exactCDF(n int, q float64) []float64 {
	lp := make([]float64, n+1)
	lp[0] = float64(n) * math.Log1p(-q)
	for k := 1; k <= n; k++ {
		lp[k] = lp[k-1] + math.Log(float64(n-k+1)/float64(k)) + math.Log(q) - math.Log1p(-q)
	}
	cdf := make([]float64, n+1)
	s := 0.0
	for k := range lp {
		s += math.Exp(lp[k])
		cdf[k] = s
	}
	return cdf
}

// TestTailCoversTheTruePercentile draws samples from a known distribution
// (exponential, whose p99 is ln(100)·mean) and checks the interval holds
// the true value about 95 % of the time, never much less.
func TestTailCoversTheTruePercentile(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const trials, n = 1000, 500
	truth := time.Duration(math.Log(100) * float64(time.Millisecond))
	hits := 0
	for range trials {
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = time.Duration(r.ExpFloat64() * float64(time.Millisecond))
		}
		slices.Sort(s)
		tl := NewTail(s, 99)
		require.True(t, tl.Certified)
		if *tl.Lo <= truth && truth <= *tl.Hi {
			hits++
		}
	}
	assert.InDelta(t, 0.96, float64(hits)/trials, 0.025, "coverage of the 95 %% interval")
}

func TestNewTail(t *testing.T) {
	s := make([]time.Duration, 12)
	for i := range s {
		s[i] = time.Duration(i+1) * time.Millisecond
	}
	tl := NewTail(s, 99)
	assert.False(t, tl.Certified, "12 values cannot certify a p99")
	require.NotNil(t, tl.Lo)
	assert.Equal(t, 11*time.Millisecond, *tl.Lo)
	assert.Nil(t, tl.Hi)
	assert.Equal(t, "— (n=12<368)", tl.String())
	med := NewTail(s, 50)
	assert.True(t, med.Certified)
	assert.Equal(t, 6500*time.Microsecond, med.Value)
	assert.Equal(t, "6.50ms [3.00ms, 10.0ms]", med.String())
	assert.Equal(t, "—", NewTail(nil, 99).String())
}

func BenchmarkQuantileCI(b *testing.B) {
	for b.Loop() {
		QuantileCI(1_000_000, 99, Confidence)
	}
}
