package inferbench

// Tests of -shard and -from as a user runs them: several processes of this
// test binary loading one standalone simulated engine, then a merge.

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/perf/benchfmt"

	"github.com/inferbench/inferbench/fake/faketest"
	"github.com/inferbench/inferbench/internal/testenv"
)

// value is the named unit's value of a result line (0 if absent).
func value(r *benchfmt.Result, unit string) float64 {
	v, _ := r.Value(unit)
	return v
}

// shardRun is what runShards ran: the shards' folder, their outputs, the
// merge's output and the merged line.
type shardRun struct {
	dir    string
	outs   [][]byte
	merged *benchfmt.Result
	from   []byte
}

// runShards runs n shard processes of this test binary with the same
// flags and -start-at against one engine, then merges their records with
// -from.
func runShards(t *testing.T, common []string, n int) shardRun {
	t.Helper()
	run := shardRun{dir: t.TempDir(), outs: make([][]byte, n)}
	startAt := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339Nano)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			args := append(slices.Clone(common), fmt.Sprintf("-shard=%d/%d", i, n), "-start-at="+startAt, "-out="+run.dir)
			run.outs[i], errs[i] = helperProcess(context.Background(), t, nil, args...).CombinedOutput()
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "shard %d: %s", i, run.outs[i])
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	merged := t.TempDir()
	run.from, err = exec.Command(exe, "-test.bench=.", "-from="+run.dir, "-out="+merged, "-plot=false").CombinedOutput()
	require.NoError(t, err, "%s", run.from)
	m := benchLines(t, run.from, "merged")
	require.Len(t, m, 1, "%s", run.from)
	run.merged = m[0]
	txt, err := os.ReadFile(filepath.Join(merged, "vllm.txt"))
	require.NoError(t, err)
	assert.Contains(t, string(txt), "BenchmarkServe/concurrency=64-")
	assert.True(t, strings.Contains(string(txt), "(2 shard(s))"), "%s", txt)
	return run
}

// shardTokens is the test's own count, from the shards' files alone, of
// what the merged tok/s must be: every output token (a chunk's tokens, one
// where it has no count) of any shard's records whose arrival, in wall
// time by its shard's epoch, falls in the common window (the latest
// shard's window start to the earliest shard's window end, both ends
// included), divided by that window.
func shardTokens(t *testing.T, dir string, n int) float64 {
	t.Helper()
	type chunk struct {
		At     int64 `json:"at_ns"`
		Tokens int   `json:"tokens"`
	}
	var from, to int64 = math.MinInt64, math.MaxInt64
	var arrivals [][]chunk
	for i := range n {
		base := filepath.Join(dir, fmt.Sprintf("vllm.shard-%d-of-%d", i, n))
		raw, err := os.ReadFile(base + ".samples.jsonl")
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		require.Len(t, lines, 2, "shard %d: a run line and one sample", i)
		var run struct {
			Run struct {
				Epoch int64 `json:"epoch_unix_ns"`
			} `json:"run"`
		}
		var sample struct {
			Sample struct {
				Start int64 `json:"window_start_ns"`
				End   int64 `json:"window_end_ns"`
			} `json:"sample"`
		}
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &run), "shard %d: %s", i, lines[0])
		require.NoError(t, json.Unmarshal([]byte(lines[1]), &sample), "shard %d: %s", i, lines[1])
		require.NotZero(t, run.Run.Epoch, "shard %d: %s", i, lines[0])
		require.Less(t, sample.Sample.Start, sample.Sample.End, "shard %d: %s", i, lines[1])
		from = max(from, run.Run.Epoch+sample.Sample.Start)
		to = min(to, run.Run.Epoch+sample.Sample.End)
		raw, err = os.ReadFile(base + ".jsonl")
		require.NoError(t, err)
		var cs []chunk
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			var rec struct {
				Chunks []chunk `json:"chunks"`
			}
			require.NoError(t, json.Unmarshal([]byte(line), &rec), "shard %d: %s", i, line)
			for _, c := range rec.Chunks {
				c.At += run.Run.Epoch
				cs = append(cs, c)
			}
		}
		arrivals = append(arrivals, cs)
	}
	require.Less(t, from, to, "the shards' windows overlap")
	tokens := 0
	for _, cs := range arrivals {
		for _, c := range cs {
			if c.At >= from && c.At <= to {
				tokens += max(c.Tokens, 1)
			}
		}
	}
	return float64(tokens) / time.Duration(to-from).Seconds()
}

