package suite

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/fake"
	"github.com/inferbench/inferbench/fake/sim"
)

// TestEndpointRegionsMatchAppendixB checks EndpointRegions against MLPerf
// Endpoints' quick-reference table (endpoints_rules.md Appendix B), which
// the reference implementation's tests reproduce verbatim
// (mlcommons/endpoints-submission-cli tests/submission_checker/test_regions.py).
func TestEndpointRegionsMatchAppendixB(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cmax, cmin        int
		low, medium, high [2]int
	}{
		{64, 2, [2]int{3, 6}, [2]int{7, 18}, [2]int{19, 64}},             // small system, C_min 2
		{128, 2, [2]int{3, 7}, [2]int{8, 27}, [2]int{28, 128}},           // doubling C_max widens high most
		{256, 2, [2]int{3, 8}, [2]int{9, 42}, [2]int{43, 256}},           //
		{256, 8, [2]int{9, 14}, [2]int{15, 47}, [2]int{48, 256}},         // a larger C_min shifts every boundary
		{512, 8, [2]int{9, 16}, [2]int{17, 71}, [2]int{72, 512}},         //
		{1024, 8, [2]int{9, 18}, [2]int{19, 109}, [2]int{110, 1024}},     //
		{512, 16, [2]int{17, 24}, [2]int{25, 79}, [2]int{80, 512}},       //
		{1024, 16, [2]int{17, 26}, [2]int{27, 117}, [2]int{118, 1024}},   // the row §5.4's Example C misprints
		{2048, 16, [2]int{17, 29}, [2]int{30, 176}, [2]int{177, 2048}},   //
		{1024, 32, [2]int{33, 42}, [2]int{43, 131}, [2]int{132, 1024}},   // v0.7's fixed boundaries
		{2048, 32, [2]int{33, 45}, [2]int{46, 192}, [2]int{193, 2048}},   //
		{4096, 32, [2]int{33, 48}, [2]int{49, 287}, [2]int{288, 4096}},   //
		{8192, 32, [2]int{33, 52}, [2]int{53, 437}, [2]int{438, 8192}},   // §5.4's Example A
		{16384, 32, [2]int{33, 57}, [2]int{58, 676}, [2]int{677, 16384}}, // the largest row
		{256, 1, [2]int{2, 7}, [2]int{8, 41}, [2]int{42, 256}},           // §5.4's Example B (C_min 1, as auto uses)
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("cmax=%d,cmin=%d", tt.cmax, tt.cmin), func(t *testing.T) {
			r := EndpointRegions(tt.cmax, tt.cmin)
			assert.Equal(t, tt.low, r.Low, "low")
			assert.Equal(t, tt.medium, r.Medium, "medium")
			assert.Equal(t, tt.high, r.High, "high")
		})
	}
}

func TestPlace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		sat, cap   int
		wantMax    int
		wantLevels []int
	}{
		// The demo engines at the default cap: C_max is the cap (2 × 215 is
		// above it); 215 × √2 falls beyond C_max and is left out.
		{"demo at the default cap", 215, 256, 256, []int{1, 2, 4, 8, 16, 32, 64, 128, 152, 215, 256}},
		// C_max = 2 × saturation; 45 ÷ √2 and × √2 round onto powers of two.
		{"knee between powers of two", 45, 1000, 90, []int{1, 2, 4, 8, 16, 32, 45, 64, 90}},
		// A cap that is no power of two is itself the top; the knee at the
		// cap (not saturated) gets its lower half-octave point.
		{"not saturated below the cap", 100, 100, 100, []int{1, 2, 4, 8, 16, 32, 64, 71, 100}},
		// A 4-slot engine: C_max 8; six candidates, the widest gap (4→6)
		// gets its geometric middle to make the seventh.
		{"small engine", 4, 256, 8, []int{1, 2, 3, 4, 5, 6, 8}},
		// One stream saturates it: the floor of 8 for C_max, gaps filled
		// (2→4 gives 3, 4→8 gives 6, then 4→6 gives 5).
		{"saturates at one stream", 1, 256, 8, []int{1, 2, 3, 4, 5, 6, 8}},
		// The cap binds below 2 × saturation and below the floor of 8: every
		// integer 1..7.
		{"cap of seven", 6, 7, 7, []int{1, 2, 3, 4, 5, 6, 7}},
		// The largest cap the client allows: 17 powers of two, C_max and
		// three around the knee, still under MLPerf's 32.
		{"largest cap", 50000, 100000, 100000, []int{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 35355, 50000, 65536, 70711, 100000}},
		// Around a knee at 5: 5 ÷ √2 = 3.54 → 4 and 5 × √2 = 7.07 → 7.
		{"knee at five", 5, 256, 10, []int{1, 2, 4, 5, 7, 8, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Place(tt.sat, tt.cap)
			require.NoError(t, err)
			assert.Equal(t, tt.wantMax, p.Max)
			assert.Equal(t, tt.wantLevels, p.Levels)
		})
	}
}

func TestPlaceRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		sat, cap int
		want     string
	}{
		{"cap below seven", 3, 6, "-max-concurrency ≥ 7"},       // 7 distinct levels cannot fit under 6
		{"no saturation point", 0, 256, "saturation point 0"},   // the probe found nothing
		{"saturation above the cap", 300, 256, "between 1 and"}, // the probe never goes past the cap
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Place(tt.sat, tt.cap)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestPlaceBounds checks the placement's guarantees over a sweep of
// saturation points and caps: 7 to 32 distinct ascending levels from 1 to
// C_max, the saturation point among them, every non-empty region covered.
func TestPlaceBounds(t *testing.T) {
	t.Parallel()
	caps := []int{7, 8, 9, 16, 33, 64, 100, 256, 257, 1000, 4096, 100000}
	for _, cap := range caps {
		for _, sat := range []int{1, 2, 3, 5, 7, 8, 13, 31, 32, 33, 64, 100, 215, 256, 999, 4096, 50000, 99999, 100000} {
			if sat > cap {
				continue
			}
			p, err := Place(sat, cap)
			require.NoError(t, err, "sat %d cap %d", sat, cap)
			l := p.Levels
			assert.GreaterOrEqual(t, len(l), MinAutoLevels, "sat %d cap %d: %v", sat, cap, l)
			assert.LessOrEqual(t, len(l), MaxAutoLevels, "sat %d cap %d: %v", sat, cap, l)
			assert.Equal(t, 1, l[0])
			assert.Equal(t, p.Max, l[len(l)-1])
			assert.LessOrEqual(t, p.Max, cap)
			assert.Contains(t, l, sat)
			for i := 1; i < len(l); i++ {
				assert.Less(t, l[i-1], l[i], "sat %d cap %d: not strictly ascending: %v", sat, cap, l)
			}
			for _, r := range [][2]int{p.Regions.Low, p.Regions.Medium, p.Regions.High} {
				if r[0] > r[1] {
					continue
				}
				in := 0
				for _, c := range l {
					if c >= r[0] && c <= r[1] {
						in++
					}
				}
				assert.Positive(t, in, "sat %d cap %d: region %v has no level: %v", sat, cap, r, l)
			}
		}
	}
}

// curve is a synthetic engine for probeRamp: throughput as a function of
// concurrency, failing at and above failAt (0: never).
type curve struct {
	tok    func(c int) float64
	failAt int
	seen   []int
}

func (cv *curve) measure(c int) (probePoint, error) {
	cv.seen = append(cv.seen, c)
	p := probePoint{C: c, TokPerSec: cv.tok(c), Requests: 2 * c}
	if cv.failAt > 0 && c >= cv.failAt {
		p.Failed, p.ErrorRate, p.Errors = c, 0.5, "http-status: 1"
	}
	return p, nil
}

func TestProbeRamp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		tok       func(c int) float64
		failAt    int
		cap       int
		wantSat   int
		wantSeen  []int
		saturated bool
		stop      string
	}{
		// Linear up to a batch of 48, flat after: the doubling stops when 128
		// gains nothing over 64; 90 % of the peak (4800) is 4320, first
		// reached at 44 on the curve; bisection 32→64 measures 45 (above)
		// and 38 (below) and stops within a quarter octave.
		{"knee at 48", func(c int) float64 { return 100 * float64(min(c, 48)) }, 0, 256,
			45, []int{1, 2, 4, 8, 16, 32, 64, 128, 45, 38}, true, "gained +0%"},
		// Still doubling at the cap: not saturated; the highest level with
		// 90 % of the peak is found just under the cap.
		{"linear to the cap", func(c int) float64 { return 10 * float64(c) }, 0, 64,
			64, []int{1, 2, 4, 8, 16, 32, 64, 45, 54}, false, "reached -max-concurrency=64 while the last step still gained +100%"},
		// Requests fail from 64 on: the ramp stops there, and the failing
		// step is not used; the knee is sought below it.
		{"errors from 64", func(c int) float64 { return 100 * float64(c) }, 64, 256,
			32, []int{1, 2, 4, 8, 16, 32, 64, 23, 27}, true, "error rate 0.500 > -max-error-rate 0.000 at concurrency 64"},
		// Throughput falls past 16 (thrashing): the doubling stops at the
		// first loss, and the peak's level is the saturation point.
		{"falls after 16", func(c int) float64 {
			if c <= 16 {
				return 100 * float64(c)
			}
			return 1600 * math.Sqrt(16/float64(c))
		}, 0, 256, 16, []int{1, 2, 4, 8, 16, 32, 11, 13, 14}, true, "gained -29%"},
		// One stream saturates it.
		{"flat from one", func(int) float64 { return 500 }, 0, 256, 1, []int{1, 2}, true, "gained +0%"},
		// A cap that is no power of two is the ramp's last step.
		{"cap of 100", func(c int) float64 { return 10 * float64(c) }, 0, 100,
			100, []int{1, 2, 4, 8, 16, 32, 64, 100, 80, 89}, false, "reached -max-concurrency=100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cv := &curve{tok: tt.tok, failAt: tt.failAt}
			f, err := probeRamp(cv.measure, tt.cap, 0)
			require.NoError(t, err)
			assert.Equal(t, tt.wantSat, f.Saturation)
			assert.Equal(t, tt.wantSeen, cv.seen)
			assert.Equal(t, tt.saturated, f.Saturated)
			assert.Contains(t, f.Stop, tt.stop)
		})
	}
}

