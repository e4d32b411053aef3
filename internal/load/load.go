package load

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/inferbench/inferbench/internal/record"
)

// DoFunc runs one request. It must stamp rec.Sent, rec.Chunks and rec.Done
// (offsets from the run's Epoch: give the client the same epoch), set rec.Error on failure — record.Canceled
// when ctx ended it — and return promptly once ctx is done.
type DoFunc func(ctx context.Context, rec *record.Record)

// Config configures a closed-loop run. The zero value of every optional field
// is a documented default.
type Config struct {
	// Concurrency is the number of requests kept in flight (C). Required, ≥ 1.
	Concurrency int
	// Warmup is the number of unmeasured requests each slot runs before the
	// measured phase. 0 means none: measured requests then start on an
	// engine that has not reached steady state, and Stagger only delays the
	// start (every slot is free at once when the ramp-up ends). Use ≥ 1.
	Warmup int
	// Stagger spreads the slots' first requests: slot i starts at i/C·Stagger.
	// A good value is one request's end-to-end latency (from a probe). 0 starts
	// all slots at once.
	Stagger time.Duration
	// FirstSeq is the seq of the run's first request (see the package doc).
	FirstSeq int
	// Epoch is the instant record offsets are measured from; the zero value
	// means the moment Start is called. The client must use the same epoch.
	Epoch time.Time
	// Now reads the clock; nil means time.Now. Tests inject a fake clock.
	Now func() time.Time
	// Sleep waits for d or until ctx is done, returning ctx.Err() in the
	// latter case; nil means a real timer. Used only for the stagger.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnRecord, if set, is called with every record as its request ends
	// (from the slot's goroutine, so concurrently), before Finish returns:
	// the caller saves each record as it is complete instead of encoding
	// a whole sample at the end. It must not keep rec.
	OnRecord func(rec *record.Record)
}

// Result is what a finished run produced.
type Result struct {
	// Records holds every request of every phase, in Seq order. Failed
	// requests are included: they are counted, never dropped.
	Records []record.Record
	// Window is the measured window (see Window).
	Window Window
	// RampedUp is when the last slot started its first request (offset
	// from the epoch; 0 if not every slot started): the earliest instant
	// the window may start. Persisted with the records, it lets the window
	// be recomputed from them exactly (MeasuredWindow).
	RampedUp time.Duration
	// Dispatched is the number of measured requests handed out.
	Dispatched int
	// NextSeq is one past the highest seq this run handed out (warm-ups
	// included, whether or not they ran): the next run's FirstSeq.
	NextSeq int
	// Err is non-nil when the run's context ended before every measured
	// request finished: the records are kept, interrupted ones are Canceled.
	Err error
}

// ErrFinished is returned by Dispatch after Finish.
var ErrFinished = errors.New("load: Dispatch after Finish")

// job is one request handed to a slot.
type job struct {
	seq      int
	phase    record.Phase
	intended time.Time
}

// Run is a closed-loop run in progress. Dispatch and Finish must be called
// from a single goroutine (the benchmark's).
type Run struct {
	cfg   Config
	do    DoFunc
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
	epoch time.Time

	ctx    context.Context // the parent's: ends everything, measured included
	tail   context.Context // for warm-up and cooldown requests; cancelled by Finish
	cancel context.CancelFunc

	free chan freeSlot // slots that are idle and waiting for a job
	jobs []chan job    // one per slot, capacity 1
	wg   sync.WaitGroup

	mu          sync.Mutex
	records     []record.Record
	outstanding int           // measured requests dispatched and not yet ended
	started     int           // slots that have started their first request
	rampedUp    time.Time     // when the last slot started its first request
	ramped      chan struct{} // closed at rampedUp

	nextSeq    int
	dispatched int
	finished   bool
	result     Result
}

type freeSlot struct {
	slot int
	at   time.Time
}

