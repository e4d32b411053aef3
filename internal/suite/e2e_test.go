package inferbench

// End-to-end tests of the suite: set-up errors, faults, secrets, interrupts
// and agreement with the simulator's prediction. They drive the same code
// as BenchmarkServe (newSuite, startLevel, finishLevel) with a fixed number
// of requests instead of b.Loop, or run this test binary as `go test
// -bench` would.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/perf/benchfmt"

	"github.com/inferbench/inferbench/fake"
	"github.com/inferbench/inferbench/fake/sim"
	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/plots"
)

// testOptions are small, fast suite options writing into a temp folder.
func testOptions(t *testing.T, engines string) options {
	return options{
		engines:        engines,
		concurrency:    "1",
		inputTokens:    64,
		outputTokens:   16,
		seed:           1,
		warmup:         1,
		requestTimeout: 10 * time.Second,
		out:            t.TempDir(),
		getenv:         func(string) string { return "" },
	}
}

// runLevel runs one sample of n measured requests, as BenchmarkServe does
// with -benchtime=nx.
func runLevel(s *suite, e *engineRun, c, n int) levelResult {
	sample := s.nextSample(e.name, c)
	run, err := s.startLevel(s.ctx, e, c, sample)
	if err != nil {
		return levelResult{err: err}
	}
	var dispatchErr error
	for i := 0; i < n && dispatchErr == nil; i++ {
		dispatchErr = run.Dispatch()
	}
	// Always finish, as benchLevel does: it ends the slots' goroutines and
	// saves the records, interrupted ones included.
	lv := s.finishLevel(e, c, sample, run)
	if dispatchErr != nil && lv.err == nil {
		lv.err = dispatchErr
	}
	return lv
}

func readRecords(t *testing.T, path string) []record.Record {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []record.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r record.Record
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), "line %q", sc.Text())
		out = append(out, r)
	}
	require.NoError(t, sc.Err())
	return out
}

func startFake(t *testing.T, preset string, opts fake.Options) *fake.Running {
	t.Helper()
	cfg, err := sim.Preset(preset)
	require.NoError(t, err)
	if opts.Model == "" {
		opts.Model = simulatedModel
	}
	r, err := fake.Start(cfg, opts)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

func TestSetupErrorsAreClearAndFast(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*options)
		wantAll []string
	}{
		// Nothing listens on port 1: the preflight names the engine and the URL.
		{"unreachable engine", func(o *options) { o.engines = "vllm=http://127.0.0.1:1/v1/chat/completions" },
			[]string{"vllm", "127.0.0.1:1"}},
		// A level that is not a number.
		{"bad concurrency", func(o *options) { o.concurrency = "1,x" }, []string{"-concurrency", `"x"`}},
		// Zero output tokens cannot be a fixed length.
		{"zero output tokens", func(o *options) { o.outputTokens = 0 }, []string{"-output-tokens"}},
		// An unknown simulator preset lists the presets there are.
		{"unknown preset", func(o *options) { o.engines = "fake:nope" }, []string{"nope", "vllm-like"}},
		// The same engine twice would overwrite its own result file.
		{"duplicate engine", func(o *options) { o.engines = "fake:vllm-like,fake:vllm-like" }, []string{"twice"}},
		// A missing dataset file.
		{"missing dataset", func(o *options) { o.dataset = filepath.Join(t.TempDir(), "none.jsonl") }, []string{"none.jsonl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(t, "fake:vllm-like")
			tt.mutate(&o)
			start := time.Now()
			s, err := newSuite(context.Background(), o)
			if s != nil {
				s.Close()
			}
			require.Error(t, err)
			for _, w := range tt.wantAll {
				assert.Contains(t, err.Error(), w)
			}
			assert.Less(t, time.Since(start), 15*time.Second)
		})
	}
}

// TestFaultsAreCountedAndSaved runs the suite against a simulated engine
// that fails a fifth of its requests (500, cut streams, hangs): the level
// ends, errors/op is right, every request has a record with its kind.
func TestFaultsAreCountedAndSaved(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of load")
	}
	r := startFake(t, "friendli-like", fake.Options{ErrorRate: 0.2, ErrorKinds: []string{"500", "cut", "hang"}, Seed: 1})
	o := testOptions(t, "vllm-flaky="+r.URL())
	o.requestTimeout = 2 * time.Second
	o.maxErrorRate = 1
	o.concurrency = "8"
	// The preflight may hit an injected fault; it retries transient ones.
	s, err := newSuite(context.Background(), o)
	require.NoError(t, err)
	defer s.Close()
	lv := runLevel(s, s.engines[0], 8, 60)
	require.NoError(t, lv.err)
	sum := lv.summary
	assert.Equal(t, 60, sum.Requests)
	assert.InDelta(t, 0.2, sum.ErrorRate, 0.12, "errors/op")
	assert.Greater(t, sum.Errors[record.HTTPStatus], 0)
	assert.Greater(t, sum.Errors[record.StreamCut]+sum.Errors[record.Timeout], 0)

	recs := readRecords(t, s.jsonlPath("vllm-flaky"))
	measured, failed := 0, 0
	for _, r := range recs {
		if r.Phase == record.Measured {
			measured++
			if r.Failed() {
				failed++
				assert.NotEmpty(t, r.Error)
			}
		}
	}
	assert.Equal(t, 60, measured, "every measured request is recorded")
	assert.Equal(t, sum.Failed, failed)
}

// TestSuiteAgreesWithTheModel checks the whole measurement chain against
// the simulator's analytic prediction at low concurrency, where a loaded
// 2-core CI machine still keeps up.
func TestSuiteAgreesWithTheModel(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of load")
	}
	o := testOptions(t, "fake:friendli-like")
	o.outputTokens = 64
	o.concurrency = "1,8" // sizes the client's connection pool
	s, err := newSuite(context.Background(), o)
	require.NoError(t, err)
	defer s.Close()
	for _, c := range []int{1, 8} {
		lv := runLevel(s, s.engines[0], c, 3*c)
		require.NoError(t, lv.err)
		byUnit := map[string]float64{}
		for _, m := range lv.metrics {
			byUnit[m.unit] = m.value
		}
		for _, u := range []string{"tok/s-vs-model", "ttft-vs-model", "itl-vs-model"} {
			assert.InDelta(t, 1, byUnit[u], 0.10, "concurrency %d: %s", c, u)
		}
	}
}

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
	sim := startFake(t, "friendli-like", fake.Options{})
	// A proxy in front of the simulated engine that leaks the credential
	// back in a header, in 1 of 3 error bodies, and in the model list.
	n := 0
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		w.Header().Set("X-Echo-Auth", auth)
		if r.URL.Path == "/v1/models" {
			fmt.Fprintf(w, `{"object":"list","data":[{"id":"%s","object":"model"}]}`, simulatedModel)
			return
		}
		n++
		if n%3 == 2 {
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