// TestShardsMergeToOneProcess runs two shard processes (-shard=0/2 and
// -shard=1/2, 32 streams each of level 64, the same -start-at) against one
// standalone simulated engine and merges their records with -from: the
// merged line is named as one process's, counts both shards' measured
// requests, and its tok/s is what the test computes itself from the
// shards' records and samples files (shardTokens), within 0.5 % (a chunk
// stamped at the window's very edge, rounded differently). A merge that
// averaged the shards' throughput instead of summing it, or counted one
// shard only, is off by half.
func TestShardsMergeToOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three suite processes against one engine")
	}
	url := faketest.StartStandalone(t, "--prefill-ms", "20", "--per-token-ms", "10")
	run := runShards(t, []string{"-engines=vllm=" + url, "-concurrency=64", "-test.benchtime=1s", "-output-tokens=16",
		"-input-tokens=32", "-warmup=1", "-plot=false"}, 2)
	shardN := 0
	for i, out := range run.outs {
		lines := benchLines(t, out, fmt.Sprintf("shard %d", i))
		require.Len(t, lines, 1, "%s", out)
		assert.Contains(t, string(lines[0].Name), fmt.Sprintf("/shard=%dof2", i), "a shard's line says it is a share")
		shardN += lines[0].Iters
		_, err := os.Stat(filepath.Join(run.dir, fmt.Sprintf("vllm.shard-%d-of-2.jsonl", i)))
		require.NoError(t, err, "the shard's records carry the shard in their name")
	}
	t.Logf("merge:\n%s", run.from)
	assert.Equal(t, "Serve/concurrency=64", procs.ReplaceAllString(string(run.merged.Name), ""))
	assert.Equal(t, shardN, run.merged.Iters, "the merged line has both shards' measured requests")
	assert.InEpsilon(t, shardTokens(t, run.dir, 2), value(run.merged, "tok/s"), 0.005, "merged tok/s against the shards' records")
	assert.Regexp(t, regexp.MustCompile(`merged 2 shards: common window \S+ of shard windows 0:\S+ 1:\S+`), string(run.from))
}

// TestTimingShardsMatchOneProcess: two shards of 32 streams load the
// engine as one process of 64 does. One process measures the standalone
// simulated engine at concurrency 64, then two shards do, and the merged
// tok/s is within 3 % of the single process's. Two runs at two moments of
// a shared machine: up to three attempts (a loaded machine made them
// 5.3 % apart once under the race detector).
func TestTimingShardsMatchOneProcess(t *testing.T) {
	testenv.Timing(t)
	url := faketest.StartStandalone(t, "--prefill-ms", "20", "--per-token-ms", "10")
	common := []string{"-engines=vllm=" + url, "-concurrency=64", "-test.benchtime=3s", "-output-tokens=16",
		"-input-tokens=32", "-warmup=1", "-plot=false"}
	var one, merged float64
	for attempt := 1; attempt <= 3; attempt++ {
		out, err := helperProcess(context.Background(), t, nil, append(common, "-out="+t.TempDir())...).CombinedOutput()
		require.NoError(t, err, "%s", out)
		lines := benchLines(t, out, "single")
		require.Len(t, lines, 1, "%s", out)
		one = value(lines[0], "tok/s")
		merged = value(runShards(t, common, 2).merged, "tok/s")
		t.Logf("attempt %d: one process %.1f tok/s, two shards merged %.1f (%+.1f %%)", attempt, one, merged, 100*(merged/one-1))
		if math.Abs(merged/one-1) <= 0.03 {
			break
		}
	}
	assert.InEpsilon(t, one, merged, 0.03, "merged tok/s against one process's")
}
