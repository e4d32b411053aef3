// Package suite is one run of the benchmark: it sets up the engines
// (starting simulated ones in-process), preflights them, runs the samples
// that BenchmarkServe and BenchmarkCapacity drive, computes every result
// line, writes the result files as it goes, and concludes with
// summary.json, report.html, the plots and the summary table. -from
// (Recompute) re-enters at the saved records and calls the same analysis,
// so its lines are the run's byte for byte.
//
// Input: Options (internal/cli builds them from the flags) and a context
// whose cancellation stops the run. Output: Results per sample (metrics,
// the lines of <engine>.txt and <engine>.all.txt, logs, errors) for the
// caller to report, the files of Options.Out, and what Conclude writes to
// the writer it is given. It is the only package that ties the others
// together (workload → engines → records → metrics → results → plots), but
// it does not touch testing.B (bench_test.go does) and never prints to
// stdout or a terminal except through the writers it is handed.
//
// A sample's life: Start sets its slots going (warm-up), Dispatch hands
// out each measured request (one b.Loop iteration), TopUp brings the
// default sample to C requests, Finish holds the concurrency until every
// measured request has ended, saves the records and the sample's line of
// the samples file, and returns its Result. Open loops (StartRate),
// trace replays (StartTrace) and the capacity search (StartCapacity)
// follow the same shape.
package suite
