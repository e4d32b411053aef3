package slo

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/inferbench/inferbench/internal/metrics"
	"github.com/inferbench/inferbench/internal/record"
)

// Metric is a latency an SLO can limit.
type Metric string

// The metrics an SLO can limit; see the package doc for each definition.
const (
	TTFT Metric = "ttft"
	TPOT Metric = "tpot"
	ITL  Metric = "itl"
	E2E  Metric = "e2e"
)

var allMetrics = []Metric{TTFT, TPOT, ITL, E2E}

// percentiles are the percentiles a limit may use.
var percentiles = []float64{50, 90, 95, 99}

// Limit is one constraint: the Percentile-th percentile of Metric is at
// most Max.
type Limit struct {
	Metric     Metric
	Percentile float64
	Max        time.Duration
}

// String is the limit as -slo writes it, e.g. ttft-p99=2s.
func (l Limit) String() string {
	return fmt.Sprintf("%s-p%g=%v", l.Metric, l.Percentile, l.Max)
}

// SLO is a set of limits, all of which must hold. The zero value has no
// limits and is not an SLO (Parse never returns it).
type SLO struct {
	Limits []Limit
}

// String is the SLO in -slo syntax with presets expanded, limits in the
// order given: the canonical form the results header records.
func (s SLO) String() string {
	parts := make([]string, len(s.Limits))
	for i, l := range s.Limits {
		parts[i] = l.String()
	}
	return strings.Join(parts, ",")
}

// IsZero reports whether s has no limits.
func (s SLO) IsZero() bool { return len(s.Limits) == 0 }

// mlperf holds MLPerf Inference's latency constraints (p99 TTFT, p99 TPOT,
// ms) per model and scenario (MLPerf Inference v5.x rules; a model without
// an Interactive scenario has none).
var mlperf = map[string]struct{ server, interactive [2]int }{
	"llama3.1-8b":   {[2]int{2000, 100}, [2]int{500, 30}},
	"llama2-70b":    {[2]int{2000, 200}, [2]int{450, 40}},
	"llama3.1-405b": {[2]int{6000, 175}, [2]int{4500, 80}},
	"mixtral-8x7b":  {[2]int{2000, 200}, [2]int{}},
	"deepseek-r1":   {[2]int{2000, 80}, [2]int{1500, 15}},
	"gpt-oss-120b":  {[2]int{3000, 80}, [2]int{2000, 20}},
}

// Presets lists the preset names Parse accepts, sorted.
func Presets() []string {
	var out []string
	for m, v := range mlperf {
		out = append(out, "mlperf-server:"+m)
		if v.interactive != [2]int{} {
			out = append(out, "mlperf-interactive:"+m)
		}
	}
	slices.Sort(out)
	return out
}

// maxLimit bounds a limit: a day is longer than any request timeout.
const maxLimit = 24 * time.Hour

// Parse parses -slo. It fails, saying what is wrong and giving an example,
// on an empty list, an unknown metric, percentile or preset, a duration
// that is not positive or longer than a day, or a metric and percentile
// limited twice.
func Parse(list string) (SLO, error) {
	var s SLO
	seen := map[string]bool{}
	add := func(l Limit) error {
		k := fmt.Sprintf("%s-p%g", l.Metric, l.Percentile)
		if seen[k] {
			return fmt.Errorf("-slo: %s is limited twice", k)
		}
		seen[k] = true
		s.Limits = append(s.Limits, l)
		return nil
	}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if ls, ok, err := preset(item); ok || err != nil {
			if err != nil {
				return SLO{}, err
			}
			for _, l := range ls {
				if err := add(l); err != nil {
					return SLO{}, err
				}
			}
			continue
		}
		l, err := parseLimit(item)
		if err != nil {
			return SLO{}, err
		}
		if err := add(l); err != nil {
			return SLO{}, err
		}
	}
	if s.IsZero() {
		return SLO{}, errors.New("-slo: no limits given (example: -slo=ttft-p99=2s,tpot-p99=100ms or -slo=mlperf-server:llama3.1-8b)")
	}
	return s, nil
}

