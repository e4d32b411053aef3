package engines

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// h1Result is what parsing a whole response gave.
type h1Result struct {
	status   int
	body     string
	close    bool // the connection cannot be reused
	complete bool // the response ended (before or at the connection's end)
	err      error
}

// parseH1 feeds raw to a parser in pieces of step bytes (0: all at once),
// then, if the response is not complete, the connection's end.
func parseH1(raw []byte, step int) h1Result {
	var p h1Parser
	var r h1Result
	var body bytes.Buffer
	out := func(b []byte) error { body.Write(b); return nil }
	if step <= 0 {
		step = len(raw) + 1
	}
	for len(raw) > 0 && !r.complete && r.err == nil {
		piece := raw[:min(step, len(raw))]
		for len(piece) > 0 {
			n, ev, err := p.feed(piece, out)
			piece = piece[n:]
			raw = raw[n:]
			if err != nil {
				r.err = err
				break
			}
			if ev == h1HeadDone {
				r.status, r.close = p.resp.StatusCode, p.resp.Close
			}
			if ev == h1BodyDone {
				r.complete = true
				break
			}
			if n == 0 {
				break
			}
		}
	}
	if !r.complete && r.err == nil {
		ev, err := p.eof()
		r.err, r.complete = err, ev == h1BodyDone
	}
	if p.resp != nil {
		r.status, r.close = p.resp.StatusCode, p.resp.Close
	}
	r.body = body.String()
	return r
}

// readH1 is the oracle: net/http's own reading of the same bytes, skipping
// informational responses as its transport does.
func readH1(raw []byte) h1Result {
	br := bufio.NewReader(bytes.NewReader(raw))
	for n1xx := 0; ; {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return h1Result{err: err}
		}
		if c := resp.StatusCode; c >= 100 && c < 200 {
			if c == 101 {
				return h1Result{err: io.ErrUnexpectedEOF}
			}
			if n1xx++; n1xx > max1xx {
				return h1Result{err: io.ErrUnexpectedEOF}
			}
			continue
		}
		b, err := io.ReadAll(resp.Body)
		return h1Result{status: resp.StatusCode, body: string(b), close: resp.Close, complete: err == nil, err: err}
	}
}

func TestH1Parser(t *testing.T) {
	const sseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct {
		name string
		raw  string
		want h1Result
	}{
		// The common case: a chunked event stream, one event per chunk.
		{"chunked", sseHead + "6\r\ndata: \r\n5\r\nx\n\nok\r\n0\r\n\r\n",
			h1Result{status: 200, body: "data: x\n\nok", complete: true}},
		// Chunk extensions are ignored, hex is case-blind, trailers are read.
		{"extensions and trailer", sseHead + "A;name=v\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
			h1Result{status: 200, body: "0123456789", complete: true}},
		// A Content-Length body.
		{"length", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nbusy!",
			h1Result{status: 503, body: "busy!", complete: true}},
		// No length, not chunked: the body ends with the connection, which
		// then cannot be reused.
		{"close-delimited", "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: a\n\n",
			h1Result{status: 200, body: "data: a\n\n", close: true, complete: true}},
		// Informational responses before the real one are skipped.
		{"103 first", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
			h1Result{status: 200, body: "ok", complete: true}},
		// 204 has no body whatever it says.
		{"204", "HTTP/1.1 204 No Content\r\n\r\n", h1Result{status: 204, complete: true}},
		// Connection: close is reported.
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
			h1Result{status: 200, body: "x", close: true, complete: true}},
		// A bare LF ends a chunk-size line: refused, as net/http does.
		{"bare LF", sseHead + "3\nabc\r\n0\r\n\r\n", h1Result{status: 200, err: errAny}},
		// Chunk data not followed by CRLF.
		{"no CRLF after data", sseHead + "3\r\nabcX\r\n0\r\n\r\n", h1Result{status: 200, body: "abc", err: errAny}},
		// Not hex.
		{"bad size", sseHead + "zz\r\n", h1Result{status: 200, err: errAny}},
		// A chunk cut by the connection's end.
		{"cut chunk", sseHead + "10\r\nabc", h1Result{status: 200, body: "abc", err: io.ErrUnexpectedEOF}},
		// Nothing at all: io.EOF, as from a server that closed at once.
		{"empty", "", h1Result{err: io.EOF}},
		// Half a status line.
		{"half head", "HTTP/1.1 2", h1Result{err: io.ErrUnexpectedEOF}},
		// Not HTTP.
		{"garbage", "hello\r\n\r\n", h1Result{err: errAny}},
	}
	for _, tt := range tests {
		for _, step := range []int{0, 1, 3, 7} {
			got := parseH1([]byte(tt.raw), step)
			if tt.want.err != nil {
				require.Error(t, got.err, "%s, step %d", tt.name, step)
				if tt.want.err != errAny {
					assert.ErrorIs(t, got.err, tt.want.err, "%s, step %d", tt.name, step)
				}
				got.err = tt.want.err
			}
			assert.Equal(t, tt.want, got, "%s, step %d", tt.name, step)
		}
	}
}

// errAny in a want says "some error".
var errAny = io.ErrNoProgress

// h1Seeds are whole responses for FuzzH1Parser.
var h1Seeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n6\r\ndata: \r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nA: b\r\n\r\n",
	"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\nbad",
	"HTTP/1.0 200 OK\r\n\r\nuntil close",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n1\r\na\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
	"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\n",
}

// FuzzH1Parser checks the push parser against net/http on the same bytes,
// fed in pieces of every size: what net/http accepts it accepts with the
// same status, body and reuse verdict; what net/http refuses it refuses.
func FuzzH1Parser(f *testing.F) {
	for _, s := range h1Seeds {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, raw []byte, step uint8) {
		want := readH1(raw)
		got := parseH1(raw, int(step))
		if want.err != nil {
			if got.err == nil {
				t.Fatalf("net/http refused %q (%v), the parser accepted it: %+v", raw, want.err, got)
			}
			return
		}
		if got.err != nil {
			t.Fatalf("net/http accepted %q (%+v), the parser refused it: %v", raw, want, got.err)
		}
		if got != want {
			t.Fatalf("%q: net/http %+v, parser %+v", raw, want, got)
		}
	})
}
