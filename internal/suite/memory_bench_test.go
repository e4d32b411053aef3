package suite

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
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
	s, e := steppedSuite(b, "mem", streams, streams, 500, 8, 2*time.Minute)
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
// is of 30m), as one 20 s sample after another, and reports whether the
// client's memory moved after the first three samples (the warm-up). Per
// sample it takes the peak resident set while the sample ran (VmHWM,
// reset before it through /proc/self/clear_refs), the resident set after
// it, and the live heap and stacks after a collection. A trend is the
// change from the median of the first half of the samples after the
// warm-up to the median of the second half, ÷ the first: peak-rss-trend,
// rss-trend and heap-trend (flat is within ±0.10). rss-spread-frac is
// (highest − lowest) ÷ lowest of the resident sets after the samples:
// how much it moves with the moment the runtime returns freed pages.
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
	s, e := steppedSuite(b, "long", streams, 1000, 50, 64, 2*time.Minute)
	for b.Loop() {
		var peak, rss, heap []uint64
		var series []string
		var requests, failed int
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
				b.Fatalf("resetting the peak RSS: %v", err)
			}
			res := sampleFor(b, s, e, streams, 20*time.Second)
			requests += res.Summary.Requests
			failed += res.Summary.Failed
			peak = append(peak, peakResident(b))
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			rss = append(rss, residentBytes())
			heap = append(heap, ms.HeapInuse+ms.StackInuse)
			series = append(series, fmt.Sprintf("%.0f/%.0f/%.1f", mib(peak[len(peak)-1]), mib(rss[len(rss)-1]), mib(heap[len(heap)-1])))
		}
		// One line (go test keeps only a benchmark's first log lines).
		b.Logf("%d samples; per sample, peak RSS / RSS after / heap+stacks after a GC, MiB: %s", len(rss), strings.Join(series, " "))
		if len(rss) < 7 {
			b.Fatalf("%d samples in %v: too short to see a trend after the warm-up (at least 7)", len(rss), d)
		}
		after := rss[3:]
		lo, hi := slices.Min(after), slices.Max(after)
		b.ReportMetric(drift(peak[3:]), "peak-rss-trend")
		b.ReportMetric(drift(after), "rss-trend")
		b.ReportMetric(drift(heap[3:]), "heap-trend")
		b.ReportMetric(float64(hi-lo)/float64(lo), "rss-spread-frac")
		b.ReportMetric(mib(slices.Max(peak[3:])), "peak-rss-MiB")
		b.ReportMetric(float64(requests), "requests")
		b.ReportMetric(float64(failed), "errors")
	}
}

func mib(v uint64) float64 { return float64(v) / (1 << 20) }

// drift is (median of xs' second half − median of its first half) ÷ the
// first: a drift, where a single high or low sample does not count.
func drift(xs []uint64) float64 {
	med := func(v []uint64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		if len(v)%2 == 1 {
			return float64(v[len(v)/2])
		}
		return (float64(v[len(v)/2-1]) + float64(v[len(v)/2])) / 2
	}
	h := len(xs) / 2
	first, second := med(xs[:h]), med(xs[len(xs)-h:])
	return (second - first) / first
}

// peakResident is VmHWM, the process's peak resident set since the last
// reset (writing 5 to /proc/self/clear_refs).
func peakResident(b *testing.B) uint64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb uint64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb); err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
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
	s, e := steppedSuite(b, "overload", streams, slots, 10, 8, 10*time.Minute)
	for b.Loop() {
		res := sampleFor(b, s, e, streams, 90*time.Second)
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

// steppedSuite starts the standalone simulated engine (a separate process)
// with a fixed step of stepMs whatever its size (no per-token, KV or
// prefill cost) and at most seqs sequences running, and a suite on it at
// streams, 16-token prompts, outTokens-token outputs and the request
// timeout given.
func steppedSuite(b *testing.B, name string, streams, seqs, stepMs, outTokens int, timeout time.Duration) (*Suite, *Engine) {
	url := faketest.StartStandalone(b, "--max-num-seqs", fmt.Sprint(seqs), "--max-batched-tokens", fmt.Sprint(max(8192, 64*seqs)),
		"--kv-capacity-tokens", "2000000", "--step-base-ms", fmt.Sprint(stepMs), "--step-per-token-ms", "0",
		"--kv-per-token-us", "0", "--prefill-attn-coef", "0", "--overhead-ms", "0")
	s, err := New(context.Background(), Options{
		Engines: name + "=" + url, Concurrency: fmt.Sprint(streams), InputTokens: 16, OutputTokens: outTokens,
		RequestTimeout: timeout, Out: b.TempDir(), Getenv: func(string) string { return "" },
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	return s, s.Engines()[0]
}

// sampleFor runs one sample of e at concurrency c, dispatching measured
// requests for d as b.Loop would, and returns its result; an error fails b.
func sampleFor(b *testing.B, s *Suite, e *Engine, c int, d time.Duration) Result {
	sm, err := s.Start(context.Background(), e, c)
	if err != nil {
		b.Fatal(err)
	}
	for stop := time.Now().Add(d); time.Now().Before(stop); {
		if err := sm.Dispatch(); err != nil {
			b.Fatal(err)
		}
	}
	res := sm.Finish()
	if err := res.err(); err != nil {
		b.Fatal(err)
	}
	return res
}
