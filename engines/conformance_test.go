package engines

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// vllmCached is vLLM's final usage frame with prefix-cache hits.
const vllmCached = `{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":4}}}`

// withServer wraps h to send a Server header, as real engines do.
func withServer(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", name)
		h(w, r)
	}
}

// TestConformance: the probe reports what it saw, for each server shape.
func TestConformance(t *testing.T) {
	tests := []struct {
		name    string
		url     func(t *testing.T) string
		profile Profile
		max     int
		want    Conformance
		lines   []string // substrings of Lines()
		warn    []string // substrings of the warnings
	}{
		// vLLM: separate role chunk, continuous usage, cached tokens, [DONE], kept alive, min_tokens honoured.
		{"vllm-like", func(t *testing.T) string {
			return newServer(t, withServer("uvicorn", streamHandler(sse(roleChunk, contentUsage("a", 5, 1), contentUsage("b", 5, 2), finishLen, vllmCached, "[DONE]")))).URL
		}, VLLM, 2, Conformance{
			Server: "uvicorn", Role: RoleSeparate, Usage: UsageContinuous, Chunks: 2, TokensPerChunkMax: 1, TokensPerChunkMean: 1, TokensPerChunkExact: true,
			LengthAsked: 2, LengthForced: true, LengthHonoured: true, OutputTokens: 2, FinishReason: "length",
			CachedReported: true, CachedTokens: 4, Done: true, KeepAlive: KeptAlive,
		}, []string{"server header: uvicorn", "separate role-only chunk", "usage: continuous", "forced with min_tokens", "honoured", "cached tokens: reported (4)", "connection: kept alive"}, nil},
		// llama-server: separate role chunk, final usage counting the EOS, no cached
		// tokens, and the connection closed after the stream despite Keep-Alive.
		{"llama-server-like", func(t *testing.T) string {
			srv, _ := closingServer(t, sse(llamaRole, llamaContent("a"), llamaContent("b"), llamaFinish("stop", 5, 3), "[DONE]"), 0)
			return srv.URL
		}, OpenAI, 0, Conformance{
			Server: "llama.cpp", Role: RoleSeparate, Usage: UsageFinal, Chunks: 2, TokensPerChunkMax: 1, TokensPerChunkMean: 1, TokensPerChunkExact: true,
			EOSCounted: true, OutputTokens: 3, FinishReason: "stop", Done: true, KeepAlive: ClosedByServer, KeepAliveHeader: "timeout=5, max=100",
		}, []string{"server header: llama.cpp", "usage: final only", "end of sequence: counted", "fixed length: not asked", "cached tokens: not reported", "closed by the server", "Keep-Alive: timeout=5, max=100"},
			[]string{"closes the connection after the stream although it sends Keep-Alive: timeout=5, max=100", "retried once"}},
		// ollama: role in every delta, empty finish chunk, usage-only chunk; the
		// generic profile cannot force a length, and got a shorter answer.
		{"ollama-like", func(t *testing.T) string {
			return newServer(t, streamHandler(sse(ollamaContent("a"), ollamaContent("b"), ollamaFinish("stop"), usageOnly(5, 2), "[DONE]"))).URL
		}, OpenAI, 4, Conformance{
			Role: RoleEveryDelta, Usage: UsageFinal, Chunks: 2, TokensPerChunkMax: 1, TokensPerChunkMean: 1, TokensPerChunkExact: true,
			LengthAsked: 4, OutputTokens: 2, FinishReason: "stop", Done: true, KeepAlive: KeptAlive,
		}, []string{"server header: (none)", "role: in every delta", "max_tokens only, not forced", "NOT honoured"}, []string{"output length varies"}},
		// Multi-token chunks with final usage and no [DONE]: estimated sizes, [DONE] missing.
		{"multi-token, no done", func(t *testing.T) string {
			return newServer(t, streamHandler(sse(content("abc"), content("def"), finishLen, usageOnly(5, 6)))).URL
		}, Friendli, 6, Conformance{
			Role: RoleNone, Usage: UsageFinal, Chunks: 2, TokensPerChunkMax: 3, TokensPerChunkMean: 3,
			LengthAsked: 6, LengthForced: true, LengthHonoured: true, OutputTokens: 6, FinishReason: "length", KeepAlive: KeptAlive,
		}, []string{"role: never sent", "max 3, mean 3.00 over 2 chunks (estimated)", "[DONE]: not sent"}, []string{"6 tokens in 2 chunks"}},
		// No usage: chunk counts, not exact, length unverifiable.
		{"no usage", func(t *testing.T) string {
			return newServer(t, streamHandler(sse(content("a"), finishStop, "[DONE]"))).URL
		}, VLLM, 3, Conformance{
			Role: RoleNone, Usage: UsageNone, Chunks: 1, TokensPerChunkMax: 1, TokensPerChunkMean: 1,
			LengthAsked: 3, LengthForced: true, OutputTokens: 1, FinishReason: "stop", Done: true, KeepAlive: KeptAlive,
		}, []string{"usage: none", "not verifiable without usage"}, []string{"no usage in the stream"}},
		// An honest Connection: close.
		{"connection close", func(t *testing.T) string {
			return newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "close")
				streamHandler(sse(content("a"), finishStop, usageOnly(1, 1), "[DONE]"))(w, r)
			})).URL
		}, OpenAI, 0, Conformance{
			Role: RoleNone, Usage: UsageFinal, Chunks: 1, TokensPerChunkMax: 1, TokensPerChunkMean: 1, TokensPerChunkExact: true,
			OutputTokens: 1, FinishReason: "stop", Done: true, KeepAlive: ConnectionClose,
		}, []string{"(Connection: close)"}, nil},
		// The response stays open after [DONE]: the client abandons the body, so keep-alive is unknown.
		{"open after done", func(t *testing.T) string {
			return newServer(t, hangHandler(true, sse(content("a"), finishStop, usageOnly(1, 1), "[DONE]"))).URL
		}, OpenAI, 0, Conformance{
			Role: RoleNone, Usage: UsageFinal, Chunks: 1, TokensPerChunkMax: 1, TokensPerChunkMean: 1, TokensPerChunkExact: true,
			OutputTokens: 1, FinishReason: "stop", Done: true, KeepAlive: KeepAliveUnknown,
		}, []string{"connection: unknown"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, tt.url(t), tt.profile, Options{})
			p, err := c.Preflight(t.Context(), Request{Messages: oneMsg, MaxTokens: tt.max})
			require.NoError(t, err)
			assert.Equal(t, tt.want, p.Conformance)
			text := strings.Join(p.Conformance.Lines(), "\n")
			for _, l := range tt.lines {
				assert.Contains(t, text, l)
			}
			assert.Equal(t, strings.Join(p.Conformance.Lines(), "; "), p.Conformance.String())
			for _, w := range tt.warn {
				assert.True(t, hasWarning(p.Warnings, w), "want %q in %q", w, p.Warnings)
			}
			if tt.warn == nil && tt.name != "llama-server-like" {
				assert.NotContains(t, strings.Join(p.Warnings, "\n"), "closes the connection")
			}
		})
	}
}

