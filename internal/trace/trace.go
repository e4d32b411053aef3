package trace

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Entry is one request of a trace.
type Entry struct {
	// Offset is the arrival, from the trace's first request.
	Offset time.Duration
	// Input and Output are the prompt and answer lengths in tokens.
	Input, Output int
	// HashIDs are the prompt's block ids (nil: none given).
	HashIDs []uint64
	// Line is where the entry is in the file.
	Line int
}

// Trace is a parsed trace file.
type Trace struct {
	// Name is the file's name, Format "jsonl" or "csv".
	Name, Format string
	// Entries are the replayable requests, in arrival order.
	Entries []Entry
	// Skipped counts requests with 0 prompt or answer tokens.
	Skipped int
}

// Duration is the last arrival's offset.
func (t *Trace) Duration() time.Duration {
	if len(t.Entries) == 0 {
		return 0
	}
	return t.Entries[len(t.Entries)-1].Offset
}

// Read reads and parses the trace file at path.
func Read(path string) (*Trace, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	return Parse(path, data)
}

// maxOffset bounds arrivals (a year): beyond it a timestamp is garbage,
// and the Duration arithmetic would overflow.
const maxOffset = 365 * 24 * time.Hour

// Parse parses a trace; name is used in errors as name:line. It never
// panics on any input.
func Parse(name string, data []byte) (*Trace, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("trace %s is empty", name)
	}
	t := &Trace{Name: name}
	var err error
	var raw []rawEntry
	if trimmed[0] == '{' {
		t.Format = "jsonl"
		raw, err = parseJSONL(name, data)
	} else {
		t.Format = "csv"
		raw, err = parseCSV(name, data)
	}
	if err != nil {
		return nil, err
	}
	first, prev := math.NaN(), math.Inf(-1)
	for _, r := range raw {
		if r.ms < prev {
			return nil, fmt.Errorf("%s:%d: arrival %gms is before the previous one (%gms): a trace must be sorted by arrival", name, r.line, r.ms, prev)
		}
		prev = r.ms
		if math.IsNaN(first) {
			first = r.ms
		}
		off := time.Duration((r.ms - first) * float64(time.Millisecond))
		if r.ms-first > float64(maxOffset/time.Millisecond) {
			return nil, fmt.Errorf("%s:%d: arrival %gms is more than a year after the first: is the unit right (Timestamp is seconds, timestamp_ms and JSON timestamp milliseconds)?", name, r.line, r.ms)
		}
		if r.in == 0 || r.out == 0 {
			t.Skipped++
			continue
		}
		t.Entries = append(t.Entries, Entry{Offset: off, Input: r.in, Output: r.out, HashIDs: r.hash, Line: r.line})
	}
	if len(t.Entries) == 0 {
		return nil, fmt.Errorf("trace %s has no replayable requests (%d skipped with 0 prompt or answer tokens)", name, t.Skipped)
	}
	return t, nil
}

type rawEntry struct {
	ms      float64
	in, out int
	hash    []uint64
	line    int
}

// maxTokens bounds a length: beyond it the number is garbage.
const maxTokens = 1 << 24

func checkLen(what string, v float64) (int, error) {
	if v != math.Trunc(v) || v < 0 || v > maxTokens {
		return 0, fmt.Errorf("%s %v: want a whole number of tokens from 0 to %d", what, v, maxTokens)
	}
	return int(v), nil
}

func checkTime(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("timestamp %v: want a non-negative number", v)
	}
	return nil
}

type jsonEntry struct {
	Timestamp    *float64  `json:"timestamp"`
	InputLength  *float64  `json:"input_length"`
	OutputLength *float64  `json:"output_length"`
	HashIDs      []float64 `json:"hash_ids"`
}

