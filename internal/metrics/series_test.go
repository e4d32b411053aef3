package metrics

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/record"
)

func TestOutputSeries(t *testing.T) {
	// Window [100 ms, 350 ms], 100 ms buckets: [100,200) [200,300) [300,350].
	w := load.Window{Start: ms(100), End: ms(350)}
	wu := measured(0, chunks(50, 1, 150, 1), 2) // the chunk at 50 is before the window
	wu.Phase = record.Warmup
	recs := []record.Record{
		wu,
		measured(100, chunks(120, 4, 250, 1), 5), // a 4-token chunk counts 4
		measured(100, chunks(300, 1, 350, 1), 2), // 350 = End falls in the last bucket
		measured(100, chunks(400, 1), 1),         // after the window
	}
	got, err := OutputSeries(recs, w, 100*time.Millisecond)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.InDelta(t, 50, got[0], 1e-9) // 5 tokens / 0.1 s
	assert.InDelta(t, 10, got[1], 1e-9) // 1 token / 0.1 s
	assert.InDelta(t, 40, got[2], 1e-9) // 2 tokens / 0.05 s
	// The series integrates to the steady-state output tokens.
	s := Summarize(recs, w)
	assert.InDelta(t, s.OutputTokens, got[0]*0.1+got[1]*0.1+got[2]*0.05, 1e-9)

	_, err = OutputSeries(recs, w, 0)
	require.ErrorContains(t, err, "must be positive")
	_, err = OutputSeries(recs, load.Window{}, time.Second)
	require.ErrorContains(t, err, "empty window")
}
