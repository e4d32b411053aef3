// Package trace reads request traces — when each request arrived and how
// long its prompt and its answer were — and replays their arrivals as an
// open-loop schedule (Pacer, a load.Scheduler).
//
// # Formats
//
// A trace is JSON lines or CSV, told apart by its first character ('{'
// is JSON lines).
//
// JSON lines, one request per line, as Mooncake's traces
// (FAST'25, github.com/kvcache-ai/Mooncake, mooncake_trace.jsonl):
//
//	{"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, 48]}
//
// timestamp is the arrival in milliseconds (integer or fractional);
// input_length and output_length are tokens; hash_ids, optional, are the
// ids of the prompt's blocks of BlockTokens tokens (Mooncake: 512), equal
// ids meaning equal blocks: requests that share leading ids share that
// prefix. Other fields are ignored.
//
// CSV with a header row, as BurstGPT's (github.com/HPMLL/BurstGPT):
//
//	Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
//	5,ChatGPT,472,18,490,Conversation log
//
// The columns are found by name, case and spaces ignored: the arrival is
// "Timestamp" (seconds) or "timestamp_ms" (milliseconds); the prompt
// length "Request tokens" or "input_length"; the answer length "Response
// tokens" or "output_length"; optionally "hash_ids", ids separated by
// spaces or ';'. Other columns are ignored.
//
// Arrivals must not go backwards (traces are sorted); offsets are taken
// from the first request. A request with 0 prompt or 0 answer tokens
// (BurstGPT logs failed requests with 0 response tokens) cannot be
// replayed with a fixed length: it is skipped and counted (Trace.Skipped).
// Anything else malformed fails Parse with file:line and what was expected.
//
// # Contract
//
// Input: a trace file. Output: a Trace of entries and a Pacer (its schedule).
// It prints nothing and must not send requests: the load generator does.
package trace
