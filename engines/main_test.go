package engines

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind: every request
// must end with its context, and every server and client is closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
