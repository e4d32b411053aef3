package load

import (
	"math"
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
type PoissonPacer struct{ schedule }

// NewPoissonPacer returns a Poisson pacer of rate requests per second.
// A non-positive rate is not a rate: Pace stops.
func NewPoissonPacer(rate float64, seed int64) *PoissonPacer {
	p := &PoissonPacer{newSchedule(rate, seed)}
	p.gap = func(r *rand.Rand) float64 { return r.ExpFloat64() }
	return p
}

// GammaPacer sends requests with Gamma-distributed inter-arrival gaps of mean
// 1/Rate and shape Burstiness (vLLM's --burstiness): 1 is Poisson, below 1
// burstier, above 1 more regular. Seeded and safe for concurrent use like
// PoissonPacer. Use NewGammaPacer.
type GammaPacer struct{ schedule }

// NewGammaPacer returns a Gamma pacer of rate requests per second and shape
// burstiness. A non-positive rate or burstiness makes Pace stop.
func NewGammaPacer(rate, burstiness float64, seed int64) *GammaPacer {
	p := &GammaPacer{newSchedule(rate, seed)}
	if !(burstiness > 0) || math.IsInf(burstiness, 0) {
		p.rate = 0
	}
	// Gamma(k, 1/k) has mean 1, so the gap's mean stays 1/rate.
	p.gap = func(r *rand.Rand) float64 { return gammaSample(r, burstiness) / burstiness }
	return p
}

// schedule is a lazily extended, seeded schedule of due instants whose gaps
// are gap()/rate seconds.
type schedule struct {
	rate float64
	gap  func(*rand.Rand) float64 // a gap of mean 1
	mu   sync.Mutex
	rng  *rand.Rand
	due  []time.Duration // due[n] = the instant request n is due
}

func newSchedule(rate float64, seed int64) schedule {
	if math.IsInf(rate, 0) || math.IsNaN(rate) {
		rate = 0
	}
	return schedule{rate: rate, rng: rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15)), due: []time.Duration{0}}
}

// Due returns the instant request n is due on this schedule (0 for a
// non-rate).
func (p *schedule) Due(n uint64) time.Duration {
	if !(p.rate > 0) {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for uint64(len(p.due)) <= n {
		gap := time.Duration(p.gap(p.rng) / p.rate * float64(time.Second))
		p.due = append(p.due, p.due[len(p.due)-1]+gap)
	}
	return p.due[n]
}

// Pace implements Pacer.
func (p *schedule) Pace(elapsed time.Duration, sent uint64) (time.Duration, bool) {
	if !(p.rate > 0) {
		return 0, true
	}
	return max(p.Due(sent)-elapsed, 0), false
}

// gammaSample draws from Gamma(k, 1) by Marsaglia and Tsang's method (2000),
// boosting k < 1 with U^(1/k).
func gammaSample(r *rand.Rand, k float64) float64 {
	if k < 1 {
		return gammaSample(r, k+1) * math.Pow(1-r.Float64(), 1/k)
	}
	d := k - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := 1 - r.Float64() // (0, 1]
		if math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}

var (
	_ Pacer     = ConstantPacer{}
	_ Pacer     = (*PoissonPacer)(nil)
	_ Pacer     = PacerFunc(nil)
	_ Scheduler = ConstantPacer{}
	_ Scheduler = (*PoissonPacer)(nil)
	_ Scheduler = (*GammaPacer)(nil)
)
