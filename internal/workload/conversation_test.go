package workload

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/engines"
)

// runTurns runs seqs first..first+n-1 through cv as a closed loop of
// stride slots would (in order, each in its own goroutine), answering
// turn seq with "answer to SEQ" (or failing it when fail says so), and
// returns each seq's request and info.
func runTurns(t *testing.T, cv *Conversations, first, n int, fail func(seq int) bool) (map[int]engines.Request, map[int]TurnInfo) {
	t.Helper()
	var mu sync.Mutex
	reqs, infos := map[int]engines.Request{}, map[int]TurnInfo{}
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for seq := first; seq < first+n; seq++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, ti, end, err := cv.Begin(ctx, seq)
			if !assert.NoError(t, err, "seq %d", seq) {
				end("", false)
				return
			}
			mu.Lock()
			reqs[seq], infos[seq] = req, ti
			mu.Unlock()
			end(fmt.Sprintf("answer to %d", seq), fail == nil || !fail(seq))
		}()
	}
	wg.Wait()
	return reqs, infos
}

// TestSyntheticConversations checks 3-turn synthetic conversations two at
// a time: seqs map to conversations and turns by position, each turn's
// messages are the previous turn's plus the engine's answer plus a new
// user message, and only the first turn carries the shared prefix.
func TestSyntheticConversations(t *testing.T) {
	w, err := New(Spec{InputTokens: 40, OutputTokens: 8, Turns: 3, PrefixTokens: 20, Prefixes: 2, Seed: 5})
	require.NoError(t, err)
	const first, stride = 1000, 2
	cv, err := w.Conversations(first, stride, nil, nil)
	require.NoError(t, err)
	reqs, infos := runTurns(t, cv, first, 12, nil)
	// Position p = r mod 2 runs conversations p, p+2, ...: seq 1000+r is
	// conversation 1000 + p + 2·(k/3), turn k mod 3, with k = r/2.
	for r := range 12 {
		p, k := r%stride, r/stride
		ti := infos[first+r]
		assert.Equal(t, first+p+stride*(k/3), ti.Conversation, "seq %d", first+r)
		assert.Equal(t, k%3, ti.Turn, "seq %d", first+r)
		req := reqs[first+r]
		require.Len(t, req.Messages, 2*ti.Turn+1)
		for i, m := range req.Messages {
			if i%2 == 1 {
				assert.Equal(t, "assistant", m.Role)
				assert.Equal(t, fmt.Sprintf("answer to %d", first+r-stride*(ti.Turn-i/2)), m.Content, "seq %d message %d: the engine's answer", first+r, i)
			} else {
				assert.Equal(t, "user", m.Role)
			}
		}
		if ti.Turn > 0 {
			prev := reqs[first+r-stride]
			assert.Equal(t, prev.Messages, req.Messages[:len(prev.Messages)], "seq %d: the history is the previous turn's messages", first+r)
		}
		assert.True(t, strings.HasPrefix(req.Messages[0].Content, "prefix-"), "the first user turn opens with the shared prefix")
		assert.False(t, strings.HasPrefix(req.Messages[len(req.Messages)-1].Content, "prefix-") && ti.Turn > 0, "later turns have none")
		assert.Equal(t, 20, ti.Info.PrefixTokens)
	}
	// Deterministic: the same seqs give the same first turns in another run.
	cv2, _ := w.Conversations(first, stride, nil, nil)
	reqs2, _ := runTurns(t, cv2, first, 12, nil)
	assert.Equal(t, reqs, reqs2)
}

// TestConversationFailedTurn checks that a failed turn's answer is
// replaced in the next turn's history (and says so), and that the
// conversation goes on.
func TestConversationFailedTurn(t *testing.T) {
	w, err := New(Spec{InputTokens: 20, OutputTokens: 8, Turns: 2, Seed: 1})
	require.NoError(t, err)
	cv, err := w.Conversations(0, 1, nil, nil)
	require.NoError(t, err)
	reqs, infos := runTurns(t, cv, 0, 2, func(seq int) bool { return seq == 0 })
	require.Len(t, reqs[1].Messages, 3)
	assert.NotEqual(t, "answer to 0", reqs[1].Messages[1].Content)
	assert.NotEmpty(t, reqs[1].Messages[1].Content)
	assert.True(t, infos[1].Substituted)
	assert.False(t, infos[0].Substituted)
}

