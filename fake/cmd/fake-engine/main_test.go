package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of run.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var urlRE = regexp.MustCompile(`http://127\.0\.0\.1:\d+/v1/chat/completions`)

// TestRunServes starts the command on a free port, sends one request, and
// checks that cancelling the context shuts it down.
func TestRunServes(t *testing.T) {
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, &stdout, &stderr, []string{"--port", "0", "--engine-name", "vLLM", "--model", "m", "--prefill-ms", "10", "--per-token-ms", "1", "--tokens", "4"})
	}()
	var url string
	require.Eventually(t, func() bool { url = urlRE.FindString(stdout.String()); return url != "" }, 5*time.Second, 5*time.Millisecond)
	line := stdout.String()
	assert.Contains(t, line, "SIMULATED")
	assert.Contains(t, line, `model "m"`)
	assert.Contains(t, line, "preset vllm-like")

	resp, err := http.Post(url, "application/json", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}`))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, string(body), `"completion_tokens":`)
	assert.True(t, strings.HasSuffix(string(body), "data: [DONE]\n\n"))

	// A hanging stream must not hold up shutdown.
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after the context was cancelled")
	}
	assert.Contains(t, stdout.String(), "shutting down")
}

// startCmd runs the command with args on a free port and returns its chat
// URL; it shuts down at cleanup.
func startCmd(t *testing.T, args ...string) string {
	t.Helper()
	var stdout syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, &stdout, io.Discard, append([]string{"--port", "0"}, args...)) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	var url string
	require.Eventually(t, func() bool { url = urlRE.FindString(stdout.String()); return url != "" }, 5*time.Second, 5*time.Millisecond)
	return url
}

var completionRE = regexp.MustCompile(`"completion_tokens":(\d+)`)

// TestTokensFlagIsExact sends requests without max_tokens, as curl would, to
// fake-engine --tokens 128 and expects exactly 128 tokens each. On the old
// code they stopped at a natural EOS: 52, 101 and 99 tokens.
func TestTokensFlagIsExact(t *testing.T) {
	url := startCmd(t, "--prefill-ms", "5", "--per-token-ms", "0.2", "--tokens", "128")
	for i := range 5 {
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"model":"fake-model","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}`))
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		m := completionRE.FindStringSubmatch(string(body))
		require.NotNil(t, m, "request %d: no usage in %s", i, body)
		assert.Equal(t, "128", m[1], "request %d", i)
		assert.Equal(t, 128, strings.Count(string(body), `"delta":{"content":`), "request %d: content chunks", i)
		assert.Contains(t, string(body), `"finish_reason":"length"`)
	}
}

// TestCloseAfterStreamFlag checks that the command wires
// --close-after-stream to the connection hooks: sequential streams on one
// keep-alive Transport fail when they reuse a connection, and succeed
// without the flag.
func TestCloseAfterStreamFlag(t *testing.T) {
	for _, flagOn := range []bool{true, false} {
		args := []string{"--prefill-ms", "5", "--per-token-ms", "0.2", "--tokens", "4"}
		if flagOn {
			args = append(args, "--close-after-stream")
		}
		url := startCmd(t, args...)
		tr := &http.Transport{}
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		failures := 0
		for range 10 {
			resp, err := client.Post(url, "application/json", strings.NewReader(`{"model":"fake-model","messages":[{"role":"user","content":"x"}],"stream":true}`))
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err != nil {
				failures++
			}
		}
		tr.CloseIdleConnections()
		if flagOn {
			assert.Positive(t, failures, "--close-after-stream: reused connections must fail")
		} else {
			assert.Zero(t, failures)
		}
	}
}

