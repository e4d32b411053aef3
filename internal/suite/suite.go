package suite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inferbench/inferbench/engines"
	"github.com/inferbench/inferbench/fake"
	"github.com/inferbench/inferbench/fake/sim"
	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/results"
	"github.com/inferbench/inferbench/internal/slo"
	"github.com/inferbench/inferbench/internal/trace"
	"github.com/inferbench/inferbench/internal/workload"
)

// Options are the suite's flags, gathered so that the root package's
// TestMain and this package's tests build a suite the same way. Every field
// is one command-line flag (internal/cli registers them); the zero value of an
// optional field is its documented default.
type Options struct {
	// Engines is -engines: fake, fake:PRESET, vllm, friendli, …, NAME=URL.
	Engines string
	// Concurrency is -concurrency: the comma-separated closed-loop levels,
	// or AutoConcurrency ("auto"): a probe finds each engine's saturation
	// point and the levels are placed like MLPerf Endpoints' (auto.go),
	// with MaxConcurrency as the cap.
	Concurrency string
	// Model is -model: the model for every engine without one of its own.
	Model string
	// InputTokens is -input-tokens (synthetic prompts); OutputTokens is
	// -output-tokens, the fixed output length.
	InputTokens, OutputTokens int
	// Dataset is -dataset: prompts from a ShareGPT JSON or JSONL file.
	Dataset string
	// Seed is -seed: the same requests in the same order for every engine.
	Seed int64
	// Warmup is -warmup: unmeasured requests per slot before each sample.
	Warmup int
	// RequestTimeout is -request-timeout: the deadline of one request.
	RequestTimeout time.Duration
	// PreflightTimeout is -preflight-timeout: how long one engine's
	// preflight (model discovery, probes and their retries) may take.
	// 0 means RequestTimeout × (probeAttempts + 1), so a cold serverless
	// endpoint or a long fixed output that one request may take can pass.
	PreflightTimeout time.Duration
	// Out is -out: the results folder.
	Out string
	// MaxErrorRate is -max-error-rate.
	MaxErrorRate float64
	// Insecure is -insecure-skip-verify.
	Insecure bool
	// HTTP2 is -http2: speak HTTP/2 to every engine (h2 over TLS, h2c
	// over cleartext) instead of HTTP/1.1 (engines.Options.HTTP2).
	HTTP2 bool
	// Bench is the -test.bench pattern: only engines with at least one
	// selected sub-benchmark are preflighted and have their result files
	// rewritten. "" selects every engine.
	Bench string
	// Getenv reads the environment (API keys); nil means os.Getenv.
	Getenv func(string) string

	// Open loop, SLOs and capacity (issue 15; see openloop.go, slo.go and
	// capacity.go).

	// Rate is -rate: comma-separated open-loop arrival rates, requests/s.
	// With Rate set, Concurrency may be "" (no closed-loop levels).
	Rate string
	// Arrival is -arrival: poisson ("" too), gamma:CV or constant.
	Arrival string
	// MaxConcurrency is -max-concurrency: the cap on an open loop's
	// requests in flight; 0 means DefaultMaxConcurrency.
	MaxConcurrency int
	// SLO is -slo (internal/slo's syntax); "" means none.
	SLO string
	// CapacityRepeats is -capacity-repeats: the samples BenchmarkCapacity
	// runs at each rate near the boundary, all of which must meet the
	// SLO; 0 means DefaultCapacityRepeats.
	CapacityRepeats int

	// Benchtime is -test.benchtime when given on the command line, "" when
	// not: then every sample measures at least C requests (MinMeasured).
	Benchtime string
	// Progress receives the progress line (the terminal, never stdout);
	// nil means none.
	Progress io.Writer
	// Resume is -resume: continue the run whose files are in Out, keeping
	// its samples whose records are complete (resume.go).
	Resume bool
	// From is -from: recompute the results from the records in this folder
	// (Recompute) instead of measuring. New ignores it.
	From string
	// Shard is -shard=I/N: run shard I's share of every level's streams
	// (see shard.go). "" is a run of one process.
	Shard string
	// StartAt is -start-at, an RFC 3339 instant: the first sample starts
	// then; StartEvery is -start-every: sample k starts at StartAt + k ×
	// StartEvery, so shards on other hosts start theirs together.
	StartAt    string
	StartEvery time.Duration
	// InputDist and OutputDist are -input-tokens and -output-tokens given as a
	// distribution (internal/cli splits them from a fixed length): the prompt and
	// output length distributions (workload.Dist: fixed, uniform:LO,HI,
	// normal:MEAN,SD, lognormal:MEAN,SD, dataset). "" or "fixed" means
	// -input-tokens / -output-tokens; any other value overrides them.
	InputDist, OutputDist string
	// PrefixTokens is -prefix-tokens and Prefixes -prefixes: every
	// synthetic prompt opens with one of Prefixes shared prefixes of
	// PrefixTokens tokens (part of -input-tokens). 0 and 0: none.
	PrefixTokens, Prefixes int
	// Turns is -turns: multi-turn conversations (synthetic: turns per
	// conversation, ≥ 2; with -dataset: the most user turns replayed per
	// conversation). 0 is single-turn. ThinkTime is -think-time, the pause
	// between a turn's answer and the next turn.
	Turns     int
	ThinkTime time.Duration
	// Endpoint is -endpoint: "chat" ("" too) or "completions"
	// (/v1/completions with a prompt and no chat template).
	Endpoint string
	// wrapWriter is results.Layout.Wrap for the run's files (tests inject
	// write failures with it); nil writes to the files.
	wrapWriter func(path string, w io.Writer) io.Writer

	// Trace is -trace: a JSONL or CSV trace (internal/trace) replayed open
	// loop once per engine (sub-benchmark trace=SPEEDx); TraceSpeed is
	// -trace-speed (0: 1, as recorded); TraceBlockTokens -trace-block-tokens,
	// the tokens per hash id (0: DefaultTraceBlockTokens).
	Trace            string
	TraceSpeed       float64
	TraceBlockTokens int
}

