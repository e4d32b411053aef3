package fake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inferbench/inferbench/fake/sim"
)

// Options are the HTTP-level options of a Server. The zero value is valid:
// every field documents its default.
type Options struct {
	// Model is the served model name; requests for another model get 404.
	// Default: "fake-model".
	Model string
	// EngineName is a label only (e.g. "vLLM"): it appears as owned_by in
	// /v1/models and in log lines. Default: "fake".
	EngineName string
	// TokensPerChunk packs k tokens into each SSE chunk, as engines with
	// speculative decoding do; a chunk goes out once k tokens are generated.
	// Default (0): 1.
	TokensPerChunk int
	// MaxBodyBytes is the largest request body accepted; a larger one gets
	// 413 without being read. Default (0): 1 MiB.
	MaxBodyBytes int64
	// ErrorRate is the fraction, in [0, 1], of requests that fail on purpose
	// (see the package doc). Default: 0.
	ErrorRate float64
	// ErrorKinds are the failures to inject, from "429", "500", "cut",
	// "hang", "malformed", "error-event" and "abort". Required when ErrorRate > 0.
	// ErrorRate 1 with one kind injects that failure into every request.
	ErrorKinds []string
	// NaturalStop simulates the model's EOS: a request without ignore_eos
	// (and with min_tokens below its limit) stops at a natural length drawn
	// in [max(min_tokens, 1), limit], with finish_reason "stop", and its
	// usage.completion_tokens counts the EOS token that is generated but
	// never sent (content tokens + 1, as llama-server reports). Default
	// (false): every request generates exactly its output limit, so
	// --tokens N gives N tokens.
	NaturalStop bool
	// RoleInEveryDelta shapes chat streams like ollama's: no role-only
	// chunk, every delta {"role":"assistant","content":…}, and a finish
	// chunk whose delta is {"role":"assistant","content":""}. Default:
	// vLLM's shape (one role chunk, then content-only deltas).
	RoleInEveryDelta bool
	// CloseAfterStream reproduces llama-server's keep-alive bug: every
	// response advertises "Connection: keep-alive" and "Keep-Alive:
	// timeout=5, max=100", but after a streamed response completes the
	// server closes the TCP connection. A client that reuses it (Go's
	// http.Transport does) sees its next request fail with no response.
	// Non-streamed responses keep the connection. It needs the connection
	// hooks of ConfigureHTTP (Start and Serve install them); without them
	// every completion request gets 500 saying so. Default: false.
	CloseAfterStream bool
	// Seed makes failure injection, natural output lengths and filler text
	// deterministic. Default: 0 (a valid seed).
	Seed int64
	// Logf, if set, receives one line per notable event (injected failures,
	// aborted streams). nil is silent: the library never prints.
	Logf func(format string, args ...any)
}

// errorKinds are the valid Options.ErrorKinds.
var errorKinds = []string{"429", "500", "cut", "hang", "malformed", "error-event", "abort"}

// Server is the simulated engine's HTTP front end. Create it with NewServer
// and release it with Close.
type Server struct {
	cfg       sim.Config
	opts      Options
	eng       *sim.Engine // nil for the firehose
	mux       *http.ServeMux
	modelJSON []byte // opts.Model as a JSON string

	closer connCloser // CloseAfterStream's connections; see ConfigureHTTP

	reqs      atomic.Uint64 // well-formed completion requests so far
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	// Firehose counters (the engine keeps its own).
	fhRunning     atomic.Int64
	fhPromptTotal atomic.Uint64
	fhGenTotal    atomic.Uint64
}

