package fake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Message is one chat message of a request, as far as the simulated engine
// needs it: the role and the text of its content.
type Message struct {
	Role string
	// Content is the message text; array content ({"type":"text","text":…}
	// parts) is concatenated.
	Content string
}

// PerMessageOverheadTokens is the fixed number of template tokens a chat
// message costs on top of its text (role markers and separators, as in
// Llama-3's chat template: <|start_header_id|>role<|end_header_id|>\n\n … <|eot_id|>).
const PerMessageOverheadTokens = 4

// ReplyPrimeTokens is the fixed number of template tokens that open the
// assistant's reply (Llama-3: <|start_header_id|>assistant<|end_header_id|>\n\n).
const ReplyPrimeTokens = 3

// EstimatePromptTokens is the simulated engine's deterministic prompt-token
// count of a chat request: for every message ceil(len(Content in bytes)/4) +
// PerMessageOverheadTokens, plus ReplyPrimeTokens once. Four bytes per token
// is the usual rule of thumb for English BPE tokenizers; the overheads mimic a
// chat template. It is never below 1.
func EstimatePromptTokens(messages []Message) int {
	n := ReplyPrimeTokens
	for _, m := range messages {
		n += textTokens(m.Content) + PerMessageOverheadTokens
	}
	return max(n, 1)
}

// textTokens is ceil(len(s)/4): the estimate for raw text (the completions
// API's prompt has no template).
func textTokens(s string) int { return (len(s) + 3) / 4 }

// Template token ids of PromptTokenIDs: they cannot collide with text
// tokens, whose ids are hashes of their bytes with the top bit set.
const (
	tokStartHeader uint64 = 1 // <|start_header_id|>
	tokEndHeader   uint64 = 2 // <|end_header_id|>\n\n
	tokEOT         uint64 = 3 // <|eot_id|>
	tokEmpty       uint64 = 4 // the one token of an empty completions prompt
)

// PromptTokenIDs is the simulated tokenizer behind EstimatePromptTokens: it
// returns exactly EstimatePromptTokens(messages) token ids, derived from the
// content, so that equal prompt prefixes give equal leading tokens (what
// prefix caching keys on). Each message is <|start_header_id|>, its role,
// <|end_header_id|>, one token per 4 bytes of its content and <|eot_id|>;
// the reply prime is <|start_header_id|>assistant<|end_header_id|>. A text
// token's id is a hash of its bytes.
func PromptTokenIDs(messages []Message) []uint64 {
	ids := make([]uint64, 0, EstimatePromptTokens(messages))
	for _, m := range messages {
		ids = append(ids, tokStartHeader, textID(m.Role), tokEndHeader)
		ids = appendTextIDs(ids, m.Content)
		ids = append(ids, tokEOT)
	}
	return append(ids, tokStartHeader, textID("assistant"), tokEndHeader)
}

// textTokenIDs is the completions prompt's tokenization: one token per 4
// bytes (textTokens of them), or one token for an empty prompt.
func textTokenIDs(s string) []uint64 {
	if s == "" {
		return []uint64{tokEmpty}
	}
	return appendTextIDs(make([]uint64, 0, textTokens(s)), s)
}

// appendTextIDs appends the ids of s's 4-byte pieces (the last may be shorter).
func appendTextIDs(ids []uint64, s string) []uint64 {
	for i := 0; i < len(s); i += 4 {
		ids = append(ids, textID(s[i:min(i+4, len(s))]))
	}
	return ids
}

// textID is FNV-1a of a piece of text, with the top bit set.
func textID(piece string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(piece); i++ {
		h = (h ^ uint64(piece[i])) * 1099511628211
	}
	return h | 1<<63
}

// tokenIDs is the request's prompt as token ids (len = PromptTokens).
func (r *request) tokenIDs() []uint64 {
	if r.Chat {
		return PromptTokenIDs(r.Messages)
	}
	return textTokenIDs(r.Prompt)
}

// request is a decoded and validated /v1/chat/completions or /v1/completions
// body.
type request struct {
	Model        string
	Chat         bool // chat API (messages) rather than completions (prompt)
	Messages     []Message
	Prompt       string
	PromptTokens int
	MaxTokens    int  // the output limit (max_completion_tokens, else max_tokens, else the config default)
	MinTokens    int  // no EOS before this many tokens
	IgnoreEOS    bool // generate exactly MaxTokens
	Stream       bool
	IncludeUsage bool // stream_options.include_usage: a final usage chunk
	// ContinuousUsage is stream_options.continuous_usage_stats together with
	// include_usage (vLLM requires both): cumulative usage on every chunk.
	ContinuousUsage bool
}

