package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/perf/benchmath"

	"github.com/inferbench/inferbench/internal/metrics"
	"github.com/inferbench/inferbench/internal/record"
)

// Schema names the version of the summary.json format. A reader refuses
// any other; a change that removes or renames a field bumps it.
const Schema = "inferbench-summary/1"

// File is results/summary.json: the run's metadata, every sample's
// metrics and the pooled statistics per engine and level. See the package
// doc for the schema.
type File struct {
	Schema string `json:"schema"`
	// Run is what was run, where and with what.
	Run Run `json:"run"`
	// Rules states how sample sizes and reported tails were chosen.
	Rules Rules `json:"rules"`
	// Engines are the run's engines, in -engines order; the first is the
	// base of every comparison.
	Engines []Engine `json:"engines"`
	// Levels are the concurrency levels measured, in run order.
	Levels []int `json:"levels"`
	// Samples are every finished sample, in the order measured.
	Samples []Sample `json:"samples"`
	// Pooled are the statistics per engine and level over all its samples.
	Pooled []Pooled `json:"pooled"`
	// Comparisons are each engine against the first, per level.
	Comparisons []Comparison `json:"comparisons,omitempty"`
}

// Run is the run's metadata.
type Run struct {
	// Started and Finished are wall-clock times (UTC).
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// CommandLine is the test binary's arguments, URLs redacted.
	CommandLine []string `json:"command_line"`
	// SuiteVersion is the module version or VCS revision the suite was
	// built from ("+dirty" when the tree had changes), or "unknown".
	SuiteVersion string `json:"suite_version"`
	GoVersion    string `json:"go_version"`
	GOOS         string `json:"goos"`
	GOARCH       string `json:"goarch"`
	GOMAXPROCS   int    `json:"gomaxprocs"`
	Host         string `json:"host"`
	// Simulated is set when every engine is inferbench's simulated engine.
	Simulated bool `json:"simulated"`
	// Config is the run configuration shared by every engine (model,
	// input-tokens, output-tokens, workload), as in the result files.
	Config map[string]string `json:"config"`
	// Interrupted is set when the run was stopped before the sweep ended.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Rules are the stated rules behind the numbers.
type Rules struct {
	// SampleSize says how many requests a sample measures.
	SampleSize string `json:"sample_size"`
	// Tails says which percentiles a result line carries.
	Tails string `json:"tails"`
	// Confidence is the level of every interval.
	Confidence float64 `json:"confidence"`
}

// Engine is one engine's metadata.
type Engine struct {
	Name      string `json:"name"`
	Profile   string `json:"profile"`
	URL       string `json:"url"` // redacted (engines.RedactURL)
	Model     string `json:"model"`
	Simulated bool   `json:"simulated"`
	// Preflight is the preflight's note (prompt and output tokens, token
	// source, TTFT, E2E, retries and warnings).
	Preflight string `json:"preflight"`
	// ServerHeader is the Server header of the engine's answers, when the
	// client recorded it.
	ServerHeader string `json:"server_header,omitempty"`
	// ModelInfo is the engine's /v1/models entry for the model, verbatim,
	// when the client fetched it.
	ModelInfo json.RawMessage `json:"model_info,omitempty"`
	// Conformance are facts the preflight's conformance checks found (one
	// line each: what was checked and the outcome), when it ran them.
	Conformance []string `json:"conformance,omitempty"`
}

// Sample is one finished sample.
type Sample struct {
	Engine      string `json:"engine"`
	Concurrency int    `json:"concurrency"`
	// Sample is the 0-based index among the engine's samples at the level
	// (record.Record.Sample).
	Sample int `json:"sample"`
	// Line is the result line as written to <engine>.txt; AllLine is its
	// line in <engine>.all.txt, with every metric.
	Line    string `json:"line"`
	AllLine string `json:"all_line,omitempty"`
	// Metrics are every statistic of the sample (internal/metrics'
	// definitions): counts, errors, throughputs over the window and the
	// full run, every latency distribution (p50/p90/p95/p99, queued ones
	// included).
	Metrics SampleMetrics `json:"metrics"`
	// Warnings are the caveats of the sample's statistics.
	Warnings []string `json:"warnings,omitempty"`
	// Failed is set when the sample failed (error rate above
	// -max-error-rate, a record that could not be saved).
	Failed bool `json:"failed,omitempty"`
}

// SampleMetrics is a metrics.Summary as summary.json stores it: its
// warnings live in Sample.Warnings.
type SampleMetrics metrics.Summary

// MarshalJSON writes the summary without its Warnings field (which has no
// JSON name of its own).
func (m SampleMetrics) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(metrics.Summary(m))
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, err
	}
	delete(obj, "Warnings")
	return json.Marshal(obj)
}

