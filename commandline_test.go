package inferbench

// Tests of the compiled suite's command line, as a user runs it: this
// test binary started as `go test -bench` starts it, with flags,
// environment and signals (helperProcess), against simulated engines in
// this process or standalone. The suite's own logic is tested next to it,
// in internal/suite; what only the command line can show is tested here:
// secrets, interrupts, -count's interleaving, -bench's selection, the
// default sample sizes, -concurrency=auto end to end, and shards merged
// with -from.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/perf/benchfmt"

	"github.com/inferbench/inferbench/fake"
	"github.com/inferbench/inferbench/fake/faketest"
	"github.com/inferbench/inferbench/fake/sim"
	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/report"
	"github.com/inferbench/inferbench/internal/results"
	"github.com/inferbench/inferbench/internal/suite"
	"github.com/inferbench/inferbench/internal/testenv"
	"github.com/inferbench/inferbench/plots"
)

// simulatedModel is the model the tests' simulated engines serve.
const simulatedModel = "fake-model"

// helperProcess runs this test binary as `go test -bench` would, with the
// given suite flags, and returns its output.
func helperProcess(ctx context.Context, t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, exe, append([]string{"-test.run=^$", "-test.bench=BenchmarkServe"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// TestSecretsNeverLeak sets FRIENDLI_TOKEN to a marker, points the suite at
// a server that echoes the Authorization header in its answers, and greps
// every output for the marker.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the suite in a child process")
	}
	const marker = "flp_SECRETMARKER_5f3a9c"
	sim := faketest.Start(t, "friendli-like", fake.Options{})
	// A proxy in front of the simulated engine that leaks the credential
	// back in a header, in 1 of 3 error bodies, and in the model list.
	var n atomic.Int64 // handlers run at once: a request can begin before the last one's handler returns
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		w.Header().Set("X-Echo-Auth", auth)
		if r.URL.Path == "/v1/models" {
			fmt.Fprintf(w, `{"object":"list","data":[{"id":"%s","object":"model"}]}`, simulatedModel)
			return
		}
		if n.Add(1)%3 == 2 {
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprintf(w, `{"error":{"message":"slow down, %s","type":"rate_limit","code":429}}`, auth)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, sim.URL(), r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		buf := make([]byte, 4096)
		for {
			k, err := resp.Body.Read(buf)
			if k > 0 {
				w.Write(buf[:k])
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	}))
	defer proxy.Close()

	out := t.TempDir()
	u := strings.Replace(proxy.URL, "http://", "http://user:"+marker+"@", 1) + "/v1/chat/completions"
	cmd := helperProcess(context.Background(), t, []string{"FRIENDLI_TOKEN=" + marker, "OPENAI_API_KEY=" + marker},
		"-engines=friendli="+u, "-concurrency=1,2", "-test.benchtime=3x", "-max-error-rate=1",
		"-output-tokens=8", "-input-tokens=32", "-out="+out)
	stdout, err := cmd.CombinedOutput()
	t.Logf("child output:\n%s", stdout)
	// The run may pass or fail (the proxy answers 429 at times); what
	// matters is what it wrote.
	_ = err
	assert.NotContains(t, string(stdout), marker)
	files, _ := filepath.Glob(filepath.Join(out, "*"))
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.NotContains(t, string(b), marker, f)
	}
	assert.FileExists(t, filepath.Join(out, "friendli.txt"))
}

// TestInterruptKeepsFinishedLevels stops a sweep with SIGINT, and with
// SIGTERM, after its third result, and checks that the run exits non-zero
// saying where the finished levels are, and that they are on disk,
// readable by benchfmt and by the plotter.
func TestInterruptKeepsFinishedLevels(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the suite in a child process")
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			interruptKeeps(t, sig)
		})
	}
}

