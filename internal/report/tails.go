package report

import (
	"fmt"
	"math"
	"time"

	"github.com/inferbench/inferbench/internal/metrics"
)

// Confidence is the confidence level of every interval in this package:
// benchstat's default, so the tails' intervals and the throughput
// intervals read alike.
const Confidence = 0.95

// TailPercentiles are the percentiles a pooled distribution reports.
var TailPercentiles = []float64{50, 90, 95, 99}

// MinForCI is the smallest sample size whose order statistics bound the
// p-th percentile (0 < p < 100) on both sides with an equal-tailed,
// distribution-free confidence interval at level conf: each side may miss
// with probability at most (1−conf)/2, so the sample must be large enough
// that the largest value lies above the p-quantile, and the smallest below
// it, with at least that probability: n ≥ ln((1−conf)/2) / ln(max(p, 1−p)).
//
// At 95 % that is 6 values for the median (benchstat's rule for a finite
// interval), 36 for p90, 72 for p95 and 368 for p99. It is the rule
// for which percentiles a result line carries: below it the percentile is
// an interpolation between the largest values seen, not a bound on the
// tail. MLPerf's early-stopping estimate is the model (an order statistic
// certified by the binomial distribution of the count below the quantile);
// MLPerf asks one-sided 99 % confidence, which for p99 needs more.
func MinForCI(p, conf float64) int {
	q := p / 100
	a := (1 - conf) / 2
	worst := math.Max(q, 1-q)
	return int(math.Ceil(math.Log(a)/math.Log(worst) - 1e-9))
}

// Tail is one percentile of a sample with its confidence interval.
type Tail struct {
	// P is the percentile, 0–100.
	P float64 `json:"p"`
	// N is the number of values.
	N int `json:"n"`
	// Value is the point estimate (linear interpolation between order
	// statistics, metrics.Percentile); 0 when N is 0.
	Value time.Duration `json:"value_ns"`
	// Lo and Hi bound the percentile at level Confidence: order statistics
	// of the sample chosen by the binomial distribution (see QuantileCI).
	// nil means unbounded on that side: the sample is too small to bound it
	// (a p99 from 50 values has a lower bound and no upper one).
	Lo *time.Duration `json:"ci_lo_ns"`
	Hi *time.Duration `json:"ci_hi_ns"`
	// Certified is set when both bounds exist (N ≥ NeedN): only then does
	// the suite report this percentile of a tail (p > 50) at all.
	Certified bool `json:"certified"`
	// NeedN is MinForCI(P, Confidence).
	NeedN int `json:"needs_n"`
}

// String formats the tail for a table: "412ms [398ms, 440ms]", or "—"
// with the sample size needed when it is not certified.
func (t Tail) String() string {
	if t.N == 0 {
		return "—"
	}
	if !t.Certified || t.Lo == nil || t.Hi == nil { // a hand-edited file may claim more than it has
		return fmt.Sprintf("— (n=%d<%d)", t.N, t.NeedN)
	}
	return fmt.Sprintf("%s [%s, %s]", Dur(t.Value), Dur(*t.Lo), Dur(*t.Hi))
}

// NewTail computes the p-th percentile of sorted (ascending) with its
// confidence interval.
func NewTail(sorted []time.Duration, p float64) Tail {
	t := Tail{P: p, N: len(sorted), NeedN: MinForCI(p, Confidence)}
	if t.N == 0 {
		return t
	}
	t.Value = metrics.Percentile(sorted, p)
	lo, hi := QuantileCI(t.N, p, Confidence)
	if lo > 0 {
		v := sorted[lo-1]
		t.Lo = &v
	}
	if hi > 0 {
		v := sorted[hi-1]
		t.Hi = &v
	}
	t.Certified = t.Lo != nil && t.Hi != nil
	return t
}

// QuantileCI returns the 1-based ranks (lo, hi) of the order statistics
// X(lo) ≤ ξ ≤ X(hi) that bound the p-th percentile ξ of the population a
// sample of n independent values came from, at level conf, equal-tailed:
// with B ~ Binomial(n, p/100) the number of values below ξ, lo is the
// largest rank with P(B < lo) ≤ (1−conf)/2 and hi the smallest with
// P(B ≥ hi) ≤ (1−conf)/2, so P(X(lo) ≤ ξ ≤ X(hi)) ≥ conf. A rank is 0
// when no order statistic bounds that side.
func QuantileCI(n int, p, conf float64) (lo, hi int) {
	if n <= 0 {
		return 0, 0
	}
	q := p / 100
	a := (1 - conf) / 2
	pmf := binomialPMF(n, q)
	// Lower: accumulate P(B = k) from below; the first k where the sum
	// passes a has P(B ≤ k−1) ≤ a < P(B ≤ k), so X(k) is the largest
	// order statistic below ξ with probability ≥ 1−a (rank k, 1-based).
	cum := 0.0
	from, to := pmf.span()
	k := from
	for ; k <= to; k++ {
		cum += pmf.at(k)
		if cum > a {
			break
		}
	}
	lo = k // k = 0: even X(1) may lie above ξ with probability > a
	// Upper: accumulate from above; the first k where the sum passes a has
	// P(B ≥ k+1) ≤ a, so X(k+1) bounds ξ from above.
	cum = 0
	k = to
	for ; k >= from; k-- {
		cum += pmf.at(k)
		if cum > a {
			break
		}
	}
	if k+1 <= n {
		hi = k + 1
	}
	return lo, hi
}

// binomial is the probability mass of Binomial(n, q) over the ranks that
// carry any (outside [from, to] it is below 1e-300 in total).
type binomial struct {
	n       int
	q       float64
	lnNFact float64
}

func binomialPMF(n int, q float64) binomial {
	lg, _ := math.Lgamma(float64(n) + 1)
	return binomial{n: n, q: q, lnNFact: lg}
}

// span is the range of k outside which the mass is negligible: 40
// standard deviations either side of the mean (Chernoff: the mass beyond
// is far below double precision), clamped to [0, n].
func (b binomial) span() (from, to int) {
	mean := float64(b.n) * b.q
	sd := math.Sqrt(float64(b.n) * b.q * (1 - b.q))
	w := 40*sd + 50
	return max(0, int(math.Floor(mean-w))), min(b.n, int(math.Ceil(mean+w)))
}

func (b binomial) at(k int) float64 {
	switch {
	case b.q <= 0:
		if k == 0 {
			return 1
		}
		return 0
	case b.q >= 1:
		if k == b.n {
			return 1
		}
		return 0
	}
	lk, _ := math.Lgamma(float64(k) + 1)
	lnk, _ := math.Lgamma(float64(b.n-k) + 1)
	return math.Exp(b.lnNFact - lk - lnk + float64(k)*math.Log(b.q) + float64(b.n-k)*math.Log1p(-b.q))
}

// Dur formats a latency compactly for tables: 3 significant digits, in
// µs, ms or s.
func Dur(d time.Duration) string {
	switch a := d.Abs(); {
	case a >= time.Second:
		return sig3(d.Seconds()) + "s"
	case a >= time.Millisecond:
		return sig3(float64(d)/1e6) + "ms"
	default:
		return sig3(float64(d)/1e3) + "µs"
	}
}

func sig3(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
