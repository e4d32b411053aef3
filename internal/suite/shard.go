package suite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/results"
)

// shardSpec is -shard=I/N: this process is shard i of n processes (on one
// host or many) that load the same engine together. Each runs its share of
// every level's streams, starting every sample at the same wall-clock
// instant, and writes its own records; -from merges them.
type shardSpec struct {
	i, n int
}

// parseShard parses -shard: "" (not sharded) or I/N with 0 ≤ I < N.
func parseShard(s string) (shardSpec, error) {
	if strings.TrimSpace(s) == "" {
		return shardSpec{0, 1}, nil
	}
	is, ns, ok := strings.Cut(strings.TrimSpace(s), "/")
	i, err1 := strconv.Atoi(is)
	n, err2 := strconv.Atoi(ns)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return shardSpec{}, fmt.Errorf("-shard=%s: want I/N with 0 ≤ I < N, this process's 0-based index among N (example: -shard=0/2 and -shard=1/2; on Kubernetes -shard=$(JOB_COMPLETION_INDEX)/N)", s)
	}
	if n > 10000 {
		return shardSpec{}, fmt.Errorf("-shard=%s: %d shards is more than inferbench is built for (at most 10000)", s, n)
	}
	return shardSpec{i, n}, nil
}

// sharded reports whether the run is split over several processes.
func (sh shardSpec) sharded() bool { return sh.n > 1 }

// share is how many of c streams this shard runs: c/n, plus one of the
// remainder for the first c mod n shards, so the shares differ by at most
// one and add up to c. A shard's share of a level below n can be 0.
func (sh shardSpec) share(c int) int { return shareOf(c, sh.i, sh.n) }

func shareOf(c, i, n int) int {
	s := c / n
	if i < c%n {
		s++
	}
	return s
}

// seq maps the load generator's seq of this shard to the workload's:
// shards interleave (shard i takes i, i+n, i+2n, …), so no two processes of
// a run send the same prompt, and a run of one shard is unchanged.
func (sh shardSpec) seq(loadSeq int) int { return loadSeq*sh.n + sh.i }

// nameSuffix is what a shard's own result lines and sub-benchmarks carry
// after concurrency=N: its lines are its share of the load, not the run's.
func (sh shardSpec) nameSuffix() string {
	if !sh.sharded() {
		return ""
	}
	return fmt.Sprintf("/shard=%dof%d", sh.i, sh.n)
}

func (sh shardSpec) layout() results.Layout {
	return results.Layout{Suffix: results.ShardSuffix(sh.i, sh.n)}
}

// ErrNoShare is returned by Start when this shard runs none of a level's
// streams (a level below the number of shards); the sub-benchmark skips.
var ErrNoShare = errors.New("this shard has no stream at this level")

// schedule is the common start instants of a run's samples: sample k of the
// process starts at at + k·every by the host's wall clock. Every shard
// given the same flags computes the same instants, so their samples
// start together without talking to each other; the hosts' clocks (NTP)
// are the only link.
type schedule struct {
	at    time.Time // zero: no schedule, samples start when called
	every time.Duration
	mu    sync.Mutex
	next  int // the next sample's index
}

// startTolerance is how late the first sample may start past -start-at
// (set-up and preflight ran over) before the run refuses: a later start
// than the other shards' would leave windows that barely overlap.
const startTolerance = time.Second

// parseSchedule parses -start-at (RFC 3339) and -start-every.
func parseSchedule(at string, every time.Duration) (*schedule, error) {
	sc := &schedule{every: every}
	if every < 0 {
		return nil, fmt.Errorf("-start-every=%v: must be positive (or 0 with a single sample)", every)
	}
	if strings.TrimSpace(at) == "" {
		if every > 0 {
			return nil, errors.New("-start-every needs -start-at: the instant the first sample starts")
		}
		return sc, nil
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(at))
	if err != nil {
		return nil, fmt.Errorf("-start-at=%s: not an RFC 3339 instant (example: -start-at=%s, a minute or two ahead, the same for every shard): %w",
			at, time.Now().UTC().Add(2*time.Minute).Truncate(time.Second).Format(time.RFC3339), err)
	}
	sc.at = t
	return sc, nil
}

// nextStart takes the next sample's start instant; ok is false without a
// schedule.
func (sc *schedule) nextStart() (at time.Time, k int, ok bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	k = sc.next
	sc.next++
	if sc.at.IsZero() {
		return time.Time{}, k, false
	}
	return sc.at.Add(time.Duration(k) * sc.every), k, true
}