func interruptKeeps(t *testing.T, sig syscall.Signal) {
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := helperProcess(ctx, t, nil, "-engines=fake", "-concurrency=1,2,4,8,16,32,64,128,256",
		"-test.benchtime=4x", "-output-tokens=32", "-out="+out)
	pipe, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(pipe)
	var lines []string
	results := 0
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "BenchmarkServe/") && strings.Contains(sc.Text(), "tok/s") {
			results++
			if results == 3 {
				require.NoError(t, cmd.Process.Signal(sig))
			}
		}
	}
	_, _ = io.Copy(io.Discard, pipe)
	err = cmd.Wait()
	t.Logf("child output:\n%s", strings.Join(lines, "\n"))
	require.Error(t, err, "an interrupted run exits non-zero")
	assert.Contains(t, strings.Join(lines, "\n"), "# interrupted: results of the finished levels are in "+out, "the run says what it kept")
	require.GreaterOrEqual(t, results, 3)

	for _, name := range []string{"sim-vllm-like.txt", "sim-friendli-like.txt"} {
		f, err := os.Open(filepath.Join(out, name))
		require.NoError(t, err)
		r := benchfmt.NewReader(f, name)
		n := 0
		for r.Scan() {
			switch rec := r.Result().(type) {
			case *benchfmt.SyntaxError:
				t.Errorf("%s: %v", name, rec)
			case *benchfmt.Result:
				n++
			}
		}
		f.Close()
		assert.GreaterOrEqual(t, n, 1, name)
		assert.Less(t, n, 18, "%s: the run was interrupted, not finished", name)
	}
	_, err = plots.Load([]string{filepath.Join(out, "sim-vllm-like.txt"), filepath.Join(out, "sim-friendli-like.txt")})
	assert.NoError(t, err)
}

// procs matches the -GOMAXPROCS suffix of a benchmark name.
var procs = regexp.MustCompile(`-\d+$`)

// benchLines returns the result lines of a benchmark output, by name.
func benchLines(t *testing.T, out []byte, name string) []*benchfmt.Result {
	t.Helper()
	var res []*benchfmt.Result
	r := benchfmt.NewReader(strings.NewReader(string(out)), name)
	for r.Scan() {
		switch rec := r.Result().(type) {
		case *benchfmt.SyntaxError:
			t.Errorf("%s: %v", name, rec)
		case *benchfmt.Result:
			res = append(res, rec.Clone())
		}
	}
	require.NoError(t, r.Err())
	return res
}

// TestRepeatedRunInterleaves pins what TestMain's -count takeover relies on
// in the testing package: m.Run called once per repetition runs
// BenchmarkServe afresh each time, the result lines keep their names (no
// "#01" suffix that would split benchstat's rows), and the order is the
// interleaved one, every engine at a level before the next level, and the
// whole sweep again for the next repetition.
func TestRepeatedRunInterleaves(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the suite in a child process")
	}
	out := t.TempDir()
	cmd := helperProcess(context.Background(), t, nil, "-engines=fake", "-concurrency=1,2",
		"-test.count=2", "-test.benchtime=2x", "-output-tokens=4", "-input-tokens=16", "-plot=false", "-out="+out)
	stdout, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", stdout)
	var names []string
	for _, r := range benchLines(t, stdout, "stdout") {
		names = append(names, procs.ReplaceAllString(string(r.Name), ""))
	}
	re := regexp.MustCompile(`#\d+`)
	for _, n := range names {
		assert.NotRegexp(t, re, n, "a repeated name got testing's uniquifying suffix")
	}
	want := []string{}
	for range 2 {
		for _, c := range []int{1, 2} {
			for _, e := range []string{"sim-vllm-like", "sim-friendli-like"} {
				want = append(want, fmt.Sprintf("Serve/engine=%s/concurrency=%d", e, c))
			}
		}
	}
	assert.Equal(t, want, names, "A, B at each level, the sweep once per -count")
	for _, e := range []string{"sim-vllm-like", "sim-friendli-like"} {
		b, err := os.ReadFile(filepath.Join(out, e+".txt"))
		require.NoError(t, err)
		assert.Len(t, benchLines(t, b, e), 4, "%s: two levels × two repetitions", e)
	}
}

// TestBenchFilterSelectsEngines runs the demo, then again with -bench
// selecting one engine: the other engine's result files are left exactly as
// they were, and the header says only the selected engine was measured.
func TestBenchFilterSelectsEngines(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the suite in a child process")
	}
	out := t.TempDir()
	args := []string{"-engines=fake", "-concurrency=1", "-test.benchtime=2x", "-output-tokens=4", "-input-tokens=16", "-plot=false", "-out=" + out}
	first, err := helperProcess(context.Background(), t, nil, args...).CombinedOutput()
	require.NoError(t, err, "%s", first)
	other := filepath.Join(out, "sim-friendli-like")
	before := map[string][]byte{}
	for _, ext := range []string{".txt", ".jsonl"} {
		b, err := os.ReadFile(other + ext)
		require.NoError(t, err)
		require.NotEmpty(t, b)
		before[ext] = b
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, append([]string{"-test.run=^$", "-test.bench=Serve/engine=sim-vllm-like"}, args...)...)
	second, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", second)
	lines := benchLines(t, second, "stdout")
	require.Len(t, lines, 1, "%s", second)
	assert.Equal(t, "Serve/engine=sim-vllm-like/concurrency=1", procs.ReplaceAllString(string(lines[0].Name), ""))
	for ext, b := range before {
		after, err := os.ReadFile(other + ext)
		require.NoError(t, err)
		assert.Equal(t, string(b), string(after), "sim-friendli-like%s was rewritten by a run that did not select it", ext)
	}
	assert.NotContains(t, string(second), "engine=sim-friendli-like profile=", "an unselected engine is not preflighted or described")
}

