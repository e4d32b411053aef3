package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrQueueFull is returned by Submit when MaxWaiting requests are
	// already expected to wait (the server answers HTTP 429).
	ErrQueueFull = errors.New("sim: waiting queue full")
	// ErrClosed is returned once the engine is closed.
	ErrClosed = errors.New("sim: engine closed")
	// ErrCanceled is returned by Next after Seq.Cancel.
	ErrCanceled = errors.New("sim: sequence canceled")
	// ErrTooLong is returned when a request's prompt plus output could never
	// fit in the KV cache (the server answers HTTP 400).
	ErrTooLong = errors.New("sim: request longer than the KV cache")
)

// clock is the driver's time source, injectable for tests. now is an offset
// from the engine's epoch; sleepUntil returns at (or after) t, or early when
// done is closed.
type clock interface {
	now() time.Duration
	sleepUntil(t time.Duration, done <-chan struct{})
	// lead is how much earlier than a deadline a timer should be set so
	// that it fires on the deadline on average (0 for a perfect clock).
	lead() time.Duration
}

// realClock reads the monotonic clock relative to an epoch.
//
// Timers fire late: the OS and the Go scheduler add 50 µs to 1 ms on a busy
// machine. Absolute deadlines keep the mean step exact whatever the
// overshoot, but a constant overshoot still shifts every token's delivery
// and the spread of the gaps: with 2 ms steps a 0.2 ms overshoot moved the
// median gap 10 % above the step. So the clock learns its own overshoot
// (an exponential moving average over the last ~16 sleeps, capped at
// maxLead) and sets its timers that much early.
type realClock struct {
	epoch   time.Time
	timer   *time.Timer
	leadEst atomic.Int64 // ns
}

// maxLead caps the learnt overshoot: a machine so overloaded that timers
// fire later than this is not made to look punctual.
const maxLead = 2 * time.Millisecond

func (c *realClock) now() time.Duration { return time.Since(c.epoch) }

func (c *realClock) lead() time.Duration { return time.Duration(c.leadEst.Load()) }

func (c *realClock) sleepUntil(t time.Duration, done <-chan struct{}) {
	lead := c.lead()
	wakeAt := t - lead
	d := wakeAt - c.now()
	if d <= 0 {
		return
	}
	if c.timer == nil {
		c.timer = time.NewTimer(d)
	} else {
		c.timer.Reset(d)
	}
	select {
	case <-c.timer.C:
	case <-done:
		c.timer.Stop()
		return
	}
	over := min(max(c.now()-wakeAt, 0), maxLead)
	c.leadEst.Store(int64(lead + (over-lead)/16))
}

// OverrunStats measures how late the engine loop starts its steps compared
// with their absolute deadlines (the previous step's start + duration).
// A step has started once it is planned, so lateness includes the sleep's
// overshoot and the planning work; the previous step's tokens are delivered
// right after (MeanDelivery). Steps that follow an idle period are not
// counted.
type OverrunStats struct {
	Steps        uint64        // steps measured
	MeanLateness time.Duration // mean lateness of a step start
	MaxLateness  time.Duration // largest lateness seen
	MeanStep     time.Duration // mean planned step duration over the same steps
	// MeanWake is the part of the lateness spent waking up: how late the
	// sleep returned after the deadline (OS and Go scheduling); the rest is
	// delivery and planning work.
	MeanWake time.Duration
	// MeanDelivery is how late, on average, the last token of a step was
	// handed to its reader after the step's end (wake-up, planning the next
	// step, then delivery). It is what a client sees.
	MeanDelivery time.Duration
	// MeanFraction is MeanLateness / MeanStep: 0.02 means steps start on
	// average 2 % of a step late.
	MeanFraction float64
}

