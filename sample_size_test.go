package inferbench

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/report"
	"github.com/inferbench/inferbench/internal/suite"
)

// TestDefaultSampleSize runs the suite as a new user does, without
// -benchtime, at a level where the default 1s of b.Loop ends after a single
// measured request (three warm-ups a slot take longer than that): every
// sample must still measure at least C requests, the result line's
// iteration count must be the measured requests (TopUp sets b.N, which the
// testing package reads after the function returns), stdout must end with
// the summary table in '#' lines and stay valid benchmark output, and
// summary.json and report.html must be written. An explicit -benchtime=Nx
// below C is honoured, with a warning.
func TestDefaultSampleSize(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite in a child process")
	}
	const c = 16
	tests := []struct {
		name      string
		benchtime []string
		minIters  int
		warning   string
	}{
		// No -benchtime: at least C measured requests.
		{"default", nil, c, ""},
		// -benchtime=3x: exactly 3, and the header and the log say so.
		{"explicit Nx below C", []string{"-test.benchtime=3x"}, 3, "fewer than the concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"-engines=fake:vllm-like", "-concurrency=16", "-warmup=3", "-output-tokens=64",
				"-input-tokens=16", "-progress=false", "-out=" + out}, tt.benchtime...)
			stdout, err := helperProcess(context.Background(), t, nil, args...).Output()
			require.NoError(t, err, "%s", stdout)
			lines := benchLines(t, stdout, "stdout")
			require.Len(t, lines, 1, "%s", stdout)
			if tt.benchtime == nil {
				assert.GreaterOrEqual(t, lines[0].Iters, tt.minIters, "every slot carries a measured request")
			} else {
				assert.Equal(t, tt.minIters, lines[0].Iters, "-benchtime=Nx is honoured")
				assert.Contains(t, string(stdout), tt.warning)
			}
			sum, err := report.Read(filepath.Join(out, "summary.json"))
			require.NoError(t, err)
			require.Len(t, sum.Samples, 1)
			assert.Equal(t, lines[0].Iters, sum.Samples[0].Metrics.Requests, "the line's iterations are the measured requests")
			file := benchLines(t, mustRead(t, filepath.Join(out, "sim-vllm-like.txt")), "file")
			require.Len(t, file, 1)
			assert.Equal(t, lines[0].Iters, file[0].Iters, "stdout and the results file agree")
			for _, v := range lines[0].Values {
				assert.NotContains(t, []string{v.Unit, v.OrigUnit}, "ttft-p99-ns", "16-odd requests cannot support a p99")
			}
			assert.Regexp(t, `(?m)^# summary: 1 sample per level`, string(stdout))
			assert.Regexp(t, `(?m)^#\s+16\s+sim-vllm-like\s+\d+`, string(stdout), "the summary table's row")
			assert.FileExists(t, filepath.Join(out, "report.html"))
		})
	}
}

// TestOpenLoopDefaultSampleSize: without -benchtime an open-loop sample
// takes at least suite.OpenMinArrivals arrivals of its schedule; before,
// b.Loop's default 1s gave rate=16 one arrival (the sample's first wait
// for a slot and its warm-up take the second), and the line said
// achieved-req/s 0. A sample of one arrival (-benchtime=1x) has no rate:
// the line leaves both rates off and the log says why.
func TestOpenLoopDefaultSampleSize(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite in a child process")
	}
	tests := []struct {
		name      string
		benchtime []string
		iters     int  // at least (default) or exactly (-benchtime)
		rates     bool // achieved-req/s and scheduled-req/s on the line
	}{
		// No -benchtime: at least 36 arrivals, and rates.
		{"default", nil, suite.OpenMinArrivals, true},
		// One arrival: no rate, never a 0.
		{"one arrival", []string{"-test.benchtime=1x"}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"-engines=fake:friendli-like", "-rate=64", "-output-tokens=16",
				"-input-tokens=16", "-progress=false", "-plot=false", "-out=" + out}, tt.benchtime...)
			stdout, err := helperProcess(context.Background(), t, nil, args...).Output()
			require.NoError(t, err, "%s", stdout)
			require.Len(t, benchLines(t, stdout, "stdout"), 1, "%s", stdout)
			// The schedule's figures are diagnostics: in the .all.txt file.
			lines := benchLines(t, mustRead(t, filepath.Join(out, "sim-friendli-like.all.txt")), "sim-friendli-like.all.txt")
			require.Len(t, lines, 1, "%s", stdout)
			if tt.benchtime == nil {
				assert.GreaterOrEqual(t, lines[0].Iters, tt.iters)
			} else {
				assert.Equal(t, tt.iters, lines[0].Iters)
			}
			var achieved float64
			var has bool
			for _, v := range lines[0].Values {
				if v.Unit == "achieved-req/s" {
					achieved, has = v.Value, true
				}
			}
			assert.Equal(t, tt.rates, has, "achieved-req/s on the line")
			if tt.rates {
				assert.InEpsilon(t, 64, achieved, 0.5, "the achieved rate of 36 Poisson arrivals at 64/s")
			} else {
				assert.Contains(t, string(stdout), "a rate needs two")
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
