package engines

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/inferbench/inferbench/fake/faketest"
	"github.com/inferbench/inferbench/internal/record"
)

// vllmStream builds one vLLM-shaped stream of n content chunks with
// continuous usage: role chunk, n content chunks, finish, usage, [DONE].
func vllmStream(n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "data: %s\n\n", `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":128,"total_tokens":128,"completion_tokens":0}}`)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" tok%d\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":128,\"total_tokens\":%d,\"completion_tokens\":%d}}\n\n", i, 128+i, i)
	}
	fmt.Fprintf(&b, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"logprobs\":null,\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":128,\"total_tokens\":%d,\"completion_tokens\":%d}}\n\n", 128+n, n)
	fmt.Fprintf(&b, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":128,\"total_tokens\":%d,\"completion_tokens\":%d}}\n\n", 128+n, n)
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}

// cycleReader serves its bytes forever, in reads of at most step bytes.
type cycleReader struct {
	b    []byte
	off  int
	step int
}

func (r *cycleReader) Read(p []byte) (int, error) {
	if r.off == len(r.b) {
		r.off = 0
	}
	n := copy(p[:min(len(p), r.step)], r.b[r.off:])
	r.off += n
	return n, nil
}

// BenchmarkClientHotPath measures the per-chunk cost of the client's parse
// path fed from memory; cpu-ns/chunk is the process's CPU time (less
// inflated than ns/chunk when the host is shared). "parse": one op is one event through the SSE reader
// and the chunk scanner. "stream": one op is one whole 1024-chunk request
// body through readStream (reader, scanner, record, accounting), reported
// per chunk.
func BenchmarkClientHotPath(b *testing.B) {
	stream := vllmStream(1024)
	b.Run("parse", func(b *testing.B) {
		clk := func() time.Duration { return 0 }
		sr := newSSEReader(&cycleReader{b: stream, step: 16 << 10}, clk, 0)
		var ci chunkInfo
		var ms0, ms1 runtime.MemStats
		b.ReportAllocs()
		runtime.ReadMemStats(&ms0)
		b.ResetTimer()
		cpu0 := cpuTime()
		for b.Loop() {
			data, _, err := sr.Next()
			if err != nil {
				b.Fatal(err)
			}
			if string(data) == "[DONE]" {
				continue
			}
			if err := parseChunk(data, &ci); err != nil {
				b.Fatal(err)
			}
		}
		cpu1 := cpuTime()
		b.StopTimer()
		runtime.ReadMemStats(&ms1)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/chunk")
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/chunk")
		b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N), "allocs/chunk")
	})
	b.Run("stream", func(b *testing.B) {
		c, err := NewClient(Engine{Name: "bench", Profile: VLLM, URL: "http://127.0.0.1:1/v1/chat/completions"}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		req := Request{Messages: oneMsg, MaxTokens: 1024}
		var rec record.Record
		var ms0, ms1 runtime.MemStats
		b.ReportAllocs()
		runtime.ReadMemStats(&ms0)
		b.ResetTimer()
		cpu0 := cpuTime()
		for b.Loop() {
			rec.Chunks = rec.Chunks[:0]
			rec.Error, rec.Done = record.OK, 0
			var info streamInfo
			c.readStream(b.Context(), req, &cycleOnce{b: stream, step: 16 << 10}, &rec, &info, nil)
			if rec.Error != record.OK || len(rec.Chunks) != 1024 {
				b.Fatalf("%s %s %d", rec.Error, rec.Message, len(rec.Chunks))
			}
		}
		cpu1 := cpuTime()
		b.StopTimer()
		runtime.ReadMemStats(&ms1)
		chunks := float64(b.N) * 1024
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/chunks, "ns/chunk")
		b.ReportMetric(float64(cpu1-cpu0)/chunks, "cpu-ns/chunk")
		b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/chunks, "allocs/chunk")
	})
}

// cycleOnce serves its bytes once, in reads of at most step bytes.
type cycleOnce struct {
	b    []byte
	off  int
	step int
}

func (r *cycleOnce) Read(p []byte) (int, error) {
	if r.off == len(r.b) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.step)], r.b[r.off:])
	r.off += n
	return n, nil
}

