package cli

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/inferbench/inferbench/internal/suite"
)

// Group is a heading of the flag list.
type Group string

// The groups, in the order the list shows them.
const (
	Engines  Group = "Engines and credentials"
	Workload Group = "Workload"
	Load     Group = "Load shape"
	Stats    Group = "Statistics and sampling"
	Output   Group = "Output"
)

// Groups are the groups in the list's order.
var Groups = []Group{Engines, Workload, Load, Stats, Output}

// intro is what the list says under a group's heading.
var intro = map[Group]string{
	Engines: "Credentials come from the environment, never from a flag: OPENAI_API_KEY (vLLM and generic engines), " +
		"FRIENDLI_TOKEN and FRIENDLI_TEAM (Friendli). They never appear in any output.",
	Workload: "Every workload is deterministic for a -seed and the same for every engine.",
	Load:     "Closed loop (-concurrency) by default; -rate and -trace are open loop.",
	Stats:    "go test's own -count (samples per level, interleaved across engines) and -benchtime (Nx requests or a duration per sample) set the sample sizes.",
	Output:   "",
}

// Flag is what the list says of one flag.
type Flag struct {
	Name  string
	Group Group
	// Default is the default as a user would write it ("" when there is
	// none to write: the flag is off or empty).
	Default string
	// Unit is what the value is: tokens, a duration, a list, a path.
	Unit string
	// Usage is the one line of help.
	Usage string
}

// Removed is a flag that was dropped, and what to give instead.
type Removed struct {
	Name, Instead string
}

// removed flags fail with the replacement's name rather than "flag
// provided but not defined".
var removed = []Removed{
	{"input-dist", "-input-tokens takes the distribution itself: -input-tokens=uniform:64,256 (or normal:MEAN,SD, lognormal:MEAN,SD)"},
	{"output-dist", "-output-tokens takes the distribution itself: -output-tokens=uniform:16,256 (or normal:MEAN,SD, lognormal:MEAN,SD, dataset)"},
}

// Flags is the suite's command line, registered on a FlagSet.
type Flags struct {
	list []Flag

	engines, concurrency, model, endpoint           string
	http2, insecure                                 bool
	requestTimeout, preflightTimeout                time.Duration
	inputTokens, outputTokens, dataset              string
	seed                                            int64
	prefixTokens, prefixes, turns, traceBlockTokens int
	thinkTime                                       time.Duration
	trace                                           string
	traceSpeed                                      float64
	rate, arrival, shard, startAt                   string
	maxConcurrency, warmup, capacityRepeats         int
	startEvery                                      time.Duration
	maxErrorRate                                    float64
	slo                                             string
	out, from                                       string
	plot, progress, printFlags, resume              bool

	set map[string]bool // given on the command line (after Parse)
	fs  *flag.FlagSet
}

