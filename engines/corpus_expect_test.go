package engines

// An independent reading of a transcript (testdata/streams): what the
// client must record for it, worked out from the bytes and their arrival
// times by the rules the package doc states, with none of the client's
// code: its own HTTP head and chunked-body parser, SSE splitter and
// encoding/json. The corpus tests hold both transports to it.

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/transcript"
)

// expected is what the record of a transcript must say.
type expected struct {
	Status       int // 0: no complete head
	Error        record.ErrorKind
	FinishReason string
	Chunks       []record.Chunk // At and Tokens
	OutputTokens int
	TokenSource  record.TokenSource
	EOSCounted   bool
	PromptTokens int
	CachedTokens int
	Cached       bool // the server reported cached tokens
	Headers      time.Duration

	// What the conformance probe must find.
	RoleFirst   bool // a role-bearing event without output before the first output chunk
	OutputRoles int  // output chunks whose delta also carried the role
	UsageEvents int  // events carrying usage
	Continuous  bool // every output chunk carried usage
	SawDone     bool
	ServerError bool // an error event inside the stream
}

// timedBytes is a byte string with each byte's arrival time.
type timedBytes struct {
	b  []byte
	at []time.Duration
}

func (t *timedBytes) add(b []byte, at time.Duration) {
	t.b = append(t.b, b...)
	for range b {
		t.at = append(t.at, at)
	}
}

