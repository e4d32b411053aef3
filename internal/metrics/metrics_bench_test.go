package metrics

import (
	"testing"
	"time"

	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/record"
)

// BenchmarkSummarize summarises 1000 requests of 128 single-token chunks
// (128k ITL values) and reports records/s; a run's statistics must be cheap
// next to the run itself.
func BenchmarkSummarize(b *testing.B) {
	recs := make([]record.Record, 1000)
	for i := range recs {
		sent := time.Duration(i) * time.Millisecond
		cs := make([]record.Chunk, 128)
		for j := range cs {
			cs[j] = record.Chunk{At: sent + 50*time.Millisecond + time.Duration(j)*10*time.Millisecond, Tokens: 1}
		}
		recs[i] = record.Record{Phase: record.Measured, Intended: sent, Sent: sent, Chunks: cs,
			Done: cs[127].At, OutputTokens: 128, PromptTokens: 64, TokenSource: record.Continuous}
	}
	w := load.Window{Start: 0, End: 3 * time.Second}
	b.ReportAllocs()
	for b.Loop() {
		Summarize(recs, w)
	}
	b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
