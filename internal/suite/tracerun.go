package suite

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/trace"
)

// DefaultTraceBlockTokens is the tokens per hash id of a trace's prompt
// blocks when -trace-block-tokens is not given: Mooncake's block size.
const DefaultTraceBlockTokens = 512

// parseTrace reads -trace, if given: the file fails the run before any
// request with file:line and what was expected (internal/trace).
func (s *Suite) parseTrace() error {
	if s.opt.Trace == "" {
		return nil
	}
	switch {
	case s.opt.TraceSpeed < 0:
		return fmt.Errorf("-trace-speed=%g: must be positive (1 replays the trace as recorded, 2 twice as fast)", s.opt.TraceSpeed)
	case s.opt.TraceBlockTokens < 0:
		return fmt.Errorf("-trace-block-tokens=%d: must be positive (0 for the default %d)", s.opt.TraceBlockTokens, DefaultTraceBlockTokens)
	case s.opt.Dataset != "":
		return errors.New("-trace: a trace gives prompt lengths and prefixes, its prompts are synthetic; drop -dataset")
	}
	tr, err := trace.Read(s.opt.Trace)
	if err != nil {
		return fmt.Errorf("-trace: %w", err)
	}
	if len(tr.Entries) == 0 {
		return fmt.Errorf("-trace=%s: no replayable request (%d skipped with 0 prompt or answer tokens)", s.opt.Trace, tr.Skipped)
	}
	s.trace = tr
	return nil
}

// traceSpeed is -trace-speed, 1 by default.
func (s *Suite) traceSpeed() float64 {
	if s.opt.TraceSpeed > 0 {
		return s.opt.TraceSpeed
	}
	return 1
}

// HasTrace reports whether -trace was given: BenchmarkServe then replays
// it once per engine (sub-benchmark TraceName).
func (s *Suite) HasTrace() bool { return s.trace != nil }

// traceLevel is a trace sample's name element: trace=SPEEDx.
func (s *Suite) traceLevel() string {
	return "trace=" + strconv.FormatFloat(s.traceSpeed(), 'g', -1, 64) + "x"
}

// TraceName is engine e's trace sub-benchmark under BenchmarkServe.
func (s *Suite) TraceName(e *Engine) string { return withEngine(s.multi, e.name, s.traceLevel()) }

// StartTrace starts a replay of -trace on engine e: an open loop whose
// arrivals are the trace's offsets ÷ -trace-speed, each request the
// trace's prompt and output lengths (its hash ids as shared prompt
// blocks, workload.TraceRequest), with no warm-up (the trace is the
// workload as recorded). A replay is always the whole trace: Dispatch each
// arrival, then TopUp sends what is left.
func (s *Suite) StartTrace(ctx context.Context, e *Engine) (*Sample, error) {
	level := s.traceLevel()
	n := s.nextSample(e.name, level)
	p, err := trace.NewPacer(s.trace, s.traceSpeed())
	if err != nil {
		return nil, fmt.Errorf("-trace-speed: %w", err)
	}
	blockTokens := s.opt.TraceBlockTokens
	if blockTokens == 0 {
		blockTokens = DefaultTraceBlockTokens
	}
	// Records carry the trace's mean arrival rate, so they are told from
	// closed-loop samples (summary.json pools those only).
	meanRate := 0.0
	if d := s.trace.Duration(); d > 0 && len(s.trace.Entries) > 1 {
		meanRate = float64(len(s.trace.Entries)-1) / (d.Seconds() / s.traceSpeed())
	}
	o := &openSample{rate: meanRate, level: level, pacer: p, cap: s.maxConcurrency(), replay: true}
	var first int
	build := func(rec *record.Record) (reqInfo, error) {
		i := rec.Seq - first
		if i < 0 || i >= len(s.trace.Entries) {
			return reqInfo{}, fmt.Errorf("trace: seq %d is outside the trace's %d requests", rec.Seq, len(s.trace.Entries))
		}
		req, info, err := s.work.TraceRequest(s.trace.Entries[i], blockTokens, rec.Seq)
		return reqInfo{req, info}, err
	}
	return s.startOpenWith(ctx, e, o, n, &first, build)
}

// ErrReplayDone is returned by a trace replay's Dispatch once the trace's
// last arrival was sent: the end of the sample's arrivals, not a failure.
var ErrReplayDone = load.ErrScheduleEnded

// replayed reports whether err only says that a replay sent its last
// arrival (not a failure).
func (sm *Sample) replayed(err error) bool {
	return sm.open != nil && sm.open.replay && errors.Is(err, ErrReplayDone)
}
