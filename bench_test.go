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
		"comma-separated closed-loop concurrency levels, or auto: a probe finds each engine's saturation point and 7 to 32 levels up to -max-concurrency are placed like MLPerf Endpoints' (see README)")
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
	flagHTTP2 = flag.Bool("http2", false,
		"speak HTTP/2 to the engines (h2 over TLS, h2c by prior knowledge over cleartext; no fallback to HTTP/1.1)")
	flagPlot = flag.Bool("plot", true,
		"draw the charts (throughput, latency, pareto; latency-rate and goodput for -rate and -slo runs) into -out after the run")
	flagProgress = flag.Bool("progress", true,
		"show progress on the terminal (/dev/tty; never on stdout, nothing without a terminal)")
	flagFrom = flag.String("from", "",
		"recompute the result lines from the records (.jsonl, .samples.jsonl) in this folder, of one run or of its shards, "+
			"contacting no engine; writes <engine>.txt and plots only with an explicit -out")
	flagShard = flag.String("shard", "",
		"I/N: run shard I's share of every level's streams, one of N processes loading the engine together (needs -start-at)")
	flagStartAt = flag.String("start-at", "",
		"RFC 3339 instant at which the first sample starts, the same for every shard (example: 2026-01-02T15:04:05Z)")
	flagStartEvery = flag.Duration("start-every", 0,
		"sample k starts at -start-at + k × this, on every shard (at least warm-up + -benchtime + cooldown)")
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

// Open loop, SLOs and capacity (issue 15).
var (
	flagRate = flag.String("rate", "",
		"comma-separated open-loop arrival rates in requests/s (sub-benchmarks rate=R; without -concurrency, only these run)")
	flagArrival = flag.String("arrival", "poisson",
		"open-loop arrival process: poisson, gamma:CV (CV of the gaps; 1 is Poisson) or constant")
	flagMaxConcurrency = flag.Int("max-concurrency", suite.DefaultMaxConcurrency,
		"cap on an open loop's requests in flight (arrivals beyond it wait, and the wait counts in latency from the intended send), and the highest level -concurrency=auto probes and places")
	flagSLO = flag.String("slo", "",
		"service-level objective, e.g. ttft-p99=2s,tpot-p99=100ms or mlperf-server:llama3.1-8b: adds goodput-req/s, slo-good/op, slo-met to every line and enables BenchmarkCapacity")
	flagCapacityRepeats = flag.Int("capacity-repeats", suite.DefaultCapacityRepeats,
		"BenchmarkCapacity: samples at each rate near the boundary, all of which must meet -slo")
	flagTrace = flag.String("trace", "",
		"replay a trace (JSONL: Mooncake's timestamp,input_length,output_length,hash_ids; CSV: BurstGPT's Timestamp,Request tokens,Response tokens, or timestamp_ms,input_length,output_length) open loop, once per engine (sub-benchmark trace=SPEEDx)")
	flagTraceSpeed = flag.Float64("trace-speed", 1,
		"-trace's arrivals are its offsets ÷ this (2 replays twice as fast)")
	flagTraceBlockTokens = flag.Int("trace-block-tokens", suite.DefaultTraceBlockTokens,
		"tokens per hash id of a trace's shared prompt blocks (Mooncake's are 512)")
)

// concurrencyOption is -concurrency, or none when -rate or -trace is given without
// it: an open-loop run does not also sweep the default closed-loop levels.
func concurrencyOption() string {
	if (*flagRate != "" || *flagTrace != "") && !flagSet("concurrency") {
		return ""
	}
	return *flagConcurrency
}

// theSuite is set by TestMain when benchmarks run; nil otherwise.
var theSuite *suite.Suite

