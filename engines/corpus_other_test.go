//go:build !linux

package engines

import (
	"testing"

	"github.com/inferbench/inferbench/internal/record"
	"github.com/inferbench/inferbench/internal/transcript"
)

// feedLean: the epoll reader is Linux's only.
func feedLean(testing.TB, *transcript.Transcript, []transcript.Read) (record.Record, bool) {
	return record.Record{}, false
}
