package engines

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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

// This file holds the epoll reader's edge cases found by a code review
// of lean_linux.go, reactor_linux.go and h1parse.go: five tests failed on
// the code before the fixes ("the reviewed code" below), two guard
// properties the review checked.

// edgeListen serves every accepted connection with serve (n counts the
// connections from 0) on a raw loopback listener, closed with the test;
// cleanup waits for the connections' goroutines. Each connection has a
// deadline, so a test that fails cannot leave a goroutine behind.
func edgeListen(t *testing.T, serve func(conn net.Conn, n int)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 0; ; n++ {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
			wg.Go(func() {
				defer conn.Close()
				serve(conn, n)
			})
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
	})
	return "http://" + l.Addr().String() + "/v1/chat/completions"
}

// edgeServeStreams answers every request on the connection with a
// complete kept-alive stream, until the connection ends.
func edgeServeStreams(conn net.Conn, br *bufio.Reader) {
	bw := bufio.NewWriter(conn)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		writeChunked(bw, sse(content("a"), finishStop, "[DONE]"), "")
	}
}

// edgeLean builds a client on the epoll reader, or skips the test where
// net/http serves (INFERBENCH_NET_HTTP=1).
func edgeLean(t *testing.T, url string, o Options) *Client {
	t.Helper()
	c := newClient(t, url, OpenAI, o)
	if c.lean == nil {
		t.Skip("INFERBENCH_NET_HTTP=1: no epoll reader")
	}
	return c
}

// edgeDoAsync runs Do and reports whether it returned within limit of
// the moment armed is closed; if not, it cancels the request (so the test
// ends) and waits for it.
func edgeDoAsync(t *testing.T, c *Client, req Request, armed <-chan struct{}, limit time.Duration) (record.Record, bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var rec record.Record
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Do(ctx, req, &rec)
	}()
	select {
	case <-armed:
	case <-done:
		return rec, true
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatal("the server never got to its point")
	}
	select {
	case <-done:
		return rec, true
	case <-time.After(limit):
		cancel()
		<-done
		return rec, false
	}
}

// TestLeanHalfWrittenConnectionNotReused: a server may answer before
// it has read the whole request body (an early 4xx), keeping the
// connection alive and reading the rest afterwards. The epoll reader then
// gives up writing the body (sendAll's errAbandoned) yet puts the
// connection back in the pool because the response ended cleanly: the
// next request goes out on a connection whose previous request is only
// half sent, and the server reads it as the rest of that body. net/http
// reuses a connection only once its request was fully written
// (persistConn.wroteRequest). On the reviewed code the second request
// reuses the connection and times out waiting for an answer.
func TestLeanHalfWrittenConnectionNotReused(t *testing.T) {
	gaveUp := make(chan struct{})
	var closeOnce sync.Once
	stop := func() { closeOnce.Do(func() { close(gaveUp) }) }
	url := edgeListen(t, func(conn net.Conn, n int) {
		br := bufio.NewReader(conn)
		if n > 0 {
			edgeServeStreams(conn, br)
			return
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		// Answer at once, kept alive, without reading the body yet.
		body := `{"error":{"message":"no"}}`
		_, _ = fmt.Fprintf(conn, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		<-gaveUp
		// Then read the rest of the body (as a server that drains does)
		// and serve the connection's next requests.
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		edgeServeStreams(conn, br)
	})
	t.Cleanup(stop) // before the listener's cleanup waits for the connection
	c := edgeLean(t, url, Options{RequestTimeout: 2 * time.Second})
	big := strings.Repeat("a", 16<<20) // far beyond the socket buffers: the write blocks
	first := do(t, c, t.Context(), Request{Messages: []Message{{Role: "user", Content: big}}})
	require.Equal(t, record.HTTPStatus, first.Error, first.Message)
	stop()
	second := do(t, c, t.Context(), Request{Messages: oneMsg})
	assert.Equal(t, record.OK, second.Error, "the second request: %s", second.Message)
	assert.True(t, second.NewConn, "a connection whose request was not fully written must not be reused")
}

// TestOversizedEventEndsPromptly: an event of many data lines that
// together exceed maxEventBytes is malformed; the request must end when
// that is known, whatever the server does next. net/http's reader returns
// at once. The epoll reader's events() records the failure (ss.end) and
// moves to phDrain without a drain deadline (drainBy, r.draining are set
// only on the [DONE] path), so against a server that then holds the
// response open it waits for the caller's context: with no
// RequestTimeout, forever. On the reviewed code the lean row fails with
// "Do still running".
func TestOversizedEventEndsPromptly(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		// The epoll reader.
		{"lean", Options{}},
		// net/http's reader: the reference behaviour.
		{"net/http", Options{NetHTTP: true}},
	}
	// Eight lines of just over 1 MiB: the eighth takes the event past
	// maxEventBytes; nothing follows it.
	line := "data: " + strings.Repeat("x", 1<<20+16) + "\n"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			written := make(chan struct{})
			release := make(chan struct{})
			srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(http.StatusOK)
				for range 8 {
					_, _ = io.WriteString(w, line)
				}
				w.(http.Flusher).Flush()
				close(written)
				select { // hold the response open
				case <-r.Context().Done():
				case <-release:
				}
			}))
			t.Cleanup(func() { close(release) }) // before srv.Close waits for the handler
			c := newClient(t, srv.URL, OpenAI, tt.o)
			if tt.name == "lean" && c.lean == nil {
				t.Skip("INFERBENCH_NET_HTTP=1: no epoll reader")
			}
			rec, returned := edgeDoAsync(t, c, Request{Messages: oneMsg}, written, 5*time.Second)
			assert.True(t, returned, "Do still running 5 s after the malformed event arrived")
			assert.Equal(t, record.Malformed, rec.Error, rec.Message)
		})
	}
}

