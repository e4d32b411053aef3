package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/fake/faketest"
	"github.com/inferbench/inferbench/internal/testenv"
)

type pythonResult struct {
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	TTFTp50ms   float64 `json:"ttft_p50_ms"`
	ITLp50ms    float64 `json:"itl_p50_ms"`
	TPOTp50ms   float64 `json:"tpot_p50_ms"`
	OutputTokPS float64 `json:"output_tok_s"`
}

// TestTimingAgreesWithIndependentPythonClient measures the standalone simulated
// engine (--prefill-ms 80 --per-token-ms 4) with the suite and with an
// independent vLLM-style Python client (testdata/vllm_style_client.py) at
// concurrency 1 and 16: TTFT, ITL and tokens/s agree within 10 %, and at
// concurrency 1 they are 80 ms and 4 ms within 10 %.
func TestTimingAgreesWithIndependentPythonClient(t *testing.T) {
	testenv.Timing(t)
	python, err := exec.LookPath("python3")
	require.NoError(t, err, "the cross-check needs python3 (its standard library only)")
	url := faketest.StartStandalone(t, "--engine-name", "vLLM", "--model", "fake-model",
		"--prefill-ms", "80", "--per-token-ms", "4", "--tokens", "128")

	o := testOptions(t, "vllm="+url)
	o.OutputTokens = 128
	o.InputTokens = 64
	o.Concurrency = "1,16"
	s, err := New(context.Background(), o)
	require.NoError(t, err)
	defer s.Close()

	for _, tc := range []struct{ c, n int }{{1, 4}, {16, 48}} {
		lv := runLevel(s, s.engines[0], tc.c, tc.n)
		require.NoError(t, lv.err())
		require.Zero(t, lv.Summary.Failed)

		cmd := exec.Command(python, "../../testdata/vllm_style_client.py", "--url", url,
			"--concurrency", fmt.Sprint(tc.c), "--requests", fmt.Sprint(tc.n), "--max-tokens", "128", "--prompt-words", "45",
			"--stagger", fmt.Sprint(s.engines[0].probeE2E.Seconds()))
		out, err := cmd.Output()
		require.NoError(t, err, "python client: %s", out)
		var py pythonResult
		require.NoError(t, json.Unmarshal(out, &py), "%s", out)
		require.Zero(t, py.Errors)

		ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
		t.Logf("concurrency %d: suite ttft %.1f ms itl %.2f ms %.0f tok/s; python ttft %.1f ms itl %.2f ms %.0f tok/s",
			tc.c, ms(lv.Summary.TTFT.P50), ms(lv.Summary.ITL.P50), lv.Summary.OutputTokPerSec, py.TTFTp50ms, py.ITLp50ms, py.OutputTokPS)
		assert.InEpsilon(t, py.TTFTp50ms, ms(lv.Summary.TTFT.P50), 0.10, "TTFT p50 at %d", tc.c)
		assert.InEpsilon(t, py.ITLp50ms, ms(lv.Summary.ITL.P50), 0.10, "ITL p50 at %d", tc.c)
		assert.InEpsilon(t, py.OutputTokPS, lv.Summary.OutputTokPerSec, 0.10, "tok/s at %d", tc.c)
		if tc.c == 1 {
			assert.InEpsilon(t, 80, ms(lv.Summary.TTFT.P50), 0.10, "TTFT ≈ --prefill-ms")
			assert.InEpsilon(t, 4, ms(lv.Summary.ITL.P50), 0.10, "ITL ≈ --per-token-ms")
		}
	}
}
