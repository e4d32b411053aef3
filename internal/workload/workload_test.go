package workload

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/engines"
)

func TestVocabularyWordsAreDistinctFourLetterWords(t *testing.T) {
	seen := map[string]bool{}
	for _, w := range vocabulary {
		assert.Len(t, w, 4, w)
		assert.False(t, seen[w], "duplicate %q", w)
		seen[w] = true
	}
}

func TestSyntheticDeterministic(t *testing.T) {
	spec := Spec{InputTokens: 64, OutputTokens: 16, Seed: 1}
	a, err := New(spec)
	require.NoError(t, err)
	b, err := New(spec)
	require.NoError(t, err)
	other, err := New(Spec{InputTokens: 64, OutputTokens: 16, Seed: 2})
	require.NoError(t, err)

	seen := map[string]bool{}
	for seq := range 200 {
		ra, rb := a.Request(seq), b.Request(seq)
		require.Equal(t, ra, rb, "same spec, same request %d", seq)
		require.Len(t, ra.Messages, 1)
		c := ra.Messages[0].Content
		assert.Equal(t, 16, ra.MaxTokens)
		assert.Len(t, strings.Fields(c), a.Words()+1, "id + filler words")
		assert.True(t, strings.HasPrefix(c, strings.Repeat("0", idWidth-3)), "fixed-width id first: %q", c[:12])
		assert.False(t, seen[c[:idWidth]], "each prompt opens with its own id")
		seen[c[:idWidth]] = true
		assert.NotEqual(t, c[idWidth:], other.Request(seq).Messages[0].Content[idWidth:], "another seed, other words")
	}
	assert.NotEqual(t, a.Request(1).Messages[0].Content[idWidth:], a.Request(2).Messages[0].Content[idWidth:], "filler differs per seq")
	assert.Equal(t, "synthetic in=64 out=16 seed=1", a.Describe())
	assert.Equal(t, 0, a.Len())
}

func TestPeriodN(t *testing.T) {
	w, err := New(Spec{InputTokens: 8, OutputTokens: 4, Seed: 3, N: 5})
	require.NoError(t, err)
	assert.Equal(t, w.Request(2), w.Request(7))
	assert.Equal(t, w.Request(4), w.Request(-1))
	assert.Equal(t, 5, w.Len())
	assert.Equal(t, "synthetic in=8 out=4 seed=3 n=5", w.Describe())
}

