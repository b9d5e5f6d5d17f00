package call_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"go.uber.org/goleak"
)

// isShutdown reports whether err is the terminal error a server sends when it shuts
// down: INTERNAL (the spec's class for a connection that goes away) saying so.
func isShutdown(err error) bool {
	var ce *call.Error
	return errors.As(err, &ce) && ce.Code == call.CodeInternal && ce.Message == "server shutting down"
}

// subscribe runs a subscription to test/ticks in the background. started is closed on
// the first output; the final error goes to the returned channel.
func subscribe(s *call.Session, tag string) (started chan struct{}, result chan error) {
	started, result = make(chan struct{}), make(chan error, 1)
	go func() {
		first := true
		for _, err := range s.Subscribe(context.Background(), "test/ticks", json.RawMessage(`{"every_ms":5,"tag":"`+tag+`"}`)) {
			if err != nil {
				result <- err
				return
			}
			if first {
				close(started)
				first = false
			}
		}
		result <- errors.New("the subscription completed")
	}()
	return started, result
}

// recv waits for the error a background call ends with.
func recv(t *testing.T, c <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return nil
	}
}

// TestEndpointShutdownEndsSubscriptions: an open subscription does not hold up the
// endpoint's graceful shutdown. The call server ends it with a clear terminal error,
// and Endpoint.Shutdown returns nil long before its deadline.
func TestEndpointShutdownEndsSubscriptions(t *testing.T) {
	for _, tr := range coretest.Transports {
		t.Run(tr, func(t *testing.T) {
			baseline := goleak.IgnoreCurrent()
			pr := newProbe()
			mux := core.NewMux()
			if err := mux.Handle(call.ALPN, &call.Server{Registry: testRegistry(t, pr)}); err != nil {
				t.Fatal(err)
			}
			n := coretest.StartNode(t, mux)
			dial := func() *call.Session {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s, err := call.Dial(ctx, &core.Dialer{Key: n.Owner, Transport: tr}, n.Addr(), nil)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			idle, sub := dial(), dial()
			if _, err := idle.Call(context.Background(), "services/list", nil); err != nil {
				t.Fatal(err)
			}
			tag := "endpoint-shutdown-" + tr
			started, result := subscribe(sub, tag)
			wait(t, started, "the first output")

			// Without the fix the subscription keeps the connection busy and Shutdown
			// runs to this deadline; it is far above the 2 s QUIC linger (decision 0005)
			// a connection whose client stays open may cost.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := n.Shutdown(ctx); err != nil {
				t.Fatalf("Endpoint.Shutdown with an open subscription: %v", err)
			}
			if err := recv(t, result, "the subscription to end"); !isShutdown(err) {
				t.Fatalf("the subscription ended with %v, want INTERNAL \"server shutting down\"", err)
			}
			wait(t, pr.cancelledCh(tag), "the subscription's handler to be cancelled")
			wait(t, idle.Done(), "the idle session to end")
			wait(t, sub.Done(), "the subscriber's session to end")
			idle.Close()
			sub.Close()
			goleak.VerifyNone(t, baseline)
		})
	}
}

// TestShutdownDrain: while a server drains, its subscriptions end at once with the
// shutdown error and new calls are refused with it; a query already running may
// finish until Shutdown's context ends, and is then answered with the shutdown error
// too.
func TestShutdownDrain(t *testing.T) {
	pr := newProbe()
	srv := &call.Server{Registry: testRegistry(t, pr)}
	c, sc := coretest.Pipe(call.ALPN, core.Peer{}, core.Peer{Identity: &core.Identity{Name: "o", Scopes: []string{"*"}}})
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.ServeConn(context.Background(), sc)
		sc.Close(core.CodeShutdown, "")
	}()
	s := call.NewClient(c, nil)
	t.Cleanup(func() { s.Close(); <-served })

	busy := make(chan error, 1)
	go func() {
		_, err := s.Call(context.Background(), "test/slow", json.RawMessage(`{"millis":60000,"tag":"drain-busy"}`))
		busy <- err
	}()
	wait(t, pr.startedCh("drain-busy"), "the busy call to start")
	started, result := subscribe(s, "drain-sub")
	wait(t, started, "the first output")

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	if err := recv(t, result, "the subscription to end"); !isShutdown(err) {
		t.Fatalf("the subscription ended with %v", err)
	}
	wait(t, pr.cancelledCh("drain-sub"), "the subscription's handler to be cancelled")
	// The busy call keeps the connection open, and it refuses new work.
	if _, err := s.Call(context.Background(), "test/echo", json.RawMessage(`{"msg":"late"}`)); !isShutdown(err) {
		t.Fatalf("a call while draining: %v", err)
	}
	for _, err := range s.Subscribe(context.Background(), "test/ticks", nil) {
		if !isShutdown(err) {
			t.Fatalf("a subscription while draining: %v", err)
		}
	}
	select {
	case err := <-busy:
		t.Fatalf("the busy call ended while Shutdown had time left: %v", err)
	default:
	}
	cancel() // Shutdown's context ends: the busy call gives up too
	if err := recv(t, shut, "Shutdown"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	if err := recv(t, busy, "the busy call"); !isShutdown(err) {
		t.Fatalf("the busy call ended with %v", err)
	}
	wait(t, pr.cancelledCh("drain-busy"), "the busy handler to be cancelled")
}
