package engines

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/inferbench/inferbench/internal/record"
)

// Probe is the outcome of a preflight request: its record and what it
// revealed about the engine.
type Probe struct {
	// Record is the probe request's record (Phase record.Probe).
	Record record.Record
	// Warnings are findings the caller should show the user.
	Warnings []string
	// ContinuousUsage is true when every output chunk carried cumulative
	// usage, so per-chunk token counts are exact.
	ContinuousUsage bool
	// UsageReported is true when the stream carried usage at all.
	UsageReported bool
	// LengthHonoured is true when a fixed length was asked for and
	// usage.completion_tokens matched it exactly.
	LengthHonoured bool
	// RoleChunkFirst is true when a role-only event arrived before the
	// first output token (TTFT correctly ignores it; the gap is in Warnings).
	RoleChunkFirst bool
	// Simulated is true when the server identified itself as inferbench's
	// simulated engine (the X-Inferbench-Simulated response header).
	Simulated bool
	// Conformance is everything the probe saw of how the server streams
	// (role, chunk sizes, usage, length, cached tokens, [DONE], keep-alive,
	// Server header); Lines renders it for the results header.
	Conformance Conformance
}

// Preflight sends one probe request and checks reachability, auth,
// streaming, usage and the fixed output length. Its error names the engine,
// the redacted URL, the HTTP status, the server's message and what to do.
// A length mismatch, missing usage or a missing [DONE] are warnings, not
// errors. The caller bounds ctx (15 s is plenty); connecting gives up after
// 10 s on its own.
func (c *Client) Preflight(ctx context.Context, req Request) (Probe, error) {
	var p Probe
	r := &p.Record
	r.Engine = c.engine.Name
	r.Phase = record.Probe
	r.Concurrency = 1
	r.RequestedTokens = req.MaxTokens
	r.Intended = c.since()
	var info streamInfo
	c.do(ctx, req, r, &info)

	where := fmt.Sprintf("engine %s (%s): preflight", c.engine.Name, RedactURL(c.url))
	switch r.Error {
	case record.OK, record.LengthMismatch:
	case record.Connect:
		return p, fmt.Errorf("%s: cannot connect: %s. Is the server running, and is the URL right?", where, r.Message)
	case record.Timeout:
		return p, fmt.Errorf("%s: no complete answer in time (%s). Is the server up and not overloaded? Raise the time limit for a slow model.", where, r.Message)
	case record.Canceled:
		return p, fmt.Errorf("%s: %s: %w", where, r.Message, context.Cause(ctx))
	case record.HTTPStatus:
		return p, fmt.Errorf("%s: HTTP %d: %s. %s", where, r.Status, strings.TrimPrefix(r.Message, fmt.Sprintf("HTTP %d: ", r.Status)), c.statusAdvice(r.Status))
	case record.EmptyOutput:
		return p, fmt.Errorf("%s: the stream finished without any output token (finish_reason %q). Check the model and the prompt; the server may have filtered or refused it.", where, r.FinishReason)
	case record.Malformed:
		return p, fmt.Errorf("%s: the stream is not OpenAI chat-completion SSE: %s. Is the URL a /v1/chat/completions endpoint?", where, r.Message)
	case record.ServerError:
		return p, fmt.Errorf("%s: %s. The server rejected this request inside the stream: check its logs (is the prompt longer than its context, or the model not loaded?).", where, r.Message)
	case record.StreamCut:
		return p, fmt.Errorf("%s: the stream broke: %s. Check the server's logs.", where, r.Message)
	default:
		return p, fmt.Errorf("%s: %s: %s", where, r.Error, r.Message)
	}

	p.Simulated = info.simulated
	p.UsageReported = info.usageChunks > 0
	p.ContinuousUsage = info.continuous
	if !p.UsageReported {
		p.Warnings = append(p.Warnings, "no usage in the stream: output tokens are counted as content chunks (chunk-count), which undercounts multi-token chunks, and the fixed length cannot be verified")
	} else if r.EstimatedChunkTokens() {
		// Only a total that had to be spread is worth a warning: one token
		// per chunk (plus a natural stop's EOS) is exact without per-chunk usage.
		p.Warnings = append(p.Warnings, fmt.Sprintf("usage only at the end of the stream, and the chunks carry several tokens (%d tokens in %d chunks): output tokens are exact, per-chunk token counts (and so ITL) are the total spread evenly over the chunks",
			r.StreamedTokens(), len(r.Chunks)))
	}
	if req.MaxTokens > 0 && p.UsageReported {
		p.LengthHonoured = r.OutputTokens == req.MaxTokens
		if !p.LengthHonoured {
			p.Warnings = append(p.Warnings, c.lengthWarning(req.MaxTokens, r))
		}
	}
	if info.roleFirst && len(r.Chunks) > 0 {
		p.RoleChunkFirst = true
		lead := r.Chunks[0].At - info.roleAt
		if lead >= time.Millisecond {
			p.Warnings = append(p.Warnings, fmt.Sprintf("a role-only chunk arrives %v before the first token; TTFT is measured to the first token, not to it", lead.Round(time.Microsecond)))
		}
	}
	if !info.sawDone {
		p.Warnings = append(p.Warnings, "the stream ends without data: [DONE] (after a finish_reason); accepted")
	}
	if ct := info.contentType; ct != "" && !strings.HasPrefix(strings.ToLower(ct), "text/event-stream") {
		p.Warnings = append(p.Warnings, fmt.Sprintf("the stream's Content-Type is %q, not text/event-stream", ct))
	}
	p.Conformance = c.conformance(ctx, req, r, &info)
	if p.Conformance.KeepAlive == ClosedByServer {
		promise := ""
		if h := p.Conformance.KeepAliveHeader; h != "" {
			promise = " although it sends Keep-Alive: " + h
		}
		p.Warnings = append(p.Warnings, "the server closes the connection after the stream"+promise+
			": every request pays a connection set-up inside its TTFT (recorded apart in got_conn_ns and dial_ns), and one that catches a closed kept-alive connection is retried once on a new one (retried in its record)")
	}
	return p, nil
}

