package results

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/perf/benchfmt"

	"github.com/inferbench/inferbench/internal/record"
)

func TestHeaderValidate(t *testing.T) {
	tests := []struct {
		name    string
		h       Header
		wantErr string
	}{
		// Plain keys and one-line values are what benchfmt reads as config.
		{"ok", Header{Config: []KV{{"model", "m"}, {"input-tokens", "64"}}}, ""},
		// An upper-case key would not be config for benchfmt: refuse it.
		{"upper-case key", Header{Config: []KV{{"Model", "m"}}}, "lower-case"},
		// A key with a space is not a config key either.
		{"space in key", Header{Config: []KV{{"my model", "m"}}}, "no spaces"},
		// A newline in a value would start a new, unintended line.
		{"multi-line value", Header{Config: []KV{{"model", "a\nb"}}}, "one line"},
		// The same for comments.
		{"multi-line comment", Header{Comments: []string{"a\nmodel: x"}}, "one line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.h.Validate()
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestCreateWritesReadableFiles(t *testing.T) {
	dir := t.TempDir()
	h := Header{
		Comments: []string{"SIMULATED ENGINES"},
		Config:   []KV{{"model", "fake-model"}, {"simulated", "true"}},
	}
	d, err := Create(dir, []string{"a", "b"}, h, map[string][]string{"a": {"url=http://x"}})
	require.NoError(t, err)
	require.NoError(t, d.Line("a", "BenchmarkServe/concurrency=1-2\t3\t100 ns/op\t50.00 tok/s"))
	require.NoError(t, d.Records("a", []record.Record{{Engine: "a", Seq: 1, Sent: time.Millisecond, Chunks: []record.Chunk{{At: 2 * time.Millisecond, Tokens: 1}}}}))
	assert.Error(t, d.Line("zzz", "x"), "unknown engine")
	assert.Equal(t, []string{filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")}, d.TxtFiles())
	require.NoError(t, d.Close())

	raw, err := os.ReadFile(filepath.Join(dir, "a.txt"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(raw), "# SIMULATED ENGINES\n# url=http://x\nmodel: fake-model\nsimulated: true\n"), string(raw))

	// benchfmt reads it back with the config applied to the result.
	f, err := os.Open(filepath.Join(dir, "a.txt"))
	require.NoError(t, err)
	defer f.Close()
	r := benchfmt.NewReader(f, "a.txt")
	var got []*benchfmt.Result
	for r.Scan() {
		if res, ok := r.Result().(*benchfmt.Result); ok {
			got = append(got, res.Clone())
		}
	}
	require.NoError(t, r.Err())
	require.Len(t, got, 1)
	assert.Equal(t, "fake-model", got[0].GetConfig("model"))
	v, ok := got[0].Value("tok/s")
	require.True(t, ok)
	assert.Equal(t, 50.0, v)

	jl, err := os.ReadFile(filepath.Join(dir, "a.jsonl"))
	require.NoError(t, err)
	assert.Contains(t, string(jl), `"engine":"a"`)
	assert.Equal(t, 1, strings.Count(string(jl), "\n"))
}

func TestCreateRejectsBadNamesAndFolders(t *testing.T) {
	_, err := Create(t.TempDir(), []string{"../escape"}, Header{}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot be a file name")

	file := filepath.Join(t.TempDir(), "plain-file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err = Create(filepath.Join(file, "sub"), []string{"a"}, Header{}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-out")
}
