package sim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tinyConfig is a model with round numbers: a step costs 10 ms plus 1 ms per
// token beyond 4 tokens; no KV or attention cost; 2 running sequences, a
// budget of 8 tokens and 4 blocks of 4 tokens of KV.
func tinyConfig() Config {
	return Config{
		PrefillMs: 10, PerTokenMs: 10, DefaultTokens: 4, DefaultPromptTokens: 2,
		StepBase: 10 * time.Millisecond, StepPerTokenMs: 1, KneeTokens: 4,
		Overhead:   0,
		MaxNumSeqs: 2, MaxBatchedTokens: 8, KVCapacityTokens: 16, BlockSize: 4,
		Seed: 1,
	}
}

// op is one action of a scripted scenario: add (id, prompt, max), cancel
// (id), or step (run one step at the current time and advance to its end).
type op struct {
	kind            string
	id              uint64
	prompt, maxToks int
}

func add(id uint64, prompt, maxToks int) op { return op{"add", id, prompt, maxToks} }
func cancel(id uint64) op                   { return op{kind: "cancel", id: id} }
func step() op                              { return op{kind: "step"} }

// traceStep renders a step as "start+duration T=.. [emits] fin[..] pre[..]";
// an emit is the id with F for a first token and L for the last.
func traceStep(r StepResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v+%v T=%d", r.Start, r.Duration, r.BatchTokens)
	for _, e := range r.Tokens {
		fmt.Fprintf(&b, " %d", e.ID)
		if e.First {
			b.WriteString("F")
		}
		if e.Last {
			b.WriteString("L")
		}
	}
	if len(r.Preempted) > 0 {
		fmt.Fprintf(&b, " pre%v", r.Preempted)
	}
	return b.String()
}

// TestSchedulerStepSequences scripts arrivals, cancellations and steps and
// checks the exact step sequence.
func TestSchedulerStepSequences(t *testing.T) {
	cases := []struct {
		name  string
		mod   func(*Config)
		ops   []op
		want  []string
		final func(*testing.T, Stats)
	}{
		{
			// Two arrivals at once share one prefill step (T = 2+2 ≤ knee: 10 ms)
			// and then one decode step; both emit together.
			name: "simultaneous arrivals are batched",
			ops:  []op{add(1, 2, 2), add(2, 2, 2), step(), step(), step()},
			want: []string{"0s+10ms T=4 1F 2F", "10ms+10ms T=2 1L 2L", "20ms+0s T=0"},
		},
		{
			// A 20-token prompt with a budget of 8 prefills in chunks 8, 8, 4:
			// steps of 10+4, 10+4 and 10 ms; the first token comes after the last chunk.
			name: "chunked prefill across steps within the budget",
			mod:  func(c *Config) { c.KVCapacityTokens = 32 },
			ops:  []op{add(1, 20, 1), step(), step(), step()},
			want: []string{"0s+14ms T=8", "14ms+14ms T=8", "28ms+10ms T=4 1FL"},
		},
		{
			// Request 2 (6 tokens) joins request 1's decode: T = 1+6 = 7, so that
			// step takes 13 ms instead of 10 for request 1 too.
			name: "a prefill joining a running batch lengthens that step",
			ops:  []op{add(1, 2, 4), step(), step(), add(2, 6, 1), step(), step()},
			want: []string{"0s+10ms T=2 1F", "10ms+10ms T=1 1", "20ms+13ms T=7 1 2FL", "33ms+10ms T=1 1L"},
		},
		{
			// MaxNumSeqs 2: request 3 waits FCFS until 1 and 2 finish.
			name: "FCFS queueing beyond MaxNumSeqs",
			ops:  []op{add(1, 1, 2), add(2, 1, 2), add(3, 1, 1), step(), step(), step()},
			want: []string{"0s+10ms T=2 1F 2F", "10ms+10ms T=2 1L 2L", "20ms+10ms T=1 3FL"},
		},
		{
			// 2 blocks of KV. Request 1 (prompt 4) and 2 (prompt 3) take one block
			// each; 1's first decode needs a second block, so the newest (2) is
			// preempted. 2 returns once 1 finishes, recomputes prompt + its one
			// token (4 tokens) and emits token 2 — not a second first token.
			name: "KV exhaustion preempts the newest, which recomputes on readmission",
			mod:  func(c *Config) { c.KVCapacityTokens = 8 },
			ops:  []op{add(1, 4, 4), add(2, 3, 2), step(), step(), step(), step(), step(), step()},
			want: []string{
				"0s+13ms T=7 1F 2F",
				"13ms+10ms T=1 1 pre[2]",
				"23ms+10ms T=1 1",
				"33ms+10ms T=1 1L",
				"43ms+10ms T=4 2L",
				"53ms+0s T=0",
			},
			final: func(t *testing.T, st Stats) {
				assert.Equal(t, uint64(1), st.Preemptions)
				assert.Equal(t, uint64(6), st.GenerationTokensTotal, "no token is emitted twice")
				assert.Zero(t, st.KVUsedTokens)
			},
		},
		{
			// MaxNumSeqs 2 with 1 and 2 running and 3 waiting: cancelling 1 frees
			// its slot and KV at the next step, where 3 is admitted.
			name: "cancellation frees the slot and KV at the next step",
			ops:  []op{add(1, 1, 9), add(2, 1, 2), add(3, 1, 1), step(), cancel(1), step(), step()},
			want: []string{"0s+10ms T=2 1F 2F", "10ms+10ms T=2 2L 3FL", "20ms+0s T=0"},
			final: func(t *testing.T, st Stats) {
				assert.Equal(t, uint64(1), st.Canceled)
				assert.Zero(t, st.KVUsedTokens)
				assert.Zero(t, st.Running)
			},
		},
		{
			// Cancelling a waiting request removes it before it ever runs.
			name: "cancelling a waiting request drops it",
			mod:  func(c *Config) { c.MaxNumSeqs = 1 },
			ops:  []op{add(1, 1, 2), add(2, 1, 1), step(), cancel(2), step(), step()},
			want: []string{"0s+10ms T=1 1F", "10ms+10ms T=1 1L", "20ms+0s T=0"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tinyConfig()
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			require.NoError(t, cfg.Validate())
			s := NewScheduler(cfg)
			var now time.Duration
			var got []string
			for _, o := range tc.ops {
				switch o.kind {
				case "add":
					require.NoError(t, s.Add(o.id, o.prompt, o.maxToks, now))
				case "cancel":
					s.Cancel(o.id)
				case "step":
					r := s.Step(now)
					got = append(got, traceStep(r))
					now += r.Duration
				}
			}
			assert.Equal(t, tc.want, got)
			if tc.final != nil {
				tc.final(t, s.Stats())
			}
		})
	}
}

