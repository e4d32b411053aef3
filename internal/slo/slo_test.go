package slo

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/record"
)

const ms = time.Millisecond

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want string // canonical form; "" means an error containing err
		err  string
	}{
		// The example, canonicalised.
		{in: "ttft-p99=2s,tpot-p99=100ms", want: "ttft-p99=2s,tpot-p99=100ms"},
		// Every metric, every percentile, case and spaces forgiven.
		{in: " TTFT-p50=1s , tpot-p90=5ms,itl-p95=20ms,e2e-p99=1m", want: "ttft-p50=1s,tpot-p90=5ms,itl-p95=20ms,e2e-p99=1m0s"},
		// MLPerf presets expand to p99 TTFT and TPOT.
		{in: "mlperf-server:llama3.1-8b", want: "ttft-p99=2s,tpot-p99=100ms"},
		{in: "mlperf-interactive:llama3.1-8b", want: "ttft-p99=500ms,tpot-p99=30ms"},
		{in: "mlperf-interactive:deepseek-r1", want: "ttft-p99=1.5s,tpot-p99=15ms"},
		{in: "mlperf-server:gpt-oss-120b", want: "ttft-p99=3s,tpot-p99=80ms"},
		{in: "MLPerf-Server:Llama3.1-405B", want: "ttft-p99=6s,tpot-p99=175ms"},
		// A preset combined with a further limit.
		{in: "mlperf-server:llama2-70b,e2e-p90=20s", want: "ttft-p99=2s,tpot-p99=200ms,e2e-p90=20s"},
		// Errors: nothing, unknown names, bad durations, duplicates.
		{in: "", err: "no limits"},
		{in: " , ", err: "no limits"},
		{in: "ttft=2s", err: "METRIC-pNN"},
		{in: "ttft-p99", err: "neither"},
		{in: "latency-p99=2s", err: `unknown metric "latency"`},
		{in: "ttft-p98=2s", err: "unknown percentile p98"},
		{in: "ttft-p99=2", err: "not a duration"},
		{in: "ttft-p99=-1s", err: "must be positive"},
		{in: "ttft-p99=0s", err: "must be positive"},
		{in: "ttft-p99=48h", err: "at most 24h"},
		{in: "ttft-p99=1s,TTFT-p99=2s", err: "limited twice"},
		{in: "mlperf-server:llama3.1-8b,ttft-p99=1s", err: "limited twice"},
		{in: "mlperf-interactive:mixtral-8x7b", err: "no MLPerf interactive constraint"},
		{in: "mlperf-server:gpt-5", err: `model "gpt-5"`},
		{in: "mlperf-offline:llama3.1-8b", err: "unknown preset scenario"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := Parse(tt.in)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				assert.True(t, strings.HasPrefix(err.Error(), "-slo"), "names the flag: %v", err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, s.String())
			again, err := Parse(s.String())
			require.NoError(t, err, "the canonical form parses")
			assert.Equal(t, s, again)
		})
	}
}

// req is a successful measured request intended at 0, sent at sent, with
// one-token chunks at the given offsets.
func req(sent time.Duration, at ...time.Duration) record.Record {
	r := record.Record{Phase: record.Measured, Sent: sent, OutputTokens: len(at), Done: at[len(at)-1]}
	for _, a := range at {
		r.Chunks = append(r.Chunks, record.Chunk{At: a, Tokens: 1})
	}
	return r
}

