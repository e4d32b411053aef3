package engines

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inferbench/inferbench/internal/record"
)

// trackedConn is a client connection that says when it was closed, so the
// preflight can tell whether the server keeps a connection alive after a
// stream: when the server closes an idle connection, the transport's read
// loop sees the end and closes it at once.
//
// It also counts the requests it carried: net/http's GotConnInfo.Reused
// is true for any connection that sat in the idle pool, including one
// dialled for a request that meanwhile got another connection and never
// used, so only this count says whether a connection carried an earlier
// request.
type trackedConn struct {
	net.Conn
	uses   atomic.Int64
	once   sync.Once
	closed chan struct{}
}

// Close marks the connection closed and closes it.
func (c *trackedConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// trackingDialer wraps every new connection in a trackedConn.
func trackingDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &trackedConn{Conn: c, closed: make(chan struct{})}, nil
	}
}

// tracked returns the trackedConn under a connection the transport handed
// out (itself for HTTP, the one under TLS for HTTPS), or nil.
func tracked(c net.Conn) *trackedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	t, _ := c.(*trackedConn)
	return t
}

// connTrace collects what httptrace reports about one attempt. The dial
// callbacks may run on the transport's dialing goroutine, even after the
// attempt got another (idle) connection, hence the lock.
type connTrace struct {
	now func() time.Time
	at  func() time.Duration // offset from the epoch

	mu                            sync.Mutex
	gotConn                       bool
	reused                        bool // the connection carried an earlier request
	idle                          bool // it came from the idle pool (it may have died there)
	gotConnAt                     time.Duration
	firstByte                     bool
	dnsStart, dialStart, tlsStart time.Time
	dns, dial, tls                time.Duration
	conn                          *trackedConn
}

// trace returns the ClientTrace that fills t.
func (t *connTrace) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			at := t.at()
			t.mu.Lock()
			defer t.mu.Unlock()
			t.gotConn, t.gotConnAt = true, at
			t.idle = info.Reused || info.WasIdle
			t.reused = info.Reused // without a tracked connection, the transport's word
			if t.conn = tracked(info.Conn); t.conn != nil {
				t.reused = t.conn.uses.Add(1) > 1
			}
		},
		GotFirstResponseByte: func() {
			t.mu.Lock()
			t.firstByte = true
			t.mu.Unlock()
		},
		DNSStart: func(httptrace.DNSStartInfo) {
			now := t.now()
			t.mu.Lock()
			t.dnsStart = now
			t.mu.Unlock()
		},
		DNSDone: func(httptrace.DNSDoneInfo) {
			now := t.now()
			t.mu.Lock()
			if !t.dnsStart.IsZero() {
				t.dns = now.Sub(t.dnsStart)
			}
			t.mu.Unlock()
		},
		ConnectStart: func(string, string) {
			now := t.now()
			t.mu.Lock()
			if t.dialStart.IsZero() { // several addresses may be tried; time them all
				t.dialStart = now
			}
			t.mu.Unlock()
		},
		ConnectDone: func(_, _ string, err error) {
			now := t.now()
			t.mu.Lock()
			if err == nil && !t.dialStart.IsZero() {
				t.dial = now.Sub(t.dialStart)
			}
			t.mu.Unlock()
		},
		TLSHandshakeStart: func() {
			now := t.now()
			t.mu.Lock()
			t.tlsStart = now
			t.mu.Unlock()
		},
		TLSHandshakeDone: func(tls.ConnectionState, error) {
			now := t.now()
			t.mu.Lock()
			if !t.tlsStart.IsZero() {
				t.tls = now.Sub(t.tlsStart)
			}
			t.mu.Unlock()
		},
	}
}

// deadReuse reports whether the attempt went out on a kept-alive
// connection from the idle pool and failed before any response byte: the
// server had closed the idle connection (llama-server closes after every
// stream while advertising Keep-Alive), and nothing of the request can
// have been answered. A connection dialled for this request is never
// "dead reuse", whatever happens to it.
func (t *connTrace) deadReuse() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.gotConn && t.idle && !t.firstByte
}

// fill copies the connection facts into rec. Set-up durations are kept only
// for a connection handed over straight from the dial the request waited
// on: a request that found an idle connection may still have started a
// dial, which another request then uses.
func (t *connTrace) fill(rec *record.Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.gotConn {
		// No connection: still show how long the failed set-up took.
		rec.DNS, rec.Dial, rec.TLS = t.dns, t.dial, t.tls
		return
	}
	rec.GotConn = t.gotConnAt
	rec.ConnReused, rec.NewConn = t.reused, !t.reused
	if !t.idle {
		rec.DNS, rec.Dial, rec.TLS = t.dns, t.dial, t.tls
	}
}

// connection returns the attempt's tracked connection (nil if none).
func (t *connTrace) connection() *trackedConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.conn
}

// send runs one attempt of the request on hc.
func (c *Client) send(ctx context.Context, hc *http.Client, body []byte, t *connTrace) (*http.Response, error) {
	hreq, err := c.newRequest(httptrace.WithClientTrace(ctx, t.trace()), body)
	if err != nil {
		return nil, err
	}
	return hc.Do(hreq)
}
