package engines

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/inferbench/inferbench/internal/record"
)

// TestLeanTransportChosen: the epoll reader serves plain http:// HTTP/1.1;
// everything else goes through net/http. On the old code there is no
// epoll reader.
func TestLeanTransportChosen(t *testing.T) {
	tests := []struct {
		name string
		url  string
		o    Options
		want bool
	}{
		// Plain HTTP/1.1: the epoll reader.
		{"http", "http://127.0.0.1:1/v1/chat/completions", Options{}, true},
		// The default port is 80.
		{"http, no port", "http://engine.example/v1/chat/completions", Options{}, true},
		// TLS: net/http.
		{"https", "https://127.0.0.1:1/v1/chat/completions", Options{}, false},
		// HTTP/2: net/http.
		{"h2c", "http://127.0.0.1:1/v1/chat/completions", Options{HTTP2: true}, false},
		// A caller's transport: net/http with it.
		{"custom transport", "http://127.0.0.1:1/v1/chat/completions", Options{Transport: http.DefaultTransport}, false},
		// Asked for net/http.
		{"NetHTTP", "http://127.0.0.1:1/v1/chat/completions", Options{NetHTTP: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(Engine{Name: "e", URL: tt.url}, tt.o)
			require.NoError(t, err)
			defer c.Close()
			assert.Equal(t, tt.want && !envNetHTTP, c.lean != nil)
		})
	}
}

