package inferbench

// Tests of -shard and -from as a user runs them: several processes of this
// test binary loading one standalone simulated engine, then a merge.

import (
	"context"
	"fmt"
	"github.com/inferbench/inferbench/fake/faketest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/perf/benchfmt"
)

// value is the named unit's value of a result line (0 if absent).
func value(r *benchfmt.Result, unit string) float64 {
	v, _ := r.Value(unit)
	return v
}

// TestShardsMergeToOneProcess measures one standalone simulated engine at
// concurrency 64 from one process, then from two shard processes
// (-shard=0/2 and -shard=1/2, 32 streams each, the same -start-at), and
// merges the shards' records with -from: the merged tok/s is within 3 % of
// the single process's, and the merged line counts both shards' requests.
// A merge that averaged the shards' throughput instead of summing it, or
// that counted one shard only, is off by half.
func TestShardsMergeToOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three suite processes against one engine, about 20 s")
	}
	url := faketest.StartStandalone(t, "--prefill-ms", "20", "--per-token-ms", "10")
	common := []string{"-engines=vllm=" + url, "-concurrency=64", "-test.benchtime=3s", "-output-tokens=16",
		"-input-tokens=32", "-warmup=1", "-plot=false"}

	single := t.TempDir()
	out, err := helperProcess(context.Background(), t, nil, append(common, "-out="+single)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	one := benchLines(t, out, "single")
	require.Len(t, one, 1, "%s", out)

	shards := t.TempDir()
	startAt := time.Now().Add(4 * time.Second).UTC().Format(time.RFC3339Nano)
	outs := make([][]byte, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			args := append(common, fmt.Sprintf("-shard=%d/2", i), "-start-at="+startAt, "-out="+shards)
			outs[i], errs[i] = helperProcess(context.Background(), t, nil, args...).CombinedOutput()
		})
	}
	wg.Wait()
	shardN := 0
	for i := range 2 {
		require.NoError(t, errs[i], "shard %d: %s", i, outs[i])
		lines := benchLines(t, outs[i], fmt.Sprintf("shard %d", i))
		require.Len(t, lines, 1, "%s", outs[i])
		assert.Contains(t, string(lines[0].Name), fmt.Sprintf("/shard=%dof2", i), "a shard's line says it is a share")
		shardN += lines[0].Iters
		_, err := os.Stat(filepath.Join(shards, fmt.Sprintf("vllm.shard-%d-of-2.jsonl", i)))
		require.NoError(t, err, "the shard's records carry the shard in their name")
	}

	merged := t.TempDir()
	exe, err := os.Executable()
	require.NoError(t, err)
	fromOut, err := exec.Command(exe, "-test.bench=.", "-from="+shards, "-out="+merged, "-plot=false").CombinedOutput()
	require.NoError(t, err, "%s", fromOut)
	t.Logf("single:\n%s\nmerge:\n%s", out, fromOut)
	m := benchLines(t, fromOut, "merged")
	require.Len(t, m, 1, "%s", fromOut)
	assert.Equal(t, "Serve/concurrency=64", procs.ReplaceAllString(string(m[0].Name), ""))
	assert.Equal(t, shardN, m[0].Iters, "the merged line has both shards' measured requests")
	assert.InEpsilon(t, value(one[0], "tok/s"), value(m[0], "tok/s"), 0.03, "merged tok/s against one process's")
	assert.Regexp(t, regexp.MustCompile(`merged 2 shards: common window \S+ of shard windows 0:\S+ 1:\S+`), string(fromOut))
	txt, err := os.ReadFile(filepath.Join(merged, "vllm.txt"))
	require.NoError(t, err)
	assert.Contains(t, string(txt), "BenchmarkServe/concurrency=64-")
	assert.True(t, strings.Contains(string(txt), "(2 shard(s))"), "%s", txt)
}
