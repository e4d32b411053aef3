package plots

// Regenerate the charts from the suite's saved results (results/*.txt) with
// `go generate ./plots`. go generate runs in this directory and does not
// expand globs: the generator lists ../results itself.
//go:generate go run ./cmd/plot -out ../results ../results