// Register registers the suite's flags on fs (flag.CommandLine for the
// test binary) and returns them; read them with Options after fs.Parse.
func Register(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs}
	s := func(p *string, name, def string, g Group, unit, usage string) {
		fs.StringVar(p, name, def, usage)
		f.list = append(f.list, Flag{name, g, def, unit, usage})
	}
	b := func(p *bool, name string, def bool, g Group, usage string) {
		fs.BoolVar(p, name, def, usage)
		d := ""
		if def {
			d = "true"
		}
		f.list = append(f.list, Flag{name, g, d, "bool", usage})
	}
	d := func(p *time.Duration, name string, def time.Duration, shown string, g Group, usage string) {
		fs.DurationVar(p, name, def, usage)
		f.list = append(f.list, Flag{name, g, shown, "duration", usage})
	}
	i := func(p *int, name string, def int, shown string, g Group, unit, usage string) {
		fs.IntVar(p, name, def, usage)
		f.list = append(f.list, Flag{name, g, shown, unit, usage})
	}

	s(&f.engines, "engines", "fake", Engines, "list",
		"comma-separated engines: fake (two simulated engines, in-process), fake:PRESET, vllm, friendli, friendli-serverless, friendli-dedicated, NAME=URL, NAME@MODEL=URL")
	s(&f.model, "model", "", Engines, "name",
		"the model of every engine without its own @MODEL (default: discovered from GET /v1/models when the server serves one)")
	s(&f.endpoint, "endpoint", "chat", Engines, "chat or completions",
		"chat sends /v1/chat/completions; completions sends /v1/completions with the prompt as text and no chat template")
	b(&f.http2, "http2", false, Engines,
		"speak HTTP/2 to the engines (h2 over TLS, h2c by prior knowledge over cleartext; no fallback to HTTP/1.1)")
	b(&f.insecure, "insecure-skip-verify", false, Engines, "do not verify TLS certificates (prints a warning)")
	d(&f.requestTimeout, "request-timeout", 5*time.Minute, "5m", Engines,
		"deadline of one whole request (headers and stream); a request past it is counted as a timeout error")
	d(&f.preflightTimeout, "preflight-timeout", 0, "-request-timeout × 4", Engines,
		"time limit of one engine's preflight (model discovery, probes, retries): raise it for a cold serverless endpoint")

	s(&f.inputTokens, "input-tokens", "128", Workload, "tokens or distribution",
		"prompt length: N tokens (synthetic prompts calibrated against the server's usage.prompt_tokens), or uniform:LO,HI, normal:MEAN,SD, lognormal:MEAN,SD")
	s(&f.outputTokens, "output-tokens", "128", Workload, "tokens or distribution",
		"output length, asked for exactly (min_tokens = max_tokens; ignore_eos for vLLM): N, or uniform:LO,HI, normal:MEAN,SD, lognormal:MEAN,SD, dataset")
	s(&f.dataset, "dataset", "", Workload, "path",
		"prompts from a ShareGPT JSON or a JSONL file ({\"prompt\": …} or {\"messages\": […]}) instead of synthetic ones")
	fs.Int64Var(&f.seed, "seed", 1, "seed of the workload: the same requests in the same order for every engine")
	f.list = append(f.list, Flag{"seed", Workload, "1", "integer", "seed of the workload: the same requests in the same order for every engine"})
	i(&f.prefixTokens, "prefix-tokens", 0, "", Workload, "tokens",
		"length of the shared prompt prefixes, part of -input-tokens (with -prefixes)")
	i(&f.prefixes, "prefixes", 0, "", Workload, "count",
		"number of shared prompt prefixes; every prompt opens with one, chosen by the seed (with -prefix-tokens)")
	i(&f.turns, "turns", 0, "", Workload, "count",
		"multi-turn conversations: turns per synthetic conversation (≥ 2), or with -dataset the most user turns replayed per conversation")
	d(&f.thinkTime, "think-time", 0, "", Workload, "pause between a turn's answer and the next turn of its conversation")
	s(&f.trace, "trace", "", Workload, "path",
		"replay a request trace open loop, once per engine (sub-benchmark trace=SPEEDx): JSONL as Mooncake's, CSV as BurstGPT's")
	fs.Float64Var(&f.traceSpeed, "trace-speed", 1, "-trace's arrivals are its offsets ÷ this (2 replays twice as fast)")
	f.list = append(f.list, Flag{"trace-speed", Workload, "1", "factor", "-trace's arrivals are its offsets ÷ this (2 replays twice as fast)"})
	i(&f.traceBlockTokens, "trace-block-tokens", suite.DefaultTraceBlockTokens, strconv.Itoa(suite.DefaultTraceBlockTokens), Workload, "tokens",
		"tokens per hash id of a trace's shared prompt blocks (Mooncake's are 512)")

	s(&f.concurrency, "concurrency", "1,2,4,8,16,32,64,128,256", Load, "levels",
		"closed-loop concurrency levels, comma-separated, or auto: a probe finds each engine's saturation point and 7 to 32 levels are placed like MLPerf Endpoints'")
	s(&f.rate, "rate", "", Load, "requests/s list",
		"open-loop arrival rates, comma-separated (sub-benchmarks rate=R); without -concurrency only these run")
	s(&f.arrival, "arrival", "poisson", Load, "process", "open-loop arrivals: poisson, gamma:CV (CV of the gaps; 1 is Poisson) or constant")
	i(&f.maxConcurrency, "max-concurrency", suite.DefaultMaxConcurrency, strconv.Itoa(suite.DefaultMaxConcurrency), Load, "requests",
		"cap on an open loop's requests in flight (an arrival beyond it waits, and the wait counts), and the highest level -concurrency=auto places")
	i(&f.warmup, "warmup", 1, "1", Load, "requests per slot", "unmeasured warm-up requests per concurrency slot before each sample")
	s(&f.shard, "shard", "", Load, "I/N",
		"run shard I's share of every level's streams, one of N processes loading the engine together (needs -start-at)")
	s(&f.startAt, "start-at", "", Load, "RFC 3339 instant",
		"when the first sample starts, the same for every shard (example: 2026-01-02T15:04:05Z)")
	d(&f.startEvery, "start-every", 0, "", Load,
		"sample k starts at -start-at + k × this, on every shard (at least warm-up + -benchtime + cooldown)")

	fs.Float64Var(&f.maxErrorRate, "max-error-rate", 0, "a sub-benchmark whose failed-request fraction exceeds this fails (its records are still saved)")
	f.list = append(f.list, Flag{"max-error-rate", Stats, "0", "fraction", "a sub-benchmark whose failed-request fraction exceeds this fails (its records are still saved)"})
	s(&f.slo, "slo", "", Stats, "limits",
		"service-level objective, e.g. ttft-p99=2s,tpot-p99=100ms or mlperf-server:llama3.1-8b: adds goodput-req/s, slo-good/op, slo-met and enables BenchmarkCapacity")
	i(&f.capacityRepeats, "capacity-repeats", suite.DefaultCapacityRepeats, strconv.Itoa(suite.DefaultCapacityRepeats), Stats, "samples",
		"BenchmarkCapacity: samples at each rate near the boundary, all of which must meet -slo")

	s(&f.out, "out", "results", Output, "folder",
		"where <engine>.txt (benchstat), <engine>.all.txt (every metric), <engine>.jsonl (records), summary.json, report.html and the plots go")
	b(&f.plot, "plot", true, Output, "draw the charts into -out when the run ends")
	b(&f.progress, "progress", true, Output, "a progress line on the terminal (/dev/tty; never on stdout, nothing without a terminal)")
	s(&f.from, "from", "", Output, "folder",
		"recompute the result lines from the records in this folder (one run's, or its shards'), contacting no engine; writes files only with an explicit -out")
	b(&f.resume, "resume", false, Output,
		"continue the run in -out (same flags): samples whose records are complete are kept, the rest run and are appended")
	b(&f.printFlags, "flags", false, Output, "print this list, grouped, and exit")

	for _, r := range removed {
		fs.Var(removedFlag(r), r.Name, "removed: "+r.Instead)
	}
	return f
}

