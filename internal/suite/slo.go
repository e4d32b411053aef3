package suite

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/results"
	"github.com/inferbench/inferbench/internal/slo"
)

// parseOpenLoop parses -rate, -arrival, -max-concurrency, -slo and
// -capacity-repeats into the suite.
func (s *Suite) parseOpenLoop() error {
	var err error
	if strings.EqualFold(strings.TrimSpace(s.opt.Rate), AutoConcurrency) {
		return errors.New("-rate=auto: automatic placement is for closed-loop levels only (MLPerf Endpoints' points are fixed concurrency, endpoints_rules.md §6.1): use -concurrency=auto, or give rates such as -rate=2,8,32 (BenchmarkCapacity finds the highest rate that meets -slo)")
	}
	if s.rates, err = parseRates(s.opt.Rate); err != nil {
		return err
	}
	if s.arrival, err = parseArrival(s.opt.Arrival); err != nil {
		return err
	}
	if s.opt.MaxConcurrency < 0 || s.opt.MaxConcurrency > 100000 {
		return fmt.Errorf("-max-concurrency=%d: must be between 1 and 100000 (0 for the default %d)", s.opt.MaxConcurrency, DefaultMaxConcurrency)
	}
	if s.opt.CapacityRepeats < 0 || s.opt.CapacityRepeats > 100 {
		return fmt.Errorf("-capacity-repeats=%d: must be between 1 and 100 (0 for the default %d)", s.opt.CapacityRepeats, DefaultCapacityRepeats)
	}
	if s.opt.SLO != "" {
		if s.slo, err = slo.Parse(s.opt.SLO); err != nil {
			return err
		}
	}
	if err := s.parseTrace(); err != nil {
		return err
	}
	if s.opt.Concurrency == "" && len(s.rates) == 0 && s.trace == nil {
		return errors.New("-concurrency: no levels given and no -rate or -trace (example: -concurrency=1,4,16 or -rate=2,8)")
	}
	return nil
}

// maxInFlight is the most requests any sample keeps in flight: the client
// sizes its connection pool to it.
func (s *Suite) maxInFlight() int {
	n := 1
	if len(s.levels) > 0 {
		n = slices.Max(s.levels)
	}
	if s.auto != nil {
		n = max(n, s.maxConcurrency()) // the probe and the levels go up to the cap
	}
	if len(s.rates) > 0 || !s.slo.IsZero() || s.trace != nil {
		n = max(n, s.maxConcurrency())
	}
	return n
}

// openLoopConfig are the results header's keys for the open loop and the
// SLO, so benchstat never pools samples of different schedules or SLOs.
func (s *Suite) openLoopConfig() []results.KV {
	var kv []results.KV
	if len(s.rates) > 0 || !s.slo.IsZero() || s.trace != nil {
		kv = append(kv,
			results.KV{Key: "arrival", Value: s.arrival.String()},
			results.KV{Key: "max-concurrency", Value: fmt.Sprint(s.maxConcurrency())})
	}
	if !s.slo.IsZero() {
		kv = append(kv, results.KV{Key: "slo", Value: s.slo.String()})
	}
	return kv
}

// SLO is -slo, parsed; its zero value means none was given.
func (s *Suite) SLO() slo.SLO { return s.slo }

// sloMetrics evaluates -slo over a sample: goodput-req/s (measured
// requests that met every limit ÷ the window), slo-good/op (the fraction
// that did) and slo-met (1 when every percentile limit holds, else 0).
func sloMetrics(o slo.SLO, recs []record.Record, window time.Duration) ([]Metric, string) {
	ev := o.Evaluate(recs, window)
	met := 0.0
	if ev.Met {
		met = 1
	}
	return []Metric{
		{ev.Goodput, "goodput-req/s"},
		{ev.GoodFraction, "slo-good/op"},
		{met, "slo-met"},
	}, ev.Describe()
}
