package plots

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"

	"github.com/inferbench/inferbench/internal/report"
	"github.com/inferbench/inferbench/internal/results"
)

// Units written by the suite that the plots use. Latencies are in
// nanoseconds as written in the file (benchfmt would tidy them into seconds;
// Load keeps the original unit and value).
const (
	UnitTokPerSec = "tok/s"
	UnitTTFTP50   = "ttft-p50-ns"
	UnitTTFTP99   = "ttft-p99-ns"
	UnitTPOTP50   = "tpot-p50-ns"
	UnitITLP50    = "itl-p50-ns"
	UnitTPOTP90   = "tpot-p90-ns"
	UnitReqPerSec = "req/s"

	// Open-loop (rate=R) lines: the rate the requests were sent at, the
	// rate of their schedule, and TTFT and E2E counted from the intended
	// send (the scheduled instant) rather than the actual one.
	UnitAchieved     = "achieved-req/s"
	UnitScheduled    = "scheduled-req/s"
	UnitQueuedTTFT50 = "queued-ttft-p50-ns"
	UnitQueuedE2E50  = "queued-e2e-p50-ns"

	// -slo lines: requests that met every per-request limit ÷ the window,
	// and 1 when every percentile limit held over the sample, else 0.
	UnitGoodput = "goodput-req/s"
	UnitSLOMet  = "slo-met"
)

// Confidence is the confidence level of every interval Load computes; it is
// benchstat's default.
const Confidence = 0.95

// benchName is the benchmark whose results are plotted. Other benchmarks in
// the same go test output (micro-benchmarks of some package) are ignored.
const benchName = "Serve"

// Config is the run configuration read from the files' configuration lines
// (`key: value`). Fields are empty when the key is absent.
type Config struct {
	// Model is the `model:` line.
	Model string
	// InputTokens is the `input-tokens:` line, as written.
	InputTokens string
	// OutputTokens is the `output-tokens:` line, as written.
	OutputTokens string
	// Workload is the `workload:` line.
	Workload string
	// SLO is the `slo:` line (the run's -slo), e.g.
	// "ttft-p99=150ms,tpot-p99=10ms".
	SLO string
	// Arrival is the `arrival:` line of an open-loop or SLO run.
	Arrival string
	// Simulated is true when any result carried `simulated: true`, or when
	// an engine name marks it as simulated (a "-sim" suffix or "sim-"
	// prefix).
	Simulated bool
}

// compared lists the configuration keys that must be equal for every result:
// a chart that puts two models (or two workloads) side by side would compare
// nothing, and SLO marks or open-loop latencies of different SLOs or arrival
// processes cannot share a chart either.
var compared = []string{"model", "input-tokens", "output-tokens", "workload", "slo", "arrival", "max-concurrency"}

// Point is one engine at one concurrency level (closed loop) or one arrival
// rate (open loop) in one unit: the samples (one per -count repetition, in
// file order) and their median with a 95 % confidence interval computed
// exactly as benchstat computes it (benchmath.AssumeNothing: the
// order-statistics CI of the median).
type Point struct {
	// Concurrency is the level (the /concurrency name key); 0 for an
	// open-loop point.
	Concurrency int
	// Rate is the open loop's target rate in requests/s (the /rate name
	// key); 0 for a closed-loop point.
	Rate float64
	// Samples are the values read, one per result line.
	Samples []float64
	// Median is the sample median.
	Median float64
	// Lo and Hi bound the 95 % CI of the median. They are -Inf and +Inf
	// when there are fewer than 6 samples (no finite CI exists at 95 %).
	Lo, Hi float64
}

// HasCI reports whether the point has a finite confidence interval.
func (p Point) HasCI() bool { return !math.IsInf(p.Lo, 0) && !math.IsInf(p.Hi, 0) }

