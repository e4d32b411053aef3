package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/gguf"
)

// TestRun writes a small model and parses it back with the flags applied.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "m.gguf")
	var stdout, stderr bytes.Buffer
	err := run(&stdout, &stderr, []string{"-o", out, "-modelfile", filepath.Join(dir, "Modelfile"), "-embd", "8", "-layers", "1", "-ff", "8", "-heads", "2", "-type", "f32", "-name", "x"})
	require.NoError(t, err, stderr.String())
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	f, err := gguf.Decode(b)
	require.NoError(t, err)
	name, _ := f.Get("general.name")
	assert.Equal(t, "x", name)
	assert.Equal(t, gguf.F32, f.Tensor("blk.0.attn_q.weight").Type)
	assert.Equal(t, []uint64{8, 8}, f.Tensor("blk.0.attn_q.weight").Shape)
	assert.Contains(t, stdout.String(), out+": ")
	mf, err := os.ReadFile(filepath.Join(dir, "Modelfile"))
	require.NoError(t, err)
	assert.Equal(t, "FROM ./m.gguf\nTEMPLATE \"\"\""+gguf.OllamaTemplate+"\"\"\"\n", string(mf), "FROM is relative to the Modelfile")
}

// TestRunErrors: bad invocations are refused and leave no file.
func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no output", []string{}, "-o FILE is required"},                                             // nowhere to write
		{"bad type", []string{"-o", filepath.Join(dir, "a"), "-type", "q4"}, `-type "q4"`},           // quantisation is not generated
		{"bad shape", []string{"-o", filepath.Join(dir, "b"), "-heads", "3"}, "HeadCount 3"},         // 512 is not 3 equal heads
		{"stray argument", []string{"-o", filepath.Join(dir, "c"), "extra"}, "unexpected arguments"}, // a typo'd flag
		{"unwritable", []string{"-o", filepath.Join(dir, "no", "such", "dir")}, "no such file"},      // the folder does not exist
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(&stdout, &stderr, tc.args)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
}
