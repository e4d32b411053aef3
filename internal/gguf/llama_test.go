package gguf

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var smallConfig = LlamaConfig{
	Name: "small", EmbeddingLength: 16, BlockCount: 2, FeedForwardLength: 24,
	HeadCount: 4, HeadCountKV: 2, ContextLength: 512, WeightType: F16, Seed: 7,
	Words: []string{"time", "tide", "word"},
}

func decodeLlama(t *testing.T, cfg LlamaConfig) *File {
	t.Helper()
	f, err := NewLlama(cfg)
	require.NoError(t, err)
	got, err := Decode(encode(t, f))
	require.NoError(t, err)
	return got
}

// TestLlamaMetadataAndShapes parses a generated model back: the llama
// hyperparameters, tokenizer and template as configured, and every tensor
// llama.cpp's llama loader asks for, with its ggml shape and type.
func TestLlamaMetadataAndShapes(t *testing.T) {
	f := decodeLlama(t, smallConfig)
	vocab, err := NewVocabulary(smallConfig.Words)
	require.NoError(t, err)
	nv := uint64(len(vocab.Tokens))
	for key, want := range map[string]any{
		"general.architecture":                   "llama",
		"general.name":                           "small",
		"general.file_type":                      uint32(1),
		"llama.context_length":                   uint32(512),
		"llama.embedding_length":                 uint32(16),
		"llama.block_count":                      uint32(2),
		"llama.feed_forward_length":              uint32(24),
		"llama.attention.head_count":             uint32(4),
		"llama.attention.head_count_kv":          uint32(2),
		"llama.rope.dimension_count":             uint32(4),
		"llama.attention.layer_norm_rms_epsilon": float32(1e-5),
		"llama.vocab_size":                       uint32(nv),
		"tokenizer.ggml.model":                   "llama",
		"tokenizer.ggml.tokens":                  vocab.Tokens,
		"tokenizer.ggml.bos_token_id":            uint32(1),
		"tokenizer.ggml.eos_token_id":            uint32(2),
		"tokenizer.chat_template":                ChatTemplate,
	} {
		got, ok := f.Get(key)
		if assert.True(t, ok, "metadata %s missing", key) {
			assert.Equal(t, want, got, key)
		}
	}
	types, _ := f.Get("tokenizer.ggml.token_type")
	assert.Len(t, types, int(nv))

	want := map[string][]uint64{
		"token_embd.weight":  {16, nv},
		"output_norm.weight": {16},
		"output.weight":      {16, nv},
	}
	for i := range 2 {
		for name, shape := range map[string][]uint64{
			"attn_norm.weight": {16}, "attn_q.weight": {16, 16}, "attn_k.weight": {16, 8}, "attn_v.weight": {16, 8},
			"attn_output.weight": {16, 16}, "ffn_norm.weight": {16}, "ffn_gate.weight": {16, 24},
			"ffn_up.weight": {16, 24}, "ffn_down.weight": {24, 16},
		} {
			want[fmt.Sprintf("blk.%d.%s", i, name)] = shape
		}
	}
	require.Len(t, f.Tensors, len(want))
	for name, shape := range want {
		tn := f.Tensor(name)
		if !assert.NotNil(t, tn, name) {
			continue
		}
		assert.Equal(t, shape, tn.Shape, name)
		wantType := F16
		if len(shape) == 1 {
			wantType = F32 // norms stay F32
		}
		assert.Equal(t, wantType, tn.Type, name)
	}
}

// TestLlamaDeterministic: a seed gives the same bytes; another seed other weights.
func TestLlamaDeterministic(t *testing.T) {
	a, err := NewLlama(smallConfig)
	require.NoError(t, err)
	b, err := NewLlama(smallConfig)
	require.NoError(t, err)
	other := smallConfig
	other.Seed++
	c, err := NewLlama(other)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(encode(t, a), encode(t, b)), "same seed, same file")
	assert.False(t, bytes.Equal(encode(t, a), encode(t, c)), "another seed, another file")
}

// TestVocabulary: special and byte tokens where llama.cpp expects them,
// each word one token with all its prefixes, and Text true exactly for the
// normal tokens.
func TestVocabulary(t *testing.T) {
	v, err := NewVocabulary([]string{"time", "tide", "time"})
	require.NoError(t, err)
	assert.Equal(t, []string{"<unk>", "<s>", "</s>"}, v.Tokens[:3])
	assert.Equal(t, "<0x00>", v.Tokens[3])
	assert.Equal(t, "<0x0A>", v.Tokens[3+10], "llama.cpp finds the newline as <0x0A>")
	assert.Equal(t, "<0xFF>", v.Tokens[258])
	index := map[string]int{}
	for i, tok := range v.Tokens {
		_, dup := index[tok]
		require.False(t, dup, "token %q twice", tok)
		index[tok] = i
	}
	for _, piece := range []string{"▁", "a", "~", "▁t", "▁ti", "▁tim", "▁time", "▁tid", "▁tide"} {
		assert.Contains(t, index, piece)
	}
	assert.Greater(t, v.Scores[index["▁time"]], v.Scores[index["▁tim"]], "longer pieces merge first")
	assert.Len(t, v.Tokens, 3+256+1+94+6, "time and tide share ▁t and ▁ti; the duplicate adds nothing")
	for i, typ := range v.Types {
		assert.Equal(t, typ == TokenNormal, v.Text(i), "token %d %q", i, v.Tokens[i])
	}
	assert.Equal(t, " time", v.Piece(index["▁time"]))
	assert.Equal(t, "", v.Piece(EOSID))

	for _, bad := range []string{"", "two words", "naïve", "tab\t"} { // empty, space, non-ASCII, control
		_, err := NewVocabulary([]string{bad})
		assert.Error(t, err, "%q", bad)
	}
}

