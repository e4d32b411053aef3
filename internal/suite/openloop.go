package suite

// Open-loop samples (-rate): arrivals on a seeded schedule, whatever the
// engine is doing, up to -max-concurrency in flight.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/inferbench/inferbench/engines"
	"github.com/inferbench/inferbench/fake/sim"
	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/metrics"
	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/workload"
)

// DefaultMaxConcurrency is the -max-concurrency an open loop gets when
// Options.MaxConcurrency is 0.
const DefaultMaxConcurrency = 256

// lateThreshold is how far behind its scheduled instant an arrival may be
// sent before it counts as late (late/op): a timer's wake-up on a busy
// machine is well under it, a client that cannot keep the rate or an
// arrival held by -max-concurrency is not.
const lateThreshold = time.Millisecond

// arrival is a parsed -arrival.
type arrival struct {
	kind string  // poisson, gamma, constant
	cv   float64 // gamma's coefficient of variation of the gaps
}

func (a arrival) String() string {
	if a.kind == "gamma" {
		return "gamma:" + strconv.FormatFloat(a.cv, 'g', -1, 64)
	}
	return a.kind
}

// parseArrival parses -arrival: poisson (the default), gamma:CV or
// constant.
func parseArrival(s string) (arrival, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	switch {
	case s == "" || s == "poisson":
		return arrival{kind: "poisson"}, nil
	case s == "constant":
		return arrival{kind: "constant"}, nil
	case strings.HasPrefix(s, "gamma:"):
		cv, err := strconv.ParseFloat(strings.TrimPrefix(s, "gamma:"), 64)
		if err != nil || !(cv > 0) || cv > 100 {
			return arrival{}, fmt.Errorf("-arrival=%s: CV must be a number above 0 and at most 100, the coefficient of variation of the gaps (1 is Poisson, 2 burstier; example: -arrival=gamma:2)", s)
		}
		return arrival{kind: "gamma", cv: cv}, nil
	}
	return arrival{}, fmt.Errorf("-arrival=%s: want poisson, gamma:CV or constant", s)
}

// pacer returns the schedule of rate requests per second for seed.
func (a arrival) pacer(rate float64, seed int64) load.Scheduler {
	switch a.kind {
	case "constant":
		return constantPacer{rate}
	case "gamma":
		// Gamma gaps of shape k have CV 1/√k.
		return load.NewGammaPacer(rate, 1/(a.cv*a.cv), seed)
	}
	return load.NewPoissonPacer(rate, seed)
}

// constantPacer is an evenly spaced schedule of any real rate
// (load.ConstantPacer takes a whole number per period).
type constantPacer struct{ rate float64 }

func (p constantPacer) Due(n uint64) time.Duration {
	return time.Duration(float64(n) / p.rate * float64(time.Second))
}

func (p constantPacer) Pace(elapsed time.Duration, sent uint64) (time.Duration, bool) {
	return max(p.Due(sent)-elapsed, 0), false
}

// parseRates parses -rate: positive request rates per second.
func parseRates(list string) ([]float64, error) {
	var out []float64
	seen := map[float64]bool{}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		r, err := strconv.ParseFloat(f, 64)
		if err != nil || !(r > 0) || math.IsInf(r, 0) {
			return nil, fmt.Errorf("-rate: %q is not a positive number of requests per second (example: -rate=2,8,32)", f)
		}
		if r > 100000 {
			return nil, fmt.Errorf("-rate: %g requests/s is more than this client is built for (at most 100000)", r)
		}
		if seen[r] {
			return nil, fmt.Errorf("-rate: %g is listed twice", r)
		}
		seen[r] = true
		out = append(out, r)
	}
	return out, nil
}

// Rates are the open-loop rates of -rate, in order.
func (s *Suite) Rates() []float64 { return s.rates }

// rateLevel is the name element of an open-loop sample: rate=R.
func rateLevel(r float64) string { return "rate=" + strconv.FormatFloat(r, 'g', -1, 64) }

// RateName is the sub-benchmark name of engine e at rate r under
// BenchmarkServe: rate=R, with engine=NAME/ first as in SubName.
func (s *Suite) RateName(e *Engine, r float64) string {
	return withEngine(s.multi, e.name, rateLevel(r))
}

func withEngine(multi bool, engine, level string) string {
	if multi {
		return "engine=" + engine + "/" + level
	}
	return level
}

// maxConcurrency is -max-concurrency or its default.
func (s *Suite) maxConcurrency() int {
	if s.opt.MaxConcurrency > 0 {
		return s.opt.MaxConcurrency
	}
	return DefaultMaxConcurrency
}

// scheduleSeed is the seed of the k-th schedule at rate r: the same for
// every engine (so they all get the same arrivals), different for every
// rate and repetition (so repetitions sample the arrival process).
func scheduleSeed(seed int64, r float64, k int) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%g/%d", seed, r, k)
	return int64(h.Sum64() >> 1)
}

