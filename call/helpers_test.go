package call_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

type echoIn struct {
	Msg string `json:"msg"`
}

type echoOut struct {
	Msg string `json:"msg"`
}

type slowIn struct {
	Millis int    `json:"millis"`
	Tag    string `json:"tag,omitempty"`
}

type ticksIn struct {
	// N is the number of ticks; 0 means until aborted.
	N        int    `json:"n,omitempty"`
	EveryMS  int    `json:"every_ms,omitempty"`
	StartsAt int    `json:"starts_at,omitempty"`
	Tag      string `json:"tag,omitempty"` // names the probe channel closed on abort
}

// probe records what handlers saw, so tests can assert cancellation.
type probe struct {
	mu        sync.Mutex
	cancelled map[string]chan struct{} // tag → closed when that handler saw ctx end
	finished  map[string]chan struct{} // tag → closed when that handler ran to the end
	started   map[string]chan struct{} // tag → closed when that handler started
}

func newProbe() *probe {
	return &probe{cancelled: map[string]chan struct{}{}, finished: map[string]chan struct{}{}, started: map[string]chan struct{}{}}
}

func (p *probe) ch(m map[string]chan struct{}, tag string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := m[tag]
	if !ok {
		c = make(chan struct{})
		m[tag] = c
	}
	return c
}

func (p *probe) cancelledCh(tag string) chan struct{} { return p.ch(p.cancelled, tag) }
func (p *probe) finishedCh(tag string) chan struct{}  { return p.ch(p.finished, tag) }
func (p *probe) startedCh(tag string) chan struct{}   { return p.ch(p.started, tag) }

func wait(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// testRegistry builds the registry every wire test serves.
func testRegistry(t testing.TB, pr *probe) *call.Registry {
	reg := call.NewRegistry()
	must := func(op *call.Operation, opts ...call.Option) {
		if err := reg.Register(op, opts...); err != nil {
			t.Fatal(err)
		}
	}
	must(call.NodeInfoOp(call.NodeSource{NodeID: "testnode", Version: "v-test", ALPNs: func() []string { return []string{call.ALPN} }}))
	must(call.Query("test/echo", func(ctx context.Context, in echoIn) (echoOut, error) {
		return echoOut(in), nil
	}))
	must(call.Query("test/slow", func(ctx context.Context, in slowIn) (echoOut, error) {
		if in.Tag != "" {
			close(pr.startedCh(in.Tag))
		}
		select {
		case <-time.After(time.Duration(in.Millis) * time.Millisecond):
			if in.Tag != "" {
				close(pr.finishedCh(in.Tag))
			}
			return echoOut{Msg: "slept " + in.Tag}, nil
		case <-ctx.Done():
			if in.Tag != "" {
				close(pr.cancelledCh(in.Tag))
			}
			return echoOut{}, ctx.Err()
		}
	}))
	must(call.Query("test/secret", func(ctx context.Context, in echoIn) (echoOut, error) {
		return echoOut{Msg: "secret " + in.Msg}, nil
	}), call.InternalOnly())
	must(call.Mutation("test/admin", func(ctx context.Context, in echoIn) (echoOut, error) {
		return echoOut{Msg: "admin " + in.Msg}, nil
	}), call.Scopes(core.ScopeAdmin))
	must(call.Query("test/fail", func(ctx context.Context, in echoIn) (echoOut, error) {
		return echoOut{}, &call.Error{Code: "TEST_FAIL", Message: "failed on purpose", Details: json.RawMessage(`{"why":"test"}`)}
	}), call.Errors(call.ErrorSpec{Code: "TEST_FAIL", Description: "always"}))
	must(call.Subscription("test/ticks", func(ctx context.Context, in ticksIn, emit func(int) error) error {
		every := time.Duration(max(in.EveryMS, 1)) * time.Millisecond
		for i := 0; in.N == 0 || i < in.N; i++ {
			if err := emit(in.StartsAt + i); err != nil {
				if in.Tag != "" {
					close(pr.cancelledCh(in.Tag))
				}
				return err
			}
			select {
			case <-time.After(every):
			case <-ctx.Done():
				if in.Tag != "" {
					close(pr.cancelledCh(in.Tag))
				}
				return ctx.Err()
			}
		}
		return nil
	}))
	must(call.Subscription("test/fail-later", func(ctx context.Context, _ struct{}, emit func(int) error) error {
		if err := emit(1); err != nil {
			return err
		}
		return &call.Error{Code: "TEST_FAIL", Message: "failed after one output"}
	}), call.Errors(call.ErrorSpec{Code: "TEST_FAIL", Description: "always"}))
	// test/parent composes test/slow twice: one child follows the parent's abort, the
	// other (continue-running) outlives it.
	must(call.Query("test/parent", func(ctx context.Context, in slowIn) (echoOut, error) {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			call.Do[echoOut](ctx, call.Compose(ctx, call.ContinueRunning), "test/slow", slowIn{Millis: in.Millis, Tag: in.Tag + "-detached"})
		}()
		out, err := call.Do[echoOut](ctx, call.Compose(ctx, call.AbortDependents), "test/slow", slowIn{Millis: in.Millis, Tag: in.Tag + "-child"})
		wg.Wait()
		return out, err
	}))
	must(call.Query("test/compose-secret", func(ctx context.Context, in echoIn) (echoOut, error) {
		return call.Do[echoOut](ctx, call.Compose(ctx, call.AbortDependents), "/test/secret", in)
	}))
	return reg
}

// keys used by the tests: owner has "*", caller has "call", and anonymous has none.
type testKeys struct {
	owner, caller ed25519.PrivateKey
}

// startServer serves reg on a real endpoint (QUIC and TLS/TCP).
func startServer(t *testing.T, reg *call.Registry, cfg call.Config) (*coretest.Node, testKeys) {
	t.Helper()
	mux := core.NewMux()
	if err := mux.Handle(call.ALPN, &call.Server{Registry: reg, Config: cfg}); err != nil {
		t.Fatal(err)
	}
	caller := core.GenerateKey()
	n := coretest.StartNode(t, mux, coretest.WithPeers(coretest.PeerFor("caller", caller, core.ScopeCall)))
	return n, testKeys{owner: n.Owner, caller: caller}
}

// pipeServer serves reg on an in-memory connection whose client has identity id
// (nil: anonymous), and returns the client end.
func pipeServer(t *testing.T, reg *call.Registry, id *core.Identity, cfg call.Config) core.Conn {
	t.Helper()
	client, server := coretest.Pipe(call.ALPN, core.Peer{}, core.Peer{Identity: id})
	srv := &call.Server{Registry: reg, Config: cfg}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeConn(context.Background(), server)
		server.Close(0, "")
	}()
	t.Cleanup(func() {
		client.Close(0, "")
		<-done
	})
	return client
}

func codeOf(err error) string {
	var ce *call.Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	return ""
}
