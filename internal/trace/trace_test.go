package trace

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/record"
)

const mooncake = `{"timestamp": 0, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, 48]}
{"timestamp": 1500, "input_length": 700, "output_length": 8, "hash_ids": [46]}

{"timestamp": 1500.5, "input_length": 10, "output_length": 0}
{"timestamp": 3000, "input_length": 12, "output_length": 3, "extra": true}
`

const burstGPT = `Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
5,ChatGPT,472,18,490,Conversation log
5,ChatGPT,1000,0,1000,API log
7.25,GPT-4,20,300,320,Conversation log
`

func TestParse(t *testing.T) {
	tr, err := Parse("m.jsonl", []byte(mooncake))
	require.NoError(t, err)
	assert.Equal(t, "jsonl", tr.Format)
	assert.Equal(t, 1, tr.Skipped, "the 0-token answer")
	assert.Equal(t, []Entry{
		{Offset: 0, Input: 6955, Output: 52, HashIDs: []uint64{46, 47, 48}, Line: 1},
		{Offset: 1500 * time.Millisecond, Input: 700, Output: 8, HashIDs: []uint64{46}, Line: 2},
		{Offset: 3 * time.Second, Input: 12, Output: 3, Line: 5},
	}, tr.Entries)
	assert.Equal(t, 3*time.Second, tr.Duration())

	tr, err = Parse("b.csv", []byte(burstGPT))
	require.NoError(t, err)
	assert.Equal(t, "csv", tr.Format)
	assert.Equal(t, 1, tr.Skipped)
	assert.Equal(t, []Entry{
		{Offset: 0, Input: 472, Output: 18, Line: 2},
		{Offset: 2250 * time.Millisecond, Input: 20, Output: 300, Line: 4},
	}, tr.Entries)

	// The generic CSV columns, in milliseconds, with hash ids.
	tr, err = Parse("g.csv", []byte("timestamp_ms,input_length,output_length,hash_ids\n10,5,6,1 2\n30,7,8,1;3\n"))
	require.NoError(t, err)
	assert.Equal(t, []Entry{
		{Offset: 0, Input: 5, Output: 6, HashIDs: []uint64{1, 2}, Line: 2},
		{Offset: 20 * time.Millisecond, Input: 7, Output: 8, HashIDs: []uint64{1, 3}, Line: 3},
	}, tr.Entries)
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		// Nothing to replay.
		{"empty", "  \n", "is empty"},
		// A JSON line without a length.
		{"missing field", `{"timestamp": 1, "input_length": 3}`, `f:1: want "timestamp" (ms), "input_length" and "output_length"`},
		// Not JSON on line 2.
		{"bad json", "{\"timestamp\":1,\"input_length\":1,\"output_length\":1}\n{nope", "f:2: want {"},
		// A fractional token count.
		{"fractional", `{"timestamp": 1, "input_length": 3.5, "output_length": 1}`, "f:1: input_length 3.5: want a whole number"},
		// Arrivals going backwards.
		{"unsorted", "{\"timestamp\":10,\"input_length\":1,\"output_length\":1}\n{\"timestamp\":5,\"input_length\":1,\"output_length\":1}", "f:2: arrival 5ms is before the previous one"},
		// A negative timestamp.
		{"negative time", `{"timestamp": -1, "input_length": 3, "output_length": 1}`, "f:1: timestamp -1"},
		// A bad hash id.
		{"bad hash", `{"timestamp": 1, "input_length": 3, "output_length": 1, "hash_ids": [-2]}`, "f:1: hash_ids[0] -2"},
		// A CSV without the columns.
		{"csv header", "time,prompt,answer\n1,2,3\n", "f:1: CSV header \"time,prompt,answer\": want columns Timestamp"},
		// A CSV row that is too short.
		{"csv short", "Timestamp,Request tokens,Response tokens\n1,2\n", "f:2: 2 fields, want at least 3"},
		// Not a number on row 3.
		{"csv number", "Timestamp,Request tokens,Response tokens\n1,2,3\n2,x,3\n", `f:3: Request tokens "x": not a number`},
		// Milliseconds given as seconds would be a year-long trace.
		{"unit", "Timestamp,Request tokens,Response tokens\n0,1,1\n1700000000000,1,1\n", "more than a year"},
		// Only failed requests.
		{"all skipped", "Timestamp,Request tokens,Response tokens\n0,1,0\n", "no replayable requests (1 skipped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f", []byte(tt.data))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := Read(filepath.Join(t.TempDir(), "none.jsonl"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "none.jsonl")
}

func FuzzTrace(f *testing.F) {
	f.Add([]byte(mooncake))
	f.Add([]byte(burstGPT))
	f.Add([]byte("timestamp_ms,input_length,output_length,hash_ids\n10,5,6,1 2\n"))
	f.Add([]byte("Timestamp,Request tokens,Response tokens\n\"1\n"))
	f.Add([]byte(`{"timestamp": 1e308, "input_length": 1, "output_length": 1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := Parse("fuzz", data)
		if err != nil {
			assert.True(t, strings.HasPrefix(err.Error(), "fuzz") || strings.HasPrefix(err.Error(), "trace fuzz"), "error names the file: %v", err)
			return
		}
		require.NotEmpty(t, tr.Entries)
		var prev time.Duration
		for _, e := range tr.Entries {
			assert.GreaterOrEqual(t, e.Offset, prev, "sorted")
			assert.LessOrEqual(t, e.Offset, maxOffset)
			assert.Positive(t, e.Input)
			assert.Positive(t, e.Output)
			assert.Positive(t, e.Line)
			prev = e.Offset
		}
		p, err := NewPacer(tr, 1)
		require.NoError(t, err)
		assert.Equal(t, len(tr.Entries), p.Len())
	})
}

func TestPacer(t *testing.T) {
	tr, err := Parse("b.csv", []byte(burstGPT))
	require.NoError(t, err)
	p, err := NewPacer(tr, 2)
	require.NoError(t, err)
	assert.Equal(t, 1125*time.Millisecond, p.Due(1), "twice as fast")
	wait, stop := p.Pace(time.Second, 1)
	assert.False(t, stop)
	assert.Equal(t, 125*time.Millisecond, wait)
	wait, stop = p.Pace(2*time.Second, 1)
	assert.False(t, stop)
	assert.Zero(t, wait, "late: catch up, do not shift the schedule")
	_, stop = p.Pace(0, 2)
	assert.True(t, stop, "the trace has two requests")
	for _, bad := range []float64{0, -1} {
		_, err := NewPacer(tr, bad)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "trace speed")
	}
}

// TestReplayArrivals is the bar for trace replay: a 50-line trace replayed
// open loop at speed 1 on the real clock sends every request within 5 ms
// of its offset, and stamps Intended with the trace's instant. The gaps
// vary from 0 (a burst) to 40 ms.
func TestReplayArrivals(t *testing.T) {
	if testing.Short() {
		t.Skip("a second of real time")
	}
	var b strings.Builder
	ms := 0
	for i := range 50 {
		ms += []int{0, 5, 40, 13, 20}[i%5]
		fmt.Fprintf(&b, `{"timestamp": %d, "input_length": 10, "output_length": 2}`+"\n", 1000+ms)
	}
	path := filepath.Join(t.TempDir(), "t.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	tr, err := Read(path)
	require.NoError(t, err)
	require.Len(t, tr.Entries, 50)
	// Real time on a shared 2-core machine: a descheduled sender can miss
	// by more than 5 ms once, so up to three replays; the last asserts.
	for attempt := 1; ; attempt++ {
		res := replay(t, tr)
		start := res.Records[0].Intended
		late := 0
		for i, r := range res.Records {
			want := tr.Entries[i].Offset
			assert.InDelta(t, want, r.Intended-start, float64(100*time.Microsecond), "request %d: Intended is the trace's instant", i)
			if d := r.Sent - start - want; d > 5*time.Millisecond || d < -5*time.Millisecond {
				late++
				if attempt == 3 {
					t.Errorf("request %d sent %v after the first, the trace says %v", i, r.Sent-start, want)
				}
			}
		}
		if late == 0 || attempt == 3 {
			return
		}
		t.Logf("attempt %d: %d of 50 arrivals more than 5 ms off the trace; again", attempt, late)
	}
}

// replay runs trace tr through the open-loop runner with a request that
// only stamps its send.
func replay(t *testing.T, tr *Trace) load.Result {
	t.Helper()
	p, err := NewPacer(tr, 1)
	require.NoError(t, err)
	epoch := time.Now()
	run, err := load.StartOpen(context.Background(), load.OpenConfig{Pacer: p, MaxConcurrency: 50, Epoch: epoch},
		func(ctx context.Context, rec *record.Record) {
			rec.Sent = time.Since(epoch)
			rec.Chunks = append(rec.Chunks, record.Chunk{At: rec.Sent, Tokens: 1})
			rec.FinishReason = "length"
			rec.Done = time.Since(epoch)
		})
	require.NoError(t, err)
	n := 0
	for run.Dispatch() == nil {
		n++
	}
	res := run.Finish()
	require.Equal(t, 50, n, "the schedule ends after the trace")
	require.Len(t, res.Records, 50)
	return res
}
