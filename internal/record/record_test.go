package record

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTransient(t *testing.T) {
	tests := []struct {
		name   string
		kind   ErrorKind
		status int
		want   bool
	}{
		{"success", OK, 200, false},                            // nothing to retry
		{"canceled", Canceled, 0, false},                       // the harness stopped it
		{"rate limited", HTTPStatus, 429, true},                // back off and retry
		{"server failure", HTTPStatus, 500, true},              // may be a passing overload
		{"bad gateway", HTTPStatus, 502, true},                 // a proxy in front restarting
		{"unavailable", HTTPStatus, 503, true},                 // loading the model
		{"bad request", HTTPStatus, 400, false},                // the same body is rejected again
		{"unauthorized", HTTPStatus, 401, false},               // a bad token stays bad
		{"not found", HTTPStatus, 404, false},                  // an unknown model stays unknown
		{"redirect", HTTPStatus, 307, false},                   // not followed, same answer again
		{"stream cut", StreamCut, 200, true},                   // the body broke mid-way
		{"timeout", Timeout, 0, true},                          // no answer in time, or a stall
		{"server error event", ServerError, 200, false},        // the engine refused this request in-stream
		{"malformed", Malformed, 200, false},                   // another wire format: same again
		{"connect", Connect, 0, false},                         // refused, DNS, TLS: fix the URL
		{"empty output", EmptyOutput, 200, false},              // the model's answer to this prompt
		{"length mismatch", LengthMismatch, 200, false},        // the engine ignores the length fields
		{"unknown kind", ErrorKind("something-new"), 0, false}, // never retry what is not understood
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Record{Error: tt.kind, Status: tt.status}
			assert.Equal(t, tt.want, r.Transient())
		})
	}
}

func chunks(tokens ...int) []Chunk {
	out := make([]Chunk, len(tokens))
	for i, k := range tokens {
		out[i] = Chunk{At: time.Duration(i+1) * time.Millisecond, Tokens: k}
	}
	return out
}

func TestTokenAccounting(t *testing.T) {
	tests := []struct {
		name          string
		r             Record
		wantStreamed  int
		wantEstimated bool
		wantTPOT      time.Duration
		wantTPOTOK    bool
	}{
		// Continuous usage: exact, TPOT over the tokens after the first.
		{"continuous", Record{Chunks: chunks(1, 1, 1), OutputTokens: 3, TokenSource: Continuous}, 3, false, time.Millisecond, true},
		// A natural stop with the EOS counted: 3 chunks of 1, usage 4; exact,
		// and TPOT does not divide by the unseen EOS token.
		{"eos counted", Record{Chunks: chunks(1, 1, 1), OutputTokens: 4, TokenSource: Usage, EOSCounted: true}, 3, false, time.Millisecond, true},
		// Final usage spread over multi-token chunks: an estimate.
		{"spread", Record{Chunks: chunks(4, 4, 4), OutputTokens: 12, TokenSource: Usage}, 12, true, 2 * time.Millisecond / 11, true},
		// Final usage equal to the chunks: one token each, exact.
		{"one per chunk", Record{Chunks: chunks(1, 1), OutputTokens: 2, TokenSource: Usage}, 2, false, time.Millisecond, true},
		// A chunk of unknown size: an estimate whatever the source.
		{"unknown chunk", Record{Chunks: chunks(1, 0), OutputTokens: 2, TokenSource: Continuous}, 2, true, time.Millisecond, true},
		// No output at all: nothing to estimate, no TPOT.
		{"no output", Record{}, 0, false, 0, false},
		// One streamed token plus the EOS: TPOT undefined.
		{"one token and eos", Record{Chunks: chunks(1), OutputTokens: 2, TokenSource: Usage, EOSCounted: true}, 1, false, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.wantStreamed, tt.r.StreamedTokens())
			assert.Equal(t, tt.wantEstimated, tt.r.EstimatedChunkTokens())
			d, ok := tt.r.TPOT()
			assert.Equal(t, tt.wantTPOTOK, ok)
			assert.Equal(t, tt.wantTPOT, d)
		})
	}
}

// TestJSONFields pins the JSON names of the fields the suite and the plots
// read, and that "not reported" and "reported 0" cached tokens differ.
func TestJSONFields(t *testing.T) {
	r := Record{
		Error: ServerError, Message: "context full", EOSCounted: true, LengthForced: true,
		CachedTokens: 96, CachedReported: true, Retried: true, ConnReused: false, NewConn: true,
		GotConn: 5, DNS: 1, Dial: 2, TLS: 3,
	}
	b, err := json.Marshal(&r)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for k, v := range map[string]any{
		"error": "server-error", "message": "context full", "eos_counted": true, "length_forced": true,
		"cached_tokens": 96.0, "cached_reported": true, "retried": true, "new_conn": true,
		"got_conn_ns": 5.0, "dns_ns": 1.0, "dial_ns": 2.0, "tls_ns": 3.0,
	} {
		assert.Equal(t, v, m[k], k)
	}
	assert.NotContains(t, m, "conn_reused")

	var back Record
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, r, back)

	zero, err := json.Marshal(&Record{CachedReported: true})
	require.NoError(t, err)
	assert.Contains(t, string(zero), `"cached_reported":true`)
	none, err := json.Marshal(&Record{})
	require.NoError(t, err)
	assert.NotContains(t, string(none), "cached")
}