// TestLeanRetryKeepsIdleConnections: the retry of a request whose
// kept-alive connection was dead must go out on a new connection, but must
// not close the other, healthy idle connections (client.go keeps a
// separate transport for the net/http retry for exactly that reason:
// closing the pool's idle connections "would disturb the other streams'
// connections"). leanTransport.do calls get with fresh=true for the retry,
// and get then pops and closes every idle connection before it dials. On
// the reviewed code the pool is left with 1 idle connection, not 3.
func TestLeanRetryKeepsIdleConnections(t *testing.T) {
	var reqs atomic.Int64
	var barrier sync.WaitGroup
	barrier.Add(3)
	releaseDoomed := make(chan struct{})
	var releaseOnce sync.Once
	var doomed sync.WaitGroup
	t.Cleanup(doomed.Wait)
	t.Cleanup(func() { releaseOnce.Do(func() { close(releaseDoomed) }) }) // runs first
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := reqs.Add(1)
		if n > 3 {
			streamHandler(sse(content("a"), finishStop, "[DONE]"))(w, r)
			return
		}
		barrier.Done()
		barrier.Wait() // three connections at once
		if n > 1 {
			streamHandler(sse(content("a"), finishStop, "[DONE]"))(w, r)
			return
		}
		// The first request's connection: answered last (so it is the
		// pool's most recent idle one), then closed once the client's next
		// request has arrived on it, before any byte of an answer.
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		doomed.Go(func() {
			defer conn.Close()
			<-releaseDoomed
			writeChunked(buf.Writer, sse(content("a"), finishStop, "[DONE]"), "")
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = http.ReadRequest(buf.Reader)
		})
	}))
	c := edgeLean(t, srv.URL, Options{Concurrency: 3, RequestTimeout: 10 * time.Second})
	recs := make([]record.Record, 3)
	var returned atomic.Int64
	var wg sync.WaitGroup
	for i := range recs {
		wg.Go(func() {
			c.Do(t.Context(), Request{Messages: oneMsg}, &recs[i])
			if returned.Add(1) == 2 {
				releaseOnce.Do(func() { close(releaseDoomed) })
			}
		})
	}
	wg.Wait()
	for i, r := range recs {
		require.Equal(t, record.OK, r.Error, "warm-up %d: %s", i, r.Message)
	}
	c.lean.mu.Lock()
	require.Len(t, c.lean.idle, 3, "three idle connections before the retry")
	c.lean.mu.Unlock()

	rec := do(t, c, t.Context(), Request{Messages: oneMsg})
	require.Equal(t, record.OK, rec.Error, rec.Message)
	require.True(t, rec.Retried, "the most recent idle connection was dead: retried")

	c.lean.mu.Lock()
	idle, total := len(c.lean.idle), c.lean.total
	c.lean.mu.Unlock()
	assert.Equal(t, 3, idle, "the two healthy idle connections and the retry's")
	assert.Equal(t, 3, total)
}

