package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/record"
)

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// chunks builds chunks from (at ms, tokens) pairs.
func chunks(pairs ...float64) []record.Chunk {
	var cs []record.Chunk
	for i := 0; i+1 < len(pairs); i += 2 {
		cs = append(cs, record.Chunk{At: ms(pairs[i]), Tokens: int(pairs[i+1])})
	}
	return cs
}

// measured is a successful measured request sent at sent ms.
func measured(sent float64, cs []record.Chunk, out int) record.Record {
	done := ms(sent)
	if len(cs) > 0 {
		done = cs[len(cs)-1].At
	}
	return record.Record{Phase: record.Measured, Intended: ms(sent), Sent: ms(sent), Chunks: cs, Done: done,
		OutputTokens: out, TokenSource: record.Continuous, PromptTokens: 10}
}

func durs(vs ...float64) []time.Duration {
	out := make([]time.Duration, len(vs))
	for i, v := range vs {
		out[i] = ms(v)
	}
	return out
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		// numpy.percentile([10,20,30,40], 50) = 25: halfway between the middle two.
		{"median of even sample", durs(10, 20, 30, 40), 50, ms(25)},
		// rank 0.9·3 = 2.7 → 30 + 0.7·10 = 37.
		{"p90 interpolates", durs(10, 20, 30, 40), 90, ms(37)},
		// rank 0.99·3 = 2.97 → 30 + 0.97·10 = 39.7.
		{"p99 interpolates near the max", durs(10, 20, 30, 40), 99, ms(39.7)},
		// rank 0.5·4 = 2 exactly → the middle value, no interpolation.
		{"median of odd sample is an order statistic", durs(1, 2, 3, 4, 100), 50, ms(3)},
		// p0 and p100 are the extremes.
		{"p0 is the min", durs(5, 6, 7), 0, ms(5)},
		{"p100 is the max", durs(5, 6, 7), 100, ms(7)},
		// Out-of-range p is clamped rather than indexing out of bounds.
		{"p above 100 clamps", durs(5, 6, 7), 150, ms(7)},
		// A single value is every percentile.
		{"single value", durs(42), 99, ms(42)},
		// An empty sample has no percentile: 0 (Dist.N = 0 tells the caller).
		{"empty", nil, 50, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Percentile(tt.sorted, tt.p))
		})
	}
}

func TestMinSamples(t *testing.T) {
	tests := []struct {
		p    float64
		want int
	}{
		{99, 100}, // one value above p99 needs 100 samples
		{95, 20},  // 1/0.05
		{90, 10},  // 1/0.1
		{50, 2},   // 1/0.5
		{99.9, 1000},
		{100, 1}, // the max is always resolved
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, MinSamples(tt.p), "p%g", tt.p)
	}
}

func TestNewDist(t *testing.T) {
	// Unsorted input: NewDist sorts a copy and leaves the input alone.
	in := durs(40, 10, 30, 20)
	d := NewDist(in)
	assert.Equal(t, Dist{N: 4, Mean: ms(25), Min: ms(10), P50: ms(25), P90: ms(37), P95: ms(38.5), P99: ms(39.7), Max: ms(40)}, d)
	assert.Equal(t, durs(40, 10, 30, 20), in)
	assert.Equal(t, Dist{}, NewDist(nil))
}

