package suite

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/fake"
	"github.com/inferbench/inferbench/fake/faketest"
	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/results"
)

// runSweep runs the suite's sweep as BenchmarkServe does (every engine at a
// level before the next level, reps times), n measured requests a sample,
// and returns the results in run order.
func runSweep(t *testing.T, s *Suite, n, reps int) []Result {
	t.Helper()
	var out []Result
	for range reps {
		for _, c := range s.Levels() {
			for _, e := range s.Engines() {
				out = append(out, runLevel(s, e, c, n))
			}
		}
	}
	return out
}

// recomputedMarker matches the one line -from adds to a .txt file.
var recomputedMarker = regexp.MustCompile(`(?m)^# recomputed by -from=.*\n`)

// TestFromReproducesTheRun runs a small sweep of two simulated engines
// (two levels, two repetitions, so the *-vs-model metrics and repeated
// samples are covered), then recomputes it with -from: every file's
// content is the run's byte for byte except the one "# recomputed" line,
// and the printed lines are the run's under the sub-benchmark names.
// Without the simulator's configuration in the samples file the
// *-vs-model metrics would be missing (this test then fails on every line).
func TestFromReproducesTheRun(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a few seconds of load")
	}
	o := testOptions(t, "fake:vllm-like,fake:friendli-like")
	o.Concurrency = "1,4"
	o.OutputTokens = 8
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	res := runSweep(t, s, 6, 2)
	require.NoError(t, s.Conclude(&bytes.Buffer{}, false))
	s.Close()
	var runLines []string
	for _, r := range res {
		require.NoError(t, r.err())
		runLines = append(runLines, r.Line)
	}

	out := t.TempDir()
	var stdout bytes.Buffer
	require.NoError(t, Recompute(Options{From: o.Out, Out: out}, &stdout, false))
	for _, e := range []string{"sim-vllm-like", "sim-friendli-like"} {
		for _, ext := range []string{".txt", results.AllExt} {
			want, err := os.ReadFile(filepath.Join(o.Out, e+ext))
			require.NoError(t, err)
			got, err := os.ReadFile(filepath.Join(out, e+ext))
			require.NoError(t, err)
			require.Len(t, recomputedMarker.FindAll(got, -1), 1, "%s", got)
			assert.Equal(t, string(want), recomputedMarker.ReplaceAllString(string(got), ""), e+ext)
		}
		all, err := os.ReadFile(filepath.Join(o.Out, e+results.AllExt))
		require.NoError(t, err)
		assert.Contains(t, string(all), "tok/s-vs-model", "the ratios are part of what is compared")
	}
	var printed []string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(l, benchParent+"/") {
			printed = append(printed, regexp.MustCompile(`engine=[^/]+/`).ReplaceAllString(l, ""))
		}
	}
	assert.Equal(t, runLines, printed, "the printed lines, in the run's order:\n%s", stdout.String())
	assert.Contains(t, stdout.String(), "BenchmarkServe/engine=sim-friendli-like/concurrency=4-")
}

// TestFromAppliesAnalysisOptions measures an engine that fails some of its
// requests with -max-error-rate=0: the run fails the sample and writes a
// FAILED line, and -from says the same; with -max-error-rate=1 -from
// recomputes the same numbers without the failure.
func TestFromAppliesAnalysisOptions(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a few seconds of load")
	}
	r := faketest.Start(t, "friendli-like", fake.Options{ErrorRate: 0.3, ErrorKinds: []string{"500"}, Seed: 3})
	o := testOptions(t, "flaky="+r.URL())
	o.Concurrency = "4"
	o.OutputTokens = 8
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	lv := runLevel(s, s.engines[0], 4, 30)
	require.Error(t, lv.err(), "an error rate above 0 fails the sample")
	require.NoError(t, s.Conclude(&bytes.Buffer{}, false))
	s.Close()
	want, err := os.ReadFile(filepath.Join(o.Out, "flaky.txt"))
	require.NoError(t, err)
	require.Contains(t, string(want), "# FAILED sample 0 at concurrency=4")

	tests := []struct {
		name       string
		rate       float64
		wantFailed bool
	}{
		// The run's own option: the same FAILED line and a failure.
		{"same option", 0, true},
		// A looser limit: the same result line, no failure.
		{"looser limit", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			var stdout bytes.Buffer
			err := Recompute(Options{From: o.Out, Out: out, MaxErrorRate: tt.rate}, &stdout, false)
			got, rerr := os.ReadFile(filepath.Join(out, "flaky.txt"))
			require.NoError(t, rerr)
			assert.Contains(t, string(got), lv.Line+"\n", "the numbers do not depend on the limit")
			if tt.wantFailed {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "exceeds -max-error-rate")
				assert.Equal(t, string(want), recomputedMarker.ReplaceAllString(string(got), ""))
				return
			}
			require.NoError(t, err)
			assert.NotContains(t, string(got), "FAILED")
		})
	}
}

