// Package workload turns a Spec into the deterministic sequence of requests a
// run sends: Request(seq) depends only on the Spec (seed included) and seq, so
// every engine gets the SAME sequence.
//
// # Synthetic prompts
//
// Without a tokenizer, a synthetic prompt is a request id followed by filler
// words: "000000042 time year good …". The id is the seq as a fixed-width
// 9-digit number, first in the message, and the filler words are drawn per
// seq from the seed; so no two prompts share a prefix beyond the chat
// template, and an engine's prefix cache cannot make later requests cheaper
// than the first. The filler vocabulary is common four-letter English words,
// which real BPE tokenizers encode as one token each (with the leading
// space); that keeps a prompt's token count a near-linear function of its
// word count, stable from seq to seq.
//
// The word count starts at one word per target token and is calibrated
// against the server, which counts prompt tokens the way that matters —
// chat-template tokens included, as usage.prompt_tokens reports them. Send
// Probe(), then call Calibrate with its reported prompt_tokens; do it twice
// for an exact fit (CalibrateWith takes any request of this workload). Calibrate fits prompt_tokens = a + b·words (words = every
// whitespace-separated field of the messages) by least squares over all
// probes so far — with a single probe it assumes a = 0 — and sets the filler
// count to (InputTokens − a)/b minus the id. For a server whose count is
// linear in words (any tokenizer on this vocabulary, up to rounding), two
// probes give prompt_tokens within ±2 tokens of InputTokens (tested against a
// bytes/4 counter with a 17-token template and a words×1.3 counter). The
// residual error is rounding: a fraction of a word's tokens.
//
// # Output lengths
//
// OutputDist chooses each request's fixed output length (its MaxTokens):
// "" or "fixed" uses OutputTokens; "uniform:LO-HI" draws uniformly from
// [LO, HI]; "normal:MEAN,SD" draws round(MEAN + SD·z), at least 1. Draws are
// per seq from the seed. With a dataset and OutputTokens 0 and no OutputDist,
// the dataset's own lengths are used (see below).
//
// # Datasets
//
// Dataset is a file, read whole at New:
//
//   - ShareGPT JSON: an array of {"conversations": [{"from": "human"|"gpt",
//     "value": "…"}, …]}. The first human (or "user") turn is the prompt, sent
//     as one user message. In dataset-length mode the output length is the
//     turn after it, if that is a "gpt" (or "assistant"/"chatgpt") answer,
//     estimated as ⌈bytes/4⌉ tokens (no tokenizer; the common rule of thumb
//     for English). Entries without a usable human turn (or, in dataset-length
//     mode, without an answer) are skipped and counted, as vLLM's benchmark
//     does; if none is left, New fails.
//   - JSON lines: one object per line, either {"prompt": "…"} (one user
//     message) or {"messages": [{"role": "…", "content": "…"}, …]}, optionally
//     with "max_tokens" (the dataset length). Blank lines are skipped; any
//     malformed line fails New with file:line.
//
// The entries are shuffled once by the seed; Request(seq) takes entry seq mod
// the number of entries (N > 0 keeps only the first N after the shuffle).
//
// # Salting
//
// A run sends every request once: seqs never repeat within a run (the
// suite numbers them across phases, levels, samples and repetitions). A
// dataset has fewer entries than a long run has requests, so an entry comes
// back; sent as it is, a prefix cache would serve it from the second time
// on and the sample would measure the cache, not the engine. So every
// request whose seq is outside [0, entries) — past the first pass, and the
// probe (seq −1) — is salted: its first message starts with
// "[request SEQ] ": it differs from every other request of the run within
// its first few tokens (the number), so a prefix cache can serve at most
// those few, never a block. Requests of the first pass go as the dataset
// has them. The salt adds a few prompt tokens (about five), reported in
// usage like any other. With N > 0 (an explicit period) nothing is salted:
// the caller asked for repetition.
package workload

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/inferbench/inferbench/engines"
)