// NewServer validates cfg and opts, fills the defaults and starts the
// simulated engine (none for the firehose). Call Close to stop it.
func NewServer(cfg sim.Config, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("fake: %w", err)
	}
	if opts.Model == "" {
		opts.Model = "fake-model"
	}
	if opts.EngineName == "" {
		opts.EngineName = "fake"
	}
	switch {
	case opts.TokensPerChunk < 0:
		return nil, fmt.Errorf("fake: TokensPerChunk is %d: must be ≥ 1 (0 means 1)", opts.TokensPerChunk)
	case opts.TokensPerChunk == 0:
		opts.TokensPerChunk = 1
	}
	switch {
	case opts.MaxBodyBytes < 0:
		return nil, fmt.Errorf("fake: MaxBodyBytes is %d: must be ≥ 1 (0 means 1 MiB)", opts.MaxBodyBytes)
	case opts.MaxBodyBytes == 0:
		opts.MaxBodyBytes = 1 << 20
	}
	if !(opts.ErrorRate >= 0 && opts.ErrorRate <= 1) { // also rejects NaN
		return nil, fmt.Errorf("fake: error rate is %v: must be a fraction in [0, 1]", opts.ErrorRate)
	}
	for _, k := range opts.ErrorKinds {
		if !slices.Contains(errorKinds, k) {
			return nil, fmt.Errorf("fake: unknown error kind %q: use a comma-separated subset of %s", k, strings.Join(errorKinds, ","))
		}
	}
	if opts.ErrorRate > 0 && len(opts.ErrorKinds) == 0 {
		return nil, fmt.Errorf("fake: error rate %v needs error kinds: choose from %s", opts.ErrorRate, strings.Join(errorKinds, ","))
	}
	opts.ErrorKinds = slices.Clone(opts.ErrorKinds)
	mj, err := json.Marshal(opts.Model)
	if err != nil {
		return nil, fmt.Errorf("fake: model name %q: %w", opts.Model, err)
	}
	s := &Server{cfg: cfg, opts: opts, modelJSON: mj, done: make(chan struct{})}
	s.closer = connCloser{doomed: map[net.Conn]bool{}, timers: map[net.Conn]*time.Timer{}, aborted: map[net.Conn]bool{}}
	if !cfg.Firehose() {
		if s.eng, err = sim.NewEngine(cfg); err != nil {
			return nil, fmt.Errorf("fake: starting the engine: %w", err)
		}
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/v1/chat/completions", s.only(s.completions(true), http.MethodPost))
	s.mux.HandleFunc("/v1/completions", s.only(s.completions(false), http.MethodPost))
	s.mux.HandleFunc("/v1/models", s.only(s.models, http.MethodGet, http.MethodHead))
	s.mux.HandleFunc("/health", s.only(s.health, http.MethodGet, http.MethodHead))
	s.mux.HandleFunc("/metrics", s.only(s.metrics, http.MethodGet, http.MethodHead))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s: the simulated engine serves /v1/chat/completions, /v1/completions, /v1/models, /health and /metrics", r.Method, r.URL.Path))
	})
	return s, nil
}

// Handler returns the server's HTTP handler. With Options.CloseAfterStream
// it needs the hooks of ConfigureHTTP on the http.Server that serves it.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(SimulatedHeader, "true")
		if s.opts.CloseAfterStream {
			if s.abortedConn(r) {
				// The connection is closed: no response, no work.
				panic(http.ErrAbortHandler)
			}
			// llama-server (cpp-httplib) advertises keep-alive on every
			// response, including the streams after which it closes.
			w.Header().Set("Connection", "keep-alive")
			w.Header().Set("Keep-Alive", "timeout=5, max=100")
		}
		s.mux.ServeHTTP(w, r)
	})
}

// connKey is the context key of the request's net.Conn (ConfigureHTTP).
type connKey struct{}

// closeDelay is how long after a streamed response a CloseAfterStream
// connection stays open while idle. Go's http.Transport hands the
// connection to the next request within microseconds, before its reader
// notices a close, so a client that sends at once writes its request and
// then sees the connection close; one that waits longer notices the close
// and dials anew. That is the race a keep-alive server that closes after
// its streams sets up; the delay makes it go the client's way only when
// the client is not in a hurry.
const closeDelay = time.Millisecond

