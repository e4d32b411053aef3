// Command flagdoc writes docs/flags.md from the suite's flag definitions
// (internal/cli). go generate ./... runs it from the repository root:
//
//	go run ./internal/cli/cmd/flagdoc -o docs/flags.md
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/inferbench/inferbench/internal/cli"
)

func main() {
	if err := run(os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "flagdoc:", err)
		os.Exit(1)
	}
}

func run(stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("flagdoc", flag.ContinueOnError)
	out := fs.String("o", "", "file to write (default: standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	doc := cli.Register(flag.NewFlagSet("inferbench", flag.ContinueOnError)).Markdown()
	if *out == "" {
		_, err := stdout.Write(doc)
		return err
	}
	return os.WriteFile(*out, doc, 0o644)
}
