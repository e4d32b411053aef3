package engines

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/record"
)

// llamaStream is a complete llama-server-shaped stream of two tokens.
var llamaStream = sse(llamaRole, llamaContent("a"), llamaContent("b"), llamaFinish("stop", 5, 3), "[DONE]")

// writeChunked writes a complete chunked event-stream response that
// advertises Keep-Alive, as llama-server does, with extra headers.
func writeChunked(w *bufio.Writer, pieces []string, extra string) {
	fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5, max=100\r\nServer: llama.cpp\r\n%s\r\n", extra)
	for _, p := range pieces {
		fmt.Fprintf(w, "%x\r\n%s\r\n", len(p), p)
	}
	_, _ = io.WriteString(w, "0\r\n\r\n")
	_ = w.Flush()
}

// closingServer imitates llama-server: it answers every request with a
// complete stream that advertises Keep-Alive, then closes the connection
// after delay. With a delay the client has long taken the connection for
// its next request when it dies, so every reuse fails (deterministically);
// with 0 it is the race real clients lose on 12–38 % of requests.
// It returns the server and the number of connections it accepted.
func closingServer(t *testing.T, pieces []string, delay time.Duration) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		writeChunked(buf.Writer, pieces, "")
		time.Sleep(delay)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// TestDeadKeepAliveConnectionIsRetried: against a server that closes every
// connection after its stream while advertising Keep-Alive (llama-server),
// no request fails. A request that caught a dead kept-alive connection is
// retried once on a new one, and its record says so.
func TestDeadKeepAliveConnectionIsRetried(t *testing.T) {
	tests := []struct {
		name        string
		delay       time.Duration // how long after the stream the server closes
		workers     int
		perWorker   int
		wantRetries bool // every reuse must have died, so some requests were retried
	}{
		// Sequential, closing 20 ms after the stream: every reuse dies.
		{"sequential, late close", 20 * time.Millisecond, 1, 30, true},
		// Sequential, closing at once: the real race; none may fail.
		{"sequential, prompt close", 0, 1, 60, false},
		// Eight concurrent streams, late close.
		{"concurrent, late close", 20 * time.Millisecond, 8, 8, true},
		// Eight concurrent streams, prompt close.
		{"concurrent, prompt close", 0, 8, 15, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, conns := closingServer(t, llamaStream, tt.delay)
			c := newClient(t, srv.URL, OpenAI, Options{Concurrency: tt.workers, RequestTimeout: 10 * time.Second})
			recs := make([]record.Record, tt.workers*tt.perWorker)
			var wg sync.WaitGroup
			for w := range tt.workers {
				wg.Go(func() {
					for i := range tt.perWorker {
						c.Do(t.Context(), Request{Messages: oneMsg}, &recs[w*tt.perWorker+i])
					}
				})
			}
			wg.Wait()
			retried := 0
			for i := range recs {
				r := &recs[i]
				require.Equal(t, record.OK, r.Error, "request %d: %s", i, r.Message)
				assert.Equal(t, []int{1, 1}, tokens(*r))
				assert.True(t, r.NewConn, "request %d: every answered request had a new connection (the server closes them all): %+v", i, *r)
				assert.False(t, r.ConnReused)
				assert.LessOrEqual(t, r.Sent, r.GotConn)
				if r.Retried {
					retried++
				}
			}
			t.Logf("%d requests, %d retried, %d connections", len(recs), retried, conns.Load())
			if tt.wantRetries {
				assert.Positive(t, retried, "the late close makes every reuse fail")
			}
			// Every answered request had its own connection (a dead reuse
			// costs no new one: the server saw its request on the old one).
			// The transport may also dial one it then never uses.
			assert.GreaterOrEqual(t, conns.Load(), int64(len(recs)))
		})
	}
}

// TestNewConnectionPerRequest checks that a client told the server closes
// its connections (NewConnectionPerRequest) dials one per request and loses
// no write to a dead one: zero retries where the same server, reused,
// makes every other request fail its first attempt.
func TestNewConnectionPerRequest(t *testing.T) {
	srv, conns := closingServer(t, llamaStream, 20*time.Millisecond)
	c := newClient(t, srv.URL, OpenAI, Options{Concurrency: 1, RequestTimeout: 10 * time.Second})
	c.NewConnectionPerRequest()
	const n = 20
	for i := range n {
		var r record.Record
		c.Do(t.Context(), Request{Messages: oneMsg}, &r)
		require.Equal(t, record.OK, r.Error, "request %d: %s", i, r.Message)
		assert.False(t, r.Retried, "request %d was retried", i)
		assert.True(t, r.NewConn, "request %d", i)
		assert.False(t, r.ConnReused, "request %d", i)
	}
	assert.Equal(t, int64(n), conns.Load(), "one connection per request")
}

