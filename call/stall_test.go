package call_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// Tests for a peer that stops reading: writes are bounded by the caller's context on
// the client, and by the stall bound (the session's default timeout) everywhere.

// bigInput is a request larger than a pipe stream's window (256 KiB), so writing it to
// a peer that does not read blocks.
func bigInput(t *testing.T) json.RawMessage {
	t.Helper()
	in, err := json.Marshal(echoIn{Msg: strings.Repeat("x", 600<<10)})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// holdFirst is a server-side Conn whose first accepted stream is kept and never read:
// a server that stopped reading one stream. Later streams reach the server.
type holdFirst struct {
	core.Conn
	mu   sync.Mutex
	held core.Stream
}

func (c *holdFirst) AcceptStream(ctx context.Context) (core.Stream, error) {
	for {
		st, err := c.Conn.AcceptStream(ctx)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		first := c.held == nil
		if first {
			c.held = st
		}
		c.mu.Unlock()
		if !first {
			return st, nil
		}
	}
}

// within runs f and fails the test if it does not return within d (a bound far above
// what the behaviour needs, so a loaded machine does not flake it).
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: still blocked after %v", what, d)
	}
}

func wantDeadline(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, context.DeadlineExceeded) || codeOf(err) != call.CodeTimeout {
		t.Errorf("%s: got %v (code %q), want TIMEOUT matching context.DeadlineExceeded", what, err, codeOf(err))
	}
}

// TestCallDeadlineWhileServerStopsReading: on a multi-stream transport a call whose
// request cannot be written because the server stopped reading its stream returns at
// its deadline (TIMEOUT and context.DeadlineExceeded); so does a subscription, and a
// cancelled context gives context.Canceled. Only the stalled call's stream is
// affected: the session keeps serving other calls.
func TestCallDeadlineWhileServerStopsReading(t *testing.T) {
	reg := testRegistry(t, newProbe())
	client, server := coretest.Pipe(call.ALPN, core.Peer{}, core.Peer{Identity: &core.Identity{Name: "c", Scopes: []string{"call"}}})
	srvConn := &holdFirst{Conn: server}
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&call.Server{Registry: reg}).ServeConn(context.Background(), srvConn)
		server.Close(0, "")
	}()
	s := call.NewClient(client, nil)
	t.Cleanup(func() { s.Close(); <-done })

	within(t, 10*time.Second, "Call to a server that stopped reading", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := s.Call(ctx, "test/echo", bigInput(t))
		wantDeadline(t, "stalled Call", err)
	})

	// The session is still usable: a new call gets a new stream.
	out, err := call.Do[echoOut](context.Background(), s, "test/echo", echoIn{Msg: "after"})
	if err != nil || out.Msg != "after" {
		t.Fatalf("call after the stalled one: %v %v", out, err)
	}
}

// TestSubscribeDeadlineWhileServerStopsReading: the same for Subscribe, which ends
// with ctx.Err().
func TestSubscribeDeadlineWhileServerStopsReading(t *testing.T) {
	reg := testRegistry(t, newProbe())
	client, server := coretest.Pipe(call.ALPN, core.Peer{}, core.Peer{Identity: &core.Identity{Name: "c", Scopes: []string{"call"}}})
	srvConn := &holdFirst{Conn: server}
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&call.Server{Registry: reg}).ServeConn(context.Background(), srvConn)
		server.Close(0, "")
	}()
	s := call.NewClient(client, nil)
	t.Cleanup(func() { s.Close(); <-done })

	within(t, 10*time.Second, "Subscribe to a server that stopped reading", func() {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		defer cancel()
		var last error
		for _, err := range s.Subscribe(ctx, "test/ticks", bigInput(t)) {
			last = err
		}
		if !errors.Is(last, context.Canceled) {
			t.Errorf("stalled Subscribe ended with %v, want context.Canceled", last)
		}
	})
	n := 0
	for _, err := range call.Stream[int](context.Background(), s, "test/ticks", ticksIn{N: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("%d ticks after the stalled subscription", n)
	}
}

