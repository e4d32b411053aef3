package results

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/inferbench/inferbench/internal/record"
)

// SamplesExt ends the name of a samples file: <engine>[suffix].samples.jsonl.
const SamplesExt = ".samples.jsonl"

// MetaVersion is the version of the samples file's format that this
// package writes and reads.
const MetaVersion = 1

// Meta is one line of a samples file: exactly one of Run (the first line)
// and Sample (every later line) is set. The records file beside it holds
// the requests; the two together are what a result line is computed from.
type Meta struct {
	Run    *RunMeta    `json:"run,omitempty"`
	Sample *SampleMeta `json:"sample,omitempty"`
}

// RunMeta describes the run (or the shard of a run) that wrote a records
// file: what the result files' headers said, and the facts the analysis
// needs that are not in any record.
type RunMeta struct {
	// Version is MetaVersion.
	Version int `json:"version"`
	// Engine is the engine's name.
	Engine string `json:"engine"`
	// Header is the run's header; EngineComments are the engine's own
	// comment lines after it (as at the top of <engine>.txt).
	Header         Header   `json:"header"`
	EngineComments []string `json:"engine_comments,omitempty"`
	// Multi is set when -engines listed more than one engine: benchmark
	// names then carry engine=NAME/.
	Multi bool `json:"multi,omitempty"`
	// GOMAXPROCS is the -N suffix of the result lines' names.
	GOMAXPROCS int `json:"gomaxprocs"`
	// OutputTokens is -output-tokens.
	OutputTokens int `json:"output_tokens"`
	// ModelRatios is set when the run reported the *-vs-model metrics
	// (every engine was simulated in-process); Sim is then this engine's
	// simulator configuration (a fake/sim.Config), from which the
	// prediction is recomputed.
	ModelRatios bool            `json:"model_ratios,omitempty"`
	Sim         json.RawMessage `json:"sim,omitempty"`
	// Shard is this process's shard (0-based) of Shards processes that
	// ran the load together; 0 of 1 when the run was not sharded.
	Shard  int `json:"shard"`
	Shards int `json:"shards"`
	// EpochUnixNano is the wall-clock time, in ns since 1970 by this
	// host's clock, of the instant every offset in the records counts
	// from; Epoch is the same in RFC 3339, for people. Records of shards
	// on different hosts are brought to one time base with it.
	EpochUnixNano int64  `json:"epoch_unix_ns"`
	Epoch         string `json:"epoch"`
}

// SampleMeta describes one sample: which records are its (Concurrency and
// Sample match theirs) and what its measured window is computed from.
type SampleMeta struct {
	// Concurrency is the level: the streams of the whole run, every shard
	// together. Streams are this process's share of them.
	Concurrency int `json:"concurrency"`
	Streams     int `json:"streams"`
	// Sample is the sample's index among the engine's samples at this level.
	Sample int `json:"sample"`
	// Records is how many records of this sample the records file holds.
	Records int `json:"records"`
	// StartAtUnixNano is the wall-clock instant the sample was scheduled to
	// start at (shards; 0: as soon as the previous one ended). Started is
	// when it did start, as an offset from the epoch.
	StartAtUnixNano int64         `json:"start_at_unix_ns,omitempty"`
	Started         time.Duration `json:"started_ns"`
	// RampedUp is when the last slot started its first request (offset
	// from the epoch): the earliest the measured window may start.
	RampedUp time.Duration `json:"ramped_ns"`
	// WindowStart and WindowEnd are the measured window as the run
	// computed it; recomputing it from the records and RampedUp must give
	// the same (a check that the files belong together).
	WindowStart time.Duration `json:"window_start_ns"`
	WindowEnd   time.Duration `json:"window_end_ns"`
	// Interrupted is set when the run was stopped during the sample: its
	// records are saved, its numbers were not reported.
	Interrupted bool `json:"interrupted,omitempty"`
	// Extra are the result line's metrics that are not a function of the
	// records (the client's own CPU, measured while the sample ran; the
	// workload's, which need its options), by unit: -from puts them back
	// on the line it recomputes. A merge of shards drops them (each
	// shard's client is its own).
	Extra map[string]float64 `json:"extra,omitempty"`
	// Comments are the '#' lines the run wrote before the result line,
	// after any FAILED line, that -from cannot derive from the records
	// (CLIENT-BOUND: the client's CPU and reads); -from writes them again.
	Comments []string `json:"comments,omitempty"`
}

