package call_test

// Tests of the request size limit and the per-connection request budget, which keep
// an anonymous client from making the server hold up to 64 MiB per stream.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// anonStreams serves reg with cfg on transport ("quic", "tcp" or "pipe") and returns a
// function opening a stream as an anonymous client. On QUIC and the pipe the streams
// share one connection; on TCP each stream is a connection.
func anonStreams(t *testing.T, transport string, reg *call.Registry, cfg call.Config) func(t *testing.T) core.Stream {
	t.Helper()
	var conn core.Conn
	var n *coretest.Node
	switch transport {
	case "pipe":
		conn = pipeServer(t, reg, nil, cfg)
	default:
		n, _ = startServer(t, reg, cfg)
		if transport == core.TransportQUIC {
			conn = n.Dial(t, call.ALPN, transport, nil)
		}
	}
	return func(t *testing.T) core.Stream {
		t.Helper()
		c := conn
		if c == nil {
			c = n.Dial(t, call.ALPN, transport, nil)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := c.OpenStream(ctx)
		if err != nil {
			t.Fatalf("open stream: %v", err)
		}
		return s
	}
}

// header is the 4-byte length of a frame of n bytes.
func header(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }

// paddedRequest is a call.requested frame for services/list whose body is exactly
// size bytes, padded with an envelope key receivers ignore.
func paddedRequest(t *testing.T, id string, size int) []byte {
	t.Helper()
	env := func(pad string) []byte {
		b, err := json.Marshal(map[string]any{"type": "call.requested", "id": id, "payload": map[string]any{"operationId": "/services/list"}, "pad": pad})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	body := env(strings.Repeat("x", size-len(env(""))))
	if len(body) != size {
		t.Fatalf("padded body is %d bytes, want %d", len(body), size)
	}
	return frameOf(body)
}

// TestRequestSizeLimit: a request frame over the limit is refused from its length
// alone, with INVALID_INPUT naming the limit, and its stream ends; one of exactly the
// limit is served. Config{} means the default of 1 MiB.
func TestRequestSizeLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   call.Config
		limit int
	}{
		{"default", call.Config{}, call.DefaultMaxRequestSize},
		{"configured", call.Config{MaxRequestSize: 4096}, 4096},
	} {
		for _, transport := range []string{core.TransportQUIC, core.TransportTCP, "pipe"} {
			t.Run(tc.name+"/"+transport, func(t *testing.T) {
				open := anonStreams(t, transport, testRegistry(t, newProbe()), tc.cfg)

				// The length of a too-large frame, and then nothing: the answer
				// cannot wait for the body.
				r := newRaw(t, open(t))
				r.writeBytes(header(tc.limit + 1))
				e := r.failure("")
				want := fmt.Sprintf("bad frame: frame length %d exceeds the request size limit of %d bytes", tc.limit+1, tc.limit)
				if e.Code != call.CodeInvalidInput || e.Message != want {
					t.Fatalf("got %s %q, want %s %q", e.Code, e.Message, call.CodeInvalidInput, want)
				}
				r.ended()

				// Exactly the limit is served, on a fresh stream of the same
				// connection where there is one.
				r = newRaw(t, open(t))
				r.writeBytes(paddedRequest(t, "at-limit", tc.limit))
				var out call.ListOutput
				r.output("at-limit", &out)
				if len(out.Operations) == 0 {
					t.Fatal("services/list answered nothing")
				}
			})
		}
	}
}

// TestMaxRequestSizeConfig: the toml key, and values past the protocol's maximum.
func TestMaxRequestSizeConfig(t *testing.T) {
	f, _ := reflect.TypeOf(call.Config{}).FieldByName("MaxRequestSize")
	if got := f.Tag.Get("toml"); got != "max_request_size" {
		t.Errorf("toml key %q, want max_request_size", got)
	}
	// Over MaxFrameSize means MaxFrameSize: a longer frame gets the protocol's own
	// error, a frame of MaxFrameSize is admitted (it waits for its body).
	open := anonStreams(t, "pipe", testRegistry(t, newProbe()), call.Config{MaxRequestSize: 2 * call.MaxFrameSize})
	r := newRaw(t, open(t))
	r.writeBytes(header(call.MaxFrameSize + 1))
	if e := r.failure(""); !strings.Contains(e.Message, fmt.Sprintf("exceeds the %d-byte limit", call.MaxFrameSize)) {
		t.Fatalf("frame over 64 MiB: %q", e.Message)
	}
	r = newRaw(t, open(t))
	r.writeBytes(header(call.MaxFrameSize))
	r.s.CloseWrite() // the body ends early: no answer, the stream just ends
	r.ended()
}

