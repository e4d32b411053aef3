// Package transcript reads and writes transcripts: one HTTP exchange with
// an engine as the engine sent it, byte for byte. A transcript holds the
// request as it was written, every read of the response with its bytes and
// its arrival time (offset from the request's write), and how the
// connection ended; its metadata says which engine, version, command line
// and model made it, when, and where it came from. testdata/streams holds
// the corpus; cmd/capture writes a transcript from any URL; fake.Replay
// plays one back.
//
// Input: transcript files (Parse, ReadFile, Load), or an exchange to record.
// Output: Transcript values and their files. It knows nothing of SSE,
// JSON chunk shapes or HTTP framing beyond bytes and reads, so that it can
// carry any engine's exchange (and a broken one) to the client's tests
// without shaping it; it prints nothing.
//
// # Files
//
// NAME.jsonl is the exchange, one JSON object a line:
//
//	{"request":"POST /v1/chat/completions HTTP/1.1\r\n…"}       the request as written (secrets redacted)
//	{"at_ns":2187433,"data":"HTTP/1.1 200 OK\r\n…"}             one read: when it arrived, what it returned
//	{"at_ns":9134007,"data_b64":"…"}                             bytes that are not valid UTF-8 go as base64
//	{"end":"eof","at_ns":9180412}                                 how the connection ended
//
// The end is "eof" (the server closed it), "reset" (the server reset it)
// or "open" (still open at_ns after the request, when the capture stopped
// watching). Reads' times never go backwards.
//
// NAME.meta.json is the metadata (Meta).
package transcript
