package workload

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// commonWords is the number of leading whitespace-separated words a and b share.
func commonWords(a, b string) int {
	fa, fb := strings.Fields(a), strings.Fields(b)
	n := 0
	for n < len(fa) && n < len(fb) && fa[n] == fb[n] {
		n++
	}
	return n
}

// TestSharedPrefixes checks that with -prefix-tokens=L -prefixes=K every
// prompt starts with one of K prefixes of L tokens (one word per token
// here), that all K are used, that two prompts share exactly their prefix
// when it is the same one and nothing when not, and that the prompt's
// length includes the prefix.
func TestSharedPrefixes(t *testing.T) {
	const L, K = 200, 4
	w, err := New(Spec{InputTokens: 300, OutputTokens: 8, PrefixTokens: L, Prefixes: K, Seed: 9})
	require.NoError(t, err)
	prefixes := map[int]string{}
	var prompts []string
	var infos []Info
	for seq := range 200 {
		r, info := w.RequestInfo(seq)
		require.Len(t, r.Messages, 1)
		c := r.Messages[0].Content
		assert.Len(t, strings.Fields(c), 300-1+1, "seq %d: 300 words in all: prefix, id and filler (one word short for the id's rounding)", seq)
		require.GreaterOrEqual(t, info.Prefix, 0)
		assert.Equal(t, L, info.PrefixTokens)
		p := strings.Join(strings.Fields(c)[:L], " ")
		if old, ok := prefixes[info.Prefix]; ok {
			assert.Equal(t, old, p, "prefix %d is the same text every time", info.Prefix)
		}
		prefixes[info.Prefix] = p
		prompts = append(prompts, c)
		infos = append(infos, info)
	}
	assert.Len(t, prefixes, K, "every prefix is used")
	for i := range prompts {
		for j := i + 1; j < len(prompts); j++ {
			want := 0
			if infos[i].Prefix == infos[j].Prefix {
				want = L
			}
			assert.Equal(t, want, commonWords(prompts[i], prompts[j]), "seqs %d and %d share only the prefix", i, j)
		}
	}
	// The probe has no prefix: calibration warms no cache.
	assert.Zero(t, commonWords(w.Probe().Messages[0].Content, prompts[0]))
	assert.Equal(t, "synthetic in=300 prefix=4x200 out=8 seed=9", w.Describe())

	// Deterministic: another instance chooses the same prefixes.
	w2, err := New(Spec{InputTokens: 300, OutputTokens: 8, PrefixTokens: L, Prefixes: K, Seed: 9})
	require.NoError(t, err)
	for seq := range 50 {
		assert.Equal(t, w.Request(seq), w2.Request(seq))
	}
}

// TestSharedPrefixCalibrated checks the prefix length after calibration
// on a server with 2 tokens per word and a 10-token template: the prefix
// is L tokens' worth of words, and the whole prompt stays at InputTokens.
func TestSharedPrefixCalibrated(t *testing.T) {
	w, err := New(Spec{InputTokens: 1200, OutputTokens: 8, PrefixTokens: 1024, Prefixes: 2, Seed: 1})
	require.NoError(t, err)
	count := func(s string) int { return 10 + 2*len(strings.Fields(s)) }
	for range 2 {
		require.NoError(t, w.Calibrate(count(w.Probe().Messages[0].Content)))
	}
	a, b := w.Request(0).Messages[0].Content, ""
	for seq := 1; b == ""; seq++ {
		if _, info := w.RequestInfo(seq); info.Prefix == func() int { _, i := w.RequestInfo(0); return i.Prefix }() {
			b = w.Request(seq).Messages[0].Content
		}
	}
	assert.Equal(t, 512, commonWords(a, b), "1024 tokens at 2 per word")
	_, info := w.RequestInfo(0)
	assert.Equal(t, 1024, info.PrefixTokens)
	assert.InDelta(t, 1200, count(a), 2)
}

func TestPrefixRejects(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		// Tokens without a count of prefixes.
		{"tokens only", Spec{InputTokens: 300, OutputTokens: 8, PrefixTokens: 100}, "set both"},
		// A prefix as long as the prompt leaves no unique part.
		{"prefix too long", Spec{InputTokens: 100, OutputTokens: 8, PrefixTokens: 100, Prefixes: 1}, "longer than the shared prefix"},
		// uniform draws below the prefix would be all prefix.
		{"uniform below prefix", Spec{InputDist: "uniform:50,500", OutputTokens: 8, PrefixTokens: 100, Prefixes: 1}, "longer than the shared prefix"},
		// A dataset's prompts are its own.
		{"dataset", Spec{Dataset: "x.jsonl", OutputTokens: 8, PrefixTokens: 10, Prefixes: 1}, "synthetic prompts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.spec)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
