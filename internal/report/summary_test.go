package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/metrics"
	"github.com/inferbench/inferbench/internal/record"
)

// fixture builds a run of two engines at two levels with six samples each:
// engine "b" is twice as fast as "a"; a few of a's requests fail. It
// writes the JSONL files and returns the samples as the suite gathers them.
func fixture(t *testing.T, samplesPer int) (dir string, engines []Engine, samples []Sample) {
	t.Helper()
	dir = t.TempDir()
	engines = []Engine{{Name: "a", Profile: "vllm", URL: "http://127.0.0.1:1/v1/chat/completions", Model: "m", Preflight: "preflight: ok"},
		{Name: "b", Profile: "vllm", URL: "http://127.0.0.1:2/v1/chat/completions", Model: "m", Preflight: "preflight: ok",
			Conformance: []string{"usage: reported on the final chunk"}}}
	for ei, e := range engines {
		f, err := os.Create(filepath.Join(dir, e.Name+".jsonl"))
		require.NoError(t, err)
		enc := json.NewEncoder(f)
		step := time.Duration(4/(ei+1)) * time.Millisecond // a: 4 ms/token, b: 2 ms
		for _, c := range []int{1, 4} {
			for n := range samplesPer {
				var recs []record.Record
				at := time.Duration(n) * time.Second
				for i := range 20 * c {
					sent := at + time.Duration(i)*time.Millisecond
					ttft := 50*time.Millisecond/time.Duration(ei+1) + time.Duration(i%7)*time.Millisecond
					r := record.Record{Engine: e.Name, Concurrency: c, Sample: n, Seq: i, Phase: record.Measured,
						Intended: sent - time.Millisecond, Sent: sent, RequestedTokens: 8, OutputTokens: 8, PromptTokens: 16,
						TokenSource: record.Continuous}
					for k := range 8 {
						r.Chunks = append(r.Chunks, record.Chunk{At: sent + ttft + time.Duration(k)*step, Tokens: 1})
					}
					r.Done = r.Chunks[7].At
					if ei == 0 && i%10 == 9 {
						r.Error, r.Message = record.HTTPStatus, "overloaded"
					}
					recs = append(recs, r)
				}
				warm := recs[0]
				warm.Phase, warm.Seq = record.Warmup, -1
				for _, r := range append(recs, warm) {
					require.NoError(t, enc.Encode(&r))
				}
				// b delivers the same tokens in half the window: twice a's tok/s.
				sum := metrics.Summarize(recs, load.Window{Start: at, End: at + time.Second/time.Duration(ei+1)})
				samples = append(samples, Sample{Engine: e.Name, Concurrency: c, Sample: n, Line: "BenchmarkServe/concurrency=1-2 …",
					Metrics: SampleMetrics(sum)})
			}
		}
		require.NoError(t, f.Close())
	}
	return dir, engines, samples
}

func build(t *testing.T, samplesPer int) *File {
	t.Helper()
	dir, engines, samples := fixture(t, samplesPer)
	jsonl := map[string]string{"a": filepath.Join(dir, "a.jsonl"), "b": filepath.Join(dir, "b.jsonl")}
	f, err := Build(Run{Started: time.Unix(0, 0).UTC(), Config: map[string]string{"model": "m"}, Simulated: true},
		Rules{SampleSize: "rule", Tails: "tails", Confidence: Confidence}, engines, samples, jsonl)
	require.NoError(t, err)
	return f
}

