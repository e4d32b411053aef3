package pacedserver

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inferbench/inferbench/internal/cpu"
)

// Config configures a Server. The zero value steps every millisecond on
// GOMAXPROCS shards.
type Config struct {
	// Interval is the time between two tokens of one stream; 0 means 1 ms.
	Interval time.Duration
	// Shards is the number of stepping goroutines; 0 means GOMAXPROCS.
	Shards int
	// PromptTokens is the usage.prompt_tokens reported; 0 means 128.
	PromptTokens int
	// H2C serves cleartext HTTP/2 (prior knowledge) instead of the
	// hand-written HTTP/1.1, through net/http's server: HTTP/2's framing
	// is not written by hand here, the SSE and JSON still are.
	H2C bool
}

// Server is a running paced server.
type Server struct {
	cfg    Config
	l      net.Listener
	clock  *cpu.MonoClock
	shards []*shard
	next   atomic.Uint64 // round-robin shard choice

	tokens   atomic.Int64 // token events written
	requests atomic.Int64 // streams finished
	late     atomic.Int64 // steps that started more than one interval late
	// steps and stepNanos measure the pace kept: the steps that followed
	// an earlier step of their shard without an idle wait between, and the
	// time from that earlier step's start to theirs, summed.
	steps, stepNanos atomic.Int64

	h2srv *http.Server // set in H2C mode

	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed chan struct{}
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves.
func Start(addr string, cfg Config) (*Server, error) {
	if cfg.Interval < 0 || cfg.Shards < 0 || cfg.PromptTokens < 0 {
		return nil, fmt.Errorf("pacedserver: negative setting in %+v", cfg)
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Millisecond
	}
	if cfg.Shards == 0 {
		cfg.Shards = runtime.GOMAXPROCS(0)
	}
	if cfg.PromptTokens == 0 {
		cfg.PromptTokens = 128
	}
	clock, err := cpu.NewMonoClock()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pacedserver: %w", err)
	}
	s := &Server{cfg: cfg, l: l, clock: clock, conns: map[net.Conn]struct{}{}, closed: make(chan struct{})}
	for range cfg.Shards {
		sh := &shard{s: s, wake: make(chan struct{}, 1)}
		s.shards = append(s.shards, sh)
		s.wg.Go(sh.run)
	}
	if cfg.H2C {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		s.h2srv = &http.Server{Handler: http.HandlerFunc(s.serveH2), Protocols: &p}
		s.wg.Go(func() { _ = s.h2srv.Serve(l) })
		return s, nil
	}
	s.wg.Go(s.accept)
	return s, nil
}

