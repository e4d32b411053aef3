package suite

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/results"
)

// ErrKept is returned by Start for a sample that -resume kept from the run
// it resumes: the sub-benchmark skips, and the sample's line is already in
// the results files.
var ErrKept = errors.New("kept from the run before (-resume): its result line is in the results files")

// resumeState is what -resume keeps of the run it resumes: per engine, the
// samples whose records are all there, verified from the records (their
// number and the measured window they give), not trusted from the samples
// file alone.
type resumeState struct {
	dir     string
	engines map[string]*resumedEngine
	kept    map[string]int // engine/level → samples kept there (indices 0…n−1)
	notes   []string       // what was left out, and why
	epoch   int64          // the run's epoch, ns since 1970
}

type resumedEngine struct {
	saved   results.Saved // the run before's files, Samples cut to the kept ones
	recs    map[sampleKey][]record.Record
	maxSeq  int
	nrecs   int // records kept
	samples int // samples kept
}

// resumeUnsupported says why a run with these options cannot be resumed,
// or "" when it can.
func (s *Suite) resumeUnsupported() string {
	switch {
	case s.opt.From != "":
		return "-resume and -from: -from recomputes a run and measures nothing; drop one"
	case len(s.rates) > 0 || s.opt.Trace != "":
		return "-resume: an open-loop run (-rate, -trace) cannot be resumed yet: its samples files do not describe its samples; run it again"
	case s.auto != nil:
		return "-resume with -concurrency=auto: the probe's levels are not kept; resume with -concurrency set to the levels in the header of the run before"
	case s.shard.n > 1:
		return "-resume with -shard: a sharded run cannot be resumed yet; run the shard again"
	case s.opt.SLO != "":
		return "-resume with -slo: BenchmarkCapacity's searches cannot be resumed yet; resume without -slo, then add goodput with -from=DIR -slo=…"
	}
	return ""
}

// loadResume reads the files of the run in dir for every engine named, and
// keeps, at each level, the longest run of samples 0, 1, … that finished
// and whose records file holds exactly its records giving exactly its
// window. Records of any other sample (unfinished, interrupted, or whose
// records do not check) are left out, and so are the samples after it at
// that level: they run again.
func loadResume(dir string, names []string) (*resumeState, error) {
	st := &resumeState{dir: dir, engines: map[string]*resumedEngine{}, kept: map[string]int{}}
	for i, name := range names {
		samplesPath := filepath.Join(dir, name+results.SamplesExt)
		f, err := os.Open(samplesPath)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("-resume: %s does not exist: there is no run of engine %s in -out=%s to resume (pass the -out of that run, or drop -resume to start one)", samplesPath, name, dir)
		}
		if err != nil {
			return nil, fmt.Errorf("-resume: %w", err)
		}
		run, metas, err := results.ReadSamples(f)
		f.Close()
		var cut *results.CutLineError
		if errors.As(err, &cut) && cut.Line == 1 {
			return nil, fmt.Errorf("-resume: %s has no run line (it is cut): that run stopped before it measured anything; drop -resume to start over", samplesPath)
		}
		if errors.As(err, &cut) {
			st.notes = append(st.notes, fmt.Sprintf("%s: %v; the sample it was to describe runs again", samplesPath, err))
			err = nil
		}
		if err != nil {
			return nil, fmt.Errorf("-resume: %s: %w (drop -resume to start over)", samplesPath, err)
		}
		if run.Engine != name {
			return nil, fmt.Errorf("-resume: %s is engine %q's, not %s's", samplesPath, run.Engine, name)
		}
		if i == 0 {
			st.epoch = run.EpochUnixNano
		} else if run.EpochUnixNano != st.epoch {
			return nil, fmt.Errorf("-resume: the files of %s and %s in %s are of different runs (epochs %s and %s): resume one run at a time", names[0], name, dir, time.Unix(0, st.epoch).UTC().Format(time.RFC3339), run.Epoch)
		}
		re := &resumedEngine{maxSeq: -1}
		recPath := filepath.Join(dir, name+".jsonl")
		var note string
		if re.recs, note, err = recordsBySample(name, recPath); err != nil {
			return nil, fmt.Errorf("-resume: %s: %w (drop -resume to start over)", recPath, err)
		}
		if note != "" {
			st.notes = append(st.notes, note)
		}
		sv := results.Saved{Records: recPath, SamplesPath: samplesPath, Run: run}
		next := map[int]int{}     // level → the next sample index to keep
		stopped := map[int]bool{} // levels where keeping stopped
		for _, m := range metas {
			c := m.Concurrency
			why := ""
			switch {
			case stopped[c]:
				why = "an earlier sample at its level runs again"
			case m.Sample != next[c]:
				why = fmt.Sprintf("sample %d is missing before it", next[c])
			case m.Interrupted:
				why = "it was interrupted"
			default:
				if _, err := newShardSample(sv, m, re.recs[sampleKey{c, m.Sample}]); err != nil {
					why = err.Error()
				}
			}
			if why != "" {
				stopped[c] = true
				st.notes = append(st.notes, fmt.Sprintf("engine %s concurrency=%d sample %d runs again: %s", name, c, m.Sample, why))
				continue
			}
			next[c]++
			sv.Samples = append(sv.Samples, m)
		}
		keep := map[sampleKey]bool{}
		for _, m := range sv.Samples {
			k := sampleKey{m.Concurrency, m.Sample}
			keep[k] = true
			for _, r := range re.recs[k] {
				re.maxSeq = max(re.maxSeq, r.Seq)
			}
			re.nrecs += len(re.recs[k])
		}
		left := 0
		for k, rs := range re.recs {
			if !keep[k] {
				left += len(rs)
				delete(re.recs, k)
			}
		}
		if left > 0 {
			st.notes = append(st.notes, fmt.Sprintf("%s: %d records of samples that run again are left out", recPath, left))
		}
		for c, n := range next {
			st.kept[name+"/"+fmt.Sprintf("concurrency=%d", c)] = n
		}
		re.samples = len(sv.Samples)
		re.saved = sv
		st.engines[name] = re
	}
	return st, nil
}

