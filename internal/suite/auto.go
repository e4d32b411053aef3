package suite

// -concurrency=auto: a probe finds each engine's saturation point, and the
// closed-loop levels are placed over MLPerf Endpoints' log2 regions.
//
// The placement follows mlcommons/endpoints_policies endpoints_rules.md
// (v1.0 draft): §5.3 (at least 7 points, 1 + 3 + 3: one in the Ultra Low
// Concurrency region, one in each of the three concurrency regions, three of
// the submitter's choice), §5.4–5.5 (the three regions divide (C_min, C_max]
// in equal parts of log2 space, boundaries rounded half to even, as the
// reference compute_regions does), §5.6 (at most 32 points) and §6.1 (fixed
// concurrency only). The rules leave C_max, the saturation point and the
// exact levels to the submitter; how this file chooses them is stated on
// Place and probeRamp, and in docs/load.md.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/metrics"
	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/results"
)

// AutoConcurrency is the -concurrency value that asks for the probe and
// the placement instead of a list of levels.
const AutoConcurrency = "auto"

// Bounds of the placement (endpoints_rules.md §5.3 and §5.6).
const (
	// MinAutoLevels is the fewest levels Place returns: MLPerf Endpoints'
	// minimum of 7 measurement points.
	MinAutoLevels = 7
	// MaxAutoLevels is the most: MLPerf Endpoints' cap of 32 points.
	MaxAutoLevels = 32
)

// The probe's definition of saturation (see probeRamp).
const (
	// SaturationFraction defines the saturation point: the lowest
	// concurrency whose output throughput reaches this fraction of the
	// highest throughput the probe measured.
	SaturationFraction = 0.90
	// saturationGain ends the probe's doubling: a doubling of concurrency
	// that raises the best throughput so far by less than this fraction.
	// It is 1/SaturationFraction − 1 rounded, so the level the ramp stops
	// above is already within SaturationFraction of the peak.
	saturationGain = 0.10
	// bisectRatio ends the bisection between the last level below
	// SaturationFraction of the peak and the first at or above it: a
	// quarter of an octave.
	bisectRatio = 1.189207115002721 // 2^(1/4)
	// probeRounds is the measured requests of a probe step, in rounds of
	// the level (c requests each: every slot carries probeRounds).
	probeRounds = 2
)

// Regions are MLPerf Endpoints' concurrency regions for a curve from CMin
// to CMax (endpoints_rules.md §5.4, computed as §5.5's compute_regions): the
// Ultra Low Concurrency point's band [1, CMin], then (CMin, CMax] split into
// three equal parts of log2 space. Each region is an inclusive [start, end];
// a rounding collision can leave one empty (start > end), as §5.4 allows.
type Regions struct {
	CMin, CMax int
	// Low, Medium and High are the Low, Medium and High Concurrency regions.
	Low, Medium, High [2]int
}

// EndpointRegions computes the regions for cmax and cmin exactly as the
// reference algorithm does: I = log2(cmax − cmin)/3, the Low region ends at
// round(cmin + 2^I), the Medium at round(cmin + 2^(2I)), with round half
// to even (Python's round()). cmax must exceed cmin ≥ 1. Unlike the
// reference, cmax ≤ 32 is allowed (§5.4 asks a submission with C_max ≤ 33
// for a written justification; the formula itself holds).
func EndpointRegions(cmax, cmin int) Regions {
	i := math.Log2(float64(cmax-cmin)) / 3
	low := int(math.RoundToEven(float64(cmin) + math.Exp2(i)))
	med := int(math.RoundToEven(float64(cmin) + math.Exp2(2*i)))
	return Regions{
		CMin: cmin, CMax: cmax,
		Low:    [2]int{cmin + 1, low},
		Medium: [2]int{low + 1, med},
		High:   [2]int{med + 1, cmax},
	}
}

// Of names the region of concurrency c: "ultra-low", "low", "medium",
// "high", or "" above CMax.
func (r Regions) Of(c int) string {
	switch {
	case c >= 1 && c <= r.CMin:
		return "ultra-low"
	case c >= r.Low[0] && c <= r.Low[1]:
		return "low"
	case c >= r.Medium[0] && c <= r.Medium[1]:
		return "medium"
	case c >= r.High[0] && c <= r.High[1]:
		return "high"
	}
	return ""
}

