package load

import (
	"math/rand/v2"
	"sync"
	"time"
)

// A Pacer decides when an open-loop load generator sends its next request.
// Given the time elapsed since the start and the number of requests already
// sent, it returns how long to wait before sending the next one (0: now) and
// whether to stop. Pacers describe a schedule: the n-th request (0-based) is
// due at a fixed instant, so a late sender catches up (wait 0) instead of
// shifting the schedule — the property that lets open-loop latency, measured
// from the schedule, show coordinated omission.
type Pacer interface {
	Pace(elapsed time.Duration, sent uint64) (wait time.Duration, stop bool)
}

// A Scheduler is a Pacer that can say when request n is due. An open-loop
// run uses it to stamp Intended with the scheduled instant even when the
// sender is late; for other pacers Intended is when Pace said "now".
type Scheduler interface {
	Pacer
	Due(n uint64) time.Duration
}

// PacerFunc adapts a function to the Pacer interface.
type PacerFunc func(time.Duration, uint64) (time.Duration, bool)

// Pace calls f.
func (f PacerFunc) Pace(elapsed time.Duration, sent uint64) (time.Duration, bool) {
	return f(elapsed, sent)
}

// ConstantPacer sends Freq requests every Per, evenly spaced: request n is due
// at n·Per/Freq. A non-positive Freq or Per is not a rate: Pace stops.
type ConstantPacer struct {
	Freq int           // requests per Per
	Per  time.Duration // the period Freq refers to, e.g. time.Second
}

// Due returns the instant request n is due: n·Per/Freq (0 for a non-rate).
func (p ConstantPacer) Due(n uint64) time.Duration {
	if p.Freq <= 0 || p.Per <= 0 {
		return 0
	}
	return time.Duration(float64(n) * float64(p.Per) / float64(p.Freq))
}

// Pace implements Pacer.
func (p ConstantPacer) Pace(elapsed time.Duration, sent uint64) (time.Duration, bool) {
	if p.Freq <= 0 || p.Per <= 0 {
		return 0, true
	}
	return max(p.Due(sent)-elapsed, 0), false
}

// PoissonPacer sends requests as a Poisson process of Rate requests per
// second: exponential inter-arrival gaps with mean 1/Rate, drawn from a PCG
// generator seeded with Seed, so every run with the same seed has the same
// schedule. Request 0 is due at 0. Use NewPoissonPacer; it is safe for
// concurrent use.
type PoissonPacer struct {
	rate float64
	mu   sync.Mutex
	rng  *rand.Rand
	due  []time.Duration // due[n] = the instant request n is due
}

// NewPoissonPacer returns a Poisson pacer of rate requests per second.
// A non-positive rate is not a rate: Pace stops.
func NewPoissonPacer(rate float64, seed int64) *PoissonPacer {
	return &PoissonPacer{
		rate: rate,
		rng:  rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15)),
		due:  []time.Duration{0},
	}
}

// Due returns the instant request n is due on this pacer's schedule.
func (p *PoissonPacer) Due(n uint64) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	for uint64(len(p.due)) <= n {
		gap := time.Duration(p.rng.ExpFloat64() / p.rate * float64(time.Second))
		p.due = append(p.due, p.due[len(p.due)-1]+gap)
	}
	return p.due[n]
}

// Pace implements Pacer.
func (p *PoissonPacer) Pace(elapsed time.Duration, sent uint64) (time.Duration, bool) {
	if !(p.rate > 0) {
		return 0, true
	}
	return max(p.Due(sent)-elapsed, 0), false
}

var (
	_ Pacer     = ConstantPacer{}
	_ Pacer     = (*PoissonPacer)(nil)
	_ Pacer     = PacerFunc(nil)
	_ Scheduler = ConstantPacer{}
	_ Scheduler = (*PoissonPacer)(nil)
)
