// Package cpu measures the benchmark process's own cost: the CPU time it
// used (user and system, from getrusage(RUSAGE_SELF)) over a span of the
// run, and a CLOCK_MONOTONIC clock that another process on the same host
// can compare instants with.
//
// A client that shares a host with the server takes CPU from the engine,
// and a client whose readers fall behind stamps tokens late. inferbench
// therefore measures its own CPU in every sample (Sampler) and reports it
// per output token. The figure is the whole process's: with an in-process
// simulated engine (-engines=fake) it includes the simulator's CPU, and
// Go offers no way to charge CPU time to some goroutines only.
//
// Input: the process and the kernel's clocks. Output: Usage spans and
// monotonic instants. It prints nothing and imports nothing of the
// project's.
package cpu
