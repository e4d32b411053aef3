// Package inferbench is a benchmark suite for LLM inference engines that
// speak the OpenAI /v1/chat/completions API (vLLM, Friendli Engine, or any
// compatible server).
//
// The suite is a Go benchmark: bench_test.go defines BenchmarkServe, one
// sub-benchmark per engine and concurrency level, reporting output tokens/s,
// latency percentiles and errors with b.ReportMetric, so that benchstat
// compares engines with confidence intervals and p-values:
//
//	go test -bench=. -engines=fake               # two simulated engines, in-process
//	go test -bench=. -engines=vllm,friendli      # deployed engines at the prototype's URLs
//	benchstat results/vllm.txt results/friendli.txt
//	go generate ./plots                          # results/*.txt → results/throughput.png
//
// See README.md for every flag and the metric definitions. The packages:
// internal/suite (the run itself: set-up, preflight, samples, result files;
// bench_test.go only binds it to flags and testing.B), engines (engine
// definitions and the streaming client), fake (the simulated
// engine), internal/load (closed-loop load generation), internal/workload
// (prompts and datasets), internal/metrics (statistics over per-request
// records), internal/results (result files) and plots (pictures from result
// files).
//go:generate go run ./internal/cli/cmd/flagdoc -o docs/flags.md

package inferbench
