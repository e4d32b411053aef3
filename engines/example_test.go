package engines_test

import (
	"context"
	"fmt"
	"time"

	"github.com/inferbench/inferbench/engines"
	"github.com/inferbench/inferbench/fake"
	"github.com/inferbench/inferbench/fake/sim"
	"github.com/inferbench/inferbench/internal/record"
)

func ExampleParse() {
	getenv := func(k string) string {
		return map[string]string{"FRIENDLI_TOKEN": "flp_example_secret"}[k]
	}
	for _, spec := range []string{
		"vllm",
		"friendli",
		"friendli-serverless@meta-llama-3.1-8b-instruct",
		"my-sglang=http://10.0.0.5:30000",
		"vllm-tp2@meta-llama/Llama-3.1-8B-Instruct=http://gpu1:8000/v1",
	} {
		e, err := engines.Parse(spec, getenv)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s profile=%s model=%q key set=%t\n", e, e.Profile, e.Model, e.APIKey != "")
	}
	// Output:
	// vllm (http://localhost:8000/v1/chat/completions) profile=vllm model="" key set=false
	// friendli (http://localhost:9000/v1/chat/completions) profile=friendli model="" key set=true
	// friendli-serverless (https://api.friendli.ai/serverless/v1/chat/completions) profile=friendli model="meta-llama-3.1-8b-instruct" key set=true
	// my-sglang (http://10.0.0.5:30000/v1/chat/completions) profile=openai model="" key set=false
	// vllm-tp2 (http://gpu1:8000/v1/chat/completions) profile=vllm model="meta-llama/Llama-3.1-8B-Instruct" key set=false
}

// Example sends one streaming request to inferbench's simulated engine
// and reads what its record says: no error, the 8 output tokens asked
// for, one chunk each, a TTFT no shorter than the engine's 30 ms prefill.
func Example() {
	cfg, err := sim.Preset("friendli-like") // TTFT 30 ms, 2 ms a token when idle
	if err != nil {
		panic(err)
	}
	srv, err := fake.Start(cfg, fake.Options{Model: "fake-model"})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	e, err := engines.Parse("sim@fake-model="+srv.URL(), func(string) string { return "" })
	if err != nil {
		panic(err)
	}
	c, err := engines.NewClient(e, engines.Options{RequestTimeout: 10 * time.Second})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	var rec record.Record
	c.Do(context.Background(), engines.Request{
		Messages:  []engines.Message{{Role: "user", Content: "Why is the sky blue?"}},
		MaxTokens: 8,
	}, &rec)
	ttft, _ := rec.TTFT()
	fmt.Printf("error %q, %d output tokens in %d chunks (%s), finish %q, TTFT ≥ 30 ms: %t\n",
		rec.Error, rec.OutputTokens, len(rec.Chunks), rec.TokenSource, rec.FinishReason, ttft >= 30*time.Millisecond)
	// Output:
	// error "", 8 output tokens in 8 chunks (usage), finish "length", TTFT ≥ 30 ms: true
}
