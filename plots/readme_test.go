package plots

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/report"
)

// demoDir holds the files of the run the README's picture is drawn from.
const demoDir = "../docs/demo"

// readmeCommand is how the README names that run, in its caption.
var readmeCommand = regexp.MustCompile("from the files of `(go test [^`]+)`")

// TestREADMEPicture: the README's picture is docs/demo/throughput.png; its
// caption names the command whose files docs/demo holds; that command is
// the one the run recorded in docs/demo/summary.json (the test binary's
// flags, go test's own ones as -test.*), its -count is the samples per
// level the files hold, and every chart in docs/demo is what Render draws
// from those files, byte for byte (go generate ./plots redraws them).
func TestREADMEPicture(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	require.Contains(t, string(readme), "](docs/demo/throughput.png)", "the README shows docs/demo's picture")
	m := readmeCommand.FindSubmatch(readme)
	require.NotNil(t, m, "the README's caption names the command: from the files of `go test ...`")
	fields := strings.Fields(string(m[1]))
	require.GreaterOrEqual(t, len(fields), 3)
	want := map[string]string{}
	for _, f := range fields[2:] {
		name, value, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
		switch name {
		case "bench", "count", "benchtime", "run", "cpu", "timeout":
			name = "test." + name
		}
		want[name] = value
	}
	require.Equal(t, "docs/demo", want["out"], "the command writes into docs/demo")

	sum, err := report.Read(filepath.Join(demoDir, "summary.json"))
	require.NoError(t, err)
	got := map[string]string{}
	for _, a := range sum.Run.CommandLine[1:] {
		name, value, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "test.paniconexit0", "test.timeout", "progress":
			continue // go test's own plumbing; the terminal's progress line
		}
		got[name] = value
	}
	assert.Equal(t, want, got, "the README's command against the run's %q", sum.Run.CommandLine)

	txts, err := filepath.Glob(filepath.Join(demoDir, "*.txt"))
	require.NoError(t, err)
	inputs := append(slices.DeleteFunc(txts, func(p string) bool { return strings.HasSuffix(p, ".all.txt") }), filepath.Join(demoDir, "summary.json"))
	d, err := Load(inputs)
	require.NoError(t, err)
	if c, ok := want["test.count"]; ok {
		n, err := strconv.Atoi(c)
		require.NoError(t, err)
		lo, hi := d.SampleRange()
		assert.Equal(t, []int{n, n}, []int{lo, hi}, "-count=%d: samples per level in the files", n)
	}
	images, _, err := Render(d)
	require.NoError(t, err)
	require.NotEmpty(t, images)
	for _, im := range images {
		committed, err := os.ReadFile(filepath.Join(demoDir, im.Name))
		if assert.NoError(t, err, "%s is drawn from docs/demo but not committed: run go generate ./plots", im.Name) {
			assert.True(t, bytes.Equal(im.PNG, committed), "docs/demo/%s is not what docs/demo's files draw: run go generate ./plots", im.Name)
		}
	}
}
