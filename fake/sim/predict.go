package sim

import (
	"math"
	"time"
)

// Prediction is the analytic steady state of a closed loop of clients, each
// sending its next request as soon as the previous one finished. Times are
// means over requests, measured from the moment the client sends (so TTFT
// includes Overhead and queueing).
type Prediction struct {
	OutputTokPerSec float64       // output tokens per second, all clients together
	ReqPerSec       float64       // completed requests per second
	TTFT            time.Duration // send → first token
	ITL             time.Duration // mean gap between consecutive tokens of a request
	TPOT            time.Duration // (E2E − TTFT) / (outputTokens − 1); equals ITL here
	E2E             time.Duration // send → last token
	BatchSize       float64       // mean number of running sequences
	StepTime        time.Duration // mean step duration
}

// Predict returns the steady state of concurrency clients sending requests
// of promptTokens prompt and outputTokens output tokens (≤ 0: the config's
// defaults) to an engine configured by cfg. See the package documentation
// for the method and its accuracy. It returns a zero Prediction for a
// firehose configuration or concurrency < 1.
func Predict(cfg Config, concurrency, promptTokens, outputTokens int) Prediction {
	return PredictCached(cfg, concurrency, promptTokens, 0, outputTokens)
}

// PredictCached is Predict for requests whose first cachedTokens prompt
// tokens are found in the prefix cache (Config.PrefixCaching), e.g. a
// system prompt every client shares: each prefill computes only the rest,
// attending to the cached context, and the cached blocks are held once for
// all running sequences. cachedTokens is rounded down to whole blocks and
// capped at ⌊(prompt − 1)/BlockSize⌋·BlockSize, what the scheduler can hit
// (the last prompt token is always computed); it is ignored without
// PrefixCaching. For a hit fraction h of a P-token prompt pass h·P. The
// prediction assumes every request hits (a warm cache that is never
// evicted); the first request of each prefix pays the full prefill.
func PredictCached(cfg Config, concurrency, promptTokens, cachedTokens, outputTokens int) Prediction {
	if concurrency < 1 || cfg.Firehose() || cfg.StepBase <= 0 {
		return Prediction{}
	}
	P := float64(max(promptTokens, 1))
	if promptTokens <= 0 {
		P = float64(max(cfg.DefaultPromptTokens, 1))
	}
	if outputTokens <= 0 {
		outputTokens = max(cfg.DefaultTokens, 1)
	}
	bsz := max(cfg.BlockSize, 1)
	K := 0.0 // cached prompt tokens per request
	if cfg.PrefixCaching && cachedTokens > 0 {
		k := min(cachedTokens/bsz, (int(P)-1)/bsz) * bsz
		K = float64(max(k, 0))
	}
	D := float64(outputTokens)
	C := float64(concurrency)
	O := ms(cfg.EffectiveOverhead())
	budget := float64(max(cfg.MaxBatchedTokens, cfg.MaxNumSeqs, 1))

	// The most sequences that can run: MaxNumSeqs, and the KV cache at the
	// mean footprint of a running request (prompt + half the output, plus
	// half a block of rounding).
	bs := float64(max(cfg.BlockSize, 1))
	kvCap := math.Floor(float64(cfg.KVCapacityTokens)/bs) * bs
	maxRun := math.Min(float64(max(cfg.MaxNumSeqs, 1)), math.Floor((kvCap-K)/(P-K+D/2+bs/2)))
	maxRun = math.Max(maxRun, 1)

	// Per-request work: decode context summed over its D−1 decode steps.
	kvDecodePerReq := (D-1)*P + D*(D-1)/2

	// eval returns the client cycle implied by a guessed cycle L: with
	// arrivals at rate C/L it finds the steady step-time distributions and
	// sums the phases of one request.
	type state struct {
		L, sAll, sDec, sOwn, wait float64
	}
	lambda := 0.0 // requests starting per step; warm start across calls
	// Overheads shorter than the bare step put every arrival in the step
	// after its finish: arrivals then follow the (evenly staggered) finishes
	// instead of forming a Poisson process.
	sync := O < ms(cfg.StepBase)
	eval := func(L float64) state {
		r := C / L
		ro := r * (C - 1) / C
		var all, oth dist
		var sm stepModel
		sAll := ms(cfg.StepBase)
		capped := false
		for range 100 {
			nd := lambda * (D - 1)
			sm = stepModel{cfg: &cfg, nd: nd, P: P, K: K, kvd: lambda * kvDecodePerReq, budget: budget, fin: map[int]float64{}}
			if sync {
				all = sm.evenly(lambda)
			} else {
				all = sm.chain(r, false)
			}
			sAll = all.mean()
			next := r * sAll
			capped = next*D > maxRun
			if capped {
				next = maxRun / D
			}
			if math.Abs(next-lambda) < 1e-9*math.Max(next, 1e-9) {
				lambda = next
				break
			}
			lambda = next
		}
		st := state{sAll: sAll}
		if sync {
			oth = sm.evenly(lambda * (C - 1) / C)
			st.sOwn = sm.ownEvenly(all)
		} else {
			oth = sm.chain(ro, false)
			st.sOwn = sm.ownMixing(oth, ro)
		}
		st.sDec = oth.mean()
		if C > 1 && O > 0 {
			f := math.Min(1, (L-O)/L) // share of time another client is inside the engine
			busy := 1 - math.Pow(1-f, C-1)
			st.wait = busy * oth.residual(O)
		}
		st.L = O + st.wait + st.sOwn + (D-1)*st.sDec
		if capped { // saturated: clients queue for a running slot
			if q := C * sAll / lambda; q > st.L {
				st.wait += q - st.L
				st.L = q
			}
		}
		return st
	}
	// The implied cycle falls as the guess grows (fewer arrivals, shorter
	// steps), so the fixed point is found by bisection.
	lo := O + D*ms(cfg.StepBase)
	hi := 2 * lo
	for range 60 {
		if eval(hi).L <= hi {
			break
		}
		lo, hi = hi, 2*hi
	}
	for range 60 {
		mid := (lo + hi) / 2
		if eval(mid).L > mid {
			lo = mid
		} else {
			hi = mid
		}
		if hi-lo < 1e-9*hi {
			break
		}
	}
	L := (lo + hi) / 2
	st := eval(L)
	if st.L < L {
		// The fixed point sits on the jump where the running slots fill up:
		// the difference is time spent queueing for a slot.
		st.wait += L - st.L
	}
	sAll, sDec, sOwn, wait := st.sAll, st.sDec, st.sOwn, st.wait
	S := sDec
	X := C / L // requests per ms
	ttft := O + wait + sOwn
	return Prediction{
		OutputTokPerSec: X * D * 1000,
		ReqPerSec:       X * 1000,
		TTFT:            fromMs(ttft),
		ITL:             fromMs(S),
		TPOT:            fromMs(S),
		E2E:             fromMs(ttft + (D-1)*S),
		BatchSize:       X * (sOwn + (D-1)*S),
		StepTime:        fromMs(sAll),
	}
}

