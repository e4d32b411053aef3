package engines

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseChunk(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want chunkInfo
	}{
		// A vLLM role-only first chunk: not output.
		{"role only", `{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`,
			chunkInfo{role: true, choices: 1}},
		// A content chunk.
		{"content", `{"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}`,
			chunkInfo{output: true, choices: 1}},
		// content null is not output.
		{"content null", `{"choices":[{"delta":{"content":null}}]}`, chunkInfo{choices: 1}},
		// Reasoning text counts as output, under either name.
		{"reasoning_content", `{"choices":[{"delta":{"content":null,"reasoning_content":"think"}}]}`, chunkInfo{output: true, choices: 1}},
		{"reasoning", `{"choices":[{"delta":{"reasoning":"hmm"}}]}`, chunkInfo{output: true, choices: 1}},
		// A tool call delta is output; an empty list is not.
		{"tool calls", `{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}`, chunkInfo{output: true, choices: 1}},
		{"empty tool calls", `{"choices":[{"delta":{"tool_calls":[ ]}}]}`, chunkInfo{choices: 1}},
		// A usage-only final frame.
		{"usage only", `{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}}`,
			chunkInfo{hasUsage: true, promptTokens: 12, completionTokens: 34}},
		// Continuous usage on a content chunk.
		{"content with usage", `{"choices":[{"delta":{"content":"ab"}}],"usage":{"prompt_tokens":5,"completion_tokens":2}}`,
			chunkInfo{output: true, choices: 1, hasUsage: true, promptTokens: 5, completionTokens: 2}},
		// Prefix-cache hits (vLLM, OpenAI): usage.prompt_tokens_details.cached_tokens.
		{"cached tokens", `{"choices":[],"usage":{"prompt_tokens":120,"completion_tokens":3,"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":96}}}`,
			chunkInfo{hasUsage: true, promptTokens: 120, completionTokens: 3, hasCached: true, cachedTokens: 96}},
		// A reported 0 is reported.
		{"cached zero", `{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":0}}}`,
			chunkInfo{hasUsage: true, promptTokens: 9, completionTokens: 1, hasCached: true}},
		// Details null, or without cached_tokens, or cached_tokens null: not reported.
		{"details null", `{"usage":{"prompt_tokens":9,"prompt_tokens_details":null}}`, chunkInfo{hasUsage: true, promptTokens: 9}},
		{"details without cache", `{"usage":{"prompt_tokens":9,"prompt_tokens_details":{"audio_tokens":0}}}`, chunkInfo{hasUsage: true, promptTokens: 9}},
		{"cached null", `{"usage":{"prompt_tokens_details":{"cached_tokens":null}}}`, chunkInfo{hasUsage: true}},
		// Details of another shape are ignored, not malformed.
		{"details string", `{"usage":{"prompt_tokens":9,"prompt_tokens_details":"n/a"}}`, chunkInfo{hasUsage: true, promptTokens: 9}},
		// usage null is no usage.
		{"usage null", `{"choices":[{"delta":{"content":"a"}}],"usage":null}`, chunkInfo{output: true, choices: 1}},
		// The finish chunk.
		{"finish", `{"choices":[{"delta":{},"finish_reason":"length"}]}`, chunkInfo{choices: 1, finish: "length"}},
		// An unusual finish reason with an escape is decoded.
		{"finish escaped", `{"choices":[{"delta":{},"finish_reason":"a\u0062c"}]}`, chunkInfo{choices: 1, finish: "abc"}},
		// Invalid UTF-8 in a finish reason becomes U+FFFD, as encoding/json decodes it.
		{"finish invalid utf-8", "{\"choices\":[{\"finish_reason\":\"\xba\"}]}", chunkInfo{choices: 1, finish: "\uFFFD"}},
		// Legacy completions text.
		{"text", `{"choices":[{"text":"x","index":0}]}`, chunkInfo{output: true, choices: 1}},
		// An error object mid-stream.
		{"error", `{"error":{"message":"out of memory","type":"InternalServerError","code":500}}`, chunkInfo{hasError: true, errMsg: "out of memory"}},
		// Unknown fields, nested deeply, are ignored.
		{"unknown fields", `{"x":{"y":[1,2.5e3,-0,true,false,null,"s\"\\"]},"choices":[{"delta":{"content":"z","extra":{"k":[]}}}],"z":1}`,
			chunkInfo{output: true, choices: 1}},
		// Whitespace everywhere.
		{"whitespace", " { \"choices\" : [ { \"delta\" : { \"content\" : \"a\" } } ] } \n", chunkInfo{output: true, choices: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got chunkInfo
			require.NoError(t, parseChunk([]byte(tt.in), &got))
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseChunkRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ``},         // nothing at all
		{"not json", `hello`}, // plain text
		{"array", `[1,2]`},    // not an object
		{"truncated", `{"choices":[{"delta":{"content":"a`},                           // cut mid-string
		{"trailing", `{"a":1} x`},                                                     // data after the object
		{"trailing comma", `{"a":1,}`},                                                // invalid JSON
		{"bad escape", `{"a":"\q"}`},                                                  // invalid escape
		{"control char", "{\"a\":\"\x01\"}"},                                          // raw control character
		{"float count", `{"usage":{"completion_tokens":1.5}}`},                        // not an integer
		{"negative count", `{"usage":{"completion_tokens":-3}}`},                      // negative
		{"usage string", `{"usage":"many"}`},                                          // wrong shape
		{"float cached", `{"usage":{"prompt_tokens_details":{"cached_tokens":2.5}}}`}, // not an integer
		{"bad number", `{"a":01}`},                                                    // leading zero
		{"bad literal", `{"a":tru}`},                                                  // truncated literal
		{"missing colon", `{"a" 1}`},                                                  // no colon
		{"unclosed array", `{"choices":[{"delta":{}}`},                                // cut in array
		{"deep", `{"a":` + repeat("[", 300) + repeat("]", 300) + `}`},                 // too deep
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ci chunkInfo
			assert.ErrorIs(t, parseChunk([]byte(tt.in), &ci), errSyntax)
		})
	}
}

