package engines

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/inferbench/inferbench/internal/record"
)

// RoleStyle says how a stream announced the assistant role.
type RoleStyle string

const (
	// RoleSeparate: a role-only chunk before the first token (vLLM, llama-server).
	RoleSeparate RoleStyle = "separate-chunk"
	// RoleEveryDelta: no role-only chunk; every output delta repeats the role (ollama).
	RoleEveryDelta RoleStyle = "every-delta"
	// RoleSomeDeltas: no role-only chunk; some output deltas carry the role.
	RoleSomeDeltas RoleStyle = "some-deltas"
	// RoleNone: the role was never sent.
	RoleNone RoleStyle = "none"
)

// UsageStyle says how a stream reported token usage.
type UsageStyle string

const (
	// UsageContinuous: cumulative usage on every output chunk (vLLM continuous_usage_stats).
	UsageContinuous UsageStyle = "continuous"
	// UsageFinal: usage at the end only (one final frame, or on the last chunks).
	UsageFinal UsageStyle = "final"
	// UsageNone: no usage at all; tokens are chunk counts.
	UsageNone UsageStyle = "none"
)

// KeepAlive says what became of the probe's connection after the stream.
type KeepAlive string

const (
	// KeptAlive: the connection was still open KeepAliveWait after the stream.
	KeptAlive KeepAlive = "kept-alive"
	// ClosedByServer: the server closed the connection after the stream
	// (while it was idle), or the probe had to be retried because a
	// kept-alive connection had been closed, whatever its headers said.
	ClosedByServer KeepAlive = "closed-by-server"
	// ConnectionClose: the server answered "Connection: close" and so
	// said it would close.
	ConnectionClose KeepAlive = "connection-close"
	// KeepAliveUnknown: not observed (a custom Options.Transport, or a
	// body the client stopped reading before its end).
	KeepAliveUnknown KeepAlive = "unknown"
)

// KeepAliveWait is how long Preflight watches the probe's idle connection
// for the server closing it. Servers that close after every stream
// (llama-server) do so as they send its end, so the close arrives with
// the last bytes; a server closing idle connections after seconds is kept
// alive for any measurement's purpose.
const KeepAliveWait = 50 * time.Millisecond

// Conformance is what one probe saw of how the server speaks the
// streaming protocol: facts, not judgements, for the results header.
type Conformance struct {
	// Server is the Server response header ("" when absent).
	Server string `json:"server,omitempty"`
	// Role is how the assistant role was announced.
	Role RoleStyle `json:"role"`
	// Usage is how usage was reported.
	Usage UsageStyle `json:"usage"`
	// Chunks is the number of output chunks; TokensPerChunkMax and
	// TokensPerChunkMean describe their sizes (streamed tokens, without a
	// counted EOS). TokensPerChunkExact is false when the sizes are a final
	// total spread over the chunks, or chunk counts without usage.
	Chunks              int     `json:"chunks"`
	TokensPerChunkMax   int     `json:"tokens_per_chunk_max"`
	TokensPerChunkMean  float64 `json:"tokens_per_chunk_mean"`
	TokensPerChunkExact bool    `json:"tokens_per_chunk_exact"`
	// EOSCounted is true when a natural stop's usage counted the unsent
	// end-of-sequence token (llama-server; see record.Record.EOSCounted).
	EOSCounted bool `json:"eos_counted,omitempty"`
	// LengthAsked is the fixed length the probe asked for (0: none);
	// LengthForced says whether the profile forced it (min_tokens), and
	// LengthHonoured whether usage matched it exactly.
	LengthAsked    int  `json:"length_asked,omitempty"`
	LengthForced   bool `json:"length_forced,omitempty"`
	LengthHonoured bool `json:"length_honoured,omitempty"`
	// OutputTokens is the server's completion_tokens (or the chunk count).
	OutputTokens int `json:"output_tokens"`
	// FinishReason is the probe's finish_reason.
	FinishReason string `json:"finish_reason,omitempty"`
	// CachedReported says whether usage carried
	// prompt_tokens_details.cached_tokens; CachedTokens is its value.
	CachedReported bool `json:"cached_reported"`
	CachedTokens   int  `json:"cached_tokens,omitempty"`
	// Done is true when the stream ended with data: [DONE].
	Done bool `json:"done"`
	// KeepAlive is what became of the connection after the stream;
	// KeepAliveHeader is the server's Keep-Alive header (what it promised).
	KeepAlive       KeepAlive `json:"keep_alive"`
	KeepAliveHeader string    `json:"keep_alive_header,omitempty"`
	// ConnReused is true when the probe itself went out on a connection
	// an earlier request (an earlier probe) had left open: proof that the
	// server kept it. Retried is true when the probe caught a dead one.
	ConnReused bool `json:"conn_reused,omitempty"`
	Retried    bool `json:"retried,omitempty"`
}

