package inferbench

// This file binds the suite (internal/suite) to the command line
// (internal/cli's flags) and to testing.B: TestMain, BenchmarkServe and
// BenchmarkCapacity. It is the only place that touches testing.B; set-up,
// preflight, samples, result files and plots are internal/suite's, which
// the tests and BenchmarkServe call alike.

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

	"github.com/inferbench/inferbench/internal/cli"
	"github.com/inferbench/inferbench/internal/suite"
)

// flags is the suite's command line (internal/cli: every flag with its
// group, unit and help; docs/flags.md is generated from it).
var flags = cli.Register(flag.CommandLine)

// theSuite is set by TestMain when benchmarks run; nil otherwise.
var theSuite *suite.Suite

func TestMain(m *testing.M) {
	flag.CommandLine.Usage = func() { flags.Usage(flag.CommandLine.Output()) }
	flag.Parse()
	if flags.PrintFlags() {
		flags.Usage(os.Stdout)
		os.Exit(0)
	}
	if flags.From() != "" {
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
	opt, err := flags.Options()
	var s *suite.Suite
	if err == nil {
		opt.Bench, opt.Benchtime, opt.Getenv, opt.Progress = benchPattern(), benchtimeGiven(), os.Getenv, tty
		s, err = suite.New(ctx, opt)
	}
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
		fmt.Fprintf(os.Stdout, "# interrupted: results of the finished levels are in %s; the same command with -resume runs the rest\n", s.Dir())
		code = 130
	}
	if err := s.Conclude(os.Stdout, flags.Plot()); err != nil {
		fmt.Fprintf(os.Stdout, "FAIL inferbench: %v\n", err)
		code = 1
	}
	return code
}

// runFrom is -from: TestMain prints the recomputed result lines itself,
// under BenchmarkServe's sub-benchmark names and after the run's header, so
// the output is what benchstat reads from a run; no test or benchmark runs
// (a benchmark function would report b.N iterations of its own, not the
// recorded requests). Only the analysis flags apply (cli.FromOptions),
// and -bench: which sub-benchmarks.
func runFrom() int {
	opt := flags.FromOptions()
	opt.Bench = benchPattern()
	if err := suite.Recompute(opt, os.Stdout, flags.Plot()); err != nil {
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
	if !flags.Progress() {
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
	if errors.Is(err, suite.ErrInterrupted) || errors.Is(err, suite.ErrKept) {
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
	if r.Unsaved {
		// Its records are not all on disk: nothing is reported.
		for _, err := range r.Errs {
			b.Error(err)
		}
		return
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
	if r.Unsaved {
		for _, err := range r.Errs {
			b.Error(err)
		}
		return
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