// TestSchedulerAddErrors checks that bad requests are refused and leave the
// scheduler unchanged.
func TestSchedulerAddErrors(t *testing.T) {
	cases := []struct {
		name          string
		prompt, max   int
		wantErrSubstr string
	}{
		{"negative prompt is refused", -1, 2, "prompt tokens -1"},
		{"a request larger than the whole KV cache is refused", 10, 10, "KV"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewScheduler(tinyConfig())
			err := s.Add(1, tc.prompt, tc.max, 0)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErrSubstr)
			assert.True(t, s.Idle())
		})
	}
	s := NewScheduler(tinyConfig())
	require.NoError(t, s.Add(7, 1, 1, 0))
	assert.ErrorContains(t, s.Add(7, 1, 1, 0), "already in use", "duplicate ids are refused")
	// A zero prompt counts as one token and maxTokens 0 means DefaultTokens.
	require.NoError(t, s.Add(8, 0, 0, 0))
	assert.Equal(t, uint64(2), s.Stats().PromptTokensTotal)
}

// TestSchedulerJitterIsSeededAndUnbiased checks that jitter is reproducible
// for a seed and has mean ≈ 1.
func TestSchedulerJitterIsSeededAndUnbiased(t *testing.T) {
	run := func(seed int64) (time.Duration, []time.Duration) {
		cfg := tinyConfig()
		cfg.Jitter, cfg.Seed = 0.1, seed
		cfg.KVCapacityTokens = 1 << 20
		s := NewScheduler(cfg)
		require.NoError(t, s.Add(1, 1, 20000, 0))
		var total time.Duration
		var first []time.Duration
		for i := 0; i < 20000; i++ {
			r := s.Step(total)
			total += r.Duration
			if i < 5 {
				first = append(first, r.Duration)
			}
		}
		return total, first
	}
	total, a := run(3)
	_, b := run(3)
	_, c := run(4)
	assert.Equal(t, a, b, "same seed, same steps")
	assert.NotEqual(t, a, c, "another seed, other steps")
	assert.InDelta(t, 1, float64(total)/float64(20000*10*time.Millisecond), 0.01, "mean factor 1")
}
