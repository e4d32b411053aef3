package testenv

import (
	"os"
	"testing"
)

// TimingEnv is the environment variable that turns the timing checks on.
const TimingEnv = "INFERBENCH_TIMING"

// Timing skips t unless the run asks for timing checks (TimingEnv=1).
// Under -short they are skipped as well: they take seconds of load each.
func Timing(t testing.TB) {
	t.Helper()
	if os.Getenv(TimingEnv) != "1" {
		t.Skipf("a timing check: it runs in .ci/run's timing step (%s=1 go test -count=1 -run '^TestTiming' ./...)", TimingEnv)
	}
	if testing.Short() {
		t.Skip("a timing check: seconds of load (-short)")
	}
}
