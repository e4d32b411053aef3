package suite

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/fake/sim"
)

// TestEnsureFiles: a run that needs more descriptors than the soft limit
// raises it when the hard limit allows, and fails at once, naming the
// limit and the commands that raise it, when it does not.
func TestEnsureFiles(t *testing.T) {
	for _, tt := range []struct {
		name       string
		need       uint64
		soft, hard uint64
		raiseErr   error
		raised     uint64 // 0: not raised
		err        []string
	}{
		// Within the soft limit: nothing to do.
		{name: "fits", need: 500, soft: 1024, hard: 4096},
		// Above the soft limit, within the hard one: raised to what it needs.
		{name: "raised", need: 2000, soft: 1024, hard: 4096, raised: 2000},
		// Above the hard limit: the run does not start.
		{name: "over the hard limit", need: 20080, soft: 1024, hard: 4096,
			err: []string{"needs 20080 open files", "hard limit is 4096", "ulimit -Hn 20080", "LimitNOFILE=20080", "--ulimit nofile=20080:20080"}},
		// The raise refused: the run does not start, and says why.
		{name: "raise refused", need: 2000, soft: 1024, hard: 4096, raiseErr: errors.New("operation not permitted"), raised: 2000,
			err: []string{"raising it to 2000 failed: operation not permitted", "ulimit -n 2000"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var raised uint64
			err := ensureFiles(tt.need,
				func() (uint64, uint64, error) { return tt.soft, tt.hard, nil },
				func(n uint64) error { raised = n; return tt.raiseErr })
			assert.Equal(t, tt.raised, raised)
			if tt.err == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.err {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestFilesNeeded: a client's connections per engine, both ends of them
// for an engine simulated in this process, and the run's own files.
func TestFilesNeeded(t *testing.T) {
	remote, simulated := &Engine{name: "a"}, &Engine{name: "b", sim: new(sim.Config)}
	assert.Equal(t, uint64(filesPerRun+(10000+4)+4), filesNeeded([]*Engine{remote}, 10000))
	assert.Equal(t, uint64(filesPerRun+2*(256+4)+4), filesNeeded([]*Engine{simulated}, 256))
}
