package faketest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/fake"
	"github.com/inferbench/inferbench/fake/sim"
)

// Model is the model name the engines serve unless opts.Model says otherwise.
const Model = "fake-model"

// Start starts the simulated engine of preset in-process with opts (Model
// when opts.Model is empty) and closes it when the test ends.
func Start(t testing.TB, preset string, opts fake.Options) *fake.Running {
	t.Helper()
	cfg, err := sim.Preset(preset)
	require.NoError(t, err)
	if opts.Model == "" {
		opts.Model = Model
	}
	r, err := fake.Start(cfg, opts)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

// StartStandalone builds and starts the standalone simulated engine
// (fake/cmd/fake-engine) with args, exactly as the prototype's README
// started its fake vLLM, on a free loopback port, and returns its
// chat-completions URL: one engine that several processes can load.
func StartStandalone(t testing.TB, args ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fake-engine")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/inferbench/inferbench/fake/cmd/fake-engine").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, append([]string{"--port", fmt.Sprint(port)}, args...)...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond, "the standalone engine did not come up: %s", &logs)
	return base + "/v1/chat/completions"
}
