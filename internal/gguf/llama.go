package gguf

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// LlamaConfig describes a random-weight model of llama.cpp's "llama"
// architecture. Zero values of the optional fields take the defaults named.
type LlamaConfig struct {
	// Name is general.name.
	Name string
	// EmbeddingLength is the hidden size (n_embd); a multiple of HeadCount.
	EmbeddingLength int
	// BlockCount is the number of transformer blocks (n_layer).
	BlockCount int
	// FeedForwardLength is the SwiGLU hidden size (n_ff).
	FeedForwardLength int
	// HeadCount is the number of attention heads; the head size
	// EmbeddingLength/HeadCount must be even (RoPE rotates pairs).
	HeadCount int
	// HeadCountKV is the number of key/value heads (grouped-query
	// attention); it divides HeadCount. 0 means HeadCount.
	HeadCountKV int
	// ContextLength is llama.context_length, the longest context the model
	// claims. 0 means 2048.
	ContextLength int
	// WeightType is the type of the weight matrices and the embedding; the
	// norms are always F32. The zero value is F32.
	WeightType TensorType
	// Seed makes the weights: the same config gives the same file.
	Seed uint64
	// Words get whole-word tokens (see Vocabulary); nil means DefaultWords.
	Words []string
	// EOSBias, when not zero, makes the end-of-sequence token reachable:
	// its logit gets about EOSBias/rms(x) from the constant dimension
	// (see NewLlama), so a larger bias stops replies sooner. 0 keeps it
	// unreachable, as every reply must run to max_tokens for the
	// benchmark; a positive bias is for capturing how engines end a
	// natural stop (the EOS llama-server counts in usage but never sends).
	EOSBias float64
}

// ChatTemplate is the Jinja chat template NewLlama stores as
// tokenizer.chat_template: each message as "[role] content" and a newline,
// then "[assistant]" for the reply. Its leading comment keeps it far from
// every well-known template: ollama's "ollama create" matches a GGUF's
// template against those (edit distance under 100) and, on a match, adds
// that family's stop strings to the model ("<|im_start|>" for a template
// like ChatML), which random text can spell and so end a reply early.
//
// OllamaTemplate is the same in ollama's Go template syntax.
const ChatTemplate = "{#- inferbench random-weight test model: no real language, every message as [role] content, one a line, then the reply -#}" +
	"{% for message in messages %}[{{ message['role'] }}] {{ message['content'] }}\n{% endfor %}" +
	"{% if add_generation_prompt %}[assistant]{% endif %}"

// OllamaTemplate is ChatTemplate for an ollama Modelfile's TEMPLATE.
const OllamaTemplate = "{{- range .Messages }}[{{ .Role }}] {{ .Content }}\n{{ end }}[assistant]"

// OllamaModelfile returns the start of an ollama Modelfile for the GGUF
// file at path (relative to the Modelfile, e.g. "./tiny.gguf"): FROM and
// TEMPLATE. Callers append their PARAMETER lines.
func OllamaModelfile(path string) string {
	return "FROM " + path + "\nTEMPLATE \"\"\"" + OllamaTemplate + "\"\"\"\n"
}

// Output-layer constants of the unreachable-token construction (see NewLlama).
const (
	constDim       = 0    // the residual dimension that is constant
	constValue     = 1    // its value in every token's embedding
	constNormGain  = 1000 // output_norm's gain on it
	bannedLogitPer = -1   // output.weight of a banned token on it
)

