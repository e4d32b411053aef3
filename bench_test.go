package inferbench

// This file is the suite: the flags, TestMain (set-up, preflight, result
// files, plots) and BenchmarkServe. It is the only place that touches
// testing.B; everything it measures comes from engines (the client),
// internal/load (the closed loop), internal/metrics (the statistics) and
// internal/results (the files).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/inferbench/inferbench/internal/metrics"
	"github.com/inferbench/inferbench/plots"
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
	flagOut = flag.String("out", "results",
		"folder for <engine>.txt (benchstat), <engine>.jsonl (per-request records) and the plots")
	flagMaxErrorRate = flag.Float64("max-error-rate", 0,
		"a sub-benchmark whose failed-request fraction exceeds this fails (its records are still saved)")
	flagInsecure = flag.Bool("insecure-skip-verify", false,
		"do not verify TLS certificates (prints a warning)")
	flagPlot = flag.Bool("plot", true,
		"draw throughput.png, latency.png and pareto.png into -out after the run")
)

// theSuite is set by TestMain when benchmarks run; nil otherwise.
var theSuite *suite

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
	f := flag.Lookup("test.bench")
	return f != nil && f.Value.String() != ""
}

func runSuite(m *testing.M) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	s, err := newSuite(ctx, options{
		engines:        *flagEngines,
		concurrency:    *flagConcurrency,
		model:          *flagModel,
		inputTokens:    *flagInputTokens,
		outputTokens:   *flagOutputTokens,
		dataset:        *flagDataset,
		seed:           *flagSeed,
		warmup:         *flagWarmup,
		requestTimeout: *flagRequestTimeout,
		out:            *flagOut,
		maxErrorRate:   *flagMaxErrorRate,
		insecure:       *flagInsecure,
		getenv:         os.Getenv,
	})
	if err != nil {
		// Not a "key: value" line and not a Benchmark line: benchfmt ignores it.
		fmt.Fprintf(os.Stdout, "FAIL inferbench: %v\n", err)
		return 2
	}
	defer s.Close()
	theSuite = s
	os.Stdout.Write(s.header.Bytes())

	// -count is taken over so that repetitions interleave: the whole sweep
	// runs once per count, engines alternating at every level (A, B, A, B),
	// so drift in the machine or the network falls on every engine alike
	// instead of on whichever ran last. testing itself would repeat each
	// sub-benchmark back to back.
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
	if ctx.Err() != nil {
		fmt.Fprintf(os.Stdout, "# interrupted: results of the finished levels are in %s\n", s.dir.Path())
		code = 130
	}
	if err := s.dir.Close(); err != nil {
		fmt.Fprintf(os.Stdout, "FAIL inferbench: %v\n", err)
		code = 1
	}
	if *flagPlot && s.measured() {
		written, err := plots.Generate(s.txtFiles, s.dir.Path())
		for _, w := range written {
			fmt.Fprintf(os.Stdout, "# wrote %s\n", w)
		}
		if err != nil {
			fmt.Fprintf(os.Stdout, "# plots: %v\n", err)
		}
	}
	for _, f := range s.txtFiles {
		fmt.Fprintf(os.Stdout, "# wrote %s and its .jsonl\n", f)
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
	for _, c := range s.levels {
		for _, e := range s.engines {
			name := fmt.Sprintf("concurrency=%d", c)
			if len(s.engines) > 1 {
				name = "engine=" + e.name + "/" + name
			}
			b.Run(name, func(b *testing.B) { s.benchLevel(b, e, c) })
		}
	}
}