// openSample is what an open-loop sample adds to a Sample.
type openSample struct {
	rate   float64
	level  string // the name element when not rate=R (a trace replay)
	replay bool   // a trace replay: the whole schedule is the sample
	pacer  load.Scheduler
	warmup int
	cap    int
	probe  bool // a capacity probe: its line is a comment, not a result
}

// StartRate starts a sample of engine e at rate requests per second: one
// Dispatch per arrival (BenchmarkServe: one per b.Loop iteration). The
// schedule comes from -seed, -arrival and the sample's index, so the n-th
// sample of every engine at this rate has the same arrivals. -warmup
// arrivals per request/s of rate (at least one second of the schedule
// when -warmup is 1) go first, unmeasured.
func (s *Suite) StartRate(ctx context.Context, e *Engine, rate float64) (*Sample, error) {
	n := s.nextSample(e.name, rateLevel(rate))
	return s.startOpen(ctx, e, rate, n, scheduleSeed(s.opt.Seed, rate, n), false)
}

// openWarmup is the number of warm-up arrivals of a sample at rate.
func (s *Suite) openWarmup(rate float64) int {
	return s.opt.Warmup * int(math.Ceil(rate))
}

func (s *Suite) startOpen(ctx context.Context, e *Engine, rate float64, n int, seed int64, probe bool) (*Sample, error) {
	o := &openSample{rate: rate, pacer: s.arrival.pacer(rate, seed), warmup: s.openWarmup(rate), cap: s.maxConcurrency(), probe: probe}
	return s.startOpenWith(ctx, e, o, n, nil, func(rec *record.Record) (reqInfo, error) {
		req, info := s.work.RequestInfo(rec.Seq)
		return reqInfo{req, info}, nil
	})
}

// reqInfo is a request and what the workload says of it.
type reqInfo struct {
	req  engines.Request
	info workload.Info
}

// startOpenWith starts open-loop sample n of engine e with o's schedule,
// building each request with build; *first (if first is not nil) is set to
// the sample's first seq before any request is built.
func (s *Suite) startOpenWith(ctx context.Context, e *Engine, o *openSample, n int, first *int, build func(*record.Record) (reqInfo, error)) (*Sample, error) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	sm := &Sample{s: s, e: e, c: o.cap, n: n, ctx: ctx, open: o}
	sm.cancel = func() { stop(); cancel() }
	if err := s.writeFailure(); err != nil {
		sm.cancel()
		return nil, err
	}
	if ctx.Err() != nil {
		sm.cancel()
		return nil, fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx))
	}
	firstSeq := e.reserveSeqs()
	if first != nil {
		*first = firstSeq
	}
	do := func(ctx context.Context, rec *record.Record) {
		rec.Engine = e.name
		rec.Rate = o.rate
		rec.Sample = n
		ri, err := build(rec)
		if err != nil {
			rec.Sent, rec.Done = time.Since(s.epoch), time.Since(s.epoch)
			rec.Error, rec.Message = record.Malformed, err.Error()
			return
		}
		rec.RequestedTokens = ri.req.MaxTokens
		e.client.Do(ctx, ri.req, rec)
		rec.PrefixTokens = ri.info.PrefixTokens // after Do, which resets what it does not own
	}
	run, err := load.StartOpen(ctx, load.OpenConfig{
		Pacer:          o.pacer,
		MaxConcurrency: o.cap,
		Warmup:         o.warmup,
		FirstSeq:       firstSeq,
		Epoch:          s.epoch,
	}, do)
	if err != nil {
		sm.cancel()
		return nil, err
	}
	sm.run = run
	return sm, nil
}

// reserveSeqs returns the first workload seq of the engine's next sample
// (see Start).
func (e *Engine) reserveSeqs() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	first := max(e.started*seqBlock, e.nextSeq)
	e.started++
	return first
}

