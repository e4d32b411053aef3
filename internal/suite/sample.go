package suite

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/inferbench/inferbench/engines"
	"github.com/inferbench/inferbench/fake/sim"
	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/metrics"
	"github.com/inferbench/inferbench/internal/record"
)

// Sample is one sample of one engine at one level in progress: a closed
// loop whose warm-up requests start at once and whose measured requests the
// caller hands out one Dispatch at a time (BenchmarkServe: one per b.Loop
// iteration), until Finish.
type Sample struct {
	s      *Suite
	e      *Engine
	c      int
	n      int // the sample's index among this engine's samples at c
	run    *load.Run
	ctx    context.Context
	cancel context.CancelFunc
	err    error             // the first Dispatch error
	reads  engines.ReadStats // the client's read counts at Start
}

// ErrInterrupted is returned by Start once the run or the benchmark was
// stopped.
var ErrInterrupted = errors.New("interrupted")

// seqBlock is the span of workload seqs reserved for one sample.
const seqBlock = 10_000_000

// Start starts a sample of engine e at concurrency c. ctx bounds it (the
// benchmark's context); the suite's own context (interrupts) does too.
func (s *Suite) Start(ctx context.Context, e *Engine, c int) (*Sample, error) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	sm := &Sample{s: s, e: e, c: c, n: s.nextSample(e.name, c), ctx: ctx, reads: e.client.ReadStats()}
	if _, err := s.samplerFor(); err != nil {
		cancel()
		stop()
		return nil, fmt.Errorf("measuring the client's own CPU: %w", err)
	}
	s.self.running.Add(1)
	var ended sync.Once
	sm.cancel = func() {
		stop()
		cancel()
		ended.Do(func() { s.self.running.Add(-1) })
	}
	if ctx.Err() != nil {
		sm.cancel()
		return nil, fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx))
	}
	e.mu.Lock()
	// The k-th sample of every engine starts at seq k·seqBlock, so engines
	// measured in the same order get the same prompts sample by sample;
	// a sample that used up its block pushes the next one on, so no seq
	// ever repeats within the run.
	first := max(e.started*seqBlock, e.nextSeq)
	e.started++
	e.mu.Unlock()
	do := func(ctx context.Context, rec *record.Record) {
		rec.Engine = e.name
		rec.Concurrency = c
		rec.Sample = sm.n
		req := s.work.Request(rec.Seq)
		rec.RequestedTokens = req.MaxTokens
		e.client.Do(ctx, req, rec)
	}
	run, err := load.Start(ctx, load.Config{
		Concurrency: c,
		Warmup:      s.opt.Warmup,
		Stagger:     e.stagger(),
		Epoch:       s.epoch,
		FirstSeq:    first,
	}, do)
	if err != nil {
		sm.cancel()
		return nil, err
	}
	sm.run = run
	return sm, nil
}

// Dispatch hands out one measured request; it blocks until a slot is free.
// It fails only once the sample is cancelled (an interrupt).
func (sm *Sample) Dispatch() error {
	err := sm.run.Dispatch()
	if err != nil && sm.err == nil {
		sm.err = err
	}
	return err
}

// Result is what one finished sample produced, for the benchmark to report.
type Result struct {
	// Summary is the sample's statistics.
	Summary metrics.Summary
	// Metrics are the result line's values, in the units the README defines.
	Metrics []Metric
	// Line is the result line as written to the engine's .txt file.
	Line string
	// Logs are warnings and notes for the benchmark's log (b.Log).
	Logs []string
	// Errs fail the sub-benchmark: a record or result that could not be
	// saved, an error rate above -max-error-rate, a failed dispatch.
	Errs []error
	// Interrupted is set when the run was stopped mid-sample: the records
	// are saved, the numbers are not a full sample and are not reported.
	Interrupted bool
	// Client is what the client itself cost over the window (its CPU per
	// output token, its share of the machine, how its reads kept up) and
	// whether the sample was client-bound; zero when it could not be
	// measured (an empty window).
	Client ClientCost
}

