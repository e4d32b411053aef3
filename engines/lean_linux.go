package engines

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/inferbench/inferbench/internal/record"
)

// leanSupported says the epoll reader exists on this system.
const leanSupported = true

// idleConnTimeout is how long an idle connection is kept (net/http's
// IdleConnTimeout as newTransport sets it).
const idleConnTimeout = 90 * time.Second

// leanTransport is the epoll reader's HTTP/1.1 transport for one client:
// a pool of kept-alive connections to the engine's host, each registered
// with the client's reactor, which reads and parses every response.
type leanTransport struct {
	c        *Client
	r        *reactor
	hostname string // to resolve
	port     uint16
	head     []byte // the request head up to Content-Length's value
	closeReq []byte // the same with Connection: close
	max      int
	rxStamps bool // take kernel receive times (the client's clock is the real one)
	// allRx is true while every read so far had its kernel receive time:
	// only then may the reactor read late (coalesceWindow).
	allRx atomic.Bool
	// coalesce is coalesceWindow when the transport was built.
	coalesce time.Duration

	// mu guards the pool and every connection's st, deadErr and inPool.
	mu      sync.Mutex
	idle    []*h1conn
	total   int
	waiters []chan struct{}
	fresh   bool // NewConnectionPerRequest: a connection per request
}

// newLeanTransport builds the epoll reader's transport for c, or returns
// nil where net/http must serve: https, HTTP/2, a custom transport, a
// proxy, or Options.NetHTTP / INFERBENCH_NET_HTTP=1.
func newLeanTransport(c *Client, u *url.URL, o Options) *leanTransport {
	if o.Transport != nil || o.HTTP2 || o.NetHTTP || envNetHTTP || u.Scheme != "http" {
		return nil
	}
	if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err != nil || p != nil {
		return nil
	}
	port := uint16(80)
	if ps := u.Port(); ps != "" {
		n, err := strconv.ParseUint(ps, 10, 16)
		if err != nil {
			return nil
		}
		port = uint16(n)
	}
	t := &leanTransport{c: c, hostname: u.Hostname(), port: port, max: o.Concurrency + extraConns, rxStamps: o.Now == nil}
	t.allRx.Store(t.rxStamps)
	t.coalesce = coalesceWindow
	t.r = newReactor(c)
	t.head, t.closeReq = t.requestHead(u, false), t.requestHead(u, true)
	return t
}

// requestHead writes the request line and headers, as net/http would send
// them for c.newRequest (with DisableCompression: no Accept-Encoding), up
// to the Content-Length value.
func (t *leanTransport) requestHead(u *url.URL, closeConn bool) []byte {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "text/event-stream")
	t.c.setHeaders(h)
	if u.User != nil && h.Get("Authorization") == "" {
		// As net/http does for credentials in the URL.
		req := &http.Request{Header: h}
		pw, _ := u.User.Password()
		req.SetBasicAuth(u.User.Username(), pw)
	}
	if closeConn {
		h.Set("Connection", "close")
	}
	var b bytes.Buffer
	b.WriteString("POST " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n")
	_ = h.Write(&b) // it turns CR and LF inside values into spaces
	b.WriteString("Content-Length: ")
	return b.Bytes()
}

// h1conn is one connection of the pool.
type h1conn struct {
	fd            int
	slot, gen     int32
	uses          int // requests carried, this one included (its holder's)
	rxStamps      bool
	local, remote net.Addr
	closed        chan struct{} // closed when the reactor closed it

	// The reactor loop's own.
	closedByLoop, quiet bool
	lastSt              *h1stream // the stream the loop last handed bytes (touch)

	// Guarded by the transport's mu.
	st        *h1stream // the request it carries, until released
	deadErr   error     // it ended (or misbehaved) while carrying no request
	inPool    bool
	idleSince time.Time
}

// current is the stream the connection carries (nil: none, or ended),
// or, with none, marks the connection dead with cause and closes it if it
// is idle in the pool; the reactor calls it for every read.
func (t *leanTransport) current(conn *h1conn, cause error) *h1stream {
	t.mu.Lock()
	st := conn.st
	if st != nil && !st.ended {
		t.mu.Unlock()
		return st
	}
	if conn.deadErr == nil {
		conn.deadErr = cause
	}
	pooled := conn.inPool
	if pooled {
		t.removeIdle(conn)
		t.total--
		t.notify()
	}
	t.mu.Unlock()
	t.r.quiet(conn)
	if pooled {
		t.r.closeConn(conn)
	}
	return nil
}

