package engines

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/inferbench/inferbench/internal/cpu"
	"github.com/inferbench/inferbench/internal/record"
)

// pacedTokens is the output length of every stream of BenchmarkPaced.
const pacedTokens = 256

// BenchmarkPaced pins the client's realistic cost: a server in another
// process (engines/internal/pacedserver) writes one token per write per
// stream, every stream every millisecond, and the client's own CPU time
// (getrusage, user+system) is divided by the tokens it received. In the
// same sub-benchmark the vLLM-style Python client (testdata/
// vllm_style_client.py, stdlib threads + http.client) streams from the
// same server, its CPU measured from its rusage by the difference between
// runs of C and 3·C requests (start-up cancels out), its tokens counted by
// the server.
//
// Metrics: cpu-ns/tok, user-ns/tok, sys-ns/tok and tok/s of inferbench's
// client; py-cpu-ns/tok and py-tok/s of the Python client; cpu-ratio =
// inferbench ÷ Python (the goal is ≤ 0.25); lag-p50-ns and lag-p99-ns,
// the client's timestamp of each event minus the server's CLOCK_MONOTONIC
// emit time (both sides calibrated to clock_gettime); queued-frac, the
// output chunks that were already queued behind an earlier one when read
// (ReadStats.Queued); events/read.
//
// The pace is the server's target: on a small host it cannot keep it at
// 1,024 streams (server and client share the cores), and tok/s says what
// was achieved. Set PACED_PYTHON=0 to measure inferbench alone.
func BenchmarkPaced(b *testing.B) {
	for _, streams := range []int{64, 256, 1024} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			url, stats := startPacedProcess(b, "-interval=1ms")
			for b.Loop() {
				g := pacedGo(b, url, streams, 3, false)
				b.ReportMetric(g.cpuPerTok(), "cpu-ns/tok")
				b.ReportMetric(float64(g.cpu.User)/float64(g.tokens), "user-ns/tok")
				b.ReportMetric(float64(g.cpu.System)/float64(g.tokens), "sys-ns/tok")
				b.ReportMetric(float64(g.tokens)/g.elapsed.Seconds(), "tok/s")
				b.ReportMetric(float64(g.lag.quantile(0.50)), "lag-p50-ns")
				b.ReportMetric(float64(g.lag.quantile(0.99)), "lag-p99-ns")
				b.ReportMetric(g.reads.QueuedFraction(), "queued-frac")
				b.ReportMetric(g.reads.EventsPerRead(), "events/read")
				if os.Getenv("PACED_PYTHON") == "0" {
					continue
				}
				py, err := pacedPython(b, url, stats, streams)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(py.cpuPerTok(), "py-cpu-ns/tok")
				b.ReportMetric(float64(py.tokens)/py.elapsed.Seconds(), "py-tok/s")
				b.ReportMetric(g.cpuPerTok()/py.cpuPerTok(), "cpu-ratio")
			}
		})
	}
}

// BenchmarkPacedH2C is BenchmarkPaced over cleartext HTTP/2 (Options.HTTP2
// against the paced server's -h2c mode), inferbench's client only: the
// Python client speaks HTTP/1.1. Streams share connections, so one read
// can carry several streams' tokens (events/read counts the reads of each
// stream's body, not the socket's).
func BenchmarkPacedH2C(b *testing.B) {
	for _, streams := range []int{64, 1024} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			url, _ := startPacedProcess(b, "-interval=1ms", "-h2c")
			for b.Loop() {
				g := pacedGo(b, url, streams, 3, true)
				b.ReportMetric(g.cpuPerTok(), "cpu-ns/tok")
				b.ReportMetric(float64(g.cpu.User)/float64(g.tokens), "user-ns/tok")
				b.ReportMetric(float64(g.cpu.System)/float64(g.tokens), "sys-ns/tok")
				b.ReportMetric(float64(g.tokens)/g.elapsed.Seconds(), "tok/s")
				b.ReportMetric(float64(g.lag.quantile(0.50)), "lag-p50-ns")
				b.ReportMetric(float64(g.lag.quantile(0.99)), "lag-p99-ns")
				b.ReportMetric(g.reads.QueuedFraction(), "queued-frac")
			}
		})
	}
}

// pacedRun is one client's measurement.
type pacedRun struct {
	cpu     cpu.Usage
	tokens  int64
	elapsed time.Duration
	lag     *lagHist
	reads   ReadStats
}

func (r pacedRun) cpuPerTok() float64 {
	if r.tokens == 0 {
		return 0
	}
	return float64(r.cpu.Total()) / float64(r.tokens)
}

// lagHist is a histogram of lags at 1 µs resolution up to 100 ms.
type lagHist struct {
	bins [100_001]atomic.Int64
	neg  atomic.Int64 // stamps before the emit time: a broken clock
}

func (h *lagHist) add(ns int64) {
	if ns < 0 {
		h.neg.Add(1)
		ns = 0
	}
	h.bins[min(ns/1000, int64(len(h.bins)-1))].Add(1)
}

// quantile is the q-quantile in ns (the bin's upper edge).
func (h *lagHist) quantile(q float64) int64 {
	var n int64
	for i := range h.bins {
		n += h.bins[i].Load()
	}
	want := int64(q * float64(n))
	var c int64
	for i := range h.bins {
		if c += h.bins[i].Load(); c > want {
			return int64(i+1) * 1000
		}
	}
	return 0
}

