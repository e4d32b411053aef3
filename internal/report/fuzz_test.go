package report

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead: any file given as a summary.json (the plot command reads one
// from any directory) is read or refused with an error, never a panic, and
// what is read can be tabled and rendered.
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"schema":"inferbench-summary/1","levels":[1],"engines":[{"name":"a"}],"pooled":[{"engine":"a","concurrency":1}]}`))
	// A file claiming a certified p99 without its lower bound.
	f.Add([]byte(`{"schema":"inferbench-summary/1","levels":[1],"engines":[{"name":"a"}],"pooled":[{"engine":"a","concurrency":1,"ttft":{"n":1,"p99":{"n":1,"ci_lo_ns":null,"ci_hi_ns":5,"certified":true}}}]}`))
	f.Add([]byte(`{"schema":"other"}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "summary.json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Read(path)
		if err != nil {
			return
		}
		_ = s.WriteTable(discard{})
		_, _ = HTML(s, nil)
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