// Center is the median of a per-sample metric over the samples with its
// confidence interval, as benchstat computes it (benchmath.AssumeNothing).
type Center struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	// Lo and Hi bound the median; nil when fewer than 6 samples allow no
	// finite interval.
	Lo *float64 `json:"ci_lo"`
	Hi *float64 `json:"ci_hi"`
}

// Pooled are one engine's statistics at one level over all its samples.
type Pooled struct {
	Engine      string `json:"engine"`
	Concurrency int    `json:"concurrency"`
	// Samples is the number of finished samples.
	Samples int `json:"samples"`
	// Requests, Failed and Errors count the measured requests of every
	// sample, from the records.
	Requests  int                      `json:"requests"`
	Failed    int                      `json:"failed"`
	ErrorRate float64                  `json:"error_rate"`
	Errors    map[record.ErrorKind]int `json:"errors,omitempty"`
	// Throughputs are per-sample values' medians (a rate has no pooled
	// distribution): steady-state output, total, requests, and output over
	// the full run (vLLM's definition).
	OutputTokPerSec        Center `json:"output_tok_per_s"`
	TotalTokPerSec         Center `json:"total_tok_per_s"`
	ReqPerSec              Center `json:"req_per_s"`
	FullRunOutputTokPerSec Center `json:"full_run_output_tok_per_s"`
	// Latencies pool every measured request's values of every sample.
	TTFT       PooledDist `json:"ttft"`
	TPOT       PooledDist `json:"tpot"`
	ITL        PooledDist `json:"itl"`
	E2E        PooledDist `json:"e2e"`
	QueuedTTFT PooledDist `json:"queued_ttft"`
	QueuedE2E  PooledDist `json:"queued_e2e"`
}

// PooledDist is a pooled latency distribution.
type PooledDist struct {
	N    int           `json:"n"`
	Mean time.Duration `json:"mean_ns"`
	Min  time.Duration `json:"min_ns"`
	Max  time.Duration `json:"max_ns"`
	P50  Tail          `json:"p50"`
	P90  Tail          `json:"p90"`
	P95  Tail          `json:"p95"`
	P99  Tail          `json:"p99"`
}

// Tail returns the percentile p of d (one of TailPercentiles).
func (d PooledDist) Tail(p float64) Tail {
	switch p {
	case 50:
		return d.P50
	case 90:
		return d.P90
	case 95:
		return d.P95
	}
	return d.P99
}

func newPooledDist(sorted []time.Duration) PooledDist {
	d := PooledDist{N: len(sorted), P50: NewTail(sorted, 50), P90: NewTail(sorted, 90), P95: NewTail(sorted, 95), P99: NewTail(sorted, 99)}
	if d.N > 0 {
		sum := 0.0
		for _, v := range sorted {
			sum += float64(v)
		}
		d.Mean = time.Duration(math.Round(sum / float64(d.N)))
		d.Min, d.Max = sorted[0], sorted[d.N-1]
	}
	return d
}

