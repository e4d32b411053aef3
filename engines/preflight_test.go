package engines

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/record"
)

// statusHandler answers every request with status and body.
func statusHandler(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func TestPreflightFailures(t *testing.T) {
	tests := []struct {
		name    string
		url     func(t *testing.T) string
		profile Profile
		apiKey  string
		want    []string // substrings of the error
	}{
		// Nothing listening: names engine and URL, asks whether the server runs.
		{"unreachable", closedURL, OpenAI, "", []string{"engine pf", "127.0.0.1", "connection refused", "Is the server running"}},
		// DNS failure.
		{"dns", func(*testing.T) string { return "http://does-not-exist.invalid/v1/chat/completions" }, OpenAI, "", []string{"engine pf", "does-not-exist.invalid", "DNS"}},
		// 401 on a Friendli engine: say to set FRIENDLI_TOKEN.
		{"401 friendli", func(t *testing.T) string {
			return newServer(t, statusHandler(401, `{"detail":"Invalid token"}`)).URL
		}, Friendli, "", []string{"engine pf", "HTTP 401", "Invalid token", "set FRIENDLI_TOKEN"}},
		// 401 on a generic engine with a key: say the key is wrong.
		{"401 generic", func(t *testing.T) string {
			return newServer(t, statusHandler(401, `{"error":{"message":"Incorrect API key"}}`)).URL
		}, OpenAI, "sk-wrong-key", []string{"HTTP 401", "Incorrect API key", "OPENAI_API_KEY to a valid key"}},
		// Unknown model: say to pass -model.
		{"404 model", func(t *testing.T) string {
			return newServer(t, statusHandler(404, `{"object":"error","message":"The model 'm' does not exist.","code":404}`)).URL
		}, VLLM, "", []string{"HTTP 404", "does not exist", "pass -model"}},
		// A rejected field: suggest the generic profile.
		{"400 field", func(t *testing.T) string {
			return newServer(t, statusHandler(400, `{"error":{"message":"Unknown field ignore_eos"}}`)).URL
		}, VLLM, "", []string{"HTTP 400", "ignore_eos", "generic profile"}},
		// A stream without output.
		{"empty", func(t *testing.T) string {
			return newServer(t, streamHandler(sse(roleChunk, finishStop, "[DONE]"))).URL
		}, OpenAI, "", []string{"without any output token"}},
		// llama-server's error event inside a 200 stream: the server's message and where to look.
		{"server error event", func(t *testing.T) string {
			return newServer(t, streamHandler(sse(`{"error":{"code":500,"message":"the request exceeds the available context size","type":"server_error"}}`))).URL
		}, OpenAI, "", []string{"engine pf", "exceeds the available context size", "check its logs"}},
		// Not an event stream.
		{"malformed", func(t *testing.T) string {
			return newServer(t, streamHandler([]string{"data: <html>\n\n"})).URL
		}, OpenAI, "", []string{"not OpenAI chat-completion SSE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient(Engine{Name: "pf", Profile: tt.profile, URL: tt.url(t), Model: "m", APIKey: tt.apiKey}, Options{})
			require.NoError(t, err)
			defer c.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			start := time.Now()
			p, err := c.Preflight(ctx, Request{Messages: oneMsg, MaxTokens: 4})
			assert.Less(t, time.Since(start), 10*time.Second, "must fail fast")
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Equal(t, record.Probe, p.Record.Phase)
			if tt.apiKey != "" {
				assert.NotContains(t, err.Error(), tt.apiKey)
			}
		})
	}
}

func TestPreflightTimeout(t *testing.T) {
	// A server that never answers: the caller's deadline ends the probe.
	srv := newServer(t, hangHandler(false, nil))
	c := newClient(t, srv.URL, OpenAI, Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := c.Preflight(ctx, Request{Messages: oneMsg})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no complete answer in time")
}

func TestPreflightFindings(t *testing.T) {
	tests := []struct {
		name           string
		pieces         []string
		max            int
		wantContinuous bool
		wantUsage      bool
		wantLength     bool
		wantWarnings   []string
	}{
		// vLLM-like: continuous usage, length honoured, no warnings.
		{"vllm", sse(contentUsage("a", 3, 1), contentUsage("b", 3, 2), finishLen, usageOnly(3, 2), "[DONE]"), 2, true, true, true, nil},
		// Final usage over multi-token chunks: per-chunk counts are a spread, warned.
		{"final usage spread", sse(content("ab"), content("cd"), finishLen, usageOnly(3, 4), "[DONE]"), 4, false, true, true, []string{"usage only at the end", "4 tokens in 2 chunks"}},
		// Friendli-like final usage, one token per chunk: exact, nothing to warn about.
		{"final usage exact", sse(content("a"), content("b"), finishLen, usageOnly(3, 2), "[DONE]"), 2, false, true, true, nil},
		// llama-server-like natural stop, usage counting the EOS: exact, no
		// warning. The role chunk comes in the first token's write: written
		// apart, the two were once 3.2 ms apart on a loaded machine, and the
		// preflight rightly warned of a role chunk ahead of the first token
		// (TestDoRoleChunkEarly has that warning).
		{"natural stop eos", append([]string{strings.Join(sse(llamaRole, llamaContent("a")), "")}, sse(llamaContent("b"), llamaFinish("stop", 3, 3), "[DONE]")...), 0, false, true, false, nil},
		// No usage: flagged, length unverifiable.
		{"no usage", sse(content("a"), content("b"), finishStop, "[DONE]"), 2, false, false, false, []string{"no usage in the stream"}},
		// Length ignored: a warning, not an error.
		{"length ignored", sse(content("a"), finishStop, usageOnly(3, 1), "[DONE]"), 8, false, true, false, []string{"fixed output length not honoured", "got 1"}},
		// No [DONE] after a finish: accepted with a warning.
		{"no done", sse(contentUsage("a", 3, 1), finishLen, usageOnly(3, 1)), 1, true, true, true, []string{"without data: [DONE]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, streamHandler(tt.pieces))
			c := newClient(t, srv.URL, VLLM, Options{})
			p, err := c.Preflight(t.Context(), Request{Messages: oneMsg, MaxTokens: tt.max})
			require.NoError(t, err)
			assert.Equal(t, tt.wantContinuous, p.ContinuousUsage)
			assert.Equal(t, tt.wantUsage, p.UsageReported)
			assert.Equal(t, tt.wantLength, p.LengthHonoured)
			assert.Equal(t, tt.name == "natural stop eos", p.RoleChunkFirst)
			for _, w := range tt.wantWarnings {
				assert.True(t, hasWarning(p.Warnings, w), "want %q in %q", w, p.Warnings)
			}
			if tt.wantWarnings == nil {
				assert.Empty(t, p.Warnings)
			}
		})
	}
}

// TestPreflightLengthWarningByProfile: a short probe is explained by what
// the profile asked for; the generic profile asked for no exact length, so
// it is never told the engine ignored min_tokens/ignore_eos.
func TestPreflightLengthWarningByProfile(t *testing.T) {
	short := sse(content("a"), finishStop, usageOnly(3, 1), "[DONE]")
	tests := []struct {
		profile  Profile
		want     []string
		wantNone []string
	}{
		// vLLM sent min_tokens and ignore_eos: both are named, and the mismatch fails requests.
		{VLLM, []string{"not honoured", "min_tokens/ignore_eos", "length-mismatch", "got 1"}, nil},
		// Friendli sent min_tokens only.
		{Friendli, []string{"not honoured", "ignores min_tokens,", "length-mismatch"}, []string{"ignore_eos"}},
		// Generic: max_tokens only; shorter answers are counted, not failed.
		{OpenAI, []string{"output length varies", "max_tokens only", "got 1"}, []string{"not honoured", "ignores", "length-mismatch"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.profile), func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, streamHandler(short))
			p, err := newClient(t, srv.URL, tt.profile, Options{}).Preflight(t.Context(), Request{Messages: oneMsg, MaxTokens: 8})
			require.NoError(t, err)
			assert.False(t, p.LengthHonoured)
			require.Len(t, p.Warnings, 1, p.Warnings)
			for _, w := range tt.want {
				assert.Contains(t, p.Warnings[0], w)
			}
			for _, w := range tt.wantNone {
				assert.NotContains(t, p.Warnings[0], w)
			}
		})
	}
}