func TestOutputDist(t *testing.T) {
	tests := []struct {
		name  string
		spec  Spec
		check func(t *testing.T, lens []int)
	}{
		{
			// fixed: every request asks for OutputTokens.
			name: "fixed", spec: Spec{InputTokens: 8, OutputTokens: 32},
			check: func(t *testing.T, lens []int) {
				for _, n := range lens {
					assert.Equal(t, 32, n)
				}
			},
		},
		{
			// uniform:10-20: in range, both ends reached over 4000 draws.
			name: "uniform", spec: Spec{InputTokens: 8, OutputDist: "uniform:10-20"},
			check: func(t *testing.T, lens []int) {
				lo, hi := math.MaxInt, 0
				for _, n := range lens {
					lo, hi = min(lo, n), max(hi, n)
				}
				assert.Equal(t, 10, lo)
				assert.Equal(t, 20, hi)
			},
		},
		{
			// normal:100,10: sample mean within 1 and sd within 1 of the parameters.
			name: "normal", spec: Spec{InputTokens: 8, OutputDist: "normal:100,10"},
			check: func(t *testing.T, lens []int) {
				var sum, sq float64
				for _, n := range lens {
					sum += float64(n)
				}
				mean := sum / float64(len(lens))
				for _, n := range lens {
					sq += (float64(n) - mean) * (float64(n) - mean)
				}
				assert.InDelta(t, 100, mean, 1)
				assert.InDelta(t, 10, math.Sqrt(sq/float64(len(lens))), 1)
			},
		},
		{
			// normal with a mean near 1 never asks for fewer than 1 token.
			name: "normal clamps at 1", spec: Spec{InputTokens: 8, OutputDist: "normal:1,50"},
			check: func(t *testing.T, lens []int) {
				for _, n := range lens {
					assert.GreaterOrEqual(t, n, 1)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := New(tt.spec)
			require.NoError(t, err)
			w2, _ := New(tt.spec)
			var lens []int
			for seq := range 4000 {
				n := w.Request(seq).MaxTokens
				require.Equal(t, n, w2.Request(seq).MaxTokens, "deterministic")
				lens = append(lens, n)
			}
			tt.check(t, lens)
		})
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"nothing set", Spec{}, "InputTokens ≥ 1"},                                                       // no prompt source
		{"no output length", Spec{InputTokens: 8}, "OutputTokens ≥ 1"},                                   // synthetic needs a length
		{"negative input", Spec{InputTokens: -1}, "input tokens -1"},                                     // sign check
		{"negative output", Spec{InputTokens: 8, OutputTokens: -2}, "output tokens -2"},                  // sign check
		{"negative N", Spec{InputTokens: 8, OutputTokens: 1, N: -1}, "N -1"},                             // sign check
		{"dist and fixed", Spec{InputTokens: 8, OutputTokens: 4, OutputDist: "uniform:1-2"}, "not both"}, // ambiguous
		{"unknown dist", Spec{InputTokens: 8, OutputDist: "zipf:1"}, `unknown kind "zipf"`},              // typo
		{"uniform reversed", Spec{InputTokens: 8, OutputDist: "uniform:20-10"}, "1 ≤ LO ≤ HI"},           // empty range
		{"uniform garbage", Spec{InputTokens: 8, OutputDist: "uniform:a-b"}, "uniform:LO-HI"},            // not integers
		{"normal garbage", Spec{InputTokens: 8, OutputDist: "normal:100"}, "normal:MEAN,SD"},             // missing SD
		{"normal negative sd", Spec{InputTokens: 8, OutputDist: "normal:100,-1"}, "SD ≥ 0"},              // invalid SD
		{"fixed with argument", Spec{InputTokens: 8, OutputTokens: 4, OutputDist: "fixed:3"}, "no argument"},
		{"missing file", Spec{Dataset: "/nonexistent/x.jsonl", OutputTokens: 4}, "no such file"},       // path wrapped
		{"input with dataset", Spec{Dataset: "x.jsonl", InputTokens: 8, OutputTokens: 4}, "synthetic"}, // ignored knob
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.spec)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// server counts prompt tokens of a chat request the way some real server might.
type server func(engines.Request) int

// bytesOver4 is ceil(bytes/4) of all contents plus a 17-token chat template.
func bytesOver4(r engines.Request) int {
	n := 0
	for _, m := range r.Messages {
		n += len(m.Content)
	}
	return (n+3)/4 + 17
}

// words13 is round(words·1.3) with no template.
func words13(r engines.Request) int {
	n := 0
	for _, m := range r.Messages {
		n += len(strings.Fields(m.Content))
	}
	return int(math.Round(float64(n) * 1.3))
}

func TestCalibrateConverges(t *testing.T) {
	tests := []struct {
		name   string
		server server
		target int
	}{
		{"bytes/4 + 17, short prompt", bytesOver4, 48},   // template is a third of the prompt
		{"bytes/4 + 17, medium prompt", bytesOver4, 512}, // typical
		{"bytes/4 + 17, long prompt", bytesOver4, 4000},  // long context
		{"words × 1.3, short prompt", words13, 32},       // proportional counter
		{"words × 1.3, long prompt", words13, 2048},      // proportional counter
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := New(Spec{InputTokens: tt.target, OutputTokens: 8, Seed: 7})
			require.NoError(t, err)
			for probe := range 2 {
				req := w.Request(1_000_000 + probe)
				require.NoError(t, w.CalibrateWith(req, tt.server(req)))
			}
			// After two probes, every later request is within ±2 tokens.
			for seq := range 50 {
				got := tt.server(w.Request(seq))
				assert.InDelta(t, tt.target, got, 2, "seq %d: %d tokens for %d words", seq, got, w.Words())
			}
		})
	}
}

