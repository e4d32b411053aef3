package engines

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// reactor reads all of a client's HTTP/1.1 connections on one goroutine
// (the epoll reader): it waits in epoll_wait for any of them to have
// bytes, reads each ready one once (level-triggered: what is left is
// reported again) and runs the response's parsing, event handling and
// record keeping right there. A token then costs one read system call and
// no goroutine wake-up; net/http's transport pays a read, a failed read
// (Go's poller reads until EAGAIN before it parks) and a wake-up of the
// goroutine reading the body.
//
// Only the reactor goroutine closes registered descriptors, reads them and
// touches their parsers; a request's goroutine writes its request to the
// descriptor while it holds the connection, and asks the reactor (cmds,
// woken through an eventfd) for whatever else.
type reactor struct {
	c *Client

	mu      sync.Mutex
	running bool
	epfd    int
	evfd    int
	slots   []*h1conn // registered connections by slot; nil when free
	free    []int32
	nconns  int
	cmds    []reactorCmd
	gen     int32 // registrations so far: a slot's events carry theirs

	// Owned by the loop goroutine.
	events   []unix.EpollEvent
	ready    []*h1conn
	pend     []loopRead
	live     []*h1stream // touch's streams, reused
	sink     int         // touch's loads land here
	buf      []byte
	rx       rxReader
	seq      int         // reads so far (one sequence number per read)
	draining []*h1stream // streams waiting at most drainWait for their body's end
}

// reactorCmd is a request to the loop: close a connection, or abort a
// stream with a cause.
type reactorCmd struct {
	conn     *h1conn
	st       *h1stream
	cause    error
	byCaller bool // the caller's context ended (not the connection)
}

// evSlot marks the eventfd's epoll events.
const evSlot = -1

// coalesceWindow is how long the loop lets events gather before it reads
// them while they arrive faster than that (0: never); a client takes it
// when built. It is used only while every stamp is the kernel's receive
// time: a later read then stamps nothing later. Reading each event as it
// comes costs a wake-up (a context switch) per token.
var coalesceWindow = 100 * time.Microsecond

// readBufSize is the loop's one read buffer, shared by the reads of one
// wait (readReady) and reused by the next: every read is parsed before
// the next wait and what must outlive it is copied (a partial line, an
// event's bytes). readMax is the most one read takes.
const (
	readBufSize = 256 << 10
	readMax     = 64 << 10
)

func newReactor(c *Client) *reactor {
	return &reactor{c: c}
}

// register adds a connection (its descriptor in non-blocking mode) and
// starts the loop if it is not running.
func (r *reactor) register(conn *h1conn) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running {
		if err := r.start(); err != nil {
			return err
		}
	}
	var slot int32
	if n := len(r.free); n > 0 {
		slot, r.free = r.free[n-1], r.free[:n-1]
	} else {
		slot = int32(len(r.slots))
		r.slots = append(r.slots, nil)
	}
	conn.slot = slot
	r.gen++
	conn.gen = r.gen
	// Level-triggered: each ready connection is read once per wait, and
	// what is left (bytes, or an end that came with them) is reported by
	// the next. Edge-triggered would need a read until EAGAIN after every
	// short read (a FIN that came with the data raises no further edge):
	// the very read this reader exists to save.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: slot, Pad: conn.gen}
	if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, conn.fd, &ev); err != nil {
		r.free = append(r.free, slot)
		return os.NewSyscallError("epoll_ctl", err)
	}
	r.slots[slot] = conn
	r.nconns++
	return nil
}

// start creates the epoll and eventfd descriptors and runs the loop. r.mu
// is held.
func (r *reactor) start() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: evSlot}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return os.NewSyscallError("epoll_ctl", err)
	}
	r.epfd, r.evfd, r.running = epfd, evfd, true
	if r.buf == nil {
		r.buf = make([]byte, readBufSize)
		r.events = make([]unix.EpollEvent, 256)
	}
	go r.loop()
	return nil
}

// command queues cmd for the loop and wakes it.
func (r *reactor) command(cmd reactorCmd) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running {
		return // no connection is left for it to be about
	}
	r.cmds = append(r.cmds, cmd)
	one := [8]byte{1}
	_, _ = unix.Write(r.evfd, one[:]) // EAGAIN: the counter is already set
}

