package engines

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/inferbench/inferbench/internal/record"
)

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Request is one chat request, independent of the engine profile.
type Request struct {
	Messages []Message
	// MaxTokens is the fixed output length: the profile turns it into
	// max_tokens + min_tokens (+ ignore_eos for vLLM). 0 leaves the length
	// to the server and nothing is checked.
	MaxTokens int
	// Prompt is the prompt of a /v1/completions request (Options.Endpoint
	// Completions); "" sends the messages' contents joined by blank lines,
	// with no chat template. A chat request ignores it.
	Prompt string
	// Answer, when not nil, receives the output text as the engine
	// streamed it (a chat delta's content, a completion's text), appended
	// event by event; reasoning text is left out. It is opt-in because it
	// decodes every output event a second time: only a workload that needs
	// the text (a conversation's next turn) sets it. On a failed request it
	// holds what arrived.
	Answer *strings.Builder
}

// Endpoint is the API a client speaks.
type Endpoint string

const (
	// Chat is POST /v1/chat/completions with messages (the default).
	Chat Endpoint = "chat"
	// Completions is POST /v1/completions with a prompt and no chat
	// template; chunks carry choices[].text.
	Completions Endpoint = "completions"
)

// Options configures a Client. The zero value works: no request deadline,
// the epoch is the client's creation time, and the clock is time.Now.
type Options struct {
	// Concurrency is the largest number of requests the caller will have in
	// flight. The transport keeps Concurrency+extraConns connections per host
	// (both open and idle), so requests never queue inside the transport
	// unseen. 0 means 1.
	Concurrency int
	// RequestTimeout bounds one whole request (headers and stream); 0 = none.
	RequestTimeout time.Duration
	// Epoch is the instant record offsets are measured from (monotonic clock).
	// The zero time means the client's creation time.
	Epoch time.Time
	// Now is the clock; nil means time.Now. Tests inject a fake clock.
	Now func() time.Time
	// Endpoint is the API: Chat ("" too) or Completions. For Completions
	// an engine URL ending in /chat/completions is sent to /completions
	// next to it; any other URL is used as given.
	Endpoint Endpoint
	// Transport replaces the HTTP transport (for tests); when set,
	// Concurrency and InsecureSkipVerify do not configure it, a dead
	// kept-alive connection is not retried, and Preflight cannot observe
	// keep-alive (Conformance.KeepAlive is unknown).
	Transport http.RoundTripper
	// HTTP2 speaks HTTP/2 instead of HTTP/1.1: negotiated by ALPN ("h2")
	// for https:// URLs and cleartext with prior knowledge (h2c) for
	// http:// ones. A server that does not support it fails the request
	// (no silent fallback: the run says which protocol it measured).
	// Streams then share connections, up to the server's stream limit
	// per connection.
	HTTP2 bool
	// NetHTTP reads HTTP/1.1 streams through net/http's transport even
	// where the epoll reader would serve (http:// URLs without a proxy,
	// on Linux): for comparing the two. INFERBENCH_NET_HTTP=1 in the
	// environment does the same for every client.
	NetHTTP bool
}

// envNetHTTP is INFERBENCH_NET_HTTP=1: every client uses net/http.
var envNetHTTP = os.Getenv("INFERBENCH_NET_HTTP") == "1"

// extraConns is the connection headroom above Concurrency (for probes and
// connections being torn down).
const extraConns = 4

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// Client sends streaming chat requests to one engine. Do is safe for
// concurrent use; SetModel is not (call it before the first Do).
type Client struct {
	engine Engine
	hc     *http.Client
	tr     *http.Transport // nil when Options.Transport was given
	// fresh sends the one retry of a request whose reused connection had
	// died: its transport keeps no connection alive, so every request on
	// it dials a new one. (Closing the main transport's idle connections
	// instead would disturb the other streams' connections.) nil when
	// Options.Transport was given: then nothing is retried.
	fresh   *http.Client
	freshTr *http.Transport
	opt     Options
	now     func() time.Time
	secrets []string
	url     string // where requests go: the engine URL, or its completions sibling

	// reads counts how the streams were read (ReadStats).
	reads readCounters
	// lean is the epoll reader's transport, nil where net/http serves.
	lean *leanTransport

	// eventHook, when set (benchmarks only), sees every event's data, its
	// stamp and the time it was read (later than the stamp when the
	// kernel's receive time is used).
	eventHook func(data []byte, at, readAt time.Duration)
}