func TestEvaluate(t *testing.T) {
	ttft100 := SLO{Limits: []Limit{{TTFT, 50, 100 * ms}}}
	both := SLO{Limits: []Limit{{TTFT, 99, 100 * ms}, {TPOT, 99, 10 * ms}}}
	failedReq := record.Record{Phase: record.Measured, Error: record.HTTPStatus, Status: 500}
	tests := []struct {
		name     string
		slo      SLO
		recs     []record.Record
		good     int
		met      bool
		observed []time.Duration
	}{
		// TTFT counts from the intended instant: sent at 60 ms, first token
		// at 120 ms is 120 ms, not 60 ms, so it is bad.
		{"queueing counts", ttft100, []record.Record{req(60*ms, 120*ms, 125*ms)}, 0, false, []time.Duration{120 * ms}},
		// One good and one bad request: half good; the p50 (linear
		// interpolation) of 50 and 150 ms is 100 ms, which meets ≤ 100 ms.
		{"median on the limit", ttft100, []record.Record{req(0, 50*ms, 55*ms), req(0, 150*ms, 155*ms)}, 1, true, []time.Duration{100 * ms}},
		// A request meeting TTFT but not TPOT ((31−1)/2 = 15 ms) is not
		// good; one with TPOT exactly 10 ms is; the p99 of TPOT over 10 and
		// 15 ms is 14.95 ms > 10 ms.
		{"every limit per request", both, []record.Record{req(0, 50*ms, 60*ms), req(0, 1*ms, 16*ms, 31*ms)}, 1, false, []time.Duration{time.Duration(49.51 * float64(ms)), 14950 * time.Microsecond}},
		// A failed request is never good and counts as infinitely slow:
		// the p50 over a 10 ms success and a failure lands on the failure.
		{"failures count against", ttft100, []record.Record{req(0, 10*ms), failedReq, failedReq}, 1, false, []time.Duration{failed}},
		// A one-token output has no TPOT and meets any TPOT limit.
		{"one token has no TPOT", both, []record.Record{req(0, 20*ms)}, 1, true, []time.Duration{20 * ms, 0}},
		// Warm-ups, cooldowns and interrupted requests are not the sample.
		{"measured only", ttft100, []record.Record{
			{Phase: record.Warmup, Error: record.HTTPStatus},
			{Phase: record.Measured, Error: record.Canceled},
			req(0, 10*ms)}, 1, true, []time.Duration{10 * ms}},
		// No requests: nothing was shown to meet the SLO.
		{"nothing measured", ttft100, nil, 0, false, []time.Duration{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.slo.Evaluate(tt.recs, 2*time.Second)
			assert.Equal(t, tt.good, ev.Good, "good")
			assert.Equal(t, tt.met, ev.Met, "met: %s", ev.Describe())
			assert.InDelta(t, float64(tt.good)/2, ev.Goodput, 1e-9, "goodput over a 2 s window")
			require.Len(t, ev.Limits, len(tt.observed))
			for i, o := range ev.Limits {
				assert.InDelta(t, float64(tt.observed[i]), float64(o.Value), float64(10*time.Microsecond), "limit %s", o.Limit)
			}
		})
	}
}

// TestEvaluateITL: a request's ITL limit applies to its own gaps at the
// percentile, and a 2-token chunk counts its gap halved, twice.
func TestEvaluateITL(t *testing.T) {
	s := SLO{Limits: []Limit{{ITL, 50, 10 * ms}}}
	r := req(0, 10*ms, 15*ms, 50*ms) // gaps 5 and 35 ms: p50 20 ms > 10 ms
	multi := record.Record{Phase: record.Measured, OutputTokens: 3, Chunks: []record.Chunk{{At: 10 * ms, Tokens: 1}, {At: 26 * ms, Tokens: 2}}}
	ev := s.Evaluate([]record.Record{r, multi}, time.Second)
	assert.Equal(t, 1, ev.Good, "the 2-token chunk's gaps are 8 ms each: good")
	assert.Equal(t, 4, ev.Limits[0].N, "two gaps per request")
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"ttft-p99=2s,tpot-p99=100ms", "mlperf-server:llama3.1-8b", "itl-p50=1ms", "e2e-p9=1s", ":", "=", "-p=", "ttft-p99=1e400s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "-slo") {
				t.Fatalf("error does not name the flag: %v", err)
			}
			return
		}
		if s.IsZero() {
			t.Fatal("no error and no limits")
		}
		for _, l := range s.Limits {
			if l.Max <= 0 || l.Max > maxLimit {
				t.Fatalf("limit %v out of range", l)
			}
		}
		again, err := Parse(s.String())
		if err != nil || again.String() != s.String() {
			t.Fatalf("canonical form %q does not round-trip: %v", s.String(), err)
		}
	})
}