func TestSummarize(t *testing.T) {
	wide := load.Window{Start: 0, End: ms(1000)}
	tests := []struct {
		name   string
		recs   []record.Record
		window load.Window
		check  func(t *testing.T, s Summary)
	}{
		{
			// Sent 0, chunks at 100/110/120 ms: TTFT 100, E2E 120, TPOT 10, ITL two 10 ms values.
			name:   "basic definitions",
			recs:   []record.Record{measured(0, chunks(100, 1, 110, 1, 120, 1), 3)},
			window: wide,
			check: func(t *testing.T, s Summary) {
				assert.Equal(t, 1, s.Requests)
				assert.Equal(t, ms(100), s.TTFT.P50)
				assert.Equal(t, ms(120), s.E2E.P50)
				assert.Equal(t, ms(10), s.TPOT.P50)
				assert.Equal(t, 2, s.ITL.N)
				assert.Equal(t, ms(10), s.ITL.Max)
			},
		},
		{
			// A 4-token chunk 40 ms after the first gives four 10 ms ITL values; TPOT = 40/(5−1) = 10.
			name:   "multi-token chunk splits into per-token ITL",
			recs:   []record.Record{measured(0, chunks(100, 1, 140, 4), 5)},
			window: wide,
			check: func(t *testing.T, s Summary) {
				assert.Equal(t, 4, s.ITL.N)
				assert.Equal(t, ms(10), s.ITL.Min)
				assert.Equal(t, ms(10), s.ITL.Max)
				assert.Equal(t, ms(10), s.TPOT.P50)
				assert.Zero(t, s.EstimatedITL)
			},
		},
		{
			// Done (usage frame, [DONE]) at 900 ms does not extend E2E past the last chunk at 120.
			name: "usage frame does not extend E2E",
			recs: func() []record.Record {
				r := measured(0, chunks(100, 1, 120, 1), 2)
				r.Done = ms(900)
				return []record.Record{r}
			}(),
			window: wide,
			check: func(t *testing.T, s Summary) {
				assert.Equal(t, ms(120), s.E2E.Max)
			},
		},
		{
			// Intended 30 ms before Sent: the queued variants add the client-side wait.
			name: "queued variants start at Intended",
			recs: func() []record.Record {
				r := measured(50, chunks(150, 1, 170, 1), 2)
				r.Intended = ms(20)
				return []record.Record{r}
			}(),
			window: wide,
			check: func(t *testing.T, s Summary) {
				assert.Equal(t, ms(100), s.TTFT.P50)
				assert.Equal(t, ms(130), s.QueuedTTFT.P50)
				assert.Equal(t, ms(150), s.QueuedE2E.P50)
			},
		},
		{
			// No usage from the server: output tokens are the chunk count, flagged and warned.
			name: "missing usage falls back to chunk count, flagged",
			recs: func() []record.Record {
				r := measured(0, chunks(100, 1, 110, 1, 120, 1), 3)
				r.TokenSource = record.ChunkCount
				r2 := measured(0, chunks(100, 0, 110, 0), 0) // nothing reported at all
				r2.TokenSource = ""
				cut := measured(0, chunks(100, 1), 0) // a cut stream never has usage: not a fallback
				cut.Error, cut.TokenSource = record.StreamCut, ""
				return []record.Record{r, r2, cut}
			}(),
			window: wide,
			check: func(t *testing.T, s Summary) {
				assert.Equal(t, 2, s.FallbackTokenCounts)
				assert.InDelta(t, 6, s.OutputTokens, 1e-9) // 3 + 1 per chunk of the unreported and the cut one
				assert.Equal(t, 2, s.TPOT.N)               // chunk count 2 still gives a TPOT
				assertWarning(t, s, "no usage")
			},
		},
		{
			// One output token: TTFT and E2E exist, TPOT and ITL do not.
			name:   "single-token output has no TPOT or ITL",
			recs:   []record.Record{measured(0, chunks(100, 1), 1)},
			window: wide,
			check: func(t *testing.T, s Summary) {
				assert.Equal(t, 1, s.TTFT.N)
				assert.Equal(t, 1, s.E2E.N)
				assert.Zero(t, s.TPOT.N)
				assert.Zero(t, s.ITL.N)
			},
		},
		{
			// A failed request is counted and classified but excluded from latency.
			name: "failed requests counted, not in latency",
			recs: func() []record.Record {
				f := measured(0, chunks(50, 1), 1)
				f.Error, f.Status, f.Message = record.HTTPStatus, 503, "overloaded"
				f2 := measured(0, nil, 0)
				f2.Error, f2.Message = record.Timeout, "no headers after 30s"
				return []record.Record{measured(0, chunks(100, 1, 110, 1), 2), f, f2}
			}(),
			window: wide,
			check: func(t *testing.T, s Summary) {
				assert.Equal(t, 3, s.Requests)
				assert.Equal(t, 2, s.Failed)
				assert.InDelta(t, 2.0/3, s.ErrorRate, 1e-12)
				assert.Equal(t, map[record.ErrorKind]int{record.HTTPStatus: 1, record.Timeout: 1}, s.Errors)
				assert.Equal(t, []MessageCount{{"overloaded", 1}}, s.ErrorMessages[record.HTTPStatus])
				assert.Equal(t, 1, s.TTFT.N)
				assert.Equal(t, ms(100), s.TTFT.Min)
				assert.InDelta(t, 1.0, s.ReqPerSec, 1e-9) // one success in a 1 s window
			},
		},
		{
			// A natural stop whose usage counts the unsent EOS token (llama-server):
			// three chunks of one token, usage 4. Throughput and TPOT use the three
			// streamed tokens, ITL is exact, no length complaint (max_tokens 4 met
			// by the server's count). The old code spread 4 tokens over 3 chunks
			// (4/3 each), flagged the ITL as estimated and gave TPOT 20/3 ms.
			name: "natural stop with EOS in usage",
			recs: func() []record.Record {
				r := measured(0, chunks(100, 1, 110, 1, 120, 1), 4)
				r.TokenSource, r.EOSCounted, r.RequestedTokens, r.FinishReason = record.Usage, true, 4, "stop"
				return []record.Record{r}
			}(),
			window: wide,
			check: func(t *testing.T, s Summary) {
				assert.InDelta(t, 3.0, s.OutputTokPerSec, 1e-9)
				assert.Equal(t, ms(10), s.TPOT.P50)
				assert.Zero(t, s.EstimatedITL)
				assert.Zero(t, s.LengthMismatches)
				for _, w := range s.Warnings {
					assert.NotContains(t, w, "length", "no length warning")
					assert.NotContains(t, w, "spread", "no estimated-ITL warning")
				}
			},
		},
		{
			// Cached tokens as the server reports them: 60 of 100 and 0 of 100
			// prompt tokens; a request from a server that does not report them
			// is left out of the fraction, not counted as 0.
			name: "cached fraction of prompt tokens",
			recs: func() []record.Record {
				a := measured(0, chunks(100, 1), 1)
				a.PromptTokens, a.CachedTokens, a.CachedReported = 100, 60, true
				b := measured(0, chunks(100, 1), 1)
				b.PromptTokens, b.CachedReported = 100, true
				c := measured(0, chunks(100, 1), 1)
				c.PromptTokens = 100
				return []record.Record{a, b, c}
			}(),
			window: wide,
			check: func(t *testing.T, s Summary) {
				assert.Equal(t, 2, s.CachedReports)
				assert.InDelta(t, 0.3, s.CachedFraction, 1e-12)
			},
		},
		{
			// Short outputs: one where the request forced the length (vLLM
			// profile: the engine broke the contract) and one where it did not
			// (generic profile: a legitimate early stop). Each gets its own
			// warning; only the forced one blames ignore_eos/min_tokens.
			name: "forced and unforced short outputs",
			recs: func() []record.Record {
				f := measured(0, chunks(100, 1, 110, 1), 2)
				f.RequestedTokens, f.LengthForced = 8, true
				u := measured(0, chunks(100, 1, 110, 1), 2)
				u.RequestedTokens = 8
				return []record.Record{f, u}
			}(),
			window: wide,
			check: func(t *testing.T, s Summary) {
				assert.Equal(t, 2, s.LengthMismatches)
				assert.Equal(t, 1, s.UnforcedLengthMismatches)
				joined := strings.Join(s.Warnings, "\n")
				assert.Contains(t, joined, "1 measured requests produced a different output length than requested: the engine did not honour")
				assert.Contains(t, joined, "1 measured requests stopped before max_tokens: this profile sends max_tokens only")
			},
		},
		{
			// req/s counts what tok/s counts: successes of any phase, each by
			// the share of its tokens inside the window. A warm-up and a
			// cooldown request lie inside it (1 each), a measured one straddles
			// its end (½), and a failed one does not count (a failure is not
			// throughput). The old definition (measured ending inside) gave 0.
			name: "req/s over the population of tok/s",
			recs: func() []record.Record {
				wu := measured(0, chunks(100, 1, 200, 1), 2)
				wu.Phase = record.Warmup
				cd := measured(300, chunks(400, 1, 500, 1), 2)
				cd.Phase = record.Cooldown
				late := measured(600, chunks(900, 1, 1200, 1), 2)
				bad := measured(0, chunks(50, 1), 1)
				bad.Phase, bad.Error = record.Warmup, record.StreamCut
				return []record.Record{wu, cd, late, bad}
			}(),
			window: wide,
			check: func(t *testing.T, s Summary) {
				// Two whole successes and half of the late one (one of its two
				// tokens arrived in the window); the failure does not count.
				assert.InDelta(t, 2.5, s.ReqPerSec, 1e-9)
				assert.Equal(t, 2, s.CompletedInWindow)
				assert.InDelta(t, 6.0, s.OutputTokPerSec, 1e-9, "six tokens arrive in the window, the late and the cut requests' included")
			},
		},
		{
			// A cancelled measured request (interrupted run) is neither a failure nor a latency sample.
			name: "cancelled measured request is interrupted, not failed",
			recs: func() []record.Record {
				c := measured(0, chunks(100, 1), 1)
				c.Error = record.Canceled
				return []record.Record{c, measured(0, chunks(100, 1), 1)}
			}(),
			window: wide,
			check: func(t *testing.T, s Summary) {
				assert.Equal(t, 0, s.Failed)
				assert.Equal(t, 1, s.Interrupted)
				assert.Zero(t, s.ErrorRate)
				assert.Equal(t, 1, s.TTFT.N)
				assertWarning(t, s, "interrupted")
			},
		},
		{
			// Window [100, 200] ms: warm-up chunk at 50 out, at 150 in; measured at 250 out;
			// cooldown chunk at 190 in. 3 tokens in 0.1 s = 30 tok/s.
			name: "window clipping counts every phase inside, nothing outside",
			recs: func() []record.Record {
				wu := measured(0, chunks(50, 1, 150, 1), 2)
				wu.Phase = record.Warmup
				cd := measured(180, chunks(190, 1), 1)
				cd.Phase = record.Cooldown
				cd.Error = record.Canceled
				m := measured(100, chunks(150, 1, 250, 1), 2)
				return []record.Record{wu, m, cd}
			}(),
			window: load.Window{Start: ms(100), End: ms(200)},
			check: func(t *testing.T, s Summary) {
				assert.Equal(t, 1, s.Requests)
				assert.InDelta(t, 3, s.OutputTokens, 1e-9)
				assert.InDelta(t, 30, s.OutputTokPerSec, 1e-9)
				// Prompt tokens: the measured (first chunk 150) and the cooldown (190) prefilled inside; the warm-up at 50 did not.
				assert.InDelta(t, 20, s.PromptTokens, 1e-9)
				assert.InDelta(t, 230, s.TotalTokPerSec, 1e-9)
				// Full run: 2 measured tokens over Sent 100 → Done 250.
				assert.InDelta(t, 2/0.150, s.FullRunOutputTokPerSec, 1e-9)
				assert.Zero(t, s.Interrupted) // cooldown cancellations are not interruptions
			},
		},
		{
			// Chunk token counts unknown (0) but usage says 6: each of 2 chunks counts 3 for throughput; ITL is per chunk and flagged.
			name: "unknown chunk tokens spread usage evenly",
			recs: func() []record.Record {
				r := measured(0, chunks(100, 0, 130, 0), 6)
				r.TokenSource = record.Usage
				return []record.Record{r}
			}(),
			window: load.Window{Start: ms(120), End: ms(1000)},
			check: func(t *testing.T, s Summary) {
				assert.InDelta(t, 3, s.OutputTokens, 1e-9)
				assert.InDelta(t, 6, s.MeasuredOutputTokens, 1e-9)
				assert.Equal(t, 1, s.EstimatedITL)
				assert.Equal(t, 1, s.ITL.N)
				assert.Equal(t, ms(30), s.ITL.Max)
				assert.Equal(t, ms(6), s.TPOT.P50) // 30 ms / (6−1)
				assertWarning(t, s, "spread the usage total")
			},
		},
		{
			// Final usage only (7 tokens over 3 chunks, spread 3/2/2 by the client): throughput
			// is exact, ITL values are estimates and flagged.
			name: "usage spread over chunks is flagged as estimated ITL",
			recs: func() []record.Record {
				r := measured(0, chunks(100, 3, 120, 2, 140, 2), 7)
				r.TokenSource = record.Usage
				return []record.Record{r}
			}(),
			window: wide,
			check: func(t *testing.T, s Summary) {
				assert.InDelta(t, 7, s.OutputTokens, 1e-9)
				assert.Equal(t, 4, s.ITL.N) // 2 + 2 tokens after the first chunk
				assert.Equal(t, ms(10), s.ITL.P50)
				assert.Equal(t, 1, s.EstimatedITL)
			},
		},
		{
			// Asked for 4 tokens, got 3 without a client flag; plus one the client flagged.
			name: "length mismatches counted",
			recs: func() []record.Record {
				a := measured(0, chunks(100, 1, 110, 2), 3)
				a.RequestedTokens = 4
				b := measured(0, chunks(100, 1, 110, 1), 2)
				b.RequestedTokens, b.Error = 4, record.LengthMismatch
				return []record.Record{a, b}
			}(),
			window: wide,
			check: func(t *testing.T, s Summary) {
				assert.Equal(t, 2, s.LengthMismatches)
				assertWarning(t, s, "fixed length")
			},
		},
		{
			// Nothing measured: zero statistics and warnings, never a panic or NaN.
			name:   "no records",
			recs:   nil,
			window: load.Window{},
			check: func(t *testing.T, s Summary) {
				assert.Zero(t, s.Requests)
				assert.Zero(t, s.OutputTokPerSec)
				assertWarning(t, s, "empty measured window")
				assertWarning(t, s, "no measured requests")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, Summarize(tt.recs, tt.window))
		})
	}
}