// poisson returns P(k) for k = 0..n−1 of a Poisson(λ) variable, with the
// tail mass folded into the last entry.
func poisson(lambda float64, n int) []float64 {
	p := make([]float64, n)
	pk := math.Exp(-lambda)
	sum := 0.0
	for k := 0; k < n-1; k++ {
		p[k] = pk
		sum += pk
		pk *= lambda / float64(k+1)
	}
	p[n-1] = math.Max(0, 1-sum)
	return p
}

// stepModel computes step durations for a steady state with nd decodes
// holding kvd context tokens per step, plus k prefills of P tokens of which
// the first K are cached (not computed, but attended to and held).
type stepModel struct {
	cfg                   *Config
	nd, P, K, kvd, budget float64
	fin                   map[int]float64 // memo of super's finish for chunked groups
}

// super is what k prefills of P tokens cost when they start together with
// nd decodes: the budget left by the decodes, cap, lets them run in
// n = ⌈k·P/cap⌉ consecutive steps (chunked prefill), each with the decodes.
// total is the duration of those steps, in ms, and finish the mean time
// from their start to the end of the step in which one of the k prompts
// (at a uniformly random place in the queue) completes.
func (m stepModel) super(k int) (total float64, n int, finish float64) {
	if k == 0 {
		return m.cfg.stepMs(m.nd, m.kvd, 0), 1, 0
	}
	capTok := math.Max(1, m.budget-m.nd)
	Q := m.P - m.K // computed tokens per prompt
	work := float64(k) * Q
	n = max(1, int(math.Ceil(work/capTok-1e-9)))
	// A computed token attends on average to the cache plus half the
	// computed part: Q·(K + Q/2) per prompt, as the scheduler charges it.
	att := m.K + Q/2
	held := float64(k) * m.K / float64(n) // cached context of the prefills in a step
	full := m.cfg.stepMs(m.nd+capTok, m.kvd+capTok+held, capTok*att)
	last := work - float64(n-1)*capTok
	total = float64(n-1)*full + m.cfg.stepMs(m.nd+last, m.kvd+last+held, last*att)
	if n == 1 {
		return total, 1, total
	}
	if f, ok := m.fin[k]; ok {
		return total, n, f
	}
	for i := 1; i <= k; i++ {
		c := int(math.Ceil(float64(i)*Q/capTok - 1e-9)) // the step that completes prompt i
		if c >= n {
			finish += total
		} else {
			finish += float64(c) * full
		}
	}
	finish /= float64(k)
	m.fin[k] = finish
	return total, n, finish
}

