package plots

import (
	"testing"
)

// BenchmarkLoad measures reading and summarising the two-engine test data
// (168 result lines, 12 units each), reported as result lines per second.
func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		if _, err := Load(twoFiles); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*2*7*6)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkRender measures drawing the three 1209×756 charts into memory.
func BenchmarkRender(b *testing.B) {
	d, err := Load(twoFiles)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := Render(d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(3*b.N)/b.Elapsed().Seconds(), "charts/s")
}
