package pacedserver

import (
	"syscall"
	"time"
)

// sleepUntil sleeps the calling thread until t, in a nanosleep system
// call (at most coarseWait plus Go's timer lateness, so Close waits for
// no long sleep).
func sleepUntil(t time.Time) {
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(int64(d))
		_ = syscall.Nanosleep(&ts, nil) // EINTR: loop and sleep the rest
	}
}
