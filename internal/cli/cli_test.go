package cli

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newFlags(t *testing.T, args ...string) (*Flags, error) {
	t.Helper()
	fs := flag.NewFlagSet("inferbench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := Register(fs)
	return f, fs.Parse(args)
}

// TestFlagsDocIsCurrent: docs/flags.md is what Markdown renders from the
// flags; regenerate it with go generate ./... when this fails.
func TestFlagsDocIsCurrent(t *testing.T) {
	f, err := newFlags(t)
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join("..", "..", "docs", "flags.md"))
	require.NoError(t, err, "docs/flags.md: run go generate ./...")
	assert.Equal(t, string(f.Markdown()), string(got), "docs/flags.md is stale: run go generate ./...")
}

// TestEveryRegisteredFlagIsListed: every flag Register puts on the flag
// set has a row in docs/flags.md, a group and a line of help; the removed
// ones are listed with their replacement.
func TestEveryRegisteredFlagIsListed(t *testing.T) {
	fs := flag.NewFlagSet("inferbench", flag.ContinueOnError)
	f := Register(fs)
	doc := string(f.Markdown())
	var usage bytes.Buffer
	f.Usage(&usage)
	listed := map[string]Flag{}
	for _, fl := range f.List() {
		listed[fl.Name] = fl
	}
	n := 0
	fs.VisitAll(func(fl *flag.Flag) {
		n++
		assert.Contains(t, doc, "| `-"+fl.Name+"` |", "docs/flags.md has no row for -%s", fl.Name)
		if strings.HasPrefix(fl.Usage, "removed: ") {
			return
		}
		printed := regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(fl.Name) + `( |$)`).MatchString(usage.String())
		assert.True(t, printed, "-flags does not print -%s", fl.Name)
		info, ok := listed[fl.Name]
		if assert.True(t, ok, "-%s is registered but not in List", fl.Name) {
			assert.Contains(t, Groups, info.Group, "-%s", fl.Name)
			assert.NotEmpty(t, info.Unit, "-%s", fl.Name)
			assert.NotEmpty(t, info.Usage, "-%s", fl.Name)
			assert.NotContains(t, info.Usage, "\n", "-%s: one line", fl.Name)
		}
	})
	assert.Equal(t, len(f.List())+len(RemovedFlags()), n, "List and the removed flags are every registered flag")
}

// TestRemovedFlagsNameTheReplacement: a dropped flag fails the parse at
// once with what to give instead, not "flag provided but not defined".
func TestRemovedFlagsNameTheReplacement(t *testing.T) {
	for _, tt := range []struct{ arg, want string }{
		{"-input-dist=uniform:64,256", "-input-tokens=uniform:64,256"},
		{"-output-dist=dataset", "-output-tokens"},
	} {
		_, err := newFlags(t, tt.arg)
		require.Error(t, err, tt.arg)
		assert.Contains(t, err.Error(), "was removed", tt.arg)
		assert.Contains(t, err.Error(), tt.want, tt.arg)
	}
}

// TestOptions: the flags become the suite's options; -input-tokens and
// -output-tokens take a fixed length or a distribution.
func TestOptions(t *testing.T) {
	for _, tt := range []struct {
		name            string
		args            []string
		in, out         int
		inDist, outDist string
		concurrency     string
		err             string
	}{
		// Defaults: 128 and 128 tokens, the default sweep.
		{name: "defaults", in: 128, out: 128, concurrency: "1,2,4,8,16,32,64,128,256"},
		// A fixed length is a whole number.
		{name: "fixed", args: []string{"-input-tokens=64", "-output-tokens= 32 "}, in: 64, out: 32, concurrency: "1,2,4,8,16,32,64,128,256"},
		// Anything else is a distribution, checked by the workload.
		{name: "distributions", args: []string{"-input-tokens=lognormal:200,80", "-output-tokens=dataset"},
			inDist: "lognormal:200,80", outDist: "dataset", concurrency: "1,2,4,8,16,32,64,128,256"},
		// An open loop alone does not sweep the default levels...
		{name: "rate alone", args: []string{"-rate=4"}, in: 128, out: 128},
		// ...unless -concurrency is given too.
		{name: "rate and levels", args: []string{"-rate=4", "-concurrency=8"}, in: 128, out: 128, concurrency: "8"},
		// A number that is not whole is no length and no distribution.
		{name: "fraction", args: []string{"-input-tokens=12.5"}, err: "-input-tokens=\"12.5\": want a whole number"},
		{name: "empty", args: []string{"-output-tokens="}, err: "-output-tokens=\"\""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := newFlags(t, tt.args...)
			require.NoError(t, err)
			o, err := f.Options()
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.in, o.InputTokens)
			assert.Equal(t, tt.out, o.OutputTokens)
			assert.Equal(t, tt.inDist, o.InputDist)
			assert.Equal(t, tt.outDist, o.OutputDist)
			assert.Equal(t, tt.concurrency, o.Concurrency)
		})
	}
}
