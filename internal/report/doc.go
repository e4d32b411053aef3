// Package report turns a finished run into what a person reads and
// defends: results/summary.json, the summary table printed at the end of
// the run, and results/report.html. It reads the engines' JSONL records
// back to pool them; it never prints, never touches the network and knows
// nothing of engines or testing.B (the suite hands it the samples and the
// metadata).
//
// # Tails
//
// A percentile is certified by order statistics: with n independent values
// and B ~ Binomial(n, p) the number below the true p-quantile ξ, the
// equal-tailed 95 % interval [X(lo), X(hi)] has lo the largest rank with
// P(B < lo) ≤ 2.5 % and hi the smallest with P(B ≥ hi) ≤ 2.5 %
// (QuantileCI). It exists inside the sample only from MinForCI values on:
// 6 for p50 (benchstat's rule for a median's CI), 36 for p90, 72 for p95,
// 368 for p99. The suite puts a tail on a result line only then; below it,
// a "p99" of 25 values is the maximum under another name. MLPerf's early
// stopping is the model (it certifies at one-sided 99 %, so it needs more).
//
// # summary.json (schema "inferbench-summary/1")
//
// One JSON object; durations are integer nanoseconds in keys ending _ns.
//
//	schema        "inferbench-summary/1"; readers refuse any other (Read)
//	run           started, finished (RFC 3339, UTC); command_line (URLs redacted);
//	              suite_version (VCS revision, "+dirty", or why unknown); go_version,
//	              goos, goarch, gomaxprocs, host; simulated; config (model, input-tokens,
//	              output-tokens, workload: the result files' shared keys); interrupted
//	rules         sample_size, tails: the rules as sentences; confidence (0.95)
//	engines[]     name, profile, url (redacted), model, simulated, preflight (the probe's
//	              note), and when the client knows them: server_header, model_info (the
//	              /v1/models entry, verbatim), conformance[] (one line per check)
//	levels[]      concurrency levels in run order
//	samples[]     engine, concurrency, sample (0-based, as the records' "sample"), line
//	              (the result line), failed, warnings[], metrics: every statistic of
//	              internal/metrics.Summary — requests, failed, interrupted, errors{kind:n},
//	              error_messages, window_ns, output_tokens, prompt_tokens,
//	              measured_output_tokens, output_tok_per_s, total_tok_per_s,
//	              full_run_output_tok_per_s, req_per_s, error_rate, ttft, tpot, itl, e2e,
//	              queued_ttft, queued_e2e (each {n, mean_ns, min_ns, p50_ns, p90_ns, p95_ns,
//	              p99_ns, max_ns}: point values over that sample, certified or not), and
//	              the counts length_mismatches, fallback_token_counts, estimated_itl,
//	              missing_prompt_tokens
//	pooled[]      per engine and level over all its samples: engine, concurrency, samples,
//	              requests, failed, error_rate, errors; output_tok_per_s, total_tok_per_s,
//	              req_per_s, full_run_output_tok_per_s as {n, median, ci_lo, ci_hi}
//	              (benchstat's median and 95 % CI; null bounds below 6 samples); ttft, tpot,
//	              itl, e2e, queued_ttft, queued_e2e as {n, mean_ns, min_ns, max_ns, p50, p90,
//	              p95, p99}, each percentile {p, n, value_ns, ci_lo_ns, ci_hi_ns, certified,
//	              needs_n} (a null bound: the data cannot bound that side)
//	comparisons[] every engine against the first, per level, for tok/s and ttft-p50-ns:
//	              concurrency, metric, engine, base, ratio (median ÷ base median), p, alpha,
//	              significant, n, base_n, note (benchmath's Mann-Whitney U, as benchstat)
//
// # report.html
//
// One self-contained page (inline CSS, the charts as data: URIs, a Content
// Security Policy that forbids every network load): the summary table, the
// three charts, the run and each engine's preflight and conformance facts,
// and the metric definitions. When loaded it sets data-images-loaded and
// data-table-rows on <body>, which the browser test reads.
package report
