package sim

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBatchingRealism checks, in virtual time with the vllm-like preset,
// that continuous batching behaves like a real engine: throughput scales
// with concurrency, ITL grows with the batch, and long prompts (prefill
// compute) eat into the gain.
func TestBatchingRealism(t *testing.T) {
	cfg, err := Preset("vllm-like")
	require.NoError(t, err)
	cfg.Jitter = predictJitter
	run := func(c, prompt int) loopStats {
		// Stagger over an idle request's lifetime; 20 s of virtual warm-up
		// and 60 s of measurement cover many request cycles at every load.
		idle := cfg.EffectiveOverhead() + 127*cfg.IdleITL() + cfg.IdlePrefillStep()
		return closedLoop(cfg, c, prompt, 128, idle, 20*time.Second, 60*time.Second)
	}
	short1, short64 := run(1, 64), run(64, 64)
	long1, long64 := run(1, 4000), run(64, 4000)
	gainShort := short64.TokPerSec / short1.TokPerSec
	gainLong := long64.TokPerSec / long1.TokPerSec
	t.Logf("64-token prompts: %.0f → %.0f tok/s (×%.1f), ITL %v → %v", short1.TokPerSec, short64.TokPerSec, gainShort, short1.ITL, short64.ITL)
	t.Logf("4000-token prompts: %.0f → %.0f tok/s (×%.1f), ITL %v → %v", long1.TokPerSec, long64.TokPerSec, gainLong, long1.ITL, long64.ITL)

	assert.GreaterOrEqual(t, gainShort, 10.0, "tok/s at 64 clients ≥ 10× one client")
	assert.Greater(t, float64(short64.ITL), 1.05*float64(short1.ITL), "ITL grows with the batch")
	assert.Less(t, gainLong, 0.8*gainShort, "long prompts leave less room for batching")
	assert.Greater(t, long64.TTFT, short64.TTFT, "long prompts take longer to prefill")
	assert.Zero(t, short64.Preempted+long64.Preempted, "the KV cache holds 64 such requests")
}

// TestKVPressurePreempts checks that more context than the KV cache holds
// makes the engine preempt (and still finish every request).
func TestKVPressurePreempts(t *testing.T) {
	cfg := tinyConfig()
	cfg.MaxNumSeqs, cfg.MaxBatchedTokens, cfg.KVCapacityTokens = 8, 64, 64
	got := closedLoop(cfg, 8, 4, 8, 0, 0, 2000*cfg.StepBase)
	assert.Positive(t, got.Preempted)
	assert.Positive(t, got.Requests)
}
