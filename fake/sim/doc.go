// Package sim is the simulation core of inferbench's simulated engine: a
// continuous-batching scheduler in virtual time (Scheduler), a real-time
// driver that runs it on one goroutine (Engine), and an analytic prediction
// of closed-loop throughput and latency (Predict). Package fake serves it
// over HTTP; this package knows nothing about HTTP, SSE or JSON, prints
// nothing and imports nothing of the project's. Input: a Config (a preset
// or the command's flags) and requests' lengths; output: token events in
// real or virtual time, statistics and predictions.
//
// # The model
//
// One engine loop runs iterations ("steps"), like vLLM's V1 scheduler and
// vidur's Sarathi scheduler (research note anchors-sim.md, sections 3–4).
// Each step is planned in this order:
//
//  1. Running sequences that decode take 1 token each.
//  2. Running sequences still prefilling (long prompts, or recomputation
//     after a preemption) take min(remaining, budget) tokens.
//  3. Waiting requests are admitted first come, first served, while fewer
//     than MaxNumSeqs run, the budget lasts and their KV blocks are free,
//     each taking min(prompt, budget) tokens. Nothing is admitted in a step
//     that preempted.
//
// The budget is MaxBatchedTokens per step. The step lasts
//
//	step = StepBase + StepPerTokenMs·max(0, T − KneeTokens)
//	     + KVPerTokenUs/1000·KV + PrefillAttnMs·Σ q·(p + q/2)   [ms]
//
// where T is the tokens in the step (decodes + prefill chunk tokens), KV the
// context held by the sequences in the step after it (computed + scheduled
// tokens), q a prefill chunk and p the tokens of that sequence computed
// before it (so a whole n-token prompt costs PrefillAttnMs·n²/2 however it is
// chunked). With Jitter > 0 the step is multiplied by a lognormal factor of
// mean 1. Every token of a step appears at its end: a decode emits its next
// token, and a sequence whose last prefill chunk ran emits its first token
// (Emit.First, the TTFT event). So ITL is the step time, a prefill joining
// the batch lengthens that step for every decode, and TTFT is the overhead
// plus queueing plus the steps the prefill rides in.
//
// KV is allocated in blocks of BlockSize tokens as a sequence's computed
// tokens grow. When a running sequence needs a block and none is free, the
// newest running sequence is preempted: its blocks are freed, it goes to the
// head of the waiting queue, and on readmission it recomputes its prompt
// plus the tokens it already generated; the recompute emits its next token,
// and no token is ever emitted twice (vLLM V1 scheduler.py, vidur). A
// request whose prompt + output exceeds the whole cache is refused
// (ErrTooLong). Cancel frees the slot and KV at the next step.
//
// # Prefix caching
//
// With Config.PrefixCaching (--prefix-caching; off by default and in every
// preset) the KV cache is also a prefix cache, like vLLM V1's automatic
// prefix caching and llama.cpp's. A request submitted with its prompt's
// token ids (Engine.SubmitTokens) or block hashes (Scheduler.AddBlocks)
// identifies each full prompt block by a chained hash, BlockHashes:
// hash(hash of the previous block, the block's BlockSize tokens), so two
// prompts share a block only when they agree on every token up to its end;
// a trailing partial block is never cached. On admission the longest run
// of its leading blocks found in the cache counts as computed, capped at
// ⌊(tokens − 1)/BlockSize⌋ blocks (vLLM's max_cache_hit_length = num_tokens
// − 1: the last token is always computed to produce logits, so a repeated
// prompt whose length is a multiple of BlockSize recomputes its whole last
// block). Only the rest is prefilled, its attention still paying for the
// cached context (p in q·(p + q/2) includes it), so TTFT falls; the hit at
// the first admission is Seq.CachedTokens (Emit.CachedTokens), which the
// server reports as usage.prompt_tokens_details.cached_tokens. Prompt
// blocks are offered to the cache as soon as they are computed; output
// tokens are never cached. Cached blocks live inside KVCapacityTokens:
// those no running sequence uses count as free, and allocation takes empty
// blocks first, then evicts the least recently freed cached blocks (a
// finished request's blocks are freed last block first, so a prefix loses
// its tail before its head); blocks in use are never evicted, and a
// preempted sequence can hit its own prompt blocks on readmission.
// Stats.PrefixCacheQueries and PrefixCacheHits count looked-up and hit
// tokens at every admission, as vLLM's prefix_cache_queries/hits.
//
// # Constants (Config) and their defaults
//
// Defaults are the vllm-8b-h100 preset; the demo presets scale a, b, c and
// the attention coefficient (see ApplyPrototype).
//
//	field (flag)                              unit                    vllm-8b-h100   vllm-like   friendli-like
//	StepBase (--step-base-ms)                 ms per step             6.5            3.996       1.998
//	StepPerTokenMs (--step-per-token-ms)      ms per token > knee     0.021          0.01291     0.006455
//	KneeTokens (--knee-tokens)                tokens                  64             64          64
//	KVPerTokenUs (--kv-per-token-us)          µs per context token    0.05           0.03074     0.01537
//	PrefillAttnMs (--prefill-attn-coef)       ms per q·(p+q/2)        1.3e-6         8.0e-7      4.0e-7
//	Overhead (--overhead-ms, -1 = derived)    ms before scheduling    3              76          28
//	MaxNumSeqs (--max-num-seqs)               sequences               256
//	MaxBatchedTokens (--max-batched-tokens)   tokens per step         8192
//	KVCapacityTokens (--kv-capacity-tokens)   tokens                  430080 (26880 blocks)
//	BlockSize (--block-size)                  tokens                  16
//	MaxWaiting (--max-waiting)                requests, 0 = ∞         0
//	Jitter (--jitter)                         lognormal σ             0
//	PrefixCaching (--prefix-caching)          on/off                  off
//	PrefillMs / PerTokenMs / DefaultTokens    ms / ms / tokens        9.506/6.506/128  80/4/128  30/2/128
//	DefaultPromptTokens                       tokens                  64
//
// The prototype flags --prefill-ms, --per-token-ms and --tokens, and --seed,
// belong to the command, which applies them with ApplyPrototype and Seed;
// RegisterFlags registers the rest.
//
// # The TTFT split rule
//
// The prototype's --prefill-ms is one number; the model splits it in two.
// The compute part is the step that prefills DefaultPromptTokens (64) on an
// idle engine, IdlePrefillStep() = a + b·max(0, 64 − knee) + c·64 + att·64²/2
// (4.0 ms for vllm-like, a few ms as on a real 8B engine). The rest,
// Overhead = PrefillMs − IdlePrefillStep(), is spent before the request
// reaches the scheduler (HTTP, tokenization) and does not occupy the engine,
// so it does not slow other requests. This is the AutoOverhead rule (any
// negative Overhead, the presets' choice). To move the split, set
// --overhead-ms explicitly (then TTFT on an idle engine is Overhead +
// IdlePrefillStep() and PrefillMs is informational), or change the step
// constants. Validate refuses a PrefillMs shorter than one prefill step.
//
// ApplyPrototype(prefillMs, perTokenMs, tokens) multiplies a, b, c and the
// attention coefficient by perTokenMs / (a + c·(64 + tokens/2)), so that the
// mean ITL of a lone default request is exactly perTokenMs and the shape of
// the batching costs (b/a, c/a) is that of the H100 preset; with the
// derived Overhead the idle TTFT is exactly prefillMs. prefillMs =
// perTokenMs = 0 is the prototype's firehose: Firehose() reports it and the
// server bypasses the engine (NewEngine refuses it).
//
// # Presets and sources
//
// "vllm-8b-h100" is vLLM serving Llama-3.1-8B BF16 on one H100 80GB: a from
// vidur's H100 Llama-2-7B token-wise operator profile ×1.08 plus LM head,
// matching a measured TPOT p50 of 6.48 ms at concurrency 1
// (yobitelcomm.github.io/bench/recipes/concurrency-sweep/); knee and b
// fitted to vidur data/profiling/compute/h100/meta-llama/Llama-2-7b-hf/mlp.csv;
// c from 128 KiB of KV per token read at ~2.5 TB/s; attention at ~400
// TFLOP/s; 256 sequences and 8192 batched tokens from vLLM's
// arg_utils.py get_batch_defaults; 430,080 KV tokens from (79.1 GiB·0.9 −
// 15 GiB weights − 3 GiB)/128 KiB (vllm-project/vllm#10517); 3 ms HTTP.
// Cross-check: ~12.5k tok/s plateau reported for this model and GPU
// (morphllm.com/vllm-benchmarks). "vllm-like" and "friendli-like" are the
// prototype's demos (80 ms/4 ms/128 and 30 ms/2 ms/128) on that shape.
// friendli-like is ILLUSTRATIVE: it is not Friendli Engine's measured
// performance, for which no public step-level numbers were found.
//
// # The real-time driver
//
// Engine runs the Scheduler on one goroutine. An idle engine blocks on a
// channel (no polling, no CPU). A busy engine plans a step at its absolute
// start time, hands over the previous step's tokens, and sleeps until start
// + duration, which is the next step's start: deadlines are absolute, so
// sleep overshoot never accumulates and late steps are followed by steps
// that catch up. Timers fire late (50 µs to 1 ms), so the clock learns its
// mean overshoot and sets every timer (steps and overheads) that much early;
// the mean step, hence TPOT and tokens/s, is exact. Go's timers on Linux
// wake on a grid of about 1 ms when the process is otherwise idle, so
// individual gaps between tokens form a sawtooth around the step time (on 4
// ms steps: most gaps ~4.26 ms, one in four or five ~3.2 ms): compare ITL
// means, not medians, with the model, and expect ITL percentiles of the
// fast demo presets to spread by up to 1 ms. Spinning to exact deadlines
// would cost a core. Overrun reports how late steps started (wake-up and
// planning; MeanWake is the wake-up part) and how late the last token of a
// step reached its reader (MeanDelivery). BenchmarkEngineCapacity measures
// both with up to 20,000 streams.
//
// Submit schedules the request after Overhead on a timer, so the overhead
// blocks neither the loop nor other requests. Token delivery costs O(batch)
// per step: the loop adds to one atomic word per sequence (count and
// finished flag together) and does a non-blocking send on a 1-buffered
// channel. Seq.Next returns every token generated since the previous call,
// so a slow reader gets them packed and none are lost. MaxWaiting bounds
// the requests expected to wait for a slot: requests in their overhead or
// queued, minus free running slots; beyond it Submit returns ErrQueueFull
// (HTTP 429).
//
// # The prediction
//
// Predict(cfg, C, prompt, output) is the steady state of C clients that
// each send their next request as soon as the previous one finished. It
// solves for the client cycle L = Overhead + wait + own prefill step +
// (output − 1)·ITL by bisection. For a guessed L, arrivals come at C/L per
// ms; decodes per step are λ·(output − 1) for λ requests starting per step,
// and the prefills per step follow a chain: the requests that arrive during
// a step of duration S(k) join the next one, Poisson(r·S(k)) of them when
// the Overhead spans steps (clients desynchronise), or ⌊r·S(k)⌋/⌈r·S(k)⌉
// when the Overhead is shorter than a step (finishes come back together, as
// evenly staggered groups). Its stationary distribution gives the mean step
// (ITL, from the other clients' prefills), the step carrying a request's own
// prefill (length-biased, with the others that arrived with it) and the wait
// for the current step to end (renewal theory: E[S]·(1 + m(Overhead)) −
// Overhead). When running sequences would exceed MaxNumSeqs (or what the
// KV cache holds at the mean footprint), the extra cycle is queueing for a
// slot. Chunked prefills longer than the budget add steps.
//
// Accuracy, checked against a virtual-time closed loop of C clients
// (evenly staggered, 10 % lognormal jitter on steps and overheads; see
// predict_test.go): output tok/s and ITL within ±1.5 % for the vllm-like,
// friendli-like (64-token prompts, 128 output tokens) and vllm-8b-h100 (1000
// prompt tokens) presets at C = 1, 8, 64, 256 and 512; TTFT within ±3 %
// except where clients lock into groups, which a steady-state formula does
// not describe. At C = 256 the demo presets' predicted TTFT is 0.85–0.87 of
// the simulated one (requests that finish in the same step return within a
// step of each other and queue together); with the H100 preset's 3 ms
// overhead the groups formed during ramp-up persist (pred/sim TTFT 1.04 at
// C = 8, 0.84 at C = 256). Without any jitter the demo presets drift into
// convoys (TestConvoysWithoutNoise); throughput is unaffected. Prompts that
// fill much of the budget are chunked: Predict then conserves their work
// (tok/s within ~5 % at 4000–12000-token prompts) but does not model the
// queue behind chunked prefills, so TTFT can be low by up to ~60 % (4000
// tokens, C = 64). Preemption costs (recompute) are not modelled either:
// when the KV cache binds, the running count is capped at what it holds at
// the mean footprint. Predict takes microseconds to a few seconds (long
// prompts at high concurrency).
//
// PredictCached(cfg, C, prompt, cached, output) is the same steady state
// when every request finds its first cached prompt tokens in the prefix
// cache (PrefixCaching on; cached is rounded down to whole blocks and
// capped at what the scheduler can hit): each prefill computes prompt −
// cached tokens attending to the cached ones, and the cached blocks are
// held once for all running sequences. For a hit fraction h pass h·prompt.
// Checked against the closed loop in which every 1000-token prompt shares
// its first 800 tokens (vllm-8b-h100, C = 1, 8, 64): tok/s and ITL within
// 0.1 %, TTFT within 2.1 % (and about half the uncached TTFT). It assumes
// a warm cache that is never evicted.
package sim