// Start validates cfg, launches cfg.Concurrency slots and returns the run.
// Every request's context derives from ctx: cancelling it ends the run
// promptly. do must be safe for concurrent use.
func Start(ctx context.Context, cfg Config, do DoFunc) (*Run, error) {
	switch {
	case cfg.Concurrency < 1:
		return nil, fmt.Errorf("load: concurrency %d: must be at least 1", cfg.Concurrency)
	case cfg.Warmup < 0:
		return nil, fmt.Errorf("load: warmup %d: must not be negative", cfg.Warmup)
	case cfg.Stagger < 0:
		return nil, fmt.Errorf("load: stagger %v: must not be negative", cfg.Stagger)
	case do == nil:
		return nil, errors.New("load: nil request function")
	}
	r := &Run{cfg: cfg, do: do, ctx: ctx}
	r.now, r.sleep, _, r.epoch = clocks(cfg.Now, cfg.Sleep, cfg.Epoch)
	r.tail, r.cancel = context.WithCancel(ctx)
	c := cfg.Concurrency
	r.free = make(chan freeSlot, c)
	r.ramped = make(chan struct{})
	r.jobs = make([]chan job, c)
	r.nextSeq = cfg.FirstSeq + c*cfg.Warmup
	for i := range c {
		r.jobs[i] = make(chan job, 1)
	}
	r.wg.Add(c)
	for i := range c {
		go r.slot(i)
	}
	return r, nil
}

// Epoch is the instant every record offset is measured from.
func (r *Run) Epoch() time.Time { return r.epoch }

// slot runs slot i: stagger, warm-ups, then jobs until its channel closes.
func (r *Run) slot(i int) {
	defer r.wg.Done()
	c := r.cfg.Concurrency
	if off := r.cfg.Stagger * time.Duration(i) / time.Duration(c); off > 0 {
		if r.sleep(r.tail, off) != nil {
			r.idle(i) // never started; the run is ending
			return
		}
	}
	at := r.now()
	r.mu.Lock()
	r.started++
	if r.started == c {
		r.rampedUp = at
		close(r.ramped)
	}
	r.mu.Unlock()
	for j := 0; j < r.cfg.Warmup && r.tail.Err() == nil; j++ {
		at = r.exec(job{seq: r.cfg.FirstSeq + j*c + i, phase: record.Warmup, intended: at})
	}
	for {
		r.free <- freeSlot{slot: i, at: at}
		jb, ok := <-r.jobs[i]
		if !ok {
			return
		}
		at = r.exec(jb)
	}
}

// idle parks slot i until Finish closes its job channel, handing back any
// job it is given unrun (possible only while the run is being cancelled).
func (r *Run) idle(i int) {
	for range r.jobs[i] {
	}
}

// exec runs one request and files its record; it returns when the slot became
// free again.
func (r *Run) exec(jb job) time.Time {
	ctx := r.tail
	if jb.phase == record.Measured {
		ctx = r.ctx
	}
	rec := execOne(ctx, r.do, r.now, r.epoch, record.Record{
		Concurrency: r.cfg.Concurrency,
		Seq:         jb.seq,
		Phase:       jb.phase,
		Intended:    jb.intended.Sub(r.epoch),
	})
	if r.cfg.OnRecord != nil {
		r.cfg.OnRecord(&rec)
	}
	r.mu.Lock()
	r.records = append(r.records, rec)
	if jb.phase == record.Measured {
		r.outstanding--
	}
	r.mu.Unlock()
	return r.epoch.Add(rec.Done)
}

// execOne runs do on rec and makes sure the record is complete: Done is
// stamped if do left it zero, and a request that returned because ctx ended
// without reporting it (no error and no finish reason) is marked Canceled.
func execOne(ctx context.Context, do DoFunc, now func() time.Time, epoch time.Time, rec record.Record) record.Record {
	do(ctx, &rec)
	if ctx.Err() != nil && rec.Error == record.OK && rec.FinishReason == "" {
		rec.Error = record.Canceled
	}
	if rec.Done == 0 {
		rec.Done = now().Sub(epoch)
	}
	return rec
}

