package engines

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"

	"github.com/inferbench/inferbench/internal/record"
)

// BenchmarkLeanFeed measures the epoll reader's user-space cost per token
// without the kernel: one op is one read's bytes (a chunk of the chunked
// body holding one event, as the paced server writes it) handed to
// h1stream.bytes, round-robin over streams. streams=1 keeps every
// stream's state in the cache; streams=1024 touches each one 1,023 other
// streams later, as the reader does at 1,024 streams, so the difference
// is what cold per-stream state costs.
func BenchmarkLeanFeed(b *testing.B) {
	for _, n := range []int{1, 1024} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			c, err := NewClient(Engine{Name: "bench", Profile: VLLM, URL: "http://127.0.0.1:1/v1/chat/completions"}, Options{Concurrency: n})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if c.lean == nil {
				b.Skip("the epoll reader is off (INFERBENCH_NET_HTTP=1)")
			}
			head := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
			frames := make([][]byte, pacedTokens)
			for i := range frames {
				ev := `data: {"id":"cmpl-` + strconv.Itoa(1000+i) + `","object":"chat.completion.chunk","created":0,"model":"paced","choices":[{"index":0,"delta":{"content":" tok"},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":8,"total_tokens":` + strconv.Itoa(9+i) + `,"completion_tokens":` + strconv.Itoa(i+1) + `},"emit_mono_ns":123456789012}` + "\n\n"
				frames[i] = []byte(strconv.FormatInt(int64(len(ev)), 16) + "\r\n" + ev + "\r\n")
			}
			sts := make([]*h1stream, n)
			recs := make([]record.Record, n)
			start := func(i int) {
				rec := &recs[i]
				rec.Chunks = rec.Chunks[:0]
				st := &h1stream{t: c.lean, conn: &h1conn{}, ctx: context.Background(), rec: rec, info: &streamInfo{},
					req: Request{Messages: oneMsg, MaxTokens: pacedTokens}, done: make(chan struct{})}
				st.bodyFn = st.body
				st.bytes(head, 0, 0, 0)
				if st.phase != phSSE {
					b.Fatalf("stream %d: phase %d after the head", i, st.phase)
				}
				sts[i] = st
			}
			for i := range n {
				start(i)
			}
			next := make([]int, n)
			seq := 1
			b.ReportAllocs()
			runtime.GC()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				k := i % n
				st := sts[k]
				seq++
				st.bytes(frames[next[k]], 1, 1, seq)
				if next[k]++; next[k] == len(frames) {
					b.StopTimer()
					if len(st.rec.Chunks) != pacedTokens || st.ended {
						b.Fatalf("stream %d: %d chunks, ended %v (%s)", k, len(st.rec.Chunks), st.ended, st.rec.Message)
					}
					putSSEReader(st.sr)
					next[k] = 0
					start(k)
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/tok")
		})
	}
}
