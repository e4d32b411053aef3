package fake

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/fake/sim"
)

// cachingCfg is fastCfg with prefix caching (blocks of 16 tokens).
func cachingCfg(t testing.TB) sim.Config {
	t.Helper()
	c := fastCfg(t)
	c.PrefixCaching = true
	return c
}

// usageOf is the usage of a response, with vLLM's prompt_tokens_details.
type usageOf struct {
	Prompt     int `json:"prompt_tokens"`
	Completion int `json:"completion_tokens"`
	Details    *struct {
		Cached *int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

// chatBody is a chat request with a system and a user message.
func chatBody(system, user string, stream bool) string {
	b, _ := json.Marshal(map[string]any{
		"model":      "fake-model",
		"messages":   []map[string]string{{"role": "system", "content": system}, {"role": "user", "content": user}},
		"max_tokens": 4, "stream": stream,
		"stream_options": map[string]bool{"include_usage": true},
	})
	if !stream {
		b, _ = json.Marshal(map[string]any{
			"model":      "fake-model",
			"messages":   []map[string]string{{"role": "system", "content": system}, {"role": "user", "content": user}},
			"max_tokens": 4,
		})
	}
	return string(b)
}

// usage sends body and returns its usage (the final chunk's for a stream).
func usage(t testing.TB, url, body string) usageOf {
	t.Helper()
	resp := post(t, context.Background(), url+"/v1/chat/completions", body)
	require.Equal(t, 200, resp.StatusCode)
	raw := readAll(t, resp)
	var u struct {
		Usage *usageOf `json:"usage"`
	}
	if strings.HasPrefix(string(raw), "data: ") {
		evs := events(t, raw)
		require.Equal(t, "[DONE]", evs[len(evs)-1])
		require.NoError(t, json.Unmarshal([]byte(evs[len(evs)-2]), &u))
	} else {
		require.NoError(t, json.Unmarshal(raw, &u))
	}
	require.NotNil(t, u.Usage, "no usage in %s", raw)
	return *u.Usage
}

// cachedOf returns cached_tokens, failing when the field is missing.
func cachedOf(t testing.TB, u usageOf) int {
	t.Helper()
	require.NotNil(t, u.Details, "usage lacks prompt_tokens_details")
	require.NotNil(t, u.Details.Cached, "prompt_tokens_details lacks cached_tokens")
	return *u.Details.Cached
}

// TestPrefixCachingHTTP checks cached_tokens over HTTP, streamed and not,
// for prompts derived from the request's content. On the old code usage
// had no prompt_tokens_details and the option did not exist.
func TestPrefixCachingHTTP(t *testing.T) {
	system := strings.Repeat("You are a helpful assistant. ", 20) // 580 bytes
	q1, q2 := strings.Repeat("first question ", 10), strings.Repeat("second query ", 12)
	full := func(system, user string) int { // what a repeat can hit
		n := EstimatePromptTokens([]Message{{Role: "system", Content: system}, {Role: "user", Content: user}})
		return (n - 1) / 16 * 16
	}
	// The system message is 3 + 145 + 1 template and text tokens; the
	// user's header follows; the shared prefix is 148 + 2 tokens
	// (<|start_header_id|>user), so 9 full blocks.
	shared := (3 + textTokens(system) + 1 + 2) / 16 * 16
	tests := []struct {
		name         string
		first, again string // the two requests' bodies
		cached       int    // cached_tokens of the second
	}{
		// The same prompt twice: every full block but the last token's.
		{"same prompt", chatBody(system, q1, true), chatBody(system, q1, true), full(system, q1)},
		// The same, without streaming.
		{"same prompt, no stream", chatBody(system, q1, false), chatBody(system, q1, false), full(system, q1)},
		// A shared system prompt and another question: its full blocks.
		{"shared system prompt", chatBody(system, q1, true), chatBody(system, q2, true), shared},
		// Prompts that differ from the first message on share nothing.
		{"distinct prompts", chatBody(system, q1, true), chatBody("Be terse. "+system, q1, true), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := newTest(t, cachingCfg(t), Options{})
			a := usage(t, ts.URL, tt.first)
			assert.Equal(t, 0, cachedOf(t, a), "a cold cache")
			b := usage(t, ts.URL, tt.again)
			assert.Equal(t, tt.cached, cachedOf(t, b))
			assert.Equal(t, 4, b.Completion)
			st := s.Engine().Stats()
			assert.EqualValues(t, tt.cached, st.PrefixCacheHits)
			assert.EqualValues(t, a.Prompt+b.Prompt, st.PrefixCacheQueries)
			metrics := string(readAll(t, mustGet(t, ts.URL+"/metrics")))
			assert.Contains(t, metrics, fmt.Sprintf(`vllm:prefix_cache_hits_total{model_name="fake-model"} %d`, tt.cached))
		})
	}
	require.Equal(t, 144, shared, "the test's arithmetic")

	t.Run("off: no details", func(t *testing.T) {
		_, ts := newTest(t, fastCfg(t), Options{})
		u := usage(t, ts.URL, chatBody(system, q1, true))
		assert.Nil(t, u.Details)
	})
	t.Run("firehose refuses it", func(t *testing.T) {
		c := firehoseCfg(t)
		c.PrefixCaching = true
		_, err := NewServer(c, Options{})
		require.ErrorContains(t, err, "prefix-caching")
	})
}

// TestPrefixCacheEvictionHTTP fills a 16-block KV cache over HTTP: a third
// prompt evicts the first one's blocks (freed longest ago) and not the
// second's.
func TestPrefixCacheEvictionHTTP(t *testing.T) {
	c := cachingCfg(t)
	c.KVCapacityTokens = 256 // 16 blocks
	_, ts := newTest(t, c, Options{})
	// 127 prompt tokens (7 full blocks) + 4 output tokens: 9 blocks each.
	prompt := func(letter string) string { return chatBody("", strings.Repeat(letter, 464), false) }
	require.Equal(t, 127, EstimatePromptTokens([]Message{{Role: "system"}, {Role: "user", Content: strings.Repeat("a", 464)}}))
	usage(t, ts.URL, prompt("a")) // A: 7 cached blocks, 9 empty left
	usage(t, ts.URL, prompt("b")) // B: takes the 9 empty blocks
	usage(t, ts.URL, prompt("c")) // C: 2 empty blocks, then evicts A's 7
	assert.Equal(t, 112, cachedOf(t, usage(t, ts.URL, prompt("b"))), "B survived")
	assert.Equal(t, 0, cachedOf(t, usage(t, ts.URL, prompt("a"))), "A was evicted")
}

// TestPromptTokenIDs checks that the simulated tokenizer gives exactly the
// estimated count and that equal prefixes give equal leading ids.
func TestPromptTokenIDs(t *testing.T) {
	tests := []struct {
		name     string
		messages []Message
	}{
		// One short message.
		{"short", []Message{{Role: "user", Content: "hi"}}},
		// An empty message still has its template tokens.
		{"empty", []Message{{Role: "user"}}},
		// Several messages with lengths not divisible by 4.
		{"several", []Message{{Role: "system", Content: "abcde"}, {Role: "user", Content: "fghijkl"}, {Role: "assistant", Content: "ü"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Len(t, PromptTokenIDs(tt.messages), EstimatePromptTokens(tt.messages))
		})
	}
	a := PromptTokenIDs([]Message{{Role: "system", Content: "same start"}, {Role: "user", Content: "one"}})
	b := PromptTokenIDs([]Message{{Role: "system", Content: "same start"}, {Role: "user", Content: "two"}})
	assert.Equal(t, a[:7], b[:7], "the shared system message")
	assert.NotEqual(t, a, b)
	assert.Len(t, textTokenIDs(""), 1)
	assert.Len(t, textTokenIDs("12345"), 2)
}
