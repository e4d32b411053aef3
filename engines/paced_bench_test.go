package engines

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/inferbench/inferbench/engines/internal/pacedserver"
	"github.com/inferbench/inferbench/internal/cpu"
	"github.com/inferbench/inferbench/internal/record"
)

// pacedTokens is the output length of every stream of BenchmarkPaced.
const pacedTokens = 256

// BenchmarkPaced pins the client's realistic cost: a server in another
// process (engines/internal/pacedserver) writes one token per write per
// stream, every stream once per interval, and the client's own CPU time
// (getrusage, user+system) is divided by the tokens it received. In the
// same sub-benchmark two Python clients stream from the same server, each
// one's CPU measured from its rusage by the difference between runs of C
// and 3·C requests (start-up cancels out), its tokens counted by the
// server: vLLM's own benchmark client (testdata/vllm_request_func.py:
// async_request_openai_chat_completions under asyncio and aiohttp, as
// vllm bench serve drives it) and the stdlib vLLM-style client
// (../testdata/vllm_style_client.py: threads and http.client).
//
// The interval of each case is one this 2-core host can keep with the
// client beside it: every stream every 1 ms at 64 streams, every 10 and
// every 20 ms at 1,024 (the server then writes 102k and 51k tokens a
// second; every 1 ms would be a million writes a second, which two cores
// cannot do while running the client, and a lag measured against a server
// that fell behind its own pace says nothing). At 10 ms vLLM's client
// cannot keep up (vllm-tok/s below tok/s): its reads then return several
// events and its cost per token falls, so the 20 ms case is the one where
// both clients are measured at the same pace. target-tok/s is the pace
// asked for, tok/s what the client received, step-ns the server's mean
// step period (the interval when it kept the pace) and late-frac its steps
// that began more than an interval late. PACED_CASES=streams:interval,...
// (e.g. 1024:5ms) runs other cases; INFERBENCH_NET_HTTP=1 measures the
// net/http path instead of the epoll reader, and PACED_COALESCE=DURATION
// sets the epoll reader's coalescing window (0: none).
//
// Metrics: cpu-ns/tok, user-ns/tok, sys-ns/tok and tok/s of inferbench's
// client; vllm-cpu-ns/tok and vllm-tok/s of vLLM's client, vllm-cpu-ratio
// = inferbench ÷ vLLM (the goal is ≤ 0.25); py-cpu-ns/tok, py-tok/s and
// cpu-ratio the same for the stdlib client; lag-p50-ns and lag-p99-ns,
// the client's timestamp of each event minus the server's CLOCK_MONOTONIC
// emit time just before the event's write (both sides calibrated to
// clock_gettime), and read-lag-p99-ns, the same for the time the event
// was read (the epoll reader stamps the kernel's receive time, so the two
// differ by how late it read); queued-frac, the output chunks that were
// already queued behind an earlier one when read (ReadStats.Queued);
// events/read; allocs/tok (the whole process's heap allocations);
// server-cpu-ns/tok, the server process's CPU per token it wrote.
//
// floor-cpu-ns/tok is the floor under the client at that pace (Linux):
// a reader that makes the epoll reader's system calls for every token and
// parses nothing (pacedFloor); floor-vllm-ratio and floor-py-ratio set it
// against the Python clients. A ratio goal below the floor's ratio cannot
// be met by any client that reads each token as it arrives.
//
// PACED_VLLM=0 and PACED_PYTHON=0 leave the Python clients out, and
// PACED_FLOOR=0 the floor reader. vLLM's client needs a python3 with
// aiohttp (see aiohttpPython).
func BenchmarkPaced(b *testing.B) {
	cases, err := pacedCases(os.Getenv("PACED_CASES"))
	if err != nil {
		b.Fatal(err)
	}
	if v := os.Getenv("PACED_COALESCE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		old := coalesceWindow
		coalesceWindow = d
		b.Cleanup(func() { coalesceWindow = old })
	}
	for _, pc := range cases {
		b.Run(fmt.Sprintf("streams=%d/interval=%v", pc.streams, pc.interval), func(b *testing.B) {
			url, stats := startPacedProcess(b, "-interval="+pc.interval.String())
			for b.Loop() {
				g := pacedGo(b, url, stats, pc.streams, 3, false)
				g.report(b, pc)
				var floor pacedRun
				if os.Getenv("PACED_FLOOR") != "0" {
					if floor, err = pacedFloor(url, stats, pc.streams, 3, pc.interval); err != nil {
						b.Fatal(err)
					}
					if floor.tokens > 0 {
						b.ReportMetric(floor.cpuPerTok(), "floor-cpu-ns/tok")
					}
				}
				if os.Getenv("PACED_VLLM") != "0" {
					v, err := pacedVLLM(url, stats, pc.streams, pc.rate())
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(v.cpuPerTok(), "vllm-cpu-ns/tok")
					b.ReportMetric(float64(v.tokens)/v.elapsed.Seconds(), "vllm-tok/s")
					b.ReportMetric(g.cpuPerTok()/v.cpuPerTok(), "vllm-cpu-ratio")
					if floor.tokens > 0 {
						b.ReportMetric(floor.cpuPerTok()/v.cpuPerTok(), "floor-vllm-ratio")
					}
				}
				if os.Getenv("PACED_PYTHON") != "0" {
					py, err := pacedPython(url, stats, pc.streams, pc.rate())
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(py.cpuPerTok(), "py-cpu-ns/tok")
					b.ReportMetric(float64(py.tokens)/py.elapsed.Seconds(), "py-tok/s")
					b.ReportMetric(g.cpuPerTok()/py.cpuPerTok(), "cpu-ratio")
					if floor.tokens > 0 {
						b.ReportMetric(floor.cpuPerTok()/py.cpuPerTok(), "floor-py-ratio")
					}
				}
			}
		})
	}
}

