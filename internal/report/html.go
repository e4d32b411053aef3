package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"strings"
)

// Image is a chart to embed in the report.
type Image struct {
	// Name is the file name (throughput.png); Title the caption.
	Name, Title string
	// PNG is the encoded image.
	PNG []byte
}

// Definition is one metric's definition, as the report lists it.
type Definition struct{ Name, Meaning string }

// Definitions are the metrics' definitions (docs/metrics.md, in short).
var Definitions = []Definition{
	{"tok/s", "Steady-state output throughput: output tokens whose arrival falls inside the measured window (first measured send → last measured end, during which C requests are in flight), from any request, ÷ the window."},
	{"total-tok/s", "(Prompt tokens of requests whose first token arrived in the window + the output tokens above) ÷ the window."},
	{"req/s", "Requests of any phase that succeeded and ended inside the window ÷ the window; req/s × output tokens per request = tok/s."},
	{"full-run tok/s", "Output tokens of all measured requests ÷ (last measured end − first measured send): vLLM's and AIPerf's output throughput, ramp and drain included (summary.json only)."},
	{"TTFT", "Send → first chunk with non-empty content or reasoning; role-only and usage-only chunks never count."},
	{"TPOT", "(E2E − TTFT) ÷ (output tokens − 1), one value per request (vLLM's TPOT; AIPerf's and guidellm's ITL)."},
	{"ITL", "Gap between consecutive content chunks ÷ the tokens of the later chunk, one value per token, pooled over requests."},
	{"E2E", "Send → last content chunk (the usage frame and [DONE] do not extend it)."},
	{"queued TTFT, queued E2E", "The same from the instant the load generator meant to send (client-side queueing shows; summary.json)."},
	{"errors", "Failed measured requests (connect, timeout, http-status, stream-cut, malformed-event, empty-output, length-mismatch), counted, never dropped."},
	{"p50 … p99", "Percentiles by linear interpolation between order statistics (numpy's default, as vLLM). A tail (p90, p95, p99) is reported only when its sample supports it: when an equal-tailed, distribution-free 95 % confidence interval (order statistics chosen by the binomial distribution) exists inside the sample — n ≥ 36 for p90, 72 for p95, 368 for p99."},
	{"pooled", "Latencies pool every measured request of every sample of an engine at a level (read back from the JSONL records); throughputs are the median over samples with benchstat's 95 % CI (needs ≥ 6 samples)."},
	{"vs", "Ratio of the median tok/s to the first engine's, with the Mann-Whitney U test benchstat runs (p < 0.05 needs ≥ 4 samples per engine)."},
}

// page is what the template renders.
type page struct {
	F       *File
	Rows    []Row
	Images  []img
	Defs    []Definition
	Config  []kv
	VsTitle string
}

type img struct {
	Name, Title string
	Src         template.URL
}

type kv struct{ K, V string }

// HTML renders the self-contained report: the summary table, the charts
// embedded as data: URIs, each engine's preflight and conformance facts and
// the metric definitions. It loads nothing from the network (its Content
// Security Policy forbids it) and sets data-images-loaded and
// data-table-rows on <body> once loaded, for a browser test to read.
func HTML(f *File, images []Image) ([]byte, error) {
	p := page{F: f, Rows: f.Rows(), Defs: Definitions}
	if len(f.Engines) > 1 {
		p.VsTitle = "tok/s vs " + f.Engines[0].Name
	}
	for _, im := range images {
		p.Images = append(p.Images, img{Name: im.Name, Title: im.Title,
			Src: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(im.PNG))})
	}
	for _, k := range []string{"model", "input-tokens", "output-tokens", "workload"} {
		if v, ok := f.Run.Config[k]; ok {
			p.Config = append(p.Config, kv{k, v})
		}
	}
	var b bytes.Buffer
	if err := reportTemplate.Execute(&b, p); err != nil {
		return nil, fmt.Errorf("report.html: %w", err)
	}
	return b.Bytes(), nil
}

