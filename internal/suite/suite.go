package inferbench

// The suite's set-up and one sample's measurement, kept apart from the
// testing.B plumbing in bench_test.go so tests can drive them too.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inferbench/inferbench/engines"
	"github.com/inferbench/inferbench/fake"
	"github.com/inferbench/inferbench/fake/sim"
	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/metrics"
	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/results"
	"github.com/inferbench/inferbench/internal/workload"
)

// options are the suite's flags, gathered so tests can build a suite
// without the command line.
type options struct {
	engines        string
	concurrency    string
	model          string
	inputTokens    int
	outputTokens   int
	dataset        string
	seed           int64
	warmup         int
	requestTimeout time.Duration
	out            string
	maxErrorRate   float64
	insecure       bool
	getenv         func(string) string
	preflightLimit time.Duration // 0: 15 s per engine
}

// demoPresets are what -engines=fake starts: the prototype's two demo
// engines, simulated.
var demoPresets = []string{"vllm-like", "friendli-like"}

// simulatedModel is the model name the simulated engines serve.
const simulatedModel = "fake-model"

type suite struct {
	ctx      context.Context
	opt      options
	levels   []int
	engines  []*engineRun
	work     *workload.Workload
	epoch    time.Time
	header   results.Header
	dir      *results.Dir
	txtFiles []string
	samples  sampleCounter
	done     atomic.Int64 // samples finished
	closers  []func()
}

// engineRun is one engine of the run with its client.
type engineRun struct {
	name      string
	engine    engines.Engine
	client    *engines.Client
	sim       *sim.Config // the simulated engine's model, for the prediction; nil for real engines
	probeE2E  time.Duration
	lastE2E   atomic.Int64 // mean E2E of the latest finished sample, ns
	mu        sync.Mutex   // serialises writes of this engine's result lines
	probeNote string
}

func (s *suite) measured() bool { return s.done.Load() > 0 }

// stagger is the span over which a sample's first requests start: one
// request's duration, so arrivals are spread like a steady state's rather
// than bunched into convoys that finish, and return, together. It is the
// latest sample's mean E2E for this engine (the sweep climbs, so that is
// the closest estimate of the next level's), or the probe's at first.
func (e *engineRun) stagger() time.Duration {
	return max(e.probeE2E, time.Duration(e.lastE2E.Load()))
}

func (s *suite) jsonlPath(engine string) string {
	return filepath.Join(s.dir.Path(), engine+".jsonl")
}

// Close stops the simulated engines and the clients.
func (s *suite) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// newSuite parses the options, starts simulated engines, builds the
// workload, runs every engine's preflight and opens the result files.
// Every error says what was wrong and what to do.
func newSuite(ctx context.Context, opt options) (_ *suite, err error) {
	if opt.getenv == nil {
		opt.getenv = os.Getenv
	}
	s := &suite{ctx: ctx, opt: opt, epoch: time.Now()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.levels, err = parseLevels(opt.concurrency); err != nil {
		return nil, err
	}
	if opt.outputTokens < 1 {
		return nil, fmt.Errorf("-output-tokens=%d: must be at least 1", opt.outputTokens)
	}
	if opt.inputTokens < 1 && opt.dataset == "" {
		return nil, fmt.Errorf("-input-tokens=%d: must be at least 1", opt.inputTokens)
	}
	if opt.warmup < 0 {
		return nil, fmt.Errorf("-warmup=%d: must be 0 or more", opt.warmup)
	}
	if opt.maxErrorRate < 0 || opt.maxErrorRate > 1 {
		return nil, fmt.Errorf("-max-error-rate=%g: must be between 0 and 1", opt.maxErrorRate)
	}
	if opt.requestTimeout <= 0 {
		return nil, fmt.Errorf("-request-timeout=%v: must be positive (example: -request-timeout=2m)", opt.requestTimeout)
	}
	maxC := slices.Max(s.levels)

	list, err := s.parseEngines(opt.engines)
	if err != nil {
		return nil, err
	}
	inputTokens := opt.inputTokens
	if opt.dataset != "" {
		inputTokens = 0 // the dataset's prompts are sent as they are
	}
	if s.work, err = workload.New(workload.Spec{
		InputTokens:  inputTokens,
		OutputTokens: opt.outputTokens,
		Dataset:      opt.dataset,
		Seed:         opt.seed,
	}); err != nil {
		return nil, err
	}

	for _, e := range list {
		if e.engine.Model == "" {
			e.engine.Model = opt.model
		}
		e.engine.InsecureSkipVerify = e.engine.InsecureSkipVerify || opt.insecure
		c, err := engines.NewClient(e.engine, engines.Options{
			Concurrency:    maxC,
			RequestTimeout: opt.requestTimeout,
			Epoch:          s.epoch,
		})
		if err != nil {
			return nil, fmt.Errorf("engine %s: %w", e.name, err)
		}
		e.client = c
		s.closers = append(s.closers, c.Close)
		s.engines = append(s.engines, e)
	}
	if err := s.preflight(ctx); err != nil {
		return nil, err
	}
	s.header = s.makeHeader()
	names := make([]string, len(s.engines))
	perEngine := map[string][]string{}
	for i, e := range s.engines {
		names[i] = e.name
		perEngine[e.name] = []string{
			fmt.Sprintf("inferbench engine=%s profile=%s url=%s model=%s", e.name, e.engine.Profile, engines.RedactURL(e.engine.URL), e.engine.Model),
			e.probeNote,
		}
		if e.engine.Simulated {
			perEngine[e.name] = append(perEngine[e.name], "engine "+e.name+" is SIMULATED (inferbench's fake engine): its numbers are not a real engine's")
		}
	}
	if s.dir, err = results.Create(opt.out, names, s.header, perEngine); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { s.dir.Close() })
	s.txtFiles = s.dir.TxtFiles()
	return s, nil
}

