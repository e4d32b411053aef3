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
}

// dataset is a parsed dataset file.
type dataset struct {
	format  string // "sharegpt" or "jsonl"
	entries []entry
	skipped int
}

// parseDataset reads a ShareGPT JSON array or JSON lines from data; name is
// used in errors as name:line. needLengths says the dataset must give each
// entry's output length. It never panics on any input.
func parseDataset(name string, data []byte, needLengths bool) (dataset, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	if len(trimmed) == 0 {
		return dataset{}, fmt.Errorf("dataset %s is empty", name)
	}
	var ds dataset
	var err error
	switch trimmed[0] {
	case '[':
		ds, err = parseShareGPT(name, data, needLengths)
	case '{':
		ds, err = parseJSONL(name, data, needLengths)
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

func parseShareGPT(name string, data []byte, needLengths bool) (dataset, error) {
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
			en.maxTokens = max(1, (len(e.Conversations[answer].Value)+3)/4)
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

type jsonlEntry struct {
	Prompt   *string `json:"prompt"`
	Messages []struct {
		Role    *string `json:"role"`
		Content *string `json:"content"`
	} `json:"messages"`
	MaxTokens *int `json:"max_tokens"`
}

func parseJSONL(name string, data []byte, needLengths bool) (dataset, error) {
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
