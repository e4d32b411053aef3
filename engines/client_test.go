package engines

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/record"
)

// Chunk payloads in vLLM's shape.
const (
	roleChunk  = `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`
	finishStop = `{"choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}]}`
	finishLen  = `{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}`
)

func content(s string) string {
	return fmt.Sprintf(`{"choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}]}`, s)
}

func contentUsage(s string, prompt, completion int) string {
	return fmt.Sprintf(`{"choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`, s, prompt, completion, prompt+completion)
}

func usageOnly(prompt, completion int) string {
	return fmt.Sprintf(`{"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`, prompt, completion, prompt+completion)
}

// sse frames payloads as SSE events.
func sse(payloads ...string) []string {
	out := make([]string, len(payloads))
	for i, p := range payloads {
		out[i] = "data: " + p + "\n\n"
	}
	return out
}

// streamHandler writes each piece and flushes it, as an event-stream.
func streamHandler(pieces []string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		f := w.(http.Flusher)
		for _, p := range pieces {
			_, _ = io.WriteString(w, p)
			f.Flush()
		}
	}
}

// newServer starts a test server that is closed with the test.
func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// newClient builds a client for srv with the given profile.
func newClient(t *testing.T, url string, p Profile, o Options) *Client {
	t.Helper()
	c, err := NewClient(Engine{Name: "test", Profile: p, URL: url, Model: "m"}, o)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

var oneMsg = []Message{{Role: "user", Content: "hi"}}

// do runs one request and checks it returned within limit.
func do(t *testing.T, c *Client, ctx context.Context, req Request) record.Record {
	t.Helper()
	var rec record.Record
	start := time.Now()
	c.Do(ctx, req, &rec)
	require.Less(t, time.Since(start), 10*time.Second, "Do must return promptly")
	// Times are ordered whatever happened.
	assert.LessOrEqual(t, rec.Sent, rec.Done)
	for _, ch := range rec.Chunks {
		assert.LessOrEqual(t, rec.Sent, ch.At)
		assert.LessOrEqual(t, ch.At, rec.Done)
	}
	return rec
}

func tokens(rec record.Record) []int {
	var out []int
	for _, c := range rec.Chunks {
		out = append(out, c.Tokens)
	}
	return out
}

func TestDoStreams(t *testing.T) {
	tests := []struct {
		name       string
		pieces     []string
		maxTokens  int
		wantErr    record.ErrorKind
		wantTokens []int
		wantOut    int
		wantSource record.TokenSource
		wantFinish string
		wantPrompt int
	}{
		// vLLM with continuous usage: exact per-chunk tokens; role and usage frames are not chunks.
		{"continuous usage", sse(`{"choices":[{"delta":{"role":"assistant","content":""}}],"usage":{"prompt_tokens":7,"completion_tokens":0}}`,
			contentUsage("a", 7, 1), contentUsage("b", 7, 2), contentUsage("c", 7, 3),
			`{"choices":[{"delta":{"content":""},"finish_reason":"length"}],"usage":{"prompt_tokens":7,"completion_tokens":3}}`, usageOnly(7, 3), "[DONE]"),
			3, record.OK, []int{1, 1, 1}, 3, record.Continuous, "length", 7},
		// Four tokens per chunk with continuous usage: Tokens = 4 each.
		{"multi-token continuous", sse(roleChunk, contentUsage("abcd", 5, 4), contentUsage("efgh", 5, 8), contentUsage("ijkl", 5, 12), finishLen, usageOnly(5, 12), "[DONE]"),
			12, record.OK, []int{4, 4, 4}, 12, record.Continuous, "length", 5},
		// Four tokens per chunk with final usage only: the total is exact and spread evenly.
		{"multi-token final usage", sse(roleChunk, content("abcd"), content("efgh"), content("ijkl"), finishLen, usageOnly(5, 12), "[DONE]"),
			12, record.OK, []int{4, 4, 4}, 12, record.Usage, "length", 5},
		// An uneven total: earlier chunks take the remainder.
		{"uneven final usage", sse(content("ab"), content("cd"), content("e"), finishLen, usageOnly(5, 5), "[DONE]"),
			5, record.OK, []int{2, 2, 1}, 5, record.Usage, "length", 5},
		// Usage on the last content chunk only (Friendli-like): final usage, not continuous.
		{"usage on last chunk", sse(content("a"), content("b"), contentUsage("c", 4, 3), finishStop, "[DONE]"),
			3, record.OK, []int{1, 1, 1}, 3, record.Usage, "stop", 4},
		// No usage: chunk-count fallback, flagged by the source; length not checked.
		{"no usage", sse(roleChunk, content("a"), content("bb"), finishStop, "[DONE]"),
			9, record.OK, []int{1, 1}, 2, record.ChunkCount, "stop", 0},
		// Reasoning text counts as output; content null does not.
		{"reasoning", sse(`{"choices":[{"delta":{"content":null,"reasoning_content":"think"}}]}`, `{"choices":[{"delta":{"content":null}}]}`, content("x"), finishStop, usageOnly(3, 2), "[DONE]"),
			2, record.OK, []int{1, 1}, 2, record.Usage, "stop", 3},
		// CRLF line endings and comments.
		{"crlf", []string{": ping\r\n\r\n", "data: " + content("a") + "\r\n\r\n", "data: " + finishStop + "\r\n\r\n", "data: " + usageOnly(1, 1) + "\r\n\r\ndata: [DONE]\r\n\r\n"},
			1, record.OK, []int{1}, 1, record.Usage, "stop", 1},
		// Byte-by-byte delivery.
		{"byte by byte", strings.Split(strings.Join(sse(content("a"), content("b"), finishStop, usageOnly(2, 2), "[DONE]"), ""), ""),
			2, record.OK, []int{1, 1}, 2, record.Usage, "stop", 2},
		// A finish_reason but no [DONE]: accepted.
		{"missing done", sse(content("a"), finishStop, usageOnly(1, 1)),
			1, record.OK, []int{1}, 1, record.Usage, "stop", 1},
		// No finish and no [DONE]: the stream was cut.
		{"cut without finish", sse(content("a"), content("b")),
			0, record.StreamCut, []int{1, 1}, 2, record.ChunkCount, "", 0},
		// A data line that is not JSON: malformed.
		{"malformed", append(sse(content("a")), "data: {not json\n\n", "data: [DONE]\n\n"),
			0, record.Malformed, []int{1}, 1, record.ChunkCount, "", 0},
		// Fewer tokens than asked: length mismatch, tokens kept.
		{"short output", sse(content("a"), content("b"), finishStop, usageOnly(3, 2), "[DONE]"),
			5, record.LengthMismatch, []int{1, 1}, 2, record.Usage, "stop", 3},
		// A proper end without any output: empty output.
		{"empty output", sse(roleChunk, finishStop, usageOnly(3, 0), "[DONE]"),
			0, record.EmptyOutput, nil, 0, record.Usage, "stop", 3},
		// An error object mid-stream (vLLM): server-error, with the server's message.
		{"error in stream", sse(content("a"), `{"error":{"message":"engine died","code":500}}`),
			0, record.ServerError, []int{1}, 1, record.ChunkCount, "", 0},
		// llama-server: an error event before any token inside a 200 stream, then the end
		// without finish, usage or [DONE]: server-error, not stream-cut.
		{"llama-server error event", sse(`{"error":{"code":500,"message":"the request exceeds the available context size","type":"server_error"}}`),
			0, record.ServerError, nil, 0, "", "", 0},
		// Headers, then nothing: cut.
		{"close after headers", nil,
			0, record.StreamCut, nil, 0, "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, streamHandler(tt.pieces))
			c := newClient(t, srv.URL, VLLM, Options{RequestTimeout: 5 * time.Second})
			rec := do(t, c, t.Context(), Request{Messages: oneMsg, MaxTokens: tt.maxTokens})
			assert.Equal(t, tt.wantErr, rec.Error, rec.Message)
			assert.Equal(t, tt.wantTokens, tokens(rec))
			assert.Equal(t, tt.wantOut, rec.OutputTokens)
			assert.Equal(t, tt.wantSource, rec.TokenSource)
			assert.Equal(t, tt.wantFinish, rec.FinishReason)
			assert.Equal(t, tt.wantPrompt, rec.PromptTokens)
			assert.Equal(t, http.StatusOK, rec.Status)
			assert.NotZero(t, rec.Headers)
			switch tt.name {
			case "error in stream":
				assert.Contains(t, rec.Message, "engine died")
			case "llama-server error event":
				assert.Contains(t, rec.Message, "the request exceeds the available context size")
				assert.False(t, rec.Transient(), "an error event is the server's verdict, not a passing failure")
			}
		})
	}
}