// Engine runs a Scheduler in real time on one goroutine. Steps follow
// absolute deadlines, so sleep overshoot never accumulates: a late step is
// followed by steps that catch up.
type Engine struct {
	cfg      Config
	clk      clock
	overhead time.Duration

	mu      sync.Mutex
	adds    []*Seq   // past their overhead, not yet given to the scheduler
	cancels []uint64 // canceled, not yet given to the scheduler
	timers  map[uint64]*time.Timer
	waiting int // scheduler's waiting queue, published by the loop after every step
	running int // scheduler's running sequences, published likewise
	stats   Stats
	overrun OverrunStats
	lateSum time.Duration
	stepSum time.Duration
	wakeSum time.Duration
	// deliverSum and deliverN measure when a step's tokens were all handed
	// over, relative to the step's end.
	deliverSum time.Duration
	deliverN   uint64
	// wakeLate is the lateness of the last wake-up; written by the loop
	// outside mu, read by it under mu.
	wakeLate time.Duration
	closed   bool

	wake   chan struct{} // 1-buffered: new adds or cancels
	done   chan struct{} // closed by Close
	exited chan struct{} // closed when the loop returns
	nextID atomic.Uint64
	rng    *rand.Rand // overhead jitter; guarded by mu
}

// NewEngine validates cfg and starts the engine loop. An idle engine blocks
// on a channel and uses no CPU. Call Close to stop it.
func NewEngine(cfg Config) (*Engine, error) {
	return newEngine(cfg, nil)
}

func newEngine(cfg Config, clk clock) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Firehose() {
		return nil, errors.New("sim: the firehose configuration (prefill-ms = per-token-ms = 0) has no engine: write every token at once instead")
	}
	if clk == nil {
		clk = &realClock{epoch: time.Now()}
	}
	e := &Engine{
		cfg:      cfg,
		clk:      clk,
		overhead: cfg.EffectiveOverhead(),
		timers:   make(map[uint64]*time.Timer),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		exited:   make(chan struct{}),
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5851f42d4c957f2d)),
	}
	sch := NewScheduler(cfg)
	e.stats = sch.Stats()
	go e.loop(sch)
	return e, nil
}

// Close stops the engine; every blocked Next returns ErrClosed. It is
// idempotent and waits for the loop to exit.
func (e *Engine) Close() {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		for id, t := range e.timers {
			t.Stop()
			delete(e.timers, id)
		}
		close(e.done)
	}
	e.mu.Unlock()
	<-e.exited
}

// Seq is one request's view of its generation. Its methods are safe for
// concurrent use with the engine; Next is meant for one reader.
type Seq struct {
	e  *Engine
	id uint64
	// state packs the generated count (low bits) and finished/canceled flags,
	// so a reader sees both in one atomic load.
	state    atomic.Uint64
	notify   chan struct{} // 1-buffered
	seen     int           // tokens already returned by Next
	prompt   int
	hashes   []uint64 // prompt block hashes (prefix caching)
	max      int
	cached   atomic.Int64  // prompt tokens found in the prefix cache
	due      time.Duration // engine clock time its overhead ends (it may join a step)
	canceled atomic.Bool
}

const (
	finishedBit = uint64(1) << 62
	countMask   = finishedBit - 1
)

// Submit hands a request to the engine. After the configured Overhead
// (which runs on a timer and blocks neither the loop nor other requests) it
// joins the waiting queue. promptTokens 0 counts as 1; maxTokens ≤ 0 means
// DefaultTokens. It returns ErrQueueFull when more than MaxWaiting requests
// are expected to wait for a running slot, ErrTooLong when the request can
// never fit the KV cache, and ErrClosed after Close.
func (e *Engine) Submit(promptTokens, maxTokens int) (*Seq, error) {
	return e.submit(promptTokens, nil, maxTokens)
}

// SubmitTokens is Submit for a prompt given as its token ids, so that with
// Config.PrefixCaching the request reuses the KV of the leading prompt
// blocks it shares with earlier requests (and offers its own). The block
// hashes are computed here, on the caller's goroutine. An empty prompt
// counts as one token. Without PrefixCaching it is Submit(len(tokens),
// maxTokens).
func (e *Engine) SubmitTokens(tokens []uint64, maxTokens int) (*Seq, error) {
	var hashes []uint64
	if e.cfg.PrefixCaching {
		hashes = BlockHashes(tokens, e.cfg.BlockSize)
	}
	return e.submit(len(tokens), hashes, maxTokens)
}

