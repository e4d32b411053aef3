package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/inferbench/inferbench/internal/record"
)

// Header is what every results file starts with.
type Header struct {
	// Comments are written as "# ..." lines: provenance that must not
	// become benchfmt configuration (URLs, engine versions, the date).
	Comments []string `json:"comments,omitempty"`
	// Config holds "key: value" lines that are the SAME for every engine
	// of the run (model, workload, simulated); benchstat splits tables on
	// any key whose value differs between files, so per-engine facts
	// belong in Comments. Written in the order given.
	Config []KV `json:"config,omitempty"`
}

// KV is one benchfmt configuration line.
type KV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

var keyRE = regexp.MustCompile(`^[a-z][^\sA-Z:]*$`)

// Validate checks that every config key is one benchfmt accepts and no
// value spans lines.
func (h Header) Validate() error {
	for _, kv := range h.Config {
		if !keyRE.MatchString(kv.Key) {
			return fmt.Errorf("results: config key %q: must start with a lower-case letter and contain no spaces, upper-case letters or colons", kv.Key)
		}
		if strings.ContainsAny(kv.Value, "\r\n") {
			return fmt.Errorf("results: config %s: value must be one line", kv.Key)
		}
	}
	for _, c := range h.Comments {
		if strings.ContainsAny(c, "\r\n") {
			return fmt.Errorf("results: comment %q must be one line", c)
		}
	}
	return nil
}

// Bytes renders the header as it appears at the top of a file.
func (h Header) Bytes() []byte {
	var b bytes.Buffer
	for _, c := range h.Comments {
		b.WriteString("# " + c + "\n")
	}
	for _, kv := range h.Config {
		fmt.Fprintf(&b, "%s: %s\n", kv.Key, kv.Value)
	}
	return b.Bytes()
}

// Dir is an open results folder for one run.
type Dir struct {
	path   string
	suffix string // Layout.Suffix

	mu    sync.Mutex
	files map[string]*engineFiles
}

type engineFiles struct {
	txt, all, jsonl, samples *os.File
	// w are the writers of txt, all, jsonl and samples: the files, or
	// what Layout.Wrap made of them.
	w [4]io.Writer
}

// write writes b to file i in one write; an error names the file.
func (f *engineFiles) write(i int, b []byte) error {
	_, err := f.w[i].Write(b)
	if err == nil {
		return nil
	}
	if _, ok := err.(*os.PathError); ok {
		return fmt.Errorf("results: %w", err) // it names the file
	}
	name := []*os.File{f.txt, f.all, f.jsonl, f.samples}[i].Name()
	return fmt.Errorf("results: write %s: %w", name, err)
}

// The files' indexes in engineFiles.w.
const (
	wTxt = iota
	wAll
	wJSONL
	wSamples
)

// AllExt ends the name of a results file's companion: <engine>.all.txt
// beside <engine>.txt, with the same header and, for every result line of
// the .txt file, a line of the same name with every metric of the sample,
// the .txt line's and the diagnostics it leaves out (the suite decides
// which go where).
const AllExt = ".all.txt"

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Create makes dir (if needed) and truncates results/<engine>.txt,
// <engine>.all.txt, <engine>.jsonl and <engine>.samples.jsonl for each
// engine of this run, writing the header (plus the engine-specific comment
// lines in perEngine[engine]) at the top of the .txt and .all.txt files. Files of other engines
// in dir are left alone.
func Create(dir string, engines []string, h Header, perEngine map[string][]string) (*Dir, error) {
	return CreateIn(dir, engines, h, perEngine, Layout{})
}

// Layout says how a run names its files.
type Layout struct {
	// Suffix goes between the engine's name and the extension, so that
	// several processes of one run (shards) can write into one folder:
	// ".shard-0-of-2" gives <engine>.shard-0-of-2.txt and so on. Use
	// ShardSuffix. "" is the plain <engine>.txt.
	Suffix string
	// Wrap, when set, stands between every file and its writes: it gets
	// the file's path and writer and returns the writer to use. Tests
	// inject write failures with it (a full disk, an I/O error).
	Wrap func(path string, w io.Writer) io.Writer
	// Append opens the files, which must exist, to append to them, and
	// writes no header: a resumed run (-resume) whose files were rewritten
	// with what it keeps of the run before.
	Append bool
}

// ShardSuffix is the Layout.Suffix of shard i of n: ".shard-I-of-N", or ""
// for a run that is not sharded (n ≤ 1).
func ShardSuffix(i, n int) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf(".shard-%d-of-%d", i, n)
}

