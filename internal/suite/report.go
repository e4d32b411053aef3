package suite

// This file gathers what a run reports beyond the result lines: the sample
// size rule, which tails a line carries, and at the end of the run
// results/summary.json, the summary table and results/report.html
// (internal/report renders them).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/inferbench/inferbench/engines"
	"github.com/inferbench/inferbench/internal/metrics"
	"github.com/inferbench/inferbench/internal/report"
	"github.com/inferbench/inferbench/plots"
)

// File names the run writes next to the engines' files.
const (
	SummaryJSON = "summary.json"
	ReportHTML  = "report.html"
)

// EngineFacts are what the run knows of an engine beyond its definition,
// for summary.json and report.html. The fields are hooks: the preflight
// fills what the client can tell (the conformance report's lines, the
// Server header, the /v1/models entry); an empty field is left out.
type EngineFacts struct {
	// Conformance are the preflight conformance checks' findings, one line
	// each (report.Engine.Conformance).
	Conformance []string
	// ServerHeader is the Server header of the engine's answers.
	ServerHeader string
	// ModelInfo is the engine's /v1/models entry for the model, verbatim.
	ModelInfo json.RawMessage
}

// reportState is the run's reporting state: finished samples (for
// summary.json) and the terminal progress line.
type reportState struct {
	mu       sync.Mutex
	samples  []report.Sample
	progress *progress
}

// MinMeasured is the fewest measured requests a sample at concurrency c
// takes: c when -benchtime was not given (every slot carries a measured
// request; BenchmarkServe tops b.Loop's count up to it), none when it was
// (-benchtime is honoured as given; Finish warns about a sample below c).
//
// With -concurrency=auto it is steadyMinMeasured(c), 4 rounds (at least 8
// requests), so every point's steady state can be checked (steady.go).
func (s *Suite) MinMeasured(c int) int {
	if s.opt.Benchtime != "" {
		return 0
	}
	if s.auto != nil {
		return steadyMinMeasured(c)
	}
	return c
}

// OpenMinArrivals is the fewest measured arrivals of an open-loop sample
// without -benchtime: the smallest sample whose p90 has an equal-tailed
// 95 % order-statistic interval (the tail rule of the result lines), so
// every open-loop line carries a tail of its latencies.
const OpenMinArrivals = 36

// TopUp dispatches measured requests until the sample has MinMeasured of
// its level: after b.Loop, whose -benchtime default (1s) alone gives a
// level like 256 a single measured request. It fails only when the sample
// is cancelled.
func (sm *Sample) TopUp() error {
	if sm.open != nil && sm.open.replay {
		// A trace replay is the whole trace: send what b.Loop left.
		for {
			if err := sm.Dispatch(); err != nil {
				if sm.replayed(err) {
					return nil
				}
				return err
			}
		}
	}
	if sm.open != nil {
		// An open loop has no slots to fill: its sample is its arrivals.
		// b.Loop's default 1s gave rate=16 a single arrival, whose line
		// said achieved-req/s 0; without -benchtime a sample takes at
		// least OpenMinArrivals of the schedule.
		for sm.s.opt.Benchtime == "" && sm.dispatched < OpenMinArrivals {
			if err := sm.Dispatch(); err != nil {
				return err
			}
		}
		return nil
	}
	for sm.dispatched < sm.s.MinMeasured(sm.c) {
		if err := sm.Dispatch(); err != nil {
			return err
		}
	}
	return nil
}

// sampleRule states the sample-size rule for the header and summary.json.
func (s *Suite) sampleRule() string {
	if s.opt.Benchtime == "" && s.auto != nil {
		return fmt.Sprintf("sample size (-concurrency=auto): every sample measures at least %d rounds of C requests (at least %d requests) so that its steady state can be checked, and for at least -benchtime's default 1s; -benchtime=Nx or =30s sets it exactly.",
			steadyRounds, steadyBlocks)
	}
	if s.opt.Benchtime == "" {
		return fmt.Sprintf("sample size: every sample measures at least C requests (one per slot at concurrency C), an open-loop one at least %d arrivals, and for at least -benchtime's default 1s; -benchtime=Nx or =30s sets it exactly.", OpenMinArrivals)
	}
	rule := "sample size: -benchtime=" + s.opt.Benchtime + " as given."
	if n, ok := strings.CutSuffix(s.opt.Benchtime, "x"); ok {
		if k, err := strconv.Atoi(n); err == nil {
			var below []string
			for _, c := range s.levels {
				if k < c {
					below = append(below, strconv.Itoa(c))
				}
			}
			if len(below) > 0 {
				rule += fmt.Sprintf(" WARNING: %d measured requests is fewer than the concurrency at levels %s: some slots carry no measured request there.", k, strings.Join(below, ","))
			}
		}
	}
	return rule
}

