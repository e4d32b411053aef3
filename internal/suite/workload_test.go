package suite

// End-to-end tests of the workload shapes (issue 12): length
// distributions, shared prefixes, conversations and the completions
// endpoint, through the functions BenchmarkServe calls.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/fake"
	"github.com/inferbench/inferbench/fake/faketest"
	"github.com/inferbench/inferbench/fake/sim"
	"github.com/inferbench/inferbench/internal/record"
)

func measured(recs []record.Record) []record.Record {
	var out []record.Record
	for _, r := range recs {
		if r.Phase == record.Measured {
			out = append(out, r)
		}
	}
	return out
}

func metric(r Result, unit string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Unit == unit {
			return m.Value, true
		}
	}
	return 0, false
}

// TestOutputDistEndToEnd is the bar for -output-tokens=uniform:16,256: the
// simulated engine gives every request exactly the length it asked for,
// and the lengths asked for span the range. On the old code the suite had
// no distribution: every request asked for -output-tokens.
func TestOutputDistEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a few seconds of load")
	}
	o := testOptions(t, "fake:vllm-like")
	o.OutputDist = "uniform:16,256"
	o.Concurrency = "8"
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	defer s.Close()
	res := runLevel(s, s.engines[0], 8, 40)
	require.NoError(t, res.err())
	recs := measured(readRecords(t, s.jsonlPath(s.engines[0].name)))
	require.Len(t, recs, 40)
	var asked []int
	for _, r := range recs {
		require.Equal(t, record.OK, r.Error, r.Message)
		assert.Equal(t, r.RequestedTokens, r.OutputTokens, "seq %d: the length asked for", r.Seq)
		asked = append(asked, r.RequestedTokens)
	}
	// 40 uniform draws over 241 values: the extremes are within 40 of the
	// ends with probability > 0.999.
	assert.GreaterOrEqual(t, slices.Min(asked), 16)
	assert.Less(t, slices.Min(asked), 56)
	assert.LessOrEqual(t, slices.Max(asked), 256)
	assert.Greater(t, slices.Max(asked), 216)
	assert.Contains(t, strings.Join(res.Logs, "\n"), "0 differ from the length asked for")
	assert.Contains(t, string(s.Header()), "output-tokens: uniform:16,256")
}

// withPrefixCaching turns the simulator's prefix caching on in cfg, under
// whatever name the option has landed (sim.Config.PrefixCaching on the
// fake branch), and reports whether it could.
func withPrefixCaching(cfg *sim.Config) bool {
	f := reflect.ValueOf(cfg).Elem().FieldByName("PrefixCaching")
	if !f.IsValid() || f.Kind() != reflect.Bool {
		return false
	}
	f.SetBool(true)
	return true
}

// TestSharedPrefixesHitTheCache is the bar for -prefix-tokens=1024
// -prefixes=4 against the simulated engine with prefix caching: the
// server's cached fraction is at least 0.8 of the cacheable fraction the
// workload reports, and TTFT p50 is below the same run without shared
// prefixes (same prompt length). It needs the simulator's prefix caching
// (the fake branch); without it the test skips and says so.
func TestSharedPrefixesHitTheCache(t *testing.T) {
	// Not parallel: it compares TTFTs measured in real time.
	if testing.Short() {
		t.Skip("a few seconds of load")
	}
	cfg, err := sim.Preset("vllm-like")
	require.NoError(t, err)
	if !withPrefixCaching(&cfg) {
		t.Skip("the simulator has no prefix caching yet (sim.Config.PrefixCaching): merge the fake branch, then this bar runs")
	}
	run := func(prefixes int) Result {
		r, err := fake.Start(cfg, fake.Options{Model: simulatedModel, Seed: 1})
		require.NoError(t, err)
		defer r.Close()
		o := testOptions(t, "mine="+r.URL())
		o.InputTokens = 1200
		o.OutputTokens = 8
		o.Concurrency = "2"
		if prefixes > 0 {
			o.PrefixTokens, o.Prefixes = 1024, prefixes
		}
		s, err := New(context.Background(), o)
		require.NoError(t, err)
		defer s.Close()
		res := runLevel(s, s.engines[0], 2, 30)
		require.NoError(t, res.err())
		return res
	}
	with, without := run(4), run(0)
	cached, ok := metric(with, "cached-prompt-frac")
	require.True(t, ok, "the simulator reports cached tokens: %v", with.Metrics)
	cacheable, ok := metric(with, "cacheable-prompt-frac")
	require.True(t, ok)
	t.Logf("cached %.3f of prompt tokens, cacheable %.3f; ttft p50 %v with prefixes, %v without",
		cached, cacheable, time.Duration(with.Summary.TTFT.P50), time.Duration(without.Summary.TTFT.P50))
	assert.InDelta(t, 1024.0/1200, cacheable, 0.03, "the prefix's share of the prompt")
	assert.GreaterOrEqual(t, cached, 0.8*cacheable)
	_, ok = metric(without, "cacheable-prompt-frac")
	assert.False(t, ok, "no shared prefixes, no cacheable fraction")
	assert.Less(t, with.Summary.TTFT.P50, without.Summary.TTFT.P50)
}

