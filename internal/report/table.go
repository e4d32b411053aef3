package report

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// Row is one line of the summary table: an engine at a level.
type Row struct {
	Concurrency int
	Engine      string
	Samples     int
	Requests    int
	// TokPerSec is the median steady-state output tok/s over samples, and
	// TokCI its 95 % CI as ±percent ("" when fewer than 6 samples).
	TokPerSec float64
	TokCI     string
	TTFTP50   string
	TTFTP99   string
	TPOTP50   string
	ITLP50    string
	Errors    string
	// VsBase is the tok/s ratio to the first engine with its test ("" for
	// the first engine and single-engine runs).
	VsBase string
}

// Rows turns the pooled statistics into table rows: level by level, the
// engines in run order.
func (f *File) Rows() []Row {
	var rows []Row
	for _, c := range f.Levels {
		for _, e := range f.Engines {
			p, ok := f.Find(e.Name, c)
			if !ok {
				continue
			}
			r := Row{
				Concurrency: c, Engine: e.Name, Samples: p.Samples, Requests: p.Requests,
				TokPerSec: p.OutputTokPerSec.Median, TokCI: pctCI(p.OutputTokPerSec),
				TTFTP50: median(p.TTFT), TTFTP99: p.TTFT.P99.String(),
				TPOTP50: median(p.TPOT), ITLP50: median(p.ITL),
				Errors: errorsCell(p),
			}
			if cm, ok := f.Comparison(e.Name, c, "tok/s"); ok {
				r.VsBase = vsCell(cm)
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func median(d PooledDist) string {
	if d.N == 0 {
		return "—"
	}
	return Dur(d.P50.Value)
}

func pctCI(c Center) string {
	if c.Lo == nil || c.Hi == nil || c.Median == 0 {
		return ""
	}
	return fmt.Sprintf("±%.0f%%", 100*math.Max(c.Median-*c.Lo, *c.Hi-c.Median)/c.Median)
}

func errorsCell(p Pooled) string {
	if p.Failed == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%.1f%%)", p.Failed, 100*p.ErrorRate)
}

// vsCell is "×1.83 p=0.002" (significant), "×1.02 ~ p=0.40" (not), or
// "×1.83 (no test: n<4)" when too few samples allow a test, as benchstat
// decides.
func vsCell(cm Comparison) string {
	r := "×" + ratioString(cm.Ratio)
	switch {
	case min(cm.N, cm.BaseN) < 4 && !cm.Significant:
		return r + " (no test: n<4)"
	case cm.Significant:
		return fmt.Sprintf("%s p=%.3f", r, cm.P)
	default:
		return fmt.Sprintf("%s ~ p=%.2f", r, cm.P)
	}
}

func ratioString(r float64) string {
	if r >= 9.95 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.2f", r)
}

// WriteTable writes the summary table as '#' lines (benchfmt ignores them,
// so stdout stays valid benchmark output), readable at 80–120 columns.
func (f *File) WriteTable(w io.Writer) error {
	rows := f.Rows()
	if len(rows) == 0 {
		// The table pools closed-loop levels; open-loop (rate=R), trace and
		// capacity samples are on their result lines only.
		_, err := io.WriteString(w, "# summary: no closed-loop (concurrency=N) sample finished; open-loop, trace and capacity samples are on their result lines\n")
		return err
	}
	vs := ""
	if len(f.Engines) > 1 {
		vs = "tok/s vs " + f.Engines[0].Name
	}
	cells := [][]string{{"C", "engine", "reqs", "tok/s", "", "TTFT p50", "TTFT p99 [95% CI]", "TPOT p50", "ITL p50", "errors", vs}}
	prev := 0
	for _, r := range rows {
		c := ""
		if r.Concurrency != prev {
			c = fmt.Sprint(r.Concurrency)
			prev = r.Concurrency
		}
		cells = append(cells, []string{c, r.Engine, fmt.Sprint(r.Requests), fmt.Sprintf("%.0f", r.TokPerSec), r.TokCI,
			r.TTFTP50, r.TTFTP99, r.TPOTP50, r.ITLP50, r.Errors, r.VsBase})
	}
	left := map[int]bool{1: true, 10: true} // engine and vs read left to right
	var b bytes.Buffer
	writeColumns(&b, cells, left)
	var out strings.Builder
	samples := sampleRange(rows)
	fmt.Fprintf(&out, "# summary: %s per level; tok/s is the median over samples (±: 95 %% CI, needs ≥ 6);\n", samples)
	out.WriteString("# latencies pool every measured request of every sample; a p99 is shown only when its 95 % CI exists (n ≥ 368)\n")
	out.Write(b.Bytes())
	if len(f.Engines) > 1 {
		out.WriteString("# vs: ratio of median tok/s; p: Mann-Whitney U test, as benchstat's (p < 0.05 needs ≥ 4 samples\n")
		out.WriteString("# per engine: -count=4 or more); ~: no significant difference at 0.05\n")
	}
	_, err := io.WriteString(w, out.String())
	return err
}

func sampleRange(rows []Row) string {
	lo, hi := math.MaxInt, 0
	for _, r := range rows {
		lo, hi = min(lo, r.Samples), max(hi, r.Samples)
	}
	if lo == hi {
		if lo == 1 {
			return "1 sample"
		}
		return fmt.Sprintf("%d samples", lo)
	}
	return fmt.Sprintf("%d–%d samples", lo, hi)
}

// writeColumns writes cells as '#' lines, columns two spaces apart, right
// aligned (numbers) except the columns in left.
func writeColumns(b *bytes.Buffer, cells [][]string, left map[int]bool) {
	var widths []int
	for _, row := range cells {
		for i, c := range row {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range cells {
		var l strings.Builder
		l.WriteString("#")
		for i, c := range row {
			if widths[i] == 0 {
				continue
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			l.WriteString("  ")
			if left[i] {
				l.WriteString(c + pad)
			} else {
				l.WriteString(pad + c)
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
}
