package inferbench

// This file binds the suite (internal/suite) to the command line and to
// testing.B: the flags, TestMain and BenchmarkServe. It is the only place
// that touches testing.B; set-up, preflight, samples, result files and
// plots are internal/suite's, which this package's tests and BenchmarkServe
// call alike.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/inferbench/inferbench/internal/suite"
)

var (
	flagEngines = flag.String("engines", "fake",
		"comma-separated engines: fake (two simulated demo engines, in-process), fake:PRESET, vllm, friendli, "+
			"friendli-serverless, friendli-dedicated, or NAME=URL (see README)")
	flagConcurrency = flag.String("concurrency", "1,2,4,8,16,32,64,128,256",
		"comma-separated closed-loop concurrency levels")
	flagModel = flag.String("model", "",
		"model name for every engine that has none of its own (default: discovered from GET /v1/models)")
	flagInputTokens = flag.Int("input-tokens", 128,
		"synthetic prompt length in tokens, calibrated against the server's usage.prompt_tokens")
	flagOutputTokens = flag.Int("output-tokens", 128,
		"fixed output length in tokens (min_tokens = max_tokens; ignore_eos for vLLM)")
	flagDataset = flag.String("dataset", "",
		"prompts from a ShareGPT JSON or JSONL file instead of synthetic ones")
	flagSeed = flag.Int64("seed", 1,
		"seed of the workload (the same requests in the same order for every engine)")
	flagWarmup = flag.Int("warmup", 1,
		"unmeasured warm-up requests per concurrency slot before each sample")
	flagRequestTimeout = flag.Duration("request-timeout", 5*time.Minute,
		"deadline for one whole request (headers and stream); a request past it is counted as a timeout")
	flagPreflightTimeout = flag.Duration("preflight-timeout", 0,
		"time limit of one engine's preflight (model discovery, probes, retries); 0 means -request-timeout × 4")
	flagOut = flag.String("out", "results",
		"folder for <engine>.txt (benchstat), <engine>.jsonl (per-request records) and the plots")
	flagMaxErrorRate = flag.Float64("max-error-rate", 0,
		"a sub-benchmark whose failed-request fraction exceeds this fails (its records are still saved)")
	flagInsecure = flag.Bool("insecure-skip-verify", false,
		"do not verify TLS certificates (prints a warning)")
	flagPlot = flag.Bool("plot", true,
		"draw throughput.png, latency.png and pareto.png into -out after the run")
	flagInputDist = flag.String("input-dist", "",
		"prompt length distribution: fixed (-input-tokens), uniform:LO,HI, normal:MEAN,SD or lognormal:MEAN,SD (overrides -input-tokens)")
	flagOutputDist = flag.String("output-dist", "",
		"output length distribution: fixed (-output-tokens), uniform:LO,HI, normal:MEAN,SD, lognormal:MEAN,SD or dataset (overrides -output-tokens)")
	flagPrefixTokens = flag.Int("prefix-tokens", 0,
		"length of the shared prompt prefixes in tokens, part of -input-tokens (with -prefixes)")
	flagPrefixes = flag.Int("prefixes", 0,
		"number of shared prompt prefixes; every prompt opens with one, chosen by the seed (with -prefix-tokens)")
	flagTurns = flag.Int("turns", 0,
		"multi-turn conversations: turns per synthetic conversation (≥ 2), or with -dataset the most user turns replayed per conversation; 0 is single-turn")
	flagThinkTime = flag.Duration("think-time", 0,
		"pause between a turn's answer and the next turn of its conversation")
	flagEndpoint = flag.String("endpoint", "chat",
		"API: chat (/v1/chat/completions) or completions (/v1/completions with a prompt, no chat template)")
)

// theSuite is set by TestMain when benchmarks run; nil otherwise.
var theSuite *suite.Suite

func TestMain(m *testing.M) {
	flag.Parse()
	if !benchmarksRequested() {
		os.Exit(m.Run())
	}
	// `go test -bench=.` would run this package's tests first: end-to-end
	// tests that take a minute and print their own children's output. A
	// benchmark run skips them unless -run was given explicitly.
	if !flagSet("test.run") {
		_ = flag.Set("test.run", "^$")
	}
	os.Exit(runSuite(m))
}

// flagSet reports whether the named flag was given on the command line.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// benchmarksRequested reports whether -test.bench selects anything; the
// suite's set-up (starting simulated engines, preflight) only runs then.
func benchmarksRequested() bool {
	return benchPattern() != ""
}

func benchPattern() string {
	if f := flag.Lookup("test.bench"); f != nil {
		return f.Value.String()
	}
	return ""
}

