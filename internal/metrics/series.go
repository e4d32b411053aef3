package metrics

import (
	"fmt"
	"time"

	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/record"
)

// OutputSeries is the output throughput over time inside the window: bucket
// i covers [Start + i·bucket, Start + (i+1)·bucket) (the last one ends at
// End, inclusive, and may be shorter) and holds the output tokens whose chunk
// arrived in it — any phase, credited as in OutputTokPerSec — divided by the
// bucket's length in seconds. Tokens are counted, not chunks, so multi-token
// chunks do not make the peak lower than the mean. An empty window or a
// non-positive bucket is an error.
func OutputSeries(recs []record.Record, w load.Window, bucket time.Duration) ([]float64, error) {
	if bucket <= 0 {
		return nil, fmt.Errorf("metrics: series bucket %v: must be positive", bucket)
	}
	if w.Len() <= 0 {
		return nil, fmt.Errorf("metrics: series: empty window %v → %v", w.Start, w.End)
	}
	n := int((w.Len() + bucket - 1) / bucket)
	tokens := make([]float64, n)
	for i := range recs {
		weights := chunkTokens(&recs[i])
		for j, c := range recs[i].Chunks {
			if !w.Contains(c.At) {
				continue
			}
			k := min(int((c.At-w.Start)/bucket), n-1) // At == End falls in the last bucket
			tokens[k] += weights[j]
		}
	}
	for k := range tokens {
		length := min(bucket, w.End-w.Start-time.Duration(k)*bucket)
		tokens[k] /= length.Seconds()
	}
	return tokens, nil
}