// TestUnreachableTokens checks the construction that keeps every token that
// is not plain text (EOS, byte fallback, <unk>, <s>) unreachable: the
// constant residual dimension no layer writes or reads, and the final norm
// and output layer on random residual streams of several scales, where
// every banned logit must be far below every text logit.
func TestUnreachableTokens(t *testing.T) {
	cfg := smallConfig
	cfg.EmbeddingLength, cfg.HeadCount, cfg.HeadCountKV = 64, 4, 4
	f := decodeLlama(t, cfg)
	n := cfg.EmbeddingLength
	vocab, err := NewVocabulary(cfg.Words)
	require.NoError(t, err)
	nv := len(vocab.Tokens)

	emb := f.Tensor("token_embd.weight")
	for tok := range nv {
		require.Equal(t, float32(1), emb.Data[tok*n], "embedding of token %d on the constant dimension", tok)
	}
	for i := range cfg.BlockCount {
		for _, name := range []string{"attn_output.weight", "ffn_down.weight"} {
			w := f.Tensor(fmt.Sprintf("blk.%d.%s", i, name))
			in := int(w.Shape[0])
			for _, x := range w.Data[:in] {
				require.Zero(t, x, "blk.%d.%s writes to the constant dimension", i, name)
			}
		}
		for _, name := range []string{"attn_norm.weight", "ffn_norm.weight"} {
			require.Zero(t, f.Tensor(fmt.Sprintf("blk.%d.%s", i, name)).Data[0], "blk.%d.%s reads the constant dimension", i, name)
		}
	}

	gain := f.Tensor("output_norm.weight").Data
	out := f.Tensor("output.weight").Data
	rng := rand.New(rand.NewPCG(1, 2))
	for _, scale := range []float64{0.1, 1, 3, 10} { // residual streams from tame to grown
		for range 50 {
			x := make([]float64, n)
			x[0] = 1
			var ss float64
			for i := range x {
				if i > 0 {
					x[i] = rng.NormFloat64() * scale
				}
				ss += x[i] * x[i]
			}
			rms := math.Sqrt(ss/float64(n) + 1e-5)
			maxBanned, minText := math.Inf(-1), math.Inf(1)
			for tok := range nv {
				var logit float64
				for i := range n {
					logit += float64(out[tok*n+i]) * x[i] / rms * float64(gain[i])
				}
				if vocab.Text(tok) {
					minText = math.Min(minText, logit)
				} else {
					maxBanned = math.Max(maxBanned, logit)
				}
			}
			require.Less(t, maxBanned, minText-50, "scale %g: a banned token is within e^-50 of a text token", scale)
		}
	}
}

// TestEOSBias: EOSBias makes the end-of-sequence token's logit about
// EOSBias/rms(x) from the constant dimension (so it can be sampled),
// while every other non-text token stays banned and the text tokens are
// as they were.
func TestEOSBias(t *testing.T) {
	cfg := smallConfig
	cfg.EmbeddingLength, cfg.HeadCount, cfg.HeadCountKV = 64, 4, 4
	plain, biased := decodeLlama(t, cfg), func() *File { c := cfg; c.EOSBias = 3; return decodeLlama(t, c) }()
	n := cfg.EmbeddingLength
	vocab, err := NewVocabulary(cfg.Words)
	require.NoError(t, err)
	gain := float64(biased.Tensor("output_norm.weight").Data[constDim])
	a, b := plain.Tensor("output.weight").Data, biased.Tensor("output.weight").Data
	for tok := range vocab.Tokens {
		switch {
		case tok == EOSID:
			assert.Equal(t, float32(bannedLogitPer), a[tok*n+constDim], "without a bias the EOS is banned")
			assert.InDelta(t, 3, float64(b[tok*n+constDim])*gain, 1e-3, "the EOS's logit from the constant dimension, ×rms(x)")
		default:
			assert.Equal(t, a[tok*n+constDim], b[tok*n+constDim], "token %d", tok)
		}
	}
}

// TestLlamaConfigErrors: impossible shapes are refused with the reason.
func TestLlamaConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*LlamaConfig)
		want string
	}{
		// no layers
		{"no blocks", func(c *LlamaConfig) { c.BlockCount = 0 }, "must be positive"},
		// 16 is not 3 heads of equal size
		{"heads do not divide", func(c *LlamaConfig) { c.HeadCount = 3 }, "HeadCount 3 times an even head size"},
		// head size 1 cannot be rotated in pairs
		{"odd head size", func(c *LlamaConfig) { c.HeadCount = 16 }, "even head size"},
		// 4 query heads cannot share 3 key/value heads
		{"kv heads do not divide", func(c *LlamaConfig) { c.HeadCountKV = 3 }, "HeadCountKV 3 must divide HeadCount 4"},
		// quantised weights are not generated
		{"weight type", func(c *LlamaConfig) { c.WeightType = 8 }, "WeightType ggml type 8"},
		// a word the vocabulary cannot hold
		{"bad word", func(c *LlamaConfig) { c.Words = []string{"two words"} }, `word "two words"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := smallConfig
			tc.edit(&cfg)
			_, err := NewLlama(cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), `gguf: llama "small"`), err.Error())
		})
	}
}