// openMetrics are an open-loop sample's own metrics: the rate achieved,
// the dispatch lag, late arrivals and latency from the intended send, and
// on an all-simulated run the virtual-time model's agreement.
func (sm *Sample) openMetrics(res load.Result, sum metrics.Summary) ([]Metric, []string) {
	o := sm.open
	var lags []time.Duration
	var firstSent, lastSent, firstInt, lastInt time.Duration
	late, n := 0, 0
	for i := range res.Records {
		r := &res.Records[i]
		if r.Phase != record.Measured {
			continue
		}
		if n == 0 || r.Sent < firstSent {
			firstSent = r.Sent
		}
		lastSent = max(lastSent, r.Sent)
		if n == 0 || r.Intended < firstInt {
			firstInt = r.Intended
		}
		lastInt = max(lastInt, r.Intended)
		lag := r.Sent - r.Intended
		lags = append(lags, lag)
		if lag > lateThreshold {
			late++
		}
		n++
	}
	rate := func(span time.Duration) float64 {
		if n < 2 || span <= 0 {
			return 0
		}
		return float64(n-1) / span.Seconds()
	}
	lag := metrics.NewDist(lags)
	var ms []Metric
	var logs []string
	if n >= 2 {
		ms = append(ms, Metric{rate(lastSent - firstSent), "achieved-req/s"}, Metric{rate(lastInt - firstInt), "scheduled-req/s"})
	} else {
		// A rate needs two sends; a 0 would read as "nothing was sent".
		logs = append(logs, fmt.Sprintf("no achieved-req/s or scheduled-req/s: %d measured arrival(s), a rate needs two (-benchtime=Nx with N ≥ 2)", n))
	}
	ms = append(ms,
		Metric{float64(lag.P50), "lag-p50-ns"},
		Metric{ratio(float64(late), float64(n)), "late/op"},
	)
	// Tails only where the sample supports them, by the result line's rule
	// (tailMetrics); the *-vs-model ratios below compare the measurement
	// with the model run on the very same arrivals, a check of the
	// simulator, and keep their p99.
	ms = append(ms, tailMetrics(lag, "lag")...)
	if d := sum.QueuedTTFT; d.N > 0 {
		ms = append(ms, Metric{float64(d.P50), "queued-ttft-p50-ns"})
		ms = append(ms, tailMetrics(d, "queued-ttft")...)
	}
	if d := sum.QueuedE2E; d.N > 0 {
		ms = append(ms, Metric{float64(d.P50), "queued-e2e-p50-ns"})
		ms = append(ms, tailMetrics(d, "queued-e2e")...)
	}
	if late > 0 {
		logs = append(logs, fmt.Sprintf("%d of %d arrivals were sent more than %v after their scheduled instant (lag p99 %v): the client or -max-concurrency=%d held them; latency from the intended send counts the wait",
			late, n, lateThreshold, lag.P99, o.cap))
	}
	if sm.s.allSimulated() && res.Dispatched > 0 && !o.replay { // the model takes fixed lengths, not a trace's
		pred, err := sm.predictOpen(res.Dispatched, meanPromptTokens(res.Records))
		if err != nil {
			logs = append(logs, "no virtual-time prediction: "+err.Error())
		} else {
			ms = append(ms,
				Metric{ratio(float64(sum.QueuedTTFT.P50), float64(pred.QueuedTTFT.P50)), "ttft-p50-vs-model"},
				Metric{ratio(float64(sum.QueuedTTFT.P99), float64(pred.QueuedTTFT.P99)), "ttft-p99-vs-model"},
				Metric{ratio(float64(sum.TPOT.P50), float64(pred.TPOT.P50)), "tpot-p50-vs-model"},
				Metric{ratio(float64(sum.TPOT.P99), float64(pred.TPOT.P99)), "tpot-p99-vs-model"},
			)
			logs = append(logs, fmt.Sprintf("virtual-time prediction of this schedule: ttft p50 %v p99 %v, tpot p50 %v p99 %v (from the intended send)",
				pred.QueuedTTFT.P50, pred.QueuedTTFT.P99, pred.TPOT.P50, pred.TPOT.P99))
		}
	}
	return ms, logs
}

// predictOpen runs the simulated engine's model in virtual time on this
// sample's schedule, warm-up, cap and request sizes.
func (sm *Sample) predictOpen(measured, prompt int) (metrics.Summary, error) {
	recs, w, err := simulateOpen(*sm.e.sim, sm.open, measured, prompt, sm.s.opt.OutputTokens)
	if err != nil {
		return metrics.Summary{}, err
	}
	return metrics.Summarize(recs, w), nil
}

// simulateOpen runs sim.SimulateOpenLoop and turns its requests into
// records (one chunk per token), so the suite's own statistics and SLO
// evaluation apply to the prediction exactly as to a measurement.
func simulateOpen(cfg sim.Config, o *openSample, measured, prompt, output int) ([]record.Record, load.Window, error) {
	reqs, err := sim.SimulateOpenLoop(cfg, sim.OpenLoop{
		Due:            func(n int) time.Duration { return o.pacer.Due(uint64(n)) },
		Warmup:         o.warmup,
		Measured:       measured,
		PromptTokens:   prompt,
		OutputTokens:   output,
		MaxConcurrency: o.cap,
	})
	if err != nil {
		return nil, load.Window{}, err
	}
	recs := make([]record.Record, len(reqs))
	var w load.Window
	for i, q := range reqs {
		r := record.Record{Phase: record.Measured, Seq: i, Intended: q.Intended, Sent: q.Sent,
			OutputTokens: len(q.Tokens), PromptTokens: prompt, TokenSource: record.Continuous, RequestedTokens: output}
		for _, at := range q.Tokens {
			r.Chunks = append(r.Chunks, record.Chunk{At: at, Tokens: 1})
		}
		r.Done = q.Tokens[len(q.Tokens)-1]
		if i == 0 || r.Sent < w.Start {
			w.Start = r.Sent
		}
		w.End = max(w.End, r.Done)
		recs[i] = r
	}
	return recs, w, nil
}

// errNoSim is returned when a prediction is asked of a real engine.
var errNoSim = errors.New("not a simulated engine")