// removedFlag is a dropped flag: setting it fails with the replacement.
type removedFlag Removed

func (r removedFlag) String() string { return "" }
func (r removedFlag) Set(string) error {
	return fmt.Errorf("-%s was removed: %s", r.Name, r.Instead)
}

// List is every flag of the list, in the order registered (grouped by
// Groups when shown).
func (f *Flags) List() []Flag { return f.list }

// RemovedFlags are the dropped flags, still registered to say what
// replaces them.
func RemovedFlags() []Removed { return removed }

// PrintFlags reports whether -flags asked for the list.
func (f *Flags) PrintFlags() bool { return f.printFlags }

// From is -from: a run that recomputes rather than measures.
func (f *Flags) From() string { return f.from }

// Plot is -plot, and Progress -progress.
func (f *Flags) Plot() bool     { return f.plot }
func (f *Flags) Progress() bool { return f.progress }

// given reports whether the named flag was set on the command line.
func (f *Flags) given(name string) bool {
	if f.set == nil {
		f.set = map[string]bool{}
		f.fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	}
	return f.set[name]
}

// Options are the suite's options from the parsed flags. The caller adds
// what the command line's flags do not say: Bench, Benchtime, Progress,
// Getenv. An error names the flag and what to give.
func (f *Flags) Options() (suite.Options, error) {
	o := suite.Options{
		Engines:          f.engines,
		Concurrency:      f.concurrency,
		Model:            f.model,
		Dataset:          f.dataset,
		Seed:             f.seed,
		Warmup:           f.warmup,
		RequestTimeout:   f.requestTimeout,
		PreflightTimeout: f.preflightTimeout,
		Out:              f.out,
		Resume:           f.resume,
		MaxErrorRate:     f.maxErrorRate,
		Insecure:         f.insecure,
		HTTP2:            f.http2,
		Rate:             f.rate,
		Arrival:          f.arrival,
		MaxConcurrency:   f.maxConcurrency,
		SLO:              f.slo,
		CapacityRepeats:  f.capacityRepeats,
		Shard:            f.shard,
		StartAt:          f.startAt,
		StartEvery:       f.startEvery,
		PrefixTokens:     f.prefixTokens,
		Prefixes:         f.prefixes,
		Turns:            f.turns,
		ThinkTime:        f.thinkTime,
		Endpoint:         f.endpoint,
		Trace:            f.trace,
		TraceSpeed:       f.traceSpeed,
		TraceBlockTokens: f.traceBlockTokens,
	}
	// An open-loop run (-rate or -trace) does not also sweep the default
	// closed-loop levels.
	if (f.rate != "" || f.trace != "") && !f.given("concurrency") {
		o.Concurrency = ""
	}
	var err error
	if o.InputTokens, o.InputDist, err = lengths("input-tokens", f.inputTokens); err != nil {
		return o, err
	}
	if o.OutputTokens, o.OutputDist, err = lengths("output-tokens", f.outputTokens); err != nil {
		return o, err
	}
	return o, nil
}