// NewClient checks the engine and builds its client.
func NewClient(e Engine, o Options) (*Client, error) {
	if e.Name == "" {
		return nil, errors.New("engine has no name")
	}
	u, err := url.Parse(e.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("engine %s: URL %q is not an http(s) URL with a host", e.Name, RedactURL(e.URL))
	}
	switch e.Profile {
	case VLLM, Friendli, OpenAI:
	case "":
		e.Profile = OpenAI
	default:
		return nil, fmt.Errorf("engine %s: unknown profile %q (want %s, %s or %s)", e.Name, e.Profile, VLLM, Friendli, OpenAI)
	}
	if o.Concurrency < 0 {
		return nil, fmt.Errorf("engine %s: concurrency %d is negative", e.Name, o.Concurrency)
	}
	if o.RequestTimeout < 0 {
		return nil, fmt.Errorf("engine %s: request timeout %v is negative", e.Name, o.RequestTimeout)
	}
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	c := &Client{engine: e, opt: o, now: o.Now, url: e.URL}
	switch o.Endpoint {
	case "", Chat:
		c.opt.Endpoint = Chat
	case Completions:
		c.url = completionsURL(e.URL)
	default:
		return nil, fmt.Errorf("engine %s: unknown endpoint %q (want %s or %s)", e.Name, o.Endpoint, Chat, Completions)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.opt.Epoch.IsZero() {
		c.opt.Epoch = c.now()
	}
	c.secrets = []string{e.APIKey, e.Team}
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			c.secrets = append(c.secrets, p)
		}
		c.secrets = append(c.secrets, u.User.Username())
	}
	rt := o.Transport
	if rt == nil {
		c.tr = newTransport(o.Concurrency, e.InsecureSkipVerify)
		if o.HTTP2 {
			useHTTP2(c.tr)
		}
		rt = c.tr
	}
	// A redirect would resend the body and the credentials elsewhere.
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &http.Client{Transport: rt, CheckRedirect: noRedirect}
	if lu, err := url.Parse(c.url); err == nil && leanSupported {
		c.lean = newLeanTransport(c, lu, c.opt)
	}
	if c.tr != nil {
		c.freshTr = c.tr.Clone()
		c.freshTr.DisableKeepAlives = true
		c.fresh = &http.Client{Transport: c.freshTr, CheckRedirect: noRedirect}
	}
	return c, nil
}

// newTransport builds an HTTP/1.1 transport with one connection per
// in-flight stream: no hidden queueing, no compression (gzip would buffer
// the stream), and bounded dial and TLS handshake times.
func newTransport(concurrency int, insecure bool) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	conns := concurrency + extraConns
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           trackingDialer(d.DialContext),
		MaxConnsPerHost:       conns,
		MaxIdleConnsPerHost:   conns,
		MaxIdleConns:          conns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		TLSNextProto:          map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only
		ReadBufferSize:        4 << 10,
		WriteBufferSize:       4 << 10,                                   // a request is written once; 4 KiB is three writes for a 10 KB prompt, and 12 KiB less per stream
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: insecure}, //nolint:gosec // off by default; the caller warns
		ExpectContinueTimeout: 0,
	}
}