// parseEngines expands -engines. "fake" is the two demo engines,
// "fake:PRESET" one simulated preset; anything else goes to engines.Parse.
func (s *suite) parseEngines(list string) ([]*engineRun, error) {
	var out []*engineRun
	seen := map[string]bool{}
	add := func(e *engineRun) error {
		if seen[e.name] {
			return fmt.Errorf("-engines: engine %q is listed twice; give each a distinct NAME (NAME=URL)", e.name)
		}
		seen[e.name] = true
		out = append(out, e)
		return nil
	}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
			continue
		case item == "fake" || strings.HasPrefix(item, "fake:"):
			presets := demoPresets
			if p, ok := strings.CutPrefix(item, "fake:"); ok {
				presets = []string{p}
			}
			for _, p := range presets {
				e, err := s.startSimulated(p)
				if err != nil {
					return nil, err
				}
				if err := add(e); err != nil {
					return nil, err
				}
			}
		default:
			e, err := engines.Parse(item, s.opt.getenv)
			if err != nil {
				return nil, fmt.Errorf("-engines: %w", err)
			}
			if err := add(&engineRun{name: e.Name, engine: e}); err != nil {
				return nil, err
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("-engines: no engine given (examples: -engines=fake, -engines=vllm,friendli, -engines=mine=http://127.0.0.1:8000/v1/chat/completions)")
	}
	return out, nil
}

// startSimulated starts one simulated engine in-process on loopback. Its
// name says it is simulated, in every file and plot.
func (s *suite) startSimulated(preset string) (*engineRun, error) {
	cfg, err := sim.Preset(preset)
	if err != nil {
		return nil, fmt.Errorf("-engines=fake:%s: %w (presets: %s)", preset, err, strings.Join(sim.PresetNames(), ", "))
	}
	r, err := fake.Start(cfg, fake.Options{Model: simulatedModel, EngineName: preset + " (simulated)", Seed: s.opt.seed})
	if err != nil {
		return nil, fmt.Errorf("starting the simulated engine %s: %w", preset, err)
	}
	s.closers = append(s.closers, func() { r.Close() })
	name := "sim-" + preset
	return &engineRun{
		name: name,
		engine: engines.Engine{
			Name: name, Profile: engines.VLLM, URL: r.URL(), Model: simulatedModel, Simulated: true,
		},
		sim: &cfg,
	}, nil
}