// TestFromRefusesFilesThatDoNotFit damages a run's files in the ways a
// copy or a mix-up does and checks that -from says what is wrong instead of
// computing numbers from them.
func TestFromRefusesFilesThatDoNotFit(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a second of load")
	}
	o := testOptions(t, "fake:vllm-like")
	o.OutputTokens = 4
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	require.NoError(t, runLevel(s, s.engines[0], 1, 3).err())
	require.NoError(t, s.Conclude(&bytes.Buffer{}, false))
	s.Close()
	jsonl := func(dir string) string { return filepath.Join(dir, "sim-vllm-like.jsonl") }
	samples := func(dir string) string { return filepath.Join(dir, "sim-vllm-like"+results.SamplesExt) }
	edit := func(path string, f func(string) string) {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, []byte(f(string(b))), 0o644))
	}
	tests := []struct {
		name    string
		damage  func(dir string)
		wantErr string
	}{
		// No samples file: not a run's folder (or one from before they existed).
		{"no samples file", func(dir string) { require.NoError(t, os.Remove(samples(dir))) }, "has no *.samples.jsonl"},
		// The last record lost in a copy.
		{"records cut", func(dir string) {
			edit(jsonl(dir), func(s string) string {
				lines := strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n")
				return strings.Join(lines[:len(lines)-1], "")
			})
		}, "the records file is cut"},
		// A samples file whose window does not match the records.
		{"window mismatch", func(dir string) {
			edit(samples(dir), func(s string) string {
				return regexp.MustCompile(`"window_end_ns":\d+`).ReplaceAllString(s, `"window_end_ns":99999999999999`)
			})
		}, "do not belong together"},
		// A records line that is not JSON.
		{"bad record", func(dir string) { edit(jsonl(dir), func(s string) string { return s + "{not json\n" }) }, "line "},
		// A samples file from another version of inferbench.
		{"other version", func(dir string) {
			edit(samples(dir), func(s string) string { return strings.Replace(s, `"version":1`, `"version":7`, 1) })
		}, "format version 7"},
		// A shard's files without the other shard's.
		{"missing shard", func(dir string) {
			for _, p := range []string{jsonl(dir), samples(dir)} {
				edit(p, func(s string) string { return strings.Replace(s, `"shards":1`, `"shards":2`, 1) })
			}
		}, "shard 1 of 2 are missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, name := range []string{"sim-vllm-like.jsonl", "sim-vllm-like" + results.SamplesExt} {
				b, err := os.ReadFile(filepath.Join(o.Out, name))
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
			}
			require.NoError(t, Recompute(Options{From: dir}, &bytes.Buffer{}, false), "the undamaged copy recomputes")
			tt.damage(dir)
			err := Recompute(Options{From: dir}, &bytes.Buffer{}, false)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

// shardPart builds one shard's part of a sample for mergeShards: streams
// slots, each running measured requests of one chunk per token every gap,
// back to back from start for the given length, on a clock whose epoch is
// epoch (ns since 1970).
func shardPart(shard, shards int, epoch int64, start, length, gap time.Duration, streams int) shardSample {
	var recs []record.Record
	seq := 0
	for slot := range streams {
		for at := start; at+4*gap <= start+length; at += 4 * gap {
			r := record.Record{Seq: seq*shards + shard, Phase: record.Measured, Sent: at, Intended: at, Done: at + 4*gap,
				OutputTokens: 4, TokenSource: record.Continuous, Concurrency: streams}
			for k := 1; k <= 4; k++ {
				r.Chunks = append(r.Chunks, record.Chunk{At: at + time.Duration(k)*gap, Tokens: 1})
			}
			_ = slot
			recs = append(recs, r)
			seq++
		}
	}
	w := load.MeasuredWindow(recs, 0)
	return shardSample{
		run:    results.RunMeta{Shard: shard, Shards: shards, EpochUnixNano: epoch},
		meta:   results.SampleMeta{Records: len(recs)},
		recs:   recs,
		window: w,
	}
}

// TestMergeShards checks the merge on made-up shards with known clocks:
// the records are moved to the earliest epoch, the window is the common
// part, throughput is the sum, and windows that do not overlap are refused.
func TestMergeShards(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	tests := []struct {
		name       string
		parts      []shardSample
		wantWindow load.Window
		wantTokS   float64 // output tok/s of the merged sample
		wantErr    string
	}{
		// Two shards on one clock, 3 and 1 streams of 1 token / 10 ms each:
		// 400 tok/s together.
		{"same epoch", []shardSample{
			shardPart(0, 2, 1e12, 0, 400*ms, 10*ms, 3),
			shardPart(1, 2, 1e12, 0, 400*ms, 10*ms, 1),
		}, load.Window{Start: 0, End: 400 * ms}, 400, ""},
		// Shard 1's process started 100 ms later (its epoch), its sample
		// at its offset 0: on shard 0's clock it ran 100–500 ms, so the
		// common window is 100–400 ms.
		{"later epoch", []shardSample{
			shardPart(0, 2, 1e12, 0, 400*ms, 10*ms, 2),
			shardPart(1, 2, 1e12+int64(100*ms), 0, 400*ms, 10*ms, 2),
		}, load.Window{Start: 100 * ms, End: 400 * ms}, 400, ""},
		// Shard 1 ran a second after shard 0 ended: nothing in common.
		{"no overlap", []shardSample{
			shardPart(0, 2, 1e12, 0, 400*ms, 10*ms, 2),
			shardPart(1, 2, 1e12+int64(1400*ms), 0, 400*ms, 10*ms, 2),
		}, load.Window{}, 0, "do not overlap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, w, notes, err := mergeShards(tt.parts)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantWindow, w)
			assert.Len(t, recs, len(tt.parts[0].recs)+len(tt.parts[1].recs), "every shard's requests")
			res := analyze(recs, w, analysis{level: 4, name: "concurrency=4", procs: 1, maxErrorRate: 1})
			assert.InDelta(t, tt.wantTokS, res.Summary.OutputTokPerSec, tt.wantTokS*0.03)
			require.NotEmpty(t, notes)
			assert.Contains(t, notes[0], "merged 2 shards")
		})
	}
}