// NewConnectionPerRequest makes every later request go out on a connection
// of its own, dialled for it and closed after it: for a server that closes
// each connection after a streamed response while advertising keep-alive
// (the preflight's Conformance.KeepAlive is ClosedByServer). Reusing its
// connections would lose the first write of many requests to a dead
// connection and retry them; a new connection per request is what such a
// server gets from any client, and its set-up shows in every record
// (NewConn, Dial, GotConn). It does nothing when Options.Transport was
// given. Like SetModel, it must not be called concurrently with Do.
func (c *Client) NewConnectionPerRequest() {
	if c.lean != nil {
		c.lean.newConnectionPerRequest()
	}
	if c.fresh == nil {
		return
	}
	c.tr.CloseIdleConnections()
	c.hc = c.fresh
}

// useHTTP2 switches a transport to HTTP/2 only: h2 over TLS, h2c over
// cleartext.
func useHTTP2(tr *http.Transport) {
	var p http.Protocols
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	tr.Protocols = &p
	tr.TLSNextProto = nil
	tr.ForceAttemptHTTP2 = true
}

// Engine returns the engine the client talks to.
func (c *Client) Engine() Engine { return c.engine }

// SetModel sets the model field of later requests (after DiscoverModel). It
// must not be called concurrently with Do.
func (c *Client) SetModel(model string) { c.engine.Model = model }

// String identifies the client by its engine, redacted.
func (c *Client) String() string { return "engines.Client(" + c.engine.String() + ")" }

// Format keeps every fmt verb on the redacted form: the Client holds the
// API key, and %+v of a struct pointer would otherwise print it.
func (c *Client) Format(f fmt.State, verb rune) { fmt.Fprint(f, c.String()) }

// Close closes idle connections.
func (c *Client) Close() {
	if c.lean != nil {
		c.lean.closeIdle()
	}
	if c.tr != nil {
		c.tr.CloseIdleConnections()
		c.freshTr.CloseIdleConnections()
	} else {
		c.hc.CloseIdleConnections()
	}
}

// since is the offset of now from the epoch (monotonic when both carry it).
func (c *Client) since() time.Duration { return c.now().Sub(c.opt.Epoch) }

func (c *Client) redact(s string) string {
	return Redact(s, c.secrets...)
}

// generation is the part of a request body that chat and text completions
// share: the model, streaming with usage, and the output length as the
// profile asks for it (max_tokens; vLLM and Friendli also min_tokens, vLLM
// ignore_eos and continuous usage).
type generation struct {
	Model         string        `json:"model,omitempty"`
	Stream        bool          `json:"stream"`
	MaxTokens     int           `json:"max_tokens,omitempty"`
	MinTokens     int           `json:"min_tokens,omitempty"`
	IgnoreEOS     bool          `json:"ignore_eos,omitempty"`
	Temperature   float64       `json:"temperature"`
	StreamOptions streamOptions `json:"stream_options"`
}

type streamOptions struct {
	IncludeUsage         bool `json:"include_usage"`
	ContinuousUsageStats bool `json:"continuous_usage_stats,omitempty"`
}

// generation fills the shared fields for a request of maxTokens output
// tokens (0: no length asked for).
func (c *Client) generation(maxTokens int) (generation, error) {
	if maxTokens < 0 {
		return generation{}, fmt.Errorf("request MaxTokens %d is negative", maxTokens)
	}
	g := generation{
		Model:         c.engine.Model,
		Stream:        true,
		MaxTokens:     maxTokens,
		StreamOptions: streamOptions{IncludeUsage: true},
	}
	switch c.engine.Profile {
	case VLLM:
		g.MinTokens = maxTokens
		g.IgnoreEOS = maxTokens > 0
		g.StreamOptions.ContinuousUsageStats = true
	case Friendli:
		g.MinTokens = maxTokens
	}
	return g, nil
}

// body builds the JSON request body for the engine's profile.
func (c *Client) body(req Request) ([]byte, error) {
	if c.opt.Endpoint == Completions {
		return c.completionBody(req)
	}
	if len(req.Messages) == 0 {
		return nil, errors.New("request has no messages")
	}
	g, err := c.generation(req.MaxTokens)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		generation
		Messages []Message `json:"messages"`
	}{g, req.Messages})
}

