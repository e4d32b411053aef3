package workload

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Dist is a length distribution of prompts or outputs, in tokens, parsed
// from an -input-tokens / -output-tokens distribution by ParseDist. Draws are per seq
// from the seed, so the n-th request has the same length for every engine.
//
// The forms are:
//
//	fixed            the fixed length (-input-tokens / -output-tokens)
//	uniform:LO,HI    uniform integers in [LO, HI] (uniform:LO-HI is accepted too)
//	normal:MEAN,SD   round(MEAN + SD·z), at least 1
//	lognormal:MEAN,SD  a lognormal whose own mean and standard deviation are
//	                 MEAN and SD tokens (not those of its logarithm), rounded,
//	                 at least 1: the long right tail of real prompt and answer
//	                 lengths (Mooncake, BurstGPT, ShareGPT)
//	dataset          the dataset's own lengths (a dataset or a trace only)
type Dist struct {
	kind          string // "fixed", "uniform", "normal", "lognormal" or "dataset"
	fixed, lo, hi int
	mean, sd      float64
	mu, sigma     float64 // of the logarithm (lognormal)
}

// ParseDist parses a distribution (see Dist) of the named lengths ("input"
// or "output", for messages). s "" is "fixed" when fixed > 0 and "dataset"
// otherwise; a distribution other than fixed excludes a fixed length.
func ParseDist(what, s string, fixed int) (Dist, error) {
	kind, arg, _ := strings.Cut(strings.TrimSpace(s), ":")
	bad := func(format string, a ...any) (Dist, error) {
		return Dist{}, fmt.Errorf("workload: %s distribution %q: "+format, append([]any{what, s}, a...)...)
	}
	if kind != "" && kind != "fixed" && fixed != 0 {
		return bad("set either %s tokens (%d, a fixed length) or a distribution, not both", what, fixed)
	}
	two := func(form string) (float64, float64, bool) {
		as, bs, ok := strings.Cut(arg, ",")
		a, err1 := strconv.ParseFloat(strings.TrimSpace(as), 64)
		b, err2 := strconv.ParseFloat(strings.TrimSpace(bs), 64)
		return a, b, ok && err1 == nil && err2 == nil && !math.IsInf(a, 0) && !math.IsInf(b, 0)
	}
	switch kind {
	case "", "fixed":
		if arg != "" {
			return bad("fixed takes no argument; set the %s tokens", what)
		}
		if fixed == 0 {
			return Dist{kind: "dataset"}, nil
		}
		return Dist{kind: "fixed", fixed: fixed}, nil
	case "dataset":
		if arg != "" {
			return bad("dataset takes no argument")
		}
		return Dist{kind: "dataset"}, nil
	case "uniform":
		sep := ","
		if !strings.Contains(arg, ",") {
			sep = "-" // the older form, uniform:LO-HI
		}
		los, his, ok := strings.Cut(arg, sep)
		lo, err1 := strconv.Atoi(strings.TrimSpace(los))
		hi, err2 := strconv.Atoi(strings.TrimSpace(his))
		if !ok || err1 != nil || err2 != nil {
			return bad("want uniform:LO,HI (or uniform:LO-HI) with integers, e.g. uniform:64,192")
		}
		if lo < 1 || hi < lo {
			return bad("want 1 ≤ LO ≤ HI")
		}
		return Dist{kind: "uniform", lo: lo, hi: hi}, nil
	case "normal", "lognormal":
		mean, sd, ok := two(kind)
		if !ok {
			return bad("want %s:MEAN,SD, e.g. %s:128,32", kind, kind)
		}
		if !(mean >= 1) || !(sd >= 0) {
			return bad("want MEAN ≥ 1 and SD ≥ 0")
		}
		d := Dist{kind: kind, mean: mean, sd: sd}
		if kind == "lognormal" {
			// The lognormal with mean m and variance v has
			// σ² = ln(1 + v/m²) and μ = ln m − σ²/2.
			s2 := math.Log1p(sd * sd / (mean * mean))
			d.sigma, d.mu = math.Sqrt(s2), math.Log(mean)-s2/2
		}
		return d, nil
	}
	return bad("unknown kind %q; use fixed, uniform:LO,HI, normal:MEAN,SD, lognormal:MEAN,SD or dataset", kind)
}

// String is the distribution in the form ParseDist reads ("dataset" for
// the dataset's own lengths, the number alone for a fixed length).
func (d Dist) String() string {
	switch d.kind {
	case "fixed":
		return strconv.Itoa(d.fixed)
	case "uniform":
		return fmt.Sprintf("uniform:%d,%d", d.lo, d.hi)
	case "normal", "lognormal":
		return fmt.Sprintf("%s:%g,%g", d.kind, d.mean, d.sd)
	}
	return "dataset"
}

// Dataset reports whether the lengths are the dataset's own.
func (d Dist) Dataset() bool { return d.kind == "dataset" }

// Fixed reports whether every request has the same length.
func (d Dist) Fixed() bool { return d.kind == "fixed" }

// Mean is the distribution's mean length (0 for the dataset's lengths).
func (d Dist) Mean() float64 {
	switch d.kind {
	case "fixed":
		return float64(d.fixed)
	case "uniform":
		return float64(d.lo+d.hi) / 2
	case "normal", "lognormal":
		return d.mean
	}
	return 0
}

// Min is the shortest length the distribution can draw (1 for the
// unbounded ones, 0 for the dataset's lengths).
func (d Dist) Min() int {
	switch d.kind {
	case "fixed":
		return d.fixed
	case "uniform":
		return d.lo
	case "normal", "lognormal":
		return 1
	}
	return 0
}

// Draw is the length of request seq under seed (the fixed length for a
// fixed distribution, 0 for the dataset's lengths). salt separates the
// input lengths' stream from the output lengths'.
func (d Dist) Draw(seed int64, salt uint64, seq int) int {
	if d.kind == "fixed" || d.kind == "dataset" {
		return d.fixed
	}
	rng := rand.New(rand.NewPCG(uint64(seed)^salt, uint64(seq)))
	switch d.kind {
	case "uniform":
		return d.lo + rng.IntN(d.hi-d.lo+1)
	case "normal":
		return max(1, int(math.Round(d.mean+d.sd*rng.NormFloat64())))
	case "lognormal":
		return max(1, int(math.Round(math.Exp(d.mu+d.sigma*rng.NormFloat64()))))
	}
	return d.fixed
}

// Salts of the length streams: the output salt is the one the output
// lengths always had, so existing seeds draw the same lengths.
const (
	outputSalt = 0x9e3779b97f4a7c15
	inputSalt  = 0xc2b2ae3d27d4eb4f
)
