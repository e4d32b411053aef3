package plots

// Regenerate the charts from the suite's saved results (results/*.txt) with
// `go generate ./plots`. go generate runs in this directory and does not
// expand globs: the generator lists ../results itself. Before any run there
// is no ../results: -missing-ok says so and draws nothing, so that
// go generate ./... works on a fresh clone.
//go:generate go run ./cmd/plot -missing-ok -out ../results ../results

// Redraw the README's picture and the other charts of docs/demo from the
// committed files of the run the README names (TestREADMEPicture checks
// that the command and the files agree, and that the charts are theirs).
//go:generate go run ./cmd/plot -out ../docs/demo ../docs/demo
