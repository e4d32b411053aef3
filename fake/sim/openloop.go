package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// OpenLoop describes a virtual-time open-loop run: clients that send
// request n at the instant the schedule says (Due(n)), whatever the engine
// is doing, up to a cap on requests in flight. It mirrors the suite's
// open-loop runner (internal/load's StartOpen): the first Warmup requests
// are unmeasured, the next Measured are measured, and the schedule goes on
// (cooldown) until every measured request has finished.
type OpenLoop struct {
	// Due is the schedule: the instant request n (0-based) is due, from the
	// run's origin, non-decreasing in n. Required.
	Due func(n int) time.Duration
	// Warmup and Measured count the unmeasured and measured requests.
	// Measured must be ≥ 1.
	Warmup, Measured int
	// PromptTokens and OutputTokens size every request (≤ 0: the config's
	// defaults).
	PromptTokens, OutputTokens int
	// MaxConcurrency caps the requests in flight (sent, last token not yet
	// received); a request due while the cap is reached is sent when a
	// request finishes, in schedule order. 0 means no cap.
	MaxConcurrency int
}

// OpenLoopRequest is one measured request of a virtual-time open loop.
// Times are from the run's origin.
type OpenLoopRequest struct {
	// Intended is when the schedule said to send; Sent when the client
	// sent, later than Intended only when the cap held it.
	Intended, Sent time.Duration
	// Tokens are the instants its output tokens were emitted, in order.
	Tokens []time.Duration
}

// TTFT is intended send → first token, the latency a user of an open
// system sees (waiting for the cap included).
func (r OpenLoopRequest) TTFT() time.Duration { return r.Tokens[0] - r.Intended }

// TPOT is (last − first token) / (tokens − 1); 0 with one token.
func (r OpenLoopRequest) TPOT() time.Duration {
	n := len(r.Tokens)
	if n < 2 {
		return 0
	}
	return (r.Tokens[n-1] - r.Tokens[0]) / time.Duration(n-1)
}

// maxOpenLoopRequests bounds a virtual run, so that a schedule that never
// advances (every request due at 0 with no cap) cannot run away.
const maxOpenLoopRequests = 10_000_000

// SimulateOpenLoop runs ol against a Scheduler for cfg in virtual time (no
// sleeps: it takes milliseconds for thousands of requests) and returns the
// measured requests in schedule order. Each request reaches the scheduler
// the config's Overhead after it is sent (times the lognormal jitter when
// cfg.Jitter > 0, as Engine does) and joins the first step that starts at
// or after that; an idle engine starts a step as soon as a request
// arrives, as Engine's loop does. It is the oracle the suite's open-loop
// measurements of the simulated engine are checked against: with the same
// schedule, the same model and the same request sizes, the measured TTFT
// and TPOT differ from these only by the real system's timer and network
// noise.
func SimulateOpenLoop(cfg Config, ol OpenLoop) ([]OpenLoopRequest, error) {
	switch {
	case ol.Due == nil:
		return nil, errors.New("sim: open loop: no schedule (Due)")
	case ol.Measured < 1:
		return nil, fmt.Errorf("sim: open loop: %d measured requests: want at least 1", ol.Measured)
	case ol.Warmup < 0 || ol.MaxConcurrency < 0:
		return nil, fmt.Errorf("sim: open loop: warmup %d, cap %d: must not be negative", ol.Warmup, ol.MaxConcurrency)
	case cfg.Firehose() || cfg.StepBase <= 0:
		return nil, errors.New("sim: open loop: the configuration has no step model (firehose)")
	}
	prompt, output := ol.PromptTokens, ol.OutputTokens
	if prompt <= 0 {
		prompt = max(cfg.DefaultPromptTokens, 1)
	}
	if output <= 0 {
		output = max(cfg.DefaultTokens, 1)
	}
	s := NewScheduler(cfg)
	// Every request has the same lengths: one that cannot fit the KV cache
	// fails here, before the schedule sends anything (sending first, a
	// schedule due all at once queued millions of arrivals before the
	// first Add refused one).
	if need := blocksFor(prompt+output, cfg.BlockSize); need > s.blocksCap {
		return nil, fmt.Errorf("sim: open loop: a request needs %d prompt + %d output tokens of KV but the cache holds %d tokens: %w",
			prompt, output, s.stats.KVCapacityTokens, ErrTooLong)
	}
	o := cfg.EffectiveOverhead()
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 7))

	type arrival struct {
		at time.Duration
		id int
	}
	var pending []arrival // sorted by arrival time
	first, end := ol.Warmup, ol.Warmup+ol.Measured
	out := make([]OpenLoopRequest, ol.Measured)
	// permits are the instants cap places became free, oldest first; with
	// no cap a place is always free.
	var permits []time.Duration
	for range ol.MaxConcurrency {
		permits = append(permits, 0)
	}
	next := 0                  // the next request to send
	var lastSent time.Duration // sends are in schedule order
	var nextDue time.Duration  // Due(next), cached
	nextDue = ol.Due(0)
	// send sends the next request if a place under the cap is free and it
	// is due by now (or always, with force); it reports whether it did.
	send := func(now time.Duration, force bool) bool {
		if next >= maxOpenLoopRequests {
			return false
		}
		at := max(nextDue, lastSent)
		if ol.MaxConcurrency > 0 {
			if len(permits) == 0 {
				return false
			}
			at = max(at, permits[0])
		}
		if at > now && !force {
			return false
		}
		if ol.MaxConcurrency > 0 {
			permits = permits[1:]
		}
		if next >= first && next < end {
			out[next-first] = OpenLoopRequest{Intended: nextDue, Sent: at}
		}
		oj := o
		if sg := cfg.Jitter; sg > 0 {
			oj = time.Duration(float64(o) * math.Exp(sg*rng.NormFloat64()-sg*sg/2))
		}
		a := arrival{at: at + oj, id: next}
		i := len(pending)
		for i > 0 && pending[i-1].at > a.at {
			i--
		}
		pending = append(pending, arrival{})
		copy(pending[i+1:], pending[i:])
		pending[i] = a
		lastSent = at
		next++
		nextDue = ol.Due(next)
		return true
	}

	var now time.Duration
	left := ol.Measured
	for left > 0 {
		for send(now, false) {
		}
		if s.Idle() && (len(pending) == 0 || pending[0].at > now) {
			if len(pending) == 0 && !send(now, true) {
				return nil, fmt.Errorf("sim: open loop: the schedule stalled after %d requests", next)
			}
			now = max(now, pending[0].at)
			continue
		}
		for len(pending) > 0 && pending[0].at <= now {
			if err := s.Add(uint64(pending[0].id)+1, prompt, output, pending[0].at); err != nil {
				return nil, fmt.Errorf("sim: open loop: %w", err)
			}
			pending = pending[1:]
		}
		r := s.Step(now)
		stepEnd := now + r.Duration
		for _, e := range r.Tokens {
			if id := int(e.ID) - 1; id >= first && id < end {
				out[id-first].Tokens = append(out[id-first].Tokens, stepEnd)
			}
		}
		for _, fid := range r.Finished {
			if id := int(fid) - 1; id >= first && id < end {
				left--
			}
			if ol.MaxConcurrency > 0 {
				permits = append(permits, stepEnd)
			}
		}
		now = stepEnd
	}
	return out, nil
}