// benchLevel is one sample of one engine at one level.
func (s *suite) benchLevel(b *testing.B, e *engineRun, c int) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stopB := context.AfterFunc(b.Context(), cancel)
	defer stopB()
	if ctx.Err() != nil {
		b.Skip("interrupted")
	}

	sample := s.nextSample(e.name, c)
	run, err := s.startLevel(ctx, e, c, sample)
	if err != nil {
		b.Fatal(err)
	}
	var dispatchErr error
	for b.Loop() {
		// Dispatch fails only once the run is cancelled (interrupt); leaving
		// the loop then is followed by a Skip below, never by a result.
		if dispatchErr = run.Dispatch(); dispatchErr != nil {
			break
		}
	}
	lv := s.finishLevel(e, c, sample, run)
	if dispatchErr != nil && ctx.Err() == nil {
		b.Fatalf("dispatch: %v", dispatchErr)
	}
	if ctx.Err() != nil {
		// Interrupted mid-sample: the records are saved, the numbers are not
		// a full sample and are not reported.
		b.Skip("interrupted; records of this sample are saved, its numbers are not reported")
	}
	for _, m := range lv.metrics {
		b.ReportMetric(m.value, m.unit)
	}
	for _, w := range lv.summary.Warnings {
		b.Log("warning: " + w)
	}
	for _, n := range lv.notes {
		b.Log(n)
	}
	if lv.err != nil {
		b.Error(lv.err)
	}
	if lv.summary.Failed > 0 && lv.summary.ErrorRate <= s.opt.maxErrorRate {
		b.Log("errors (within -max-error-rate): " + metrics.ErrorSummary(lv.summary))
	}
	if lv.summary.ErrorRate > s.opt.maxErrorRate {
		b.Errorf("error rate %.3f exceeds -max-error-rate %.3f: %s (records in %s)",
			lv.summary.ErrorRate, s.opt.maxErrorRate, metrics.ErrorSummary(lv.summary), s.jsonlPath(e.name))
	}
}

// levelResult is what one sample produced.
type levelResult struct {
	summary metrics.Summary
	metrics []metric
	notes   []string
	err     error
}

type metric struct {
	value float64
	unit  string
}

// reportedMetrics turns a summary into the benchmark's metrics, in the
// units the plots and the README document. Latencies are in ns so that
// benchstat shows them in seconds. A latency with no observation (every
// measured request failed; TPOT and ITL with one-token outputs) is left
// off the line: a 0 would read as a measurement.
func reportedMetrics(sum metrics.Summary, measured int) []metric {
	perOp := 0.0
	if measured > 0 {
		perOp = float64(sum.Window.Nanoseconds()) / float64(measured)
	}
	ms := []metric{
		{perOp, "ns/op"},
		{sum.OutputTokPerSec, "tok/s"},
		{sum.TotalTokPerSec, "total-tok/s"},
		{sum.ReqPerSec, "req/s"},
		{sum.ErrorRate, "errors/op"},
	}
	for _, l := range []struct {
		d    metrics.Dist
		name string
		p99  bool
	}{{sum.TTFT, "ttft", true}, {sum.TPOT, "tpot", false}, {sum.ITL, "itl", true}, {sum.E2E, "e2e", true}} {
		if l.d.N == 0 {
			continue
		}
		ms = append(ms, metric{float64(l.d.P50.Nanoseconds()), l.name + "-p50-ns"})
		if l.p99 {
			ms = append(ms, metric{float64(l.d.P99.Nanoseconds()), l.name + "-p99-ns"})
		}
	}
	return ms
}

// resultLine renders one sample exactly as `go test -bench` prints it, in
// the single-engine naming (BenchmarkServe/concurrency=N-P), so per-engine
// files line up in benchstat.
func resultLine(c, iters int, ms []metric) string {
	r := testing.BenchmarkResult{N: iters, Extra: map[string]float64{}}
	for _, m := range ms {
		r.Extra[m.unit] = m.value
	}
	return fmt.Sprintf("BenchmarkServe/concurrency=%d-%d\t%s", c, runtime.GOMAXPROCS(0), r.String())
}

// sampleCounter numbers the samples of each engine and level.
type sampleCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *suite) nextSample(engine string, c int) int {
	s.samples.mu.Lock()
	defer s.samples.mu.Unlock()
	if s.samples.n == nil {
		s.samples.n = map[string]int{}
	}
	k := engine + "/" + strconv.Itoa(c)
	n := s.samples.n[k]
	s.samples.n[k] = n + 1
	return n
}

// parseLevels parses -concurrency.
func parseLevels(list string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-concurrency: %q is not a positive whole number (example: -concurrency=1,4,16)", f)
		}
		if n > 100000 {
			return nil, fmt.Errorf("-concurrency: %d streams is more than this client is built for (at most 100000)", n)
		}
		if seen[n] {
			return nil, fmt.Errorf("-concurrency: %d is listed twice", n)
		}
		seen[n] = true
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("-concurrency: no levels given (example: -concurrency=1,4,16)")
	}
	return out, nil
}
