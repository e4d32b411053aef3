// Command fake-engine serves the SIMULATED LLM inference engine of package
// fake on loopback: an OpenAI-compatible, vLLM-shaped API in front of a
// continuous-batching simulation. It is a demo and a test target, not a
// model: its text is filler and its timings come from a step model.
//
// The prototype's command line still works, with one dash or two:
//
//	go run ./fake/cmd/fake-engine --port 8000 --engine-name vLLM --model fake-model --prefill-ms 80 --per-token-ms 4 --tokens 128
//
// --preset picks the step model (vllm-like, friendli-like, vllm-8b-h100);
// --prefill-ms, --per-token-ms and --tokens, when given, re-derive it with
// sim.Config.ApplyPrototype, and the step-model flags (--step-base-ms, …)
// override single constants after that. --prefill-ms 0 --per-token-ms 0 is
// the firehose: every answer as fast as the server can write it. Failure
// injection: --error-rate 0.1 --error-kinds 429,500,cut,hang,malformed,error-event,abort
// --seed 1 (--error-rate 1 with one kind fails every request that way).
// Real engines' quirks are opt-in: --natural-stop (a simulated EOS,
// counted in completion_tokens like llama-server), --role-in-every-delta
// (ollama's stream shape), --close-after-stream (llama-server's close of a
// keep-alive connection after a stream) and --prefix-caching (vLLM's
// automatic prefix caching over KV blocks). SIGINT or SIGTERM shuts the server down (open streams end).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/inferbench/inferbench/fake"
	"github.com/inferbench/inferbench/fake/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, os.Stderr, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "fake-engine:", err)
		os.Exit(2)
	}
}

// settings are the command's flags other than the step model.
type settings struct {
	host, preset, errorKinds string
	port                     int
	prefillMs, perTokenMs    float64
	tokens                   int
	seed                     int64
	opts                     fake.Options
	grace                    time.Duration
}