// pacedCase is one sub-benchmark: streams, each given a token every
// interval.
type pacedCase struct {
	streams  int
	interval time.Duration
}

// rate is the case's pace in tokens a second.
func (pc pacedCase) rate() float64 { return float64(pc.streams) / pc.interval.Seconds() }

// defaultPacedCases are BenchmarkPaced's cases (see there for the
// intervals).
var defaultPacedCases = []pacedCase{{64, time.Millisecond}, {1024, 10 * time.Millisecond}, {1024, 20 * time.Millisecond}}

// pacedCases parses PACED_CASES ("64:1ms,1024:10ms"); "" is the default.
func pacedCases(spec string) ([]pacedCase, error) {
	if spec == "" {
		return defaultPacedCases, nil
	}
	var cases []pacedCase
	for _, f := range strings.Split(spec, ",") {
		n, iv, ok := strings.Cut(strings.TrimSpace(f), ":")
		streams, err1 := strconv.Atoi(n)
		interval, err2 := time.ParseDuration(iv)
		if !ok || err1 != nil || err2 != nil || streams < 1 || interval <= 0 {
			return nil, fmt.Errorf("PACED_CASES: %q is not streams:interval (e.g. 1024:10ms)", f)
		}
		cases = append(cases, pacedCase{streams, interval})
	}
	return cases, nil
}

// report reports inferbench's client's metrics and the server's pace.
func (r pacedRun) report(b *testing.B, pc pacedCase) {
	b.ReportMetric(r.cpuPerTok(), "cpu-ns/tok")
	b.ReportMetric(float64(r.cpu.User)/float64(r.tokens), "user-ns/tok")
	b.ReportMetric(float64(r.cpu.System)/float64(r.tokens), "sys-ns/tok")
	b.ReportMetric(float64(r.tokens)/r.elapsed.Seconds(), "tok/s")
	b.ReportMetric(pc.rate(), "target-tok/s")
	if r.server.Steps > 0 {
		b.ReportMetric(float64(r.server.StepNanos)/float64(r.server.Steps), "step-ns")
		b.ReportMetric(float64(r.server.LateSteps)/float64(r.server.Steps), "late-frac")
	}
	if r.server.Tokens > 0 {
		b.ReportMetric(float64(r.server.CPUNanos)/float64(r.server.Tokens), "server-cpu-ns/tok")
	}
	b.ReportMetric(float64(r.lag.quantile(0.50)), "lag-p50-ns")
	b.ReportMetric(float64(r.lag.quantile(0.99)), "lag-p99-ns")
	b.ReportMetric(float64(r.readLag.quantile(0.99)), "read-lag-p99-ns")
	b.ReportMetric(r.reads.QueuedFraction(), "queued-frac")
	b.ReportMetric(r.reads.EventsPerRead(), "events/read")
	b.ReportMetric(float64(r.allocs)/float64(r.tokens), "allocs/tok")
}

// BenchmarkPacedH2C is BenchmarkPaced over cleartext HTTP/2 (Options.HTTP2
// against the paced server's -h2c mode), inferbench's client only: the
// Python client speaks HTTP/1.1. Streams share connections, so one read
// can carry several streams' tokens (events/read counts the reads of each
// stream's body, not the socket's).
func BenchmarkPacedH2C(b *testing.B) {
	cases := []pacedCase{{64, time.Millisecond}, {1024, 10 * time.Millisecond}}
	for _, pc := range cases {
		b.Run(fmt.Sprintf("streams=%d/interval=%v", pc.streams, pc.interval), func(b *testing.B) {
			url, stats := startPacedProcess(b, "-interval="+pc.interval.String(), "-h2c")
			for b.Loop() {
				pacedGo(b, url, stats, pc.streams, 3, true).report(b, pc)
			}
		})
	}
}

