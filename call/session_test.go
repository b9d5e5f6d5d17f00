package call_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// clientTarget gives a client Session to a server serving the test registry.
type clientTarget struct {
	name string
	dial func(t *testing.T, opts *call.ClientOptions) *call.Session
}

func clientTargets(t *testing.T, reg *call.Registry, cfg call.Config, onSession func(*call.Session)) []clientTarget {
	mux := core.NewMux()
	if err := mux.Handle(call.ALPN, &call.Server{Registry: reg, Config: cfg, OnSession: onSession}); err != nil {
		t.Fatal(err)
	}
	n := coretest.StartNode(t, mux)
	var targets []clientTarget
	for _, tr := range coretest.Transports {
		targets = append(targets, clientTarget{tr, func(t *testing.T, opts *call.ClientOptions) *call.Session {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := call.Dial(ctx, &core.Dialer{Key: n.Owner, Transport: tr}, n.Addr(), opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}})
	}
	targets = append(targets, clientTarget{"pipe", func(t *testing.T, opts *call.ClientOptions) *call.Session {
		c, srv := coretest.Pipe(call.ALPN, core.Peer{}, core.Peer{Identity: &core.Identity{Name: "owner", Scopes: []string{"*"}}})
		done := make(chan struct{})
		go func() {
			defer close(done)
			(&call.Server{Registry: reg, Config: cfg, OnSession: onSession}).ServeConn(context.Background(), srv)
		}()
		s := call.NewClient(c, opts)
		t.Cleanup(func() {
			s.Close()
			<-done
		})
		return s
	}})
	return targets
}

func TestClient(t *testing.T) {
	pr := newProbe()
	reg := testRegistry(t, pr)
	for _, target := range clientTargets(t, reg, call.Config{}, nil) {
		t.Run(target.name, func(t *testing.T) {
			s := target.dial(t, nil)
			ctx := context.Background()

			out, err := call.Do[echoOut](ctx, s, "test/echo", echoIn{Msg: "héllo \"quoted\""})
			if err != nil || out.Msg != "héllo \"quoted\"" {
				t.Fatalf("echo = %q, %v", out.Msg, err)
			}
			_, err = call.Do[echoOut](ctx, s, "/test/secret", echoIn{})
			if !errors.Is(err, call.ErrNotFound) {
				t.Fatalf("internal op: %v", err)
			}
			_, err = call.Do[echoOut](ctx, s, "test/fail", echoIn{})
			var ce *call.Error
			if !errors.As(err, &ce) || ce.Code != "TEST_FAIL" || string(ce.Details) != `{"why":"test"}` {
				t.Fatalf("declared error: %#v", err)
			}

			var got []int
			for v, err := range call.Stream[int](ctx, s, "test/ticks", ticksIn{N: 4}) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, v)
			}
			if len(got) != 4 || got[3] != 3 {
				t.Fatalf("ticks = %v", got)
			}

			// Leaving the loop early aborts the subscription.
			n := 0
			for _, err := range s.Subscribe(ctx, "test/ticks", json.RawMessage(`{"every_ms":2}`)) {
				if err != nil {
					t.Fatal(err)
				}
				if n++; n == 3 {
					break
				}
			}
			// A subscription called through Call returns its first output, and the
			// client then stops it.
			tag := "call-on-sub-" + target.name
			first, err := s.Call(ctx, "test/ticks", json.RawMessage(`{"every_ms":5,"starts_at":7,"tag":"`+tag+`"}`))
			if err != nil || string(first) != "7" {
				t.Fatalf("Call on a subscription: %s, %v", first, err)
			}
			wait(t, pr.cancelledCh(tag), "the subscription called through Call to stop")

			// The stream a subscription error ends with.
			for _, err := range s.Subscribe(ctx, "test/ticks", json.RawMessage(`{"n":"x"}`)) {
				if !errors.Is(err, call.ErrInvalidInput) {
					t.Fatalf("bad subscription input: %v", err)
				}
			}
		})
	}
}

