package report

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testPNG is a small, valid PNG.
func testPNG(t *testing.T) []byte {
	t.Helper()
	im := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for x := range 40 {
		im.Set(x, x%30, color.RGBA{0, 0x72, 0xB2, 0xFF})
	}
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, im))
	return b.Bytes()
}

func charts(t *testing.T) []Image {
	p := testPNG(t)
	return []Image{{"throughput.png", "Throughput", p}, {"latency.png", "Latency", p}, {"pareto.png", "Pareto", p}}
}

func TestHTMLIsSelfContained(t *testing.T) {
	f := build(t, 6)
	f.Engines[0].URL = "http://redacted@127.0.0.1:1/v1/chat/completions"
	b, err := HTML(f, charts(t))
	require.NoError(t, err)
	page := string(b)
	assert.Equal(t, 3, strings.Count(page, `src="data:image/png;base64,`), "every chart inline")
	assert.NotRegexp(t, `(src|href)="https?:`, page, "nothing loads from the network")
	assert.Contains(t, page, "default-src 'none'", "the CSP forbids network loads")
	assert.Contains(t, page, `<table id="summary">`)
	tbody := page[strings.Index(page, "<tbody>"):strings.Index(page, "</tbody>")]
	assert.Equal(t, len(f.Rows()), strings.Count(tbody, "<tr"), "one body row per engine and level")
	assert.Contains(t, page, "usage: reported on the final chunk", "conformance facts")
	assert.Contains(t, page, "no conformance checks were recorded", "and their absence")
	assert.Contains(t, page, "SIMULATED ENGINES")
	for _, d := range Definitions {
		assert.Contains(t, page, "<dt>"+d.Name+"</dt>")
	}
}

// chromium returns the headless browser to test with, skipping the test
// when there is none unless INFERBENCH_REQUIRE_BROWSER is set (.ci/run
// sets it after installing chromium, so CI never skips).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("INFERBENCH_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("INFERBENCH_REQUIRE_BROWSER") != "" {
		t.Fatal("INFERBENCH_REQUIRE_BROWSER is set but no chromium was found (apt-get install -y chromium, or set INFERBENCH_CHROMIUM)")
	}
	t.Skip("no chromium on PATH: the browser test of report.html is skipped (.ci/run installs chromium and runs it)")
	return ""
}

// rendered is what the page's script found once loaded.
type rendered struct{ images, rows int }

// render loads path in headless Chromium and reads the attributes the
// page's load handler sets on <body> from the dumped DOM.
func render(t *testing.T, browser, path string) rendered {
	t.Helper()
	abs, err := filepath.Abs(path)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", "file://"+abs)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "chromium: %s", stderr.String())
	body := regexp.MustCompile(`<body[^>]*>`).Find(out)
	require.NotNil(t, body, "no <body> in the dumped DOM: %.500s", out)
	attr := func(name string) int {
		m := regexp.MustCompile(name + `="(\d+)"`).FindSubmatch(body)
		require.NotNil(t, m, "the page's load handler did not set %s: %s", name, body)
		n, err := strconv.Atoi(string(m[1]))
		require.NoError(t, err)
		return n
	}
	require.Equal(t, 1, attr("data-ready"), "the load handler did not run: %s", body)
	return rendered{images: attr("data-images-loaded"), rows: attr("data-table-rows")}
}

// TestReportRendersInBrowser loads report.html in headless Chromium and
// checks that the table has its rows and every chart decoded
// (naturalWidth > 0). A corrupt image must count as not rendered, or the
// check could not fail.
func TestReportRendersInBrowser(t *testing.T) {
	browser := chromium(t)
	f := build(t, 2)
	good := charts(t)
	broken := append([]Image(nil), good...)
	broken[1].PNG = []byte("not a png")
	tests := []struct {
		name   string
		images []Image
		want   rendered
	}{
		// Three valid charts and the four rows (two engines × two levels).
		{"valid", good, rendered{images: 3, rows: 4}},
		// One chart's bytes are not an image: the browser decodes two.
		{"one corrupt chart", broken, rendered{images: 2, rows: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "report.html")
			require.NoError(t, WriteHTML(path, f, tt.images))
			assert.Equal(t, tt.want, render(t, browser, path))
		})
	}
}

// TestRunReportRendersInBrowser checks a run's own report.html, named by
// INFERBENCH_REPORT_HTML (.ci/run points it at its smoke run's), against
// the summary.json beside it: every table row and three charts rendered.
func TestRunReportRendersInBrowser(t *testing.T) {
	path := os.Getenv("INFERBENCH_REPORT_HTML")
	if path == "" {
		t.Skip("INFERBENCH_REPORT_HTML not set: no run's report to check")
	}
	browser := chromium(t)
	f, err := Read(filepath.Join(filepath.Dir(path), "summary.json"))
	require.NoError(t, err)
	got := render(t, browser, path)
	assert.Equal(t, rendered{images: 3, rows: len(f.Rows())}, got, fmt.Sprintf("%s in Chromium", path))
}
