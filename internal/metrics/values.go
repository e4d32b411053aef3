package metrics

import (
	"slices"
	"time"

	"github.com/inferbench/inferbench/internal/record"
)

// Latencies are the raw latency values behind a Summary's distributions:
// every value Summarize puts into TTFT, TPOT, ITL, E2E, QueuedTTFT and
// QueuedE2E, by the same definitions (see the package doc), each sorted
// ascending. Pooling the records of several samples and taking their
// Latencies gives the pooled distributions, whose order statistics bound
// the percentiles with confidence intervals.
type Latencies struct {
	TTFT, TPOT, ITL, E2E, QueuedTTFT, QueuedE2E []time.Duration
}

// LatencyValues extracts the latency values of the measured requests in
// recs that succeeded, exactly as Summarize does (TestLatencyValuesMatch
// Summarize holds the two together).
func LatencyValues(recs []record.Record) Latencies {
	var l Latencies
	for i := range recs {
		r := &recs[i]
		if r.Phase != record.Measured || r.Error == record.Canceled || r.Failed() || len(r.Chunks) == 0 {
			continue
		}
		n := outputTokens(r)
		first, last := r.Chunks[0].At, r.Chunks[len(r.Chunks)-1].At
		l.TTFT = append(l.TTFT, first-r.Sent)
		l.E2E = append(l.E2E, last-r.Sent)
		l.QueuedTTFT = append(l.QueuedTTFT, first-r.Intended)
		l.QueuedE2E = append(l.QueuedE2E, last-r.Intended)
		if n >= 2 {
			l.TPOT = append(l.TPOT, (last-first)/time.Duration(n-1))
		}
		for j := 1; j < len(r.Chunks); j++ {
			k := max(r.Chunks[j].Tokens, 1)
			gap := (r.Chunks[j].At - r.Chunks[j-1].At) / time.Duration(k)
			for range k {
				l.ITL = append(l.ITL, gap)
			}
		}
	}
	for _, s := range []([]time.Duration){l.TTFT, l.TPOT, l.ITL, l.E2E, l.QueuedTTFT, l.QueuedE2E} {
		slices.Sort(s)
	}
	return l
}
