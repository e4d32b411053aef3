package workload

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/inferbench/inferbench/engines"
	"github.com/inferbench/inferbench/internal/trace"
)

// hashSalt separates trace block words from the other draws.
const hashSalt = 0x2545f4914f6cdd1d

// TraceRequest is the request that replays trace entry e as request seq: a
// synthetic prompt of e.Input server tokens (under the calibrated fit)
// asking for exactly e.Output tokens. The prompt opens with e's hash-id
// blocks, blockTokens tokens each (Mooncake's are 512): block h is
// "block-h:" and filler words drawn from the seed and h, so requests whose
// hash ids agree share exactly those blocks, as the trace says; the last
// block is cut where the prompt ends. Past the blocks comes the unique
// part, the request id (seq) and filler words, as any synthetic prompt.
// Info.PrefixTokens is the blocks' tokens: the part the trace made
// cacheable. It is deterministic in the seed, e and seq, and fails only on
// a dataset workload, whose prompts are its own.
func (w *Workload) TraceRequest(e trace.Entry, blockTokens, seq int) (engines.Request, Info, error) {
	if w.entries != nil {
		return engines.Request{}, Info{}, fmt.Errorf("workload: a trace's prompts are synthetic; drop -dataset")
	}
	if blockTokens < 1 && len(e.HashIDs) > 0 {
		return engines.Request{}, Info{}, fmt.Errorf("workload: trace block size %d: must be at least 1 token", blockTokens)
	}
	w.mu.RLock()
	a, b := w.a, w.b
	w.mu.RUnlock()
	total := max(int(math.Round((float64(e.Input)-a)/b)), 1)
	perBlock := max(int(math.Round(float64(blockTokens)/b)), 2)
	var sb strings.Builder
	words := 0
	for _, h := range e.HashIDs {
		if words >= total {
			break
		}
		rng := rand.New(rand.NewPCG(uint64(w.spec.Seed)^hashSalt, h))
		if words > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "block-%d:", h)
		words++
		for i := 1; i < perBlock && words < total; i++ {
			sb.WriteByte(' ')
			sb.WriteString(vocabulary[rng.IntN(len(vocabulary))])
			words++
		}
	}
	info := Info{Prefix: -1, InputTokens: e.Input, PrefixTokens: int(math.Round(float64(words) * b))}
	if words < total {
		if words > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(syntheticPrompt(w.spec.Seed, seq, max(total-words-1, 1)))
	}
	return engines.Request{
		Messages:  []engines.Message{{Role: "user", Content: sb.String()}},
		MaxTokens: e.Output,
	}, info, nil
}
