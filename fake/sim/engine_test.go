package sim

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/inferbench/inferbench/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a virtual clock whose sleeps wake overshoot late, recording
// every deadline the driver asked for.
type fakeClock struct {
	mu        sync.Mutex
	t         time.Duration
	overshoot time.Duration
	deadlines []time.Duration
}

func (c *fakeClock) now() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) lead() time.Duration { return 0 }

func (c *fakeClock) sleepUntil(t time.Duration, done <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadlines = append(c.deadlines, t)
	if t > c.t {
		c.t = t + c.overshoot
	}
}

// fastConfig is tinyConfig with 1 ms steps, for short real-time tests.
func fastConfig() Config {
	c := tinyConfig()
	c.StepBase, c.PrefillMs, c.PerTokenMs, c.StepPerTokenMs = time.Millisecond, 1, 1, 0.001
	c.KVCapacityTokens = 1 << 20
	return c
}

// drain reads s to the end and returns the tokens seen.
func drain(t *testing.T, s *Seq) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	total := 0
	for {
		n, fin, err := s.Next(ctx)
		require.NoError(t, err)
		total += n
		if fin {
			return total
		}
	}
}

// TestEngineAbsoluteDeadlines checks that a sleeper that always wakes 1 ms
// late does not push later steps back: deadlines stay on the 10 ms grid and
// the lateness is reported, not accumulated.
func TestEngineAbsoluteDeadlines(t *testing.T) {
	clk := &fakeClock{overshoot: time.Millisecond}
	cfg := tinyConfig()
	cfg.KVCapacityTokens = 64
	e, err := newEngine(cfg, clk)
	require.NoError(t, err)
	defer e.Close()
	s, err := e.Submit(1, 20)
	require.NoError(t, err)
	assert.Equal(t, 20, drain(t, s))

	clk.mu.Lock()
	got := append([]time.Duration(nil), clk.deadlines...)
	clk.mu.Unlock()
	require.Len(t, got, 20)
	for i, d := range got {
		assert.Equal(t, time.Duration(i+1)*10*time.Millisecond, d, "deadline %d", i)
	}
	o := e.Overrun()
	assert.Equal(t, uint64(19), o.Steps, "the first step after idle is not measured")
	assert.Equal(t, time.Millisecond, o.MeanLateness)
	assert.Equal(t, time.Millisecond, o.MaxLateness)
	assert.InDelta(t, 0.1, o.MeanFraction, 1e-9)
}

// TestSeqNextPacksTokens checks that a reader that falls behind gets every
// token in one call, and that the end is reported exactly once more.
func TestSeqNextPacksTokens(t *testing.T) {
	e, err := NewEngine(fastConfig())
	require.NoError(t, err)
	defer e.Close()
	s, err := e.Submit(2, 10)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return s.Generated() == 10 }, 10*time.Second, time.Millisecond)
	n, fin, err := s.Next(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 10, n, "all tokens in one call")
	assert.True(t, fin)
	n, fin, err = s.Next(context.Background())
	assert.NoError(t, err)
	assert.Zero(t, n)
	assert.True(t, fin, "finished stays reported")
}

// TestSeqCancelFreesSlot checks that cancelling the only running sequence
// lets a waiting one run, and that the cancelled reader is told so.
func TestSeqCancelFreesSlot(t *testing.T) {
	cfg := fastConfig()
	cfg.MaxNumSeqs, cfg.MaxBatchedTokens = 1, 8
	e, err := NewEngine(cfg)
	require.NoError(t, err)
	defer e.Close()
	a, err := e.Submit(1, 1_000_000)
	require.NoError(t, err)
	b, err := e.Submit(1, 3)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return a.Generated() > 5 }, 10*time.Second, time.Millisecond)
	assert.Zero(t, b.Generated(), "b waits for the only slot")
	a.Cancel()
	a.Cancel() // idempotent
	_, _, err = a.Next(context.Background())
	assert.ErrorIs(t, err, ErrCanceled)
	assert.Equal(t, 3, drain(t, b))
	require.Eventually(t, func() bool {
		st := e.Stats()
		return st.Running == 0 && st.KVUsedTokens == 0
	}, 10*time.Second, time.Millisecond)
	assert.Equal(t, uint64(1), e.Stats().Canceled)
}

// TestEngineCloseUnblocks checks that Close releases readers, including one
// whose request is still in its overhead, and refuses new work.
func TestEngineCloseUnblocks(t *testing.T) {
	cfg := fastConfig()
	cfg.Overhead = time.Hour // never reaches the scheduler
	e, err := NewEngine(cfg)
	require.NoError(t, err)
	s, err := e.Submit(1, 5)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, _, err := s.Next(context.Background())
		errc <- err
	}()
	e.Close()
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Next still blocked after Close")
	}
	_, err = e.Submit(1, 1)
	assert.ErrorIs(t, err, ErrClosed)
	e.Close() // idempotent
}

