package workload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/inferbench/inferbench/engines"
)

// entry is one usable dataset record.
type entry struct {
	messages  []engines.Message
	maxTokens int // the dataset's output length (0: none given)
	line      int // where it starts, for messages
	// turns are the conversation's user turns, for a multi-turn workload
	// (nil otherwise); context is what precedes the first user turn
	// (system messages), sent at the start of every turn.
	turns   []turn
	context []engines.Message
}

// turn is one user turn of a dataset conversation and the dataset's answer
// to it (sent in the history only when the engine's own answer failed).
type turn struct {
	user         string
	answer       string
	answerTokens int // the dataset's output length for the turn (0: none)
}

// answerTokens estimates an answer's length in tokens as ⌈bytes/4⌉ (no
// tokenizer; the rule of thumb for English), at least 1.
func answerTokens(s string) int { return max(1, (len(s)+3)/4) }

// dataset is a parsed dataset file.
type dataset struct {
	format  string // "sharegpt" or "jsonl"
	entries []entry
	skipped int
}

// parseDataset reads a ShareGPT JSON array or JSON lines from data; name is
// used in errors as name:line. needLengths says the dataset must give each
// entry's output length. maxTurns > 0 reads conversations: each entry's
// user turns (at most maxTurns) with the dataset's answers. It never
// panics on any input.
func parseDataset(name string, data []byte, needLengths bool, maxTurns int) (dataset, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	if len(trimmed) == 0 {
		return dataset{}, fmt.Errorf("dataset %s is empty", name)
	}
	var ds dataset
	var err error
	switch trimmed[0] {
	case '[':
		ds, err = parseShareGPT(name, data, needLengths, maxTurns)
	case '{':
		ds, err = parseJSONL(name, data, needLengths, maxTurns)
	default:
		return dataset{}, fmt.Errorf("%s:%d: not a ShareGPT JSON array ('[') nor JSON lines ('{')", name, lineAt(data, len(data)-len(trimmed)))
	}
	if err != nil {
		return dataset{}, err
	}
	if len(ds.entries) == 0 {
		return dataset{}, fmt.Errorf("dataset %s has no usable entries (%d skipped)", name, ds.skipped)
	}
	return ds, nil
}

// lineAt is the 1-based line of byte offset off in data.
func lineAt(data []byte, off int) int {
	off = min(max(off, 0), len(data))
	return 1 + bytes.Count(data[:off], []byte{'\n'})
}

type shareGPTEntry struct {
	Conversations []struct {
		From  string `json:"from"`
		Value string `json:"value"`
	} `json:"conversations"`
}

func parseShareGPT(name string, data []byte, needLengths bool, maxTurns int) (dataset, error) {
	ds := dataset{format: "sharegpt"}
	dec := json.NewDecoder(bytes.NewReader(data))
	fail := func(off int64, err error) (dataset, error) {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			off = se.Offset
		case errors.As(err, &te):
			off = te.Offset
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			off = int64(len(data))
			err = errors.New("unexpected end of file")
		}
		return dataset{}, fmt.Errorf("%s:%d: ShareGPT: %w", name, lineAt(data, int(off)), err)
	}
	if _, err := dec.Token(); err != nil { // the '['
		return fail(dec.InputOffset(), err)
	}
	for dec.More() {
		start := int(dec.InputOffset())
		for start < len(data) && strings.IndexByte(" \t\r\n,", data[start]) >= 0 {
			start++
		}
		var e shareGPTEntry
		if err := dec.Decode(&e); err != nil {
			return fail(int64(start), err)
		}
		if maxTurns > 0 {
			en := entry{line: lineAt(data, start), turns: shareGPTTurns(e, needLengths, maxTurns)}
			if len(en.turns) == 0 {
				ds.skipped++
				continue
			}
			en.messages = []engines.Message{{Role: "user", Content: en.turns[0].user}}
			en.maxTokens = en.turns[0].answerTokens
			ds.entries = append(ds.entries, en)
			continue
		}
		prompt, answer := -1, -1
		for i, turn := range e.Conversations {
			if prompt < 0 && (turn.From == "human" || turn.From == "user") {
				prompt = i
			} else if prompt >= 0 {
				if turn.From == "gpt" || turn.From == "assistant" || turn.From == "chatgpt" {
					answer = i
				}
				break
			}
		}
		if prompt < 0 || strings.TrimSpace(e.Conversations[prompt].Value) == "" ||
			(needLengths && (answer < 0 || e.Conversations[answer].Value == "")) {
			ds.skipped++
			continue
		}
		en := entry{
			messages: []engines.Message{{Role: "user", Content: e.Conversations[prompt].Value}},
			line:     lineAt(data, start),
		}
		if answer >= 0 {
			en.maxTokens = answerTokens(e.Conversations[answer].Value)
		}
		ds.entries = append(ds.entries, en)
	}
	if _, err := dec.Token(); err != nil { // the ']'
		return fail(dec.InputOffset(), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return dataset{}, fmt.Errorf("%s:%d: ShareGPT: unexpected data after the array", name, lineAt(data, int(dec.InputOffset())))
	}
	return ds, nil
}