// checkShards refuses the combinations a sharded run cannot measure
// honestly, before any engine is probed.
func (s *Suite) checkShards(list []*Engine) error {
	if !s.shard.sharded() {
		return nil
	}
	for _, e := range list {
		if e.sim != nil {
			return fmt.Errorf("-shard=%s with -engines=fake: every shard process would start its own in-process simulated engine, so no engine would see the whole load; start one (go run ./fake/cmd/fake-engine --port 8000) and give every shard -engines=NAME=http://HOST:8000/v1/chat/completions", s.opt.Shard)
		}
	}
	if s.sched.at.IsZero() {
		return fmt.Errorf("-shard=%s needs -start-at: the wall-clock instant every shard starts its first sample at, the same for all (example: -start-at=%s)",
			s.opt.Shard, time.Now().UTC().Add(2*time.Minute).Truncate(time.Second).Format(time.RFC3339))
	}
	if s.sched.every == 0 && len(s.levels)*len(list) > 1 {
		return fmt.Errorf("-shard=%s with %d samples per sweep needs -start-every: sample k starts at -start-at + k × -start-every on every shard; give at least warm-up + -benchtime + cooldown (example: -start-every=1m)",
			s.opt.Shard, len(s.levels)*len(list))
	}
	return nil
}

// waitForStart takes the sample's slot in the schedule and sleeps until its
// instant. A shard with no stream at this level returns ErrNoShare (its
// slot is taken all the same, so later samples stay aligned). The first
// sample fails if its instant passed more than startTolerance ago; a later
// one that is late (the previous sample overran -start-every) starts at
// once and says so in the samples file (StartAtUnixNano vs Started).
func (sm *Sample) waitForStart() error {
	s := sm.s
	at, k, ok := s.sched.nextStart()
	if sm.meta.Streams == 0 {
		return fmt.Errorf("%w: shard %d/%d runs none of concurrency=%d's streams (%d shards): the other shards run them",
			ErrNoShare, s.shard.i, s.shard.n, sm.c, s.shard.n)
	}
	if !ok || (k > 0 && s.sched.every == 0) {
		return nil
	}
	sm.meta.StartAtUnixNano = at.UnixNano()
	wait := time.Until(at)
	if k == 0 && wait < -startTolerance {
		return fmt.Errorf("-start-at=%s passed %v ago, before the first sample could start (set-up and preflight took longer): give every shard a later -start-at",
			at.UTC().Format(time.RFC3339Nano), (-wait).Round(time.Millisecond))
	}
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-sm.ctx.Done():
		return fmt.Errorf("%w while waiting for the start instant: %w", ErrInterrupted, context.Cause(sm.ctx))
	}
}

// sampleMeta is the samples-file line of a finished sample.
func (sm *Sample) sampleMeta(res load.Result, interrupted bool, extra []Metric, comments []string) results.SampleMeta {
	m := sm.meta
	m.Comments = comments
	for _, x := range extra {
		if m.Extra == nil {
			m.Extra = map[string]float64{}
		}
		m.Extra[x.Unit] = x.Value
	}
	m.Records = len(res.Records)
	m.RampedUp = res.RampedUp
	m.WindowStart, m.WindowEnd = res.Window.Start, res.Window.End
	m.Interrupted = interrupted
	return m
}

// runMeta is the run line of engine e's samples file.
func (s *Suite) runMeta(e *Engine, comments []string) results.RunMeta {
	m := results.RunMeta{
		Engine:         e.name,
		Header:         s.header,
		EngineComments: comments,
		Multi:          s.multi,
		GOMAXPROCS:     runtime.GOMAXPROCS(0),
		OutputTokens:   s.opt.OutputTokens,
		Shard:          s.shard.i,
		Shards:         s.shard.n,
		EpochUnixNano:  s.epoch.UnixNano(),
		Epoch:          s.epoch.UTC().Format(time.RFC3339Nano),
	}
	if s.allSimulated() && e.sim != nil {
		// A Config is plain numbers: Marshal cannot fail. Were it to,
		// the samples file would say model_ratios without sim, and -from
		// would refuse it rather than drop the ratios silently.
		m.ModelRatios = true
		m.Sim, _ = json.Marshal(e.sim)
	}
	return m
}
