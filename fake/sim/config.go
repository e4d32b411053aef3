package sim

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"time"
)

// AutoOverhead is the Overhead value that asks for the derived split:
// Overhead = PrefillMs − (one idle prefill step of DefaultPromptTokens).
const AutoOverhead time.Duration = -1

// Config holds every constant of the simulated engine. The zero value is not
// usable; start from Preset and adjust.
type Config struct {
	// PrefillMs is the TTFT, in milliseconds, of a request with
	// DefaultPromptTokens prompt tokens on an idle engine (the prototype's
	// --prefill-ms). With Overhead = AutoOverhead it fixes Overhead.
	// Default: 80 (vllm-like).
	PrefillMs float64
	// PerTokenMs is the mean gap, in milliseconds, between output tokens of a
	// request with DefaultPromptTokens prompt tokens and DefaultTokens output
	// tokens on an idle engine (the prototype's --per-token-ms). It is
	// informational once the step constants are set; ApplyPrototype derives
	// the step constants from it. Default: 4 (vllm-like).
	PerTokenMs float64
	// DefaultTokens is the number of output tokens of a request that gives no
	// max_tokens (the prototype's --tokens). Default: 128.
	DefaultTokens int
	// DefaultPromptTokens is the prompt size, in tokens, that PrefillMs and
	// PerTokenMs refer to. Default: 64 (a short chat prompt).
	DefaultPromptTokens int

	// StepBase is the fixed cost a of one engine iteration (weights read
	// once, sampler, scheduler CPU). Default: 6.5 ms (vllm-8b-h100).
	StepBase time.Duration
	// StepPerTokenMs is b, the cost in milliseconds of every token in a step
	// beyond KneeTokens (compute-bound GEMMs). Default: 0.021 ms/token.
	StepPerTokenMs float64
	// KneeTokens is the number of tokens a step processes for free before
	// StepPerTokenMs applies (the memory-bound region). Default: 64.
	KneeTokens int
	// KVPerTokenUs is c, the cost in microseconds per step of every context
	// token held by the sequences in the step (decode attention reads the KV
	// cache). Default: 0.05 µs (= 5e-5 ms) per token.
	KVPerTokenUs float64
	// PrefillAttnMs is the prefill attention coefficient, in milliseconds per
	// unit of q·(p + q/2), where q is a prefill chunk's tokens and p the
	// tokens of that sequence already computed. A whole n-token prompt costs
	// PrefillAttnMs·n²/2 however it is chunked. Default: 1.3e-6 ms.
	PrefillAttnMs float64
	// Overhead is the non-blocking part of TTFT (HTTP, tokenization), spent
	// before a request reaches the scheduler; it does not occupy the engine.
	// AutoOverhead (any negative value; the presets' choice) derives it as
	// PrefillMs − IdlePrefillStep(); any value ≥ 0 is used as given.
	Overhead time.Duration

	// MaxNumSeqs is the largest number of running sequences; more wait FCFS.
	// Default: 256.
	MaxNumSeqs int
	// MaxBatchedTokens is the token budget of one step (decodes count 1 each,
	// prefill chunks their length). Must be ≥ MaxNumSeqs. Default: 8192.
	MaxBatchedTokens int
	// KVCapacityTokens is the KV cache size in tokens; it is used in whole
	// blocks of BlockSize. Default: 430080 (26880 blocks of 16).
	KVCapacityTokens int
	// BlockSize is the KV block size in tokens. Default: 16.
	BlockSize int
	// MaxWaiting limits the requests expected to wait for a running slot;
	// beyond it Submit returns ErrQueueFull (HTTP 429). 0 means unlimited.
	// Default: 0.
	MaxWaiting int
	// PrefixCaching enables automatic prefix caching over KV blocks, as
	// vLLM V1 (--enable-prefix-caching) and llama.cpp do: a request's full
	// prompt blocks are identified by chained hashes of their tokens
	// (BlockHashes); the leading blocks found in the cache are not
	// prefilled again, and a request's computed prompt blocks are offered
	// to the cache. Cached blocks stay in the KV cache until their space is
	// needed, evicted least recently freed first, and never while a running
	// sequence uses them. Only requests submitted with their prompt's
	// tokens or block hashes (Engine.SubmitTokens, Scheduler.AddBlocks)
	// take part. Default: false (the fidelity presets model no cache).
	PrefixCaching bool
	// Jitter is σ of a lognormal factor with mean 1 applied to every step
	// duration and to every request's Overhead. 0 means deterministic.
	// Default: 0.
	Jitter float64
	// Seed seeds the jitter. Default: 1.
	Seed int64
}

// presetOrder lists the presets in the order PresetNames returns them.
var presetOrder = []string{"vllm-like", "friendli-like", "vllm-8b-h100"}