// String lists the regions as the header prints them.
func (r Regions) String() string {
	span := func(b [2]int) string {
		switch {
		case b[0] > b[1]:
			return "empty"
		case b[0] == b[1]:
			return strconv.Itoa(b[0])
		}
		return fmt.Sprintf("%d–%d", b[0], b[1])
	}
	return fmt.Sprintf("ultra-low %s, low %s, medium %s, high %s", span([2]int{1, r.CMin}), span(r.Low), span(r.Medium), span(r.High))
}

// Placement is where -concurrency=auto puts the levels.
type Placement struct {
	// Saturation is the saturation point the levels are placed around.
	Saturation int
	// Cap is the highest level allowed (-max-concurrency).
	Cap int
	// Max is C_max, the top level: min(Cap, max(2 × Saturation, 8)).
	Max int
	// Regions are MLPerf Endpoints' regions for C_min = 1 and C_max = Max.
	Regions Regions
	// Levels are the levels, ascending, MinAutoLevels to MaxAutoLevels.
	Levels []int
}

// autoMinTop is the smallest C_max: 7 distinct levels need a top of at
// least 7; 8 keeps it a power of two.
const autoMinTop = 8

// Place places the levels for a saturation point and a cap:
//
//   - C_min = 1: the Ultra Low Concurrency point is concurrency 1, the
//     single-user baseline §5.4 encourages.
//   - C_max = min(cap, max(2 × saturation, 8)): one doubling past the knee.
//     Beyond saturation more concurrency buys at most 1/0.9 − 1 ≈ 11 % more
//     throughput for about twice the latency (Little's law), so one octave
//     shows the plateau; more only adds queueing. The floor of 8 leaves
//     room for 7 distinct levels on an engine that saturates at 1–3 streams.
//   - The levels: 1, every power of two up to C_max, C_max itself, the
//     saturation point and the points half an octave either side of it
//     (saturation ÷ √2 and × √2, where ≤ C_max): §5.3 lets a submitter
//     cluster points around the inflection, and the knee is where the
//     Pareto curve bends. A region (§5.4) that none of them falls in gets
//     its geometric middle. While there are fewer than 7, the geometric
//     middle of the widest gap (by ratio) is added.
//
// Every non-integer value is rounded half to even, as the region
// boundaries are. The result has 7 to 32 distinct levels, ascending. An
// error says why no placement exists: a cap below 7 (7 distinct levels
// cannot fit), or a saturation point outside 1..cap.
func Place(saturation, cap int) (Placement, error) {
	if cap < MinAutoLevels {
		return Placement{}, fmt.Errorf("-concurrency=auto needs -max-concurrency ≥ %d (MLPerf Endpoints places at least %d levels); it is %d", MinAutoLevels, MinAutoLevels, cap)
	}
	if saturation < 1 || saturation > cap {
		return Placement{}, fmt.Errorf("saturation point %d: must be between 1 and -max-concurrency=%d", saturation, cap)
	}
	top := min(cap, max(2*saturation, autoMinTop))
	p := Placement{Saturation: saturation, Cap: cap, Max: top, Regions: EndpointRegions(top, 1)}
	set := map[int]bool{1: true, top: true, saturation: true}
	for c := 1; c <= top; c *= 2 {
		set[c] = true
	}
	for _, c := range []int{roundEven(float64(saturation) / math.Sqrt2), roundEven(float64(saturation) * math.Sqrt2)} {
		if c >= 1 && c <= top {
			set[c] = true
		}
	}
	for _, r := range [][2]int{p.Regions.Low, p.Regions.Medium, p.Regions.High} {
		if r[0] > r[1] {
			continue // zero width (§5.4's boundary collision)
		}
		covered := false
		for c := range set {
			covered = covered || (c >= r[0] && c <= r[1])
		}
		if !covered {
			set[geoMid(r[0], r[1])] = true
		}
	}
	levels := sortedKeys(set)
	for len(levels) < MinAutoLevels {
		best, at := 0.0, -1
		for i := 1; i < len(levels); i++ {
			if levels[i]-levels[i-1] < 2 {
				continue // no integer between them
			}
			if r := float64(levels[i]) / float64(levels[i-1]); r > best {
				best, at = r, i
			}
		}
		if at < 0 {
			break // every integer up to top is a level; top ≥ 7 makes that ≥ 7
		}
		set[geoMid(levels[at-1], levels[at])] = true
		levels = sortedKeys(set)
	}
	if len(levels) > MaxAutoLevels {
		// Unreachable for cap ≤ 100000 (17 powers of two, C_max, three
		// around the knee and at most three region middles); kept so the
		// bound holds whatever the inputs.
		return Placement{}, fmt.Errorf("placement gave %d levels, more than MLPerf Endpoints' %d", len(levels), MaxAutoLevels)
	}
	p.Levels = levels
	return p, nil
}