// TestConformanceSecondProbe: the suite's second (calibration) probe shows
// whether the first probe's connection was kept: reused from a vLLM-like
// server, a new one (or a retry) from a llama-server-like one.
func TestConformanceSecondProbe(t *testing.T) {
	tests := []struct {
		name       string
		url        func(t *testing.T) string
		wantReused bool
		want       KeepAlive
	}{
		{"kept alive", func(t *testing.T) string { return newServer(t, streamHandler(llamaStream)).URL }, true, KeptAlive}, // net/http keeps it
		{"closed after each stream", func(t *testing.T) string { // llama-server: the close lands 20 ms late, so the second probe catches it dead
			srv, _ := closingServer(t, llamaStream, 20*time.Millisecond)
			return srv.URL
		}, false, ClosedByServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, tt.url(t), OpenAI, Options{})
			first, err := c.Preflight(t.Context(), Request{Messages: oneMsg})
			require.NoError(t, err)
			assert.False(t, first.Conformance.ConnReused, "the first probe has a new connection")
			second, err := c.Preflight(t.Context(), Request{Messages: oneMsg})
			require.NoError(t, err)
			assert.Equal(t, tt.wantReused, second.Conformance.ConnReused)
			assert.Equal(t, tt.wantReused, second.Record.ConnReused)
			assert.Equal(t, tt.want, second.Conformance.KeepAlive)
		})
	}
}
