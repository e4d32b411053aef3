package inferbench

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/fake"
	"github.com/inferbench/inferbench/fake/sim"
)

// TestConcurrencyAuto runs `go test -bench=Serve -concurrency=auto`
// against a simulated engine that runs at most 2 sequences: the probe
// places at least 7 levels, the run measures exactly those, the header
// and the result file say where they came from, and every point's steady
// state is checked.
func TestConcurrencyAuto(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite in a child process")
	}
	cfg, err := sim.Preset("friendli-like")
	require.NoError(t, err)
	cfg.MaxNumSeqs = 2
	r, err := fake.Start(cfg, fake.Options{Model: simulatedModel, Seed: 1})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })

	out := t.TempDir()
	stdout, err := helperProcess(context.Background(), t, nil, "-engines=two="+r.URL(), "-concurrency=auto",
		"-max-concurrency=8", "-test.benchtime=32x", "-output-tokens=4", "-input-tokens=16", "-plot=false", "-progress=false", "-out="+out).CombinedOutput()
	require.NoError(t, err, "%s", stdout)

	m := regexp.MustCompile(`(?m)^concurrency-auto: saturation=(\d+) max=(\d+) levels=([\d,]+)$`).FindSubmatch(stdout)
	require.NotNil(t, m, "no concurrency-auto key in the header:\n%s", stdout)
	var want []string
	for _, l := range strings.Split(string(m[3]), ",") {
		want = append(want, "Serve/concurrency="+l)
	}
	assert.GreaterOrEqual(t, len(want), 7, "MLPerf Endpoints' minimum of 7 points")
	// The knee's position against the model is TestAutoProbeFindsTheSimulatorsKnee's;
	// here: not below the 2 sequences the engine runs at once, not above the cap.
	sat, _ := strconv.Atoi(string(m[1]))
	assert.GreaterOrEqual(t, sat, 2)
	assert.LessOrEqual(t, sat, 8)

	var names []string
	for _, res := range benchLines(t, stdout, "stdout") {
		names = append(names, procs.ReplaceAllString(string(res.Name), ""))
	}
	assert.Equal(t, want, names, "the run measures the placed levels, in order")
	assert.Contains(t, string(stdout), "concurrency=auto probe two: c=1 ")
	assert.Contains(t, string(stdout), "# steady state: ")

	txt, err := os.ReadFile(filepath.Join(out, "two.txt"))
	require.NoError(t, err)
	assert.Contains(t, string(txt), string(m[0])+"\n", "the result file has the levels")
	// -benchtime=32x is 4 rounds at the top level, 8: every point can be checked.
	assert.Equal(t, len(want), strings.Count(string(txt), "# steady state verified sample 0 at concurrency=")+
		strings.Count(string(txt), "# NOT STEADY sample 0")+strings.Count(string(txt), "# STEADY STATE NOT VERIFIED sample 0"),
		"every point has its steady-state verdict")
	// Which verdict a point gets is the machine's as much as the engine's:
	// with another job beside it the single stream at concurrency 1
	// drifted once (tok/s +15 %, Mann–Kendall p=0.05), and an earlier form
	// of this test, which asserted it steady, failed. That a steady engine
	// is judged steady is TestCheckSteady's ("flat", "noisy"), on records
	// of known timing.
}

// TestConcurrencyAutoBadInput: auto is the whole value of -concurrency and
// a placement of closed-loop levels only; anything else fails at once with
// what to give instead.
func TestConcurrencyAutoBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite in a child process")
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		// auto mixed with a level.
		{"auto in a list", []string{"-concurrency=auto,4"}, "-concurrency=auto,4: auto places every level itself and takes no list"},
		// auto for the open loop.
		{"rate auto", []string{"-rate=auto"}, "-rate=auto: automatic placement is for closed-loop levels only"},
		// A cap that leaves no room for 7 levels.
		{"cap too low", []string{"-concurrency=auto", "-max-concurrency=5"}, "-concurrency=auto needs -max-concurrency ≥ 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := helperProcess(context.Background(), t, nil, append([]string{"-engines=fake:friendli-like", "-plot=false", "-out=" + t.TempDir()}, tt.args...)...)
			stdout, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "want a failed run, got %v:\n%s", err, stdout)
			assert.Equal(t, 2, exit.ExitCode(), "%s", stdout)
			assert.Contains(t, string(stdout), "FAIL inferbench: "+tt.want)
		})
	}
}
