package suite

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failAfter is a writer that fails every write to a file whose name ends
// with suffix once armed: a full disk (ENOSPC) or a failing one (EIO).
type failAfter struct {
	w      io.Writer
	armed  *atomic.Bool
	errno  syscall.Errno
	suffix string
	path   string
}

func (f failAfter) Write(p []byte) (int, error) {
	if f.armed.Load() && strings.HasSuffix(f.path, f.suffix) {
		return 0, f.errno
	}
	return f.w.Write(p)
}

// TestWriteFailureStopsTheRun: when a result file cannot be written (a
// full disk, an I/O error; injected through results.Layout.Wrap), the
// sample that could not be saved reports no numbers, the error names the
// file and the cause, no further sample starts, Conclude fails, and what
// was written before stays: -from recomputes the samples saved before.
func TestWriteFailureStopsTheRun(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		suffix string
		errno  syscall.Errno
		cause  string
	}{
		// The records file on a full disk.
		{"records, no space", ".jsonl", syscall.ENOSPC, "no space left on device"},
		// The samples file, an I/O error.
		{"samples, I/O error", ".samples.jsonl", syscall.EIO, "input/output error"},
		// The result line's file.
		{"result line, no space", "sim-friendli-like.txt", syscall.ENOSPC, "no space left on device"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var armed atomic.Bool
			o := testOptions(t, "fake:friendli-like")
			o.Concurrency, o.OutputTokens = "1", 4
			o.wrapWriter = func(path string, w io.Writer) io.Writer {
				return failAfter{w: w, armed: &armed, errno: tt.errno, suffix: tt.suffix, path: path}
			}
			s, err := New(context.Background(), o)
			require.NoError(t, err)
			defer s.Close()
			e := s.engines[0]
			first := runLevel(s, e, 1, 3)
			require.NoError(t, first.err())
			armed.Store(true)
			second := runLevel(s, e, 1, 3)
			assert.True(t, second.Unsaved, "the sample that could not be saved")
			joined := errorsText(second.Errs)
			assert.Contains(t, joined, tt.suffix, "the error names the file")
			assert.Contains(t, joined, tt.cause)
			_, err = s.Start(s.ctx, e, 1)
			require.Error(t, err, "no sample starts once the results cannot be written")
			assert.Contains(t, err.Error(), "the result files cannot be written")
			assert.Contains(t, err.Error(), tt.cause)
			assert.Contains(t, err.Error(), o.Out, "the error says where what was written is")
			cerr := s.Conclude(&bytes.Buffer{}, false)
			require.Error(t, cerr, "the run fails")

			armed.Store(false)
			txt, err := os.ReadFile(filepath.Join(o.Out, "sim-friendli-like.txt"))
			require.NoError(t, err)
			assert.Equal(t, 1, strings.Count(string(txt), "\nBenchmarkServe/"), "only the saved sample has a result line")
			var out bytes.Buffer
			require.NoError(t, Recompute(Options{From: o.Out}, &out, false))
			assert.Contains(t, out.String(), first.Line, "-from recomputes the saved sample")
		})
	}
}

func errorsText(errs []error) string {
	var b strings.Builder
	for _, err := range errs {
		b.WriteString(err.Error() + "\n")
	}
	return b.String()
}

// TestUnwritableOut: a read-only -out folder fails New at once, naming
// the file and saying what to do; a disk that fills up during the run
// (a 64 KiB tmpfs) stops it with no space left on device named. Both for
// real: a read-only tmpfs and a small one where the test runs as root
// (CI does), a folder without write permission otherwise.
func TestUnwritableOut(t *testing.T) {
	t.Parallel()
	readOnly := t.TempDir()
	var small string
	if os.Geteuid() == 0 {
		require.NoError(t, exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", readOnly).Run(), "mount a read-only tmpfs")
		t.Cleanup(func() { _ = exec.Command("umount", readOnly).Run() })
		small = t.TempDir()
		require.NoError(t, exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", small).Run(), "mount a small tmpfs")
		t.Cleanup(func() { _ = exec.Command("umount", small).Run() })
	} else {
		require.NoError(t, os.Chmod(readOnly, 0o500))
	}

	o := testOptions(t, "fake:friendli-like")
	o.Out = filepath.Join(readOnly, "results")
	_, err := New(context.Background(), o)
	require.Error(t, err)
	assert.Contains(t, err.Error(), o.Out)
	assert.Contains(t, err.Error(), "writable folder")

	if small == "" {
		t.Log("not root: no tmpfs for the full disk (TestWriteFailureStopsTheRun injects one)")
		return
	}
	o = testOptions(t, "fake:friendli-like")
	o.Out, o.Concurrency, o.OutputTokens = small, "4", 64
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	defer s.Close()
	var last Result
	for range 20 {
		last = runLevel(s, s.engines[0], 4, 16)
		if last.Unsaved || len(last.Errs) > 0 {
			break
		}
	}
	require.True(t, last.Unsaved, "64 KiB fill up within 20 samples of 16 requests")
	assert.Contains(t, errorsText(last.Errs), "no space left on device")
	_, err = s.Start(s.ctx, s.engines[0], 4)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no space left on device")
}
