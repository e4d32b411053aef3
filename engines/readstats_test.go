package engines

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/record"
)

// TestReadStatsQueued checks the client counts output chunks that were
// already queued behind an earlier one when read: none when the server
// writes each token apart (and the client keeps up), all but the first
// when the server writes them in one go.
func TestReadStatsQueued(t *testing.T) {
	events := sse(roleChunk, content("a"), content("b"), content("c"), content("d"), finishLen)
	for _, tc := range []struct {
		name   string
		apart  bool // one write per event, 20 ms apart, so each is read alone
		queued int64
		reads  func(int64) bool
	}{
		// One write per event, far enough apart to be read one by one:
		// nothing queued, one read per event (the end's may coincide).
		{"apart", true, 0, func(r int64) bool { return r >= 6 }},
		// The whole stream in one write: the 2nd, 3rd and 4th output
		// chunks came in the read that delivered the 1st.
		{"together", false, 3, func(r int64) bool { return r >= 1 && r <= 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "text/event-stream")
				f := w.(http.Flusher)
				if !tc.apart {
					_, _ = io.WriteString(w, strings.Join(events, "")+"data: [DONE]\n\n")
					f.Flush()
					return
				}
				for _, e := range append(events, "data: [DONE]\n\n") {
					_, _ = io.WriteString(w, e)
					f.Flush()
					time.Sleep(20 * time.Millisecond)
				}
			}))
			c := newClient(t, srv.URL, OpenAI, Options{})
			before := c.ReadStats()
			rec := do(t, c, context.Background(), Request{Messages: oneMsg})
			require.Equal(t, record.OK, rec.Error, rec.Message)
			got := c.ReadStats().Sub(before)
			assert.Equal(t, int64(4), got.Chunks)
			assert.Equal(t, int64(7), got.Events, "role, 4 tokens, finish, [DONE]")
			assert.Equal(t, tc.queued, got.Queued)
			assert.True(t, tc.reads(got.Reads), "reads %d", got.Reads)
			assert.InDelta(t, float64(tc.queued)/4, got.QueuedFraction(), 1e-9)
		})
	}
}
