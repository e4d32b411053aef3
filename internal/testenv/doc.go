// Package testenv says which kind of test a run asks for. Its one job is
// the timing checks: tests that assert what is measured in real time
// against a model or another clock (the simulator against its prediction,
// the suite against an independent client, one process against shards).
// They need a machine that keeps the simulator's pace, so they do not run
// under the README's `go test -race ./...`, where the race detector slows
// every goroutine several fold; `.ci/run` runs them on every landing in a
// step of their own, without the race detector:
//
//	INFERBENCH_TIMING=1 go test -count=1 -run '^TestTiming' ./...
//
// Every timing check is named TestTiming… and calls Timing first. The race
// detector still covers the code they drive: the same paths run, at
// smaller sizes and without timing assertions, in the ordinary tests.
//
// It is imported by tests only; it prints nothing and imports nothing of
// the project's.
package testenv
