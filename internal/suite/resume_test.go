package suite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/results"
)

// resumeSweep is runSweep for a resumed run: a sample -resume kept is
// skipped (Start says ErrKept), as BenchmarkServe's sub-benchmark does.
func resumeSweep(t *testing.T, s *Suite, n, reps int) (kept int) {
	t.Helper()
	for range reps {
		for _, c := range s.Levels() {
			for _, e := range s.Engines() {
				r := runLevel(s, e, c, n)
				if len(r.Errs) == 1 && errors.Is(r.Errs[0], ErrKept) {
					kept++
					continue
				}
				require.NoError(t, r.err())
			}
		}
	}
	return kept
}

// sampleShape is what a run's files say of one sample: its level, index,
// and the workload seqs of its measured requests.
type sampleShape struct {
	C, N int
	Seqs []int
}

// shapeOf reads a folder's samples and records files: the samples in file
// order, each with its measured seqs (sorted).
func shapeOf(t *testing.T, dir, engine string) []sampleShape {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, engine+results.SamplesExt))
	require.NoError(t, err)
	_, metas, err := results.ReadSamples(f)
	f.Close()
	require.NoError(t, err)
	seqs := map[sampleKey][]int{}
	for _, r := range readRecords(t, filepath.Join(dir, engine+".jsonl")) {
		if r.Phase == record.Measured {
			k := sampleKey{r.Concurrency, r.Sample}
			seqs[k] = append(seqs[k], r.Seq)
		}
	}
	var out []sampleShape
	for _, m := range metas {
		s := seqs[sampleKey{m.Concurrency, m.Sample}]
		slices.Sort(s)
		out = append(out, sampleShape{m.Concurrency, m.Sample, s})
	}
	return out
}

// txtLines are a .txt file's result lines.
func txtLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, benchParent+"/") {
			out = append(out, l)
		}
	}
	return out
}