// CreateIn is Create with the file names of layout.
func CreateIn(dir string, engines []string, h Header, perEngine map[string][]string, layout Layout) (*Dir, error) {
	if layout.Suffix != "" && !nameRE.MatchString("x"+layout.Suffix) {
		return nil, fmt.Errorf("results: file name suffix %q: use letters, digits, '.', '_' or '-'", layout.Suffix)
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("results: %w (pass -out with a writable folder)", err)
	}
	d := &Dir{path: dir, suffix: layout.Suffix, files: map[string]*engineFiles{}}
	for _, e := range engines {
		if !nameRE.MatchString(e) {
			d.Close()
			return nil, fmt.Errorf("results: engine name %q cannot be a file name: use letters, digits, '.', '_' or '-'", e)
		}
		stem := filepath.Join(dir, e+layout.Suffix)
		f := &engineFiles{}
		d.files[e] = f // closed by d.Close on any error below
		var err error
		for _, o := range []struct {
			f   **os.File
			ext string
		}{{&f.txt, ".txt"}, {&f.all, AllExt}, {&f.jsonl, ".jsonl"}, {&f.samples, SamplesExt}} {
			if layout.Append {
				*o.f, err = os.OpenFile(stem+o.ext, os.O_WRONLY|os.O_APPEND, 0)
			} else {
				*o.f, err = os.Create(stem + o.ext)
			}
			if err != nil {
				d.Close()
				return nil, fmt.Errorf("results: %w (pass -out with a writable folder)", err)
			}
		}
		for i, file := range []*os.File{f.txt, f.all, f.jsonl, f.samples} {
			f.w[i] = file
			if layout.Wrap != nil {
				f.w[i] = layout.Wrap(file.Name(), file)
			}
		}
		if layout.Append {
			continue
		}
		hdr := h
		hdr.Comments = append(append([]string(nil), h.Comments...), perEngine[e]...)
		for _, i := range []int{wTxt, wAll} {
			if _, err := f.w[i].Write(hdr.Bytes()); err != nil {
				d.Close()
				return nil, fmt.Errorf("results: %w", err)
			}
		}
	}
	return d, nil
}

// Path is the folder.
func (d *Dir) Path() string { return d.path }

// TxtFiles lists this run's benchmark-format files, sorted.
func (d *Dir) TxtFiles() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for e := range d.files {
		out = append(out, filepath.Join(d.path, e+d.suffix+".txt"))
	}
	sort.Strings(out)
	return out
}

// Line appends one raw line (a result line from Line, or a "# ..." comment)
// to engine's .txt file in a single write.
func (d *Dir) Line(engine, line string) error {
	f, err := d.get(engine)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(line, "\n") {
		line += "\n"
	}
	err = f.write(wTxt, []byte(line))
	return err
}

// Result appends a result line to engine's .txt file and its companion
// line, with every metric, to the .all.txt file, each in a single write.
func (d *Dir) Result(engine, line, all string) error {
	if err := d.Line(engine, line); err != nil {
		return err
	}
	f, err := d.get(engine)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(all, "\n") {
		all += "\n"
	}
	err = f.write(wAll, []byte(all))
	return err
}

// Records appends recs to engine's .jsonl file, one JSON object a line, in
// a single write.
func (d *Dir) Records(engine string, recs []record.Record) error {
	f, err := d.get(engine)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			return fmt.Errorf("results: encode record: %w", err)
		}
	}
	err = f.write(wJSONL, b.Bytes())
	return err
}

// Record appends one record to engine's .jsonl file in a single write, as
// its request ends; safe for concurrent use (each write(2) is one whole
// line, and an *os.File serialises its writes).
func (d *Dir) Record(engine string, rec *record.Record) error {
	f, err := d.get(engine)
	if err != nil {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("results: encode record: %w", err)
	}
	err = f.write(wJSONL, append(b, '\n'))
	return err
}

func (d *Dir) get(engine string) (*engineFiles, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.files[engine]
	if !ok {
		return nil, fmt.Errorf("results: no files for engine %q", engine)
	}
	return f, nil
}

// Sync flushes every file to stable storage (fsync).
func (d *Dir) Sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, f := range d.files {
		for _, file := range []*os.File{f.txt, f.all, f.jsonl, f.samples} {
			if file != nil {
				errs = append(errs, file.Sync())
			}
		}
	}
	return errors.Join(errs...)
}

// Close closes every file.
func (d *Dir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, f := range d.files {
		if f.txt != nil {
			errs = append(errs, f.txt.Close())
		}
		if f.all != nil {
			errs = append(errs, f.all.Close())
		}
		if f.jsonl != nil {
			errs = append(errs, f.jsonl.Close())
		}
		if f.samples != nil {
			errs = append(errs, f.samples.Close())
		}
	}
	d.files = map[string]*engineFiles{}
	return errors.Join(errs...)
}
