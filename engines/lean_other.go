//go:build !linux

package engines

import (
	"context"
	"net/url"
	"time"

	"github.com/inferbench/inferbench/internal/record"
)

// leanSupported says the epoll reader exists on this system: not here, so
// every request goes through net/http.
const leanSupported = false

// leanTransport is the epoll reader's transport; never built here.
type leanTransport struct{}

func newLeanTransport(*Client, *url.URL, Options) *leanTransport { return nil }

func (*leanTransport) do(context.Context, Request, *record.Record, *streamInfo, []byte) {}
func (*leanTransport) closeIdle()                                                       {}
func (*leanTransport) newConnectionPerRequest()                                         {}

// coalesceWindow is the epoll reader's (see reactor_linux.go); unused here.
var coalesceWindow time.Duration
