package fake

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/inferbench/inferbench/fake/sim"
)

// plan is what the server decided for one request, from the seed and the
// request's index alone.
type plan struct {
	index  uint64
	hash   uint64 // per-request hash: filler words and ids
	n      int    // output tokens sent as content
	gen    int    // tokens the engine generates: n, plus the unsent EOS of a natural stop
	reason string // finish_reason: "length" or "stop"
	fail   string // injected failure kind, "" for none
	failAt int    // output tokens sent before a cut, hang or malformed event
}

// mix is splitmix64's finalizer: a good 64-bit hash of x.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit maps a hash to [0, 1).
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// plan numbers the request and derives its length, finish reason and
// injected failure (see the package doc).
func (s *Server) plan(req *request) plan {
	i := s.reqs.Add(1) - 1
	h := mix(mix(uint64(s.opts.Seed)) ^ i)
	p := plan{index: i, hash: h, n: req.MaxTokens, reason: "length"}
	if s.opts.NaturalStop && !req.IgnoreEOS && req.MinTokens < req.MaxTokens {
		lo := max(req.MinTokens, 1)
		p.n = lo + int(mix(h^1)%uint64(req.MaxTokens-lo+1))
		if p.n < req.MaxTokens {
			p.reason = "stop"
		}
	}
	p.gen = p.n
	if p.reason == "stop" {
		// The EOS token is generated (one more decode step) and counted in
		// usage, but never sent: llama-server's n_decoded. n < MaxTokens,
		// so n + 1 stays within the limit.
		p.gen = p.n + 1
	}
	if s.opts.ErrorRate > 0 && unit(mix(h^2)) < s.opts.ErrorRate {
		p.fail = s.opts.ErrorKinds[mix(h^3)%uint64(len(s.opts.ErrorKinds))]
		p.failAt = p.n / 2
	}
	return p
}

// words are the filler vocabulary: one word (and a space) per token.
var words = strings.Fields(`the of and to in is that for it as was with be by on not he this are or
his from at which but have an they you were her she there been one all we their has would when if
so no will can more other time some what into only new after about model token stream batch engine
simulated`)

// text returns the filler text of tokens [from, from+count) of a request.
func (p *plan) text(from, count int) string {
	var b strings.Builder
	for j := from; j < from+count; j++ {
		b.WriteString(words[mix(p.hash^uint64(j)<<20^0xa5a5)%uint64(len(words))])
		b.WriteByte(' ')
	}
	return b.String()
}

// tokenSource yields a request's tokens: a sim.Seq, or all at once for the
// firehose.
type tokenSource interface {
	Next(ctx context.Context) (n int, finished bool, err error)
	Cancel()
}

// firehose is the tokenSource of the firehose configuration.
type firehose struct {
	n    int
	done bool
}

func (f *firehose) Next(ctx context.Context) (int, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	if f.done {
		return 0, true, nil
	}
	f.done = true
	return f.n, true, nil
}

func (f *firehose) Cancel() {}

// completions handles /v1/chat/completions (chat) and /v1/completions.
func (s *Server) completions(chat bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.CloseAfterStream && r.Context().Value(connKey{}) == nil {
			writeError(w, http.StatusInternalServerError, "the simulated engine runs with CloseAfterStream but its http.Server lacks the connection hooks: serve it with fake.Start or fake.Serve, or call Server.ConfigureHTTP on the http.Server before it serves")
			return
		}
		body, ok := s.readBody(w, r)
		if !ok {
			return
		}
		req, err := decodeRequest(body, chat, s.cfg.DefaultTokens)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if req.Model != s.opts.Model {
			writeError(w, http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist.", req.Model))
			return
		}
		p := s.plan(req)
		switch p.fail {
		case "429":
			s.logf("request %d: injected 429", p.index)
			writeError(w, http.StatusTooManyRequests, "simulated failure: too many requests")
			return
		case "500":
			s.logf("request %d: injected 500", p.index)
			writeError(w, http.StatusInternalServerError, "simulated failure: internal server error")
			return
		}
		if limit := s.cfg.KVCapacityTokens; req.PromptTokens+req.MaxTokens > limit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%d prompt tokens plus %d output tokens exceed the simulated context of %d tokens: lower max_tokens or shorten the prompt",
				req.PromptTokens, req.MaxTokens, limit))
			return
		}
		var src tokenSource
		if s.eng == nil {
			src = &firehose{n: p.gen}
			s.fhRunning.Add(1)
			defer s.fhRunning.Add(-1)
			s.fhPromptTotal.Add(uint64(req.PromptTokens))
		} else {
			var seq *sim.Seq
			if s.cfg.PrefixCaching {
				seq, err = s.eng.SubmitTokens(req.tokenIDs(), p.gen)
			} else {
				seq, err = s.eng.Submit(req.PromptTokens, p.gen)
			}
			switch {
			case errors.Is(err, sim.ErrQueueFull):
				writeError(w, http.StatusTooManyRequests, fmt.Sprintf("the waiting queue is full (%d requests): retry later", s.cfg.MaxWaiting))
				return
			case errors.Is(err, sim.ErrTooLong):
				writeError(w, http.StatusBadRequest, fmt.Sprintf("%d prompt tokens plus %d output tokens do not fit the simulated KV cache: lower max_tokens or shorten the prompt",
					req.PromptTokens, p.gen))
				return
			case err != nil:
				writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the simulated engine is not accepting requests: %v", err))
				return
			}
			src = seq
		}
		defer src.Cancel() // frees the batch slot and KV if the request ends early
		prefix := "cmpl-"
		if chat {
			prefix = "chatcmpl-"
		}
		st := &stream{
			chat:    chat,
			id:      fmt.Sprintf("%s%d-%012x", prefix, p.index, p.hash>>16),
			created: time.Now().Unix(),
			model:   s.modelJSON,
			prompt:  req.PromptTokens,

			roleEvery: s.opts.RoleInEveryDelta,
			details:   s.cfg.PrefixCaching,
		}
		if req.Stream {
			s.stream(w, r, req, &p, st, src)
		} else {
			s.respond(w, r, &p, st, src)
		}
	}
}

