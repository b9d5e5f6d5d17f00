package coretest_test

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/alkdev/alknet/core/coretest"
)

// A SyncBuffer takes a logger's output from many goroutines; Lines picks the lines a
// test looks for.
func ExampleSyncBuffer() {
	var logs coretest.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { log.Info("served", "stream", i) })
	}
	wg.Wait()
	fmt.Print(logs.Lines("stream=1")[0])
	fmt.Println(len(logs.Lines("msg=served")))
	// Output:
	// level=INFO msg=served stream=1
	// 3
}