// FromOptions are the options of a -from run: only the analysis flags
// apply (-max-error-rate, -slo), and -out only when given.
func (f *Flags) FromOptions() suite.Options {
	o := suite.Options{From: f.from, MaxErrorRate: f.maxErrorRate, SLO: f.slo}
	if f.given("out") {
		o.Out = f.out
	}
	return o
}

// lengths reads -input-tokens or -output-tokens: a whole number of tokens
// (a fixed length), or a distribution (workload.ParseDist checks it).
func lengths(name, v string) (fixed int, dist string, err error) {
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil {
		return n, "", nil
	}
	if v == "" || strings.ContainsAny(v[:1], "0123456789-+.") {
		return 0, "", fmt.Errorf("-%s=%q: want a whole number of tokens (128) or a distribution (uniform:64,256, normal:MEAN,SD, lognormal:MEAN,SD)", name, v)
	}
	return 0, v, nil
}

// Usage writes the grouped list as text, for -flags and a bad flag.
func (f *Flags) Usage(w io.Writer) {
	fmt.Fprintf(w, "inferbench: go test -bench=. [flags]   (flags go after -bench, before any package list)\n")
	for _, g := range Groups {
		fmt.Fprintf(w, "\n%s\n", g)
		if intro[g] != "" {
			fmt.Fprintf(w, "  %s\n", intro[g])
		}
		for _, fl := range f.list {
			if fl.Group != g {
				continue
			}
			head := "  -" + fl.Name
			if fl.Unit != "bool" {
				head += " " + fl.Unit
			}
			if fl.Default != "" {
				head += " (default " + fl.Default + ")"
			}
			fmt.Fprintf(w, "%s\n      %s\n", head, fl.Usage)
		}
	}
	fmt.Fprintf(w, "\ngo test's own flags keep their meaning: -bench, -run, -count, -benchtime, -timeout (go help testflag).\n")
}
