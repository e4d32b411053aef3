package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/inferbench/inferbench/engines"
)

// TurnInfo says which conversation turn a request is.
type TurnInfo struct {
	// Conversation is the conversation's number in the run.
	Conversation int
	// Turn is the 0-based turn index.
	Turn int
	// Ready is when the turn could be sent: its previous turn's end plus
	// ThinkTime (the zero time for a first turn).
	Ready time.Time
	// Substituted is true when an earlier answer of the history is the
	// dataset's (or synthetic) because the engine's failed.
	Substituted bool
	// Info is the request's Info (its shared prefix).
	Info Info
}

// Conversations tracks the conversations of one sample (see the package
// doc). Begin and the function it returns are safe for concurrent use.
type Conversations struct {
	w             *Workload
	first, stride int
	now           func() time.Time
	sleep         func(context.Context, time.Duration) error

	mu   sync.Mutex
	pos  [][]int // pos[p][j]: the k at which position p's j-th conversation starts
	ends map[int]*turnEnd
}

// turnEnd is a turn's outcome, published when it ends.
type turnEnd struct {
	done        chan struct{}
	history     []engines.Message // the turn's messages plus its answer
	substituted bool
	at          time.Time
}

// Conversations returns the tracker of one sample whose first seq is first
// and whose conversations run stride at a time. now and sleep are the
// clock (nil: the real ones).
func (w *Workload) Conversations(first, stride int, now func() time.Time, sleep func(context.Context, time.Duration) error) (*Conversations, error) {
	if w.spec.Turns == 0 {
		return nil, fmt.Errorf("workload: conversations need Turns (-turns) > 0")
	}
	if stride < 1 {
		return nil, fmt.Errorf("workload: conversations: stride %d: must be at least 1", stride)
	}
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return &Conversations{w: w, first: first, stride: stride, now: now, sleep: sleep,
		pos: make([][]int, stride), ends: map[int]*turnEnd{}}, nil
}

// MultiTurn reports whether the workload is conversations.
func (w *Workload) MultiTurn() bool { return w.spec.Turns > 0 }

// turnsOf is the number of turns of conversation c.
func (w *Workload) turnsOf(c int) int {
	if w.entries == nil {
		return w.spec.Turns
	}
	return len(w.entry(c).turns)
}

func (w *Workload) entry(c int) entry {
	return w.entries[((c%len(w.entries))+len(w.entries))%len(w.entries)]
}

// locate maps seq to its conversation number and turn.
func (cv *Conversations) locate(seq int) (conv, turn int) {
	r := seq - cv.first
	if r < 0 {
		// Before the sample (a probe): its own one-turn conversation.
		return seq, 0
	}
	p, k := r%cv.stride, r/cv.stride
	cv.mu.Lock()
	defer cv.mu.Unlock()
	starts := cv.pos[p]
	for {
		j := len(starts) - 1
		if j >= 0 {
			c := p + cv.stride*j
			if k < starts[j]+cv.w.turnsOf(cv.first+c) {
				break
			}
		}
		next := 0
		if j >= 0 {
			next = starts[j] + cv.w.turnsOf(cv.first+p+cv.stride*j)
		}
		starts = append(starts, next)
	}
	cv.pos[p] = starts
	j := sort.Search(len(starts), func(i int) bool { return starts[i] > k }) - 1
	return cv.first + p + cv.stride*j, k - starts[j]
}

// Begin waits until turn seq may be sent — its previous turn ended, and
// ThinkTime passed since — and returns its request, what it is, and end,
// which the caller must call once with the engine's answer text and
// whether the request succeeded (the next turn waits for it). It fails
// only when ctx ends first; end must be called then too.
func (cv *Conversations) Begin(ctx context.Context, seq int) (engines.Request, TurnInfo, func(answer string, ok bool), error) {
	conv, t := cv.locate(seq)
	ti := TurnInfo{Conversation: conv, Turn: t}
	me := cv.publish(seq)
	var history []engines.Message
	if t > 0 {
		prev := cv.publish(seq - cv.stride)
		select {
		case <-prev.done:
		case <-ctx.Done():
			return engines.Request{}, ti, cv.ender(me, nil, "", false), ctx.Err()
		}
		ti.Ready = prev.at.Add(cv.w.spec.ThinkTime)
		if d := ti.Ready.Sub(cv.now()); d > 0 {
			if err := cv.sleep(ctx, d); err != nil {
				return engines.Request{}, ti, cv.ender(me, nil, "", false), err
			}
		}
		history, ti.Substituted = prev.history, prev.substituted
		cv.mu.Lock()
		delete(cv.ends, seq-cv.stride) // its one reader is this turn
		cv.mu.Unlock()
	}
	req, fallback, info := cv.w.turnRequest(conv, t, seq)
	ti.Info = info
	msgs := make([]engines.Message, 0, len(history)+len(req.Messages))
	msgs = append(append(msgs, history...), req.Messages...)
	req.Messages = msgs
	me.substituted = ti.Substituted
	return req, ti, cv.ender(me, msgs, fallback, true), nil
}

