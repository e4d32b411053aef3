package fake

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/inferbench/inferbench/fake/sim"
)

// Running is a Server listening on a loopback port, started by Start.
type Running struct {
	srv    *Server
	hs     *http.Server
	base   string
	served chan error
}

// Start creates a Server (see NewServer) and serves it on 127.0.0.1 at a
// free port. Every call starts an independent engine, so a process can run
// several (e.g. one per preset). Call Close to stop it.
func Start(cfg sim.Config, opts Options) (*Running, error) {
	s, err := NewServer(cfg, opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("fake: listening on loopback: %w", err)
	}
	return Serve(s, ln), nil
}

// Serve serves s on ln until Close; it takes ownership of both.
func Serve(s *Server, ln net.Listener) *Running {
	r := &Running{
		srv:  s,
		base: "http://" + ln.Addr().String(),
		hs: &http.Server{
			Handler:           s.Handler(),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			// net/http logs connection errors to stderr by default; inside
			// a benchmark that would split a result line. Route them to
			// Logf, or nowhere.
			ErrorLog: log.New(logfWriter{s}, "http: ", 0),
		},
		served: make(chan error, 1),
	}
	s.ConfigureHTTP(r.hs)
	go func() { r.served <- r.hs.Serve(ln) }()
	return r
}

// URL is the chat completions endpoint, http://127.0.0.1:PORT/v1/chat/completions.
func (r *Running) URL() string { return r.base + "/v1/chat/completions" }

// BaseURL is the OpenAI-style base URL, http://127.0.0.1:PORT/v1 (what
// SDKs take as their base URL).
func (r *Running) BaseURL() string { return r.base + "/v1" }

// Addr is the server's root, http://127.0.0.1:PORT (for /health and /metrics).
func (r *Running) Addr() string { return r.base }

// Server returns the Server being served.
func (r *Running) Server() *Server { return r.srv }

// Close stops the engine (ending open streams, hanging ones too), then
// shuts the HTTP server down, waiting at most 5 s for handlers to return
// before closing the remaining connections. It is safe to call more than once.
func (r *Running) Close() error {
	return r.shutdown(5 * time.Second)
}

func (r *Running) shutdown(grace time.Duration) error {
	r.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := r.hs.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = errors.Join(fmt.Errorf("fake: shutdown: handlers still running after %v; closing connections", grace), r.hs.Close())
	}
	if serr := <-r.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("fake: serve: %w", serr))
	}
	r.served <- http.ErrServerClosed // let a second Close return at once
	return err
}

// Shutdown is Close with a chosen grace period for in-flight handlers.
func Shutdown(r *Running, grace time.Duration) error { return r.shutdown(grace) }

// logfWriter turns net/http's error log into Server.logf lines.
type logfWriter struct{ s *Server }

func (w logfWriter) Write(p []byte) (int, error) {
	w.s.logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