// fixesLength reports whether the profile asks the server for an exact
// output length (min_tokens = max_tokens). Only then is a different length
// a failure (length-mismatch); the generic profile sends max_tokens alone,
// so a shorter answer is legitimate and only counted by the statistics.
func (c *Client) fixesLength() bool { return c.engine.Profile != OpenAI }

// SimulatedHeader is the response header by which inferbench's simulated
// engine (fake/) identifies itself; Preflight reports it as Probe.Simulated
// so that results of a simulated engine reached by URL are labelled as
// simulated too. (The name is protocol, not shared code: fake/ spells it
// on its own side.)
const SimulatedHeader = "X-Inferbench-Simulated"

// setHeaders adds the profile's authentication headers.
func (c *Client) setHeaders(h http.Header) {
	if c.engine.APIKey != "" {
		h.Set("Authorization", "Bearer "+c.engine.APIKey)
	}
	if c.engine.Profile == Friendli && c.engine.Team != "" {
		h.Set("X-Friendli-Team", c.engine.Team)
	}
	h.Set("User-Agent", "inferbench")
}

// newRequest builds the POST of body with the profile's headers.
func (c *Client) newRequest(ctx context.Context, body []byte) (*http.Request, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "text/event-stream")
	c.setHeaders(hreq.Header)
	return hreq, nil
}

// errRequestTimeout is the cancellation cause when RequestTimeout expires.
var errRequestTimeout = errors.New("request timeout")

// streamInfo is what Preflight learns beyond the record.
type streamInfo struct {
	firstEvent  time.Duration // first event of any kind (0: none)
	roleAt      time.Duration // first role-bearing event without output (0: none)
	roleFirst   bool          // a role-only event came before the first output chunk
	outputRoles int           // output chunks whose delta also carried the role
	sawDone     bool          // data: [DONE] arrived
	usageChunks int           // events carrying usage
	continuous  bool          // every output chunk carried usage
	contentType string
	simulated   bool            // the server said it is inferbench's simulated engine
	server      string          // the Server response header
	keepAlive   string          // the Keep-Alive response header
	connClose   bool            // the response said Connection: close
	drained     bool            // the body was read to its end (the connection went back idle)
	connClosed  <-chan struct{} // closed when the client closes the connection (nil: not watched)
}

// Do sends one streaming request and fills rec, which must not be nil; see
// the package doc for every field's definition. The caller sets Engine, Seq,
// Phase, Intended, Concurrency, Sample and RequestedTokens; Do resets and
// sets the rest. Do never panics on server input, and it returns by the time
// ctx is done or RequestTimeout expires, whichever comes first.
func (c *Client) Do(ctx context.Context, req Request, rec *record.Record) {
	var info streamInfo
	c.do(ctx, req, rec, &info)
}

// maxPreallocChunks bounds the chunks a request's record is given room
// for before its stream starts: max_tokens may be far above what a natural
// stop reaches, and a sample keeps its records until its metrics are
// computed (256 chunks are 4 KiB; a longer stream grows from there).
const maxPreallocChunks = 256