// loop is the reactor goroutine. It ends when no connection is left.
func (r *reactor) loop() {
	var waited time.Duration // how long the last blocking wait lasted
	for {
		n, err := -1, error(nil)
		if w := r.c.lean.coalesce; w > 0 && waited < w && r.c.lean.allRx.Load() {
			// Events are coming faster than the window: let them gather
			// rather than wake for each. The kernel's receive times keep
			// every stamp exact; only the reading is later.
			ts := unix.NsecToTimespec(int64(w))
			_ = unix.Nanosleep(&ts, nil)
			n, err = epollPoll(r.epfd, r.events)
		}
		if n <= 0 {
			t0 := time.Now()
			n, err = unix.EpollWait(r.epfd, r.events, r.timeout())
			waited = time.Since(t0)
		}
		if err != nil && err != unix.EINTR {
			// Cannot happen with valid descriptors; fail every stream
			// rather than spin.
			r.failAll(os.NewSyscallError("epoll_wait", err))
			n = 0
		}
		r.mu.Lock()
		r.ready = r.ready[:0]
		for _, ev := range r.events[:max(n, 0)] {
			if ev.Fd == evSlot {
				var b [8]byte
				_, _ = unix.Read(r.evfd, b[:])
				continue
			}
			if int(ev.Fd) < len(r.slots) {
				if conn := r.slots[ev.Fd]; conn != nil && conn.gen == ev.Pad {
					r.ready = append(r.ready, conn)
				}
			}
		}
		cmds := r.cmds
		r.cmds = nil
		r.mu.Unlock()
		r.readReady()
		for _, cmd := range cmds {
			r.run(cmd)
		}
		r.expireDrains()
		r.mu.Lock()
		if r.nconns == 0 && len(r.cmds) == 0 {
			unix.Close(r.epfd)
			unix.Close(r.evfd)
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// timeout is epoll_wait's: until the first drain deadline, or none.
func (r *reactor) timeout() int {
	if len(r.draining) == 0 {
		return -1
	}
	first := r.draining[0].drainBy
	for _, st := range r.draining[1:] {
		if st.drainBy.Before(first) {
			first = st.drainBy
		}
	}
	d := time.Until(first)
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

// expireDrains ends the streams whose body did not end within drainWait
// after their last event: their connection is not reused.
func (r *reactor) expireDrains() {
	if len(r.draining) == 0 {
		return
	}
	now := time.Now()
	keep := r.draining[:0]
	for _, st := range r.draining {
		if st.ended {
			continue
		}
		if now.Before(st.drainBy) {
			keep = append(keep, st)
			continue
		}
		st.end(false)
	}
	clear(r.draining[len(keep):])
	r.draining = keep
}

// run carries out a command.
func (r *reactor) run(cmd reactorCmd) {
	switch {
	case cmd.st != nil:
		if !cmd.st.ended {
			cmd.st.connError(cmd.cause, r.stamp(cmd.st, 0), cmd.byCaller)
		}
	case cmd.conn != nil:
		r.closeConn(cmd.conn)
	}
}

// failAll ends every stream with err.
func (r *reactor) failAll(err error) {
	t := r.c.lean
	var sts []*h1stream
	t.mu.Lock()
	r.mu.Lock()
	for _, conn := range r.slots {
		if conn != nil && conn.st != nil && !conn.st.ended {
			sts = append(sts, conn.st)
		}
	}
	r.mu.Unlock()
	t.mu.Unlock()
	for _, st := range sts {
		st.connError(err, r.stamp(st, 0), false)
	}
}

// closeConn unregisters and closes a connection (the loop only).
func (r *reactor) closeConn(conn *h1conn) {
	if conn.closedByLoop {
		return
	}
	conn.closedByLoop = true
	r.mu.Lock()
	_ = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_DEL, conn.fd, nil)
	r.slots[conn.slot] = nil
	r.free = append(r.free, conn.slot)
	r.nconns--
	r.mu.Unlock()
	_ = unix.Close(conn.fd)
	close(conn.closed)
}

// quiet stops the loop hearing from a connection that has ended (its
// descriptor stays readable at EOF) until its holder releases it and it
// is closed: it leaves the epoll set (an empty event mask would still
// report a hang-up or an error at every wait). A quiet connection is
// never reused.
func (r *reactor) quiet(conn *h1conn) {
	if conn.quiet || conn.closedByLoop {
		return
	}
	conn.quiet = true
	_ = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_DEL, conn.fd, nil)
}

// readReady reads every ready connection once, then hands each read's
// bytes on, in that order: reads back to back and parsing back to back
// keep the kernel's and the parser's code and data in the caches, where
// alternating evicts each with the other. The reads share r.buf; when
// less than readMax is left, what was read so far is handled first.
func (r *reactor) readReady() {
	used := 0
	r.pend = r.pend[:0]
	for _, conn := range r.ready {
		if conn.closedByLoop {
			continue
		}
		if len(r.buf)-used < readMax {
			r.handleReads()
			used = 0
		}
		p := r.buf[used : used+readMax]
		n, rxNs, err := r.read(conn, p)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue // level-triggered: whatever is there is reported again
		}
		if n == 0 && err == nil {
			err = io.EOF
		} else if err != nil {
			err = &net.OpError{Op: "read", Net: "tcp", Source: conn.local, Addr: conn.remote, Err: os.NewSyscallError("read", err)}
		}
		r.pend = append(r.pend, loopRead{conn: conn, b: p[:n], rxNs: rxNs, now: r.c.now(), err: err})
		used += n
	}
	r.handleReads()
}

// loopRead is one read of readReady, to be handled.
type loopRead struct {
	conn *h1conn
	b    []byte    // its bytes, in r.buf
	rxNs int64     // the kernel's receive time of its last segment (0: none)
	now  time.Time // when it returned
	err  error     // its error, io.EOF for an end
}

// touch loads, for every pending read, the state its stream will need,
// one level at a time across all of them: the loads of a level do not
// depend on each other, so the processor has their cache misses in
// flight together, where handling one read after another waits for each
// stream's misses in turn. Only streams the loop still owns (not ended:
// their request waits) are touched.
func (r *reactor) touch() {
	live := r.live[:0]
	for i := range r.pend {
		if st := r.pend[i].conn.lastSt; st != nil && !st.ended {
			live = append(live, st)
		}
	}
	var sink int
	for _, st := range live {
		if st.ss != nil && st.sr != nil {
			sink += st.ss.lastCompletion + st.sr.end
		}
	}
	for _, st := range live {
		sink += len(st.rec.Chunks)
	}
	for _, st := range live {
		if c := st.rec.Chunks; len(c) < cap(c) {
			sink += c[:len(c)+1][len(c)].Tokens
		}
	}
	r.sink = sink
	clear(live) // no stream is kept from the collector
	r.live = live[:0]
}

// handleReads hands the pending reads' bytes and ends to their streams.
func (r *reactor) handleReads() {
	r.touch()
	for i := range r.pend {
		rd := &r.pend[i]
		r.seq++
		// Bytes or an end on a connection that carries no request (or
		// whose response ended): the server closed it, or broke the
		// protocol; it is not reused.
		cause := rd.err
		if cause == nil {
			cause = errUnsolicited
		}
		conn := rd.conn
		st := r.c.lean.current(conn, cause)
		if st == nil {
			continue
		}
		conn.lastSt = st
		readAt := rd.now.Sub(r.c.opt.Epoch)
		if len(rd.b) > 0 {
			if rd.rxNs == 0 && conn.rxStamps {
				r.c.lean.allRx.Store(false) // the kernel gave no receive time
			}
			st.bytes(rd.b, r.stampAt(st, rd.rxNs, rd.now, readAt), readAt, r.seq)
		}
		if rd.err != nil && !st.ended {
			st.connError(rd.err, r.stampAt(st, 0, rd.now, readAt), false)
		}
	}
	clear(r.pend) // no connection is kept from the collector
	r.pend = r.pend[:0]
}

// errUnsolicited is the cause when bytes arrive on an idle connection.
var errUnsolicited = errors.New("unsolicited response bytes on an idle connection")

// read reads what a connection has into p: recvmsg with the kernel's
// receive time when the connection asked for it.
func (r *reactor) read(conn *h1conn, p []byte) (int, int64, error) {
	if !conn.rxStamps {
		n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(conn.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != 0 {
			return 0, 0, e
		}
		return int(n), 0, nil
	}
	return r.rx.read(conn.fd, p)
}

// stamp is the time of a read without a kernel receive time.
func (r *reactor) stamp(st *h1stream, rxNs int64) time.Duration {
	now := r.c.now()
	return r.stampAt(st, rxNs, now, now.Sub(r.c.opt.Epoch))
}

// stampAt converts a read's kernel receive time (CLOCK_REALTIME ns, 0:
// none) to the client's clock, given the read's instant now (offset
// readAt from the epoch): the receive time is that much earlier than the
// read, by the wall clock's reading of now (time.Now reads both clocks at
// once). A difference the clocks cannot mean (negative, or a stepped wall
// clock's minutes) falls back to the read's time; no stamp is earlier
// than the request's write.
func (r *reactor) stampAt(st *h1stream, rxNs int64, now time.Time, readAt time.Duration) time.Duration {
	at := readAt
	if rxNs != 0 {
		if d := now.UnixNano() - rxNs; d > 0 && d < int64(time.Minute) {
			at -= time.Duration(d)
		}
	}
	return max(at, st.wrote)
}

// The loop's reads and its zero-timeout waits are raw system calls: the
// descriptors are non-blocking, so none can block, and the scheduler's
// bookkeeping around a call (entersyscall, exitsyscall) cost more than a
// tenth of a token's user time.

// epollPoll is epoll_wait with a zero timeout (it returns at once).
func epollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

// rxReader reads with recvmsg and takes the SO_TIMESTAMPNS control
// message: the time the kernel received the last segment the read
// returned. Its header and buffers are reused (the loop only).
type rxReader struct {
	hdr unix.Msghdr
	iov unix.Iovec
	oob [64]byte
}

func (x *rxReader) read(fd int, p []byte) (int, int64, error) {
	x.iov.Base = &p[0]
	x.iov.SetLen(len(p))
	x.hdr.Iov = &x.iov
	x.hdr.SetIovlen(1)
	x.hdr.Control = &x.oob[0]
	x.hdr.SetControllen(len(x.oob))
	n, _, e := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&x.hdr)), 0)
	if e != 0 {
		return 0, 0, e
	}
	return int(n), x.timestamp(), nil
}