// TestConcurrencyAuto runs `go test -bench=Serve -concurrency=auto`
// against a simulated engine that runs at most 2 sequences: the probe
// places at least 7 levels, the run measures exactly those, the header
// and the result file say where they came from, and every point's steady
// state is checked.
func TestConcurrencyAuto(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
			t.Parallel()
			out := t.TempDir()
			args := append([]string{"-engines=fake:vllm-like", "-concurrency=16", "-warmup=3", "-output-tokens=64",
				"-input-tokens=16", "-progress=false", "-plot=false", "-out=" + out}, tt.benchtime...)
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
	t.Parallel()
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
			t.Parallel()
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
	t.Parallel()
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

// killArgs is the run TestKillLosesNothingFinished kills: two simulated
// engines, three levels, two repetitions, short samples.
var killArgs = []string{"-engines=fake", "-concurrency=1,4", "-test.count=2", "-test.benchtime=4x",
	"-output-tokens=8", "-input-tokens=16", "-progress=false", "-plot=false"}

// TestKillLosesNothingFinished kills the compiled suite with SIGKILL at
// random moments of a run (2 here; INFERBENCH_KILL_MOMENTS=20 in .ci/run)
// and checks what it left each time: every result file parses, with no
// line cut (each is one write); the records and samples files read,
// a cut last line reported as cut and never read; and -from, on the
// folder, recomputes every result line the killed run had written, byte
// for byte, plus at most the one sample that finished after its line in
// the samples file but before its result line.
func TestKillLosesNothingFinished(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the suite in child processes")
	}
	moments := 2
	if n, err := strconv.Atoi(os.Getenv("INFERBENCH_KILL_MOMENTS")); err == nil && n > 0 {
		moments = n
	}
	// How long a whole run takes, to kill inside it.
	start := time.Now()
	wholeDir := t.TempDir()
	out, err := helperProcess(context.Background(), t, nil, append(killArgs, "-out="+wholeDir)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	whole := time.Since(start)
	want := map[string]int{} // engine → result lines of the whole run
	for _, e := range []string{"sim-vllm-like", "sim-friendli-like"} {
		b, err := os.ReadFile(filepath.Join(wholeDir, e+".txt"))
		require.NoError(t, err)
		want[e] = len(serveLines(string(b)))
	}
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	t.Logf("a whole run takes %v; killing at %d random moments (seed %d)", whole.Round(time.Millisecond), moments, seed)
	for i := range moments {
		dir := t.TempDir()
		at := time.Duration(rng.Int64N(int64(whole)))
		cmd := helperProcess(context.Background(), t, nil, append(killArgs, "-out="+dir)...)
		require.NoError(t, cmd.Start())
		time.Sleep(at)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		what := fmt.Sprintf("kill %d at %v", i+1, at.Round(time.Millisecond))
		written := checkKilled(t, what, dir)
		checkResumed(t, what, dir, written, want)
	}
}

// serveLines are the BenchmarkServe result lines of a .txt file.
func serveLines(txt string) []string {
	var out []string
	for _, l := range strings.Split(txt, "\n") {
		if strings.HasPrefix(l, "BenchmarkServe/") {
			out = append(out, l)
		}
	}
	return out
}

// checkResumed runs the killed run again with -resume, to its end: the
// lines the killed run wrote are kept as they were, and the files then
// hold as many result lines as a whole run's (want, by engine). A run
// killed before its files had their first line has nothing to resume,
// and -resume says so.
func checkResumed(t *testing.T, what, dir string, written map[string][]string, want map[string]int) {
	t.Helper()
	out, err := helperProcess(context.Background(), t, nil, append(killArgs, "-out="+dir, "-resume")...).CombinedOutput()
	if err != nil {
		assert.Empty(t, written, "%s: -resume failed after result lines were written: %s", what, out)
		assert.Regexp(t, `-resume: .*(there is no run of engine|no run line)`, string(out), "%s", what)
		return
	}
	for engine, n := range want {
		b, err := os.ReadFile(filepath.Join(dir, engine+".txt"))
		require.NoError(t, err, "%s", what)
		got := serveLines(string(b))
		assert.Len(t, got, n, "%s: %s: a resumed run has a whole run's result lines", what, engine)
		if len(written[engine]) > 0 && len(got) >= len(written[engine]) {
			assert.Equal(t, written[engine], got[:len(written[engine])], "%s: %s: the killed run's lines are kept", what, engine)
		}
		assert.Contains(t, string(b), "# resumed by -resume at ", "%s: %s", what, engine)
	}
	t.Logf("%s: -resume kept the run's lines and completed it", what)
}

// checkKilled checks the folder a killed run left.
func checkKilled(t *testing.T, what, dir string) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	if len(files) == 0 {
		t.Logf("%s: killed before the result files were created", what)
		return nil
	}
	written := map[string][]string{} // engine → the result lines it wrote
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		switch {
		case strings.HasSuffix(f, ".txt"):
			assert.True(t, len(b) == 0 || b[len(b)-1] == '\n', "%s: %s ends inside a line", what, f)
			benchLines(t, b, f) // no syntax error
			if !strings.HasSuffix(f, results.AllExt) {
				for _, l := range strings.Split(string(b), "\n") {
					if engine := strings.TrimSuffix(filepath.Base(f), ".txt"); strings.HasPrefix(l, "BenchmarkServe/") {
						written[engine] = append(written[engine], l)
					}
				}
			}
		case strings.HasSuffix(f, results.SamplesExt):
			_, _, err := results.ReadSamples(bytes.NewReader(b))
			var cut *results.CutLineError
			if err != nil && !errors.As(err, &cut) {
				assert.Contains(t, err.Error(), "no run line", "%s: %s", what, f)
			}
		case strings.HasSuffix(f, ".jsonl"):
			err := results.DecodeRecords(bytes.NewReader(b), func(*record.Record) error { return nil })
			var cut *results.CutLineError
			if err != nil {
				assert.ErrorAs(t, err, &cut, "%s: %s", what, f)
			}
		}
	}
	again := t.TempDir()
	exe, err := os.Executable()
	require.NoError(t, err)
	fromOut, err := exec.Command(exe, "-test.bench=.", "-from="+dir, "-out="+again, "-plot=false").CombinedOutput()
	total := 0
	for _, ls := range written {
		total += len(ls)
	}
	if err != nil {
		// Only a run killed before any sample finished has nothing to
		// recompute: its samples files have no run line yet.
		assert.Zero(t, total, "%s: -from failed on a run that wrote %d result lines: %s", what, total, fromOut)
		assert.Contains(t, string(fromOut), "no run line", "%s", what)
		return written
	}
	for engine, lines := range written {
		b, err := os.ReadFile(filepath.Join(again, engine+".txt"))
		require.NoError(t, err, "%s: -from wrote no %s.txt", what, engine)
		var got []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "BenchmarkServe/") {
				got = append(got, l)
			}
		}
		require.GreaterOrEqual(t, len(got), len(lines), "%s: %s", what, engine)
		assert.LessOrEqual(t, len(got), len(lines)+1, "%s: %s: at most one sample finished between its two lines", what, engine)
		assert.Equal(t, lines, got[:len(lines)], "%s: %s: -from recomputes every line the killed run wrote", what, engine)
	}
	t.Logf("%s: %d result lines written, all recomputed", what, total)
	return written
}

// TestFileLimitStopsBeforeTheRun: a run whose connections would not fit
// the hard RLIMIT_NOFILE (200, set by the shell that starts it) stops
// before any request, naming the limit and the command that raises it.
func TestFileLimitStopsBeforeTheRun(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	require.NoError(t, err)
	out := t.TempDir()
	cmd := exec.Command("sh", "-c", `ulimit -n 200 && ulimit -Hn 200 && exec "$0" "$@"`, exe,
		"-test.run=^$", "-test.bench=.", "-engines=fake", "-concurrency=1,512", "-progress=false", "-out="+out)
	start := time.Now()
	b, err := cmd.CombinedOutput()
	require.Error(t, err, "%s", b)
	assert.Contains(t, string(b), "RLIMIT_NOFILE's hard limit is 200")
	assert.Contains(t, string(b), "ulimit -Hn")
	assert.NotContains(t, string(b), "BenchmarkServe/", "no sample ran")
	assert.Less(t, time.Since(start), 30*time.Second, "a hang guard: it fails before measuring")
}
