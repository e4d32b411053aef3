// Package cli is the suite's command line: the flags of
// `go test -bench=. -engines=...`, each with its group, unit and one line
// of help, and the suite.Options they make. Its one job is that list:
// bench_test.go registers it on the test binary's flags and binds the
// options to testing.B; docs/flags.md is generated from it
// (`go generate ./...`, cmd/flagdoc), and `go test -flags` prints the same
// grouped list. A test fails when docs/flags.md is stale or misses a flag.
//
// Input: a *flag.FlagSet to register on, then its parsed values. Output:
// suite.Options, the grouped list as text (Usage) or Markdown (Markdown).
// It prints nothing itself, opens no file and imports only the suite's
// option types; removed flags stay registered only to fail with the
// replacement's name.
package cli