// lengthWarning explains a probe whose length differs from the one asked
// for, in terms of what the profile actually sent: only vllm and friendli
// ask for an exact length, so only they can be said to ignore it.
func (c *Client) lengthWarning(want int, r *record.Record) string {
	got := fmt.Sprintf("asked for %d tokens, got %d (finish_reason %q)", want, r.OutputTokens, r.FinishReason)
	switch c.engine.Profile {
	case VLLM:
		return "fixed output length not honoured: " + got + "; the engine ignores min_tokens/ignore_eos, and every such request counts as " + string(record.LengthMismatch)
	case Friendli:
		return "fixed output length not honoured: " + got + "; the engine ignores min_tokens, and every such request counts as " + string(record.LengthMismatch)
	default:
		return "output length varies: " + got + "; the generic profile sends max_tokens only, which caps the length but cannot force it, so answers may be shorter (counted, not failed). If the server accepts min_tokens (and ignore_eos), name the engine vllm-… or friendli-… to fix the length"
	}
}

// statusAdvice says what to do about an HTTP error status.
func (c *Client) statusAdvice(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "Check the API token: " + c.tokenAdvice()
	case status == http.StatusNotFound:
		model := c.engine.Model
		if model == "" {
			model = "(none)"
		}
		return fmt.Sprintf("Unknown model %q or wrong URL path: check that the URL ends in /v1/chat/completions, and pass -model (or NAME@MODEL=URL) with a model from GET /v1/models.", model)
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		return fmt.Sprintf("The server rejected the request body: check the model name; if it rejects a field the %s profile sends (min_tokens, ignore_eos, stream_options), name the engine without a vllm/friendli prefix to use the generic profile.", c.engine.Profile)
	case status == http.StatusTooManyRequests:
		return "The server is rate limiting: lower the concurrency or raise the limit."
	case status >= 500:
		return "The server failed: check its logs."
	default:
		return "Check the URL and the server."
	}
}

func (c *Client) tokenAdvice() string {
	if c.engine.Profile == Friendli {
		if c.engine.APIKey == "" {
			return "none was sent; set " + EnvFriendliToken + " (and " + EnvFriendliTeam + " for a team's endpoint)."
		}
		return "set " + EnvFriendliToken + " to a valid token (and " + EnvFriendliTeam + " for a team's endpoint)."
	}
	if c.engine.APIKey == "" {
		return "none was sent; set " + EnvOpenAIKey + "."
	}
	return "set " + EnvOpenAIKey + " to a valid key."
}

// DiscoverModel asks GET <base>/models (next to the chat URL, normally
// /v1/models) which models the server serves. Exactly one is returned;
// none or several is an error that lists them and says to pass -model.
func (c *Client) DiscoverModel(ctx context.Context) (string, error) {
	murl, err := modelsURL(c.engine.URL)
	where := fmt.Sprintf("engine %s (%s): model discovery", c.engine.Name, RedactURL(c.engine.URL))
	if err != nil {
		return "", fmt.Errorf("%s: %v", where, err)
	}
	where = fmt.Sprintf("engine %s: model discovery at %s", c.engine.Name, RedactURL(murl))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, murl, nil)
	if err != nil {
		return "", fmt.Errorf("%s: %s", where, c.redact(err.Error()))
	}
	c.setHeaders(req.Header)
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s: no answer: %w", where, context.Cause(ctx))
		}
		return "", fmt.Errorf("%s: cannot connect: %s. Is the server running, and is the URL right?", where, c.redact(connectReason(err)))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg := c.redact(readErrorBody(resp.Body))
		advice := c.statusAdvice(resp.StatusCode)
		if resp.StatusCode == http.StatusNotFound {
			advice = "The server has no model list here: pass -model (or NAME@MODEL=URL)."
		}
		return "", fmt.Errorf("%s: HTTP %d: %s. %s", where, resp.StatusCode, msg, advice)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return "", fmt.Errorf("%s: reading the answer: %s", where, c.redact(plainError(err)))
	}
	ids, err := parseModels(b)
	if err != nil {
		return "", fmt.Errorf("%s: %v; pass -model (or NAME@MODEL=URL)", where, err)
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("%s: the server lists no model; pass -model (or NAME@MODEL=URL)", where)
	case 1:
		return ids[0], nil
	default:
		const show = 20
		list := ids
		more := ""
		if len(list) > show {
			list, more = list[:show], fmt.Sprintf(" and %d more", len(ids)-show)
		}
		return "", fmt.Errorf("%s: the server lists %d models (%s%s); choose one with -model (or NAME@MODEL=URL)", where, len(ids), strings.Join(list, ", "), more)
	}
}

// parseModels reads an OpenAI model list: {"data":[{"id":"..."}, ...]}.
func parseModels(b []byte) ([]string, error) {
	var v struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("the model list is not OpenAI JSON: %v", err)
	}
	if v.Data == nil {
		return nil, errors.New(`the model list has no "data" array`)
	}
	ids := make([]string, 0, len(v.Data))
	for _, m := range v.Data {
		if m.ID != "" {
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}
