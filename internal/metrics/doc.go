// Package metrics computes the statistics of a run from its per-request
// records (internal/record) and the measured window (load.Window). It never
// reads a clock: every number is a function of the records alone, so the same
// records always give the same Summary. It prints nothing, writes no file
// and imports only internal/record and internal/load (the Window type).
//
// # Definitions
//
// All instants are offsets from the run epoch on the monotonic clock, stamped
// by the client: Sent just before the request is written, Chunk.At when the
// bytes completing an output-bearing SSE event were read, Done when the
// exchange ended. A chunk is output-bearing when it carries non-empty content
// or reasoning text; role-only and usage-only events are never chunks (the
// client guarantees this), so they can neither start TTFT nor extend E2E.
//
// Latency distributions are taken over the measured requests that succeeded
// (record.Failed false, not Canceled). Failed requests are excluded from
// latency but counted in Requests, Failed, Errors and ErrorRate.
//
//   - TTFT = Sent → first chunk.
//   - E2E = Sent → last chunk (a trailing usage frame or [DONE] does not count).
//   - TPOT = (E2E − TTFT) / (n − 1), n = output tokens; one value per request,
//     only for n ≥ 2. This is vLLM's TPOT and AIPerf's/guidellm's "ITL".
//   - ITL = per-token inter-token latency: for consecutive chunks, the gap
//     between their arrivals divided by the k tokens of the later chunk, giving
//     k equal values; pooled over all requests. A request with a single chunk
//     contributes none. Tokens of the first chunk beyond the first arrive with
//     it and get no ITL value. The k come from Chunk.Tokens: exact with
//     per-chunk usage (TokenSource continuous-usage); with only a final usage
//     total spread over fewer chunks than tokens they are estimates, and an
//     unknown count (0) is taken as 1; such requests are counted in
//     EstimatedITL and warned about.
//   - QueuedTTFT and QueuedE2E are the same from Intended (when the load
//     generator wanted to send) instead of Sent, so client-side queueing shows
//     (coordinated omission; AIPerf's effective_latency).
//   - Output tokens of a request = usage.completion_tokens as recorded in
//     OutputTokens. When the server sent no usage (TokenSource chunk-count, or
//     OutputTokens 0 with chunks present) the chunk count is used, counted in
//     FallbackTokenCounts and warned about: it undercounts multi-token chunks.
//
// Throughput uses the measured window W = [Start, End] (load.Window) and
// counts tokens at the instant the engine delivered them:
//
//   - OutputTokPerSec (steady state) = output tokens whose chunk arrival At lies
//     in W, from requests of ANY phase and outcome (warm-up, cooldown and failed
//     requests load the engine too), ÷ |W|. A chunk's tokens are Chunk.Tokens
//     when every chunk of its request has a known count that sums to the
//     request's output tokens; otherwise the request's output tokens are spread
//     evenly over its chunks (OutputTokens/len(Chunks) each), and with no
//     usage at all each chunk counts 1.
//   - TotalTokPerSec = (prompt tokens of requests of any phase whose first
//     chunk — the end of prefill — arrived in W, plus the output tokens above)
//     ÷ |W|. Prompt tokens are usage.prompt_tokens as the server counts them,
//     chat-template tokens included; requests without it are counted in
//     MissingPromptTokens.
//   - FullRunOutputTokPerSec = output tokens of all measured requests ÷ (last
//     measured Done − first measured Sent): vLLM's "output throughput", ramp-up
//     and drain tail included, for comparison.
//   - ReqPerSec = Σ over successful requests of ANY phase of (output tokens
//     that arrived in W ÷ the request's output tokens), ÷ |W|: the completion
//     rate, from the same window and population as OutputTokPerSec, so with
//     no failures and a fixed length L, ReqPerSec × L = OutputTokPerSec. A
//     request straddling an edge of W counts for the share of it inside; a
//     request the harness cancelled (a cooldown request in flight when the
//     sample ended) counts for its tokens in W ÷ its requested length.
//     The plain count of requests ending inside W (CompletedInWindow, kept
//     in the Summary) has an edge bias of up to one step's convoy: W opens at
//     the first measured send, the instant a warm-up request ended, and that
//     request's step-mates end with it; at concurrency 256 on the demo that
//     was 5 % too high. Counting only measured requests, as an earlier
//     version did, was low by about N/(N+C−1) for N measured requests at
//     concurrency C: warm-up requests ending inside W were left out while
//     their tokens were not.
//   - ErrorRate = Failed ÷ Requests over measured requests. Canceled measured
//     requests (only an interrupted run cancels them) are not failures; they
//     are counted in Interrupted.
//
// Percentiles are exact over the whole sample with linear interpolation
// between order statistics (numpy's default, as vLLM uses); see Percentile.
// A percentile with no observation above it is flagged (see MinSamples).
//
// # Crosswalk
//
//	inferbench     vLLM/sglang          GenAI-Perf/AIPerf        guidellm
//	TTFT           TTFT*                TTFT                     TTFT
//	TPOT           TPOT                 ITL                      ITL
//	ITL            ITL (per chunk)**    ICL (per chunk)          –
//	E2E            E2EL***              request_latency          request_latency
//	QueuedE2E      –                    effective_latency        –
//	OutputTokPerSec  output throughput over the steady window; vLLM/AIPerf divide
//	               by the whole run (= FullRunOutputTokPerSec); guidellm uses a
//	               time-weighted rate over its measure window.
//
//	*   vLLM's chat client starts TTFT on a role-only chunk.
//	**  vLLM's ITL is one value per chunk; ours is one per token.
//	*** vLLM's chat E2EL is extended by the trailing usage chunk.
package metrics