// TestThinkTime checks with a fake clock that a turn waits ThinkTime after
// its previous turn ended, and that Ready says when it could go.
func TestThinkTime(t *testing.T) {
	w, err := New(Spec{InputTokens: 20, OutputTokens: 8, Turns: 2, ThinkTime: 3 * time.Second, Seed: 1})
	require.NoError(t, err)
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	var slept []time.Duration
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	sleep := func(_ context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		slept = append(slept, d)
		now = now.Add(d)
		return nil
	}
	cv, err := w.Conversations(0, 1, clock, sleep)
	require.NoError(t, err)
	_, _, end, err := cv.Begin(context.Background(), 0)
	require.NoError(t, err)
	mu.Lock()
	now = now.Add(time.Second) // the turn took a second
	mu.Unlock()
	end("hi", true)
	_, ti, end1, err := cv.Begin(context.Background(), 1)
	require.NoError(t, err)
	end1("", true)
	assert.Equal(t, []time.Duration{3 * time.Second}, slept)
	assert.Equal(t, time.Unix(1004, 0), ti.Ready)
}

// TestBeginCanceled checks that a turn waiting for its previous one
// returns when its context ends.
func TestBeginCanceled(t *testing.T) {
	w, err := New(Spec{InputTokens: 20, OutputTokens: 8, Turns: 2, Seed: 1})
	require.NoError(t, err)
	cv, err := w.Conversations(0, 1, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, end, err := cv.Begin(ctx, 1) // turn 1; turn 0 never ends
	require.ErrorIs(t, err, context.Canceled)
	end("", false)
}

// TestDatasetConversations checks a JSONL file of 3-turn conversations:
// every turn's history has the earlier user turns and the engine's
// answers (not the dataset's), the system message opens every turn, and
// in dataset-length mode each turn asks for its dataset answer's length.
func TestDatasetConversations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conv.jsonl")
	var b strings.Builder
	for i := range 4 {
		fmt.Fprintf(&b, `{"messages":[{"role":"system","content":"be brief %d"},{"role":"user","content":"q0 of %d"},{"role":"assistant","content":"dataset answer 0 of %d"},{"role":"user","content":"q1 of %d"},{"role":"assistant","content":"a1"},{"role":"user","content":"q2 of %d"},{"role":"assistant","content":"the third answer, longer"}]}`+"\n", i, i, i, i, i)
	}
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	w, err := New(Spec{Dataset: path, Turns: 5, Seed: 1})
	require.NoError(t, err)
	cv, err := w.Conversations(0, 1, nil, nil)
	require.NoError(t, err)
	reqs, infos := runTurns(t, cv, 0, 6, nil)
	for seq := range 6 {
		ti, req := infos[seq], reqs[seq]
		assert.Equal(t, seq/3, ti.Conversation)
		assert.Equal(t, seq%3, ti.Turn)
		require.Len(t, req.Messages, 2+2*ti.Turn)
		assert.Equal(t, "system", req.Messages[0].Role)
		for j := 0; j < ti.Turn; j++ {
			assert.Equal(t, fmt.Sprintf("answer to %d", seq-ti.Turn+j), req.Messages[2+2*j].Content)
		}
		assert.Equal(t, []int{6, 1, 6}[ti.Turn], req.MaxTokens, "⌈bytes/4⌉ of the dataset's answer")
	}
	assert.Contains(t, w.Describe(), "turns=3")

	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte(`{"messages":[{"role":"user","content":"a"}]}`+"\n"+`{"messages":[{"role":"user","content":"a"},{"role":"tool","content":"x"}]}`+"\n"), 0o600))
	_, err = New(Spec{Dataset: bad, Turns: 2, OutputTokens: 4})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad.jsonl:2:")
	assert.Contains(t, err.Error(), `role "tool"`)
}