// serveH2 answers one HTTP/2 request: a stream, or the stats.
func (s *Server) serveH2(w http.ResponseWriter, r *http.Request) {
	if r.Method == "GET" && r.URL.Path == "/stats" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, s.Stats().json())
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<24))
	if err != nil {
		return
	}
	n, err := maxTokens(body)
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"error":{"message":"`+err.Error()+`"}}`)
		return
	}
	st := &stream{h2: w, id: ids.Add(1), n: n, done: make(chan bool, 1)}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	st.frame = st.event(st.frame[:0], `{"role":"assistant","content":""}`, "null", 0, s.cfg.PromptTokens, true, s.clock.Now())
	if st.write() != nil {
		return
	}
	s.shards[s.next.Add(1)%uint64(len(s.shards))].add(st)
	select {
	case <-st.done:
	case <-s.closed:
	case <-r.Context().Done():
		// The shard still holds the stream: its next write fails and
		// drops it; wait for that, so the writer is not used after return.
		<-st.done
	}
}

// URL is the chat-completions URL.
func (s *Server) URL() string { return "http://" + s.l.Addr().String() + "/v1/chat/completions" }

// Stats are the server's counters.
type Stats struct {
	Tokens   int64 `json:"tokens"`
	Requests int64 `json:"requests"`
	// LateSteps counts steps that began more than one Interval after
	// they were due: the host could not keep the pace.
	LateSteps int64 `json:"late_steps"`
	// Steps and StepNanos give the pace kept: StepNanos / Steps is the
	// mean time from one step of a shard to its next (idle waits left
	// out), Interval when the host keeps the pace, longer when it does
	// not.
	Steps     int64 `json:"steps"`
	StepNanos int64 `json:"step_nanos"`
	// CPUNanos is the server process's CPU time so far (user + system;
	// all of the process's, so only meaningful when it runs alone, as
	// Main does).
	CPUNanos int64 `json:"cpu_nanos"`
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	st := Stats{Tokens: s.tokens.Load(), Requests: s.requests.Load(), LateSteps: s.late.Load(),
		Steps: s.steps.Load(), StepNanos: s.stepNanos.Load()}
	if u, err := cpu.Self(); err == nil {
		st.CPUNanos = int64(u.Total())
	}
	return st
}

// json is the /stats answer, written by hand like every other answer.
func (st Stats) json() string {
	return fmt.Sprintf(`{"tokens":%d,"requests":%d,"late_steps":%d,"steps":%d,"step_nanos":%d,"cpu_nanos":%d}`,
		st.Tokens, st.Requests, st.LateSteps, st.Steps, st.StepNanos, st.CPUNanos)
}

// Close stops the server and closes every connection.
func (s *Server) Close() {
	select {
	case <-s.closed:
		return
	default:
	}
	close(s.closed)
	_ = s.l.Close()
	if s.h2srv != nil {
		_ = s.h2srv.Close()
	}
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	for _, sh := range s.shards {
		sh.poke()
	}
	s.wg.Wait()
}

func (s *Server) accept() {
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			_ = c.Close()
		})
	}
}

// request is what the server needs of one HTTP request.
type request struct {
	method, path string
	close        bool
	body         []byte
}

// errBadRequest is answered with a 400 and the connection closed.
var errBadRequest = errors.New("bad request")

func readRequest(br *bufio.Reader) (request, error) {
	var r request
	line, err := br.ReadString('\n')
	if err != nil {
		return r, err
	}
	parts := strings.Fields(line)
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") {
		return r, fmt.Errorf("%w: request line %q", errBadRequest, line)
	}
	r.method, r.path = parts[0], parts[1]
	r.close = parts[2] == "HTTP/1.0"
	length := 0
	for {
		h, err := br.ReadString('\n')
		if err != nil {
			return r, err
		}
		h = strings.TrimRight(h, "\r\n")
		if h == "" {
			break
		}
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return r, fmt.Errorf("%w: header %q", errBadRequest, h)
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "content-length":
			if length, err = strconv.Atoi(value); err != nil || length < 0 || length > 1<<24 {
				return r, fmt.Errorf("%w: content-length %q", errBadRequest, value)
			}
		case "transfer-encoding":
			return r, fmt.Errorf("%w: chunked request bodies are not supported", errBadRequest)
		case "connection":
			r.close = strings.EqualFold(value, "close")
		}
	}
	r.body = make([]byte, length)
	_, err = io.ReadFull(br, r.body)
	return r, err
}

func (s *Server) serveConn(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		req, err := readRequest(br)
		if err != nil {
			if errors.Is(err, errBadRequest) {
				writeSimple(c, 400, "text/plain", err.Error(), true)
			}
			return
		}
		switch {
		case req.method == "GET" && req.path == "/stats":
			writeSimple(c, 200, "application/json", s.Stats().json(), req.close)
		case req.method == "POST":
			n, err := maxTokens(req.body)
			if err != nil {
				writeSimple(c, 400, "application/json", `{"error":{"message":"`+err.Error()+`"}}`, true)
				return
			}
			if !s.stream(c, n) {
				return
			}
		default:
			writeSimple(c, 404, "text/plain", "POST a chat completion, or GET /stats", req.close)
		}
		if req.close {
			return
		}
	}
}

func writeSimple(c net.Conn, code int, ctype, body string, closeConn bool) {
	conn := ""
	if closeConn {
		conn = "Connection: close\r\n"
	}
	_, _ = fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s",
		code, statusText(code), ctype, len(body), conn, body)
}

func statusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	default:
		return "Not Found"
	}
}

// maxTokens finds "max_tokens": N in a request body, or else
// "max_completion_tokens": N (OpenAI's newer name, the only one vLLM's own
// benchmark client sends). A hand scan keeps the server free of any JSON
// shape the client also uses.
func maxTokens(body []byte) (int, error) {
	s := string(body)
	key := `"max_tokens"`
	i := strings.Index(s, key)
	if i < 0 {
		key = `"max_completion_tokens"`
		if i = strings.Index(s, key); i < 0 {
			return 0, errors.New("the request has no max_tokens or max_completion_tokens")
		}
	}
	s = strings.TrimLeft(s[i+len(key):], " \t\r\n:")
	j := 0
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	n, err := strconv.Atoi(s[:j])
	if err != nil || n < 1 || n > 1<<20 {
		return 0, fmt.Errorf("%s %q is not a count from 1 to %d", strings.Trim(key, `"`), s[:min(j+1, len(s))], 1<<20)
	}
	return n, nil
}