func TestClientAbort(t *testing.T) {
	pr := newProbe()
	reg := testRegistry(t, pr)
	for _, target := range clientTargets(t, reg, call.Config{}, nil) {
		t.Run(target.name, func(t *testing.T) {
			s := target.dial(t, nil)
			tag := "abort-" + target.name
			errc := make(chan error, 1)
			go func() {
				_, err := s.Call(call.WithID(context.Background(), "my-id"), "test/slow", json.RawMessage(`{"millis":10000,"tag":"`+tag+`"}`))
				errc <- err
			}()
			wait(t, pr.startedCh(tag), "the slow call to start")
			s.Abort("my-id")
			if err := <-errc; !errors.Is(err, call.ErrAborted) {
				t.Fatalf("aborted call returned %v", err)
			}
			wait(t, pr.cancelledCh(tag), "the handler to see the abort")

			// Cancelling the context aborts too.
			tag2 := tag + "-ctx"
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				_, err := s.Call(ctx, "test/slow", json.RawMessage(`{"millis":10000,"tag":"`+tag2+`"}`))
				errc <- err
			}()
			wait(t, pr.startedCh(tag2), "the slow call to start")
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled call returned %v", err)
			}
			wait(t, pr.cancelledCh(tag2), "the handler to see the abort")
		})
	}
}

func TestTimeout(t *testing.T) {
	pr := newProbe()
	reg := testRegistry(t, pr)
	reg.MustRegister(call.Query("test/stubborn", func(ctx context.Context, _ struct{}) (int, error) {
		time.Sleep(2 * time.Second) // ignores its context
		return 1, nil
	}))
	cfg := call.Config{DefaultTimeout: core.Duration(200 * time.Millisecond)}
	for _, target := range clientTargets(t, reg, cfg, nil) {
		t.Run(target.name, func(t *testing.T) {
			// The client waits longer than the server's deadline, so TIMEOUT comes from
			// the server.
			s := target.dial(t, &call.ClientOptions{Config: call.Config{DefaultTimeout: core.Duration(5 * time.Second)}})
			start := time.Now()
			_, err := s.Call(context.Background(), "test/stubborn", nil)
			var ce *call.Error
			if !errors.As(err, &ce) || ce.Code != call.CodeTimeout || !ce.Retryable {
				t.Fatalf("got %v, want a retryable TIMEOUT", err)
			}
			// Well under the client's own 5 s: the server answered at its deadline
			// rather than waiting for the handler (roomy for a loaded machine).
			if time.Since(start) > 4*time.Second {
				t.Fatalf("TIMEOUT took %v: the server waited for the handler", time.Since(start))
			}
			// A subscription has no deadline.
			n := 0
			for _, err := range s.Subscribe(context.Background(), "test/ticks", json.RawMessage(`{"n":3,"every_ms":150}`)) {
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			if n != 3 {
				t.Fatalf("got %d ticks", n)
			}
			// The client's own deadline gives TIMEOUT too, and aborts the call.
			s2 := target.dial(t, &call.ClientOptions{Config: call.Config{DefaultTimeout: core.Duration(100 * time.Millisecond)}})
			tag := "client-timeout-" + target.name
			_, err = s2.Call(context.Background(), "test/slow", json.RawMessage(`{"millis":10000,"tag":"`+tag+`"}`))
			if !errors.Is(err, call.ErrTimeout) {
				t.Fatalf("client deadline: %v", err)
			}
			wait(t, pr.cancelledCh(tag), "the handler to be aborted after the client's timeout")
		})
	}
}

// TestCallerDeadline: when the caller's own deadline passes, the error is
// context.DeadlineExceeded, as Caller promises, and still TIMEOUT for code that
// switches on the class (the CLI's exit code); the call is aborted on the other side.
func TestCallerDeadline(t *testing.T) {
	pr := newProbe()
	reg := testRegistry(t, pr)
	check := func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
		}
		if !errors.Is(err, call.ErrTimeout) {
			t.Errorf("errors.Is(%v, call.ErrTimeout) = false", err)
		}
	}
	targets := clientTargets(t, reg, call.Config{}, nil)
	targets = append(targets, clientTarget{"local", nil})
	for _, target := range targets {
		t.Run(target.name, func(t *testing.T) {
			var c call.Caller
			if target.dial != nil {
				c = target.dial(t, nil)
			} else {
				c = reg.Local(core.Peer{Identity: &core.Identity{Name: "o", Scopes: []string{"*"}}})
			}
			tag := "deadline-" + target.name
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, err := c.Call(ctx, "test/slow", json.RawMessage(`{"millis":10000,"tag":"`+tag+`"}`))
			check(t, err)
			wait(t, pr.cancelledCh(tag), "the handler to be aborted at the caller's deadline")

			// A deadline that has already passed fails before anything is sent.
			past, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			defer cancel2()
			_, err = c.Call(past, "test/echo", json.RawMessage(`{"msg":"late"}`))
			check(t, err)

			// A subscription ends with ctx.Err() too.
			ctx3, cancel3 := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel3()
			var last error
			for _, err := range c.Subscribe(ctx3, "test/ticks", json.RawMessage(`{"every_ms":20}`)) {
				last = err
			}
			if !errors.Is(last, context.DeadlineExceeded) {
				t.Errorf("subscription past the deadline ended with %v", last)
			}
		})
	}
}

