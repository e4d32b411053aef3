// Package gguf writes and reads GGUF v3 files, the model format of
// llama.cpp and of the engines built on it (ollama, llama-server), and
// generates small random-weight llama models with a vocabulary and chat
// template of its own, so real engines can be tested without downloading a
// model or keeping a binary model file in the repository.
//
// # The format
//
// A GGUF file is, all little-endian: the magic "GGUF", the version (3), the
// tensor count and the metadata count (uint64 each); the metadata as
// key/type/value triples; one info per tensor (name, dimensions, ggml type,
// offset into the data section); padding to the alignment (the metadata key
// general.alignment, 32 when absent); and the tensor data, each tensor at
// its offset, a multiple of the alignment. Strings are a uint64 length and
// that many bytes; arrays are an element type, a uint64 count and the
// elements. Dimensions are in ggml order: Shape[0] is the contiguous one, so
// a weight matrix of a layer mapping n inputs to m outputs has Shape
// {n, m} and its row r (output r) is Data[r*n : (r+1)*n].
//
// [File.WriteTo] writes a File; [Decode] parses one back, with limits that
// make it safe on untrusted bytes. Tensor data is held as float32 and
// stored as F32 or F16; other ggml types (quantisations) are neither
// written nor decoded.
//
// # Random llama models
//
// [NewLlama] builds a [File] for llama.cpp's "llama" architecture from a
// [LlamaConfig]: random weights from a seed, a SentencePiece ("llama")
// vocabulary of [NewVocabulary], and a Jinja chat template. Its output layer
// makes every token that is not plain text unreachable (see [NewLlama]):
// no end-of-sequence, so every request runs to its max_tokens, and no
// byte-fallback token, so every streamed piece is valid UTF-8.
//
// Typical use, in a test that then hands the file to an engine:
//
//	f, err := gguf.NewLlama(gguf.LlamaConfig{Name: "tiny", EmbeddingLength: 256, BlockCount: 2,
//		FeedForwardLength: 512, HeadCount: 4, ContextLength: 2048, Seed: 1})
//	// handle err
//	out, err := os.Create(filepath.Join(t.TempDir(), "tiny.gguf"))
//	// handle err
//	_, err = f.WriteTo(bufio.NewWriter(out)) // flush and close as usual
//
// Input: a model's shape and a seed (or a GGUF file to read). Output: GGUF
// bytes. It prints nothing and imports nothing of the project's.
package gguf