// preflight probes every engine once (reachability, auth, streaming, usage,
// the fixed output length), discovering models where none was given, and
// calibrates the synthetic prompt length against the first engine's
// reported prompt tokens. The engines are probed one at a time, each
// within its own limit.
func (s *suite) preflight(ctx context.Context) error {
	limit := s.opt.preflightLimit
	if limit == 0 {
		limit = 15 * time.Second
	}
	for i, e := range s.engines {
		pctx, cancel := context.WithTimeout(ctx, limit)
		if e.engine.Model == "" {
			m, err := e.client.DiscoverModel(pctx)
			if err != nil {
				cancel()
				return err // names the engine and the URL
			}
			e.engine.Model = m
			e.client.SetModel(m)
		}
		probe, retried, err := probeWithRetry(pctx, e.client, s.work.Probe())
		cancel()
		if err != nil {
			return err // names the engine, the URL and what to do
		}
		if i == 0 && s.opt.dataset == "" {
			// Two probes: the first fits the tokens per filler word, the
			// second separates the chat template's fixed overhead (one
			// probe lands a few percent off, two within ±2 tokens).
			err := s.work.Calibrate(probe.Record.PromptTokens)
			if err == nil {
				pctx, cancel := context.WithTimeout(ctx, limit)
				p2, more, err2 := probeWithRetry(pctx, e.client, s.work.Probe())
				cancel()
				if err2 != nil {
					return err2
				}
				probe, retried = p2, append(retried, more...)
				err = s.work.Calibrate(probe.Record.PromptTokens)
			}
			if err != nil {
				retried = append(retried, fmt.Sprintf("prompt length NOT calibrated (%v): prompts are sized by a words-per-token guess", err))
			}
		}
		if d, ok := probe.Record.E2E(); ok {
			e.probeE2E = d
		}
		if probe.Simulated && !e.engine.Simulated {
			// A simulated engine reached by URL (fake-engine): say so
			// everywhere its numbers go.
			e.engine.Simulated = true
			probe.Warnings = append(probe.Warnings, "the server is inferbench's SIMULATED engine (X-Inferbench-Simulated)")
		}
		e.probeNote = fmt.Sprintf("preflight: prompt_tokens=%d output_tokens=%d (%s) ttft=%v e2e=%v continuous-usage=%t %s",
			probe.Record.PromptTokens, probe.Record.OutputTokens, probe.Record.TokenSource,
			ttftOf(&probe.Record), e.probeE2E, probe.ContinuousUsage, strings.Join(append(retried, probe.Warnings...), "; "))
	}
	return nil
}

// probeAttempts is how many probes an engine gets when the failures look
// transient (rate limiting, a 5xx, a cut or stalled stream); a refused
// connection, a bad token or an unknown model fails at once.
const probeAttempts = 3

// probeWithRetry runs the preflight, retrying transient failures. It
// returns the failed attempts' errors as notes for the results header.
func probeWithRetry(ctx context.Context, c *engines.Client, req engines.Request) (engines.Probe, []string, error) {
	var notes []string
	for attempt := 1; ; attempt++ {
		p, err := c.Preflight(ctx, req)
		if err == nil || attempt == probeAttempts || ctx.Err() != nil || !transient(&p.Record) {
			return p, notes, err
		}
		notes = append(notes, fmt.Sprintf("probe %d failed (%s), retried", attempt, p.Record.Error))
	}
}

func transient(r *record.Record) bool {
	switch r.Error {
	case record.StreamCut, record.Malformed, record.Timeout:
		return true
	case record.HTTPStatus:
		return r.Status == 429 || r.Status >= 500
	}
	return false
}

func ttftOf(r *record.Record) time.Duration {
	d, _ := r.TTFT()
	return d
}

// makeHeader builds the lines at the top of every results file and of the
// benchmark output: provenance as comments, and configuration that is the
// same for every engine as benchfmt keys.
func (s *suite) makeHeader() results.Header {
	var h results.Header
	simulated := true
	models := map[string]bool{}
	for _, e := range s.engines {
		simulated = simulated && e.engine.Simulated
		models[e.engine.Model] = true
	}
	h.Comments = append(h.Comments, fmt.Sprintf("inferbench run %s, go %s, GOMAXPROCS=%d",
		s.epoch.UTC().Format(time.RFC3339), runtime.Version(), runtime.GOMAXPROCS(0)))
	if simulated {
		h.Comments = append(h.Comments,
			"SIMULATED ENGINES: these numbers come from inferbench's simulated engine (fake/), not from real inference engines.",
			"The friendli-like preset is illustrative, not Friendli Engine's measured performance.")
	}
	if s.opt.insecure {
		h.Comments = append(h.Comments, "WARNING: TLS certificates were not verified (-insecure-skip-verify)")
	}
	h.Comments = append(h.Comments,
		"tok/s: output tokens arriving inside the window where the target concurrency is held, / that window (monotonic client clock).",
		"Latencies (ttft, tpot, itl, e2e) are from the client's send, over measured requests only; see README for each definition.")
	switch {
	case s.opt.model != "":
		h.Config = append(h.Config, results.KV{Key: "model", Value: s.opt.model})
	case len(models) == 1:
		for m := range models {
			h.Config = append(h.Config, results.KV{Key: "model", Value: m})
		}
	}
	if s.opt.dataset == "" {
		h.Config = append(h.Config, results.KV{Key: "input-tokens", Value: fmt.Sprint(s.opt.inputTokens)})
	}
	h.Config = append(h.Config,
		results.KV{Key: "output-tokens", Value: fmt.Sprint(s.opt.outputTokens)},
		results.KV{Key: "workload", Value: s.work.Describe()},
	)
	if simulated {
		h.Config = append(h.Config, results.KV{Key: "simulated", Value: "true"})
	}
	return h
}

