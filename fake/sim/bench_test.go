package sim

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// capacityConfig is the vllm-like preset opened up for n concurrent
// streams: n running sequences, a budget and a KV cache that hold them.
func capacityConfig(b *testing.B, n int) Config {
	cfg, err := Preset("vllm-like")
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxNumSeqs = n
	cfg.MaxBatchedTokens = cfg.MaxBatchedTokens + 2*n // admit all in a few steps
	cfg.KVCapacityTokens = max(n*2048, 1<<20)
	cfg.Overhead = 0
	return cfg
}

// overrunDelta is the mean lateness over the steps between two snapshots,
// as a fraction of the mean step, and the number of those steps.
func overrunDelta(a, b OverrunStats) (frac, wakeFrac float64, steps uint64, step time.Duration) {
	steps = b.Steps - a.Steps
	if steps == 0 {
		return 0, 0, 0, 0
	}
	wake := b.MeanWake*time.Duration(b.Steps) - a.MeanWake*time.Duration(a.Steps)
	late := b.MeanLateness*time.Duration(b.Steps) - a.MeanLateness*time.Duration(a.Steps)
	sum := b.MeanStep*time.Duration(b.Steps) - a.MeanStep*time.Duration(a.Steps)
	if sum <= 0 {
		return 0, 0, steps, 0
	}
	return float64(late) / float64(sum), float64(wake) / float64(sum), steps, sum / time.Duration(steps)
}

// runStreams starts an engine, submits n long requests each drained by its
// own goroutine calling Next, waits until all run, and measures the step
// overrun over the window. It returns the overrun fraction, the steps
// measured and the mean step.
func runStreams(b *testing.B, cfg Config, n int, window time.Duration) (frac, wakeFrac, deliverFrac float64, steps uint64, step time.Duration) {
	e, err := NewEngine(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range n {
		s, err := e.Submit(1, 100_000) // a 1-token prompt: the ramp costs no prefill time
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := s.Next(ctx); err != nil {
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.Stats().Running < n {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d streams running after 30 s", e.Stats().Running, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(window / 4) // settle
	a := e.Overrun()
	time.Sleep(window)
	z := e.Overrun()
	frac, wakeFrac, steps, step = overrunDelta(a, z)
	if step > 0 {
		deliverFrac = float64(z.MeanDelivery) / float64(step) // whole run; delivery is not windowed
	}
	cancel()
	wg.Wait()
	return frac, wakeFrac, deliverFrac, steps, step
}

// BenchmarkEngineCapacity measures how many concurrent streams the real-time
// driver sustains: the mean lateness of step starts against their absolute
// deadlines, as a fraction of the step (overrun-%; wake-% is the part spent
// waking up late from the sleep, i.e. OS and Go scheduling; delivery-% is
// when the last token of a step reached its reader), with n streams each
// drained by a goroutine calling Next, on the vllm-like preset opened up to
// n running sequences, with no overhead and 1-token prompts so all streams
// start within a few steps. "ladder" reports max-streams, the largest n in
// 1000, 2000, 5000, 10000, 20000 whose overrun stays ≤ 2 % (all are run:
// the step grows with n, so a fixed wake-up delay weighs less at large n).
func BenchmarkEngineCapacity(b *testing.B) {
	const window = 2 * time.Second
	for _, n := range []int{2000, 10000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			for b.Loop() {
				frac, wake, deliver, steps, step := runStreams(b, capacityConfig(b, n), n, window)
				b.ReportMetric(frac*100, "overrun-%")
				b.ReportMetric(wake*100, "wake-%")
				b.ReportMetric(deliver*100, "delivery-%")
				b.ReportMetric(float64(steps), "steps")
				b.ReportMetric(float64(step)/1e6, "step-ms")
			}
		})
	}
	b.Run("ladder", func(b *testing.B) {
		for b.Loop() {
			best := 0
			for _, n := range []int{1000, 2000, 5000, 10000, 20000} {
				frac, wake, deliver, _, _ := runStreams(b, capacityConfig(b, n), n, window)
				b.Logf("streams=%d overrun %.2f%% (waking up: %.2f%%), tokens handed over %.2f%% of a step late", n, frac*100, wake*100, deliver*100)
				if frac <= 0.02 {
					best = n // not monotone: longer steps at larger n hide the same wake-up jitter
				}
			}
			b.ReportMetric(float64(best), "max-streams")
		}
	})
}

// BenchmarkSchedulerStep measures the scheduler's own cost per step with a
// full batch of decodes (no clock, no delivery).
func BenchmarkSchedulerStep(b *testing.B) {
	for _, n := range []int{256, 10000} {
		b.Run(fmt.Sprintf("running=%d", n), func(b *testing.B) {
			cfg := capacityConfig(b, n)
			cfg.KVCapacityTokens = 1 << 50 // never full, never finished: every step decodes n
			s := NewScheduler(cfg)
			for i := range n {
				if err := s.Add(uint64(i+1), 64, 1<<40, 0); err != nil {
					b.Fatal(err)
				}
			}
			var now time.Duration
			for i := 0; ; i++ { // admit and prefill everyone first
				r := s.Step(now)
				now += r.Duration
				if r.Decodes == n {
					break
				}
				if i > 10000 {
					b.Fatalf("only %d of %d decoding", r.Decodes, n)
				}
			}
			for b.Loop() {
				r := s.Step(now)
				if r.Decodes != n {
					b.Fatalf("step decoded %d of %d", r.Decodes, n)
				}
				now += r.Duration
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/seq")
		})
	}
}
