//go:build realengine

package realengine

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/perf/benchfmt"

	"github.com/inferbench/inferbench/fake"
	"github.com/inferbench/inferbench/fake/sim"
	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/results"
)

// The run: small enough for a minute or two on 2 shared cores (about 8 ms
// a token at concurrency 1 with the model of .ci/real-engine, so about
// 0.6 s a request), large enough that medians of 12 requests are stable to
// a few percent while the machine's speed holds.
const (
	engineName = "ollama"
	requests   = 12 // -benchtime=12x: measured requests per level
	// compareRequests is the least measured requests of the suite's run
	// in the Python cross-check; 12·c at concurrency c above 2. Side by
	// side, tok/s agrees within 1 % from two dozen requests; the TTFT p50
	// of 24 requests at concurrency 4 (8 in flight, waiting for other
	// prompts' prefill steps of 60–70 ms) missed by 17 % once, and with
	// 48 it agreed within 3 % in two runs.
	compareRequests = 24
	inputTokens     = 64 // -input-tokens (the chat template alone is about 20)
	outputTokens    = 64 // -output-tokens
	tolerance       = 0.10
)

var levels = []int{1, 4}

var (
	baseURL = strings.TrimRight(os.Getenv("INFERBENCH_OLLAMA_URL"), "/")
	// wideURL is a second server of the same model with 8 slots, for the
	// Python cross-check's two clients at 4 each (.ci/real-engine starts it).
	wideURL = strings.TrimRight(os.Getenv("INFERBENCH_OLLAMA_WIDE_URL"), "/")
	model   = os.Getenv("INFERBENCH_OLLAMA_MODEL")
)

func TestMain(m *testing.M) {
	// Built with -tags realengine, the tests are asked for: a missing engine
	// is a failure, never a skip, so CI cannot pass without one.
	if baseURL == "" || model == "" {
		fmt.Fprintln(os.Stderr, "realengine: set INFERBENCH_OLLAMA_URL (e.g. http://127.0.0.1:11434) and INFERBENCH_OLLAMA_MODEL, or run bash .ci/real-engine")
		os.Exit(1)
	}
	resp, err := http.Get(baseURL + "/api/version")
	if err != nil {
		fmt.Fprintf(os.Stderr, "realengine: ollama at %s: %v\n", baseURL, err)
		os.Exit(1)
	}
	resp.Body.Close()
	code := m.Run()
	if theRun != nil && os.Getenv("REALENGINE_OUT") == "" {
		os.RemoveAll(theRun.dir) // kept only where REALENGINE_OUT asks for it
	}
	os.Exit(code)
}

// suiteRun is one run of the suite's command line and what it wrote.
type suiteRun struct {
	dir     string
	stdout  string
	results map[int]*benchfmt.Result // by concurrency
	records []record.Record
	epoch   time.Time // wall clock of the records' offsets (the samples file's run line)
	samples []results.SampleMeta
	tokS    map[int][]float64 // tok/s of every result line by concurrency, in file order
}

// window is the measured window of the run's sample at concurrency c, in
// wall-clock time.
func (s *suiteRun) window(t *testing.T, c int) (from, to time.Time) {
	t.Helper()
	for _, m := range s.samples {
		if m.Concurrency == c {
			return s.epoch.Add(m.WindowStart), s.epoch.Add(m.WindowEnd)
		}
	}
	require.Failf(t, "no sample", "the samples file has no sample at concurrency %d", c)
	return
}

var (
	runOnce sync.Once
	theRun  *suiteRun
	runErr  error
)

// runSuite runs the suite once for all tests, exactly as a user would:
// go test -bench=. in the repository root with the engine on the command
// line. Every test that needs its figures calls it; the first one pays.
func runSuite(t *testing.T) *suiteRun {
	t.Helper()
	runOnce.Do(func() {
		dir := os.Getenv("REALENGINE_OUT")
		if dir == "" {
			dir = os.TempDir()
		}
		theRun, runErr = runSuiteAt(dir, 1, levels...)
	})
	require.NoError(t, runErr)
	return theRun
}

// freshSeed numbers the workload seeds of the suite's runs beside the
// Python client: ollama keeps prompts' KV caches in its slots, and a rerun
// of the very same prompts measured up to 60 % more tok/s at concurrency 4
// than a first run (ollama 0.17.4).
var freshSeed int64 = 1000

// pySalt numbers the Python client's runs (its --salt).
var pySalt atomic.Int64