// TestResume stops a run after its first repetition (and, in one case,
// inside a sample of the next, as a kill leaves it), damages what the
// case says, and resumes it with -resume: the samples whose records check
// are kept with their lines unchanged, the rest run again, and the final
// files have the structure of an uninterrupted run of the same flags —
// the same samples in the same order, each with the same workload seqs —
// while -from recomputes the resumed files' lines exactly and their
// header says the run was resumed. Keeping a sample whose records are
// incomplete would fail the "lost record" case (the samples file alone
// says the sample finished).
func TestResume(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a few seconds of load")
	}
	const engine, n, reps = "sim-friendli-like", 4, 2
	opts := func() Options {
		o := testOptions(t, "fake:friendli-like")
		o.Concurrency = "1,2"
		o.OutputTokens = 4
		return o
	}
	// The uninterrupted run.
	ref := opts()
	s, err := New(context.Background(), ref)
	require.NoError(t, err)
	runSweep(t, s, n, reps)
	require.NoError(t, s.Conclude(&bytes.Buffer{}, false))
	s.Close()
	want := shapeOf(t, ref.Out, engine)
	require.Len(t, want, 4)

	appendTo := func(t *testing.T, path, s string) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteString(s)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		kept   int      // samples the resumed run keeps
		notes  []string // in its header (regular expressions)
	}{
		{"stopped between samples", func(*testing.T, string) {}, 2, nil},
		{"killed inside a sample", func(t *testing.T, dir string) {
			// A third sample's first record, a record cut inside its
			// line, and half its line in the samples file.
			appendTo(t, filepath.Join(dir, engine+".jsonl"), `{"engine":"sim-friendli-like","concurrency":1,"sample":1,"seq":20000000,"phase":"measured","error":""}`+"\n")
			appendTo(t, filepath.Join(dir, engine+".jsonl"), `{"engine":"sim-friendli-like","concurrency":1,"sam`)
			appendTo(t, filepath.Join(dir, engine+results.SamplesExt), `{"sample":{"concurrency":1,"streams":1,"sam`)
		}, 2, []string{`samples\.jsonl: line 4 is cut`, `friendli-like\.jsonl: line \d+ is cut.*; left out`, "1 records of samples that run again are left out"}},
		{"a record lost", func(t *testing.T, dir string) {
			// The last record of concurrency=2's sample is gone: its
			// samples line alone says it finished.
			p := filepath.Join(dir, engine+".jsonl")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			lines := strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
			require.NoError(t, os.WriteFile(p, []byte(strings.Join(lines[:len(lines)-1], "")), 0o644))
		}, 1, []string{"concurrency=2 sample 0 runs again", `has \d+ records of it, \S+ says \d+`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts()
			s, err := New(context.Background(), o)
			require.NoError(t, err)
			runSweep(t, s, n, 1)
			s.Close() // no Conclude: the process stopped here
			before := txtLines(t, filepath.Join(o.Out, engine+".txt"))
			tc.damage(t, o.Out)

			o.Resume = true
			s, err = New(context.Background(), o)
			require.NoError(t, err)
			kept := resumeSweep(t, s, n, reps)
			require.NoError(t, s.Conclude(&bytes.Buffer{}, false))
			s.Close()
			assert.Equal(t, tc.kept, kept, "samples kept")

			assert.Equal(t, want, shapeOf(t, o.Out, engine), "the samples, their order and their requests: an uninterrupted run's")
			after := txtLines(t, filepath.Join(o.Out, engine+".txt"))
			require.Len(t, after, 4)
			assert.Equal(t, before[:tc.kept], after[:tc.kept], "a kept sample's line is the line the run wrote")
			txt, err := os.ReadFile(filepath.Join(o.Out, engine+".txt"))
			require.NoError(t, err)
			assert.Contains(t, string(txt), "# resumed by -resume at ")
			assert.Contains(t, string(txt), fmt.Sprintf(": %d sample(s) of the run before kept", tc.kept))
			for _, n := range tc.notes {
				assert.Regexp(t, n, string(txt))
			}

			out := t.TempDir()
			require.NoError(t, Recompute(Options{From: o.Out, Out: out}, &bytes.Buffer{}, false))
			for _, ext := range []string{".txt", results.AllExt} {
				w, err := os.ReadFile(filepath.Join(o.Out, engine+ext))
				require.NoError(t, err)
				g, err := os.ReadFile(filepath.Join(out, engine+ext))
				require.NoError(t, err)
				assert.Equal(t, string(w), recomputedMarker.ReplaceAllString(string(g), ""), "-from on the resumed folder: "+ext)
			}
			entries, err := os.ReadDir(o.Out)
			require.NoError(t, err)
			for _, e := range entries {
				assert.False(t, strings.HasPrefix(e.Name(), ".resume-"), "the temporary folder %s is removed", e.Name())
			}
		})
	}
}

// TestResumeRefuses: -resume with nothing to resume, with other flags than
// the run's, or with a kind of run it cannot resume fails before measuring,
// naming what to do.
func TestResumeRefuses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a run to resume")
	}
	o := testOptions(t, "fake:friendli-like")
	o.OutputTokens = 4
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	require.NoError(t, runLevel(s, s.Engines()[0], 1, 2).err())
	s.Close()
	for _, tc := range []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"no run there", func(o *Options) { o.Out = t.TempDir() }, "there is no run of engine sim-friendli-like"},
		{"another output length", func(o *Options) { o.OutputTokens = 8 }, `output-tokens "4", this one "8"`},
		{"another engine list", func(o *Options) { o.Engines = "fake" }, "there is no run of engine sim-vllm-like"},
		{"open loop", func(o *Options) { o.Rate = "5" }, "-resume: an open-loop run"},
		{"slo", func(o *Options) { o.SLO = "ttft-p99=1s" }, "-resume with -slo"},
		{"from", func(o *Options) { o.From = o.Out }, "-resume and -from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := o
			r.Resume = true
			tc.change(&r)
			s, err := New(context.Background(), r)
			if s != nil {
				s.Close()
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
