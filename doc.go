// Package inferbench is a benchmark suite for LLM inference engines that
// speak the OpenAI /v1/chat/completions API (vLLM, Friendli Engine, or any
// compatible server). Its one job is the command line a user runs: its
// test binary is the suite, BenchmarkServe (bench_test.go) measures one
// sub-benchmark per engine and concurrency level and reports tokens/s,
// latency percentiles and errors with b.ReportMetric, so that benchstat
// compares engines with confidence intervals and p-values:
//
//	go test -bench=. -engines=fake               # two simulated engines, in-process
//	go test -bench=. -engines=vllm,friendli      # deployed engines at the prototype's URLs
//	go tool benchstat results/vllm.txt results/friendli.txt
//	go generate ./plots                          # results/*.txt → results/throughput.png
//	go test -flags                               # every flag, grouped
//
// Input: the flags (internal/cli) and the environment's credentials.
// Output: stdout in the Go benchmark format and the files of -out (see
// docs/results.md). bench_test.go only binds flags and testing.B to the
// run, which is internal/suite's; it must not compute a metric or write a
// result itself. The data path, package by package, is docs/design.md.
package inferbench

//go:generate go run ./internal/cli/cmd/flagdoc -o docs/flags.md
