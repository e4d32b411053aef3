package suite

import "fmt"

// filesPerRun is what a run holds open beside its connections: the result
// files of every engine (four each), the standard streams, the runtime's
// poller, the terminal, the plots being written.
const filesPerRun = 64

// filesNeeded is how many descriptors the run can hold at once: for every
// engine the client's connections (its share of the highest level, plus
// the transport's spare ones), as many again for a simulated engine that
// serves them in this process, and the run's files.
func filesNeeded(es []*Engine, streams int) uint64 {
	n := uint64(filesPerRun)
	for _, e := range es {
		conns := uint64(streams + 4)
		if e.sim != nil {
			conns *= 2 // both ends of every connection are this process's
		}
		n += conns + 4
	}
	return n
}

// ensureFiles makes sure the process may open need descriptors: it raises
// the soft RLIMIT_NOFILE to need when the hard limit allows (Go starts
// with the soft limit at the hard one on Linux; another runtime or a
// caller may have lowered it), and otherwise fails before any request,
// naming the limit and the command that raises it.
func ensureFiles(need uint64, limit func() (soft, hard uint64, err error), raise func(uint64) error) error {
	soft, hard, err := limit()
	if err != nil {
		return nil // no such limit here: nothing to check
	}
	switch {
	case need <= soft:
		return nil
	case need <= hard:
		if err := raise(need); err != nil {
			return fmt.Errorf("the run needs %d open files (its connections and result files) and RLIMIT_NOFILE allows %d: raising it to %d failed: %w (raise it with ulimit -n %d before the run)", need, soft, need, err, need)
		}
		return nil
	}
	return fmt.Errorf("the run needs %d open files (its connections and result files), but RLIMIT_NOFILE's hard limit is %d: raise it before the run (as root: ulimit -Hn %d && ulimit -n %d; for a systemd unit LimitNOFILE=%d; in a container --ulimit nofile=%d:%d), or lower -concurrency / -max-concurrency",
		need, hard, need, need, need, need, need)
}