// preset expands a preset item; ok is false when item is not one.
func preset(item string) (ls []Limit, ok bool, err error) {
	scenario, model, found := strings.Cut(strings.ToLower(item), ":")
	if !found || strings.Contains(item, "=") {
		return nil, false, nil
	}
	v, known := mlperf[model]
	var ms [2]int
	switch scenario {
	case "mlperf-server":
		ms = v.server
	case "mlperf-interactive":
		ms = v.interactive
	default:
		return nil, true, fmt.Errorf("-slo: %q: unknown preset scenario %q (presets: %s)", item, scenario, strings.Join(Presets(), ", "))
	}
	if !known || ms == [2]int{} {
		return nil, true, fmt.Errorf("-slo: %q: no MLPerf %s constraint for model %q (presets: %s)", item, strings.TrimPrefix(scenario, "mlperf-"), model, strings.Join(Presets(), ", "))
	}
	return []Limit{
		{TTFT, 99, time.Duration(ms[0]) * time.Millisecond},
		{TPOT, 99, time.Duration(ms[1]) * time.Millisecond},
	}, true, nil
}

func parseLimit(item string) (Limit, error) {
	const example = "(example: ttft-p99=2s; metrics ttft, tpot, itl, e2e; percentiles p50, p90, p95, p99)"
	key, val, ok := strings.Cut(item, "=")
	if !ok {
		return Limit{}, fmt.Errorf("-slo: %q is neither METRIC-pNN=DURATION nor a preset %s", item, example)
	}
	name, pct, ok := strings.Cut(strings.ToLower(strings.TrimSpace(key)), "-p")
	if !ok {
		return Limit{}, fmt.Errorf("-slo: %q: want METRIC-pNN before '=' %s", item, example)
	}
	m := Metric(name)
	if !slices.Contains(allMetrics, m) {
		return Limit{}, fmt.Errorf("-slo: %q: unknown metric %q %s", item, name, example)
	}
	p, err := strconv.ParseFloat(pct, 64)
	if err != nil || !slices.Contains(percentiles, p) {
		return Limit{}, fmt.Errorf("-slo: %q: unknown percentile p%s %s", item, pct, example)
	}
	d, err := time.ParseDuration(strings.TrimSpace(val))
	if err != nil {
		return Limit{}, fmt.Errorf("-slo: %q: %q is not a duration (write 150ms, 2s) %s", item, val, example)
	}
	if d <= 0 || d > maxLimit {
		return Limit{}, fmt.Errorf("-slo: %q: %v must be positive and at most %v", item, d, maxLimit)
	}
	return Limit{Metric: m, Percentile: p, Max: d}, nil
}

// failed is the latency a failed request counts with: above any limit, and
// far enough below the largest Duration that interpolating never overflows.
const failed = time.Duration(math.MaxInt64 / 4)

// Observed is one limit's outcome over a sample.
type Observed struct {
	Limit
	// Value is the percentile over the sample's measured requests; Failed
	// when the failed requests reach that percentile.
	Value time.Duration
	// Met reports Value ≤ Max.
	Met bool
	// N is the number of values (requests, or gaps for ITL) it is over.
	N int
}

// IsFailed reports whether the percentile falls on failed requests.
func (o Observed) IsFailed() bool { return o.Value >= failed }

// Eval is an SLO's outcome over one sample.
type Eval struct {
	// Requests is the measured requests (interrupted ones excluded), Good
	// those that met every limit.
	Requests, Good int
	// GoodFraction is Good ÷ Requests (0 with no requests).
	GoodFraction float64
	// Goodput is Good ÷ the window, in requests per second (0 for an
	// empty window).
	Goodput float64
	// Met reports whether every limit's percentile holds (false with no
	// requests: nothing was shown to meet it).
	Met bool
	// Limits are the limits' outcomes, in the SLO's order.
	Limits []Observed
}