// NewLlama builds the GGUF file of a random llama model: its metadata
// (llama.*, tokenizer.*, general.*), a Vocabulary of cfg.Words, and
// weights drawn uniformly with the variance of the usual 1/sqrt(fan-in)
// initialisation, so activations stay of order one through the layers.
//
// Random weights would emit every token now and then, and two kinds must
// never be emitted: the end-of-sequence token (engines without ignore_eos,
// such as ollama, would stop early, and the benchmark needs a fixed output
// length) and byte-fallback tokens (one byte of a multi-byte character is
// invalid UTF-8, which breaks servers' output). No output bias is needed
// to forbid them, so the file stays a plain llama model that every llama
// loader accepts; instead the model carries a constant:
//
//   - residual dimension 0 is 1 in every token's embedding, and no layer
//     writes to it (row 0 of attn_output and ffn_down is zero), so it stays
//     1 in the residual stream of every position;
//   - the blocks' norms have gain 0 on it, so the layers never see it;
//   - output_norm has gain 1000 on it, so after the final RMSNorm it is
//     1000/rms(x), large and positive;
//   - output.weight has -1 on it for every token that is not plain text
//     (Vocabulary.Text) and 0 for the others.
//
// So every non-text token's logit is about -1000/rms(x) (rms(x) is of
// order one), below the text tokens' logits of order one by hundreds: its
// probability is below e^-100 under any sampler.
func NewLlama(cfg LlamaConfig) (*File, error) {
	if cfg.ContextLength == 0 {
		cfg.ContextLength = 2048
	}
	if cfg.HeadCountKV == 0 {
		cfg.HeadCountKV = cfg.HeadCount
	}
	if cfg.Words == nil {
		cfg.Words = DefaultWords
	}
	switch {
	case cfg.EmbeddingLength < 2 || cfg.BlockCount < 1 || cfg.FeedForwardLength < 1 || cfg.HeadCount < 1:
		return nil, fmt.Errorf("gguf: llama %q: EmbeddingLength (at least 2), BlockCount, FeedForwardLength and HeadCount must be positive", cfg.Name)
	case cfg.EmbeddingLength%cfg.HeadCount != 0 || (cfg.EmbeddingLength/cfg.HeadCount)%2 != 0:
		return nil, fmt.Errorf("gguf: llama %q: EmbeddingLength %d must be HeadCount %d times an even head size", cfg.Name, cfg.EmbeddingLength, cfg.HeadCount)
	case cfg.HeadCountKV < 1 || cfg.HeadCount%cfg.HeadCountKV != 0:
		return nil, fmt.Errorf("gguf: llama %q: HeadCountKV %d must divide HeadCount %d", cfg.Name, cfg.HeadCountKV, cfg.HeadCount)
	case cfg.WeightType != F32 && cfg.WeightType != F16:
		return nil, fmt.Errorf("gguf: llama %q: WeightType %v (want F32 or F16)", cfg.Name, cfg.WeightType)
	}
	vocab, err := NewVocabulary(cfg.Words)
	if err != nil {
		return nil, fmt.Errorf("gguf: llama %q: %w", cfg.Name, err)
	}
	nEmbd, nFF, nVocab := cfg.EmbeddingLength, cfg.FeedForwardLength, len(vocab.Tokens)
	headDim := nEmbd / cfg.HeadCount
	nKV := cfg.HeadCountKV * headDim
	fileType := uint32(0) // LLAMA_FTYPE_ALL_F32
	if cfg.WeightType == F16 {
		fileType = 1 // LLAMA_FTYPE_MOSTLY_F16
	}
	types := make([]int32, nVocab)
	for i, t := range vocab.Types {
		types[i] = int32(t)
	}

	f := &File{Metadata: []KV{
		{"general.architecture", "llama"},
		{"general.name", cfg.Name},
		{"general.file_type", fileType},
		{"general.alignment", uint32(DefaultAlignment)},
		{"llama.context_length", uint32(cfg.ContextLength)},
		{"llama.embedding_length", uint32(nEmbd)},
		{"llama.block_count", uint32(cfg.BlockCount)},
		{"llama.feed_forward_length", uint32(nFF)},
		{"llama.attention.head_count", uint32(cfg.HeadCount)},
		{"llama.attention.head_count_kv", uint32(cfg.HeadCountKV)},
		{"llama.attention.layer_norm_rms_epsilon", float32(1e-5)},
		{"llama.rope.dimension_count", uint32(headDim)},
		{"llama.rope.freq_base", float32(10000)},
		{"llama.vocab_size", uint32(nVocab)},
		{"tokenizer.ggml.model", "llama"},
		{"tokenizer.ggml.tokens", vocab.Tokens},
		{"tokenizer.ggml.scores", vocab.Scores},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.unknown_token_id", uint32(UnknownID)},
		{"tokenizer.ggml.bos_token_id", uint32(BOSID)},
		{"tokenizer.ggml.eos_token_id", uint32(EOSID)},
		{"tokenizer.ggml.add_bos_token", true},
		{"tokenizer.ggml.add_eos_token", false},
		{"tokenizer.chat_template", ChatTemplate},
	}}

	g := &gen{seed: cfg.Seed, wt: cfg.WeightType}
	emb := g.matrix("token_embd.weight", nEmbd, nVocab, 1) // std 1, like a normalised stream
	for t := range nVocab {
		emb.Data[t*nEmbd+constDim] = constValue
	}
	f.Tensors = append(f.Tensors, *emb)
	for i := range cfg.BlockCount {
		blk := func(s string) string { return fmt.Sprintf("blk.%d.%s", i, s) }
		attnOut := g.matrix(blk("attn_output.weight"), nEmbd, nEmbd, 1/math.Sqrt(float64(nEmbd)))
		clear(attnOut.Data[constDim*nEmbd : (constDim+1)*nEmbd])
		down := g.matrix(blk("ffn_down.weight"), nFF, nEmbd, 1/math.Sqrt(float64(nFF)))
		clear(down.Data[constDim*nFF : (constDim+1)*nFF])
		f.Tensors = append(f.Tensors,
			*g.norm(blk("attn_norm.weight"), nEmbd, 0),
			*g.matrix(blk("attn_q.weight"), nEmbd, nEmbd, 1/math.Sqrt(float64(nEmbd))),
			*g.matrix(blk("attn_k.weight"), nEmbd, nKV, 1/math.Sqrt(float64(nEmbd))),
			*g.matrix(blk("attn_v.weight"), nEmbd, nKV, 1/math.Sqrt(float64(nEmbd))),
			*attnOut,
			*g.norm(blk("ffn_norm.weight"), nEmbd, 0),
			*g.matrix(blk("ffn_gate.weight"), nEmbd, nFF, 1/math.Sqrt(float64(nEmbd))),
			*down,
			*g.matrix(blk("ffn_up.weight"), nEmbd, nFF, 1/math.Sqrt(float64(nEmbd))),
		)
	}
	out := g.matrix("output.weight", nEmbd, nVocab, 1/math.Sqrt(float64(nEmbd)))
	for t := range nVocab {
		out.Data[t*nEmbd+constDim] = 0
		if !vocab.Text(t) {
			out.Data[t*nEmbd+constDim] = bannedLogitPer
		}
		if t == EOSID && cfg.EOSBias != 0 {
			out.Data[t*nEmbd+constDim] = float32(cfg.EOSBias / constNormGain)
		}
	}
	f.Tensors = append(f.Tensors, *g.norm("output_norm.weight", nEmbd, constNormGain), *out)
	if g.err != nil {
		return nil, g.err
	}
	return f, nil
}

