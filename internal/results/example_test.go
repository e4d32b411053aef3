package results_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/perf/benchfmt"

	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/results"
)

// Example reads a run's files back: the result lines of <engine>.txt with
// benchfmt (as benchstat reads them), every request's record from
// <engine>.jsonl, and each sample's window from <engine>.samples.jsonl
// (Find). The first half writes a tiny run's files as the suite does, so
// that the example has something to read.
func Example() {
	dir, err := os.MkdirTemp("", "results-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	d, err := results.Create(dir, []string{"vllm"}, results.Header{Config: []results.KV{{Key: "model", Value: "m"}}}, nil)
	if err != nil {
		panic(err)
	}
	rec := record.Record{Engine: "vllm", Concurrency: 1, Phase: record.Measured, Sent: 0, Done: 90 * time.Millisecond,
		Chunks: []record.Chunk{{At: 50 * time.Millisecond, Tokens: 1}, {At: 90 * time.Millisecond, Tokens: 1}}, OutputTokens: 2}
	must(d.Run("vllm", results.RunMeta{Engine: "vllm", GOMAXPROCS: 2, Shards: 1, EpochUnixNano: 1}))
	must(d.Record("vllm", &rec))
	must(d.Sample("vllm", results.SampleMeta{Concurrency: 1, Streams: 1, Records: 1, WindowEnd: 90 * time.Millisecond}))
	must(d.Result("vllm", "BenchmarkServe/concurrency=1-2\t1\t22.22 tok/s\t50000000 ttft-p50-ns",
		"BenchmarkServe/concurrency=1-2\t1\t22.22 tok/s\t50000000 ttft-p50-ns\t90000000 ns/op"))
	must(d.Close())

	// Reading: the result lines, as benchstat does.
	f, err := os.Open(filepath.Join(dir, "vllm.txt"))
	if err != nil {
		panic(err)
	}
	defer f.Close()
	r := benchfmt.NewReader(f, "vllm.txt")
	for r.Scan() {
		if res, ok := r.Result().(*benchfmt.Result); ok {
			tok, _ := res.Value("tok/s")
			fmt.Printf("%s (model %s): %.2f tok/s over %d requests\n", res.Name, res.GetConfig("model"), tok, res.Iters)
		}
	}
	// The records, one per request.
	must(results.ReadRecords(filepath.Join(dir, "vllm.jsonl"), func(rec *record.Record) error {
		ttft, _ := rec.TTFT()
		fmt.Printf("%s request: TTFT %v, %d tokens\n", rec.Phase, ttft, rec.OutputTokens)
		return nil
	}))
	// The samples' windows.
	saved, err := results.Find(dir)
	must(err)
	for _, sv := range saved {
		for _, s := range sv.Samples {
			fmt.Printf("%s sample %d at concurrency %d: window %v\n", sv.Run.Engine, s.Sample, s.Concurrency, s.WindowEnd-s.WindowStart)
		}
	}
	// Output:
	// Serve/concurrency=1-2 (model m): 22.22 tok/s over 1 requests
	// measured request: TTFT 50ms, 2 tokens
	// vllm sample 0 at concurrency 1: window 90ms
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