// Evaluate evaluates s over the measured requests of recs, whose measured
// window is window (as metrics.Summary.Window).
func (s SLO) Evaluate(recs []record.Record, window time.Duration) Eval {
	var ev Eval
	pools := make([][]time.Duration, len(s.Limits))
	for i := range recs {
		r := &recs[i]
		if r.Phase != record.Measured || r.Error == record.Canceled {
			continue
		}
		ev.Requests++
		succeeded := !r.Failed() && len(r.Chunks) > 0
		ok := succeeded
		for j, l := range s.Limits {
			if !succeeded {
				pools[j] = append(pools[j], failed)
				continue
			}
			// Every limit's pool gets every successful request's values,
			// whether or not an earlier limit already found it bad.
			vs := values(r, l.Metric)
			pools[j] = append(pools[j], vs...)
			if len(vs) > 0 && percentile(slices.Clone(vs), l.Percentile) > l.Max {
				ok = false
			}
		}
		if ok {
			ev.Good++
		}
	}
	ev.Met = ev.Requests > 0
	for j, l := range s.Limits {
		o := Observed{Limit: l, N: len(pools[j])}
		o.Value = percentile(pools[j], l.Percentile)
		o.Met = o.Value <= l.Max
		if ev.Requests == 0 {
			o.Met = false
		}
		ev.Met = ev.Met && o.Met
		ev.Limits = append(ev.Limits, o)
	}
	if ev.Requests > 0 {
		ev.GoodFraction = float64(ev.Good) / float64(ev.Requests)
	}
	if window > 0 {
		ev.Goodput = float64(ev.Good) / window.Seconds()
	}
	return ev
}

// percentile sorts vs in place and returns its p-th percentile by the
// metrics package's definition; 0 for no values.
func percentile(vs []time.Duration, p float64) time.Duration {
	slices.Sort(vs)
	return metrics.Percentile(vs, p)
}

// values are a successful request's values of m (see the package doc); no
// values when m does not apply (TPOT and ITL of a one-token output).
func values(r *record.Record, m Metric) []time.Duration {
	first, last := r.Chunks[0].At, r.Chunks[len(r.Chunks)-1].At
	switch m {
	case TTFT:
		return []time.Duration{first - r.Intended}
	case E2E:
		return []time.Duration{last - r.Intended}
	case TPOT:
		n := r.OutputTokens
		if n <= 0 {
			n = len(r.Chunks)
		}
		if n < 2 {
			return nil
		}
		return []time.Duration{(last - first) / time.Duration(n-1)}
	case ITL:
		var gaps []time.Duration
		for j := 1; j < len(r.Chunks); j++ {
			k := max(r.Chunks[j].Tokens, 1)
			g := (r.Chunks[j].At - r.Chunks[j-1].At) / time.Duration(k)
			for range k {
				gaps = append(gaps, g)
			}
		}
		return gaps
	}
	return nil
}

// Describe is a one-line account of ev for logs: each limit's observed
// value against its maximum, and the good requests.
func (ev Eval) Describe() string {
	var b strings.Builder
	verdict := "met"
	if !ev.Met {
		verdict = "NOT met"
	}
	fmt.Fprintf(&b, "SLO %s:", verdict)
	for _, o := range ev.Limits {
		v := o.Value.Round(10 * time.Microsecond).String()
		if o.IsFailed() {
			v = "failed requests"
		}
		mark := "≤"
		if !o.Met {
			mark = ">"
		}
		fmt.Fprintf(&b, " %s-p%g %s %s %v;", o.Metric, o.Percentile, v, mark, o.Max)
	}
	fmt.Fprintf(&b, " %d of %d requests good (%.1f%%), goodput %.3g req/s", ev.Good, ev.Requests, 100*ev.GoodFraction, ev.Goodput)
	return b.String()
}