// Spec describes a workload. The zero value is not a workload: set InputTokens
// and OutputTokens (synthetic) or Dataset.
type Spec struct {
	// InputTokens is the target prompt length in server tokens (synthetic
	// prompts only; must be 0 with a Dataset).
	InputTokens int
	// OutputTokens is the fixed output length of every request; with a
	// Dataset, 0 means "use the dataset's lengths".
	OutputTokens int
	// OutputDist is "" or "fixed" (OutputTokens), "uniform:LO-HI" or
	// "normal:MEAN,SD"; the latter two exclude OutputTokens.
	OutputDist string
	// Dataset is the path of a ShareGPT JSON or JSON-lines file; "" means
	// synthetic prompts.
	Dataset string
	// Seed makes every draw reproducible.
	Seed int64
	// N is the number of distinct requests; Request(seq) repeats with period
	// N. 0 means every dataset entry, or unbounded for synthetic prompts
	// (every seq distinct). A repeated prompt may hit a prefix cache.
	N int
}

// ErrNotSynthetic is returned by Calibrate on a dataset workload, whose
// prompts are sent as they are.
var ErrNotSynthetic = errors.New("workload: calibration applies to synthetic prompts only")

// Workload produces the requests of a Spec. Request and Calibrate are safe
// for concurrent use.
type Workload struct {
	spec    Spec
	out     outputDist
	entries []entry // dataset entries in shuffled order; nil if synthetic
	format  string  // "synthetic", "sharegpt" or "jsonl"
	skipped int

	mu    sync.RWMutex
	words int              // filler words per synthetic prompt
	obs   []obs            // calibration observations
	probe *engines.Request // the last Probe, for Calibrate
}

// probeSeq is the seq of Probe's request: outside every run's range, so the
// probe's prompt (its id and its words) is never one a run sends.
const probeSeq = -1

type obs struct{ words, tokens float64 }

// idWidth is the width of the request id that opens a synthetic prompt.
const idWidth = 9

// New validates spec and builds its workload, reading the dataset if any.
func New(spec Spec) (*Workload, error) {
	switch {
	case spec.InputTokens < 0:
		return nil, fmt.Errorf("workload: input tokens %d: must not be negative", spec.InputTokens)
	case spec.OutputTokens < 0:
		return nil, fmt.Errorf("workload: output tokens %d: must not be negative", spec.OutputTokens)
	case spec.N < 0:
		return nil, fmt.Errorf("workload: N %d: must not be negative", spec.N)
	}
	out, err := parseOutputDist(spec.OutputDist, spec.OutputTokens)
	if err != nil {
		return nil, err
	}
	w := &Workload{spec: spec, out: out}
	if spec.Dataset == "" {
		if spec.InputTokens < 1 {
			return nil, errors.New("workload: synthetic prompts need InputTokens ≥ 1 (or set a Dataset)")
		}
		if out.kind == "dataset" {
			return nil, errors.New("workload: synthetic prompts need OutputTokens ≥ 1 or an OutputDist")
		}
		w.format = "synthetic"
		w.words = max(spec.InputTokens-1, 1) // one token per word, minus the id; Calibrate refines it
		return w, nil
	}
	if spec.InputTokens != 0 {
		return nil, fmt.Errorf("workload: InputTokens %d applies to synthetic prompts; a dataset's prompts are sent as they are", spec.InputTokens)
	}
	data, err := os.ReadFile(spec.Dataset)
	if err != nil {
		return nil, fmt.Errorf("workload: dataset: %w", err)
	}
	ds, err := parseDataset(spec.Dataset, data, out.kind == "dataset")
	if err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	rng := rand.New(rand.NewPCG(uint64(spec.Seed), 0x5eed))
	perm := rng.Perm(len(ds.entries))
	w.entries = make([]entry, len(perm))
	for i, j := range perm {
		w.entries[i] = ds.entries[j]
	}
	if spec.N > 0 {
		if spec.N > len(w.entries) {
			return nil, fmt.Errorf("workload: N %d: dataset %s has only %d usable entries", spec.N, spec.Dataset, len(w.entries))
		}
		w.entries = w.entries[:spec.N]
	}
	w.format, w.skipped = ds.format, ds.skipped
	return w, nil
}

// Request returns request seq of the workload (any seq; the sequence is the
// same for every instance built from the same Spec and calibration).
func (w *Workload) Request(seq int) engines.Request {
	if w.spec.N > 0 {
		seq = ((seq % w.spec.N) + w.spec.N) % w.spec.N
	}
	if w.entries != nil {
		e := w.entries[((seq%len(w.entries))+len(w.entries))%len(w.entries)]
		maxTokens := e.maxTokens
		if w.out.kind != "dataset" {
			maxTokens = w.out.draw(w.spec.Seed, seq)
		}
		msgs := make([]engines.Message, len(e.messages))
		copy(msgs, e.messages)
		if w.spec.N == 0 && (seq < 0 || seq >= len(w.entries)) && len(msgs) > 0 {
			msgs[0].Content = fmt.Sprintf("[request %d] %s", seq, msgs[0].Content)
		}
		return engines.Request{Messages: msgs, MaxTokens: maxTokens}
	}
	w.mu.RLock()
	n := w.words
	w.mu.RUnlock()
	return engines.Request{
		Messages:  []engines.Message{{Role: "user", Content: syntheticPrompt(w.spec.Seed, seq, n)}},
		MaxTokens: w.out.draw(w.spec.Seed, seq),
	}
}