// Data is the content of a set of benchmark files, grouped by unit, engine
// and concurrency (closed loop) or rate (open loop).
type Data struct {
	// Config is the configuration shared by all results.
	Config Config
	// Engines are the engine names, sorted (which fixes their colours).
	Engines []string
	// Units are the units of the closed-loop (concurrency=N) results,
	// sorted: every unit but the optional ones (see Load) is on every
	// such line; a latency unit may be missing from the lines of samples
	// where no request succeeded. Latency units keep their original "-ns"
	// spelling.
	Units []string
	// RateUnits are the units of the open-loop (rate=R) results, sorted,
	// under the same rule among open-loop lines.
	RateUnits []string
	// TraceResults counts the trace replay (trace=SPEEDx) results read:
	// a replay has neither a concurrency nor a rate to put on an axis,
	// so no chart draws them.
	TraceResults int
	// Files maps each engine to the file it was read from (the label, for
	// label=path arguments).
	Files map[string]string

	series     map[string]map[string][]Point // unit → engine → points by concurrency
	rateSeries map[string]map[string][]Point // unit → engine → points by rate

	// Pooled is the run's summary.json when one was given (see Load): its
	// pooled latency percentiles, with confidence intervals, are what the
	// latency chart draws.
	Pooled *report.File
}

// pooled returns the pooled statistics of engine at level c from the
// summary, if one was read and has them.
func (d *Data) pooled(engine string, c int) (report.Pooled, bool) {
	if d.Pooled == nil {
		return report.Pooled{}, false
	}
	return d.Pooled.Find(engine, c)
}

// Series returns an engine's points in a unit, sorted by concurrency, or nil
// when the engine has no results in that unit.
func (d *Data) Series(unit, engine string) []Point {
	return d.series[unit][engine]
}

// HasUnit reports whether the unit was read from a closed-loop result.
func (d *Data) HasUnit(unit string) bool {
	_, ok := d.series[unit]
	return ok
}

// RateSeries returns an engine's open-loop points in a unit, sorted by
// rate, or nil when the engine has no open-loop results in that unit.
func (d *Data) RateSeries(unit, engine string) []Point {
	return d.rateSeries[unit][engine]
}

// HasRateUnit reports whether the unit was read from an open-loop result.
func (d *Data) HasRateUnit(unit string) bool {
	_, ok := d.rateSeries[unit]
	return ok
}

// Rates returns the open-loop rates present for any engine, sorted.
func (d *Data) Rates() []float64 {
	return present(d.rateSeries, func(p Point) float64 { return p.Rate })
}

// Levels returns the concurrency levels present for any engine, sorted.
func (d *Data) Levels() []int {
	return present(d.series, func(p Point) int { return p.Concurrency })
}