// emitMono is the "emit_mono_ns" number at the end of a paced event,
// found from the end without a parse (this runs in the measured process).
func emitMono(data []byte) (int64, bool) {
	const key = `"emit_mono_ns":`
	if len(data) < len(key)+2 || data[len(data)-1] != '}' {
		return 0, false
	}
	i := len(data) - 2
	var v, p int64 = 0, 1
	for ; i >= 0 && data[i] >= '0' && data[i] <= '9'; i-- {
		v += int64(data[i]-'0') * p
		p *= 10
	}
	if i+1 < len(key) || string(data[i+1-len(key):i+1]) != key {
		return 0, false
	}
	return v, true
}

// pacedGo streams rounds requests per stream (after one warm-up round
// that opens the connections) and measures the client process.
func pacedGo(b *testing.B, url string, streams, rounds int, http2 bool) pacedRun {
	epoch := time.Now()
	clock, err := cpu.NewMonoClock()
	if err != nil {
		b.Fatal(err)
	}
	off := clock.At(epoch)
	c, err := NewClient(Engine{Name: "paced", Profile: VLLM, URL: url, Model: "m"}, Options{Concurrency: streams, Epoch: epoch, HTTP2: http2})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var hist atomic.Pointer[lagHist]
	hist.Store(new(lagHist))
	c.eventHook = func(data []byte, at time.Duration) {
		if m, ok := emitMono(data); ok {
			hist.Load().add(off + int64(at) - m)
		}
	}
	var failed atomic.Int64
	var firstErr atomic.Value
	run := func(k int) int64 {
		var tokens atomic.Int64
		var wg sync.WaitGroup
		for range streams {
			wg.Go(func() {
				var rec record.Record
				for range k {
					c.Do(context.Background(), Request{Messages: oneMsg, MaxTokens: pacedTokens}, &rec)
					if rec.Error != record.OK {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, string(rec.Error)+": "+rec.Message)
					}
					tokens.Add(int64(rec.OutputTokens))
				}
			})
		}
		wg.Wait()
		return tokens.Load()
	}
	run(1)
	hist.Store(new(lagHist))
	rs0 := c.ReadStats()
	u0, err := cpu.Self()
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	tokens := run(rounds)
	elapsed := time.Since(t0)
	u1, _ := cpu.Self()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d requests failed; first: %v", f, firstErr.Load())
	}
	h := hist.Load()
	if n := h.neg.Load(); n > 0 {
		b.Errorf("%d events were stamped before the server emitted them: the clocks disagree", n)
	}
	return pacedRun{cpu: u1.Sub(u0), tokens: tokens, elapsed: elapsed, lag: h, reads: c.ReadStats().Sub(rs0)}
}

// pacedPython runs the Python client twice (C and 3·C requests) and
// returns the difference.
func pacedPython(b *testing.B, url string, stats func() (int64, error), streams int) (pacedRun, error) {
	if _, err := exec.LookPath("python3"); err != nil {
		return pacedRun{}, fmt.Errorf("python3 is needed for the comparison (PACED_PYTHON=0 skips it): %w", err)
	}
	one := func(n int) (cpu.Usage, int64, time.Duration, error) {
		tok0, err := stats()
		if err != nil {
			return cpu.Usage{}, 0, 0, err
		}
		cmd := exec.Command("python3", "../testdata/vllm_style_client.py", "--url", url, "--model", "m",
			"--concurrency", fmt.Sprint(streams), "--requests", fmt.Sprint(n), "--warmup", "0",
			"--max-tokens", fmt.Sprint(pacedTokens), "--prompt-words", "4")
		cmd.Stderr = os.Stderr
		t0 := time.Now()
		out, err := cmd.Output()
		elapsed := time.Since(t0)
		if err != nil {
			return cpu.Usage{}, 0, 0, fmt.Errorf("python client: %w", err)
		}
		var res struct{ Requests, Errors int }
		if err := json.Unmarshal(out, &res); err != nil || res.Errors > 0 || res.Requests != n {
			return cpu.Usage{}, 0, 0, fmt.Errorf("python client said %s (%v)", out, err)
		}
		tok1, err := stats()
		if err != nil {
			return cpu.Usage{}, 0, 0, err
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		return cpu.Usage{User: time.Duration(ru.Utime.Nano()), System: time.Duration(ru.Stime.Nano())}, tok1 - tok0, elapsed, nil
	}
	u1, t1, e1, err := one(streams)
	if err != nil {
		return pacedRun{}, err
	}
	u2, t2, e2, err := one(3 * streams)
	if err != nil {
		return pacedRun{}, err
	}
	return pacedRun{cpu: u2.Sub(u1), tokens: t2 - t1, elapsed: e2 - e1}, nil
}

// startPacedProcess runs the paced server in a child process (so the
// benchmark's own CPU time is the client's alone) and returns its URL and
// a reader of its token counter.
func startPacedProcess(tb testing.TB, args ...string) (string, func() (int64, error)) {
	tb.Helper()
	url := startChildServer(tb, "paced server process", pacedEnv+"="+strings.Join(args, " "))
	statsURL := strings.TrimSuffix(url, "/v1/chat/completions") + "/stats"
	stats := func() (int64, error) {
		resp, err := http.Get(statsURL)
		if err != nil {
			return 0, fmt.Errorf("paced server stats: %w", err)
		}
		defer resp.Body.Close()
		var st struct{ Tokens int64 }
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return 0, fmt.Errorf("paced server stats: %w", err)
		}
		return st.Tokens, nil
	}
	return url, stats
}
