package trace

import (
	"fmt"
	"math"
	"time"

	"github.com/inferbench/inferbench/internal/load"
)

// Pacer replays a trace's arrivals: request n is due at entry n's offset
// divided by the speed, and the schedule stops after the last entry. It is
// a load.Scheduler, so an open-loop run (load.StartOpen) stamps Intended
// with the trace's instant even when the sender is late.
type Pacer struct {
	due []time.Duration
}

var _ load.Scheduler = (*Pacer)(nil)

// NewPacer is the schedule of t at speed (1: as recorded, 2: twice as
// fast; -trace-speed).
func NewPacer(t *Trace, speed float64) (*Pacer, error) {
	if !(speed > 0) || math.IsInf(speed, 0) {
		return nil, fmt.Errorf("trace speed %v: must be a positive number (1 replays the trace as recorded)", speed)
	}
	p := &Pacer{due: make([]time.Duration, len(t.Entries))}
	for i, e := range t.Entries {
		p.due[i] = time.Duration(float64(e.Offset) / speed)
	}
	return p, nil
}

// Len is the number of requests the schedule sends.
func (p *Pacer) Len() int { return len(p.due) }

// Due is when request n is due (the last entry's offset past the end).
func (p *Pacer) Due(n uint64) time.Duration {
	if len(p.due) == 0 {
		return 0
	}
	if n >= uint64(len(p.due)) {
		return p.due[len(p.due)-1]
	}
	return p.due[n]
}

// Pace implements load.Pacer: it stops once every entry was sent.
func (p *Pacer) Pace(elapsed time.Duration, sent uint64) (time.Duration, bool) {
	if sent >= uint64(len(p.due)) {
		return 0, true
	}
	return max(p.due[sent]-elapsed, 0), false
}
