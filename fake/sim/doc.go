// Package sim is the simulation core of inferbench's simulated engine: a
// continuous-batching scheduler in virtual time (Scheduler), a real-time
// driver that runs it on one goroutine (Engine), and an analytic prediction
// of closed-loop throughput and latency (Predict). Package fake serves it
// over HTTP; this package knows nothing about HTTP or SSE.
//
// The full manual (model, constants, presets, prediction method) follows
// in this comment as it is completed.
package sim