// stream is one response in progress.
type stream struct {
	c       net.Conn            // HTTP/1.1: the raw connection
	h2      http.ResponseWriter // h2c: the response (c is nil)
	id      int64
	n, sent int
	payload []byte // one event being built
	frame   []byte // its chunked-encoding frame
	done    chan bool
}

var ids atomic.Int64

// stream answers one POST: headers and the role event now, the tokens at
// the shard's steps. It reports whether the connection is still usable.
func (s *Server) stream(c net.Conn, n int) bool {
	st := &stream{c: c, id: ids.Add(1), n: n, done: make(chan bool, 1)}
	st.payload = st.event(st.payload[:0], `{"role":"assistant","content":""}`, "null", 0, s.cfg.PromptTokens, true, s.clock.Now())
	st.frame = append(st.frame[:0], "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"...)
	st.frame = appendChunk(st.frame, st.payload)
	if _, err := c.Write(st.frame); err != nil {
		return false
	}
	sh := s.shards[s.next.Add(1)%uint64(len(s.shards))]
	sh.add(st)
	select {
	case ok := <-st.done:
		return ok
	case <-s.closed:
		return false
	}
}

// event appends one "data: {...}\n\n" event to b.
func (st *stream) event(b []byte, delta, finish string, completion, prompt int, usage bool, mono int64) []byte {
	b = append(b, `data: {"id":"cmpl-`...)
	b = strconv.AppendInt(b, st.id, 10)
	b = append(b, `","object":"chat.completion.chunk","created":0,"model":"paced","choices":[`...)
	if delta != "" {
		b = append(b, `{"index":0,"delta":`...)
		b = append(b, delta...)
		b = append(b, `,"logprobs":null,"finish_reason":`...)
		b = append(b, finish...)
		b = append(b, '}')
	}
	b = append(b, ']')
	if usage {
		b = append(b, `,"usage":{"prompt_tokens":`...)
		b = strconv.AppendInt(b, int64(prompt), 10)
		b = append(b, `,"total_tokens":`...)
		b = strconv.AppendInt(b, int64(prompt+completion), 10)
		b = append(b, `,"completion_tokens":`...)
		b = strconv.AppendInt(b, int64(completion), 10)
		b = append(b, '}')
	}
	b = append(b, `,"emit_mono_ns":`...)
	b = strconv.AppendInt(b, mono, 10)
	return append(b, "}\n\n"...)
}

// write sends the frame: one write system call on HTTP/1.1; one DATA
// frame, flushed, on HTTP/2.
func (st *stream) write() error {
	if st.h2 == nil {
		_, err := st.c.Write(st.frame)
		return err
	}
	if _, err := st.h2.Write(st.frame); err != nil {
		return err
	}
	return http.NewResponseController(st.h2).Flush()
}

// appendChunk appends p as one chunk of a chunked body.
func appendChunk(b, p []byte) []byte {
	b = strconv.AppendInt(b, int64(len(p)), 16)
	b = append(b, "\r\n"...)
	b = append(b, p...)
	return append(b, "\r\n"...)
}

