// Package load generates closed-loop load: it keeps a fixed number of
// requests in flight and hands out the measured ones one at a time, so a Go
// benchmark's b.Loop decides how many are measured.
//
// A run has three phases per slot (one slot = one concurrent stream):
//
//  1. Warm-up: slot i (0-based) starts at i/C·Stagger after Start, so the batch
//     reaches a desynchronised steady state instead of a thundering herd, and
//     runs Warmup unmeasured requests back to back. Then it waits.
//  2. Measured: each Dispatch hands the next measured request to the next free
//     slot (first freed, first served), blocking until one is free. Nothing
//     is measured before every slot has started (the ramp-up is over).
//  3. Cooldown: Finish refills every slot that frees up with a cooldown
//     request until every measured request has ended, then cancels what is
//     still in flight and waits for every goroutine. So every measured request
//     ran its whole life with C requests in flight.
//
// The request itself is a function (DoFunc), so this package knows nothing of
// HTTP or engines. Records carry Phase, Seq, Concurrency and Intended; the
// DoFunc stamps Sent, Chunks, Done and the outcome.
//
// Seq numbers start at Config.FirstSeq (F): warm-up request j of slot i is
// F+j·C+i; measured requests follow as F+C·Warmup, F+C·Warmup+1, … in
// Dispatch order; cooldown requests continue after the last measured one.
// Result.NextSeq is one past the last seq handed out, so a caller that runs
// several samples can number every request of a run once (a workload whose
// requests depend on the seq then never repeats a prompt).
//
// Intended is the instant the load generator wanted to send: the later of
// the moment the slot became free and the moment Dispatch (or Finish, for
// cooldowns) asked for a request. Sent − Intended is therefore client-side
// queueing, which a closed loop otherwise hides.
//
// # Contract
//
// Input: a Config (concurrency, warm-up, stagger) and a DoFunc that runs one
// request into a record. Output: records with their phase and seq, and the
// measured window. It must not know HTTP or engines (the DoFunc does), print,
// or import any package above internal/record.
package load
