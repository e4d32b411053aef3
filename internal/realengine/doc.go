// Package realengine holds the tests that run inferbench against a real
// engine nobody here wrote: ollama, whose CPU backend is llama.cpp with
// continuous batching over OLLAMA_NUM_PARALLEL slots, serving a random-weight
// model of our own (internal/gguf).
//
// The tests sit behind the build tag realengine, so a plain go test ./...
// needs no engine and stays fast. .ci/real-engine builds ollama, generates
// the model, starts the server and runs them:
//
//	bash .ci/real-engine
//
// Against an ollama that is already running, with a model whose output never
// ends early (such as the one .ci/real-engine creates):
//
//	INFERBENCH_OLLAMA_URL=http://127.0.0.1:11434 INFERBENCH_OLLAMA_MODEL=tiny \
//	  go test -tags realengine -count=1 -v ./internal/realengine/
//
// Environment: INFERBENCH_OLLAMA_URL (required: the server's base URL; 4
// slots in .ci/real-engine), INFERBENCH_OLLAMA_WIDE_URL (a second server of
// the same model with OLLAMA_NUM_PARALLEL=8 for the side-by-side Python
// cross-check; INFERBENCH_OLLAMA_URL when unset, with a note),
// INFERBENCH_OLLAMA_MODEL (required), REALENGINE_OUT (where the suite's
// result files go; a temporary folder when unset).
//
// What they check, each driving the suite only through its command line
// (go test -bench=. -engines=ollama@MODEL=URL ... in the repository root):
//
//   - the suite end to end: exit status, no failed request, exact output
//     token counts, result files and plots written;
//   - agreement with the engine's own accounting (/api/chat's eval_count and
//     eval_duration) of the same requests at concurrency 1, through a relay
//     that serves the OpenAI stream from the native one (relay_test.go);
//   - agreement with the independent Python client
//     (testdata/vllm_style_client.py) on tok/s and TTFT at concurrency 1 and
//     4, the two clients running side by side (the engine serves both), so
//     both measure the engine at the same moments;
//   - continuous batching is visible: at concurrency 4 the streams' tokens
//     come out of the same decode steps.
//
// What the engine's speed does on this machine (batching's tok/s gain at 4
// against 1, say) is measured and logged as "real-engine figure:" lines,
// which .ci/real-engine prints at its end; it is never asserted, since a
// third party's speed on shared cores is not the suite's to guarantee.
package realengine