// signalWrite reports the first Write on a stream, so a test knows a writer is
// blocked in it.
type signalWrite struct {
	core.Stream
	once    sync.Once
	writing chan struct{}
}

func (s *signalWrite) Write(p []byte) (int, error) {
	s.once.Do(func() { close(s.writing) })
	return s.Stream.Write(p)
}

// TestSharedStreamStalledWrite: on a single-stream transport (an SSH channel, TLS over
// TCP) every call shares one stream. A call whose deadline passes while its request is
// only partly written returns at its deadline; the stream cannot carry a whole frame
// any more, so it fails, and the other calls on it get a clear INTERNAL error instead
// of hanging; later calls fail at once.
func TestSharedStreamStalledWrite(t *testing.T) {
	a, b := coretest.StreamPipe()
	t.Cleanup(func() { a.Close(); b.Close() }) // b is never read: a server that stopped reading
	sw := &signalWrite{Stream: a, writing: make(chan struct{})}
	clientConn := core.NewStreamConn(sw, call.ALPN, core.Peer{}, core.TransportSSH)
	s := call.NewClient(clientConn, nil)
	t.Cleanup(func() { s.Close() })

	first := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := s.Call(ctx, "test/echo", bigInput(t))
		first <- err
	}()
	wait(t, sw.writing, "the first request being written")
	// Queued behind the stalled write, with no deadline of its own (the default is 30 s).
	second := make(chan error, 1)
	go func() {
		_, err := s.Call(context.Background(), "test/echo", json.RawMessage(`{"msg":"queued"}`))
		second <- err
	}()
	within(t, 10*time.Second, "the stalled call", func() { wantDeadline(t, "stalled call", <-first) })
	within(t, 10*time.Second, "the call queued behind it", func() {
		// Usually "stream failed: ..."; "connection closed" if the session noticed
		// the end of its one stream first.
		if err := <-second; codeOf(err) != call.CodeInternal {
			t.Errorf("queued call: got %v, want INTERNAL", err)
		}
	})
	within(t, 10*time.Second, "a call after the failure", func() {
		_, err := s.Call(context.Background(), "test/echo", json.RawMessage(`{"msg":"later"}`))
		if codeOf(err) != call.CodeInternal {
			t.Errorf("call after the failure: got %v, want INTERNAL", err)
		}
	})
}

// TestServerWriteToClientThatStopsReading: a server's replies to a client that stopped
// reading are bounded too. A subscription producing into a stream nobody reads fails
// after the stall bound (the server's default timeout), so its handler returns rather
// than hanging forever and holding a call slot.
func TestServerWriteToClientThatStopsReading(t *testing.T) {
	reg := testRegistry(t, newProbe())
	ended := make(chan error, 1)
	chunk := strings.Repeat("y", 64<<10)
	reg.MustRegister(call.Subscription("test/flood", func(ctx context.Context, _ struct{}, emit func(string) error) error {
		for {
			if err := emit(chunk); err != nil {
				ended <- err
				return err
			}
		}
	}))
	client := pipeServer(t, reg, &core.Identity{Name: "c", Scopes: []string{"call"}}, call.Config{DefaultTimeout: core.Duration(300 * time.Millisecond)})
	st, err := client.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	body := call.AppendEnvelope(nil, call.TypeRequested, "1", []byte(`{"operationId":"test/flood","input":{}}`))
	if _, err := st.Write(call.AppendFrame(nil, body)); err != nil {
		t.Fatal(err)
	}
	// Never read st: the outputs fill the window and the server's writes block.
	within(t, 10*time.Second, "the subscription writing to a client that stopped reading", func() {
		if err := <-ended; err == nil {
			t.Error("emit into a stalled stream returned nil")
		}
	})
}
