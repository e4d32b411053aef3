package load_test

import (
	"context"
	"fmt"
	"time"

	"github.com/inferbench/inferbench/internal/load"
	"github.com/inferbench/inferbench/internal/record"
)

// Example shows the benchmark harness's use: start C slots with a warm-up,
// dispatch one measured request per b.Loop iteration, then Finish.
func Example() {
	epoch := time.Now()
	do := func(ctx context.Context, rec *record.Record) { // stands in for engines.Client.Do
		rec.Sent = time.Since(epoch)
		rec.Chunks = []record.Chunk{{At: time.Since(epoch), Tokens: 1}}
		rec.OutputTokens, rec.FinishReason = 1, "length"
		rec.Done = time.Since(epoch)
	}
	run, err := load.Start(context.Background(), load.Config{Concurrency: 4, Warmup: 1, Epoch: epoch}, do)
	if err != nil {
		panic(err)
	}
	for range 10 { // for b.Loop() { ... }
		if err := run.Dispatch(); err != nil {
			break
		}
	}
	res := run.Finish()
	phases := map[record.Phase]int{}
	inWindow := true
	for _, r := range res.Records {
		phases[r.Phase]++
		if r.Phase == record.Measured {
			inWindow = inWindow && res.Window.Contains(r.Sent) && res.Window.Contains(r.Done)
		}
	}
	fmt.Println("dispatched:", res.Dispatched, "warm-up:", phases[record.Warmup], "measured:", phases[record.Measured])
	fmt.Println("measured requests inside the window:", inWindow, "err:", res.Err)
	// Output:
	// dispatched: 10 warm-up: 4 measured: 10
	// measured requests inside the window: true err: <nil>
}