// step is the total duration in ms of the steps that k prefills starting
// together take (see super).
func (m stepModel) step(k int) float64 {
	t, _, _ := m.super(k)
	return t
}

// finish is the mean time until one of k prefills starting together
// completes (see super).
func (m stepModel) finish(k int) float64 {
	_, _, f := m.super(k)
	return f
}

// dist is a distribution of the prefills that start together, with the
// duration and the number of steps they take.
type dist struct {
	p, s []float64 // p[k] = probability of k prefills; s[k] = duration of their steps, ms
	n    []float64 // n[k] = number of steps they take (1 unless the budget splits them)
	cfg  *Config
}

// mean is the mean duration of one step.
func (d dist) mean() float64 {
	e, steps := 0.0, 0.0
	for k, pk := range d.p {
		e += pk * d.s[k]
		steps += pk * d.n[k]
	}
	if steps == 0 {
		return 0
	}
	return e / steps
}

// fill sets s and n for every k.
func (d *dist) fill(m stepModel) {
	d.s, d.n = make([]float64, len(d.p)), make([]float64, len(d.p))
	for k := range d.p {
		t, n, _ := m.super(k)
		d.s[k], d.n[k] = t, float64(n)
	}
}

// chain is the stationary distribution of prefills per step when requests
// arrive at rate r per ms and the requests arriving during a step of
// duration S(k) join the next one: k' ~ Poisson(r·S(k)) for arrivals that
// form a Poisson process, or ⌊r·S(k)⌋ / ⌈r·S(k)⌉ (by the fractional part)
// for evenly spaced ones. The chain is iterated to its fixed point.
func (m stepModel) chain(r float64, even bool) dist {
	var d dist
	for n := 16; ; n *= 2 {
		d = m.chainN(r, even, n)
		if n >= 1024 || d.p[n-1] < 1e-9 {
			return d
		}
	}
}

// chainN is chain truncated to n states (the last one absorbs the tail).
func (m stepModel) chainN(r float64, even bool, n int) dist {
	d := dist{p: make([]float64, n), cfg: m.cfg}
	d.fill(m)
	trans := make([][]float64, n)
	for k := range trans {
		if even {
			trans[k] = twoPoint(r*d.s[k], n)
		} else {
			trans[k] = poisson(r*d.s[k], n)
		}
	}
	d.p[0] = 1
	next := make([]float64, n)
	for it := 0; it < 2000; it++ {
		clear(next)
		for k, pk := range d.p {
			if pk < 1e-15 {
				continue
			}
			for j, q := range trans[k] {
				next[j] += pk * q
			}
		}
		diff := 0.0
		for k := range next {
			diff += math.Abs(next[k] - d.p[k])
		}
		copy(d.p, next)
		if diff < 1e-12 {
			break
		}
	}
	return d
}

// twoPoint is the distribution of the number of evenly spaced points, x per
// unit on average, that fall in a unit interval at a random phase.
func twoPoint(x float64, n int) []float64 {
	p := make([]float64, n)
	lo := int(math.Floor(x))
	f := x - float64(lo)
	if lo >= n-1 {
		p[n-1] = 1
		return p
	}
	p[lo] = 1 - f
	p[lo+1] += f
	return p
}

