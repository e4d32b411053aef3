package load

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestConstantPacer(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		p        ConstantPacer
		elapsed  time.Duration
		sent     uint64
		wantWait time.Duration
		wantStop bool
	}{
		{"first request is due at once", ConstantPacer{Freq: 10, Per: time.Second}, 0, 0, 0, false},
		{"second is due one interval later", ConstantPacer{Freq: 10, Per: time.Second}, 30 * ms, 1, 70 * ms, false},
		{"behind schedule: send now, do not shift", ConstantPacer{Freq: 10, Per: time.Second}, 500 * ms, 2, 0, false},
		{"non-integer interval stays exact", ConstantPacer{Freq: 3, Per: time.Second}, 0, 1, 333333333, false},
		{"zero frequency is not a rate", ConstantPacer{Freq: 0, Per: time.Second}, 0, 0, 0, true},
		{"zero period is not a rate", ConstantPacer{Freq: 1}, 0, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait, stop := tt.p.Pace(tt.elapsed, tt.sent)
			assert.Equal(t, tt.wantWait, wait)
			assert.Equal(t, tt.wantStop, stop)
		})
	}
}

func TestPoissonPacer(t *testing.T) {
	a, b, other := NewPoissonPacer(50, 1), NewPoissonPacer(50, 1), NewPoissonPacer(50, 2)
	// Same seed, same schedule, whatever order it is asked in.
	assert.Equal(t, a.Due(100), b.Due(100))
	assert.Equal(t, a.Due(7), b.Due(7))
	assert.NotEqual(t, a.Due(100), other.Due(100), "another seed, another schedule")
	assert.Zero(t, a.Due(0), "request 0 is due at once")

	// The mean gap over many arrivals is 1/rate (20 ms) within 5 %.
	const n = 20000
	mean := a.Due(n).Seconds() / n
	assert.InDelta(t, 0.020, mean, 0.001)
	for i := uint64(1); i < 1000; i++ {
		assert.GreaterOrEqual(t, a.Due(i), a.Due(i-1), "schedule is monotonic")
	}

	wait, stop := a.Pace(0, 1)
	assert.False(t, stop)
	assert.Equal(t, a.Due(1), wait)
	wait, _ = a.Pace(time.Hour, 1)
	assert.Zero(t, wait, "late: send now")

	_, stop = NewPoissonPacer(0, 1).Pace(0, 0)
	assert.True(t, stop, "zero rate is not a rate")
}

func TestGammaPacer(t *testing.T) {
	tests := []struct {
		name       string
		burstiness float64
		wantCV     float64 // coefficient of variation of the gaps: 1/√k
	}{
		{"bursty (k=0.25)", 0.25, 2}, // k < 1 path
		{"Poisson-like (k=1)", 1, 1}, // exponential gaps
		{"regular (k=4)", 4, 0.5},    // k ≥ 1 path
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewGammaPacer(100, tt.burstiness, 5)
			const n = 40000
			var sum, sq float64
			for i := uint64(1); i <= n; i++ {
				g := (p.Due(i) - p.Due(i-1)).Seconds()
				sum += g
				sq += g * g
			}
			mean := sum / n
			sd := math.Sqrt(sq/n - mean*mean)
			assert.InEpsilon(t, 0.01, mean, 0.05, "mean gap is 1/rate")
			assert.InEpsilon(t, tt.wantCV, sd/mean, 0.1, "shape sets the spread")
			assert.Equal(t, p.Due(500), NewGammaPacer(100, tt.burstiness, 5).Due(500), "seeded")
		})
	}
	_, stop := NewGammaPacer(100, 0, 1).Pace(0, 0)
	assert.True(t, stop, "zero burstiness is not a shape")
	_, stop = NewGammaPacer(math.Inf(1), 1, 1).Pace(0, 0)
	assert.True(t, stop, "infinite rate is not a rate")
}

func TestPacerFunc(t *testing.T) {
	p := PacerFunc(func(e time.Duration, n uint64) (time.Duration, bool) { return e, n > 3 })
	w, stop := p.Pace(time.Second, 4)
	assert.Equal(t, time.Second, w)
	assert.True(t, stop)
}