// TestNonHTTPAnswerFailsFast: a server that answers the request with
// a line that is not an HTTP status line (memcached's "ERROR" to each line
// it cannot parse, and the connection kept open) is no HTTP server.
// net/http fails as soon as the first line is in ("malformed HTTP
// response"). h1Parser.feedHead waits for the head's blank line before it
// parses anything, so the epoll reader waits for the caller's context (or
// 1 MiB of such lines): with no RequestTimeout, forever. On the reviewed
// code the lean row fails with "Do still running".
func TestNonHTTPAnswerFailsFast(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		// The epoll reader.
		{"lean", Options{}},
		// net/http's reader: the reference behaviour.
		{"net/http", Options{NetHTTP: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answered := make(chan struct{})
			var once sync.Once
			url := edgeListen(t, func(conn net.Conn, _ int) {
				br := bufio.NewReader(conn)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if strings.TrimSpace(line) == "" {
						break
					}
					_, _ = io.WriteString(conn, "ERROR\r\n")
				}
				once.Do(func() { close(answered) })
				_, _ = io.Copy(io.Discard, br) // keep the connection open
			})
			c := newClient(t, url, OpenAI, tt.o)
			if tt.name == "lean" && c.lean == nil {
				t.Skip("INFERBENCH_NET_HTTP=1: no epoll reader")
			}
			rec, returned := edgeDoAsync(t, c, Request{Messages: oneMsg}, answered, 3*time.Second)
			assert.True(t, returned, "Do still running 3 s after the server's non-HTTP answer")
			assert.Equal(t, record.Connect, rec.Error, rec.Message)
		})
	}
}

// TestReactorSlotGenerationsDiffer: the reactor tags each registration's
// epoll events with (slot, gen) so that an event for a connection that has
// left its slot is not taken for the slot's next connection. gen is a
// field of the h1conn, which is new for every connection, so every
// registration has gen 1 and the tag is the slot alone. (No stale event
// reaches the loop today — it resolves a wait's events before it closes
// anything — so this is latent, but the guard the comment relies on is
// not there.) On the reviewed code both connections have gen 1.
func TestReactorSlotGenerationsDiffer(t *testing.T) {
	c := edgeLean(t, "http://127.0.0.1:1/v1/chat/completions", Options{})
	r := c.lean.r
	register := func() (*h1conn, int) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		conn := &h1conn{fd: fds[0], closed: make(chan struct{})}
		require.NoError(t, r.register(conn))
		return conn, fds[1]
	}
	closeIt := func(conn *h1conn, peer int) {
		r.command(reactorCmd{conn: conn})
		<-conn.closed
		_ = unix.Close(peer)
	}
	a, pa := register()
	b, pb := register() // keeps the loop running while a's slot is reused
	closeIt(a, pa)
	next, pn := register()
	defer closeIt(b, pb)
	defer closeIt(next, pn)
	require.Equal(t, a.slot, next.slot, "the freed slot is reused")
	assert.NotEqual(t, a.gen, next.gen, "the slot's next registration has a new generation")
}

// edgeModes are the ways a request ends that edgeModeServer plays,
// chosen by "mode=NAME" in the request's message.
var edgeModes = []struct {
	mode string
	want record.ErrorKind
}{
	// A complete stream on a kept-alive connection.
	{"ok", record.OK},
	// The connection closes inside the head.
	{"closehead", record.Connect},
	// The connection closes inside the stream.
	{"cutstream", record.StreamCut},
	// An HTTP error, kept alive.
	{"err500", record.HTTPStatus},
	// A complete stream, then bytes no request asked for.
	{"unsolicited", record.OK},
	// No answer: the caller's deadline ends it.
	{"hang", record.Timeout},
}