// TestClientRequestTooLarge: the Go client reports the server's refusal of an
// oversized request as INVALID_INPUT with the server's reason; on a multi-stream
// transport the connection goes on.
func TestClientRequestTooLarge(t *testing.T) {
	for _, target := range clientTargets(t, testRegistry(t, newProbe()), call.Config{MaxRequestSize: 1024}, nil) {
		t.Run(target.name, func(t *testing.T) {
			s := target.dial(t, nil)
			ctx := context.Background()
			_, err := call.Do[echoOut](ctx, s, "test/echo", echoIn{Msg: strings.Repeat("x", 2000)})
			if !errors.Is(err, call.ErrInvalidInput) || !strings.Contains(err.Error(), "exceeds the request size limit of 1024 bytes") {
				t.Fatalf("oversized request: %v", err)
			}
			if target.name == core.TransportTCP {
				return // the one stream was the connection
			}
			if out, err := call.Do[echoOut](ctx, s, "test/echo", echoIn{Msg: "small"}); err != nil || out.Msg != "small" {
				t.Fatalf("after the refusal: %q, %v", out.Msg, err)
			}
		})
	}
}

// TestRepliesUnlimited: outputs, subscription outputs and a client's replies to the
// server may exceed the request size limit of whoever reads them.
func TestRepliesUnlimited(t *testing.T) {
	const limit = 1024
	big := strings.Repeat("b", 8*limit)
	reg := call.NewRegistry()
	reg.MustRegister(call.Query("big/out", func(ctx context.Context, _ struct{}) (string, error) { return big, nil }))
	reg.MustRegister(call.Subscription("big/ticks", func(ctx context.Context, _ struct{}, emit func(string) error) error {
		for range 3 {
			if err := emit(big); err != nil {
				return err
			}
		}
		return nil
	}))
	reg.MustRegister(call.Query("big/ask-client", func(ctx context.Context, _ struct{}) (int, error) {
		out, err := call.Do[string](ctx, call.Remote(ctx), "client/big", nil)
		return len(out), err
	}))
	cfg := call.Config{MaxRequestSize: limit}
	for _, target := range clientTargets(t, reg, cfg, nil) {
		t.Run(target.name, func(t *testing.T) {
			creg := call.NewRegistry()
			creg.MustRegister(call.Query("client/big", func(ctx context.Context, _ struct{}) (string, error) { return big, nil }))
			s := target.dial(t, &call.ClientOptions{Registry: creg, Config: cfg})
			ctx := context.Background()
			if out, err := call.Do[string](ctx, s, "big/out", nil); err != nil || out != big {
				t.Fatalf("big/out: %d bytes, %v", len(out), err)
			}
			n := 0
			for out, err := range s.Subscribe(ctx, "big/ticks", nil) {
				if err != nil || string(out) != `"`+big+`"` {
					t.Fatalf("big/ticks: %d bytes, %v", len(out), err)
				}
				n++
			}
			if n != 3 {
				t.Fatalf("big/ticks gave %d outputs", n)
			}
			if got, err := call.Do[int](ctx, s, "big/ask-client", nil); err != nil || got != len(big) {
				t.Fatalf("big/ask-client = %d, %v", got, err)
			}
		})
	}
}

// TestRequestBudgetMemory: many streams of one connection each announce a request
// frame at the size limit, then send it but for its last byte, so nothing completes.
// Without a budget the server would hold all of them (memory growing one-for-one with
// the bytes sent); with it, it admits RequestBudgetFrames frames and refuses the rest
// from their length.
func TestRequestBudgetMemory(t *testing.T) {
	const (
		size    = 512 << 10 // the configured limit
		streams = 64        // 32 MiB if all were held
		want    = streams - call.RequestBudgetFrames
	)
	open := anonStreams(t, "pipe", testRegistry(t, newProbe()), call.Config{MaxRequestSize: size})
	body := make([]byte, size-1)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	// The lengths first; each stream's answer is awaited in the background.
	raws := make([]*rawStream, streams)
	refusals := make(chan int, streams)
	var readers sync.WaitGroup
	t.Cleanup(readers.Wait) // the streams close first (cleanups run last-in first-out)
	for i := range raws {
		raws[i] = newRaw(t, open(t))
		raws[i].writeBytes(header(size))
		readers.Add(1)
		go func() {
			defer readers.Done()
			if env, err := raws[i].recv(); err == nil && env.Type == "call.error" && env.ID == "" &&
				strings.Contains(string(env.Payload), "exceeds what this connection may send at once") {
				refusals <- i
			}
		}()
	}
	refused := map[int]bool{}
	for len(refused) < want {
		select {
		case i := <-refusals:
			refused[i] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d frames refused, want %d", len(refused), streams, want)
		}
	}
	// Then the bodies of the admitted frames, which the server reads.
	var writers sync.WaitGroup
	for i, r := range raws {
		if refused[i] {
			continue
		}
		writers.Add(1)
		go func() {
			defer writers.Done()
			if _, err := r.s.Write(body); err != nil {
				t.Errorf("stream %d: %v", i, err)
			}
		}()
	}
	writers.Wait()
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew %d KiB for %d stalled frames of %d KiB", grown>>10, streams, size>>10)
	// Each admitted frame: its read buffer (grown by append, up to a quarter more than
	// its length) and what the pipe buffers for the stream (256 KiB in coretest).
	// Without the budget all 64 frames are held: over 32 MiB.
	if limit := int64(call.RequestBudgetFrames*(size*5/4+256<<10) + 2<<20); grown > limit {
		t.Errorf("heap grew %d bytes, want under %d", grown, limit)
	}
	select {
	case i := <-refusals:
		t.Errorf("stream %d refused past the budget", i)
	default:
	}
	runtime.KeepAlive(raws)
}
