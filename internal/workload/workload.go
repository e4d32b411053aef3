package workload

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/inferbench/inferbench/engines"
)

// Spec describes a workload. The zero value is not a workload: set InputTokens
// (or InputDist) and OutputTokens (or OutputDist) for synthetic prompts, or a
// Dataset.
type Spec struct {
	// InputTokens is the target prompt length in server tokens (synthetic
	// prompts only; must be 0 with a Dataset). With PrefixTokens it includes
	// the shared prefix.
	InputTokens int
	// InputDist is "" or "fixed" (InputTokens), or a Dist of prompt lengths
	// (uniform, normal, lognormal), which excludes InputTokens. A dataset's
	// prompts are sent as they are: with a Dataset it must be "" or "dataset".
	InputDist string
	// OutputTokens is the fixed output length of every request; with a
	// Dataset, 0 means "use the dataset's lengths".
	OutputTokens int
	// OutputDist is "" or "fixed" (OutputTokens), a Dist of output lengths
	// (uniform, normal, lognormal; these exclude OutputTokens) or "dataset".
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
	// PrefixTokens is the length of the shared prefixes in server tokens
	// and Prefixes their number (see the package doc); both 0 means none.
	// Synthetic prompts only; PrefixTokens must be below every prompt
	// length the input distribution can draw (below its mean for normal and
	// lognormal, whose short draws keep one unique word after the prefix).
	PrefixTokens, Prefixes int
	// Turns makes the workload conversations (see Conversations): for
	// synthetic prompts the number of turns of every conversation (≥ 2);
	// with a Dataset the most user turns replayed of each conversation
	// (ShareGPT: all its human turns; JSON lines: the user messages of
	// "messages"). 0 is single-turn.
	Turns int
	// ThinkTime is the pause between a turn's answer and the next turn of
	// its conversation (the user reading and typing). 0 sends it at once.
	ThinkTime time.Duration
}

// Info describes one request beyond what the engine is sent, for its record.
type Info struct {
	// PrefixTokens is the shared prefix's length in server tokens as the
	// calibration estimates it (0: no shared prefix): the part of the
	// prompt the workload made cacheable.
	PrefixTokens int
	// Prefix is the index of the shared prefix (-1: none).
	Prefix int
	// InputTokens is the prompt length drawn for a synthetic prompt (0
	// for a dataset's prompt, whose length is the dataset's).
	InputTokens int
}

// ErrNotSynthetic is returned by Calibrate on a dataset workload, whose
// prompts are sent as they are.
var ErrNotSynthetic = errors.New("workload: calibration applies to synthetic prompts only")

// Workload produces the requests of a Spec. Request and Calibrate are safe
// for concurrent use.
type Workload struct {
	spec    Spec
	in, out Dist
	entries []entry // dataset entries in shuffled order; nil if synthetic
	format  string  // "synthetic", "sharegpt" or "jsonl"
	skipped int
	turns   int // turns of the longest conversation (1: single-turn)

	mu     sync.RWMutex
	a, b   float64          // the fit prompt_tokens = a + b·words (0, 1 before calibration)
	words  int              // filler words of a prompt of InputTokens (or the mean length)
	obs    []obs            // calibration observations
	probe  *engines.Request // the last Probe, for Calibrate
	prefix map[int]string   // prefix text by index, at the current calibration
}

// probeSeq is the seq of Probe's request: outside every run's range, so the
// probe's prompt (its id and its words) is never one a run sends.
const probeSeq = -1

type obs struct{ words, tokens float64 }

// idWidth is the width of the request id that opens a synthetic prompt.
const idWidth = 9

// prefixSalt separates the prefix choice and the prefix words from the
// other per-seq draws.
const prefixSalt = 0x165667b19e3779f9