// connCloser is the per-connection state of CloseAfterStream.
type connCloser struct {
	mu      sync.Mutex
	doomed  map[net.Conn]bool        // a streamed response is in progress or done on it
	timers  map[net.Conn]*time.Timer // idle after a stream: closing after closeDelay
	aborted map[net.Conn]bool        // closed when its next request arrived
}

// ConfigureHTTP installs on hs the connection hooks that
// Options.CloseAfterStream needs, keeping any hooks hs already has:
// ConnContext remembers each request's net.Conn; ConnState closes a
// connection closeDelay (1 ms) after it goes idle following a streamed
// response, or at once when its next request arrives first, and that
// request then gets no response. Start and Serve call it; call it yourself
// before hs serves when you serve Handler with your own http.Server (with
// httptest: NewUnstartedServer, ConfigureHTTP(ts.Config), Start). It does
// nothing when CloseAfterStream is off.
func (s *Server) ConfigureHTTP(hs *http.Server) {
	if !s.opts.CloseAfterStream {
		return
	}
	cc := &s.closer
	prevCtx, prevState := hs.ConnContext, hs.ConnState
	hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prevCtx != nil {
			ctx = prevCtx(ctx, c)
		}
		return context.WithValue(ctx, connKey{}, c)
	}
	hs.ConnState = func(c net.Conn, st http.ConnState) {
		if prevState != nil {
			prevState(c, st)
		}
		cc.mu.Lock()
		defer cc.mu.Unlock()
		switch st {
		case http.StateIdle:
			if cc.doomed[c] {
				delete(cc.doomed, c)
				cc.timers[c] = time.AfterFunc(closeDelay, func() { _ = c.Close() })
			}
		case http.StateActive:
			if t, ok := cc.timers[c]; ok {
				// The client reused the connection first: close it under
				// the request it has written.
				t.Stop()
				delete(cc.timers, c)
				cc.aborted[c] = true
				_ = c.Close()
			}
		case http.StateClosed, http.StateHijacked:
			if t, ok := cc.timers[c]; ok {
				t.Stop()
			}
			delete(cc.doomed, c)
			delete(cc.timers, c)
			delete(cc.aborted, c)
		}
	}
}

// closeAfterResponse marks the request's connection to be closed after this
// response (CloseAfterStream).
func (s *Server) closeAfterResponse(r *http.Request) {
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		s.closer.mu.Lock()
		s.closer.doomed[c] = true
		s.closer.mu.Unlock()
	}
}

// abortedConn reports whether r arrived on a connection CloseAfterStream
// has closed under it.
func (s *Server) abortedConn(r *http.Request) bool {
	c, ok := r.Context().Value(connKey{}).(net.Conn)
	if !ok {
		return false
	}
	s.closer.mu.Lock()
	defer s.closer.mu.Unlock()
	return s.closer.aborted[c]
}

// SimulatedHeader is set on every response, so a client that reaches this
// server through a URL (the standalone command) can tell, and say, that
// its numbers come from a simulation.
const SimulatedHeader = "X-Inferbench-Simulated"

// Engine returns the simulated engine, for its statistics in tests; nil for
// the firehose configuration.
func (s *Server) Engine() *sim.Engine { return s.eng }

// Config returns the engine configuration the server runs.
func (s *Server) Config() sim.Config { return s.cfg }

// Close stops the engine and ends every open stream (hanging ones too). It
// is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		if s.eng != nil {
			s.eng.Close()
		}
	})
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf("%s (simulated): "+format, append([]any{s.opts.EngineName}, args...)...)
	}
}

// only wraps h so that other methods get 405 with an Allow header.
func (s *Server) only(h http.HandlerFunc, methods ...string) http.HandlerFunc {
	allow := strings.Join(methods, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(methods, r.Method) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s: use %s", r.Method, r.URL.Path, allow))
			return
		}
		h(w, r)
	}
}

