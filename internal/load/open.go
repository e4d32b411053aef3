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

// OpenConfig configures an open-loop run: requests are sent when the
// schedule says, not when a slot frees up, up to a concurrency cap.
type OpenConfig struct {
	// Pacer is the arrival schedule, starting at StartOpen. Required.
	Pacer Pacer
	// MaxConcurrency caps the requests in flight. Required, ≥ 1: an
	// uncapped open loop against a saturated engine only piles up
	// goroutines. A request due while the cap is reached waits; its Intended
	// stays the scheduled instant, so the wait shows as Sent − Intended
	// (coordinated omission is reported, not hidden).
	MaxConcurrency int
	// Warmup is the number of scheduled requests sent, unmeasured, before
	// the measured phase; they follow the same schedule.
	Warmup int
	// FirstSeq is the seq of the run's first request: the n-th scheduled
	// request (0-based, warm-ups included) has seq FirstSeq+n, so a caller
	// running several samples numbers every request of a run once, as with
	// Config.FirstSeq. Result.NextSeq is one past the last one sent.
	FirstSeq int
	// Epoch, Now and Sleep are as in Config.
	Epoch time.Time
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// ErrScheduleEnded is returned by OpenRun.Dispatch when the pacer stops.
var ErrScheduleEnded = errors.New("load: the pacer's schedule ended")

// OpenRun is an open-loop run in progress. Dispatch and Finish must be
// called from a single goroutine.
type OpenRun struct {
	cfg   OpenConfig
	do    DoFunc
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
	epoch time.Time
	start time.Time // the schedule's origin

	ctx         context.Context
	tail        context.Context // warm-up and cooldown requests
	cancelTail  context.CancelFunc
	drain       context.Context // cancelled once Finish has seen every measured request end
	cancelDrain context.CancelFunc

	sem       chan struct{}
	warmDone  chan struct{}
	warmErr   error
	wg        sync.WaitGroup
	sent      uint64 // scheduled requests issued (the Pacer's "sent")
	finishing bool

	mu          sync.Mutex
	records     []record.Record
	outstanding int
	draining    bool

	dispatched int
	finished   bool
	result     Result
}

// StartOpen validates cfg, starts the warm-up along the schedule and returns
// the run. Each Dispatch then waits for the next scheduled instant and sends
// one measured request. Records carry Concurrency = MaxConcurrency.
func StartOpen(ctx context.Context, cfg OpenConfig, do DoFunc) (*OpenRun, error) {
	switch {
	case cfg.Pacer == nil:
		return nil, errors.New("load: open loop: nil pacer")
	case cfg.MaxConcurrency < 1:
		return nil, fmt.Errorf("load: open loop: max concurrency %d: must be at least 1", cfg.MaxConcurrency)
	case cfg.Warmup < 0:
		return nil, fmt.Errorf("load: open loop: warmup %d: must not be negative", cfg.Warmup)
	case do == nil:
		return nil, errors.New("load: open loop: nil request function")
	}
	r := &OpenRun{cfg: cfg, do: do, ctx: ctx}
	r.now, r.sleep, r.start, r.epoch = clocks(cfg.Now, cfg.Sleep, cfg.Epoch)
	r.tail, r.cancelTail = context.WithCancel(ctx)
	r.drain, r.cancelDrain = context.WithCancel(ctx)
	r.sem = make(chan struct{}, cfg.MaxConcurrency)
	r.warmDone = make(chan struct{})
	go func() {
		defer close(r.warmDone)
		for range cfg.Warmup {
			if err := r.issue(r.tail, record.Warmup); err != nil {
				r.warmErr = err
				return
			}
		}
	}()
	return r, nil
}

// Epoch is the instant every record offset is measured from.
func (r *OpenRun) Epoch() time.Time { return r.epoch }

// issue waits for the next scheduled instant and a free place under the cap
// (or for wait to end), then starts the request in its own goroutine.
func (r *OpenRun) issue(wait context.Context, phase record.Phase) error {
	n := r.sent
	before := r.now()
	pause, stop := r.cfg.Pacer.Pace(before.Sub(r.start), n)
	if stop {
		return ErrScheduleEnded
	}
	intended := before.Add(pause)
	if s, ok := r.cfg.Pacer.(Scheduler); ok {
		intended = r.start.Add(s.Due(n))
	}
	if pause > 0 {
		if err := r.sleep(wait, pause); err != nil {
			return err
		}
	}
	select {
	case r.sem <- struct{}{}:
	case <-wait.Done():
		return wait.Err()
	}
	if err := wait.Err(); err != nil { // both were ready: the end wins
		<-r.sem
		return err
	}
	r.sent++
	ctx := r.tail
	if phase == record.Measured {
		ctx = r.ctx
		r.mu.Lock()
		r.outstanding++
		r.mu.Unlock()
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		rec := execOne(ctx, r.do, r.now, r.epoch, record.Record{
			Concurrency: r.cfg.MaxConcurrency, Seq: r.cfg.FirstSeq + int(n), Phase: phase, Intended: intended.Sub(r.epoch),
		})
		r.mu.Lock()
		r.records = append(r.records, rec)
		if phase == record.Measured {
			r.outstanding--
			if r.draining && r.outstanding == 0 {
				r.cancelDrain() // before the cap is released below
			}
		}
		r.mu.Unlock()
		<-r.sem
	}()
	return nil
}

// Dispatch waits for the warm-up to be issued, then for the next scheduled
// instant, and sends one measured request. It fails when the context is
// done, the pacer stops, or after Finish.
func (r *OpenRun) Dispatch() error {
	if r.finished {
		return ErrFinished
	}
	select {
	case <-r.warmDone:
	case <-r.ctx.Done():
		return fmt.Errorf("load: dispatch: %w", r.ctx.Err())
	}
	if r.warmErr != nil {
		return fmt.Errorf("load: warm-up: %w", r.warmErr)
	}
	if err := r.issue(r.ctx, record.Measured); err != nil {
		return fmt.Errorf("load: dispatch: %w", err)
	}
	r.dispatched++
	return nil
}

// Finish keeps the schedule going with cooldown requests until every
// measured request has ended, then cancels the rest, waits for every
// goroutine and returns the result. Calling it again returns the same result.
func (r *OpenRun) Finish() Result {
	if r.finished {
		return r.result
	}
	r.finished = true
	if r.dispatched == 0 {
		r.cancelTail() // nothing measured: the warm-up has no purpose left
	}
	<-r.warmDone
	r.mu.Lock()
	r.draining = true
	if r.outstanding == 0 {
		r.cancelDrain()
	}
	r.mu.Unlock()
	for r.drain.Err() == nil {
		if r.issue(r.drain, record.Cooldown) != nil {
			break
		}
	}
	// The pacer may have stopped while measured requests still run: wait.
	<-r.drain.Done()
	r.cancelTail()
	<-r.warmDone
	r.wg.Wait()
	r.cancelDrain()

	res := Result{Dispatched: r.dispatched, Records: r.records, NextSeq: r.cfg.FirstSeq + int(r.sent)}
	if err := r.ctx.Err(); err != nil {
		res.Err = fmt.Errorf("load: run interrupted: %w", err)
	}
	slices.SortFunc(res.Records, func(a, b record.Record) int { return a.Seq - b.Seq })
	res.Window = measuredWindow(res.Records, 0)
	r.result = res
	return res
}