// Metric is one value of a result line.
type Metric struct {
	Value float64
	Unit  string
}

// Finish ends the sample: the requests still in flight finish under the
// same concurrency (held by unmeasured cooldown requests), the records are
// saved, and the metrics and the result line are computed and written.
func (sm *Sample) Finish() Result {
	defer sm.cancel()
	s, e, c := sm.s, sm.e, sm.c
	res := sm.run.Finish()
	e.mu.Lock()
	e.nextSeq = res.NextSeq
	e.mu.Unlock()
	var out Result
	if err := s.dir.Records(e.name, res.Records); err != nil {
		out.Errs = append(out.Errs, fmt.Errorf("saving records: %w", err))
	}
	out.Summary = metrics.Summarize(res.Records, res.Window)
	if sm.ctx.Err() != nil {
		out.Interrupted = true
		return out
	}
	if sm.err != nil {
		out.Errs = append(out.Errs, fmt.Errorf("dispatch: %w", sm.err))
	}
	sum := out.Summary
	if m := sum.E2E.Mean; m > 0 {
		e.lastE2E.Store(int64(m))
	}
	out.Metrics = reportedMetrics(sum)
	cc, measured, err := s.clientCost(res.Window, sum.OutputTokPerSec, e.client.ReadStats().Sub(sm.reads))
	switch {
	case err != nil:
		out.Errs = append(out.Errs, fmt.Errorf("measuring the client's own CPU: %w", err))
	case measured:
		out.Client = cc
		out.Metrics = append(out.Metrics,
			Metric{cc.NsPerToken, "client-cpu-ns/tok"},
			Metric{cc.MachineShare, "client-cpu-frac"},
			Metric{cc.Reads.QueuedFraction(), "client-queued-frac"})
		out.Logs = append(out.Logs, cc.logLine())
		if cc.Bound {
			s.self.bound.Add(1)
			out.Logs = append(out.Logs, "warning: CLIENT-BOUND: "+cc.Reason)
		}
	default:
		out.Logs = append(out.Logs, "warning: the client's own CPU could not be measured over this sample's window (empty window)")
	}
	if s.allSimulated() {
		pred := sim.Predict(*e.sim, c, meanPromptTokens(res.Records), s.opt.OutputTokens)
		out.Metrics = append(out.Metrics,
			Metric{ratio(sum.OutputTokPerSec, pred.OutputTokPerSec), "tok/s-vs-model"},
			Metric{ratio(sum.ReqPerSec, pred.ReqPerSec), "req/s-vs-model"},
			// Means against the model's means: a median would compare a
			// different statistic whenever step times are skewed (a few long
			// steps with prefills among many short decode-only ones).
			Metric{ratio(float64(sum.TTFT.Mean), float64(pred.TTFT)), "ttft-vs-model"},
			Metric{ratio(float64(sum.ITL.Mean), float64(pred.ITL)), "itl-vs-model"},
		)
		out.Logs = append(out.Logs, fmt.Sprintf("simulator's prediction: %.0f tok/s, %.2f req/s, ttft %v, itl %v",
			pred.OutputTokPerSec, pred.ReqPerSec, pred.TTFT, pred.ITL))
	}
	for _, w := range sum.Warnings {
		out.Logs = append(out.Logs, "warning: "+w)
	}
	if sum.Retried > 0 {
		out.Logs = append(out.Logs, fmt.Sprintf("%d of %d measured requests were sent again on a new connection: the server had closed their kept-alive connection before answering (each counted once, timed from the retry)",
			sum.Retried, sum.Requests))
	}
	tooMany := sum.ErrorRate > s.opt.MaxErrorRate
	switch {
	case tooMany:
		out.Errs = append(out.Errs, fmt.Errorf("error rate %.3f exceeds -max-error-rate %.3f: %s (records in %s)",
			sum.ErrorRate, s.opt.MaxErrorRate, metrics.ErrorSummary(sum), s.jsonlPath(e.name)))
	case sum.Failed > 0:
		out.Logs = append(out.Logs, "errors (within -max-error-rate): "+metrics.ErrorSummary(sum))
	}
	out.Line = resultLine(c, sum.Requests, out.Metrics)
	e.mu.Lock()
	defer e.mu.Unlock()
	if tooMany {
		_ = s.dir.Line(e.name, fmt.Sprintf("# FAILED sample %d at concurrency=%d: error rate %.3f > -max-error-rate %.3f: %s",
			sm.n, c, sum.ErrorRate, s.opt.MaxErrorRate, oneLine(metrics.ErrorSummary(sum))))
	}
	if out.Client.Bound {
		_ = s.dir.Line(e.name, fmt.Sprintf("# CLIENT-BOUND sample %d at concurrency=%d: %s", sm.n, c, out.Client.Reason))
	}
	if err := s.dir.Line(e.name, out.Line); err != nil {
		out.Errs = append(out.Errs, fmt.Errorf("saving result: %w", err))
	}
	s.done.Add(1)
	return out
}

