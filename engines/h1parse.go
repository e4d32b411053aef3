package engines

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
)

// h1Parser decodes one HTTP/1.1 response pushed to it in pieces as they
// arrive (the epoll reader reads, then feeds): its head, then its body,
// de-chunked. It accepts what net/http's client accepts, by the same
// rules: the head is parsed by http.ReadResponse itself, and the chunked
// framing follows net/http's reader (CRLF line ends, 4 KiB lines, at most
// 16 hex digits, extensions ignored, a CRLF after every chunk's data, at
// most 16 KiB of framing beyond what the data justifies, trailers read by
// textproto). FuzzH1Parser checks it against net/http on the same bytes.
type h1Parser struct {
	st     h1State
	head   []byte
	n1xx   int            // informational responses skipped
	resp   *http.Response // the head, once parsed
	remain uint64         // bodyLength: body bytes left; chunked: data bytes left in the chunk
	line   []byte         // chunked: a size line, the CRLF after a chunk's data, or the trailer, so far
	excess int64          // chunked: framing bytes beyond what the data justifies
	extra  bool           // bytes already taken in follow the response's end
	lineOK bool           // the current head's status line is in and parses
}

type h1State uint8

const (
	h1Head      h1State = iota // reading the head
	h1Length                   // a Content-Length body
	h1Close                    // a body that ends with the connection
	h1ChunkSize                // a chunk's size line
	h1ChunkData                // a chunk's data
	h1ChunkCRLF                // the CRLF after a chunk's data
	h1Trailer                  // the trailer after the last chunk
	h1Done                     // the response is complete
)

// h1Event is what a feed ended with.
type h1Event uint8

const (
	h1More     h1Event = iota // every byte was used; the response goes on
	h1HeadDone                // the head is parsed (resp is set); feed the rest again
	h1BodyDone                // the response is complete; bytes not used are not its own
)

// maxHeadBytes bounds a response head (status line and headers).
const maxHeadBytes = 1 << 20

// maxChunkLine is net/http's bound on a chunk-size line.
const maxChunkLine = 4096

// max1xx is net/http's bound on informational responses before the real one.
const max1xx = 5

// errTrailerEOF is net/http's error for a body cut inside its trailer.
var errTrailerEOF = errors.New("http: unexpected EOF reading trailer")

// feed consumes response bytes from b and returns how many it used. Body
// bytes go to body (slices of b, valid during the call only). It stops
// early after the head (h1HeadDone: inspect resp, then feed b[n:]) and at
// the end of the response (h1BodyDone).
func (p *h1Parser) feed(b []byte, body func([]byte) error) (int, h1Event, error) {
	used := 0
	for used < len(b) || p.st == h1Done {
		rest := b[used:]
		switch p.st {
		case h1Head:
			n, done, err := p.feedHead(rest)
			used += n
			if err != nil || !done {
				return used, h1More, err
			}
			if p.st == h1Head { // an informational response: the next head follows
				continue
			}
			if p.st == h1Done {
				return used, h1BodyDone, nil
			}
			return used, h1HeadDone, nil
		case h1Length:
			n := min(uint64(len(rest)), p.remain)
			if err := body(rest[:n]); err != nil {
				return used, h1More, err
			}
			used += int(n)
			if p.remain -= n; p.remain == 0 {
				p.st = h1Done
			}
		case h1Close:
			if err := body(rest); err != nil {
				return used, h1More, err
			}
			used += len(rest)
		case h1ChunkData:
			n := min(uint64(len(rest)), p.remain)
			if err := body(rest[:n]); err != nil {
				return used, h1More, err
			}
			used += int(n)
			if p.remain -= n; p.remain == 0 {
				p.st = h1ChunkCRLF
			}
		case h1ChunkCRLF:
			// Both bytes in this read (the common case) are checked where
			// they are; p.line, another cold cache line, holds a split pair.
			crlf := rest[:min(2, len(rest))]
			n := len(crlf)
			if len(p.line) > 0 || n < 2 {
				n = min(2-len(p.line), len(rest))
				p.line = append(p.line, rest[:n]...)
				crlf = p.line
			}
			used += n
			if len(crlf) < 2 {
				continue // every byte is used: the loop ends
			}
			if string(crlf) != "\r\n" {
				return used, h1More, errors.New("malformed chunked encoding")
			}
			p.line = p.line[:0]
			p.st = h1ChunkSize
		case h1ChunkSize:
			n, err := p.feedChunkSize(rest)
			used += n
			if err != nil {
				return used, h1More, err
			}
		case h1Trailer:
			n, err := p.feedTrailer(rest)
			used += n
			if err != nil {
				return used, h1More, err
			}
		case h1Done:
			return used, h1BodyDone, nil
		}
	}
	return used, h1More, nil
}

