package suite

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"

	"github.com/inferbench/inferbench/fake/faketest"
)

// BenchmarkMemoryPerStream measures what one concurrent stream costs the
// client: 10,000 streams in flight at once against the standalone simulated
// engine (a separate process, so its memory is not counted), each
// receiving a token every half second; the live heap (after a collection)
// and goroutine stacks at the peak, less what was in use before the sample,
// divided by the streams, is reported as B/stream (the goal is at most
// 64 KiB). It counts
// the whole suite path: load slots, the HTTP client and its connections,
// the SSE reader, the records in progress and those already saved.
//
// It is a benchmark, not a test: 20,000 sockets and a few seconds of two
// busy processes are too much for a plain go test on a shared machine.
// Run it with
//
//	go test -run='^$' -bench=MemoryPerStream -benchtime=1x ./internal/suite/
func BenchmarkMemoryPerStream(b *testing.B) {
	const streams = 10_000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < streams+200 {
		b.Skipf("the open-file limit %d is below %d streams: raise ulimit -n", lim.Cur, streams)
	}
	// Every stream runs at once (max-num-seqs), a step takes 500 ms
	// whatever its size: one token per stream every half second.
	url := faketest.StartStandalone(b, "--max-num-seqs", "10000", "--max-batched-tokens", "200000",
		"--kv-capacity-tokens", "2000000", "--step-base-ms", "500", "--step-per-token-ms", "0",
		"--kv-per-token-us", "0", "--prefill-attn-coef", "0", "--overhead-ms", "0")
	o := Options{
		Engines: "mem=" + url, Concurrency: "10000", InputTokens: 16, OutputTokens: 8,
		RequestTimeout: 2 * time.Minute, Out: b.TempDir(), Getenv: func(string) string { return "" },
	}
	s, err := New(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := s.Engines()[0]
	// Live memory: after a collection, so garbage that a later GC would
	// free is not counted as the stream's.
	var stacks, heap uint64
	inUse := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		stacks, heap = m.StackInuse, m.HeapInuse
		return m.HeapInuse + m.StackInuse
	}
	for b.Loop() {
		runtime.GC()
		base := inUse()
		sm, err := s.Start(context.Background(), e, streams)
		if err != nil {
			b.Fatal(err)
		}
		for range streams {
			if err := sm.Dispatch(); err != nil {
				b.Fatal(err)
			}
		}
		// Every slot has a measured request in flight now; sample the
		// memory while they stream (8 tokens: about 4 s).
		var peak uint64
		var peakStacks uint64
		for i := range 10 {
			if v := inUse(); v > peak {
				peak, peakStacks = v, stacks
			}
			if p := os.Getenv("INFERBENCH_HEAP_PROFILE"); p != "" && i == 5 {
				writeHeapProfile(b, p) // where the bytes are: go tool pprof -sample_index=inuse_space
			}
			time.Sleep(200 * time.Millisecond)
		}
		res := sm.Finish()
		if err := res.err(); err != nil {
			b.Fatal(err)
		}
		if res.Summary.Failed > 0 {
			b.Fatalf("%d of %d requests failed: %v", res.Summary.Failed, res.Summary.Requests, res.Summary.Errors)
		}
		per := float64(peak-min(base, peak)) / streams
		b.ReportMetric(per, "B/stream")
		b.ReportMetric(res.Summary.OutputTokPerSec, "tok/s")
		b.Logf("peak heap+stacks %.0f MiB (stacks %.0f MiB) over %.0f MiB before: %.1f KiB per stream (goal ≤ 64 KiB)",
			float64(peak)/(1<<20), float64(peakStacks)/(1<<20), float64(base)/(1<<20), per/1024)
		_ = heap
	}
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}
