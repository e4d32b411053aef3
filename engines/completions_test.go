package engines

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/record"
)

func textChunk(s string) string {
	b, _ := json.Marshal(s)
	return `{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":` + string(b) + `,"finish_reason":null}]}`
}

// TestCompletionsEndpoint checks the /v1/completions body and stream: the
// request goes to the completions URL next to the chat URL with a prompt
// (given, or the messages joined), the profile's length fields, and text
// chunks are counted as output.
func TestCompletionsEndpoint(t *testing.T) {
	tests := []struct {
		name       string
		req        Request
		wantPrompt string
	}{
		// An explicit prompt is sent as it is.
		{"prompt", Request{Prompt: "Once upon", Messages: oneMsg, MaxTokens: 3}, "Once upon"},
		// Without one, the messages' contents joined by blank lines: no template.
		{"messages", Request{Messages: []Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi"}}, MaxTokens: 3}, "be brief\n\nhi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var body map[string]any
			var path string
			srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				path = r.URL.Path
				_ = json.NewDecoder(r.Body).Decode(&body)
				mu.Unlock()
				streamHandler(sse(textChunk("a"), textChunk(" b"), textChunk(" c"),
					`{"choices":[{"index":0,"text":"","finish_reason":"length"}]}`, usageOnly(5, 3), "[DONE]"))(w, r)
			}))
			c := newClient(t, srv.URL+"/v1/chat/completions", VLLM, Options{Endpoint: Completions})
			assert.Equal(t, srv.URL+"/v1/completions", c.URL())
			var answer strings.Builder
			tt.req.Answer = &answer
			rec := do(t, c, t.Context(), tt.req)
			require.Equal(t, record.OK, rec.Error, rec.Message)
			assert.Len(t, rec.Chunks, 3)
			assert.Equal(t, 3, rec.OutputTokens)
			assert.Equal(t, "a b c", answer.String())
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, "/v1/completions", path)
			assert.Equal(t, tt.wantPrompt, body["prompt"])
			assert.NotContains(t, body, "messages")
			assert.Equal(t, 3.0, body["max_tokens"])
			assert.Equal(t, 3.0, body["min_tokens"])
			assert.Equal(t, true, body["ignore_eos"])
		})
	}
}

func TestEndpointOption(t *testing.T) {
	// An unknown endpoint is refused with the ones there are.
	_, err := NewClient(Engine{Name: "e", URL: "http://127.0.0.1:1/v1/chat/completions"}, Options{Endpoint: "embeddings"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown endpoint "embeddings"`)
	// A URL that is not a chat URL is the user's completions URL, as given.
	c, err := NewClient(Engine{Name: "e", URL: "http://127.0.0.1:1/generate"}, Options{Endpoint: Completions})
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, "http://127.0.0.1:1/generate", c.URL())
	// The chat endpoint keeps the URL.
	c2, err := NewClient(Engine{Name: "e", URL: "http://127.0.0.1:1/v1/chat/completions"}, Options{})
	require.NoError(t, err)
	defer c2.Close()
	assert.Equal(t, "http://127.0.0.1:1/v1/chat/completions", c2.URL())
}

// TestAnswerText checks that Request.Answer receives the streamed content
// exactly (escapes decoded, role-only and usage events adding nothing,
// reasoning left out), and that without it nothing is decoded.
func TestAnswerText(t *testing.T) {
	srv := newServer(t, streamHandler(sse(roleChunk, content("Hello"), content(", \"w\"\n"),
		`{"choices":[{"index":0,"delta":{"reasoning_content":"hmm"},"finish_reason":null}]}`,
		content("\u00e9!"), finishStop, usageOnly(3, 4), "[DONE]")))
	c := newClient(t, srv.URL, OpenAI, Options{})
	var answer strings.Builder
	rec := do(t, c, t.Context(), Request{Messages: oneMsg, Answer: &answer})
	require.Equal(t, record.OK, rec.Error, rec.Message)
	assert.Equal(t, "Hello, \"w\"\né!", answer.String())
}
