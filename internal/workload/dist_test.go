package workload

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDist(t *testing.T) {
	tests := []struct {
		in    string
		fixed int
		want  string // String() of the result, or the error's text
		err   bool
	}{
		{"", 32, "32", false},                                // empty is the fixed length
		{"", 0, "dataset", false},                            // empty without a length is the dataset's
		{"fixed", 7, "7", false},                             // explicit fixed
		{"dataset", 0, "dataset", false},                     // explicit dataset lengths
		{"uniform:16,256", 0, "uniform:16,256", false},       // the documented form
		{"uniform:16-256", 0, "uniform:16,256", false},       // the older form still parses
		{"uniform: 16 , 256", 0, "uniform:16,256", false},    // spaces are tolerated
		{"normal:128,32", 0, "normal:128,32", false},         // normal
		{"lognormal:200,150", 0, "lognormal:200,150", false}, // lognormal
		{"lognormal:200", 0, "lognormal:MEAN,SD", true},      // missing SD
		{"lognormal:0.5,1", 0, "MEAN ≥ 1", true},             // mean below one token
		{"uniform:0,4", 0, "1 ≤ LO ≤ HI", true},              // zero-length requests
		{"uniform:16,256", 8, "not both", true},              // ambiguous with a fixed length
		{"dataset:1", 0, "no argument", true},                // stray argument
		{"zipf:1.1", 0, `unknown kind "zipf"`, true},         // unknown kind lists the kinds
		{"normal:nan,1", 0, "MEAN ≥ 1", true},                // NaN is not a mean
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, err := ParseDist("output", tt.in, tt.fixed)
			if tt.err {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.want)
				assert.Contains(t, err.Error(), "output distribution")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, d.String())
		})
	}
}

// TestDistDraws checks each kind's draws over 4000 seqs: in range, with
// the distribution's mean and spread, and the same for the same seed.
func TestDistDraws(t *testing.T) {
	tests := []struct {
		spec           string
		lo, hi         int     // every draw in [lo, hi]
		mean, sd, tolM float64 // sample moments within tolM (relative) of these
	}{
		// uniform:16,256 reaches both ends; mean 136, sd (241²−1)/12 ≈ 69.6.
		{"uniform:16,256", 16, 256, 136, 69.6, 0.05},
		// normal:128,32: mean and sd as given.
		{"normal:128,32", 1, math.MaxInt, 128, 32, 0.05},
		// lognormal:200,150: the lengths' own mean and sd are the parameters.
		{"lognormal:200,150", 1, math.MaxInt, 200, 150, 0.1},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			d, err := ParseDist("input", tt.spec, 0)
			require.NoError(t, err)
			var xs []float64
			lo, hi := math.MaxInt, 0
			for seq := range 4000 {
				n := d.Draw(1, inputSalt, seq)
				require.Equal(t, n, d.Draw(1, inputSalt, seq), "deterministic")
				lo, hi = min(lo, n), max(hi, n)
				xs = append(xs, float64(n))
			}
			assert.GreaterOrEqual(t, lo, tt.lo)
			assert.LessOrEqual(t, hi, tt.hi)
			if tt.hi != math.MaxInt {
				assert.Equal(t, tt.lo, lo, "the low end is reached")
				assert.Equal(t, tt.hi, hi, "the high end is reached")
			}
			m, sd := moments(xs)
			assert.InEpsilon(t, tt.mean, m, tt.tolM)
			assert.InEpsilon(t, tt.sd, sd, 2*tt.tolM)
		})
	}
}

func moments(xs []float64) (mean, sd float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(xs)))
}

// TestInputDist checks that synthetic prompts follow the input
// distribution: against a server that counts one token per word plus a
// 10-token template, after calibration every prompt's count is within 2
// tokens of the length its seq drew, and the lengths span the range.
func TestInputDist(t *testing.T) {
	w, err := New(Spec{InputDist: "uniform:32,512", OutputTokens: 8, Seed: 4})
	require.NoError(t, err)
	count := func(msgs string) int { return 10 + len(strings.Fields(msgs)) }
	for range 2 {
		p := w.Probe()
		require.NoError(t, w.Calibrate(count(p.Messages[0].Content)))
	}
	var got []int
	for seq := range 500 {
		r, info := w.RequestInfo(seq)
		n := count(r.Messages[0].Content)
		assert.InDelta(t, info.InputTokens, n, 2, "seq %d", seq)
		got = append(got, n)
	}
	assert.LessOrEqual(t, slices.Min(got), 34)
	assert.GreaterOrEqual(t, slices.Max(got), 510)
	assert.Equal(t, "synthetic in=uniform:32,512 out=8 seed=4", w.Describe())
}