// removeIdle takes conn out of the idle list. t.mu is held.
func (t *leanTransport) removeIdle(conn *h1conn) {
	for i, ic := range t.idle {
		if ic == conn {
			t.idle = append(t.idle[:i], t.idle[i+1:]...)
			break
		}
	}
	conn.inPool = false
}

// notify wakes every goroutine waiting for a connection. t.mu is held.
func (t *leanTransport) notify() {
	for _, w := range t.waiters {
		close(w)
	}
	t.waiters = t.waiters[:0]
}

// get returns a connection for a request: the most recently idle one, or
// a new one (always new when fresh), waiting while max are open. Its
// set-up goes into rec (DNS, Dial).
func (t *leanTransport) get(ctx context.Context, rec *record.Record, fresh bool) (*h1conn, error) {
	for {
		t.mu.Lock()
		// A fresh connection (a retry, or one per request) leaves the
		// idle ones to other requests.
		mustDial := fresh || t.fresh
		for !mustDial && len(t.idle) > 0 {
			conn := t.idle[len(t.idle)-1]
			t.idle = t.idle[:len(t.idle)-1]
			conn.inPool = false
			if conn.deadErr != nil || time.Since(conn.idleSince) > idleConnTimeout {
				t.total--
				t.r.command(reactorCmd{conn: conn})
				continue
			}
			t.mu.Unlock()
			conn.uses++
			return conn, nil
		}
		if t.total < t.max {
			t.total++
			t.mu.Unlock()
			conn, err := t.dial(ctx, rec)
			if err != nil {
				t.mu.Lock()
				t.total--
				t.notify()
				t.mu.Unlock()
				return nil, err
			}
			conn.uses = 1
			return conn, nil
		}
		if mustDial && len(t.idle) > 0 {
			// At the limit: the oldest idle connection makes room.
			conn := t.idle[0]
			t.idle = t.idle[1:]
			conn.inPool = false
			t.total--
			t.r.command(reactorCmd{conn: conn})
			t.mu.Unlock()
			continue
		}
		w := make(chan struct{})
		t.waiters = append(t.waiters, w)
		t.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// release gives back a connection after its request: to the pool when
// its response ended cleanly, else to be closed.
func (t *leanTransport) release(conn *h1conn, reusable bool) {
	t.mu.Lock()
	conn.st = nil
	if reusable && conn.deadErr == nil && !t.fresh {
		conn.inPool = true
		conn.idleSince = time.Now()
		t.idle = append(t.idle, conn)
		t.notify()
		t.mu.Unlock()
		return
	}
	t.total--
	t.notify()
	t.mu.Unlock()
	t.r.command(reactorCmd{conn: conn})
}

// closeIdle closes every idle connection.
func (t *leanTransport) closeIdle() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.total -= len(idle)
	for _, conn := range idle {
		conn.inPool = false
	}
	t.notify()
	t.mu.Unlock()
	for _, conn := range idle {
		t.r.command(reactorCmd{conn: conn})
	}
}

// newConnectionPerRequest makes every later request dial its own
// connection and close it after.
func (t *leanTransport) newConnectionPerRequest() {
	t.mu.Lock()
	t.fresh = true
	t.mu.Unlock()
	t.closeIdle()
}

// dial connects to the engine: the name resolved first when it is not an
// address (rec.DNS), then a TCP connection (rec.Dial) with net.Dialer's
// timeout and keep-alive, taken out of Go's poller and registered with
// the reactor.
func (t *leanTransport) dial(ctx context.Context, rec *record.Record) (*h1conn, error) {
	now := t.c.now
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(t.hostname); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		t0 := now()
		addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", t.hostname)
		rec.DNS = now().Sub(t0)
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
		}
	}
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t0 := now()
	var nc net.Conn
	var err error
	for _, a := range addrs {
		if nc, err = d.DialContext(ctx, "tcp", netip.AddrPortFrom(a.Unmap(), t.port).String()); err == nil {
			break
		}
	}
	rec.Dial = now().Sub(t0)
	if err != nil {
		return nil, err
	}
	conn := &h1conn{local: nc.LocalAddr(), remote: nc.RemoteAddr(), closed: make(chan struct{})}
	if conn.fd, err = dupFD(nc); err != nil {
		return nil, err
	}
	if t.rxStamps {
		conn.rxStamps = unix.SetsockoptInt(conn.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) == nil
	}
	if !conn.rxStamps {
		t.allRx.Store(false)
	}
	if err := t.r.register(conn); err != nil {
		_ = unix.Close(conn.fd)
		return nil, err
	}
	return conn, nil
}

