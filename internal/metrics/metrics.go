package metrics

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/record"
)

// maxMessages is how many distinct error messages per kind a Summary keeps.
const maxMessages = 3

// MessageCount is one distinct error message and how often it occurred.
type MessageCount struct {
	Message string `json:"message"`
	Count   int    `json:"count"`
}

// Summary is the statistics of one run. See the package doc for every
// definition.
type Summary struct {
	// Requests is the number of measured requests; Failed those that failed
	// (record.Failed); Interrupted those cancelled because the run was stopped.
	Requests    int `json:"requests"`
	Failed      int `json:"failed"`
	Interrupted int `json:"interrupted"`
	// Errors counts failed measured requests by kind (Canceled excluded).
	Errors map[record.ErrorKind]int `json:"errors,omitempty"`
	// ErrorMessages keeps, per kind, the most frequent distinct messages
	// (at most three, most frequent first).
	ErrorMessages map[record.ErrorKind][]MessageCount `json:"error_messages,omitempty"`

	// Window is the length of the measured window.
	Window time.Duration `json:"window_ns"`
	// OutputTokens is the output tokens delivered inside the window (any
	// phase); PromptTokens the prompt tokens counted inside it.
	OutputTokens float64 `json:"output_tokens"`
	PromptTokens float64 `json:"prompt_tokens"`
	// MeasuredOutputTokens is the output tokens of all measured requests.
	MeasuredOutputTokens float64 `json:"measured_output_tokens"`

	OutputTokPerSec        float64 `json:"output_tok_per_s"`
	TotalTokPerSec         float64 `json:"total_tok_per_s"`
	FullRunOutputTokPerSec float64 `json:"full_run_output_tok_per_s"`
	// ReqPerSec is the request completion rate over the window, from the
	// population of OutputTokPerSec (successful requests of any phase): each
	// request counts by the share of its output tokens that arrived inside
	// the window, ÷ the window. CompletedInWindow is the plain count of
	// successful requests that ended inside it (see the package doc for why
	// the rate does not use it).
	ReqPerSec         float64 `json:"req_per_s"`
	CompletedInWindow int     `json:"completed_in_window"`
	ErrorRate         float64 `json:"error_rate"`

	TTFT       Dist `json:"ttft"`
	TPOT       Dist `json:"tpot"`
	ITL        Dist `json:"itl"`
	E2E        Dist `json:"e2e"`
	QueuedTTFT Dist `json:"queued_ttft"`
	QueuedE2E  Dist `json:"queued_e2e"`

	// LengthMismatches counts measured requests whose output length differs
	// from the fixed length requested (flagged by the client or seen here).
	// UnforcedLengthMismatches is the part of them whose request did not
	// force the length (record.LengthForced false: the generic profile sends
	// max_tokens alone), where an early natural stop is legitimate.
	LengthMismatches         int `json:"length_mismatches"`
	UnforcedLengthMismatches int `json:"unforced_length_mismatches"`
	// CachedPromptTokens and CachedOfPromptTokens are, over the successful
	// measured requests whose server reported
	// usage.prompt_tokens_details.cached_tokens (CachedReports of them), the
	// cached tokens and the prompt tokens; CachedFraction is their ratio: the
	// share of the prompt the engine's prefix cache served. With
	// CachedReports 0 the server does not say, and the fraction is unknown.
	CachedReports        int     `json:"cached_reports"`
	CachedPromptTokens   int     `json:"cached_prompt_tokens"`
	CachedOfPromptTokens int     `json:"cached_of_prompt_tokens"`
	CachedFraction       float64 `json:"cached_fraction"`
	// Retried counts measured requests that the client sent a second time on
	// a new connection because their kept-alive connection had been closed
	// by the server before any response byte (record.Retried); NewConns
	// those that went out on a newly dialled connection.
	Retried  int `json:"retried"`
	NewConns int `json:"new_conns"`
	// FallbackTokenCounts counts successful measured requests whose output
	// tokens are a chunk count because the server sent no usage.
	FallbackTokenCounts int `json:"fallback_token_counts"`
	// EstimatedITL counts successful measured requests whose per-chunk token
	// counts are estimates, so their ITL values are too: a final usage total
	// spread over multi-token chunks (TokenSource usage with fewer chunks than
	// tokens), or chunks of unknown size (Tokens 0, taken as 1).
	EstimatedITL int `json:"estimated_itl"`
	// MissingPromptTokens counts requests that contributed output in the window
	// but whose prompt tokens the server did not report.
	MissingPromptTokens int `json:"missing_prompt_tokens"`
	// Warnings are human-readable caveats about this Summary.
	Warnings []string
}