// present is the sorted set of key(p) over every point of series.
func present[K cmp.Ordered](series map[string]map[string][]Point, key func(Point) K) []K {
	seen := map[K]bool{}
	for _, byEngine := range series {
		for _, pts := range byEngine {
			for _, p := range pts {
				seen[key(p)] = true
			}
		}
	}
	keys := make([]K, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// SampleRange returns the smallest and largest number of samples of any
// closed-loop point.
func (d *Data) SampleRange() (lo, hi int) { return sampleRange(d.series) }

// RateSampleRange returns the smallest and largest number of samples of any
// open-loop point.
func (d *Data) RateSampleRange() (lo, hi int) { return sampleRange(d.rateSeries) }

func sampleRange(series map[string]map[string][]Point) (lo, hi int) {
	lo = math.MaxInt
	for _, byEngine := range series {
		for _, pts := range byEngine {
			for _, p := range pts {
				lo = min(lo, len(p.Samples))
				hi = max(hi, len(p.Samples))
			}
		}
	}
	if hi == 0 {
		lo = 0
	}
	return lo, hi
}

// pos is a file:line position used in error messages.
type pos struct {
	file string
	line int
}

func (p pos) String() string { return fmt.Sprintf("%s:%d", p.file, p.line) }

// Load reads benchmark files in the Go benchmark format: the suite's
// results/<engine>.txt files (engine = file name without ".txt", or the label
// of a label=path argument) and `go test -bench` output of a multi-engine
// run (engine = the /engine name key). Only BenchmarkServe results are used;
// each needs a positive integer /concurrency key (a closed-loop sample) or a
// positive /rate key in requests/s (an open-loop sample). Trace replays
// (/trace=SPEEDx) are counted in TraceResults and otherwise skipped.
//
// Load fails, naming the file and line, on a malformed Benchmark line, a
// non-finite or negative value, a result whose set of units differs from the
// first result's of the same kind (closed or open loop; optional units
// excepted), results whose model/input-tokens/output-tokens/workload/slo/
// arrival/max-concurrency differ, an engine found in two files, or input
// without any result. Optional units are the ones the suite writes only
// when it has them: latencies (a sample in which every request failed has
// none), the client's own cost (client-*: not measurable over an empty
// window), cached-prompt-frac (only where the server reports cached tokens)
// and the simulator checks (*-vs-model).
//
// A path ending in ".json" is a run's summary.json (internal/report): its
// pooled latency percentiles replace the medians of per-sample values in
// the latency chart, and its pooled TPOT p90 gives the Pareto chart its
// p90 curve when the result lines carry none. At most one may be given.
func Load(paths []string) (*Data, error) {
	var summary *report.File
	var txt []string
	for _, p := range paths {
		if !strings.HasSuffix(p, ".json") {
			txt = append(txt, p)
			continue
		}
		if summary != nil {
			return nil, fmt.Errorf("plots: %s: only one summary.json can be read at a time", p)
		}
		f, err := report.Read(p)
		if err != nil {
			return nil, fmt.Errorf("plots: %w", err)
		}
		summary = f
	}
	paths = withCompanions(txt)
	if len(paths) == 0 {
		return nil, errors.New("plots: no input files")
	}
	files := benchfmt.Files{Paths: paths, AllowLabels: true}
	type key struct {
		unit, engine string
		conc         int
		rate         float64
	}
	samples := map[key][]float64{}
	d := &Data{Files: map[string]string{}, series: map[string]map[string][]Point{},
		rateSeries: map[string]map[string][]Point{}, Pooled: summary}
	// The unit set every line of a kind must carry: open-loop lines have
	// units of their own (achieved-req/s, lag, queued latencies).
	type unitSet struct {
		units []string
		at    pos
		seen  bool
	}
	var (
		closedUnits, openUnits unitSet
		cfg                    map[string]string
		cfgPos                 pos
		nResults               int
		engines                = map[string]bool{}
	)
	for files.Scan() {
		var res *benchfmt.Result
		switch rec := files.Result().(type) {
		case *benchfmt.SyntaxError:
			return nil, fmt.Errorf("plots: %w", rec)
		case *benchfmt.Result:
			res = rec
		default:
			continue // unit metadata
		}
		file, line := res.Pos()
		at := pos{file, line}
		base, parts := res.Name.Parts()
		if string(base) != benchName {
			continue
		}
		var engine, concStr, rateStr string
		trace := false
		for _, part := range parts {
			k, v, ok := strings.Cut(string(part[1:]), "=")
			if part[0] != '/' || !ok {
				continue
			}
			switch k {
			case "engine":
				engine = v
			case "concurrency":
				concStr = v
			case "rate":
				rateStr = v
			case "trace":
				trace = true
			}
		}
		if trace {
			d.TraceResults++
			continue
		}
		label := res.GetConfig(".file")
		if engine == "" {
			engine = strings.TrimSuffix(strings.TrimSuffix(filepath.Base(label), results.AllExt), ".txt")
		}
		if engine == "" {
			return nil, fmt.Errorf("plots: %s: cannot tell the engine: no /engine key and no file name", at)
		}
		var (
			conc int
			rate float64
			err  error
		)
		switch {
		case concStr != "" && rateStr != "":
			return nil, fmt.Errorf("plots: %s: Benchmark%s has both /concurrency and /rate: a sample is closed or open loop, not both", at, res.Name)
		case rateStr != "":
			rate, err = strconv.ParseFloat(rateStr, 64)
			if err != nil || !(rate > 0) || math.IsInf(rate, 0) {
				return nil, fmt.Errorf("plots: %s: rate %q is not a positive number of requests/s", at, rateStr)
			}
		case concStr != "":
			conc, err = strconv.Atoi(concStr)
			if err != nil || conc <= 0 {
				return nil, fmt.Errorf("plots: %s: concurrency %q is not a positive integer", at, concStr)
			}
		default:
			return nil, fmt.Errorf("plots: %s: Benchmark%s has no /concurrency=N or /rate=R key", at, res.Name)
		}
		if prev, ok := d.Files[engine]; ok && prev != label {
			return nil, fmt.Errorf("plots: %s: engine %q already read from %s; give each engine's results once", at, engine, prev)
		}
		d.Files[engine] = label

		// Configuration must match the first result's.
		this := map[string]string{}
		for _, k := range compared {
			this[k] = res.GetConfig(k)
		}
		if cfg == nil {
			cfg, cfgPos = this, at
		} else {
			for _, k := range compared {
				if this[k] != cfg[k] {
					return nil, fmt.Errorf("plots: %s: %s is %q but %q at %s: results of different configurations cannot share a chart",
						at, k, this[k], cfg[k], cfgPos)
				}
			}
		}
		if res.GetConfig("simulated") == "true" || isSimName(engine) {
			d.Config.Simulated = true
		}

		// Every result of a kind must carry the same units.
		units := make([]string, 0, len(res.Values))
		for _, v := range res.Values {
			unit, val := v.Unit, v.Value
			if v.OrigUnit != "" {
				unit, val = v.OrigUnit, v.OrigValue
			}
			if math.IsNaN(val) || math.IsInf(val, 0) || val < 0 {
				return nil, fmt.Errorf("plots: %s: %s = %v: want a finite, non-negative number", at, unit, val)
			}
			if slices.Contains(units, unit) {
				return nil, fmt.Errorf("plots: %s: unit %s appears twice", at, unit)
			}
			units = append(units, unit)
			k := key{unit, engine, conc, rate}
			samples[k] = append(samples[k], val)
		}
		sort.Strings(units)
		units = slices.DeleteFunc(units, isOptionalUnit)
		set := &closedUnits
		if rate > 0 {
			set = &openUnits
		}
		if !set.seen {
			set.units, set.at, set.seen = units, at, true
		} else if !slices.Equal(units, set.units) {
			return nil, fmt.Errorf("plots: %s: units differ from %s: %s", at, set.at, unitDiff(set.units, units))
		}
		engines[engine] = true
		nResults++
	}
	if err := files.Err(); err != nil {
		return nil, fmt.Errorf("plots: %w", err)
	}
	if nResults == 0 {
		what := "no BenchmarkServe result lines"
		if d.TraceResults > 0 {
			what = fmt.Sprintf("only trace replay (trace=SPEEDx) results, which no chart draws (%d lines)", d.TraceResults)
		}
		return nil, fmt.Errorf("plots: %s in %s", what, strings.Join(paths, ", "))
	}
	d.Config.Model = cfg["model"]
	d.Config.InputTokens = cfg["input-tokens"]
	d.Config.OutputTokens = cfg["output-tokens"]
	d.Config.Workload = cfg["workload"]
	d.Config.SLO = cfg["slo"]
	d.Config.Arrival = cfg["arrival"]
	for e := range engines {
		d.Engines = append(d.Engines, e)
	}
	sort.Strings(d.Engines)
	closedSeen, openSeen := map[string]bool{}, map[string]bool{}
	for k, vs := range samples {
		series, seen := d.series, closedSeen
		if k.rate > 0 {
			series, seen = d.rateSeries, openSeen
		}
		seen[k.unit] = true
		byEngine := series[k.unit]
		if byEngine == nil {
			byEngine = map[string][]Point{}
			series[k.unit] = byEngine
		}
		p := summarize(k.conc, vs)
		p.Rate = k.rate
		byEngine[k.engine] = append(byEngine[k.engine], p)
	}
	d.Units, d.RateUnits = sortedKeys(closedSeen), sortedKeys(openSeen)
	for _, byEngine := range d.series {
		for _, pts := range byEngine {
			sort.Slice(pts, func(i, j int) bool { return pts[i].Concurrency < pts[j].Concurrency })
		}
	}
	for _, byEngine := range d.rateSeries {
		for _, pts := range byEngine {
			sort.Slice(pts, func(i, j int) bool { return pts[i].Rate < pts[j].Rate })
		}
	}
	return d, nil
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// withCompanions puts, for every X.txt argument whose companion X.all.txt
// (results.AllExt: the same lines with every metric) exists, the companion
// in its place, labelled as the argument was, so the engine keeps its name
// and the charts find the metrics X.txt leaves out. An X.txt given beside
// its own X.all.txt (as a glob of results/*.txt gives them) is read once,
// from the companion. Arguments are label=path or path, as benchfmt.Files
// takes them.
func withCompanions(args []string) []string {
	given := map[string]bool{}
	for _, a := range args {
		given[argPath(a)] = true
	}
	var out []string
	for _, a := range args {
		p := argPath(a)
		if strings.HasSuffix(p, results.AllExt) || !strings.HasSuffix(p, ".txt") {
			out = append(out, a)
			continue
		}
		all := strings.TrimSuffix(p, ".txt") + results.AllExt
		if given[all] {
			continue // read from the companion, given too
		}
		if _, err := os.Stat(all); err != nil {
			out = append(out, a) // a file of go test output, or from before the companions
			continue
		}
		label := a
		if i := strings.Index(a, "="); i >= 0 {
			label = a[:i]
		}
		out = append(out, label+"="+all)
	}
	return out
}

// Labeled is path as a label=path argument labelled with its engine (the
// file's name without .txt): the form every path must take where it may
// hold a "=" of its own (a folder named concurrency=1), since Load, like
// benchfmt.Files, reads whatever precedes the first "=" as a label.
func Labeled(path string) string {
	return strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), results.AllExt), ".txt") + "=" + path
}