// wait blocks a hanging response until the client leaves or the server closes.
func (s *Server) wait(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-s.done:
	}
}

// stream writes an SSE response; see the package doc for its shape.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, req *request, p *plan, st *stream, src tokenSource) {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	var buf []byte
	var werr error // the first write error: the client is gone
	emit := func() {
		if werr == nil {
			if _, werr = w.Write(buf); werr == nil {
				werr = rc.Flush()
			}
		}
		buf = buf[:0]
	}
	usage := func(completion int) int {
		if req.ContinuousUsage {
			return completion
		}
		return -1
	}
	tpc := s.opts.TokensPerChunk
	generated, emitted, started, malformed := 0, 0, false, false
	for generated < p.gen {
		k, fin, err := src.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return // the client left; the deferred Cancel frees the slot
			}
			if !started {
				writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the simulated engine stopped: %v", err))
				return
			}
			s.logf("request %d: stream ended early: %v", p.index, err)
			return // no [DONE]: the client sees a cut stream
		}
		st.noteCached(src)
		generated += k
		if fin || generated > p.gen {
			generated = p.gen
		}
		// The EOS of a natural stop is generated but not sent.
		visible := min(generated, p.n)
		for emitted < visible && (visible-emitted >= tpc || visible == p.n) {
			if !started {
				h := w.Header()
				h.Set("Content-Type", "text/event-stream")
				h.Set("Cache-Control", "no-cache")
				if s.opts.CloseAfterStream {
					s.closeAfterResponse(r)
				}
				w.WriteHeader(http.StatusOK)
				started = true
				if st.chat && !st.roleEvery {
					// Written with the first token, in one flush: a client
					// cannot see the role before the first token.
					buf = st.roleChunk(buf, usage(0))
				}
			}
			if emitted >= p.failAt {
				switch p.fail {
				case "cut":
					emit()
					s.logf("request %d: injected cut after %d tokens", p.index, emitted)
					src.Cancel()
					panic(http.ErrAbortHandler) // net/http closes the connection without a final chunk
				case "hang":
					emit()
					s.logf("request %d: injected hang after %d tokens", p.index, emitted)
					src.Cancel()
					s.wait(ctx)
					return
				case "error-event":
					// An error object in the 200 stream, then a clean end
					// of the body: no finish_reason, no usage, no [DONE].
					buf = errorEvent(buf)
					emit()
					s.logf("request %d: injected error event after %d tokens", p.index, emitted)
					src.Cancel()
					return
				case "abort":
					// ollama's token-repeat limit: the stream just ends, a
					// clean end of the body with no finish_reason, no
					// usage, no [DONE] and no error, and the connection
					// stays open for the next request.
					emit()
					s.logf("request %d: injected abort after %d tokens", p.index, emitted)
					src.Cancel()
					return
				case "malformed":
					if !malformed {
						s.logf("request %d: injected malformed event after %d tokens", p.index, emitted)
						malformed = true
						buf = append(buf, malformedEvent...)
					}
				}
			}
			c := min(tpc, visible-emitted)
			buf = st.textChunk(buf, p.text(emitted, c), usage(emitted+c))
			emitted += c
			emit()
			if werr != nil {
				return // the client is gone; the deferred Cancel frees the slot
			}
			if s.eng == nil {
				s.fhGenTotal.Add(uint64(c))
			}
		}
	}
	if s.eng == nil {
		s.fhGenTotal.Add(uint64(p.gen - p.n)) // the unsent EOS
	}
	buf = st.finishChunk(buf, p.reason, usage(p.gen))
	emit()
	if req.IncludeUsage {
		buf = st.usageChunk(buf, p.gen)
		emit()
	}
	buf = append(buf, doneEvent...)
	emit()
}

// respond writes a non-streamed answer once every token is generated.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, p *plan, st *stream, src tokenSource) {
	ctx := r.Context()
	if p.fail == "hang" {
		s.logf("request %d: injected hang", p.index)
		src.Cancel()
		s.wait(ctx)
		return
	}
	for generated := 0; generated < p.gen; {
		k, fin, err := src.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the simulated engine stopped: %v", err))
			}
			return
		}
		generated += k
		if fin {
			generated = p.gen
		}
	}
	st.noteCached(src)
	if s.eng == nil {
		s.fhGenTotal.Add(uint64(p.gen))
	}
	body := st.fullResponse(nil, p.text(0, p.n), p.reason, p.gen)
	w.Header().Set("Content-Type", "application/json")
	switch p.fail {
	case "error-event":
		// Without a stream llama-server answers such a failure with 500.
		s.logf("request %d: injected error (500, llama-server's body)", p.index)
		b := append(errorObject(nil), '\n')
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(b)
		return
	case "malformed":
		s.logf("request %d: injected malformed body", p.index)
		body = body[:len(body)/2]
		body = append(body, "\n<simulated malformed body>\n"...)
	case "cut":
		s.logf("request %d: injected cut", p.index)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = w.Write(body[:len(body)/2])
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	_, _ = w.Write(body)
}