// pacedRun is one client's measurement.
type pacedRun struct {
	cpu     cpu.Usage
	tokens  int64
	elapsed time.Duration
	lag     *lagHist // the record's stamp − the emit time
	readLag *lagHist // the read's time − the emit time
	reads   ReadStats
	server  pacedserver.Stats // the server's counters over the run (inferbench's client only)
	allocs  uint64            // heap allocations over the run (the whole process's)
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
	min  atomic.Int64 // the most negative lag (0: none)
}

func (h *lagHist) add(ns int64) {
	if ns < 0 {
		h.neg.Add(1)
		for {
			m := h.min.Load()
			if ns >= m || h.min.CompareAndSwap(m, ns) {
				break
			}
		}
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
func pacedGo(b *testing.B, url string, stats func() (pacedserver.Stats, error), streams, rounds int, http2 bool) pacedRun {
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
	var hist, readHist atomic.Pointer[lagHist]
	hist.Store(new(lagHist))
	readHist.Store(new(lagHist))
	c.eventHook = func(data []byte, at, readAt time.Duration) {
		if m, ok := emitMono(data); ok {
			hist.Load().add(off + int64(at) - m)
			readHist.Load().add(off + int64(readAt) - m)
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
	readHist.Store(new(lagHist))
	rs0 := c.ReadStats()
	s0, err := stats()
	if err != nil {
		b.Fatal(err)
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	u0, err := cpu.Self()
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	tokens := run(rounds)
	elapsed := time.Since(t0)
	u1, _ := cpu.Self()
	runtime.ReadMemStats(&m1)
	s1, err := stats()
	if err != nil {
		b.Fatal(err)
	}
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d requests failed; first: %v", f, firstErr.Load())
	}
	h := hist.Load()
	if n := h.neg.Load(); n > 0 {
		b.Errorf("%d events were stamped before the server emitted them, by up to %v: the clocks disagree", n, time.Duration(-h.min.Load()))
	}
	server := pacedserver.Stats{Tokens: s1.Tokens - s0.Tokens, Requests: s1.Requests - s0.Requests, LateSteps: s1.LateSteps - s0.LateSteps,
		Steps: s1.Steps - s0.Steps, StepNanos: s1.StepNanos - s0.StepNanos, CPUNanos: s1.CPUNanos - s0.CPUNanos}
	return pacedRun{cpu: u1.Sub(u0), tokens: tokens, elapsed: elapsed, lag: h, readLag: readHist.Load(), reads: c.ReadStats().Sub(rs0), server: server,
		allocs: m1.Mallocs - m0.Mallocs}
}

// pacedPython runs the vLLM-style Python client (stdlib threads and
// http.client) twice (C and 3·C requests) and returns the difference.
func pacedPython(url string, stats func() (pacedserver.Stats, error), streams int, target float64) (pacedRun, error) {
	if _, err := exec.LookPath("python3"); err != nil {
		return pacedRun{}, fmt.Errorf("python3 is needed for the comparison (PACED_PYTHON=0 skips it): %w", err)
	}
	return pacedScript(stats, streams, 0, target, func(n int) *exec.Cmd {
		return exec.Command("python3", "../testdata/vllm_style_client.py", "--url", url, "--model", "m",
			"--concurrency", fmt.Sprint(streams), "--requests", fmt.Sprint(n), "--warmup", "0",
			"--max-tokens", fmt.Sprint(pacedTokens), "--prompt-words", "4")
	})
}

// pacedVLLM runs vLLM's own request function and benchmark driver
// (testdata/vllm_request_func.py: asyncio and aiohttp) twice (C and 3·C
// requests) and returns the difference.
func pacedVLLM(url string, stats func() (pacedserver.Stats, error), streams int, target float64) (pacedRun, error) {
	py, err := aiohttpPython()
	if err != nil {
		return pacedRun{}, err
	}
	// Its ready check streams one request more than it is asked for.
	return pacedScript(stats, streams, pacedTokens, target, func(n int) *exec.Cmd {
		return exec.Command(py, "testdata/vllm_request_func.py", "--url", url, "--model", "m",
			"--max-concurrency", fmt.Sprint(streams), "--num-prompts", fmt.Sprint(n),
			"--max-tokens", fmt.Sprint(pacedTokens), "--prompt-words", "4")
	})
}

// aiohttpPython is a python3 that can import aiohttp: PACED_VLLM_PYTHON
// if set, else python3 on PATH, else /usr/bin/python3 (where Debian's
// python3-aiohttp installs when PATH leads to another python3, as with
// pyenv).
func aiohttpPython() (string, error) {
	tried := []string{"python3", "/usr/bin/python3"}
	if p := os.Getenv("PACED_VLLM_PYTHON"); p != "" {
		tried = []string{p}
	}
	for _, p := range tried {
		if exec.Command(p, "-c", "import aiohttp").Run() == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("vLLM's request function needs a python3 with aiohttp, and none of %s imports it: "+
		"apt-get install python3-aiohttp (Debian) or pip install aiohttp, or set PACED_VLLM_PYTHON to one that does; "+
		"PACED_VLLM=0 skips the comparison", strings.Join(tried, ", "))
}

// pacedScript runs a client command for C and for 3·C requests and
// returns the difference of its CPU time (its rusage) and of the tokens
// the server wrote meanwhile, so start-up cancels out. The command prints
// a JSON object with requests and errors (and, if it counts them,
// output_tokens: then the server's count must agree, plus extra tokens
// per run that the client streams beyond its requests).
//
// The difference is only the steady cost when both runs paid the same to
// start: a pair whose difference streamed faster than the server's pace
// (target tokens a second, +5 %) did not (the shorter run started slowly)
// and is run again, once; a second such pair is an error.
func pacedScript(stats func() (pacedserver.Stats, error), streams int, extra int64, target float64, command func(n int) *exec.Cmd) (pacedRun, error) {
	one := func(n int) (cpu.Usage, int64, time.Duration, error) {
		st0, err := stats()
		if err != nil {
			return cpu.Usage{}, 0, 0, err
		}
		tok0 := st0.Tokens
		cmd := command(n)
		cmd.Stderr = os.Stderr
		t0 := time.Now()
		out, err := cmd.Output()
		elapsed := time.Since(t0)
		if err != nil {
			return cpu.Usage{}, 0, 0, fmt.Errorf("%s: %w", cmd, err)
		}
		var res struct {
			Requests, Errors int
			OutputTokens     *int64 `json:"output_tokens"`
			FirstError       string `json:"first_error"`
		}
		if err := json.Unmarshal(out, &res); err != nil || res.Errors > 0 || res.Requests != n {
			return cpu.Usage{}, 0, 0, fmt.Errorf("%s said %s (%v)", cmd, out, err)
		}
		st1, err := stats()
		if err != nil {
			return cpu.Usage{}, 0, 0, err
		}
		tok1 := st1.Tokens
		if res.OutputTokens != nil && tok1-tok0 != *res.OutputTokens+extra {
			return cpu.Usage{}, 0, 0, fmt.Errorf("%s counted %d output tokens (+%d unmeasured), the server wrote %d", cmd, *res.OutputTokens, extra, tok1-tok0)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		return cpu.Usage{User: time.Duration(ru.Utime.Nano()), System: time.Duration(ru.Stime.Nano())}, tok1 - tok0, elapsed, nil
	}
	var rate float64
	for range 2 {
		u1, t1, e1, err := one(streams)
		if err != nil {
			return pacedRun{}, err
		}
		u2, t2, e2, err := one(3 * streams)
		if err != nil {
			return pacedRun{}, err
		}
		run := pacedRun{cpu: u2.Sub(u1), tokens: t2 - t1, elapsed: e2 - e1}
		if rate = float64(run.tokens) / run.elapsed.Seconds(); run.elapsed > 0 && rate <= 1.05*target {
			return run, nil
		}
	}
	return pacedRun{}, fmt.Errorf("%s: twice the difference of its runs streamed %.0f tokens/s, faster than the server's %.0f: "+
		"the runs' start-up costs differ, so their difference is not the client's steady cost", command(streams), rate, target)
}

// startPacedProcess runs the paced server in a child process (so the
// benchmark's own CPU time is the client's alone) and returns its URL and
// a reader of its token counter.
func startPacedProcess(tb testing.TB, args ...string) (string, func() (pacedserver.Stats, error)) {
	tb.Helper()
	url := startChildServer(tb, "paced server process", pacedEnv+"="+strings.Join(args, " "))
	statsURL := strings.TrimSuffix(url, "/v1/chat/completions") + "/stats"
	hc := &http.Client{Timeout: 10 * time.Second}
	if slices.Contains(args, "-h2c") {
		// The h2c server speaks HTTP/2 only, its stats too.
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		hc.Transport = &http.Transport{Protocols: &p}
	}
	tb.Cleanup(hc.CloseIdleConnections)
	stats := func() (pacedserver.Stats, error) {
		var st pacedserver.Stats
		resp, err := hc.Get(statsURL)
		if err != nil {
			return st, fmt.Errorf("paced server stats: %w", err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return st, fmt.Errorf("paced server stats: %w", err)
		}
		return st, nil
	}
	return url, stats
}
