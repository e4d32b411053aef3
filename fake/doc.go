// Package fake is the simulated LLM inference engine's HTTP server: an
// OpenAI-compatible API shaped like vLLM's (POST /v1/chat/completions and
// /v1/completions, streaming or not; GET /v1/models, /health and /metrics)
// in front of the continuous-batching simulation of package fake/sim.
//
// The server is the suite's demo engine and its correctness oracle, so it
// writes its own JSON and SSE and shares no protocol code with engines/.
//
// # In-process use
//
// Start runs a Server on a free loopback port; each call has its own engine,
// so two simulated engines in one process are two Start calls:
//
//	vllm, _ := sim.Preset("vllm-like")
//	a, err := fake.Start(vllm, fake.Options{EngineName: "vLLM (simulated)"})
//	…
//	defer a.Close()
//	url := a.URL() // http://127.0.0.1:PORT/v1/chat/completions
//
// For tests, NewServer plus httptest.NewServer(s.Handler()) does the same;
// Server.Engine exposes the engine's statistics.
//
// # Streams
//
// A streamed chat completion sends its response headers only when the first
// token is ready (after TTFT), together with a role-only chunk
// (delta {"role":"assistant","content":""}) and the first content chunk,
// both in one flush.
// Every later chunk carries Options.TokensPerChunk tokens (the last one may
// carry fewer), each flushed as soon as the engine step that produced it
// ends. After the last token, in the same write: a finish chunk with an
// empty delta and finish_reason "length" (the output limit was reached) or
// "stop" (a simulated EOS, with NaturalStop); a usage chunk (choices [], usage
// {prompt_tokens, completion_tokens, total_tokens}, plus
// prompt_tokens_details with prefix caching) when
// stream_options.include_usage is true; and "data: [DONE]". With
// stream_options.continuous_usage_stats as well (vLLM needs both), every
// chunk carries the cumulative usage. /v1/completions streams the same way
// with text_completion objects and no role chunk.
//
// With Options.RoleInEveryDelta (--role-in-every-delta) a chat stream has
// ollama's shape instead: no role-only chunk; every content chunk's delta
// is {"role":"assistant","content":…}; the finish chunk's delta is
// {"role":"assistant","content":""}; then the usage chunk (choices [],
// when include_usage) and [DONE].
//
// # Output length
//
// The output limit is max_completion_tokens, else max_tokens, else the
// configuration's DefaultTokens (the command's --tokens). By default every
// request generates exactly its limit, finish_reason "length", as if
// ignore_eos were set: lengths are what the client asked for.
//
// With Options.NaturalStop (--natural-stop) the model has an EOS: unless
// ignore_eos is true or min_tokens equals the limit, the simulated EOS comes
// at a natural length n drawn uniformly from [max(min_tokens,1), limit] by a
// hash of Options.Seed and the request's index, so the same requests in the
// same order get the same lengths. When n is below the limit the finish
// reason is "stop", and the EOS is one more generated token (one more engine
// step) that is never sent but is counted: usage.completion_tokens is n + 1,
// the content tokens plus the EOS, as llama-server reports it. When n
// reaches the limit the reason is "length" and completion_tokens is n.
//
// Prompt tokens are estimated, never tokenized by a real tokenizer: see
// EstimatePromptTokens (chat) and ceil(bytes/4) for a completions prompt.
// PromptTokenIDs gives those tokens ids derived from the content (a hash
// per 4 bytes, plus the chat template's tokens), so equal prompt prefixes
// have equal leading tokens.
//
// # Prefix caching
//
// With sim.Config.PrefixCaching (--prefix-caching) the server submits each
// prompt's token ids, and the engine reuses the KV of the leading full
// blocks it already holds (see package sim): a repeated prompt or a shared
// system prompt prefills only the rest and its TTFT falls. Every usage
// object then carries vLLM's
//
//	"usage":{"prompt_tokens":…,"completion_tokens":…,"total_tokens":…,"prompt_tokens_details":{"cached_tokens":N}}
//
// with N the prompt tokens found in the cache (a multiple of the block
// size, 0 on a miss; at most ⌊(prompt − 1)/BlockSize⌋·BlockSize, since the
// last prompt token is always computed), and /metrics adds
// vllm:prefix_cache_queries_total and vllm:prefix_cache_hits_total. Off,
// usage has no prompt_tokens_details. The firehose has no engine and
// refuses the option.
//
// # Failure injection
//
// With Options.ErrorRate F > 0, each request (numbered in arrival order among
// well-formed requests) fails with probability F, decided by a hash of
// Options.Seed and its index, with a kind drawn the same way from
// Options.ErrorKinds: "429" and "500" answer at once with that status and an
// OpenAI error body; "cut" closes the connection after about half of the
// output tokens; "hang" sends about half of them (a stream) or nothing (no
// stream) and then stays silent until the client leaves or the server
// closes; "malformed" sends a data line that is not JSON in place of the
// next chunk (a stream; the rest follows normally) or a non-JSON body;
// "error-event" is llama-server's failure when the output breaks its
// parser: inside the HTTP 200 stream, after about half of the output
// tokens (at once when the output is one token), the event
//
//	data: {"error":{"code":500,"message":"simulated failure: …","type":"server_error"}}
//
// and then the body ends cleanly with no finish_reason, no usage and no
// [DONE]; without a stream it is HTTP 500 with that object as the body.
// "abort" is ollama's token-repeat limit (llm/server.go: more than 30
// identical tokens in a row end the prediction): after about half of the
// output tokens the stream's body just ends, cleanly, with no
// finish_reason, no usage, no [DONE] and no error, on a connection that
// stays open; a request without a stream is answered normally.
// ErrorRate 1 with a single kind injects it into every request.
//
// # Connections
//
// By default connections are kept alive as net/http does. With
// Options.CloseAfterStream (--close-after-stream) the server has
// llama-server's keep-alive bug: every response carries "Connection:
// keep-alive" and "Keep-Alive: timeout=5, max=100" (never "Connection:
// close"), yet a connection that carried a streamed response is closed
// 1 ms after it goes idle, or at once, without an answer, when the client's
// next request on it arrives first. Go's http.Transport reuses such a
// connection at once for a sequential request, so that POST fails with
// "EOF" (not retried: a POST is not idempotent); a client that waits a
// moment sees the close and dials anew. Non-streamed responses keep the
// connection. The behaviour needs the http.Server hooks of
// Server.ConfigureHTTP, which Start and Serve install.
//
// # Firehose
//
// A configuration with PrefillMs = PerTokenMs = 0 (sim.Config.Firehose)
// runs no engine: every response is written as fast as the server can, to
// measure clients.
//
// Requests for a prompt plus max_tokens beyond the configuration's
// KVCapacityTokens get 400 (vLLM's max_model_len check), in the firehose too,
// so no request can ask for unbounded output.
//
// # Contract
//
// Input: a sim.Config and Options, then HTTP requests. Output: HTTP
// responses, and the engine's statistics (Server.Engine, /metrics). It must
// not import engines or any package that parses what engines parses
// (TestNoSharedProtocolCode checks the imports), and it prints nothing:
// the command fake-engine does.
package fake
