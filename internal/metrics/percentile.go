package metrics

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Percentile returns the p-th percentile (0 ≤ p ≤ 100) of sorted, an ascending
// sample, by linear interpolation between the two nearest order statistics:
// with rank r = p/100·(n−1), the result is s[⌊r⌋] + (s[⌈r⌉] − s[⌊r⌋])·(r − ⌊r⌋).
// This is numpy.percentile's default ("linear") method, the one vLLM's
// benchmark uses, so the numbers are comparable. An empty sample yields 0;
// p outside [0, 100] is clamped.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if math.IsNaN(p) || p <= 0 {
		return sorted[0]
	}
	if p >= 100 {
		return sorted[n-1]
	}
	r := p / 100 * float64(n-1)
	lo := int(math.Floor(r))
	hi := int(math.Ceil(r))
	if lo == hi {
		return sorted[lo]
	}
	frac := r - float64(lo)
	return sorted[lo] + time.Duration(math.Round(float64(sorted[hi]-sorted[lo])*frac))
}

// MinSamples is the smallest sample size for which the p-th percentile has at
// least one observation strictly above it: ⌈1/(1−p/100)⌉ (p99 → 100, p95 → 20,
// p90 → 10, p50 → 2). Below that, the percentile is an interpolation between
// the largest values ("the max-ish"), not an estimate of the tail. For a stable
// tail estimate ten times as many are advisable (AIPerf's guidance: p99 needs
// 1000+ requests).
func MinSamples(p float64) int {
	if p <= 0 {
		return 1
	}
	if p >= 100 {
		return 1
	}
	return int(math.Ceil(1/(1-p/100) - 1e-9))
}

// Dist summarises one latency sample. All fields are zero when N is 0.
type Dist struct {
	N    int           `json:"n"`
	Mean time.Duration `json:"mean_ns"`
	Min  time.Duration `json:"min_ns"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P95  time.Duration `json:"p95_ns"`
	P99  time.Duration `json:"p99_ns"`
	Max  time.Duration `json:"max_ns"`
}

// reportedPercentiles are the percentiles a Dist carries, highest first.
var reportedPercentiles = []float64{99, 95, 90, 50}

// NewDist computes a Dist over sample (exact, over the whole sample). It sorts
// a copy and leaves sample untouched.
func NewDist(sample []time.Duration) Dist {
	n := len(sample)
	if n == 0 {
		return Dist{}
	}
	s := slices.Clone(sample)
	slices.Sort(s)
	var sum float64
	for _, v := range s {
		sum += float64(v)
	}
	return Dist{
		N:    n,
		Mean: time.Duration(math.Round(sum / float64(n))),
		Min:  s[0],
		P50:  Percentile(s, 50),
		P90:  Percentile(s, 90),
		P95:  Percentile(s, 95),
		P99:  Percentile(s, 99),
		Max:  s[n-1],
	}
}

// sampleWarning returns a warning when the highest reported percentile of a
// sample of n values named name has no observation above it (n < MinSamples),
// or "" when every reported percentile is resolved. An empty sample gets no
// warning here: the caller reports missing data separately.
func sampleWarning(name string, n int) string {
	if n == 0 {
		return ""
	}
	var bad []string
	for _, p := range reportedPercentiles {
		if n < MinSamples(p) {
			bad = append(bad, fmt.Sprintf("p%g", p))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return fmt.Sprintf("%s %v n=%d", name, bad, n)
}

// sampleWarnings joins the per-distribution small-sample findings into one
// warning, so a short run gets one line, not four.
func sampleWarnings(parts []string) string {
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("few samples for tail percentiles: %s are at or near the largest value seen (p%g needs ≥ %d values, ideally 10× that); run more requests, e.g. -benchtime=200x",
		strings.Join(parts, ", "), reportedPercentiles[0], MinSamples(reportedPercentiles[0]))
}