func TestCalibrateErrors(t *testing.T) {
	w, err := New(Spec{InputTokens: 10, OutputTokens: 8})
	require.NoError(t, err)
	words := w.Words()
	req := w.Request(0)

	err = w.CalibrateWith(req, 0)
	require.Error(t, err, "no usage reported")
	assert.Contains(t, err.Error(), "include_usage")
	assert.Equal(t, words, w.Words(), "unchanged after an error")

	require.Error(t, w.CalibrateWith(engines.Request{}, 10), "no words in the probe")

	// A 40-token template leaves no room for a 10-token prompt: the first
	// probe's proportional fit shrinks the prompt, the second probe (a
	// different word count) reveals the overhead.
	template40 := func(r engines.Request) int { return 40 + len(strings.Fields(r.Messages[0].Content)) }
	require.NoError(t, w.CalibrateWith(req, template40(req)))
	require.NotEqual(t, words, w.Words(), "the first probe changed the word count")
	req2 := w.Request(1)
	err = w.CalibrateWith(req2, template40(req2))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "below the fixed overhead of about 41 tokens")
	assert.Equal(t, 1, w.Words())

	// Fewer tokens for more words is not a tokenizer.
	w2, err := New(Spec{InputTokens: 100, OutputTokens: 8})
	require.NoError(t, err)
	require.NoError(t, w2.CalibrateWith(w2.Request(0), 200)) // 100 words → 200 tokens: halve the words
	require.Equal(t, 49, w2.Words())
	err = w2.CalibrateWith(w2.Request(1), 300) // 50 words → 300 tokens
	require.Error(t, err)
	assert.Contains(t, err.Error(), "do not grow")

	path := writeFile(t, "d.jsonl", `{"prompt":"hi","max_tokens":3}`)
	ds, err := New(Spec{Dataset: path})
	require.NoError(t, err)
	require.ErrorIs(t, ds.CalibrateWith(ds.Request(0), 5), ErrNotSynthetic)
}

