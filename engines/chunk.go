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

// parseChunk decodes data into ci. It accepts exactly the JSON text that
// encoding/json accepts (objects only at the top level), ignores unknown
// fields, and matches field names exactly (case-sensitively).
func parseChunk(data []byte, ci *chunkInfo) error {
	*ci = chunkInfo{}
	s := scanner{b: data}
	s.ws()
	if err := s.expect('{'); err != nil {
		return err
	}
	n := 0
	for {
		key, ok, err := s.nextKey(&n, '}')
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "choices":
			err = s.choices(ci)
		case "usage":
			err = s.usage(ci)
		case "error":
			err = s.errorField(ci)
		default:
			err = s.skip(0)
		}
		if err != nil {
			return err
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return s.fail("data after the top-level object")
	}
	return nil
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) fail(what string) error {
	return fmt.Errorf("%w at byte %d: %s", errSyntax, s.i, what)
}

func (s *scanner) ws() {
	if s.i < len(s.b) && s.b[s.i] > ' ' {
		return // compact JSON: the common case, and inlined
	}
	s.wsSlow()
}

func (s *scanner) wsSlow() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) expect(c byte) error {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return nil
	}
	return s.expectFail(c)
}

// expectFail is expect's error, out of line so that expect inlines.
func (s *scanner) expectFail(c byte) error {
	if s.i >= len(s.b) {
		return s.fail("unexpected end")
	}
	return s.fail(fmt.Sprintf("want %q", c))
}

// nextKey advances to the next member of an object whose '{' was consumed;
// *n counts the members seen. It returns ok=false after the closing brace.
func (s *scanner) nextKey(n *int, closer byte) (key []byte, ok bool, err error) {
	s.ws()
	if s.i >= len(s.b) {
		return nil, false, s.fail("unexpected end in object")
	}
	if s.b[s.i] == closer {
		s.i++
		return nil, false, nil
	}
	if *n > 0 {
		if err := s.expect(','); err != nil {
			return nil, false, err
		}
		s.ws()
	}
	*n++
	if key, err = s.str(); err != nil {
		return nil, false, err
	}
	s.ws()
	if err := s.expect(':'); err != nil {
		return nil, false, err
	}
	s.ws()
	return key, true, nil
}

// nextElem advances to the next element of an array whose '[' was consumed.
func (s *scanner) nextElem(n *int) (ok bool, err error) {
	s.ws()
	if s.i >= len(s.b) {
		return false, s.fail("unexpected end in array")
	}
	if s.b[s.i] == ']' {
		s.i++
		return false, nil
	}
	if *n > 0 {
		if err := s.expect(','); err != nil {
			return false, err
		}
		s.ws()
	}
	*n++
	return true, nil
}

// str consumes a string and returns its raw (still escaped) contents.
func (s *scanner) str() ([]byte, error) {
	if err := s.expect('"'); err != nil {
		return nil, err
	}
	b, i := s.b, s.i // locals, so that the loops run in registers
	start := i
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
			s.i = i
			return nil, s.fail("unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return b[start:i], nil
		case c == '\\':
			i++
			if i >= len(b) {
				s.i = i
				return nil, s.fail("unexpected end in string escape")
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for k := 0; k < 4; k++ {
					if i >= len(b) || !isHex(b[i]) {
						s.i = i
						return nil, s.fail("bad \\u escape")
					}
					i++
				}
			default:
				s.i = i
				return nil, s.fail("bad escape")
			}
		default: // c < 0x20
			s.i = i
			return nil, s.fail("control character in string")
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

// number consumes a JSON number and returns its text.
func (s *scanner) number() ([]byte, error) {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		for s.i < len(s.b) && isDigit(s.b[s.i]) {
			s.i++
		}
	default:
		return nil, s.fail("bad number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.i >= len(s.b) || !isDigit(s.b[s.i]) {
			return nil, s.fail("bad fraction")
		}
		for s.i < len(s.b) && isDigit(s.b[s.i]) {
			s.i++
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.i >= len(s.b) || !isDigit(s.b[s.i]) {
			return nil, s.fail("bad exponent")
		}
		for s.i < len(s.b) && isDigit(s.b[s.i]) {
			s.i++
		}
	}
	return s.b[start:s.i], nil
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.fail("bad literal")
	}
	s.i += len(lit)
	return nil
}

// isNull consumes a null if one comes next.
func (s *scanner) isNull() (bool, error) {
	if s.i < len(s.b) && s.b[s.i] == 'n' {
		return true, s.literal("null")
	}
	return false, nil
}

// skip consumes any value.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return s.fail("nested too deeply")
	}
	if s.i >= len(s.b) {
		return s.fail("unexpected end, want a value")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, err := s.str()
		return err
	case c == '{':
		s.i++
		n := 0
		for {
			_, ok, err := s.nextKey(&n, '}')
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
		}
	case c == '[':
		s.i++
		n := 0
		for {
			ok, err := s.nextElem(&n)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		_, err := s.number()
		return err
	}
}

