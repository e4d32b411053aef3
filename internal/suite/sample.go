package suite

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/inferbench/inferbench/engines"
	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/metrics"
	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/results"
	"github.com/inferbench/inferbench/internal/workload"
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
	run    runner
	open   *openSample // an open-loop sample (StartRate); nil in a closed loop
	ctx    context.Context
	cancel context.CancelFunc
	err    error             // the first Dispatch error
	reads  engines.ReadStats // the client's read counts at Start
	// dispatched counts the measured requests handed out (TopUp).
	dispatched int
	meta       results.SampleMeta // what the samples file says of this sample (closed loop)

	saveMu  sync.Mutex
	saveErr error // the first record that could not be saved
}

// runner is a closed-loop (load.Run) or open-loop (load.OpenRun) run.
type runner interface {
	Dispatch() error
	Finish() load.Result
}

// level is the sample's name element: concurrency=N or rate=R.
func (sm *Sample) level() string {
	if sm.open != nil && sm.open.level != "" {
		return sm.open.level
	}
	if sm.open != nil {
		return rateLevel(sm.open.rate)
	}
	return fmt.Sprintf("concurrency=%d", sm.c)
}

// save writes one record to the engine's .jsonl as its request ends, so a
// sample's records are never encoded into one buffer, and an interrupted
// run keeps every request that ended.
func (sm *Sample) save(rec *record.Record) {
	if err := sm.s.dir.Record(sm.e.name, rec); err != nil {
		sm.saveMu.Lock()
		if sm.saveErr == nil {
			sm.saveErr = err
		}
		sm.saveMu.Unlock()
	}
}

// ErrInterrupted is returned by Start once the run or the benchmark was
// stopped.
var ErrInterrupted = errors.New("interrupted")

// seqBlock is the span of workload seqs reserved for one sample.
const seqBlock = 10_000_000