// TestProbeCalibrate: the Probe/Calibrate pair as the suite's preflight uses
// it, against a counter like the simulated engine's (bytes/4 + 7 template
// tokens): one probe is within 3 %, two are within ±2 tokens.
func TestProbeCalibrate(t *testing.T) {
	fakeLike := func(r engines.Request) int { return (len(r.Messages[0].Content)+3)/4 + 7 }
	w, err := New(Spec{InputTokens: 128, OutputTokens: 8, Seed: 1})
	require.NoError(t, err)
	require.ErrorContains(t, w.Calibrate(100), "no Probe")

	p := w.Probe()
	assert.True(t, strings.HasPrefix(p.Messages[0].Content, "-00000001 "), "the probe's id is outside every run")
	uncalibrated := fakeLike(w.Request(0))
	require.NoError(t, w.Calibrate(fakeLike(p)))
	one := fakeLike(w.Request(0))
	assert.InEpsilon(t, 128, one, 0.03, "one probe: %d tokens (uncalibrated %d)", one, uncalibrated)
	assert.Greater(t, math.Abs(float64(uncalibrated-128)), math.Abs(float64(one-128)))

	p = w.Probe()
	require.NoError(t, w.Calibrate(fakeLike(p)))
	for seq := range 20 {
		assert.InDelta(t, 128, fakeLike(w.Request(seq)), 2)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

const shareGPT = `[
  {"id": "a", "conversations": [{"from": "human", "value": "What is Go?"}, {"from": "gpt", "value": "A programming language."}]},
  {"id": "b", "conversations": [{"from": "gpt", "value": "no question here"}]},
  {"id": "c", "conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}, {"from": "human", "value": "later turn"}]},
  {"id": "d", "conversations": [{"from": "human", "value": "unanswered"}]}
]`

func TestShareGPT(t *testing.T) {
	path := writeFile(t, "sg.json", shareGPT)

	// Dataset lengths: entries b (no human) and d (no answer) are skipped.
	w, err := New(Spec{Dataset: path, Seed: 1})
	require.NoError(t, err)
	assert.Equal(t, 2, w.Len())
	got := map[string]int{}
	for seq := range 2 {
		r := w.Request(seq)
		require.Len(t, r.Messages, 1)
		assert.Equal(t, "user", r.Messages[0].Role)
		got[r.Messages[0].Content] = r.MaxTokens
	}
	// ⌈23 bytes/4⌉ = 6 and ⌈5/4⌉ = 2.
	assert.Equal(t, map[string]int{"What is Go?": 6, "Hi": 2}, got)
	assert.Equal(t, "sharegpt file="+path+" entries=2 skipped=2 out=dataset seed=1", w.Describe())

	// Fixed lengths: the unanswered entry is usable too.
	w, err = New(Spec{Dataset: path, OutputTokens: 50})
	require.NoError(t, err)
	assert.Equal(t, 3, w.Len())
	assert.Equal(t, 50, w.Request(0).MaxTokens)

	// Same seed, same order; past the first pass the entries come back
	// salted with their seq from the first character on, so no two
	// requests of a run share a prompt prefix (and the probe, seq -1,
	// shares none with any of them).
	a, _ := New(Spec{Dataset: path, OutputTokens: 5, Seed: 9})
	b, _ := New(Spec{Dataset: path, OutputTokens: 5, Seed: 9})
	openings := map[string]int{}
	for seq := -1; seq < 9; seq++ {
		assert.Equal(t, a.Request(seq), b.Request(seq))
		p := a.Request(seq).Messages[0].Content
		open := p[:min(len(p), 14)] // "[request N] " and the text's start: a few tokens
		if q, ok := openings[open]; ok {
			t.Errorf("seq %d opens like seq %d: %q", seq, q, open)
		}
		openings[open] = seq
	}
	assert.Equal(t, "[request 3] "+a.Request(0).Messages[0].Content, a.Request(3).Messages[0].Content)
	assert.Equal(t, a.Request(0).MaxTokens, a.Request(3).MaxTokens)
	// With an explicit period (N) the caller asked for repetition: no salt.
	n, _ := New(Spec{Dataset: path, OutputTokens: 5, Seed: 9, N: 2})
	assert.Equal(t, n.Request(0), n.Request(2))
}

func TestJSONL(t *testing.T) {
	path := writeFile(t, "d.jsonl", `{"prompt": "one", "max_tokens": 7}

{"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "two"}], "max_tokens": 9, "extra": true}
`)
	w, err := New(Spec{Dataset: path, N: 2})
	require.NoError(t, err)
	got := map[string]engines.Request{}
	for seq := range 2 {
		r := w.Request(seq)
		got[r.Messages[len(r.Messages)-1].Content] = r
	}
	assert.Equal(t, engines.Request{Messages: []engines.Message{{Role: "user", Content: "one"}}, MaxTokens: 7}, got["one"])
	assert.Equal(t, engines.Request{Messages: []engines.Message{{Role: "system", Content: "sys"}, {Role: "user", Content: "two"}}, MaxTokens: 9}, got["two"])

	// A returned request is a copy: editing it does not change the workload.
	r := w.Request(0)
	r.Messages[0].Content = "changed"
	assert.NotEqual(t, "changed", w.Request(0).Messages[0].Content)

	_, err = New(Spec{Dataset: path, N: 3})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "only 2 usable entries")
}

func TestDatasetErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		content string
		output  int // Spec.OutputTokens
		want    string
	}{
		{"empty file", "e.jsonl", "", 4, "e.jsonl is empty"},                                                     // nothing at all
		{"only blank lines", "b.jsonl", "\n  \n", 4, "b.jsonl is empty"},                                         // whitespace only
		{"not JSON", "t.txt", "\nhello", 4, "t.txt:2: not a ShareGPT JSON array"},                                // plain text
		{"bad JSON line", "d.jsonl", "{\"prompt\":\"a\"}\n{\"prompt\": }\n", 4, "d.jsonl:2: not a JSON object"},  // syntax error on line 2
		{"two values on a line", "d.jsonl", "{\"prompt\":\"a\"} {}\n", 4, "d.jsonl:1: more than one JSON value"}, // glued lines
		{"both shapes", "d.jsonl", "{\"prompt\":\"a\",\"messages\":[]}", 4, `d.jsonl:1: has both "prompt" and "messages"`},
		{"neither shape", "d.jsonl", "{\"text\":\"a\"}", 4, `d.jsonl:1: want {"prompt"`},        // unknown shape
		{"empty prompt", "d.jsonl", "{\"prompt\":\"  \"}", 4, `d.jsonl:1: "prompt" is empty`},   // nothing to send
		{"empty messages", "d.jsonl", "{\"messages\":[]}", 4, `d.jsonl:1: "messages" is empty`}, // nothing to send
		{"message without role", "d.jsonl", "\n\n{\"messages\":[{\"content\":\"x\"}]}", 4, `d.jsonl:3: messages[0] has no "role"`},
		{"content not a string", "d.jsonl", "{\"messages\":[{\"role\":\"user\",\"content\":[1]}]}", 4, "d.jsonl:1: not a JSON object"},
		{"missing content", "d.jsonl", "{\"messages\":[{\"role\":\"user\"}]}", 4, `messages[0] has no "content"`}, // null content
		{"bad max_tokens", "d.jsonl", "{\"prompt\":\"a\",\"max_tokens\":0}", 4, `"max_tokens" 0`},                 // must be ≥ 1
		{"no length anywhere", "d.jsonl", "{\"prompt\":\"a\"}", 0, `d.jsonl:1: no "max_tokens"`},                  // dataset-length mode
		{"ShareGPT truncated", "s.json", "[\n{\"conversations\": [\n", 4, "s.json:3: ShareGPT"},                   // EOF inside
		{"ShareGPT wrong type", "s.json", "[\n{\"conversations\": 5}]", 4, "s.json:2: ShareGPT"},                  // conversations not a list
		{"ShareGPT missing comma", "s.json", "[{\"conversations\":[]}\n {\"conversations\":[]}]", 4, "s.json:2: ShareGPT"},
		{"ShareGPT trailing data", "s.json", "[]\n]", 4, "s.json:2: ShareGPT: unexpected data"}, // junk after
		{"ShareGPT nothing usable", "s.json", `[{"conversations":[{"from":"gpt","value":"x"}]}]`, 4, "no usable entries (1 skipped)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Spec{Dataset: writeFile(t, tt.file, tt.content), OutputTokens: tt.output})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func FuzzDataset(f *testing.F) {
	f.Add([]byte(shareGPT), false, uint8(0))
	f.Add([]byte(shareGPT), true, uint8(0))
	f.Add([]byte(`{"prompt":"a","max_tokens":3}`+"\n"+`{"messages":[{"role":"user","content":"b"}]}`), false, uint8(0))
	f.Add([]byte("[\n{\"conversations\": [\n"), true, uint8(0))
	f.Add([]byte("\ufeff{\"prompt\":\"x\"}"), false, uint8(1))
	f.Add([]byte("[null, 1, \"x\"]"), false, uint8(0))
	f.Add([]byte("{\"messages\":[{\"role\":null,\"content\":null}]}"), false, uint8(0))
	f.Add([]byte(`{"messages":[{"role":"system","content":"s"},{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}`), true, uint8(3))
	f.Add([]byte(shareGPT), true, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, needLengths bool, turns uint8) {
		maxTurns := int(turns % 5)
		ds, err := parseDataset("fuzz", data, needLengths, maxTurns)
		if err != nil {
			assert.True(t, strings.HasPrefix(err.Error(), "fuzz") || strings.HasPrefix(err.Error(), "dataset fuzz"), "error names the file: %v", err)
			return
		}
		require.NotEmpty(t, ds.entries)
		for _, e := range ds.entries {
			require.NotEmpty(t, e.messages)
			assert.GreaterOrEqual(t, e.line, 1)
			if needLengths {
				assert.GreaterOrEqual(t, e.maxTokens, 1)
			}
			if maxTurns > 0 {
				require.NotEmpty(t, e.turns)
				assert.LessOrEqual(t, len(e.turns), maxTurns)
				for _, tr := range e.turns {
					if needLengths {
						assert.GreaterOrEqual(t, tr.answerTokens, 1)
					}
				}
			} else {
				assert.Empty(t, e.turns)
			}
		}
	})
}
