package suite

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFormatLineMatchesTesting: a line of one metric formats its number
// exactly as testing.BenchmarkResult.String does, over magnitudes from
// 1e-9 to 1e12 and each of prettyPrint's boundaries, so a result file
// and go test's own output agree digit for digit.
func TestFormatLineMatchesTesting(t *testing.T) {
	t.Parallel()
	values := []float64{0, 1e-9, 0.00099995, 0.0009999, 0.0099995, 0.099995, 0.99995, 9.9995, 99.995, 999.95, 999.949, 1e12, -3.5}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		values = append(values, math.Pow(10, rng.Float64()*21-9))
	}
	for _, v := range values {
		want := testing.BenchmarkResult{N: 7, Extra: map[string]float64{"ns/op": 0, "x/s": v}}.String()
		got := formatLine("B", 7, []Metric{{v, "x/s"}})
		require.Equal(t, "B\t"+want, got, "value %g", v)
	}
}

// TestResultLinesLeadWithTheHeadline: <engine>.txt's line has the headline
// units in HeadlineUnits' order and nothing else; the .all.txt line has
// the same first, then ns/op, then the rest by unit; ns/op 0 is left off.
func TestResultLinesLeadWithTheHeadline(t *testing.T) {
	t.Parallel()
	ms := []Metric{
		{2.5e6, "ns/op"}, {400, "req/s"}, {0, "errors/op"}, {3e7, "e2e-p50-ns"},
		{1000, "tok/s"}, {1.01, "tok/s-vs-model"}, {2e6, "ttft-p99-ns"}, {1e6, "ttft-p50-ns"},
		{0.03, "client-cpu-frac"}, {1.5e6, "ttft-p90-ns"}, {2e5, "tpot-p50-ns"}, {1.9e5, "itl-p50-ns"},
	}
	line, all := resultLines("concurrency=4", 2, 12, ms)
	units := func(l string) []string {
		var us []string
		for _, f := range strings.Split(l, "\t")[2:] {
			us = append(us, strings.Fields(f)[1])
		}
		return us
	}
	assert.True(t, strings.HasPrefix(line, "BenchmarkServe/concurrency=4-2\t      12\t"), line)
	assert.Equal(t, []string{"tok/s", "ttft-p50-ns", "ttft-p99-ns", "tpot-p50-ns", "itl-p50-ns", "e2e-p50-ns", "errors/op"}, units(line))
	assert.Equal(t, append(units(line), "ns/op", "client-cpu-frac", "req/s", "tok/s-vs-model", "ttft-p90-ns"), units(all))

	ms[0].Value = 0 // nothing completed in the window
	_, all = resultLines("concurrency=4", 2, 12, ms)
	assert.NotContains(t, all, "ns/op")
}
