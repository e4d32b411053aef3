package engines

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/inferbench/inferbench/engines/internal/pacedserver"
	"github.com/inferbench/inferbench/internal/record"
)

// TestHTTP2 checks Options.HTTP2 against the paced server, whose h2c mode
// speaks only HTTP/2 (so a stream that arrives was HTTP/2): the stream
// arrives whole, and a mismatch of protocols fails clearly instead of
// falling back. On the old code the option does not exist.
func TestHTTP2(t *testing.T) {
	for _, tc := range []struct {
		name      string
		serverH2C bool
		clientH2  bool
		want      record.ErrorKind
	}{
		// Both HTTP/2 (h2c prior knowledge): the stream arrives.
		{"h2c both", true, true, record.OK},
		// An HTTP/1.1 client to the h2c-only server: refused, so the
		// success above was HTTP/2.
		{"HTTP/1.1 client, h2c server", true, false, record.Connect},
		// An HTTP/2 client to an HTTP/1.1-only server: the h2c preface is
		// not answered as HTTP/2; the request fails, no silent fallback.
		{"h2c client, HTTP/1.1 server", false, true, record.Connect},
		// Both HTTP/1.1, the default.
		{"HTTP/1.1 both", false, false, record.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := pacedserver.Start("127.0.0.1:0", pacedserver.Config{H2C: tc.serverH2C})
			require.NoError(t, err)
			t.Cleanup(srv.Close)
			c := newClient(t, srv.URL(), VLLM, Options{HTTP2: tc.clientH2})
			rec := do(t, c, context.Background(), Request{Messages: oneMsg, MaxTokens: 8})
			assert.Equal(t, tc.want, rec.Error, rec.Message)
			if tc.want == record.OK {
				assert.Len(t, rec.Chunks, 8)
				assert.Equal(t, 8, rec.OutputTokens)
				assert.Equal(t, record.Continuous, rec.TokenSource)
			}
		})
	}
}
