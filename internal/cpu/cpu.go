package cpu

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Usage is CPU time used by the process.
type Usage struct {
	User, System time.Duration
}

// Total is user plus system time.
func (u Usage) Total() time.Duration { return u.User + u.System }

// Sub is the usage from v to u.
func (u Usage) Sub(v Usage) Usage { return Usage{u.User - v.User, u.System - v.System} }

// Self returns the CPU time the process used so far, all threads together
// (getrusage(RUSAGE_SELF): the kernel's accounting, at its tick or
// scheduler-event resolution).
func Self() (Usage, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return Usage{}, fmt.Errorf("getrusage: %w", err)
	}
	return Usage{User: time.Duration(ru.Utime.Nano()), System: time.Duration(ru.Stime.Nano())}, nil
}

// Monotonic reads CLOCK_MONOTONIC with a clock_gettime system call: the
// clock every process on the host shares, in ns since an arbitrary start.
func Monotonic() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("clock_gettime(CLOCK_MONOTONIC): %w", err)
	}
	return ts.Nano(), nil
}

// MonoClock converts the Go runtime's monotonic readings to
// CLOCK_MONOTONIC. Go's time.Now carries a monotonic reading that is not
// exposed as CLOCK_MONOTONIC; on Linux the runtime reads that very clock
// (vDSO, no system call), so the two differ by a constant, which
// NewMonoClock measures once against Monotonic. Conversions then cost a
// time.Since, not a system call per token.
type MonoClock struct {
	base time.Time // a Go monotonic instant
	mono int64     // CLOCK_MONOTONIC at base
	// Err bounds the calibration error: half the narrowest bracket of
	// time.Now readings around one clock_gettime call.
	Err time.Duration
}

// NewMonoClock calibrates a MonoClock: it brackets clock_gettime between
// two time.Now readings several times and keeps the narrowest bracket.
func NewMonoClock() (*MonoClock, error) {
	var best *MonoClock
	for range 32 {
		t0 := time.Now()
		m, err := Monotonic()
		t1 := time.Now()
		if err != nil {
			return nil, err
		}
		w := t1.Sub(t0)
		if best == nil || w/2 < best.Err {
			best = &MonoClock{base: t0.Add(w / 2), mono: m, Err: w / 2}
		}
	}
	return best, nil
}

// At is CLOCK_MONOTONIC at the instant t (which must carry a monotonic
// reading, as time.Now's does).
func (c *MonoClock) At(t time.Time) int64 { return c.mono + int64(t.Sub(c.base)) }

// Now is CLOCK_MONOTONIC now, in ns.
func (c *MonoClock) Now() int64 { return c.At(time.Now()) }

// Machine is the number of CPUs the process may run on (runtime.NumCPU:
// the affinity mask at start-up), the denominator of a machine share.
func Machine() int { return runtime.NumCPU() }

// point is one sample of the process's CPU time.
type point struct {
	at  time.Duration // offset from the sampler's epoch
	cpu Usage
}

// Sampler records the process's CPU time every Interval, so that the CPU
// used over any span of the run (a sample's measured window, known only
// once the sample ended) can be read back, interpolated linearly between
// the two readings around each end. One getrusage per interval costs
// about a microsecond: 0.01% of a core at the default interval.
type Sampler struct {
	since    func() time.Duration
	interval time.Duration

	mu     sync.Mutex
	points []point
	err    error
	stop   chan struct{}
	done   chan struct{}
}

// DefaultInterval is the sampling interval of NewSampler(…, 0).
const DefaultInterval = 10 * time.Millisecond

// NewSampler starts sampling. since gives the current offset from the run's
// epoch (the clock the records' offsets use); interval 0 means
// DefaultInterval. Close stops it.
func NewSampler(since func() time.Duration, interval time.Duration) (*Sampler, error) {
	if since == nil {
		return nil, errors.New("cpu: NewSampler needs a clock")
	}
	if interval < 0 {
		return nil, fmt.Errorf("cpu: sampling interval %v is negative", interval)
	}
	if interval == 0 {
		interval = DefaultInterval
	}
	s := &Sampler{since: since, interval: interval, stop: make(chan struct{}), done: make(chan struct{})}
	if err := s.sample(); err != nil {
		return nil, err
	}
	go s.loop()
	return s, nil
}

func (s *Sampler) loop() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if s.sample() != nil {
				return
			}
		}
	}
}

func (s *Sampler) sample() error {
	u, err := Self()
	at := s.since()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.err = err
		return err
	}
	s.points = append(s.points, point{at, u})
	return nil
}

// Close stops the sampler; Between keeps working on what was recorded.
func (s *Sampler) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// Between returns the CPU time the process used from offset a to offset b.
// It takes a fresh reading first, so a span ending now is covered. ok is
// false when the span is empty or not covered by the readings (it began
// before the sampler started), or sampling failed.
func (s *Sampler) Between(a, b time.Duration) (Usage, bool) {
	if b <= a {
		return Usage{}, false
	}
	if s.sample() != nil {
		return Usage{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ua, oka := interpolate(s.points, a)
	ub, okb := interpolate(s.points, b)
	if !oka || !okb {
		return Usage{}, false
	}
	return ub.Sub(ua), true
}

// Forget drops the readings before offset t (older spans will no longer
// be answered), so a long run keeps its memory bounded.
func (s *Sampler) Forget(t time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.points), func(i int) bool { return s.points[i].at >= t })
	if i > 1 {
		s.points = append(s.points[:0], s.points[i-1:]...)
	}
}

// interpolate is the CPU usage at offset t, linear between the readings
// around it; false when t lies outside the readings.
func interpolate(ps []point, t time.Duration) (Usage, bool) {
	i := sort.Search(len(ps), func(i int) bool { return ps[i].at >= t })
	switch {
	case i == len(ps):
		return Usage{}, false
	case ps[i].at == t:
		return ps[i].cpu, true
	case i == 0:
		return Usage{}, false
	}
	p, q := ps[i-1], ps[i]
	f := float64(t-p.at) / float64(q.at-p.at)
	lerp := func(x, y time.Duration) time.Duration { return x + time.Duration(f*float64(y-x)) }
	return Usage{lerp(p.cpu.User, q.cpu.User), lerp(p.cpu.System, q.cpu.System)}, true
}