func runSuite(m *testing.M) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	s, err := suite.New(ctx, suite.Options{
		Engines:          *flagEngines,
		Concurrency:      *flagConcurrency,
		Model:            *flagModel,
		InputTokens:      *flagInputTokens,
		OutputTokens:     *flagOutputTokens,
		Dataset:          *flagDataset,
		Seed:             *flagSeed,
		Warmup:           *flagWarmup,
		RequestTimeout:   *flagRequestTimeout,
		PreflightTimeout: *flagPreflightTimeout,
		Out:              *flagOut,
		MaxErrorRate:     *flagMaxErrorRate,
		Insecure:         *flagInsecure,
		Bench:            benchPattern(),
		Getenv:           os.Getenv,
		InputDist:        *flagInputDist,
		OutputDist:       *flagOutputDist,
		PrefixTokens:     *flagPrefixTokens,
		Prefixes:         *flagPrefixes,
		Turns:            *flagTurns,
		ThinkTime:        *flagThinkTime,
		Endpoint:         *flagEndpoint,
	})
	if err != nil {
		// Not a "key: value" line and not a Benchmark line: benchfmt ignores it.
		fmt.Fprintf(os.Stdout, "FAIL inferbench: %v\n", err)
		return 2
	}
	defer s.Close()
	theSuite = s
	os.Stdout.Write(s.Header())

	code := runRepetitions(ctx, m)
	if ctx.Err() != nil {
		fmt.Fprintf(os.Stdout, "# interrupted: results of the finished levels are in %s\n", s.Dir())
		code = 130
	}
	if err := s.Conclude(os.Stdout, *flagPlot); err != nil {
		fmt.Fprintf(os.Stdout, "FAIL inferbench: %v\n", err)
		code = 1
	}
	return code
}

// runRepetitions takes -count over so that repetitions interleave: the
// whole sweep runs once per count, engines alternating at every level (A,
// B, A, B), so drift in the machine or the network falls on every engine
// alike instead of on whichever ran last; testing itself would repeat each
// sub-benchmark back to back.
//
// It does so by calling m.Run once per repetition with -test.count=1. The
// testing package counts and tolerates repeated calls (M.Run's numRun,
// go.dev/issue/23129: "tests in the wild call m.Run multiple times"); what
// the suite relies on is pinned by TestRepeatedRunInterleaves: each call
// runs BenchmarkServe afresh, prints its result lines under the same names
// (no "#01" suffixes), and tests run only in the first call. Profiles
// (-cpuprofile, -memprofile) are written by every call and so cover the
// last repetition only.
func runRepetitions(ctx context.Context, m *testing.M) int {
	count := 1
	if f := flag.Lookup("test.count"); f != nil {
		count, _ = strconv.Atoi(f.Value.String())
		_ = f.Value.Set("1")
	}
	code := 0
	for rep := 0; rep < count && ctx.Err() == nil; rep++ {
		if rep > 0 {
			_ = flag.Set("test.run", "^$") // tests ran once already
		}
		if c := m.Run(); c != 0 {
			code = c
		}
	}
	return code
}

// BenchmarkServe measures every engine at every concurrency level. One
// iteration of b.Loop is one measured request: the loop dispatches it into
// the closed loop as soon as a slot frees up, so -benchtime=200x runs 200
// measured requests per sample and -benchtime=30s measures for 30 s.
// Warm-up runs once per sample, before the loop; the requests still in
// flight when the loop ends finish under the same concurrency (held by
// unmeasured cooldown requests) before the metrics are computed.
func BenchmarkServe(b *testing.B) {
	s := theSuite
	if s == nil {
		b.Fatal("the suite was not set up: run it with go test -bench (TestMain sets it up)")
	}
	for _, c := range s.Levels() {
		for _, e := range s.Engines() {
			b.Run(s.SubName(e, c), func(b *testing.B) { benchSample(b, s, e, c) })
		}
	}
}

// benchSample is one sample of one engine at one level.
func benchSample(b *testing.B, s *suite.Suite, e *suite.Engine, c int) {
	sm, err := s.Start(b.Context(), e, c)
	if errors.Is(err, suite.ErrInterrupted) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if sm.Dispatch() != nil {
			break // interrupted; Finish saves the records
		}
	}
	r := sm.Finish()
	if r.Interrupted {
		b.Skip("interrupted; records of this sample are saved, its numbers are not reported")
	}
	for _, m := range r.Metrics {
		b.ReportMetric(m.Value, m.Unit)
	}
	for _, l := range r.Logs {
		b.Log(l)
	}
	for _, err := range r.Errs {
		b.Error(err)
	}
}
