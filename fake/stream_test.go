package fake

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// chunk is the part of a stream event the tests check.
type chunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Delta *struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		Text         *string `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		Prompt     int `json:"prompt_tokens"`
		Completion int `json:"completion_tokens"`
		Total      int `json:"total_tokens"`
	} `json:"usage"`
}

func decodeChunks(t testing.TB, evs []string) []chunk {
	t.Helper()
	require.NotEmpty(t, evs)
	require.Equal(t, "[DONE]", evs[len(evs)-1], "the stream must end with [DONE]")
	out := make([]chunk, len(evs)-1)
	for i, e := range evs[:len(evs)-1] {
		require.NoError(t, json.Unmarshal([]byte(e), &out[i]), "event %d: %s", i, e)
	}
	return out
}

var createdRE = regexp.MustCompile(`"created":\d+`)

// TestStreamGolden pins the exact bytes of streamed chat and text
// completions (created normalised), with and without usage.
func TestStreamGolden(t *testing.T) {
	tests := []struct {
		name, path, body string
		opts             Options // Seed 7 is added
	}{
		// Chat, 3 tokens, include_usage: role, 3 contents, finish, usage, [DONE].
		{"chat_usage", "/v1/chat/completions", `{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}`, Options{}},
		// Chat, continuous usage: usage on every chunk.
		{"chat_continuous", "/v1/chat/completions", `{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"min_tokens":2,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, Options{}},
		// Chat without usage: no usage chunk.
		{"chat_plain", "/v1/chat/completions", `{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"ignore_eos":true,"stream":true}`, Options{}},
		// Text completion: no role chunk, text_completion objects.
		{"completion_usage", "/v1/completions", `{"model":"fake-model","prompt":"hi","max_tokens":2,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}`, Options{}},
		// ollama's shape: no role chunk, the role in every delta and in the
		// finish chunk's empty delta, then usage with choices [] and [DONE].
		{"chat_role_every_delta", "/v1/chat/completions", `{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}`, Options{RoleInEveryDelta: true}},
		// The same flag changes nothing in a text completion.
		{"completion_role_every_delta", "/v1/completions", `{"model":"fake-model","prompt":"hi","max_tokens":2,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}`, Options{RoleInEveryDelta: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Seed = 7
			_, ts := newTest(t, firehoseCfg(t), tt.opts)
			resp := post(t, context.Background(), ts.URL+tt.path, tt.body)
			require.Equal(t, 200, resp.StatusCode)
			assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
			got := createdRE.ReplaceAll(readAll(t, resp), []byte(`"created":0`))
			events(t, got) // well-formed SSE
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				require.NoError(t, os.WriteFile(golden, got, 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test -run TestStreamGolden -update to create it")
			assert.Equal(t, string(want), string(got))
		})
	}
}

// TestStreamShape checks the order and content of a streamed chat
// completion through a real engine: role with the first token, one chunk per
// token, finish, usage, [DONE].
func TestStreamShape(t *testing.T) {
	_, ts := newTest(t, fastCfg(t), Options{})
	resp := post(t, context.Background(), ts.URL+"/v1/chat/completions",
		`{"model":"fake-model","messages":[{"role":"user","content":"hello world"}],"max_tokens":6,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}`)
	cs := decodeChunks(t, events(t, readAll(t, resp)))
	require.Len(t, cs, 1+6+1+1)
	role := cs[0].Choices[0].Delta
	require.NotNil(t, role.Role)
	assert.Equal(t, "assistant", *role.Role)
	assert.Equal(t, "", *role.Content)
	var text strings.Builder
	for i, c := range cs[1:7] {
		require.Len(t, c.Choices, 1, "chunk %d", i)
		require.NotNil(t, c.Choices[0].Delta.Content)
		assert.NotEmpty(t, *c.Choices[0].Delta.Content)
		assert.Nil(t, c.Choices[0].FinishReason)
		assert.Nil(t, c.Usage, "no usage without continuous_usage_stats")
		text.WriteString(*c.Choices[0].Delta.Content)
		assert.Equal(t, cs[0].ID, c.ID)
		assert.Equal(t, "chat.completion.chunk", c.Object)
	}
	assert.Len(t, strings.Fields(text.String()), 6)
	fin := cs[7]
	require.NotNil(t, fin.Choices[0].FinishReason)
	assert.Equal(t, "length", *fin.Choices[0].FinishReason)
	usage := cs[8]
	assert.Empty(t, usage.Choices)
	require.NotNil(t, usage.Usage)
	p := EstimatePromptTokens([]Message{{Role: "user", Content: "hello world"}})
	assert.Equal(t, p, usage.Usage.Prompt)
	assert.Equal(t, 6, usage.Usage.Completion)
	assert.Equal(t, p+6, usage.Usage.Total)
}