// runSuiteAt runs the suite's command line with its output in a new folder
// under parent.
func runSuiteAt(parent string, seed int64, levels ...int) (*suiteRun, error) {
	return runSuiteAtN(parent, seed, requests, levels...)
}

// runSuiteAtN is runSuiteAt with n measured requests per level.
func runSuiteAtN(parent string, seed int64, n int, levels ...int) (*suiteRun, error) {
	return runSuiteAtURL(parent, baseURL, seed, n, levels...)
}

// runSuiteAtURL is runSuiteAtN against the server at url (ollama itself,
// or the relay in front of it).
func runSuiteAtURL(parent, url string, seed int64, n int, levels ...int) (*suiteRun, error) {
	return runSuiteWith(parent, url, seed, n, nil, levels...)
}

// runSuiteWith is runSuiteAtURL with extra flags for the suite.
func runSuiteWith(parent, url string, seed int64, n int, extra []string, levels ...int) (*suiteRun, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return nil, fmt.Errorf("repository root %s: %w", root, err)
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, "suite-")
	if err != nil {
		return nil, err
	}
	args := []string{"test", "-run=^$", "-bench=.",
		fmt.Sprintf("-engines=%s@%s=%s/v1/chat/completions", engineName, model, url),
		"-concurrency=" + joinInts(levels),
		fmt.Sprintf("-benchtime=%dx", n),
		fmt.Sprintf("-input-tokens=%d", inputTokens),
		fmt.Sprintf("-output-tokens=%d", outputTokens),
		fmt.Sprintf("-seed=%d", seed),
		"-out", dir}
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	fmt.Printf("suite: go %s (%.1f s, load average %s)\n%s", strings.Join(args, " "), time.Since(start).Seconds(), loadavg(), stdout.String())
	if err != nil {
		return nil, fmt.Errorf("the suite's command failed: %w\nstderr:\n%s", err, stderr.String())
	}
	run := &suiteRun{dir: dir, stdout: stdout.String(), results: map[int]*benchfmt.Result{}}
	if run.tokS, err = readTokS(filepath.Join(dir, engineName+".txt")); err != nil {
		return nil, err
	}
	// One line per level (no -count): value() reads them.
	if len(run.tokS[levels[0]]) == 1 {
		if run.results, err = readResults(filepath.Join(dir, engineName+".txt")); err != nil {
			return nil, err
		}
	}
	if run.records, err = readRecords(filepath.Join(dir, engineName+".jsonl")); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, engineName+".samples.jsonl"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	meta, samples, err := results.ReadSamples(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	run.epoch = time.Unix(0, meta.EpochUnixNano)
	run.samples = samples
	return run, nil
}

// readResults parses the suite's benchstat file with benchfmt and returns
// the result line of each concurrency level (the "/concurrency=N" part of
// the name, wherever it stands).
func readResults(path string) (map[int]*benchfmt.Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[int]*benchfmt.Result{}
	r := benchfmt.NewReader(f, path)
	for r.Scan() {
		switch rec := r.Result().(type) {
		case *benchfmt.SyntaxError:
			return nil, fmt.Errorf("%s: %w", path, rec)
		case *benchfmt.Result:
			c := levelOf(rec)
			if c == 0 {
				return nil, fmt.Errorf("%s: result %s has no /concurrency=N", path, rec.Name.Full())
			}
			if out[c] != nil {
				return nil, fmt.Errorf("%s: two result lines for concurrency %d", path, c)
			}
			out[c] = rec.Clone()
		}
	}
	return out, r.Err()
}

// readTokS is the tok/s of every result line of the suite's benchstat
// file, by concurrency, in the order of the lines (with -count, the
// suite alternates the levels: 1, 4, 1, 4, ...).
func readTokS(path string) (map[int][]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[int][]float64{}
	r := benchfmt.NewReader(f, path)
	for r.Scan() {
		res, ok := r.Result().(*benchfmt.Result)
		if !ok {
			continue
		}
		c := levelOf(res)
		for _, v := range res.Values {
			if v.Unit == "tok/s" || v.OrigUnit == "tok/s" {
				out[c] = append(out[c], v.Value)
			}
		}
	}
	return out, r.Err()
}

// levelOf is the N of a result's "/concurrency=N" name part, wherever it
// stands; 0 when it has none.
func levelOf(res *benchfmt.Result) int {
	_, parts := res.Name.Parts()
	for _, p := range parts {
		c := 0
		if _, err := fmt.Sscanf(string(p), "/concurrency=%d", &c); err == nil {
			return c
		}
	}
	return 0
}