func repeat(s string, n int) string {
	out := make([]byte, 0, len(s)*n)
	for range n {
		out = append(out, s...)
	}
	return string(out)
}

// refChunk decodes a chunk with encoding/json into generic values and
// derives the same facts, as an independent reference.
func refChunk(b []byte) (chunkInfo, bool) {
	var v map[string]any
	if json.Unmarshal(b, &v) != nil {
		return chunkInfo{}, false
	}
	var ci chunkInfo
	nonEmpty := func(x any) bool {
		switch t := x.(type) {
		case string:
			return t != ""
		case []any:
			return len(t) > 0
		}
		return false
	}
	if ch, ok := v["choices"].([]any); ok {
		ci.choices = len(ch)
		for _, c := range ch {
			cm, ok := c.(map[string]any)
			if !ok {
				continue
			}
			if nonEmpty(cm["text"]) {
				ci.output = true
			}
			for _, k := range []string{"delta", "message"} {
				d, ok := cm[k].(map[string]any)
				if !ok {
					continue
				}
				for _, f := range []string{"content", "reasoning_content", "reasoning", "tool_calls"} {
					if nonEmpty(d[f]) {
						ci.output = true
					}
				}
				if r, ok := d["role"]; ok && r != nil {
					ci.role = true
				}
			}
			if f, ok := cm["finish_reason"].(string); ok {
				ci.finish = f
			}
		}
	}
	if u, ok := v["usage"].(map[string]any); ok {
		ci.hasUsage = true
		if p, ok := u["prompt_tokens"].(float64); ok {
			ci.promptTokens = int(p)
		}
		if c, ok := u["completion_tokens"].(float64); ok {
			ci.completionTokens = int(c)
		}
		if d, ok := u["prompt_tokens_details"].(map[string]any); ok {
			if c, ok := d["cached_tokens"].(float64); ok {
				ci.hasCached, ci.cachedTokens = true, int(c)
			}
		}
	}
	if e, ok := v["error"]; ok && e != nil {
		ci.hasError = true
		raw, _ := json.Marshal(e)
		ci.errMsg = errorMessage(raw)
	}
	return ci, true
}