// TestHeadersWaitForFirstToken checks that headers and the role chunk
// arrive together with the first token, after TTFT, and not before. Real
// time, generous bounds: TTFT is 150 ms, the check is > 100 ms.
func TestHeadersWaitForFirstToken(t *testing.T) {
	cfg := fastCfg(t)
	cfg.ApplyPrototype(150, 1, 16)
	_, ts := newTest(t, cfg, Options{})
	start := time.Now()
	resp := post(t, context.Background(), ts.URL+"/v1/chat/completions",
		`{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":2,"ignore_eos":true,"stream":true}`)
	defer resp.Body.Close()
	headers := time.Since(start)
	assert.Greater(t, headers, 100*time.Millisecond, "headers must wait for the first token")
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n') // role chunk
	require.NoError(t, err)
	assert.Contains(t, first, `"role":"assistant"`)
	_, err = br.ReadString('\n') // blank
	require.NoError(t, err)
	second, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Contains(t, second, `"content":"`)
	assert.NotContains(t, second, `"role"`)
}

func TestContinuousUsage(t *testing.T) {
	tests := []struct {
		name      string
		opts      string
		perChunk  bool // usage on every chunk
		finalOnly bool // one final usage chunk
	}{
		// include_usage + continuous_usage_stats: cumulative usage everywhere, and the final chunk.
		{"both", `{"include_usage":true,"continuous_usage_stats":true}`, true, true},
		// continuous_usage_stats alone does nothing, as in vLLM.
		{"continuous alone", `{"continuous_usage_stats":true}`, false, false},
		// include_usage alone: only the final chunk.
		{"include alone", `{"include_usage":true}`, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ts := newTest(t, firehoseCfg(t), Options{TokensPerChunk: 2})
			resp := post(t, context.Background(), ts.URL+"/v1/chat/completions",
				`{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":5,"ignore_eos":true,"stream":true,"stream_options":`+tt.opts+`}`)
			cs := decodeChunks(t, events(t, readAll(t, resp)))
			last := cs[len(cs)-1]
			if tt.finalOnly {
				require.Empty(t, last.Choices)
				require.NotNil(t, last.Usage)
				assert.Equal(t, 5, last.Usage.Completion)
				cs = cs[:len(cs)-1]
			} else {
				require.NotEmpty(t, last.Choices)
			}
			want := []int{0, 2, 4, 5, 5} // role, three content chunks of 2,2,1, finish
			require.Len(t, cs, len(want))
			for i, c := range cs {
				if !tt.perChunk {
					assert.Nil(t, c.Usage, "chunk %d", i)
					continue
				}
				require.NotNil(t, c.Usage, "chunk %d", i)
				assert.Equal(t, want[i], c.Usage.Completion, "chunk %d", i)
				assert.Equal(t, c.Usage.Prompt+c.Usage.Completion, c.Usage.Total)
			}
		})
	}
}

