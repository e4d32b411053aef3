package inferbench

// Tests of the suite as a user runs it: this test binary started as
// `go test -bench` starts it, with flags, environment and signals.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/perf/benchfmt"

	"github.com/inferbench/inferbench/fake"
	"github.com/inferbench/inferbench/fake/faketest"
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

// TestInterruptKeepsFinishedLevels stops a sweep with SIGINT after its
// first result and checks that the finished levels are on disk, readable by
// benchfmt and by the plotter.
func TestInterruptKeepsFinishedLevels(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite in a child process")
	}
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
				require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
			}
		}
	}
	_, _ = io.Copy(io.Discard, pipe)
	err = cmd.Wait()
	t.Logf("child output:\n%s", strings.Join(lines, "\n"))
	require.Error(t, err, "an interrupted run exits non-zero")
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
