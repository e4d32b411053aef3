package suite

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// HeadlineUnits are the units of a result line in <engine>.txt, the file
// benchstat compares, in this order: what a user comparing two engines
// reads first (throughput, then the latencies, then the failures, then
// what an SLO or a capacity search adds). A line carries those its sample
// has (a p99 only where the sample bounds it; goodput only with -slo).
// The other units, the diagnostics and self-checks (ns/op, req/s, the
// client's own cost, the *-vs-model ratios, the p90/p95 tails, the open
// loop's schedule figures), are on the same-named line of the companion
// file <engine>.all.txt, which carries every metric of the sample: the
// headline ones first, then the rest. The plots read it in place of
// <engine>.txt where it exists.
var HeadlineUnits = []string{
	"tok/s",
	"ttft-p50-ns", "ttft-p99-ns",
	"tpot-p50-ns", "itl-p50-ns",
	"e2e-p50-ns",
	"errors/op",
	"goodput-req/s",
	"capacity-req/s",
}

// headlineRank is a unit's place in HeadlineUnits, or -1.
func headlineRank(unit string) int { return slices.Index(HeadlineUnits, unit) }

// Headline is the part of ms that goes on the main result line, in
// HeadlineUnits' order.
func Headline(ms []Metric) []Metric {
	var out []Metric
	for _, m := range ms {
		if headlineRank(m.Unit) >= 0 {
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b Metric) int { return headlineRank(a.Unit) - headlineRank(b.Unit) })
	return out
}

// diagnostics is the rest of ms, ns/op first, then by unit (the order
// testing prints a benchmark's metrics in).
func diagnostics(ms []Metric) []Metric {
	var out []Metric
	for _, m := range ms {
		// ns/op 0 (no request completed in the window) is left off, as
		// testing leaves it off: a 0 would read as a measurement.
		if headlineRank(m.Unit) < 0 && (m.Unit != "ns/op" || m.Value != 0) {
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b Metric) int {
		switch {
		case a.Unit == b.Unit:
			return 0
		case a.Unit == "ns/op":
			return -1
		case b.Unit == "ns/op":
			return 1
		}
		return strings.Compare(a.Unit, b.Unit)
	})
	return out
}

// resultLines renders one sample's result as its line of <engine>.txt
// (the headline metrics) and its line of <engine>.all.txt (every metric),
// both named BenchmarkServe/<name>-<procs> with the measured requests as
// the iteration count. The numbers are formatted as testing prints them,
// digit for digit (formatLine).
func resultLines(name string, procs, iters int, ms []Metric) (line, all string) {
	return namedLines(fmt.Sprintf("%s/%s-%d", benchParent, name, procs), iters, ms)
}

// namedLines is resultLines for a full benchmark name.
func namedLines(full string, iters int, ms []Metric) (line, all string) {
	head := Headline(ms)
	return formatLine(full, iters, head), formatLine(full, iters, append(head, diagnostics(ms)...))
}

// formatLine is a benchmark result line as testing.BenchmarkResult.String
// writes it (the iteration count in %8d, each value by prettyPrint), but
// with the metrics in the order given rather than ns/op first and the
// rest sorted: benchstat shows its tables in the order units first appear.
func formatLine(name string, iters int, ms []Metric) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\t%8d", name, iters)
	for _, m := range ms {
		b.WriteByte('\t')
		prettyPrint(&b, m.Value, m.Unit)
	}
	return b.String()
}

// prettyPrint is testing's own (src/testing/benchmark.go): the number of
// decimals falls as the magnitude grows, so a column of values lines up.
// TestFormatLineMatchesTesting pins it to testing.BenchmarkResult.String.
func prettyPrint(w io.Writer, x float64, unit string) {
	var format string
	switch y := math.Abs(x); {
	case y == 0 || y >= 999.95:
		format = "%10.0f %s"
	case y >= 99.995:
		format = "%12.1f %s"
	case y >= 9.9995:
		format = "%13.2f %s"
	case y >= 0.99995:
		format = "%14.3f %s"
	case y >= 0.099995:
		format = "%15.4f %s"
	case y >= 0.0099995:
		format = "%16.5f %s"
	case y >= 0.00099995:
		format = "%17.6f %s"
	default:
		format = "%18.7f %s"
	}
	fmt.Fprintf(w, format, x, unit)
}