func TestTokensPerChunk(t *testing.T) {
	tests := []struct {
		name   string
		k, n   int
		engine bool
		want   []int // words per content chunk
	}{
		// One token per chunk by default.
		{"k=1", 1, 3, false, []int{1, 1, 1}},
		// k=3 with 10 tokens: 3,3,3,1.
		{"k=3", 3, 10, false, []int{3, 3, 3, 1}},
		// k larger than the output: one chunk.
		{"k>n", 8, 5, false, []int{5}},
		// Through the real engine the packing is the same.
		{"k=4 engine", 4, 9, true, []int{4, 4, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := firehoseCfg(t)
			if tt.engine {
				cfg = fastCfg(t)
			}
			_, ts := newTest(t, cfg, Options{TokensPerChunk: tt.k})
			resp := post(t, context.Background(), ts.URL+"/v1/chat/completions",
				`{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":`+itoa(tt.n)+`,"ignore_eos":true,"stream":true}`)
			cs := decodeChunks(t, events(t, readAll(t, resp)))
			var got []int
			for _, c := range cs[1 : len(cs)-1] {
				got = append(got, len(strings.Fields(*c.Choices[0].Delta.Content)))
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// streamLen streams one request and returns its content tokens (words),
// usage.completion_tokens and finish reason.
func streamLen(t testing.TB, url, extra string) (words, completion int, reason string) {
	t.Helper()
	resp := post(t, context.Background(), url+"/v1/chat/completions",
		`{"model":"fake-model","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}`+extra+`}`)
	require.Equal(t, 200, resp.StatusCode)
	cs := decodeChunks(t, events(t, readAll(t, resp)))
	for _, c := range cs[1 : len(cs)-2] {
		words += len(strings.Fields(*c.Choices[0].Delta.Content))
	}
	return words, cs[len(cs)-1].Usage.Completion, *cs[len(cs)-2].Choices[0].FinishReason
}

// TestOutputLength checks the output lengths, finish reasons and
// completion_tokens with and without Options.NaturalStop. On the old code
// the "no limit" and "limit without ignore_eos" rows failed (a request
// without ignore_eos stopped early at a natural EOS: 52, 101, 99 tokens of
// --tokens 128), and the natural-stop rows failed because
// completion_tokens did not count the EOS.
func TestOutputLength(t *testing.T) {
	tests := []struct {
		name    string
		natural bool // Options.NaturalStop
		extra   string
		lo, hi  int    // allowed content length
		reason  string // "" when either may occur
		fixedOK bool   // the length is exact
	}{
		// ignore_eos: exactly max_tokens, "length".
		{"ignore_eos", false, `,"max_tokens":7,"ignore_eos":true`, 7, 7, "length", true},
		// min_tokens = max_tokens: exact too (how Friendli is asked).
		{"min=max", false, `,"max_tokens":9,"min_tokens":9`, 9, 9, "length", true},
		// max_completion_tokens wins over max_tokens.
		{"max_completion_tokens", false, `,"max_completion_tokens":4,"max_tokens":50,"ignore_eos":true`, 4, 4, "length", true},
		// No limit and no ignore_eos: exactly the configured default (16).
		{"no limit", false, ``, 16, 16, "length", true},
		// A limit without ignore_eos: exactly the limit, no EOS by default.
		{"limit without ignore_eos", false, `,"max_tokens":40,"min_tokens":10`, 40, 40, "length", true},
		// NaturalStop: a natural stop between min_tokens and the limit.
		{"natural stop", true, `,"max_tokens":40,"min_tokens":10`, 10, 40, "", false},
		// NaturalStop without a limit: natural lengths up to the default.
		{"natural stop, no limit", true, ``, 1, 16, "", false},
		// NaturalStop yields to ignore_eos.
		{"natural stop, ignore_eos", true, `,"max_tokens":7,"ignore_eos":true`, 7, 7, "length", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ts := newTest(t, firehoseCfg(t), Options{Seed: 3, NaturalStop: tt.natural})
			seen := map[int]bool{}
			for range 20 {
				n, completion, reason := streamLen(t, ts.URL, tt.extra)
				assert.GreaterOrEqual(t, n, tt.lo)
				assert.LessOrEqual(t, n, tt.hi)
				if tt.reason != "" {
					assert.Equal(t, tt.reason, reason)
				} else if n < tt.hi {
					assert.Equal(t, "stop", reason)
				} else {
					assert.Equal(t, "length", reason)
				}
				if reason == "stop" {
					assert.Equal(t, n+1, completion, "completion_tokens counts the unsent EOS")
				} else {
					assert.Equal(t, n, completion, "usage must match the content")
				}
				seen[n] = true
			}
			if !tt.fixedOK {
				assert.Greater(t, len(seen), 3, "natural lengths should vary")
			}
		})
	}
	// The same seed and order give the same lengths and text.
	run := func(seed int64) string {
		_, ts := newTest(t, firehoseCfg(t), Options{Seed: seed, NaturalStop: true})
		var b strings.Builder
		for range 10 {
			resp := post(t, context.Background(), ts.URL+"/v1/completions", `{"model":"fake-model","prompt":"x","max_tokens":30}`)
			body := createdRE.ReplaceAll(readAll(t, resp), nil)
			b.Write(body)
		}
		return b.String()
	}
	assert.Equal(t, run(5), run(5), "same seed, same outputs")
	assert.NotEqual(t, run(5), run(6), "another seed, other outputs")
}

// TestNaturalStopGeneratesTheEOS checks, on a real engine and without
// streaming, that a natural stop's EOS is a generated token: the engine
// counts content + 1 tokens per stopped request, and usage says the same.
func TestNaturalStopGeneratesTheEOS(t *testing.T) {
	s, ts := newTest(t, fastCfg(t), Options{Seed: 3, NaturalStop: true})
	total, stops := 0, 0
	for range 8 {
		resp := post(t, context.Background(), ts.URL+"/v1/chat/completions",
			`{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":12}`)
		require.Equal(t, 200, resp.StatusCode)
		var r struct {
			Choices []struct {
				Message      struct{ Content string } `json:"message"`
				FinishReason string                   `json:"finish_reason"`
			} `json:"choices"`
			Usage struct {
				Completion int `json:"completion_tokens"`
			} `json:"usage"`
		}
		require.NoError(t, json.Unmarshal(readAll(t, resp), &r))
		require.Len(t, r.Choices, 1)
		words := len(strings.Fields(r.Choices[0].Message.Content))
		if r.Choices[0].FinishReason == "stop" {
			stops++
			assert.Equal(t, words+1, r.Usage.Completion)
		} else {
			assert.Equal(t, 12, words)
			assert.Equal(t, 12, r.Usage.Completion)
		}
		total += r.Usage.Completion
	}
	require.Positive(t, stops, "seed 3 should give natural stops")
	assert.EqualValues(t, total, s.Engine().Stats().GenerationTokensTotal, "the engine generated every counted token, EOS included")
}

// outcome classifies one request's result for the failure-injection tests.
func outcome(t testing.TB, url string, timeout time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(
		`{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":8,"ignore_eos":true,"stream":true}`))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "error"
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return itoa(resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "hang"
	case err != nil:
		return "cut"
	}
	if !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
		return "no-done"
	}
	for _, e := range events(t, body) {
		if e != "[DONE]" && !json.Valid([]byte(e)) {
			return "malformed"
		}
	}
	return "ok"
}

func TestFailureInjection(t *testing.T) {
	tests := []struct {
		kind string
		want string
	}{
		// 429 answers at once with an OpenAI error.
		{"429", "429"},
		// 500 likewise.
		{"500", "500"},
		// cut: the body breaks before [DONE].
		{"cut", "cut"},
		// hang: the client's deadline expires with the connection open.
		{"hang", "hang"},
		// malformed: one data line that is not JSON, then the stream ends normally.
		{"malformed", "malformed"},
		// error-event: an error object in the 200 stream, then no [DONE].
		{"error-event", "no-done"},
		// abort: ollama's token-repeat limit, the body just ends (no error either).
		{"abort", "no-done"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			_, ts := newTest(t, fastCfg(t), Options{ErrorRate: 1, ErrorKinds: []string{tt.kind}})
			assert.Equal(t, tt.want, outcome(t, ts.URL, time.Second))
		})
	}
	t.Run("determinism", func(t *testing.T) {
		run := func(seed int64) []string {
			_, ts := newTest(t, firehoseCfg(t), Options{ErrorRate: 0.5, ErrorKinds: []string{"429", "500", "cut", "malformed"}, Seed: seed})
			var out []string
			for range 40 {
				out = append(out, outcome(t, ts.URL, 2*time.Second))
			}
			return out
		}
		a := run(11)
		assert.Equal(t, a, run(11), "same seed, same failures in the same order")
		assert.NotEqual(t, a, run(12))
		counts := map[string]int{}
		for _, o := range a {
			counts[o]++
		}
		assert.Greater(t, counts["ok"], 5)
		assert.Less(t, counts["ok"], 35)
	})
	t.Run("hang ends on server close", func(t *testing.T) {
		s, ts := newTest(t, fastCfg(t), Options{ErrorRate: 1, ErrorKinds: []string{"hang"}})
		res := make(chan string, 1)
		go func() { res <- outcome(t, ts.URL, time.Minute) }()
		time.Sleep(100 * time.Millisecond)
		s.Close()
		assert.Equal(t, "no-done", <-res)
	})
	t.Run("non-stream", func(t *testing.T) {
		for _, kind := range []string{"cut", "malformed"} {
			_, ts := newTest(t, firehoseCfg(t), Options{ErrorRate: 1, ErrorKinds: []string{kind}})
			resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":8}`)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if kind == "cut" {
				assert.Error(t, err, "a cut body fails to read")
			} else {
				require.NoError(t, err)
				assert.False(t, json.Valid(body))
			}
		}
	})
}

