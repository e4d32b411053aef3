package suite

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/inferbench/inferbench/internal/metrics"
	"github.com/inferbench/inferbench/internal/record"
)

// maxTurnMetrics bounds the per-turn TTFT metrics on a result line; the
// log line lists every turn.
const maxTurnMetrics = 8

// measuredOK are the measured requests that succeeded.
func measuredOK(recs []record.Record) []*record.Record {
	var out []*record.Record
	for i := range recs {
		if recs[i].Phase == record.Measured && !recs[i].Failed() && recs[i].Error == record.OK {
			out = append(out, &recs[i])
		}
	}
	return out
}

// workloadMetrics are the result line's workload-shape metrics:
// cacheable-prompt-frac (with shared prefixes: the prefix tokens the
// workload put in the prompts ÷ the prompt tokens the server counted, over
// the successful measured requests whose prompt tokens were reported, the
// population of cached-prompt-frac), and for conversations the TTFT
// median per turn index, ttft-turnT-p50-ns (turns 0…7).
func workloadMetrics(s *Suite, recs []record.Record) []Metric {
	var ms []Metric
	ok := measuredOK(recs)
	if s.opt.Prefixes > 0 {
		prefix, prompt := 0, 0
		for _, r := range ok {
			if r.PromptTokens > 0 {
				prefix += min(r.PrefixTokens, r.PromptTokens)
				prompt += r.PromptTokens
			}
		}
		if prompt > 0 {
			ms = append(ms, Metric{float64(prefix) / float64(prompt), "cacheable-prompt-frac"})
		}
	}
	if s.work.MultiTurn() {
		for t, d := range turnTTFT(ok) {
			if t < maxTurnMetrics && d.N > 0 {
				ms = append(ms, Metric{float64(d.P50.Nanoseconds()), fmt.Sprintf("ttft-turn%d-p50-ns", t)})
			}
		}
	}
	return ms
}

// turnTTFT is the TTFT distribution of each turn index.
func turnTTFT(ok []*record.Record) []metrics.Dist {
	var by [][]time.Duration
	for _, r := range ok {
		if r.Conversation == 0 {
			continue
		}
		for len(by) <= r.Turn {
			by = append(by, nil)
		}
		if d, ok := r.TTFT(); ok {
			by[r.Turn] = append(by[r.Turn], d)
		}
	}
	out := make([]metrics.Dist, len(by))
	for t, ds := range by {
		out[t] = metrics.NewDist(ds)
	}
	return out
}

// lengthLog states the realised length distributions of a sample's
// successful measured requests — min/p50/max of the prompt tokens the
// server counted, of the output tokens asked for and of those it gave,
// and how many outputs differ from the length asked for — and, for
// conversations, each turn's TTFT and mean prompt tokens.
func lengthLog(s *Suite, recs []record.Record) []string {
	ok := measuredOK(recs)
	if len(ok) == 0 {
		return nil
	}
	var prompt, asked, got []int
	differ := 0
	for _, r := range ok {
		if r.PromptTokens > 0 {
			prompt = append(prompt, r.PromptTokens)
		}
		got = append(got, r.OutputTokens)
		if r.RequestedTokens > 0 {
			asked = append(asked, r.RequestedTokens)
			if r.OutputTokens != r.RequestedTokens {
				differ++
			}
		}
	}
	line := fmt.Sprintf("lengths of %d requests: prompt tokens %s (input %s); output tokens asked %s, got %s (output %s)",
		len(ok), spread(prompt), s.work.Input(), spread(asked), spread(got), s.work.Output())
	if len(asked) > 0 {
		line += fmt.Sprintf("; %d differ from the length asked for", differ)
	}
	logs := []string{line}
	if s.work.MultiTurn() {
		dists := turnTTFT(ok)
		promptBy := make([][]int, len(dists))
		for _, r := range ok {
			if r.Conversation > 0 && r.Turn < len(promptBy) && r.PromptTokens > 0 {
				promptBy[r.Turn] = append(promptBy[r.Turn], r.PromptTokens)
			}
		}
		var parts []string
		for t, d := range dists {
			if d.N > 0 {
				parts = append(parts, fmt.Sprintf("turn %d: %d requests, ttft p50 %v, prompt tokens %s", t, d.N, d.P50, spread(promptBy[t])))
			}
		}
		logs = append(logs, "conversation turns: "+strings.Join(parts, "; "))
	}
	return logs
}

// spread is "min/p50/max" of xs, or "-" when there are none.
func spread(xs []int) string {
	if len(xs) == 0 {
		return "-"
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return fmt.Sprintf("%d/%d/%d", xs[0], xs[(len(xs)-1)/2], xs[len(xs)-1])
}

// meanRequestedTokens is the mean fixed output length the measured
// requests asked for (the simulator's prediction needs it when the output
// lengths follow a distribution), or fallback when none asked.
func meanRequestedTokens(recs []record.Record, fallback int) int {
	sum, n := 0, 0
	for i := range recs {
		if recs[i].Phase == record.Measured && recs[i].RequestedTokens > 0 {
			sum += recs[i].RequestedTokens
			n++
		}
	}
	if n == 0 {
		return fallback
	}
	return (sum + n/2) / n
}