// Summarize computes the Summary of recs over the measured window w. It never
// fails: missing data shows as zero counts plus a warning.
func Summarize(recs []record.Record, w load.Window) Summary {
	s := Summary{
		Errors:        map[record.ErrorKind]int{},
		ErrorMessages: map[record.ErrorKind][]MessageCount{},
		Window:        max(w.Len(), 0),
	}
	var ttft, tpot, itl, e2e, qttft, qe2e []time.Duration
	messages := map[record.ErrorKind]map[string]int{}
	var firstSent, lastDone time.Duration
	seenMeasured := false

	for i := range recs {
		r := &recs[i]
		weights := chunkTokens(r)
		// Throughput inside the window counts every phase and outcome.
		var in, all float64
		for j, c := range r.Chunks {
			all += weights[j]
			if w.Contains(c.At) {
				in += weights[j]
			}
		}
		s.OutputTokens += in
		if len(r.Chunks) > 0 && w.Contains(r.Chunks[0].At) {
			if r.PromptTokens > 0 {
				s.PromptTokens += float64(r.PromptTokens)
			} else {
				s.MissingPromptTokens++
			}
		}

		switch {
		case r.Error == record.OK && all > 0:
			// A successful request counts by the share of its output that
			// arrived in the window (divided by the window below).
			s.ReqPerSec += in / all
			if w.Contains(r.Done) {
				s.CompletedInWindow++
			}
		case r.Error == record.Canceled && r.RequestedTokens > 0:
			// Cancelled by the harness (the cooldown ends after the window):
			// the engine was serving it normally; the share it completed in
			// the window is of the length it was asked for.
			s.ReqPerSec += min(in/float64(r.RequestedTokens), 1)
		}

		if r.Phase != record.Measured {
			continue
		}
		s.Requests++
		if !seenMeasured || r.Sent < firstSent {
			firstSent = r.Sent
		}
		if !seenMeasured || r.Done > lastDone {
			lastDone = r.Done
		}
		seenMeasured = true
		for _, v := range weights {
			s.MeasuredOutputTokens += v
		}
		n := outputTokens(r)
		if r.Error == record.LengthMismatch || (r.Error == record.OK && r.RequestedTokens > 0 && n != r.RequestedTokens) {
			s.LengthMismatches++
			if !r.LengthForced && r.Error != record.LengthMismatch {
				s.UnforcedLengthMismatches++
			}
		}
		if r.Retried {
			s.Retried++
		}
		if r.NewConn {
			s.NewConns++
		}

		switch {
		case r.Error == record.Canceled:
			s.Interrupted++
			continue
		case r.Failed():
			s.Failed++
			s.Errors[r.Error]++
			if messages[r.Error] == nil {
				messages[r.Error] = map[string]int{}
			}
			messages[r.Error][r.Message]++
			continue
		}

		if len(r.Chunks) > 0 && (r.TokenSource == record.ChunkCount || r.OutputTokens == 0) {
			s.FallbackTokenCounts++ // a cut stream has no usage by nature: only successes count here
		}
		if len(r.Chunks) == 0 {
			continue // a success without output cannot happen (EmptyOutput), but never divide by it
		}
		if r.CachedReported {
			s.CachedReports++
			s.CachedPromptTokens += r.CachedTokens
			s.CachedOfPromptTokens += r.PromptTokens
		}
		// The tokens that arrived in chunks: a natural stop's end-of-sequence
		// token, counted by some servers' usage but never sent, is not in
		// the span from the first chunk to the last.
		streamed := streamedTokens(r)
		first, last := r.Chunks[0].At, r.Chunks[len(r.Chunks)-1].At
		ttft = append(ttft, first-r.Sent)
		e2e = append(e2e, last-r.Sent)
		qttft = append(qttft, first-r.Intended)
		qe2e = append(qe2e, last-r.Intended)
		if streamed >= 2 {
			tpot = append(tpot, (last-first)/time.Duration(streamed-1))
		}
		exact := !r.EstimatedChunkTokens()
		for j := 1; j < len(r.Chunks); j++ {
			k := r.Chunks[j].Tokens
			if k <= 0 {
				k = 1
			}
			gap := (r.Chunks[j].At - r.Chunks[j-1].At) / time.Duration(k)
			for range k {
				itl = append(itl, gap)
			}
		}
		if !exact && len(r.Chunks) > 1 {
			s.EstimatedITL++
		}
	}

	s.TTFT, s.TPOT, s.ITL, s.E2E = NewDist(ttft), NewDist(tpot), NewDist(itl), NewDist(e2e)
	s.QueuedTTFT, s.QueuedE2E = NewDist(qttft), NewDist(qe2e)

	if s.Window > 0 {
		sec := s.Window.Seconds()
		s.OutputTokPerSec = s.OutputTokens / sec
		s.TotalTokPerSec = (s.OutputTokens + s.PromptTokens) / sec
		s.ReqPerSec /= sec
	} else {
		s.ReqPerSec = 0
	}
	if full := lastDone - firstSent; seenMeasured && full > 0 {
		s.FullRunOutputTokPerSec = s.MeasuredOutputTokens / full.Seconds()
	}
	if s.Requests > 0 {
		s.ErrorRate = float64(s.Failed) / float64(s.Requests)
	}
	if s.CachedOfPromptTokens > 0 {
		s.CachedFraction = float64(s.CachedPromptTokens) / float64(s.CachedOfPromptTokens)
	}
	for kind, m := range messages {
		s.ErrorMessages[kind] = topMessages(m)
	}
	s.Warnings = warnings(&s)
	return s
}