func (e *Engine) submit(promptTokens int, hashes []uint64, maxTokens int) (*Seq, error) {
	if promptTokens < 0 {
		return nil, fmt.Errorf("sim: prompt tokens %d < 0", promptTokens)
	}
	if promptTokens == 0 {
		promptTokens = 1
	}
	if maxTokens <= 0 {
		maxTokens = e.cfg.DefaultTokens
	}
	bs := e.cfg.BlockSize
	if blocksFor(promptTokens+maxTokens, bs) > e.cfg.KVCapacityTokens/bs {
		return nil, fmt.Errorf("sim: %d prompt + %d output tokens exceed the KV cache of %d tokens: %w",
			promptTokens, maxTokens, e.cfg.KVCapacityTokens/bs*bs, ErrTooLong)
	}
	s := &Seq{e: e, id: e.nextID.Add(1), notify: make(chan struct{}, 1), prompt: promptTokens, hashes: hashes, max: maxTokens}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	if m := e.cfg.MaxWaiting; m > 0 {
		// Requests in flight beyond the free running slots will wait.
		inflight := len(e.timers) + len(e.adds) + e.waiting
		if inflight-(e.cfg.MaxNumSeqs-e.running) >= m {
			return nil, ErrQueueFull
		}
	}
	d := e.overhead
	if e.cfg.Jitter > 0 && d > 0 {
		sg := e.cfg.Jitter
		d = time.Duration(float64(d) * math.Exp(sg*e.rng.NormFloat64()-sg*sg/2))
	}
	s.due = e.clk.now() + max(d, 0)
	if d <= 0 {
		e.enqueueLocked(s)
		return s, nil
	}
	// The timer is set early by the clock's learnt overshoot, like the
	// loop's own sleeps, so the overhead is right on average.
	e.timers[s.id] = time.AfterFunc(max(d-e.clk.lead(), 0), func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if _, ok := e.timers[s.id]; !ok {
			return // canceled or closed meanwhile
		}
		delete(e.timers, s.id)
		e.enqueueLocked(s)
	})
	return s, nil
}

