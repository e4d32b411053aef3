package engines

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// piecesReader returns one piece per Read, then io.EOF (or err).
type piecesReader struct {
	pieces []string
	err    error
}

func (p *piecesReader) Read(b []byte) (int, error) {
	if len(p.pieces) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		return 0, io.EOF
	}
	n := copy(b, p.pieces[0])
	if n < len(p.pieces[0]) {
		p.pieces[0] = p.pieces[0][n:]
	} else {
		p.pieces = p.pieces[1:]
	}
	return n, nil
}

// readCounter is a stamp function: the n-th Read is stamped n (in ns).
type readCounter struct{ n time.Duration }

func (c *readCounter) stamp() time.Duration { c.n++; return c.n }

type sseEvent struct {
	data string
	read time.Duration // which Read completed it (1-based)
}

// collect reads every event and the final error.
func collect(t *testing.T, r io.Reader, bufSize int) ([]sseEvent, error) {
	t.Helper()
	var rc readCounter
	s := newSSEReader(r, rc.stamp, bufSize)
	var out []sseEvent
	for range 100000 {
		d, at, err := s.Next()
		if err != nil {
			return out, err
		}
		out = append(out, sseEvent{string(d), at})
	}
	t.Fatal("too many events")
	return nil, nil
}

func TestSSEReader(t *testing.T) {
	tests := []struct {
		name   string
		pieces []string
		want   []sseEvent
	}{
		// One event in one read.
		{"single", []string{"data: {\"a\":1}\n\n"}, []sseEvent{{`{"a":1}`, 1}}},
		// Several events in one read share its stamp.
		{"several in one read", []string{"data: a\n\ndata: b\n\ndata: c\n\n"}, []sseEvent{{"a", 1}, {"b", 1}, {"c", 1}}},
		// An event split across reads is stamped by the read that completes it.
		{"split across reads", []string{"da", "ta: hel", "lo\n", "\n"}, []sseEvent{{"hello", 4}}},
		// CRLF line endings.
		{"crlf", []string{"data: a\r\n\r\ndata: b\r\n\r\n"}, []sseEvent{{"a", 1}, {"b", 1}}},
		// CR-only line endings.
		{"cr", []string{"data: a\r\rdata: b\r\r"}, []sseEvent{{"a", 1}, {"b", 1}}},
		// A CRLF split between reads is one line ending, not two; the event
		// ends at the blank line's '\r' (read 2), not at its trailing '\n'.
		{"crlf split", []string{"data: a\r", "\n\r", "\n", "data: b\n\n"}, []sseEvent{{"a", 2}, {"b", 4}}},
		// Comments and keep-alives are skipped.
		{"comments", []string{": keep-alive\n\n:ping\ndata: x\n\n"}, []sseEvent{{"x", 1}}},
		// Multi-line data is joined with newlines.
		{"multi-line data", []string{"data: line1\ndata: line2\ndata:line3\n\n"}, []sseEvent{{"line1\nline2\nline3", 1}}},
		// Only one space after the colon is dropped.
		{"two spaces", []string{"data:  x\n\n"}, []sseEvent{{" x", 1}}},
		// A data field without colon is an empty data line; alone, it is not dispatched.
		{"bare data", []string{"data\n\ndata: y\n\n"}, []sseEvent{{"y", 1}}},
		// event, id and retry fields are ignored; the data still arrives.
		{"other fields", []string{"event: message\nid: 7\nretry: 10\ndata: z\n\n"}, []sseEvent{{"z", 1}}},
		// An event without data is not dispatched.
		{"no data", []string{"event: ping\n\ndata: d\n\n"}, []sseEvent{{"d", 1}}},
		// The [DONE] sentinel is an ordinary event to the reader.
		{"done", []string{"data: [DONE]\n\n"}, []sseEvent{{"[DONE]", 1}}},
		// An unterminated last event is discarded.
		{"unterminated", []string{"data: a\n\ndata: b\n"}, []sseEvent{{"a", 1}}},
		// Byte-by-byte delivery.
		{"byte by byte", strings.Split("data: ab\n\n", ""), []sseEvent{{"ab", 10}}},
		// Blank lines alone dispatch nothing.
		{"blank lines only", []string{"\n\n\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collect(t, &piecesReader{pieces: append([]string(nil), tt.pieces...)}, 0)
			require.ErrorIs(t, err, io.EOF)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestSSEReaderSmallBufferGrowsAndCompacts(t *testing.T) {
	// A 16-byte buffer must grow for a long line and compact between events.
	long := strings.Repeat("x", 1000)
	in := "data: " + long + "\n\ndata: a\ndata: b\n\n" + "data: tail\n\n"
	got, err := collect(t, strings.NewReader(in), 16)
	require.ErrorIs(t, err, io.EOF)
	require.Len(t, got, 3)
	assert.Equal(t, long, got[0].data)
	assert.Equal(t, "a\nb", got[1].data)
	assert.Equal(t, "tail", got[2].data)
}

func TestSSEReaderReadError(t *testing.T) {
	// Bytes before a read error are delivered; then the error.
	boom := errors.New("connection reset")
	got, err := collect(t, &piecesReader{pieces: []string{"data: a\n\ndata: par"}, err: boom}, 0)
	require.ErrorIs(t, err, boom)
	assert.Equal(t, []sseEvent{{"a", 1}}, got)
}

// refSplit is a simple, whole-input reference for the reader.
func refSplit(in string) []string {
	in = strings.ReplaceAll(in, "\r\n", "\n")
	in = strings.ReplaceAll(in, "\r", "\n")
	lines := strings.Split(in, "\n")
	lines = lines[:len(lines)-1] // the last piece is not a complete line
	var out []string
	var data []string
	has := false
	for _, l := range lines {
		if l == "" {
			if has && strings.Join(data, "\n") != "" {
				out = append(out, strings.Join(data, "\n"))
			}
			data, has = nil, false
			continue
		}
		if strings.HasPrefix(l, ":") {
			continue
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			name, value = l, ""
		}
		value = strings.TrimPrefix(value, " ")
		if name == "data" {
			data = append(data, value)
			has = true
		}
	}
	return out
}

func FuzzSSE(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\n\n"), uint8(3))
	f.Add([]byte("data: a\r\ndata: b\r\n\r\n: c\n\n"), uint8(1))
	f.Add([]byte("data: a\r\rdata\n\nevent: x\ndata:  y\n\n"), uint8(2))
	f.Add([]byte("data: [DONE]\n\ndata: tail"), uint8(7))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		// Deliver the input in pieces of step+1 bytes through a small buffer.
		n := int(step) + 1
		var pieces []string
		for i := 0; i < len(in); i += n {
			pieces = append(pieces, string(in[i:min(i+n, len(in))]))
		}
		got, err := collect(t, &piecesReader{pieces: pieces}, 8)
		require.ErrorIs(t, err, io.EOF)
		var data []string
		for _, e := range got {
			data = append(data, e.data)
		}
		assert.Equal(t, refSplit(string(in)), data)
	})
}

// collectPushed feeds in to a push-mode reader (as the epoll reader does)
// in pieces of n bytes, each in a scratch buffer that is overwritten once
// the reader has settled, and returns the events and their read numbers:
// an event whose data still pointed into an earlier read's bytes would
// come out as garbage.
func collectPushed(t *testing.T, in []byte, n int) []sseEvent {
	t.Helper()
	sr := newSSEReader(nil, nil, 8)
	scratch := make([]byte, n)
	var out []sseEvent
	take := func() {
		for {
			d, at, ok, err := sr.next()
			if !ok {
				if err != nil {
					require.ErrorIs(t, err, io.EOF)
				}
				return
			}
			out = append(out, sseEvent{string(d), at})
		}
	}
	seq := 0
	for i := 0; i < len(in); i += n {
		seq++
		p := scratch[:copy(scratch, in[i:min(i+n, len(in))])]
		require.NoError(t, sr.push(p, time.Duration(seq), seq))
		take()
		require.NoError(t, sr.settle())
		for k := range scratch {
			scratch[k] = 'X'
		}
	}
	sr.finish(io.EOF, time.Duration(seq+1))
	take()
	return out
}

// TestSSEPushInPlace: push mode reads events where the caller's bytes
// are and keeps only what is unfinished; the events and their stamps are
// those of the pull reader on the same pieces. On a settle that left the
// pending data line pointing into the caller's bytes, "pending data line"
// returns the scribbled bytes.
func TestSSEPushInPlace(t *testing.T) {
	tests := []struct {
		name string
		in   string
		step int
		want []sseEvent
	}{
		// Whole events in each read: read in place.
		{"whole events", "data: a\n\ndata: b\n\n", 9, []sseEvent{{"a", 1}, {"b", 2}}},
		// An event split inside its data line.
		{"split data line", "data: hello\n\n", 8, []sseEvent{{"hello", 2}}},
		// The data line complete, the blank line in the next read.
		{"pending data line", "data: hello\ndata: world\n\n", 12, []sseEvent{{"hello\nworld", 3}}},
		// CR at the end of one read, LF at the start of the next.
		{"crlf split", "data: a\r\n\r\ndata: b\r\n\r\n", 8, []sseEvent{{"a", 2}, {"b", 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, collectPushed(t, []byte(tt.in), tt.step))
		})
	}
}

// FuzzSSEPush checks push mode (in place, settled after every read, the
// caller's bytes scribbled after) against the reference split.
func FuzzSSEPush(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\n\n"), uint8(3))
	f.Add([]byte("data: a\r\ndata: b\r\n\r\n: c\n\n"), uint8(1))
	f.Add([]byte("data: a\r\rdata\n\nevent: x\ndata:  y\n\n"), uint8(2))
	f.Add([]byte("data: [DONE]\n\ndata: tail"), uint8(7))
	f.Add([]byte("data: hello\ndata: world\n\n"), uint8(11))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		var data []string
		for _, e := range collectPushed(t, in, int(step)+1) {
			data = append(data, e.data)
		}
		assert.Equal(t, refSplit(string(in)), data)
	})
}