func (c *Client) do(ctx context.Context, req Request, rec *record.Record, info *streamInfo) {
	// Reset what Do owns (everything but the caller's fields), so a reused
	// record carries nothing stale, whatever fields the record gains.
	*rec = record.Record{
		Engine: rec.Engine, Concurrency: rec.Concurrency, Sample: rec.Sample, Seq: rec.Seq, Phase: rec.Phase,
		Intended: rec.Intended, RequestedTokens: rec.RequestedTokens,
		Chunks:       rec.Chunks[:0],
		LengthForced: req.MaxTokens > 0 && c.fixesLength(),
	}
	if cap(rec.Chunks) == 0 && req.MaxTokens > 0 {
		// At most one output-bearing event per token: one allocation of
		// the size the stream needs, not a doubling per power of two.
		rec.Chunks = make([]record.Chunk, 0, min(req.MaxTokens, maxPreallocChunks))
	}

	body, err := c.body(req)
	if err != nil {
		rec.Sent = c.since()
		c.fail(rec, record.Malformed, "engine "+c.engine.Name+": building the request: "+err.Error())
		return
	}
	if c.opt.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.opt.RequestTimeout, errRequestTimeout)
		defer cancel()
	}
	// stopReq aborts the exchange (used to bound the final drain); it is
	// not the caller's cancellation, so it is never classified.
	ctx, stopReq := context.WithCancel(ctx)
	defer stopReq()

	if c.lean != nil {
		c.lean.do(ctx, req, rec, info, body)
		return
	}
	rec.Sent = c.since()
	t := &connTrace{now: c.now, at: c.since}
	resp, err := c.send(ctx, c.hc, body, t)
	if err != nil && c.fresh != nil && ctx.Err() == nil && t.deadReuse() {
		// The kept-alive connection was dead (the server closed it after
		// the previous stream, and the transport does not resend a POST):
		// nothing was answered, so send once more, on a new connection.
		// Only this case is retried; the retry's failure is the record's.
		rec.Retried = true
		rec.Sent = c.since()
		t = &connTrace{now: c.now, at: c.since}
		resp, err = c.send(ctx, c.fresh, body, t)
	}
	t.fill(rec)
	if tc := t.connection(); tc != nil {
		info.connClosed = tc.closed
	}
	if err != nil {
		c.transportFailure(ctx, rec, err, true)
		return
	}
	defer resp.Body.Close()
	rec.Headers = c.since()
	noteHead(resp, rec, info)

	if !streamable(resp.StatusCode, info.contentType) {
		c.failResponse(rec, resp.StatusCode, resp.Header, resp.Body)
		return
	}
	c.readStream(ctx, req, resp.Body, rec, info, stopReq)
}

// noteHead takes what the record and the preflight keep of a response
// head, for both readers (net/http here, the epoll reader's h1stream.head).
func noteHead(resp *http.Response, rec *record.Record, info *streamInfo) {
	rec.Status = resp.StatusCode
	info.contentType = resp.Header.Get("Content-Type")
	info.simulated = resp.Header.Get(SimulatedHeader) != ""
	info.server = resp.Header.Get("Server")
	info.keepAlive = resp.Header.Get("Keep-Alive")
	info.connClose = resp.Close
}

// streamable reports whether a response's status and Content-Type make
// it an event stream to read, rather than an error to report.
func streamable(status int, contentType string) bool {
	return status >= 200 && status <= 299 && !strings.HasPrefix(strings.ToLower(contentType), "application/json")
}

// failResponse records why a response is not a stream (see streamable),
// with the server's message from its body.
func (c *Client) failResponse(rec *record.Record, status int, h http.Header, body io.Reader) {
	msg := readErrorBody(body)
	if status < 200 || status > 299 {
		if loc := h.Get("Location"); loc != "" && status >= 300 && status < 400 {
			// Redirects are not followed (they would resend the credentials).
			msg = "redirected to " + RedactURL(loc) + "; use that URL: " + msg
		}
		c.fail(rec, record.HTTPStatus, fmt.Sprintf("HTTP %d: %s", status, msg))
		return
	}
	c.fail(rec, record.Malformed, "the server answered with application/json, not an event stream (does it support stream=true?): "+msg)
}

// sseReaders recycles readers and their buffers across requests.
var sseReaders = sync.Pool{New: func() any { return newSSEReader(nil, nil, 0) }}

// getSSEReader takes a reader from the pool for body (nil in push mode).
func getSSEReader(body io.Reader, stamp func() time.Duration) *sseReader {
	sr := sseReaders.Get().(*sseReader)
	sr.reset(body)
	sr.stamp = stamp
	return sr
}

// putSSEReader returns a reader to the pool, unless one huge event grew
// its buffers.
func putSSEReader(sr *sseReader) {
	sr.reset(nil)
	sr.stamp = nil
	if len(sr.buf) > 1<<20 || cap(sr.data) > 1<<20 {
		return
	}
	sseReaders.Put(sr)
}