// TestSeqNextContext checks that Next returns the context's error.
func TestSeqNextContext(t *testing.T) {
	cfg := fastConfig()
	cfg.Overhead = time.Hour
	e, err := NewEngine(cfg)
	require.NoError(t, err)
	defer e.Close()
	s, err := e.Submit(1, 5)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	_, _, err = s.Next(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	s.Cancel() // stops its overhead timer
}

// TestEngineSubmitErrors checks the refusals: queue full (MaxWaiting),
// a request larger than the KV cache, and a negative prompt.
func TestEngineSubmitErrors(t *testing.T) {
	cfg := fastConfig()
	cfg.MaxNumSeqs, cfg.MaxBatchedTokens, cfg.MaxWaiting = 1, 8, 1
	cfg.KVCapacityTokens = 1024
	// Steps of a second: the running request must still run when the
	// second waiter comes. With 1 ms steps its 1000 tokens took about a
	// second, and once a CI run sharing the cores with a 1,024-stream
	// benchmark starved this goroutine that long, the waiter was let in.
	cfg.StepBase = time.Second
	e, err := NewEngine(cfg)
	require.NoError(t, err)
	defer e.Close()
	a, err := e.Submit(1, 1000)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return e.Stats().Running == 1 }, 10*time.Second, time.Millisecond)
	b, err := e.Submit(1, 1) // waits: 1 allowed
	require.NoError(t, err)
	_, err = e.Submit(1, 1) // a second waiter
	assert.ErrorIs(t, err, ErrQueueFull)
	a.Cancel()
	b.Cancel()

	_, err = e.Submit(1000, 1000)
	assert.ErrorIs(t, err, ErrTooLong)
	assert.ErrorContains(t, err, "1000 prompt + 1000 output tokens")
	_, err = e.Submit(-1, 1)
	assert.ErrorContains(t, err, "prompt tokens -1")

	_, err = NewEngine(Config{})
	assert.Error(t, err, "an invalid config is refused")
}

// TestEngineManyReaders runs concurrent readers against one engine (for the
// race detector) and checks every token arrives and the counters agree.
func TestEngineManyReaders(t *testing.T) {
	cfg := fastConfig()
	cfg.MaxNumSeqs, cfg.MaxBatchedTokens = 64, 256
	e, err := NewEngine(cfg)
	require.NoError(t, err)
	defer e.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := e.Submit(3, 20)
			if !assert.NoError(t, err) {
				return
			}
			n := drain(t, s)
			mu.Lock()
			total += n
			mu.Unlock()
			_ = e.Stats()
			_ = e.Overrun()
		}()
	}
	wg.Wait()
	assert.Equal(t, 50*20, total)
	require.Eventually(t, func() bool { return e.Stats().Finished == 50 }, 10*time.Second, time.Millisecond)
	st := e.Stats()
	assert.Equal(t, uint64(1000), st.GenerationTokensTotal)
	assert.Equal(t, uint64(150), st.PromptTokensTotal)

	// An idle engine does not step.
	steps := st.Steps
	time.Sleep(20 * time.Millisecond)
	assert.Equal(t, steps, e.Stats().Steps)
	assert.False(t, errors.Is(nil, ErrClosed))
}

// TestTimingEngineIdle checks, in real time with generous bounds,
// that a lone request on the friendli-like engine sees TTFT ≈ 30 ms
// (28 ms overhead + a 2 ms prefill step) and ITL ≈ 2 ms.
func TestTimingEngineIdle(t *testing.T) {
	testenv.Timing(t)
	cfg, err := Preset("friendli-like")
	require.NoError(t, err)
	e, err := NewEngine(cfg)
	require.NoError(t, err)
	defer e.Close()
	t0 := time.Now()
	s, err := e.Submit(64, 50)
	require.NoError(t, err)
	ctx := context.Background()
	n, _, err := s.Next(ctx)
	require.NoError(t, err)
	ttft := time.Since(t0)
	t1 := time.Now()
	total := n
	for total < 50 {
		k, _, err := s.Next(ctx)
		require.NoError(t, err)
		total += k
	}
	itl := time.Since(t1) / 49
	t.Logf("TTFT %v ITL %v overrun %+v", ttft, itl, e.Overrun())
	assert.GreaterOrEqual(t, ttft, 30*time.Millisecond, "never faster than the model")
	assert.Less(t, ttft, 80*time.Millisecond)
	assert.GreaterOrEqual(t, itl, 1900*time.Microsecond, "absolute deadlines: never faster than the model")
	assert.Less(t, itl, 4*time.Millisecond, "no accumulated drift")
}
