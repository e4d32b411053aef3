package engines

// The corpus (testdata/streams): real engines' exchanges, replayed into
// both transports byte for byte with their recorded read boundaries and
// arrival times, on a clock that reads those times, so what each
// transport records is exact and can be compared: with the independent
// reading of the transcript (expect), and with each other. Then the same
// bytes split at every byte (every byte its own read, at its read's time)
// must give the same records: the framing of the reads is the network's,
// not the engine's, and must change nothing.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/transcript"
)

// corpusDir is the corpus; INFERBENCH_STREAMS names more folders of
// transcripts to hold to the same rules (.ci/real-engine's fresh ollama
// captures), separated by the list separator.
var corpusDir = filepath.Join("..", "testdata", "streams")

func loadCorpus(t testing.TB) []*transcript.Transcript {
	t.Helper()
	trs, err := transcript.Load(corpusDir)
	require.NoError(t, err)
	require.NotEmpty(t, trs, "no transcripts in %s", corpusDir)
	for _, dir := range filepath.SplitList(os.Getenv("INFERBENCH_STREAMS")) {
		more, err := transcript.Load(dir)
		require.NoError(t, err, "INFERBENCH_STREAMS")
		require.NotEmpty(t, more, "INFERBENCH_STREAMS=%s has no transcripts", dir)
		for _, m := range more {
			m.Name = dir + ":" + m.Name
		}
		trs = append(trs, more...)
	}
	return trs
}

// replayClock is a clock that reads the time of the last read a replay
// handed over: Sent is 0, and every stamp is a recorded arrival.
type replayClock struct {
	epoch time.Time
	now   atomic.Int64
}

func (c *replayClock) Now() time.Time        { return c.epoch.Add(time.Duration(c.now.Load())) }
func (c *replayClock) set(at time.Duration)  { c.now.Store(int64(at)) }
func newReplayClock() *replayClock           { return &replayClock{epoch: time.Unix(1_800_000_000, 0)} }
func (c *replayClock) offset() time.Duration { return time.Duration(c.now.Load()) }

// corpusRequest is the request of the corpus tests: the generic profile,
// the length the transcript's request asked for (so nothing is checked
// against a length the engine was not asked for), and the answer text.
func corpusRequest(tr *transcript.Transcript) Request {
	var body struct {
		MaxTokens int `json:"max_tokens"`
	}
	if i := strings.Index(string(tr.Request), "\r\n\r\n"); i >= 0 {
		_ = json.Unmarshal(tr.Request[i+4:], &body)
	}
	return Request{Messages: oneMsg, MaxTokens: body.MaxTokens}
}

// replayConn is one connection of a replay: it takes the request, then
// returns the transcript's reads one per Read (a Read with less room gets
// the rest next), setting the clock to each read's arrival, and ends as
// the transcript ended.
type replayConn struct {
	reads    []transcript.Read
	end      transcript.End
	clock    *replayClock
	wrote    chan struct{}
	once     sync.Once
	closed   chan struct{}
	closeOne sync.Once
	mu       sync.Mutex
	i        int
	rest     []byte
}

func newReplayConn(reads []transcript.Read, end transcript.End, clock *replayClock) *replayConn {
	return &replayConn{reads: reads, end: end, clock: clock, wrote: make(chan struct{}), closed: make(chan struct{})}
}

func (c *replayConn) Write(p []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	c.once.Do(func() { close(c.wrote) })
	return len(p), nil
}

func (c *replayConn) Read(p []byte) (int, error) {
	select {
	case <-c.wrote: // a server answers the request it got
	case <-c.closed:
		return 0, net.ErrClosed
	}
	c.mu.Lock()
	if len(c.rest) == 0 && c.i < len(c.reads) {
		r := c.reads[c.i]
		c.i++
		c.clock.set(r.At)
		c.rest = r.Data
	}
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	switch c.end {
	case transcript.EOF:
		return 0, io.EOF
	case transcript.Reset:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	}
	<-c.closed // open: nothing more until the client closes it
	return 0, net.ErrClosed
}

