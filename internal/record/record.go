package record

import "time"

// Phase says which part of a sample a request belonged to.
type Phase string

const (
	// Probe is a preflight request; never part of any statistic.
	Probe Phase = "probe"
	// Warmup requests bring the engine to steady state; never measured.
	Warmup Phase = "warmup"
	// Measured requests are the sample: latency statistics use only these.
	Measured Phase = "measured"
	// Cooldown requests keep the target concurrency while the last measured
	// requests finish; they are cancelled once every measured request has ended.
	Cooldown Phase = "cooldown"
)

// ErrorKind classifies a failed request. The zero value means success.
type ErrorKind string

const (
	OK             ErrorKind = ""
	Connect        ErrorKind = "connect"         // dial, DNS or TLS failure, connection refused or reset before any response (a dead kept-alive connection is retried once first: Retried)
	Timeout        ErrorKind = "timeout"         // -request-timeout expired (no headers, or the stream stalled)
	HTTPStatus     ErrorKind = "http-status"     // a non-2xx answer; Status and Message say which
	StreamCut      ErrorKind = "stream-cut"      // the body ended or broke before [DONE] / a finish
	ServerError    ErrorKind = "server-error"    // the server sent an error event inside a 2xx stream; Message is its message
	Malformed      ErrorKind = "malformed-event" // a data line that is not valid JSON of the expected shape
	EmptyOutput    ErrorKind = "empty-output"    // the stream finished without one content token
	LengthMismatch ErrorKind = "length-mismatch" // usage.completion_tokens differs from the requested fixed length
	Canceled       ErrorKind = "canceled"        // cancelled by the harness (cooldown end, interrupt): not an engine failure
)

// TokenSource says where OutputTokens and Chunk.Tokens came from.
type TokenSource string

const (
	// Continuous: cumulative usage on every chunk (vLLM continuous_usage_stats);
	// every Chunk.Tokens is exact.
	Continuous TokenSource = "continuous-usage"
	// Usage: one final usage frame; OutputTokens is exact, and the client
	// spreads it evenly over the chunks (earlier chunks take the remainder),
	// so Chunk.Tokens is exact when every chunk carries one token and an
	// estimate otherwise (EstimatedChunkTokens). A natural stop whose usage
	// is one more than the chunks is one token per chunk plus the
	// end-of-sequence token (EOSCounted), not a spread.
	Usage TokenSource = "usage"
	// ChunkCount: the server sent no usage; OutputTokens is the number of content
	// chunks, a flagged fallback that undercounts multi-token chunks.
	ChunkCount TokenSource = "chunk-count"
)

// Chunk is one SSE event that carried output (content or reasoning text).
// Role-only, usage-only and empty events are not chunks.
type Chunk struct {
	// At is when the bytes completing this event arrived (offset from the
	// epoch): the kernel's receive time of the read that delivered them with
	// the Linux epoll reader over HTTP/1.1, else when that read returned
	// (net/http: https, HTTP/2, proxies, INFERBENCH_NET_HTTP=1).
	At time.Duration `json:"at_ns"`
	// Tokens is the number of output tokens the event carried; 0 means unknown.
	Tokens int `json:"tokens"`
}

