package suite

import (
	"fmt"
	"runtime"

	"github.com/inferbench/inferbench/fake/sim"
	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/metrics"
	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/slo"
)

// analysis is everything a sample's result is computed from besides its
// records and its window: the facts of the run that no record holds and
// the options that only affect analysis. Sample.Finish and -from (Recompute)
// both build one and call analyze, so a result recomputed from the saved
// records is the very line the run wrote.
type analysis struct {
	// level is the concurrency level, every shard together; sample is the
	// sample's index at that level (for the FAILED comment).
	level, sample int
	// name is the result line's name below BenchmarkServe, without the
	// -GOMAXPROCS suffix: concurrency=N, or concurrency=N/shard=IofM for
	// one shard's share.
	name string
	// procs is the -N suffix of the name (the run's GOMAXPROCS).
	procs int
	// maxErrorRate is -max-error-rate.
	maxErrorRate float64
	// sim is the simulated engine's model: when set, the *-vs-model
	// metrics are reported, predicted for level streams.
	sim *sim.Config
	// outputTokens is -output-tokens (the prediction needs it).
	outputTokens int
	// records names where the records are, for error messages.
	records string
	// open is set for an open-loop sample (rate=R): level is then the cap
	// on requests in flight, not a number of slots to fill.
	open bool
	// slo is -slo: with limits, goodput-req/s, slo-good/op and slo-met are
	// added (an analysis-only option: -from may set another).
	slo slo.SLO
}

// analyze computes a sample's statistics, metrics, result line, logs and
// the error-rate failure from its records and measured window. It does no
// I/O: the caller writes failedLine (if any) and Line to the .txt file.
func analyze(recs []record.Record, w load.Window, a analysis) Result {
	var out Result
	out.Summary = metrics.Summarize(recs, w)
	sum := out.Summary
	out.Metrics = reportedMetrics(sum)
	if a.sim != nil {
		pred := sim.Predict(*a.sim, a.level, meanPromptTokens(recs), meanRequestedTokens(recs, a.outputTokens))
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
	if !a.slo.IsZero() {
		ms, log := sloMetrics(a.slo, recs, sum.Window)
		out.Metrics = append(out.Metrics, ms...)
		out.Logs = append(out.Logs, log)
	}
	for _, w := range sampleWarnings(sum) {
		out.Logs = append(out.Logs, "warning: "+w)
	}
	if sum.Retried > 0 {
		out.Logs = append(out.Logs, fmt.Sprintf("%d of %d measured requests were sent again on a new connection: the server had closed their kept-alive connection before answering (each counted once, timed from the retry)",
			sum.Retried, sum.Requests))
	}
	switch {
	case sum.ErrorRate > a.maxErrorRate:
		out.Errs = append(out.Errs, fmt.Errorf("error rate %.3f exceeds -max-error-rate %.3f: %s (records in %s)",
			sum.ErrorRate, a.maxErrorRate, metrics.ErrorSummary(sum), a.records))
		out.failedLine = fmt.Sprintf("# FAILED sample %d at %s: error rate %.3f > -max-error-rate %.3f: %s",
			a.sample, a.name, sum.ErrorRate, a.maxErrorRate, oneLine(metrics.ErrorSummary(sum)))
	case sum.Failed > 0:
		out.Logs = append(out.Logs, "errors (within -max-error-rate): "+metrics.ErrorSummary(sum))
	}
	if !a.open {
		out.Logs = append(out.Logs, sampleNotes(a.level, sum)...)
	}
	out.Line, out.All = resultLines(a.name, a.procs, sum.Requests, out.Metrics)
	return out
}

// analysisOf is the analysis of engine e's sample n at level c in this run.
func (s *Suite) analysisOf(e *Engine, c, n int) analysis {
	a := analysis{
		level:        c,
		sample:       n,
		name:         fmt.Sprintf("concurrency=%d%s", c, s.shard.nameSuffix()),
		procs:        runtime.GOMAXPROCS(0),
		maxErrorRate: s.opt.MaxErrorRate,
		outputTokens: s.opt.OutputTokens,
		records:      s.jsonlPath(e.name),
	}
	if s.allSimulated() {
		a.sim = e.sim
	}
	a.slo = s.slo
	return a
}
