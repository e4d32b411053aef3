package load

import (
	"context"
	"testing"
	"time"

	"github.com/inferbench/inferbench/internal/record"
)

// BenchmarkDispatch measures the load generator's own cost per request: a
// request function that returns at once, C=8. The target is well under the
// ~1 ms scale of real inter-token latencies; dispatches/s is reported.
func BenchmarkDispatch(b *testing.B) {
	epoch := time.Now()
	do := func(_ context.Context, rec *record.Record) {
		rec.Sent = time.Since(epoch)
		rec.Done = rec.Sent
		rec.FinishReason = "stop"
	}
	run, err := Start(b.Context(), Config{Concurrency: 8, Epoch: epoch}, do)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		if err := run.Dispatch(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	res := run.Finish()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "dispatches/s")
	if res.Dispatched != n {
		b.Fatalf("dispatched %d, want %d", res.Dispatched, n)
	}
}