// TestSharedPrefixesCacheableFraction checks the cacheable fraction the
// suite reports without a caching server: prefix tokens ÷ prompt tokens,
// about L ÷ -input-tokens, and a record field per request.
func TestSharedPrefixesCacheableFraction(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "fake:vllm-like")
	o.InputTokens, o.PrefixTokens, o.Prefixes = 256, 128, 2
	o.OutputTokens = 2
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	defer s.Close()
	res := runLevel(s, s.engines[0], 1, 6)
	require.NoError(t, res.err())
	frac, ok := metric(res, "cacheable-prompt-frac")
	require.True(t, ok)
	assert.InDelta(t, 0.5, frac, 0.03)
	for _, r := range measured(readRecords(t, s.jsonlPath(s.engines[0].name))) {
		assert.InDelta(t, 128, r.PrefixTokens, 3, "seq %d", r.Seq)
		assert.InDelta(t, 256, r.PromptTokens, 3, "seq %d: the prefix is part of the prompt length", r.Seq)
	}
	assert.Contains(t, string(s.Header()), "prefix=2x128")
}

// answeringServer is an OpenAI-compatible chat server that answers every
// request with "answer to <its last user message>" and then one "x" per
// further token up to max_tokens, reports usage with prompt tokens
// ⌈bytes/4⌉ of all messages, and keeps every request's messages.
type answeringServer struct {
	mu   sync.Mutex
	reqs [][]map[string]string
}

