package suite

// Capacity search (BenchmarkCapacity): the highest open-loop rate whose
// samples meet -slo.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
)

// DefaultCapacityRepeats is the -capacity-repeats used when
// Options.CapacityRepeats is 0.
const DefaultCapacityRepeats = 3

// capacityTolerance ends the bisection once the bracket [lo, hi] has
// hi ≤ lo·(1 + capacityTolerance).
const capacityTolerance = 0.05

// capacityParent is the capacity benchmark's name.
const capacityParent = "BenchmarkCapacity"

// capacityFloor is how far below the starting rate the search goes before
// it gives up: capacity 0, the SLO is not met at any rate it can measure.
const capacityFloor = 1.0 / 1024

// ErrNoSLO is returned by StartCapacity when no -slo was given.
var ErrNoSLO = errors.New("BenchmarkCapacity needs -slo: the capacity is the highest rate that meets it (example: -slo=mlperf-server:llama3.1-8b)")

// capacitySearch is the search, independent of how a probe runs, so that
// a real engine and the virtual-time model go through the very same steps.
//
// It starts at start, with one sample per rate: doubling while the SLO is
// met, halving while it is not, until a met rate lo and a missed rate hi
// bracket the boundary. Then it bisects (geometric midpoints) until hi ≤
// lo·(1+capacityTolerance), a midpoint passing only when all of repeats
// samples meet the SLO (MLPerf's Server scenario likewise repeats runs
// near the boundary). lo itself must have passed repeats samples too, or
// the bisection goes on below it. The capacity is the final lo.
type capacitySearch struct {
	start   float64
	repeats int
	maxRate float64
	// probe runs sample rep at rate and reports whether it met the SLO.
	probe func(rate float64, rep int) (bool, error)
	// known holds results already measured (the first, b.Loop-driven
	// sample), keyed by rate and rep.
	known map[probeKey]bool
	steps []capacityStep
}

type probeKey struct {
	rate float64
	rep  int
}

// capacityStep is one probe of the search.
type capacityStep struct {
	Rate float64
	Rep  int
	Met  bool
}

// pass reports whether the first n samples at rate all meet the SLO,
// running the ones not yet known and stopping at the first miss.
func (c *capacitySearch) pass(rate float64, n int) (bool, error) {
	if c.known == nil {
		c.known = map[probeKey]bool{}
	}
	for rep := range n {
		k := probeKey{rate, rep}
		met, ok := c.known[k]
		if !ok {
			var err error
			if met, err = c.probe(rate, rep); err != nil {
				return false, err
			}
			c.known[k] = met
			c.steps = append(c.steps, capacityStep{rate, rep, met})
		}
		if !met {
			return false, nil
		}
	}
	return true, nil
}

// run returns the capacity (0 when even start·capacityFloor misses).
func (c *capacitySearch) run() (float64, error) {
	lo, hi := 0.0, math.Inf(1)
	r := c.start
	floor := c.start * capacityFloor
	for lo == 0 || math.IsInf(hi, 1) {
		met, err := c.pass(r, 1)
		if err != nil {
			return 0, err
		}
		if met {
			lo = r
			r *= 2
		} else {
			hi = r
			r /= 2
		}
		if lo == 0 && r < floor {
			return 0, nil
		}
		if math.IsInf(hi, 1) && r > c.maxRate {
			return 0, fmt.Errorf("the SLO is still met at %g requests/s: raise the load no further than the client can send (or tighten -slo)", lo)
		}
	}
	for {
		for hi > lo*(1+capacityTolerance) {
			mid := math.Sqrt(lo * hi)
			met, err := c.pass(mid, c.repeats)
			if err != nil {
				return 0, err
			}
			if met {
				lo = mid
			} else {
				hi = mid
			}
		}
		met, err := c.pass(lo, c.repeats)
		if err != nil {
			return 0, err
		}
		if met {
			return lo, nil
		}
		// lo passed once but not every repeat: the boundary is below it.
		hi = lo
		for {
			lo /= 2
			if lo < floor {
				return 0, nil
			}
			met, err := c.pass(lo, 1)
			if err != nil {
				return 0, err
			}
			if met {
				break
			}
			hi = lo
		}
	}
}