// publish returns the outcome slot of seq, creating it.
func (cv *Conversations) publish(seq int) *turnEnd {
	cv.mu.Lock()
	defer cv.mu.Unlock()
	e := cv.ends[seq]
	if e == nil {
		e = &turnEnd{done: make(chan struct{})}
		cv.ends[seq] = e
	}
	return e
}

// ender is the end function of a turn whose messages were sent (nil: it
// was never sent). An answer that failed (or never came) is replaced in
// the history by fallback; a turn never sent passes its own history on
// empty, so the next turn starts its conversation's history afresh.
func (cv *Conversations) ender(e *turnEnd, sent []engines.Message, fallback string, built bool) func(string, bool) {
	var once sync.Once
	return func(answer string, ok bool) {
		once.Do(func() {
			if built {
				if !ok || answer == "" {
					answer, e.substituted = fallback, true
				}
				e.history = append(sent[:len(sent):len(sent)], engines.Message{Role: "assistant", Content: answer})
			}
			e.at = cv.now()
			close(e.done)
		})
	}
}

// turnRequest builds turn t of conversation conv (seq is the request's
// seq, which draws its lengths): the new user message (with the dataset
// context before a first turn), its output length, and the answer to put
// in the history if the engine's fails.
func (w *Workload) turnRequest(conv, t, seq int) (engines.Request, string, Info) {
	info := Info{Prefix: -1}
	if w.entries != nil {
		e := w.entry(conv)
		tr := e.turns[t]
		user := tr.user
		var msgs []engines.Message
		if t == 0 {
			if w.spec.N == 0 && (conv < 0 || conv >= len(w.entries)) {
				user = fmt.Sprintf("[conversation %d] %s", conv, user)
			}
			msgs = append(msgs, e.context...)
		}
		msgs = append(msgs, engines.Message{Role: "user", Content: user})
		maxTokens := tr.answerTokens
		if !w.out.Dataset() {
			maxTokens = w.out.Draw(w.spec.Seed, outputSalt, seq)
		}
		fallback := tr.answer
		if fallback == "" {
			fallback = syntheticPrompt(w.spec.Seed, -2-seq, max(maxTokens, 1))
		}
		return engines.Request{Messages: msgs, MaxTokens: maxTokens}, fallback, info
	}
	// A synthetic turn: the first turn takes the conversation's shared
	// prefix (chosen by the conversation, not the seq).
	target := w.in.Draw(w.spec.Seed, inputSalt, seq)
	info.InputTokens = target
	var prefix string
	w.mu.RLock()
	pw := 0
	if w.spec.Prefixes > 0 {
		info.Prefix = rand.New(rand.NewPCG(uint64(w.spec.Seed)^prefixSalt, uint64(conv))).IntN(w.spec.Prefixes)
		pw = w.prefixWordsLocked()
		info.PrefixTokens = int(float64(pw)*w.b + 0.5)
		prefix = w.prefix[info.Prefix]
	}
	n := w.fillerLocked(target, 0)
	if t == 0 {
		n = w.fillerLocked(target, pw)
	}
	w.mu.RUnlock()
	content := syntheticPrompt(w.spec.Seed, seq, n)
	if t == 0 && info.Prefix >= 0 {
		if prefix == "" {
			prefix = w.prefixText(info.Prefix)
		}
		content = prefix + " " + content
	}
	maxTokens := w.out.Draw(w.spec.Seed, outputSalt, seq)
	// The stand-in answer: filler words about the requested length, drawn
	// from a seq no request uses.
	return engines.Request{Messages: []engines.Message{{Role: "user", Content: content}}, MaxTokens: maxTokens},
		syntheticPrompt(w.spec.Seed, -2-seq, max(maxTokens-1, 1)), info
}