// TestRunShutsDownHangingStreams checks that shutdown ends an injected hang.
func TestRunShutsDownHangingStreams(t *testing.T) {
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, &stdout, &stderr, []string{"-port", "0", "-error-rate", "1", "-error-kinds", "hang", "-shutdown-timeout", "2s"})
	}()
	var url string
	require.Eventually(t, func() bool { url = urlRE.FindString(stdout.String()); return url != "" }, 5*time.Second, 5*time.Millisecond)
	got := make(chan error, 1)
	go func() {
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"model":"fake-model","messages":[{"role":"user","content":"x"}],"stream":true}`))
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		got <- err
	}()
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "injected hang") }, 5*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	<-got
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, cfgPrefill, cfgPerToken float64, tokens int, model, engine string)
	}{
		// The prototype's exact flag list, with two dashes.
		{"prototype double dash", strings.Fields("--port 8000 --engine-name vLLM --model fake-model --prefill-ms 80 --per-token-ms 4 --tokens 128"), "",
			func(t *testing.T, p, pt float64, n int, m, e string) {
				assert.Equal(t, 80.0, p)
				assert.Equal(t, 4.0, pt)
				assert.Equal(t, 128, n)
				assert.Equal(t, "fake-model", m)
				assert.Equal(t, "vLLM", e)
			}},
		// The same with one dash and other numbers.
		{"prototype single dash", strings.Fields("-port 8001 -engine-name Friendli -model x -prefill-ms 30 -per-token-ms 2 -tokens 64"), "",
			func(t *testing.T, p, pt float64, n int, m, e string) {
				assert.Equal(t, 30.0, p)
				assert.Equal(t, 2.0, pt)
				assert.Equal(t, 64, n)
				assert.Equal(t, "Friendli", e)
			}},
		// The firehose.
		{"firehose", strings.Fields("--prefill-ms 0 --per-token-ms 0"), "",
			func(t *testing.T, p, pt float64, n int, m, e string) { assert.Zero(t, p+pt) }},
		// A preset alone keeps its numbers.
		{"preset", strings.Fields("--preset friendli-like"), "",
			func(t *testing.T, p, pt float64, n int, m, e string) { assert.Equal(t, 30.0, p) }},
		// An unknown preset names the known ones.
		{"bad preset", strings.Fields("--preset nope"), "vllm-like", nil},
		// An unknown flag is an error.
		{"bad flag", strings.Fields("--nope 1"), "not defined", nil},
		// A stray argument is an error.
		{"stray arg", strings.Fields("--port 1 extra"), "unexpected arguments", nil},
		// A port out of range.
		{"bad port", strings.Fields("--port 70000"), "--port", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, st, err := configure(io.Discard, tt.args)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, cfg.PrefillMs, cfg.PerTokenMs, cfg.DefaultTokens, st.opts.Model, st.opts.EngineName)
		})
	}
	// Step-model flags override what the prototype flags derive.
	cfg, _, err := configure(io.Discard, strings.Fields("--prefill-ms 80 --per-token-ms 4 --max-num-seqs 7 --step-base-ms 3"))
	require.NoError(t, err)
	assert.Equal(t, 7, cfg.MaxNumSeqs)
	assert.Equal(t, 3*time.Millisecond, cfg.StepBase)
	// The real-engine behaviours are off by default and on with their flags.
	cfg, st, err := configure(io.Discard, nil)
	require.NoError(t, err)
	assert.False(t, cfg.PrefixCaching || st.opts.NaturalStop || st.opts.CloseAfterStream || st.opts.RoleInEveryDelta)
	cfg, st, err = configure(io.Discard, strings.Fields("--prefix-caching --natural-stop --close-after-stream --role-in-every-delta --error-rate 1 --error-kinds error-event"))
	require.NoError(t, err)
	assert.True(t, cfg.PrefixCaching && st.opts.NaturalStop && st.opts.CloseAfterStream && st.opts.RoleInEveryDelta)
	assert.Equal(t, []string{"error-event"}, st.opts.ErrorKinds)
	// Bad server options fail run fast, with the reason.
	err = run(context.Background(), io.Discard, io.Discard, strings.Fields("--port 0 --error-rate 0.5"))
	require.ErrorContains(t, err, "needs error kinds")
}
