package suite

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"testing"
	"time"

	"github.com/inferbench/inferbench/fake/faketest"
	"github.com/inferbench/inferbench/internal/record"
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
	const streams = 10_000 // New raises RLIMIT_NOFILE to what they need, or says what to run
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
	var stacks, heap, rss uint64
	inUse := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		stacks, heap, rss = m.StackInuse, m.HeapInuse, residentBytes()
		return m.HeapInuse + m.StackInuse
	}
	for b.Loop() {
		runtime.GC()
		base := inUse()
		baseRSS := rss
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
		var peakStacks, peakRSS uint64
		for i := range 10 {
			if v := inUse(); v > peak {
				peak, peakStacks = v, stacks
			}
			peakRSS = max(peakRSS, rss)
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
		perRSS := float64(peakRSS-min(baseRSS, peakRSS)) / streams
		b.ReportMetric(per, "B/stream")
		b.ReportMetric(perRSS, "rss-B/stream")
		b.ReportMetric(res.Summary.OutputTokPerSec, "tok/s")
		b.ReportMetric(float64(res.Summary.Failed), "errors")
		if res.Client.Tokens > 0 {
			b.ReportMetric(res.Client.NsPerToken, "client-cpu-ns/tok")
		}
		b.Logf("peak heap+stacks %.0f MiB (stacks %.0f MiB, heap %.0f MiB) over %.0f MiB before: %.1f KiB per stream; RSS %.0f MiB over %.0f MiB: %.1f KiB per stream (goal ≤ 64 KiB); %s",
			float64(peak)/(1<<20), float64(peakStacks)/(1<<20), float64(heap)/(1<<20), float64(base)/(1<<20), per/1024,
			float64(peakRSS)/(1<<20), float64(baseRSS)/(1<<20), perRSS/1024, res.Client.logLine())
	}
}

// residentBytes is the process's resident set (VmRSS), or 0 where
// /proc/self/statm cannot be read.
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, res uint64
	if _, err := fmt.Sscan(string(b), &size, &res); err != nil {
		return 0
	}
	return res * uint64(os.Getpagesize())
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

// BenchmarkLongRunRSS runs 1,000 streams against the standalone simulated
// engine for INFERBENCH_LONG_RUN (default 2m; the figure in docs/scale.md
// is of 30m), as one sample after another of -benchtime-like 20 s each,
// and reports how the client's resident set moved after the first three
// samples (the warm-up): rss-growth-frac = (last − lowest) ÷ lowest over
// the samples after them, and rss-spread-frac = (highest − lowest) ÷
// lowest. Flat is within 0.10.
//
//	INFERBENCH_LONG_RUN=30m go test -run='^$' -bench=LongRunRSS -benchtime=1x -timeout=40m ./internal/suite/
func BenchmarkLongRunRSS(b *testing.B) {
	d := 2 * time.Minute
	if v := os.Getenv("INFERBENCH_LONG_RUN"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			b.Fatal(err)
		}
	}
	const streams = 1000
	url := faketest.StartStandalone(b, "--max-num-seqs", "1000", "--max-batched-tokens", "64000",
		"--kv-capacity-tokens", "2000000", "--step-base-ms", "50", "--step-per-token-ms", "0",
		"--kv-per-token-us", "0", "--prefill-attn-coef", "0", "--overhead-ms", "0")
	o := Options{
		Engines: "long=" + url, Concurrency: fmt.Sprint(streams), InputTokens: 16, OutputTokens: 64,
		RequestTimeout: 2 * time.Minute, Out: b.TempDir(), Getenv: func(string) string { return "" },
		Benchtime: "20s",
	}
	s, err := New(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := s.Engines()[0]
	for b.Loop() {
		var rss []uint64
		var requests, failed int
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			sm, err := s.Start(context.Background(), e, streams)
			if err != nil {
				b.Fatal(err)
			}
			for stop := time.Now().Add(20 * time.Second); time.Now().Before(stop); {
				if err := sm.Dispatch(); err != nil {
					b.Fatal(err)
				}
			}
			res := sm.Finish()
			if err := res.err(); err != nil {
				b.Fatal(err)
			}
			requests += res.Summary.Requests
			failed += res.Summary.Failed
			runtime.GC()
			rss = append(rss, residentBytes())
			b.Logf("sample %d: %d requests, RSS %.1f MiB", len(rss), res.Summary.Requests, float64(rss[len(rss)-1])/(1<<20))
		}
		if len(rss) < 5 {
			b.Fatalf("%d samples in %v: too short to see a trend after the warm-up (at least 5)", len(rss), d)
		}
		after := rss[3:]
		lo, hi := slices.Min(after), slices.Max(after)
		b.ReportMetric(float64(after[len(after)-1]-min(lo, after[len(after)-1]))/float64(lo), "rss-growth-frac")
		b.ReportMetric(float64(hi-lo)/float64(lo), "rss-spread-frac")
		b.ReportMetric(float64(lo)/(1<<20), "rss-low-MiB")
		b.ReportMetric(float64(requests), "requests")
		b.ReportMetric(float64(failed), "errors")
	}
}