// enqueueLocked passes s to the loop; e.mu must be held.
func (e *Engine) enqueueLocked(s *Seq) {
	e.adds = append(e.adds, s)
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// ID is the sequence's id, unique within its engine.
func (s *Seq) ID() uint64 { return s.id }

// CachedTokens is the number of prompt tokens the sequence found in the
// prefix cache when it was first scheduled, so did not prefill (0 without
// Config.PrefixCaching). It is set before Next returns the first token.
func (s *Seq) CachedTokens() int { return int(s.cached.Load()) }

// Generated is the number of tokens generated so far (including tokens Next
// has not returned yet).
func (s *Seq) Generated() int { return int(s.state.Load() & countMask) }

// Next blocks until at least one token was generated since the previous
// call and returns how many (a slow reader gets them all at once, none are
// lost), with finished true once the last token is included. After the
// last token it returns (0, true, nil). It returns ctx's error, ErrCanceled
// once Cancel was called, or ErrClosed when the engine closed before the
// sequence finished (tokens generated before the close are returned first).
func (s *Seq) Next(ctx context.Context) (n int, finished bool, err error) {
	for {
		if s.canceled.Load() {
			return 0, false, ErrCanceled
		}
		st := s.state.Load()
		g := int(st & countMask)
		fin := st&finishedBit != 0
		if g > s.seen || fin {
			n, s.seen = g-s.seen, g
			return n, fin, nil
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-s.e.done:
			// Deliver what was generated before the close first.
			if st := s.state.Load(); int(st&countMask) > s.seen || st&finishedBit != 0 {
				continue
			}
			return 0, false, ErrClosed
		}
	}
}

// Cancel stops the sequence; its slot and KV are freed at the next step. It
// is idempotent, and a no-op after the sequence finished.
func (s *Seq) Cancel() {
	if s.canceled.Swap(true) {
		return
	}
	e := s.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.timers[s.id]; ok { // still in its overhead: never reaches the loop
		t.Stop()
		delete(e.timers, s.id)
	} else if !e.closed {
		e.cancels = append(e.cancels, s.id)
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Stats returns the scheduler's counters as of the last step. It is safe
// for concurrent use.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Overrun returns the step-lateness statistics so far.
func (e *Engine) Overrun() OverrunStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := e.overrun
	if o.Steps > 0 {
		o.MeanLateness = e.lateSum / time.Duration(o.Steps)
		o.MeanStep = e.stepSum / time.Duration(o.Steps)
		o.MeanWake = e.wakeSum / time.Duration(o.Steps)
		if e.stepSum > 0 {
			o.MeanFraction = float64(e.lateSum) / float64(e.stepSum)
		}
	}
	if e.deliverN > 0 {
		o.MeanDelivery = e.deliverSum / time.Duration(e.deliverN)
	}
	return o
}

// loop owns the scheduler. It blocks on wake while idle; otherwise it plans
// a step at its absolute start time, delivers the previous step's tokens,
// and sleeps to the step's end.
func (e *Engine) loop(sch *Scheduler) {
	defer close(e.exited)
	live := make(map[uint64]*Seq)
	var adds []*Seq
	var cancels []uint64
	var due []Emit         // the previous step's tokens, due at its end
	var next time.Duration // absolute end of the previous step: the next start
	scheduled := false     // whether next is a deadline (the engine was busy)
	for {
		e.mu.Lock()
		adds, e.adds = e.adds, adds[:0]
		cancels, e.cancels = e.cancels, cancels[:0]
		e.mu.Unlock()
		now := e.clk.now()
		for _, s := range adds {
			if s.canceled.Load() {
				continue
			}
			// Submit checked the length, so Add cannot fail here.
			if err := sch.AddBlocks(s.id, s.prompt, s.hashes, s.max, now); err != nil {
				s.state.Add(finishedBit)
				continue
			}
			live[s.id] = s
		}
		for _, id := range cancels {
			sch.Cancel(id)
			delete(live, id)
		}

		// Plan the next step first, so it starts on its deadline whatever
		// the delivery of the previous step's tokens costs.
		idle := sch.Idle()
		var r StepResult
		start := now
		if !idle {
			switch {
			case scheduled:
				// On the deadline, even when the clock woke a little early or
				// late: the schedule never drifts.
				start = next
			case len(adds) > 0:
				// Waking from idle: the step starts when the first request's
				// overhead ended, not when its timer fired and the loop woke
				// (both late by up to a millisecond), but never before the
				// last step ended.
				start = max(min(firstDue(adds), now), next)
			}
			r = sch.Step(start)
			st := sch.Stats()
			e.mu.Lock()
			if scheduled {
				late := e.clk.now() - start
				e.overrun.Steps++
				e.lateSum += late
				e.stepSum += r.Duration
				e.wakeSum += e.wakeLate
				e.overrun.MaxLateness = max(e.overrun.MaxLateness, late)
			}
			e.stats, e.waiting, e.running = st, st.Waiting, st.Running
			e.mu.Unlock()
		}

		// Deliver the previous step's tokens (due at next).
		if len(due) > 0 {
			deliver(live, due)
			if scheduled {
				late := e.clk.now() - next
				e.mu.Lock()
				e.deliverSum += late
				e.deliverN++
				e.mu.Unlock()
			}
		}
		due = append(due[:0], r.Tokens...)

		if idle {
			scheduled = false
			e.mu.Lock()
			e.stats = sch.Stats()
			e.waiting, e.running = e.stats.Waiting, e.stats.Running
			e.mu.Unlock()
			select {
			case <-e.wake:
				continue
			case <-e.done:
				return
			}
		}
		next = start + r.Duration
		scheduled = true
		e.clk.sleepUntil(next, e.done)
		e.wakeLate = max(0, e.clk.now()-next)
		select {
		case <-e.done:
			return
		default:
		}
	}
}

// firstDue is the earliest time at which one of adds finished its overhead.
func firstDue(adds []*Seq) time.Duration {
	d := adds[0].due
	for _, s := range adds[1:] {
		d = min(d, s.due)
	}
	return d
}

// deliver hands a step's tokens to their readers: one atomic add (count and
// finished flag together) and one non-blocking notify per sequence.
func deliver(live map[uint64]*Seq, tokens []Emit) {
	for _, t := range tokens {
		s := live[t.ID]
		if s == nil {
			continue // cancelled
		}
		if t.First {
			s.cached.Store(int64(t.CachedTokens))
		}
		v := uint64(t.N)
		if t.Last {
			v |= finishedBit
			delete(live, t.ID)
		}
		s.state.Add(v)
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}
