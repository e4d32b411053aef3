package fake

import (
	"strconv"
	"unicode/utf8"

	"github.com/inferbench/inferbench/fake/sim"
)

// This file is the server's own JSON and SSE encoder (the oracle must not
// share protocol code with the client in engines/). It appends to byte
// slices so a firehose stream allocates little.

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaping as encoding/json
// does (quotes, backslash, control characters, <, >, &, U+2028, U+2029), and
// replacing invalid UTF-8 with U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// stream holds what every chunk of one response repeats.
type stream struct {
	chat    bool
	id      string // "chatcmpl-…" or "cmpl-…"
	created int64
	model   []byte // JSON string
	prompt  int    // prompt tokens
	// roleEvery repeats "role":"assistant" in every delta and sends no
	// role-only chunk (ollama's shape; Options.RoleInEveryDelta).
	roleEvery bool
	// details adds prompt_tokens_details.cached_tokens to every usage
	// object (prefix caching on), cached being the prompt tokens the
	// engine found in its prefix cache.
	details bool
	cached  int
}

// noteCached records the prefix-cache hit of the request's sequence (known
// once its first token is out).
func (st *stream) noteCached(src tokenSource) {
	if seq, ok := src.(*sim.Seq); ok {
		st.cached = seq.CachedTokens()
	}
}

// head appends the fields every chunk opens with.
func (st *stream) head(b []byte) []byte {
	b = append(b, `data: {"id":"`...)
	b = append(b, st.id...)
	if st.chat {
		b = append(b, `","object":"chat.completion.chunk","created":`...)
	} else {
		b = append(b, `","object":"text_completion","created":`...)
	}
	b = strconv.AppendInt(b, st.created, 10)
	b = append(b, `,"model":`...)
	return append(b, st.model...)
}

// usage appends a usage object for completion tokens so far.
func (st *stream) usage(b []byte, completion int) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(st.prompt), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(completion), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(st.prompt+completion), 10)
	if st.details {
		b = append(b, `,"prompt_tokens_details":{"cached_tokens":`...)
		b = strconv.AppendInt(b, int64(st.cached), 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

// tail closes a chunk; usage < 0 means no usage field.
func (st *stream) tail(b []byte, usage int) []byte {
	if usage >= 0 {
		b = append(b, `,"usage":`...)
		b = st.usage(b, usage)
	}
	return append(b, "}\n\n"...)
}

// roleChunk is the chat stream's first event: delta {"role":"assistant","content":""}.
func (st *stream) roleChunk(b []byte, usage int) []byte {
	b = st.head(b)
	b = append(b, `,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]`...)
	return st.tail(b, usage)
}

// textChunk is one content event carrying text.
func (st *stream) textChunk(b []byte, text string, usage int) []byte {
	b = st.head(b)
	if st.chat {
		if st.roleEvery {
			b = append(b, `,"choices":[{"index":0,"delta":{"role":"assistant","content":`...)
		} else {
			b = append(b, `,"choices":[{"index":0,"delta":{"content":`...)
		}
		b = appendJSONString(b, text)
		b = append(b, `},"logprobs":null,"finish_reason":null}]`...)
	} else {
		b = append(b, `,"choices":[{"index":0,"text":`...)
		b = appendJSONString(b, text)
		b = append(b, `,"logprobs":null,"finish_reason":null}]`...)
	}
	return st.tail(b, usage)
}

// finishChunk is the event with an empty delta (or text) and the finish reason.
func (st *stream) finishChunk(b []byte, reason string, usage int) []byte {
	b = st.head(b)
	if st.chat && st.roleEvery {
		b = append(b, `,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":"`...)
	} else if st.chat {
		b = append(b, `,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"`...)
	} else {
		b = append(b, `,"choices":[{"index":0,"text":"","logprobs":null,"finish_reason":"`...)
	}
	b = append(b, reason...)
	b = append(b, `"}]`...)
	return st.tail(b, usage)
}

// usageChunk is the final usage event: choices [] and the totals.
func (st *stream) usageChunk(b []byte, completion int) []byte {
	b = st.head(b)
	b = append(b, `,"choices":[]`...)
	return st.tail(b, completion)
}

// doneEvent ends every successful stream.
const doneEvent = "data: [DONE]\n\n"

// errorEvent appends the injected error object inside a 200 stream, as
// llama-server sends it when the output breaks its parser:
// data: {"error":{"code":500,"message":…,"type":"server_error"}}.
func errorEvent(b []byte) []byte {
	b = append(b, "data: "...)
	b = errorObject(b)
	return append(b, "\n\n"...)
}

// errorObject is llama-server's error body, {"error":{"code":500,…}}.
func errorObject(b []byte) []byte {
	b = append(b, `{"error":{"code":500,"message":`...)
	b = appendJSONString(b, errorEventMessage)
	return append(b, `,"type":"server_error"}}`...)
}

// errorEventMessage is the message of an injected error event.
const errorEventMessage = "simulated failure: the server could not parse the model output"

// malformedEvent is the injected event that is not JSON.
const malformedEvent = "data: {\"id\":\"simulated-malformed-event\",\"choices\":[{\"delta\":\n\n"

// fullResponse is a non-streamed answer.
func (st *stream) fullResponse(b []byte, text, reason string, completion int) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, st.id...)
	if st.chat {
		b = append(b, `","object":"chat.completion","created":`...)
	} else {
		b = append(b, `","object":"text_completion","created":`...)
	}
	b = strconv.AppendInt(b, st.created, 10)
	b = append(b, `,"model":`...)
	b = append(b, st.model...)
	if st.chat {
		b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
		b = appendJSONString(b, text)
		b = append(b, `},"logprobs":null,"finish_reason":"`...)
	} else {
		b = append(b, `,"choices":[{"index":0,"text":`...)
		b = appendJSONString(b, text)
		b = append(b, `,"logprobs":null,"finish_reason":"`...)
	}
	b = append(b, reason...)
	b = append(b, `"}],"usage":`...)
	b = st.usage(b, completion)
	return append(b, "}\n"...)
}
