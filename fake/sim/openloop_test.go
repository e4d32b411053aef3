package sim

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// poissonDue returns a seeded Poisson schedule of rate requests per second.
func poissonDue(rate float64, seed uint64) func(int) time.Duration {
	rng := rand.New(rand.NewPCG(seed, 1))
	due := []time.Duration{0}
	return func(n int) time.Duration {
		for len(due) <= n {
			due = append(due, due[len(due)-1]+time.Duration(rng.ExpFloat64()/rate*float64(time.Second)))
		}
		return due[n]
	}
}

func pctOf(vs []time.Duration, p float64) time.Duration {
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[int(p/100*float64(len(s)-1))]
}

// TestOpenLoopIdle: requests 10 s apart each find the engine idle, so
// every TTFT is PrefillMs (overhead + the idle prefill step) and every
// request emits its tokens one step apart.
func TestOpenLoopIdle(t *testing.T) {
	cfg, err := Preset("vllm-like")
	require.NoError(t, err)
	reqs, err := SimulateOpenLoop(cfg, OpenLoop{Due: func(n int) time.Duration { return time.Duration(n) * 10 * time.Second }, Warmup: 1, Measured: 3})
	require.NoError(t, err)
	require.Len(t, reqs, 3)
	for i, r := range reqs {
		assert.Equal(t, time.Duration(i+1)*10*time.Second, r.Intended, "the measured requests follow the warm-up")
		assert.Equal(t, r.Intended, r.Sent)
		assert.Len(t, r.Tokens, cfg.DefaultTokens)
		assert.InDelta(t, cfg.PrefillMs, ms(r.TTFT()), 0.001, "idle TTFT is --prefill-ms")
		assert.InDelta(t, cfg.PerTokenMs, ms(r.TPOT()), 0.05*cfg.PerTokenMs, "idle TPOT is --per-token-ms")
	}
}

// TestOpenLoopCap: with a cap of 1 and every request due at 0, each is
// sent when the previous one's last token arrives, and its TTFT (from the
// intended instant) includes that wait.
func TestOpenLoopCap(t *testing.T) {
	cfg, err := Preset("friendli-like")
	require.NoError(t, err)
	reqs, err := SimulateOpenLoop(cfg, OpenLoop{Due: func(int) time.Duration { return 0 }, Measured: 3, MaxConcurrency: 1})
	require.NoError(t, err)
	for i := 1; i < len(reqs); i++ {
		prev := reqs[i-1].Tokens
		assert.Equal(t, prev[len(prev)-1], reqs[i].Sent, "request %d is sent when %d finishes", i, i-1)
		assert.Greater(t, reqs[i].TTFT(), reqs[i].Sent, "the wait for the cap counts")
	}
}

// TestOpenLoopRisesWithRate: below saturation TTFT p99 and TPOT p99 rise
// with the arrival rate; far beyond it the queue grows without bound, so
// TTFT p99 is many times the idle TTFT.
func TestOpenLoopRisesWithRate(t *testing.T) {
	cfg, err := Preset("vllm-like")
	require.NoError(t, err)
	var prevTTFT, prevTPOT time.Duration
	for _, rate := range []float64{2, 20, 100, 200} {
		reqs, err := SimulateOpenLoop(cfg, OpenLoop{Due: poissonDue(rate, 1), Warmup: 50, Measured: 400, PromptTokens: 128, OutputTokens: 128})
		require.NoError(t, err)
		var ttft, tpot []time.Duration
		for _, r := range reqs {
			ttft = append(ttft, r.TTFT())
			tpot = append(tpot, r.TPOT())
		}
		p99, t99 := pctOf(ttft, 99), pctOf(tpot, 99)
		t.Logf("rate %g: ttft p50 %v p99 %v, tpot p50 %v p99 %v", rate, pctOf(ttft, 50), p99, pctOf(tpot, 50), t99)
		assert.Greater(t, p99, prevTTFT, "ttft p99 at %g", rate)
		assert.Greater(t, t99, prevTPOT, "tpot p99 at %g", rate)
		prevTTFT, prevTPOT = p99, t99
	}
	reqs, err := SimulateOpenLoop(cfg, OpenLoop{Due: poissonDue(1000, 1), Measured: 2000, PromptTokens: 128, OutputTokens: 128})
	require.NoError(t, err)
	assert.Greater(t, reqs[len(reqs)-1].TTFT(), 10*fromMs(cfg.PrefillMs), "overloaded: the queue grows")
}

func TestOpenLoopRejectsBadInput(t *testing.T) {
	cfg, err := Preset("vllm-like")
	require.NoError(t, err)
	for _, ol := range []OpenLoop{
		{Measured: 1}, // no schedule
		{Due: func(int) time.Duration { return 0 }},                                     // nothing measured
		{Due: func(int) time.Duration { return 0 }, Measured: 1, Warmup: -1},            // negative warm-up
		{Due: func(int) time.Duration { return 0 }, Measured: 1, PromptTokens: 1 << 30}, // never fits the KV cache
	} {
		_, err := SimulateOpenLoop(cfg, ol)
		assert.Error(t, err, "%+v", ol)
		if ol.PromptTokens > 0 {
			assert.ErrorIs(t, err, ErrTooLong)
		}
	}
}
