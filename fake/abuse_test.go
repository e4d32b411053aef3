package fake

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dropConns opens n connections to addr, 100 at a time, and drops each: some
// right away, some after half a request line, some after headers promising
// a body that never comes.
func dropConns(t testing.TB, addr string, n int) {
	t.Helper()
	partial := []string{
		"",
		"POST /v1/chat/completions HTT",
		"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\":",
	}
	for done := 0; done < n; {
		batch := min(100, n-done)
		var wg sync.WaitGroup
		errs := make(chan error, batch)
		for i := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", addr)
				if err != nil {
					errs <- err
					return
				}
				if p := partial[(done+i)%len(partial)]; p != "" {
					_, _ = c.Write([]byte(p))
				}
				_ = c.Close()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		done += batch
	}
}

// heapInuse returns HeapInuse after a GC.
func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// settleGoroutines waits until the goroutine count is at most base+slack.
func settleGoroutines(t testing.TB, base, slack int) int {
	t.Helper()
	var n int
	for range 500 {
		if n = runtime.NumGoroutine(); n <= base+slack {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("goroutines did not return to baseline: %d now, %d before", n, base)
	return n
}

// TestAbuse drops many connections, streams and oversized bodies at one
// server and checks that it stays up with goroutines back at baseline and
// bounded memory. 10,000 connections normally, 1,000 with -short.
func TestAbuse(t *testing.T) {
	conns := 10000
	if testing.Short() {
		conns = 1000
	}
	s, ts := newTest(t, fastCfg(t), Options{})
	http.DefaultClient.CloseIdleConnections()
	base := runtime.NumGoroutine()
	heap0 := heapInuse()

	dropConns(t, ts.Listener.Addr().String(), conns)

	// 50 streams dropped after their first event.
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/chat/completions", strings.NewReader(
				`{"model":"fake-model","messages":[{"role":"user","content":"x"}],"max_tokens":100000,"ignore_eos":true,"stream":true}`))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			buf := make([]byte, 64)
			_, _ = resp.Body.Read(buf)
			cancel()
			resp.Body.Close()
		}()
	}
	wg.Wait()

	// 10 MiB bodies: with a Content-Length (refused unread) and chunked.
	for _, chunked := range []bool{false, true} {
		var body io.Reader = io.LimitReader(zeros{}, 10<<20)
		if chunked {
			body = io.MultiReader(body) // hides the length
		}
		req, err := http.NewRequest("POST", ts.URL+"/v1/chat/completions", body)
		require.NoError(t, err)
		if !chunked {
			req.ContentLength = 10 << 20
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil { // the server may close before the client finished writing
			readAll(t, resp)
			assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "chunked=%v", chunked)
		}
	}

	// The server still answers, and has freed every slot.
	resp := mustGet(t, ts.URL+"/health")
	readAll(t, resp)
	require.Equal(t, 200, resp.StatusCode)
	eventually(t, "the engine to be idle", func() bool {
		st := s.Engine().Stats()
		return st.Running == 0 && st.KVUsedTokens == 0
	})
	http.DefaultClient.CloseIdleConnections()
	n := settleGoroutines(t, base, 2)
	heap1 := heapInuse()
	t.Logf("%d connections dropped; goroutines %d → %d; HeapInuse %.1f → %.1f MiB",
		conns, base, n, float64(heap0)/(1<<20), float64(heap1)/(1<<20))
	assert.Less(t, int64(heap1)-int64(heap0), int64(16<<20), "memory must stay bounded")
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

// BenchmarkDroppedConnections measures how fast the server absorbs
// connections opened and dropped at once.
func BenchmarkDroppedConnections(b *testing.B) {
	_, ts := newTest(b, fastCfg(b), Options{})
	start := time.Now()
	dropConns(b, ts.Listener.Addr().String(), b.N)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "conns/s")
}

// ExampleStart shows the suite's way to run two simulated engines in one
// process, each on its own loopback port.
func ExampleStart() {
	a, err := Start(mustPreset("vllm-like"), Options{EngineName: "vLLM"})
	if err != nil {
		panic(err)
	}
	defer a.Close()
	b, err := Start(mustPreset("friendli-like"), Options{EngineName: "Friendli (simulated)"})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	fmt.Println(strings.HasPrefix(a.URL(), "http://127.0.0.1:"), a.URL() != b.URL())
	// Output: true true
}