// Chunk payloads in llama-server's and ollama's shapes.
const (
	llamaRole = `{"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"created":1,"id":"chatcmpl-1","model":"m","system_fingerprint":"b1","object":"chat.completion.chunk"}`
)

func llamaContent(s string) string {
	return fmt.Sprintf(`{"choices":[{"finish_reason":null,"index":0,"delta":{"content":%q}}],"created":1,"id":"chatcmpl-1","model":"m","object":"chat.completion.chunk"}`, s)
}

// llamaFinish is llama-server's last chunk: the finish, with usage and timings.
func llamaFinish(reason string, prompt, completion int) string {
	return fmt.Sprintf(`{"choices":[{"finish_reason":%q,"index":0,"delta":{}}],"created":1,"id":"chatcmpl-1","model":"m","object":"chat.completion.chunk","usage":{"completion_tokens":%d,"prompt_tokens":%d,"total_tokens":%d},"timings":{"prompt_n":%d,"predicted_n":%d}}`,
		reason, completion, prompt, prompt+completion, prompt, completion)
}

// ollamaContent is ollama's chunk: no separate role chunk, every delta repeats the role.
func ollamaContent(s string) string {
	return fmt.Sprintf(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":%q},"finish_reason":null}]}`, s)
}

// ollamaFinish is ollama's empty-content finish chunk.
func ollamaFinish(reason string) string {
	return fmt.Sprintf(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":%q}]}`, reason)
}

// TestDoNaturalStop: when a stream stops by itself (finish_reason "stop")
// and the server's usage is one more than the chunks, the extra token is
// the end-of-sequence token: every chunk counts 1, OutputTokens stays the
// server's usage, EOSCounted says so, and the chunk counts are exact.
func TestDoNaturalStop(t *testing.T) {
	tests := []struct {
		name          string
		profile       Profile
		pieces        []string
		wantTokens    []int
		wantOut       int
		wantEOS       bool
		wantSource    record.TokenSource
		wantEstimated bool
	}{
		// llama-server: usage on the finish chunk counts the unsent EOS (3 chunks, usage 4).
		{"llama-server stop", OpenAI, sse(llamaRole, llamaContent("a"), llamaContent("b"), llamaContent("c"), llamaFinish("stop", 5, 4), "[DONE]"),
			[]int{1, 1, 1}, 4, true, record.Usage, false},
		// ollama: role in every delta, empty finish chunk, usage-only chunk with choices: [].
		{"ollama stop with eos", OpenAI, sse(ollamaContent("a"), ollamaContent("b"), ollamaFinish("stop"), usageOnly(5, 3), "[DONE]"),
			[]int{1, 1}, 3, true, record.Usage, false},
		// ollama counting only the text: usage = chunks, nothing extra.
		{"ollama stop exact", OpenAI, sse(ollamaContent("a"), ollamaContent("b"), ollamaFinish("stop"), usageOnly(5, 2), "[DONE]"),
			[]int{1, 1}, 2, false, record.Usage, false},
		// vLLM without a fixed length: continuous usage grows by 1 on the empty finish chunk.
		{"vllm continuous stop", VLLM, sse(roleChunk, contentUsage("a", 5, 1), contentUsage("b", 5, 2),
			`{"choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3}}`, usageOnly(5, 3), "[DONE]"),
			[]int{1, 1}, 3, true, record.Continuous, false},
		// vLLM continuous, the EOS growth arriving on the trailing usage-only frame instead.
		{"vllm eos on usage frame", VLLM, sse(contentUsage("a", 5, 1), contentUsage("b", 5, 2), finishStop, usageOnly(5, 3), "[DONE]"),
			[]int{1, 1}, 3, true, record.Continuous, false},
		// Continuous growth of 2 after the last chunk is not one EOS: the last chunk takes it.
		{"vllm trailing growth of two", VLLM, sse(contentUsage("a", 5, 1), contentUsage("b", 5, 2), finishStop, usageOnly(5, 4), "[DONE]"),
			[]int{1, 3}, 4, false, record.Continuous, false},
		// Cut at max_tokens (finish "length") with one token more than chunks: a
		// multi-token chunk, spread (earlier chunks take the remainder), an estimate.
		{"length, one more", OpenAI, sse(content("a"), content("b"), content("c"), finishLen, usageOnly(5, 4), "[DONE]"),
			[]int{2, 1, 1}, 4, false, record.Usage, true},
		// A natural stop two tokens over the chunks: not an EOS, spread, an estimate.
		{"stop, two more", OpenAI, sse(content("a"), content("b"), finishStop, usageOnly(5, 4), "[DONE]"),
			[]int{2, 2}, 4, false, record.Usage, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, streamHandler(tt.pieces))
			rec := do(t, newClient(t, srv.URL, tt.profile, Options{}), t.Context(), Request{Messages: oneMsg})
			require.Equal(t, record.OK, rec.Error, rec.Message)
			assert.Equal(t, tt.wantTokens, tokens(rec))
			assert.Equal(t, tt.wantOut, rec.OutputTokens, "OutputTokens is the server's usage")
			assert.Equal(t, tt.wantEOS, rec.EOSCounted)
			assert.Equal(t, tt.wantSource, rec.TokenSource)
			assert.Equal(t, tt.wantEstimated, rec.EstimatedChunkTokens())
			sum := 0
			for _, k := range tokens(rec) {
				sum += k
			}
			assert.Equal(t, rec.StreamedTokens(), sum, "the chunks sum to the streamed tokens")
			assert.Equal(t, 5, rec.PromptTokens)
		})
	}
}

