package suite

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progress is the run's progress line on the terminal (Options.Progress,
// /dev/tty in BenchmarkServe): the current engine and level, its measured
// requests done and the elapsed times, redrawn in place every tick. It
// never writes to stdout, which stays benchmark output; between samples
// the line is cleared so the result lines print on a clean line.
type progress struct {
	w     io.Writer
	now   func() time.Time
	start time.Time // the run's start

	mu     sync.Mutex
	active bool
	engine string
	c, n   int       // level and sample index
	since  time.Time // the sample's start
	shown  bool      // a line is on the terminal

	done atomic.Int64 // measured requests of the current sample that ended
	stop chan struct{}
	wg   sync.WaitGroup
}

// progressTick is how often the line is redrawn.
const progressTick = 500 * time.Millisecond

func newProgress(w io.Writer, now func() time.Time) *progress {
	if now == nil {
		now = time.Now
	}
	return &progress{w: w, now: now, start: now(), stop: make(chan struct{})}
}

// run redraws the line until stopped.
func (p *progress) run() {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(progressTick)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
}

// begin starts showing a sample.
func (p *progress) begin(engine string, c, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active, p.engine, p.c, p.n, p.since = true, engine, c, n, p.now()
	p.done.Store(0)
}

// measuredDone counts one finished measured request.
func (p *progress) measuredDone() { p.done.Add(1) }

// pause clears the line until the next begin.
func (p *progress) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active = false
	p.clearLocked()
}

// close stops redrawing and clears the line.
func (p *progress) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.wg.Wait()
	p.pause()
}

func (p *progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.active {
		return
	}
	fmt.Fprintf(p.w, "\r\033[K%s", p.lineLocked())
	p.shown = true
}

func (p *progress) clearLocked() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

// lineLocked is the progress text: engine, level, sample, measured
// requests done, the sample's and the run's elapsed time.
func (p *progress) lineLocked() string {
	now := p.now()
	run := now.Sub(p.start).Round(time.Second)
	return fmt.Sprintf("inferbench: %s  concurrency=%d  sample %d  %d measured requests done  %.1fs  (run %s)",
		p.engine, p.c, p.n+1, p.done.Load(), now.Sub(p.since).Seconds(), run)
}

// Progress hooks of the suite; all are no-ops without Options.Progress.

func (s *Suite) startProgress() {
	if s.opt.Progress == nil {
		return
	}
	s.rep.progress = newProgress(s.opt.Progress, nil)
	s.rep.progress.run()
}

func (s *Suite) progressBegin(e *Engine, c, n int) {
	if p := s.rep.progress; p != nil {
		p.begin(e.name, c, n)
	}
}

func (s *Suite) progressMeasured() {
	if p := s.rep.progress; p != nil {
		p.measuredDone()
	}
}

func (s *Suite) progressPause() {
	if p := s.rep.progress; p != nil {
		p.pause()
	}
}

func (s *Suite) stopProgress() {
	if p := s.rep.progress; p != nil {
		p.close()
	}
}
