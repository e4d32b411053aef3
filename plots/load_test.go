package plots

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// dump renders Data as stable text for golden files.
func dump(d *Data) string {
	var b strings.Builder
	fmt.Fprintf(&b, "config: %+v\n", d.Config)
	fmt.Fprintf(&b, "engines: %s\n", strings.Join(d.Engines, " "))
	fmt.Fprintf(&b, "units: %s\n", strings.Join(d.Units, " "))
	for _, u := range d.Units {
		for _, e := range d.Engines {
			for _, p := range d.Series(u, e) {
				fmt.Fprintf(&b, "%s %s c=%d n=%d median=%.6g lo=%.6g hi=%.6g\n", u, e, p.Concurrency, len(p.Samples), p.Median, p.Lo, p.Hi)
			}
		}
	}
	if len(d.RateUnits) > 0 {
		fmt.Fprintf(&b, "rate units: %s\n", strings.Join(d.RateUnits, " "))
	}
	for _, u := range d.RateUnits {
		for _, e := range d.Engines {
			for _, p := range d.RateSeries(u, e) {
				fmt.Fprintf(&b, "%s %s rate=%g n=%d median=%.6g lo=%.6g hi=%.6g\n", u, e, p.Rate, len(p.Samples), p.Median, p.Lo, p.Hi)
			}
		}
	}
	if d.TraceResults > 0 {
		fmt.Fprintf(&b, "trace results: %d\n", d.TraceResults)
	}
	return b.String()
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./plots -run %s -update to create it", t.Name())
	assert.Equal(t, string(want), got)
}

func TestLoadGolden(t *testing.T) {
	tests := []struct {
		name   string
		paths  []string
		golden string
	}{
		// Two per-engine files (engine = file name) give the golden grouping.
		{"per-engine files", []string{"testdata/two/vllm.txt", "testdata/two/friendli.txt"}, "two.golden"},
		// The same samples as one multi-engine go test output (engine = /engine key) give the same data.
		{"multi-engine file", []string{"testdata/two/all.out"}, "two.golden"},
		// Labels name engines regardless of the file name.
		{"labelled files", []string{"vllm=testdata/two/vllm.txt", "friendli=testdata/two/friendli.txt"}, "two.golden"},
		// A simulated run with 3 samples: Simulated set, CI infinite.
		{"simulated", []string{"testdata/sim/sim-vllm-like.txt", "testdata/sim/sim-friendli-like.txt"}, "sim.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Load(tt.paths)
			require.NoError(t, err)
			golden(t, tt.golden, dump(d))
		})
	}
}

// TestLoadMatchesBenchstat checks the summaries against numbers printed by
// `go tool benchstat` on the same files (testdata/two/benchstat.txt holds
// that output). The medians are benchstat's -format csv values; the CI
// half-width is its "± x%" column.
func TestLoadMatchesBenchstat(t *testing.T) {
	d, err := Load([]string{"testdata/two/vllm.txt", "testdata/two/friendli.txt"})
	require.NoError(t, err)
	type want struct {
		median float64
		pct    string
	}
	benchstat := map[string]map[int]want{ // tok/s
		"vllm": {1: {76.42500000000001, "2%"}, 2: {149.1, "1%"}, 4: {274, "2%"}, 8: {486.25, "3%"},
			16: {771.5, "3%"}, 32: {1097.5, "4%"}, 64: {1418, "4%"}},
		"friendli": {1: {92.84, "1%"}, 2: {182.1, "3%"}, 4: {346.15, "6%"}, 8: {646.05, "2%"},
			16: {1149.5, "2%"}, 32: {1825, "3%"}, 64: {2623, "5%"}},
	}
	ttftSec := map[string]map[int]want{ // ttft-p50-sec in benchstat, ns in our data
		"vllm":     {1: {0.032310433, "3%"}, 4: {0.0371582655, "6%"}, 64: {0.1502281675, "3%"}},
		"friendli": {1: {0.023775384500000003, "3%"}, 4: {0.027398235500000003, "2%"}, 64: {0.11089514, "3%"}},
	}
	check := func(unit string, scale float64, table map[string]map[int]want) {
		for engine, levels := range table {
			got := byLevel(d.Series(unit, engine))
			require.Len(t, got, 7, "%s %s", unit, engine)
			for c, w := range levels {
				p := got[c]
				assert.InEpsilon(t, w.median, p.Median*scale, 1e-12, "%s %s c=%d median", unit, engine, c)
				// benchstat's PctRangeString.
				pct := fmt.Sprintf("%.0f%%", 100*math.Max(p.Hi/p.Median-1, 1-p.Lo/p.Median))
				assert.Equal(t, w.pct, pct, "%s %s c=%d CI", unit, engine, c)
				// With 6 samples the 95 % order-statistics CI of the median
				// is [min, max] (P = 1 - 2/2^6 = 0.969; [2nd, 5th] only 0.78).
				require.Len(t, p.Samples, 6)
				assert.Equal(t, slices.Min(p.Samples), p.Lo)
				assert.Equal(t, slices.Max(p.Samples), p.Hi)
			}
		}
	}
	check(UnitTokPerSec, 1, benchstat)
	check(UnitTTFTP50, 1e-9, ttftSec)
}