// Comparison is one engine against the base (first) engine at one level
// in one per-sample metric: the ratio of medians and the Mann-Whitney U
// test benchstat runs.
type Comparison struct {
	Concurrency int    `json:"concurrency"`
	Metric      string `json:"metric"` // a result-line unit: tok/s, ttft-p50-ns
	Engine      string `json:"engine"`
	Base        string `json:"base"`
	// Ratio is median(Engine) ÷ median(Base).
	Ratio float64 `json:"ratio"`
	// P is the test's p-value; Significant is P < Alpha.
	P           float64 `json:"p"`
	Alpha       float64 `json:"alpha"`
	Significant bool    `json:"significant"`
	N           int     `json:"n"`
	BaseN       int     `json:"base_n"`
	// Note says why no difference can be found, e.g. too few samples.
	Note string `json:"note,omitempty"`
}

// comparedMetrics are the per-sample metrics compared between engines.
var comparedMetrics = []struct {
	unit string
	get  func(*metrics.Summary) (float64, bool)
}{
	{"tok/s", func(s *metrics.Summary) (float64, bool) { return s.OutputTokPerSec, true }},
	{"ttft-p50-ns", func(s *metrics.Summary) (float64, bool) { return float64(s.TTFT.P50), s.TTFT.N > 0 }},
}

// Build computes the summary: the samples as given, pooled statistics from
// every engine's JSONL records (jsonl maps an engine to its file) and the
// comparisons of every engine with the first.
func Build(run Run, rules Rules, engines []Engine, samples []Sample, jsonl map[string]string) (*File, error) {
	f := &File{Schema: Schema, Run: run, Rules: rules, Engines: engines, Samples: samples}
	if f.Samples == nil {
		f.Samples = []Sample{}
	}
	for _, s := range samples {
		if !slices.Contains(f.Levels, s.Concurrency) {
			f.Levels = append(f.Levels, s.Concurrency)
		}
	}
	for _, e := range engines {
		path, ok := jsonl[e.Name]
		if !ok {
			continue
		}
		byLevel, err := readMeasured(path)
		if err != nil {
			return nil, fmt.Errorf("summary: engine %s: %w", e.Name, err)
		}
		for _, c := range f.Levels {
			var ss []*metrics.Summary
			for i := range samples {
				if samples[i].Engine == e.Name && samples[i].Concurrency == c {
					ss = append(ss, (*metrics.Summary)(&samples[i].Metrics))
				}
			}
			if len(ss) == 0 {
				continue
			}
			f.Pooled = append(f.Pooled, pool(e.Name, c, ss, byLevel[c]))
		}
	}
	if f.Pooled == nil {
		f.Pooled = []Pooled{}
	}
	f.Comparisons = compare(f)
	return f, nil
}

// pool computes one engine's pooled statistics at one level.
func pool(engine string, c int, ss []*metrics.Summary, recs []record.Record) Pooled {
	p := Pooled{Engine: engine, Concurrency: c, Samples: len(ss)}
	for i := range recs {
		r := &recs[i]
		p.Requests++
		if r.Failed() {
			if p.Errors == nil {
				p.Errors = map[record.ErrorKind]int{}
			}
			p.Failed++
			p.Errors[r.Error]++
		}
	}
	if p.Requests > 0 {
		p.ErrorRate = float64(p.Failed) / float64(p.Requests)
	}
	center := func(get func(*metrics.Summary) float64) Center {
		vs := make([]float64, len(ss))
		for i, s := range ss {
			vs[i] = get(s)
		}
		return newCenter(vs)
	}
	p.OutputTokPerSec = center(func(s *metrics.Summary) float64 { return s.OutputTokPerSec })
	p.TotalTokPerSec = center(func(s *metrics.Summary) float64 { return s.TotalTokPerSec })
	p.ReqPerSec = center(func(s *metrics.Summary) float64 { return s.ReqPerSec })
	p.FullRunOutputTokPerSec = center(func(s *metrics.Summary) float64 { return s.FullRunOutputTokPerSec })
	l := metrics.LatencyValues(recs)
	p.TTFT, p.TPOT, p.ITL, p.E2E = newPooledDist(l.TTFT), newPooledDist(l.TPOT), newPooledDist(l.ITL), newPooledDist(l.E2E)
	p.QueuedTTFT, p.QueuedE2E = newPooledDist(l.QueuedTTFT), newPooledDist(l.QueuedE2E)
	return p
}