// drainWait bounds how long the body is drained after the stream ended.
const drainWait = 100 * time.Millisecond

// drainMax bounds how much of the body is drained after the stream ended.
const drainMax = 4 << 10

// readStream consumes the event stream and classifies its end. stop, if not
// nil, aborts a blocked body read (it cancels the request's context).
func (c *Client) readStream(ctx context.Context, req Request, body io.Reader, rec *record.Record, info *streamInfo, stop func()) {
	sr := getSSEReader(body, c.since)
	defer putSSEReader(sr)
	st := newStreamState(c, req, rec, info)
	for {
		data, at, err := sr.Next()
		if err != nil {
			st.end(ctx, err, at)
			break
		}
		st.readAt = at
		if !st.event(data, at, sr.reads) {
			break
		}
	}
	if rec.Error == record.OK && stop != nil && !info.drained {
		// Leave the connection reusable: drain what little follows the end,
		// but never wait on a server that keeps the response open.
		t := time.AfterFunc(drainWait, stop)
		_, err := io.CopyN(io.Discard, body, drainMax)
		t.Stop()
		info.drained = errors.Is(err, io.EOF)
	}
	st.finish(sr.reads)
}

// streamState is what reading one event stream keeps between events: the
// record being filled and the token accounting. Both read paths feed it:
// readStream pulls events from a body reader, and the epoll reader
// (h1conn) pushes them as the bytes arrive.
type streamState struct {
	c    *Client
	req  Request
	rec  *record.Record
	info *streamInfo

	ci             chunkInfo
	finished       bool // a finish_reason arrived
	over           bool // no more events are wanted ([DONE], or a verdict)
	lastCompletion int  // cumulative completion tokens at the last usage
	pending        int  // usage growth seen before the first output chunk
	trailing       int  // usage growth seen on non-output events since the last output chunk
	usageOnAll     bool
	haveUsage      bool
	rs             ReadStats
	lastOutRead    int           // the read that delivered the previous output chunk (-1: none)
	readAt         time.Duration // when the next event was read (eventHook only)
}

func newStreamState(c *Client, req Request, rec *record.Record, info *streamInfo) *streamState {
	return &streamState{c: c, req: req, rec: rec, info: info, usageOnAll: true, lastOutRead: -1}
}

// end records how the events ended before the stream said it was over:
// err is the reader's (io.EOF for a clean end of the body).
func (st *streamState) end(ctx context.Context, err error, at time.Duration) {
	c, rec, info := st.c, st.rec, st.info
	st.over = true
	rec.Done = at
	if rec.Done == 0 {
		rec.Done = c.since()
	}
	switch {
	case errors.Is(err, io.EOF):
		info.drained = true
		if !st.finished {
			c.fail(rec, record.StreamCut, "the stream ended before [DONE] or a finish_reason")
		}
	case errors.Is(err, errEventTooLarge):
		c.fail(rec, record.Malformed, err.Error())
	default:
		c.transportFailure(ctx, rec, err, false)
	}
}