// resumeEpoch is the instant, on this process's monotonic clock, that is
// the run before's epoch by the wall clock: every offset of the resumed
// run's records then counts from the same epoch as the kept ones.
func resumeEpoch(epochUnixNano int64) time.Time {
	now := time.Now()
	return now.Add(-time.Duration(now.UnixNano() - epochUnixNano))
}

// applyResume checks that the run before was made with this run's
// configuration, then rewrites its files to hold what is kept: the kept
// samples' records and samples lines, and their result lines recomputed
// from them (as -from does), under this run's header. Each file is
// written whole beside the original and renamed over it (records first),
// so a run killed while resuming leaves files that -resume reads again,
// losing no kept sample. The files are then opened to append (layout).
func (s *Suite) applyResume(names []string, perEngine map[string][]string, layout results.Layout) error {
	st := s.resume
	for _, e := range s.engines {
		re := st.engines[e.name]
		old, now := re.saved.Run, s.runMeta(e, perEngine[e.name])
		if d := runDifference(old, now); d != "" {
			return fmt.Errorf("-resume: %s was written by a run with %s: resume with the flags of that run (its files' headers show them), or drop -resume to start over", re.saved.SamplesPath, d)
		}
	}
	kept := 0
	for _, re := range st.engines {
		kept += re.samples
	}
	s.header.Comments = append(s.header.Comments, fmt.Sprintf("resumed by -resume at %s: %d sample(s) of the run before kept, checked against their records; the others ran again",
		time.Now().UTC().Format(time.RFC3339), kept))
	for _, n := range st.notes {
		s.header.Comments = append(s.header.Comments, "-resume: "+oneLine(n))
	}

	// The kept samples' result lines, recomputed as -from does.
	lines := map[string][]recomputed{}
	for _, e := range s.engines {
		re := st.engines[e.name]
		if re.samples == 0 {
			continue
		}
		// The records loadResume read and cut to the kept samples: the
		// file is not read again.
		g := &shardGroup{engine: e.name, shards: []results.Saved{re.saved}, n: 1, recs: []map[sampleKey][]record.Record{re.recs}}
		rs, err := g.recompute(s.opt, nil)
		if err != nil {
			return fmt.Errorf("-resume: engine %s: %w", e.name, err)
		}
		slices.SortStableFunc(rs, func(a, b recomputed) int { return int(a.startedWall - b.startedWall) })
		lines[e.name] = rs
	}

	tmp, err := os.MkdirTemp(st.dir, ".resume-")
	if err != nil {
		return fmt.Errorf("-resume: %w", err)
	}
	defer os.RemoveAll(tmp)
	d, err := results.CreateIn(tmp, names, s.header, perEngine, results.Layout{Wrap: layout.Wrap})
	if err != nil {
		return fmt.Errorf("-resume: %w", err)
	}
	werr := func() error {
		for _, e := range s.engines {
			re := st.engines[e.name]
			if err := d.Run(e.name, s.runMeta(e, perEngine[e.name])); err != nil {
				return err
			}
			for _, m := range re.saved.Samples {
				recs := re.recs[sampleKey{m.Concurrency, m.Sample}]
				if err := d.Records(e.name, recs); err != nil {
					return err
				}
				if err := d.Sample(e.name, m); err != nil {
					return err
				}
			}
			for _, r := range lines[e.name] {
				var ls []string
				if r.res.failedLine != "" {
					ls = append(ls, r.res.failedLine)
				}
				ls = append(ls, r.comments...)
				for _, l := range ls {
					if err := d.Line(e.name, l); err != nil {
						return err
					}
				}
				if err := d.Result(e.name, r.res.Line, r.res.All); err != nil {
					return err
				}
			}
		}
		return d.Sync()
	}()
	if err := errors.Join(werr, d.Close()); err != nil {
		return fmt.Errorf("-resume: writing the kept samples: %w", err)
	}
	for _, name := range names {
		for _, ext := range []string{".jsonl", results.SamplesExt, ".txt", results.AllExt} {
			if err := os.Rename(filepath.Join(tmp, name+ext), filepath.Join(st.dir, name+ext)); err != nil {
				return fmt.Errorf("-resume: %w", err)
			}
		}
	}

	// What the kept samples stand for in this run: their indices are
	// taken, their workload seqs used, and summary.json lists them.
	for _, e := range s.engines {
		re := st.engines[e.name]
		e.mu.Lock()
		e.started += re.samples
		e.nextSeq = max(e.nextSeq, re.maxSeq+1)
		e.mu.Unlock()
		for _, r := range lines[e.name] {
			if r.interrupted {
				continue
			}
			s.recordSample(e, r.key.c, r.key.n, r.res)
			s.done.Add(1)
			if slices.ContainsFunc(r.comments, func(l string) bool { return strings.HasPrefix(l, "# CLIENT-BOUND") }) {
				s.self.bound.Add(1)
			}
		}
	}
	return nil
}

// runDifference says how the configuration of the run before (old) differs
// from this run's (now), or "" when they are the same: the benchfmt
// configuration (model, workload, lengths, simulated), the engines'
// naming, GOMAXPROCS, the output length and the simulator's model.
func runDifference(old, now results.RunMeta) string {
	oc, nc := map[string]string{}, map[string]string{}
	for _, kv := range old.Header.Config {
		oc[kv.Key] = kv.Value
	}
	for _, kv := range now.Header.Config {
		nc[kv.Key] = kv.Value
	}
	for _, kv := range now.Header.Config {
		if v, ok := oc[kv.Key]; !ok || v != kv.Value {
			return fmt.Sprintf("%s %q, this one %q", kv.Key, oc[kv.Key], kv.Value)
		}
	}
	for _, kv := range old.Header.Config {
		if _, ok := nc[kv.Key]; !ok {
			return fmt.Sprintf("%s %q, this one none", kv.Key, kv.Value)
		}
	}
	switch {
	case old.Multi != now.Multi:
		return fmt.Sprintf("multi-engine names %v, this one %v (-engines lists a different number of engines)", old.Multi, now.Multi)
	case old.GOMAXPROCS != now.GOMAXPROCS:
		return fmt.Sprintf("GOMAXPROCS=%d, this one %d", old.GOMAXPROCS, now.GOMAXPROCS)
	case old.OutputTokens != now.OutputTokens:
		return fmt.Sprintf("-output-tokens=%d, this one %d", old.OutputTokens, now.OutputTokens)
	case old.ModelRatios != now.ModelRatios || !bytes.Equal(old.Sim, now.Sim):
		return "another simulated engine configuration"
	}
	return ""
}