// Record is everything one request produced.
type Record struct {
	Engine      string `json:"engine"`
	Concurrency int    `json:"concurrency"`
	// Rate is the target arrival rate (requests/s) of an open-loop sample,
	// whose Concurrency is then the cap on requests in flight; 0 for a
	// closed-loop sample. Engine, Concurrency, Rate and Sample name a sample.
	Rate   float64 `json:"rate,omitempty"`
	Sample int     `json:"sample"` // 0-based repetition of this engine and level
	Seq    int     `json:"seq"`    // index of the request in the workload
	Phase  Phase   `json:"phase"`

	// Intended is when the load generator meant to send (a slot became free, or
	// the schedule said so). Sent - Intended is client-side queueing.
	Intended time.Duration `json:"intended_ns"`
	// Sent is just before the request was written to the connection.
	Sent time.Duration `json:"sent_ns"`
	// Headers is when the response headers arrived (0: never).
	Headers time.Duration `json:"headers_ns,omitempty"`
	// Chunks are the output-bearing events in arrival order.
	Chunks []Chunk `json:"chunks,omitempty"`
	// Done is when the exchange ended: [DONE], EOF, error or cancellation.
	Done time.Duration `json:"done_ns"`

	RequestedTokens int         `json:"requested_tokens"` // fixed output length asked for (0: not fixed)
	PromptTokens    int         `json:"prompt_tokens"`    // usage.prompt_tokens (0: not reported)
	OutputTokens    int         `json:"output_tokens"`    // see TokenSource
	TokenSource     TokenSource `json:"token_source,omitempty"`
	FinishReason    string      `json:"finish_reason,omitempty"`
	// EOSCounted is true when the server's usage counts one more token than
	// the chunks carried, and that token is the end-of-sequence token of a
	// natural stop (finish_reason "stop"): it was generated (a decode step)
	// but produced no output. OutputTokens keeps the server's count; the
	// chunks' Tokens sum to StreamedTokens() = OutputTokens − 1.
	EOSCounted bool `json:"eos_counted,omitempty"`
	// LengthForced is true when the request asked the server for exactly
	// RequestedTokens (min_tokens = max_tokens, and ignore_eos for vLLM).
	// Only then is a different length a broken contract; without it (the
	// generic profile sends max_tokens alone) a shorter answer is legitimate.
	LengthForced bool `json:"length_forced,omitempty"`
	// CachedTokens is usage.prompt_tokens_details.cached_tokens, the prompt
	// tokens the server served from its prefix cache. CachedReported tells
	// a reported 0 from a server that does not report it.
	CachedTokens   int  `json:"cached_tokens,omitempty"`
	CachedReported bool `json:"cached_reported,omitempty"`

	// Retried is true when the request first went out on a reused
	// keep-alive connection that the server had closed, so that it died
	// before any response byte, and the client sent it once more on a new
	// connection. Sent, the connection fields and everything after are the
	// retry's; Intended is unchanged, so Sent − Intended includes the lost
	// attempt. Nothing else is ever retried.
	Retried bool `json:"retried,omitempty"`
	// ConnReused is true when the request went out on a kept-alive
	// connection; NewConn when the transport dialled one for it (or handed
	// it one dialled for another request but never used). Both are false
	// when no connection was obtained (a dial, DNS or TLS failure).
	ConnReused bool `json:"conn_reused,omitempty"`
	NewConn    bool `json:"new_conn,omitempty"`
	// GotConn is when the transport handed the request its connection
	// (0: never). GotConn − Sent is the connection set-up, or the wait for
	// a free connection, that TTFT would otherwise hide.
	GotConn time.Duration `json:"got_conn_ns,omitempty"`
	// DNS, Dial and TLS are how long the DNS lookup, the TCP connect and
	// the TLS handshake of a new connection took (0: not done, e.g. a
	// reused connection, an IP address, or plain HTTP).
	DNS  time.Duration `json:"dns_ns,omitempty"`
	Dial time.Duration `json:"dial_ns,omitempty"`
	TLS  time.Duration `json:"tls_ns,omitempty"`

	// PrefixTokens is the length, in server tokens as the workload's
	// calibration estimates it, of the shared prefix the request's prompt
	// opens with (-prefix-tokens): the part the workload made cacheable.
	// 0: no shared prefix.
	PrefixTokens int `json:"prefix_tokens,omitempty"`
	// Conversation is the number of the conversation the request is a turn
	// of (multi-turn workloads, -turns), from 1; 0 means the request is no
	// conversation's. Turn is its 0-based turn index: turn t's prompt holds
	// turns 0…t−1 with the engine's own answers.
	Conversation int `json:"conversation,omitempty"`
	Turn         int `json:"turn,omitempty"`

	Status  int       `json:"status,omitempty"` // HTTP status (0: none received)
	Error   ErrorKind `json:"error,omitempty"`
	Message string    `json:"message,omitempty"` // the server's error message or the Go error, redacted
}

