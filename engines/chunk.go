package engines

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"unicode/utf8"
)

// chunkInfo is what the client needs from one streamed chat-completion
// chunk. It is filled by parseChunk, a validating single-pass scanner that
// allocates nothing on the common path (it never materialises the text).
type chunkInfo struct {
	// output is true when a choice's delta carried a non-empty content,
	// reasoning_content or reasoning string, a non-empty tool_calls list, or
	// (legacy completions) a non-empty text.
	output bool
	// role is true when a delta carried a role.
	role bool
	// choices is the number of entries in "choices" (0 for usage-only chunks).
	choices int
	// finish is the last non-null finish_reason among the choices.
	finish string

	// hasUsage is true when a non-null "usage" object was present.
	hasUsage                       bool
	promptTokens, completionTokens int
	// hasCached is true when usage.prompt_tokens_details.cached_tokens was
	// a number (prefix-cache hits: vLLM, SGLang, OpenAI); cachedTokens is it.
	hasCached    bool
	cachedTokens int

	// hasError is true when the chunk carried an "error" (vLLM reports
	// failures mid-stream this way); errMsg is its message.
	hasError bool
	errMsg   string
}

// errSyntax is wrapped by every parseChunk error.
var errSyntax = errors.New("invalid JSON")

const maxDepth = 256

// The scanner's functions take the text and the index to scan from and
// return the index after what they consumed (on an error, where it was
// found), so that the index stays in a register across the calls.

// parseChunk decodes data into ci. It accepts exactly the JSON text that
// encoding/json accepts (objects only at the top level), ignores unknown
// fields, and matches field names exactly (case-sensitively).
func parseChunk(data []byte, ci *chunkInfo) error {
	*ci = chunkInfo{}
	b := data
	i := ws(b, 0)
	if i >= len(b) || b[i] != '{' {
		return expectErr(b, i, '{')
	}
	i++
	var key []byte
	var more bool
	var err error
	for n := 0; ; n++ {
		if i, key, more, err = member(b, i, n); err != nil {
			return err
		}
		if !more {
			break
		}
		switch string(key) {
		case "choices":
			i, err = choices(b, i, ci)
		case "usage":
			i, err = usage(b, i, ci)
		case "error":
			i, err = errorField(b, i, ci)
		default:
			i, err = skip(b, i, 0)
		}
		if err != nil {
			return err
		}
	}
	if i = ws(b, i); i != len(b) {
		return synErr(i, "data after the top-level object")
	}
	return nil
}

// synErr is a syntax error at byte i.
func synErr(i int, what string) error {
	return fmt.Errorf("%w at byte %d: %s", errSyntax, i, what)
}

// expectErr is the error where c was wanted at byte i.
func expectErr(b []byte, i int, c byte) error {
	if i >= len(b) {
		return synErr(i, "unexpected end")
	}
	return synErr(i, fmt.Sprintf("want %q", c))
}

// ws skips whitespace.
func ws(b []byte, i int) int {
	if i < len(b) && b[i] > ' ' {
		return i // compact JSON: the common case, and inlined
	}
	return wsSlow(b, i)
}