func TestCloseFailsPending(t *testing.T) {
	pr := newProbe()
	reg := testRegistry(t, pr)
	for _, target := range clientTargets(t, reg, call.Config{}, nil) {
		t.Run(target.name, func(t *testing.T) {
			s := target.dial(t, nil)
			tag := "close-" + target.name
			errc := make(chan error, 2)
			go func() {
				_, err := s.Call(context.Background(), "test/slow", json.RawMessage(`{"millis":10000,"tag":"`+tag+`"}`))
				errc <- err
			}()
			go func() {
				for _, err := range s.Subscribe(context.Background(), "test/ticks", json.RawMessage(`{"every_ms":10}`)) {
					if err != nil {
						errc <- err
						return
					}
				}
				errc <- errors.New("subscription completed")
			}()
			wait(t, pr.startedCh(tag), "the call to start")
			s.Conn().Close(0, "")
			for range 2 {
				if err := <-errc; !errors.Is(err, call.ErrInternal) {
					t.Fatalf("pending call after close: %v", err)
				}
			}
			wait(t, pr.cancelledCh(tag), "the server to cancel the handler")
			<-s.Done()
			if _, err := s.Call(context.Background(), "test/echo", nil); !errors.Is(err, call.ErrInternal) {
				t.Fatalf("call on a closed session: %v", err)
			}
		})
	}
}

// TestServerCallsClient: a server handler calls an operation the client registered,
// both through Remote(ctx) during a call and from OnSession.
func TestServerCallsClient(t *testing.T) {
	reg := call.NewRegistry()
	reg.MustRegister(call.Query("srv/ask-client", func(ctx context.Context, in echoIn) (echoOut, error) {
		return call.Do[echoOut](ctx, call.Remote(ctx), "client/shout", in)
	}))
	sessions := make(chan *call.Session, 8)
	for _, target := range clientTargets(t, reg, call.Config{}, func(s *call.Session) { sessions <- s }) {
		t.Run(target.name, func(t *testing.T) {
			creg := call.NewRegistry()
			var calls atomic.Int32
			creg.MustRegister(call.Query("client/shout", func(ctx context.Context, in echoIn) (echoOut, error) {
				calls.Add(1)
				return echoOut{Msg: strings.ToUpper(in.Msg)}, nil
			}))
			creg.MustRegister(call.Query("client/private", func(ctx context.Context, in echoIn) (echoOut, error) {
				return echoOut{}, nil
			}), call.Scopes(core.ScopeAdmin))
			s := target.dial(t, &call.ClientOptions{Registry: creg})
			out, err := call.Do[echoOut](context.Background(), s, "srv/ask-client", echoIn{Msg: "hi"})
			if err != nil || out.Msg != "HI" {
				t.Fatalf("srv/ask-client = %q, %v", out.Msg, err)
			}
			var srvSide *call.Session
			select {
			case srvSide = <-sessions:
			case <-time.After(5 * time.Second):
				t.Fatal("no session")
			}
			out, err = call.Do[echoOut](context.Background(), srvSide, "client/shout", echoIn{Msg: "direct"})
			if err != nil || out.Msg != "DIRECT" || calls.Load() != 2 {
				t.Fatalf("server→client = %q, %v (%d calls)", out.Msg, err, calls.Load())
			}
			// The node holds only "call" on the client by default.
			if _, err := call.Do[echoOut](context.Background(), srvSide, "client/private", echoIn{}); !errors.Is(err, call.ErrForbidden) {
				t.Fatalf("client/private from the server: %v", err)
			}
		})
	}
}