// ownMixing is the mean time from the end of the step in which a request
// arrived to the end of its own prefill, under Poisson arrivals: it arrived
// during steps picked in proportion to their duration, and prefills with the
// others that arrived then.
func (m stepModel) ownMixing(oth dist, r float64) float64 {
	tot, e := 0.0, 0.0
	n := len(oth.p)
	fin := make([]float64, n+1)
	for j := range fin {
		fin[j] = -1
	}
	for k, pk := range oth.p {
		if pk < 1e-15 {
			continue
		}
		w := pk * oth.s[k]
		tot += w
		for j, q := range poisson(r*oth.s[k], n) {
			if q < 1e-15 {
				continue
			}
			if fin[j] < 0 {
				fin[j] = m.finish(j + 1)
			}
			e += w * q * fin[j]
		}
	}
	if tot == 0 {
		return m.finish(1)
	}
	return e / tot
}

// evenly is the distribution of prefills per step when λ arrive per step
// evenly spaced: ⌊λ⌋ or ⌈λ⌉ with the mean λ.
func (m stepModel) evenly(lambda float64) dist {
	lo := int(math.Floor(lambda))
	f := lambda - float64(lo)
	d := dist{p: make([]float64, lo+2), cfg: m.cfg}
	d.p[lo], d.p[lo+1] = 1-f, f
	d.fill(m)
	return d
}

// ownEvenly is the mean step carrying a request's own prefill when arrivals
// are evenly spaced: the size of the request's group is size-biased.
func (m stepModel) ownEvenly(all dist) float64 {
	num, den := 0.0, 0.0
	for k, pk := range all.p {
		if k == 0 || pk == 0 {
			continue
		}
		num += pk * float64(k) * m.finish(k)
		den += pk * float64(k)
	}
	if den == 0 {
		return m.finish(1)
	}
	return num / den
}

// residual is the mean time from o after a step boundary to the next step
// boundary when step durations are independent draws from d (spread by the
// lognormal jitter, 3-point Gauss–Hermite): by Wald's identity
// E[S]·(1 + m(o)) − o, with the renewal function m computed on a grid of
// 1/200 of the shortest step.
func (d dist) residual(o float64) float64 {
	var vals, probs []float64
	zs, ws := []float64{0}, []float64{1}
	sg := d.cfg.Jitter
	if sg > 0 {
		zs, ws = []float64{-math.Sqrt(3), 0, math.Sqrt(3)}, []float64{1.0 / 6, 2.0 / 3, 1.0 / 6}
	}
	for k, pk := range d.p {
		if pk < 1e-12 {
			continue
		}
		for i, z := range zs { // the steps of a group are taken as equal
			vals = append(vals, d.s[k]/d.n[k]*math.Exp(sg*z-sg*sg/2))
			probs = append(probs, pk*d.n[k]*ws[i])
		}
	}
	norm := 0.0
	for _, p := range probs {
		norm += p
	}
	for i := range probs {
		probs[i] /= norm
	}
	mean, minV := 0.0, math.Inf(1)
	for i, v := range vals {
		mean += v * probs[i]
		minV = math.Min(minV, v)
	}
	if minV <= 0 || len(vals) == 0 {
		return 0
	}
	dt := minV / 200
	n := int(o/dt) + 1
	if n > 200000 { // very long overheads: the stationary residual E[S²]/2E[S]
		m2 := 0.0
		for i, v := range vals {
			m2 += v * v * probs[i]
		}
		return m2 / (2 * mean)
	}
	steps := make([]int, len(vals))
	for i, v := range vals {
		steps[i] = max(1, int(math.Round(v/dt)))
	}
	// u[t] is the probability of a step boundary exactly at grid point t;
	// m(o) = Σ_{t=1..n} u[t].
	u := make([]float64, n+1)
	u[0] = 1
	m := 0.0
	for t := 1; t <= n; t++ {
		for i, st := range steps {
			if st <= t {
				u[t] += u[t-st] * probs[i]
			}
		}
		if float64(t)*dt <= o {
			m += u[t]
		}
	}
	return math.Max(0, mean*(1+m)-o)
}