// errorTypes are the OpenAI-style error types by status, as vLLM names them.
var errorTypes = map[int]string{
	http.StatusBadRequest:            "BadRequestError",
	http.StatusNotFound:              "NotFoundError",
	http.StatusMethodNotAllowed:      "MethodNotAllowedError",
	http.StatusRequestEntityTooLarge: "RequestTooLargeError",
	http.StatusTooManyRequests:       "RateLimitError",
	http.StatusInternalServerError:   "InternalServerError",
	http.StatusServiceUnavailable:    "ServiceUnavailableError",
}

// writeError answers with OpenAI's error shape:
// {"error":{"message":…,"type":…,"param":null,"code":status}}.
func writeError(w http.ResponseWriter, status int, msg string) {
	typ := errorTypes[status]
	if typ == "" {
		typ = "Error"
	}
	b := []byte(`{"error":{"message":`)
	b = appendJSONString(b, msg)
	b = append(b, `,"type":"`...)
	b = append(b, typ...)
	b = append(b, `","param":null,"code":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, "}}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// readBody reads at most MaxBodyBytes; a larger body is refused without
// reading it (Content-Length) or as soon as the limit is crossed. ok false
// means the answer was written.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body []byte, ok bool) {
	limit := s.opts.MaxBodyBytes
	tooLarge := func() {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than the limit of %d bytes", limit))
	}
	if r.ContentLength > limit {
		tooLarge()
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			tooLarge()
		} else {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("reading the request body: %v", err))
		}
		return nil, false
	}
	return body, true
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// models answers like vLLM: {"object":"list","data":[{"id":…,"object":"model",…}]},
// with max_model_len the configuration's KVCapacityTokens (the longest
// prompt plus output the server accepts).
func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	b := []byte(`{"object":"list","data":[{"id":`)
	b = append(b, s.modelJSON...)
	b = append(b, `,"object":"model","created":`...)
	b = strconv.AppendInt(b, time.Now().Unix(), 10)
	b = append(b, `,"owned_by":`...)
	b = appendJSONString(b, s.opts.EngineName)
	b = append(b, `,"root":`...)
	b = append(b, s.modelJSON...)
	b = append(b, `,"parent":null,"max_model_len":`...)
	b = strconv.AppendInt(b, int64(s.cfg.KVCapacityTokens), 10)
	b = append(b, `}]}`+"\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

// metrics writes vLLM's main gauges and counters in the Prometheus text
// format (version 0.0.4). kv_cache_usage_perc is a fraction in [0, 1], as in
// vLLM despite its name.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	var st sim.Stats
	if s.eng != nil {
		st = s.eng.Stats()
	} else {
		st.Running = int(s.fhRunning.Load())
		st.PromptTokensTotal = s.fhPromptTotal.Load()
		st.GenerationTokensTotal = s.fhGenTotal.Load()
	}
	kv := 0.0
	if st.KVCapacityTokens > 0 {
		kv = float64(st.KVUsedTokens) / float64(st.KVCapacityTokens)
	}
	label := `{model_name=` + string(s.modelJSON) + `}`
	var b strings.Builder
	metric := func(name, typ, help, value string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s%s %s\n", name, help, name, typ, name, label, value)
	}
	metric("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", strconv.Itoa(st.Running))
	metric("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", strconv.Itoa(st.Waiting))
	metric("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", strconv.FormatFloat(kv, 'g', -1, 64))
	metric("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", strconv.FormatUint(st.PromptTokensTotal, 10))
	metric("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.", strconv.FormatUint(st.GenerationTokensTotal, 10))
	if s.cfg.PrefixCaching {
		metric("vllm:prefix_cache_queries_total", "counter", "Prefix cache queries, in terms of number of queried tokens.", strconv.FormatUint(st.PrefixCacheQueries, 10))
		metric("vllm:prefix_cache_hits_total", "counter", "Prefix cache hits, in terms of number of cached tokens.", strconv.FormatUint(st.PrefixCacheHits, 10))
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = io.WriteString(w, b.String())
}
