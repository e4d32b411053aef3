package fake

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewServerValidates(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		// The zero Options are valid.
		{"defaults", Options{}, ""},
		// A negative chunk size is refused.
		{"negative tokens per chunk", Options{TokensPerChunk: -1}, "TokensPerChunk"},
		// A negative body limit is refused.
		{"negative body limit", Options{MaxBodyBytes: -1}, "MaxBodyBytes"},
		// An error rate above 1 is refused.
		{"rate above 1", Options{ErrorRate: 1.5, ErrorKinds: []string{"500"}}, "error rate"},
		// NaN is not a fraction.
		{"rate NaN", Options{ErrorRate: math.NaN(), ErrorKinds: []string{"500"}}, "error rate"},
		// An unknown kind names the valid ones.
		{"unknown kind", Options{ErrorRate: 0.1, ErrorKinds: []string{"teapot"}}, "429,500,cut,hang,malformed"},
		// A rate without kinds asks for kinds.
		{"rate without kinds", Options{ErrorRate: 0.1}, "needs error kinds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewServer(firehoseCfg(t), tt.opts)
			if tt.wantErr == "" {
				require.NoError(t, err)
				s.Close()
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
	// An invalid engine configuration is refused with sim's message.
	bad := fastCfg(t)
	bad.MaxNumSeqs = 0
	_, err := NewServer(bad, Options{})
	require.ErrorContains(t, err, "max-num-seqs")
}

func TestEndpoints(t *testing.T) {
	_, ts := newTest(t, fastCfg(t), Options{Model: "m1", EngineName: "vLLM"})
	tests := []struct {
		name, method, path, body string
		status                   int
		ctype                    string
		contains                 []string
	}{
		// Health is 200 with an empty body, like vLLM.
		{"health", "GET", "/health", "", 200, "", nil},
		// Models lists the served model, owned by the engine label.
		{"models", "GET", "/v1/models", "", 200, "application/json", []string{`"id":"m1"`, `"owned_by":"vLLM"`, `"object":"list"`, `"max_model_len":`}},
		// Metrics has vLLM's names with HELP, TYPE and the model_name label.
		{"metrics", "GET", "/metrics", "", 200, "text/plain", []string{
			"# TYPE vllm:num_requests_running gauge", `vllm:num_requests_running{model_name="m1"} 0`,
			"# TYPE vllm:num_requests_waiting gauge", "# TYPE vllm:kv_cache_usage_perc gauge",
			"# HELP vllm:prompt_tokens_total", "# TYPE vllm:prompt_tokens_total counter",
			"# TYPE vllm:generation_tokens_total counter"}},
		// A non-streamed chat completion returns the message, finish reason and usage.
		{"chat", "POST", "/v1/chat/completions", `{"model":"m1","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"ignore_eos":true}`,
			200, "application/json", []string{`"object":"chat.completion"`, `"finish_reason":"length"`, `"completion_tokens":3`, `"role":"assistant"`}},
		// A non-streamed text completion likewise.
		{"completions", "POST", "/v1/completions", `{"model":"m1","prompt":"hello","max_tokens":2,"min_tokens":2}`,
			200, "application/json", []string{`"object":"text_completion"`, `"completion_tokens":2`, `"prompt_tokens":2`}},
		// A streamed chat completion is an event stream.
		{"chat stream", "POST", "/v1/chat/completions", `{"model":"m1","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"stream":true}`,
			200, "text/event-stream", []string{"data: [DONE]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, ts.URL+tt.path, strings.NewReader(tt.body))
			require.NoError(t, err)
			resp, err := ts.Client().Do(req)
			require.NoError(t, err)
			body := string(readAll(t, resp))
			assert.Equal(t, tt.status, resp.StatusCode, body)
			assert.Contains(t, resp.Header.Get("Content-Type"), tt.ctype)
			for _, c := range tt.contains {
				assert.Contains(t, body, c)
			}
			if tt.path == "/health" {
				assert.Empty(t, body)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	_, ts := newTest(t, fastCfg(t), Options{MaxBodyBytes: 65536})
	chat := "/v1/chat/completions"
	tests := []struct {
		name, method, path, body string
		status                   int
		msg                      string // part of error.message
	}{
		// Bad JSON is a 400 that says so.
		{"bad json", "POST", chat, `{"model":`, 400, "not a JSON object"},
		// A JSON array is not a request.
		{"array body", "POST", chat, `[1,2]`, 400, "not a JSON object"},
		// Data after the object is refused.
		{"trailing data", "POST", chat, `{"model":"fake-model","messages":[{"role":"user","content":"x"}]} {}`, 400, "after the JSON object"},
		// No model.
		{"no model", "POST", chat, `{"messages":[{"role":"user","content":"x"}]}`, 400, `"model" is required`},
		// No messages.
		{"no messages", "POST", chat, `{"model":"fake-model"}`, 400, `"messages"`},
		// Empty messages.
		{"empty messages", "POST", chat, `{"model":"fake-model","messages":[]}`, 400, `"messages"`},
		// A message without a role.
		{"no role", "POST", chat, `{"model":"fake-model","messages":[{"content":"x"}]}`, 400, `"role" is required`},
		// Content that is a number.
		{"content number", "POST", chat, `{"model":"fake-model","messages":[{"role":"user","content":5}]}`, 400, "messages[0].content"},
		// max_tokens of the wrong type names the field.
		{"max_tokens string", "POST", chat, `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":"3"}`, 400, `"max_tokens"`},
		// stream of the wrong type names the field.
		{"stream string", "POST", chat, `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"stream":"yes"}`, 400, `"stream"`},
		// max_tokens 0 is refused.
		{"max_tokens zero", "POST", chat, `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":0}`, 400, "must be ≥ 1"},
		// min_tokens above the limit is refused.
		{"min above max", "POST", chat, `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":3,"min_tokens":4}`, 400, "min_tokens"},
		// n > 1 is not supported.
		{"n=2", "POST", chat, `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"n":2}`, 400, `"n"`},
		// stream_options without stream, as OpenAI refuses it.
		{"stream_options without stream", "POST", chat, `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}`, 400, "stream_options"},
		// Invalid UTF-8 is refused, not replaced.
		{"invalid utf-8", "POST", chat, "{\"model\":\"fake-model\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}", 400, "UTF-8"},
		// Deeply nested JSON is a 400, not a stack overflow.
		{"deep nesting", "POST", chat, `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, 400, ""},
		// A completions request without a prompt.
		{"no prompt", "POST", "/v1/completions", `{"model":"fake-model"}`, 400, `"prompt" is required`},
		// A completions prompt of the wrong type.
		{"prompt object", "POST", "/v1/completions", `{"model":"fake-model","prompt":{}}`, 400, "an object"},
		// An unknown model is 404 with vLLM's message.
		{"unknown model", "POST", chat, `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, 404, "The model `nope` does not exist."},
		// An unknown path is 404.
		{"unknown path", "GET", "/v2/whatever", "", 404, "no route"},
		// A body over the limit is 413.
		{"too large", "POST", chat, `{"model":"fake-model","messages":[{"role":"user","content":"` + strings.Repeat("a", 70000) + `"}]}`, 413, "larger than the limit of 65536 bytes"},
		// GET on a POST endpoint is 405.
		{"wrong method", "GET", chat, "", 405, "use POST"},
		// POST on a GET endpoint is 405.
		{"wrong method models", "POST", "/v1/models", "", 405, "use GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, ts.URL+tt.path, strings.NewReader(tt.body))
			require.NoError(t, err)
			resp, err := ts.Client().Do(req)
			require.NoError(t, err)
			body := readAll(t, resp)
			require.Equal(t, tt.status, resp.StatusCode, "%s", body)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var e struct {
				Error struct {
					Message string `json:"message"`
					Type    string `json:"type"`
					Code    int    `json:"code"`
				} `json:"error"`
			}
			require.NoError(t, json.Unmarshal(body, &e), "%s", body)
			assert.Contains(t, e.Error.Message, tt.msg)
			assert.NotEmpty(t, e.Error.Type)
			assert.Equal(t, tt.status, e.Error.Code)
			if tt.status == 405 {
				assert.NotEmpty(t, resp.Header.Get("Allow"))
			}
		})
	}
}

func TestQueueFullIs429(t *testing.T) {
	cfg := fastCfg(t)
	cfg.MaxNumSeqs, cfg.MaxWaiting = 1, 1
	s, ts := newTest(t, cfg, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	long := `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":5000,"ignore_eos":true}`
	done := make(chan struct{}, 2)
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/chat/completions", strings.NewReader(long))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	eventually(t, "one running and one waiting", func() bool {
		st := s.Engine().Stats()
		return st.Running == 1 && st.Waiting == 1
	})
	resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", long)
	body := readAll(t, resp)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Contains(t, string(body), "waiting queue is full")
	cancel()
	<-done
	<-done
	eventually(t, "the engine to free the slots", func() bool {
		st := s.Engine().Stats()
		return st.Running == 0 && st.Waiting == 0 && st.KVUsedTokens == 0
	})
}

func TestTooLongForKVIs400(t *testing.T) {
	cfg := fastCfg(t)
	cfg.KVCapacityTokens = 1024
	_, ts := newTest(t, cfg, Options{})
	resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":5000}`)
	body := readAll(t, resp)
	assert.Equal(t, 400, resp.StatusCode)
	assert.Contains(t, string(body), "exceed the simulated context of 1024 tokens")
}

func TestMetricsCount(t *testing.T) {
	for _, name := range []string{"engine", "firehose"} {
		t.Run(name, func(t *testing.T) {
			cfg := fastCfg(t)
			if name == "firehose" {
				cfg = firehoseCfg(t)
			}
			s, ts := newTest(t, cfg, Options{})
			for range 3 {
				readAll(t, post(t, context.Background(), ts.URL+"/v1/chat/completions",
					`{"model":"fake-model","messages":[{"role":"user","content":"12345678"}],"max_tokens":5,"ignore_eos":true,"stream":true}`))
			}
			want := EstimatePromptTokens([]Message{{Role: "user", Content: "12345678"}}) * 3
			if s.Engine() != nil { // the engine publishes its counters after each step
				eventually(t, "generation counter", func() bool { return s.Engine().Stats().GenerationTokensTotal == 15 })
			}
			body := string(readAll(t, mustGet(t, ts.URL+"/metrics")))
			assert.Contains(t, body, `vllm:prompt_tokens_total{model_name="fake-model"} `+itoa(want)+"\n")
			assert.Contains(t, body, `vllm:generation_tokens_total{model_name="fake-model"} 15`+"\n")
		})
	}
}

func mustGet(t testing.TB, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	return resp
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestEstimatePromptTokens(t *testing.T) {
	tests := []struct {
		name string
		msgs []Message
		want int
	}{
		// No messages: only the reply prime.
		{"none", nil, ReplyPrimeTokens},
		// An empty message costs its template overhead.
		{"empty", []Message{{Role: "user"}}, ReplyPrimeTokens + PerMessageOverheadTokens},
		// 5 bytes round up to 2 tokens.
		{"five bytes", []Message{{Role: "user", Content: "hello"}}, ReplyPrimeTokens + PerMessageOverheadTokens + 2},
		// Two messages of 8 bytes: 2 tokens each plus two overheads.
		{"two", []Message{{Role: "system", Content: "12345678"}, {Role: "user", Content: "abcdefgh"}}, ReplyPrimeTokens + 2*PerMessageOverheadTokens + 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, EstimatePromptTokens(tt.msgs))
		})
	}
}

// TestFirehoseBounds checks that the firehose refuses outputs beyond the
// configured context (so a huge max_tokens cannot exhaust memory) and stops
// writing when the client leaves.
func TestFirehoseBounds(t *testing.T) {
	_, ts := newTest(t, firehoseCfg(t), Options{})
	resp := post(t, context.Background(), ts.URL+"/v1/chat/completions",
		`{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":1000000000,"stream":true}`)
	body := readAll(t, resp)
	assert.Equal(t, 400, resp.StatusCode)
	assert.Contains(t, string(body), "exceed the simulated context")

	ctx, cancel := context.WithCancel(context.Background())
	resp = post(t, ctx, ts.URL+"/v1/chat/completions",
		`{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":400000,"ignore_eos":true,"stream":true}`)
	buf := make([]byte, 4096)
	_, err := resp.Body.Read(buf)
	require.NoError(t, err)
	cancel()
	resp.Body.Close()
	// goleak in TestMain fails the run if the handler kept writing forever.
}

func TestRunningLifecycle(t *testing.T) {
	r, err := Start(fastCfg(t), Options{Model: "m"})
	require.NoError(t, err)
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+/v1/chat/completions$`, r.URL())
	assert.Equal(t, r.Addr()+"/v1", r.BaseURL())
	assert.NotNil(t, r.Server().Engine())
	resp := mustGet(t, r.Addr()+"/health")
	readAll(t, resp)
	assert.Equal(t, 200, resp.StatusCode)
	require.NoError(t, r.Close())
	require.NoError(t, r.Close(), "Close is idempotent")
	_, err = http.Get(r.Addr() + "/health")
	assert.Error(t, err, "nothing listens after Close")
	_, err = Start(fastCfg(t), Options{ErrorRate: 2})
	assert.Error(t, err)
}

// TestEveryResponseSaysSimulated: answers, errors included, carry the
// header by which a client reaching this server by URL learns that its
// numbers come from a simulation.
func TestEveryResponseSaysSimulated(t *testing.T) {
	_, ts := newTest(t, firehoseCfg(t), Options{})
	for _, tc := range []struct{ method, path string }{
		{"GET", "/health"},               // 200
		{"GET", "/v1/models"},            // 200
		{"GET", "/v1/chat/completions"},  // 405
		{"POST", "/v1/chat/completions"}, // 400 (no body)
		{"GET", "/nowhere"},              // 404
	} {
		req, err := http.NewRequest(tc.method, ts.URL+tc.path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, "true", resp.Header.Get(SimulatedHeader), "%s %s (%d)", tc.method, tc.path, resp.StatusCode)
	}
}