// demoPresets are what -engines=fake starts: the prototype's two demo
// engines, simulated.
var demoPresets = []string{"vllm-like", "friendli-like"}

// simulatedModel is the model name the simulated engines serve.
const simulatedModel = "fake-model"

// Suite is one run: its engines (simulated ones started in-process), the
// workload, the result files and the samples measured so far. Build it with
// New; measure with Start, Sample.Dispatch and Sample.Finish; end it with
// Conclude and Close.
type Suite struct {
	ctx      context.Context
	opt      Options
	levels   []int
	rates    []float64 // -rate
	arrival  arrival   // -arrival
	slo      slo.SLO   // -slo; zero: none
	engines  []*Engine // the engines the -bench pattern selects, in -engines order
	multi    bool      // -engines lists more than one engine: names carry engine=
	work     *workload.Workload
	epoch    time.Time
	header   results.Header
	dir      *results.Dir
	txtFiles []string
	samples  sampleCounter
	done     atomic.Int64 // samples finished
	self     selfCost     // the client's own cost (selfcost.go)
	closers  []func()
	trace    *trace.Trace // -trace; nil without
	rep      reportState  // summary.json, report.html, progress (report.go)
	shard    shardSpec    // -shard; 0 of 1 when not sharded
	sched    *schedule    // -start-at, -start-every
	auto     *autoPlan    // -concurrency=auto; nil with a list of levels
	resume   *resumeState // -resume; nil without

	writeMu  sync.Mutex
	writeErr error // the first write to the result files that failed: the run stops there
}

// failWrites records the first failed write to the result files; from
// then on no sample starts (writeFailure).
func (s *Suite) failWrites(err error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.writeErr == nil {
		s.writeErr = err
	}
}

// writeFailure is why the run stopped writing results, or nil: a sample
// that cannot be saved is not measured.
func (s *Suite) writeFailure() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.writeErr == nil {
		return nil
	}
	return fmt.Errorf("the result files cannot be written (%w): the run stops; what was written before is kept in %s", s.writeErr, s.dir.Path())
}

