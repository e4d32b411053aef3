package load

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/inferbench/inferbench/internal/record"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a manual clock: time moves only when the test advances it, and
// Sleep blocks until it has been advanced far enough.
type fakeClock struct {
	base     time.Time
	mu       sync.Mutex
	now      time.Duration
	sleepers []sleeper
	slept    []time.Duration
	nowCalls atomic.Int64
}

type sleeper struct {
	at time.Duration
	ch chan struct{}
}

func newFakeClock() *fakeClock { return &fakeClock{base: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.nowCalls.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(c.now)
}

func (c *fakeClock) offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	s := sleeper{at: c.now + d, ch: make(chan struct{})}
	c.sleepers = append(c.sleepers, s)
	c.slept = append(c.slept, d)
	c.mu.Unlock()
	select {
	case <-s.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// set moves the clock to t (offset from base) and wakes due sleepers.
func (c *fakeClock) set(t time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	kept := c.sleepers[:0]
	for _, s := range c.sleepers {
		if s.at <= t {
			close(s.ch)
		} else {
			kept = append(kept, s)
		}
	}
	c.sleepers = kept
}

func (c *fakeClock) sleeping() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sleepers)
}

// call is one in-flight request of the scripted fake engine.
type call struct {
	rec      *record.Record
	inFlight int64 // requests in flight when this one started, itself included
	release  chan struct{}
}

// scripted is a fake request function whose requests end only when the test
// releases them (or their context ends). It logs events in order.
type scripted struct {
	clock    *fakeClock
	started  chan *call
	inFlight atomic.Int64
	maxIn    atomic.Int64
	mu       sync.Mutex
	events   []string
	endIn    map[int]int64 // seq → in flight just before it ended
}

func newScripted(c *fakeClock) *scripted {
	return &scripted{clock: c, started: make(chan *call, 64), endIn: map[int]int64{}}
}

func (s *scripted) log(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, fmt.Sprintf(format, args...))
}