func TestSmallSampleWarnings(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want string // substring of the TTFT warning; "" = no TTFT warning
	}{
		{"40 samples: p99 unresolved, p95 fine", 40, "TTFT [p99] n=40"},
		{"15 samples: p99 and p95 unresolved", 15, "TTFT [p99 p95] n=15"},
		{"100 samples: all resolved", 100, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var recs []record.Record
			for i := range tt.n {
				recs = append(recs, measured(0, chunks(float64(100+i), 1), 1))
			}
			s := Summarize(recs, load.Window{Start: 0, End: ms(1000)})
			var got string
			for _, w := range s.Warnings {
				if strings.HasPrefix(w, "few samples") && strings.Contains(w, "TTFT [") {
					got = w
				}
			}
			if tt.want == "" {
				assert.Empty(t, got)
				return
			}
			assert.Contains(t, got, tt.want)
		})
	}
}

func TestErrorSummary(t *testing.T) {
	var recs []record.Record
	for i := range 5 {
		r := measured(0, chunks(100, 1), 1)
		switch {
		case i < 2:
			r.Error, r.Message = record.HTTPStatus, "503 overloaded"
		case i == 2:
			r.Error, r.Message = record.StreamCut, "unexpected EOF"
		}
		recs = append(recs, r)
	}
	s := Summarize(recs, load.Window{End: ms(1000)})
	got := ErrorSummary(s)
	assert.Equal(t, `3 of 5 measured requests failed (60.0%): http-status ×2 (e.g. "503 overloaded"); stream-cut ×1 (e.g. "unexpected EOF").`, got)

	ok := Summarize([]record.Record{measured(0, chunks(1, 1), 1)}, load.Window{End: ms(10)})
	assert.Equal(t, "no failures in 1 measured requests", ErrorSummary(ok))
}

func TestTopMessagesKeepsThreeMostFrequent(t *testing.T) {
	got := topMessages(map[string]int{"a": 1, "b": 5, "c": 2, "d": 2})
	require.Len(t, got, 3)
	assert.Equal(t, []MessageCount{{"b", 5}, {"c", 2}, {"d", 2}}, got)
}

func assertWarning(t *testing.T, s Summary, sub string) {
	t.Helper()
	for _, w := range s.Warnings {
		if strings.Contains(w, sub) {
			return
		}
	}
	assert.Fail(t, fmt.Sprintf("no warning containing %q in %q", sub, s.Warnings))
}