// TestShortOutputByProfile: a shorter answer than MaxTokens is a failure
// only for the profiles that ask for an exact length.
func TestShortOutputByProfile(t *testing.T) {
	pieces := sse(content("a"), content("b"), finishStop, usageOnly(3, 2), "[DONE]")
	tests := []struct {
		profile Profile
		want    record.ErrorKind
	}{
		// vLLM sends min_tokens = max_tokens and ignore_eos: a short answer broke the contract.
		{VLLM, record.LengthMismatch},
		// Friendli sends min_tokens = max_tokens: the same.
		{Friendli, record.LengthMismatch},
		// The generic profile sends max_tokens alone: stopping early is allowed.
		{OpenAI, record.OK},
	}
	for _, tt := range tests {
		t.Run(string(tt.profile), func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, streamHandler(pieces))
			rec := do(t, newClient(t, srv.URL, tt.profile, Options{RequestTimeout: 5 * time.Second}), t.Context(), Request{Messages: oneMsg, MaxTokens: 5})
			assert.Equal(t, tt.want, rec.Error, rec.Message)
			assert.Equal(t, 2, rec.OutputTokens)
			assert.Equal(t, tt.profile != OpenAI, rec.LengthForced, "only vllm and friendli ask for an exact length")
		})
	}
}