func newCenter(vs []float64) Center {
	if len(vs) == 0 {
		return Center{}
	}
	s := benchmath.AssumeNothing.Summary(benchmath.NewSample(slices.Clone(vs), &benchmath.DefaultThresholds), Confidence)
	c := Center{N: len(vs), Median: s.Center}
	if !math.IsInf(s.Lo, 0) && !math.IsNaN(s.Lo) {
		c.Lo = &s.Lo
	}
	if !math.IsInf(s.Hi, 0) && !math.IsNaN(s.Hi) {
		c.Hi = &s.Hi
	}
	return c
}

// compare tests every engine against the first at every level.
func compare(f *File) []Comparison {
	if len(f.Engines) < 2 {
		return nil
	}
	base := f.Engines[0].Name
	values := func(engine string, c int, get func(*metrics.Summary) (float64, bool)) []float64 {
		var vs []float64
		for i := range f.Samples {
			s := &f.Samples[i]
			if s.Engine == engine && s.Concurrency == c {
				if v, ok := get((*metrics.Summary)(&s.Metrics)); ok {
					vs = append(vs, v)
				}
			}
		}
		return vs
	}
	var out []Comparison
	for _, c := range f.Levels {
		for _, e := range f.Engines[1:] {
			for _, m := range comparedMetrics {
				a, b := values(e.Name, c, m.get), values(base, c, m.get)
				if len(a) == 0 || len(b) == 0 {
					continue
				}
				th := benchmath.DefaultThresholds
				cmp := benchmath.AssumeNothing.Compare(benchmath.NewSample(slices.Clone(b), &th), benchmath.NewSample(slices.Clone(a), &th))
				ma, mb := newCenter(a).Median, newCenter(b).Median
				cm := Comparison{Concurrency: c, Metric: m.unit, Engine: e.Name, Base: base,
					P: cmp.P, Alpha: cmp.Alpha, Significant: cmp.P < cmp.Alpha, N: len(a), BaseN: len(b)}
				if mb != 0 {
					cm.Ratio = ma / mb
				}
				if len(cmp.Warnings) > 0 {
					cm.Note = errors.Join(cmp.Warnings...).Error()
				}
				out = append(out, cm)
			}
		}
	}
	return out
}

// readMeasured reads the measured records of a JSONL file, by level.
func readMeasured(path string) (map[int][]record.Record, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	out := map[int][]record.Record{}
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		// Skip the other phases without decoding their chunks.
		if !bytes.Contains(b, []byte(`"phase":"measured"`)) {
			continue
		}
		var r record.Record
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if r.Phase == record.Measured && r.Rate == 0 { // closed-loop levels only
			out[r.Concurrency] = append(out[r.Concurrency], r)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// Write writes f to path as indented JSON, atomically (a temporary file
// renamed into place), so a reader never sees half a file.
func Write(path string, f *File) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	return writeAtomic(path, append(b, '\n'))
}

func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), 0o644)); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// Read reads a summary.json, refusing another schema version.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Schema != Schema {
		return nil, fmt.Errorf("%s: schema %q, want %q (written by another inferbench version)", path, f.Schema, Schema)
	}
	return &f, nil
}

// Find returns the pooled statistics of engine at level c.
func (f *File) Find(engine string, c int) (Pooled, bool) {
	for _, p := range f.Pooled {
		if p.Engine == engine && p.Concurrency == c {
			return p, true
		}
	}
	return Pooled{}, false
}

// Comparison returns the comparison of engine with the base at level c in
// unit, if there is one.
func (f *File) Comparison(engine string, c int, unit string) (Comparison, bool) {
	for _, cm := range f.Comparisons {
		if cm.Engine == engine && cm.Concurrency == c && cm.Metric == unit {
			return cm, true
		}
	}
	return Comparison{}, false
}