// WriteHTML writes HTML(f, images) to path atomically.
func WriteHTML(path string, f *File, images []Image) error {
	b, err := HTML(f, images)
	if err != nil {
		return err
	}
	return writeAtomic(path, b)
}

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"join": strings.Join,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>inferbench report{{if .F.Run.Simulated}} (SIMULATED){{end}}</title>
<style>
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1250px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.sim { background: #fde8e8; color: #a00; font-weight: bold; padding: .5em 1em; border-radius: 4px; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { padding: .25em .7em; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
tr.first td { border-top: 2px solid #ccc; }
.meta td { text-align: left; white-space: normal; } .meta td:first-child { color: #555; white-space: nowrap; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
code, .mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .9em; }
dt { font-weight: bold; margin-top: .5em; } dd { margin-left: 1.5em; }
.note { color: #555; font-size: .9em; }
</style>
</head>
<body data-ready="0">
<h1>inferbench report</h1>
<p class="note">Run {{.F.Run.Started.Format "2006-01-02 15:04:05 MST"}} on {{.F.Run.Host}} · {{.F.Run.GoVersion}} {{.F.Run.GOOS}}/{{.F.Run.GOARCH}} GOMAXPROCS={{.F.Run.GOMAXPROCS}} · suite {{.F.Run.SuiteVersion}}</p>
{{if .F.Run.Simulated}}<p class="sim">SIMULATED ENGINES: these numbers come from inferbench's simulated engine, not from real inference engines.</p>{{end}}
{{if .F.Run.Interrupted}}<p class="sim">The run was interrupted: only the finished samples are shown.</p>{{end}}

<h2>Summary</h2>
<table id="summary">
<thead><tr><th>C</th><th class="l">engine</th><th>samples</th><th>requests</th><th>tok/s</th><th>±95 % CI</th><th>TTFT p50</th><th>TTFT p99 [95 % CI]</th><th>TPOT p50</th><th>ITL p50</th><th>errors</th>{{if .VsTitle}}<th class="l">{{.VsTitle}}</th>{{end}}</tr></thead>
<tbody>
{{range $i, $r := .Rows}}<tr{{if eq $r.Engine (index $.F.Engines 0).Name}} class="first"{{end}}><td>{{$r.Concurrency}}</td><td class="l">{{$r.Engine}}</td><td>{{$r.Samples}}</td><td>{{$r.Requests}}</td><td>{{printf "%.0f" $r.TokPerSec}}</td><td>{{$r.TokCI}}</td><td>{{$r.TTFTP50}}</td><td>{{$r.TTFTP99}}</td><td>{{$r.TPOTP50}}</td><td>{{$r.ITLP50}}</td><td>{{$r.Errors}}</td>{{if $.VsTitle}}<td class="l">{{$r.VsBase}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
<p class="note">{{.F.Rules.SampleSize}} {{.F.Rules.Tails}}</p>

<h2>Charts</h2>
{{range .Images}}<figure><img id="{{.Name}}" alt="{{.Title}}" src="{{.Src}}"><figcaption class="note">{{.Title}} ({{.Name}})</figcaption></figure>
{{else}}<p class="note">No charts were drawn (-plot=false, or nothing to draw).</p>
{{end}}

<h2>Run</h2>
<table class="meta">
<tr><td>command line</td><td class="mono">{{join .F.Run.CommandLine " "}}</td></tr>
{{range .Config}}<tr><td>{{.K}}</td><td>{{.V}}</td></tr>
{{end}}<tr><td>started / finished</td><td>{{.F.Run.Started.Format "2006-01-02T15:04:05Z07:00"}} / {{.F.Run.Finished.Format "2006-01-02T15:04:05Z07:00"}}</td></tr>
</table>

<h2>Engines and conformance</h2>
{{range .F.Engines}}<h3>{{.Name}}{{if .Simulated}} (simulated){{end}}</h3>
<table class="meta">
<tr><td>URL</td><td class="mono">{{.URL}}</td></tr>
<tr><td>profile / model</td><td>{{.Profile}} / {{.Model}}</td></tr>
{{if .ServerHeader}}<tr><td>Server header</td><td class="mono">{{.ServerHeader}}</td></tr>{{end}}
{{if .ModelInfo}}<tr><td>/v1/models</td><td class="mono">{{printf "%s" .ModelInfo}}</td></tr>{{end}}
<tr><td>preflight</td><td>{{.Preflight}}</td></tr>
{{range .Conformance}}<tr><td>conformance</td><td>{{.}}</td></tr>
{{else}}<tr><td>conformance</td><td class="note">no conformance checks were recorded for this engine</td></tr>
{{end}}</table>
{{end}}

<h2>What each number means</h2>
<dl>
{{range .Defs}}<dt>{{.Name}}</dt><dd>{{.Meaning}}</dd>
{{end}}</dl>
<p class="note">Every time is read from the client's monotonic clock as the bytes arrive. Every sample's metrics and the pooled statistics are in summary.json; every request is in the engines' .jsonl files.</p>
<script>
window.addEventListener("load", function () {
  var ok = 0;
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i];
    if (im.complete && im.naturalWidth > 0) ok++;
  }
  document.body.setAttribute("data-images-loaded", String(ok));
  document.body.setAttribute("data-table-rows", String(document.querySelectorAll("#summary tbody tr").length));
  document.body.setAttribute("data-ready", "1");
});
</script>
</body>
</html>
`))