// syntheticPrompt is the id of seq followed by n filler words drawn from seed and seq.
func syntheticPrompt(seed int64, seq, n int) string {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(seq)))
	var b strings.Builder
	b.Grow(idWidth + 5*n)
	fmt.Fprintf(&b, "%0*d", idWidth, seq)
	for range n {
		b.WriteByte(' ')
		b.WriteString(vocabulary[rng.IntN(len(vocabulary))])
	}
	return b.String()
}

// Words is the current number of filler words per synthetic prompt (0 for a
// dataset workload).
func (w *Workload) Words() int {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.words
}

// Len is the number of distinct requests: N, the dataset's entry count, or 0
// for unbounded synthetic prompts.
func (w *Workload) Len() int {
	switch {
	case w.spec.N > 0:
		return w.spec.N
	case w.entries != nil:
		return len(w.entries)
	}
	return 0
}

// Probe returns a request for a preflight probe: for synthetic prompts one
// at the current calibration whose id (-1) no run uses; for a dataset its
// last entry, salted as seq -1, so no measured request shares its prefix.
// Calibrate uses the most recent Probe.
func (w *Workload) Probe() engines.Request {
	if w.entries != nil {
		return w.Request(probeSeq)
	}
	r := w.Request(probeSeq)
	w.mu.Lock()
	w.probe = &r
	w.mu.Unlock()
	return r
}

// Calibrate is CalibrateWith on the most recent Probe.
func (w *Workload) Calibrate(reported int) error {
	if w.entries != nil {
		return ErrNotSynthetic
	}
	w.mu.RLock()
	p := w.probe
	w.mu.RUnlock()
	if p == nil {
		return errors.New("workload: calibrate: no Probe was sent yet")
	}
	return w.CalibrateWith(*p, reported)
}

