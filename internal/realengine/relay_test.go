//go:build realengine

package realengine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// relay is an OpenAI chat-completions endpoint in front of ollama's native
// /api/chat, so that ollama's own accounting of a request (eval_count,
// eval_duration, prompt_eval_count, prompt_eval_duration) is known for the
// very request the suite measured. ollama's /v1/chat/completions drops
// those figures, and its time per token moves by tens of percent from one
// request to the next on a shared machine (3.3–15.4 ms in one minute, the
// 28M-parameter model of .ci/real-engine, load average 0.6), so comparing
// the suite's requests with others sent before or after compares two
// moments of the engine, not two clocks. Both endpoints go through the same
// chat handler and runner.
//
// The relay writes each native chunk as one SSE event and flushes it at
// once: it adds a roughly constant delay to every event, which cancels in
// TPOT (a difference of event times). It is written here, from ollama's
// documented NDJSON stream and the OpenAI wire format, and shares no code
// with the suite's client. Requests that are not streaming chat
// completions go to ollama unchanged.
type relay struct {
	srv      *httptest.Server
	upstream string

	mu      sync.Mutex
	entries []relayEntry
}

// relayEntry is ollama's accounting of one streamed request, with the
// relay's own view of its timing.
type relayEntry struct {
	Received           time.Time // wall clock, when the request reached the relay
	PromptEvalCount    int
	PromptEvalDuration time.Duration
	EvalCount          int
	EvalDuration       time.Duration
	DoneReason         string
	// Chunks is the content-bearing native chunks; First and Last are when
	// the first and the last of them arrived at the relay.
	Chunks      int
	First, Last time.Time
	Err         error
}

// ServerTPOT is ollama's time per output token after the first:
// eval_duration spans tokens 2..eval_count (ollamarunner: lastUpdatedAt −
// startedAt, where startedAt is reset when the first token is sampled,
// minus the time spent sampling), so it is divided by eval_count − 1.
func (e relayEntry) ServerTPOT() time.Duration {
	if e.EvalCount < 2 {
		return 0
	}
	return e.EvalDuration / time.Duration(e.EvalCount-1)
}

// RelayTPOT is the same span measured at the relay from the native chunks.
func (e relayEntry) RelayTPOT() time.Duration {
	if e.Chunks < 2 {
		return 0
	}
	return e.Last.Sub(e.First) / time.Duration(e.Chunks-1)
}

func newRelay(t *testing.T, upstream string) *relay {
	t.Helper()
	u, err := url.Parse(upstream)
	require.NoError(t, err)
	r := &relay{upstream: upstream}
	proxy := httputil.NewSingleHostReverseProxy(u)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var in struct {
			Model       string            `json:"model"`
			Messages    []json.RawMessage `json:"messages"`
			Stream      bool              `json:"stream"`
			MaxTokens   int               `json:"max_tokens"`
			Temperature *float64          `json:"temperature"`
		}
		if err := json.Unmarshal(body, &in); err != nil || !in.Stream {
			req.Body = io.NopCloser(bytes.NewReader(body))
			proxy.ServeHTTP(w, req)
			return
		}
		r.stream(w, req, in.Model, in.Messages, in.MaxTokens, in.Temperature)
	})
	mux.Handle("/", proxy)
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *relay) URL() string { return r.srv.URL }

func (r *relay) Entries() []relayEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]relayEntry(nil), r.entries...)
}

func (r *relay) stream(w http.ResponseWriter, req *http.Request, model string, messages []json.RawMessage, maxTokens int, temperature *float64) {
	e := relayEntry{Received: time.Now()}
	defer func() {
		r.mu.Lock()
		r.entries = append(r.entries, e)
		r.mu.Unlock()
	}()
	opts := map[string]any{}
	if maxTokens > 0 {
		opts["num_predict"] = maxTokens
	}
	if temperature != nil {
		opts["temperature"] = *temperature
	}
	native, err := json.Marshal(map[string]any{"model": model, "messages": messages, "stream": true, "options": opts})
	if err != nil {
		e.Err = err
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	up, err := http.NewRequestWithContext(req.Context(), http.MethodPost, r.upstream+"/api/chat", bytes.NewReader(native))
	if err != nil {
		e.Err = err
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	up.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(up)
	if err != nil {
		e.Err = err
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		e.Err = fmt.Errorf("ollama /api/chat: %s: %s", resp.Status, msg)
		http.Error(w, string(msg), resp.StatusCode)
		return
	}
	flusher := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	id := fmt.Sprintf("relay-%d", e.Received.UnixNano())
	event := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		flusher.Flush()
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	event(chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
			Done               bool   `json:"done"`
			DoneReason         string `json:"done_reason"`
			Error              string `json:"error"`
			PromptEvalCount    int    `json:"prompt_eval_count"`
			PromptEvalDuration int64  `json:"prompt_eval_duration"`
			EvalCount          int    `json:"eval_count"`
			EvalDuration       int64  `json:"eval_duration"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			e.Err = fmt.Errorf("ollama /api/chat line %q: %w", sc.Bytes(), err)
			break
		}
		if line.Error != "" {
			e.Err = fmt.Errorf("ollama /api/chat: %s", line.Error)
			event(map[string]any{"error": map[string]any{"message": line.Error}})
			return
		}
		if c := line.Message.Content; c != "" {
			now := time.Now()
			if e.Chunks == 0 {
				e.First = now
			}
			e.Last = now
			e.Chunks++
			event(chunk(map[string]any{"content": c}, nil))
		}
		if line.Done {
			e.DoneReason = line.DoneReason
			e.PromptEvalCount, e.EvalCount = line.PromptEvalCount, line.EvalCount
			e.PromptEvalDuration, e.EvalDuration = time.Duration(line.PromptEvalDuration), time.Duration(line.EvalDuration)
			finish := "stop"
			if line.DoneReason == "length" {
				finish = "length"
			}
			event(chunk(map[string]any{}, finish))
			event(map[string]any{"id": id, "object": "chat.completion.chunk", "model": model, "choices": []any{},
				"usage": map[string]any{"prompt_tokens": line.PromptEvalCount, "completion_tokens": line.EvalCount,
					"total_tokens": line.PromptEvalCount + line.EvalCount}})
			fmt.Fprint(w, "data: [DONE]\n\n")
			flusher.Flush()
			return
		}
	}
	if e.Err == nil {
		e.Err = fmt.Errorf("ollama /api/chat stream ended without done: %v", sc.Err())
	}
}