// describe lists the probes, for the log.
func (c *capacitySearch) describe() string {
	parts := make([]string, len(c.steps))
	for i, st := range c.steps {
		v := "met"
		if !st.Met {
			v = "missed"
		}
		parts[i] = fmt.Sprintf("%.4g/s#%d %s", st.Rate, st.Rep, v)
	}
	return strings.Join(parts, ", ")
}

// Capacity is a capacity search of one engine in progress. Its first
// sample, at the starting rate, is dispatched by the caller (one Dispatch
// per arrival, BenchmarkCapacity: one per b.Loop iteration); Finish runs
// the rest of the search with samples of as many arrivals.
type Capacity struct {
	s        *Suite
	e        *Engine
	ctx      context.Context
	start    float64
	first    *Sample
	arrivals int
}

// CapacityName is the sub-benchmark name of engine e under
// BenchmarkCapacity: engine=NAME when -engines lists more than one engine,
// "" (no sub-benchmark) otherwise.
func (s *Suite) CapacityName(e *Engine) string {
	if s.multi {
		return "engine=" + e.name
	}
	return ""
}

// capacityStart is the search's first rate: four streams' worth at the
// engine's latest mean E2E (its preflight probe's at first), rounded to a
// power of two so engines of similar speed walk the same rates.
func (e *Engine) capacityStart() float64 {
	d := e.stagger().Seconds()
	if d <= 0 {
		return 1
	}
	return math.Exp2(math.Round(math.Log2(4 / d)))
}

func (s *Suite) capacityRepeats() int {
	if s.opt.CapacityRepeats > 0 {
		return s.opt.CapacityRepeats
	}
	return DefaultCapacityRepeats
}

// capacitySeed is the schedule seed of sample rep at rate r of a capacity
// search: the same for every engine and for the virtual-time model.
func (s *Suite) capacitySeed(r float64, rep int) int64 {
	return scheduleSeed(s.opt.Seed, r, -1-rep)
}

// StartCapacity starts engine e's capacity search: its first sample, at
// the starting rate. It returns ErrNoSLO without -slo.
func (s *Suite) StartCapacity(ctx context.Context, e *Engine) (*Capacity, error) {
	if s.slo.IsZero() {
		return nil, ErrNoSLO
	}
	c := &Capacity{s: s, e: e, ctx: ctx, start: e.capacityStart()}
	sm, err := s.startProbe(ctx, e, c.start, 0)
	if err != nil {
		return nil, err
	}
	c.first = sm
	return c, nil
}

func (s *Suite) startProbe(ctx context.Context, e *Engine, r float64, rep int) (*Sample, error) {
	n := s.nextSample(e.name, "capacity/"+rateLevel(r))
	return s.startOpen(ctx, e, r, n, s.capacitySeed(r, rep), true)
}

// Dispatch hands out one arrival of the first sample.
func (c *Capacity) Dispatch() error {
	c.arrivals++
	return c.first.Dispatch()
}