// CalibrateWith records that the server reported `reported` prompt tokens
// for probe (a request built by this workload) and refits the filler word
// count so prompt_tokens ≈ InputTokens; see the package doc for the method.
// One probe assumes no fixed overhead and is within a few percent (+2.3 %
// for a 128-token target on a bytes/4 counter with a 7-token template); a
// second probe at the new length separates the chat template's overhead from
// the per-word cost and lands within ±2 tokens. It fails, keeping the
// previous count, when reported is not a count, when the fit is not
// increasing in words, and on dataset workloads (ErrNotSynthetic); when
// InputTokens is below the fitted fixed overhead it uses one filler word and
// says so.
func (w *Workload) CalibrateWith(probe engines.Request, reported int) error {
	if w.entries != nil {
		return ErrNotSynthetic
	}
	if reported <= 0 {
		return fmt.Errorf("workload: calibrate: the server reported %d prompt tokens; is usage enabled (stream_options.include_usage)?", reported)
	}
	words := 0
	for _, m := range probe.Messages {
		words += len(strings.Fields(m.Content))
	}
	if words == 0 {
		return errors.New("workload: calibrate: the probe has no words")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.obs = append(w.obs, obs{float64(words), float64(reported)})
	a, b := fit(w.obs)
	if !(b > 0) || math.IsInf(b, 0) {
		w.obs = w.obs[:len(w.obs)-1]
		return fmt.Errorf("workload: calibrate: prompt_tokens (%d for %d words) do not grow with the prompt length; keeping %d filler words", reported, words, w.words)
	}
	target := int(math.Round((float64(w.spec.InputTokens)-a)/b)) - 1 // minus the id
	if target < 1 {
		w.words = 1
		return fmt.Errorf("workload: calibrate: input tokens %d is below the fixed overhead of about %.0f tokens (chat template and request id); using 1 filler word", w.spec.InputTokens, a+b)
	}
	w.words = target
	return nil
}

// fit is the least-squares line tokens = a + b·words over obs, or the
// proportional fit (a = 0) when the words do not vary.
func fit(o []obs) (a, b float64) {
	n := float64(len(o))
	var sx, sy, sxx, sxy float64
	for _, p := range o {
		sx += p.words
		sy += p.tokens
		sxx += p.words * p.words
		sxy += p.words * p.tokens
	}
	den := n*sxx - sx*sx
	if len(o) < 2 || den < 1e-9*sxx {
		return 0, sy / sx
	}
	b = (n*sxy - sx*sy) / den
	return (sy - b*sx) / n, b
}

// Describe is a one-line description for result headers, e.g.
// "synthetic in=64 out=128 seed=1". It depends only on the Spec (and the
// dataset's contents), not on calibration, so it is the same for every engine.
func (w *Workload) Describe() string {
	var b strings.Builder
	if w.entries == nil {
		fmt.Fprintf(&b, "synthetic in=%d", w.spec.InputTokens)
	} else {
		fmt.Fprintf(&b, "%s file=%s entries=%d", w.format, w.spec.Dataset, len(w.entries))
		if w.skipped > 0 {
			fmt.Fprintf(&b, " skipped=%d", w.skipped)
		}
	}
	fmt.Fprintf(&b, " out=%s seed=%d", w.out, w.spec.Seed)
	if w.spec.N > 0 {
		fmt.Fprintf(&b, " n=%d", w.spec.N)
	}
	return b.String()
}

// outputDist draws per-request output lengths.
type outputDist struct {
	kind          string // "fixed", "uniform", "normal" or "dataset"
	fixed, lo, hi int
	mean, sd      float64
}

func (d outputDist) String() string {
	switch d.kind {
	case "fixed":
		return strconv.Itoa(d.fixed)
	case "uniform":
		return fmt.Sprintf("uniform:%d-%d", d.lo, d.hi)
	case "normal":
		return fmt.Sprintf("normal:%g,%g", d.mean, d.sd)
	}
	return "dataset"
}

// draw is the output length of seq; deterministic in seed and seq.
func (d outputDist) draw(seed int64, seq int) int {
	rng := rand.New(rand.NewPCG(uint64(seed)^0x9e3779b97f4a7c15, uint64(seq)))
	switch d.kind {
	case "uniform":
		return d.lo + rng.IntN(d.hi-d.lo+1)
	case "normal":
		return max(1, int(math.Round(d.mean+d.sd*rng.NormFloat64())))
	}
	return d.fixed
}

func parseOutputDist(s string, fixed int) (outputDist, error) {
	kind, arg, _ := strings.Cut(s, ":")
	bad := func(format string, a ...any) (outputDist, error) {
		return outputDist{}, fmt.Errorf("workload: output distribution %q: "+format, append([]any{s}, a...)...)
	}
	if kind != "" && kind != "fixed" && fixed != 0 {
		return bad("set either OutputTokens (%d, a fixed length) or a distribution, not both", fixed)
	}
	switch kind {
	case "", "fixed":
		if arg != "" {
			return bad("fixed takes no argument; set OutputTokens")
		}
		if fixed == 0 {
			return outputDist{kind: "dataset"}, nil
		}
		return outputDist{kind: "fixed", fixed: fixed}, nil
	case "uniform":
		los, his, ok := strings.Cut(arg, "-")
		lo, err1 := strconv.Atoi(los)
		hi, err2 := strconv.Atoi(his)
		if !ok || err1 != nil || err2 != nil {
			return bad("want uniform:LO-HI with integers, e.g. uniform:64-192")
		}
		if lo < 1 || hi < lo {
			return bad("want 1 ≤ LO ≤ HI")
		}
		return outputDist{kind: "uniform", lo: lo, hi: hi}, nil
	case "normal":
		ms, sds, ok := strings.Cut(arg, ",")
		mean, err1 := strconv.ParseFloat(ms, 64)
		sd, err2 := strconv.ParseFloat(sds, 64)
		if !ok || err1 != nil || err2 != nil {
			return bad("want normal:MEAN,SD, e.g. normal:128,32")
		}
		if !(mean >= 1) || !(sd >= 0) || math.IsInf(mean, 0) || math.IsInf(sd, 0) {
			return bad("want MEAN ≥ 1 and SD ≥ 0")
		}
		return outputDist{kind: "normal", mean: mean, sd: sd}, nil
	}
	return bad("unknown kind %q; use fixed, uniform:LO-HI or normal:MEAN,SD", kind)
}
