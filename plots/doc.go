// Package plots reads inferbench results in the Go benchmark format and draws
// up to five charts from them: throughput.png, latency.png and pareto.png
// from closed-loop results, latency-rate.png from open-loop results and
// goodput.png from results of a run with -slo.
//
// Input is what `go test -bench` prints and what the suite writes to
// results/<engine>.txt: BenchmarkServe/concurrency=N lines (closed loop:
// N requests kept in flight) and BenchmarkServe/rate=R lines (open loop:
// arrivals at R requests/s), engine = file name without .txt or the label of
// a label=path argument, or BenchmarkServe/engine=E/... lines (engine = E).
// Trace replays (trace=SPEEDx) are read, counted and not drawn. Each line is
// one sample; the configuration lines model:, input-tokens:, output-tokens:,
// workload:, slo:, arrival:, max-concurrency: and simulated: describe the
// run, and all but simulated: must agree across the files.
//
// Every plotted number is the median over samples at one engine and level
// (or rate), and the error bars are the 95 % confidence interval of that
// median computed exactly as benchstat computes it
// (golang.org/x/perf/benchmath, AssumeNothing), so a chart and
// `benchstat -col /engine` agree. With fewer than 6 samples no finite 95 % CI
// exists; the charts then draw no bars and say so.
//
//   - throughput.png: output tok/s (the suite's steady-state rate) against
//     concurrency on a log axis, one line per engine, with the ratio of the
//     first two engines' medians above each level.
//   - latency.png: TTFT p50, TTFT p99 and ITL p50 in ms (log axis) against
//     concurrency; colour = engine, line style = metric. Given the run's
//     summary.json (a ".json" path; the plot command picks it up from a
//     directory), these are the percentiles pooled over every request of
//     every sample, with their 95 % order-statistic CIs as bars, and a p99
//     whose pooled sample cannot bound it (n < 368) is left out, with a
//     note; otherwise the median of the result lines' values.
//   - pareto.png: system output tok/s (median tok/s) against tok/s per user
//     = 1000 / TPOT in ms, as MLPerf Endpoints draws its Pareto curve: a step
//     function over the frontier of measured levels (the most system tok/s
//     measured at that per-user rate or faster), no interpolation between
//     levels and none beyond them; a dominated level is a marker off its
//     step. Two curves per engine: TPOT p90 (solid, ●) — the median of the
//     lines' tpot-p90-ns when any line carries one, else summary.json's TPOT
//     p90 pooled over every request of the level, left out where too few
//     requests bound it (n < 36); the legend and caption say which — and
//     TPOT p50 (dashed, ■), the median of the lines' tpot-p50-ns. Numbers at
//     the points are the concurrency.
//   - latency-rate.png: for open-loop results, TTFT and E2E (one panel
//     each, ms on a log axis) against the target rate R of rate=R on a log
//     axis: p50 and one tail (p99 where the lines carry it from both
//     origins, else p95, else p90), each from the send (ttft-p50-ns, ●) and
//     from the intended send, the arrival's scheduled instant
//     (queued-ttft-p50-ns, ▲). Where ▲ rises above ●, requests waited to be
//     sent: the coordinated omission a closed loop hides. Where an engine's
//     median achieved-req/s is below 90 % of its scheduled-req/s, the point
//     says "sent N %": the client or -max-concurrency held arrivals back.
//   - goodput.png: for -slo results, goodput-req/s (requests that met every
//     per-request limit ÷ the window) against the load — concurrency for
//     closed-loop results, the target rate for open-loop ones, a panel each
//     — with completed req/s (closed) or sent achieved-req/s and the target
//     rate (open) for reference.
//
// On pareto.png and goodput.png a filled marker is a load at which slo-met
// was 1 (every percentile limit of -slo held) in every sample, the rule
// BenchmarkCapacity applies to its repeated samples; a hollow one missed in
// at least one sample. Without slo-met on the lines all markers are filled.
// Charts of simulated engines carry SimulatedMark.
//
// A chart, panel or point the input cannot support is left out and reported
// as a *SkipError warning saying why and what to run (-rate, -slo, more
// requests per sample); a chart is never drawn blank.
//
// Regenerate the charts from saved results with
//
//	go generate ./plots
//
// or draw any set of files with
//
//	go run ./plots/cmd/plot -out DIR results/ vllm=old/vllm.txt
//
// The package never prints; Generate returns the written paths and warnings.
package plots