// allSimulated reports whether every engine of the run is simulated; only
// then are the model-ratio metrics reported (every engine must report the
// same units, or the files cannot be compared).
func (s *suite) allSimulated() bool {
	for _, e := range s.engines {
		if e.sim == nil {
			return false
		}
	}
	return true
}

// startLevel starts one sample's closed loop: warm-up requests first, then
// measured ones as the caller dispatches them.
func (s *suite) startLevel(ctx context.Context, e *engineRun, c, sample int) (*load.Run, error) {
	do := func(ctx context.Context, rec *record.Record) {
		rec.Engine = e.name
		rec.Concurrency = c
		rec.Sample = sample
		req := s.work.Request(rec.Seq)
		rec.RequestedTokens = req.MaxTokens
		e.client.Do(ctx, req, rec)
	}
	return load.Start(ctx, load.Config{
		Concurrency: c,
		Warmup:      s.opt.warmup,
		Stagger:     e.stagger(),
		Epoch:       s.epoch,
	}, do)
}

// finishLevel ends a sample, saves its records, and computes its metrics.
func (s *suite) finishLevel(e *engineRun, c, sample int, run *load.Run) levelResult {
	res := run.Finish()
	var lv levelResult
	if err := s.dir.Records(e.name, res.Records); err != nil {
		lv.err = fmt.Errorf("saving records: %w", err)
	}
	lv.summary = metrics.Summarize(res.Records, res.Window)
	if s.ctx.Err() != nil {
		return lv
	}
	if m := lv.summary.E2E.Mean; m > 0 {
		e.lastE2E.Store(int64(m))
	}
	lv.metrics = reportedMetrics(lv.summary, lv.summary.Requests)
	if s.allSimulated() {
		pred := sim.Predict(*e.sim, c, meanPromptTokens(res.Records), s.opt.outputTokens)
		ratio := func(got, want float64) float64 {
			if want == 0 {
				return 0
			}
			return got / want
		}
		lv.metrics = append(lv.metrics,
			metric{ratio(lv.summary.OutputTokPerSec, pred.OutputTokPerSec), "tok/s-vs-model"},
			// Means against the model's means: a median would compare a
			// different statistic whenever step times are skewed (a few long
			// steps with prefills among many short decode-only ones).
			metric{ratio(float64(lv.summary.TTFT.Mean), float64(pred.TTFT)), "ttft-vs-model"},
			metric{ratio(float64(lv.summary.ITL.Mean), float64(pred.ITL)), "itl-vs-model"},
		)
		lv.notes = append(lv.notes, fmt.Sprintf("simulator's prediction: %.0f tok/s, ttft %v, itl %v", pred.OutputTokPerSec, pred.TTFT, pred.ITL))
	}
	line := resultLine(c, lv.summary.Requests, lv.metrics)
	e.mu.Lock()
	defer e.mu.Unlock()
	if lv.summary.ErrorRate > s.opt.maxErrorRate {
		_ = s.dir.Line(e.name, fmt.Sprintf("# FAILED sample %d at concurrency=%d: error rate %.3f > -max-error-rate %.3f: %s",
			sample, c, lv.summary.ErrorRate, s.opt.maxErrorRate, oneLine(metrics.ErrorSummary(lv.summary))))
	}
	if err := s.dir.Line(e.name, line); err != nil && lv.err == nil {
		lv.err = fmt.Errorf("saving result: %w", err)
	}
	s.done.Add(1)
	return lv
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// meanPromptTokens is the mean server-reported prompt length of the
// measured requests (the simulator's prediction needs it).
func meanPromptTokens(recs []record.Record) int {
	sum, n := 0, 0
	for i := range recs {
		if recs[i].Phase == record.Measured && recs[i].PromptTokens > 0 {
			sum += recs[i].PromptTokens
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return (sum + n/2) / n
}