// reuseServer serves a first request honestly on a kept-alive connection
// and hands every later request to then (n counts requests from 1).
func reuseServer(t *testing.T, then func(n int, w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	var conns, reqs atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(reqs.Add(1))
		if n == 1 {
			streamHandler(llamaStream)(w, r)
			return
		}
		then(n, w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns, &reqs
}

// TestOnlyDeadReuseIsRetried: every other failure is recorded as it
// happened, never retried.
func TestOnlyDeadReuseIsRetried(t *testing.T) {
	hijackClose := func(write string) func(int, http.ResponseWriter, *http.Request) {
		return func(_ int, w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			_, _ = buf.WriteString(write)
			_ = buf.Flush()
			conn.Close()
		}
	}
	tests := []struct {
		name        string
		then        func(n int, w http.ResponseWriter, r *http.Request)
		timeout     time.Duration
		wantErr     record.ErrorKind
		wantRetried bool
		wantReqs    int64 // requests the server saw
		wantConns   int64 // connections it accepted
	}{
		// The reused connection is closed after the server read the request,
		// before any byte: retried; the retry's new connection is closed the
		// same way: that is the record's failure, not retried again.
		{"retry fails too", hijackClose(""), 5 * time.Second, record.Connect, true, 3, 2},
		// Part of the status line arrived, then the close: response bytes came,
		// so the request may have been answered; not retried.
		{"close after response bytes", hijackClose("HTTP/1.1 200"), 5 * time.Second, record.Connect, false, 2, 1},
		// A stream cut after its headers on the reused connection: not retried.
		{"cut after headers", func(_ int, w http.ResponseWriter, r *http.Request) {
			streamHandler(sse(llamaContent("a")))(w, r)
		}, 5 * time.Second, record.StreamCut, false, 2, 1},
		// The reused connection hangs without a byte: a timeout, not retried.
		{"timeout on reuse", func(_ int, w http.ResponseWriter, r *http.Request) {
			hangHandler(false, nil)(w, r)
		}, 300 * time.Millisecond, record.Timeout, false, 2, 1},
		// An HTTP error on the reused connection: recorded, not retried.
		{"status on reuse", func(_ int, w http.ResponseWriter, r *http.Request) {
			statusHandler(503, `{"error":{"message":"loading model"}}`)(w, r)
		}, 5 * time.Second, record.HTTPStatus, false, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, conns, reqs := reuseServer(t, tt.then)
			c := newClient(t, srv.URL, OpenAI, Options{RequestTimeout: tt.timeout})
			first := do(t, c, t.Context(), Request{Messages: oneMsg})
			require.Equal(t, record.OK, first.Error, first.Message)
			require.True(t, first.NewConn)
			rec := do(t, c, t.Context(), Request{Messages: oneMsg})
			assert.Equal(t, tt.wantErr, rec.Error, rec.Message)
			assert.Equal(t, tt.wantRetried, rec.Retried)
			assert.Equal(t, tt.wantReqs, reqs.Load(), "requests at the server")
			assert.Equal(t, tt.wantConns, conns.Load(), "connections at the server")
			if tt.wantRetried {
				assert.True(t, rec.NewConn, "the retry had a new connection")
				assert.False(t, rec.ConnReused)
			} else {
				assert.True(t, rec.ConnReused, "the failed request went out on the kept-alive connection")
			}
		})
	}
}

// TestCloseBeforeResponseOnNewConnIsNotRetried: a server that drops every
// new connection before answering is a connect failure, sent once.
func TestCloseBeforeResponseOnNewConnIsNotRetried(t *testing.T) {
	var reqs atomic.Int64
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs.Add(1)
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	}))
	rec := do(t, newClient(t, srv.URL, OpenAI, Options{RequestTimeout: 5 * time.Second}), t.Context(), Request{Messages: oneMsg})
	assert.Equal(t, record.Connect, rec.Error, rec.Message)
	assert.Contains(t, rec.Message, "closed before any response")
	assert.False(t, rec.Retried)
	assert.True(t, rec.NewConn)
	assert.Equal(t, int64(1), reqs.Load(), "sent exactly once")
}

// TestConnectionTiming: a new connection's set-up is recorded (and a
// reused one has none), so it is visible rather than hidden in TTFT.
func TestConnectionTiming(t *testing.T) {
	tests := []struct {
		name    string
		tls     bool
		wantTLS bool
	}{
		{"http", false, false}, // dial only: an IP address needs no DNS
		{"https", true, true},  // dial and TLS handshake
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := streamHandler(sse(content("a"), finishStop, usageOnly(1, 1), "[DONE]"))
			srv := httptest.NewUnstartedServer(h)
			if tt.tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			t.Cleanup(srv.Close)
			c, err := NewClient(Engine{Name: "e", Profile: OpenAI, URL: srv.URL, InsecureSkipVerify: true}, Options{})
			require.NoError(t, err)
			defer c.Close()
			first := do(t, c, t.Context(), Request{Messages: oneMsg})
			require.Equal(t, record.OK, first.Error, first.Message)
			assert.True(t, first.NewConn)
			assert.False(t, first.ConnReused)
			assert.Positive(t, first.Dial, "connect time")
			assert.Zero(t, first.DNS, "an IP address is not looked up")
			assert.Equal(t, tt.wantTLS, first.TLS > 0, "TLS handshake time")
			assert.GreaterOrEqual(t, first.GotConn-first.Sent, first.Dial+first.TLS, "set-up happens between Sent and GotConn")
			assert.LessOrEqual(t, first.GotConn, first.Headers)

			second := do(t, c, t.Context(), Request{Messages: oneMsg})
			require.Equal(t, record.OK, second.Error, second.Message)
			assert.True(t, second.ConnReused)
			assert.False(t, second.NewConn)
			assert.False(t, second.Retried)
			assert.Zero(t, second.Dial+second.TLS+second.DNS, "a reused connection has no set-up")
		})
	}
}
