// Package engines defines the engines under test and the streaming client
// that sends them OpenAI-compatible /v1/chat/completions requests and turns
// each answer into a record.Record. It speaks HTTP and SSE and nothing
// else: it never prints, and it shares no protocol code with the simulated
// engine (fake/), which is its independent oracle.
//
// Input: an -engines item (Parse), Options, and Requests. Output: one
// record.Record per request, every timestamp stamped as the bytes
// arrived, every failure classified in it (Do never returns an error),
// and the Conformance facts of a probe. It imports only internal/record of
// the project's; it computes no statistic and writes no file.
//
// One request (the package's Example runs it against fake's server):
//
//	e, err := engines.Parse("vllm@meta-llama/Llama-3.1-8B-Instruct=http://gpu1:8000", os.Getenv)
//	c, err := engines.NewClient(e, engines.Options{RequestTimeout: time.Minute})
//	var rec record.Record
//	c.Do(ctx, engines.Request{Messages: []engines.Message{{Role: "user", Content: "Hi"}}, MaxTokens: 128}, &rec)
//	ttft, ok := rec.TTFT() // rec.Error is record.OK, or the kind of failure
//
// # Engine specs
//
// Parse reads one item of the -engines list:
//
//	vllm                        http://localhost:8000/v1/chat/completions, profile vllm
//	friendli                    http://localhost:9000/v1/chat/completions, profile friendli (Friendli Container)
//	friendli-serverless         https://api.friendli.ai/serverless/v1/chat/completions (FRIENDLI_TOKEN required)
//	friendli-dedicated          https://api.friendli.ai/dedicated/v1/chat/completions (FRIENDLI_TOKEN required)
//	NAME=URL                    any server
//	NAME@MODEL  NAME@MODEL=URL  the same, with the request's model field set to MODEL
//
// NAME (letters, digits, '.', '_', '-') labels the engine in every result.
// The profile follows from NAME: "vllm" or "vllm-…" is vllm, "friendli" or
// "friendli-…" is friendli, anything else is the generic openai profile.
// MODEL is everything between '@' and the first '=' (so IDs such as
// meta-llama/Llama-3.1-8B-Instruct or ENDPOINT:ADAPTER work). Without a model
// the caller discovers it with DiscoverModel (GET /v1/models), which
// succeeds only when the server lists exactly one.
//
// A URL must be http or https with a host. A base URL is completed: an empty
// path becomes /v1/chat/completions and a path ending in /v1 gets
// /chat/completions appended; any other path is used as given.
//
// # Credentials and redaction
//
// The friendli profile sends FRIENDLI_TOKEN as "Authorization: Bearer" and
// FRIENDLI_TEAM as X-Friendli-Team; the vllm and openai profiles send
// OPENAI_API_KEY as a Bearer token when it is set. Secrets never leave the
// process except in those headers: Engine's String, GoString, Format (every
// fmt verb) and MarshalJSON omit them, RedactURL hides user:password@ and
// secret-looking query parameters, and every record Message and error passes
// through Redact with the key, the team and any URL password. Redirects are
// not followed (they would resend the credentials elsewhere).
//
// # Request profiles
//
// Every request streams ("stream": true), asks for usage
// (stream_options.include_usage) and uses temperature 0, so that runs are as
// repeatable as the engine allows. With Request.MaxTokens = N > 0 (a fixed
// output length):
//
//	vllm      max_tokens N, min_tokens N, ignore_eos true, stream_options.continuous_usage_stats true
//	friendli  max_tokens N, min_tokens N (Friendli has no ignore_eos)
//	openai    max_tokens N only (the generic API cannot force a length)
//
// With MaxTokens = 0 none of these is sent and the length is not checked.
// Record.LengthForced says whether the request asked for an exact length
// (vllm and friendli with MaxTokens > 0); only then can the engine be said
// to ignore it. Unknown fields in responses are ignored.
//
// # Transport
//
// One Client per engine. Its transport is HTTP/1.1 with one connection per
// in-flight stream: MaxConnsPerHost = MaxIdleConnsPerHost = Concurrency+4,
// so a request never waits for a connection inside the transport where the
// harness cannot see it. Compression is off (gzip would buffer the stream),
// dialing and TLS handshakes give up after 10 s, proxies come from the
// environment, and TLS verification is on unless Engine.InsecureSkipVerify.
//
// Some servers close the connection after every stream while advertising
// keep-alive (llama.cpp's llama-server sends "Keep-Alive: timeout=5,
// max=100" and closes). net/http then hands the next request the dead
// idle connection and, the request being a POST, does not resend it: 12–38
// % of requests used to fail with "connection closed before any
// response". The client decides with httptrace: a request whose
// connection came from the idle pool and failed before any response byte
// is sent once more, on a second transport that keeps no connection alive
// (so its connection is new by construction; closing the idle connections
// instead would disturb the other streams). Record.Retried says so, and
// Sent is the retry's. Nothing else is ever retried: not a failure on a
// new connection, not one after response bytes, not a status, a cut or a
// timeout, and not the retry itself. With Options.Transport set nothing is
// retried.
//
// # The epoll reader
//
// On Linux, a plain http:// engine without a proxy is not read through
// net/http's transport but through the client's own HTTP/1.1 reader: one
// goroutine (the reactor) waits in epoll_wait for any of the client's
// connections to have bytes, reads each ready one once, and parses the
// response head (with http.ReadResponse), the chunked framing (by
// net/http's rules: FuzzH1Parser checks it against net/http on the same
// bytes), the events and the records there and then. A token then costs
// one read system call. net/http costs a read, a failed read (Go's poller
// reads until EAGAIN before it parks a goroutine) and a goroutine wake-up
// per token, and the layers of its body reader; on the paced per-token
// server (BenchmarkPaced) the reactor cuts the client's CPU per token by
// 48–58 %. The pool keeps
// the transport's rules: Concurrency+4 connections, most recently idle
// first, 10 s dials with TCP keep-alive, idle ones closed after 90 s or
// as soon as the server closes them, the same single retry of a dead
// kept-alive connection, a connection per request after
// NewConnectionPerRequest, and at most 4 KiB and 100 ms of draining after
// the stream. https, HTTP/2, Options.Transport, a proxy,
// Options.NetHTTP or INFERBENCH_NET_HTTP=1 use net/http.
//
// The reactor stamps each read with the kernel's receive time of its
// bytes (SO_TIMESTAMPNS: the time the last segment the read returned
// reached the socket), not the time the read returned, so a reader that
// is late (two cores shared with the engine, a burst of a thousand
// streams' tokens) stamps nothing late. That lets it read late on
// purpose: while events arrive faster than every 100 µs it lets them
// gather for 100 µs and reads them in one wake-up (coalesceWindow), which
// it never does when any read lacked a receive time. What a late reader
// still cannot restore is the spacing of two events of one stream that
// queued in its socket: both take the later one's time, and
// ReadStats.Queued counts them. Each wake-up reads every ready
// connection first and parses the reads after (readReady): system calls
// back to back and parsing back to back keep each one's code and data in
// the caches, which alternating evicted. Before parsing it loads the
// pending streams' state one level at a time across all of them (touch),
// so that their cache misses overlap instead of following one another.
//
// What a token costs is measured by BenchmarkPaced against a server in
// another process that writes every token separately; beside the client
// it measures the floor under it, a reader that makes the same system
// calls and parses nothing (pacedFloor): on the development host the
// floor is about 2 µs a token (the kernel's receive path: recvmsg, the
// ACK it sends, epoll), and the client's HTTP, SSE, JSON and record
// keeping add 1 to 1.8 µs.
//
// Every record says how its connection was obtained: ConnReused (it
// carried an earlier request, counted on a wrapper around the dialled
// net.Conn, since net/http's GotConnInfo.Reused is also true for a
// never-used connection that sat idle) or NewConn, GotConn (when the
// transport handed it over) and the DNS, Dial (TCP connect) and TLS
// durations of a connection dialled for the request, so that set-up is
// visible rather than hidden in TTFT.
//
// # Timing points
//
// All record times are offsets from Options.Epoch, read from the monotonic
// clock (Options.Now, default time.Now):
//
//   - Sent: just before the request is handed to the transport (it includes a
//     dial only when no idle connection exists, which after warm-up is
//     never, except against a server that closes after every stream). For
//     a retried request (Retried) it is the retry's.
//   - GotConn: when the transport handed over the connection (0: none);
//     GotConn − Sent is connection set-up or the wait for a connection.
//   - Headers: when the response headers have arrived.
//   - Chunk.At: when the bytes completing the event arrived: with the
//     epoll reader, the kernel's receive time of the read that delivered
//     them; with net/http, when that Read returned. Either is taken before
//     the event is decoded (decoding cost is not latency), and several
//     events arriving in one read share its time. Headers is stamped the
//     same way by the epoll reader, so the head and a first event that
//     came with it share a stamp.
//   - Done: when data: [DONE] was read, or the stream ended, broke, timed out
//     or was cancelled. After a clean end the client drains what follows for
//     at most 100 ms (to keep the connection reusable), outside every timing
//     point; a server that never closes the response cannot hold Do.
//
// Only output-bearing events become chunks: a delta with non-empty content,
// reasoning_content or reasoning text, or non-empty tool_calls. A role-only
// event, a usage-only event (choices: []), and content "" or null are not
// chunks, so TTFT (Sent → first chunk) never starts at a role chunk and E2E
// (Sent → last chunk) never includes a trailing usage frame or [DONE].
//
// # Token accounting
//
//   - continuous-usage: every output chunk carried cumulative usage (vLLM
//     continuous_usage_stats). Chunk.Tokens is the growth of
//     usage.completion_tokens since the previous usage; growth seen on a
//     non-output event is added to the previous chunk (or, before the first
//     chunk, to the first one). OutputTokens is the last completion_tokens.
//   - usage: usage arrived, but not on every output chunk (a final usage
//     frame). OutputTokens is exact; Chunk.Tokens spreads it evenly over the
//     chunks, earlier chunks taking the remainder, so they sum to
//     OutputTokens (one token per chunk when the counts match). If there are
//     more chunks than tokens, each chunk counts 1.
//     Record.EstimatedChunkTokens says when the counts are such a spread.
//   - chunk-count: no usage at all. OutputTokens is the number of chunks and
//     each counts 1: a flagged fallback that undercounts multi-token chunks.
//
// A natural stop is accounted exactly. llama-server (and vLLM, whose
// continuous usage grows by one on the empty finish chunk) counts the
// end-of-sequence token, which is generated but never sent, in
// completion_tokens: on finish_reason "stop" the usage is the streamed
// tokens + 1. When finish_reason is "stop" and usage exceeds what the
// chunks carried by exactly one, that token is the EOS: every chunk keeps
// its own count (1 with final usage), the extra is neither spread nor
// added to the last chunk, Record.EOSCounted is set, and OutputTokens
// stays the server's count, because max_tokens and the fixed-length check
// count it and the engine spent a decode step on it.
// Record.StreamedTokens (OutputTokens − 1) is what the chunks carried; TPOT
// uses it. Neither the ITL estimate flag nor a warning follows.
//
// PromptTokens is the last usage.prompt_tokens (it includes the chat
// template, unlike a client-side count). CachedTokens is the last
// usage.prompt_tokens_details.cached_tokens (prefix-cache hits, reported by
// vLLM and OpenAI); CachedReported tells a reported 0 from a server that
// does not report it (llama-server, ollama).
//
// # Error kinds
//
// The first failure wins; later ones do not overwrite it. Messages are the
// server's own text where there is one, always redacted.
//
//   - connect: no response headers and the context is still live: DNS
//     failure, connection refused, TLS failure, or the connection closed or
//     reset before any response. Message says which.
//   - timeout: Options.RequestTimeout expired, or the caller's context
//     deadline passed, before the stream ended (no headers, or a stalled
//     stream, including one that sent its finish_reason but then neither
//     [DONE] nor the end of the body).
//   - canceled: the caller cancelled the context. Not an engine failure.
//   - http-status: a non-2xx status. Status is set; Message is "HTTP <code>:
//     " and the server's message (error.message, message or detail of a
//     JSON body, else the trimmed body text). Redirects are not followed;
//     Message names the redacted target.
//   - stream-cut: the body ended (EOF) or broke (reset, unexpected EOF)
//     before data: [DONE] and before any finish_reason. A stream that has a
//     finish_reason but ends without [DONE] is accepted (Preflight warns).
//   - server-error: the server sent an "error" object inside a 2xx stream
//     (llama-server: data: {"error":{"code":500,"message":...}} and then
//     the end, without finish, usage or [DONE]; vLLM mid-stream). Message
//     carries the server's message.
//   - malformed-event: a data payload that is not a JSON object of the
//     expected shape (including a non-integer token count and an event over
//     8 MiB), or a 2xx application/json answer instead of an event stream.
//     The stream is abandoned at the first bad event.
//   - empty-output: the stream ended properly without one output chunk.
//   - length-mismatch: MaxTokens > 0, the profile asked for that exact
//     length (vllm and friendli send min_tokens = max_tokens), usage was
//     reported, and usage.completion_tokens differs from MaxTokens. The
//     record keeps its chunks and tokens. Without usage the length is not
//     checked (a chunk count is not a token count). The generic profile
//     sends max_tokens alone, so a shorter answer is not a failure there;
//     the statistics still count and report it.
//
// record.Record.Transient says which failures may pass if the request is
// sent again (429, 5xx, stream-cut, timeout); the preflight's caller
// retries only those. server-error, other 4xx, malformed-event,
// empty-output, length-mismatch and connect are deterministic.
//
// # SSE parsing
//
// The event-stream reader follows the WHATWG rules: "\n", "\r\n" and "\r"
// line endings (also split across reads), ':' comments and keep-alives,
// multi-line data fields joined with "\n", other fields ignored, events
// without data not dispatched, and an unterminated last event discarded.
// It allocates nothing per event in steady state. Chunks are decoded by a
// validating single-pass JSON scanner that extracts only what the record
// needs and accepts exactly the JSON that encoding/json accepts.
//
// # Performance
//
// The client's cost is measured, not assumed:
//
//	go test -run '^$' -bench . ./engines
//
// BenchmarkClientHotPath reports ns/chunk and allocs/chunk of the parse path
// (SSE reader + chunk scanner, and the whole stream path into a record);
// BenchmarkIngest reports chunks/s and the client's own CPU per chunk
// (cpu-ns/chunk, getrusage, with the firehose server in a child process) for
// 64 and 1024 concurrent loopback streams.
//
// # Preflight
//
// Preflight sends one probe request and turns any failure into an error
// that names the engine, the redacted URL, the status, the server's message
// and what to do (set FRIENDLI_TOKEN or OPENAI_API_KEY, pass -model, is the
// server running?). Its Probe reports whether usage is streamed, whether it
// is continuous, whether the fixed length was honoured, and whether a role
// chunk precedes the first token, with warnings for the caller to show.
// Warnings follow what the profile asked for: a short answer under the
// generic profile "varies" (max_tokens caps, cannot force); only vllm and
// friendli are told they ignored min_tokens (and ignore_eos).
//
// Probe.Conformance lists what the probe saw, one fact per Lines() entry
// for the results header:
//
//	server header   the Server response header
//	role            separate-chunk (vLLM, llama-server), every-delta (ollama), some-deltas, none
//	tokens/chunk    max and mean streamed tokens per chunk, exact or estimated
//	usage           continuous, final, none
//	end of sequence counted in usage on a natural stop (EOSCounted)
//	fixed length    asked, forced (min_tokens) or not, got, honoured
//	cached tokens   reported (value) or not
//	[DONE]          sent or not
//	connection      kept-alive, closed-by-server, connection-close or unknown, with the Keep-Alive header
//
// Keep-alive is observed, not taken from the headers: after the stream the
// probe's idle connection is watched for KeepAliveWait (50 ms); servers that
// close after every stream close it as they send the end. A retried probe
// is itself the proof (closed-by-server); a body the client had to abandon
// leaves it unknown. A second probe (the suite sends one to calibrate the
// prompt) also shows Conformance.ConnReused: true when the server kept the
// first probe's connection.
package engines
