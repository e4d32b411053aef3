package fake

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/inferbench/inferbench/fake/sim"
)

// TestMain checks that no test leaves a goroutine behind (handlers, the
// engine loop, hanging streams).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// firehoseCfg answers at once: for shape tests that need no timing.
func firehoseCfg(t testing.TB) sim.Config {
	t.Helper()
	c, err := sim.Preset("vllm-like")
	require.NoError(t, err)
	c.ApplyPrototype(0, 0, 16)
	return c
}

// fastCfg is a real engine with small step times (TTFT 4 ms, 1 ms/token on
// an idle engine) and 16 default tokens.
func fastCfg(t testing.TB) sim.Config {
	t.Helper()
	c, err := sim.Preset("vllm-like")
	require.NoError(t, err)
	c.ApplyPrototype(4, 1, 16)
	return c
}

// newTest starts a Server behind an httptest server; both close at cleanup.
func newTest(t testing.TB, cfg sim.Config, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	s, err := NewServer(cfg, opts)
	require.NoError(t, err)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		s.Close()
		ts.Close()
	})
	return s, ts
}

// post sends body to path and returns the response (caller closes).
func post(t testing.TB, ctx context.Context, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

// events splits an SSE body into its data payloads, checking that every
// event is one "data: " line followed by a blank line.
func events(t testing.TB, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	blank := true
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			require.False(t, blank, "two blank lines in a row in %q", body)
			blank = true
			continue
		}
		require.True(t, blank, "event without a blank line before %q", line)
		require.True(t, strings.HasPrefix(line, "data: "), "line %q is not a data line", line)
		out = append(out, strings.TrimPrefix(line, "data: "))
		blank = false
	}
	require.NoError(t, sc.Err())
	require.True(t, blank, "body does not end with a blank line")
	return out
}

// readAll reads a response body and closes it.
func readAll(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

// eventually polls cond every 5 ms for up to 5 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustPreset(name string) sim.Config {
	c, err := sim.Preset(name)
	if err != nil {
		panic(err)
	}
	return c
}