func TestAuthToken(t *testing.T) {
	reg := call.NewRegistry()
	reg.MustRegister(call.Query("who/ami", func(ctx context.Context, _ struct{}) (string, error) {
		p, _ := call.PeerFrom(ctx)
		return p.Name(), nil
	}))
	client, server := coretest.Pipe(call.ALPN, core.Peer{}, core.Peer{Identity: &core.Identity{Name: "conn", Scopes: []string{"call"}}})
	srv := &call.Server{Registry: reg, ResolveToken: func(_ context.Context, tok string) *core.Identity {
		if tok == "alk_good" {
			return &core.Identity{Name: "token-user", Scopes: []string{"call"}}
		}
		return nil
	}}
	done := make(chan struct{})
	go func() { defer close(done); srv.ServeConn(context.Background(), server) }()
	s := call.NewClient(client, nil)
	t.Cleanup(func() { s.Close(); <-done })
	for _, tc := range []struct{ token, want string }{{"", "conn"}, {"alk_good", "token-user"}, {"alk_bad", "conn"}} {
		ctx := context.Background()
		if tc.token != "" {
			ctx = call.WithToken(ctx, tc.token)
		}
		got, err := call.Do[string](ctx, s, "who/ami", struct{}{})
		if err != nil || got != tc.want {
			t.Errorf("token %q: %q, %v; want %q", tc.token, got, err, tc.want)
		}
	}
}

func TestFrameLimits(t *testing.T) {
	reg := call.NewRegistry()
	reg.MustRegister(&call.Operation{Name: "big/out", Type: call.OpQuery, Once: func(context.Context, json.RawMessage) (json.RawMessage, error) {
		b := make([]byte, 0, call.MaxFrameSize+16)
		b = append(b, '"')
		b = append(b, bytes.Repeat([]byte("a"), call.MaxFrameSize)...)
		return append(b, '"'), nil
	}})
	conn := pipeServer(t, reg, &core.Identity{Name: "o", Scopes: []string{"*"}}, call.Config{})
	s := call.NewClient(conn, nil)
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Call(ctx, "big/out", nil); !errors.Is(err, call.ErrInternal) || !strings.Contains(err.Error(), "64 MiB") {
		t.Fatalf("oversized output: %v", err)
	}
	if _, err := s.Call(ctx, "services/list", json.RawMessage(`{nope`)); !errors.Is(err, call.ErrInvalidInput) {
		t.Fatalf("invalid JSON input: %v", err)
	}
	// The connection still works.
	if _, err := s.Call(ctx, "services/list", nil); err != nil {
		t.Fatal(err)
	}
}

// TestServerShutdown: Shutdown closes idle connections at once and busy ones when
// their calls finish.
func TestServerShutdown(t *testing.T) {
	pr := newProbe()
	srv := &call.Server{Registry: testRegistry(t, pr)}
	owner := core.Peer{Identity: &core.Identity{Name: "o", Scopes: []string{"*"}}}
	start := func() (*call.Session, chan struct{}) {
		c, sc := coretest.Pipe(call.ALPN, core.Peer{}, owner)
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ServeConn(context.Background(), sc)
			sc.Close(core.CodeShutdown, "") // what the endpoint does when the handler returns
		}()
		s := call.NewClient(c, nil)
		t.Cleanup(func() { s.Close(); <-done })
		return s, done
	}
	idle, idleDone := start()
	if _, err := idle.Call(context.Background(), "services/list", nil); err != nil {
		t.Fatal(err)
	}
	busy, busyDone := start()
	result := make(chan error, 1)
	go func() {
		_, err := busy.Call(context.Background(), "test/slow", json.RawMessage(`{"millis":300,"tag":"shutdown"}`))
		result <- err
	}()
	wait(t, pr.startedCh("shutdown"), "the busy call to start")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err != nil {
		t.Fatalf("the call in flight during Shutdown: %v", err)
	}
	wait(t, idleDone, "the idle connection to close")
	wait(t, busyDone, "the busy connection to close")
	<-idle.Done()
}