// tailRule states which percentiles a result line carries.
func tailRule() string {
	return fmt.Sprintf("tails: a result line carries a p90, p95 or p99 only when its sample has a 95 %% distribution-free CI for it (order statistics, binomial): n ≥ %d, %d, %d values; p50 always.",
		report.MinForCI(90, report.Confidence), report.MinForCI(95, report.Confidence), report.MinForCI(99, report.Confidence))
}

// tailMetrics are the tail percentiles of d that its sample supports
// (report.MinForCI), in the result line's units.
func tailMetrics(d metrics.Dist, name string) []Metric {
	var ms []Metric
	for _, t := range []struct {
		p float64
		v time.Duration
	}{{90, d.P90}, {95, d.P95}, {99, d.P99}} {
		if d.N >= report.MinForCI(t.p, report.Confidence) {
			ms = append(ms, Metric{float64(t.v.Nanoseconds()), fmt.Sprintf("%s-p%g-ns", name, t.p)})
		}
	}
	return ms
}

// sampleWarnings are the summary's warnings for the log, with metrics'
// small-sample warning (its rule of thumb: p99 needs 100 values) replaced
// by the tails the result line left off under the suite's rule.
func sampleWarnings(sum metrics.Summary) []string {
	var ws, off []string
	for _, w := range sum.Warnings {
		if !strings.HasPrefix(w, "few samples for tail percentiles") {
			ws = append(ws, w)
		}
	}
	for _, l := range []struct {
		d    metrics.Dist
		name string
	}{{sum.TTFT, "ttft"}, {sum.ITL, "itl"}, {sum.E2E, "e2e"}} {
		if l.d.N == 0 {
			continue
		}
		for _, p := range []float64{90, 95, 99} {
			if need := report.MinForCI(p, report.Confidence); l.d.N < need {
				off = append(off, fmt.Sprintf("%s-p%g (n=%d<%d)", l.name, p, l.d.N, need))
			}
		}
	}
	if len(off) > 0 {
		ws = append(ws, "tails left off the line, too few values to bound them: "+strings.Join(off, ", ")+"; the pooled ones are in summary.json (more samples: -count; more requests: -benchtime=Nx)")
	}
	return ws
}

// sampleNotes are the logs of a finished sample about its size.
func sampleNotes(c int, sum metrics.Summary) []string {
	var notes []string
	if sum.Requests < c {
		notes = append(notes, fmt.Sprintf("warning: %d measured requests at concurrency %d: some slots carried no measured request (-benchtime sets fewer than the level)", sum.Requests, c))
	}
	return notes
}

// recordSample keeps a finished sample for summary.json.
func (s *Suite) recordSample(e *Engine, c, n int, out Result) {
	sum := out.Summary
	rs := report.Sample{Engine: e.name, Concurrency: c, Sample: n, Line: out.Line, AllLine: out.All,
		Warnings: sum.Warnings, Failed: len(out.Errs) > 0}
	sum.Warnings = nil
	rs.Metrics = report.SampleMetrics(sum)
	s.rep.mu.Lock()
	s.rep.samples = append(s.rep.samples, rs)
	s.rep.mu.Unlock()
}

