package metrics

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/record"
)

// TestLatencyValuesMatchSummarize holds LatencyValues to Summarize's
// definitions: the Dists of the extracted values equal Summarize's on
// records that exercise every rule (failures, cancellations, other phases,
// no usage, multi-token and unknown-size chunks, one-token outputs).
func TestLatencyValuesMatchSummarize(t *testing.T) {
	fallback := measured(5, chunks(30, 0, 34, 0, 40, 0), 0)
	fallback.TokenSource = record.ChunkCount
	failed := measured(7, chunks(50, 1), 1)
	failed.Error = record.StreamCut
	canceled := measured(8, chunks(60, 1), 1)
	canceled.Error = record.Canceled
	warm := measured(0, chunks(5, 1, 9, 1), 2)
	warm.Phase = record.Warmup
	queued := measured(12, chunks(70, 1, 75, 2, 77, 1), 4)
	queued.Intended = ms(2)
	recs := []record.Record{
		measured(0, chunks(10, 1, 14, 1, 18, 1), 3), // one token a chunk
		measured(1, chunks(20, 1, 30, 3), 4),        // a three-token chunk: three ITL values
		measured(2, chunks(25, 1), 1),               // one token: no TPOT, no ITL
		fallback, failed, canceled, warm, queued,
	}
	sum := Summarize(recs, load.Window{Start: 0, End: ms(100)})
	l := LatencyValues(recs)
	for name, pair := range map[string][2]Dist{
		"TTFT": {sum.TTFT, NewDist(l.TTFT)}, "TPOT": {sum.TPOT, NewDist(l.TPOT)}, "ITL": {sum.ITL, NewDist(l.ITL)},
		"E2E": {sum.E2E, NewDist(l.E2E)}, "QueuedTTFT": {sum.QueuedTTFT, NewDist(l.QueuedTTFT)},
		"QueuedE2E": {sum.QueuedE2E, NewDist(l.QueuedE2E)},
	} {
		assert.Equal(t, pair[0], pair[1], name)
		assert.NotZero(t, pair[1].N, "%s: the fixture must exercise it", name)
	}
	assert.IsNonDecreasing(t, l.ITL, "values come sorted")
}
