package suite

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/metrics"
	"github.com/inferbench/inferbench/internal/report"
	"github.com/inferbench/inferbench/plots"
)

func TestTailMetrics(t *testing.T) {
	t.Parallel()
	d := metrics.Dist{P90: 9, P95: 10, P99: 11}
	tests := []struct {
		n    int
		want []string
	}{
		{35, nil},                                           // below every tail's rule: none on the line
		{36, []string{"x-p90-ns"}},                          // p90's CI exists from 36 values
		{72, []string{"x-p90-ns", "x-p95-ns"}},              // p95's from 72
		{367, []string{"x-p90-ns", "x-p95-ns"}},             // one short of a p99
		{368, []string{"x-p90-ns", "x-p95-ns", "x-p99-ns"}}, // p99's from 368
	}
	for _, tt := range tests {
		d.N = tt.n
		var got []string
		for _, m := range tailMetrics(d, "x") {
			got = append(got, m.Unit)
		}
		assert.Equal(t, tt.want, got, "n=%d", tt.n)
	}
}

func TestSampleWarningsStateTheRule(t *testing.T) {
	t.Parallel()
	sum := metrics.Summarize(nil, load.Window{})
	sum.TTFT.N, sum.ITL.N, sum.E2E.N = 40, 400, 40
	sum.Warnings = []string{"few samples for tail percentiles: TTFT [p99] n=40 (p99 needs ≥ 100 values)", "other"}
	ws := strings.Join(sampleWarnings(sum), "\n")
	assert.NotContains(t, ws, "needs ≥ 100", "metrics' rule of thumb is replaced by the line's rule")
	assert.Contains(t, ws, "other")
	assert.Contains(t, ws, "ttft-p95 (n=40<72)")
	assert.Contains(t, ws, "ttft-p99 (n=40<368)")
	assert.NotContains(t, ws, "itl-p99", "400 ITL values support a p99")
}

func TestRedactArgs(t *testing.T) {
	t.Parallel()
	got := redactArgs([]string{"x.test", "-engines=a=http://u:secret@h:1/v1/chat/completions?api_key=k2,vllm", "-out=r"})
	assert.NotContains(t, strings.Join(got, " "), "secret")
	assert.NotContains(t, strings.Join(got, " "), "k2")
	assert.Equal(t, "-out=r", got[2])
	assert.Contains(t, got[1], "redacted@h:1", "the rest of the URL stays")
	assert.True(t, strings.HasSuffix(got[1], ",vllm"), "the list after the URL stays: %s", got[1])
}

// syncBuffer is a bytes.Buffer safe for the progress goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestProgressLine(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	var w syncBuffer
	p := newProgress(&w, clock)
	p.draw()
	assert.Empty(t, w.String(), "nothing before a sample starts")
	now = now.Add(61 * time.Second)
	p.begin("sim-a", 16, 2)
	p.measuredDone()
	p.measuredDone()
	now = now.Add(2500 * time.Millisecond)
	p.draw()
	assert.Equal(t, "\r\033[Kinferbench: sim-a  concurrency=16  sample 3  2 measured requests done  2.5s  (run 1m4s)", w.String())
	p.pause()
	assert.True(t, strings.HasSuffix(w.String(), "\r\033[K"), "pause clears the line before the result line prints")
	n := len(w.String())
	p.draw()
	assert.Len(t, w.String(), n, "nothing while paused")
	p.close()
	p.close() // twice is fine
}

// TestConcludeWritesSummaryAndReport runs two small samples and concludes:
// summary.json holds both samples, the pooled statistics and the run's
// metadata; report.html and the summary table are written.
func TestConcludeWritesSummaryAndReport(t *testing.T) {
	t.Parallel()
	opt := testOptions(t, "fake:friendli-like")
	opt.Concurrency = "2"
	s, err := New(t.Context(), opt)
	require.NoError(t, err)
	defer s.Close()
	e := s.Engines()[0]
	for range 2 {
		res := runLevel(s, e, 2, 3)
		require.NoError(t, res.err())
		assert.NotContains(t, res.Line, "ttft-p99-ns", "3 requests cannot support a p99")
		assert.Contains(t, res.Line, "ttft-p50-ns")
	}
	var out bytes.Buffer
	require.NoError(t, s.Conclude(&out, false))
	sum, err := report.Read(filepath.Join(opt.Out, SummaryJSON))
	require.NoError(t, err)
	require.Len(t, sum.Samples, 2)
	assert.Equal(t, []int{0, 1}, []int{sum.Samples[0].Sample, sum.Samples[1].Sample})
	require.Len(t, sum.Pooled, 1)
	assert.Equal(t, 6, sum.Pooled[0].Requests, "both samples' measured requests, from the JSONL")
	assert.Equal(t, 6, sum.Pooled[0].TTFT.N)
	assert.NotZero(t, sum.Pooled[0].QueuedE2E.N)
	assert.Equal(t, 2, sum.Pooled[0].OutputTokPerSec.N)
	assert.NotEmpty(t, sum.Run.CommandLine)
	assert.NotEmpty(t, sum.Run.SuiteVersion)
	assert.True(t, sum.Run.Simulated)
	assert.Equal(t, "fake-model", sum.Run.Config["model"])
	assert.Contains(t, sum.Engines[0].Preflight, "preflight:")
	assert.Contains(t, sum.Rules.SampleSize, "at least C requests")
	assert.Contains(t, out.String(), "# summary: 2 samples per level")
	assert.Contains(t, out.String(), "# wrote "+filepath.Join(opt.Out, ReportHTML))
	html, err := os.ReadFile(filepath.Join(opt.Out, ReportHTML))
	require.NoError(t, err)
	assert.Contains(t, string(html), "sim-friendli-like")
}

// TestConcludeDrawsOpenLoopCharts: a run of open-loop samples only ends
// with its charts (latency vs rate) in the report. The plots used to be
// drawn only when a closed-loop level had run, so -rate alone drew none.
func TestConcludeDrawsOpenLoopCharts(t *testing.T) {
	t.Parallel()
	opt := testOptions(t, "fake:friendli-like")
	opt.Concurrency, opt.Rate = "", "20"
	s, err := New(t.Context(), opt)
	require.NoError(t, err)
	defer s.Close()
	res := runRate(s, s.Engines()[0], 20, 8)
	require.NoError(t, res.err())
	var out bytes.Buffer
	require.NoError(t, s.Conclude(&out, true))
	assert.Contains(t, out.String(), "# wrote "+filepath.Join(opt.Out, plots.LatencyRatePNG))
	assert.FileExists(t, filepath.Join(opt.Out, plots.LatencyRatePNG))
	assert.NoFileExists(t, filepath.Join(opt.Out, plots.ThroughputPNG), "no closed-loop level ran")
	html, err := os.ReadFile(filepath.Join(opt.Out, ReportHTML))
	require.NoError(t, err)
	assert.Contains(t, string(html), plots.Titles[plots.LatencyRatePNG], "the chart has its title on the page")
}