// firehose serves a stream of n chunks per request as fast as loopback
// allows, flushing after every event as a real engine does.
func firehose(n int) http.HandlerFunc {
	stream := vllmStream(n)
	var events [][]byte
	for rest := stream; len(rest) > 0; {
		i := bytes.Index(rest, []byte("\n\n"))
		events = append(events, rest[:i+2])
		rest = rest[i+2:]
	}
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, e := range events {
			if _, err := w.Write(e); err != nil {
				return
			}
			f.Flush()
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIngest drives C concurrent streams of 256 chunks each from a
// loopback firehose that flushes every event; one op is one chunk received.
// chunks/s is the achieved ingest rate. With server=process the firehose
// runs in a child process (GOMAXPROCS=1) and cpu-ns/chunk is the client's
// own CPU (user+system, getrusage) per chunk; with server=fake the server
// is the standalone simulated engine with no step time (fake-engine
// --per-token-ms 0 --prefill-ms 0), in its own process too; with
// server=inprocess it is client and server together. On the two servers in
// other processes, vLLM's own request function (ingestVLLM) streams from
// the same server: vllm-cpu-ns/chunk, and vllm-cpu-ratio = cpu-ns/chunk ÷
// it.
func BenchmarkIngest(b *testing.B) {
	const perStream = 256
	for _, mode := range []string{"process", "fake", "inprocess"} {
		for _, conc := range []int{64, 1024} {
			b.Run(fmt.Sprintf("server=%s/streams=%d", mode, conc), func(b *testing.B) {
				benchIngest(b, mode, conc, perStream)
			})
		}
	}
}

func benchIngest(b *testing.B, mode string, conc, perStream int) {
	var url string
	switch mode {
	case "process":
		url = startFirehoseProcess(b, perStream)
	case "fake":
		// The simulated engine with no step time: it writes its tokens as
		// fast as it runs, so the client's reads carry many each.
		url = faketest.StartStandalone(b, "--model", "m", "--per-token-ms", "0", "--prefill-ms", "0",
			"--max-num-seqs", fmt.Sprint(conc), "--seed", "1")
	default:
		srv := httptest.NewServer(firehose(perStream))
		defer srv.Close()
		url = srv.URL + "/v1/chat/completions"
	}
	c, err := NewClient(Engine{Name: "bench", Profile: VLLM, URL: url, Model: "m"}, Options{Concurrency: conc})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	requests := max((b.N+perStream-1)/perStream, conc)
	var next, chunks, failed atomic.Int64
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			var rec record.Record
			for next.Add(1) <= int64(requests) {
				c.Do(ctx, Request{Messages: oneMsg, MaxTokens: perStream}, &rec)
				if rec.Error != record.OK {
					failed.Add(1)
				}
				chunks.Add(int64(len(rec.Chunks)))
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(t0), cpuTime()-cpu0
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d requests failed", f, requests)
	}
	n := float64(chunks.Load())
	ours := float64(cpu.Nanoseconds()) / n
	b.ReportMetric(n/elapsed.Seconds(), "chunks/s")
	b.ReportMetric(ours, "cpu-ns/chunk")
	if mode != "inprocess" && os.Getenv("INGEST_VLLM") != "0" {
		v, err := ingestVLLM(url, conc, perStream)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(v, "vllm-cpu-ns/chunk")
		b.ReportMetric(ours/v, "vllm-cpu-ratio")
	}
}

// ingestVLLM is vLLM's own benchmark client (testdata/vllm_request_func.py,
// asyncio and aiohttp) on the same firehose: its CPU per chunk, from its
// rusage, as the difference between a run of C requests and one of 3·C
// (start-up cancels out), every request perStream chunks (its count of
// usage.completion_tokens must say so). INGEST_VLLM=0 leaves it out.
func ingestVLLM(url string, streams, perStream int) (float64, error) {
	py, err := aiohttpPython()
	if err != nil {
		return 0, err
	}
	one := func(n int) (time.Duration, error) {
		cmd := exec.Command(py, "testdata/vllm_request_func.py", "--url", url, "--model", "m",
			"--max-concurrency", fmt.Sprint(streams), "--num-prompts", fmt.Sprint(n),
			"--max-tokens", fmt.Sprint(perStream), "--prompt-words", "4")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", cmd, err)
		}
		var res struct {
			Requests, Errors int
			OutputTokens     int64 `json:"output_tokens"`
		}
		if err := json.Unmarshal(out, &res); err != nil || res.Errors > 0 || res.Requests != n || res.OutputTokens != int64(n*perStream) {
			return 0, fmt.Errorf("%s said %s (%v): want %d requests of %d tokens, no error", cmd, out, err, n, perStream)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
	}
	c1, err := one(streams)
	if err != nil {
		return 0, err
	}
	c3, err := one(3 * streams)
	if err != nil {
		return 0, err
	}
	return float64((c3 - c1).Nanoseconds()) / float64(2*streams*perStream), nil
}
