package engines

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/inferbench/inferbench/engines/internal/pacedserver"
	"github.com/inferbench/inferbench/internal/cpu"
)

// pacedFloor measures the least a client can spend per token on the paced
// server while reading every token when it arrives with its kernel
// receive time: the epoll reader's system calls and nothing else. It
// opens streams connections, streams rounds requests on each (after one
// warm-up round), and reads them on one goroutine the way the reactor
// does (level-triggered epoll, the same coalescing window, recvmsg with
// SO_TIMESTAMPNS into one buffer), but parses nothing: it only looks for
// the end of each response. Its CPU per token (the server's count) is the
// floor under inferbench's client at that pace: cpu-ns/tok minus it is
// what the HTTP, SSE and JSON handling and the records cost.
func pacedFloor(rawURL string, stats func() (pacedserver.Stats, error), streams, rounds int, interval time.Duration) (pacedRun, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return pacedRun{}, err
	}
	ap, err := net.ResolveTCPAddr("tcp4", u.Host)
	if err != nil {
		return pacedRun{}, err
	}
	sa := &unix.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	body := `{"model":"m","messages":[{"role":"user","content":"w w w w"}],"max_tokens":` + strconv.Itoa(pacedTokens) + `,"stream":true}`
	req := []byte("POST " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)

	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return pacedRun{}, err
	}
	defer unix.Close(epfd)
	type fconn struct {
		fd   int
		left int    // requests still to send on it
		tail []byte // the last bytes read, to find the end across reads
	}
	conns := make([]*fconn, streams)
	defer func() {
		for _, c := range conns {
			if c != nil {
				unix.Close(c.fd)
			}
		}
	}()
	send := func(c *fconn) error { return sendAll(c.fd, req, nil, nil) } // as the epoll reader writes
	for i := range conns {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return pacedRun{}, err
		}
		conns[i] = &fconn{fd: fd}
		if err := unix.Connect(fd, sa); err != nil {
			return pacedRun{}, fmt.Errorf("floor reader: connect: %w", err)
		}
		for _, o := range [][2]int{{unix.IPPROTO_TCP, unix.TCP_NODELAY}, {unix.SOL_SOCKET, unix.SO_TIMESTAMPNS}} {
			if err := unix.SetsockoptInt(fd, o[0], o[1], 1); err != nil {
				return pacedRun{}, err
			}
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			return pacedRun{}, err
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(i)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return pacedRun{}, err
		}
	}
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, readMax)
	var rx rxReader
	end := []byte("0\r\n\r\n")
	stamped, reads := 0, 0
	round := func(k int) error {
		active := len(conns)
		for _, c := range conns {
			c.left = k - 1
			if err := send(c); err != nil {
				return err
			}
		}
		deadline := time.Now().Add(time.Duration(k*pacedTokens)*interval*4 + 10*time.Second)
		var waited time.Duration
		for active > 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("floor reader: %d of %d streams unfinished at the deadline", active, len(conns))
			}
			n := 0
			if waited < coalesceWindow {
				ts := unix.NsecToTimespec(int64(coalesceWindow))
				_ = unix.Nanosleep(&ts, nil)
				n, _ = epollPoll(epfd, events)
			}
			if n <= 0 {
				t0 := time.Now()
				n, err = unix.EpollWait(epfd, events, 1000)
				waited = time.Since(t0)
				if err == unix.EINTR {
					continue
				}
				if err != nil {
					return err
				}
			}
			for _, ev := range events[:n] {
				c := conns[ev.Fd]
				m, ts, err := rx.read(c.fd, buf)
				if err == unix.EAGAIN {
					continue
				}
				if err != nil || m == 0 {
					return fmt.Errorf("floor reader: the server ended a stream (%v)", err)
				}
				reads++
				if ts != 0 {
					stamped++
				}
				c.tail = append(c.tail, buf[max(0, m-len(end)):m]...)
				c.tail = c.tail[max(0, len(c.tail)-len(end)):]
				if !bytes.Equal(c.tail, end) {
					continue
				}
				c.tail = c.tail[:0]
				if c.left == 0 {
					active--
					continue
				}
				c.left--
				if err := send(c); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := round(1); err != nil {
		return pacedRun{}, err
	}
	s0, err := stats()
	if err != nil {
		return pacedRun{}, err
	}
	stamped, reads = 0, 0
	u0, err := cpu.Self()
	if err != nil {
		return pacedRun{}, err
	}
	t0 := time.Now()
	if err := round(rounds); err != nil {
		return pacedRun{}, err
	}
	elapsed := time.Since(t0)
	u1, _ := cpu.Self()
	s1, err := stats()
	if err != nil {
		return pacedRun{}, err
	}
	if stamped != reads {
		return pacedRun{}, fmt.Errorf("floor reader: %d of %d reads had no kernel receive time", reads-stamped, reads)
	}
	return pacedRun{cpu: u1.Sub(u0), tokens: s1.Tokens - s0.Tokens, elapsed: elapsed}, nil
}