// step writes the stream's next token (and, after the last, the end of
// the response); it reports whether the stream goes on.
func (st *stream) step(s *Server) bool {
	st.sent++
	last := st.sent == st.n
	finish := "null"
	if last {
		finish = `"length"`
	}
	mono := s.clock.Now()
	st.payload = st.event(st.payload[:0], `{"content":" tok"}`, finish, st.sent, s.cfg.PromptTokens, true, mono)
	if st.h2 != nil {
		// HTTP/2 frames the body itself: the events go as they are.
		st.frame = append(st.frame[:0], st.payload...)
		if last {
			st.frame = st.event(st.frame, "", "", st.n, s.cfg.PromptTokens, true, mono)
			st.frame = append(st.frame, "data: [DONE]\n\n"...)
		}
	} else {
		st.frame = appendChunk(st.frame[:0], st.payload)
		if last {
			st.payload = st.event(st.payload[:0], "", "", st.n, s.cfg.PromptTokens, true, mono)
			st.frame = appendChunk(st.frame, st.payload)
			st.frame = appendChunk(st.frame, []byte("data: [DONE]\n\n"))
			st.frame = append(st.frame, "0\r\n\r\n"...)
		}
	}
	// Counted before the write, so a client that has read the token
	// never sees a count without it.
	s.tokens.Add(1)
	if last {
		s.requests.Add(1)
	}
	if err := st.write(); err != nil {
		s.tokens.Add(-1)
		if last {
			s.requests.Add(-1)
		}
		st.done <- false
		return false
	}
	if last {
		st.done <- true
		return false
	}
	return true
}

// shard steps its streams every Interval.
type shard struct {
	s       *Server
	mu      sync.Mutex
	pending []*stream // joined since the last step
	active  []*stream
	wake    chan struct{}
}

func (sh *shard) add(st *stream) {
	sh.mu.Lock()
	sh.pending = append(sh.pending, st)
	sh.mu.Unlock()
	sh.poke()
}

func (sh *shard) poke() {
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

func (sh *shard) run() {
	iv := sh.s.cfg.Interval
	next := time.Now()
	var prev time.Time // the start of the previous step; zero after an idle wait
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		sh.mu.Lock()
		sh.active = append(sh.active, sh.pending...)
		clear(sh.pending)
		sh.pending = sh.pending[:0]
		sh.mu.Unlock()
		if len(sh.active) == 0 {
			// Idle: wait for a stream, then step at once.
			select {
			case <-sh.wake:
			case <-sh.s.closed:
				return
			}
			next = time.Now()
			prev = time.Time{} // the idle wait is not a step period
			continue
		}
		if d := time.Until(next); d > 0 {
			if d > coarseWait {
				// The bulk of a long wait on a timer (it can be cut short
				// by Close); the rest precisely, below.
				timer.Reset(d - coarseWait)
				select {
				case <-timer.C:
				case <-sh.s.closed:
					return
				}
			}
			sleepUntil(next)
		}
		// The next step is due one interval after this one starts, as a
		// decode step follows the previous one: a late step delays the
		// next ones and never makes two tokens of a stream come closer
		// than the interval.
		start := time.Now()
		if start.Sub(next) > iv {
			sh.s.late.Add(1)
		}
		if !prev.IsZero() {
			sh.s.steps.Add(1)
			sh.s.stepNanos.Add(int64(start.Sub(prev)))
		}
		prev = start
		next = start.Add(iv)
		keep := sh.active[:0]
		for _, st := range sh.active {
			if st.step(sh.s) {
				keep = append(keep, st)
			}
		}
		clear(sh.active[len(keep):])
		sh.active = keep
	}
}

// coarseWait is the part of a wait before a step left to a precise sleep.
// Go's timers wake up to a millisecond late on Linux (the runtime's epoll
// wait takes whole milliseconds, and rounds a shorter wait up to one), so
// a server pacing every stream every millisecond on them stepped every
// 1.3 ms; a nanosleep wakes within tens of microseconds.
const coarseWait = 2 * time.Millisecond

// Main runs the server as a program: it parses args (-addr, -interval,
// -shards, -h2c), prints the chat URL as the first line of stdout, and serves
// until stdin closes (the parent's end).
func Main(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("pacedserver", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	interval := fs.Duration("interval", time.Millisecond, "time between two tokens of one stream")
	shards := fs.Int("shards", 0, "stepping goroutines (0: GOMAXPROCS)")
	h2c := fs.Bool("h2c", false, "serve cleartext HTTP/2 (prior knowledge) instead of HTTP/1.1")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := Start(*addr, Config{Interval: *interval, Shards: *shards, H2C: *h2c})
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := fmt.Fprintln(stdout, s.URL()); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, stdin)
	return nil
}