// wireRequest is the JSON body. Pointers tell "absent" from zero; fields a
// real engine accepts but the simulation ignores (temperature, top_p, …) are
// not listed and so ignored.
type wireRequest struct {
	Model               *string         `json:"model"`
	Messages            []wireMessage   `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	MinTokens           *int            `json:"min_tokens"`
	IgnoreEOS           *bool           `json:"ignore_eos"`
	Stream              *bool           `json:"stream"`
	N                   *int            `json:"n"`
	StreamOptions       *struct {
		IncludeUsage         *bool `json:"include_usage"`
		ContinuousUsageStats *bool `json:"continuous_usage_stats"`
	} `json:"stream_options"`
}

type wireMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// badRequest is a client error the server answers with 400 and its message.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

// decodeRequest parses and validates a request body. chat selects the chat
// schema (messages) or the completions one (prompt). defaultTokens is the
// output length when the request gives no limit. Every error it returns is a
// *badRequest (HTTP 400) with a message that says what to fix.
func decodeRequest(body []byte, chat bool, defaultTokens int) (*request, error) {
	if !utf8.Valid(body) {
		return nil, badf("request body is not valid UTF-8")
	}
	var w wireRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, badf("field %q: expected %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return nil, badf("request body is not a JSON object of the expected shape: %v", err)
	}
	if dec.More() {
		return nil, badf("request body has data after the JSON object")
	}
	if _, err := dec.Token(); err == nil {
		return nil, badf("request body has data after the JSON object")
	}
	r := &request{Chat: chat}
	if w.Model == nil || *w.Model == "" {
		return nil, badf(`field "model" is required`)
	}
	r.Model = *w.Model
	if chat {
		if len(w.Messages) == 0 {
			return nil, badf(`field "messages" must be a non-empty array of {"role","content"} objects`)
		}
		r.Messages = make([]Message, len(w.Messages))
		for i, m := range w.Messages {
			if m.Role == "" {
				return nil, badf(`messages[%d]: field "role" is required`, i)
			}
			text, err := contentText(m.Content)
			if err != nil {
				return nil, badf("messages[%d].content: %v", i, err)
			}
			r.Messages[i] = Message{Role: m.Role, Content: text}
		}
		r.PromptTokens = EstimatePromptTokens(r.Messages)
	} else {
		p, err := promptText(w.Prompt)
		if err != nil {
			return nil, err
		}
		r.Prompt = p
		r.PromptTokens = max(textTokens(p), 1)
	}
	if w.N != nil && *w.N != 1 {
		return nil, badf(`field "n" is %d: the simulated engine supports only n = 1`, *w.N)
	}
	r.MaxTokens = defaultTokens
	switch {
	case w.MaxCompletionTokens != nil:
		r.MaxTokens = *w.MaxCompletionTokens
		if r.MaxTokens < 1 {
			return nil, badf(`field "max_completion_tokens" is %d: must be ≥ 1`, r.MaxTokens)
		}
	case w.MaxTokens != nil:
		r.MaxTokens = *w.MaxTokens
		if r.MaxTokens < 1 {
			return nil, badf(`field "max_tokens" is %d: must be ≥ 1`, r.MaxTokens)
		}
	}
	if w.MinTokens != nil {
		r.MinTokens = *w.MinTokens
		if r.MinTokens < 0 || r.MinTokens > r.MaxTokens {
			return nil, badf(`field "min_tokens" is %d: must be between 0 and the output limit %d`, r.MinTokens, r.MaxTokens)
		}
	}
	if w.IgnoreEOS != nil {
		r.IgnoreEOS = *w.IgnoreEOS
	}
	if w.Stream != nil {
		r.Stream = *w.Stream
	}
	if so := w.StreamOptions; so != nil {
		if !r.Stream {
			return nil, badf(`field "stream_options" is only allowed with "stream": true`)
		}
		r.IncludeUsage = so.IncludeUsage != nil && *so.IncludeUsage
		r.ContinuousUsage = r.IncludeUsage && so.ContinuousUsageStats != nil && *so.ContinuousUsageStats
	}
	return r, nil
}

// contentText returns a message's text: a string, null, or an array of
// parts whose "text" fields are concatenated.
func contentText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("not a valid JSON string: %v", err)
		}
		return s, nil
	case '[':
		var parts []struct {
			Type string  `json:"type"`
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(raw, &parts); err != nil {
			return "", fmt.Errorf(`expected a string or an array of {"type","text"} parts: %v`, err)
		}
		var b []byte
		for _, p := range parts {
			if p.Text != nil {
				b = append(b, *p.Text...)
			}
		}
		return string(b), nil
	}
	return "", fmt.Errorf("expected a string or an array of parts, got %s", kindOf(raw))
}

// promptText returns the completions API's prompt: a string or an array of
// strings (concatenated).
func promptText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", badf(`field "prompt" is required (a string or an array of strings)`)
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", badf(`field "prompt": not a valid JSON string: %v`, err)
		}
		return s, nil
	case '[':
		var ss []string
		if err := json.Unmarshal(raw, &ss); err != nil {
			return "", badf(`field "prompt": expected a string or an array of strings: %v`, err)
		}
		var b []byte
		for _, s := range ss {
			b = append(b, s...)
		}
		return string(b), nil
	}
	return "", badf(`field "prompt": expected a string or an array of strings, got %s`, kindOf(raw))
}

// kindOf names the JSON kind of a raw value for error messages.
func kindOf(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "an object"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}
