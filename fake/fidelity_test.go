package fake

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/fake/sim"
	"github.com/inferbench/inferbench/internal/testenv"
)

// This file holds an independent streaming client (plain net/http and
// bufio line reading; nothing from engines/) that drives a closed loop
// against an in-process server and compares what it measures with
// sim.Predict.

// levelResult is what one closed-loop level measured.
//
//   - TokPerSec: content tokens whose chunk arrived inside the measurement
//     window, divided by the window (client clock).
//   - TTFT: mean, over requests sent inside the window and completed,
//     of send → first content chunk.
//   - ITL: mean over the same requests of (last chunk − first chunk) /
//     (tokens − 1), i.e. the mean gap between tokens.
type levelResult struct {
	TokPerSec float64
	TTFT, ITL time.Duration
	Requests  int // requests averaged for TTFT and ITL
	Errors    int // non-200 answers, broken streams, wrong lengths
	// Late is the engine's mean step-start lateness as a fraction of a
	// step (sim.Engine.Overrun.MeanFraction), logged to help explain a
	// miss on a loaded machine.
	Late float64
}

// fidelityPrompt is a chat prompt whose estimate is exactly 64 tokens (the
// presets' DefaultPromptTokens): 3 + 4 + ceil(228/4).
var fidelityPrompt = strings.Repeat("word ", 45) + "abc"

// closedLoop runs c clients, each sending its next streaming request as soon
// as the previous one ended, with starts staggered over stagger. Tokens
// arriving in [warm, warm+window) and requests sent in it are measured.
func closedLoop(t testing.TB, url string, c, outTokens int, stagger, warm, window time.Duration) levelResult {
	t.Helper()
	body := []byte(fmt.Sprintf(`{"model":"fake-model","messages":[{"role":"user","content":%q}],"max_tokens":%d,"ignore_eos":true,"stream":true}`,
		fidelityPrompt, outTokens))
	tr := &http.Transport{MaxIdleConnsPerHost: c + 1, MaxConnsPerHost: 0, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	epoch := time.Now()
	ws, we := warm, warm+window

	type sample struct {
		sent    time.Duration
		chunks  []time.Duration
		ok      bool
		partial bool // cancelled at the end
	}
	var mu sync.Mutex
	var all []sample
	var wg sync.WaitGroup
	for i := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d := stagger * time.Duration(i) / time.Duration(c); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
			var chunks []time.Duration
			for ctx.Err() == nil {
				s := sample{sent: time.Since(epoch), chunks: chunks[:0]}
				req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
				resp, err := client.Do(req)
				if err == nil {
					br := bufio.NewReaderSize(resp.Body, 4096)
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							break
						}
						if bytes.Contains(line, []byte(`"delta":{"content":"`)) {
							s.chunks = append(s.chunks, time.Since(epoch))
						} else if bytes.HasPrefix(line, []byte("data: [DONE]")) {
							s.ok = resp.StatusCode == 200 && len(s.chunks) == outTokens
							break
						}
					}
					_, _ = io.Copy(io.Discard, resp.Body) // lets the connection be reused
					resp.Body.Close()
				}
				s.partial = ctx.Err() != nil
				chunks = s.chunks
				s.chunks = append([]time.Duration(nil), s.chunks...)
				mu.Lock()
				all = append(all, s)
				mu.Unlock()
				if time.Since(epoch) > we {
					cancel()
				}
			}
		}()
	}
	select {
	case <-time.After(we):
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()

	var r levelResult
	tokens := 0
	var ttft, itl time.Duration
	for _, s := range all {
		for _, at := range s.chunks {
			if at >= ws && at < we {
				tokens++
			}
		}
		if !s.ok {
			if !s.partial {
				r.Errors++
			}
			continue
		}
		if s.sent >= ws && s.sent < we {
			r.Requests++
			ttft += s.chunks[0] - s.sent
			itl += (s.chunks[len(s.chunks)-1] - s.chunks[0]) / time.Duration(len(s.chunks)-1)
		}
	}
	r.TokPerSec = float64(tokens) / window.Seconds()
	if r.Requests > 0 {
		r.TTFT = ttft / time.Duration(r.Requests)
		r.ITL = itl / time.Duration(r.Requests)
	}
	return r
}

// runLevel measures one preset at concurrency c and returns the result with
// the prediction. Warm-up is two predicted request cycles (starts staggered
// over the first), the window max(minWindow, 3 cycles).
func runLevel(t testing.TB, preset string, c int, minWindow time.Duration) (levelResult, sim.Prediction) {
	t.Helper()
	cfg := mustPreset(preset)
	const out = 128
	require.Equal(t, cfg.DefaultPromptTokens, EstimatePromptTokens([]Message{{Role: "user", Content: fidelityPrompt}}))
	pred := sim.Predict(cfg, c, cfg.DefaultPromptTokens, out)
	r, err := Start(cfg, Options{})
	require.NoError(t, err)
	defer r.Close()
	cycle := pred.E2E
	res := closedLoop(t, r.URL(), c, out, cycle, 2*cycle, max(minWindow, 3*cycle))
	res.Late = r.Server().Engine().Overrun().MeanFraction
	return res, pred
}