// Run writes engine's run line, the first line of its samples file.
func (d *Dir) Run(engine string, m RunMeta) error {
	m.Version = MetaVersion
	return d.meta(engine, Meta{Run: &m})
}

// Sample appends one sample line to engine's samples file. Write it after
// the sample's records.
func (d *Dir) Sample(engine string, m SampleMeta) error {
	return d.meta(engine, Meta{Sample: &m})
}

func (d *Dir) meta(engine string, m Meta) error {
	f, err := d.get(engine)
	if err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("results: encode samples line: %w", err)
	}
	err = f.write(wSamples, append(b, '\n'))
	return err
}

// Saved is one records file and its samples file, as read back.
type Saved struct {
	// Records is the records file's path; SamplesPath the samples file's.
	Records, SamplesPath string
	Run                  RunMeta
	Samples              []SampleMeta
	// Notes say what Find left out: a cut last line of the samples file
	// (the run was stopped while writing it; the sample it was to describe
	// did not finish).
	Notes []string
}

// CutLineError is a file whose last line has no end: the writer was
// stopped inside it (a killed run, a full disk). Every line before it is
// whole (each line is one write, ended by its newline); the cut one is
// never read as data.
type CutLineError struct {
	Line int
}

func (e *CutLineError) Error() string {
	return fmt.Sprintf("line %d is cut: the file ends inside it (the writer stopped while writing it)", e.Line)
}

// Find lists the samples files in dir (of one run, or of several shards
// copied into one folder) and reads each, in file-name order. It fails if
// there is none, naming what it looked for, or if any cannot be read.
func Find(dir string) ([]Saved, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*"+SamplesExt))
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	if len(paths) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("results: %w", err)
		}
		return nil, fmt.Errorf("results: %s has no *%s file: it is not the -out folder of a run (runs before the samples files existed cannot be recomputed)", dir, SamplesExt)
	}
	sort.Strings(paths)
	var out []Saved
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("results: %w", err)
		}
		run, samples, err := ReadSamples(f)
		f.Close()
		var notes []string
		var cut *CutLineError
		if errors.As(err, &cut) && cut.Line > 1 {
			notes = append(notes, fmt.Sprintf("%s: %v; the sample it was to describe had not finished and is left out", p, err))
			err = nil
		}
		if err != nil {
			return nil, fmt.Errorf("results: %s: %w", p, err)
		}
		out = append(out, Saved{
			Records:     strings.TrimSuffix(p, SamplesExt) + ".jsonl",
			SamplesPath: p,
			Run:         run,
			Samples:     samples,
			Notes:       notes,
		})
	}
	return out, nil
}

