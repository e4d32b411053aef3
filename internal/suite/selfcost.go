package suite

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inferbench/inferbench/engines"
	"github.com/inferbench/inferbench/internal/cpu"
	"github.com/inferbench/inferbench/internal/load"
)

// Thresholds of ClientCost.Bound. A sample is client-bound when either
// holds; both are stated in docs/client-cost.md.
const (
	// boundCoreShare: the client process used more than this share of
	// the cores the Go runtime may run on (GOMAXPROCS) over the window.
	// Past it, reader goroutines start to wait for a core to run on, so
	// their stamps are late by the wait.
	boundCoreShare = 0.5
	// boundQueued: more than this fraction of the output chunks were
	// already queued behind an earlier chunk of their stream when read
	// (engines.ReadStats.Queued): their stamps are the read's, not their
	// arrival's. A server that writes several tokens per write trips it
	// too, whatever the client does; the log line says which to suspect.
	boundQueued = 0.05
)

// ClientCost is what the client cost during one sample: its CPU time over
// the measured window, per output token arriving in the window, and how
// its reads kept up.
type ClientCost struct {
	// CPU is the process's CPU time (user+system, getrusage) over the
	// window. With in-process simulated engines it includes theirs.
	CPU cpu.Usage
	// Tokens are the output tokens that arrived in the window.
	Tokens float64
	// NsPerToken is CPU / Tokens, in ns: the metric client-cpu-ns/tok.
	NsPerToken float64
	// MachineShare is CPU / (window × runtime.NumCPU()): the fraction of
	// the host's CPUs the client took (client-cpu-frac).
	MachineShare float64
	// CoreShare is CPU / (window × GOMAXPROCS), what boundCoreShare bounds.
	CoreShare float64
	// Reads are the client's read counts over the sample's streams (all
	// phases; they end between the sample's start and finish).
	Reads engines.ReadStats
	// InProcess is set when a simulated engine ran in this process: the
	// CPU is then the client's and the simulator's together.
	InProcess bool
	// Bound is set when the client may have limited the measurement;
	// Reason says why.
	Bound  bool
	Reason string
}

// selfCost is the suite's measurement of its own process.
type selfCost struct {
	once    sync.Once
	sampler *cpu.Sampler
	err     error
	bound   atomic.Int64 // client-bound samples
	running atomic.Int64 // samples started and not finished
}

// samplerFor starts the CPU sampler on first use, on the suite's clock.
func (s *Suite) samplerFor() (*cpu.Sampler, error) {
	s.self.once.Do(func() {
		s.self.sampler, s.self.err = cpu.NewSampler(func() time.Duration { return time.Since(s.epoch) }, 0)
		if s.self.err == nil {
			s.closers = append(s.closers, s.self.sampler.Close)
		}
	})
	return s.self.sampler, s.self.err
}

// inProcess reports whether any engine of the run is simulated in this
// process.
func (s *Suite) inProcess() bool {
	for _, e := range s.engines {
		if e.sim != nil {
			return true
		}
	}
	return false
}

// clientCost measures the sample's window. ok is false when the window is
// empty or the CPU readings do not cover it.
func (s *Suite) clientCost(w load.Window, tokPerSec float64, reads engines.ReadStats) (ClientCost, bool, error) {
	sp, err := s.samplerFor()
	if err != nil {
		return ClientCost{}, false, err
	}
	u, ok := sp.Between(w.Start, w.End)
	if !ok {
		return ClientCost{}, false, nil
	}
	if s.self.running.Load() == 1 {
		// No other sample is in flight: later windows start later.
		sp.Forget(w.Start)
	}
	secs := w.Len().Seconds()
	cc := ClientCost{
		CPU:          u,
		Tokens:       tokPerSec * secs,
		MachineShare: u.Total().Seconds() / (secs * float64(cpu.Machine())),
		CoreShare:    u.Total().Seconds() / (secs * float64(runtime.GOMAXPROCS(0))),
		Reads:        reads,
		InProcess:    s.inProcess(),
	}
	if cc.Tokens > 0 {
		cc.NsPerToken = float64(u.Total().Nanoseconds()) / cc.Tokens
	}
	cc.classify(runtime.GOMAXPROCS(0))
	return cc, true, nil
}

// classify sets Bound and Reason from the shares and the read counts.
func (cc *ClientCost) classify(procs int) {
	switch {
	case cc.CoreShare > boundCoreShare:
		cc.Bound = true
		cc.Reason = fmt.Sprintf("the client process used %.0f%% of GOMAXPROCS=%d cores (more than %.0f%%): its readers may have waited for a core",
			100*cc.CoreShare, procs, 100*boundCoreShare)
	case cc.Reads.QueuedFraction() > boundQueued:
		cc.Bound = true
		cc.Reason = fmt.Sprintf("%.1f%% of the output chunks were already queued behind an earlier one of their stream when read (more than %.0f%%): the client fell behind, or the server writes several tokens at once",
			100*cc.Reads.QueuedFraction(), 100*boundQueued)
	}
	if cc.Bound && cc.InProcess {
		cc.Reason += " (the CPU includes the in-process simulated engine's)"
	}
}

// logLine is the sample's note on its own cost, for the benchmark log.
func (cc ClientCost) logLine() string {
	where := "the client process"
	if cc.InProcess {
		where = "the client process, INCLUDING the in-process simulated engine,"
	}
	return fmt.Sprintf("client cost: %s used %v CPU (user %v, system %v) over the window: %.0f ns per output token, %.1f%% of the machine's %d CPUs; %.2f events per read, %.1f%% of output chunks queued when read",
		where, cc.CPU.Total().Round(time.Millisecond), cc.CPU.User.Round(time.Millisecond), cc.CPU.System.Round(time.Millisecond),
		cc.NsPerToken, 100*cc.MachineShare, cpu.Machine(), cc.Reads.EventsPerRead(), 100*cc.Reads.QueuedFraction())
}

// ClientBoundSamples is the number of samples flagged client-bound so far.
func (s *Suite) ClientBoundSamples() int { return int(s.self.bound.Load()) }

// clientBoundSummary is Conclude's line on the run's client cost.
func (s *Suite) clientBoundSummary() string {
	n, all := s.self.bound.Load(), s.done.Load()
	if n == 0 {
		return fmt.Sprintf("# client cost: no sample of %d was client-bound (client-cpu-ns/tok and client-cpu-frac are on every result line)", all)
	}
	return fmt.Sprintf("# client cost: %d of %d samples were CLIENT-BOUND: the client may have limited them (see the '# CLIENT-BOUND' lines in the result files)", n, all)
}