// Dispatch starts the next measured request on the next free slot, blocking
// until one is free. The first Dispatch also waits until every slot has
// started its first request, so no measured request runs during the ramp-up.
// It returns an error, and starts nothing, when the run's context is done or
// Finish was called; a benchmark loop should then stop dispatching.
func (r *Run) Dispatch() error {
	if r.finished {
		return ErrFinished
	}
	if err := r.ctx.Err(); err != nil {
		return fmt.Errorf("load: dispatch: %w", err)
	}
	select { // the measured phase starts once every slot has started
	case <-r.ramped:
	case <-r.ctx.Done():
		return fmt.Errorf("load: dispatch: %w", r.ctx.Err())
	}
	called := r.now()
	select {
	case fs := <-r.free:
		if err := r.ctx.Err(); err != nil { // both were ready: the end wins
			r.free <- fs
			return fmt.Errorf("load: dispatch: %w", err)
		}
		r.mu.Lock()
		r.outstanding++
		r.mu.Unlock()
		r.jobs[fs.slot] <- job{seq: r.nextSeq, phase: record.Measured, intended: later(fs.at, called)}
		r.nextSeq++
		r.dispatched++
		return nil
	case <-r.ctx.Done():
		return fmt.Errorf("load: dispatch: %w", r.ctx.Err())
	}
}

// Finish holds the concurrency with cooldown requests until every measured
// request has ended, then cancels the rest, waits for every goroutine and
// returns the result. Calling it again returns the same result.
func (r *Run) Finish() Result {
	if r.finished {
		return r.result
	}
	r.finished = true
	called := r.now()
	for r.pending() > 0 {
		select {
		case fs := <-r.free:
			if r.pending() == 0 || r.ctx.Err() != nil {
				r.free <- fs // keep it parked; it is released below
				break
			}
			r.jobs[fs.slot] <- job{seq: r.nextSeq, phase: record.Cooldown, intended: later(fs.at, called)}
			r.nextSeq++
		case <-r.ctx.Done():
		}
		if r.ctx.Err() != nil {
			break
		}
	}
	r.cancel()
	for _, ch := range r.jobs {
		close(ch)
	}
	r.wg.Wait()

	res := Result{Dispatched: r.dispatched, NextSeq: r.nextSeq, Err: r.ctx.Err()}
	if res.Err != nil {
		res.Err = fmt.Errorf("load: run interrupted: %w", res.Err)
	}
	res.Records = r.records
	slices.SortFunc(res.Records, func(a, b record.Record) int { return a.Seq - b.Seq })
	var ramped time.Duration
	if !r.rampedUp.IsZero() {
		ramped = r.rampedUp.Sub(r.epoch)
	}
	res.RampedUp = ramped
	res.Window = measuredWindow(res.Records, ramped)
	r.result = res
	return res
}

// pending is the number of measured requests still in flight.
func (r *Run) pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outstanding
}

// MeasuredWindow is the window Finish computes from a run's records and
// its RampedUp: first measured Sent (or notBefore, if later) → last measured
// Done; the zero Window when nothing was measured. It is exported so that
// results recomputed from saved records use the very same rule.
func MeasuredWindow(recs []record.Record, notBefore time.Duration) Window {
	return measuredWindow(recs, notBefore)
}

// measuredWindow is first measured Sent (or notBefore, if later) → last
// measured Done; the zero Window when nothing was measured.
func measuredWindow(recs []record.Record, notBefore time.Duration) Window {
	var w Window
	seen := false
	for _, rec := range recs {
		if rec.Phase != record.Measured {
			continue
		}
		if !seen || rec.Sent < w.Start {
			w.Start = rec.Sent
		}
		if !seen || rec.Done > w.End {
			w.End = rec.Done
		}
		seen = true
	}
	if !seen {
		return Window{}
	}
	w.Start = max(w.Start, notBefore)
	w.End = max(w.End, w.Start)
	return w
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// clocks fills in the documented defaults shared by both runners: time.Now,
// a real timer, and an epoch at the start (now) when none was given.
func clocks(now func() time.Time, sleep func(context.Context, time.Duration) error, epoch time.Time) (
	func() time.Time, func(context.Context, time.Duration) error, time.Time, time.Time) {
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = sleepCtx
	}
	start := now()
	if epoch.IsZero() {
		epoch = start
	}
	return now, sleep, start, epoch
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
