package load

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/record"
)

// TestOpenScripted: 10 req/s, cap 1, one warm-up. The measured request is due
// at 100 ms but the cap holds it until the warm-up ends at 130 ms: Intended
// stays 100 ms (the schedule), Sent is 130 ms, so the 30 ms of coordinated
// omission is visible. Finish keeps the schedule with a cooldown that is
// cancelled once the measured request ends.
func TestOpenScripted(t *testing.T) {
	clk := newFakeClock()
	eng := newScripted(clk)
	ms := time.Millisecond
	run, err := StartOpen(t.Context(), OpenConfig{Pacer: ConstantPacer{Freq: 10, Per: time.Second}, MaxConcurrency: 1, Warmup: 1, Now: clk.Now, Sleep: clk.Sleep}, eng.do)
	require.NoError(t, err)
	w0 := eng.next(t) // due at 0

	dispatched := make(chan error, 1)
	go func() { dispatched <- run.Dispatch() }()
	require.Eventually(t, func() bool { return clk.sleeping() == 1 }, 10*time.Second, time.Millisecond)
	clk.set(100 * ms) // due, but the cap is taken by the warm-up
	clk.set(130 * ms)
	close(w0.release)
	m := eng.next(t)
	require.NoError(t, <-dispatched)
	assert.Equal(t, 100*ms, m.rec.Intended)
	assert.Equal(t, 130*ms, m.rec.Sent)

	finished := make(chan Result, 1)
	go func() { finished <- run.Finish() }()
	require.Eventually(t, func() bool { return clk.sleeping() == 1 }, 10*time.Second, time.Millisecond)
	clk.set(200 * ms) // the cooldown is due; the cap is taken by the measured request
	clk.set(210 * ms)
	close(m.release)
	res := <-finished

	require.NoError(t, res.Err)
	require.Len(t, res.Records, 2, "the cooldown never started: the measured request had ended")
	assert.Equal(t, record.Warmup, res.Records[0].Phase)
	assert.Equal(t, record.Measured, res.Records[1].Phase)
	assert.Equal(t, 1, res.Records[1].Seq)
	assert.Equal(t, 1, res.Records[1].Concurrency)
	assert.Equal(t, Window{Start: 130 * ms, End: 210 * ms}, res.Window)
	assert.ErrorIs(t, run.Dispatch(), ErrFinished)
}

// TestOpenCatchesUp: a late sender does not shift the schedule; requests due
// in the past go at once with their scheduled Intended, and the cooldown
// phase keeps the rate while the last measured request runs.
func TestOpenCatchesUp(t *testing.T) {
	clk := newFakeClock()
	eng := newScripted(clk)
	ms := time.Millisecond
	run, err := StartOpen(t.Context(), OpenConfig{Pacer: ConstantPacer{Freq: 100, Per: time.Second}, MaxConcurrency: 10, Now: clk.Now, Sleep: clk.Sleep}, eng.do)
	require.NoError(t, err)
	clk.set(35 * ms) // requests 0..3 are due at 0, 10, 20, 30
	var calls []*call
	for range 4 {
		require.NoError(t, run.Dispatch())
		calls = append(calls, eng.next(t))
	}
	for i, c := range calls {
		assert.Equal(t, time.Duration(i)*10*ms, c.rec.Intended)
		assert.Equal(t, 35*ms, c.rec.Sent)
	}
	for _, c := range calls[:3] {
		close(c.release)
	}
	finished := make(chan Result, 1)
	go func() { finished <- run.Finish() }()
	for _, at := range []time.Duration{40, 50} { // two cooldowns on schedule
		require.Eventually(t, func() bool { return clk.sleeping() == 1 }, 10*time.Second, time.Millisecond)
		clk.set(at * ms)
		cd := eng.next(t)
		assert.Equal(t, record.Cooldown, cd.rec.Phase)
		assert.Equal(t, at*ms, cd.rec.Intended)
	}
	close(calls[3].release)
	res := <-finished
	require.Len(t, res.Records, 6)
	assert.Equal(t, record.Canceled, res.Records[4].Error)
	assert.Equal(t, record.Canceled, res.Records[5].Error)
	assert.Equal(t, 4, res.Dispatched)
}

// TestOpenStopsAndCancels: a stopping pacer ends Dispatch with
// ErrScheduleEnded; cancelling the context interrupts the run.
func TestOpenStopsAndCancels(t *testing.T) {
	three := PacerFunc(func(_ time.Duration, n uint64) (time.Duration, bool) { return 0, n >= 3 })
	do := func(context.Context, *record.Record) {}
	run, err := StartOpen(t.Context(), OpenConfig{Pacer: three, MaxConcurrency: 2, Warmup: 1}, do)
	require.NoError(t, err)
	require.NoError(t, run.Dispatch())
	require.NoError(t, run.Dispatch())
	require.ErrorIs(t, run.Dispatch(), ErrScheduleEnded)
	res := run.Finish()
	assert.Len(t, res.Records, 3)
	assert.Equal(t, 2, res.Dispatched)

	ctx, cancel := context.WithCancel(t.Context())
	block := func(ctx context.Context, rec *record.Record) { <-ctx.Done() }
	run, err = StartOpen(ctx, OpenConfig{Pacer: ConstantPacer{Freq: 1000, Per: time.Second}, MaxConcurrency: 1}, block)
	require.NoError(t, err)
	require.NoError(t, run.Dispatch())
	go cancel()
	require.ErrorIs(t, run.Dispatch(), context.Canceled) // the cap is taken until cancel
	res = run.Finish()
	require.ErrorIs(t, res.Err, context.Canceled)
	require.Len(t, res.Records, 1)
	assert.Equal(t, record.Canceled, res.Records[0].Error)
}

func TestStartOpenValidates(t *testing.T) {
	nop := func(context.Context, *record.Record) {}
	p := ConstantPacer{Freq: 1, Per: time.Second}
	tests := []struct {
		name string
		cfg  OpenConfig
		want string
	}{
		{"no pacer", OpenConfig{MaxConcurrency: 1}, "nil pacer"},                              // no schedule
		{"no cap", OpenConfig{Pacer: p}, "max concurrency 0"},                                 // uncapped is refused
		{"negative warmup", OpenConfig{Pacer: p, MaxConcurrency: 1, Warmup: -1}, "warmup -1"}, // counts are ≥ 0
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := StartOpen(t.Context(), tt.cfg, nop)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := StartOpen(t.Context(), OpenConfig{Pacer: p, MaxConcurrency: 1}, nil)
	require.ErrorContains(t, err, "nil request function")
}

// TestOpenFirstSeq: seqs run on from FirstSeq across warm-up and measured
// requests, and NextSeq is one past the last request sent, so a run of
// samples never repeats a seq (on the old code every sample started at 0).
func TestOpenFirstSeq(t *testing.T) {
	three := PacerFunc(func(_ time.Duration, n uint64) (time.Duration, bool) { return 0, n >= 3 })
	do := func(context.Context, *record.Record) {}
	run, err := StartOpen(t.Context(), OpenConfig{Pacer: three, MaxConcurrency: 2, Warmup: 1, FirstSeq: 100}, do)
	require.NoError(t, err)
	require.NoError(t, run.Dispatch())
	require.NoError(t, run.Dispatch())
	res := run.Finish()
	require.Len(t, res.Records, 3)
	for i, r := range res.Records {
		assert.Equal(t, 100+i, r.Seq)
	}
	assert.Equal(t, 103, res.NextSeq)
}
