package cpu

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInterpolate(t *testing.T) {
	ms := time.Millisecond
	ps := []point{
		{10 * ms, Usage{User: 100 * ms, System: 10 * ms}},
		{20 * ms, Usage{User: 200 * ms, System: 30 * ms}},
		{40 * ms, Usage{User: 200 * ms, System: 70 * ms}},
	}
	for _, tc := range []struct {
		name string
		at   time.Duration
		want Usage
		ok   bool
	}{
		// Before the first reading: unknown, not a zero.
		{"before", 5 * ms, Usage{}, false},
		// Exactly on a reading: that reading.
		{"on the first", 10 * ms, Usage{100 * ms, 10 * ms}, true},
		// Halfway between two readings: halfway between their usages.
		{"halfway", 15 * ms, Usage{150 * ms, 20 * ms}, true},
		// A quarter into the second gap: user flat, system a quarter up.
		{"quarter", 25 * ms, Usage{200 * ms, 40 * ms}, true},
		// On the last reading.
		{"last", 40 * ms, Usage{200 * ms, 70 * ms}, true},
		// After the last reading: unknown.
		{"after", 41 * ms, Usage{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := interpolate(ps, tc.at)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestSamplerSeesWork burns CPU on this goroutine and checks the sampler
// charges at least most of it to the span, and nothing to a span before
// the sampler started.
func TestSamplerSeesWork(t *testing.T) {
	t0 := time.Now()
	since := func() time.Duration { return time.Since(t0) }
	time.Sleep(2 * time.Millisecond)
	s, err := NewSampler(since, time.Millisecond)
	require.NoError(t, err)
	defer s.Close()
	a := since()
	spin(30 * time.Millisecond)
	b := since()
	u, ok := s.Between(a, b)
	require.True(t, ok)
	// getrusage is tick-accounted on some kernels; allow for one tick
	// (4 ms at HZ=250) lost at each end.
	assert.GreaterOrEqual(t, u.Total(), 20*time.Millisecond)
	_, ok = s.Between(0, b)
	assert.False(t, ok, "a span starting before the first reading is not covered")
	_, ok = s.Between(b, a)
	assert.False(t, ok, "an empty span")
	s.Forget(b)
	_, ok = s.Between(a, b)
	assert.False(t, ok, "forgotten readings answer nothing")
}

// spin uses the CPU for about d of thread CPU time.
func spin(d time.Duration) {
	u0, _ := Self()
	x := 0
	for {
		for i := range 100000 {
			x += i
		}
		u, _ := Self()
		if u.Sub(u0).Total() >= d {
			break
		}
	}
	_ = x
}

// TestMonoClock checks the calibrated clock agrees with clock_gettime
// within its stated error plus the time between the two readings.
func TestMonoClock(t *testing.T) {
	c, err := NewMonoClock()
	require.NoError(t, err)
	assert.Less(t, c.Err, time.Millisecond, "calibration bracket")
	for range 5 {
		before := c.Now()
		m, err := Monotonic()
		require.NoError(t, err)
		after := c.Now()
		slack := int64(c.Err) + 1000
		assert.GreaterOrEqual(t, m, before-slack)
		assert.LessOrEqual(t, m, after+slack)
	}
}
