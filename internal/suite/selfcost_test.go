package suite

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/engines"
	"github.com/inferbench/inferbench/internal/results"
)

func TestClientCostClassify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		cc        ClientCost
		bound     bool
		reasonHas string
	}{
		// A light client that kept up: not bound.
		{"light", ClientCost{CoreShare: 0.1, Reads: engines.ReadStats{Chunks: 1000, Queued: 10}}, false, ""},
		// More than half the Go runtime's cores: bound by CPU.
		{"cpu", ClientCost{CoreShare: 0.6, Reads: engines.ReadStats{Chunks: 1000}}, true, "GOMAXPROCS"},
		// A tenth of the chunks queued when read: bound by reads.
		{"queued", ClientCost{CoreShare: 0.1, Reads: engines.ReadStats{Chunks: 1000, Queued: 100}}, true, "queued"},
		// Exactly at the thresholds: not bound (the bounds are strict).
		{"at the bounds", ClientCost{CoreShare: boundCoreShare, Reads: engines.ReadStats{Chunks: 100, Queued: 5}}, false, ""},
		// Bound with an in-process simulator: the reason says its CPU is in.
		{"in-process", ClientCost{CoreShare: 0.9, InProcess: true}, true, "in-process simulated engine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := tc.cc
			cc.classify(2)
			assert.Equal(t, tc.bound, cc.Bound)
			assert.Contains(t, cc.Reason, tc.reasonHas)
		})
	}
}

// TestEveryLineCarriesClientCost runs two samples on the simulated engine
// and checks the client's cost is on every result line and in the log,
// labelled as including the in-process simulator, and that Conclude says
// whether any sample was client-bound. On the old code no line carried
// client-cpu-ns/tok.
func TestEveryLineCarriesClientCost(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a second of load")
	}
	o := testOptions(t, "fake:vllm-like")
	o.Concurrency = "1,4"
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	defer s.Close()
	for _, c := range []int{1, 4} {
		r := runLevel(s, s.engines[0], c, 4*c)
		require.NoError(t, r.err())
		byUnit := map[string]float64{}
		for _, m := range r.Metrics {
			byUnit[m.Unit] = m.Value
		}
		assert.Greater(t, byUnit["client-cpu-ns/tok"], 0.0)
		assert.Greater(t, byUnit["client-cpu-frac"], 0.0)
		assert.Contains(t, byUnit, "client-queued-frac")
		assert.Contains(t, r.All, "client-cpu-ns/tok")
		assert.NotContains(t, r.Line, "client-cpu-ns/tok", "a diagnostic, in <engine>.all.txt only")
		assert.True(t, r.Client.InProcess)
		assert.Greater(t, r.Client.Reads.Chunks, int64(0))
		assert.InEpsilon(t, byUnit["client-cpu-ns/tok"], float64(r.Client.CPU.Total().Nanoseconds())/r.Client.Tokens, 1e-9)
		t.Log(strings.Join(r.Logs, "\n"))
		assert.True(t, hasLog(r.Logs, "INCLUDING the in-process simulated engine"), "%q", r.Logs)
	}
	var out bytes.Buffer
	require.NoError(t, s.Conclude(&out, false))
	assert.Contains(t, out.String(), "# client cost: ")
	txt, err := os.ReadFile(strings.TrimSuffix(s.txtFiles[0], ".txt") + results.AllExt)
	require.NoError(t, err)
	for _, l := range strings.Split(string(txt), "\n") {
		if strings.HasPrefix(l, "BenchmarkServe") {
			assert.Contains(t, l, "client-cpu-ns/tok", "line %q", l)
		}
	}
}

func hasLog(logs []string, sub string) bool {
	for _, l := range logs {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}