// edgeModeServer serves every request as its message's mode says.
func edgeModeServer(t *testing.T) string {
	t.Helper()
	return edgeListen(t, func(conn net.Conn, _ int) {
		br := bufio.NewReader(conn)
		bw := bufio.NewWriter(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			b, err := io.ReadAll(req.Body)
			if err != nil {
				return
			}
			var mode string
			for _, m := range edgeModes {
				if strings.Contains(string(b), "mode="+m.mode+"\"") {
					mode = m.mode
				}
			}
			switch mode {
			case "closehead":
				_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Ty")
				return
			case "cutstream":
				_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ndata:")
				return
			case "err500":
				_, _ = io.WriteString(conn, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom")
			case "unsolicited":
				// The stream and the bytes after it in one write, so they
				// arrive together: written 10 ms later, they once reached
				// a connection another request had taken from the pool in
				// between, whose record then said stream-cut (a race of
				// the test's own; the idle connection that gets late bytes
				// is TestLeanUnsolicitedBytes's).
				var b bytes.Buffer
				writeChunked(bufio.NewWriter(&b), sse(content("a"), finishStop, "[DONE]"), "")
				b.WriteString("HTTP/1.1 200 OK\r\n\r\n")
				_, _ = conn.Write(b.Bytes())
			case "hang":
				_, _ = io.Copy(io.Discard, br)
				return
			default:
				writeChunked(bw, sse(content("a"), finishStop, "[DONE]"), "")
			}
		}
	})
}

// edgeAllModes runs every mode rounds times at once on c and checks
// each record's kind.
func edgeAllModes(t *testing.T, c *Client, rounds int) {
	t.Helper()
	var wg sync.WaitGroup
	for round := range rounds {
		for _, m := range edgeModes {
			wg.Go(func() {
				var rec record.Record
				c.Do(t.Context(), Request{Messages: []Message{{Role: "user", Content: "mode=" + m.mode}}}, &rec)
				assert.Equal(t, m.want, rec.Error, "round %d, %s: %s", round, m.mode, rec.Message)
			})
		}
	}
	wg.Wait()
}

// TestLeanPoolAccountingAfterFailures guards what the review checked and
// found right: whatever way requests end (a clean stream, a close inside
// the head or the stream, an HTTP error, bytes after the response, the
// caller's cancellation), once none is in flight every connection the
// pool counts is idle in it, and a clean request still succeeds.
func TestLeanPoolAccountingAfterFailures(t *testing.T) {
	url := edgeModeServer(t)
	// No request waits for a connection (that would count in its timeout).
	c := edgeLean(t, url, Options{Concurrency: 18, RequestTimeout: 300 * time.Millisecond})
	edgeAllModes(t, c, 3)
	time.Sleep(50 * time.Millisecond) // the unsolicited bytes have arrived
	check := func(when string) {
		c.lean.mu.Lock()
		defer c.lean.mu.Unlock()
		assert.Equal(t, len(c.lean.idle), c.lean.total, "%s: every counted connection is idle", when)
		assert.LessOrEqual(t, c.lean.total, c.lean.max, when)
		for _, conn := range c.lean.idle {
			assert.Nil(t, conn.deadErr, "%s: no dead connection idles in the pool", when)
			assert.True(t, conn.inPool, when)
		}
	}
	check("after the failures")
	rec := do(t, c, t.Context(), Request{Messages: []Message{{Role: "user", Content: "mode=ok"}}})
	assert.Equal(t, record.OK, rec.Error, rec.Message)
	check("after a clean request")
}

// openFDs is what this process's descriptors refer to (the targets of
// /proc/self/fd: "socket:[inode]", "anon_inode:[eventpoll]", a path), each
// with how many descriptors refer to it.
func openFDs(t *testing.T) map[string]int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	out := map[string]int{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the descriptor ReadDir itself held, closed since
		}
		out[target]++
	}
	return out
}

// fdsAdded is what now has beyond before: descriptors opened since and
// still open. Descriptors that closed since (an earlier test's connections
// that its transport closed late) do not hide one that was added.
func fdsAdded(before, now map[string]int) []string {
	var added []string
	for target, n := range now {
		if n > before[target] {
			added = append(added, fmt.Sprintf("%s (%d more)", target, n-before[target]))
		}
	}
	slices.Sort(added)
	return added
}

// TestLeanDescriptorsAllClosed guards what the review checked and found
// right: after every way a request can end and the client's Close, the
// reactor closes every connection it opened, and its epoll and eventfd
// descriptors when it stops: the process has no descriptor it did not have
// before. Descriptors are compared by what they refer to, the epoll and
// eventfd ones by kind and count (the runtime's poller has one of each), so
// a reactor that kept its epoll descriptor shows as one eventpoll more.
//
// An earlier form compared the count of descriptors, which failed when an
// earlier test's connections closed during this one (12 before, 10 after).
func TestLeanDescriptorsAllClosed(t *testing.T) {
	before := openFDs(t)
	var r *reactor
	t.Run("load", func(t *testing.T) {
		url := edgeModeServer(t)
		c := edgeLean(t, url, Options{Concurrency: 18, RequestTimeout: 300 * time.Millisecond})
		r = c.lean.r
		edgeAllModes(t, c, 2)
		time.Sleep(50 * time.Millisecond) // the unsolicited bytes have arrived
	}) // its cleanup closes the client and the server
	if r == nil {
		return // skipped
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		running := r.running
		r.mu.Unlock()
		added := fdsAdded(before, openFDs(t))
		if !running && len(added) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("descriptors still open that were not before: %v (reactor running: %t)", added, running)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