// TestFromAfterAKill: the folder of a run killed in the middle of a
// sample (its records partly written, the last record cut inside its
// line, the sample's line in the samples file cut too) recomputes every
// finished sample as the run wrote it, and says what it left out.
func TestFromAfterAKill(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a second of load")
	}
	o := testOptions(t, "fake:friendli-like")
	o.Concurrency = "1,2"
	o.OutputTokens = 4
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	res := runSweep(t, s, 4, 1)
	s.Close()
	var lines []string
	for _, r := range res {
		require.NoError(t, r.err())
		lines = append(lines, r.Line)
	}
	// What a kill during a third sample leaves: its first records, one
	// cut inside its line, and half its line in the samples file.
	recs := filepath.Join(o.Out, "sim-friendli-like.jsonl")
	samples := filepath.Join(o.Out, "sim-friendli-like.samples.jsonl")
	appendTo := func(path, s string) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteString(s)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	appendTo(recs, `{"engine":"sim-friendli-like","concurrency":4,"sample":0,"seq":30000000,"phase":"measured","error":""}`+"\n")
	appendTo(recs, `{"engine":"sim-friendli-like","concurrency":4,"sam`)
	appendTo(samples, `{"sample":{"concurrency":4,"streams":4,"sam`)

	var stdout bytes.Buffer
	require.NoError(t, Recompute(Options{From: o.Out}, &stdout, false))
	var printed []string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(l, benchParent+"/") {
			printed = append(printed, l)
		}
	}
	assert.Equal(t, lines, printed, "every finished sample, as the run wrote it")
	assert.Contains(t, stdout.String(), "# -from: ")
	assert.Regexp(t, `sim-friendli-like\.samples\.jsonl: line 4 is cut.*the sample it was to describe had not finished and is left out`, stdout.String())
	assert.Regexp(t, `sim-friendli-like\.jsonl: line \d+ is cut.*; left out`, stdout.String())
	assert.Contains(t, stdout.String(), "1 records of 1 sample(s) the run did not finish")
}