func TestMaxCallsPerConn(t *testing.T) {
	pr := newProbe()
	conn := pipeServer(t, testRegistry(t, pr), &core.Identity{Name: "o", Scopes: []string{"*"}}, call.Config{MaxCallsPerConn: 2})
	s := call.NewClient(conn, nil)
	defer s.Close()
	results := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := s.Call(context.Background(), "test/slow", json.RawMessage(fmt.Sprintf(`{"millis":400,"tag":"max-%d"}`, i)))
			results <- err
		}()
		wait(t, pr.startedCh(fmt.Sprint("max-", i)), "a slow call to start")
	}
	_, err := s.Call(context.Background(), "test/echo", json.RawMessage(`{"msg":"x"}`))
	if !errors.Is(err, call.ErrInternal) || !strings.Contains(err.Error(), "too many calls") {
		t.Fatalf("third call: %v", err)
	}
	for range 2 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Call(context.Background(), "test/echo", json.RawMessage(`{"msg":"x"}`)); err != nil {
		t.Fatalf("after the slow calls: %v", err)
	}
}

// TestSingleStreamConn runs the protocol over one stream wrapped as a Conn, as an SSH
// channel ("ssh -W alknet-call:1") or a WebTransport stream hands it over: every call,
// in both directions, shares the stream.
func TestSingleStreamConn(t *testing.T) {
	pr := newProbe()
	reg := testRegistry(t, pr)
	reg.MustRegister(call.Query("srv/ask-client", func(ctx context.Context, in echoIn) (echoOut, error) {
		return call.Do[echoOut](ctx, call.Remote(ctx), "client/shout", in)
	}))
	a, b := coretest.StreamPipe()
	owner := core.Peer{Identity: &core.Identity{Name: "o", Scopes: []string{"*"}}}
	serverConn := core.NewStreamConn(b, call.ALPN, owner, core.TransportSSH)
	clientConn := core.NewStreamConn(a, call.ALPN, core.Peer{}, core.TransportSSH)
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&call.Server{Registry: reg}).ServeConn(context.Background(), serverConn)
		serverConn.Close(0, "")
	}()
	creg := call.NewRegistry()
	creg.MustRegister(call.Query("client/shout", func(_ context.Context, in echoIn) (echoOut, error) {
		return echoOut{Msg: strings.ToUpper(in.Msg)}, nil
	}))
	s := call.NewClient(clientConn, &call.ClientOptions{Registry: creg})
	t.Cleanup(func() { s.Close(); <-done })
	ctx := context.Background()
	errs := make(chan error, 8)
	for i := range 8 { // interleaved on the one stream
		go func() {
			msg := fmt.Sprint("m", i)
			out, err := call.Do[echoOut](ctx, s, "srv/ask-client", echoIn{Msg: msg})
			if err == nil && out.Msg != strings.ToUpper(msg) {
				err = fmt.Errorf("got %q for %q", out.Msg, msg)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, err := range call.Stream[int](ctx, s, "test/ticks", ticksIn{N: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("%d ticks", n)
	}
}

// TestNewClientNilConn: a nil connection is a programming error, reported at once and
// by name rather than as a nil dereference somewhere inside.
func TestNewClientNilConn(t *testing.T) {
	defer func() {
		msg, _ := recover().(string)
		if msg != "call: NewClient: nil connection" {
			t.Fatalf("NewClient(nil, nil) panicked with %q, want a clear message", msg)
		}
	}()
	call.NewClient(nil, nil)
	t.Fatal("NewClient(nil, nil) returned")
}
