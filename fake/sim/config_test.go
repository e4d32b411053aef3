package sim

import (
	"flag"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPresets checks every preset validates, reproduces its idle TTFT and ITL,
// and that unknown names fail with the list of known ones.
func TestPresets(t *testing.T) {
	cases := []struct {
		name             string
		wantTTFT, wantIT float64 // ms on an idle engine, default prompt
	}{
		{"vllm-like", 80, 4},               // the prototype's vLLM demo
		{"friendli-like", 30, 2},           // the prototype's Friendli demo (illustrative)
		{"vllm-8b-h100", 9.505862, 6.5064}, // 3 ms HTTP + a 6.5 ms prefill step; ITL a + c·(64+64)
	}
	require.Len(t, PresetNames(), len(cases))
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.name, PresetNames()[i])
			cfg, err := Preset(tc.name)
			require.NoError(t, err)
			require.NoError(t, cfg.Validate())
			assert.InDelta(t, tc.wantTTFT, cfg.PrefillMs, 1e-6)
			assert.InDelta(t, tc.wantIT, cfg.PerTokenMs, 1e-6)
			assert.Equal(t, 128, cfg.DefaultTokens)
			assert.Equal(t, 64, cfg.DefaultPromptTokens)
			assert.False(t, cfg.Firehose())
		})
	}
	_, err := Preset("nope")
	assert.ErrorContains(t, err, `unknown preset "nope"`)
	assert.ErrorContains(t, err, "vllm-8b-h100")
}

// idleRun runs one request alone on a fresh scheduler and returns its TTFT
// (including the overhead) and mean ITL.
func idleRun(t *testing.T, cfg Config, prompt, output int) (ttft, itl time.Duration) {
	t.Helper()
	s := NewScheduler(cfg)
	now := cfg.EffectiveOverhead()
	require.NoError(t, s.Add(1, prompt, output, now))
	var first, last time.Duration
	for !s.Idle() {
		r := s.Step(now)
		now += r.Duration
		for _, e := range r.Tokens {
			if e.First {
				first = now
			}
			last = now
		}
	}
	return first, (last - first) / time.Duration(output-1)
}

// TestPrototypeReproduction checks that on an idle engine TTFT = PrefillMs and
// the mean ITL = PerTokenMs with the default prompt, for the demo presets and
// for ApplyPrototype on other shapes.
func TestPrototypeReproduction(t *testing.T) {
	h100, err := Preset("vllm-8b-h100")
	require.NoError(t, err)
	cases := []struct {
		name            string
		base            Config
		prefill, perTok float64
		tokens          int
	}{
		{"vllm-like demo from the H100 shape", h100, 80, 4, 128},
		{"friendli-like demo from the H100 shape", h100, 30, 2, 128},
		{"slow engine, short answers", h100, 500, 25, 16},
		{"prefill barely above one step", h100, 4.1, 4, 128},
		{"from a zero config (H100 shape used)", Config{DefaultPromptTokens: 64, MaxNumSeqs: 8, MaxBatchedTokens: 64, KVCapacityTokens: 4096, BlockSize: 16, Overhead: AutoOverhead}, 80, 4, 128},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.base
			cfg.ApplyPrototype(tc.prefill, tc.perTok, tc.tokens)
			require.NoError(t, cfg.Validate())
			ttft, itl := idleRun(t, cfg, cfg.DefaultPromptTokens, cfg.DefaultTokens)
			assert.InDelta(t, tc.prefill, ms(ttft), 0.001, "TTFT ms")
			assert.InDelta(t, tc.perTok, ms(itl), 0.001, "ITL ms")
			// The batching shape is kept: b/a and c/a as in the base.
			ref := h100
			assert.InDelta(t, ref.StepPerTokenMs/ms(ref.StepBase), cfg.StepPerTokenMs/ms(cfg.StepBase), 1e-6)
			assert.InDelta(t, ref.KVPerTokenUs/ms(ref.StepBase), cfg.KVPerTokenUs/ms(cfg.StepBase), 1e-6)
		})
	}
	for _, name := range []string{"vllm-like", "friendli-like"} {
		cfg, err := Preset(name)
		require.NoError(t, err)
		ttft, itl := idleRun(t, cfg, 64, 128)
		assert.InDelta(t, cfg.PrefillMs, ms(ttft), 0.001, "%s TTFT", name)
		assert.InDelta(t, cfg.PerTokenMs, ms(itl), 0.001, "%s ITL", name)
	}
}