func TestMain(m *testing.M) {
	flag.Parse()
	if *flagFrom != "" {
		os.Exit(runFrom())
	}
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

	tty := openTerminal()
	if tty != nil {
		defer tty.Close()
	}
	s, err := suite.New(ctx, suite.Options{
		Engines:          *flagEngines,
		Concurrency:      concurrencyOption(),
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
		Rate:             *flagRate,
		Arrival:          *flagArrival,
		MaxConcurrency:   *flagMaxConcurrency,
		SLO:              *flagSLO,
		CapacityRepeats:  *flagCapacityRepeats,
		Benchtime:        benchtimeGiven(),
		Progress:         tty,
		Shard:            *flagShard,
		StartAt:          *flagStartAt,
		StartEvery:       *flagStartEvery,
		InputDist:        *flagInputDist,
		OutputDist:       *flagOutputDist,
		PrefixTokens:     *flagPrefixTokens,
		Prefixes:         *flagPrefixes,
		Turns:            *flagTurns,
		ThinkTime:        *flagThinkTime,
		Endpoint:         *flagEndpoint,
		HTTP2:            *flagHTTP2,
		Trace:            *flagTrace,
		TraceSpeed:       *flagTraceSpeed,
		TraceBlockTokens: *flagTraceBlockTokens,
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

// runFrom is -from: TestMain prints the recomputed result lines itself,
// under BenchmarkServe's sub-benchmark names and after the run's header, so
// the output is what benchstat reads from a run; no test or benchmark runs
// (a benchmark function would report b.N iterations of its own, not the
// recorded requests). Only the analysis flags apply: -max-error-rate,
// -bench (which sub-benchmarks), -out (only when given: where to write
// <engine>.txt and the plots) and -plot.
func runFrom() int {
	opt := suite.Options{From: *flagFrom, MaxErrorRate: *flagMaxErrorRate, Bench: benchPattern()}
	if flagSet("out") {
		opt.Out = *flagOut
	}
	if err := suite.Recompute(opt, os.Stdout, *flagPlot); err != nil {
		fmt.Fprintf(os.Stdout, "FAIL inferbench: %v\n", err)
		return 1
	}
	return 0
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

// benchtimeGiven is -test.benchtime when given on the command line, ""
// when not (the suite then takes at least C measured requests a sample).
func benchtimeGiven() string {
	if !flagSet("test.benchtime") {
		return ""
	}
	return flag.Lookup("test.benchtime").Value.String()
}

// openTerminal opens the controlling terminal for the progress line, or
// returns nil when there is none or -progress=false: progress never goes
// to stdout, which stays pure benchmark output.
func openTerminal() *os.File {
	if !*flagProgress {
		return nil
	}
	f, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0)
	if err != nil {
		return nil
	}
	return f
}

// BenchmarkServe measures every engine at every concurrency level. One
// iteration of b.Loop is one measured request: the loop dispatches it into
// the closed loop as soon as a slot frees up, so -benchtime=200x runs 200
// measured requests per sample and -benchtime=30s measures for 30 s.
// Warm-up runs once per sample, before the loop; the requests still in
// flight when the loop ends finish under the same concurrency (held by
// unmeasured cooldown requests) before the metrics are computed.
//
// Without -benchtime, a sample also measures at least C requests: after
// b.Loop (which stops after the default 1s, a single request at a high
// level), TopUp dispatches more until every slot carried one, and b.N is
// set to the measured requests, so the result line's iteration count is
// what was measured (the testing package reads b.N after the function
// returns; TestDefaultSampleSize pins that).
func BenchmarkServe(b *testing.B) {
	s := theSuite
	if s == nil {
		b.Fatal("the suite was not set up: run it with go test -bench (TestMain sets it up)")
	}
	for _, c := range s.Levels() {
		for _, e := range s.Engines() {
			b.Run(s.SubName(e, c), func(b *testing.B) {
				benchSample(b, func() (*suite.Sample, error) { return s.Start(b.Context(), e, c) })
			})
		}
	}
	// Open-loop levels: one b.Loop iteration is one arrival of the
	// schedule, so -benchtime=40x sends 40 measured arrivals.
	for _, r := range s.Rates() {
		for _, e := range s.Engines() {
			b.Run(s.RateName(e, r), func(b *testing.B) {
				benchSample(b, func() (*suite.Sample, error) { return s.StartRate(b.Context(), e, r) })
			})
		}
	}
	// A trace replay: the whole trace, whatever -benchtime (TopUp sends
	// the arrivals b.Loop did not).
	if s.HasTrace() {
		for _, e := range s.Engines() {
			b.Run(s.TraceName(e), func(b *testing.B) {
				benchSample(b, func() (*suite.Sample, error) { return s.StartTrace(b.Context(), e) })
			})
		}
	}
}

// benchSample is one sample of one engine at one level.
func benchSample(b *testing.B, start func() (*suite.Sample, error)) {
	sm, err := start()
	if errors.Is(err, suite.ErrNoShare) {
		b.Skip(err) // the other shards run this level's streams
	}
	if errors.Is(err, suite.ErrInterrupted) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	replayed := false
	for b.Loop() {
		if replayed {
			// A trace replay sent its last arrival before b.Loop's time was
			// up: wait it out without spinning (b.Loop must run to its end).
			time.Sleep(time.Millisecond)
			continue
		}
		if err := sm.Dispatch(); err != nil {
			if errors.Is(err, suite.ErrReplayDone) {
				replayed = true
				continue
			}
			break // interrupted; Finish saves the records
		}
	}
	_ = sm.TopUp() // fails only when interrupted; Finish says so
	r := sm.Finish()
	if r.Interrupted {
		b.Skip("interrupted; records of this sample are saved, its numbers are not reported")
	}
	b.N = r.Summary.Requests // the line's iterations: the measured requests, TopUp's included
	for _, m := range r.Reported() {
		b.ReportMetric(m.Value, m.Unit)
	}
	for _, l := range r.Logs {
		b.Log(l)
	}
	for _, err := range r.Errs {
		b.Error(err)
	}
}

// BenchmarkCapacity finds, per engine, the highest open-loop rate whose
// samples meet -slo (see README): one result line per engine with
// capacity-req/s, so benchstat compares engines' capacities with -count.
// b.Loop drives the search's first sample (one iteration = one arrival);
// every later sample of the search has as many arrivals. Without -slo it
// is skipped.
func BenchmarkCapacity(b *testing.B) {
	s := theSuite
	if s == nil {
		b.Fatal("the suite was not set up: run it with go test -bench (TestMain sets it up)")
	}
	if s.SLO().IsZero() {
		b.Skip(suite.ErrNoSLO)
	}
	for _, e := range s.Engines() {
		if name := s.CapacityName(e); name != "" {
			b.Run(name, func(b *testing.B) { benchCapacity(b, s, e) })
		} else {
			benchCapacity(b, s, e)
		}
	}
}

func benchCapacity(b *testing.B, s *suite.Suite, e *suite.Engine) {
	c, err := s.StartCapacity(b.Context(), e)
	if errors.Is(err, suite.ErrInterrupted) {
		b.Skip(err)
	}
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if c.Dispatch() != nil {
			break
		}
	}
	r := c.Finish()
	if r.Interrupted {
		b.Skip("interrupted; the search's records are saved, no capacity is reported")
	}
	for _, m := range r.Reported() {
		b.ReportMetric(m.Value, m.Unit)
	}
	for _, l := range r.Logs {
		b.Log(l)
	}
	for _, err := range r.Errs {
		b.Error(err)
	}
}
