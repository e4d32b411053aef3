// Package slo parses service-level objectives (-slo) and evaluates a
// sample's requests against them: which requests were good (met every
// threshold), the goodput, and whether the sample's percentiles hold.
//
// An SLO is a list of limits, each a latency metric at a percentile with a
// maximum, written METRIC-pNN=DURATION and joined by commas:
//
//	-slo=ttft-p99=2s,tpot-p99=100ms
//
// METRIC is one of ttft, tpot, itl, e2e; NN one of 50, 90, 95, 99; DURATION
// a Go duration (150ms, 2s). Presets name MLPerf Inference's latency
// constraints (p99 TTFT and p99 TPOT) for a model in its Server or
// Interactive scenario, and may be combined with further limits:
//
//	-slo=mlperf-server:llama3.1-8b          (ttft-p99=2s, tpot-p99=100ms)
//	-slo=mlperf-interactive:llama3.1-8b,e2e-p90=5s
//
// Definitions (every one over the sample's measured requests):
//
//   - TTFT is intended send → first output token and E2E intended send →
//     last output token, as MLPerf measures from the scheduled issue time:
//     time a request waited in the client because the load generator was
//     late or the concurrency cap was reached counts against the SLO. In a
//     closed loop the intended instant is when a slot became free, so the
//     two coincide with the client's send.
//   - TPOT is (last − first token) / (output tokens − 1); a request with one
//     output token has none and meets any TPOT limit.
//   - ITL is the gap between consecutive output tokens (a chunk of k tokens
//     counts its gap / k, k times, as the metrics package does).
//
// A request is good when it succeeded and, for every limit, its own value
// is within the maximum: its TTFT, TPOT or E2E, or for ITL the NN-th
// percentile of its own gaps. Goodput is good requests ÷ the measured
// window (DistServe's definition: the rate of requests that met their
// SLO). The sample meets the SLO when, for every limit, the NN-th
// percentile over all measured requests is within the maximum; a failed
// request counts as an infinitely slow one there, so failures can never
// make a sample look better.
//
// # Contract
//
// Input: an -slo string, and a sample's records and window. Output: the SLO,
// each request's verdict, goodput and whether the sample met it. It prints
// nothing and imports only internal/record and internal/metrics.
package slo