// outputTokens is a request's output token count: the server's usage, or the
// chunk count when the server reported none.
func outputTokens(r *record.Record) int {
	if r.OutputTokens > 0 {
		return r.OutputTokens
	}
	return len(r.Chunks)
}

// streamedTokens is the output tokens that arrived in r's chunks: the
// server's count less a natural stop's unsent end-of-sequence token
// (record.StreamedTokens), or the chunk count when the server reported none.
func streamedTokens(r *record.Record) int {
	if n := r.StreamedTokens(); n > 0 {
		return n
	}
	return len(r.Chunks)
}

// chunkTokens returns the output tokens credited to each chunk of r (see the
// package doc): exact per-chunk counts when they are all known and add up to
// the request's streamed tokens, else the streamed tokens spread evenly,
// else 1 per chunk.
func chunkTokens(r *record.Record) []float64 {
	w := make([]float64, len(r.Chunks))
	if len(w) == 0 {
		return w
	}
	sum, known := 0, true
	for _, c := range r.Chunks {
		if c.Tokens <= 0 {
			known = false
		}
		sum += c.Tokens
	}
	switch {
	case known && (r.OutputTokens == 0 || sum == r.StreamedTokens()):
		for i, c := range r.Chunks {
			w[i] = float64(c.Tokens)
		}
	case r.OutputTokens > 0:
		each := float64(r.StreamedTokens()) / float64(len(w))
		for i := range w {
			w[i] = each
		}
	default:
		for i := range w {
			w[i] = 1
		}
	}
	return w
}