func readRecords(path string) ([]record.Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []record.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for n := 1; sc.Scan(); n++ {
		var r record.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

func (s *suiteRun) measured(c int) []record.Record {
	var out []record.Record
	for _, r := range s.records {
		if r.Engine == engineName && r.Concurrency == c && r.Phase == record.Measured {
			out = append(out, r)
		}
	}
	return out
}

func (s *suiteRun) value(t *testing.T, c int, unit string) float64 {
	t.Helper()
	res := s.results[c]
	require.NotNil(t, res, "no result line at concurrency %d", c)
	// benchfmt tidies units (ns to sec) and keeps the suite's own unit in
	// OrigUnit; an untidied value has OrigUnit "".
	for _, v := range res.Values {
		if v.OrigUnit == unit {
			return v.OrigValue
		}
		if v.OrigUnit == "" && v.Unit == unit {
			return v.Value
		}
	}
	require.Failf(t, "missing unit", "result line at concurrency %d has no %s: %s", c, unit, res.Name.Full())
	return 0
}

// loadavg is the machine's load, logged beside every timing comparison:
// the cores are shared, and a busy neighbour slows the engine between the
// two measurements being compared.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// TestModelHasNoStops: the model runs to max_tokens only if ollama gave it
// no stop strings. "ollama create" adds a template family's stop strings
// when the GGUF's chat template resembles a well-known one; random text
// can spell them and end a reply early (or hold back a chunk while it
// spells a prefix of one).
func TestModelHasNoStops(t *testing.T) {
	body, err := json.Marshal(map[string]string{"model": model})
	require.NoError(t, err)
	resp, err := http.Post(baseURL+"/api/show", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var show struct {
		Parameters string `json:"parameters"`
		Template   string `json:"template"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&show))
	t.Logf("model %s parameters:\n%s", model, show.Parameters)
	assert.NotContains(t, show.Parameters, "stop", "the model has stop strings")
}

// TestSuiteEndToEnd runs the suite's command line against ollama and checks
// what a user gets: every measured request succeeded with exactly the
// requested output length, at every level, and the result files and plots
// are there.
func TestSuiteEndToEnd(t *testing.T) {
	run := runSuite(t)
	for _, c := range levels {
		assert.Zero(t, run.value(t, c, "errors/op"), "errors/op at concurrency %d", c)
		assert.Positive(t, run.value(t, c, "tok/s"), "tok/s at concurrency %d", c)
		for _, unit := range []string{"ttft-p50-ns", "tpot-p50-ns", "itl-p50-ns", "e2e-p50-ns"} {
			assert.Positive(t, run.value(t, c, unit), "%s at concurrency %d", unit, c)
		}
		recs := run.measured(c)
		assert.Len(t, recs, requests, "measured records at concurrency %d", c)
		for _, r := range recs {
			assert.False(t, r.Failed(), "request %d at %d failed: %s %s", r.Seq, c, r.Error, r.Message)
			assert.Equal(t, outputTokens, r.RequestedTokens, "request %d: requested", r.Seq)
			assert.Equal(t, outputTokens, r.OutputTokens, "request %d: output tokens (usage.completion_tokens)", r.Seq)
			assert.Equal(t, record.Usage, r.TokenSource, "request %d: ollama sends usage once, at the end", r.Seq)
			assert.Equal(t, "length", r.FinishReason, "request %d", r.Seq)
			// ollama streams one token per delta, so the chunk count is an
			// independent count of the output.
			assert.Len(t, r.Chunks, outputTokens, "request %d: content chunks", r.Seq)
			assert.InDelta(t, inputTokens, r.PromptTokens, 2, "request %d: prompt tokens after calibration", r.Seq)
		}
	}
	for _, name := range []string{engineName + ".txt", engineName + ".jsonl", "throughput.png", "latency.png", "pareto.png"} {
		b, err := os.ReadFile(filepath.Join(run.dir, name))
		if assert.NoError(t, err, name) {
			assert.NotEmpty(t, b, name)
			if strings.HasSuffix(name, ".png") {
				assert.True(t, bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")), "%s is a PNG", name)
			}
		}
	}
	// The suite's warnings are data: shown here, judged by whoever reads them.
	for _, line := range strings.Split(run.stdout, "\n") {
		if strings.Contains(line, "warning:") {
			t.Logf("suite %s", strings.TrimSpace(line))
		}
	}
}

// chatResult is the part of ollama's native /api/chat answer that carries
// its own accounting.
type chatResult struct {
	Message struct {
		Content string `json:"content"`
	} `json:"message"`
	DoneReason         string `json:"done_reason"`
	PromptEvalCount    int    `json:"prompt_eval_count"`
	PromptEvalDuration int64  `json:"prompt_eval_duration"`
	EvalCount          int    `json:"eval_count"`
	EvalDuration       int64  `json:"eval_duration"`
}

func apiChat(t *testing.T, content string, numPredict int) chatResult {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"model":    model,
		"messages": []map[string]string{{"role": "user", "content": content}},
		"stream":   false,
		"options":  map[string]any{"num_predict": numPredict},
	})
	require.NoError(t, err)
	resp, err := http.Post(baseURL+"/api/chat", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out chatResult
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

// rel is the relative difference of x from the reference ref.
func rel(x, ref float64) float64 {
	if ref == 0 {
		return math.Inf(1)
	}
	return math.Abs(x-ref) / math.Abs(ref)
}

// TestAgreesWithServerAccounting runs the suite at concurrency 1 through
// the relay (relay_test.go), which knows ollama's own accounting of every
// request the suite sends, and compares the two on the same requests: the
// suite's output tokens are the server's eval_count, request by request,
// and the suite's TPOT p50 is the p50 of the server's time per generated
// token within 10 %.
//
// ollama's eval_duration spans tokens 2..eval_count and leaves out
// sampling and the streaming to the client, so the server's TPOT is
// eval_duration/(eval_count-1), the same span as the suite's (last chunk -
// first chunk)/(tokens-1), and lower by the engine's per-token overhead;
// eval_duration/eval_count is logged beside it.
//
// An earlier version compared the suite's requests with requests of the
// same shape sent to /api/chat right after; the engine's speed moved
// between them (−53 % to +21 % over five attempts of one run), so it
// compared two moments of the engine, not two clocks.
func TestAgreesWithServerAccounting(t *testing.T) {
	rl := newRelay(t, baseURL)
	run, err := runSuiteAtURL(t.TempDir(), rl.URL(), 2000, requests, 1)
	require.NoError(t, err)
	entries := rl.Entries()
	for i, e := range entries {
		require.NoError(t, e.Err, "relayed request %d", i)
	}

	// Match each record to the relayed request that arrived just after the
	// suite sent it (same host, same wall clock): at concurrency 1 they are
	// a request's duration apart, so the nearest within 50 ms is the one.
	const slack = 50 * time.Millisecond
	var suiteTPOT, serverTPOT, serverTPOTAll, ratios []float64
	var matched int
	used := map[int]bool{}
	for _, r := range run.records {
		sent := run.epoch.Add(r.Sent)
		best, bestGap := -1, slack
		for i, e := range entries {
			if gap := e.Received.Sub(sent).Abs(); !used[i] && gap < bestGap {
				best, bestGap = i, gap
			}
		}
		require.GreaterOrEqual(t, best, 0, "record seq %d (%s, sent %s): no relayed request within %s", r.Seq, r.Phase, sent.Format(time.StampMicro), slack)
		used[best] = true
		matched++
		e := entries[best]
		require.Equal(t, "length", e.DoneReason, "seq %d ran to max_tokens", r.Seq)
		assert.Equal(t, e.EvalCount, r.OutputTokens, "seq %d: suite output tokens vs server eval_count", r.Seq)
		if r.Phase != record.Measured {
			continue
		}
		tpot, ok := r.TPOT()
		require.True(t, ok, "seq %d has a TPOT", r.Seq)
		server := e.ServerTPOT()
		require.Positive(t, server, "seq %d: server eval_count %d", r.Seq, e.EvalCount)
		suiteTPOT = append(suiteTPOT, float64(tpot))
		serverTPOT = append(serverTPOT, float64(server))
		serverTPOTAll = append(serverTPOTAll, float64(e.EvalDuration)/float64(e.EvalCount))
		ratios = append(ratios, float64(tpot)/float64(server))
		t.Logf("seq %d: suite tpot %.3f ms, server %.3f ms (%+.1f %%), relay %.3f ms; suite ttft %s, server prompt_eval %s",
			r.Seq, float64(tpot)/1e6, float64(server)/1e6, 100*(float64(tpot)/float64(server)-1), float64(e.RelayTPOT())/1e6,
			ttftString(&r), e.PromptEvalDuration.Round(time.Microsecond))
	}
	require.Len(t, suiteTPOT, requests, "measured requests matched")
	line := run.value(t, 1, "tpot-p50-ns")
	server := median(serverTPOT)
	t.Logf("suite tpot-p50 %.3f ms on its line (median of its records %.3f ms); server eval_duration/(eval_count-1) p50 %.3f ms (%+.1f %%), eval_duration/eval_count p50 %.3f ms; per-request ratio %.3f–%.3f; %d of %d relayed requests were the suite's records (the rest: its preflight); load average %s",
		line/1e6, median(suiteTPOT)/1e6, server/1e6, 100*(line/server-1), median(serverTPOTAll)/1e6,
		slices.Min(ratios), slices.Max(ratios), matched, len(entries), loadavg())
	figure(t, "TPOT at concurrency 1: suite %.3f ms, ollama's eval_duration/(eval_count-1) %.3f ms on the same %d requests (%+.1f %%)",
		line/1e6, server/1e6, len(suiteTPOT), 100*(line/server-1))
	assert.InDelta(t, 1, line/server, tolerance, "suite tpot-p50 %.3f ms vs server %.3f ms on the same requests", line/1e6, server/1e6)
}

func ttftString(r *record.Record) string {
	if d, ok := r.TTFT(); ok {
		return d.Round(time.Microsecond).String()
	}
	return "none"
}

// medianRatioCI is a 95 % percentile-bootstrap interval (2,000 resamples,
// seeded) of median(a)/median(b), a and b resampled independently.
func medianRatioCI(a, b []float64, seed int64) (lo, hi float64) {
	rng := rand.New(rand.NewPCG(uint64(seed), 15))
	resample := func(xs []float64) float64 {
		s := make([]float64, len(xs))
		for i := range s {
			s[i] = xs[rng.IntN(len(xs))]
		}
		return median(s)
	}
	ratios := make([]float64, 2000)
	for i := range ratios {
		ratios[i] = resample(a) / resample(b)
	}
	slices.Sort(ratios)
	return ratios[len(ratios)*25/1000], ratios[len(ratios)*975/1000-1]
}

// pyRecord is one measured request of the Python client (--records).
type pyRecord struct {
	Sent   float64   `json:"sent"` // wall clock, seconds since 1970
	TTFT   *float64  `json:"ttft_s"`
	Chunks []float64 `json:"chunks"` // wall clock of every content payload
	Out    int       `json:"out"`
	Error  string    `json:"error"`
}

func wallTime(s float64) time.Time {
	return time.Unix(0, int64(math.Round(s*1e9)))
}

// TestAgreesWithPythonClient runs the independent vLLM-style client
// (testdata/vllm_style_client.py) and the suite against the engine at the
// same time, each at concurrency c (1 and 4), with the same request shape
// (prompt length, output length), and compares what each
// measured over the suite's measured window: output tok/s, and the TTFT
// p50 of the requests sent in it, within 10 %.
//
// At the same moments, because the engine's speed moves by tens of percent
// within seconds on a shared machine (3.3–15.4 ms a token within one
// minute, load average 0.6): clients measured one after the other, even in
// ABBA order, compared two moments of the engine, and five attempts of one
// run disagreed by 20–35 %. Side by side, both clients' requests are in
// the same batches (one decode step gives each sequence a token), so what
// is left between their figures is how each client measures.
//
// Output lengths are uniform in [32, 96] on both sides, not fixed: two
// closed loops of equal request lengths lock their phases. A prompt's
// prefill is a long step here (about 1 ms a token against 4–8 ms for a
// decode step), the request that ends during the other client's prefill
// step waits for it, and then ends during the other's next prefill again:
// with 64 tokens on both sides the Python client's TTFT p50 was 151 ms
// against the suite's 78 ms, every request, at equal tok/s (+0.1 %), and
// 58 ms alone. Random lengths break the lock, so both clients' requests
// meet the same mix of steps.
//
// The engine serves 2c requests at once, so this check uses a second
// server of the same model with 8 slots (INFERBENCH_OLLAMA_WIDE_URL). With
// the 4 slots of the main one, half the requests at 4+4 waited in ollama's
// queue and the Python client got 5.7–7.6 % fewer tokens than the suite in
// the same window (five runs, kept-alive connections or not), its TTFT
// −8.3 to +8.0 %; with 8 slots, tok/s −0.3 to −0.1 %. The main server
// keeps 4: TestBatchingVisible's gain at concurrency 4 was lower with 8.
func TestAgreesWithPythonClient(t *testing.T) {
	python, err := exec.LookPath("python3")
	require.NoError(t, err, "python3 is needed for the cross-check")
	script, err := filepath.Abs(filepath.Join("..", "..", "testdata", "vllm_style_client.py"))
	require.NoError(t, err)

	// The client's prompt is "SALT request N " and words "word": calibrate
	// the word count to the suite's prompt length.
	var prompts []float64
	for _, r := range runSuite(t).measured(1) {
		prompts = append(prompts, float64(r.PromptTokens))
	}
	wide := wideURL
	if wide == "" {
		wide = baseURL
		t.Logf("INFERBENCH_OLLAMA_WIDE_URL is not set: the cross-check uses %s, which needs OLLAMA_NUM_PARALLEL ≥ 8, or half the requests at 4+4 wait in its queue and the Python client gets fewer tokens", baseURL)
	}
	pyPrompt := func(w int) string { return "run0 request 1 " + strings.Repeat("word ", w) }
	a, b := apiChat(t, pyPrompt(10), 1), apiChat(t, pyPrompt(20), 1)
	require.Equal(t, 10, b.PromptEvalCount-a.PromptEvalCount, "each word is one token")
	words := int(median(prompts)) - (a.PromptEvalCount - 10)
	require.Positive(t, words)

	for _, c := range levels {
		t.Run(fmt.Sprintf("concurrency=%d", c), func(t *testing.T) {
			dir := t.TempDir()
			stop, recs := filepath.Join(dir, "stop"), filepath.Join(dir, "python.jsonl")
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, python, script, "--url", wide+"/v1/chat/completions", "--model", model,
				// No temperature: ollama's default sampling. At temperature 0
				// the random model repeats a token on these "word word ..."
				// prompts and ollama ends such a stream after 31 repeats
				// without a finish, usage or [DONE] (llm/server.go, "token
				// repeat limit"). Sampling runs inside each decode step for
				// every sequence of the batch, so it does not tell the two
				// clients' requests apart.
				"--concurrency", fmt.Sprint(c), "--warmup", "1",
				"--max-tokens-range", fmt.Sprintf("%d,%d", outputTokens/2, outputTokens*3/2), "--prompt-words", fmt.Sprint(words),
				// Prompts of their own: ollama keeps prompts' KV in its slots.
				"--salt", fmt.Sprintf("run%d", pySalt.Add(1)),
				"--stop-file", stop, "--records", recs)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			require.NoError(t, cmd.Start())
			pyDone := make(chan error, 1)
			go func() { pyDone <- cmd.Wait() }()
			stopped := false
			stopPython := func() {
				if !stopped {
					stopped = true
					require.NoError(t, os.WriteFile(stop, nil, 0o644))
				}
			}
			defer func() {
				stopPython()
				<-pyDone
			}()

			// The suite's own warm-up and ramp-up come after the client's
			// first requests; its window is what is compared.
			freshSeed++
			run, err := runSuiteWith(t.TempDir(), wide, freshSeed, max(compareRequests, 12*c),
				[]string{fmt.Sprintf("-output-tokens=uniform:%d,%d", outputTokens/2, outputTokens*3/2)}, c)
			require.NoError(t, err)
			stopPython()
			select {
			case err := <-pyDone:
				pyDone <- err
				require.NoError(t, err, "python client: %s", stderr.String())
			case <-ctx.Done():
				require.Fail(t, "the python client did not stop", "%s", stderr.String())
			}

			from, to := run.window(t, c)
			raw, err := os.ReadFile(recs)
			require.NoError(t, err)
			var tokens int
			var ttfts []float64
			var inWindow, errs int
			for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
				var r pyRecord
				require.NoError(t, json.Unmarshal(line, &r), "%s", line)
				if r.Error != "" {
					errs++
					continue
				}
				for _, at := range r.Chunks {
					if at := wallTime(at); !at.Before(from) && !at.After(to) {
						tokens++ // one token per content payload on this model (exact counts are checked end to end)
					}
				}
				if sent := wallTime(r.Sent); !sent.Before(from) && !sent.After(to) && r.TTFT != nil {
					inWindow++
					ttfts = append(ttfts, *r.TTFT*1e3)
				}
			}
			require.Zero(t, errs, "python client errors")
			require.GreaterOrEqual(t, inWindow, 4*c, "python requests sent in the suite's window")
			pTok := float64(tokens) / to.Sub(from).Seconds()
			pTTFT := median(ttfts)
			sTok := run.value(t, c, "tok/s")
			sTTFT := run.value(t, c, "ttft-p50-ns") / 1e6
			var suiteTTFTs []float64
			for _, r := range run.measured(c) {
				if d, ok := r.TTFT(); ok {
					suiteTTFTs = append(suiteTTFTs, float64(d)/1e6)
				}
			}
			lo, hi := medianRatioCI(ttfts, suiteTTFTs, int64(c))
			t.Logf("concurrency %d each, over the suite's window of %.1f s: suite %.1f tok/s, ttft p50 %.1f ms; python %.1f tok/s (%+.1f %%), ttft p50 %.1f ms (%+.1f %%, 95 %% interval of the ratio %.3f–%.3f; %d and %d requests); load average %s",
				c, to.Sub(from).Seconds(), sTok, sTTFT, pTok, 100*(pTok/sTok-1), pTTFT, 100*(pTTFT/sTTFT-1), lo, hi, inWindow, len(suiteTTFTs), loadavg())
			figure(t, "side by side at concurrency %d each: python client's tok/s %+.1f %% and TTFT p50 %+.1f %% of the suite's (%.1f tok/s, %.1f ms)",
				c, 100*(pTok/sTok-1), 100*(pTTFT/sTTFT-1), sTok, sTTFT)
			assert.InDelta(t, 1, pTok/sTok, tolerance, "python tok/s %.1f vs suite %.1f", pTok, sTok)
			// TTFT p50s of two samples of 30-50 requests each: at 4+4 a
			// request's TTFT is mostly waiting for the other prompts'
			// prefill steps (80-400 ms), so each median moves by about
			// 7 % from sampling alone, and the point ratio missed 10 % in
			// one of five runs that agreed on tok/s within 0.3 %. The
			// check fails when the data show a gap beyond 10 %: the 95 %
			// bootstrap interval of the ratio must reach into [0.9, 1.1].
			assert.True(t, lo <= 1+tolerance && hi >= 1-tolerance,
				"python ttft p50 %.1f ms vs suite %.1f ms: the 95 %% interval of the ratio, %.3f–%.3f, lies outside 1 ± %.2f", pTTFT, sTTFT, lo, hi, tolerance)
		})
	}
}

// TestBatchingVisible: ollama batches its slots' decode steps, and the
// suite must show it. What it asserts is what the suite is responsible
// for, at the same moments: in a batching engine the four streams' tokens
// come out of the same decode steps, so a chunk of one stream arrives
// within a small fraction of a step of a chunk of another (coStepGap;
// measured on ollama: 13–76 µs against a 2–11 ms ITL). An engine that
// serves one sequence at a time (the simulator with one running sequence,
// TestCoStepGapTellsSerialEngines) fails it.
//
// What batching buys in tok/s is the engine's, not the suite's: it is
// measured (three pairs of samples at concurrency 1 and 4, -count=3
// alternating the levels) and logged as a figure, never asserted. On this
// model (28M parameters, one ggml thread) on 2 shared cores it was
// ×0.93–1.88 from one pair to the next, and below 1 in the median of the
// pairs in 2 of 2 runs of a quiet machine (issue 24): whether four
// sequences gain depends on whether a decode step is bound by compute or
// by reading the weights, which the model's size and the neighbours' use
// of the shared cache decide. The pairs' records are still checked: no
// failed request and every output token counted.
func TestBatchingVisible(t *testing.T) {
	run := runSuite(t)
	gap, itl := coStepGap(run.records, 4)
	t.Logf("at concurrency 4: a chunk's nearest chunk of another request is %s away (p50), the ITL p50 is %s", gap, itl)
	assert.Less(t, gap, itl/coStepFraction, "tokens of concurrent requests come out of the same steps")

	freshSeed++
	pairs, err := runSuiteWith(t.TempDir(), baseURL, freshSeed, 8, []string{"-count=3"}, 1, 4)
	require.NoError(t, err)
	for _, c := range []int{1, 4} {
		recs := pairs.measured(c)
		require.Len(t, recs, 3*8, "measured records at concurrency %d: 3 samples of 8", c)
		for _, r := range recs {
			require.False(t, r.Failed(), "request %d at %d failed: %s %s", r.Seq, c, r.Error, r.Message)
			require.Equal(t, outputTokens, r.OutputTokens, "request %d at %d: output tokens", r.Seq, c)
		}
	}
	require.Len(t, pairs.tokS[1], 3, "three samples at concurrency 1")
	require.Len(t, pairs.tokS[4], 3, "three samples at concurrency 4")
	var ratios []float64
	for i := range pairs.tokS[1] {
		one, four := pairs.tokS[1][i], pairs.tokS[4][i]
		ratios = append(ratios, four/one)
		t.Logf("pair %d: %.1f tok/s at concurrency 1, %.1f at 4 (×%.2f)", i+1, one, four, four/one)
	}
	figure(t, "batching gain: tok/s at concurrency 4 ÷ at 1, median of 3 pairs ×%.2f (pairs %s); load average %s",
		median(ratios), joinRatios(ratios), loadavg())
}

// figure logs a measured figure of the engine's: a line .ci/real-engine
// collects at its end ("real-engine figure: ..."), for what the tests
// measure but must not assert (a third party's speed on this machine).
func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("real-engine figure: "+format, args...)
}

func joinRatios(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("×%.2f", x)
	}
	return strings.Join(s, ", ")
}

// coStepFraction: a chunk's nearest chunk of another request must be
// closer than the ITL p50 divided by this. An engine that runs one
// sequence per step interleaves n streams' tokens about ITL/n apart.
const coStepFraction = 20

// coStepGap is, over the measured requests at concurrency c, the median
// distance from each output chunk to the nearest chunk of any other
// request of the same sample, and the median gap between a request's own
// successive chunks (ITL p50).
func coStepGap(recs []record.Record, c int) (nearest, itl time.Duration) {
	type ev struct {
		at  time.Duration
		req int
	}
	var evs []ev
	for i, r := range recs {
		if r.Concurrency == c {
			for _, ch := range r.Chunks {
				evs = append(evs, ev{ch.At, i})
			}
		}
	}
	slices.SortFunc(evs, func(a, b ev) int { return cmp.Compare(a.at, b.at) })
	var gaps, itls []float64
	for i, e := range evs {
		r := &recs[e.req]
		if r.Phase != record.Measured {
			continue
		}
		best := time.Duration(math.MaxInt64)
		for j := i - 1; j >= 0 && e.at-evs[j].at < best; j-- {
			if evs[j].req != e.req && recs[evs[j].req].Sample == r.Sample {
				best = e.at - evs[j].at
			}
		}
		for j := i + 1; j < len(evs) && evs[j].at-e.at < best; j++ {
			if evs[j].req != e.req && recs[evs[j].req].Sample == r.Sample {
				best = evs[j].at - e.at
			}
		}
		if best != time.Duration(math.MaxInt64) {
			gaps = append(gaps, float64(best))
		}
	}
	for _, r := range recs {
		if r.Concurrency == c && r.Phase == record.Measured {
			for k := 1; k < len(r.Chunks); k++ {
				itls = append(itls, float64(r.Chunks[k].At-r.Chunks[k-1].At))
			}
		}
	}
	if len(gaps) == 0 || len(itls) == 0 {
		return time.Duration(math.MaxInt64), 0
	}
	return time.Duration(median(gaps)), time.Duration(median(itls))
}

// TestCoStepGapTellsSerialEngines: coStepGap tells a batching engine from
// one that runs a single sequence at a time, on the simulator with the
// same step costs and a limit of 8 or 1 running sequences, through the
// suite's command line at concurrency 4.
func TestCoStepGapTellsSerialEngines(t *testing.T) {
	for _, tt := range []struct {
		name     string
		seqs     int
		batching bool
	}{
		// Eight running sequences: the four streams share every step.
		{"batching", 8, true},
		// One: the others wait, and their tokens never share a step.
		{"serial", 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := sim.Preset("friendli-like")
			require.NoError(t, err)
			cfg.MaxNumSeqs = tt.seqs
			cfg.MaxBatchedTokens = max(cfg.MaxBatchedTokens, tt.seqs)
			srv, err := fake.Start(cfg, fake.Options{Model: model})
			require.NoError(t, err)
			defer srv.Close()
			run, err := runSuiteWith(t.TempDir(), srv.Addr(), 1, requests, nil, 4)
			require.NoError(t, err)
			gap, itl := coStepGap(run.records, 4)
			t.Logf("%s: nearest chunk of another request %s (p50), ITL p50 %s", tt.name, gap, itl)
			assert.Equal(t, tt.batching, gap < itl/coStepFraction)
		})
	}
}