// Finish ends the first sample and runs the rest of the search; its
// Result's Line is the BenchmarkCapacity result line, written to the
// engine's result file, with capacity-req/s, ns/op = 1e9 / capacity (the
// mean gap between arrivals at capacity) and probes (samples run); on an
// all-simulated run also capacity-vs-model, the capacity over the one the
// same search finds on the virtual-time model.
func (c *Capacity) Finish() Result {
	s, e := c.s, c.e
	var out Result
	first := c.first.Finish()
	out.Errs = append(out.Errs, first.Errs...)
	if first.Interrupted {
		out.Interrupted = true
		return out
	}
	if c.arrivals < 1 {
		out.Errs = append(out.Errs, errors.New("capacity: the first sample had no arrivals"))
		return out
	}
	prompt := first.promptTokens
	met := func(r Result) bool {
		return len(r.Errs) == 0 && sloMet(r.Metrics)
	}
	search := &capacitySearch{
		start:   c.start,
		repeats: s.capacityRepeats(),
		maxRate: 100000,
		known:   map[probeKey]bool{{c.start, 0}: met(first)},
		steps:   []capacityStep{{c.start, 0, met(first)}},
	}
	search.probe = func(r float64, rep int) (bool, error) {
		sm, err := s.startProbe(c.ctx, e, r, rep)
		if err != nil {
			return false, err
		}
		for range c.arrivals {
			if sm.Dispatch() != nil {
				break
			}
		}
		res := sm.Finish()
		if res.Interrupted {
			return false, ErrInterrupted
		}
		for _, err := range res.Errs {
			out.Logs = append(out.Logs, fmt.Sprintf("probe at %g/s: %v", r, err))
		}
		return met(res), nil
	}
	capacity, err := search.run()
	if errors.Is(err, ErrInterrupted) {
		out.Interrupted = true
		return out
	}
	if err != nil {
		out.Errs = append(out.Errs, fmt.Errorf("capacity of %s: %w", e.name, err))
		return out
	}
	out.Logs = append(out.Logs, fmt.Sprintf("capacity %.4g req/s under -slo=%s with %d arrivals per sample; probes: %s",
		capacity, s.slo, c.arrivals, search.describe()))
	if capacity == 0 {
		out.Logs = append(out.Logs, fmt.Sprintf("the SLO was not met at any rate down to %g requests/s", c.start*capacityFloor))
	}
	perOp := 0.0
	if capacity > 0 {
		perOp = 1e9 / capacity
	}
	out.Metrics = []Metric{
		{perOp, "ns/op"},
		{capacity, "capacity-req/s"},
		{float64(len(search.steps)), "probes"},
	}
	if s.allSimulated() {
		model, steps, err := s.predictCapacity(e, c.start, c.arrivals, prompt)
		if err != nil {
			out.Logs = append(out.Logs, "no virtual-time capacity: "+err.Error())
		} else {
			out.Metrics = append(out.Metrics, Metric{ratio(capacity, model), "capacity-vs-model"})
			out.Logs = append(out.Logs, fmt.Sprintf("virtual-time model's capacity %.4g req/s; probes: %s", model, steps))
		}
	}
	name := fmt.Sprintf("%s-%d", capacityParent, runtime.GOMAXPROCS(0))
	out.Line, out.All = namedLines(name, 1, out.Metrics)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := s.dir.Result(e.name, out.Line, out.All); err != nil {
		err = fmt.Errorf("saving result: %w", err)
		s.failWrites(err)
		out.Unsaved = true
		out.Errs = append(out.Errs, err)
	}
	s.done.Add(1)
	return out
}

// predictCapacity runs the same search on the virtual-time model of e's
// simulated engine: the same start, repeats, schedules and arrivals.
func (s *Suite) predictCapacity(e *Engine, start float64, arrivals, prompt int) (float64, string, error) {
	if e.sim == nil {
		return 0, "", errNoSim
	}
	search := &capacitySearch{start: start, repeats: s.capacityRepeats(), maxRate: 100000}
	search.probe = func(r float64, rep int) (bool, error) {
		o := &openSample{rate: r, pacer: s.arrival.pacer(r, s.capacitySeed(r, rep)), warmup: s.openWarmup(r), cap: s.maxConcurrency()}
		recs, w, err := simulateOpen(*e.sim, o, arrivals, prompt, s.opt.OutputTokens)
		if err != nil {
			return false, err
		}
		return s.slo.Evaluate(recs, w.Len()).Met, nil
	}
	c, err := search.run()
	return c, search.describe(), err
}

// sloMet reads slo-met off a result's metrics.
func sloMet(ms []Metric) bool {
	for _, m := range ms {
		if m.Unit == "slo-met" {
			return m.Value == 1
		}
	}
	return false
}