// gen draws the tensors; each from its own stream (seed, tensor index), so
// one tensor's values do not depend on the sizes of the others.
type gen struct {
	seed uint64
	wt   TensorType
	n    uint64
	err  error
}

// matrix is a [in, out] weight with uniform entries of standard deviation std.
func (g *gen) matrix(name string, in, out int, std float64) *Tensor {
	g.n++
	if int64(in)*int64(out) > math.MaxInt32 {
		g.err = errors.Join(g.err, fmt.Errorf("gguf: tensor %s: %d×%d elements is too large", name, in, out))
		return &Tensor{Name: name, Shape: []uint64{1}, Type: F32, Data: []float32{0}}
	}
	rng := rand.New(rand.NewPCG(g.seed, g.n))
	a := float32(std * math.Sqrt(3)) // uniform on [-a, a] has std a/sqrt(3)
	data := make([]float32, in*out)
	for i := range data {
		data[i] = a * (2*rng.Float32() - 1)
	}
	return &Tensor{Name: name, Shape: []uint64{uint64(in), uint64(out)}, Type: g.wt, Data: data}
}

// norm is an RMSNorm gain: 1, except gain0 on the constant dimension.
func (g *gen) norm(name string, n int, gain0 float32) *Tensor {
	g.n++
	data := make([]float32, n)
	for i := range data {
		data[i] = 1
	}
	data[constDim] = gain0
	return &Tensor{Name: name, Shape: []uint64{uint64(n)}, Type: F32, Data: data}
}