// feedHead collects the head until its blank line (a line ending in LF
// that is empty but for a CR, as textproto reads it) and parses it.
func (p *h1Parser) feedHead(b []byte) (int, bool, error) {
	old := len(p.head)
	p.head = append(p.head, b...)
	from := max(old-2, 0)
	end := -1
	for i := from; i < len(p.head); i++ {
		if p.head[i] != '\n' {
			continue
		}
		if i+1 < len(p.head) && p.head[i+1] == '\n' {
			end = i + 2
			break
		}
		if i+2 < len(p.head) && p.head[i+1] == '\r' && p.head[i+2] == '\n' {
			end = i + 3
			break
		}
	}
	if end < 0 && !p.lineOK {
		// A status line that is not HTTP fails now, as net/http's does
		// (it reads that line first), not when a blank line comes: a
		// peer that speaks another protocol may never send one.
		if i := bytes.IndexByte(p.head, '\n'); i >= 0 {
			first := append(p.head[:i+1:i+1], "\r\n"...)
			if _, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(first)), nil); err != nil {
				return len(b), false, err
			}
			p.lineOK = true
		}
	}
	if end < 0 {
		if len(p.head) > maxHeadBytes {
			return len(b), false, fmt.Errorf("net/http: server response headers exceeded %d bytes; aborted", maxHeadBytes)
		}
		return len(b), false, nil
	}
	used := end - old
	head := p.head[:end]
	resp, err := http.ReadResponse(bufio.NewReaderSize(bytes.NewReader(head), len(head)+16), nil)
	if err != nil {
		return used, false, err
	}
	p.head = p.head[:0]
	p.lineOK = false
	switch code := resp.StatusCode; {
	case code == http.StatusSwitchingProtocols:
		return used, false, errors.New("unexpected 101 Switching Protocols to a POST that asked for no upgrade")
	case code >= 100 && code < 200:
		if p.n1xx++; p.n1xx > max1xx {
			return used, false, errors.New("net/http: too many 1xx informational responses")
		}
		return used, true, nil
	}
	p.resp = resp
	switch {
	case resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified:
		p.st = h1Done
	case len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked":
		p.st = h1ChunkSize
	case resp.ContentLength == 0:
		p.st = h1Done
	case resp.ContentLength > 0:
		p.st, p.remain = h1Length, uint64(resp.ContentLength)
	default:
		p.st = h1Close
	}
	return used, true, nil
}

// feedChunkSize collects a chunk-size line and parses it.
func (p *h1Parser) feedChunkSize(b []byte) (int, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		p.line = append(p.line, b...)
		if len(p.line) > maxChunkLine+2 {
			return len(b), errors.New("header line too long")
		}
		return len(b), nil
	}
	used := i + 1
	line := b[:used] // the whole line in this read: parsed where it is
	if len(p.line) > 0 {
		p.line = append(p.line, line...)
		line = p.line
		p.line = p.line[:0]
	}
	if j := bytes.IndexByte(line, '\r'); j == -1 {
		return used, errors.New("chunked line ends with bare LF")
	} else if j != len(line)-2 {
		return used, errors.New("invalid CR in chunked line")
	}
	line = line[:len(line)-2]
	if len(line) >= maxChunkLine {
		return used, errors.New("header line too long")
	}
	p.excess += int64(len(line)) + 2
	for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
		line = line[:len(line)-1]
	}
	line, _, _ = bytes.Cut(line, []byte(";"))
	n, err := parseChunkSize(line)
	if err != nil {
		return used, err
	}
	// net/http's guard against a sender of mostly framing: 16 bytes and
	// twice the data size are free per chunk.
	p.excess = max(p.excess-(16+2*int64(n)), 0) // int64(n) wraps as net/http's does
	if p.excess > 16*1024 {
		return used, errors.New("chunked encoding contains too much non-data")
	}
	if n == 0 {
		p.st = h1Trailer
		return used, nil
	}
	p.st, p.remain = h1ChunkData, n
	return used, nil
}

// parseChunkSize is net/http's parseHexUint.
func parseChunkSize(v []byte) (uint64, error) {
	if len(v) == 0 {
		return 0, errors.New("empty hex number for chunk length")
	}
	var n uint64
	for i, c := range v {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, errors.New("invalid byte in chunk length")
		}
		if i == 16 {
			return 0, errors.New("http chunk length too large")
		}
		n = n<<4 | uint64(c)
	}
	return n, nil
}

// feedTrailer collects the trailer after the last chunk: a lone CRLF, or
// header lines up to a blank one, parsed by textproto as net/http does.
func (p *h1Parser) feedTrailer(b []byte) (int, error) {
	old := len(p.line)
	p.line = append(p.line, b...)
	if len(p.line) >= 2 && string(p.line[:2]) == "\r\n" {
		p.line = p.line[:0]
		p.st = h1Done
		return 2 - old, nil
	}
	if len(p.line) < 2 {
		return len(b), nil
	}
	end := bytes.Index(p.line, []byte("\r\n\r\n"))
	if end < 0 {
		if len(p.line) > 4096 {
			return len(b), errors.New("http: suspiciously long trailer after chunked body")
		}
		return len(b), nil
	}
	// textproto may end the header earlier, at a blank line of a bare
	// LF: the trailer is what it read.
	end += 4
	br := bufio.NewReaderSize(bytes.NewReader(p.line[:end]), end+16)
	if _, err := textproto.NewReader(br).ReadMIMEHeader(); err != nil {
		return len(b), err
	}
	end -= br.Buffered()
	p.line = p.line[:0]
	p.st = h1Done
	if end < old {
		// Bytes fed before this call follow the response.
		p.extra = true
		return 0, nil
	}
	return end - old, nil
}

// eof tells the parser that the connection ended. It completes a body
// that ends with the connection (h1BodyDone), and otherwise says what
// net/http would: nothing of the response (io.EOF), or a cut one.
func (p *h1Parser) eof() (h1Event, error) {
	switch p.st {
	case h1Done:
		return h1BodyDone, nil
	case h1Close:
		p.st = h1Done
		return h1BodyDone, nil
	case h1Head:
		if len(p.head) == 0 && p.n1xx == 0 {
			return h1More, io.EOF
		}
		return h1More, io.ErrUnexpectedEOF
	case h1Trailer:
		return h1More, errTrailerEOF
	default:
		return h1More, io.ErrUnexpectedEOF
	}
}

// done reports whether the response is complete.
func (p *h1Parser) done() bool { return p.st == h1Done }

// reset readies the parser for the next response on the connection.
func (p *h1Parser) reset() {
	*p = h1Parser{head: p.head[:0], line: p.line[:0]}
}
