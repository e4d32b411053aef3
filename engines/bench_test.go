package engines

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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
// own CPU (user+system, getrusage) per chunk; with server=inprocess it is
// client and server together.
func BenchmarkIngest(b *testing.B) {
	const perStream = 256
	for _, mode := range []string{"process", "inprocess"} {
		for _, conc := range []int{64, 1024} {
			b.Run(fmt.Sprintf("server=%s/streams=%d", mode, conc), func(b *testing.B) {
				benchIngest(b, mode, conc, perStream)
			})
		}
	}
}

func benchIngest(b *testing.B, mode string, conc, perStream int) {
	var url string
	if mode == "process" {
		url = startFirehoseProcess(b, perStream)
	} else {
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
	b.ReportMetric(n/elapsed.Seconds(), "chunks/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/chunk")
}