func TestLoadConfigAndSamples(t *testing.T) {
	d, err := Load([]string{"testdata/two/vllm.txt", "testdata/two/friendli.txt"})
	require.NoError(t, err)
	assert.Equal(t, Config{Model: "test-model", InputTokens: "64", OutputTokens: "128", Workload: "synthetic in=64 out=128 seed=1"}, d.Config)
	assert.Equal(t, []string{"friendli", "vllm"}, d.Engines)
	assert.Equal(t, []int{1, 2, 4, 8, 16, 32, 64}, d.Levels())
	assert.Equal(t, map[string]string{"vllm": "testdata/two/vllm.txt", "friendli": "testdata/two/friendli.txt"}, d.Files)
	// Samples keep file order (benchmath sorts its input: Load gives it a copy).
	first := d.Series(UnitTokPerSec, "vllm")[0]
	assert.Equal(t, []float64{74.99, 74.87, 77.07, 76.20, 76.65, 77.65}, first.Samples)
	// Latencies keep their ns unit and value although benchfmt tidies them to seconds.
	assert.True(t, d.HasUnit("ttft-p50-ns"))
	assert.False(t, d.HasUnit("ttft-p50-sec"))
	assert.Equal(t, 32301786.0, d.Series(UnitTTFTP50, "vllm")[0].Samples[0])

	sim, err := Load([]string{"testdata/sim/sim-vllm-like.txt"})
	require.NoError(t, err)
	assert.True(t, sim.Config.Simulated)
	p := sim.Series(UnitTokPerSec, "sim-vllm-like")[0]
	assert.False(t, p.HasCI(), "3 samples have no finite 95 %% CI")
	lo, hi := sim.SampleRange()
	assert.Equal(t, [2]int{3, 3}, [2]int{lo, hi})
}

func TestLoadSimulatedByName(t *testing.T) {
	tests := []struct {
		engine string
		sim    bool
	}{
		{"vllm-sim", true}, // "-sim" suffix marks a simulated engine.
		{"sim-vllm", true}, // "sim-" prefix too.
		{"simple", false},  // A name merely starting with "sim" does not.
		{"vllm", false},    // A plain name without simulated: true is real.
	}
	for _, tt := range tests {
		t.Run(tt.engine, func(t *testing.T) {
			path := writeFile(t, tt.engine+".txt", "BenchmarkServe/concurrency=1-2\t1\t5 tok/s\n")
			d, err := Load([]string{path})
			require.NoError(t, err)
			assert.Equal(t, tt.sim, d.Config.Simulated)
		})
	}
}

// writeFile writes content to name in a fresh temporary directory.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

func TestLoadMissingLevels(t *testing.T) {
	// Engine b has no result at concurrency 4 and 3 (not a power of two) is
	// a level: b's series simply lacks that point, it is not zero.
	dir := t.TempDir()
	a := filepath.Join(dir, "a.txt")
	b := filepath.Join(dir, "b.txt")
	require.NoError(t, os.WriteFile(a, []byte("BenchmarkServe/concurrency=1-2\t1\t10 tok/s\nBenchmarkServe/concurrency=3-2\t1\t25 tok/s\nBenchmarkServe/concurrency=4-2\t1\t30 tok/s\n"), 0o644))
	require.NoError(t, os.WriteFile(b, []byte("BenchmarkServe/concurrency=1-2\t1\t20 tok/s\nBenchmarkServe/concurrency=3-2\t1\t50 tok/s\n"), 0o644))
	d, err := Load([]string{a, b})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 3, 4}, d.Levels())
	var cs []int
	for _, p := range d.Series(UnitTokPerSec, "b") {
		cs = append(cs, p.Concurrency)
	}
	assert.Equal(t, []int{1, 3}, cs)
	assert.Nil(t, d.Series("ttft-p50-ns", "a"))
}