func TestDoJSONInsteadOfStream(t *testing.T) {
	// A server that ignores stream=true answers application/json: malformed, with a hint.
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"choices":[{"message":{"content":"hi"}}]}`)
	}))
	rec := do(t, newClient(t, srv.URL, OpenAI, Options{}), t.Context(), Request{Messages: oneMsg})
	assert.Equal(t, record.Malformed, rec.Error)
	assert.Contains(t, rec.Message, "stream=true")
}

func TestDoRequestBodies(t *testing.T) {
	tests := []struct {
		name     string
		profile  Profile
		max      int
		want     map[string]any
		auth     string
		teamHead string
	}{
		// vLLM: fixed length via min_tokens + ignore_eos, continuous usage.
		{"vllm", VLLM, 16, map[string]any{"model": "m", "stream": true, "max_tokens": 16.0, "min_tokens": 16.0, "ignore_eos": true, "temperature": 0.0,
			"stream_options": map[string]any{"include_usage": true, "continuous_usage_stats": true}}, "Bearer k-openai", ""},
		// Friendli: min_tokens = max_tokens, final usage, team header.
		{"friendli", Friendli, 16, map[string]any{"model": "m", "stream": true, "max_tokens": 16.0, "min_tokens": 16.0, "temperature": 0.0,
			"stream_options": map[string]any{"include_usage": true}}, "Bearer k-friendli", "team-1"},
		// Generic: max_tokens only.
		{"openai", OpenAI, 16, map[string]any{"model": "m", "stream": true, "max_tokens": 16.0, "temperature": 0.0,
			"stream_options": map[string]any{"include_usage": true}}, "Bearer k-openai", ""},
		// No fixed length: no max/min tokens, no ignore_eos.
		{"vllm unfixed", VLLM, 0, map[string]any{"model": "m", "stream": true, "temperature": 0.0,
			"stream_options": map[string]any{"include_usage": true, "continuous_usage_stats": true}}, "Bearer k-openai", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var body map[string]any
			var hdr http.Header
			srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				hdr = r.Header.Clone()
				_ = json.NewDecoder(r.Body).Decode(&body)
				streamHandler(sse(content("x"), finishStop, "[DONE]"))(w, r)
			}))
			key := "k-openai"
			if tt.profile == Friendli {
				key = "k-friendli"
			}
			c, err := NewClient(Engine{Name: "e", Profile: tt.profile, URL: srv.URL + "/v1/chat/completions", Model: "m", APIKey: key, Team: "team-1"}, Options{})
			require.NoError(t, err)
			defer c.Close()
			var rec record.Record
			c.Do(t.Context(), Request{Messages: oneMsg, MaxTokens: tt.max}, &rec)
			mu.Lock()
			defer mu.Unlock()
			msgs := body["messages"]
			delete(body, "messages")
			assert.Equal(t, tt.want, body)
			assert.Equal(t, []any{map[string]any{"role": "user", "content": "hi"}}, msgs)
			assert.Equal(t, tt.auth, hdr.Get("Authorization"))
			assert.Equal(t, tt.teamHead, hdr.Get("X-Friendli-Team"))
			assert.Equal(t, "application/json", hdr.Get("Content-Type"))
			assert.Empty(t, hdr.Get("Accept-Encoding"), "compression would buffer the stream")
		})
	}
}

func TestDoHTTPErrors(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		wantMsg string
	}{
		// Rate limited, OpenAI error JSON: the server's message is kept.
		{"429", 429, `{"error":{"message":"Rate limit reached","type":"rate_limit"}}`, "HTTP 429: Rate limit reached"},
		// Server error with OpenAI JSON.
		{"500", 500, `{"error":{"message":"CUDA out of memory","code":500}}`, "HTTP 500: CUDA out of memory"},
		// Unauthorized, FastAPI detail.
		{"401", 401, `{"detail":"Invalid token"}`, "HTTP 401: Invalid token"},
		// Forbidden, plain message field.
		{"403", 403, `{"message":"forbidden for team"}`, "HTTP 403: forbidden for team"},
		// Unknown model, vLLM style.
		{"404", 404, `{"object":"error","message":"The model 'x' does not exist.","type":"NotFoundError","code":404}`, "HTTP 404: The model 'x' does not exist."},
		// A plain-text body is trimmed and kept.
		{"text", 502, "  bad\n gateway  ", "HTTP 502: bad gateway"},
		// An empty body says so.
		{"empty", 503, "", "HTTP 503: (empty body)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			rec := do(t, newClient(t, srv.URL, OpenAI, Options{}), t.Context(), Request{Messages: oneMsg})
			assert.Equal(t, record.HTTPStatus, rec.Error)
			assert.Equal(t, tt.status, rec.Status)
			assert.Equal(t, tt.wantMsg, rec.Message)
			assert.Empty(t, rec.Chunks)
		})
	}
}

// closedURL returns the URL of a port that was just closed: connection refused.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "http://" + addr + "/v1/chat/completions"
}

func TestDoConnectErrors(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(streamHandler(sse(content("x"), finishStop, "[DONE]")))
	t.Cleanup(tlsSrv.Close)
	tests := []struct {
		name     string
		url      string
		insecure bool
		wantErr  record.ErrorKind
		wantSub  string
	}{
		// Nothing listens: connection refused.
		{"refused", closedURL(t), false, record.Connect, "connection refused"},
		// A reserved TLD never resolves.
		{"dns", "http://does-not-exist.invalid/v1/chat/completions", false, record.Connect, "DNS lookup failed"},
		// A self-signed certificate with verification on.
		{"tls verify", tlsSrv.URL, false, record.Connect, "TLS"},
		// The same server with InsecureSkipVerify works.
		{"tls insecure", tlsSrv.URL, true, record.OK, ""},
		// https to a plain-HTTP server.
		{"tls to http", strings.Replace(newServer(t, streamHandler(nil)).URL, "http://", "https://", 1), false, record.Connect, "TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient(Engine{Name: "e", Profile: OpenAI, URL: tt.url, InsecureSkipVerify: tt.insecure}, Options{RequestTimeout: 8 * time.Second})
			require.NoError(t, err)
			defer c.Close()
			rec := do(t, c, t.Context(), Request{Messages: oneMsg})
			assert.Equal(t, tt.wantErr, rec.Error, rec.Message)
			assert.Contains(t, rec.Message, tt.wantSub)
			if tt.wantErr != record.OK {
				assert.Zero(t, rec.Status)
			}
		})
	}
}

// hangHandler sends what it is told, then waits until the client goes away.
func hangHandler(headers bool, pieces []string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice the client hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		if headers {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			for _, p := range pieces {
				_, _ = io.WriteString(w, p)
			}
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second): // never outlive the test by much
		}
	}
}

func TestDoTimeoutsAndCancellation(t *testing.T) {
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		timeout    time.Duration // RequestTimeout
		ctxTimeout time.Duration // the caller's deadline (0: none)
		cancel     time.Duration // the caller cancels after this (0: never)
		wantErr    record.ErrorKind
		wantChunks int
		wantStatus int
	}{
		// No bytes at all: the request timeout catches it.
		{"hang", hangHandler(false, nil), 200 * time.Millisecond, 0, 0, record.Timeout, 0, 0},
		// Headers then silence: a stalled stream times out; the status is known.
		{"stall after headers", hangHandler(true, nil), 200 * time.Millisecond, 0, 0, record.Timeout, 0, 200},
		// One token then silence: the token is kept.
		{"stall mid-stream", hangHandler(true, sse(content("a"))), 200 * time.Millisecond, 0, 0, record.Timeout, 1, 200},
		// Slow headers beyond the timeout.
		{"slow headers", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}, 200 * time.Millisecond, 0, 0, record.Timeout, 0, 0},
		// The caller's deadline is a timeout too.
		{"ctx deadline", hangHandler(true, nil), 0, 200 * time.Millisecond, 0, record.Timeout, 0, 200},
		// The caller cancelling is not an engine failure.
		{"ctx cancel", hangHandler(true, sse(content("a"))), 0, 0, 150 * time.Millisecond, record.Canceled, 1, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, tt.handler)
			c := newClient(t, srv.URL, OpenAI, Options{RequestTimeout: tt.timeout})
			ctx := t.Context()
			if tt.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTimeout)
				defer cancel()
			}
			if tt.cancel > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				time.AfterFunc(tt.cancel, cancel)
				defer cancel()
			}
			start := time.Now()
			rec := do(t, c, ctx, Request{Messages: oneMsg})
			assert.Less(t, time.Since(start), 5*time.Second)
			assert.Equal(t, tt.wantErr, rec.Error, rec.Message)
			assert.Len(t, rec.Chunks, tt.wantChunks)
			assert.Equal(t, tt.wantStatus, rec.Status)
			assert.Equal(t, tt.wantErr == record.Canceled, !rec.Failed())
			if limit := max(tt.timeout, tt.ctxTimeout); tt.wantErr == record.Timeout && limit > 0 {
				// Done is when the time ran out, not the last byte's arrival.
				assert.GreaterOrEqual(t, rec.Done-rec.Sent, limit*9/10)
			}
		})
	}
}

func TestDoCutMidStream(t *testing.T) {
	// The server hijacks the connection, sends a partial chunked body and closes it.
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		ev := "data: " + content("a") + "\n\n"
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(ev), ev)
		_ = buf.Flush()
		_, _ = io.WriteString(conn, "ff\r\ndata: {\"cho") // a chunk cut short
	}))
	rec := do(t, newClient(t, srv.URL, OpenAI, Options{RequestTimeout: 5 * time.Second}), t.Context(), Request{Messages: oneMsg})
	assert.Equal(t, record.StreamCut, rec.Error, rec.Message)
	assert.Len(t, rec.Chunks, 1)
}

func TestDoCloseBeforeResponse(t *testing.T) {
	// The server accepts and closes without answering: connect (closed before any response).
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	rec := do(t, newClient(t, srv.URL, OpenAI, Options{RequestTimeout: 5 * time.Second}), t.Context(), Request{Messages: oneMsg})
	assert.Equal(t, record.Connect, rec.Error, rec.Message)
	assert.Contains(t, rec.Message, "closed before any response")
}

// TestDoRoleChunkEarly: a role chunk 300 ms before the first token must not
// start TTFT.
func TestDoRoleChunkEarly(t *testing.T) {
	t.Parallel()
	const lead = 300 * time.Millisecond
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		_, _ = io.WriteString(w, "data: "+roleChunk+"\n\n")
		f.Flush()
		time.Sleep(lead)
		for _, p := range sse(content("a"), content("b"), finishStop, usageOnly(2, 2), "[DONE]") {
			_, _ = io.WriteString(w, p)
			f.Flush()
		}
	}))
	c := newClient(t, srv.URL, OpenAI, Options{})
	p, err := c.Preflight(t.Context(), Request{Messages: oneMsg, MaxTokens: 2})
	require.NoError(t, err)
	rec := p.Record
	ttft, ok := rec.TTFT()
	require.True(t, ok)
	assert.GreaterOrEqual(t, ttft, lead, "TTFT must run to the first token, not the role chunk")
	assert.True(t, p.RoleChunkFirst)
	assert.True(t, hasWarning(p.Warnings, "role-only chunk"), p.Warnings)
}

// TestDoUsageDelayed: a usage frame 500 ms after the last token must not
// extend E2E; Done includes it.
func TestDoUsageDelayed(t *testing.T) {
	t.Parallel()
	const delay = 500 * time.Millisecond
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, p := range sse(content("a"), content("b"), finishStop) {
			_, _ = io.WriteString(w, p)
		}
		f.Flush()
		time.Sleep(delay)
		for _, p := range sse(usageOnly(2, 2), "[DONE]") {
			_, _ = io.WriteString(w, p)
		}
		f.Flush()
	}))
	rec := do(t, newClient(t, srv.URL, OpenAI, Options{}), t.Context(), Request{Messages: oneMsg, MaxTokens: 2})
	require.Equal(t, record.OK, rec.Error, rec.Message)
	e2e, ok := rec.E2E()
	require.True(t, ok)
	// The client reads the last token a little after the server flushed it,
	// so the gap it sees can be a few ms short of the server's sleep.
	assert.GreaterOrEqual(t, rec.Done-rec.Sent-e2e, delay*8/10, "the usage frame must not extend E2E")
	assert.Equal(t, 2, rec.OutputTokens)
}

func hasWarning(ws []string, sub string) bool {
	for _, w := range ws {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

// fakeClock advances 1 ms on every reading.
type fakeClock struct{ n atomic.Int64 }

func (c *fakeClock) now() time.Time {
	return time.Unix(1000, 0).Add(time.Duration(c.n.Add(1)) * time.Millisecond)
}

func TestDoInjectedClock(t *testing.T) {
	// With an injected clock every stamp comes from it, in order, relative to Epoch.
	srv := newServer(t, streamHandler(sse(content("a"), content("b"), finishStop, usageOnly(1, 2), "[DONE]")))
	var clk fakeClock
	c := newClient(t, srv.URL, OpenAI, Options{Now: clk.now, Epoch: time.Unix(1000, 0)})
	rec := do(t, c, t.Context(), Request{Messages: oneMsg, MaxTokens: 2})
	require.Equal(t, record.OK, rec.Error, rec.Message)
	assert.Less(t, rec.Sent, rec.Headers)
	require.Len(t, rec.Chunks, 2)
	// The head and the first event may come in one read: one stamp.
	assert.LessOrEqual(t, rec.Headers, rec.Chunks[0].At)
	assert.LessOrEqual(t, rec.Chunks[0].At, rec.Chunks[1].At)
	assert.LessOrEqual(t, rec.Chunks[1].At, rec.Done)
	assert.Less(t, rec.Done, time.Second, "offsets come from the fake clock")
	assert.Positive(t, rec.Sent)
}

// TestDoCachedTokens: prefix-cache hits reported in usage are recorded, and
// a server that does not report them is told apart from one reporting 0.
func TestDoCachedTokens(t *testing.T) {
	usageCached := func(cached string) string {
		return `{"choices":[],"usage":{"prompt_tokens":120,"completion_tokens":2,"prompt_tokens_details":` + cached + `}}`
	}
	tests := []struct {
		name         string
		usage        string
		wantCached   int
		wantReported bool
	}{
		{"hits", usageCached(`{"cached_tokens":96}`), 96, true},        // vLLM with prefix caching
		{"reported zero", usageCached(`{"cached_tokens":0}`), 0, true}, // a cold cache
		{"not reported", usageOnly(120, 2), 0, false},                  // llama-server, ollama
		{"details null", usageCached(`null`), 0, false},                // present but empty
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, streamHandler(sse(content("a"), content("b"), finishLen, tt.usage, "[DONE]")))
			rec := do(t, newClient(t, srv.URL, VLLM, Options{}), t.Context(), Request{Messages: oneMsg, MaxTokens: 2})
			require.Equal(t, record.OK, rec.Error, rec.Message)
			assert.Equal(t, tt.wantCached, rec.CachedTokens)
			assert.Equal(t, tt.wantReported, rec.CachedReported)
			assert.Equal(t, 120, rec.PromptTokens)
		})
	}
}

func TestDoReusedRecordIsReset(t *testing.T) {
	// A record reused for a second request carries nothing from the first.
	bad := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	good := newServer(t, streamHandler(sse(content("a"), finishStop, usageOnly(1, 1), "[DONE]")))
	var rec record.Record
	newClient(t, good.URL, OpenAI, Options{}).Do(t.Context(), Request{Messages: oneMsg, MaxTokens: 1}, &rec)
	require.Len(t, rec.Chunks, 1)
	newClient(t, bad.URL, OpenAI, Options{}).Do(t.Context(), Request{Messages: oneMsg, MaxTokens: 1}, &rec)
	assert.Equal(t, record.HTTPStatus, rec.Error)
	assert.Empty(t, rec.Chunks)
	assert.Zero(t, rec.OutputTokens)
	assert.Empty(t, rec.FinishReason)
}

func TestDoBadRequest(t *testing.T) {
	// A request without messages fails fast without touching the network.
	c := newClient(t, closedURL(t), OpenAI, Options{})
	rec := do(t, c, t.Context(), Request{})
	assert.Equal(t, record.Malformed, rec.Error)
	assert.Contains(t, rec.Message, "no messages")
}

func TestNewClientErrors(t *testing.T) {
	tests := []struct {
		name string
		e    Engine
		o    Options
		want string
	}{
		{"no name", Engine{URL: "http://h"}, Options{}, "no name"},                                                  // unnamed
		{"bad url", Engine{Name: "e", URL: "ftp://h"}, Options{}, "not an http(s) URL"},                             // wrong scheme
		{"bad profile", Engine{Name: "e", URL: "http://h", Profile: "tgi"}, Options{}, "unknown profile"},           // unknown profile
		{"negative concurrency", Engine{Name: "e", URL: "http://h"}, Options{Concurrency: -1}, "negative"},          // invalid option
		{"negative timeout", Engine{Name: "e", URL: "http://h"}, Options{RequestTimeout: -time.Second}, "negative"}, // invalid option
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClient(tt.e, tt.o)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

// TestSecretsNeverInRecords: a server that echoes the credentials, and a
// URL with a password, leak nothing into record messages.
func TestSecretsNeverInRecords(t *testing.T) {
	const key, pw = "MARKER-APIKEY-4242", "MARKER-URLPW-7373"
	echo := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":{"message":"bad credentials: %s %s"}}`, r.Header.Get("Authorization"), r.URL.String())
	}))
	tests := []struct {
		name string
		url  string
	}{
		{"echoing server", strings.Replace(echo.URL, "http://", "http://user:"+pw+"@", 1)}, // server echoes the key
		{"refused", strings.Replace(closedURL(t), "http://", "http://user:"+pw+"@", 1)},    // Go error text
		{"dns", "http://user:" + pw + "@does-not-exist.invalid/v1/chat/completions"},       // DNS error text
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(Engine{Name: "e", Profile: Friendli, URL: tt.url, APIKey: key}, Options{RequestTimeout: 5 * time.Second})
			require.NoError(t, err)
			defer c.Close()
			rec := do(t, c, t.Context(), Request{Messages: oneMsg})
			require.NotEqual(t, record.OK, rec.Error)
			_, perr := c.Preflight(t.Context(), Request{Messages: oneMsg})
			require.Error(t, perr)
			for _, s := range []string{rec.Message, perr.Error(), fmt.Sprintf("%+v", c)} {
				assert.NotContains(t, s, key)
				assert.NotContains(t, s, pw)
			}
		})
	}
}

