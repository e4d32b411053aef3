package results

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/record"
)

const runLine = `{"run":{"version":1,"engine":"a","header":{},"gomaxprocs":2,"output_tokens":8,"shard":0,"shards":1,"epoch_unix_ns":1,"epoch":"x"}}`
const sampleLine = `{"sample":{"concurrency":4,"streams":4,"sample":0,"records":3,"started_ns":5,"ramped_ns":6,"window_start_ns":7,"window_end_ns":9}}`

func TestReadSamples(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		samples int
		wantErr string
	}{
		// A run line and a sample line: what a run writes.
		{"ok", runLine + "\n" + sampleLine + "\n", 1, ""},
		// Blank lines are skipped.
		{"blank lines", "\n" + runLine + "\n\n" + sampleLine, 1, ""},
		// Nothing at all: a cut or empty file.
		{"empty", "", 0, "no run line"},
		// A sample before the run line.
		{"sample first", sampleLine + "\n" + runLine, 0, "line 1: a sample line before the run line"},
		// Two run lines: two files glued together.
		{"two runs", runLine + "\n" + runLine, 0, "line 2: a second run line"},
		// Neither kind.
		{"neither", runLine + "\n{}", 0, `line 2: want one of "run" and "sample"`},
		// An unknown field: a newer format, not silently half-read.
		{"unknown field", strings.Replace(runLine, `"engine"`, `"surprise":1,"engine"`, 1), 0, "unknown field"},
		// Another format version.
		{"version", strings.Replace(runLine, `"version":1`, `"version":2`, 1), 0, "format version 2"},
		// A shard index out of range.
		{"bad shard", strings.Replace(runLine, `"shard":0`, `"shard":1`, 1), 0, "shard 1 of 1"},
		// More streams than the level has.
		{"bad streams", runLine + "\n" + strings.Replace(sampleLine, `"streams":4`, `"streams":5`, 1), 0, "streams 5"},
		// A window that ends before it starts.
		{"bad window", runLine + "\n" + strings.Replace(sampleLine, `"window_end_ns":9`, `"window_end_ns":1`, 1), 0, "ends before it starts"},
		// Ratios without the simulator's configuration to recompute them.
		{"ratios without sim", strings.Replace(runLine, `"gomaxprocs"`, `"model_ratios":true,"gomaxprocs"`, 1), 0, "without the simulator"},
		// Two values on one line.
		{"glued", runLine + " {}", 0, "more than one JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if in != "" && !strings.HasSuffix(in, "\n") {
				in += "\n" // every line a run writes ends with one (TestReadSamplesCutLine has those that do not)
			}
			run, samples, err := ReadSamples(strings.NewReader(in))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "a", run.Engine)
			assert.Len(t, samples, tt.samples)
		})
	}
}

// TestReadSamplesCutLine: a last line without its newline (a run
// stopped while writing it) is a *CutLineError naming the line, returned
// with the run and the samples before it; it is never read as a sample,
// even when it happens to be whole JSON.
func TestReadSamplesCutLine(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		line    int
		samples int
		run     bool
	}{
		// The sample line cut in its middle: the run and no sample.
		{"sample cut", runLine + "\n" + sampleLine[:40], 2, 0, true},
		// A whole sample's JSON without its newline is still a cut line.
		{"newline cut", runLine + "\n" + sampleLine + "\n" + sampleLine, 3, 1, true},
		// The run line itself cut.
		{"run cut", runLine[:20], 1, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			run, samples, err := ReadSamples(strings.NewReader(tt.in))
			var cut *CutLineError
			require.ErrorAs(t, err, &cut)
			assert.Equal(t, tt.line, cut.Line)
			assert.Len(t, samples, tt.samples)
			assert.Equal(t, tt.run, run.Engine == "a")
		})
	}
}

// TestDecodeRecordsCutLine: every whole record before a cut last line is
// handed over, then the cut line is a *CutLineError.
func TestDecodeRecordsCutLine(t *testing.T) {
	var n int
	err := DecodeRecords(strings.NewReader(`{"engine":"a","seq":1}`+"\n"+`{"engine":"a","seq":2}`+"\n"+`{"engine":"a","se`), func(*record.Record) error {
		n++
		return nil
	})
	var cut *CutLineError
	require.ErrorAs(t, err, &cut)
	assert.Equal(t, 3, cut.Line)
	assert.Equal(t, 2, n)
}

// TestSamplesRoundTrip writes a run's samples file through Dir and reads it
// back with Find, in a shard's layout.
func TestSamplesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	d, err := CreateIn(dir, []string{"a"}, Header{Comments: []string{"c"}}, nil, Layout{Suffix: ShardSuffix(1, 3)})
	require.NoError(t, err)
	run := RunMeta{Engine: "a", Header: Header{Comments: []string{"c"}}, GOMAXPROCS: 2, Shard: 1, Shards: 3, EpochUnixNano: 42}
	require.NoError(t, d.Run("a", run))
	require.NoError(t, d.Records("a", []record.Record{{Engine: "a", Concurrency: 4, Seq: 1}}))
	s := SampleMeta{Concurrency: 4, Streams: 1, Records: 1, RampedUp: 3, WindowStart: 3, WindowEnd: 8}
	require.NoError(t, d.Sample("a", s))
	assert.Equal(t, []string{filepath.Join(dir, "a.shard-1-of-3.txt")}, d.TxtFiles())
	require.NoError(t, d.Close())

	saved, err := Find(dir)
	require.NoError(t, err)
	require.Len(t, saved, 1)
	run.Version = MetaVersion
	assert.Equal(t, run, saved[0].Run)
	assert.Equal(t, []SampleMeta{s}, saved[0].Samples)
	assert.Equal(t, filepath.Join(dir, "a.shard-1-of-3.jsonl"), saved[0].Records)
	n := 0
	require.NoError(t, ReadRecords(saved[0].Records, func(r *record.Record) error { n++; return nil }))
	assert.Equal(t, 1, n)
}

// FuzzReadSamples feeds arbitrary bytes to the samples-file parser: it
// must return an error or a run line that passes its own checks, never
// panic.
func FuzzReadSamples(f *testing.F) {
	f.Add([]byte(runLine + "\n" + sampleLine + "\n"))
	f.Add([]byte(sampleLine))
	f.Add([]byte("{\"run\":null}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		run, samples, err := ReadSamples(bytes.NewReader(b))
		if err != nil {
			return
		}
		require.NoError(t, run.check())
		for _, s := range samples {
			require.NoError(t, s.check(&run))
		}
	})
}

// FuzzDecodeRecords feeds arbitrary bytes to the records reader: an error
// or records, never a panic.
func FuzzDecodeRecords(f *testing.F) {
	f.Add([]byte(`{"engine":"a","seq":1,"chunks":[{"at_ns":5,"tokens":1}]}` + "\n"))
	f.Add([]byte("{\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = DecodeRecords(bytes.NewReader(b), func(*record.Record) error { return nil })
	})
}
