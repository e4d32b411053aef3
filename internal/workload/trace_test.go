package workload

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/internal/trace"
)

// TestTraceRequest checks the prompts that replay a trace: each has the
// entry's length (one token per word here) and asks for its output length;
// entries whose hash ids agree share exactly those blocks; an entry
// without hash ids shares nothing.
func TestTraceRequest(t *testing.T) {
	w, err := New(Spec{InputTokens: 8, OutputTokens: 1, Seed: 2})
	require.NoError(t, err)
	entries := []trace.Entry{
		{Input: 100, Output: 7, HashIDs: []uint64{1, 2, 3}}, // blocks 1 2 3 of 16, then unique
		{Input: 60, Output: 3, HashIDs: []uint64{1, 2, 9}},  // shares blocks 1 and 2
		{Input: 20, Output: 3, HashIDs: []uint64{1, 2}},     // cut inside block 2
		{Input: 50, Output: 5},                              // no blocks: all unique
	}
	var prompts []string
	for i, e := range entries {
		r, info, err := w.TraceRequest(e, 16, 100+i)
		require.NoError(t, err)
		assert.Equal(t, e.Output, r.MaxTokens)
		assert.Len(t, strings.Fields(r.Messages[0].Content), e.Input, "entry %d", i)
		prompts = append(prompts, r.Messages[0].Content)
		assert.Equal(t, min(16*len(e.HashIDs), e.Input), info.PrefixTokens, "entry %d", i)
	}
	assert.Equal(t, 32, commonWords(prompts[0], prompts[1]), "blocks 1 and 2")
	assert.Equal(t, 20, commonWords(prompts[0], prompts[2]), "the cut block 2")
	assert.Zero(t, commonWords(prompts[0], prompts[3]))
	// Deterministic.
	again, _, _ := w.TraceRequest(entries[0], 16, 100)
	assert.Equal(t, prompts[0], again.Messages[0].Content)
}