func wsSlow(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// member advances to the next member of an object whose '{' was consumed
// and of which n members were read: it returns the index of the member's
// value and its key (raw, still escaped), or more=false after the closing
// brace.
func member(b []byte, i, n int) (int, []byte, bool, error) {
	i = ws(b, i)
	if i >= len(b) {
		return i, nil, false, synErr(i, "unexpected end in object")
	}
	if b[i] == '}' {
		return i + 1, nil, false, nil
	}
	if n > 0 {
		if b[i] != ',' {
			return i, nil, false, expectErr(b, i, ',')
		}
		i = ws(b, i+1)
	}
	start := i + 1
	i, err := str(b, i)
	if err != nil {
		return i, nil, false, err
	}
	key := b[start : i-1]
	if i = ws(b, i); i >= len(b) || b[i] != ':' {
		return i, nil, false, expectErr(b, i, ':')
	}
	return ws(b, i+1), key, true, nil
}

// elem advances to the next element of an array whose '[' was consumed
// and of which n elements were read, or returns more=false after the
// closing bracket.
func elem(b []byte, i, n int) (int, bool, error) {
	i = ws(b, i)
	if i >= len(b) {
		return i, false, synErr(i, "unexpected end in array")
	}
	if b[i] == ']' {
		return i + 1, false, nil
	}
	if n > 0 {
		if b[i] != ',' {
			return i, false, expectErr(b, i, ',')
		}
		i = ws(b, i+1)
	}
	return i, true, nil
}

// str consumes the string at b[i]; its raw (still escaped) contents are
// b[i+1 : end-1].
func str(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return i, expectErr(b, i, '"')
	}
	i++
	for {
		// Plain bytes in bulk, eight at a time (the common case is a
		// run of them up to the closing quote), then one at a time.
		for i+8 <= len(b) {
			if m := special8(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(b) && plainStr[b[i]] {
			i++
		}
		if i == len(b) {
			return i, synErr(i, "unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			i++
			if i >= len(b) {
				return i, synErr(i, "unexpected end in string escape")
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for k := 0; k < 4; k++ {
					if i >= len(b) || !isHex(b[i]) {
						return i, synErr(i, "bad \\u escape")
					}
					i++
				}
			default:
				return i, synErr(i, "bad escape")
			}
		default: // c < 0x20
			return i, synErr(i, "control character in string")
		}
	}
}

// special8 flags, in the top bit of each byte, the bytes of w (eight
// bytes, the first in the low bits) that end a string's plain run: a
// quote, a backslash or a control character (< 0x20). Only its lowest
// flag is exact (a borrow can flag bytes above a flagged one), which is
// the one str uses: the classic SWAR zero-byte test, one word at a time.
func special8(w uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q := w ^ (lo * '"')
	bs := w ^ (lo * '\\')
	return ((q-lo)&^q | (bs-lo)&^bs | (w-lo*0x20)&^w) & hi
}

// plainStr marks the bytes a JSON string holds as they are: everything
// but the quote, the backslash and control characters.
var plainStr = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number consumes the JSON number at b[i].
func number(b []byte, i int) (int, error) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return i, synErr(i, "bad number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return i, synErr(i, "bad fraction")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, synErr(i, "bad exponent")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, nil
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, synErr(i, "bad literal")
	}
	return i + len(lit), nil
}

// isNull consumes a null if one comes next.
func isNull(b []byte, i int) (int, bool, error) {
	if i < len(b) && b[i] == 'n' {
		i, err := literal(b, i, "null")
		return i, true, err
	}
	return i, false, nil
}

// skip consumes any value.
func skip(b []byte, i, depth int) (int, error) {
	if depth > maxDepth {
		return i, synErr(i, "nested too deeply")
	}
	if i >= len(b) {
		return i, synErr(i, "unexpected end, want a value")
	}
	var more bool
	var err error
	switch c := b[i]; {
	case c == '"':
		return str(b, i)
	case c == '{':
		i++
		for n := 0; ; n++ {
			if i, _, more, err = member(b, i, n); err != nil || !more {
				return i, err
			}
			if i, err = skip(b, i, depth+1); err != nil {
				return i, err
			}
		}
	case c == '[':
		i++
		for n := 0; ; n++ {
			if i, more, err = elem(b, i, n); err != nil || !more {
				return i, err
			}
			if i, err = skip(b, i, depth+1); err != nil {
				return i, err
			}
		}
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	default:
		return number(b, i)
	}
}

// skipNonEmpty consumes a value and reports whether it is a non-empty
// string or a non-empty array (an output-bearing delta field).
func skipNonEmpty(b []byte, i int) (int, bool, error) {
	if i < len(b) && b[i] == '"' {
		end, err := str(b, i)
		return end, err == nil && end-i > 2, err
	}
	if i < len(b) && b[i] == '[' {
		end, err := skip(b, i, 1)
		if err != nil {
			return end, false, err
		}
		for _, c := range b[i+1 : end-1] {
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				return end, true, nil
			}
		}
		return end, false, nil
	}
	end, err := skip(b, i, 1)
	return end, false, err
}

func choices(b []byte, i int, ci *chunkInfo) (int, error) {
	i, null, err := isNull(b, i)
	if null || err != nil {
		return i, err
	}
	if i >= len(b) || b[i] != '[' {
		return i, expectErr(b, i, '[')
	}
	i++
	var more bool
	for n := 0; ; n++ {
		if i, more, err = elem(b, i, n); err != nil {
			return i, err
		}
		if !more {
			ci.choices = n
			return i, nil
		}
		if i, err = choice(b, i, ci); err != nil {
			return i, err
		}
	}
}

func choice(b []byte, i int, ci *chunkInfo) (int, error) {
	if i >= len(b) || b[i] != '{' {
		return skip(b, i, 1)
	}
	i++
	var key []byte
	var more, null bool
	var err error
	for n := 0; ; n++ {
		if i, key, more, err = member(b, i, n); err != nil || !more {
			return i, err
		}
		switch string(key) {
		case "delta", "message":
			i, err = delta(b, i, ci)
		case "text":
			var out bool
			i, out, err = skipNonEmpty(b, i)
			ci.output = ci.output || out
		case "finish_reason":
			if i, null, err = isNull(b, i); !null && err == nil {
				if i < len(b) && b[i] == '"' {
					start := i + 1
					if i, err = str(b, i); err == nil {
						ci.finish = finishString(b[start : i-1])
					}
				} else {
					i, err = skip(b, i, 2)
				}
			}
		default:
			i, err = skip(b, i, 2)
		}
		if err != nil {
			return i, err
		}
	}
}

func delta(b []byte, i int, ci *chunkInfo) (int, error) {
	if i >= len(b) || b[i] != '{' {
		return skip(b, i, 2)
	}
	i++
	var key []byte
	var more, null bool
	var err error
	for n := 0; ; n++ {
		if i, key, more, err = member(b, i, n); err != nil || !more {
			return i, err
		}
		switch string(key) {
		case "content", "reasoning_content", "reasoning", "tool_calls":
			var out bool
			i, out, err = skipNonEmpty(b, i)
			ci.output = ci.output || out
		case "role":
			if i, null, err = isNull(b, i); !null && err == nil {
				ci.role = true
				i, err = skip(b, i, 3)
			}
		default:
			i, err = skip(b, i, 3)
		}
		if err != nil {
			return i, err
		}
	}
}

func usage(b []byte, i int, ci *chunkInfo) (int, error) {
	i, null, err := isNull(b, i)
	if null || err != nil {
		return i, err
	}
	if i >= len(b) || b[i] != '{' {
		return i, synErr(i, "usage is not an object")
	}
	i++
	ci.hasUsage = true
	var key []byte
	var more bool
	for n := 0; ; n++ {
		if i, key, more, err = member(b, i, n); err != nil || !more {
			return i, err
		}
		switch string(key) {
		case "prompt_tokens":
			i, ci.promptTokens, err = count(b, i)
		case "completion_tokens":
			i, ci.completionTokens, err = count(b, i)
		case "prompt_tokens_details":
			i, err = promptDetails(b, i, ci)
		default:
			i, err = skip(b, i, 2)
		}
		if err != nil {
			return i, err
		}
	}
}

// promptDetails reads usage.prompt_tokens_details; only cached_tokens
// matters. A details value that is not an object is ignored (it is
// optional and engine-specific); a cached_tokens that is not a
// non-negative integer is malformed, like every other count.
func promptDetails(b []byte, i int, ci *chunkInfo) (int, error) {
	if i >= len(b) || b[i] != '{' {
		return skip(b, i, 2)
	}
	i++
	var key []byte
	var more, null bool
	var err error
	for n := 0; ; n++ {
		if i, key, more, err = member(b, i, n); err != nil || !more {
			return i, err
		}
		if string(key) == "cached_tokens" {
			if i, null, err = isNull(b, i); !null && err == nil {
				i, ci.cachedTokens, err = count(b, i)
				ci.hasCached = err == nil
			}
		} else {
			i, err = skip(b, i, 3)
		}
		if err != nil {
			return i, err
		}
	}
}

// count consumes a non-negative integer token count (null counts as 0).
func count(b []byte, i int) (int, int, error) {
	i, null, err := isNull(b, i)
	if null || err != nil {
		return i, 0, err
	}
	start := i
	if i, err = number(b, i); err != nil {
		return i, 0, err
	}
	num := b[start:i]
	v := 0
	for _, c := range num {
		if !isDigit(c) {
			return i, 0, synErr(i, fmt.Sprintf("token count %s is not a non-negative integer", num))
		}
		v = v*10 + int(c-'0')
		if v > 1<<40 {
			return i, 0, synErr(i, fmt.Sprintf("token count %s is out of range", num))
		}
	}
	return i, v, nil
}

func errorField(b []byte, i int, ci *chunkInfo) (int, error) {
	i, null, err := isNull(b, i)
	if null || err != nil {
		return i, err
	}
	ci.hasError = true
	start := i
	if i, err = skip(b, i, 1); err != nil {
		return i, err
	}
	ci.errMsg = errorMessage(b[start:i])
	return i, nil
}

// errorMessage extracts a human message from an error value: a string, or
// an object's "message" (or "detail"), falling back to the raw JSON.
func errorMessage(raw []byte) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	switch t := v.(type) {
	case string:
		return t
	case map[string]any:
		for _, k := range []string{"message", "detail", "error"} {
			switch m := t[k].(type) {
			case string:
				if m != "" {
					return m
				}
			case map[string]any, []any:
				b, _ := json.Marshal(m)
				return errorMessage(b)
			}
		}
	}
	return string(raw)
}

// finishString returns the finish reason without allocating for the usual
// values; escaped values are decoded.
func finishString(raw []byte) string {
	switch string(raw) {
	case "stop":
		return "stop"
	case "length":
		return "length"
	case "tool_calls":
		return "tool_calls"
	case "content_filter":
		return "content_filter"
	case "abort":
		return "abort"
	}
	// Escapes are decoded and invalid UTF-8 becomes U+FFFD, as
	// encoding/json does, so the reason is the same text JSON would give.
	if bytes.IndexByte(raw, '\\') >= 0 || !utf8.Valid(raw) {
		var out string
		q := make([]byte, 0, len(raw)+2)
		q = append(append(append(q, '"'), raw...), '"')
		if json.Unmarshal(q, &out) == nil {
			return out
		}
	}
	return string(raw)
}