// ReadSamples reads a samples file: its run line, then its sample lines.
// Every line must be one JSON object of the documented shape; an error
// names the line.
//
// A last line without its newline is a *CutLineError, returned with the
// run and the samples of the whole lines before it (when the run line is
// among them): a run stopped while it wrote that line.
func ReadSamples(r io.Reader) (RunMeta, []SampleMeta, error) {
	var run *RunMeta
	var samples []SampleMeta
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		raw, rerr := br.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return RunMeta{}, nil, rerr
		}
		if rerr == io.EOF && len(bytes.TrimSpace(raw)) > 0 {
			if run == nil {
				return RunMeta{}, nil, &CutLineError{Line: n}
			}
			return *run, samples, &CutLineError{Line: n}
		}
		if len(raw) > 16<<20 {
			return RunMeta{}, nil, fmt.Errorf("line %d: longer than 16 MiB", n)
		}
		line := bytes.TrimSpace(raw)
		if rerr == io.EOF {
			break
		}
		if len(line) == 0 {
			continue
		}
		var m Meta
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return RunMeta{}, nil, fmt.Errorf("line %d: %w", n, err)
		}
		if dec.More() {
			return RunMeta{}, nil, fmt.Errorf("line %d: more than one JSON value", n)
		}
		switch {
		case (m.Run == nil) == (m.Sample == nil):
			return RunMeta{}, nil, fmt.Errorf(`line %d: want one of "run" and "sample"`, n)
		case m.Run != nil && run != nil:
			return RunMeta{}, nil, fmt.Errorf("line %d: a second run line", n)
		case m.Run != nil:
			if err := m.Run.check(); err != nil {
				return RunMeta{}, nil, fmt.Errorf("line %d: %w", n, err)
			}
			run = m.Run
		case run == nil:
			return RunMeta{}, nil, fmt.Errorf("line %d: a sample line before the run line", n)
		default:
			if err := m.Sample.check(run); err != nil {
				return RunMeta{}, nil, fmt.Errorf("line %d: %w", n, err)
			}
			samples = append(samples, *m.Sample)
		}
	}
	if run == nil {
		return RunMeta{}, nil, errors.New("no run line: the file is empty or was cut")
	}
	return *run, samples, nil
}

func (m *RunMeta) check() error {
	switch {
	case m.Version != MetaVersion:
		return fmt.Errorf("format version %d: this inferbench reads version %d", m.Version, MetaVersion)
	case !nameRE.MatchString(m.Engine):
		return fmt.Errorf("engine name %q is not one a run writes", m.Engine)
	case m.Shards < 1 || m.Shard < 0 || m.Shard >= m.Shards:
		return fmt.Errorf("shard %d of %d: want 0 ≤ shard < shards", m.Shard, m.Shards)
	case m.GOMAXPROCS < 1:
		return fmt.Errorf("gomaxprocs %d: must be at least 1", m.GOMAXPROCS)
	case m.ModelRatios && len(m.Sim) == 0:
		return errors.New("model_ratios without the simulator's configuration (sim)")
	}
	return m.Header.Validate()
}

func (m *SampleMeta) check(run *RunMeta) error {
	switch {
	case m.Concurrency < 1 || m.Streams < 1 || m.Streams > m.Concurrency:
		return fmt.Errorf("concurrency %d, streams %d: want 1 ≤ streams ≤ concurrency", m.Concurrency, m.Streams)
	case m.Sample < 0 || m.Records < 0:
		return fmt.Errorf("sample %d, records %d: must not be negative", m.Sample, m.Records)
	case m.WindowEnd < m.WindowStart:
		return fmt.Errorf("window %v → %v ends before it starts", m.WindowStart, m.WindowEnd)
	}
	return nil
}

// ReadRecords calls fn with every record of a records file, in file order.
// An error names the line; fn's error stops the reading and is returned.
// A last line without its newline is a *CutLineError, after fn has had
// every whole line before it.
func ReadRecords(path string, fn func(*record.Record) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	defer f.Close()
	if err := DecodeRecords(f, fn); err != nil {
		return fmt.Errorf("results: %s: %w", path, err)
	}
	return nil
}

// DecodeRecords is ReadRecords on a reader.
func DecodeRecords(r io.Reader, fn func(*record.Record) error) error {
	br := bufio.NewReaderSize(r, 256<<10)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF && len(bytes.TrimSpace(line)) > 0 {
			return &CutLineError{Line: n}
		}
		if len(bytes.TrimSpace(line)) > 0 {
			var rec record.Record
			if jerr := json.Unmarshal(line, &rec); jerr != nil {
				return fmt.Errorf("line %d: %w", n, jerr)
			}
			if ferr := fn(&rec); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