func TestProbeRampFailsAtOne(t *testing.T) {
	t.Parallel()
	cv := &curve{tok: func(int) float64 { return 100 }, failAt: 1}
	_, err := probeRamp(cv.measure, 256, 0.1)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "at concurrency 1")
	assert.Contains(t, err.Error(), "http-status")
}

func TestAutoRejectsBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		// auto is a placement, not one more level.
		{"auto in a list", func(o *Options) { o.Concurrency = "auto,4" }, "takes no list"},
		// Open-loop rates are not placed.
		{"rate auto", func(o *Options) { o.Concurrency = ""; o.Rate = "auto" }, "-rate=auto"},
		// Seven levels cannot fit under a cap of 4.
		{"cap below seven", func(o *Options) { o.Concurrency = "auto"; o.MaxConcurrency = 4 }, "-max-concurrency ≥ 7"},
		// Conversations are not what the probe measures.
		{"auto with turns", func(o *Options) { o.Concurrency = "auto"; o.Turns = 2 }, "-turns"},
		// Shards would each probe and could disagree.
		{"auto with shards", func(o *Options) {
			o.Concurrency = "auto"
			o.Shard, o.StartAt, o.StartEvery = "0/2", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), time.Minute
		}, "without -shard"},
		// A level filter cannot select levels that are not placed yet.
		{"bench selects a level", func(o *Options) { o.Concurrency = "auto"; o.Bench = "Serve/concurrency=4" }, "placed only after the probe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(t, "fake:friendli-like")
			tt.mutate(&o)
			s, err := New(context.Background(), o)
			if s != nil {
				s.Close()
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// modelSaturation applies probeRamp's definition to the virtual-time
// model: the lowest concurrency whose predicted tok/s reaches 90 % of the
// highest up to cap.
func modelSaturation(cfg sim.Config, cap, prompt, output int) int {
	best := 0.0
	ts := make([]float64, cap+1)
	for c := 1; c <= cap; c++ {
		ts[c] = sim.Predict(cfg, c, prompt, output).OutputTokPerSec
		best = max(best, ts[c])
	}
	for c := 1; c <= cap; c++ {
		if ts[c] >= SaturationFraction*best {
			return c
		}
	}
	return cap
}

// TestAutoProbeFindsTheSimulatorsKnee probes two simulated engines that
// saturate at different concurrency (at most 2 and 8 running sequences) and
// checks that each one's saturation point is within a factor √2 of the
// virtual-time model's, that the levels are placed over the larger, that
// every engine's result file carries the same levels, and that a sample at
// one of them has its steady state verified.
func TestAutoProbeFindsTheSimulatorsKnee(t *testing.T) {
	var specs []string
	cfgs := map[string]sim.Config{}
	for _, m := range []int{2, 8} {
		cfg, err := sim.Preset("friendli-like")
		require.NoError(t, err)
		cfg.MaxNumSeqs = m
		r, err := fake.Start(cfg, fake.Options{Model: simulatedModel, Seed: 1})
		require.NoError(t, err)
		t.Cleanup(func() { r.Close() })
		name := fmt.Sprintf("seqs%d", m)
		cfgs[name] = cfg
		specs = append(specs, name+"="+r.URL())
	}
	o := testOptions(t, strings.Join(specs, ","))
	o.Concurrency = AutoConcurrency
	o.MaxConcurrency = 64
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	defer s.Close()

	sats := map[string]int{}
	for name, cfg := range cfgs {
		f, ok := s.auto.findings[name]
		require.True(t, ok, "engine %s was not probed", name)
		want := modelSaturation(cfg, o.MaxConcurrency, o.InputTokens, o.OutputTokens)
		t.Logf("%s: probe %d, model %d: %s", name, f.Saturation, want, f.describe(name))
		assert.True(t, f.Saturated, "%s: %s", name, f.Stop)
		assert.InDelta(t, 0, math.Log2(float64(f.Saturation)/float64(want)), 0.5,
			"%s: probe's saturation %d, the model's %d", name, f.Saturation, want)
		sats[name] = f.Saturation
	}
	assert.Less(t, sats["seqs2"], sats["seqs8"], "the engine with more sequences saturates later")
	want, err := Place(max(sats["seqs2"], sats["seqs8"]), o.MaxConcurrency)
	require.NoError(t, err)
	assert.Equal(t, want.Levels, s.Levels(), "the levels are placed over the larger saturation point")

	key := "concurrency-auto: " + fmt.Sprintf("saturation=%d max=%d levels=%s", want.Saturation, want.Max, joinInts(want.Levels))
	for name := range cfgs {
		b, err := os.ReadFile(filepath.Join(s.Dir(), name+".txt"))
		require.NoError(t, err)
		assert.Contains(t, string(b), key+"\n", "%s.txt has the run's levels", name)
		assert.Contains(t, string(b), "concurrency=auto probe "+name+": c=1 ", "%s.txt has its own probe", name)
	}

	e := s.Engines()[0]
	res := runLevel(s, e, 4, s.MinMeasured(4))
	require.NoError(t, res.err())
	b, err := os.ReadFile(filepath.Join(s.Dir(), e.Name()+".txt"))
	require.NoError(t, err)
	assert.Contains(t, string(b), "# steady state verified sample 0 at concurrency=4: ")
}

func TestAutoRunsNoProbeWithoutClosedLoop(t *testing.T) {
	t.Parallel()
	// -bench selects only the open loop: nothing to place, no probe (it
	// would take the engine's time for nothing), and the header says so.
	o := testOptions(t, "fake:friendli-like")
	o.Concurrency, o.Rate, o.Bench = AutoConcurrency, "2", "Serve/rate="
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	defer s.Close()
	assert.Empty(t, s.Levels())
	assert.Contains(t, string(s.Header()), "no probe ran")
}
