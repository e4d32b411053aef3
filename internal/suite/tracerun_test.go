package suite

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/testenv"
)

// TestTraceReplay replays a 50-line Mooncake-style trace on the simulated
// engine through StartTrace, Dispatch and TopUp (as BenchmarkServe does
// with any -benchtime): every request of the trace is sent once, intended
// at its offset ÷ -trace-speed exactly, with the trace's output length,
// and requests that share hash ids share a prefix. That each is also sent
// within 5 ms of its instant is TestTimingTraceReplay's: the race run's
// parallel tests made 5 of 50 late in each of three attempts once.
func TestTraceReplay(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a second of real time")
	}
	traceReplay(t, false)
}

// TestTimingTraceReplay: TestTraceReplay's replay, every request sent
// within 5 ms of its instant, in up to three attempts.
func TestTimingTraceReplay(t *testing.T) {
	testenv.Timing(t)
	traceReplay(t, true)
}

func traceReplay(t *testing.T, timing bool) {
	var b strings.Builder
	var offsets []time.Duration
	var outputs []int
	ms := 0
	for i := range 50 {
		ms += []int{0, 30, 80, 20, 50}[i%5]
		offsets = append(offsets, time.Duration(ms)*time.Millisecond/2) // -trace-speed=2
		outputs = append(outputs, 4+(i%4)*4)
		line, _ := json.Marshal(map[string]any{"timestamp": 1000 + ms, "input_length": 80 + i, "output_length": outputs[i], "hash_ids": []int{i % 3}})
		b.Write(append(line, '\n'))
	}
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))

	o := testOptions(t, "fake:friendli-like")
	o.Concurrency, o.Trace, o.TraceSpeed, o.TraceBlockTokens = "", path, 2, 32
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	defer s.Close()
	require.True(t, s.HasTrace())
	assert.Equal(t, "trace=2x", s.TraceName(s.engines[0]))

	for attempt := 1; ; attempt++ {
		sm, err := s.StartTrace(s.ctx, s.engines[0])
		require.NoError(t, err)
		require.NoError(t, sm.Dispatch(), "the first arrival")
		require.NoError(t, sm.TopUp(), "the rest of the trace; its end is not an error")
		r := sm.Finish()
		require.NoError(t, r.err())
		assert.Equal(t, 50, r.Summary.Requests)
		assert.Zero(t, r.Summary.Failed)
		assert.Contains(t, r.Line, "BenchmarkServe/trace=2x-")

		var recs []record.Record
		for _, rec := range readRecords(t, s.jsonlPath(s.engines[0].name)) {
			if rec.Phase == record.Measured && rec.Sample == attempt-1 {
				recs = append(recs, rec)
			}
		}
		require.Len(t, recs, 50)
		sort.Slice(recs, func(i, j int) bool { return recs[i].Seq < recs[j].Seq })
		late := 0
		for i, rec := range recs {
			assert.InDelta(t, offsets[i], rec.Intended-recs[0].Intended, float64(100*time.Microsecond), "request %d intended at the trace's offset", i)
			if d := rec.Sent - recs[0].Intended - offsets[i]; d > 5*time.Millisecond || d < -5*time.Millisecond {
				late++
			}
			assert.Equal(t, outputs[i], rec.RequestedTokens, "request %d: the trace's output length", i)
			assert.Equal(t, outputs[i], rec.OutputTokens, "request %d: as served", i)
			assert.Positive(t, rec.PrefixTokens, "request %d: its hash id's block is a shared prefix", i)
		}
		if !timing {
			return
		}
		if late == 0 || attempt == 3 {
			assert.Zero(t, late, "arrivals sent more than 5 ms off the trace (attempt %d)", attempt)
			return
		}
		t.Logf("attempt %d: %d of 50 arrivals more than 5 ms off the trace on a loaded machine; again", attempt, late)
	}
}