// event handles one event's data, stamped at and delivered by read number
// read of the stream. It reports whether more events are wanted.
func (st *streamState) event(data []byte, at time.Duration, read int) bool {
	c, rec, info, req := st.c, st.rec, st.info, st.req
	ci := &st.ci
	st.rs.Events++
	if c.eventHook != nil {
		c.eventHook(data, at, st.readAt)
	}
	if info.firstEvent == 0 {
		info.firstEvent = at
	}
	if string(data) == "[DONE]" {
		info.sawDone = true
		rec.Done = at
		st.over = true
		return false
	}
	if err := parseChunk(data, ci); err != nil {
		rec.Done = at
		c.fail(rec, record.Malformed, fmt.Sprintf("event %q: %v", snippet(data), err))
		st.over = true
		return false
	}
	if ci.hasError {
		rec.Done = at
		// An error event inside a 2xx stream (llama-server, vLLM) is the
		// server's verdict on this request, not a broken connection.
		c.fail(rec, record.ServerError, "the server reported an error in the stream: "+ci.errMsg)
		st.over = true
		return false
	}
	if ci.output {
		if st.trailing > 0 {
			// Growth between two output chunks belongs to the earlier one.
			rec.Chunks[len(rec.Chunks)-1].Tokens += st.trailing
			st.trailing = 0
		}
		rec.Chunks = append(rec.Chunks, record.Chunk{At: at})
		if req.Answer != nil {
			appendAnswer(req.Answer, data)
		}
		st.rs.Chunks++
		if read == st.lastOutRead {
			st.rs.Queued++
		}
		st.lastOutRead = read
		if !ci.hasUsage {
			st.usageOnAll = false
		}
	} else if ci.role && len(rec.Chunks) == 0 && !info.roleFirst {
		info.roleAt, info.roleFirst = at, true
	}
	if ci.output && ci.role {
		info.outputRoles++
	}
	if ci.hasUsage {
		info.usageChunks++
		st.haveUsage = true
		rec.PromptTokens = ci.promptTokens
		if ci.hasCached {
			rec.CachedTokens, rec.CachedReported = ci.cachedTokens, true
		}
		delta := ci.completionTokens - st.lastCompletion
		st.lastCompletion = ci.completionTokens
		if delta < 0 {
			// The count went backwards: per-chunk counts cannot be trusted.
			st.usageOnAll, delta = false, 0
		}
		switch {
		case ci.output:
			rec.Chunks[len(rec.Chunks)-1].Tokens = delta + st.pending
			st.pending = 0
		case len(rec.Chunks) > 0:
			st.trailing += delta // the previous chunk's, or a natural stop's EOS token
		default:
			st.pending += delta
		}
	}
	if ci.finish != "" {
		rec.FinishReason = ci.finish
		st.finished = true
	}
	return true
}

// finish completes the record once the stream is over and drained:
// token accounting and the checks on the whole stream. reads is the
// number of reads that delivered the stream's bytes.
func (st *streamState) finish(reads int) {
	c, rec, req := st.c, st.rec, st.req
	st.rs.Reads = int64(reads)
	c.reads.add(st.rs)
	if rec.Done == 0 {
		rec.Done = c.since()
	}
	c.account(rec, st.haveUsage, st.usageOnAll && len(rec.Chunks) > 0, st.lastCompletion, st.trailing, st.info)
	if rec.Error != record.OK {
		return
	}
	switch {
	case len(rec.Chunks) == 0:
		c.fail(rec, record.EmptyOutput, "the stream finished without one output token")
	case req.MaxTokens > 0 && rec.TokenSource != record.ChunkCount && rec.OutputTokens != req.MaxTokens && c.fixesLength():
		c.fail(rec, record.LengthMismatch, fmt.Sprintf("usage.completion_tokens is %d, the fixed length asked for is %d (finish_reason %q)", rec.OutputTokens, req.MaxTokens, rec.FinishReason))
	}
}