func (a *answeringServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Messages  []map[string]string `json:"messages"`
		MaxTokens int                 `json:"max_tokens"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Messages) == 0 {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.reqs = append(a.reqs, body.Messages)
	a.mu.Unlock()
	prompt := 0
	for _, m := range body.Messages {
		prompt += (len(m["content"]) + 3) / 4
	}
	n := max(body.MaxTokens, 1)
	w.Header().Set("Content-Type", "text/event-stream")
	text := "answer to " + body.Messages[len(body.Messages)-1]["content"]
	for i := range n {
		if i > 0 {
			text = " x"
		}
		b, _ := json.Marshal(text)
		fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":%s},\"finish_reason\":null}]}\n\n", b)
	}
	fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n")
	fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d}}\n\ndata: [DONE]\n\n", prompt, n)
}

// TestConversationFile is the bar for a file of 3-turn conversations:
// records carry turn indexes 0–2, prompt tokens grow with the turn, and
// every turn's messages contain the engine's answers to the earlier turns
// (the server's own text, not the file's). On the old code a dataset entry
// was its first user turn only.
func TestConversationFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "conversations.jsonl")
	var b strings.Builder
	for i := range 4 {
		fmt.Fprintf(&b, `{"messages":[{"role":"user","content":"first question of conversation %d"},{"role":"assistant","content":"the file's answer"},{"role":"user","content":"second question of conversation %d"},{"role":"assistant","content":"the file's second answer"},{"role":"user","content":"third question of conversation %d"}],"max_tokens":4}`+"\n", i, i, i)
	}
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	srv := &answeringServer{}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	o := testOptions(t, "mine@m="+hs.URL+"/v1/chat/completions")
	o.Dataset, o.Turns, o.Concurrency = path, 3, "2"
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	defer s.Close()
	res := runLevel(s, s.engines[0], 2, 10)
	require.NoError(t, res.err())

	recs := readRecords(t, s.jsonlPath(s.engines[0].name))
	byConv := map[int][]record.Record{}
	turns := map[int]bool{}
	for _, r := range recs {
		require.NotZero(t, r.Conversation, "seq %d carries its conversation", r.Seq)
		if r.Phase == record.Cooldown && r.Error == record.Canceled {
			continue // the harness ends the cooldown
		}
		require.Equal(t, record.OK, r.Error, r.Message)
		byConv[r.Conversation] = append(byConv[r.Conversation], r)
		turns[r.Turn] = true
	}
	assert.Equal(t, map[int]bool{0: true, 1: true, 2: true}, turns)
	for c, rs := range byConv {
		for i := 1; i < len(rs); i++ {
			assert.Equal(t, rs[i-1].Turn+1, rs[i].Turn, "conversation %d: turns in order", c)
			assert.Greater(t, rs[i].PromptTokens, rs[i-1].PromptTokens, "conversation %d: turn %d's prompt holds turn %d's", c, rs[i].Turn, rs[i-1].Turn)
		}
	}
	// Every request's history: each assistant message is the server's
	// answer to the user message before it.
	srv.mu.Lock()
	defer srv.mu.Unlock()
	later := 0
	for _, msgs := range srv.reqs {
		for i, m := range msgs {
			if m["role"] == "assistant" {
				later++
				require.Positive(t, i)
				assert.True(t, strings.HasPrefix(m["content"], "answer to "+msgs[i-1]["content"]), "message %d is the engine's answer: %q", i, m["content"])
			}
		}
	}
	assert.Positive(t, later, "later turns were sent")
	assert.Contains(t, strings.Join(res.Logs, "\n"), "conversation turns: turn 0")
	_, ok := metric(res, "ttft-turn1-p50-ns")
	assert.True(t, ok, "TTFT per turn: %v", res.Metrics)
}

// TestSyntheticConversations checks -turns=3 with synthetic prompts
// against the simulated engine: turns 0–2, growing prompts, TTFT per turn.
func TestSyntheticConversationsEndToEnd(t *testing.T) {
	t.Parallel()
	o := testOptions(t, "fake:vllm-like")
	o.Turns, o.OutputTokens, o.Concurrency = 3, 4, "2"
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	defer s.Close()
	res := runLevel(s, s.engines[0], 2, 8)
	require.NoError(t, res.err())
	for _, unit := range []string{"ttft-turn0-p50-ns", "ttft-turn1-p50-ns", "ttft-turn2-p50-ns"} {
		_, ok := metric(res, unit)
		assert.True(t, ok, unit)
	}
	prompt := map[int][]int{}
	for _, r := range measured(readRecords(t, s.jsonlPath(s.engines[0].name))) {
		require.Equal(t, record.OK, r.Error, r.Message)
		prompt[r.Turn] = append(prompt[r.Turn], r.PromptTokens)
	}
	require.Len(t, prompt, 3)
	assert.Less(t, slices.Max(prompt[0]), slices.Min(prompt[1]))
	assert.Less(t, slices.Max(prompt[1]), slices.Min(prompt[2]))
}

// TestCompletionsEndpointEndToEnd runs -endpoint=completions against the
// simulated engine behind a proxy that notes the paths: every request goes
// to /v1/completions, and succeeds with the fixed length.
func TestCompletionsEndpointEndToEnd(t *testing.T) {
	t.Parallel()
	r := faketest.Start(t, "vllm-like", fake.Options{})
	target, err := url.Parse(r.URL())
	require.NoError(t, err)
	var mu sync.Mutex
	paths := map[string]int{}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	proxy.FlushInterval = -1
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		paths[req.URL.Path]++
		mu.Unlock()
		proxy.ServeHTTP(w, req)
	}))
	defer hs.Close()
	o := testOptions(t, "vllm-c@"+simulatedModel+"="+hs.URL+"/v1/chat/completions")
	o.Endpoint = "completions"
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	defer s.Close()
	res := runLevel(s, s.engines[0], 1, 4)
	require.NoError(t, res.err())
	for _, rec := range readRecords(t, s.jsonlPath(s.engines[0].name)) {
		assert.Equal(t, record.OK, rec.Error, rec.Message)
		assert.Equal(t, 16, rec.OutputTokens)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Zero(t, paths["/v1/chat/completions"])
	assert.GreaterOrEqual(t, paths["/v1/completions"], 5, "probes and requests: %v", paths)
	assert.Contains(t, string(s.Header()), "endpoint: completions")
}

func TestWorkloadFlagErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Options)
		want   []string
	}{
		// A typo in the distribution names the flag and the kinds there are.
		{"bad output dist", func(o *Options) { o.OutputDist = "zipf:1" }, []string{"-output-tokens", "uniform:LO,HI"}},
		// A prefix longer than the prompt it is part of.
		{"prefix too long", func(o *Options) { o.PrefixTokens, o.Prefixes = 1024, 4 }, []string{"-prefix-tokens", "longer than the shared prefix"}},
		// An unknown endpoint.
		{"bad endpoint", func(o *Options) { o.Endpoint = "embeddings" }, []string{"-endpoint", "chat or completions"}},
		// One synthetic turn is no conversation.
		{"one turn", func(o *Options) { o.Turns = 1 }, []string{"-turns", "at least 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(t, "fake:vllm-like")
			tt.mutate(&o)
			s, err := New(context.Background(), o)
			if s != nil {
				s.Close()
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
