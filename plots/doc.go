// Package plots reads inferbench results in the Go benchmark format and draws
// three charts from them: throughput.png, latency.png and pareto.png.
//
// Input is what `go test -bench` prints and what the suite writes to
// results/<engine>.txt: BenchmarkServe/concurrency=N lines (engine = file name
// without .txt, or the label of a label=path argument) or
// BenchmarkServe/engine=E/concurrency=N lines (engine = E). Each line is one
// sample; the configuration lines model:, input-tokens:, output-tokens:,
// workload: and simulated: describe the run.
//
// Every plotted number is the median over samples at one engine and level,
// and the error bars are the 95 % confidence interval of that median computed
// exactly as benchstat computes it (golang.org/x/perf/benchmath,
// AssumeNothing), so a chart and `benchstat -col /engine` agree. With fewer
// than 6 samples no finite 95 % CI exists; the charts then draw no bars and say
// so.
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
//   - pareto.png: system output tok/s against per-user tok/s
//     (1e9 / median tpot-p50-ns), one point per level, labelled with it.
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
