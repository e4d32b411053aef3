package suite

// The fault suite: hand-made servers that answer the preflight probes
// correctly and then misbehave in one way, run through the same code as
// BenchmarkServe (newSuite, startLevel, finishLevel). Each fault must end
// the level in bounded time, leave one record per measured request with the
// right error kind, count exactly into errors/op, be named by
// metrics.ErrorSummary, and leave a result line benchfmt can read. Set-up
// failures must end at once with an error naming the engine and the URL.
// A hygiene test checks that nothing (goroutines, connections) outlives a
// run with faults and cancellations.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/perf/benchfmt"

	"github.com/inferbench/inferbench/internal/metrics"
	"github.com/inferbench/inferbench/internal/record"
)

// faultKey is the API key every fault test sends (OPENAI_API_KEY). Some
// servers echo it in their error bodies; it must never reach a file, a
// record or an error.
const faultKey = "sk-FAULTSECRET-7d41e2"

// faultPromptTokens is what the hand-made servers report as prompt tokens.
const faultPromptTokens = 64

// streamShape says how writeStream shapes one answer.
type streamShape struct {
	tokens      int  // content chunks, one token each
	usage       bool // send a final usage frame
	done        bool // send data: [DONE]
	malformedAt int  // replace content chunk k (1-based) by a data line that is not JSON (0: none)
	errorAt     int  // send an error object in place of content chunk k (1-based) and stop (0: none)
}

// sseEvent writes one data event and flushes it. The JSON is written by
// hand: this side is an oracle for the client and shares none of its code.
func sseEvent(w io.Writer, payload string) {
	fmt.Fprintf(w, "data: %s\n\n", payload)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

func contentChunk(text string) string {
	b, _ := json.Marshal(text)
	return `{"id":"chatcmpl-f","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":` + string(b) + `},"finish_reason":null}]}`
}

// writeStream writes a chat-completion event stream shaped by sh.
func writeStream(w http.ResponseWriter, sh streamShape) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	sseEvent(w, `{"id":"chatcmpl-f","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`)
	for k := 1; k <= sh.tokens; k++ {
		switch k {
		case sh.malformedAt:
			sseEvent(w, `{"id":"chatcmpl-f","choices":[{"delta":{"content":"tok`)
		case sh.errorAt:
			sseEvent(w, `{"error":{"message":"engine step failed: CUDA out of memory","type":"internal_error","code":500}}`)
			return
		}
		sseEvent(w, contentChunk(fmt.Sprintf("t%d ", k)))
	}
	sseEvent(w, `{"id":"chatcmpl-f","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}`)
	if sh.usage {
		sseEvent(w, fmt.Sprintf(`{"id":"chatcmpl-f","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			faultPromptTokens, sh.tokens, faultPromptTokens+sh.tokens))
	}
	if sh.done {
		sseEvent(w, "[DONE]")
	}
}

// goodStream is a correct answer of n tokens with usage and [DONE].
func goodStream(w http.ResponseWriter, n int) {
	writeStream(w, streamShape{tokens: n, usage: true, done: true})
}

// writeErrorJSON answers status with an OpenAI error body.
func writeErrorJSON(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(msg)
	fmt.Fprintf(w, `{"object":"error","error":{"message":%s,"type":"invalid_request_error","code":%d}}`, b, status)
}

// hijack takes the connection over; ok is false if the server cannot.
func hijack(w http.ResponseWriter) (net.Conn, *bufio.ReadWriter, bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, false
	}
	conn, rw, err := hj.Hijack()
	return conn, rw, err == nil
}

// misbehaveFunc answers one chat request after the preflight; n is the
// request's max_tokens.
type misbehaveFunc func(w http.ResponseWriter, r *http.Request, n int)

// connCounter counts a server's connection state transitions.
type connCounter struct {
	opened, closed, hijacked atomic.Int64
}

func (c *connCounter) hook(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		c.opened.Add(1)
	case http.StateClosed:
		c.closed.Add(1)
	case http.StateHijacked:
		c.hijacked.Add(1)
	}
}

// open is the number of connections the server has not yet seen end.
func (c *connCounter) open() int64 {
	return c.opened.Load() - c.closed.Load() - c.hijacked.Load()
}

// faultServer is a hand-made /v1/chat/completions server: until armed,
// every chat request gets a correct stream (so the preflight, however many
// probes it sends, passes); once armed, every request goes to misbehave.
type faultServer struct {
	*httptest.Server
	armed atomic.Bool
	auth  atomic.Value // the last Authorization header seen (string)
	conns connCounter
}

// chatURL is the server's chat-completions URL.
func (f *faultServer) chatURL() string { return f.URL + "/v1/chat/completions" }

func newFaultServer(t *testing.T, tls bool, misbehave misbehaveFunc) *faultServer {
	t.Helper()
	f := &faultServer{}
	f.auth.Store("")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			writeErrorJSON(w, http.StatusNotFound, "no route "+r.URL.Path)
			return
		}
		f.auth.Store(r.Header.Get("Authorization"))
		var body struct {
			MaxTokens int `json:"max_tokens"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.MaxTokens < 1 {
			writeErrorJSON(w, http.StatusBadRequest, fmt.Sprintf("bad body (max_tokens %d): %v", body.MaxTokens, err))
			return
		}
		if !f.armed.Load() {
			goodStream(w, body.MaxTokens)
			return
		}
		misbehave(w, r, body.MaxTokens)
	})
	f.Server = httptest.NewUnstartedServer(h)
	f.Config.ConnState = f.conns.hook
	f.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS handshake failures are the point of some rows
	if tls {
		f.StartTLS()
	} else {
		f.Start()
	}
	t.Cleanup(f.Close)
	return f
}

// faultOptions are the suite options of the fault rows: one level at
// concurrency 4, a 1 s request timeout, every error tolerated, and the
// secret key in the environment.
func faultOptions(t *testing.T, engines string) Options {
	o := testOptions(t, engines)
	o.Model = "m"
	o.Concurrency = "4"
	o.RequestTimeout = time.Second
	o.MaxErrorRate = 1
	o.Getenv = func(k string) string {
		if k == "OPENAI_API_KEY" {
			return faultKey
		}
		return ""
	}
	return o
}

// guardedLevel runs one sample like runLevel, but fails the test instead of
// hanging CI when the level does not end within limit: the suite's context
// is cancelled and the level gets a moment to wind down.
func guardedLevel(t *testing.T, s *Suite, cancel context.CancelFunc, e *Engine, c, n int, limit time.Duration) (Result, time.Duration) {
	t.Helper()
	start := time.Now()
	ch := make(chan Result, 1)
	go func() { ch <- runLevel(s, e, c, n) }()
	select {
	case lv := <-ch:
		return lv, time.Since(start)
	case <-time.After(limit):
		cancel()
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
		}
		t.Fatalf("the level did not end within %v", limit)
		return Result{}, 0
	}
}