// Failed reports whether the request counts as a failure. Harness
// cancellations are not failures.
func (r *Record) Failed() bool { return r.Error != OK && r.Error != Canceled }

// HasFirstToken reports whether any output arrived.
func (r *Record) HasFirstToken() bool { return len(r.Chunks) > 0 }

// TTFT is Sent → first output chunk. ok is false when no output arrived.
func (r *Record) TTFT() (d time.Duration, ok bool) {
	if len(r.Chunks) == 0 {
		return 0, false
	}
	return r.Chunks[0].At - r.Sent, true
}

// E2E is Sent → last output chunk (a trailing usage frame or [DONE] does not
// extend it). ok is false when no output arrived.
func (r *Record) E2E() (d time.Duration, ok bool) {
	if len(r.Chunks) == 0 {
		return 0, false
	}
	return r.Chunks[len(r.Chunks)-1].At - r.Sent, true
}

// TPOT is (E2E − TTFT) / (StreamedTokens − 1): the mean time per output
// token after the first. An end-of-sequence token counted by the server
// (EOSCounted) is left out: it arrives after the last chunk, outside the
// span. ok is false with fewer than two streamed tokens.
func (r *Record) TPOT() (d time.Duration, ok bool) {
	n := r.StreamedTokens()
	if len(r.Chunks) == 0 || n < 2 {
		return 0, false
	}
	span := r.Chunks[len(r.Chunks)-1].At - r.Chunks[0].At
	return span / time.Duration(n-1), true
}

// StreamedTokens is the number of output tokens that arrived in chunks:
// OutputTokens without the end-of-sequence token of a natural stop that
// the server's usage counts (EOSCounted). Throughput, TPOT and ITL should
// weigh chunks by it; OutputTokens stays the server's own count, the one
// max_tokens and the fixed-length check refer to.
func (r *Record) StreamedTokens() int {
	if r.EOSCounted && r.OutputTokens > 0 {
		return r.OutputTokens - 1
	}
	return r.OutputTokens
}

// EstimatedChunkTokens reports whether the per-chunk token counts are an
// estimate rather than the server's: a final usage total spread over
// chunks that do not carry one token each, or a chunk of unknown size
// (Tokens 0). Continuous usage is exact; one token per chunk with a final
// total that matches (after EOSCounted) is exact; a chunk count without
// usage (ChunkCount) is a fallback flagged by TokenSource, not here.
func (r *Record) EstimatedChunkTokens() bool {
	if len(r.Chunks) == 0 {
		return false
	}
	for _, c := range r.Chunks {
		if c.Tokens <= 0 {
			return true
		}
	}
	return r.TokenSource == Usage && r.StreamedTokens() != len(r.Chunks)
}

// Transient reports whether the failure may go away if the same request is
// sent again, so that a preflight may retry it: rate limiting (HTTP 429),
// a server failure (HTTP 5xx), a stream cut or broken mid-way, and a
// timeout (no answer, or a stalled stream). Deterministic failures are not
// transient, because the same request gets the same answer: a 4xx other
// than 429 (bad token, unknown model, rejected field), a redirect, an
// error event inside the stream (server-error: llama-server, for one,
// reports a prompt that exceeds the context this way), a malformed event
// or a JSON answer to a stream request (the server speaks another format;
// at temperature 0 it garbles the same event again), empty output, a
// length mismatch, and connect failures (a refused connection, DNS and TLS
// errors, a server that drops new connections: the client already retries
// the one benign case, a reused keep-alive connection the server had
// closed). Success and cancellation are not transient.
func (r *Record) Transient() bool {
	switch r.Error {
	case StreamCut, Timeout:
		return true
	case HTTPStatus:
		return r.Status == 429 || r.Status >= 500
	}
	return false
}