// Engine is one engine of the run with its client.
type Engine struct {
	name      string
	engine    engines.Engine
	client    *engines.Client
	sim       *sim.Config // the simulated engine's model, for the prediction; nil for real engines
	probeE2E  time.Duration
	lastE2E   atomic.Int64 // mean E2E of the latest finished sample, ns
	mu        sync.Mutex   // serialises writes of this engine's result lines
	probeNote string
	// conformance is what the preflight saw of the engine's protocol
	// (engines.Conformance.Lines), for the header.
	conformance []string
	// nextSeq is the workload seq of this engine's next request. It runs on
	// across phases, levels, samples and repetitions, so no request of the
	// run repeats an earlier one's prompt (no prefix cache can serve it),
	// while every engine walks the same sequence of prompts.
	nextSeq int
	started int // samples started
	// facts are hooks for summary.json and report.html (report.go).
	facts EngineFacts
	// autoNote is the -concurrency=auto probe's line for the header; ""
	// without it.
	autoNote string
}

// Name is the engine's name in result files and benchmark names.
func (e *Engine) Name() string { return e.name }

// Simulated reports whether the engine is inferbench's simulated engine.
func (e *Engine) Simulated() bool { return e.engine.Simulated }

// Levels are the concurrency levels of -concurrency, in order.
func (s *Suite) Levels() []int { return s.levels }

// Engines are the engines the run measures (those -bench selects), in
// -engines order.
func (s *Suite) Engines() []*Engine { return s.engines }

// Header is the provenance and configuration block for the benchmark
// output: what the top of every result file has, and every measured
// engine's description (URL, preflight, conformance) as '#' lines.
func (s *Suite) Header() []byte {
	h := s.header
	h.Comments = append([]string(nil), h.Comments...)
	for _, e := range s.engines {
		h.Comments = append(h.Comments, e.describe()...)
	}
	return h.Bytes()
}

// describe is the engine's block of '#' lines in the header: where it is,
// what the preflight saw, and the conformance facts that say how to read
// its numbers (role chunk, tokens per chunk, usage, fixed length, cached
// tokens, connection reuse).
func (e *Engine) describe() []string {
	lines := []string{
		fmt.Sprintf("inferbench engine=%s profile=%s url=%s model=%s", e.name, e.engine.Profile, engines.RedactURL(e.engine.URL), e.engine.Model),
		e.probeNote,
	}
	lines = append(lines, e.conformance...)
	if e.autoNote != "" {
		lines = append(lines, e.autoNote)
	}
	if e.engine.Simulated {
		lines = append(lines, "engine "+e.name+" is SIMULATED (inferbench's fake engine): its numbers are not a real engine's")
	}
	return lines
}

// Dir is the results folder.
func (s *Suite) Dir() string { return s.dir.Path() }

// SubName is the sub-benchmark name of engine e at level c under
// BenchmarkServe: concurrency=N, with engine=NAME/ first when -engines lists
// more than one engine (whether or not -bench selects them all, so a name
// never changes with the filter).
func (s *Suite) SubName(e *Engine, c int) string {
	return subName(s.multi, e.name, c) + s.shard.nameSuffix()
}

func subName(multi bool, engine string, c int) string {
	return levelName(multi, engine, fmt.Sprintf("concurrency=%d", c))
}

// levelName is a sub-benchmark name with the level element given.
func levelName(multi bool, engine, level string) string {
	if multi {
		return "engine=" + engine + "/" + level
	}
	return level
}

// Measured reports whether any sample finished.
func (s *Suite) Measured() bool { return s.done.Load() > 0 }

// stagger is the span over which a sample's first requests start: one
// request's duration, so arrivals are spread like a steady state's rather
// than bunched into convoys that finish, and return, together. It is the
// latest sample's mean E2E for this engine (the sweep climbs, so that is
// the closest estimate of the next level's), or the probe's at first.
func (e *Engine) stagger() time.Duration {
	return max(e.probeE2E, time.Duration(e.lastE2E.Load()))
}