func TestConcurrentDo(t *testing.T) {
	// Many concurrent requests on one client: each record is complete and independent.
	srv := newServer(t, streamHandler(sse(roleChunk, contentUsage("a", 3, 1), contentUsage("b", 3, 2), finishLen, usageOnly(3, 2), "[DONE]")))
	c := newClient(t, srv.URL, VLLM, Options{Concurrency: 16})
	var wg sync.WaitGroup
	recs := make([]record.Record, 64)
	for i := range recs {
		wg.Go(func() { c.Do(t.Context(), Request{Messages: oneMsg, MaxTokens: 2}, &recs[i]) })
	}
	wg.Wait()
	for i, rec := range recs {
		assert.Equal(t, record.OK, rec.Error, "request %d: %s", i, rec.Message)
		assert.Equal(t, []int{1, 1}, tokens(rec))
	}
}

func TestDoDoneThenHang(t *testing.T) {
	// [DONE] and then an open response: Do returns promptly without a
	// request timeout, and the record is a success.
	srv := newServer(t, hangHandler(true, sse(content("a"), finishStop, usageOnly(1, 1), "[DONE]")))
	c := newClient(t, srv.URL, OpenAI, Options{})
	start := time.Now()
	rec := do(t, c, t.Context(), Request{Messages: oneMsg, MaxTokens: 1})
	assert.Less(t, time.Since(start), 3*time.Second)
	assert.Equal(t, record.OK, rec.Error, rec.Message)
	assert.Equal(t, 1, rec.OutputTokens)
}