func TestLoadIgnoresOtherBenchmarks(t *testing.T) {
	// go test stdout may hold micro-benchmarks of the same package; only
	// BenchmarkServe results are plotted, and test chatter is skipped.
	path := writeFile(t, "e.txt", "goos: linux\nBenchmarkParse-2\t1000\t123 ns/op\n"+
		"BenchmarkServe/concurrency=1-2\n--- BENCH: BenchmarkServe\n    log line\n"+
		"BenchmarkServe/concurrency=1-2\t1\t10 tok/s\nPASS\n")
	d, err := Load([]string{path})
	require.NoError(t, err)
	assert.Equal(t, []string{"tok/s"}, d.Units)
	assert.Len(t, d.Series(UnitTokPerSec, "e"), 1)
}

func TestLoadBadInput(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		want  []string // substrings of the error
	}{
		// No paths at all.
		{"no paths", nil, []string{"no input files"}},
		// A file that does not exist is named.
		{"missing file", []string{"testdata/nope.txt"}, []string{"testdata/nope.txt", "no such file"}},
		// A malformed Benchmark line is reported with file:line and benchfmt's reason.
		{"malformed line", []string{"testdata/bad/malformed.txt"}, []string{"testdata/bad/malformed.txt:5:", "iteration count"}},
		// A file with only a header and PASS has no results.
		{"no results", []string{"testdata/bad/noresults.txt"}, []string{"no BenchmarkServe result lines", "testdata/bad/noresults.txt"}},
		// Engines with different units: the line and the first result's line are named, with the difference.
		{"units differ", []string{"testdata/bad/units-a.txt", "testdata/bad/units-b.txt"}, []string{"testdata/bad/units-b.txt:3:", "testdata/bad/units-a.txt:2", "missing tok/s"}},
		// Different models cannot share a chart.
		{"model differs", []string{"testdata/bad/model-a.txt", "testdata/bad/model-b.txt"}, []string{"testdata/bad/model-b.txt:2:", "model", "other-model", "testdata/bad/model-a.txt:2"}},
		// Concurrency 0 would break the log axis.
		{"zero concurrency", []string{"testdata/bad/conc.txt"}, []string{"testdata/bad/conc.txt:3:", "not a positive integer"}},
		// A Serve result without /concurrency.
		{"no concurrency key", []string{"testdata/bad/noconc.txt"}, []string{"testdata/bad/noconc.txt:2:", "/concurrency=N or /rate=R"}},
		// NaN is not a measurement.
		{"NaN value", []string{"testdata/bad/nan.txt"}, []string{"testdata/bad/nan.txt:2:", "tok/s = NaN"}},
		// Nor is a negative rate.
		{"negative value", []string{"testdata/bad/negative.txt"}, []string{"testdata/bad/negative.txt:2:", "tok/s = -500"}},
		// A line cannot be closed and open loop at once.
		{"both keys", []string{writeFile(t, "e.txt", "BenchmarkServe/concurrency=2/rate=4-2\t1\t5 tok/s\n")}, []string{"e.txt:1:", "both /concurrency and /rate"}},
		// A rate must be a positive, finite number of requests/s.
		{"zero rate", []string{writeFile(t, "e.txt", "BenchmarkServe/rate=0-2\t1\t5 tok/s\n")}, []string{"e.txt:1:", `rate "0" is not a positive number`}},
		// Not a number at all.
		{"rate not a number", []string{writeFile(t, "e.txt", "BenchmarkServe/rate=fast-2\t1\t5 tok/s\n")}, []string{`rate "fast"`}},
		// Infinity parses but is no rate.
		{"infinite rate", []string{writeFile(t, "e.txt", "BenchmarkServe/rate=Inf-2\t1\t5 tok/s\n")}, []string{`rate "Inf"`}},
		// Open-loop lines must agree with each other on their units.
		{"open-loop units differ", []string{writeFile(t, "e.txt", openLine("2", 2, 30, 31)+"BenchmarkServe/rate=4-2\t1\t1000 ns/op\t0 errors/op\t5 tok/s\n")}, []string{"e.txt:2:", "units differ from", "e.txt:1", "missing late/op"}},
		// Results of different SLOs cannot share the SLO marks.
		{"slo differs", []string{writeFile(t, "a.txt", "slo: ttft-p99=1s\nBenchmarkServe/concurrency=1-2\t1\t5 tok/s\n"), writeFile(t, "b.txt", "slo: ttft-p99=2s\nBenchmarkServe/concurrency=1-2\t1\t5 tok/s\n")}, []string{"b.txt:2:", `slo is "ttft-p99=2s" but "ttft-p99=1s"`}},
		// Only trace replays: nothing any chart draws.
		{"trace only", []string{writeFile(t, "e.txt", "BenchmarkServe/trace=1x-2\t1\t5 tok/s\n")}, []string{"only trace replay (trace=SPEEDx) results", "1 lines"}},
		// The same engine twice would double its samples silently.
		{"engine twice", []string{"testdata/two/all.out", "testdata/two/vllm.txt"}, []string{"testdata/two/vllm.txt:10:", `engine "vllm" already read from testdata/two/all.out`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Load(tt.paths)
			require.Error(t, err)
			assert.Nil(t, d)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// FuzzLoad checks that reading arbitrary content never panics, and that
// whatever loads can be turned into charts without panicking either.
func FuzzLoad(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*/*.txt")
	require.NoError(f, err)
	sort.Strings(seeds)
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte("BenchmarkServe/concurrency=1-2\t1\t1e308 tok/s\t0 tpot-p50-ns\t0 ttft-p50-ns\n"))
	f.Add([]byte("BenchmarkServe/engine=/concurrency=99999999999999999999-2\t1\t1 tok/s\n"))
	f.Add([]byte("Unit tok/s better=higher\nBenchmarkServe/concurrency=1-2\t1\t5 tok/s\n"))
	f.Add([]byte(openLine("2", 1.9, 30, 31) + openLine("1e-300", 1, 0, 1e300) + "BenchmarkServe/trace=2x-2\t1\t5 tok/s\n"))
	f.Add([]byte("slo: a\nBenchmarkServe/concurrency=1-2\t1\t5 tok/s\t0 goodput-req/s\t1 slo-met\t0 tpot-p90-ns\n" + openLine("3", 0, 0, 0)))
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(t.TempDir(), "e.txt")
		require.NoError(t, os.WriteFile(path, content, 0o644))
		d, err := Load([]string{path})
		if err != nil {
			assert.NotEmpty(t, err.Error())
			return
		}
		require.NotEmpty(t, d.Engines)
		_, _, _ = figures(d)
	})
}

// TestLoadLatencyMissingWhereAllFailed: a sample in which every request
// failed has no latency units on its line; it is read, and only the
// latency points it lacks are missing.
func TestLoadLatencyMissingWhereAllFailed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "e.txt")
	require.NoError(t, os.WriteFile(path, []byte("model: m\n"+
		"BenchmarkServe/concurrency=1-2\t60\t1000000 ns/op\t0 errors/op\t500 tok/s\t30000000 ttft-p50-ns\n"+
		"BenchmarkServe/concurrency=2-2\t60\t1000000 ns/op\t1 errors/op\t0 tok/s\n"), 0o644))
	d, err := Load([]string{path})
	require.NoError(t, err)
	assert.True(t, d.HasUnit("ttft-p50-ns"))
	assert.Len(t, d.Series("ttft-p50-ns", "e"), 1)
	assert.Len(t, d.Series("tok/s", "e"), 2)
}

// openLine is a rate=R result line with the units the suite writes on an
// open-loop sample (client cost left off, as on a sample whose window it
// could not measure).
func openLine(rate string, achieved, ttftMs, queuedMs float64) string {
	return fmt.Sprintf("BenchmarkServe/rate=%s-2\t40\t1000000 ns/op\t%g achieved-req/s\t0 errors/op\t5e5 lag-p50-ns\t0.1 late/op\t%g queued-ttft-p50-ns\t2 req/s\t2 scheduled-req/s\t256 tok/s\t%g ttft-p50-ns\n",
		rate, achieved, queuedMs*1e6, ttftMs*1e6)
}

func TestLoadOpenLoop(t *testing.T) {
	tests := []struct {
		name    string
		content string
		rates   []float64
		levels  []int
		// achieved are engine e's medians of achieved-req/s by rate.
		achieved map[float64]float64
		traces   int
	}{
		// Open-loop lines only: on the old code Load skipped every rate=R line and failed with "no BenchmarkServe result lines".
		{"rate lines only", "arrival: poisson\n" + openLine("2", 1.9, 30, 31) + openLine("8", 7, 40, 90) + openLine("2", 2.1, 32, 33) + openLine("0.5", 0.5, 20, 20),
			[]float64{0.5, 2, 8}, nil, map[float64]float64{0.5: 0.5, 2: 2, 8: 7}, 0},
		// Closed- and open-loop lines side by side: each kind keeps its own unit set.
		{"both kinds", "BenchmarkServe/concurrency=4-2\t10\t1000 ns/op\t0 errors/op\t100 tok/s\t3e7 ttft-p50-ns\n" + openLine("2", 1.9, 30, 31),
			[]float64{2}, []int{4}, map[float64]float64{2: 1.9}, 0},
		// A trace replay has neither a concurrency nor a rate: counted, not plotted (the old code failed: no /concurrency=N key).
		{"trace replay", "BenchmarkServe/trace=2x-2\t40\t1000 ns/op\t1 achieved-req/s\t5 tok/s\n" + openLine("2", 2, 30, 31),
			[]float64{2}, nil, map[float64]float64{2: 2}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Load([]string{writeFile(t, "e.txt", tt.content)})
			require.NoError(t, err)
			assert.Equal(t, tt.rates, d.Rates())
			assert.Equal(t, tt.levels, nilIfEmpty(d.Levels()))
			got := map[float64]float64{}
			for _, p := range d.RateSeries(UnitAchieved, "e") {
				assert.Zero(t, p.Concurrency, "an open-loop point has no concurrency")
				got[p.Rate] = p.Median
			}
			assert.Equal(t, tt.achieved, got)
			assert.Equal(t, tt.traces, d.TraceResults)
			assert.True(t, d.HasRateUnit(UnitQueuedTTFT50))
			assert.False(t, d.HasUnit(UnitAchieved), "open-loop units stay out of the closed-loop series")
			assert.NotContains(t, d.Units, UnitAchieved)
			assert.Contains(t, d.RateUnits, UnitAchieved)
		})
	}
}

func nilIfEmpty(s []int) []int {
	if len(s) == 0 {
		return nil
	}
	return s
}

// TestLoadSLOTestdata reads the checked-in -slo run (testdata/slo): both
// kinds of line, the run's SLO and arrival, and each kind's samples.
func TestLoadSLOTestdata(t *testing.T) {
	d, err := Load([]string{"testdata/slo/vllm.txt", "testdata/slo/friendli.txt"})
	require.NoError(t, err)
	assert.Equal(t, "ttft-p99=150ms,tpot-p99=40ms", d.Config.SLO)
	assert.Equal(t, "poisson", d.Config.Arrival)
	assert.Equal(t, []int{1, 2, 4, 8, 16, 32, 64}, d.Levels())
	assert.Equal(t, []float64{2, 4, 6, 8, 12}, d.Rates())
	lo, hi := d.RateSampleRange()
	assert.Equal(t, [2]int{6, 6}, [2]int{lo, hi})
	for _, u := range []string{UnitGoodput, UnitSLOMet, UnitTokPerSec} {
		assert.True(t, d.HasUnit(u), u)
		assert.True(t, d.HasRateUnit(u), u)
	}
	for _, u := range []string{UnitAchieved, UnitScheduled, UnitQueuedTTFT50, "queued-ttft-p99-ns", "queued-e2e-p99-ns"} {
		assert.True(t, d.HasRateUnit(u), u)
		assert.False(t, d.HasUnit(u), u)
	}
	// friendli missed the SLO in one of its six samples at concurrency 32.
	met := byLevel(d.Series(UnitSLOMet, "friendli"))[32]
	require.Len(t, met.Samples, 6)
	assert.Equal(t, 5.0, met.Samples[0]+met.Samples[1]+met.Samples[2]+met.Samples[3]+met.Samples[4]+met.Samples[5])
}

func TestLoadOptionalUnits(t *testing.T) {
	base := "BenchmarkServe/concurrency=1-2\t10\t1000 ns/op\t0 errors/op\t100 tok/s"
	tests := []struct {
		name  string
		extra string // units on the first line only
		want  string // "" to load, else a substring of the error
	}{
		// The client's own cost is missing where the suite could not measure it (an empty window); on the old code: "units differ".
		{"client cost", "\t0.02 client-cpu-frac\t40000 client-cpu-ns/tok\t0 client-queued-frac", ""},
		// Cached-prompt fraction: only where the server reports cached tokens.
		{"cached prompt", "\t0.5 cached-prompt-frac", ""},
		// The simulator checks: only on simulated runs with a prediction.
		{"vs model", "\t1.01 tok/s-vs-model", ""},
		// Latencies: missing where every request failed.
		{"latency", "\t3e7 ttft-p50-ns", ""},
		// Anything else is a different kind of result.
		{"goodput on one line only", "\t3 goodput-req/s", "missing goodput-req/s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "e.txt", base+tt.extra+"\n"+base+"\n")
			d, err := Load([]string{path})
			if tt.want != "" {
				assert.ErrorContains(t, err, tt.want)
				return
			}
			require.NoError(t, err)
			assert.Len(t, d.Series(UnitTokPerSec, "e")[0].Samples, 2)
		})
	}
}

// TestLoadReadsTheCompanion: a results folder has <engine>.txt (the
// headline metrics) and <engine>.all.txt (every metric of the same lines).
// Given the .txt, the .all.txt, or both (a glob), Load reads the engine
// once, from the companion, under the engine's own name; a .txt without a
// companion (go test output, or older results) is read as it is.
func TestLoadReadsTheCompanion(t *testing.T) {
	dir := t.TempDir()
	const hdr = "model: m\n"
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(hdr+body), 0o644))
		return p
	}
	txt := write("e.txt", "BenchmarkServe/concurrency=1-2\t4\t100 tok/s\t5e7 ttft-p50-ns\n")
	all := write("e.all.txt", "BenchmarkServe/concurrency=1-2\t4\t100 tok/s\t5e7 ttft-p50-ns\t9 req/s\n")
	lone := write("f.txt", "BenchmarkServe/concurrency=1-2\t4\t80 tok/s\n")
	for _, tt := range []struct {
		name  string
		paths []string
	}{
		{"the .txt: its companion is read", []string{txt}},
		{"the companion alone", []string{all}},
		{"both, as a glob gives them", []string{all, txt}},
		{"a label is kept", []string{"e=" + txt}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Load(tt.paths)
			require.NoError(t, err)
			assert.Equal(t, []string{"e"}, d.Engines)
			assert.True(t, d.HasUnit(UnitReqPerSec), "req/s, on the companion's line only")
			require.Len(t, d.Series(UnitTokPerSec, "e"), 1)
			assert.Len(t, d.Series(UnitTokPerSec, "e")[0].Samples, 1, "each line read once")
		})
	}
	d, err := Load([]string{lone})
	require.NoError(t, err)
	assert.Equal(t, []string{"f"}, d.Engines)
	assert.False(t, d.HasUnit(UnitReqPerSec))
}

// TestLoadPathWithEquals: a results folder whose name holds a "="
// (go test names a subtest's folder concurrency=1...) is read when its
// files are given as Labeled; given bare, the "=" is taken for a label's.
func TestLoadPathWithEquals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "concurrency=1")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	p := filepath.Join(dir, "e.txt")
	require.NoError(t, os.WriteFile(p, []byte("model: m\nBenchmarkServe/concurrency=1-2\t4\t100 tok/s\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "e.all.txt"), []byte("model: m\nBenchmarkServe/concurrency=1-2\t4\t100 tok/s\t9 req/s\n"), 0o644))
	d, err := Load([]string{Labeled(p)})
	require.NoError(t, err)
	assert.Equal(t, []string{"e"}, d.Engines)
	assert.True(t, d.HasUnit(UnitReqPerSec), "the companion, found beside a path with a =")
	_, err = Load([]string{p})
	assert.Error(t, err, "a bare path with a = is a label and a path that does not exist")
}