// shareGPTTurns are the human turns of a ShareGPT conversation, each with
// the gpt answer that follows it, up to maxTurns. A conversation is cut at
// the first turn that cannot be used (an empty human turn; in
// dataset-length mode, a human turn without an answer), so every turn's
// history is the dataset's.
func shareGPTTurns(e shareGPTEntry, needLengths bool, maxTurns int) []turn {
	var out []turn
	c := e.Conversations
	for i := 0; i < len(c) && len(out) < maxTurns; i++ {
		if c[i].From != "human" && c[i].From != "user" {
			continue
		}
		if strings.TrimSpace(c[i].Value) == "" {
			break
		}
		t := turn{user: c[i].Value}
		if i+1 < len(c) && (c[i+1].From == "gpt" || c[i+1].From == "assistant" || c[i+1].From == "chatgpt") && c[i+1].Value != "" {
			t.answer, t.answerTokens = c[i+1].Value, answerTokens(c[i+1].Value)
			i++
		} else if needLengths {
			break
		}
		out = append(out, t)
	}
	return out
}

type jsonlEntry struct {
	Prompt   *string `json:"prompt"`
	Messages []struct {
		Role    *string `json:"role"`
		Content *string `json:"content"`
	} `json:"messages"`
	MaxTokens *int `json:"max_tokens"`
}

func parseJSONL(name string, data []byte, needLengths bool, maxTurns int) (dataset, error) {
	ds := dataset{format: "jsonl"}
	for i, raw := range bytes.Split(data, []byte{'\n'}) {
		line := bytes.TrimSpace(raw)
		if i == 0 {
			line = bytes.TrimPrefix(line, []byte("\ufeff"))
		}
		if len(line) == 0 {
			continue
		}
		n := i + 1
		bad := func(format string, a ...any) (dataset, error) {
			return dataset{}, fmt.Errorf("%s:%d: "+format, append([]any{name, n}, a...)...)
		}
		var e jsonlEntry
		dec := json.NewDecoder(bytes.NewReader(line))
		if err := dec.Decode(&e); err != nil {
			return bad("not a JSON object: %v", err)
		}
		if dec.More() {
			return bad("more than one JSON value on the line")
		}
		en := entry{line: n}
		switch {
		case e.Prompt != nil && e.Messages != nil:
			return bad(`has both "prompt" and "messages"; use one`)
		case e.Prompt != nil:
			if strings.TrimSpace(*e.Prompt) == "" {
				return bad(`"prompt" is empty`)
			}
			en.messages = []engines.Message{{Role: "user", Content: *e.Prompt}}
		case len(e.Messages) > 0:
			for j, m := range e.Messages {
				if m.Role == nil || *m.Role == "" {
					return bad(`messages[%d] has no "role"`, j)
				}
				if m.Content == nil {
					return bad(`messages[%d] has no "content" string`, j)
				}
				en.messages = append(en.messages, engines.Message{Role: *m.Role, Content: *m.Content})
			}
		case e.Messages != nil:
			return bad(`"messages" is empty`)
		default:
			return bad(`want {"prompt": "..."} or {"messages": [{"role": ..., "content": ...}]}`)
		}
		if maxTurns > 0 {
			if err := jsonlTurns(&en, e.MaxTokens, needLengths, maxTurns); err != nil {
				return bad("%v", err)
			}
			ds.entries = append(ds.entries, en)
			continue
		}
		if e.MaxTokens != nil {
			if *e.MaxTokens < 1 {
				return bad(`"max_tokens" %d: must be at least 1`, *e.MaxTokens)
			}
			en.maxTokens = *e.MaxTokens
		} else if needLengths {
			return bad(`no "max_tokens", and the spec's OutputTokens is 0: set one of them`)
		}
		ds.entries = append(ds.entries, en)
	}
	return ds, nil
}

// jsonlTurns turns an entry's messages into a conversation: the messages
// before the first user message are its context; each user message is a
// turn and the assistant message right after it, if any, is the dataset's
// answer (its length, ⌈bytes/4⌉, the turn's output length in
// dataset-length mode, else "max_tokens"). At most maxTurns turns are kept.
func jsonlTurns(en *entry, maxTokens *int, needLengths bool, maxTurns int) error {
	if maxTokens != nil && *maxTokens < 1 {
		return fmt.Errorf(`"max_tokens" %d: must be at least 1`, *maxTokens)
	}
	msgs := en.messages
	i := 0
	for i < len(msgs) && msgs[i].Role != "user" {
		i++
	}
	if i == len(msgs) {
		return errors.New(`a conversation needs at least one "user" message`)
	}
	en.context = msgs[:i]
	for ; i < len(msgs) && len(en.turns) < maxTurns; i++ {
		switch msgs[i].Role {
		case "user":
			en.turns = append(en.turns, turn{user: msgs[i].Content})
		case "assistant":
			t := &en.turns[len(en.turns)-1]
			if t.answer != "" || msgs[i-1].Role != "user" {
				return fmt.Errorf("messages[%d]: a second assistant message after one user turn; a conversation alternates user and assistant", i)
			}
			t.answer, t.answerTokens = msgs[i].Content, answerTokens(msgs[i].Content)
		default:
			return fmt.Errorf("messages[%d]: role %q inside a conversation; only user and assistant turns may follow the first user message", i, msgs[i].Role)
		}
	}
	for j := range en.turns {
		t := &en.turns[j]
		if t.answerTokens == 0 && maxTokens != nil {
			t.answerTokens = *maxTokens
		}
		if t.answerTokens == 0 && needLengths {
			return fmt.Errorf(`turn %d has no assistant answer and there is no "max_tokens", and the spec's OutputTokens is 0: set one of them`, j)
		}
	}
	en.messages = append(append([]engines.Message(nil), en.context...), engines.Message{Role: "user", Content: en.turns[0].user})
	en.maxTokens = en.turns[0].answerTokens
	return nil
}