func (s *Suite) jsonlPath(engine string) string {
	return filepath.Join(s.dir.Path(), engine+s.shard.layout().Suffix+".jsonl")
}

// Close stops the simulated engines and the clients.
func (s *Suite) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// New parses the options, starts simulated engines, builds the workload,
// runs the preflight of every engine that opt.Bench selects and opens those
// engines' result files (other engines' files are left as they are). Every
// error says what was wrong and what to do.
func New(ctx context.Context, opt Options) (_ *Suite, err error) {
	if opt.Getenv == nil {
		opt.Getenv = os.Getenv
	}
	s := &Suite{ctx: ctx, opt: opt, epoch: time.Now()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.parseOpenLoop(); err != nil {
		return nil, err
	}
	if opt.Concurrency != "" || (len(s.rates) == 0 && s.trace == nil) {
		if err := s.parseConcurrency(); err != nil {
			return nil, err
		}
	}
	if s.shard, err = parseShard(opt.Shard); err != nil {
		return nil, err
	}
	if s.sched, err = parseSchedule(opt.StartAt, opt.StartEvery); err != nil {
		return nil, err
	}
	fixedOut := opt.OutputDist == "" || opt.OutputDist == "fixed"
	fixedIn := opt.InputDist == "" || opt.InputDist == "fixed"
	if opt.OutputTokens < 1 && fixedOut {
		return nil, fmt.Errorf("-output-tokens=%d: must be at least 1", opt.OutputTokens)
	}
	if opt.InputTokens < 1 && opt.Dataset == "" && fixedIn {
		return nil, fmt.Errorf("-input-tokens=%d: must be at least 1", opt.InputTokens)
	}
	if opt.Warmup < 0 {
		return nil, fmt.Errorf("-warmup=%d: must be 0 or more", opt.Warmup)
	}
	if opt.MaxErrorRate < 0 || opt.MaxErrorRate > 1 {
		return nil, fmt.Errorf("-max-error-rate=%g: must be between 0 and 1", opt.MaxErrorRate)
	}
	if opt.RequestTimeout <= 0 {
		return nil, fmt.Errorf("-request-timeout=%v: must be positive (example: -request-timeout=2m)", opt.RequestTimeout)
	}
	if opt.PreflightTimeout < 0 {
		return nil, fmt.Errorf("-preflight-timeout=%v: must be positive, or 0 for -request-timeout × %d", opt.PreflightTimeout, probeAttempts+1)
	}
	maxC := s.maxInFlight()

	list, err := s.parseEngines(opt.Engines)
	if err != nil {
		return nil, err
	}
	s.multi = len(list) > 1
	if list, err = s.selectEngines(list); err != nil {
		return nil, err
	}
	if err := s.checkShards(list); err != nil {
		return nil, err
	}
	if err := ensureFiles(filesNeeded(list, s.shard.share(maxC)), fileLimit, raiseFileLimit); err != nil {
		return nil, err
	}
	if opt.Resume {
		if why := s.resumeUnsupported(); why != "" {
			return nil, errors.New(why)
		}
		names := make([]string, len(list))
		for i, e := range list {
			names[i] = e.name
		}
		if s.resume, err = loadResume(opt.Out, names); err != nil {
			return nil, err
		}
		// The resumed run's records count from the same epoch as the
		// kept ones, so that -from reads the files as one run's.
		s.epoch = resumeEpoch(s.resume.epoch)
	}
	inputTokens, outputTokens := opt.InputTokens, opt.OutputTokens
	if opt.Dataset != "" || !fixedIn {
		inputTokens = 0 // the dataset's prompts are sent as they are; a distribution overrides
	}
	if !fixedOut {
		outputTokens = 0 // a distribution of output lengths: no fixed one
	}
	if s.work, err = workload.New(workload.Spec{
		InputTokens:  inputTokens,
		InputDist:    opt.InputDist,
		OutputTokens: outputTokens,
		OutputDist:   opt.OutputDist,
		Dataset:      opt.Dataset,
		Seed:         opt.Seed,
		PrefixTokens: opt.PrefixTokens,
		Prefixes:     opt.Prefixes,
		Turns:        opt.Turns,
		ThinkTime:    opt.ThinkTime,
	}); err != nil {
		return nil, flagError(err)
	}
	if s.work.MultiTurn() && (len(s.rates) > 0 || s.trace != nil) {
		return nil, errors.New("-turns: conversations run in the closed loop (-concurrency) only; drop -rate and -trace, or -turns")
	}
	if s.work.MultiTurn() && s.shard.n > 1 {
		return nil, errors.New("-turns: conversations cannot be split over -shard processes yet; run them from one process")
	}
	switch opt.Endpoint {
	case "", string(engines.Chat), string(engines.Completions):
	default:
		return nil, fmt.Errorf("-endpoint=%s: want chat or completions", opt.Endpoint)
	}

	for _, e := range list {
		if e.engine.Model == "" {
			e.engine.Model = opt.Model
		}
		e.engine.InsecureSkipVerify = e.engine.InsecureSkipVerify || opt.Insecure
		c, err := engines.NewClient(e.engine, engines.Options{
			Concurrency:    maxC,
			RequestTimeout: opt.RequestTimeout,
			Epoch:          s.epoch,
			Endpoint:       engines.Endpoint(opt.Endpoint),
			HTTP2:          opt.HTTP2,
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
	if s.auto != nil {
		// The probe runs before the header is written: its findings and
		// the levels are part of it.
		s.startProgress()
		s.closers = append(s.closers, s.stopProgress)
		if err := s.probe(ctx); err != nil {
			return nil, err
		}
	}
	s.header = s.makeHeader()
	names := make([]string, len(s.engines))
	perEngine := map[string][]string{}
	for i, e := range s.engines {
		names[i] = e.name
		perEngine[e.name] = e.describe()
	}
	layout := s.shard.layout()
	layout.Wrap = opt.wrapWriter
	if s.resume != nil {
		if err := s.applyResume(names, perEngine, layout); err != nil {
			return nil, err
		}
		layout.Append = true
	}
	if s.dir, err = results.CreateIn(opt.Out, names, s.header, perEngine, layout); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { s.dir.Close() })
	if s.resume == nil { // applyResume wrote the run lines
		for _, e := range s.engines {
			if err := s.dir.Run(e.name, s.runMeta(e, perEngine[e.name])); err != nil {
				return nil, fmt.Errorf("results: %w", err)
			}
		}
	}
	s.txtFiles = s.dir.TxtFiles()
	if s.rep.progress == nil {
		s.startProgress()
		s.closers = append(s.closers, s.stopProgress)
	}
	return s, nil
}

// parseEngines expands -engines. "fake" is the two demo engines,
// "fake:PRESET" one simulated preset; anything else goes to engines.Parse.
func (s *Suite) parseEngines(list string) ([]*Engine, error) {
	var out []*Engine
	seen := map[string]bool{}
	add := func(e *Engine) error {
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
			e, err := engines.Parse(item, s.opt.Getenv)
			if err != nil {
				return nil, fmt.Errorf("-engines: %w", err)
			}
			if err := add(&Engine{name: e.Name, engine: e}); err != nil {
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
func (s *Suite) startSimulated(preset string) (*Engine, error) {
	cfg, err := sim.Preset(preset)
	if err != nil {
		return nil, fmt.Errorf("-engines=fake:%s: %w (presets: %s)", preset, err, strings.Join(sim.PresetNames(), ", "))
	}
	r, err := fake.Start(cfg, fake.Options{Model: simulatedModel, EngineName: preset + " (simulated)", Seed: s.opt.Seed})
	if err != nil {
		return nil, fmt.Errorf("starting the simulated engine %s: %w", preset, err)
	}
	s.closers = append(s.closers, func() { r.Close() })
	name := "sim-" + preset
	return &Engine{
		name: name,
		engine: engines.Engine{
			Name: name, Profile: engines.VLLM, URL: r.URL(), Model: simulatedModel, Simulated: true,
		},
		sim: &cfg,
	}, nil
}

// preflight probes every selected engine (reachability, auth, streaming,
// usage, the fixed output length), discovering models where none was given,
// and calibrates the synthetic prompt length against the first engine's
// reported prompt tokens. The engines are probed one at a time, each
// within -preflight-timeout.
func (s *Suite) preflight(ctx context.Context) error {
	limit := s.preflightLimit()
	for i, e := range s.engines {
		pctx, cancel := context.WithTimeout(ctx, limit)
		err := s.preflightOne(pctx, e, i == 0)
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w\n(the preflight of engine %s took longer than %v: raise -preflight-timeout, or -request-timeout, which sets its default)", err, e.name, limit)
			}
			return err // names the engine, the URL and what to do
		}
	}
	return nil
}

// preflightLimit is -preflight-timeout, or its default: every probe
// attempt may take a whole -request-timeout, plus one for the
// calibration's second probe.
func (s *Suite) preflightLimit() time.Duration {
	if s.opt.PreflightTimeout > 0 {
		return s.opt.PreflightTimeout
	}
	return s.opt.RequestTimeout * (probeAttempts + 1)
}

func (s *Suite) preflightOne(ctx context.Context, e *Engine, calibrate bool) error {
	if e.engine.Model == "" {
		m, err := e.client.DiscoverModel(ctx)
		if err != nil {
			return err // names the engine and the URL
		}
		e.engine.Model = m
		e.client.SetModel(m)
	}
	probe, retried, err := probeWithRetry(ctx, e.client, s.work.Probe())
	if err != nil {
		return err
	}
	if calibrate && s.opt.Dataset == "" {
		// Two probes: the first fits the tokens per filler word, the
		// second separates the chat template's fixed overhead (one
		// probe lands a few percent off, two within ±2 tokens).
		err := s.work.Calibrate(probe.Record.PromptTokens)
		if err == nil {
			p2, more, err2 := probeWithRetry(ctx, e.client, s.work.Probe())
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
	for _, l := range probe.Conformance.Lines() {
		e.conformance = append(e.conformance, "conformance "+e.name+": "+l)
	}
	e.facts.Conformance = probe.Conformance.Lines()
	e.facts.ServerHeader = probe.Conformance.Server
	if probe.Conformance.KeepAlive == engines.ClosedByServer {
		e.client.NewConnectionPerRequest()
		e.conformance = append(e.conformance, "inferbench "+e.name+": the server closes every connection after a stream, so every request gets a new connection (its set-up is in each record: new_conn, dial_ns, got_conn_ns)")
	}
	e.probeNote = strings.TrimSpace(fmt.Sprintf("preflight: prompt_tokens=%d output_tokens=%d (%s) ttft=%v e2e=%v continuous-usage=%t %s",
		probe.Record.PromptTokens, probe.Record.OutputTokens, probe.Record.TokenSource,
		ttftOf(&probe.Record), e.probeE2E, probe.ContinuousUsage, strings.Join(append(retried, probe.Warnings...), "; ")))
	return nil
}

// probeAttempts is how many probes an engine gets when the failures look
// transient (record.Transient: rate limiting, a 5xx, a cut or stalled
// stream); a refused connection, a bad token, an unknown model or an error
// event inside the stream fails at once.
const probeAttempts = 3

// probeWithRetry runs the preflight, retrying transient failures. It
// returns the failed attempts' errors as notes for the results header.
func probeWithRetry(ctx context.Context, c *engines.Client, req engines.Request) (engines.Probe, []string, error) {
	var notes []string
	for attempt := 1; ; attempt++ {
		p, err := c.Preflight(ctx, req)
		if err == nil || attempt == probeAttempts || ctx.Err() != nil || !p.Record.Transient() {
			return p, notes, err
		}
		notes = append(notes, fmt.Sprintf("probe %d failed (%s), retried", attempt, p.Record.Error))
	}
}

func ttftOf(r *record.Record) time.Duration {
	d, _ := r.TTFT()
	return d
}

// makeHeader builds the lines at the top of every results file and of the
// benchmark output: provenance as comments, and configuration that is the
// same for every engine as benchfmt keys.
func (s *Suite) makeHeader() results.Header {
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
	if s.opt.Insecure {
		h.Comments = append(h.Comments, "WARNING: TLS certificates were not verified (-insecure-skip-verify)")
	}
	if s.opt.HTTP2 {
		h.Comments = append(h.Comments, "protocol: HTTP/2 (-http2; h2 over TLS, h2c over cleartext)")
	}
	h.Comments = append(h.Comments,
		"tok/s: output tokens arriving inside the window where the target concurrency is held, / that window (monotonic client clock).",
		"Latencies (ttft, tpot, itl, e2e) are from the client's send, over measured requests only; docs/metrics.md has every definition.",
		s.sampleRule(), tailRule())
	h.Comments = append(h.Comments, s.autoHeader()...)
	switch {
	case s.opt.Model != "":
		h.Config = append(h.Config, results.KV{Key: "model", Value: s.opt.Model})
	case len(models) == 1:
		for m := range models {
			h.Config = append(h.Config, results.KV{Key: "model", Value: m})
		}
	}
	if s.opt.Dataset == "" {
		// The fixed length, or the distribution (workload.Dist's form).
		h.Config = append(h.Config, results.KV{Key: "input-tokens", Value: s.work.Input().String()})
	}
	h.Config = append(h.Config,
		results.KV{Key: "output-tokens", Value: s.work.Output().String()},
		results.KV{Key: "workload", Value: s.work.Describe()},
	)
	if s.opt.Endpoint == string(engines.Completions) {
		h.Config = append(h.Config, results.KV{Key: "endpoint", Value: "completions"})
	}
	if simulated {
		h.Config = append(h.Config, results.KV{Key: "simulated", Value: "true"})
	}
	h.Config = append(h.Config, s.openLoopConfig()...)
	h.Config = append(h.Config, s.autoConfig()...)
	return h
}

// allSimulated reports whether every engine of the run is simulated; only
// then are the model-ratio metrics reported (every engine must report the
// same units, or the files cannot be compared).
func (s *Suite) allSimulated() bool {
	for _, e := range s.engines {
		if e.sim == nil {
			return false
		}
	}
	return true
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// flagError names the flags behind a workload error: the workload speaks
// of its Spec, the user of flags.
func flagError(err error) error {
	msg := err.Error()
	for _, r := range []struct{ spec, flag string }{
		{"input distribution", "-input-tokens"}, {"output distribution", "-output-tokens"},
		{"prefix tokens", "-prefix-tokens"}, {"turns", "-turns"}, {"think time", "-think-time"},
	} {
		if strings.Contains(msg, r.spec) {
			return fmt.Errorf("%s: %w", r.flag, err)
		}
	}
	return err
}

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

// Conclude closes the result files and, if any sample was measured, writes
// summary.json, draws the plots from the files (if plot is set) and
// report.html, and prints the summary table; it writes what it wrote to w
// as '#' lines (benchfmt ignores them). It returns an error if a file could
// not be closed or written; a plot that cannot be drawn is reported to w,
// not returned.
func (s *Suite) Conclude(w io.Writer, plot bool) error {
	err := errors.Join(s.dir.Close(), s.writeFailure())
	for _, f := range s.txtFiles {
		fmt.Fprintf(w, "# wrote %s and its .jsonl\n", f)
	}
	if s.Measured() {
		fmt.Fprintln(w, s.clientBoundSummary())
		if s.auto != nil && s.auto.checked.Load() > 0 {
			fmt.Fprintln(w, s.steadySummary())
		}
	}
	return errors.Join(err, s.conclude(w, plot))
}