// Lines renders the facts as short "key: value" lines, one fact each, for
// the caller to prefix (e.g. with "# engine conformance: ").
func (c Conformance) Lines() []string {
	var out []string
	add := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	server := c.Server
	if server == "" {
		server = "(none)"
	}
	add("server header: %s", server)
	switch c.Role {
	case RoleSeparate:
		add("role: a separate role-only chunk before the first token")
	case RoleEveryDelta:
		add("role: in every delta, no separate role chunk")
	case RoleSomeDeltas:
		add("role: in some deltas, no separate role chunk")
	default:
		add("role: never sent")
	}
	exact := "exact"
	if !c.TokensPerChunkExact {
		exact = "estimated"
	}
	add("tokens/chunk: max %d, mean %.2f over %d chunks (%s)", c.TokensPerChunkMax, c.TokensPerChunkMean, c.Chunks, exact)
	switch c.Usage {
	case UsageContinuous:
		add("usage: continuous (cumulative on every chunk)")
	case UsageFinal:
		add("usage: final only")
	default:
		add("usage: none (tokens are chunk counts)")
	}
	if c.EOSCounted {
		add("end of sequence: counted in usage, not streamed (usage = streamed tokens + 1 on a natural stop)")
	}
	switch {
	case c.LengthAsked == 0:
		add("fixed length: not asked")
	case c.Usage == UsageNone:
		add("fixed length: asked %d, not verifiable without usage", c.LengthAsked)
	default:
		how := "max_tokens only, not forced"
		if c.LengthForced {
			how = "forced with min_tokens"
		}
		verdict := "honoured"
		if !c.LengthHonoured {
			verdict = "NOT honoured"
		}
		add("fixed length: asked %d (%s), got %d, finish_reason %q: %s", c.LengthAsked, how, c.OutputTokens, c.FinishReason, verdict)
	}
	if c.CachedReported {
		add("cached tokens: reported (%d)", c.CachedTokens)
	} else {
		add("cached tokens: not reported")
	}
	if c.Done {
		add("[DONE]: sent")
	} else {
		add("[DONE]: not sent (the stream ends after the finish)")
	}
	ka := string(c.KeepAlive)
	switch c.KeepAlive {
	case KeptAlive:
		ka = "kept alive after the stream"
	case ClosedByServer:
		ka = "closed by the server after the stream"
	case ConnectionClose:
		ka = "closed after the stream (Connection: close)"
	}
	if c.KeepAliveHeader != "" {
		ka += ", Keep-Alive: " + c.KeepAliveHeader
	}
	if c.ConnReused {
		ka += "; the probe reused the previous probe's connection"
	}
	if c.Retried {
		ka += "; the probe caught a dead kept-alive connection and was retried"
	}
	add("connection: %s", ka)
	return out
}

// String joins Lines with "; ".
func (c Conformance) String() string { return strings.Join(c.Lines(), "; ") }

// conformance derives the probe's facts from its record and stream.
func (c *Client) conformance(ctx context.Context, req Request, r *record.Record, info *streamInfo) Conformance {
	f := Conformance{
		Server:         info.server,
		Chunks:         len(r.Chunks),
		EOSCounted:     r.EOSCounted,
		LengthAsked:    req.MaxTokens,
		LengthForced:   r.LengthForced,
		OutputTokens:   r.OutputTokens,
		FinishReason:   r.FinishReason,
		CachedReported: r.CachedReported,
		CachedTokens:   r.CachedTokens,
		Done:           info.sawDone,
		ConnReused:     r.ConnReused,
		Retried:        r.Retried,
	}
	switch {
	case info.roleFirst:
		f.Role = RoleSeparate
	case info.outputRoles > 0 && info.outputRoles == len(r.Chunks):
		f.Role = RoleEveryDelta
	case info.outputRoles > 0:
		f.Role = RoleSomeDeltas
	default:
		f.Role = RoleNone
	}
	switch {
	case info.continuous:
		f.Usage = UsageContinuous
	case info.usageChunks > 0:
		f.Usage = UsageFinal
	default:
		f.Usage = UsageNone
	}
	for _, ch := range r.Chunks {
		f.TokensPerChunkMax = max(f.TokensPerChunkMax, ch.Tokens)
	}
	if n := len(r.Chunks); n > 0 {
		f.TokensPerChunkMean = float64(r.StreamedTokens()) / float64(n)
	}
	f.TokensPerChunkExact = f.Usage != UsageNone && !r.EstimatedChunkTokens()
	f.LengthHonoured = req.MaxTokens > 0 && f.Usage != UsageNone && r.OutputTokens == req.MaxTokens
	f.KeepAliveHeader = info.keepAlive
	f.KeepAlive = c.keepAlive(ctx, r, info)
	return f
}

// keepAlive watches the probe's connection for KeepAliveWait after the
// stream. A retried probe's connection is closed by the client (the retry
// transport keeps none), so the retry itself is the evidence.
func (c *Client) keepAlive(ctx context.Context, r *record.Record, info *streamInfo) KeepAlive {
	switch {
	case r.Retried:
		return ClosedByServer
	case info.connClose:
		return ConnectionClose
	case info.connClosed == nil || !info.drained:
		// Untracked, or the client abandoned the body (the transport then
		// closes the connection itself): nothing to learn.
		return KeepAliveUnknown
	}
	t := time.NewTimer(KeepAliveWait)
	defer t.Stop()
	select {
	case <-info.connClosed:
		return ClosedByServer
	case <-t.C:
		return KeptAlive
	case <-ctx.Done():
		return KeepAliveUnknown
	}
}
