package fake

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/inferbench/inferbench/internal/transcript"
)

// Replay is a server that plays one transcript (package transcript) back
// to every request, byte for byte: each recorded read is one write, at its
// recorded offset from the request's arrival divided by the speed factor,
// and the connection then ends as it did (closed, reset, or kept open for
// the next request, which gets the transcript again). What the engine
// sent is what the client gets; only the timing scales.
//
// It is not a simulated engine: it answers every request, whatever it
// asks, with the recording, and speaks only what the recording holds.
type Replay struct {
	tr    *transcript.Transcript
	speed float64
	ln    net.Listener

	mu       sync.Mutex
	conns    map[net.Conn]bool
	requests int
	closed   bool
	wg       sync.WaitGroup
}

// StartReplay serves tr on a free loopback port. speed > 1 plays faster
// than recorded, 0 plays without waiting; it must not be negative.
func StartReplay(tr *transcript.Transcript, speed float64) (*Replay, error) {
	if speed < 0 {
		return nil, errors.New("fake: replay speed must not be negative")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Replay{tr: tr, speed: speed, ln: ln, conns: map[net.Conn]bool{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// URL is the chat-completions URL to point a client at (any path gets the
// recording).
func (r *Replay) URL() string { return "http://" + r.ln.Addr().String() + "/v1/chat/completions" }

// Requests is how many requests the replay has answered.
func (r *Replay) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// Close stops the server and closes its connections.
func (r *Replay) Close() {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.ln.Close()
	r.wg.Wait()
}

func (r *Replay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			c.Close()
			return
		}
		r.conns[c] = true
		r.mu.Unlock()
		r.wg.Add(1)
		go r.serve(c)
	}
}

// serve answers each request on c with the recording, until the
// recording ends the connection or the client does.
func (r *Replay) serve(c net.Conn) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
		c.Close()
	}()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		start := time.Now()
		r.mu.Lock()
		r.requests++
		r.mu.Unlock()
		for _, rd := range r.tr.Reads {
			r.wait(start, rd.At)
			if _, err := c.Write(rd.Data); err != nil {
				return
			}
		}
		switch r.tr.End {
		case transcript.EOF:
			r.wait(start, r.tr.EndAt)
			return
		case transcript.Reset:
			r.wait(start, r.tr.EndAt)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // close with RST
			}
			return
		}
		// Open: the next request on this connection gets the recording
		// again (a keep-alive server's next answer).
	}
}

// wait waits until the recorded offset at, scaled by the speed: the bulk
// on a timer, the last 2 ms yielding the processor in a loop, since Go's
// timers wake up to a millisecond late and a late write would join the
// next one in the client's read (two reads 2.3 ms apart arrived together
// once, with a gap of 0).
func (r *Replay) wait(start time.Time, at time.Duration) {
	if r.speed == 0 {
		return
	}
	deadline := start.Add(time.Duration(float64(at) / r.speed))
	if d := time.Until(deadline); d > replaySpin {
		time.Sleep(d - replaySpin)
	}
	for time.Now().Before(deadline) {
		runtime.Gosched()
	}
}

// replaySpin is the part of a wait spent yielding rather than sleeping.
const replaySpin = 2 * time.Millisecond