// summary builds summary.json's content from the finished samples and the
// engines' JSONL records.
func (s *Suite) summary() (*report.File, error) {
	run := report.Run{
		Started: s.epoch.UTC(), Finished: time.Now().UTC(),
		CommandLine:  redactArgs(os.Args),
		SuiteVersion: suiteVersion(),
		GoVersion:    runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GOMAXPROCS: runtime.GOMAXPROCS(0),
		Simulated:   true,
		Config:      map[string]string{},
		Interrupted: s.ctx.Err() != nil,
	}
	run.Host, _ = os.Hostname()
	for _, kv := range s.header.Config {
		run.Config[kv.Key] = kv.Value
	}
	var es []report.Engine
	jsonl := map[string]string{}
	for _, e := range s.engines {
		run.Simulated = run.Simulated && e.engine.Simulated
		es = append(es, report.Engine{
			Name: e.name, Profile: string(e.engine.Profile), URL: engines.RedactURL(e.engine.URL),
			Model: e.engine.Model, Simulated: e.engine.Simulated, Preflight: e.probeNote,
			Conformance: e.facts.Conformance, ServerHeader: e.facts.ServerHeader, ModelInfo: e.facts.ModelInfo,
		})
		jsonl[e.name] = s.jsonlPath(e.name)
	}
	s.rep.mu.Lock()
	samples := append([]report.Sample(nil), s.rep.samples...)
	s.rep.mu.Unlock()
	rules := report.Rules{SampleSize: s.sampleRule(), Tails: tailRule(), Confidence: report.Confidence}
	return report.Build(run, rules, es, samples, jsonl)
}

// conclude writes summary.json, draws the plots (when plot is set; the
// latency chart from the summary's pooled tails), writes report.html and
// prints the summary table to w, with a '#' line for each file written.
// Failures to draw are reported to w; a summary or report that cannot be
// written is returned.
func (s *Suite) conclude(w io.Writer, plot bool) error {
	s.stopProgress()
	if !s.Measured() {
		return nil
	}
	sum, err := s.summary()
	if err != nil {
		return err
	}
	sumPath := filepath.Join(s.dir.Path(), SummaryJSON)
	if err := report.Write(sumPath, sum); err != nil {
		return fmt.Errorf("writing %s: %w", sumPath, err)
	}
	fmt.Fprintf(w, "# wrote %s\n", sumPath)
	var images []report.Image
	// The plots draw closed-loop levels and open-loop rates; a run of trace
	// replays alone gets a "# plots:" line saying there is nothing to draw.
	if plot && s.done.Load() > 0 {
		var args []string
		for _, f := range s.txtFiles {
			args = append(args, plots.Labeled(f))
		}
		written, perr := plots.Generate(append(args, sumPath), s.dir.Path())
		for _, f := range written {
			fmt.Fprintf(w, "# wrote %s\n", f)
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			images = append(images, report.Image{Name: filepath.Base(f), Title: plots.Titles[filepath.Base(f)], PNG: b})
		}
		if perr != nil {
			fmt.Fprintf(w, "# plots: %v\n", oneLine(perr.Error()))
		}
	}
	htmlPath := filepath.Join(s.dir.Path(), ReportHTML)
	if err := report.WriteHTML(htmlPath, sum, images); err != nil {
		return fmt.Errorf("writing %s: %w", htmlPath, err)
	}
	fmt.Fprintf(w, "# wrote %s\n", htmlPath)
	return sum.WriteTable(w)
}

// urlInArg finds URLs inside a command-line argument (-engines=a=URL,b=URL).
var urlInArg = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^,\s]*`)

// redactArgs is the command line with every URL's credentials redacted.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = urlInArg.ReplaceAllStringFunc(a, engines.RedactURL)
	}
	return out
}

// suiteVersion is the module version or VCS revision in the binary's build
// information, or "unknown" (go test does not stamp VCS information).
func suiteVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev, dirty string
	for _, st := range bi.Settings {
		switch st.Key {
		case "vcs.revision":
			rev = st.Value
		case "vcs.modified":
			if st.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	switch {
	case rev != "":
		return rev + dirty
	case bi.Main.Version != "" && bi.Main.Version != "(devel)":
		return bi.Main.Version
	}
	// go test builds without VCS stamping: ask git, as the build would.
	if v := gitRevision(); v != "" {
		return v
	}
	return "unknown (" + bi.Main.Path + " " + bi.Main.Version + ", no VCS information)"
}

// gitRevision is HEAD's commit in the working directory ("+dirty" with
// uncommitted changes), or "" without git or a repository.
func gitRevision() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rev, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	v := strings.TrimSpace(string(rev))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		v += "+dirty"
	}
	return v + " (git)"
}