func (s *scripted) do(ctx context.Context, rec *record.Record) {
	n := s.inFlight.Add(1)
	for {
		m := s.maxIn.Load()
		if n <= m || s.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	rec.Sent = s.clock.offset()
	c := &call{rec: rec, inFlight: n, release: make(chan struct{})}
	s.log("start %d", rec.Seq)
	s.started <- c
	select {
	case <-c.release:
		now := s.clock.offset()
		rec.Chunks = []record.Chunk{{At: now, Tokens: 1}}
		rec.OutputTokens, rec.FinishReason = 1, "length"
		rec.Done = now
		s.mu.Lock()
		s.endIn[rec.Seq] = s.inFlight.Load()
		s.mu.Unlock()
		s.log("end %d", rec.Seq)
	case <-ctx.Done():
		rec.Error, rec.Done = record.Canceled, s.clock.offset()
		s.log("cancel %d", rec.Seq)
	}
	s.inFlight.Add(-1)
}

func (s *scripted) next(t *testing.T) *call {
	t.Helper()
	select {
	case c := <-s.started:
		return c
	case <-time.After(10 * time.Second):
		require.FailNow(t, "no request started")
		return nil
	}
}

func (s *scripted) index(ev string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Index(s.events, ev)
}

// waitNowCall waits until the run has read the clock after the given count,
// so the test knows a blocked Dispatch or Finish has taken its call time.
func waitNowCall(t *testing.T, c *fakeClock, after int64) {
	t.Helper()
	require.Eventually(t, func() bool { return c.nowCalls.Load() > after }, 10*time.Second, time.Millisecond)
}

// TestScriptedRun drives a C=2, Warmup=1 run step by step on a fake clock and
// checks every Seq, Phase and Intended, the stagger, the window, that
// concurrency never exceeds C and is held while measured requests run, and
// that cooldowns are cancelled only after every measured request ended.
func TestScriptedRun(t *testing.T) {
	clk := newFakeClock()
	eng := newScripted(clk)
	ms := time.Millisecond
	run, err := Start(t.Context(), Config{Concurrency: 2, Warmup: 1, Stagger: 10 * ms, Now: clk.Now, Sleep: clk.Sleep}, eng.do)
	require.NoError(t, err)
	assert.Equal(t, clk.base, run.Epoch())

	w0 := eng.next(t) // slot 0 starts at once
	assert.Equal(t, record.Warmup, w0.rec.Phase)
	require.Eventually(t, func() bool { return clk.sleeping() == 1 }, 10*time.Second, time.Millisecond)
	clk.set(5 * ms) // slot 1's stagger: 1/2 · 10 ms
	w1 := eng.next(t)

	clk.set(20 * ms)
	close(w0.release) // slot 0 free at 20 ms
	clk.set(25 * ms)
	require.NoError(t, run.Dispatch()) // slot 0 idle since 20: Intended = call time 25
	m0 := eng.next(t)

	before := clk.nowCalls.Load()
	dispatched := make(chan error, 1)
	go func() { dispatched <- run.Dispatch() }() // blocks: both slots busy; call time 25
	waitNowCall(t, clk, before)
	clk.set(30 * ms)
	close(w1.release) // slot 1 free at 30: Intended = 30
	m1 := eng.next(t)
	require.NoError(t, <-dispatched)

	clk.set(32 * ms)
	before = clk.nowCalls.Load()
	finished := make(chan Result, 1)
	go func() { finished <- run.Finish() }() // call time 32
	waitNowCall(t, clk, before)
	clk.set(40 * ms)
	close(m0.release) // slot 0 free at 40 → cooldown, Intended 40
	c0 := eng.next(t)
	assert.Equal(t, record.Cooldown, c0.rec.Phase)
	clk.set(50 * ms)
	close(m1.release) // last measured ends → cooldown cancelled
	res := <-finished

	require.NoError(t, res.Err)
	assert.Equal(t, 2, res.Dispatched)
	type row struct {
		Seq      int
		Phase    record.Phase
		Intended time.Duration
		Error    record.ErrorKind
	}
	var got []row
	for _, r := range res.Records {
		assert.Equal(t, 2, r.Concurrency)
		got = append(got, row{r.Seq, r.Phase, r.Intended, r.Error})
	}
	assert.Equal(t, []row{
		{0, record.Warmup, 0, record.OK},
		{1, record.Warmup, 5 * ms, record.OK},
		{2, record.Measured, 25 * ms, record.OK},
		{3, record.Measured, 30 * ms, record.OK},
		{4, record.Cooldown, 40 * ms, record.Canceled},
	}, got)
	assert.Equal(t, Window{Start: 25 * ms, End: 50 * ms}, res.Window)
	assert.Equal(t, []time.Duration{5 * ms}, clk.slept)
	assert.EqualValues(t, 2, eng.maxIn.Load(), "never more than C in flight")
	for _, c := range []*call{m0, m1} {
		assert.EqualValues(t, 2, c.inFlight, "measured seq %d started at concurrency C", c.rec.Seq)
		assert.EqualValues(t, 2, eng.endIn[c.rec.Seq], "measured seq %d ended at concurrency C", c.rec.Seq)
	}
	assert.Greater(t, eng.index("cancel 4"), eng.index("end 3"), "cooldown cancelled only after the last measured request ended")

	assert.Equal(t, res, run.Finish(), "Finish is idempotent")
	assert.ErrorIs(t, run.Dispatch(), ErrFinished)
}

// TestStaggerOffsets checks slot i starts at i/C·Stagger.
func TestStaggerOffsets(t *testing.T) {
	clk := newFakeClock()
	eng := newScripted(clk)
	run, err := Start(t.Context(), Config{Concurrency: 4, Warmup: 1, Stagger: 100 * time.Millisecond, Now: clk.Now, Sleep: clk.Sleep}, eng.do)
	require.NoError(t, err)
	eng.next(t)
	require.Eventually(t, func() bool { return clk.sleeping() == 3 }, 10*time.Second, time.Millisecond)
	var intended []time.Duration
	for _, at := range []time.Duration{25, 50, 75} {
		clk.set(at * time.Millisecond)
		intended = append(intended, eng.next(t).rec.Intended)
	}
	assert.Equal(t, []time.Duration{25 * time.Millisecond, 50 * time.Millisecond, 75 * time.Millisecond}, intended)
	slept := slices.Clone(clk.slept)
	slices.Sort(slept)
	assert.Equal(t, []time.Duration{25 * time.Millisecond, 50 * time.Millisecond, 75 * time.Millisecond}, slept)
	res := run.Finish() // nothing dispatched: warm-ups are cancelled at once
	assert.Len(t, res.Records, 4)
	assert.Equal(t, Window{}, res.Window)
	for _, r := range res.Records {
		assert.Equal(t, record.Canceled, r.Error)
	}
}

// TestStress runs many short requests on the real clock, with failures, and
// checks the bookkeeping: nothing lost, Seq contiguous, C never exceeded.
func TestStress(t *testing.T) {
	const c, warm, n = 4, 2, 300
	var inFlight, maxIn atomic.Int64
	var calls atomic.Int64
	epoch := time.Now()
	do := func(ctx context.Context, rec *record.Record) {
		k := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := maxIn.Load(); k > m && !maxIn.CompareAndSwap(m, k); m = maxIn.Load() {
		}
		rec.Sent = time.Since(epoch)
		i := calls.Add(1)
		select {
		case <-time.After(time.Duration(rand.IntN(300)) * time.Microsecond):
		case <-ctx.Done():
			rec.Error, rec.Done = record.Canceled, time.Since(epoch)
			return
		}
		if i%7 == 0 {
			rec.Error, rec.Message = record.HTTPStatus, "503"
		} else {
			rec.Chunks = []record.Chunk{{At: time.Since(epoch), Tokens: 1}}
			rec.FinishReason = "length"
		}
		rec.Done = time.Since(epoch)
	}
	run, err := Start(t.Context(), Config{Concurrency: c, Warmup: warm, Stagger: time.Millisecond, Epoch: epoch}, do)
	require.NoError(t, err)
	for range n {
		require.NoError(t, run.Dispatch())
	}
	res := run.Finish()
	require.NoError(t, res.Err)
	assert.Equal(t, n, res.Dispatched)
	assert.LessOrEqual(t, maxIn.Load(), int64(c))
	counts := map[record.Phase]int{}
	var rampEnd time.Duration // the last slot's first request (Seq < C)
	for _, r := range res.Records[:c] {
		rampEnd = max(rampEnd, r.Intended)
	}
	for i, r := range res.Records {
		assert.Equal(t, i, r.Seq, "Seq contiguous and sorted")
		counts[r.Phase]++
		if r.Phase == record.Measured {
			assert.NotEqual(t, record.Canceled, r.Error, "a measured request is never cancelled by Finish")
			assert.GreaterOrEqual(t, r.Seq, c*warm)
			assert.True(t, res.Window.Contains(r.Done))
			assert.GreaterOrEqual(t, r.Intended, rampEnd, "nothing measured during the ramp-up")
		}
		if r.Phase == record.Warmup {
			assert.Less(t, r.Seq, c*warm)
		}
	}
	assert.Equal(t, c*warm, counts[record.Warmup])
	assert.Equal(t, n, counts[record.Measured])
	assert.Equal(t, len(res.Records), int(calls.Load()), "every request has a record")
}

// TestErrorsFreeSlots: with C=1 and a request that fails at once, every
// Dispatch still completes and every failure is recorded.
func TestErrorsFreeSlots(t *testing.T) {
	do := func(ctx context.Context, rec *record.Record) {
		rec.Error, rec.Message = record.Connect, "connection refused" // and no Done: Start stamps it
	}
	run, err := Start(t.Context(), Config{Concurrency: 1}, do)
	require.NoError(t, err)
	for range 10 {
		require.NoError(t, run.Dispatch())
	}
	res := run.Finish()
	require.Len(t, res.Records, 10)
	for _, r := range res.Records {
		assert.Equal(t, record.Connect, r.Error)
		assert.Equal(t, record.Measured, r.Phase)
		assert.Positive(t, r.Done)
	}
}

// TestCancel: cancelling the context ends in-flight measured requests, makes
// Dispatch fail fast and Finish return the records with Err set.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	do := func(ctx context.Context, rec *record.Record) {
		<-ctx.Done() // the client would record Canceled; leave it to Start
	}
	run, err := Start(ctx, Config{Concurrency: 3}, do)
	require.NoError(t, err)
	for range 3 {
		require.NoError(t, run.Dispatch())
	}
	blocked := make(chan error, 1)
	go func() { blocked <- run.Dispatch() }() // all slots busy: blocks until cancel
	cancel()
	select {
	case err := <-blocked:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		require.FailNow(t, "Dispatch did not return after cancel")
	}
	require.ErrorIs(t, run.Dispatch(), context.Canceled)
	res := run.Finish()
	require.ErrorIs(t, res.Err, context.Canceled)
	require.Len(t, res.Records, 3)
	for _, r := range res.Records {
		assert.Equal(t, record.Canceled, r.Error, "seq %d", r.Seq)
	}
}