// Preset returns a named configuration:
//
//   - "vllm-8b-h100": vLLM serving Llama-3.1-8B BF16 on one H100 80GB.
//     a = 6.5 ms (vidur's H100 7B token-wise operator profile ×1.08 plus LM
//     head; matches a measured vLLM 0.21 TPOT p50 of 6.48 ms at concurrency 1,
//     yobitelcomm.github.io/bench/recipes/concurrency-sweep/), knee 64 tokens
//     and b = 0.021 ms/token (fit of vidur
//     data/profiling/compute/h100/meta-llama/Llama-2-7b-hf/mlp.csv), c = 5e-5
//     ms per context token (128 KiB of KV per token read at ~2.5 TB/s),
//     prefill attention 1.3e-6 ms per q·(p+q/2) (FlashAttention at ~400
//     TFLOP/s), 256 sequences, 8192 batched tokens
//     (vllm/engine/arg_utils.py get_batch_defaults), 430,080 KV tokens in
//     blocks of 16 ((79.1 GiB·0.9 − 15 GiB weights − 3 GiB) / 128 KiB,
//     vllm-project/vllm#10517), and 3 ms of HTTP/tokenization overhead.
//     Expected: ~143 tok/s at concurrency 1 and ~10k tok/s at 256 with 1000
//     context tokens (cross-check: ~12.5k tok/s plateau reported for this
//     model and GPU). See /work/shared/research/anchors-sim.md section 4.
//   - "vllm-like": the prototype's vLLM demo (80 ms TTFT, 4 ms per token, 128
//     tokens) with the vllm-8b-h100 batching-cost shape, via ApplyPrototype.
//   - "friendli-like": the prototype's Friendli demo (30 ms TTFT, 2 ms per
//     token, 128 tokens) with the same shape. ILLUSTRATIVE ONLY: it is not
//     Friendli Engine's measured performance; no public step-level numbers
//     for Friendli Engine were found.
func Preset(name string) (Config, error) {
	switch name {
	case "vllm-8b-h100":
		return h100(), nil
	case "vllm-like":
		c := h100()
		c.ApplyPrototype(80, 4, 128)
		return c, nil
	case "friendli-like":
		c := h100()
		c.ApplyPrototype(30, 2, 128)
		return c, nil
	}
	return Config{}, fmt.Errorf("sim: unknown preset %q (known: %v)", name, PresetNames())
}

// PresetNames returns the names Preset accepts.
func PresetNames() []string { return append([]string(nil), presetOrder...) }

