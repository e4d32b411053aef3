package engines_test

import (
	"fmt"

	"github.com/inferbench/inferbench/engines"
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
