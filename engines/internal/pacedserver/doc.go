// Package pacedserver is a streaming chat-completions server for measuring
// clients, not engines: every stream gets one token per step, each token
// its own event, written with its own write system call, the way a real
// engine flushes one chunk per stream per decode step. Each event carries
// the CLOCK_MONOTONIC instant just before its write ("emit_mono_ns"), so
// a client on the same host can measure how late it stamped the token.
//
// It speaks HTTP/1.1 by hand on raw TCP connections (chunked responses,
// keep-alive) and writes its SSE and JSON by hand: it shares no protocol
// code with the client under test (engines/), so it checks that client
// as an outsider would. It runs in its own process (see Main), so the
// client's CPU time is the client's alone.
//
// Streams are spread over shards (one goroutine each); a shard steps every
// Interval, writing the next token of each of its streams. A stream that
// starts joins the next step, like a request joining a running batch.
// When the host cannot keep the pace, steps start late (never in bursts
// to catch up: two tokens of a stream are never closer than Interval) and
// Stats reports the tokens actually written and the late steps.
//
// Input: a Config (interval, shards, HTTP/1.1 or h2c) and chat-completion
// requests. Output: paced SSE streams with emit times, and Stats. It is a
// measuring instrument for engines' client, not a simulated engine: it must
// not import engines (it would then check the client with its own code),
// and it prints only the URL line of Main.
package pacedserver