// expect reads tr by the documented rules; maxTokens is the request's
// fixed length (0: none checked).
func expect(tr *transcript.Transcript) expected {
	var all timedBytes
	for _, r := range tr.Reads {
		all.add(r.Data, r.At)
	}
	var e expected
	// The head: the status line and headers, up to the blank line.
	end := bytes.Index(all.b, []byte("\r\n\r\n"))
	if end < 0 {
		e.Error = record.Connect // the connection ended inside the head
		if tr.End == transcript.Open {
			e.Error = record.Timeout
		}
		return e
	}
	head := string(all.b[:end])
	e.Headers = all.at[end+3]
	lines := strings.Split(head, "\r\n")
	fields := strings.Fields(lines[0])
	if len(fields) < 2 {
		e.Error = record.Connect
		return e
	}
	e.Status, _ = strconv.Atoi(fields[1])
	hdr := map[string]string{}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		hdr[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	rest := timedBytes{b: all.b[end+4:], at: all.at[end+4:]}

	// The body: chunked, or Content-Length, or until the connection ends.
	var body timedBytes
	complete := false
	switch {
	case strings.EqualFold(hdr["transfer-encoding"], "chunked"):
		body, complete = dechunk(rest)
	case hdr["content-length"] != "":
		n, _ := strconv.Atoi(hdr["content-length"])
		n = min(n, len(rest.b))
		body = timedBytes{b: rest.b[:n], at: rest.at[:n]}
		complete = true
	default:
		body, complete = rest, tr.End != transcript.Open
	}
	if e.Status < 200 || e.Status > 299 {
		e.Error = record.HTTPStatus
		return e
	}
	if strings.HasPrefix(strings.ToLower(hdr["content-type"]), "application/json") {
		e.Error = record.Malformed
		return e
	}

	// The events: data lines joined, ended by a blank line.
	var data []string
	var events []struct {
		data string
		at   time.Duration
	}
	lineStart := 0
	for i := 0; i < len(body.b); i++ {
		if body.b[i] != '\n' {
			continue
		}
		l := strings.TrimSuffix(string(body.b[lineStart:i]), "\r")
		lineStart = i + 1
		switch {
		case l == "":
			if data != nil {
				events = append(events, struct {
					data string
					at   time.Duration
				}{strings.Join(data, "\n"), body.at[i]})
				data = nil
			}
		case strings.HasPrefix(l, ":"):
		case strings.HasPrefix(l, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(l, "data:"), " "))
		}
	}

	finished, over := false, false
	usageOnAll, haveUsage := true, false
	completion, lastCompletion, pending, trailing := 0, 0, 0, 0
	for _, ev := range events {
		if ev.data == "[DONE]" {
			e.SawDone, over = true, true
			break
		}
		var obj map[string]any
		d := json.NewDecoder(strings.NewReader(ev.data))
		d.UseNumber()
		if err := d.Decode(&obj); err != nil {
			e.Error, over = record.Malformed, true
			break
		}
		if v, ok := obj["error"]; ok && v != nil {
			e.Error, e.ServerError, over = record.ServerError, true, true
			break
		}
		output, role := false, false
		var finish string
		if choices, _ := obj["choices"].([]any); len(choices) > 0 {
			c0, _ := choices[0].(map[string]any)
			if delta, ok := c0["delta"].(map[string]any); ok {
				role = delta["role"] != nil
				for _, k := range []string{"content", "reasoning_content", "reasoning"} {
					if s, _ := delta[k].(string); s != "" {
						output = true
					}
				}
				if tc, _ := delta["tool_calls"].([]any); len(tc) > 0 {
					output = true
				}
			}
			if s, _ := c0["text"].(string); s != "" {
				output = true
			}
			finish, _ = c0["finish_reason"].(string)
		}
		usage, hasUsage := obj["usage"].(map[string]any)
		if output {
			if trailing > 0 {
				e.Chunks[len(e.Chunks)-1].Tokens += trailing
				trailing = 0
			}
			e.Chunks = append(e.Chunks, record.Chunk{At: ev.at})
			if !hasUsage {
				usageOnAll = false
			}
			if role {
				e.OutputRoles++
			}
		} else if role && len(e.Chunks) == 0 && !e.RoleFirst {
			e.RoleFirst = true
		}
		if hasUsage {
			e.UsageEvents++
			haveUsage = true
			completion = num(usage["completion_tokens"])
			e.PromptTokens = num(usage["prompt_tokens"])
			if det, ok := usage["prompt_tokens_details"].(map[string]any); ok {
				if _, ok := det["cached_tokens"]; ok {
					e.CachedTokens, e.Cached = num(det["cached_tokens"]), true
				}
			}
			delta := completion - lastCompletion
			lastCompletion = completion
			if delta < 0 {
				usageOnAll, delta = false, 0
			}
			switch {
			case output:
				e.Chunks[len(e.Chunks)-1].Tokens = delta + pending
				pending = 0
			case len(e.Chunks) > 0:
				trailing += delta
			default:
				pending += delta
			}
		}
		if finish != "" {
			e.FinishReason, finished = finish, true
		}
	}
	if !over && e.Error == record.OK {
		switch {
		case !complete && tr.End == transcript.Open:
			e.Error = record.Timeout // the server stalled: the request's deadline ends it
		case !complete:
			e.Error = record.StreamCut // the connection ended inside the body
		case !finished:
			e.Error = record.StreamCut // a clean end without [DONE] or a finish_reason
		}
	}

	// Tokens (package doc, "Token accounting").
	n := len(e.Chunks)
	stop := e.FinishReason == "stop" && n > 0
	switch {
	case haveUsage && usageOnAll && n > 0:
		e.TokenSource, e.OutputTokens, e.Continuous = record.Continuous, completion, true
		if stop && trailing == 1 {
			e.EOSCounted = true
		} else {
			e.Chunks[n-1].Tokens += trailing
		}
	case haveUsage:
		e.TokenSource, e.OutputTokens = record.Usage, completion
		switch {
		case stop && completion == n+1:
			e.EOSCounted = true
			for i := range e.Chunks {
				e.Chunks[i].Tokens = 1
			}
		case n > 0 && completion >= n:
			for i := range e.Chunks {
				e.Chunks[i].Tokens = completion / n
				if i < completion%n {
					e.Chunks[i].Tokens++
				}
			}
		default:
			for i := range e.Chunks {
				e.Chunks[i].Tokens = 1
			}
		}
	case n > 0:
		e.TokenSource, e.OutputTokens = record.ChunkCount, n
		for i := range e.Chunks {
			e.Chunks[i].Tokens = 1
		}
	}
	if e.Error == record.OK && n == 0 {
		e.Error = record.EmptyOutput
	}
	return e
}

// dechunk undoes chunked framing; complete is false when the body ends
// before its last chunk.
func dechunk(in timedBytes) (out timedBytes, complete bool) {
	b := in.b
	pos := 0
	for {
		nl := bytes.Index(b[pos:], []byte("\r\n"))
		if nl < 0 {
			return out, false
		}
		sizeField, _, _ := strings.Cut(string(b[pos:pos+nl]), ";")
		size, err := strconv.ParseInt(strings.TrimSpace(sizeField), 16, 64)
		if err != nil {
			return out, false
		}
		pos += nl + 2
		if size == 0 {
			return out, bytes.HasPrefix(b[pos:], []byte("\r\n"))
		}
		if pos+int(size)+2 > len(b) {
			out.b = append(out.b, b[pos:min(len(b), pos+int(size))]...)
			out.at = append(out.at, in.at[pos:min(len(b), pos+int(size))]...)
			return out, false
		}
		out.b = append(out.b, b[pos:pos+int(size)]...)
		out.at = append(out.at, in.at[pos:pos+int(size)]...)
		pos += int(size) + 2
	}
}

func num(v any) int {
	if n, ok := v.(json.Number); ok {
		i, _ := n.Int64()
		return int(i)
	}
	return 0
}