// readResultLines parses a results file with benchfmt and returns its
// benchmark results; a syntax error fails the test.
func readResultLines(t *testing.T, path string) []*benchfmt.Result {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []*benchfmt.Result
	r := benchfmt.NewReader(f, path)
	for r.Scan() {
		switch rec := r.Result().(type) {
		case *benchfmt.SyntaxError:
			t.Errorf("%s: %v", path, rec)
		case *benchfmt.Result:
			out = append(out, rec.Clone())
		}
	}
	require.NoError(t, r.Err())
	return out
}

// assertNoSecret checks that the API key appears in none of the run's files.
func assertNoSecret(t *testing.T, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.NotContains(t, string(b), faultKey, f)
	}
}

// TestFaultSuite runs one level (concurrency 4, 12 measured requests,
// 1 s request timeout) against servers that answer the preflight and then
// misbehave on every later request (or, where a row says so, on some).
func TestFaultSuite(t *testing.T) {
	t.Parallel()
	const (
		conc     = 4
		measured = 12
	)
	tests := []struct {
		name      string // also the engine name: vllm-… is the vLLM profile, others the generic one
		slow      bool   // waits out the request timeout on every request
		misbehave misbehaveFunc
		wantKind  record.ErrorKind // every measured request's error (OK: all succeed)
		wantMsg   string           // in every failed record's Message
		wantCode  int              // every failed record's Status
		strict    bool             // -max-error-rate 0.5 instead of 1: the sample is marked FAILED in the file
		some      bool             // only some requests misbehave: each record is OK or wantKind, with both present
		check     func(t *testing.T, sum metrics.Summary, recs []record.Record)
	}{
		// 429 with an OpenAI error body that echoes the key: http-status 429, server message kept, key redacted.
		{name: "vllm-429", misbehave: func(w http.ResponseWriter, r *http.Request, _ int) {
			writeErrorJSON(w, http.StatusTooManyRequests, "rate limit exceeded for "+r.Header.Get("Authorization"))
		}, wantKind: record.HTTPStatus, wantCode: 429, wantMsg: "HTTP 429: rate limit exceeded for"},
		// 500 with an OpenAI error body, -max-error-rate 0.5: http-status 500, the sample marked FAILED, its line still written.
		{name: "vllm-500", strict: true, misbehave: func(w http.ResponseWriter, _ *http.Request, _ int) {
			writeErrorJSON(w, http.StatusInternalServerError, "engine core died")
		}, wantKind: record.HTTPStatus, wantCode: 500, wantMsg: "HTTP 500: engine core died"},
		// Every other request gets 500: errors/op is the failed fraction, neither 0 nor 1.
		{name: "vllm-every-other-500", some: true, misbehave: func() misbehaveFunc {
			var k atomic.Int64
			return func(w http.ResponseWriter, _ *http.Request, n int) {
				if k.Add(1)%2 == 0 {
					writeErrorJSON(w, http.StatusInternalServerError, "flaky")
					return
				}
				goodStream(w, n)
			}
		}(), wantKind: record.HTTPStatus, wantCode: 500, wantMsg: "HTTP 500: flaky"},
		// 401, the key was revoked after the probe: http-status 401, the echoed key redacted.
		{name: "vllm-401", misbehave: func(w http.ResponseWriter, r *http.Request, _ int) {
			writeErrorJSON(w, http.StatusUnauthorized, "invalid api key: "+r.Header.Get("Authorization"))
		}, wantKind: record.HTTPStatus, wantCode: 401, wantMsg: "HTTP 401: invalid api key"},
		// 403, the key lost its permission: http-status 403.
		{name: "vllm-403", misbehave: func(w http.ResponseWriter, _ *http.Request, _ int) {
			writeErrorJSON(w, http.StatusForbidden, "key not allowed for this model")
		}, wantKind: record.HTTPStatus, wantCode: 403, wantMsg: "HTTP 403: key not allowed"},
		// 404, the model was unloaded after the probe: http-status 404.
		{name: "vllm-404", misbehave: func(w http.ResponseWriter, _ *http.Request, _ int) {
			writeErrorJSON(w, http.StatusNotFound, "The model `m` does not exist.")
		}, wantKind: record.HTTPStatus, wantCode: 404, wantMsg: "HTTP 404: The model `m` does not exist."},
		// Half the tokens, then the connection is hijacked and closed (close-delimited body): stream-cut at EOF.
		{name: "vllm-cut-half", misbehave: func(w http.ResponseWriter, _ *http.Request, n int) {
			conn, rw, ok := hijack(w)
			if !ok {
				return
			}
			defer conn.Close()
			fmt.Fprint(rw, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
			sseEvent(rw, `{"id":"chatcmpl-f","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`)
			for k := 1; k <= n/2; k++ {
				sseEvent(rw, contentChunk("half "))
			}
			rw.Flush()
		}, wantKind: record.StreamCut, wantMsg: "before [DONE]", check: func(t *testing.T, _ metrics.Summary, recs []record.Record) {
			for _, r := range recs {
				if r.Phase == record.Measured {
					assert.Len(t, r.Chunks, 8, "seq %d: the half that arrived is kept", r.Seq)
				}
			}
		}},
		// Headers of a chunked stream, then the connection closes: stream-cut (unexpected EOF).
		{name: "vllm-close-after-headers", misbehave: func(w http.ResponseWriter, _ *http.Request, _ int) {
			conn, rw, ok := hijack(w)
			if !ok {
				return
			}
			defer conn.Close()
			fmt.Fprint(rw, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
			rw.Flush()
		}, wantKind: record.StreamCut, wantMsg: "the stream broke"},
		// The connection closes before any response byte: connect (closed before any response).
		{name: "vllm-close-before-response", misbehave: func(w http.ResponseWriter, _ *http.Request, _ int) {
			if conn, _, ok := hijack(w); ok {
				conn.Close()
			}
		}, wantKind: record.Connect, wantMsg: "closed before any response"},
		// No byte at all until the client leaves: timeout while waiting for the headers.
		{name: "vllm-hang", slow: true, misbehave: func(_ http.ResponseWriter, r *http.Request, _ int) {
			<-r.Context().Done()
		}, wantKind: record.Timeout, wantMsg: "waiting for the response headers"},
		// A good answer whose headers come 3 s late, beyond the 1 s timeout: timeout.
		{name: "vllm-slow-headers", slow: true, misbehave: func(w http.ResponseWriter, r *http.Request, n int) {
			select {
			case <-time.After(3 * time.Second):
				goodStream(w, n)
			case <-r.Context().Done():
			}
		}, wantKind: record.Timeout, wantMsg: "request timeout 1s expired"},
		// Two tokens, then silence: timeout while reading the stream, the two chunks kept.
		{name: "vllm-stall", slow: true, misbehave: func(w http.ResponseWriter, r *http.Request, _ int) {
			w.Header().Set("Content-Type", "text/event-stream")
			sseEvent(w, contentChunk("a "))
			sseEvent(w, contentChunk("b "))
			<-r.Context().Done()
		}, wantKind: record.Timeout, wantMsg: "reading the stream", check: func(t *testing.T, _ metrics.Summary, recs []record.Record) {
			for _, r := range recs {
				if r.Phase == record.Measured {
					assert.Len(t, r.Chunks, 2, "seq %d", r.Seq)
				}
			}
		}},
		// A data line that is not JSON in place of the fourth token: malformed-event.
		{name: "vllm-malformed", misbehave: func(w http.ResponseWriter, _ *http.Request, n int) {
			writeStream(w, streamShape{tokens: n, usage: true, done: true, malformedAt: 4})
		}, wantKind: record.Malformed, wantMsg: "event"},
		// A 200 application/json body instead of a stream: malformed-event.
		{name: "vllm-json-not-sse", misbehave: func(w http.ResponseWriter, _ *http.Request, _ int) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"x","object":"chat.completion","choices":[{"message":{"content":"hi"}}]}`)
		}, wantKind: record.Malformed, wantMsg: "application/json"},
		// An error object mid-stream (vLLM's way to report an engine failure): stream-cut with its message.
		{name: "vllm-error-event", misbehave: func(w http.ResponseWriter, _ *http.Request, n int) {
			writeStream(w, streamShape{tokens: n, usage: true, done: true, errorAt: 3})
		}, wantKind: record.ServerError, wantMsg: "CUDA out of memory"},
		// finish_reason and usage but no [DONE]: accepted, every request succeeds.
		{name: "vllm-no-done", misbehave: func(w http.ResponseWriter, _ *http.Request, n int) {
			writeStream(w, streamShape{tokens: n, usage: true})
		}, wantKind: record.OK, check: func(t *testing.T, sum metrics.Summary, recs []record.Record) {
			assert.Zero(t, sum.FallbackTokenCounts)
			assert.Equal(t, measured, sum.TTFT.N, "every request has a TTFT")
		}},
		// finish_reason and usage, no [DONE], and the response stays open: timeout (the stream never ends).
		{name: "vllm-no-done-open", slow: true, misbehave: func(w http.ResponseWriter, r *http.Request, n int) {
			writeStream(w, streamShape{tokens: n, usage: true})
			<-r.Context().Done()
		}, wantKind: record.Timeout, wantMsg: "reading the stream"},
		// A complete stream with [DONE], then the response stays open: success, the client does not wait for the end.
		{name: "vllm-done-then-open", misbehave: func(w http.ResponseWriter, r *http.Request, n int) {
			goodStream(w, n)
			<-r.Context().Done()
		}, wantKind: record.OK, check: func(t *testing.T, sum metrics.Summary, recs []record.Record) {
			assert.Equal(t, measured, sum.TTFT.N)
			for _, r := range recs {
				if r.Phase == record.Measured {
					assert.Less(t, r.Done-r.Sent, time.Second/2, "seq %d: Done is [DONE], not the end of the body", r.Seq)
				}
			}
		}},
		// No usage at all: not an error; tokens are chunk counts, flagged in FallbackTokenCounts and a warning.
		{name: "vllm-no-usage", misbehave: func(w http.ResponseWriter, _ *http.Request, n int) {
			writeStream(w, streamShape{tokens: n, done: true})
		}, wantKind: record.OK, check: func(t *testing.T, sum metrics.Summary, recs []record.Record) {
			assert.Equal(t, measured, sum.FallbackTokenCounts)
			assert.True(t, containsAny(sum.Warnings, "no usage"), "warnings: %q", sum.Warnings)
			for _, r := range recs {
				if r.Phase == record.Measured {
					assert.Equal(t, record.ChunkCount, r.TokenSource, "seq %d", r.Seq)
					assert.Equal(t, 16, r.OutputTokens, "seq %d", r.Seq)
				}
			}
		}},
		// Half the requested tokens with usage saying so, vLLM profile (min_tokens sent): length-mismatch.
		{name: "vllm-short", misbehave: func(w http.ResponseWriter, _ *http.Request, n int) {
			writeStream(w, streamShape{tokens: n / 2, usage: true, done: true})
		}, wantKind: record.LengthMismatch, wantMsg: "completion_tokens is 8", check: func(t *testing.T, sum metrics.Summary, _ []record.Record) {
			assert.Equal(t, measured, sum.LengthMismatches)
		}},
		// The same short answer, generic profile (max_tokens only): not a failure, but counted
		// and warned about, without blaming ignore_eos/min_tokens, which this profile never sends.
		{name: "generic-short", misbehave: func(w http.ResponseWriter, _ *http.Request, n int) {
			writeStream(w, streamShape{tokens: n / 2, usage: true, done: true})
		}, wantKind: record.OK, check: func(t *testing.T, sum metrics.Summary, _ []record.Record) {
			assert.Equal(t, measured, sum.LengthMismatches)
			assert.Equal(t, measured, sum.UnforcedLengthMismatches)
			assert.True(t, containsAny(sum.Warnings, "stopped before max_tokens"), "warnings: %q", sum.Warnings)
			assert.False(t, containsAny(sum.Warnings, "did not honour"), "warnings: %q", sum.Warnings)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.slow && testing.Short() {
				t.Skip("waits out the request timeout")
			}
			t.Parallel()
			srv := newFaultServer(t, false, tt.misbehave)
			o := faultOptions(t, tt.name+"="+srv.chatURL())
			if tt.strict {
				o.MaxErrorRate = 0.5
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, err := New(ctx, o)
			require.NoError(t, err, "the preflight is answered correctly")
			defer s.Close()
			require.Len(t, s.engines, 1)
			srv.armed.Store(true)

			lv, took := guardedLevel(t, s, cancel, s.engines[0], conc, measured, 30*time.Second)
			t.Logf("level took %v", took)
			if tt.strict {
				// The sample fails the sub-benchmark, with the error rate and the summary.
				require.Len(t, lv.Errs, 1)
				assert.ErrorContains(t, lv.Errs[0], "exceeds -max-error-rate 0.500")
			} else {
				require.NoError(t, lv.err())
			}
			assert.Equal(t, "Bearer "+faultKey, srv.auth.Load(), "the key is sent")

			// Every measured request has a record with the expected kind.
			recs := readRecords(t, s.jsonlPath(tt.name))
			// Records are written as their requests end: in end order.
			slices.SortFunc(recs, func(a, b record.Record) int { return a.Seq - b.Seq })
			var failed, n int
			seqs := map[int]bool{}
			for i, r := range recs {
				// Warm-up, measured and cooldown requests alike: none dropped.
				assert.Equal(t, i, r.Seq, "records are every request in Seq order, without gaps")
				if r.Phase != record.Measured {
					continue
				}
				n++
				seqs[r.Seq] = true
				assert.Equal(t, tt.name, r.Engine)
				assert.Equal(t, conc, r.Concurrency)
				if tt.some && r.Error == record.OK {
					assert.Empty(t, r.Message, "seq %d", r.Seq)
				} else {
					assert.Equal(t, tt.wantKind, r.Error, "seq %d: %s", r.Seq, r.Message)
				}
				assert.GreaterOrEqual(t, r.Done, r.Sent, "seq %d", r.Seq)
				if r.Failed() {
					failed++
					assert.Contains(t, r.Message, tt.wantMsg, "seq %d", r.Seq)
					if tt.wantCode != 0 {
						assert.Equal(t, tt.wantCode, r.Status, "seq %d", r.Seq)
					}
					if r.Error == record.Connect || strings.Contains(r.Message, "waiting for the response headers") {
						assert.Zero(t, r.Headers, "seq %d: no headers arrived", r.Seq)
						assert.Zero(t, r.Status, "seq %d: no status arrived", r.Seq)
					} else {
						assert.Positive(t, r.Headers, "seq %d: headers arrived", r.Seq)
					}
					if r.Error == record.Timeout {
						// The timeout is honoured, not extended (generous upper bound for a loaded CI).
						assert.GreaterOrEqual(t, r.Done-r.Sent, 900*time.Millisecond, "seq %d", r.Seq)
						assert.Less(t, r.Done-r.Sent, 5*time.Second, "seq %d", r.Seq)
					}
				}
			}
			assert.Equal(t, measured, n, "one record per measured request")
			assert.Len(t, seqs, measured, "distinct measured requests")
			wantFailed := 0
			switch {
			case tt.some:
				assert.Positive(t, failed, "some requests fail")
				assert.Less(t, failed, measured, "some requests succeed")
				wantFailed = failed
			case tt.wantKind != record.OK:
				wantFailed = measured
			}
			assert.Equal(t, wantFailed, failed)

			// errors/op is failed/measured exactly, in the summary and in the metrics.
			sum := lv.Summary
			assert.Equal(t, measured, sum.Requests)
			assert.Equal(t, failed, sum.Failed)
			assert.Equal(t, float64(failed)/float64(n), sum.ErrorRate)
			var errorsPerOp []float64
			for _, m := range lv.Metrics {
				if m.Unit == "errors/op" {
					errorsPerOp = append(errorsPerOp, m.Value)
				}
			}
			assert.Equal(t, []float64{float64(failed) / float64(n)}, errorsPerOp, "errors/op metric")

			// ErrorSummary names each kind with its count.
			es := metrics.ErrorSummary(sum)
			if wantFailed > 0 {
				assert.Equal(t, map[record.ErrorKind]int{tt.wantKind: wantFailed}, sum.Errors)
				assert.Contains(t, es, fmt.Sprintf("%s ×%d", tt.wantKind, wantFailed))
				assert.Contains(t, es, fmt.Sprintf("%d of %d measured requests failed (%.1f%%)", wantFailed, measured, 100*float64(wantFailed)/measured))
			} else {
				assert.Empty(t, sum.Errors)
				assert.Contains(t, es, fmt.Sprintf("no failures in %d measured requests", measured))
			}
			assert.NotContains(t, es, faultKey)

			// The result line is on disk (written unbuffered, before Close) and benchfmt reads it.
			res := readResultLines(t, filepath.Join(o.Out, tt.name+".txt"))
			require.Len(t, res, 1, "one result line")
			assert.Equal(t, measured, res[0].Iters)
			assert.True(t, strings.HasPrefix(res[0].Name.String(), "Serve/concurrency=4"), "name %q", res[0].Name)
			v, ok := res[0].Value("errors/op")
			assert.True(t, ok, "errors/op on the result line")
			// On disk to the precision testing prints (4 significant digits).
			assert.InDelta(t, float64(failed)/float64(n), v, 5e-5, "errors/op on disk")
			txt, err := os.ReadFile(filepath.Join(o.Out, tt.name+".txt"))
			require.NoError(t, err)
			if tt.strict {
				assert.Contains(t, string(txt), fmt.Sprintf("# FAILED sample 0 at concurrency=4: error rate %.3f > -max-error-rate 0.500", float64(failed)/float64(n)))
				assert.Contains(t, string(txt), fmt.Sprintf("%s ×%d", tt.wantKind, wantFailed))
			} else {
				assert.NotContains(t, string(txt), "# FAILED")
			}
			assertNoSecret(t, o.Out)

			if tt.check != nil {
				tt.check(t, sum, recs)
			}
			if failed == n {
				// With no successful request there is no latency to report; a 0 on
				// the result line reads as a measurement to benchstat.
				t.Run("no-zero-latency-on-disk", func(t *testing.T) {
					for _, u := range []string{"ttft-p50-ns", "ttft-p99-ns", "tpot-p50-ns", "itl-p50-ns", "itl-p99-ns", "e2e-p50-ns", "e2e-p99-ns"} {
						_, ok := res[0].Value(u)
						assert.False(t, ok, "every measured request failed, yet the result line reports %s", u)
					}
				})
			}
		})
	}
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestFaultSuiteSetupErrors checks that a preflight that cannot succeed
// ends the set-up at once with an error naming the engine and the URL.
func TestFaultSuiteSetupErrors(t *testing.T) {
	t.Parallel()
	refused := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close())
		return "http://" + addr + "/v1/chat/completions"
	}
	tlsServer := func(t *testing.T) string {
		return newFaultServer(t, true, func(w http.ResponseWriter, _ *http.Request, n int) { goodStream(w, n) }).chatURL()
	}
	statusServer := func(code int, msg string) func(t *testing.T) string {
		return func(t *testing.T) string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				writeErrorJSON(w, code, msg+" "+r.Header.Get("Authorization"))
			}))
			t.Cleanup(srv.Close)
			return srv.URL + "/v1/chat/completions"
		}
	}
	plainServer := func(t *testing.T) string {
		return "https" + strings.TrimPrefix(newFaultServer(t, false, func(w http.ResponseWriter, _ *http.Request, n int) { goodStream(w, n) }).chatURL(), "http")
	}
	// counted serves every chat request with answer (after one models
	// list), counting the chat requests in *n: how often the preflight sent
	// its probe.
	counted := func(n *atomic.Int64, answer func(w http.ResponseWriter, k int64)) func(t *testing.T) string {
		return func(t *testing.T) string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				answer(w, n.Add(1))
			}))
			t.Cleanup(srv.Close)
			return srv.URL + "/v1/chat/completions"
		}
	}
	var errorEvents, flaky atomic.Int64
	tests := []struct {
		name     string
		url      func(t *testing.T) string
		insecure bool
		wantErr  []string // all in the error; nil: the set-up succeeds
		wantFlag string   // a flag the advice should name (checked last: see below)
		probes   *atomic.Int64
		want     int64 // probes the server saw (with probes set)
	}{
		// Every probe gets an error event inside a 200 stream (llama-server's way
		// of saying the request cannot be served): a deterministic failure,
		// named with the server's message and never retried. The old suite
		// called it stream-cut and probed three times.
		{name: "vllm-error-event-probe", url: counted(&errorEvents, func(w http.ResponseWriter, _ int64) {
			writeStream(w, streamShape{tokens: 4, errorAt: 2})
		}), wantErr: []string{"error in the stream", "CUDA out of memory"}, probes: &errorEvents, want: 1},
		// Two 503s, then good answers: transient, retried, and the set-up
		// succeeds (two probes for the calibration, so four requests).
		{name: "vllm-503-then-ok", url: counted(&flaky, func(w http.ResponseWriter, k int64) {
			if k <= 2 {
				writeErrorJSON(w, http.StatusServiceUnavailable, "warming up")
				return
			}
			goodStream(w, 16)
		}), probes: &flaky, want: 4},
		// Nothing listens on a just-freed port: connection refused, engine and URL named.
		{"vllm-refused", refused, false, []string{"connection refused", "Is the server running"}, "", nil, 0},
		// A name that cannot resolve (.invalid is reserved): a DNS failure.
		{"vllm-dns", func(*testing.T) string { return "http://does-not-exist.invalid/v1/chat/completions" }, false,
			[]string{"DNS lookup failed", "does-not-exist.invalid"}, "", nil, 0},
		// A self-signed TLS server without -insecure-skip-verify: certificate verification fails.
		{"vllm-tls", tlsServer, false, []string{"TLS certificate verification failed", "-insecure"}, "-insecure-skip-verify", nil, 0},
		// https:// to a plain-HTTP server: the TLS handshake fails.
		{"vllm-https-to-http", plainServer, false, []string{"TLS handshake failed", "http://"}, "", nil, 0},
		// The same server with -insecure-skip-verify: the set-up succeeds and a level runs cleanly.
		{"vllm-tls-insecure", tlsServer, true, nil, "", nil, 0},
		// The probe gets 401 (bad key): the error says to check OPENAI_API_KEY and hides the key.
		{"vllm-bad-key", statusServer(401, "invalid api key"), false, []string{"HTTP 401", "invalid api key", "OPENAI_API_KEY"}, "", nil, 0},
		// The probe gets 404 (unknown model): the error says to pass -model.
		{"vllm-no-model", statusServer(404, "model m not found"), false, []string{"HTTP 404", "-model"}, "", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := tt.url(t)
			o := faultOptions(t, tt.name+"="+u)
			o.Insecure = tt.insecure
			start := time.Now()
			s, err := New(context.Background(), o)
			took := time.Since(start)
			if tt.probes != nil {
				assert.Equal(t, tt.want, tt.probes.Load(), "probes the server saw")
			}
			if tt.wantErr == nil {
				require.NoError(t, err)
				defer s.Close()
				lv := runLevel(s, s.engines[0], 2, 4)
				require.NoError(t, lv.err())
				assert.Equal(t, 4, lv.Summary.Requests)
				assert.Zero(t, lv.Summary.Failed, metrics.ErrorSummary(lv.Summary))
				return
			}
			if s != nil {
				s.Close()
			}
			require.Error(t, err)
			t.Logf("error: %v", err)
			host := strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
			host, _, _ = strings.Cut(host, "/")
			for _, w := range append([]string{"engine " + tt.name, host}, tt.wantErr...) {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), faultKey)
			assert.Less(t, took, 10*time.Second, "set-up errors are fast")
			if tt.wantFlag != "" {
				assert.Contains(t, err.Error(), tt.wantFlag, "the advice names the suite's flag")
			}
		})
	}
}

// TestHygieneAfterFaults checks that nothing outlives a run with faults and
// cancellations. A first suite runs a level of mixed faults (500s, cuts,
// hangs, stalls) and then a clean level, which leaves idle keep-alive
// connections behind; a second suite runs a level that is interrupted by
// cancelling its context. After each suite's Close the server must have
// seen every connection end, and after the server's Close no goroutine may
// remain beyond the baseline taken at the start.
func TestHygieneAfterFaults(t *testing.T) {
	// Not parallel: goleak counts every goroutine of the process.
	if testing.Short() {
		t.Skip("waits out request timeouts")
	}
	ignore := goleak.IgnoreCurrent()
	var reqs atomic.Int64
	srv := newFaultServer(t, false, func(w http.ResponseWriter, r *http.Request, n int) {
		switch reqs.Add(1) % 5 {
		case 0:
			goodStream(w, n)
		case 1:
			writeErrorJSON(w, http.StatusInternalServerError, "boom")
		case 2: // cut half-way
			if conn, rw, ok := hijack(w); ok {
				fmt.Fprint(rw, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
				sseEvent(rw, contentChunk("x "))
				rw.Flush()
				conn.Close()
			}
		case 3: // hang without a byte
			<-r.Context().Done()
		case 4: // stall mid-stream
			w.Header().Set("Content-Type", "text/event-stream")
			sseEvent(w, contentChunk("a "))
			<-r.Context().Done()
		}
	})
	// allClosed waits until the server has seen every connection end.
	allClosed := func(when string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for srv.conns.open() > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		assert.Zero(t, srv.conns.open(), "%s: connections still open: %d opened, %d closed, %d hijacked",
			when, srv.conns.opened.Load(), srv.conns.closed.Load(), srv.conns.hijacked.Load())
	}

	// Suite 1: faults, then a clean level that leaves idle connections.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(ctx, faultOptions(t, "vllm-mixed="+srv.chatURL()))
	require.NoError(t, err)
	closeSuite := sync.OnceFunc(s.Close)
	defer closeSuite()
	srv.armed.Store(true)
	lv, _ := guardedLevel(t, s, cancel, s.engines[0], 4, 12, 30*time.Second)
	require.NoError(t, lv.err())
	assert.Positive(t, lv.Summary.Failed)
	srv.armed.Store(false)
	lv, _ = guardedLevel(t, s, cancel, s.engines[0], 4, 4, 30*time.Second)
	require.NoError(t, lv.err())
	assert.Zero(t, lv.Summary.Failed)
	// The slot that ran the last measured request is parked with its
	// connection idle, so Close has something to close.
	require.Positive(t, srv.conns.open(), "idle keep-alive connections before Close")
	closeSuite()
	allClosed("after the first suite's Close")

	// Suite 2: a level interrupted while requests hang, stall and stream.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	o := faultOptions(t, "vllm-interrupted="+srv.chatURL())
	s2, err := New(ctx2, o)
	require.NoError(t, err)
	closeSuite2 := sync.OnceFunc(s2.Close)
	defer closeSuite2()
	srv.armed.Store(true)
	stop := time.AfterFunc(300*time.Millisecond, cancel2)
	defer stop.Stop()
	lv, _ = guardedLevel(t, s2, cancel2, s2.engines[0], 4, 1000, 30*time.Second)
	assert.True(t, lv.Interrupted, "dispatching stops at the interrupt")
	assert.Empty(t, lv.Line, "an interrupted sample has no result line")
	recs := readRecords(t, s2.jsonlPath("vllm-interrupted"))
	canceled := 0
	for _, r := range recs {
		if r.Error == record.Canceled {
			canceled++
		}
	}
	assert.Positive(t, canceled, "requests in flight at the interrupt are recorded as canceled")
	res := readResultLines(t, filepath.Join(o.Out, "vllm-interrupted.txt"))
	assert.Empty(t, res, "an interrupted sample reports no numbers")
	closeSuite2()
	allClosed("after the interrupted suite's Close")
	srv.Close()

	// Goroutines return to the baseline; give stragglers a moment.
	deadline := time.Now().Add(5 * time.Second)
	for goleak.Find(ignore) != nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	goleak.VerifyNone(t, ignore)
}
