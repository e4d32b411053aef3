package engines

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// maxEventBytes bounds one event (all its data lines together): a server that
// streams megabytes without a blank line is broken, not slow.
const maxEventBytes = 8 << 20

// errEventTooLarge is returned when one event exceeds maxEventBytes.
var errEventTooLarge = fmt.Errorf("an SSE event exceeds %d bytes without ending", maxEventBytes)

// sseReader splits a text/event-stream body into events (the concatenated
// data fields of one event) and stamps each with the time of the Read that
// delivered the bytes completing it. It follows the WHATWG event-stream
// rules that matter here: lines end with "\n", "\r\n" or "\r"; a blank line
// ends an event; lines starting with ':' are comments; "data" fields are
// joined with "\n" and one space after the colon is dropped; other fields
// (event, id, retry) are ignored; an event without data is not dispatched,
// and an unterminated event at end of stream is discarded.
//
// It makes no allocation per event once its buffers have grown: the data of
// a one-line event is returned as a slice of the read buffer, and only
// multi-line events (or lines split across reads and compacted) are copied
// into a reused buffer.
type sseReader struct {
	r     io.Reader
	stamp func() time.Duration

	buf        []byte
	start, end int // unprocessed bytes are buf[start:end]
	readAt     time.Duration
	reads      int  // reads that returned bytes
	pushSeq    int  // push mode: the seq of the last push
	skipLF     bool // the previous line ended with '\r': a leading '\n' belongs to it
	err        error

	data    []byte // accumulated data of the current event
	hasData bool   // a data field was seen in the current event
	single  []byte // the current event's only data line, still inside buf
	nData   int    // data lines in the current event

	// lent is true while buf is the caller's bytes (push mode, see
	// push); own is then the reader's buffer.
	lent bool
	own  []byte
}

func newSSEReader(r io.Reader, stamp func() time.Duration, bufSize int) *sseReader {
	if bufSize <= 0 {
		bufSize = 8 << 10 // it grows for longer events (fill); reads of a chunked body return a chunk or less
	}
	return &sseReader{r: r, stamp: stamp, buf: make([]byte, bufSize)}
}

func (s *sseReader) reset(r io.Reader) {
	if s.lent {
		s.buf, s.own, s.lent = s.own, nil, false
		s.single = nil
	}
	s.r = r
	s.start, s.end = 0, 0
	s.readAt = 0
	s.reads = 0
	s.pushSeq = 0
	s.skipLF = false
	s.err = nil
	s.resetEvent()
}

func (s *sseReader) resetEvent() {
	s.data = s.data[:0]
	s.hasData = false
	s.single = nil
	s.nData = 0
}

// Next returns the next event's data and the time the bytes completing it
// were read. The data is valid until the next call. At the end of the
// stream it returns io.EOF (a clean end) or the read error.
func (s *sseReader) Next() (data []byte, at time.Duration, err error) {
	for {
		data, at, ok, err := s.next()
		if ok || err != nil {
			return data, at, err
		}
		if err := s.fill(); err != nil {
			s.err = err
		}
	}
}

// next returns the next event among the bytes already buffered (ok), or
// the stream's end once no complete event is left (err: io.EOF or the
// read error), or neither when it needs more bytes (fill, or push in push
// mode).
func (s *sseReader) next() (data []byte, at time.Duration, ok bool, err error) {
	// Process every complete line already buffered.
	for s.start < s.end {
		if s.skipLF {
			s.skipLF = false
			if s.buf[s.start] == '\n' {
				s.start++
				continue
			}
		}
		rest := s.buf[s.start:s.end]
		i := lineEnd(rest)
		if i < 0 {
			break // incomplete line: read more
		}
		line := rest[:i]
		if rest[i] == '\r' {
			s.skipLF = true
		}
		s.start += i + 1
		if len(line) == 0 {
			if s.dispatchable() {
				return s.eventData(), s.readAt, true, nil
			}
			s.resetEvent()
			continue
		}
		if err := s.field(line); err != nil {
			return nil, s.readAt, false, err
		}
	}
	if s.err != nil {
		return nil, s.readAt, false, s.err
	}
	return nil, 0, false, nil
}

// push is fill for push mode (no reader: the caller reads): it appends p,
// body bytes delivered by the read numbered seq (reads with the same seq
// count once), stamped at. Take the events it completes with next before
// pushing more, or they take the later read's stamp.
func (s *sseReader) push(p []byte, at time.Duration, seq int) error {
	if len(p) == 0 {
		return nil
	}
	if seq != s.pushSeq {
		s.pushSeq = seq
		s.reads++
	}
	s.readAt = at
	if err := s.settle(); err != nil {
		return err
	}
	if s.start == s.end {
		// Nothing is pending: read the events in p where it is, and
		// copy only what is left of them when the caller settles.
		s.own, s.buf, s.lent = s.buf, p, true
		s.start, s.end = 0, len(p)
		return nil
	}
	return s.add(p)
}