// TestCancelDuringStagger: a slot still waiting out its stagger exits cleanly.
func TestCancelDuringStagger(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	do := func(ctx context.Context, rec *record.Record) { <-ctx.Done() }
	run, err := Start(ctx, Config{Concurrency: 2, Warmup: 1, Stagger: time.Hour}, do)
	require.NoError(t, err)
	cancel()
	res := run.Finish()
	require.Error(t, res.Err)
	assert.LessOrEqual(t, len(res.Records), 1, "slot 1 never started")
	for _, r := range res.Records {
		assert.Equal(t, record.Canceled, r.Error)
	}
}

func TestStartValidates(t *testing.T) {
	nop := func(context.Context, *record.Record) {}
	tests := []struct {
		name string
		cfg  Config
		do   DoFunc
		want string
	}{
		{"zero concurrency", Config{}, nop, "concurrency 0: must be at least 1"},            // C is required
		{"negative warmup", Config{Concurrency: 1, Warmup: -1}, nop, "warmup -1"},           // counts are ≥ 0
		{"negative stagger", Config{Concurrency: 1, Stagger: -time.Second}, nop, "stagger"}, // durations are ≥ 0
		{"nil function", Config{Concurrency: 1}, nil, "nil request function"},               // nothing to run
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Start(t.Context(), tt.cfg, tt.do)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestOnRecordSeesEveryRecord: OnRecord is called once per request, with
// the record as Finish returns it (complete: Done stamped, cancellations
// marked), before Finish returns, so a caller that saves records as they
// end saves exactly the run's records. Without the call, saved is empty.
func TestOnRecordSeesEveryRecord(t *testing.T) {
	epoch := time.Now()
	do := func(ctx context.Context, rec *record.Record) {
		rec.Sent = time.Since(epoch)
		select {
		case <-time.After(time.Duration(rand.IntN(200)) * time.Microsecond):
			rec.Chunks = []record.Chunk{{At: time.Since(epoch), Tokens: 1}}
			rec.FinishReason = "length"
		case <-ctx.Done(): // a cooldown request cancelled by Finish: execOne marks it
		}
	}
	var mu sync.Mutex
	saved := map[int]record.Record{}
	run, err := Start(t.Context(), Config{Concurrency: 3, Warmup: 1, Epoch: epoch, OnRecord: func(r *record.Record) {
		mu.Lock()
		defer mu.Unlock()
		_, twice := saved[r.Seq]
		assert.False(t, twice, "seq %d saved twice", r.Seq)
		saved[r.Seq] = *r
	}}, do)
	require.NoError(t, err)
	for range 50 {
		require.NoError(t, run.Dispatch())
	}
	res := run.Finish()
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, saved, len(res.Records))
	for _, r := range res.Records {
		assert.Equal(t, r, saved[r.Seq], "seq %d", r.Seq)
		assert.NotZero(t, r.Done)
	}
}