func ratio(measured, predicted float64) float64 {
	if predicted == 0 {
		return 0
	}
	return measured / predicted
}

// BenchmarkFidelity compares the independent client's measurements with
// sim.Predict for closed loops of 1, 8, 64 and 256 clients (target: every
// ratio within 1 ± 0.05). Each level runs a few seconds once, whatever b.N.
func BenchmarkFidelity(b *testing.B) {
	for _, preset := range []string{"vllm-like", "friendli-like"} {
		for _, c := range []int{1, 8, 64, 256} {
			b.Run(fmt.Sprintf("preset=%s/c=%d", preset, c), func(b *testing.B) {
				res, pred := runLevel(b, preset, c, 3*time.Second)
				b.ReportMetric(ratio(res.TokPerSec, pred.OutputTokPerSec), "tok/s-ratio")
				b.ReportMetric(ratio(float64(res.TTFT), float64(pred.TTFT)), "ttft-ratio")
				b.ReportMetric(ratio(float64(res.ITL), float64(pred.ITL)), "itl-ratio")
				b.ReportMetric(res.TokPerSec, "tok/s")
				b.ReportMetric(float64(res.TTFT)/1e6, "ttft-ms")
				b.ReportMetric(float64(res.ITL)/1e6, "itl-ms")
				b.ReportMetric(float64(res.Errors), "errors")
				b.ReportMetric(res.Late, "late-frac")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// TestTimingFidelity checks the measured closed loop against sim.Predict at 1
// and 8 clients, within ±10 % (real time, about 3 s per level). The machine
// is shared, and other processes only ever make the server late, so a level
// gets up to three attempts: a simulation that is wrong fails all of them.
func TestTimingFidelity(t *testing.T) {
	testenv.Timing(t)
	for _, c := range []int{1, 8} {
		t.Run(fmt.Sprintf("c=%d", c), func(t *testing.T) {
			var bad []string
			for attempt := 1; attempt <= 3; attempt++ {
				res, pred := runLevel(t, "vllm-like", c, 1500*time.Millisecond)
				t.Logf("attempt %d: measured %.0f tok/s, TTFT %v, ITL %v over %d requests (steps %.1f %% late); predicted %.0f tok/s, TTFT %v, ITL %v",
					attempt, res.TokPerSec, res.TTFT, res.ITL, res.Requests, 100*res.Late, pred.OutputTokPerSec, pred.TTFT, pred.ITL)
				require.Zero(t, res.Errors)
				require.Positive(t, res.Requests)
				bad = bad[:0]
				for _, m := range []struct {
					name string
					r    float64
				}{
					{"tok/s", ratio(res.TokPerSec, pred.OutputTokPerSec)},
					{"TTFT", ratio(float64(res.TTFT), float64(pred.TTFT))},
					{"ITL", ratio(float64(res.ITL), float64(pred.ITL))},
				} {
					if m.r < 0.9 || m.r > 1.1 {
						bad = append(bad, fmt.Sprintf("%s ratio %.3f", m.name, m.r))
					}
				}
				if len(bad) == 0 {
					return
				}
			}
			t.Errorf("outside ±10 %% of the prediction in 3 attempts: %v", bad)
		})
	}
}

// TestTimingRealism checks that the simulated engine batches like a real one:
// 64 clients get at least 10× the tokens/s of one, and a longer ITL.
func TestTimingRealism(t *testing.T) {
	testenv.Timing(t)
	var one, many levelResult
	for attempt := 1; attempt <= 3; attempt++ { // see TestTimingFidelity on retries
		one, _ = runLevel(t, "vllm-like", 1, time.Second)
		many, _ = runLevel(t, "vllm-like", 64, time.Second)
		t.Logf("attempt %d: C=1: %.0f tok/s, ITL %v; C=64: %.0f tok/s, ITL %v (steps %.1f %% late)",
			attempt, one.TokPerSec, one.ITL, many.TokPerSec, many.ITL, 100*many.Late)
		require.Zero(t, one.Errors+many.Errors)
		if many.TokPerSec >= 10*one.TokPerSec && many.ITL > one.ITL {
			return
		}
	}
	assert.GreaterOrEqual(t, many.TokPerSec, 10*one.TokPerSec)
	assert.Greater(t, many.ITL, one.ITL)
}