// TestApplyPrototypeFirehose checks the prototype's 0/0 mode.
func TestApplyPrototypeFirehose(t *testing.T) {
	cfg, err := Preset("vllm-like")
	require.NoError(t, err)
	cfg.ApplyPrototype(0, 0, 7)
	assert.True(t, cfg.Firehose())
	assert.Equal(t, 7, cfg.DefaultTokens)
	assert.NoError(t, cfg.Validate())
	_, err = NewEngine(cfg)
	assert.ErrorContains(t, err, "firehose")
}

// TestValidate checks that each bad field is named with its fix.
func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error; "" = valid
	}{
		{"the preset is valid", func(*Config) {}, ""},
		{"NaN prefill", func(c *Config) { c.PrefillMs = math.NaN() }, "--prefill-ms"},
		{"negative per-token cost", func(c *Config) { c.StepPerTokenMs = -1 }, "--step-per-token-ms"},
		{"zero tokens", func(c *Config) { c.DefaultTokens = 0 }, "--tokens"},
		{"per-token 0 without prefill 0", func(c *Config) { c.ApplyPrototype(80, 0, 128) }, "firehose"},
		{"zero seqs", func(c *Config) { c.MaxNumSeqs = 0 }, "--max-num-seqs"},
		{"budget below seqs", func(c *Config) { c.MaxBatchedTokens = 10 }, "raise it to at least 256"},
		{"zero block size", func(c *Config) { c.BlockSize = 0 }, "--block-size"},
		{"KV smaller than one request", func(c *Config) { c.KVCapacityTokens = 100 }, "--kv-capacity-tokens"},
		{"negative waiting limit", func(c *Config) { c.MaxWaiting = -1 }, "--max-waiting"},
		{"jitter above 1", func(c *Config) { c.Jitter = 2 }, "--jitter"},
		{"any negative overhead means the derived split", func(c *Config) { c.Overhead = -2 * time.Millisecond }, ""},
		{"prefill shorter than a prefill step", func(c *Config) { c.PrefillMs = 1 }, "shorter than one idle prefill step"},
		{"explicit overhead allows any prefill-ms", func(c *Config) { c.PrefillMs = 1; c.Overhead = 0 }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Preset("vllm-like")
			require.NoError(t, err)
			tc.mod(&cfg)
			err = cfg.Validate()
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// TestRegisterFlags checks that every constant is settable by flag and that
// the prototype flags are left to the caller.
func TestRegisterFlags(t *testing.T) {
	cfg, err := Preset("vllm-like")
	require.NoError(t, err)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	for _, n := range []string{"prefill-ms", "per-token-ms", "tokens", "port", "host", "model", "engine-name", "seed", "preset"} {
		assert.Nil(t, fs.Lookup(n), "--%s belongs to the caller", n)
	}
	require.NoError(t, fs.Parse([]string{
		"--step-base-ms=5.5", "--step-per-token-ms=0.5", "--knee-tokens=32", "--kv-per-token-us=0.2",
		"--prefill-attn-coef=1e-5", "--overhead-ms=12", "--max-num-seqs=9", "--max-batched-tokens=99",
		"--kv-capacity-tokens=4096", "--block-size=8", "--max-waiting=3", "--jitter=0.05",
	}))
	assert.Equal(t, 5500*time.Microsecond, cfg.StepBase)
	assert.Equal(t, 0.5, cfg.StepPerTokenMs)
	assert.Equal(t, 32, cfg.KneeTokens)
	assert.Equal(t, 0.2, cfg.KVPerTokenUs)
	assert.Equal(t, 1e-5, cfg.PrefillAttnMs)
	assert.Equal(t, 12*time.Millisecond, cfg.Overhead)
	assert.Equal(t, 9, cfg.MaxNumSeqs)
	assert.Equal(t, 99, cfg.MaxBatchedTokens)
	assert.Equal(t, 4096, cfg.KVCapacityTokens)
	assert.Equal(t, 8, cfg.BlockSize)
	assert.Equal(t, 3, cfg.MaxWaiting)
	assert.Equal(t, 0.05, cfg.Jitter)
	assert.Equal(t, "-1", fs.Lookup("overhead-ms").DefValue, "the default shows the derived split")

	require.NoError(t, fs.Parse([]string{"--overhead-ms=-1"}))
	assert.Equal(t, AutoOverhead, cfg.Overhead)
	for _, bad := range []string{"--step-base-ms=fast", "--step-base-ms=-3", "--overhead-ms=NaN", "--step-base-ms=1e12"} {
		assert.ErrorContains(t, fs.Parse([]string{bad}), "milliseconds", bad)
	}
}

// FuzzMsFlag checks that any flag text either parses to a finite duration or
// fails with an error, never panics.
func FuzzMsFlag(f *testing.F) {
	for _, s := range []string{"6.5", "-1", "0", "1e3", "NaN", "Inf", "", "fast", "0x10", "1e400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d time.Duration
		for _, auto := range []bool{false, true} {
			f := msFlag{d: &d, auto: auto}
			if err := f.Set(s); err != nil {
				continue
			}
			if d < 0 && d != AutoOverhead {
				t.Fatalf("Set(%q) gave a negative duration %v", s, d)
			}
			_ = f.String()
		}
	})
}

// TestDocTableMatchesPresets checks the constants table in the package
// documentation against the presets, so the manual cannot drift.
func TestDocTableMatchesPresets(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	var rows = map[string]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		f := strings.Fields(strings.TrimPrefix(line, "//"))
		if len(f) < 2 {
			continue
		}
		if _, seen := rows[f[0]]; !seen { // the table comes first
			rows[f[0]] = line
		}
	}
	h, _ := Preset("vllm-8b-h100")
	v, _ := Preset("vllm-like")
	fr, _ := Preset("friendli-like")
	num := func(x float64, prec int) string { return strconv.FormatFloat(x, 'f', prec, 64) }
	checks := []struct{ row, want string }{
		{"StepBase", num(ms(h.StepBase), 1) + " "},
		{"StepBase", num(ms(v.StepBase), 3)},
		{"StepBase", num(ms(fr.StepBase), 3)},
		{"StepPerTokenMs", num(h.StepPerTokenMs, 3)},
		{"StepPerTokenMs", num(v.StepPerTokenMs, 5)},
		{"StepPerTokenMs", num(fr.StepPerTokenMs, 6)},
		{"KVPerTokenUs", num(v.KVPerTokenUs, 5)},
		{"KVPerTokenUs", num(fr.KVPerTokenUs, 5)},
		{"Overhead", num(ms(v.EffectiveOverhead()), 0)},
		{"Overhead", num(ms(fr.EffectiveOverhead()), 0)},
		{"MaxNumSeqs", strconv.Itoa(h.MaxNumSeqs)},
		{"MaxBatchedTokens", strconv.Itoa(h.MaxBatchedTokens)},
		{"KVCapacityTokens", strconv.Itoa(h.KVCapacityTokens)},
		{"BlockSize", strconv.Itoa(h.BlockSize)},
		{"DefaultPromptTokens", strconv.Itoa(h.DefaultPromptTokens)},
		{"PrefillMs", num(h.PrefillMs, 3) + "/" + num(h.PerTokenMs, 3)},
	}
	for _, c := range checks {
		require.Contains(t, rows, c.row)
		assert.Contains(t, rows[c.row], c.want, "doc row %s", c.row)
	}
}