// New validates spec and builds its workload, reading the dataset if any.
func New(spec Spec) (*Workload, error) {
	switch {
	case spec.InputTokens < 0:
		return nil, fmt.Errorf("workload: input tokens %d: must not be negative", spec.InputTokens)
	case spec.OutputTokens < 0:
		return nil, fmt.Errorf("workload: output tokens %d: must not be negative", spec.OutputTokens)
	case spec.N < 0:
		return nil, fmt.Errorf("workload: N %d: must not be negative", spec.N)
	case spec.PrefixTokens < 0 || spec.Prefixes < 0:
		return nil, fmt.Errorf("workload: prefix tokens %d, prefixes %d: must not be negative", spec.PrefixTokens, spec.Prefixes)
	case (spec.PrefixTokens > 0) != (spec.Prefixes > 0):
		return nil, fmt.Errorf("workload: prefix tokens %d with %d prefixes: set both (e.g. -prefix-tokens=1024 -prefixes=4) or neither", spec.PrefixTokens, spec.Prefixes)
	case spec.Turns < 0:
		return nil, fmt.Errorf("workload: turns %d: must not be negative", spec.Turns)
	case spec.ThinkTime < 0:
		return nil, fmt.Errorf("workload: think time %v: must not be negative", spec.ThinkTime)
	}
	out, err := ParseDist("output", spec.OutputDist, spec.OutputTokens)
	if err != nil {
		return nil, err
	}
	in, err := ParseDist("input", spec.InputDist, spec.InputTokens)
	if err != nil {
		return nil, err
	}
	w := &Workload{spec: spec, in: in, out: out, b: 1, turns: 1}
	if spec.Dataset == "" {
		if in.Dataset() {
			return nil, errors.New("workload: synthetic prompts need InputTokens ≥ 1 or an InputDist (or set a Dataset)")
		}
		if out.Dataset() {
			return nil, errors.New("workload: synthetic prompts need OutputTokens ≥ 1 or an OutputDist (dataset lengths need a Dataset)")
		}
		if spec.PrefixTokens > 0 {
			if in.Min() <= spec.PrefixTokens && (in.Fixed() || in.kind == "uniform") || in.Mean() <= float64(spec.PrefixTokens) {
				return nil, fmt.Errorf("workload: prefix tokens %d: the prompts (input %s) must be longer than the shared prefix, which is part of them", spec.PrefixTokens, in)
			}
		}
		if spec.Turns == 1 {
			return nil, errors.New("workload: turns 1: a synthetic conversation needs at least 2 turns (0 is single-turn)")
		}
		w.turns = max(spec.Turns, 1)
		w.format = "synthetic"
		w.words = w.fillerLocked(w.meanInput(), 0)
		return w, nil
	}
	if spec.InputTokens != 0 || !in.Dataset() {
		return nil, fmt.Errorf("workload: input %s applies to synthetic prompts; a dataset's prompts are sent as they are", in)
	}
	if spec.PrefixTokens > 0 {
		return nil, errors.New("workload: shared prefixes apply to synthetic prompts; a dataset's prompts are sent as they are")
	}
	data, err := os.ReadFile(spec.Dataset)
	if err != nil {
		return nil, fmt.Errorf("workload: dataset: %w", err)
	}
	ds, err := parseDataset(spec.Dataset, data, out.Dataset(), spec.Turns)
	if err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	rng := rand.New(rand.NewPCG(uint64(spec.Seed), 0x5eed))
	perm := rng.Perm(len(ds.entries))
	w.entries = make([]entry, len(perm))
	for i, j := range perm {
		w.entries[i] = ds.entries[j]
		w.turns = max(w.turns, len(ds.entries[j].turns))
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

// meanInput is the prompt length the calibration aims at: InputTokens, or
// the input distribution's mean.
func (w *Workload) meanInput() int { return int(math.Round(w.in.Mean())) }

// fillerLocked is the number of filler words of a prompt of target tokens
// whose prefix has prefixWords words, under the current fit: the words the
// fit gives the target, minus the id and the prefix, at least 1.
func (w *Workload) fillerLocked(target, prefixWords int) int {
	total := int(math.Round((float64(target) - w.a) / w.b))
	return max(total-1-prefixWords, 1)
}

// Request returns request seq of the workload (any seq; the sequence is the
// same for every instance built from the same Spec and calibration).
func (w *Workload) Request(seq int) engines.Request {
	r, _ := w.RequestInfo(seq)
	return r
}

// RequestInfo is Request with what the request's record should carry.
func (w *Workload) RequestInfo(seq int) (engines.Request, Info) {
	if w.spec.N > 0 {
		seq = ((seq % w.spec.N) + w.spec.N) % w.spec.N
	}
	info := Info{Prefix: -1}
	if w.entries != nil {
		e := w.entries[((seq%len(w.entries))+len(w.entries))%len(w.entries)]
		maxTokens := e.maxTokens
		if !w.out.Dataset() {
			maxTokens = w.out.Draw(w.spec.Seed, outputSalt, seq)
		}
		msgs := make([]engines.Message, len(e.messages))
		copy(msgs, e.messages)
		if w.spec.N == 0 && (seq < 0 || seq >= len(w.entries)) && len(msgs) > 0 {
			msgs[0].Content = fmt.Sprintf("[request %d] %s", seq, msgs[0].Content)
		}
		return engines.Request{Messages: msgs, MaxTokens: maxTokens}, info
	}
	target := w.in.Draw(w.spec.Seed, inputSalt, seq)
	info.InputTokens = target
	var prefix string
	w.mu.RLock()
	n := w.words
	pw := 0
	if w.spec.Prefixes > 0 && seq != probeSeq {
		info.Prefix = rand.New(rand.NewPCG(uint64(w.spec.Seed)^prefixSalt, uint64(seq))).IntN(w.spec.Prefixes)
		pw = w.prefixWordsLocked()
		info.PrefixTokens = int(math.Round(float64(pw) * w.b))
		prefix = w.prefix[info.Prefix]
	}
	if !w.in.Fixed() || pw > 0 {
		n = w.fillerLocked(target, pw)
	}
	w.mu.RUnlock()
	if info.Prefix >= 0 && prefix == "" {
		prefix = w.prefixText(info.Prefix)
	}
	content := syntheticPrompt(w.spec.Seed, seq, n)
	if prefix != "" {
		content = prefix + " " + content
	}
	return engines.Request{
		Messages:  []engines.Message{{Role: "user", Content: content}},
		MaxTokens: w.out.Draw(w.spec.Seed, outputSalt, seq),
	}, info
}

// prefixWordsLocked is the number of words of a shared prefix: PrefixTokens
// at the fitted tokens per word (the chat template's fixed overhead is
// not in the prefix), counting the "prefix-k:" tag as one.
func (w *Workload) prefixWordsLocked() int {
	return max(int(math.Round(float64(w.spec.PrefixTokens)/w.b)), 3)
}

// prefixText builds (and keeps, until the next calibration) the text of
// prefix k: "prefix k:" and filler words drawn from the seed and k.
func (w *Workload) prefixText(k int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p, ok := w.prefix[k]; ok {
		return p
	}
	n := w.prefixWordsLocked() - 1
	rng := rand.New(rand.NewPCG(uint64(w.spec.Seed)^prefixSalt, uint64(k)|1<<62))
	var b strings.Builder
	b.Grow(12 + 5*n)
	fmt.Fprintf(&b, "prefix-%d:", k)
	for range n {
		b.WriteByte(' ')
		b.WriteString(vocabulary[rng.IntN(len(vocabulary))])
	}
	if w.prefix == nil {
		w.prefix = map[int]string{}
	}
	w.prefix[k] = b.String()
	return w.prefix[k]
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

// Words is the current number of filler words of a synthetic prompt of
// InputTokens (of the input distribution's mean length), without a shared
// prefix (0 for a dataset workload).
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

// Input and Output are the length distributions of prompts and outputs.
func (w *Workload) Input() Dist  { return w.in }
func (w *Workload) Output() Dist { return w.out }

// Probe returns a request for a preflight probe: for synthetic prompts one
// at the current calibration (at the input distribution's mean, without a
// shared prefix) whose id (-1) no run uses; for a dataset its last entry,
// salted as seq -1, so no measured request shares its prefix. Calibrate
// uses the most recent Probe.
func (w *Workload) Probe() engines.Request {
	if w.entries != nil {
		return w.Request(probeSeq)
	}
	w.mu.RLock()
	n := w.words
	w.mu.RUnlock()
	r := engines.Request{
		Messages:  []engines.Message{{Role: "user", Content: syntheticPrompt(w.spec.Seed, probeSeq, n)}},
		MaxTokens: w.out.Draw(w.spec.Seed, outputSalt, probeSeq),
	}
	if w.out.Dataset() {
		r.MaxTokens = 0
	}
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
	w.a, w.b, w.prefix = a, b, nil
	target := w.meanInput()
	if int(math.Round((float64(target)-a)/b))-1 < 1 {
		w.words = 1
		return fmt.Errorf("workload: calibrate: input tokens %d is below the fixed overhead of about %.0f tokens (chat template and request id); using 1 filler word", target, a+b)
	}
	w.words = w.fillerLocked(target, 0)
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
		fmt.Fprintf(&b, "synthetic in=%s", w.in)
		if w.spec.Prefixes > 0 {
			fmt.Fprintf(&b, " prefix=%dx%d", w.spec.Prefixes, w.spec.PrefixTokens)
		}
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
	if w.spec.Turns > 0 {
		fmt.Fprintf(&b, " turns=%d think=%v", w.turns, w.spec.ThinkTime)
	}
	return b.String()
}