// newFlagSet registers every flag on a new FlagSet, with the step-model
// constants bound to cfg.
func newFlagSet(stderr io.Writer, st *settings, cfg *sim.Config) *flag.FlagSet {
	fs := flag.NewFlagSet("fake-engine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&st.host, "host", "127.0.0.1", "address to bind (loopback by default)")
	fs.IntVar(&st.port, "port", 8000, "port to listen on (0 picks a free one)")
	fs.StringVar(&st.preset, "preset", "vllm-like", "step model: "+strings.Join(sim.PresetNames(), ", "))
	fs.Float64Var(&st.prefillMs, "prefill-ms", 0, "TTFT of an idle engine, ms (prototype flag; re-derives the preset)")
	fs.Float64Var(&st.perTokenMs, "per-token-ms", 0, "mean gap between tokens on an idle engine, ms (prototype flag; re-derives the preset)")
	fs.IntVar(&st.tokens, "tokens", 0, "output tokens when a request gives no max_tokens, exactly (prototype flag; default: the preset's, 128)")
	fs.BoolVar(&st.opts.NaturalStop, "natural-stop", false, "simulate the model's EOS: without ignore_eos a request stops at a natural length ≤ its limit, finish_reason \"stop\", completion_tokens counting the unsent EOS (like llama-server); default: exactly the limit")
	fs.Int64Var(&st.seed, "seed", 1, "seed of the jitter, failure injection, output lengths and filler text")
	fs.StringVar(&st.opts.Model, "model", "fake-model", "served model name")
	fs.StringVar(&st.opts.EngineName, "engine-name", "fake", "label for /v1/models owned_by and the log (e.g. vLLM)")
	fs.IntVar(&st.opts.TokensPerChunk, "tokens-per-chunk", 1, "tokens per SSE chunk (like speculative decoding)")
	fs.Int64Var(&st.opts.MaxBodyBytes, "max-body-bytes", 1<<20, "largest request body; larger gets 413")
	fs.Float64Var(&st.opts.ErrorRate, "error-rate", 0, "fraction of requests that fail on purpose, in [0, 1]")
	fs.StringVar(&st.errorKinds, "error-kinds", "", "comma-separated failures to inject: 429,500,cut,hang,malformed,error-event (an error object inside the 200 stream, like llama-server),abort (the stream just ends, like ollama's token-repeat limit)")
	fs.BoolVar(&st.opts.CloseAfterStream, "close-after-stream", false, "llama-server's keep-alive bug: advertise \"Connection: keep-alive\" but close the connection after every streamed response (a reusing client's next request fails)")
	fs.BoolVar(&st.opts.RoleInEveryDelta, "role-in-every-delta", false, "ollama's stream shape: no role chunk, \"role\":\"assistant\" in every delta and in the finish chunk")
	fs.DurationVar(&st.grace, "shutdown-timeout", 5*time.Second, "how long shutdown waits for handlers")
	cfg.RegisterFlags(fs)
	return fs
}

// configure parses args into a configuration and server options. The preset
// and the prototype flags are applied first, so explicit step-model flags
// override what they derive.
func configure(stderr io.Writer, args []string) (sim.Config, *settings, error) {
	// Pass 1 learns the preset and the prototype flags.
	var st settings
	scratch, err := sim.Preset("vllm-like")
	if err != nil {
		return sim.Config{}, nil, err
	}
	fs := newFlagSet(stderr, &st, &scratch)
	if err := fs.Parse(args); err != nil {
		return sim.Config{}, nil, err
	}
	if fs.NArg() > 0 {
		return sim.Config{}, nil, fmt.Errorf("unexpected arguments %q: every setting is a flag (see -help)", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg, err := sim.Preset(st.preset)
	if err != nil {
		return sim.Config{}, nil, fmt.Errorf("--preset: %w", err)
	}
	if set["prefill-ms"] || set["per-token-ms"] || set["tokens"] {
		p, t, n := cfg.PrefillMs, cfg.PerTokenMs, cfg.DefaultTokens
		if set["prefill-ms"] {
			p = st.prefillMs
		}
		if set["per-token-ms"] {
			t = st.perTokenMs
		}
		if set["tokens"] {
			if st.tokens < 1 {
				return sim.Config{}, nil, fmt.Errorf("--tokens is %d: must be ≥ 1", st.tokens)
			}
			n = st.tokens
		}
		cfg.ApplyPrototype(p, t, n)
	}
	// Pass 2 binds the step-model flags to the derived configuration.
	st = settings{}
	fs = newFlagSet(io.Discard, &st, &cfg)
	if err := fs.Parse(args); err != nil {
		return sim.Config{}, nil, err
	}
	cfg.Seed, st.opts.Seed = st.seed, st.seed
	if st.errorKinds != "" {
		for _, k := range strings.Split(st.errorKinds, ",") {
			st.opts.ErrorKinds = append(st.opts.ErrorKinds, strings.TrimSpace(k))
		}
	}
	if st.port < 0 || st.port > 65535 {
		return sim.Config{}, nil, fmt.Errorf("--port is %d: must be in 0..65535", st.port)
	}
	return cfg, &st, nil
}

// run serves until ctx is done, then shuts down.
func run(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	cfg, st, err := configure(stderr, args)
	if err != nil {
		return err
	}
	st.opts.Logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	srv, err := fake.NewServer(cfg, st.opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(st.host, strconv.Itoa(st.port)))
	if err != nil {
		srv.Close()
		return fmt.Errorf("listen: %w", err)
	}
	r := fake.Serve(srv, ln)
	mode := fmt.Sprintf("preset %s: TTFT %.4g ms, %.4g ms/token on an idle engine, %d tokens by default, up to %d sequences",
		st.preset, cfg.PrefillMs, cfg.PerTokenMs, cfg.DefaultTokens, cfg.MaxNumSeqs)
	if cfg.Firehose() {
		mode = "firehose: no engine, answers as fast as the server can write"
	}
	var quirks []string
	for _, q := range []struct {
		on   bool
		name string
	}{{cfg.PrefixCaching, "prefix caching"}, {st.opts.NaturalStop, "natural EOS"}, {st.opts.CloseAfterStream, "closes connections after streams"}, {st.opts.RoleInEveryDelta, "role in every delta"}} {
		if q.on {
			quirks = append(quirks, q.name)
		}
	}
	if len(quirks) > 0 {
		mode += "; " + strings.Join(quirks, ", ")
	}
	note := ""
	if st.preset == "friendli-like" {
		note = "; friendli-like numbers are illustrative, NOT Friendli Engine's measured performance"
	}
	fmt.Fprintf(stdout, "fake-engine: SIMULATED engine %q (timings from a step model, not a measurement of any real engine) serving model %q at %s (%s%s)\n",
		st.opts.EngineName, st.opts.Model, r.URL(), mode, note)
	<-ctx.Done()
	fmt.Fprintln(stdout, "fake-engine: shutting down")
	return fake.Shutdown(r, st.grace)
}