// add copies p to the end of the buffer, making room (compacting or
// growing it) as it goes.
func (s *sseReader) add(p []byte) error {
	for len(p) > 0 {
		if err := s.room(); err != nil {
			return err
		}
		n := copy(s.buf[s.end:], p)
		s.end += n
		p = p[n:]
	}
	return nil
}

// settle ends push's use of the caller's bytes: what next has not taken
// of them (an unfinished line, the pending event's data line) is copied
// into the reader's buffer. Call it before those bytes change.
func (s *sseReader) settle() error {
	if !s.lent {
		return nil
	}
	rest := s.buf[s.start:s.end]
	if s.single != nil {
		s.data = append(s.data[:0], s.single...)
		s.single = nil
	}
	s.buf, s.own, s.lent = s.own, nil, false
	s.start, s.end = 0, 0
	return s.add(rest)
}

// finish marks the end of the stream in push mode: err is io.EOF for a clean
// end, or what broke it, at the time at; next returns it (stamped at) once
// the buffered events are taken.
func (s *sseReader) finish(err error, at time.Duration) {
	if s.err == nil {
		s.err = err
		s.readAt = at
	}
}

// lineEnd is the index of the first '\r' or '\n' in b, or -1. Two
// vectorised IndexByte scans beat IndexAny's byte-at-a-time set lookup;
// '\r' is looked for only before the first '\n'.
func lineEnd(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	head := b
	if i >= 0 {
		head = b[:i]
	}
	if j := bytes.IndexByte(head, '\r'); j >= 0 {
		return j
	}
	return i
}

// dispatchable reports whether the event has data to hand out, and resets
// the per-event state on the next call (the returned slice stays valid
// until then).
func (s *sseReader) dispatchable() bool {
	return s.hasData && (s.nData > 1 || len(s.single) > 0 || len(s.data) > 0)
}

// eventData returns the current event's data and clears the event.
func (s *sseReader) eventData() []byte {
	var d []byte
	if s.nData == 1 && s.single != nil {
		d = s.single
	} else {
		d = s.data
	}
	s.data = s.data[:0]
	s.hasData = false
	s.single = nil
	s.nData = 0
	return d
}

// field handles one non-empty line.
func (s *sseReader) field(line []byte) error {
	if line[0] == ':' {
		return nil // comment or keep-alive
	}
	name, value := line, []byte(nil)
	if c := bytes.IndexByte(line, ':'); c >= 0 {
		name, value = line[:c], line[c+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	if string(name) != "data" {
		return nil // event, id, retry and unknown fields do not matter here
	}
	s.hasData = true
	s.nData++
	switch s.nData {
	case 1:
		// Keep a view into buf; fill copies it out before compacting.
		s.single = value
		if value == nil {
			s.single = s.buf[s.start:s.start] // empty, non-nil
		}
	default:
		if s.single != nil {
			// The first line still lives in buf: move it out.
			s.data = append(s.data[:0], s.single...)
			s.single = nil
		}
		if len(s.data)+1+len(value) > maxEventBytes {
			return errEventTooLarge
		}
		s.data = append(s.data, '\n')
		s.data = append(s.data, value...)
	}
	return nil
}

// room makes space at the end of the buffer: it compacts, or grows the
// buffer when it is full of one event.
func (s *sseReader) room() error {
	if s.start > 0 {
		if s.single != nil {
			// The pending one-line event's bytes are about to move.
			s.data = append(s.data[:0], s.single...)
			s.single = nil
		}
		n := copy(s.buf, s.buf[s.start:s.end])
		s.start, s.end = 0, n
	}
	if s.end == len(s.buf) {
		if len(s.buf) >= maxEventBytes {
			return errEventTooLarge
		}
		nb := make([]byte, 2*len(s.buf))
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	return nil
}

// fill reads more bytes, compacting or growing the buffer first, and stamps
// the read.
func (s *sseReader) fill() error {
	if err := s.room(); err != nil {
		return err
	}
	for range 100 {
		n, err := s.r.Read(s.buf[s.end:])
		if n > 0 {
			s.readAt = s.stamp()
			s.reads++
			s.end += n
			if err != nil && !errors.Is(err, io.EOF) {
				s.err = err // deliver the bytes first, the error after
			} else if err != nil {
				s.err = io.EOF
			}
			return nil
		}
		if err != nil {
			s.readAt = s.stamp()
			return err
		}
	}
	return io.ErrNoProgress
}
