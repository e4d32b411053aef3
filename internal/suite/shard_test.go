package suite

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestShareAddsUp: the shares of every level differ by at most one and add
// up to the level, and shard 0 always has one (the merge relies on it).
func TestShareAddsUp(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 3, 7, 64} {
		for _, c := range []int{1, 2, 5, 63, 64, 65, 1000} {
			sum, lo, hi := 0, c, 0
			for i := range n {
				s := shareOf(c, i, n)
				sum += s
				lo, hi = min(lo, s), max(hi, s)
			}
			assert.Equal(t, c, sum, "c=%d n=%d", c, n)
			assert.LessOrEqual(t, hi-lo, 1, "c=%d n=%d", c, n)
			assert.Positive(t, shareOf(c, 0, n), "c=%d n=%d", c, n)
		}
	}
	// Interleaved seqs: no two shards send the same workload seq.
	seen := map[int]bool{}
	for i := range 3 {
		for k := range 100 {
			s := shardSpec{i, 3}.seq(k)
			assert.False(t, seen[s], "seq %d twice", s)
			seen[s] = true
		}
	}
}

func TestParseShardAndSchedule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, shard, at string
		every           time.Duration
		wantErr         string
	}{
		// Not sharded, no schedule.
		{"none", "", "", 0, ""},
		// A shard with a start instant and spacing.
		{"shard", "1/4", "2030-01-01T00:00:00Z", time.Minute, ""},
		// The index must be below N.
		{"index too big", "4/4", "", 0, "0 ≤ I < N"},
		// Not I/N at all.
		{"not a fraction", "two", "", 0, "want I/N"},
		// A start instant that is not RFC 3339.
		{"bad instant", "0/2", "tomorrow", 0, "not an RFC 3339 instant"},
		// Spacing without an origin.
		{"every without at", "", "", time.Minute, "-start-every needs -start-at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err1 := parseShard(tt.shard)
			_, err2 := parseSchedule(tt.at, tt.every)
			err := err1
			if err == nil {
				err = err2
			}
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
	sc, err := parseSchedule("2030-01-01T00:00:00Z", time.Minute)
	require.NoError(t, err)
	for k := range 3 {
		at, got, ok := sc.nextStart()
		require.True(t, ok)
		assert.Equal(t, k, got)
		assert.Equal(t, time.Date(2030, 1, 1, 0, k, 0, 0, time.UTC), at.UTC(), "sample k at start-at + k × every")
	}
}