// TestErrorEvent pins llama-server's in-stream error: content chunks, then
// data: {"error":{"code":500,…,"type":"server_error"}}, then the end of a
// clean HTTP 200 body with no finish_reason, no usage and no [DONE]; and
// HTTP 500 with the same object without a stream. On the old code
// "error-event" was an unknown kind and NewServer refused it.
func TestErrorEvent(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		contents int // content chunks before the error event
	}{
		// Half of 8 tokens, then the error, with include_usage asked for.
		{"after content", `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":8,"stream":true,"stream_options":{"include_usage":true}}`, 4},
		// A one-token output fails at once: the role chunk, then the error.
		{"at once", `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":1,"stream":true}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTest(t, fastCfg(t), Options{ErrorRate: 1, ErrorKinds: []string{"error-event"}})
			for i := range 3 { // every request, deterministically
				resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", tt.body)
				require.Equal(t, 200, resp.StatusCode)
				evs := events(t, readAll(t, resp)) // the body ends cleanly
				require.Len(t, evs, 1+tt.contents+1, "request %d: role, contents, error: %q", i, evs)
				for _, e := range evs[:len(evs)-1] {
					var c chunk
					require.NoError(t, json.Unmarshal([]byte(e), &c))
					require.Len(t, c.Choices, 1)
					assert.Nil(t, c.Choices[0].FinishReason, "no finish_reason before the error")
					assert.Nil(t, c.Usage)
				}
				assert.JSONEq(t, `{"error":{"code":500,"message":"simulated failure: the server could not parse the model output","type":"server_error"}}`, evs[len(evs)-1])
			}
			eventually(t, "the failed sequences to be freed", func() bool { return s.Engine().Stats().Running == 0 })
		})
	}
	t.Run("non-stream", func(t *testing.T) {
		_, ts := newTest(t, firehoseCfg(t), Options{ErrorRate: 1, ErrorKinds: []string{"error-event"}})
		resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":8}`)
		assert.Equal(t, 500, resp.StatusCode)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		assert.JSONEq(t, `{"error":{"code":500,"message":"simulated failure: the server could not parse the model output","type":"server_error"}}`, string(readAll(t, resp)))
	})
}

// TestDisconnectFreesSlot checks that a client leaving mid-stream frees its
// batch slot and KV, and that the handler returns.
func TestDisconnectFreesSlot(t *testing.T) {
	s, ts := newTest(t, fastCfg(t), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	resp := post(t, ctx, ts.URL+"/v1/chat/completions",
		`{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":100000,"ignore_eos":true,"stream":true}`)
	br := bufio.NewReader(resp.Body)
	_, err := br.ReadString('\n')
	require.NoError(t, err)
	st := s.Engine().Stats()
	assert.Equal(t, 1, st.Running)
	assert.Positive(t, st.KVUsedTokens)
	cancel()
	resp.Body.Close()
	eventually(t, "the slot and KV to be freed", func() bool {
		st := s.Engine().Stats()
		return st.Running == 0 && st.KVUsedTokens == 0
	})
}
