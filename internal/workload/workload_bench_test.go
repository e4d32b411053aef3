package workload

import "testing"

// BenchmarkRequest builds 1024-token synthetic requests; reports requests/s.
// It runs on the dispatch path, so it must stay far below a request's TTFT.
func BenchmarkRequest(b *testing.B) {
	w, err := New(Spec{InputTokens: 1024, OutputTokens: 128, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	seq := 0
	b.ReportAllocs()
	for b.Loop() {
		w.Request(seq)
		seq++
	}
	b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "requests/s")
}
