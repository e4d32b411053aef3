package pacedserver

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/cpu"
)

func post(t *testing.T, c net.Conn, br *bufio.Reader, body string) *http.Response {
	t.Helper()
	_, err := io.WriteString(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "+
		itoa(len(body))+"\r\n\r\n"+body)
	require.NoError(t, err)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	return resp
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestStreamPacedAndStamped checks one stream end to end: chunked SSE, a
// role event, n token events each one interval apart or more, emit times
// that are CLOCK_MONOTONIC instants in order, and usage and [DONE] at the
// end; then a second request on the same (kept-alive) connection.
func TestStreamPacedAndStamped(t *testing.T) {
	const n, iv = 20, 2 * time.Millisecond
	s, err := Start("127.0.0.1:0", Config{Interval: iv, Shards: 1})
	require.NoError(t, err)
	defer s.Close()
	c, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(s.URL(), "/v1/chat/completions"), "http://"))
	require.NoError(t, err)
	defer c.Close()
	br := bufio.NewReader(c)
	for round := range 2 {
		before, err := cpu.Monotonic()
		require.NoError(t, err)
		resp := post(t, c, br, `{"model":"m","max_tokens": 20,"stream":true}`)
		require.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		assert.Equal(t, []string{"chunked"}, resp.TransferEncoding)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		after, err := cpu.Monotonic()
		require.NoError(t, err)
		events := strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n")
		require.Len(t, events, n+3, "role, n tokens, usage, [DONE]")
		assert.Equal(t, "data: [DONE]", events[n+2])
		var monos []int64
		for i, e := range events[:n+2] {
			var ev struct {
				Choices []struct {
					Delta        map[string]string `json:"delta"`
					FinishReason *string           `json:"finish_reason"`
				} `json:"choices"`
				Usage struct {
					Completion int `json:"completion_tokens"`
				} `json:"usage"`
				Mono int64 `json:"emit_mono_ns"`
			}
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(e, "data: ")), &ev), "round %d event %d: %s", round, i, e)
			switch {
			case i == 0:
				assert.Equal(t, "assistant", ev.Choices[0].Delta["role"])
			case i <= n:
				assert.Equal(t, " tok", ev.Choices[0].Delta["content"])
				assert.Equal(t, i, ev.Usage.Completion)
				assert.Equal(t, i == n, ev.Choices[0].FinishReason != nil)
				monos = append(monos, ev.Mono)
			default:
				assert.Empty(t, ev.Choices)
				assert.Equal(t, n, ev.Usage.Completion)
			}
		}
		assert.Greater(t, monos[0], before)
		assert.Less(t, monos[n-1], after)
		for i := 1; i < n; i++ {
			// Steps are paced: never sooner than the interval (a 10%
			// allowance for timer rounding).
			assert.GreaterOrEqual(t, monos[i]-monos[i-1], int64(iv)*9/10, "token %d", i)
		}
	}
	st := s.Stats()
	// A step period per token after the first of each stream, and the idle
	// wait between the two streams is none, unless the second request
	// arrived before the stepping goroutine went idle: then the first
	// stream's last step and the second's first are one step apart, and
	// that step period counts too. Which of the two happens is the
	// scheduler's (on a loaded machine: 39 steps once, against 38).
	steps := st.Steps
	if steps == 2*(n-1)+1 {
		t.Logf("the second stream arrived before the stepper went idle: %d steps", steps)
		steps--
	}
	assert.Equal(t, Stats{Tokens: 2 * n, Requests: 2, LateSteps: st.LateSteps, Steps: 2 * (n - 1), StepNanos: st.StepNanos, CPUNanos: st.CPUNanos},
		Stats{Tokens: st.Tokens, Requests: st.Requests, LateSteps: st.LateSteps, Steps: steps, StepNanos: st.StepNanos, CPUNanos: st.CPUNanos},
		"a step period per token after the first of each stream")
	assert.GreaterOrEqual(t, st.StepNanos/st.Steps, int64(iv)*9/10, "the pace is kept, never beaten")
	assert.Positive(t, st.CPUNanos)
}

// TestBadRequests checks a request the server cannot stream is refused
// with a 400 that says why, not a hang.
func TestBadRequests(t *testing.T) {
	s, err := Start("127.0.0.1:0", Config{})
	require.NoError(t, err)
	defer s.Close()
	for _, tc := range []struct{ name, body, want string }{
		// No max_tokens: the server would not know when to stop.
		{"no max_tokens", `{"stream":true}`, "no max_tokens"},
		// A zero count.
		{"zero", `{"max_tokens":0}`, "not a count"},
		// A zero count under the newer name is refused by that name.
		{"zero completion tokens", `{"max_completion_tokens":0}`, "max_completion_tokens \"0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(s.URL(), "/v1/chat/completions"), "http://"))
			require.NoError(t, err)
			defer c.Close()
			resp := post(t, c, bufio.NewReader(c), tc.body)
			b, _ := io.ReadAll(resp.Body)
			assert.Equal(t, 400, resp.StatusCode)
			assert.Contains(t, string(b), tc.want)
		})
	}
}

// TestMainPrintsURL runs the program form, driven with pipes: the URL is
// the first line, and closing stdin ends it.
func TestMainPrintsURL(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Main([]string{"-interval=1ms"}, inR, outW) }()
	line, err := bufio.NewReader(outR).ReadString('\n')
	require.NoError(t, err)
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+/v1/chat/completions\n$`, line)
	_ = inW.Close()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Main did not return after stdin closed")
	}
}

// TestMaxTokens checks the output length is read under either name.
func TestMaxTokens(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       int
		err        string
	}{
		// The classic name, as inferbench and most clients send it.
		{"max_tokens", `{"max_tokens": 7}`, 7, ""},
		// The newer name alone, as vLLM's benchmark client sends it.
		{"max_completion_tokens", `{"messages":[],"max_completion_tokens":256,"stream":true}`, 256, ""},
		// Both: max_tokens is the one read.
		{"both", `{"max_completion_tokens":3,"max_tokens":5}`, 5, ""},
		// Neither: refused, naming both.
		{"neither", `{"stream":true}`, 0, "no max_tokens or max_completion_tokens"},
		// Not a number.
		{"not a number", `{"max_completion_tokens":"x"}`, 0, "not a count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := maxTokens([]byte(tc.body))
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, n)
		})
	}
}