// account sets OutputTokens, TokenSource, EOSCounted and each
// Chunk.Tokens. trailing is the continuous usage growth seen after the
// last output chunk.
//
// A natural stop (finish_reason "stop") whose usage is one more than what
// the chunks carried is one token per chunk plus the end-of-sequence
// token: the server generated and counted it, but it has no text
// (llama-server, vLLM and ollama all count it). It is not spread over the
// chunks (that would make the first chunk two tokens and its ITL an
// estimate) and not added to the last one (that would halve the last
// gap). OutputTokens stays the server's count: it is what max_tokens and
// the fixed-length check refer to, and the engine did spend a decode step
// on it; record.StreamedTokens gives the count without it.
func (c *Client) account(rec *record.Record, haveUsage, continuous bool, completion, trailing int, info *streamInfo) {
	n := len(rec.Chunks)
	naturalStop := rec.FinishReason == "stop" && n > 0
	switch {
	case haveUsage && continuous:
		rec.TokenSource = record.Continuous
		rec.OutputTokens = completion
		info.continuous = true
		if naturalStop && trailing == 1 {
			rec.EOSCounted = true
		} else if n > 0 {
			rec.Chunks[n-1].Tokens += trailing
		}
	case haveUsage:
		rec.TokenSource = record.Usage
		rec.OutputTokens = completion
		if naturalStop && completion == n+1 {
			rec.EOSCounted = true
			for i := range rec.Chunks {
				rec.Chunks[i].Tokens = 1
			}
			break
		}
		// Spread the exact total evenly over the chunks (earlier chunks take
		// the remainder), so the per-chunk counts sum to the total.
		if n > 0 && completion >= n {
			q, r := completion/n, completion%n
			for i := range rec.Chunks {
				rec.Chunks[i].Tokens = q
				if i < r {
					rec.Chunks[i].Tokens++
				}
			}
		} else {
			for i := range rec.Chunks {
				rec.Chunks[i].Tokens = 1
			}
		}
	default:
		rec.TokenSource = record.ChunkCount
		rec.OutputTokens = n
		for i := range rec.Chunks {
			rec.Chunks[i].Tokens = 1
		}
	}
	if n == 0 && !haveUsage {
		rec.TokenSource = ""
	}
}

// fail records the first failure; later ones do not overwrite it.
func (c *Client) fail(rec *record.Record, kind record.ErrorKind, msg string) {
	if rec.Error != record.OK {
		return
	}
	rec.Error = kind
	rec.Message = c.redact(msg)
	if rec.Done == 0 {
		rec.Done = c.since()
	}
}

// transportFailure classifies an error from the transport or the body.
// beforeResponse is true when no response headers arrived.
func (c *Client) transportFailure(ctx context.Context, rec *record.Record, err error, beforeResponse bool) {
	if rec.Done == 0 {
		rec.Done = c.since()
	}
	where := "reading the stream"
	if beforeResponse {
		where = "waiting for the response headers"
	}
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		switch {
		case errors.Is(cause, errRequestTimeout):
			c.fail(rec, record.Timeout, fmt.Sprintf("request timeout %v expired %s", c.opt.RequestTimeout, where))
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			c.fail(rec, record.Timeout, "deadline exceeded "+where)
		default:
			c.fail(rec, record.Canceled, "canceled "+where)
		}
		return
	}
	if beforeResponse {
		c.fail(rec, record.Connect, connectReason(err))
		return
	}
	c.fail(rec, record.StreamCut, "the stream broke: "+plainError(err))
}

// connectReason says which part of connecting failed.
func connectReason(err error) string {
	var dnsErr *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	msg := plainError(err)
	switch {
	case errors.As(err, &dnsErr):
		return "DNS lookup failed: " + msg
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalid), errors.As(err, &verify):
		return "TLS certificate verification failed (use a trusted certificate, or -insecure-skip-verify for a self-signed test server): " + msg
	case errors.As(err, &recordErr), strings.Contains(msg, "HTTP response to HTTPS client"):
		return "TLS handshake failed (is this an http:// server?): " + msg
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (is the server running at this address?): " + msg
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before any response: " + msg
	case strings.Contains(msg, "tls:"):
		return "TLS failed: " + msg
	default:
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return "dial failed: " + msg
		}
		return "no response: " + msg
	}
}

// plainError drops the *url.Error wrapper, which repeats the URL (possibly
// with credentials); the caller's context names the engine instead.
func plainError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// readErrorBody reads an error response and extracts the server's message:
// an OpenAI-style {"error":{"message":...}}, {"message":...}, {"detail":...}
// or the trimmed body text.
func readErrorBody(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, maxErrorBody))
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "(empty body)"
	}
	if json.Valid(b) {
		return trimMessage(errorMessage(b))
	}
	return trimMessage(string(b))
}

func trimMessage(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const max = 500
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

func snippet(b []byte) string {
	const max = 120
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
