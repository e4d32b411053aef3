package engines

import (
	"context"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/transcript"
)

// feedLean replays reads into the epoll reader's parser as its reactor
// hands it a connection's reads (h1stream.bytes, with each read's
// recorded arrival as its kernel receive time), then ends the connection
// as the transcript did: what the reactor does, without the sockets. It
// reports false where the epoll reader is off (INFERBENCH_NET_HTTP=1).
func feedLean(t testing.TB, tr *transcript.Transcript, reads []transcript.Read) (record.Record, bool) {
	t.Helper()
	clock := newReplayClock()
	c, err := NewClient(Engine{Name: "corpus", Profile: OpenAI, URL: "http://127.0.0.1:1/v1/chat/completions", Model: "m"},
		Options{Now: clock.Now, RequestTimeout: stallTimeout})
	require.NoError(t, err)
	defer c.Close()
	if c.lean == nil {
		return record.Record{}, false
	}
	req := corpusRequest(tr)
	var rec record.Record
	rec.LengthForced = req.MaxTokens > 0 && c.fixesLength()
	info := &streamInfo{}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	st := &h1stream{t: c.lean, conn: &h1conn{fd: -1}, ctx: ctx, rec: &rec, info: info, req: req, done: make(chan struct{})}
	st.bodyFn = st.body
	rec.Sent = c.since()
	st.wrote = rec.Sent
	for i, r := range reads {
		if st.ended {
			break
		}
		clock.set(r.At)
		st.bytes(r.Data, r.At, r.At, i+1)
	}
	if !st.ended {
		clock.set(tr.EndAt)
		switch tr.End {
		case transcript.EOF:
			st.connError(io.EOF, tr.EndAt, false)
		case transcript.Reset:
			st.connError(os.NewSyscallError("read", syscall.ECONNRESET), tr.EndAt, false)
		default:
			if st.phase == phDrain {
				st.end(false) // the reactor's drain ran out (expireDrains)
				break
			}
			// The server stalled: the request's deadline ends it, as
			// the reactor does when the caller's context is done.
			clock.set(rec.Sent)
			if len(reads) > 0 {
				clock.set(reads[len(reads)-1].At)
			}
			cancel(errRequestTimeout)
			st.connError(context.Cause(ctx), c.since(), true)
		}
	}
	<-st.done
	return rec, true
}