// geoMid is the integer nearest the geometric mean of a and b, strictly
// between them when b − a ≥ 2.
func geoMid(a, b int) int {
	m := roundEven(math.Sqrt(float64(a) * float64(b)))
	if b-a >= 2 {
		m = min(max(m, a+1), b-1)
	}
	return m
}

func roundEven(v float64) int { return int(math.RoundToEven(v)) }

func sortedKeys(set map[int]bool) []int {
	out := make([]int, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// probePoint is one step of an engine's probe.
type probePoint struct {
	C         int
	TokPerSec float64
	Requests  int // measured
	Failed    int
	ErrorRate float64
	E2E       time.Duration // mean, successful measured requests
	// Failing is set when ErrorRate exceeded -max-error-rate: the point is
	// reported but not used to find the saturation point.
	Failing bool
	// Errors summarises the failures (metrics.ErrorSummary).
	Errors string
	// ClientBound is set when the client may have limited the step
	// (ClientCost.Bound); the step's throughput is still used.
	ClientBound bool
}

// probeFindings are what an engine's probe found.
type probeFindings struct {
	Points     []probePoint // in the order measured
	Saturation int
	Peak       float64 // the highest throughput measured
	PeakAt     int
	// Saturated is false when the ramp ended at the cap while throughput
	// was still rising by at least saturationGain per doubling: the
	// saturation point may lie above the cap.
	Saturated bool
	// Stop says why the doubling ended.
	Stop string
	// Took is the probe's wall time (what -concurrency=auto cost before
	// the first sample).
	Took time.Duration
}

// probeRamp finds an engine's saturation point by measurement, with measure
// running one short closed-loop sample at concurrency c:
//
//  1. Doubling: c = 1, 2, 4, … (the last step is cap itself when cap is
//     not a power of two) until a doubling raises the best throughput so
//     far by less than saturationGain (10 %), or c reaches cap, or a step's
//     error rate exceeds maxErrorRate (that step and higher ones are not
//     used; at c = 1 it is an error: the engine cannot be probed).
//  2. Saturation is the lowest concurrency whose throughput reaches
//     SaturationFraction (90 %) of the peak, the highest throughput
//     measured. Between the highest measured level below that and the
//     lowest at or above it, geometric bisection refines it until the two
//     are within a quarter octave (or adjacent integers).
//
// The stop rule and the definition agree: a level whose doubling gains
// under 10 % already has ≥ 1/1.1 ≈ 91 % of the next one's throughput. Past
// the saturation point, by Little's law (latency = concurrency ÷
// throughput), more concurrency raises latency almost in proportion and
// throughput by at most ~11 %: the knee of the throughput curve.
func probeRamp(measure func(c int) (probePoint, error), cap int, maxErrorRate float64) (probeFindings, error) {
	var f probeFindings
	best := 0.0
	for c := 1; ; c = min(2*c, cap) {
		p, err := measure(c)
		if err != nil {
			return f, err
		}
		if p.ErrorRate > maxErrorRate {
			p.Failing = true
			f.Points = append(f.Points, p)
			if c == 1 {
				return f, fmt.Errorf("error rate %.3f > -max-error-rate %.3f at concurrency 1: %s", p.ErrorRate, maxErrorRate, oneLine(p.Errors))
			}
			f.Stop = fmt.Sprintf("error rate %.3f > -max-error-rate %.3f at concurrency %d (%s)", p.ErrorRate, maxErrorRate, c, oneLine(p.Errors))
			f.Saturated = true // the engine's usable range ends here
			break
		}
		f.Points = append(f.Points, p)
		if c > 1 && p.TokPerSec < best*(1+saturationGain) {
			f.Stop = fmt.Sprintf("concurrency %d gained %+.0f%% over the best below it (< %.0f%%)", c, 100*(p.TokPerSec/best-1), 100*saturationGain)
			f.Saturated = true
			break
		}
		best = max(best, p.TokPerSec)
		if c >= cap {
			f.Stop = fmt.Sprintf("reached -max-concurrency=%d", cap)
			if len(f.Points) > 1 {
				prev := f.Points[len(f.Points)-2]
				f.Stop += fmt.Sprintf(" while the last step still gained %+.0f%%", 100*(p.TokPerSec/prev.TokPerSec-1))
			}
			break
		}
	}
	for range 8 { // a doubling bracket needs ≤ 3 bisections; the bound guards against noise
		lo, hi := f.bracket()
		if lo == 0 || float64(hi) <= float64(lo)*bisectRatio || hi-lo <= 1 {
			break
		}
		mid := geoMid(lo, hi)
		p, err := measure(mid)
		if err != nil {
			return f, err
		}
		if p.ErrorRate > maxErrorRate {
			p.Failing = true
			f.Points = append(f.Points, p)
			break // the bracket stays as it was
		}
		f.Points = append(f.Points, p)
	}
	_, f.Saturation = f.bracket()
	return f, nil
}

// bracket sets Peak and PeakAt and returns the highest usable level below
// SaturationFraction of the peak (0 if none) and the lowest at or above it.
func (f *probeFindings) bracket() (lo, hi int) {
	f.Peak, f.PeakAt = 0, 0
	for _, p := range f.Points {
		if !p.Failing && p.TokPerSec > f.Peak {
			f.Peak, f.PeakAt = p.TokPerSec, p.C
		}
	}
	thr := SaturationFraction * f.Peak
	for _, p := range f.Points {
		if !p.Failing && p.TokPerSec >= thr && (hi == 0 || p.C < hi) {
			hi = p.C
		}
	}
	for _, p := range f.Points {
		if !p.Failing && p.C < hi && p.C > lo {
			lo = p.C
		}
	}
	return lo, hi
}

// describe is the probe's header line for engine name.
func (f probeFindings) describe(name string) string {
	pts := slices.Clone(f.Points)
	slices.SortStableFunc(pts, func(a, b probePoint) int { return a.C - b.C })
	parts := make([]string, len(pts))
	for i, p := range pts {
		parts[i] = fmt.Sprintf("c=%d %.0f tok/s", p.C, p.TokPerSec)
		if p.Failed > 0 {
			parts[i] += fmt.Sprintf(" (%d of %d failed)", p.Failed, p.Requests)
		}
		if p.ClientBound {
			parts[i] += " CLIENT-BOUND"
		}
	}
	sat := fmt.Sprintf("saturation %d (the lowest level with ≥ %.0f%% of the peak %.0f tok/s at %d)", f.Saturation, 100*SaturationFraction, f.Peak, f.PeakAt)
	if !f.Saturated {
		sat = fmt.Sprintf("NOT SATURATED below the cap: %d is the lowest level with ≥ %.0f%% of the peak %.0f tok/s at %d; raise -max-concurrency to find the knee", f.Saturation, 100*SaturationFraction, f.Peak, f.PeakAt)
	}
	return fmt.Sprintf("concurrency=auto probe %s: %s; %s; %s; the probe took %v", name, strings.Join(parts, ", "), f.Stop, sat, f.Took.Round(100*time.Millisecond))
}

// autoPlan is -concurrency=auto in a run: the probe's findings per engine
// and the placement every engine gets.
type autoPlan struct {
	findings map[string]probeFindings
	place    Placement
	probed   bool // false when -bench selects no closed-loop level
	// checked counts the points whose steady state was checked (steady.go),
	// notSteady those that drifted, unverified those too short to check.
	checked, notSteady, unverified atomic.Int64
}

// parseConcurrency parses -concurrency: "auto" (s.auto is set; the levels
// come from the probe) or a list of levels.
func (s *Suite) parseConcurrency() error {
	v := strings.TrimSpace(s.opt.Concurrency)
	if !strings.Contains(strings.ToLower(v), AutoConcurrency) {
		var err error
		s.levels, err = parseLevels(s.opt.Concurrency)
		return err
	}
	if v != AutoConcurrency {
		return fmt.Errorf("-concurrency=%s: auto places every level itself and takes no list; give -concurrency=auto (with -max-concurrency as its cap) or a list of levels such as -concurrency=1,4,16", s.opt.Concurrency)
	}
	switch {
	case s.opt.Turns > 0:
		return errors.New("-concurrency=auto: the probe measures single requests, not conversations; give -turns with a list of levels (-concurrency=1,4,16)")
	case s.opt.Shard != "":
		return errors.New("-concurrency=auto: every shard would probe on its own and could place other levels; probe once without -shard, then give the levels it printed to every shard (-concurrency=1,2,4,…)")
	case s.maxConcurrency() < MinAutoLevels:
		return fmt.Errorf("-concurrency=auto needs -max-concurrency ≥ %d (MLPerf Endpoints places at least %d levels); it is %d", MinAutoLevels, MinAutoLevels, s.maxConcurrency())
	}
	s.auto = &autoPlan{findings: map[string]probeFindings{}}
	return nil
}

// autoLevel is the level element of -concurrency=auto's sub-benchmarks
// before the probe placed them: a -bench pattern selects engines by it.
const autoLevel = "concurrency=auto"

// probe runs -concurrency=auto's probe on every engine -bench selects for
// BenchmarkServe's closed loop, places the levels over the largest
// saturation point (so no engine's curve ends before its knee; a faster-
// saturating engine's extra points show its plateau) and sets s.levels:
// one list for every engine, fixed for every -count repetition.
func (s *Suite) probe(ctx context.Context) error {
	var m benchMatcher
	if s.opt.Bench != "" {
		var err error
		if m, err = newBenchMatcher(s.opt.Bench); err != nil {
			return fmt.Errorf("-bench=%s: %w", s.opt.Bench, err)
		}
	}
	sat := 0
	for _, e := range s.engines {
		if m != nil && !m.match(benchParent+"/"+levelName(s.multi, e.name, autoLevel)) {
			continue
		}
		step := 0 // step k uses the same prompts on every engine
		start := time.Now()
		f, err := probeRamp(func(c int) (probePoint, error) {
			step++
			return s.probeStep(ctx, e, c, step-1)
		}, s.maxConcurrency(), s.opt.MaxErrorRate)
		// Later samples stagger their starts by their own level's E2E,
		// not by the probe's last (highest) step.
		e.lastE2E.Store(0)
		if err != nil {
			return fmt.Errorf("engine %s: -concurrency=auto probe: %w", e.name, err)
		}
		f.Took = time.Since(start)
		s.auto.findings[e.name] = f
		e.autoNote = f.describe(e.name)
		sat = max(sat, f.Saturation)
	}
	s.progressPause()
	if sat == 0 {
		return nil // no closed-loop level selected: nothing to place
	}
	s.auto.probed = true
	var err error
	if s.auto.place, err = Place(sat, s.maxConcurrency()); err != nil {
		return err
	}
	s.levels = s.auto.place.Levels
	return nil
}

// probeSeqBase is where probe step k's seqs start: negative, so no probe
// request shares a prompt with a measured one (those count up from 0) or
// the preflight's (-1), and step k is the same prompts for every engine.
func probeSeqBase(k int) int { return -(k + 2) * seqBlock }

// probeStep measures engine e at concurrency c: -warmup requests per slot,
// then probeRounds × c measured ones, the window where c are held, as a
// sample does; its records are not written (they are no level's sample)
// but its failures are counted in the probe's line.
func (s *Suite) probeStep(ctx context.Context, e *Engine, c, k int) (probePoint, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	if p := s.rep.progress; p != nil {
		p.begin("concurrency=auto probe of "+e.name, c, 0)
	}
	reads := e.client.ReadStats()
	do := func(ctx context.Context, rec *record.Record) {
		rec.Engine = e.name
		rec.Concurrency = c
		if rec.Phase == record.Measured {
			defer s.progressMeasured()
		}
		req, _ := s.work.RequestInfo(rec.Seq)
		rec.RequestedTokens = req.MaxTokens
		e.client.Do(ctx, req, rec)
	}
	s.self.running.Add(1)
	defer s.self.running.Add(-1)
	run, err := load.Start(ctx, load.Config{
		Concurrency: c,
		Warmup:      s.opt.Warmup,
		Stagger:     e.stagger(),
		Epoch:       s.epoch,
		FirstSeq:    probeSeqBase(k),
	}, do)
	if err != nil {
		return probePoint{}, err
	}
	for range probeRounds * c {
		if run.Dispatch() != nil {
			break
		}
	}
	res := run.Finish()
	if res.Err != nil || ctx.Err() != nil {
		return probePoint{}, fmt.Errorf("%w at concurrency %d: %w", ErrInterrupted, c, errors.Join(res.Err, context.Cause(ctx)))
	}
	sum := metrics.Summarize(res.Records, res.Window)
	if sum.E2E.Mean > 0 {
		e.lastE2E.Store(int64(sum.E2E.Mean))
	}
	p := probePoint{C: c, TokPerSec: sum.OutputTokPerSec, Requests: sum.Requests, Failed: sum.Failed,
		ErrorRate: sum.ErrorRate, E2E: sum.E2E.Mean}
	if sum.Failed > 0 {
		p.Errors = metrics.ErrorSummary(sum)
	}
	if cc, ok, err := s.clientCost(res.Window, sum.OutputTokPerSec, e.client.ReadStats().Sub(reads)); err == nil && ok {
		p.ClientBound = cc.Bound
	}
	return p, nil
}

// autoHeader are -concurrency=auto's header lines: the rule, and where the
// levels went and why.
func (s *Suite) autoHeader() []string {
	if s.auto == nil {
		return nil
	}
	lines := []string{
		"concurrency=auto: a probe (-warmup, then 2 rounds of measured requests per level, doubling from 1) finds each engine's saturation point, the lowest concurrency with ≥ 90% of the highest output tok/s it measured; " +
			"the levels are placed over the largest one like MLPerf Endpoints (endpoints_rules.md §5.3–5.6: 1, one point in each of three log2 regions, at least 7 and at most 32 points), the same for every engine; see docs/load.md.",
	}
	if !s.auto.probed {
		return append(lines, "concurrency=auto: -bench selects no closed-loop level, so no probe ran and no level is placed")
	}
	p := s.auto.place
	lines = append(lines, fmt.Sprintf("concurrency=auto: saturation %d (the largest of the engines'), C_max %d = min(2 × %d, -max-concurrency=%d) (at least %d); regions (C_min 1): %s; %d levels: %s",
		p.Saturation, p.Max, p.Saturation, p.Cap, autoMinTop, p.Regions, len(p.Levels), joinInts(p.Levels)))
	if p.Max <= 32 {
		lines = append(lines, fmt.Sprintf("concurrency=auto: C_max %d ≤ 32: MLPerf Endpoints asks a submission with C_max ≤ 33 for a written justification (§5.4); the regions above follow the same formula", p.Max))
	}
	lines = append(lines, fmt.Sprintf("concurrency=auto: every point's steady state is checked (%s); a point that fails is marked '# NOT STEADY', one too short to check '# STEADY STATE NOT VERIFIED'", steadyRule()))
	return lines
}

// autoConfig is the header's benchfmt key for -concurrency=auto (and so
// summary.json's run config): the saturation point, C_max and the levels.
func (s *Suite) autoConfig() []results.KV {
	if s.auto == nil || !s.auto.probed {
		return nil
	}
	p := s.auto.place
	return []results.KV{{Key: "concurrency-auto", Value: fmt.Sprintf("saturation=%d max=%d levels=%s", p.Saturation, p.Max, joinInts(p.Levels))}}
}

func joinInts(v []int) string {
	parts := make([]string, len(v))
	for i, c := range v {
		parts[i] = strconv.Itoa(c)
	}
	return strings.Join(parts, ",")
}

// steadySummary is Conclude's line on the points' steady states.
func (s *Suite) steadySummary() string {
	a := s.auto
	n, bad, unv := a.checked.Load(), a.notSteady.Load(), a.unverified.Load()
	if bad == 0 && unv == 0 {
		return fmt.Sprintf("# steady state: verified at all %d points of -concurrency=auto", n)
	}
	return fmt.Sprintf("# steady state: of %d points, %d NOT STEADY and %d NOT VERIFIED (see those '#' lines in the result files; their numbers are not a steady state's)", n, bad, unv)
}