// skipNonEmpty consumes a value and reports whether it is a non-empty
// string or a non-empty array (an output-bearing delta field).
func (s *scanner) skipNonEmpty() (bool, error) {
	if s.i < len(s.b) && s.b[s.i] == '"' {
		raw, err := s.str()
		return len(raw) > 0, err
	}
	if s.i < len(s.b) && s.b[s.i] == '[' {
		start := s.i
		if err := s.skip(1); err != nil {
			return false, err
		}
		inner := s.b[start+1 : s.i-1]
		for _, c := range inner {
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				return true, nil
			}
		}
		return false, nil
	}
	return false, s.skip(1)
}

func (s *scanner) choices(ci *chunkInfo) error {
	if null, err := s.isNull(); null || err != nil {
		return err
	}
	if err := s.expect('['); err != nil {
		return err
	}
	n := 0
	for {
		ok, err := s.nextElem(&n)
		if err != nil {
			return err
		}
		if !ok {
			ci.choices = n
			return nil
		}
		if err := s.choice(ci); err != nil {
			return err
		}
	}
}

func (s *scanner) choice(ci *chunkInfo) error {
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return s.skip(1)
	}
	s.i++
	n := 0
	for {
		key, ok, err := s.nextKey(&n, '}')
		if err != nil || !ok {
			return err
		}
		switch string(key) {
		case "delta", "message":
			err = s.delta(ci)
		case "text":
			var out bool
			out, err = s.skipNonEmpty()
			ci.output = ci.output || out
		case "finish_reason":
			var null bool
			if null, err = s.isNull(); !null && err == nil {
				if s.i < len(s.b) && s.b[s.i] == '"' {
					var raw []byte
					if raw, err = s.str(); err == nil {
						ci.finish = finishString(raw)
					}
				} else {
					err = s.skip(2)
				}
			}
		default:
			err = s.skip(2)
		}
		if err != nil {
			return err
		}
	}
}

func (s *scanner) delta(ci *chunkInfo) error {
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return s.skip(2)
	}
	s.i++
	n := 0
	for {
		key, ok, err := s.nextKey(&n, '}')
		if err != nil || !ok {
			return err
		}
		switch string(key) {
		case "content", "reasoning_content", "reasoning", "tool_calls":
			var out bool
			out, err = s.skipNonEmpty()
			ci.output = ci.output || out
		case "role":
			var null bool
			if null, err = s.isNull(); !null && err == nil {
				ci.role = true
				err = s.skip(3)
			}
		default:
			err = s.skip(3)
		}
		if err != nil {
			return err
		}
	}
}

func (s *scanner) usage(ci *chunkInfo) error {
	if null, err := s.isNull(); null || err != nil {
		return err
	}
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return s.fail("usage is not an object")
	}
	s.i++
	ci.hasUsage = true
	n := 0
	for {
		key, ok, err := s.nextKey(&n, '}')
		if err != nil || !ok {
			return err
		}
		switch string(key) {
		case "prompt_tokens":
			ci.promptTokens, err = s.count()
		case "completion_tokens":
			ci.completionTokens, err = s.count()
		case "prompt_tokens_details":
			err = s.promptDetails(ci)
		default:
			err = s.skip(2)
		}
		if err != nil {
			return err
		}
	}
}

// promptDetails reads usage.prompt_tokens_details; only cached_tokens
// matters. A details value that is not an object is ignored (it is
// optional and engine-specific); a cached_tokens that is not a
// non-negative integer is malformed, like every other count.
func (s *scanner) promptDetails(ci *chunkInfo) error {
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return s.skip(2)
	}
	s.i++
	n := 0
	for {
		key, ok, err := s.nextKey(&n, '}')
		if err != nil || !ok {
			return err
		}
		if string(key) == "cached_tokens" {
			var null bool
			if null, err = s.isNull(); !null && err == nil {
				ci.cachedTokens, err = s.count()
				ci.hasCached = err == nil
			}
		} else {
			err = s.skip(3)
		}
		if err != nil {
			return err
		}
	}
}

// count consumes a non-negative integer token count (null counts as 0).
func (s *scanner) count() (int, error) {
	if null, err := s.isNull(); null || err != nil {
		return 0, err
	}
	num, err := s.number()
	if err != nil {
		return 0, err
	}
	v := 0
	for _, c := range num {
		if !isDigit(c) {
			return 0, s.fail(fmt.Sprintf("token count %s is not a non-negative integer", num))
		}
		v = v*10 + int(c-'0')
		if v > 1<<40 {
			return 0, s.fail(fmt.Sprintf("token count %s is out of range", num))
		}
	}
	return v, nil
}

func (s *scanner) errorField(ci *chunkInfo) error {
	if null, err := s.isNull(); null || err != nil {
		return err
	}
	ci.hasError = true
	start := s.i
	if err := s.skip(1); err != nil {
		return err
	}
	ci.errMsg = errorMessage(s.b[start:s.i])
	return nil
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
