package fake

import (
	"errors"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary bodies to the request decoder: it must
// never panic, and every error must be a 400 (*badRequest) with a message.
// The seeds run as an ordinary test.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"}]}]}`,
		`{"model":"m","messages":[{"role":"user","content":null}],"min_tokens":2,"max_completion_tokens":2,"ignore_eos":false}`,
		`{"model":"m","prompt":["a","b"],"max_tokens":1}`,
		`{"model":"m","prompt":"x","n":1}`,
		`{"model":"m","messages":[{"role":"user","content":5}]}`,
		`{"model":"m","max_tokens":-1}`,
		`{"model":"m","max_tokens":1e400}`,
		`[[[[[[[[[[`,
		"\xff\xfe",
		`null`,
		``,
		`{"model":"m"} x`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		req, err := decodeRequest(body, chat, 16)
		if err != nil {
			var br *badRequest
			if !errors.As(err, &br) || br.msg == "" {
				t.Fatalf("error %v is not a 400 with a message", err)
			}
			return
		}
		if req.Model == "" || req.MaxTokens < 1 || req.MinTokens < 0 || req.MinTokens > req.MaxTokens || req.PromptTokens < 1 {
			t.Fatalf("accepted an invalid request: %+v", req)
		}
		if chat && len(req.Messages) == 0 {
			t.Fatalf("accepted a chat request without messages")
		}
		if n := len(req.tokenIDs()); n != req.PromptTokens {
			t.Fatalf("the prompt's token ids (%d) do not match its token count %d", n, req.PromptTokens)
		}
		if req.ContinuousUsage && !req.IncludeUsage {
			t.Fatalf("continuous usage without include_usage")
		}
	})
}