// timestamp finds SCM_TIMESTAMPNS in the control data of the last read.
func (x *rxReader) timestamp() int64 {
	oob := x.oob[:x.hdr.Controllen]
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && int(h.Len) >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			return ts.Nano()
		}
		oob = oob[min(unix.CmsgSpace(int(h.Len)-unix.CmsgLen(0)), len(oob)):]
	}
	return 0
}

// sendAll writes b to a non-blocking descriptor, waiting (poll) while its
// send buffer is full, until done or stop is closed. MSG_NOSIGNAL: a
// closed peer is EPIPE, not SIGPIPE.
func sendAll(fd int, b []byte, done, stop <-chan struct{}) error {
	for len(b) > 0 {
		n, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			b = b[n:]
		case unix.EINTR:
		case unix.EAGAIN:
			for {
				select {
				case <-done:
					return errAbandoned
				case <-stop:
					return errAbandoned
				default:
				}
				pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
				if n, err := unix.Poll(pfd, 50); err == nil && n > 0 {
					break
				}
			}
		default:
			return e
		}
	}
	return nil
}

// errAbandoned is a write given up because the request ended meanwhile.
var errAbandoned = errors.New("the request ended while its body was being written")

// dupFD takes a connection's descriptor out of Go's poller: a duplicate
// (close-on-exec) of it, still non-blocking (the flag belongs to the
// shared open file), after which the connection is closed, which
// unregisters the original from Go's epoll and closes it. The socket
// lives on in the duplicate.
func dupFD(c net.Conn) (int, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return -1, fmt.Errorf("dial returned a %T, not a TCP connection", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, os.NewSyscallError("fcntl", derr)
	}
	_ = c.Close()
	return fd, nil
}
