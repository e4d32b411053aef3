package sim

import (
	"math"
	"math/rand/v2"
	"time"
)

// loopStats is what the virtual-time closed loop measured in its window.
type loopStats struct {
	TokPerSec float64       // tokens emitted in the window / window length
	TTFT      time.Duration // mean send → first token of requests sent in the window
	ITL       time.Duration // mean (last − first token) / (tokens − 1) of those requests
	Requests  int           // requests measured
	Preempted uint64        // preemptions during the whole run
}

// closedLoop runs concurrency virtual clients against a Scheduler: each
// sends a request (prompt, output tokens) as soon as its previous one
// finished, and the request reaches the scheduler Overhead later (times the
// lognormal jitter when cfg.Jitter > 0, as Engine does). Client c starts at
// c·stagger/concurrency. Requests sent in [warm, warm+measure) give TTFT
// (send → first token) and ITL ((last − first) / (tokens − 1)), both means
// over requests; tok/s counts tokens emitted inside the window. A request
// joins the first step that starts at or after its arrival.
func closedLoop(cfg Config, concurrency, prompt, output int, stagger, warm, measure time.Duration) loopStats {
	return closedLoopCached(cfg, concurrency, prompt, 0, output, stagger, warm, measure)
}

// closedLoopCached is closedLoop with prompts that share their first
// shared tokens (the rest is unique to each request), added with their
// block hashes so that prefix caching can hit.
func closedLoopCached(cfg Config, concurrency, prompt, shared, output int, stagger, warm, measure time.Duration) loopStats {
	s := NewScheduler(cfg)
	tokens := make([]uint64, prompt)
	for i := range min(shared, prompt) {
		tokens[i] = uint64(i) // family 0: the common prefix
	}
	o := cfg.EffectiveOverhead()
	type req struct {
		sent, first, last time.Duration
		tokens            int
	}
	reqs := map[uint64]*req{}
	type arrival struct {
		at time.Duration
		id uint64
	}
	var pending []arrival // in arrival order (sorted on insert)
	var nextID uint64
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 7))
	send := func(at time.Duration) {
		nextID++
		reqs[nextID] = &req{sent: at}
		oj := o
		if sg := cfg.Jitter; sg > 0 {
			oj = time.Duration(float64(o) * math.Exp(sg*rng.NormFloat64()-sg*sg/2))
		}
		a := arrival{at: at + oj, id: nextID}
		i := len(pending)
		for i > 0 && pending[i-1].at > a.at {
			i--
		}
		pending = append(pending, arrival{})
		copy(pending[i+1:], pending[i:])
		pending[i] = a
	}
	for c := 0; c < concurrency; c++ {
		send(stagger * time.Duration(c) / time.Duration(concurrency))
	}
	t0, t1 := warm, warm+measure
	var now time.Duration
	var tokensIn int
	var st loopStats
	var ttftSum, itlSum time.Duration
	for now < t1 {
		if s.Idle() && len(pending) > 0 && pending[0].at > now {
			now = pending[0].at
		}
		for len(pending) > 0 && pending[0].at <= now {
			id := pending[0].id
			var hashes []uint64
			if shared > 0 {
				for i := shared; i < prompt; i++ {
					tokens[i] = id<<32 | uint64(i)
				}
				hashes = BlockHashes(tokens, cfg.BlockSize)
			}
			if err := s.AddBlocks(id, prompt, hashes, output, pending[0].at); err != nil {
				panic(err)
			}
			pending = pending[1:]
		}
		r := s.Step(now)
		end := now + r.Duration
		for _, e := range r.Tokens {
			q := reqs[e.ID]
			if e.First {
				q.first = end
			}
			q.last = end
			q.tokens += e.N
			if end > t0 && end <= t1 {
				tokensIn += e.N
			}
		}
		for _, id := range r.Finished {
			q := reqs[id]
			if q.sent >= t0 && q.sent < t1 {
				st.Requests++
				ttftSum += q.first - q.sent
				itlSum += (q.last - q.first) / time.Duration(q.tokens-1)
			}
			delete(reqs, id)
			send(end)
		}
		now = end
	}
	st.TokPerSec = float64(tokensIn) / measure.Seconds()
	if st.Requests > 0 {
		st.TTFT = ttftSum / time.Duration(st.Requests)
		st.ITL = itlSum / time.Duration(st.Requests)
	}
	st.Preempted = s.Stats().Preemptions
	return st
}