// TestSpecial8 checks the word-at-a-time test str uses against the
// byte table, for every byte value at every position of a word whose
// other bytes are plain (before it) or anything (after it: only the
// lowest flag counts). On a special8 that tested "< 0x20" with the
// borrow in the wrong direction, control characters after byte 0 go
// unseen and this fails.
func TestSpecial8(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	plain := func() byte {
		for {
			if c := byte(rng.IntN(256)); plainStr[c] {
				return c
			}
		}
	}
	for c := range 256 {
		for pos := range 8 {
			for range 20 {
				var w [8]byte
				for k := range w {
					switch {
					case k < pos:
						w[k] = plain()
					case k == pos:
						w[k] = byte(c)
					default:
						w[k] = byte(rng.IntN(256))
					}
				}
				m := special8(binary.LittleEndian.Uint64(w[:]))
				if plainStr[c] {
					// No special byte up to pos: the lowest flag, if
					// any, is above it.
					if m != 0 {
						require.Greater(t, bits.TrailingZeros64(m)>>3, pos, "%q", w)
					}
					continue
				}
				require.NotZero(t, m, "%q", w)
				require.Equal(t, pos, bits.TrailingZeros64(m)>>3, "%q", w)
			}
		}
	}
}

func FuzzChunk(f *testing.F) {
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`))
	f.Add([]byte(`{"choices":[{"delta":{"content":"Hello"}}],"usage":{"prompt_tokens":5,"completion_tokens":2}}`))
	f.Add([]byte(`{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34}}`))
	f.Add([]byte(`{"choices":[{"delta":{"reasoning_content":"x","tool_calls":[]},"finish_reason":"stop"}]}`))
	f.Add([]byte(`{"error":{"message":"boom"}}`))
	f.Add([]byte(`{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":8}}}`))
	f.Add([]byte(`{"usage":{"prompt_tokens_details":{"cached_tokens":null,"x":[{}]}}}`))
	f.Add([]byte(`{"a":[1,-2.5e+3,true,null,"\u00e9"]}`))
	// Strings that cross eight-byte words, with the quote, an escape
	// or a control character at every offset of a word.
	f.Add([]byte(`{"choices":[{"delta":{"content":"abcdefghijklmnopq\"rst\\uvw\u00e9xyz0123456789"}}]}`))
	f.Add([]byte("{\"choices\":[{\"delta\":{\"content\":\"abcdefghijk\x01lmnop\"}}]}"))
	f.Add([]byte("{\"choices\":[{\"delta\":{\"content\":\"abcdefghijklmnop\xc3\xa9\xff\x7f\"}}]}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var got chunkInfo
		err := parseChunk(in, &got)
		want, valid := refChunk(in)
		isObject := json.Valid(in) && valid
		if !isObject {
			// Invalid JSON or not an object: the scanner must reject it too.
			assert.Error(t, err, "accepted %q", in)
			return
		}
		if err != nil {
			// The scanner is stricter only about token counts and depth.
			assert.ErrorIs(t, err, errSyntax)
			return
		}
		if hasEscapedKey(in) || hasDuplicateKeys(in) {
			return // the reference matches unescaped keys and keeps the last duplicate
		}
		got.errMsg, want.errMsg = "", "" // number formatting differs; not a fact we rely on
		assert.Equal(t, want, got, "%q", in)
	})
}

// hasDuplicateKeys reports whether any object in the JSON text repeats a key.
func hasDuplicateKeys(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		keys  map[string]bool
		isObj bool
		key   bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if k, isStr := tok.(string); isStr && top != nil && top.isObj && top.key {
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.key = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, isObj: true, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].isObj {
			stack[len(stack)-1].key = true
		}
	}
}

func hasEscapedKey(b []byte) bool {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == '\\' {
			return true
		}
	}
	return false
}