// topMessages returns the most frequent distinct messages, ties broken by
// message text so the result is deterministic.
func topMessages(m map[string]int) []MessageCount {
	out := make([]MessageCount, 0, len(m))
	for msg, n := range m {
		out = append(out, MessageCount{Message: msg, Count: n})
	}
	slices.SortFunc(out, func(a, b MessageCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Message, b.Message)
	})
	if len(out) > maxMessages {
		out = out[:maxMessages]
	}
	return out
}

func warnings(s *Summary) []string {
	var ws []string
	if s.Window <= 0 {
		ws = append(ws, "empty measured window: throughput is not defined (no measured request completed)")
	}
	if s.Requests == 0 {
		ws = append(ws, "no measured requests")
	} else if s.TTFT.N == 0 {
		ws = append(ws, "no successful measured request produced output: latency is not defined")
	}
	if s.FallbackTokenCounts > 0 {
		ws = append(ws, fmt.Sprintf("%d measured requests had no usage from the server: output tokens are chunk counts and undercount multi-token chunks (enable stream_options.include_usage)", s.FallbackTokenCounts))
	}
	if s.EstimatedITL > 0 {
		ws = append(ws, fmt.Sprintf("%d measured requests had multi-token chunks of unknown size: their ITL values spread the usage total evenly over chunks (exact only with per-chunk usage, e.g. vLLM continuous_usage_stats)", s.EstimatedITL))
	}
	if forced := s.LengthMismatches - s.UnforcedLengthMismatches; forced > 0 {
		ws = append(ws, fmt.Sprintf("%d measured requests produced a different output length than requested: the engine did not honour the fixed length (ignore_eos/min_tokens)", forced))
	}
	if s.UnforcedLengthMismatches > 0 {
		ws = append(ws, fmt.Sprintf("%d measured requests stopped before max_tokens: this profile sends max_tokens only (no ignore_eos/min_tokens), so the engine may stop early; tok/s, TPOT and ITL are per token and stay defined, E2E covers shorter outputs", s.UnforcedLengthMismatches))
	}
	if s.MissingPromptTokens > 0 {
		ws = append(ws, fmt.Sprintf("%d requests in the window had no prompt_tokens from the server: total throughput undercounts", s.MissingPromptTokens))
	}
	if s.Interrupted > 0 {
		ws = append(ws, fmt.Sprintf("%d measured requests were cancelled: the run was interrupted", s.Interrupted))
	}
	var small []string
	for _, d := range []struct {
		name string
		n    int
	}{{"TTFT", s.TTFT.N}, {"TPOT", s.TPOT.N}, {"ITL", s.ITL.N}, {"E2E", s.E2E.N}} {
		if w := sampleWarning(d.name, d.n); w != "" {
			small = append(small, w)
		}
	}
	if w := sampleWarnings(small); w != "" {
		ws = append(ws, w)
	}
	return ws
}

// ErrorSummary is a one-paragraph human summary of the failures in s, naming
// each kind with its count and its most frequent message, for b.Fatalf and
// logs. It says so when nothing failed.
func ErrorSummary(s Summary) string {
	if s.Failed == 0 && s.Interrupted == 0 {
		return fmt.Sprintf("no failures in %d measured requests", s.Requests)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d measured requests failed (%.1f%%)", s.Failed, s.Requests, 100*s.ErrorRate)
	kinds := make([]record.ErrorKind, 0, len(s.Errors))
	for k := range s.Errors {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b record.ErrorKind) int {
		if c := cmp.Compare(s.Errors[b], s.Errors[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	for i, k := range kinds {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s ×%d", k, s.Errors[k])
		if msgs := s.ErrorMessages[k]; len(msgs) > 0 && msgs[0].Message != "" {
			fmt.Fprintf(&b, " (e.g. %q)", msgs[0].Message)
		}
	}
	if s.Interrupted > 0 {
		fmt.Fprintf(&b, "; %d cancelled by an interrupted run", s.Interrupted)
	}
	b.WriteString(".")
	return b.String()
}
