package gguf

import (
	"fmt"
	"strings"
)

// TokenType is llama.cpp's token type (the tokenizer.ggml.token_type array).
type TokenType int32

// The token types of llama.cpp's GGUF vocabularies.
const (
	TokenNormal      TokenType = 1
	TokenUnknown     TokenType = 2
	TokenControl     TokenType = 3
	TokenUserDefined TokenType = 4
	TokenUnused      TokenType = 5
	TokenByte        TokenType = 6
)

// SentencePiece's word boundary: a space in the text is this character in a
// token ("▁time" is " time").
const spaceMark = "\u2581"

// The ids of the special tokens, llama.cpp's defaults for a "llama"
// (SentencePiece) vocabulary.
const (
	UnknownID = 0 // <unk>
	BOSID     = 1 // <s>
	EOSID     = 2 // </s>
)

// Vocabulary is a SentencePiece vocabulary as GGUF stores it. Its layout:
// <unk>, <s>, </s>; the 256 byte-fallback tokens <0x00>..<0xFF>, which
// spell any byte the other tokens do not cover (a newline, say); one token
// per printable ASCII character and one for the word boundary; then, for
// each word, the word with its leading boundary ("▁time") and every prefix
// of it ("▁t", "▁ti", "▁tim"), since SentencePiece only merges adjacent
// pieces whose concatenation is itself a token. So a space-separated ASCII
// word of the list is one token, and any ASCII text tokenizes without
// byte fallback.
type Vocabulary struct {
	Tokens []string
	Scores []float32
	Types  []TokenType
}

// DefaultWords are the words NewLlama gives whole-word tokens when
// LlamaConfig.Words is nil: short common English words (among them every
// filler word of inferbench's synthetic prompts).
var DefaultWords = strings.Fields(`
	time year good work life hand part area week case fact home room mind kind side head book word city
	line name team game rule form body face door idea fire news road town food plan test deal land rate
	love bank hour data wall goal girl baby tree card list club film page shop wind rain snow star moon
	fish bird farm ship boat king song note dark cold warm fast slow long high deep easy hard real true
	open free full late next last best main sure able make take come give find tell call keep help talk
	turn move play live hold show hear lead meet stay pass sell send wait walk read lose pull push grow
	gate east west gold iron salt milk rice corn wood the and for you with that this from have they
	will one all would there their what out about who get which when can like just him know into your
	some could them see other than then now look only its over think also back after use two how our
	well way even new want because any these day most user assistant`)

// NewVocabulary builds the vocabulary for words, which must be non-empty
// runs of printable ASCII without spaces; duplicates are merged.
func NewVocabulary(words []string) (*Vocabulary, error) {
	v := &Vocabulary{}
	seen := map[string]bool{}
	add := func(tok string, score float32, typ TokenType) {
		if seen[tok] {
			return
		}
		seen[tok] = true
		v.Tokens = append(v.Tokens, tok)
		v.Scores = append(v.Scores, score)
		v.Types = append(v.Types, typ)
	}
	add("<unk>", 0, TokenUnknown)
	add("<s>", 0, TokenControl)
	add("</s>", 0, TokenControl)
	for b := range 256 {
		add(fmt.Sprintf("<0x%02X>", b), 0, TokenByte)
	}
	add(spaceMark, 0, TokenNormal)
	for c := byte('!'); c <= '~'; c++ {
		add(string(c), 0, TokenNormal)
	}
	for _, w := range words {
		if w == "" {
			return nil, fmt.Errorf("gguf: vocabulary: empty word")
		}
		for i := 0; i < len(w); i++ {
			if w[i] <= ' ' || w[i] > '~' {
				return nil, fmt.Errorf("gguf: vocabulary: word %q: only printable ASCII without spaces is allowed", w)
			}
		}
		for k := 1; k <= len(w); k++ {
			// A longer piece scores higher, so SentencePiece's
			// highest-score-first merging builds the longest piece.
			add(spaceMark+w[:k], float32(k), TokenNormal)
		}
	}
	return v, nil
}

// Text reports whether token id is plain text: a normal token, whose piece
// is printable ASCII (the word boundary read as a space). Only these are
// reachable in a model from NewLlama.
func (v *Vocabulary) Text(id int) bool {
	return id >= 0 && id < len(v.Types) && v.Types[id] == TokenNormal
}

// Piece returns the text of token id as a detokenizer renders it (the word
// boundary as a space); "" for a token that is not plain text.
func (v *Vocabulary) Piece(id int) string {
	if !v.Text(id) {
		return ""
	}
	return strings.ReplaceAll(v.Tokens[id], spaceMark, " ")
}
