package engines

// The corpus over real sockets: fake's replay server plays each
// transcript back, and both transports (the epoll reader where it runs,
// and net/http) read it as they read an engine. Timing is the kernel's
// here, so what is held to the transcript's reading is all but the times;
// the times are TestTimingCorpusReplay's. The preflight's conformance
// facts are checked against each transcript too.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/fake"
	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/testenv"
	"github.com/inferbench/inferbench/internal/transcript"
)

// transports are the two ways the client reads an http:// engine.
var transports = []struct {
	name    string
	netHTTP bool
}{{"epoll reader", false}, {"net/http", true}}

// replayClient is a client of the transcript's replay on one transport;
// false when that transport does not run here.
func replayClient(t *testing.T, url string, netHTTP bool) (*Client, bool) {
	t.Helper()
	c, err := NewClient(Engine{Name: "replay", Profile: OpenAI, URL: url, Model: "m"}, Options{NetHTTP: netHTTP, RequestTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	if !netHTTP && c.lean == nil {
		return nil, false
	}
	return c, true
}

// TestCorpusReplay: every transcript, played by fake.Replay without its
// waits (the kernel may then join reads), read by each transport: the
// record's error kind, status, output chunks and their tokens,
// finish_reason and token counts are the transcript's reading's.
func TestCorpusReplay(t *testing.T) {
	for _, tr := range loadCorpus(t) {
		t.Run(tr.Name, func(t *testing.T) {
			t.Parallel()
			e := expect(tr)
			for _, tp := range transports {
				r, err := fake.StartReplay(tr, 0)
				require.NoError(t, err)
				defer r.Close()
				c, ok := replayClient(t, r.URL(), tp.netHTTP)
				if !ok {
					continue
				}
				var rec record.Record
				c.Do(t.Context(), corpusRequest(tr), &rec)
				if e.Error == record.Timeout {
					// A stall: the replay keeps the connection open and
					// silent; the request's deadline ends it.
					assert.Equal(t, record.Timeout, rec.Error, "%s: %s", tp.name, rec.Message)
					continue
				}
				checkReplayed(t, e, rec, tp.name)
			}
		})
	}
}

// checkReplayed is checkExpected without the times.
func checkReplayed(t *testing.T, e expected, rec record.Record, what string) {
	t.Helper()
	assert.Equal(t, e.Error, rec.Error, "%s: error (%s)", what, rec.Message)
	if e.Status != 0 {
		assert.Equal(t, e.Status, rec.Status, "%s: status", what)
	}
	if e.Error == record.HTTPStatus {
		return
	}
	if assert.Len(t, rec.Chunks, len(e.Chunks), "%s: output chunks", what) {
		for i, ch := range e.Chunks {
			assert.Equal(t, ch.Tokens, rec.Chunks[i].Tokens, "%s: chunk %d's tokens", what, i)
		}
	}
	assert.Equal(t, e.FinishReason, rec.FinishReason, "%s: finish_reason", what)
	if e.Error == record.OK {
		assert.Equal(t, e.OutputTokens, rec.OutputTokens, "%s: output tokens", what)
		assert.Equal(t, e.TokenSource, rec.TokenSource, "%s: token source", what)
		assert.Equal(t, e.EOSCounted, rec.EOSCounted, "%s: EOS counted", what)
	}
}

// TestCorpusConformance: the preflight against each transcript's replay
// finds the facts the transcript shows: how the role is announced, how
// usage is reported, whether [DONE] ends the stream, whether an EOS is
// counted and cached tokens are reported, and what becomes of the
// connection (llama-server closes it after every stream although its
// head promises keep-alive). A transcript the preflight refuses makes it
// fail with the kind the record gets.
func TestCorpusConformance(t *testing.T) {
	for _, tr := range loadCorpus(t) {
		t.Run(tr.Name, func(t *testing.T) {
			t.Parallel()
			e := expect(tr)
			for _, tp := range transports {
				r, err := fake.StartReplay(tr, 0)
				require.NoError(t, err)
				defer r.Close()
				c, ok := replayClient(t, r.URL(), tp.netHTTP)
				if !ok {
					continue
				}
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				p, err := c.Preflight(ctx, corpusRequest(tr))
				cancel()
				if e.Error != record.OK {
					require.Error(t, err, "%s: the preflight refuses a %s stream", tp.name, e.Error)
					assert.Equal(t, e.Error, p.Record.Error, "%s: %v", tp.name, err)
					continue
				}
				require.NoError(t, err, tp.name)
				f := p.Conformance
				t.Logf("%s: %s", tp.name, f)
				assert.Equal(t, wantRole(e), f.Role, "%s: role", tp.name)
				assert.Equal(t, wantUsage(e), f.Usage, "%s: usage", tp.name)
				assert.Equal(t, e.SawDone, f.Done, "%s: [DONE]", tp.name)
				assert.Equal(t, e.EOSCounted, f.EOSCounted, "%s: EOS counted", tp.name)
				assert.Equal(t, e.Cached, f.CachedReported, "%s: cached tokens reported", tp.name)
				assert.Equal(t, len(e.Chunks), f.Chunks, "%s: chunks", tp.name)
				assert.Equal(t, wantKeepAlive(tr), f.KeepAlive, "%s: keep-alive", tp.name)
			}
		})
	}
}

func wantRole(e expected) RoleStyle {
	switch {
	case e.RoleFirst:
		return RoleSeparate
	case e.OutputRoles > 0 && e.OutputRoles == len(e.Chunks):
		return RoleEveryDelta
	case e.OutputRoles > 0:
		return RoleSomeDeltas
	}
	return RoleNone
}

func wantUsage(e expected) UsageStyle {
	switch {
	case e.Continuous:
		return UsageContinuous
	case e.UsageEvents > 0:
		return UsageFinal
	}
	return UsageNone
}

// wantKeepAlive is what the transcript's end says of the connection: a
// "Connection: close" head says so; a server that closed it right after
// the stream closed it; one still open when the capture stopped kept it.
func wantKeepAlive(tr *transcript.Transcript) KeepAlive {
	head := strings.ToLower(string(tr.Response()))
	if i := strings.Index(head, "\r\n\r\n"); i >= 0 && strings.Contains(head[:i], "\r\nconnection: close") {
		return ConnectionClose
	}
	if tr.End == transcript.Open {
		return KeptAlive
	}
	return ClosedByServer
}

// TestTimingCorpusReplay: played at its recorded pace, each recorded
// transcript's output chunks arrive when the engine sent them, on both
// transports. Every chunk's offset from the send is compared with the
// transcript's: none may come early by more than 2 ms + 10 % (a replay
// faster than the engine, or one that ignores the recorded times), and
// the median lateness over the chunks is at most 2 ms + 10 % (a replay
// slower than the engine, or a client that stamps late). A single chunk
// may be late: a loaded machine wakes the replay's timer late, and the
// chunks due meanwhile then come together in one read (seen 7.7 ms late,
// with the next two, while another benchmark ran); the replay schedules
// each write from its start, so the lateness does not carry on. (A
// reconstructed transcript's times are its reconstruction's, not the
// engine's: it is left out.)
func TestTimingCorpusReplay(t *testing.T) {
	testenv.Timing(t)
	for _, tr := range loadCorpus(t) {
		e := expect(tr)
		if e.Error != record.OK || len(e.Chunks) == 0 || tr.Meta.Framing != "recorded" {
			continue
		}
		for _, tp := range transports {
			t.Run(fmt.Sprintf("%s/%s", tr.Name, tp.name), func(t *testing.T) {
				r, err := fake.StartReplay(tr, 1)
				require.NoError(t, err)
				defer r.Close()
				c, ok := replayClient(t, r.URL(), tp.netHTTP)
				if !ok {
					t.Skip("the epoll reader is off here")
				}
				var rec record.Record
				c.Do(t.Context(), corpusRequest(tr), &rec)
				require.Equal(t, record.OK, rec.Error, rec.Message)
				require.Len(t, rec.Chunks, len(e.Chunks))
				tol := func(want time.Duration) time.Duration { return 2*time.Millisecond + want/10 }
				var late []time.Duration
				for i, c := range rec.Chunks {
					got, want := c.At-rec.Sent, e.Chunks[i].At
					assert.GreaterOrEqual(t, got, want-tol(want), "chunk %d at %v after the send, recorded %v: early", i, got, want)
					late = append(late, got-want)
				}
				slices.Sort(late)
				last := e.Chunks[len(e.Chunks)-1].At
				assert.LessOrEqual(t, late[len(late)/2], tol(last), "the median lateness of the chunks (sorted: %v)", late)
			})
		}
	}
}