func ratio(got, want float64) float64 {
	if want == 0 {
		return 0
	}
	return got / want
}

// reportedMetrics turns a summary into the benchmark's metrics, in the
// units the plots and the README document. Latencies are in ns so that
// benchstat shows them in seconds. A latency with no observation (every
// measured request failed; TPOT and ITL with one-token outputs) is left
// off the line: a 0 would read as a measurement.
//
// ns/op is the window divided by the requests that completed successfully
// inside it, whatever their phase: 1e9 / req/s, the mean time between
// completions in steady state. It is computed over the same window and
// population as tok/s, so req/s × output tokens per request = tok/s.
func reportedMetrics(sum metrics.Summary) []Metric {
	perOp := 0.0
	if sum.ReqPerSec > 0 {
		perOp = 1e9 / sum.ReqPerSec
	}
	ms := []Metric{
		{perOp, "ns/op"},
		{sum.OutputTokPerSec, "tok/s"},
		{sum.TotalTokPerSec, "total-tok/s"},
		{sum.ReqPerSec, "req/s"},
		{sum.ErrorRate, "errors/op"},
	}
	if sum.CachedReports > 0 {
		// Only where the server reports cached tokens: a 0 from a server
		// that does not say would read as "no cache hit".
		ms = append(ms, Metric{sum.CachedFraction, "cached-prompt-frac"})
	}
	for _, l := range []struct {
		d    metrics.Dist
		name string
		p99  bool
	}{{sum.TTFT, "ttft", true}, {sum.TPOT, "tpot", false}, {sum.ITL, "itl", true}, {sum.E2E, "e2e", true}} {
		if l.d.N == 0 {
			continue
		}
		ms = append(ms, Metric{float64(l.d.P50.Nanoseconds()), l.name + "-p50-ns"})
		if l.p99 {
			ms = append(ms, Metric{float64(l.d.P99.Nanoseconds()), l.name + "-p99-ns"})
		}
	}
	return ms
}

// resultLine renders one sample exactly as `go test -bench` prints it, in
// the single-engine naming (BenchmarkServe/concurrency=N-P), so per-engine
// files line up in benchstat. testing.BenchmarkResult formats the numbers,
// so the file and the benchmark output agree digit for digit.
func resultLine(c, iters int, ms []Metric) string {
	r := testing.BenchmarkResult{N: iters, Extra: map[string]float64{}}
	for _, m := range ms {
		r.Extra[m.Unit] = m.Value
	}
	return fmt.Sprintf("%s/concurrency=%d-%d\t%s", benchParent, c, runtime.GOMAXPROCS(0), r.String())
}

// sampleCounter numbers the samples of each engine and level.
type sampleCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *Suite) nextSample(engine string, c int) int {
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