// h1stream is one request's response as the reactor reads it.
type h1stream struct {
	t      *leanTransport
	conn   *h1conn
	ctx    context.Context
	rec    *record.Record
	info   *streamInfo
	req    Request
	reused bool
	wrote  time.Duration // when the request's write began: no stamp is earlier

	// The reactor loop's own, until done is closed.
	p        h1Parser
	phase    h1Phase
	sr       *sseReader
	ss       *streamState
	errBody  []byte
	gotBytes bool
	drained  int
	drainBy  time.Time
	at       time.Duration // the current read's stamp
	readAt   time.Duration // its read time
	seq      int
	bodyFn   func([]byte) error

	// The outcome, set before done is closed.
	ended     bool
	reusable  bool
	deadReuse bool // the kept-alive connection was dead: nothing was answered
	cause     error
	done      chan struct{}
}

type h1Phase uint8

const (
	phHead    h1Phase = iota // waiting for the head
	phSSE                    // reading the event stream
	phErrBody                // reading an error body
	phDrain                  // the events are over: waiting for the body's end
)

// errStop ends a feed when the stream ended inside it.
var errStop = errors.New("stream ended")

// do sends one request on the lean transport and waits for the reactor
// to finish its record. A request whose kept-alive connection turns out
// dead before any byte of the response is sent once more, on a new
// connection (as the net/http path does).
func (t *leanTransport) do(ctx context.Context, req Request, rec *record.Record, info *streamInfo, body []byte) {
	c := t.c
	msg := t.message(body)
	for attempt := 0; ; attempt++ {
		rec.Sent = c.since()
		rec.DNS, rec.Dial = 0, 0
		conn, err := t.get(ctx, rec, attempt > 0)
		if err != nil {
			c.transportFailure(ctx, rec, err, true)
			return
		}
		rec.GotConn = c.since()
		rec.ConnReused, rec.NewConn = conn.uses > 1, conn.uses == 1
		if rec.ConnReused {
			rec.DNS, rec.Dial = 0, 0
		}
		info.connClosed = conn.closed
		st := &h1stream{t: t, conn: conn, ctx: ctx, rec: rec, info: info, req: req, reused: rec.ConnReused, done: make(chan struct{})}
		st.bodyFn = st.body
		st.wrote = c.since() // before the reactor can see the stream
		t.mu.Lock()
		dead := conn.deadErr
		if dead == nil {
			conn.st = st
		}
		t.mu.Unlock()
		wroteAll := false // a connection is reused only after its whole request went out
		if dead == nil {
			err := sendAll(conn.fd, msg, st.done, ctx.Done())
			wroteAll = err == nil
			if err != nil && err != errAbandoned {
				t.r.command(reactorCmd{st: st, cause: &net.OpError{Op: "write", Net: "tcp", Source: conn.local, Addr: conn.remote, Err: err}})
			}
			select {
			case <-st.done:
			case <-ctx.Done():
				t.r.command(reactorCmd{st: st, cause: ctx.Err(), byCaller: true})
				<-st.done
			}
		} else {
			st.deadReuse, st.cause = rec.ConnReused, dead
		}
		t.release(conn, st.reusable && wroteAll)
		if st.deadReuse && attempt == 0 && ctx.Err() == nil {
			rec.Retried = true
			continue
		}
		if st.deadReuse || dead != nil {
			c.transportFailure(ctx, rec, st.cause, true)
		}
		return
	}
}

// message is the request on the wire: head, length, body.
func (t *leanTransport) message(body []byte) []byte {
	head := t.head
	if t.fresh {
		head = t.closeReq
	}
	msg := make([]byte, 0, len(head)+24+len(body))
	msg = append(msg, head...)
	msg = strconv.AppendInt(msg, int64(len(body)), 10)
	msg = append(msg, "\r\n\r\n"...)
	return append(msg, body...)
}

// bytes handles bytes of the response that one read returned (the
// reactor loop only).
func (s *h1stream) bytes(b []byte, at, readAt time.Duration, seq int) {
	s.gotBytes = true
	s.at, s.readAt, s.seq = at, readAt, seq
	for len(b) > 0 && !s.ended {
		n, ev, err := s.p.feed(b, s.bodyFn)
		b = b[n:]
		if err != nil {
			if err != errStop {
				s.connError(err, at, false)
			}
			return
		}
		switch ev {
		case h1HeadDone:
			s.head()
		case h1BodyDone:
			if s.phase == phHead {
				s.head()
			}
			s.bodyEnd(len(b) == 0 && !s.p.extra)
			return
		}
	}
}