func TestBuildPoolsEverySample(t *testing.T) {
	f := build(t, 6)
	assert.Equal(t, []int{1, 4}, f.Levels)
	require.Len(t, f.Pooled, 4)
	a4, ok := f.Find("a", 4)
	require.True(t, ok)
	assert.Equal(t, 6, a4.Samples)
	assert.Equal(t, 6*80, a4.Requests, "every measured record of every sample, warm-ups left out")
	assert.Equal(t, 6*8, a4.Failed)
	assert.Equal(t, map[record.ErrorKind]int{record.HTTPStatus: 48}, a4.Errors)
	assert.Equal(t, 6*72, a4.TTFT.N, "latencies of the successes only")
	assert.True(t, a4.TTFT.P99.Certified, "432 values certify a p99")
	assert.LessOrEqual(t, *a4.TTFT.P99.Lo, a4.TTFT.P99.Value)
	assert.GreaterOrEqual(t, *a4.TTFT.P99.Hi, a4.TTFT.P99.Value)
	a1, _ := f.Find("a", 1)
	assert.Equal(t, 6*18, a1.TTFT.N)
	assert.False(t, a1.TTFT.P99.Certified, "108 values cannot bound a p99")
	assert.True(t, a1.TTFT.P95.Certified)
	assert.NotNil(t, a1.TTFT.P99.Lo, "but bound it from below")
	assert.Equal(t, 6*18*7, a1.ITL.N, "seven gaps a request")
	assert.NotZero(t, a1.QueuedTTFT.N)
	assert.Equal(t, a1.TTFT.P50.Value+time.Millisecond, a1.QueuedTTFT.P50.Value, "queued from the intended send, 1 ms earlier")
	assert.Equal(t, 6, a1.OutputTokPerSec.N)
	assert.NotNil(t, a1.OutputTokPerSec.Lo, "six samples give a finite CI")
	_, err := readMeasured(filepath.Join(t.TempDir(), "missing.jsonl"))
	assert.Error(t, err, "a missing JSONL file is an error")
}

func TestComparisons(t *testing.T) {
	tests := []struct {
		samples     int
		significant bool
		note        string
	}{
		// Six samples each, b's TTFT half a's: significant, as benchstat says.
		{6, true, ""},
		// Three samples each: no test can reach p < 0.05.
		{3, false, "need >= 4 samples"},
	}
	for _, tt := range tests {
		f := build(t, tt.samples)
		cm, ok := f.Comparison("b", 1, "ttft-p50-ns")
		require.True(t, ok)
		assert.Equal(t, "a", cm.Base)
		assert.InDelta(t, 0.5, cm.Ratio, 0.06, "b's TTFT is about half of a's")
		assert.Equal(t, tt.significant, cm.Significant, "n=%d p=%g", tt.samples, cm.P)
		assert.Contains(t, cm.Note, tt.note)
		_, ok = f.Comparison("a", 1, "tok/s")
		assert.False(t, ok, "the base is not compared with itself")
	}
}

func TestSummaryRoundTrip(t *testing.T) {
	f := build(t, 6)
	f.Samples[0].Warnings = []string{"a caveat"}
	path := filepath.Join(t.TempDir(), "summary.json")
	require.NoError(t, Write(path, f))
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, key := range []string{`"queued_ttft"`, `"queued_e2e"`, `"full_run_output_tok_per_s"`, `"p90_ns"`, `"p95_ns"`,
		`"p99"`, `"ci_lo_ns"`, `"certified"`, `"command_line"`, `"suite_version"`, `"conformance"`, `"warnings"`} {
		assert.Contains(t, string(raw), key)
	}
	assert.NotContains(t, string(raw), `"Warnings"`, "one casing for every key")
	got, err := Read(path)
	require.NoError(t, err)
	again, err := json.MarshalIndent(got, "", "  ")
	require.NoError(t, err)
	assert.JSONEq(t, string(raw), string(again), "what is read back writes the same file")
	assert.Equal(t, f.Pooled, got.Pooled)
	assert.Equal(t, f.Comparisons, got.Comparisons)

	bad := filepath.Join(t.TempDir(), "old.json")
	require.NoError(t, os.WriteFile(bad, bytes.Replace(raw, []byte(Schema), []byte("inferbench-summary/0"), 1), 0o644))
	_, err = Read(bad)
	assert.ErrorContains(t, err, "schema")
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, build(t, 6).WriteTable(&b))
	out := b.String()
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		assert.True(t, strings.HasPrefix(l, "# "), "not a comment line for benchfmt: %q", l)
		assert.LessOrEqual(t, utf8.RuneCountInString(l), 120, "too wide: %q", l)
	}
	assert.Contains(t, out, "TTFT p99 [95% CI]")
	assert.Regexp(t, `(?m)^#\s+4\s+a\s+480\s`, out, "level, engine and pooled requests")
	assert.Regexp(t, `×2\.00 p=0\.00`, out, "b's tok/s against a's, significant")
	assert.Contains(t, out, "48 (10.0%)", "a's failures")
	assert.Regexp(t, `— \(n=108<368\)`, out, "an uncertified p99 is not printed")

	b.Reset()
	require.NoError(t, build(t, 2).WriteTable(&b))
	assert.Contains(t, b.String(), "(no test: n<4)")
}
