package load

import "time"

// Window is the measured window of a run, as offsets from the run epoch on the
// monotonic clock: from the first measured request's Sent to the last
// measured request's Done. In a closed-loop run, concurrency is held at the
// target throughout it (measured requests start only after the ramp-up, and
// cooldown requests fill every slot until the last measured one ends).
type Window struct {
	Start time.Duration `json:"start_ns"`
	End   time.Duration `json:"end_ns"`
}

// Len is the window's length; zero or negative means an empty window.
func (w Window) Len() time.Duration { return w.End - w.Start }

// Contains reports whether the instant t lies in the window. The window is
// closed at both ends so a chunk that arrives exactly at the last measured
// Done is counted.
func (w Window) Contains(t time.Duration) bool { return t >= w.Start && t <= w.End }
