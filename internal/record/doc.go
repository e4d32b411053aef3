// Package record defines the per-request record: the raw facts one request
// produced, as the client observed them. Everything the suite reports is
// computed from these records and nothing else.
//
// All times are offsets from one run epoch, read from the monotonic clock
// (time.Since(epoch)), so they survive JSON and never jump with the wall clock.
// A zero offset means "did not happen" only where the field says so; use the
// Has* helpers rather than comparing with zero.
//
// Input: what the client saw. Output: the Record type and its JSON. It
// computes nothing across records and imports nothing of the project's:
// everything else depends on it.
package record