func TestDiscoverModel(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		want    string
		wantErr []string
	}{
		// Exactly one model: it.
		{"one", 200, `{"object":"list","data":[{"id":"meta-llama/Llama-3.1-8B-Instruct","object":"model"}]}`, "meta-llama/Llama-3.1-8B-Instruct", nil},
		// None: an error saying to pass -model.
		{"zero", 200, `{"object":"list","data":[]}`, "", []string{"lists no model", "pass -model"}},
		// Two: an error listing them.
		{"two", 200, `{"data":[{"id":"a"},{"id":"b"}]}`, "", []string{"2 models (a, b)", "-model"}},
		// Not a model list.
		{"bad json", 200, `<html>`, "", []string{"not OpenAI JSON", "pass -model"}},
		// No data array.
		{"no data", 200, `{"models":["a"]}`, "", []string{`no "data" array`}},
		// Unauthorized: check the token.
		{"401", 401, `{"detail":"no token"}`, "", []string{"HTTP 401", "no token", "OPENAI_API_KEY"}},
		// No model list at all.
		{"404", 404, `not found`, "", []string{"HTTP 404", "pass -model"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			paths := make(chan string, 1)
			srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				paths <- r.Method + " " + r.URL.Path
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			c := newClient(t, srv.URL+"/v1/chat/completions", OpenAI, Options{})
			got, err := c.DiscoverModel(t.Context())
			assert.Equal(t, "GET /v1/models", <-paths)
			if tt.wantErr == nil {
				require.NoError(t, err)
				assert.Equal(t, tt.want, got)
				return
			}
			require.Error(t, err)
			for _, w := range tt.wantErr {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestDiscoverModelUnreachable(t *testing.T) {
	c := newClient(t, closedURL(t), OpenAI, Options{})
	_, err := c.DiscoverModel(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Is the server running")
}

func TestSetModel(t *testing.T) {
	c := newClient(t, closedURL(t), OpenAI, Options{})
	c.SetModel("discovered")
	assert.Equal(t, "discovered", c.Engine().Model)
}

func FuzzModels(f *testing.F) {
	f.Add([]byte(`{"data":[{"id":"a"}]}`))
	f.Add([]byte(`{"data":[]}`))
	f.Add([]byte(`{"data":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := parseModels(b)
		if err != nil {
			assert.Nil(t, ids)
			return
		}
		for _, id := range ids {
			assert.NotEmpty(t, id)
		}
	})
}

// TestPreflightDetectsSimulatedEngine: the simulated engine's response
// header is reported, so its numbers can be labelled simulated.
func TestPreflightDetectsSimulatedEngine(t *testing.T) {
	for _, header := range []bool{true, false} {
		srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if header {
				w.Header().Set(SimulatedHeader, "true")
			}
			streamHandler(sse(content("a"), finishStop, usageOnly(1, 1), "[DONE]")).ServeHTTP(w, r)
		}))
		p, err := newClient(t, srv.URL, VLLM, Options{}).Preflight(t.Context(), Request{Messages: oneMsg, MaxTokens: 1})
		require.NoError(t, err)
		assert.Equal(t, header, p.Simulated)
	}
}