// h100 is the vllm-8b-h100 preset; see Preset.
func h100() Config {
	c := Config{
		DefaultTokens:       128,
		DefaultPromptTokens: 64,
		StepBase:            6500 * time.Microsecond,
		StepPerTokenMs:      0.021,
		KneeTokens:          64,
		KVPerTokenUs:        0.05,
		PrefillAttnMs:       1.3e-6,
		Overhead:            AutoOverhead,
		MaxNumSeqs:          256,
		MaxBatchedTokens:    8192,
		KVCapacityTokens:    430080,
		BlockSize:           16,
		Seed:                1,
	}
	c.PrefillMs = 3 + ms(c.IdlePrefillStep())
	c.PerTokenMs = ms(c.IdleITL())
	return c
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fromMs converts float milliseconds to a duration, rounded to the nanosecond.
func fromMs(v float64) time.Duration { return time.Duration(math.Round(v * float64(time.Millisecond))) }

// stepMs is the step model in milliseconds: T tokens in the step, kv context
// tokens held by the sequences in it, attn = Σ q·(p + q/2) over prefill chunks.
func (c *Config) stepMs(T, kv, attn float64) float64 {
	return ms(c.StepBase) + c.StepPerTokenMs*math.Max(0, T-float64(c.KneeTokens)) +
		c.KVPerTokenUs/1000*kv + c.PrefillAttnMs*attn
}

// IdlePrefillStep is the duration of the step that prefills a prompt of
// DefaultPromptTokens tokens on an idle engine (the compute part of TTFT).
func (c Config) IdlePrefillStep() time.Duration {
	p := float64(c.DefaultPromptTokens)
	return fromMs(c.stepMs(p, p, p*p/2))
}

// IdleITL is the mean decode step of a lone request with DefaultPromptTokens
// prompt and DefaultTokens output tokens: StepBase + c·(prompt + tokens/2),
// the mean context over its decode steps.
func (c Config) IdleITL() time.Duration {
	return fromMs(c.stepMs(1, float64(c.DefaultPromptTokens)+float64(c.DefaultTokens)/2, 0))
}

// EffectiveOverhead is the Overhead the engine applies: Overhead when it is
// ≥ 0, otherwise PrefillMs − IdlePrefillStep() (never below 0).
func (c Config) EffectiveOverhead() time.Duration {
	if c.Overhead >= 0 {
		return c.Overhead
	}
	o := fromMs(c.PrefillMs) - c.IdlePrefillStep()
	if o < 0 {
		return 0
	}
	return o
}

// Firehose reports whether the configuration is the prototype's "firehose"
// (PrefillMs = PerTokenMs = 0): the server then bypasses the engine and
// writes every token at once.
func (c Config) Firehose() bool { return c.PrefillMs == 0 && c.PerTokenMs == 0 }

// ApplyPrototype re-derives the model from the prototype's three knobs so
// that on an idle engine a request with DefaultPromptTokens prompt tokens
// and DefaultTokens = tokens output tokens sees TTFT = prefillMs and a mean
// ITL = perTokenMs. The rule keeps the batching-cost shape of the current
// configuration: StepBase, StepPerTokenMs, KVPerTokenUs and PrefillAttnMs are
// all multiplied by perTokenMs / IdleITL() (the vllm-8b-h100 shape is used
// when the current one has no StepBase). Overhead, if AutoOverhead, then
// takes the rest of prefillMs beyond the idle prefill step (a few ms for a
// short prompt); an explicit Overhead is kept. prefillMs = perTokenMs = 0
// selects the firehose (see Firehose). tokens ≤ 0 keeps DefaultTokens.
func (c *Config) ApplyPrototype(prefillMs, perTokenMs float64, tokens int) {
	if tokens > 0 {
		c.DefaultTokens = tokens
	}
	if c.DefaultPromptTokens <= 0 {
		c.DefaultPromptTokens = 64
	}
	c.PrefillMs, c.PerTokenMs = prefillMs, perTokenMs
	if prefillMs == 0 && perTokenMs == 0 {
		return
	}
	if c.StepBase <= 0 {
		ref := h100()
		c.StepBase, c.StepPerTokenMs, c.KneeTokens = ref.StepBase, ref.StepPerTokenMs, ref.KneeTokens
		c.KVPerTokenUs, c.PrefillAttnMs = ref.KVPerTokenUs, ref.PrefillAttnMs
	}
	// Scale so that a + c·ctx = perTokenMs exactly (no rounding of IdleITL).
	ctx := float64(c.DefaultPromptTokens) + float64(c.DefaultTokens)/2
	s := perTokenMs / c.stepMs(1, ctx, 0)
	if math.IsNaN(s) || math.IsInf(s, 0) || s < 0 {
		s = 0
	}
	c.StepBase = fromMs(ms(c.StepBase) * s)
	c.StepPerTokenMs *= s
	c.KVPerTokenUs *= s
	c.PrefillAttnMs *= s
}

// Validate reports the first field that makes the configuration unusable,
// naming the flag and the fix.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"prefill-ms", c.PrefillMs}, {"per-token-ms", c.PerTokenMs},
		{"step-per-token-ms", c.StepPerTokenMs}, {"kv-per-token-us", c.KVPerTokenUs},
		{"prefill-attn-coef", c.PrefillAttnMs}, {"jitter", c.Jitter},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return fmt.Errorf("sim: --%s is %v: must be a finite number ≥ 0", f.name, f.v)
		}
	}
	if c.DefaultTokens < 1 {
		return fmt.Errorf("sim: --tokens is %d: must be ≥ 1", c.DefaultTokens)
	}
	if c.DefaultPromptTokens < 1 {
		return fmt.Errorf("sim: DefaultPromptTokens is %d: must be ≥ 1 (64 is the documented default)", c.DefaultPromptTokens)
	}
	if c.MaxWaiting < 0 {
		return fmt.Errorf("sim: --max-waiting is %d: must be ≥ 0 (0 = unlimited)", c.MaxWaiting)
	}
	if c.Firehose() {
		if c.PrefixCaching {
			return errors.New("sim: --prefix-caching needs an engine, and the firehose (--prefill-ms 0 --per-token-ms 0) has none: drop one of them")
		}
		return nil
	}
	if c.StepBase <= 0 {
		return fmt.Errorf("sim: --step-base-ms is %v: must be > 0 (a per-token time of 0 is only allowed with --prefill-ms 0 too, the firehose)", ms(c.StepBase))
	}
	if c.KneeTokens < 0 {
		return fmt.Errorf("sim: --knee-tokens is %d: must be ≥ 0", c.KneeTokens)
	}
	if c.Jitter > 1 {
		return fmt.Errorf("sim: --jitter is %v: must be ≤ 1 (a lognormal σ; 0.03–0.05 is realistic)", c.Jitter)
	}
	if c.MaxNumSeqs < 1 {
		return fmt.Errorf("sim: --max-num-seqs is %d: must be ≥ 1", c.MaxNumSeqs)
	}
	if c.MaxBatchedTokens < c.MaxNumSeqs {
		return fmt.Errorf("sim: --max-batched-tokens %d is below --max-num-seqs %d: raise it to at least %d so every running sequence can decode each step",
			c.MaxBatchedTokens, c.MaxNumSeqs, c.MaxNumSeqs)
	}
	if c.BlockSize < 1 {
		return fmt.Errorf("sim: --block-size is %d: must be ≥ 1 (vLLM uses 16)", c.BlockSize)
	}
	if c.StepBase < 0 {
		return fmt.Errorf("sim: --step-base-ms is %v: must be > 0", ms(c.StepBase))
	}
	if need := c.DefaultPromptTokens + c.DefaultTokens; c.KVCapacityTokens/c.BlockSize*c.BlockSize < need {
		return fmt.Errorf("sim: --kv-capacity-tokens %d holds fewer than one default request (%d prompt + %d output tokens in blocks of %d): raise it",
			c.KVCapacityTokens, c.DefaultPromptTokens, c.DefaultTokens, c.BlockSize)
	}
	if c.Overhead < 0 {
		if step := c.IdlePrefillStep(); fromMs(c.PrefillMs) < step {
			return fmt.Errorf("sim: --prefill-ms %v is shorter than one idle prefill step (%.3f ms) of the step model: raise --prefill-ms or lower --step-base-ms",
				c.PrefillMs, ms(step))
		}
	}
	return nil
}

