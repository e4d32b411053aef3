package sim

import (
	"testing"
	"time"
)

// FuzzSchedulerInvariants drives the scheduler with an arbitrary sequence of
// adds, cancels and steps on a small KV cache and checks its invariants:
// KV use never exceeds the cache, no request gets more tokens than it asked
// for or a second first token, time always advances, and once the input is
// exhausted every request finishes.
func FuzzSchedulerInvariants(f *testing.F) {
	f.Add([]byte{0x11, 0x22, 0x33, 0xff, 0x01, 0x80, 0x81, 0x02})
	f.Add([]byte("preempt me please: many long prompts on a tiny cache"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, ops []byte) {
		cfg := tinyConfig()
		cfg.MaxNumSeqs, cfg.MaxBatchedTokens, cfg.KVCapacityTokens, cfg.BlockSize = 3, 8, 32, 4
		s := NewScheduler(cfg)
		type req struct{ max, got int }
		reqs := map[uint64]*req{}
		var now time.Duration
		var id uint64
		check := func(r StepResult) {
			if !s.Idle() && r.Duration <= 0 {
				t.Fatalf("step at %v did not advance time", now)
			}
			if st := s.Stats(); st.KVUsedTokens > st.KVCapacityTokens || st.Running > cfg.MaxNumSeqs {
				t.Fatalf("over capacity: %+v", st)
			}
			if r.BatchTokens > cfg.MaxBatchedTokens {
				t.Fatalf("budget exceeded: %d", r.BatchTokens)
			}
			for _, e := range r.Tokens {
				q := reqs[e.ID]
				if q == nil {
					t.Fatalf("token for unknown or cancelled request %d", e.ID)
				}
				if e.First != (q.got == 0) {
					t.Fatalf("request %d: First=%v after %d tokens", e.ID, e.First, q.got)
				}
				q.got += e.N
				if q.got > q.max || e.Last != (q.got == q.max) {
					t.Fatalf("request %d: %d of %d tokens, Last=%v", e.ID, q.got, q.max, e.Last)
				}
				if e.Last {
					delete(reqs, e.ID)
				}
			}
			now += r.Duration
		}
		for _, b := range ops {
			switch b % 4 {
			case 0, 1: // add a request of 1..16 prompt and 1..8 output tokens
				id++
				prompt, maxT := int(b>>2)%16+1, int(b>>6)%8+1+int(b>>2)%3
				if err := s.Add(id, prompt, maxT, now); err != nil {
					t.Fatalf("add %d+%d: %v", prompt, maxT, err)
				}
				reqs[id] = &req{max: maxT}
			case 2: // cancel a recent request
				if id > 0 {
					c := id - uint64(b>>2)%4
					s.Cancel(c)
					delete(reqs, c)
				}
			case 3:
				check(s.Step(now))
			}
		}
		for i := 0; !s.Idle(); i++ {
			if i > 100000 {
				t.Fatalf("not idle after 100000 steps: %+v", s.Stats())
			}
			check(s.Step(now))
		}
		if len(reqs) != 0 {
			t.Fatalf("%d requests never finished", len(reqs))
		}
	})
}
