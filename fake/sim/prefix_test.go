package sim

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// prefixConfig has prefill costs that grow with the prompt (10 ms a step
// plus 1 ms per token beyond 4), blocks of 4 tokens, 64 blocks of KV and
// prefix caching on.
func prefixConfig() Config {
	c := tinyConfig()
	c.MaxNumSeqs, c.MaxBatchedTokens, c.KVCapacityTokens = 4, 64, 256
	c.PrefixCaching = true
	return c
}

// toks returns n token ids of prompt family f: prompts of one family agree
// on every position.
func toks(f uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = f<<32 | uint64(i)
	}
	return out
}

// cat concatenates prompts.
func cat(parts ...[]uint64) []uint64 { return slices.Concat(parts...) }

// driver runs a Scheduler in virtual time and records each request's
// arrival, TTFT and cached tokens.
type driver struct {
	t      *testing.T
	s      *Scheduler
	now    time.Duration
	nextID uint64
	added  map[uint64]time.Duration
	ttft   map[uint64]time.Duration
	cached map[uint64]int
	done   map[uint64]bool
}

func newDriver(t *testing.T, cfg Config) *driver {
	return &driver{t: t, s: NewScheduler(cfg), added: map[uint64]time.Duration{}, ttft: map[uint64]time.Duration{},
		cached: map[uint64]int{}, done: map[uint64]bool{}}
}

// add queues a prompt and returns its id.
func (d *driver) add(prompt []uint64, maxTokens int) uint64 {
	d.nextID++
	require.NoError(d.t, d.s.AddBlocks(d.nextID, len(prompt), BlockHashes(prompt, d.s.cfg.BlockSize), maxTokens, d.now))
	d.added[d.nextID] = d.now
	return d.nextID
}

// until steps until request id finished.
func (d *driver) until(id uint64) {
	for steps := 0; !d.done[id]; steps++ {
		require.False(d.t, d.s.Idle(), "request %d never finished", id)
		require.Less(d.t, steps, 10000, "request %d made no progress", id)
		r := d.s.Step(d.now)
		d.now += r.Duration
		for _, e := range r.Tokens {
			if e.First {
				d.ttft[e.ID] = d.now - d.added[e.ID]
				d.cached[e.ID] = e.CachedTokens
			}
		}
		for _, f := range r.Finished {
			d.done[f] = true
		}
	}
}

// serve adds a prompt and runs it to its end.
func (d *driver) serve(prompt []uint64, maxTokens int) uint64 {
	id := d.add(prompt, maxTokens)
	d.until(id)
	return id
}

// TestPrefixCaching checks, in virtual time, which prompt tokens a request
// finds in the prefix cache, and that they are not prefilled again. On the
// old code there was no prefix cache: every row's second request reported 0
// cached tokens and the same TTFT as the first.
func TestPrefixCaching(t *testing.T) {
	tests := []struct {
		name          string
		off           bool // PrefixCaching false
		first, second []uint64
		cached        int // cached tokens of the second request
	}{
		// The same 40-token prompt twice: 9 of its 10 full blocks hit; the
		// last token, hence its block, is always computed (vLLM's
		// max_cache_hit_length = num_tokens − 1).
		{"same prompt", false, toks(1, 40), toks(1, 40), 36},
		// 42 tokens: the 10 full blocks all hit, the 2 trailing tokens are computed.
		{"same prompt, partial last block", false, toks(1, 42), toks(1, 42), 40},
		// Distinct prompts share nothing.
		{"distinct prompts", false, toks(1, 40), toks(2, 40), 0},
		// A common 22-token prefix: its 5 full blocks.
		{"common prefix", false, cat(toks(1, 22), toks(2, 18)), cat(toks(1, 22), toks(3, 30)), 20},
		// The same block content after a different prefix is another block
		// (chained hashes): nothing is shared.
		{"same tail, other head", false, cat(toks(1, 4), toks(2, 36)), cat(toks(3, 4), toks(2, 36)), 0},
		// A prompt shorter than one block caches nothing.
		{"short prompt", false, toks(1, 3), toks(1, 3), 0},
		// Without PrefixCaching the same prompt is prefilled again.
		{"caching off", true, toks(1, 40), toks(1, 40), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := prefixConfig()
			cfg.PrefixCaching = !tt.off
			d := newDriver(t, cfg)
			a := d.serve(tt.first, 4)
			b := d.serve(tt.second, 4)
			assert.Equal(t, 0, d.cached[a], "the first request finds an empty cache")
			assert.Equal(t, tt.cached, d.cached[b])
			// The second prefill skips exactly the cached tokens: one step
			// of 10 ms + 1 ms per token beyond the knee of 4.
			want := 10*time.Millisecond + time.Duration(max(0, len(tt.second)-tt.cached-4))*time.Millisecond
			assert.Equal(t, want, d.ttft[b], "TTFT of the second request")
			if tt.cached > 0 {
				assert.Less(t, d.ttft[b], d.ttft[a], "a cache hit shortens TTFT")
			}
			st := d.s.Stats()
			if tt.off {
				assert.Zero(t, st.PrefixCacheQueries)
				assert.Zero(t, st.CachedBlocks)
			} else {
				assert.EqualValues(t, len(tt.first)+len(tt.second), st.PrefixCacheQueries)
				assert.EqualValues(t, tt.cached, st.PrefixCacheHits)
			}
			assert.Zero(t, st.KVUsedTokens, "finished requests hold no KV; cached blocks are free")
		})
	}
}