func (c *replayConn) Close() error {
	c.closeOne.Do(func() { close(c.closed) })
	return nil
}
func (c *replayConn) LocalAddr() net.Addr                { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *replayConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (c *replayConn) SetDeadline(t time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(t time.Time) error { return nil }

// stallTimeout is the request deadline of a replay whose stream stalls (an
// open connection inside the body): real time, but the record's times are
// the clock's.
const stallTimeout = 200 * time.Millisecond

// feedNetHTTP replays reads into the net/http transport on a connection
// of its own and returns the record.
func feedNetHTTP(t testing.TB, tr *transcript.Transcript, reads []transcript.Read) record.Record {
	t.Helper()
	clock := newReplayClock()
	conn := newReplayConn(reads, tr.End, clock)
	c, err := NewClient(Engine{Name: "corpus", Profile: OpenAI, URL: "http://corpus.invalid/v1/chat/completions", Model: "m"}, Options{
		Now: clock.Now, RequestTimeout: stallTimeout,
		Transport: &http.Transport{
			DialContext:        func(context.Context, string, string) (net.Conn, error) { return conn, nil },
			DisableCompression: true,
		},
	})
	require.NoError(t, err)
	defer c.Close()
	defer conn.Close()
	var rec record.Record
	c.Do(context.Background(), corpusRequest(tr), &rec)
	return rec
}

// splitBytes is reads with every byte its own read, at its read's time.
func splitBytes(reads []transcript.Read) []transcript.Read {
	var out []transcript.Read
	for _, r := range reads {
		for i := range r.Data {
			out = append(out, transcript.Read{At: r.At, Data: r.Data[i : i+1]})
		}
	}
	return out
}

// sameOnBoth is what both transports must record alike: everything but
// the connection's facts (only the epoll reader and net/http's trace
// know how a connection was had) and the message's wording of a
// transport error.
func sameOnBoth(r record.Record) record.Record {
	r.GotConn, r.ConnReused, r.NewConn, r.DNS, r.Dial, r.TLS = 0, false, false, 0, 0, 0
	if r.Chunks == nil {
		r.Chunks = []record.Chunk{}
	}
	return r
}

// checkExpected holds rec to what the transcript says.
func checkExpected(t *testing.T, e expected, rec record.Record, what string) {
	t.Helper()
	assert.Equal(t, e.Error, rec.Error, "%s: error (%s)", what, rec.Message)
	if e.Status != 0 {
		assert.Equal(t, e.Status, rec.Status, "%s: status", what)
	}
	if e.Error == record.HTTPStatus || e.Status == 0 {
		return
	}
	assert.Equal(t, e.Headers, rec.Headers, "%s: head's arrival", what)
	if assert.Len(t, rec.Chunks, len(e.Chunks), "%s: output chunks", what) {
		for i, ch := range e.Chunks {
			assert.Equal(t, ch.At, rec.Chunks[i].At, "%s: chunk %d's arrival", what, i)
			assert.Equal(t, ch.Tokens, rec.Chunks[i].Tokens, "%s: chunk %d's tokens", what, i)
		}
	}
	assert.Equal(t, e.FinishReason, rec.FinishReason, "%s: finish_reason", what)
	if e.Error == record.OK {
		assert.Equal(t, e.OutputTokens, rec.OutputTokens, "%s: output tokens", what)
		assert.Equal(t, e.TokenSource, rec.TokenSource, "%s: token source", what)
		assert.Equal(t, e.EOSCounted, rec.EOSCounted, "%s: EOS counted", what)
		assert.Equal(t, e.PromptTokens, rec.PromptTokens, "%s: prompt tokens", what)
		assert.Equal(t, e.Cached, rec.CachedReported, "%s: cached tokens reported", what)
		assert.Equal(t, e.CachedTokens, rec.CachedTokens, "%s: cached tokens", what)
		if len(e.Chunks) > 0 {
			ttft, ok := rec.TTFT()
			assert.True(t, ok, what)
			assert.Equal(t, e.Chunks[0].At, ttft, "%s: TTFT (Sent is 0)", what)
		}
	}
}

// TestCorpus: every transcript of the corpus, replayed into net/http and
// into the epoll reader (Linux), with its recorded reads and then one
// byte a read, gives the record its independent reading expects (status,
// error kind, output chunks with their arrival times and tokens, TTFT,
// finish_reason, output, prompt and cached tokens), and the four records
// are the same but for the connection's facts.
func TestCorpus(t *testing.T) {
	for _, tr := range loadCorpus(t) {
		t.Run(tr.Name, func(t *testing.T) {
			t.Parallel()
			e := expect(tr)
			t.Logf("%s %s (%s): status %d, %s, %d chunks, %d tokens (%s), finish %q", tr.Meta.Engine, tr.Meta.Version, tr.Meta.Source.Kind,
				e.Status, orOK(e.Error), len(e.Chunks), e.OutputTokens, e.TokenSource, e.FinishReason)
			base := feedNetHTTP(t, tr, tr.Reads)
			checkExpected(t, e, base, "net/http")
			runs := map[string]record.Record{"net/http, one byte a read": feedNetHTTP(t, tr, splitBytes(tr.Reads))}
			if lean, ok := feedLean(t, tr, tr.Reads); ok {
				runs["epoll reader"] = lean
				runs["epoll reader, one byte a read"], _ = feedLean(t, tr, splitBytes(tr.Reads))
			} else {
				t.Log("the epoll reader is off here: net/http only")
			}
			for what, rec := range runs {
				checkExpected(t, e, rec, what)
				assert.Equal(t, sameOnBoth(base), sameOnBoth(rec), "%s against net/http", what)
			}
		})
	}
}

func orOK(k record.ErrorKind) string {
	if k == record.OK {
		return "ok"
	}
	return string(k)
}

// FuzzCorpusSplits splits a transcript's reads at places the input
// chooses (each input byte, taken in turn, is where to cut the next read,
// as a fraction of it): both transports must record what they record
// from the recorded reads. Seeded by every transcript of the corpus.
func FuzzCorpusSplits(f *testing.F) {
	trs := loadCorpus(f)
	for i := range trs {
		f.Add(uint8(i), []byte{})
		f.Add(uint8(i), []byte{1, 128, 255, 7})
	}
	want := map[int][2]record.Record{}
	var mu sync.Mutex
	f.Fuzz(func(t *testing.T, which uint8, cuts []byte) {
		i := int(which) % len(trs)
		tr := trs[i]
		mu.Lock()
		w, ok := want[i]
		if !ok {
			w[0] = sameOnBoth(feedNetHTTP(t, tr, tr.Reads))
			if lean, ok := feedLean(t, tr, tr.Reads); ok {
				w[1] = sameOnBoth(lean)
			}
			want[i] = w
		}
		mu.Unlock()
		reads := cutReads(tr.Reads, cuts)
		assert.Equal(t, w[0], sameOnBoth(feedNetHTTP(t, tr, reads)), "net/http, %d reads", len(reads))
		if lean, ok := feedLean(t, tr, reads); ok {
			assert.Equal(t, w[1], sameOnBoth(lean), "epoll reader, %d reads", len(reads))
			assert.Equal(t, w[0], sameOnBoth(lean), "epoll reader against net/http")
		}
	})
}

// cutReads cuts reads where cuts say: cut k splits the read it reaches at
// cuts[k]/256 of its length (0 leaves it whole).
func cutReads(reads []transcript.Read, cuts []byte) []transcript.Read {
	var out []transcript.Read
	k := 0
	for _, r := range reads {
		data := r.Data
		for k < len(cuts) && len(data) > 1 {
			at := int(cuts[k]) * len(data) / 256
			k++
			if at <= 0 || at >= len(data) {
				break
			}
			out = append(out, transcript.Read{At: r.At, Data: data[:at]})
			data = data[at:]
		}
		out = append(out, transcript.Read{At: r.At, Data: data})
	}
	return out
}

// TestCorpusCitesItsSources: every transcript says where it came from, a
// live capture its command line and version, a repository's recording
// its repository, path and commit, and what of it was reconstructed.
func TestCorpusCitesItsSources(t *testing.T) {
	engines := map[string]bool{}
	for _, tr := range loadCorpus(t) {
		m := tr.Meta
		engines[m.Engine] = true
		assert.NotEmpty(t, m.Command, "%s: the command that made it", tr.Name)
		assert.NotEmpty(t, m.Date, "%s: when", tr.Name)
		switch m.Source.Kind {
		case "captured":
			assert.Equal(t, "recorded", m.Framing, "%s: a live capture is recorded as it happened", tr.Name)
			assert.NotEmpty(t, m.Version, "%s: the engine's version", tr.Name)
			assert.NotEmpty(t, m.ServerCommand, "%s: how the engine was started", tr.Name)
		case "repository":
			assert.NotEmpty(t, m.Source.Repository, tr.Name)
			assert.NotEmpty(t, m.Source.Path, tr.Name)
			assert.Len(t, m.Source.Commit, 40, "%s: a full commit", tr.Name)
			assert.True(t, strings.HasPrefix(m.Framing, "reconstructed"), "%s: says what was reconstructed", tr.Name)
		default:
			t.Errorf("%s: source kind %q", tr.Name, m.Source.Kind)
		}
	}
	t.Logf("engines in the corpus: %v", fmt.Sprint(engines))
}

// facts are what a transcript shows of how its engine streams, without
// what changes from one run to the next (lengths, times, ids).
type facts struct {
	Status       int
	Error        record.ErrorKind
	Role         RoleStyle
	Usage        UsageStyle
	Done         bool
	EOSCounted   bool
	Cached       bool
	FinishReason string
	End          transcript.End
}

func factsOf(tr *transcript.Transcript) facts {
	e := expect(tr)
	return facts{Status: e.Status, Error: e.Error, Role: wantRole(e), Usage: wantUsage(e), Done: e.SawDone,
		EOSCounted: e.EOSCounted, Cached: e.Cached, FinishReason: e.FinishReason, End: tr.End}
}

// TestStreamsHaveNotDrifted: each transcript of INFERBENCH_STREAMS (fresh
// captures of an engine that runs here, which .ci/real-engine makes of
// the ollama it builds) shows the same facts as the committed one of the
// same engine and name, so the corpus cannot drift from the engine CI
// runs. Without INFERBENCH_STREAMS it checks nothing and says so.
func TestStreamsHaveNotDrifted(t *testing.T) {
	dirs := filepath.SplitList(os.Getenv("INFERBENCH_STREAMS"))
	if len(dirs) == 0 {
		t.Skip("no fresh captures to compare (INFERBENCH_STREAMS; .ci/real-engine sets it)")
	}
	committed := map[string]*transcript.Transcript{}
	trs, err := transcript.Load(corpusDir)
	require.NoError(t, err)
	for _, tr := range trs {
		committed[tr.Name] = tr
	}
	compared := 0
	for _, dir := range dirs {
		fresh, err := transcript.Load(dir)
		require.NoError(t, err)
		for _, tr := range fresh {
			old, ok := committed[tr.Name]
			if !assert.True(t, ok, "%s: a fresh capture with no committed transcript of its name", tr.Name) {
				continue
			}
			assert.Equal(t, factsOf(old), factsOf(tr), "%s: the committed transcript (%s %s) against a fresh capture (%s %s)",
				tr.Name, old.Meta.Engine, old.Meta.Version, tr.Meta.Engine, tr.Meta.Version)
			compared++
		}
	}
	require.Positive(t, compared, "no fresh capture compared")
	t.Logf("%d fresh captures show the committed transcripts' facts", compared)
}
