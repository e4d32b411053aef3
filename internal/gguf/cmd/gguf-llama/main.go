// Command gguf-llama writes a random-weight llama model as a GGUF file
// (see package gguf): a model of our own for testing real engines, with no
// end-of-sequence or byte-fallback token reachable, so every request runs
// to its max_tokens and every streamed piece is valid UTF-8.
//
// Usage:
//
//	go run ./internal/gguf/cmd/gguf-llama -o tiny.gguf [-modelfile Modelfile] [-embd 512 -layers 8 -ff 1536 -heads 8 -kv-heads 8 -ctx 4096 -type f16 -seed 1]
//
// It prints the file's size, parameter count and vocabulary size. With
// -modelfile it also writes the start of an ollama Modelfile for it (FROM
// and TEMPLATE, see gguf.OllamaModelfile), to which PARAMETER lines can be
// appended before "ollama create NAME -f Modelfile".
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/inferbench/inferbench/internal/gguf"
)

func main() {
	if err := run(os.Stdout, os.Stderr, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "gguf-llama:", err)
		}
		os.Exit(2)
	}
}

func run(stdout, stderr io.Writer, args []string) error {
	fs := flag.NewFlagSet("gguf-llama", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "output file (required)")
	modelfile := fs.String("modelfile", "", "also write an ollama Modelfile (FROM and TEMPLATE) here")
	name := fs.String("name", "inferbench-tiny", "general.name")
	embd := fs.Int("embd", 512, "hidden size")
	layers := fs.Int("layers", 8, "transformer blocks")
	ff := fs.Int("ff", 1536, "feed-forward hidden size")
	heads := fs.Int("heads", 8, "attention heads")
	kvHeads := fs.Int("kv-heads", 0, "key/value heads (0: as many as -heads)")
	ctx := fs.Int("ctx", 4096, "context length the model claims")
	typ := fs.String("type", "f16", "type of the weight matrices: f16 or f32")
	seed := fs.Uint64("seed", 1, "seed of the weights")
	eosBias := fs.Float64("eos-bias", 0, "make the end-of-sequence token reachable, with about this logit (0: never, as the benchmark needs; try 3 for replies of a few dozen tokens)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (flags only)", fs.Args())
	}
	if *out == "" {
		return errors.New("-o FILE is required")
	}
	cfg := gguf.LlamaConfig{Name: *name, EmbeddingLength: *embd, BlockCount: *layers, FeedForwardLength: *ff,
		HeadCount: *heads, HeadCountKV: *kvHeads, ContextLength: *ctx, Seed: *seed, EOSBias: *eosBias}
	switch *typ {
	case "f16":
		cfg.WeightType = gguf.F16
	case "f32":
		cfg.WeightType = gguf.F32
	default:
		return fmt.Errorf("-type %q: want f16 or f32", *typ)
	}
	f, err := gguf.NewLlama(cfg)
	if err != nil {
		return err
	}
	file, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(file, 1<<20)
	n, err := f.WriteTo(w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out)
		return fmt.Errorf("%s: %w", *out, err)
	}
	if *modelfile != "" {
		rel, err := filepath.Rel(filepath.Dir(*modelfile), *out)
		if err != nil {
			abs, _ := filepath.Abs(*out)
			rel = abs
		}
		if !filepath.IsAbs(rel) {
			rel = "./" + filepath.ToSlash(rel)
		}
		if err := os.WriteFile(*modelfile, []byte(gguf.OllamaModelfile(rel)), 0o644); err != nil {
			return err
		}
	}
	var params uint64
	for i := range f.Tensors {
		params += f.Tensors[i].Elements()
	}
	tokens, _ := f.Get("tokenizer.ggml.tokens")
	fmt.Fprintf(stdout, "%s: %d bytes, %d parameters, %d tokens\n", *out, n, params, len(tokens.([]string)))
	return nil
}