// TestPrefixCacheEviction fills a small cache and checks LRU eviction: the
// least recently freed prompts lose their blocks, tail first, while the
// most recent one and the blocks of a running sequence stay cached.
func TestPrefixCacheEviction(t *testing.T) {
	t.Run("least recently freed first", func(t *testing.T) {
		cfg := prefixConfig()
		cfg.KVCapacityTokens = 128 // 32 blocks
		d := newDriver(t, cfg)
		// A, B, C: 40-token prompts, 10 cached blocks each, 30 in all.
		for f := uint64(1); f <= 3; f++ {
			d.serve(toks(f, 40), 4)
		}
		require.Equal(t, 30, d.s.Stats().CachedBlocks)
		// D needs 11 blocks: the 2 empty ones, then A's least recently
		// freed blocks, its tail first, leaving A's head block.
		d.serve(toks(4, 40), 4)
		a := d.serve(toks(1, 40), 4)
		assert.Equal(t, 4, d.cached[a], "only A's first block survived")
		c := d.serve(toks(3, 40), 4)
		assert.Equal(t, 36, d.cached[c], "C, freed after B, is intact")
	})
	t.Run("blocks in use are never evicted", func(t *testing.T) {
		cfg := prefixConfig()
		cfg.KVCapacityTokens = 128 // 32 blocks
		d := newDriver(t, cfg)
		long := d.add(toks(1, 40), 40) // runs throughout, holding its 10 prompt blocks
		for f := uint64(2); f <= 8; f++ {
			d.serve(toks(f, 20), 4) // cycles 5 blocks of cache each through the rest
		}
		require.False(t, d.done[long], "the long request must still run")
		first := d.serve(toks(2, 20), 4)
		assert.Equal(t, 0, d.cached[first], "an early short prompt was evicted")
		again := d.serve(toks(1, 40), 4)
		assert.Equal(t, 36, d.cached[again], "the running request's prompt blocks stay cached")
		d.until(long)
	})
}

// TestBlockHashes checks the chained block hashes.
func TestBlockHashes(t *testing.T) {
	a := BlockHashes(toks(1, 10), 4)
	assert.Len(t, a, 2, "the partial third block has no hash")
	assert.Equal(t, a, BlockHashes(toks(1, 8), 4), "hashes depend only on the full blocks")
	b := BlockHashes(cat(toks(1, 4), toks(2, 4)), 4)
	assert.Equal(t, a[0], b[0])
	assert.NotEqual(t, a[1], b[1])
	c := BlockHashes(cat(toks(3, 4), toks(1, 8)[4:]), 4)
	assert.NotEqual(t, a[1], c[1], "the same tokens after another block hash differently")
	assert.Empty(t, BlockHashes(toks(1, 3), 4))
	assert.Empty(t, BlockHashes(toks(1, 8), 0))
}