// BenchmarkOverload is the engine-side overload case: 10,000 streams
// against a standalone simulated engine that runs at most 64 sequences at
// a time (--max-num-seqs 64), so nearly every request waits in the
// engine's queue. What it shows: the wait appears in TTFT (its p50 is
// reported, and the queue's predicted wait beside it: the streams ahead
// of a request ÷ the engine's completion rate), the client's own CPU share
// stays small, the sample is not flagged client-bound, and no request
// fails or times out (the request timeout, 10 m, is far above the wait).
//
//	go test -run='^$' -bench=Overload -benchtime=1x -timeout=20m ./internal/suite/
func BenchmarkOverload(b *testing.B) {
	const streams, slots = 10_000, 64
	url := faketest.StartStandalone(b, "--max-num-seqs", fmt.Sprint(slots), "--max-batched-tokens", "8192",
		"--kv-capacity-tokens", "2000000", "--step-base-ms", "10", "--step-per-token-ms", "0",
		"--kv-per-token-us", "0", "--prefill-attn-coef", "0", "--overhead-ms", "0")
	o := Options{
		Engines: "overload=" + url, Concurrency: fmt.Sprint(streams), InputTokens: 16, OutputTokens: 8,
		RequestTimeout: 10 * time.Minute, Out: b.TempDir(), Getenv: func(string) string { return "" },
		Benchtime: "90s",
	}
	s, err := New(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := s.Engines()[0]
	for b.Loop() {
		sm, err := s.Start(context.Background(), e, streams)
		if err != nil {
			b.Fatal(err)
		}
		for stop := time.Now().Add(90 * time.Second); time.Now().Before(stop); {
			if err := sm.Dispatch(); err != nil {
				b.Fatal(err)
			}
		}
		res := sm.Finish()
		if err := res.err(); err != nil {
			b.Fatal(err)
		}
		sum := res.Summary
		b.ReportMetric(float64(sum.Failed), "errors")
		b.ReportMetric(float64(sum.Errors[record.Timeout]), "timeouts")
		b.ReportMetric(sum.OutputTokPerSec, "tok/s")
		b.ReportMetric(sum.ReqPerSec, "req/s")
		b.ReportMetric(sum.TTFT.P50.Seconds(), "ttft-p50-s")
		b.ReportMetric(sum.TTFT.P99.Seconds(), "ttft-p99-s")
		b.ReportMetric(sum.TPOT.P50.Seconds()*1e3, "tpot-p50-ms")
		if sum.ReqPerSec > 0 {
			// In a closed loop of N streams and S slots, a new request
			// waits for the N − S ahead of it to finish at rate X.
			b.ReportMetric(float64(streams-slots)/sum.ReqPerSec, "ttft-predicted-s")
		}
		b.ReportMetric(res.Client.MachineShare, "client-cpu-frac")
		b.ReportMetric(res.Client.NsPerToken, "client-cpu-ns/tok")
		bound := 0.0
		if res.Client.Bound {
			bound = 1
		}
		b.ReportMetric(bound, "client-bound")
		b.Logf("%d requests, %d failed %v; %s; bound=%v %s", sum.Requests, sum.Failed, sum.Errors, res.Client.logLine(), res.Client.Bound, res.Client.Reason)
	}
}
