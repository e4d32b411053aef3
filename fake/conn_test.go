package fake

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/fake/sim"
)

// newHooked is newTest with the connection hooks of ConfigureHTTP, counting
// the connections the server accepts in conns.
func newHooked(t testing.TB, cfg sim.Config, opts Options, conns *atomic.Int64) (*Server, *httptest.Server) {
	t.Helper()
	s, err := NewServer(cfg, opts)
	require.NoError(t, err)
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.ConfigureHTTP(ts.Config)
	ts.Start()
	t.Cleanup(func() {
		s.Close()
		ts.Close()
	})
	return s, ts
}

// sequential sends n POSTs one after another, each as soon as the previous
// body was read, on one keep-alive http.Transport (a plain net/http client,
// as a benchmark client would use), and returns the errors.
func sequential(t testing.TB, url, body string, n int) (errs []error, last *http.Response) {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range n {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			last = resp
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs, last
}

// TestCloseAfterStream reproduces llama-server's keep-alive bug: with
// CloseAfterStream the server closes the connection after each streamed
// response while advertising keep-alive, so a Go client that reuses it
// sees requests fail (measured: 20 of 40, every reuse, with "Post …: EOF");
// without it, and for non-streamed responses, the connection is reused and
// nothing fails. On the old code the option did not exist; with it
// ignored, the "streamed, flag" row sees no failure and one connection.
func TestCloseAfterStream(t *testing.T) {
	const n = 40
	stream := `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":4,"stream":true}`
	plain := `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":4}`
	tests := []struct {
		name     string
		close    bool // Options.CloseAfterStream
		body     string
		failures bool // some requests must fail; otherwise none may
		oneConn  bool // every request reuses the first connection
	}{
		// The bug: streamed responses close advertised keep-alive connections.
		{"streamed, flag", true, stream, true, false},
		// vLLM-like default: streams keep the connection.
		{"streamed, no flag", false, stream, false, true},
		// llama-server keeps the connection after a non-streamed response.
		{"non-streamed, flag", true, plain, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var conns atomic.Int64
			_, ts := newHooked(t, fastCfg(t), Options{CloseAfterStream: tt.close}, &conns)
			errs, last := sequential(t, ts.URL+"/v1/chat/completions", tt.body, n)
			t.Logf("%d of %d requests failed, %d connections; first error: %v", len(errs), n, conns.Load(), first(errs))
			if tt.failures {
				assert.NotEmpty(t, errs, "a client reusing the closed connections must see failures")
				assert.GreaterOrEqual(t, conns.Load(), int64(n-len(errs)), "every successful stream should cost a connection")
			} else {
				assert.Empty(t, errs)
			}
			if tt.oneConn {
				assert.EqualValues(t, 1, conns.Load(), "the connection must be reused")
			}
			if tt.close && last != nil {
				assert.Equal(t, "keep-alive", last.Header.Get("Connection"))
				assert.Equal(t, "timeout=5, max=100", last.Header.Get("Keep-Alive"))
				assert.False(t, last.Close, "no Connection: close")
			}
		})
	}
}

func first(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// TestCloseAfterStreamNeedsHooks checks that CloseAfterStream on a server
// without ConfigureHTTP's hooks fails loudly instead of silently keeping
// connections open.
func TestCloseAfterStreamNeedsHooks(t *testing.T) {
	_, ts := newTest(t, firehoseCfg(t), Options{CloseAfterStream: true})
	resp := post(t, context.Background(), ts.URL+"/v1/chat/completions",
		`{"model":"fake-model","messages":[{"role":"user","content":"x"}],"stream":true}`)
	assert.Equal(t, 500, resp.StatusCode)
	assert.Contains(t, string(readAll(t, resp)), "ConfigureHTTP")
}
