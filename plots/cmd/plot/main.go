// Command plot draws inferbench's charts (throughput.png, latency.png,
// pareto.png, latency-rate.png, goodput.png: see package plots) from
// benchmark result files.
//
// Usage:
//
//	plot [-out DIR] [-missing-ok] PATH...
//
// Each PATH is a file, a label=file pair (the label names the engine), or a
// directory, whose *.txt files are all read, with its summary.json when it has
// one (the latency chart then draws pooled percentiles and the Pareto chart
// its pooled TPOT p90; go generate does not expand globs, so the command
// does). Charts are written into DIR (default ".").
// Warnings about charts left out go to stderr; the exit status is non-zero
// only when nothing could be drawn.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/inferbench/inferbench/internal/results"
	"github.com/inferbench/inferbench/plots"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
}

// run is the whole command, testable with buffers.
func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", ".", "directory to write the charts (throughput.png, latency.png, pareto.png, latency-rate.png, goodput.png) into")
	missingOK := fs.Bool("missing-ok", false, "a directory argument that does not exist is skipped with a note, and no input at all is no error (go generate ./... on a fresh clone, before any run wrote results/)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: plot [-out DIR] FILE|LABEL=FILE|DIR...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no input: give result files or directories holding *.txt files")
	}
	args = fs.Args()
	if *missingOK {
		var kept []string
		for _, a := range args {
			if _, err := os.Stat(a); err != nil && os.IsNotExist(err) && !strings.Contains(a, "=") {
				fmt.Fprintf(stdout, "plot: %s does not exist: nothing to draw from it (a run of go test -bench=. writes results/)\n", a)
				continue
			}
			kept = append(kept, a)
		}
		if len(kept) == 0 {
			return nil
		}
		args = kept
	}
	paths, err := expand(args)
	if err != nil {
		return err
	}
	written, err := plots.Generate(paths, *out)
	for _, w := range written {
		fmt.Fprintln(stdout, "wrote", w)
	}
	if err != nil && len(written) > 0 {
		fmt.Fprintln(stderr, "plot: warning:", err)
		return nil
	}
	return err
}

// expand replaces each directory argument by the *.txt files in it, labelled
// with their base name so that a "=" in a directory name is not taken for a
// label.
func expand(args []string) ([]string, error) {
	var paths []string
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil && !strings.Contains(a, "=") {
			return nil, err // names the path: "stat ../results: no such file or directory"
		}
		if err != nil || !fi.IsDir() {
			// A file or a label=path pair (Load names a missing path).
			paths = append(paths, a)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(a, "*.txt"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("%s: no *.txt result files in this directory", a)
		}
		sort.Strings(matches)
		for _, m := range matches {
			// X.all.txt is X.txt's companion (every metric): the engine X.
			label := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(m), results.AllExt), ".txt")
			if strings.Contains(label, "=") {
				return nil, fmt.Errorf("%s: a file name with \"=\" cannot name an engine; rename it or pass it as label=path", m)
			}
			paths = append(paths, label+"="+m)
		}
		// The run's summary.json, when there is one, gives the latency
		// chart its pooled percentiles.
		if sum := filepath.Join(a, "summary.json"); fileExists(sum) {
			paths = append(paths, sum)
		}
	}
	return paths, nil
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
