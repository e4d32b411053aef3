package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRun(t *testing.T) {
	emptyDir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for success
		files   int    // PNGs expected in -out
		stdout  string // substring
		stderr  string // substring
	}{
		// A directory: its *.txt files are globbed (all.out is not), engines named by file.
		{"directory", []string{"../../testdata/two"}, "", 3, "throughput.png", ""},
		// label=path pairs name the engines.
		{"labels", []string{"a=../../testdata/two/vllm.txt", "b=../../testdata/two/friendli.txt"}, "", 3, "pareto.png", ""},
		// A multi-engine go test output file.
		{"multi-engine file", []string{"../../testdata/two/all.out"}, "", 3, "latency.png", ""},
		// A -slo run with open-loop rates: all five charts.
		{"open loop and slo", []string{"../../testdata/slo"}, "", 5, "latency-rate.png", "warning: pareto.png: no TPOT p90"},
		// Charts that cannot be drawn are warnings on stderr, not failures.
		{"partial", []string{"../../testdata/bad/partial-latency.txt"}, "", 3, "wrote", "warning: latency.png: no ttft-p99-ns"},
		// No arguments: usage and an error.
		{"no args", nil, "no input", 0, "", "usage: plot"},
		// An empty directory is an error naming it.
		{"empty dir", []string{emptyDir}, emptyDir + ": no *.txt result files", 0, "", ""},
		// A malformed line: file:line.
		{"malformed", []string{"../../testdata/bad/malformed.txt"}, "malformed.txt:5:", 0, "", ""},
		// A missing file is named.
		{"missing", []string{"nope.txt"}, "nope.txt", 0, "", ""},
		// An unknown flag.
		{"bad flag", []string{"-o", "x"}, "flag provided but not defined", 0, "", ""},
		// A directory that does not exist is an error...
		{"missing dir", []string{filepath.Join(emptyDir, "results")}, "no such file or directory", 0, "", ""},
		// ...unless -missing-ok (go generate ./... before any run): a note, nothing drawn.
		{"missing dir, -missing-ok", []string{"-missing-ok", filepath.Join(emptyDir, "results")}, "", 0, "does not exist: nothing to draw", ""},
		// -missing-ok still draws what exists.
		{"-missing-ok with a directory", []string{"-missing-ok", filepath.Join(emptyDir, "results"), "../../testdata/two"}, "", 3, "throughput.png", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := t.TempDir()
			var stdout, stderr bytes.Buffer
			err := run(append([]string{"-out", out}, tt.args...), &stdout, &stderr)
			if tt.wantErr == "" {
				require.NoError(t, err, stderr.String())
			} else {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
			}
			assert.Contains(t, stdout.String(), tt.stdout)
			assert.Contains(t, stderr.String(), tt.stderr)
			pngs, err := filepath.Glob(filepath.Join(out, "*"))
			require.NoError(t, err)
			assert.Len(t, pngs, tt.files)
		})
	}
}

func TestExpandLabelsDirectoryFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.txt", "a.txt", "notes.md"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), nil, 0o644))
	}
	got, err := expand([]string{dir, "x=y.txt"})
	require.NoError(t, err)
	assert.Equal(t, []string{"a=" + filepath.Join(dir, "a.txt"), "b=" + filepath.Join(dir, "b.txt"), "x=y.txt"}, got)

	// X.all.txt, X.txt's companion, is the engine X too (plots.Load reads
	// it in X.txt's place).
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.all.txt"), nil, 0o644))
	got, err = expand([]string{dir})
	require.NoError(t, err)
	assert.Equal(t, []string{"a=" + filepath.Join(dir, "a.txt"), "b=" + filepath.Join(dir, "b.all.txt"), "b=" + filepath.Join(dir, "b.txt")}, got)

	// A file name with "=" cannot become a label.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "c=1.txt"), nil, 0o644))
	_, err = expand([]string{dir})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "c=1.txt")
}

// TestExpandAddsSummary: a directory's summary.json comes with its files,
// so go generate's charts draw the run's pooled percentiles.
func TestExpandAddsSummary(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a.txt", "summary.json"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), nil, 0o644))
	}
	got, err := expand([]string{dir})
	require.NoError(t, err)
	assert.Equal(t, []string{"a=" + filepath.Join(dir, "a.txt"), filepath.Join(dir, "summary.json")}, got)
}