// argPath is the path of a label=path or path argument.
func argPath(a string) string {
	if i := strings.Index(a, "="); i >= 0 {
		return a[i+1:]
	}
	return a
}

// summarize computes benchstat's summary of one group of samples.
func summarize(conc int, vs []float64) Point {
	// NewSample sorts its argument in place: give it a copy so Samples keep
	// file order.
	s := benchmath.AssumeNothing.Summary(benchmath.NewSample(slices.Clone(vs), &benchmath.DefaultThresholds), Confidence)
	return Point{Concurrency: conc, Samples: vs, Median: s.Center, Lo: s.Lo, Hi: s.Hi}
}

// isSimName reports whether an engine name marks a simulated engine.
func isSimName(engine string) bool {
	return strings.HasSuffix(engine, "-sim") || strings.HasPrefix(engine, "sim-")
}

// isLatencyUnit reports whether unit is one of the suite's latency units
// (ttft-p50-ns and the like; ns/op is not one).
func isLatencyUnit(unit string) bool { return strings.HasSuffix(unit, "-ns") }

// isOptionalUnit reports whether the suite writes unit only on the lines of
// samples that have it (see Load), so its absence from a line is no sign of
// a different kind of result.
func isOptionalUnit(unit string) bool {
	return isLatencyUnit(unit) || strings.HasPrefix(unit, "client-") ||
		unit == "cached-prompt-frac" || strings.HasSuffix(unit, "-vs-model") ||
		// An open-loop sample of fewer than two arrivals has no rate.
		unit == UnitAchieved || unit == UnitScheduled
}

// unitDiff describes how got differs from want.
func unitDiff(want, got []string) string {
	var missing, extra []string
	for _, u := range want {
		if !slices.Contains(got, u) {
			missing = append(missing, u)
		}
	}
	for _, u := range got {
		if !slices.Contains(want, u) {
			extra = append(extra, u)
		}
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "missing "+strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		parts = append(parts, "extra "+strings.Join(extra, ", "))
	}
	return strings.Join(parts, "; ")
}