// head takes the response head: the record's status and what the
// preflight wants, and where the body goes.
func (s *h1stream) head() {
	resp, rec, info := s.p.resp, s.rec, s.info
	rec.Headers = s.at
	noteHead(resp, rec, info)
	if !streamable(resp.StatusCode, info.contentType) {
		s.phase = phErrBody
		return
	}
	s.phase = phSSE
	s.sr = getSSEReader(nil, nil)
	s.ss = newStreamState(s.t.c, s.req, rec, info)
}

// body takes the response's body bytes (h1Parser.feed's callback).
func (s *h1stream) body(p []byte) error {
	switch s.phase {
	case phSSE:
		err := s.sr.push(p, s.at, s.seq)
		if err == nil {
			s.events() // p is read in place (sseReader.push)
			if s.sr != nil {
				err = s.sr.settle()
			}
		}
		if err != nil {
			s.ss.end(s.ctx, err, s.at)
			s.end(false)
			return errStop
		}
		if s.phase == phDrain && s.drainBy.IsZero() {
			// The events ended on a verdict about their bytes (an event
			// too large), not on [DONE]: the rest is not waited for.
			s.end(false)
			return errStop
		}
	case phDrain:
		if s.drained += len(p); s.drained > drainMax {
			s.end(false)
			return errStop
		}
	case phErrBody:
		s.errBody = append(s.errBody, p[:min(len(p), maxErrorBody-len(s.errBody))]...)
		if len(s.errBody) >= maxErrorBody {
			s.t.c.failResponse(s.rec, s.p.resp.StatusCode, s.p.resp.Header, bytes.NewReader(s.errBody))
			s.end(false)
			return errStop
		}
	}
	return nil
}

// events hands every complete event to the stream state; when the events
// are over, the body is drained (at most drainMax bytes, drainWait).
func (s *h1stream) events() {
	for s.phase == phSSE {
		data, at, ok, err := s.sr.next()
		if !ok {
			if err != nil {
				s.ss.end(s.ctx, err, at)
				s.phase = phDrain
			}
			return
		}
		s.ss.readAt = s.readAt
		if !s.ss.event(data, at, s.sr.reads) {
			s.phase = phDrain
			s.drainBy = time.Now().Add(drainWait)
			s.t.r.draining = append(s.t.r.draining, s)
		}
	}
}

// bodyEnd handles the body's end; clean is false when bytes follow it.
func (s *h1stream) bodyEnd(clean bool) {
	reusable := clean && !s.p.resp.Close
	switch s.phase {
	case phSSE:
		s.sr.finish(io.EOF, s.at)
		s.events()
	case phDrain:
		s.info.drained = true
	case phErrBody:
		s.t.c.failResponse(s.rec, s.p.resp.StatusCode, s.p.resp.Header, bytes.NewReader(s.errBody))
	}
	s.end(reusable)
}

// connError handles the connection's end (io.EOF), a read or write error,
// a protocol error, or the caller's cancellation (byCaller).
func (s *h1stream) connError(err error, at time.Duration, byCaller bool) {
	if s.ended {
		return
	}
	if !byCaller && !s.gotBytes && s.reused && connGone(err) {
		s.deadReuse, s.cause = true, err
		s.end(false)
		return
	}
	if err == io.EOF {
		if ev, perr := s.p.eof(); ev == h1BodyDone {
			if s.phase == phHead {
				s.head()
			}
			s.bodyEnd(false)
			return
		} else if perr != nil {
			err = perr
		}
	}
	switch s.phase {
	case phHead:
		s.t.c.transportFailure(s.ctx, s.rec, err, true)
	case phSSE:
		s.sr.finish(err, at)
		s.events()
	case phErrBody:
		s.t.c.failResponse(s.rec, s.p.resp.StatusCode, s.p.resp.Header, bytes.NewReader(s.errBody))
	}
	s.end(false)
}

// connGone reports whether err says the peer had closed the connection.
func connGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// end finishes the stream: the record's accounting, the connection's
// fate, and the waiting request is let go.
func (s *h1stream) end(reusable bool) {
	if s.ended {
		return
	}
	s.ended = true
	if s.ss != nil {
		s.ss.finish(s.sr.reads)
		putSSEReader(s.sr)
		s.sr = nil
	}
	s.reusable = reusable && !s.p.extra
	if !s.reusable {
		s.t.r.quiet(s.conn)
	}
	close(s.done)
}
