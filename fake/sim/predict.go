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
	D := float64(outputTokens)
	C := float64(concurrency)
	O := ms(cfg.EffectiveOverhead())
	budget := float64(max(cfg.MaxBatchedTokens, cfg.MaxNumSeqs, 1))

	// The most sequences that can run: MaxNumSeqs, and the KV cache at the
	// mean footprint of a running request (prompt + half the output, plus
	// half a block of rounding).
	bs := float64(max(cfg.BlockSize, 1))
	kvCap := math.Floor(float64(cfg.KVCapacityTokens)/bs) * bs
	maxRun := math.Min(float64(max(cfg.MaxNumSeqs, 1)), math.Floor(kvCap/(P+D/2+bs/2)))
	maxRun = math.Max(maxRun, 1)

	// Per-request work: decode context summed over its D−1 decode steps.
	kvDecodePerReq := (D-1)*P + D*(D-1)/2

	var (
		S      = ms(cfg.StepBase) // mean step, ms
		sOwn   float64            // the step(s) carrying the request's own prefill, ms
		wait   float64            // time from reaching the engine to its prefill step, ms
		lambda float64            // requests starting per step
		L      float64            // client cycle: overhead + wait + prefill + decodes, ms
		nd     float64            // decodes per step
	)
	for it := 0; it < 500; it++ {
		// Client cycle with the current step estimate.
		busy := 0.0
		if C > 1 && L > 0 {
			f := math.Min(1, (L-O)/L) // share of time another client is inside the engine
			busy = 1 - math.Pow(1-f, C-1)
		}
		resid := busy * S / 2
		lambdaNew := 0.0
		if L > 0 {
			lambdaNew = C * S / L
		} else {
			lambdaNew = C * S / (O + D*S)
		}
		if run := lambdaNew * D; run > maxRun {
			lambdaNew = maxRun / D
		}
		lambda = 0.5*lambda + 0.5*lambdaNew
		if it == 0 {
			lambda = lambdaNew
		}
		nd = lambda * (D - 1)

		chunks := math.Ceil(P / math.Max(1, budget-nd))
		S = expectedStep(&cfg, lambda, nd, P, kvDecodePerReq)
		sOwn = ownPrefill(&cfg, lambda, nd, P, kvDecodePerReq) + (chunks-1)*S
		engine := resid + sOwn + (D-1)*S
		Lnew := O + engine
		if lambda*D >= maxRun*0.999 { // saturated: clients queue for a slot
			X := lambda / S
			Lnew = math.Max(Lnew, C/X)
		}
		wait = Lnew - O - sOwn - (D-1)*S
		if L > 0 && math.Abs(Lnew-L) < 1e-9*L {
			L = Lnew
			break
		}
		L = Lnew
	}
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
		StepTime:        fromMs(S),
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

// expectedStep is the mean step: nd decodes plus k ~ Poisson(λ) prefills of
// P tokens. Only the knee term is non-linear, so the mean is taken over k.
func expectedStep(cfg *Config, lambda, nd, P, kvDecodePerReq float64) float64 {
	kv := lambda*kvDecodePerReq + lambda*P
	n := int(lambda+10*math.Sqrt(lambda)) + 10
	e := 0.0
	for k, pk := range poisson(lambda, n) {
		e += pk * math.Max(0, nd+float64(k)*P-float64(cfg.KneeTokens))
	}
	return ms(cfg.StepBase) + cfg.StepPerTokenMs*e + cfg.KVPerTokenUs/1000*kv + cfg.PrefillAttnMs*lambda*P*P/2
}

// ownPrefill is the mean step that carries a given request's prefill: its own
// P tokens plus k ~ Poisson(λ) other prefills.
func ownPrefill(cfg *Config, lambda, nd, P, kvDecodePerReq float64) float64 {
	kvd := lambda * kvDecodePerReq
	n := int(lambda+10*math.Sqrt(lambda)) + 10
	e := 0.0
	for k, pk := range poisson(lambda, n) {
		j := float64(k + 1)
		e += pk * cfg.stepMs(nd+j*P, kvd+j*P, j*P*P/2)
	}
	return e
}