// Start starts a sample of engine e at concurrency c. ctx bounds it (the
// benchmark's context); the suite's own context (interrupts) does too.
func (s *Suite) Start(ctx context.Context, e *Engine, c int) (*Sample, error) {
	if s.takeKept(e.name, fmt.Sprintf("concurrency=%d", c)) {
		return nil, ErrKept
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	sm := &Sample{s: s, e: e, c: c, n: s.nextSample(e.name, fmt.Sprintf("concurrency=%d", c)), ctx: ctx, reads: e.client.ReadStats()}
	if _, err := s.samplerFor(); err != nil {
		cancel()
		stop()
		return nil, fmt.Errorf("measuring the client's own CPU: %w", err)
	}
	if err := s.writeFailure(); err != nil {
		cancel()
		stop()
		return nil, err
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
	sm.meta = results.SampleMeta{Concurrency: c, Streams: s.shard.share(c), Sample: sm.n}
	if err := sm.waitForStart(); err != nil {
		sm.cancel()
		return nil, err
	}
	e.mu.Lock()
	// The k-th sample of every engine starts at seq k·seqBlock, so engines
	// measured in the same order get the same prompts sample by sample;
	// a sample that used up its block pushes the next one on, so no seq
	// ever repeats within the run.
	first := max(e.started*seqBlock, e.nextSeq)
	e.started++
	e.mu.Unlock()
	var conv *workload.Conversations
	if s.work.MultiTurn() {
		// Conversations run c at a time, one per slot's worth of seqs:
		// turn t+1 of a conversation is seq s+c, dispatched after turn t.
		var err error
		if conv, err = s.work.Conversations(first, c, nil, nil); err != nil {
			sm.cancel()
			return nil, err
		}
	}
	do := func(ctx context.Context, rec *record.Record) {
		rec.Engine = e.name
		rec.Concurrency = c
		rec.Sample = sm.n
		rec.Seq = s.shard.seq(rec.Seq)
		if rec.Phase == record.Measured {
			defer s.progressMeasured()
		}
		if conv != nil {
			doTurn(ctx, s, e, conv, rec)
			return
		}
		req, info := s.work.RequestInfo(rec.Seq)
		rec.RequestedTokens = req.MaxTokens
		e.client.Do(ctx, req, rec)
		rec.PrefixTokens = info.PrefixTokens // after Do, which resets what it does not own
	}
	sm.meta.Started = time.Since(s.epoch)
	run, err := load.Start(ctx, load.Config{
		Concurrency: sm.meta.Streams,
		Warmup:      s.opt.Warmup,
		Stagger:     e.stagger(),
		Epoch:       s.epoch,
		FirstSeq:    first,
		OnRecord:    sm.save,
	}, do)
	if err != nil {
		sm.cancel()
		return nil, err
	}
	sm.run = run
	s.progressBegin(e, c, sm.n)
	return sm, nil
}

// doTurn sends one conversation turn: it waits for the previous turn (and
// the think time), sends the history with the engine's own answers, and
// hands this turn's answer on to the next. Intended moves to when the turn
// became ready, so Sent − Intended stays client-side queueing and the
// think time is not counted as such.
func doTurn(ctx context.Context, s *Suite, e *Engine, conv *workload.Conversations, rec *record.Record) {
	req, ti, end, err := conv.Begin(ctx, rec.Seq)
	if err != nil {
		end("", false)
		rec.Sent = rec.Intended
		rec.Error, rec.Message = record.Canceled, "canceled waiting for the previous turn of the conversation: "+err.Error()
		rec.Conversation, rec.Turn = ti.Conversation+1, ti.Turn
		return
	}
	if !ti.Ready.IsZero() {
		rec.Intended = max(rec.Intended, ti.Ready.Sub(s.epoch))
	}
	rec.RequestedTokens = req.MaxTokens
	var answer strings.Builder
	req.Answer = &answer
	e.client.Do(ctx, req, rec)
	end(answer.String(), rec.Error == record.OK)
	rec.PrefixTokens = ti.Info.PrefixTokens
	rec.Conversation, rec.Turn = ti.Conversation+1, ti.Turn
}

// Dispatch hands out one measured request; it blocks until a slot is free.
// It fails only once the sample is cancelled (an interrupt).
func (sm *Sample) Dispatch() error {
	err := sm.run.Dispatch()
	if err != nil && sm.err == nil && !sm.replayed(err) {
		sm.err = err
	}
	if err == nil {
		sm.dispatched++
	}
	return err
}

// Result is what one finished sample produced, for the benchmark to report.
type Result struct {
	// Summary is the sample's statistics.
	Summary metrics.Summary
	// Metrics are the result line's values, in the units docs/metrics.md defines.
	Metrics []Metric
	// Line is the result line as written to the engine's .txt file: the
	// headline metrics (HeadlineUnits); All is its line in the companion
	// <engine>.all.txt, with every metric.
	Line, All string
	// Logs are warnings and notes for the benchmark's log (b.Log).
	Logs []string
	// Errs fail the sub-benchmark: a record or result that could not be
	// saved, an error rate above -max-error-rate, a failed dispatch.
	Errs []error
	// Interrupted is set when the run was stopped mid-sample: the records
	// are saved, the numbers are not a full sample and are not reported.
	Interrupted bool
	// Unsaved is set when the sample's records, its samples line or its
	// result line could not be written: its numbers are not reported
	// (no result may stand without its records), Errs say which file
	// failed, and the run stops.
	Unsaved bool
	// promptTokens is the measured requests' mean server-reported prompt
	// length (the virtual-time model needs it).
	promptTokens int

	failedLine string // the "# FAILED ..." comment written before Line, if any

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
	s.progressPause()
	e.mu.Lock()
	e.nextSeq = res.NextSeq
	e.mu.Unlock()
	var saveErrs []error
	sm.saveMu.Lock()
	if sm.saveErr != nil {
		saveErrs = append(saveErrs, fmt.Errorf("saving records: %w", sm.saveErr))
	}
	sm.saveMu.Unlock()
	interrupted := sm.ctx.Err() != nil
	if sm.open != nil {
		// The open loop saves its records at the end (no per-record hook);
		// -from recomputes closed-loop samples only, so it has no samples line.
		if err := s.dir.Records(e.name, res.Records); err != nil {
			saveErrs = append(saveErrs, fmt.Errorf("saving records: %w", err))
		}
	} else if interrupted {
		if err := s.dir.Sample(e.name, sm.sampleMeta(res, true, nil, nil)); err != nil {
			saveErrs = append(saveErrs, fmt.Errorf("saving the sample's metadata: %w", err))
		}
	}
	if interrupted {
		if len(saveErrs) > 0 {
			s.failWrites(saveErrs[0])
		}
		return Result{Summary: metrics.Summarize(res.Records, res.Window), Errs: saveErrs, Interrupted: true}
	}
	// The result is a function of the records, the window and the
	// analysis options only: -from recomputes it with the same call.
	a := s.analysisOf(e, c, sm.n)
	if sm.open != nil {
		// The closed-loop model does not predict an open loop (openMetrics
		// compares it with the virtual-time model instead).
		a.open, a.sim, a.name = true, nil, sm.level()
	}
	out := analyze(res.Records, res.Window, a)
	out.Errs = append(saveErrs, out.Errs...)
	if sm.err != nil {
		out.Errs = append(out.Errs, fmt.Errorf("dispatch: %w", sm.err))
	}
	if m := out.Summary.E2E.Mean; m > 0 {
		e.lastE2E.Store(int64(m))
	}
	sum := out.Summary
	out.promptTokens = meanPromptTokens(res.Records)
	// Metrics that are not a function of the records and the analysis
	// options (the client's own CPU; the workload's, which need its
	// options) are kept in the sample's line of the samples file, so -from
	// puts them back on the recomputed line (extra).
	var extra []Metric
	cc, measured, err := s.clientCost(res.Window, sum.OutputTokPerSec, e.client.ReadStats().Sub(sm.reads))
	switch {
	case err != nil:
		out.Errs = append(out.Errs, fmt.Errorf("measuring the client's own CPU: %w", err))
	case measured:
		out.Client = cc
		extra = append(extra,
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
	extra = append(extra, workloadMetrics(s, res.Records)...)
	out.Logs = append(out.Logs, lengthLog(s, res.Records)...)
	if sm.open != nil {
		ms, logs := sm.openMetrics(res, sum)
		extra = append(extra, ms...)
		out.Logs = append(out.Logs, logs...)
	}
	out.Metrics = append(out.Metrics, extra...)
	var comments []string // written after any FAILED line, before the result line
	if out.Client.Bound {
		comments = append(comments, fmt.Sprintf("# CLIENT-BOUND sample %d at %s: %s", sm.n, sm.level(), out.Client.Reason))
	}
	if s.auto != nil && sm.open == nil {
		// -concurrency=auto's points are checked for a steady state; the
		// verdict is a '#' line before the result line (kept for -from in
		// the samples file), a log line and, when it fails, a warning of
		// the sample in summary.json.
		st := checkSteady(res.Records, res.Window, c)
		line := steadyComment(st, sm.n, sm.level())
		comments = append(comments, line)
		out.Logs = append(out.Logs, strings.TrimPrefix(line, "# "))
		s.auto.checked.Add(1)
		switch {
		case !st.Verified:
			s.auto.unverified.Add(1)
			out.Summary.Warnings = append(out.Summary.Warnings, strings.TrimPrefix(line, "# "))
		case !st.Steady:
			s.auto.notSteady.Add(1)
			out.Summary.Warnings = append(out.Summary.Warnings, strings.TrimPrefix(line, "# "))
		}
	}
	if sm.open == nil && len(saveErrs) == 0 {
		if err := s.dir.Sample(e.name, sm.sampleMeta(res, false, extra, comments)); err != nil {
			saveErrs = append(saveErrs, fmt.Errorf("saving the sample's metadata: %w", err))
			out.Errs = append(out.Errs, saveErrs[len(saveErrs)-1])
		}
	}
	out.Line, out.All = resultLines(a.name, a.procs, sum.Requests, out.Metrics)
	if len(saveErrs) > 0 {
		// No result stands without its records: the sample's line is not
		// written, its numbers are not reported, and the run stops.
		s.failWrites(saveErrs[0])
		out.Unsaved = true
		out.Errs = append(out.Errs, fmt.Errorf("the sample at %s is not reported: its records are not all on disk", sm.level()))
		return out
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if out.failedLine != "" {
		_ = s.dir.Line(e.name, out.failedLine)
	}
	for _, c := range comments {
		_ = s.dir.Line(e.name, c)
	}
	line, all := out.Line, out.All
	if sm.open != nil && sm.open.probe {
		// A step of BenchmarkCapacity's search, not a result.
		line, all = "# capacity probe: "+line, "# capacity probe: "+all
	}
	if err := s.dir.Result(e.name, line, all); err != nil {
		err = fmt.Errorf("saving result: %w", err)
		s.failWrites(err)
		out.Unsaved = true
		out.Errs = append(out.Errs, err)
		return out
	}
	s.done.Add(1)
	if sm.open == nil {
		// summary.json pools closed-loop levels; open-loop samples are
		// on their result lines and in the records (rate).
		s.recordSample(e, c, sm.n, out)
	}
	return out
}

func ratio(got, want float64) float64 {
	if want == 0 {
		return 0
	}
	return got / want
}

// reportedMetrics turns a summary into the benchmark's metrics, in the
// units the plots and docs/metrics.md document. Latencies are in ns so that
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
			ms = append(ms, tailMetrics(l.d, l.name)...) // only the tails the sample supports
		}
	}
	return ms
}

// Reported are the metrics BenchmarkServe reports with b.ReportMetric, so
// that its output lines carry what <engine>.txt carries: the headline
// metrics, and ns/op as 0, which testing leaves off the line (its own
// ns/op, the benchmark function's time per iteration, is no figure of
// the engine's).
func (r Result) Reported() []Metric {
	return append(Headline(r.Metrics), Metric{0, "ns/op"})
}

// sampleCounter numbers the samples of each engine and level.
type sampleCounter struct {
	mu sync.Mutex
	n  map[string]int
}

// takeKept reports whether the next sample of engine at level is one
// -resume kept; if so, its index is taken.
func (s *Suite) takeKept(engine, level string) bool {
	if s.resume == nil {
		return false
	}
	s.samples.mu.Lock()
	defer s.samples.mu.Unlock()
	if s.samples.n == nil {
		s.samples.n = map[string]int{}
	}
	k := engine + "/" + level
	if s.samples.n[k] >= s.resume.kept[k] {
		return false
	}
	s.samples.n[k]++
	return true
}

func (s *Suite) nextSample(engine, level string) int {
	s.samples.mu.Lock()
	defer s.samples.mu.Unlock()
	if s.samples.n == nil {
		s.samples.n = map[string]int{}
	}
	k := engine + "/" + level
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
