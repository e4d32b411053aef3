// Package record defines the per-request record: the raw facts one request
// produced, as the client observed them. Everything the suite reports is
// computed from these records and nothing else.
//
// All times are offsets from one run epoch, read from the monotonic clock
// (time.Since(epoch)), so they survive JSON and never jump with the wall clock.
// A zero offset means "did not happen" only where the field says so; use the
// Has* helpers rather than comparing with zero.
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
	Connect        ErrorKind = "connect"         // dial, DNS or TLS failure, connection refused or reset before any response
	Timeout        ErrorKind = "timeout"         // -request-timeout expired (no headers, or the stream stalled)
	HTTPStatus     ErrorKind = "http-status"     // a non-2xx answer; Status and Message say which
	StreamCut      ErrorKind = "stream-cut"      // the body ended or broke before [DONE] / a finish
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
	// estimate otherwise.
	Usage TokenSource = "usage"
	// ChunkCount: the server sent no usage; OutputTokens is the number of content
	// chunks, a flagged fallback that undercounts multi-token chunks.
	ChunkCount TokenSource = "chunk-count"
)

// Chunk is one SSE event that carried output (content or reasoning text).
// Role-only, usage-only and empty events are not chunks.
type Chunk struct {
	// At is when the bytes completing this event were read (offset from the epoch).
	At time.Duration `json:"at_ns"`
	// Tokens is the number of output tokens the event carried; 0 means unknown.
	Tokens int `json:"tokens"`
}

// Record is everything one request produced.
type Record struct {
	Engine      string `json:"engine"`
	Concurrency int    `json:"concurrency"`
	Sample      int    `json:"sample"` // 0-based repetition of this engine and level
	Seq         int    `json:"seq"`    // index of the request in the workload
	Phase       Phase  `json:"phase"`

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

// TPOT is (E2E − TTFT) / (OutputTokens − 1): the mean time per output token
// after the first. ok is false with fewer than two output tokens.
func (r *Record) TPOT() (d time.Duration, ok bool) {
	if len(r.Chunks) == 0 || r.OutputTokens < 2 {
		return 0, false
	}
	span := r.Chunks[len(r.Chunks)-1].At - r.Chunks[0].At
	return span / time.Duration(r.OutputTokens-1), true
}
