//go:build !linux

package pacedserver

import "time"

// sleepUntil sleeps until t (Go's timer: no finer sleep here).
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }
