package suite

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/inferbench/inferbench/fake/sim"
	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/results"
	"github.com/inferbench/inferbench/internal/slo"
	"github.com/inferbench/inferbench/plots"
)

// Recompute is -from: it recomputes the result lines of the run (or of the
// shards of a run) whose files are in opt.From from the per-request records
// and the samples files alone, contacting no engine. It calls the same
// analyze as Sample.Finish, so on a run's own folder it gives the run's
// result lines byte for byte; on the folder of several shards it merges
// each sample's shards into one line (see mergeShards).
//
// It writes to w what a run prints: the header, then one result line per
// sample, named as BenchmarkServe's sub-benchmarks, in the order the
// samples started (benchstat reads it as it reads a run's output), with
// logs as '#' lines. When opt.Out is set it also writes <engine>.txt there
// (the header, a "# recomputed" line, the result lines) and, if plot is
// set, the plots. Options that only affect analysis apply: MaxErrorRate,
// Bench (which sub-benchmarks to report). Everything about measuring
// (engines, levels, workload) is read from the files. It returns an error
// if the files cannot be read, do not fit together, or a sample fails
// (error rate above MaxErrorRate); the lines it could compute are written
// all the same.
func Recompute(opt Options, w io.Writer, plot bool) error {
	if opt.MaxErrorRate < 0 || opt.MaxErrorRate > 1 {
		return fmt.Errorf("-max-error-rate=%g: must be between 0 and 1", opt.MaxErrorRate)
	}
	saved, err := results.Find(opt.From)
	if err != nil {
		return fmt.Errorf("-from=%s: %w", opt.From, err)
	}
	groups, err := groupShards(saved)
	if err != nil {
		return fmt.Errorf("-from=%s: %w", opt.From, err)
	}
	var match func(name string) bool
	if opt.Bench != "" {
		m, err := newBenchMatcher(opt.Bench)
		if err != nil {
			return fmt.Errorf("-bench=%s: %w", opt.Bench, err)
		}
		match = m.match
	}

	var all []recomputed
	var errs []error
	for _, g := range groups {
		rs, err := g.recompute(opt, match)
		if err != nil {
			return fmt.Errorf("-from=%s: engine %s: %w", opt.From, g.engine, err)
		}
		all = append(all, rs...)
	}
	if len(groups) > 0 {
		w.Write(groups[0].shards[0].Run.Header.Bytes())
	}
	fmt.Fprintf(w, "# inferbench -from=%s: recomputed from the per-request records; no engine was contacted\n", opt.From)
	for _, g := range groups {
		for _, n := range g.notes {
			fmt.Fprintf(w, "# -from: %s\n", n)
		}
	}
	// The order the samples started in, as a run prints them.
	sorted := slices.Clone(all)
	slices.SortStableFunc(sorted, func(a, b recomputed) int { return int(a.startedWall - b.startedWall) })
	for _, r := range sorted {
		for _, n := range r.notes {
			fmt.Fprintf(w, "# %s: %s\n", r.benchName, n)
		}
		if r.interrupted {
			continue
		}
		fmt.Fprintln(w, r.stdoutLine)
		for _, l := range r.res.Logs {
			fmt.Fprintf(w, "# %s: %s\n", r.benchName, l)
		}
		for _, err := range r.res.Errs {
			fmt.Fprintf(w, "# %s: FAIL: %v\n", r.benchName, err)
			errs = append(errs, fmt.Errorf("%s: %w", r.benchName, err))
		}
	}
	if opt.Out != "" {
		txts, err := writeRecomputed(opt, groups, all)
		if err != nil {
			return err
		}
		for _, f := range txts {
			fmt.Fprintf(w, "# wrote %s\n", f)
		}
		if plot && len(txts) > 0 {
			var args []string
			for _, f := range txts {
				args = append(args, plots.Labeled(f))
			}
			written, perr := plots.Generate(args, opt.Out)
			for _, f := range written {
				fmt.Fprintf(w, "# wrote %s\n", f)
			}
			if perr != nil {
				fmt.Fprintf(w, "# plots: %v\n", perr)
			}
		}
	}
	return errors.Join(errs...)
}

// recomputed is one sample's recomputed result.
type recomputed struct {
	engine      string
	benchName   string // BenchmarkServe/…, as the run's sub-benchmark was named
	stdoutLine  string // the result line under that name
	res         Result
	notes       []string // merge facts, for '#' lines
	comments    []string // the run's '#' lines of the sample (SampleMeta.Comments), one process only
	interrupted bool
	startedWall int64     // when the sample started, ns since 1970 (order of output)
	key         sampleKey // its level and index
}

// shardGroup is one engine's files: one run, or the shards of one.
type shardGroup struct {
	notes  []string // what the recomputation left out, and why
	engine string
	shards []results.Saved // indexed by shard
	n      int
	// recs, when set, are the shards' records by sample, already read
	// (-resume has read and checked them): recompute reads no file.
	recs []map[sampleKey][]record.Record
}

// recordsBySample reads engine's records file by sample. A cut last line
// (the run stopped while it wrote a record: the request of an unfinished
// sample, since a finished one's records are all written before its line
// in the samples file, which the counts check) is left out and said in
// note.
func recordsBySample(engine, path string) (_ map[sampleKey][]record.Record, note string, _ error) {
	recs := map[sampleKey][]record.Record{}
	err := results.ReadRecords(path, func(r *record.Record) error {
		if r.Engine != engine {
			return fmt.Errorf("a record of engine %q in engine %s's file", r.Engine, engine)
		}
		k := sampleKey{r.Concurrency, r.Sample}
		recs[k] = append(recs[k], *r)
		return nil
	})
	var cut *results.CutLineError
	if errors.As(err, &cut) {
		return recs, fmt.Sprintf("%v; left out", err), nil
	}
	return recs, "", err
}

// groupShards groups the saved files by engine and checks that the shards
// of each fit together: the same number of shards, each index once, the
// same levels of configuration.
func groupShards(saved []results.Saved) ([]*shardGroup, error) {
	var out []*shardGroup
	by := map[string]*shardGroup{}
	for _, sv := range saved {
		run := sv.Run
		g := by[run.Engine]
		if g == nil {
			g = &shardGroup{engine: run.Engine, n: run.Shards, shards: make([]results.Saved, run.Shards)}
			by[run.Engine] = g
			out = append(out, g)
		}
		switch {
		case run.Shards != g.n:
			return nil, fmt.Errorf("engine %s: %s is shard %d of %d, another file is of %d shards: put the files of one run in a folder of their own",
				run.Engine, sv.SamplesPath, run.Shard, run.Shards, g.n)
		case g.shards[run.Shard].SamplesPath != "":
			return nil, fmt.Errorf("engine %s: shard %d of %d twice (%s and %s)", run.Engine, run.Shard, run.Shards, g.shards[run.Shard].SamplesPath, sv.SamplesPath)
		}
		g.shards[run.Shard] = sv
	}
	for _, g := range out {
		for i, sv := range g.shards {
			if sv.SamplesPath == "" {
				return nil, fmt.Errorf("engine %s: the files of shard %d of %d are missing (want %s%s%s beside the others): copy every shard's -out folder into one",
					g.engine, i, g.n, g.engine, results.ShardSuffix(i, g.n), results.SamplesExt)
			}
			s0, si := g.shards[0].Run, sv.Run
			if si.OutputTokens != s0.OutputTokens || si.ModelRatios != s0.ModelRatios || !bytes.Equal(si.Sim, s0.Sim) {
				return nil, fmt.Errorf("engine %s: shard %d was run with other options than shard 0 (output tokens %d vs %d): every shard needs the same flags but -shard",
					g.engine, i, si.OutputTokens, s0.OutputTokens)
			}
		}
	}
	return out, nil
}

type sampleKey struct{ c, n int }

// recompute recomputes every sample of the group that match selects.
func (g *shardGroup) recompute(opt Options, match func(string) bool) ([]recomputed, error) {
	run0 := g.shards[0].Run
	var simCfg *sim.Config
	if run0.ModelRatios {
		simCfg = new(sim.Config)
		if err := json.Unmarshal(run0.Sim, simCfg); err != nil {
			return nil, fmt.Errorf("%s: the simulator's configuration: %w", g.shards[0].SamplesPath, err)
		}
	}
	// Every shard's records, by sample. Shard 0 has a share of every
	// level (its share is never 0), so its samples are the run's.
	recs := make([]map[sampleKey][]record.Record, g.n)
	metas := make([]map[sampleKey]results.SampleMeta, g.n)
	for i, sv := range g.shards {
		metas[i] = map[sampleKey]results.SampleMeta{}
		for _, m := range sv.Samples {
			metas[i][sampleKey{m.Concurrency, m.Sample}] = m
		}
		g.notes = append(g.notes, sv.Notes...)
		if g.recs != nil {
			recs[i] = g.recs[i]
		} else {
			var note string
			var err error
			if recs[i], note, err = recordsBySample(g.engine, sv.Records); err != nil {
				return nil, err
			}
			if note != "" {
				g.notes = append(g.notes, note)
			}
		}
		unfinished, left := 0, 0
		for k, rs := range recs[i] {
			if _, ok := metas[i][k]; !ok {
				unfinished++
				left += len(rs)
			}
		}
		if unfinished > 0 {
			g.notes = append(g.notes, fmt.Sprintf("%s: %d records of %d sample(s) the run did not finish (no line in %s) are left out",
				sv.Records, left, unfinished, filepath.Base(sv.SamplesPath)))
		}
	}
	var out []recomputed
	for _, m0 := range g.shards[0].Samples {
		k := sampleKey{m0.Concurrency, m0.Sample}
		name := benchParent + "/" + subName(run0.Multi, g.engine, k.c)
		if match != nil && !match(name) {
			continue
		}
		parts := make([]shardSample, 0, g.n)
		for i := range g.n {
			want := shareOf(k.c, i, g.n)
			m, ok := metas[i][k]
			switch {
			case want == 0 && !ok:
				continue // this shard ran none of the level's streams
			case !ok:
				return nil, fmt.Errorf("concurrency=%d sample %d: shard %d of %d has no such sample in %s (it should have run %d of the streams)",
					k.c, k.n, i, g.n, g.shards[i].SamplesPath, want)
			case m.Streams != want:
				return nil, fmt.Errorf("concurrency=%d sample %d: shard %d ran %d streams, its share is %d", k.c, k.n, i, m.Streams, want)
			}
			p, err := newShardSample(g.shards[i], m, recs[i][k])
			if err != nil {
				return nil, err
			}
			parts = append(parts, p)
		}
		r := recomputed{
			engine:      g.engine,
			benchName:   fmt.Sprintf("%s-%d", name, run0.GOMAXPROCS),
			startedWall: run0.EpochUnixNano + int64(m0.Started),
			key:         k,
		}
		if slices.ContainsFunc(parts, func(p shardSample) bool { return p.meta.Interrupted }) {
			r.interrupted = true
			r.notes = append(r.notes, fmt.Sprintf("sample %d was interrupted during the run: its records are saved, its numbers are not reported", k.n))
			out = append(out, r)
			continue
		}
		all, window, notes, err := mergeShards(parts)
		if err != nil {
			return nil, fmt.Errorf("concurrency=%d sample %d: %w", k.c, k.n, err)
		}
		a := analysis{
			level:        k.c,
			sample:       k.n,
			name:         fmt.Sprintf("concurrency=%d", k.c),
			procs:        run0.GOMAXPROCS,
			maxErrorRate: opt.MaxErrorRate,
			sim:          simCfg,
			outputTokens: run0.OutputTokens,
			records:      g.recordsDesc(),
		}
		if opt.SLO != "" {
			if a.slo, err = slo.Parse(opt.SLO); err != nil {
				return nil, err
			}
		}
		r.res = analyze(all, window, a)
		if len(parts) == 1 {
			r.comments = parts[0].meta.Comments
		}
		if len(parts) == 1 && len(parts[0].meta.Extra) > 0 {
			// What the run measured beside the records (its own CPU, the
			// workload's metrics): back on the line as it was written.
			units := make([]string, 0, len(parts[0].meta.Extra))
			for u := range parts[0].meta.Extra {
				units = append(units, u)
			}
			slices.Sort(units)
			for _, u := range units {
				r.res.Metrics = append(r.res.Metrics, Metric{parts[0].meta.Extra[u], u})
			}
			r.res.Line, r.res.All = resultLines(a.name, a.procs, r.res.Summary.Requests, r.res.Metrics)
		}
		r.notes = notes
		r.stdoutLine, _ = resultLines(subName(run0.Multi, g.engine, k.c), run0.GOMAXPROCS, r.res.Summary.Requests, r.res.Metrics)
		out = append(out, r)
	}
	return out, nil
}

func (g *shardGroup) recordsDesc() string {
	if g.n == 1 {
		return g.shards[0].Records
	}
	return filepath.Join(filepath.Dir(g.shards[0].Records), g.engine+".shard-*.jsonl")
}

// shardSample is one shard's part of one sample.
type shardSample struct {
	run    results.RunMeta
	meta   results.SampleMeta
	recs   []record.Record // in seq order
	window load.Window     // recomputed from recs and meta.RampedUp
}

// newShardSample checks one shard's part of a sample against its samples
// line: as many records as it says, and the window it says, recomputed
// from them.
func newShardSample(sv results.Saved, m results.SampleMeta, recs []record.Record) (shardSample, error) {
	if len(recs) != m.Records {
		return shardSample{}, fmt.Errorf("concurrency=%d sample %d: %s has %d records of it, %s says %d: the records file is cut or not this run's",
			m.Concurrency, m.Sample, sv.Records, len(recs), sv.SamplesPath, m.Records)
	}
	slices.SortStableFunc(recs, func(a, b record.Record) int { return a.Seq - b.Seq })
	w := load.MeasuredWindow(recs, m.RampedUp)
	if w.Start != m.WindowStart || w.End != m.WindowEnd {
		return shardSample{}, fmt.Errorf("concurrency=%d sample %d: the records give the window %v → %v, %s says %v → %v: the files do not belong together",
			m.Concurrency, m.Sample, w.Start, w.End, sv.SamplesPath, m.WindowStart, m.WindowEnd)
	}
	return shardSample{run: sv.Run, meta: m, recs: recs, window: w}, nil
}

// minOverlap is the fraction of the shortest shard window that the common
// window must cover before the merge warns: less means the shards' samples
// were not running together for much of it (a late shard, a clock off).
const minOverlap = 0.9

// mergeShards brings the shards' records to one time base and computes the
// window of the merged sample. One shard: its records and window as they
// are (so -from reproduces a run exactly). Several: every offset is moved
// by the shard's epoch (wall clock) minus the earliest shard's, the window
// is the common part of the shards' windows (while every shard held its
// streams, so the level's whole concurrency ran), and the records are all
// the shards' in seq order (shards interleave seqs, so the order is total).
// Throughput over the common window is then the shards' sum, and latency
// percentiles come from every shard's requests. Windows that do not
// overlap are refused: the shards did not run together.
//
// The hosts' wall clocks are the only link between shards. An offset of d
// between two hosts' clocks moves the common window's ends by up to d; the
// notes report each shard's start against the scheduled instant by its own
// clock and the spread of the windows' starts, the observable bounds.
func mergeShards(parts []shardSample) ([]record.Record, load.Window, []string, error) {
	if len(parts) == 1 {
		return parts[0].recs, parts[0].window, nil, nil
	}
	base := parts[0].run.EpochUnixNano
	for _, p := range parts {
		base = min(base, p.run.EpochUnixNano)
	}
	var total int
	for _, p := range parts {
		total += len(p.recs)
	}
	all := make([]record.Record, 0, total)
	var common load.Window
	var starts, lags, lens []string
	minStart, maxStart := time.Duration(0), time.Duration(0)
	shortest := time.Duration(-1)
	for i, p := range parts {
		shift := time.Duration(p.run.EpochUnixNano - base)
		w := load.Window{Start: p.window.Start + shift, End: p.window.End + shift}
		if i == 0 {
			common, minStart, maxStart = w, w.Start, w.Start
		} else {
			common.Start, common.End = max(common.Start, w.Start), min(common.End, w.End)
			minStart, maxStart = min(minStart, w.Start), max(maxStart, w.Start)
		}
		if shortest < 0 || w.Len() < shortest {
			shortest = w.Len()
		}
		lens = append(lens, fmt.Sprintf("%d:%v", p.run.Shard, w.Len().Round(time.Millisecond)))
		starts = append(starts, fmt.Sprintf("%d:%v", p.run.Shard, w.Start.Round(time.Microsecond)))
		if p.meta.StartAtUnixNano != 0 {
			lag := time.Duration(p.run.EpochUnixNano + int64(p.meta.Started) - p.meta.StartAtUnixNano)
			sign := "+"
			if lag < 0 {
				sign = ""
			}
			lags = append(lags, fmt.Sprintf("%d:%s%v", p.run.Shard, sign, lag.Round(time.Microsecond)))
		}
		for _, r := range p.recs {
			all = append(all, shiftRecord(r, shift))
		}
	}
	if common.Len() <= 0 {
		return nil, load.Window{}, nil, fmt.Errorf("the shards' measured windows do not overlap (window starts %s, lengths %s, on the earliest shard's clock): they did not run together; give every shard the same -start-at and -start-every, and check that the hosts' clocks are synchronised (NTP)",
			strings.Join(starts, " "), strings.Join(lens, " "))
	}
	slices.SortStableFunc(all, func(a, b record.Record) int { return a.Seq - b.Seq })
	notes := []string{fmt.Sprintf("merged %d shards: common window %v of shard windows %s; window starts spread %v; start vs -start-at by each host's clock %s (host clocks are trusted: an offset between them shifts the window by as much)",
		len(parts), common.Len().Round(time.Millisecond), strings.Join(lens, " "), (maxStart - minStart).Round(time.Microsecond), orNone(lags))}
	if shortest > 0 && float64(common.Len()) < minOverlap*float64(shortest) {
		notes = append(notes, fmt.Sprintf("warning: the common window is %.0f%% of the shortest shard window: the shards ran together for only part of the sample", 100*float64(common.Len())/float64(shortest)))
	}
	return all, common, notes, nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(no schedule)"
	}
	return strings.Join(s, " ")
}

// shiftRecord moves every instant of r by d (Headers only if it happened).
func shiftRecord(r record.Record, d time.Duration) record.Record {
	if d == 0 {
		return r
	}
	r.Intended += d
	r.Sent += d
	if r.Headers != 0 {
		r.Headers += d
	}
	r.Done += d
	ch := make([]record.Chunk, len(r.Chunks))
	for i, c := range r.Chunks {
		ch[i] = record.Chunk{At: c.At + d, Tokens: c.Tokens}
	}
	r.Chunks = ch
	return r
}

// writeRecomputed writes <engine>.txt and <engine>.all.txt into opt.Out
// for every group; it returns the .txt files' paths.
func writeRecomputed(opt Options, groups []*shardGroup, all []recomputed) ([]string, error) {
	if err := os.MkdirAll(opt.Out, 0o755); err != nil {
		return nil, fmt.Errorf("-out=%s: %w", opt.Out, err)
	}
	var paths []string
	for _, g := range groups {
		run := g.shards[0].Run
		hdr := run.Header
		hdr.Comments = append(append(slices.Clone(hdr.Comments), run.EngineComments...),
			fmt.Sprintf("recomputed by -from=%s from the per-request records (%d shard(s)); no engine was contacted", opt.From, g.n))
		var b, full bytes.Buffer
		b.Write(hdr.Bytes())
		full.Write(hdr.Bytes())
		for _, r := range all {
			if r.engine != g.engine {
				continue
			}
			for _, n := range r.notes {
				b.WriteString("# " + oneLine(n) + "\n")
			}
			if r.interrupted {
				continue
			}
			if r.res.failedLine != "" {
				b.WriteString(r.res.failedLine + "\n")
			}
			for _, c := range r.comments {
				b.WriteString(c + "\n")
			}
			b.WriteString(r.res.Line + "\n")
			full.WriteString(r.res.All + "\n")
		}
		p := filepath.Join(opt.Out, g.engine+".txt")
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return nil, fmt.Errorf("-out=%s: %w", opt.Out, err)
		}
		if err := os.WriteFile(filepath.Join(opt.Out, g.engine+results.AllExt), full.Bytes(), 0o644); err != nil {
			return nil, fmt.Errorf("-out=%s: %w", opt.Out, err)
		}
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return paths, nil
}