// RegisterFlags registers every step-model constant on fs, with c's current
// values as defaults. The prototype flags (--prefill-ms, --per-token-ms,
// --tokens), --seed and --preset are left to the caller, which applies them
// with ApplyPrototype and by setting Seed.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Var(msFlag{d: &c.StepBase}, "step-base-ms", "fixed cost a of one engine step, ms")
	fs.Float64Var(&c.StepPerTokenMs, "step-per-token-ms", c.StepPerTokenMs, "cost b of every token in a step beyond --knee-tokens, ms/token")
	fs.IntVar(&c.KneeTokens, "knee-tokens", c.KneeTokens, "tokens a step processes before --step-per-token-ms applies")
	fs.Float64Var(&c.KVPerTokenUs, "kv-per-token-us", c.KVPerTokenUs, "cost c per step of every context token held by the sequences in the step, µs/token")
	fs.Float64Var(&c.PrefillAttnMs, "prefill-attn-coef", c.PrefillAttnMs, "prefill attention cost, ms per q·(p+q/2) (q chunk tokens, p tokens already computed)")
	fs.Var(msFlag{d: &c.Overhead, auto: true}, "overhead-ms", "non-blocking part of TTFT (HTTP, tokenization), ms; -1 derives it as --prefill-ms minus one idle prefill step")
	fs.IntVar(&c.MaxNumSeqs, "max-num-seqs", c.MaxNumSeqs, "largest number of running sequences; more wait FCFS")
	fs.IntVar(&c.MaxBatchedTokens, "max-batched-tokens", c.MaxBatchedTokens, "token budget of one step (decodes 1 each, prefill chunks their length)")
	fs.IntVar(&c.KVCapacityTokens, "kv-capacity-tokens", c.KVCapacityTokens, "KV cache size in tokens (whole blocks); exhaustion preempts the newest sequence")
	fs.IntVar(&c.BlockSize, "block-size", c.BlockSize, "KV block size in tokens")
	fs.IntVar(&c.MaxWaiting, "max-waiting", c.MaxWaiting, "waiting-queue limit; beyond it requests get HTTP 429 (0 = unlimited)")
	fs.BoolVar(&c.PrefixCaching, "prefix-caching", c.PrefixCaching, "automatic prefix caching over KV blocks (vLLM V1, llama.cpp): cached leading prompt blocks are not prefilled again and usage reports prompt_tokens_details.cached_tokens")
	fs.Float64Var(&c.Jitter, "jitter", c.Jitter, "lognormal σ applied to step times and request overheads (0 = deterministic)")
}

// msFlag is a flag.Value holding a duration written in float milliseconds.
// With auto, any negative value stands for AutoOverhead and prints as -1.
type msFlag struct {
	d    *time.Duration
	auto bool
}

func (f msFlag) String() string {
	if f.d == nil {
		return "0"
	}
	if f.auto && *f.d < 0 {
		return "-1"
	}
	return strconv.FormatFloat(ms(*f.d), 'g', -1, 64)
}

func (f msFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("want milliseconds as a number, e.g. 6.5")
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e9 {
		return errors.New("want a finite number of milliseconds, at most 1e9")
	}
	if f.auto && v < 0 {
		*f.d = AutoOverhead
		return nil
	}
	if v < 0 {
		return errors.New("want milliseconds ≥ 0")
	}
	*f.d = fromMs(v)
	return nil
}