func TestDoRedirectNotFollowed(t *testing.T) {
	// A redirect is reported with its (redacted) target, never followed.
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://elsewhere.example/v1/chat/completions?token=abcd", http.StatusTemporaryRedirect)
	}))
	rec := do(t, newClient(t, srv.URL, OpenAI, Options{}), t.Context(), Request{Messages: oneMsg})
	assert.Equal(t, record.HTTPStatus, rec.Error)
	assert.Equal(t, http.StatusTemporaryRedirect, rec.Status)
	assert.Contains(t, rec.Message, "redirected to https://elsewhere.example/v1/chat/completions?token=REDACTED")
}

func TestTransportNeverQueuesHidden(t *testing.T) {
	// With Concurrency = n, n requests are all at the server at once: the
	// transport holds none of them back.
	const n = 32
	var inFlight, peak atomic.Int64
	release := make(chan struct{})
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		cur := inFlight.Add(1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		if cur == n {
			close(release)
		}
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		streamHandler(sse(content("a"), finishStop, "[DONE]"))(w, r)
	}))
	c := newClient(t, srv.URL, OpenAI, Options{Concurrency: n})
	require.NotNil(t, c.tr)
	assert.Equal(t, n+extraConns, c.tr.MaxConnsPerHost)
	assert.Equal(t, n+extraConns, c.tr.MaxIdleConnsPerHost)
	assert.True(t, c.tr.DisableCompression)
	var wg sync.WaitGroup
	recs := make([]record.Record, n)
	for i := range recs {
		wg.Go(func() { c.Do(t.Context(), Request{Messages: oneMsg}, &recs[i]) })
	}
	wg.Wait()
	assert.Equal(t, int64(n), peak.Load(), "all requests reached the server together")
	for _, rec := range recs {
		assert.Equal(t, record.OK, rec.Error, rec.Message)
	}
}