func parseJSONL(name string, data []byte) ([]rawEntry, error) {
	var out []rawEntry
	for i, line := range bytes.Split(data, []byte{'\n'}) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		n := i + 1
		bad := func(format string, a ...any) ([]rawEntry, error) {
			return nil, fmt.Errorf("%s:%d: "+format, append([]any{name, n}, a...)...)
		}
		var e jsonEntry
		dec := json.NewDecoder(bytes.NewReader(line))
		if err := dec.Decode(&e); err != nil {
			return bad(`want {"timestamp": MS, "input_length": N, "output_length": N, "hash_ids": [...]}: %v`, err)
		}
		if dec.More() {
			return bad("more than one JSON value on the line")
		}
		if e.Timestamp == nil || e.InputLength == nil || e.OutputLength == nil {
			return bad(`want "timestamp" (ms), "input_length" and "output_length"`)
		}
		r := rawEntry{ms: *e.Timestamp, line: n}
		var err error
		if err = checkTime(r.ms); err != nil {
			return bad("%v", err)
		}
		if r.in, err = checkLen("input_length", *e.InputLength); err != nil {
			return bad("%v", err)
		}
		if r.out, err = checkLen("output_length", *e.OutputLength); err != nil {
			return bad("%v", err)
		}
		for j, h := range e.HashIDs {
			if h != math.Trunc(h) || h < 0 || h > 1<<53 {
				return bad("hash_ids[%d] %v: want a non-negative integer", j, h)
			}
			r.hash = append(r.hash, uint64(h))
		}
		out = append(out, r)
	}
	return out, nil
}

// column names, normalised (lower case, no spaces or underscores).
var (
	colSeconds = []string{"timestamp"}
	colMillis  = []string{"timestampms"}
	colInput   = []string{"requesttokens", "inputlength"}
	colOutput  = []string{"responsetokens", "outputlength"}
	colHash    = []string{"hashids"}
)

func normalise(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.NewReplacer(" ", "", "_", "", "-", "").Replace(s)
}

func parseCSV(name string, data []byte) ([]rawEntry, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s:1: CSV header: %w", name, csvErr(err))
	}
	header = slices.Clone(header) // ReuseRecord: the next Read overwrites it
	find := func(names []string) int {
		for i, h := range header {
			for _, n := range names {
				if normalise(h) == n {
					return i
				}
			}
		}
		return -1
	}
	sec, ms, in, out, hash := find(colSeconds), find(colMillis), find(colInput), find(colOutput), find(colHash)
	if (sec < 0 && ms < 0) || in < 0 || out < 0 {
		return nil, fmt.Errorf("%s:1: CSV header %q: want columns Timestamp (s) or timestamp_ms, Request tokens (or input_length) and Response tokens (or output_length)", name, strings.Join(header, ","))
	}
	scale := 1000.0
	if ms >= 0 {
		sec, scale = ms, 1
	}
	width := max(sec, in, out, hash) + 1
	var outRows []rawEntry
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line := 0
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.Line // FieldPos panics after a failed Read
			}
			return nil, fmt.Errorf("%s:%d: CSV: %w", name, line, csvErr(err))
		}
		line, _ := r.FieldPos(0)
		bad := func(format string, a ...any) ([]rawEntry, error) {
			return nil, fmt.Errorf("%s:%d: "+format, append([]any{name, line}, a...)...)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) < width {
			return bad("%d fields, want at least %d (the header's columns)", len(rec), width)
		}
		num := func(i int) (float64, error) {
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[i]), 64)
			if err != nil {
				return 0, fmt.Errorf("%s %q: not a number", header[i], rec[i])
			}
			return v, nil
		}
		row := rawEntry{line: line}
		v, err := num(sec)
		if err == nil {
			err = checkTime(v)
		}
		if err != nil {
			return bad("%v", err)
		}
		row.ms = v * scale
		for _, f := range []struct {
			col int
			dst *int
		}{{in, &row.in}, {out, &row.out}} {
			v, err := num(f.col)
			if err == nil {
				*f.dst, err = checkLen(header[f.col], v)
			}
			if err != nil {
				return bad("%v", err)
			}
		}
		if hash >= 0 {
			for _, h := range strings.FieldsFunc(rec[hash], func(c rune) bool { return c == ' ' || c == ';' }) {
				id, err := strconv.ParseUint(h, 10, 64)
				if err != nil {
					return bad("hash_ids %q: want non-negative integers separated by spaces or ';'", rec[hash])
				}
				row.hash = append(row.hash, id)
			}
		}
		outRows = append(outRows, row)
	}
	return outRows, nil
}

// csvErr drops encoding/csv's own position, which Parse states as file:line.
func csvErr(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
