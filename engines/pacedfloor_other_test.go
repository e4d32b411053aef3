//go:build !linux

package engines

import (
	"time"

	"github.com/inferbench/inferbench/engines/internal/pacedserver"
)

// pacedFloor needs the epoll reader's system calls (Linux); elsewhere
// BenchmarkPaced reports no floor.
func pacedFloor(string, func() (pacedserver.Stats, error), int, int, time.Duration) (pacedRun, error) {
	return pacedRun{}, nil
}
