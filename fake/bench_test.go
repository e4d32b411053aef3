package fake

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

// BenchmarkFirehoseStream measures how fast the server writes a stream when
// the engine is bypassed (the firehose): one op is one streamed request of
// 4096 tokens, read line by line by a plain client. It reports output
// tokens/s and allocated bytes per token, the server's ceiling as a load
// target for client benchmarks.
func BenchmarkFirehoseStream(b *testing.B) {
	_, ts := newTest(b, firehoseCfg(b), Options{})
	const n = 4096
	body := `{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":4096,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`
	client := ts.Client()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := client.Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		tokens := 0
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				break
			}
			if bytes.Contains(line, []byte(`"delta":{"content":"`)) {
				tokens++
			}
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if tokens != n {
			b.Fatalf("got %d tokens, want %d", tokens, n)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
}

// BenchmarkDecodeRequest measures the request decoder on a typical chat body.
func BenchmarkDecodeRequest(b *testing.B) {
	body := []byte(`{"model":"fake-model","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"` +
		strings.Repeat("lorem ipsum ", 100) + `"}],"max_tokens":128,"min_tokens":128,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decodeRequest(body, true, 16); err != nil {
			b.Fatal(err)
		}
	}
}
