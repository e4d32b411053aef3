package plots

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"

	"github.com/inferbench/inferbench/internal/report"
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
	// Simulated is true when any result carried `simulated: true`, or when
	// an engine name marks it as simulated (a "-sim" suffix or "sim-"
	// prefix).
	Simulated bool
}

// compared lists the configuration keys that must be equal for every result:
// a chart that puts two models (or two workloads) side by side would compare
// nothing.
var compared = []string{"model", "input-tokens", "output-tokens", "workload"}

// Point is one engine at one concurrency level in one unit: the samples
// (one per -count repetition, in file order) and their median with a 95 %
// confidence interval computed exactly as benchstat computes it
// (benchmath.AssumeNothing: the order-statistics CI of the median).
type Point struct {
	// Concurrency is the level (the /concurrency name key).
	Concurrency int
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
// and concurrency.
type Data struct {
	// Config is the configuration shared by all results.
	Config Config
	// Engines are the engine names, sorted (which fixes their colours).
	Engines []string
	// Units are the units of the results, sorted: every non-latency unit is
	// on every line; a latency unit may be missing from the lines of
	// samples where no request succeeded. Latency units keep their
	// original "-ns" spelling.
	Units []string
	// Files maps each engine to the file it was read from (the label, for
	// label=path arguments).
	Files map[string]string

	series map[string]map[string][]Point // unit → engine → points by concurrency

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

// HasUnit reports whether the unit was read.
func (d *Data) HasUnit(unit string) bool {
	_, ok := d.series[unit]
	return ok
}

// Levels returns the concurrency levels present for any engine, sorted.
func (d *Data) Levels() []int {
	seen := map[int]bool{}
	for _, byEngine := range d.series {
		for _, pts := range byEngine {
			for _, p := range pts {
				seen[p.Concurrency] = true
			}
		}
	}
	levels := make([]int, 0, len(seen))
	for c := range seen {
		levels = append(levels, c)
	}
	sort.Ints(levels)
	return levels
}

// SampleRange returns the smallest and largest number of samples of any point.
func (d *Data) SampleRange() (lo, hi int) {
	lo = math.MaxInt
	for _, byEngine := range d.series {
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
// each needs a positive integer /concurrency key.
//
// Load fails, naming the file and line, on a malformed Benchmark line, a
// non-finite or negative value, a result whose set of units differs from the
// first result's (latency units excepted: a sample in which every request
// failed has no latency to report), results whose model/input-tokens/output-tokens/workload
// differ, an engine found in two files, or input without any result.
//
// A path ending in ".json" is a run's summary.json (internal/report): its
// pooled latency percentiles replace the medians of per-sample values in
// the latency chart. At most one may be given.
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
	paths = txt
	if len(paths) == 0 {
		return nil, errors.New("plots: no input files")
	}
	files := benchfmt.Files{Paths: paths, AllowLabels: true}
	type key struct {
		unit, engine string
		conc         int
	}
	samples := map[key][]float64{}
	d := &Data{Files: map[string]string{}, series: map[string]map[string][]Point{}, Pooled: summary}
	var (
		firstUnits []string
		firstPos   pos
		cfg        map[string]string
		cfgPos     pos
		nResults   int
		engines    = map[string]bool{}
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
		var engine, concStr string
		openLoop := false
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
				openLoop = true
			}
		}
		if openLoop {
			continue // an open-loop (rate=R) sample: not a point of the concurrency sweep
		}
		label := res.GetConfig(".file")
		if engine == "" {
			engine = strings.TrimSuffix(filepath.Base(label), ".txt")
		}
		if engine == "" {
			return nil, fmt.Errorf("plots: %s: cannot tell the engine: no /engine key and no file name", at)
		}
		if concStr == "" {
			return nil, fmt.Errorf("plots: %s: Benchmark%s has no /concurrency=N key", at, res.Name)
		}
		conc, err := strconv.Atoi(concStr)
		if err != nil || conc <= 0 {
			return nil, fmt.Errorf("plots: %s: concurrency %q is not a positive integer", at, concStr)
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

		// Every result must carry the same units.
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
			k := key{unit, engine, conc}
			samples[k] = append(samples[k], val)
		}
		sort.Strings(units)
		// Latency units are written only when the sample had a successful
		// request to measure (every request failing leaves none), so they
		// may be missing from a line; every other unit must be on every line.
		units = slices.DeleteFunc(units, isLatencyUnit)
		if firstUnits == nil {
			firstUnits, firstPos = units, at
		} else if !slices.Equal(units, firstUnits) {
			return nil, fmt.Errorf("plots: %s: units differ from %s: %s", at, firstPos, unitDiff(firstUnits, units))
		}
		engines[engine] = true
		nResults++
	}
	if err := files.Err(); err != nil {
		return nil, fmt.Errorf("plots: %w", err)
	}
	if nResults == 0 {
		return nil, fmt.Errorf("plots: no BenchmarkServe result lines in %s", strings.Join(paths, ", "))
	}
	d.Config.Model = cfg["model"]
	d.Config.InputTokens = cfg["input-tokens"]
	d.Config.OutputTokens = cfg["output-tokens"]
	d.Config.Workload = cfg["workload"]
	d.Units = firstUnits
	for k := range samples {
		if isLatencyUnit(k.unit) && !slices.Contains(d.Units, k.unit) {
			d.Units = append(d.Units, k.unit)
		}
	}
	sort.Strings(d.Units)
	for e := range engines {
		d.Engines = append(d.Engines, e)
	}
	sort.Strings(d.Engines)
	for k, vs := range samples {
		byEngine := d.series[k.unit]
		if byEngine == nil {
			byEngine = map[string][]Point{}
			d.series[k.unit] = byEngine
		}
		byEngine[k.engine] = append(byEngine[k.engine], summarize(k.conc, vs))
	}
	for _, byEngine := range d.series {
		for _, pts := range byEngine {
			sort.Slice(pts, func(i, j int) bool { return pts[i].Concurrency < pts[j].Concurrency })
		}
	}
	return d, nil
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
