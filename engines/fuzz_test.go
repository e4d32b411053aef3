package engines

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/record"
)

// FuzzParse: any spec either fails with an error or yields an engine with a
// valid name and an http(s) URL with a host; no form of it shows the key.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"vllm", "friendli", "friendli-serverless@m", "x=http://h:8000", "v@a/b=https://u:p@h/v1?api_key=k", "=", "@", "x=http://[::1]:80/v1", "a=b=c"} {
		f.Add(s)
	}
	const key = "FUZZ-SECRET-KEY"
	getenv := env(map[string]string{EnvFriendliToken: key, EnvOpenAIKey: key, EnvFriendliTeam: key})
	f.Fuzz(func(t *testing.T, spec string) {
		e, err := Parse(spec, getenv)
		if err != nil {
			assert.NotContains(t, err.Error(), key)
			return
		}
		require.NoError(t, checkName(e.Name))
		u, err := url.Parse(e.URL)
		require.NoError(t, err)
		assert.Contains(t, []string{"http", "https"}, u.Scheme)
		assert.NotEmpty(t, u.Host)
		for _, s := range []string{e.String(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)} {
			assert.NotContains(t, s, key)
		}
		_ = RedactURL(spec)
	})
}

// FuzzStream feeds arbitrary bodies through the client's stream path: it
// never panics, always classifies, and keeps its invariants.
func FuzzStream(f *testing.F) {
	f.Add(strings.Join(sse(roleChunk, contentUsage("a", 3, 1), contentUsage("b", 3, 2), finishLen, usageOnly(3, 2), "[DONE]"), ""), 2)
	f.Add(strings.Join(sse(content("a"), content("b"), finishStop, usageOnly(3, 7), "[DONE]"), ""), 7)
	f.Add(strings.Join(sse(content("a"), `{"error":{"message":"x"}}`), ""), 0)
	f.Add(strings.Join(sse(llamaRole, llamaContent("a"), llamaContent("b"), llamaFinish("stop", 3, 3), "[DONE]"), ""), 0)
	f.Add(strings.Join(sse(`{"error":{"code":500,"message":"context","type":"server_error"}}`), ""), 0)
	f.Add(strings.Join(sse(ollamaContent("a"), ollamaFinish("stop"), `{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":1}}}`, "[DONE]"), ""), 0)
	f.Add("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"completion_tokens\":5}}\r\n\r\ndata: [DONE]\r\n\r\n", 3)
	c, err := NewClient(Engine{Name: "fuzz", Profile: VLLM, URL: "http://127.0.0.1:1/v1/chat/completions"}, Options{Epoch: time.Unix(0, 0), Now: (&fakeClock{}).now})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body string, maxTokens int) {
		maxTokens = max(0, maxTokens%5000)
		var rec record.Record
		var info streamInfo
		c.readStream(t.Context(), Request{Messages: oneMsg, MaxTokens: maxTokens}, &piecesReader{pieces: []string{body}}, &rec, &info, nil)
		assert.Positive(t, rec.Done)
		for i, ch := range rec.Chunks {
			assert.LessOrEqual(t, ch.At, rec.Done)
			if i > 0 {
				assert.LessOrEqual(t, rec.Chunks[i-1].At, ch.At)
			}
		}
		if rec.Error == record.OK {
			assert.NotEmpty(t, rec.Chunks)
			assert.NotEmpty(t, rec.TokenSource)
			sum := 0
			for _, ch := range rec.Chunks {
				sum += ch.Tokens
			}
			switch {
			case rec.TokenSource == record.ChunkCount:
				assert.Equal(t, len(rec.Chunks), rec.OutputTokens)
			case rec.TokenSource == record.Continuous || rec.StreamedTokens() >= len(rec.Chunks):
				assert.Equal(t, rec.StreamedTokens(), sum, "per-chunk tokens sum to the total")
			}
			if rec.EOSCounted {
				assert.Equal(t, "stop", rec.FinishReason, "only a natural stop counts an EOS")
				assert.False(t, rec.EstimatedChunkTokens())
			}
			if maxTokens > 0 && rec.TokenSource != record.ChunkCount {
				assert.Equal(t, maxTokens, rec.OutputTokens)
			}
		} else {
			assert.NotEmpty(t, rec.Message)
		}
		if !rec.CachedReported {
			assert.Zero(t, rec.CachedTokens)
		}
	})
}