// TestLeanMatchesNetHTTP streams the same server answers through the
// epoll reader and through net/http: every record field but the times
// (and, on a failure, the wording of a transport error) is the same.
func TestLeanMatchesNetHTTP(t *testing.T) {
	hijack := func(raw string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = buf.WriteString(raw)
			_ = buf.Flush()
		}
	}
	chunked := func(pieces ...string) string {
		var b strings.Builder
		b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		for _, p := range pieces {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", len(p), p)
		}
		b.WriteString("0\r\n\r\n")
		return b.String()
	}
	stream := sse(roleChunk, contentUsage("a", 3, 1), contentUsage("b", 3, 2), finishLen, usageOnly(3, 2), "[DONE]")
	tests := []struct {
		name    string
		handler http.HandlerFunc
		max     int
	}{
		// A vLLM-shaped stream with continuous usage.
		{"vllm stream", streamHandler(stream), 2},
		// A natural stop with the EOS token counted in usage.
		{"natural stop", streamHandler(sse(content("a"), finishStop, usageOnly(1, 2), "[DONE]")), 0},
		// An error event inside the stream.
		{"error event", streamHandler(sse(content("a"), `{"error":{"message":"boom"}}`)), 0},
		// A malformed event.
		{"malformed event", streamHandler(sse(content("a"), `{"choices":[`)), 0},
		// JSON where a stream was asked for.
		{"json answer", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"error":{"message":"stream not supported"}}`)
		}, 0},
		// An HTTP error with a message.
		{"http 429", statusHandler(429, `{"error":{"message":"slow down"}}`), 0},
		// A 103 before the 200.
		{"early hints", hijack("HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + chunked(stream...)), 2},
		// HTTP/1.0, the body ended by the close.
		{"close-delimited", hijack("HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + strings.Join(stream, "")), 2},
		// The stream ends without [DONE] or a finish_reason.
		{"no end", streamHandler(sse(content("a"))), 0},
		// A chunk not followed by CRLF: the stream broke.
		{"bad chunk framing", hijack(strings.Replace(chunked(stream...), "\r\n\r\n", "\r\nXX", 2)), 2},
		// Every event split over two writes.
		{"split events", streamHandler(splitEach(stream)), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.handler)
			lean := newClient(t, srv.URL, VLLM, Options{})
			std := newClient(t, srv.URL, VLLM, Options{NetHTTP: true})
			if lean.lean == nil {
				t.Skip("INFERBENCH_NET_HTTP=1: no epoll reader to compare")
			}
			require.Nil(t, std.lean)
			a := do(t, lean, t.Context(), Request{Messages: oneMsg, MaxTokens: tt.max})
			b := do(t, std, t.Context(), Request{Messages: oneMsg, MaxTokens: tt.max})
			assert.Equal(t, comparable(b), comparable(a))
			if a.Error == record.StreamCut || a.Error == record.Connect {
				// The transports word their errors apart; the kind is the verdict.
				return
			}
			assert.Equal(t, b.Message, a.Message)
		})
	}
}

// comparable is a record without its times and its message.
func comparable(r record.Record) record.Record {
	r.Sent, r.GotConn, r.Headers, r.Done, r.Dial, r.DNS, r.TLS = 0, 0, 0, 0, 0, 0, 0
	r.Message = ""
	r.Chunks = append([]record.Chunk(nil), r.Chunks...)
	for i := range r.Chunks {
		r.Chunks[i].At = 0
	}
	return r
}

// splitEach splits every piece in two.
func splitEach(pieces []string) []string {
	var out []string
	for _, p := range pieces {
		out = append(out, p[:len(p)/2], p[len(p)/2:])
	}
	return out
}

// TestLeanStampsAreReceiveTimes: with the reader deliberately late (a
// coalescing window far longer than the gaps between the tokens), every
// token's stamp is still the kernel's receive time, not the read's. Three
// streams each get one token, 15 ms apart; all are read together after
// the window, and their stamps are 15 ms apart, as they arrived. Without
// the receive times (stamps at the read) the gaps are microseconds.
func TestLeanStampsAreReceiveTimes(t *testing.T) {
	const n, gap = 3, 15 * time.Millisecond
	old := coalesceWindow
	coalesceWindow = 200 * time.Millisecond
	t.Cleanup(func() { coalesceWindow = old })
	var arrived sync.WaitGroup
	arrived.Add(n)
	var seq atomic.Int64
	start := make(chan struct{})
	var once sync.Once
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		i := seq.Add(1) - 1
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		arrived.Done()
		arrived.Wait()
		once.Do(func() { close(start) })
		<-start
		time.Sleep(time.Duration(i) * gap)
		for _, p := range sse(content(fmt.Sprint(i)), finishStop, usageOnly(1, 1), "[DONE]") {
			_, _ = io.WriteString(w, p)
		}
		w.(http.Flusher).Flush()
	}))
	c := newClient(t, srv.URL, OpenAI, Options{Concurrency: n})
	if c.lean == nil {
		t.Skip("INFERBENCH_NET_HTTP=1: no epoll reader")
	}
	recs := make([]record.Record, n)
	var wg sync.WaitGroup
	for i := range recs {
		wg.Go(func() { c.Do(t.Context(), Request{Messages: oneMsg}, &recs[i]) })
	}
	wg.Wait()
	for i, r := range recs {
		require.Equal(t, record.OK, r.Error, "stream %d: %s", i, r.Message)
		require.Len(t, r.Chunks, 1)
	}
	if !c.lean.allRx.Load() {
		t.Skip("the kernel gives no receive times here")
	}
	// The server numbers the streams by arrival, not by record: the
	// stamps in order.
	times := []time.Duration{recs[0].Chunks[0].At, recs[1].Chunks[0].At, recs[2].Chunks[0].At}
	for i := range times {
		for j := i + 1; j < len(times); j++ {
			if times[j] < times[i] {
				times[i], times[j] = times[j], times[i]
			}
		}
	}
	for i := 1; i < n; i++ {
		assert.InDelta(t, float64(gap), float64(times[i]-times[i-1]), float64(gap)/2,
			"tokens %d and %d arrived %v apart; stamps %v", i-1, i, gap, times)
	}
}

// TestLeanLargeBody: a request body far larger than the socket's send
// buffer is written whole while the server reads it slowly (the writer
// waits for room, it does not fail or spin).
func TestLeanLargeBody(t *testing.T) {
	var got atomic.Int64
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64<<10)
		for {
			n, err := r.Body.Read(buf)
			got.Add(int64(n))
			if err != nil {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		streamHandler(sse(content("a"), finishStop, "[DONE]"))(w, r)
	}))
	c := newClient(t, srv.URL, OpenAI, Options{RequestTimeout: 20 * time.Second})
	prompt := strings.Repeat("word ", 2<<20) // 10 MiB
	rec := do(t, c, t.Context(), Request{Messages: []Message{{Role: "user", Content: prompt}}})
	require.Equal(t, record.OK, rec.Error, rec.Message)
	assert.Greater(t, got.Load(), int64(len(prompt)), "the whole body arrived")
}

// TestLeanUnsolicitedBytes: a server that writes after its response has
// ended breaks the protocol; the connection is not used again.
func TestLeanUnsolicitedBytes(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		writeChunked(buf.Writer, sse(content("a"), finishStop, "[DONE]"), "")
		time.Sleep(20 * time.Millisecond)
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\n\r\nsurprise")
		// Keep the connection open: only the bytes make it unusable.
		time.Sleep(200 * time.Millisecond)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, OpenAI, Options{})
	first := do(t, c, t.Context(), Request{Messages: oneMsg})
	require.Equal(t, record.OK, first.Error, first.Message)
	time.Sleep(60 * time.Millisecond) // the surprise has arrived
	second := do(t, c, t.Context(), Request{Messages: oneMsg})
	require.Equal(t, record.OK, second.Error, second.Message)
	assert.True(t, second.NewConn, "the connection that got unsolicited bytes was not reused")
	assert.Equal(t, int64(2), conns.Load())
}

// TestRxReaderTimestamp: recvmsg with SO_TIMESTAMPNS gives the time the
// kernel received the bytes, however late they are read.
func TestRxReaderTimestamp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	server, err := l.Accept()
	require.NoError(t, err)
	defer server.Close()
	fd, err := dupFD(client)
	require.NoError(t, err)
	defer unix.Close(fd)
	require.NoError(t, unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1))
	sent := time.Now()
	_, err = server.Write([]byte("hello"))
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond)
	var x rxReader
	buf := make([]byte, 64)
	n, rx, err := x.read(fd, buf)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(buf[:n]))
	if rx == 0 {
		t.Skip("the kernel gives no receive times here")
	}
	assert.InDelta(t, float64(sent.UnixNano()), float64(rx), float64(20*time.Millisecond), "received when sent, not when read 50 ms later")
}

// TestLeanBodyWriteTimesOut: a server that never reads a large request
// body cannot hold Do past its timeout (the writer gives up when the time
// is out, rather than wait for room that never comes): Do returns, with a
// timeout, while the server still holds the body unread. On the old code
// it returned only when the server let go (here: never, until the test's
// watchdog).
//
// How long Do takes is not asserted: encoding and writing 40 MiB under the
// race detector on a loaded machine took 3.06 s once against a 300 ms
// timeout, and an earlier bound of 3 s failed there. The watchdog is a
// hang guard, 20 times the timeout. The body is 16 MiB (a loopback peer
// that never reads took 3.7 MiB here before a write blocked: its receive
// window does not grow) and the timeout 3 s, so the time runs out while the body
// is written, not before: with 40 MiB and 300 ms the encoding under the
// race detector once outlasted the timeout and the dial failed instead
// ("connect: dial tcp: i/o timeout").
func TestLeanBodyWriteTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // never reads the body
	}))
	t.Cleanup(func() { close(release) })
	const timeout = 3 * time.Second
	c := newClient(t, srv.URL, OpenAI, Options{RequestTimeout: timeout})
	prompt := strings.Repeat("word ", 16<<20/5) // 16 MiB, far beyond the socket buffers
	done := make(chan *record.Record, 1)
	go func() {
		var rec record.Record
		c.Do(t.Context(), Request{Messages: []Message{{Role: "user", Content: prompt}}}, &rec)
		done <- &rec
	}()
	select {
	case rec := <-done:
		assert.Equal(t, record.Timeout, rec.Error, rec.Message)
		t.Logf("%s after %v: %s", rec.Error, rec.Done-rec.Sent, rec.Message)
	case <-time.After(20 * timeout):
		require.Fail(t, "Do is held by a server that never reads the body", "still running %s after a %s request timeout", 20*timeout, timeout)
	}
}
