package core_test

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// TestPanicIsolated checks that a handler panic ends only its own connection.
func TestPanicIsolated(t *testing.T) {
	m := newEchoMux(t)
	m.HandleFunc("alknet/panic", func(ctx context.Context, c core.Conn) error {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return err
		}
		s.Read(make([]byte, 1))
		panic("boom")
	})
	n := coretest.StartNode(t, m)
	for _, tr := range coretest.Transports {
		t.Run(tr, func(t *testing.T) {
			good := n.Dial(t, echoALPN, tr, n.Owner)
			bad := n.Dial(t, "alknet/panic", tr, n.Owner)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			bs, err := bad.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			bs.Write([]byte("x"))
			if _, err := io.ReadAll(bs); err == nil && tr == core.TransportQUIC {
				// QUIC reports the application close as an error; TCP as EOF.
			}
			roundTrip(t, good, []byte("still here"))
		})
	}
}

type nilHandler struct{ n int }

func (h *nilHandler) ServeConn(context.Context, core.Conn) error { h.n++; return nil }

func TestMuxHandleRejectsBadRegistrations(t *testing.T) {
	m := core.NewMux()
	h := core.HandlerFunc(func(context.Context, core.Conn) error { return nil })
	if err := m.Handle("alknet/a", h); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		alpn string
		h    core.Handler
	}{
		"empty":     {"", h},
		"nil":       {"alknet/b", nil},
		"nil func":  {"alknet/c", core.HandlerFunc(nil)},
		"nil ptr":   {"alknet/d", (*nilHandler)(nil)},
		"duplicate": {"alknet/a", h},
		"too long":  {strings.Repeat("x", 256), h},
	} {
		if err := m.Handle(tc.alpn, tc.h); err == nil {
			t.Errorf("%s: Handle succeeded", name)
		}
	}
	if err := m.HandleFunc("alknet/e", nil); err == nil {
		t.Error("HandleFunc(nil) succeeded")
	}
	if got := m.ALPNs(); len(got) != 1 || got[0] != "alknet/a" {
		t.Fatalf("ALPNs() = %v", got)
	}
}

// TestPeerIdentityFromHandshake checks that the handler sees the key the client proved,
// resolved through the peer list, and that unknown keys and no key are anonymous.
func TestPeerIdentityFromHandshake(t *testing.T) {
	seen := make(chan core.Peer, 1)
	m := core.NewMux()
	m.HandleFunc("alknet/who", func(ctx context.Context, c core.Conn) error {
		seen <- c.Peer()
		return nil
	})
	alice := core.GenerateKey()
	n := coretest.StartNode(t, m, coretest.WithPeers(coretest.PeerFor("alice", alice, "ssh:exec")))
	stranger := core.GenerateKey()
	for _, tr := range coretest.Transports {
		for _, tc := range []struct {
			name     string
			key      []byte
			identity string
			scope    string
			allowed  bool
		}{
			{"alice", alice, "alice", "ssh:exec:git-upload-pack", true},
			{"alice-under-scoped", alice, "alice", "ssh:shell", false},
			{"owner", n.Owner, "owner", "admin", true},
			{"stranger", stranger, "anonymous", "ssh:exec", false},
			{"no-key", nil, "anonymous", "ssh:exec", false},
		} {
			t.Run(tr+"/"+tc.name, func(t *testing.T) {
				n.Dial(t, "alknet/who", tr, tc.key)
				p := <-seen
				if p.Name() != tc.identity || p.Allows(tc.scope) != tc.allowed {
					t.Fatalf("peer %q allows(%s)=%v, want %q %v", p.Name(), tc.scope, p.Allows(tc.scope), tc.identity, tc.allowed)
				}
				if (tc.key == nil) != (p.PublicKey == nil) {
					t.Fatalf("PublicKey = %v with key %v", p.PublicKey, tc.key != nil)
				}
			})
		}
	}
}

func TestPeersReloadAppliesToNextConnection(t *testing.T) {
	seen := make(chan core.Peer, 1)
	m := core.NewMux()
	m.HandleFunc("alknet/who", func(ctx context.Context, c core.Conn) error {
		seen <- c.Peer()
		return nil
	})
	n := coretest.StartNode(t, m)
	bob := core.GenerateKey()
	n.Dial(t, "alknet/who", core.TransportQUIC, bob)
	if p := <-seen; !p.Anonymous() {
		t.Fatalf("bob is %q before being listed", p.Name())
	}
	if err := n.Peers.Update([]core.PeerConfig{coretest.PeerFor("bob", bob, "call")}); err != nil {
		t.Fatal(err)
	}
	n.Dial(t, "alknet/who", core.TransportQUIC, bob)
	if p := <-seen; p.Name() != "bob" || !p.Allows("call") {
		t.Fatalf("after reload bob is %q", p.Name())
	}
}

func TestConnsPerIPLimit(t *testing.T) {
	for _, tr := range coretest.Transports {
		t.Run(tr, func(t *testing.T) {
			// A node per transport: the limit counts both, and the slots of the last
			// subtest's connections come back only once the server has seen them close.
			n := coretest.StartNode(t, newEchoMux(t), coretest.WithLimits(core.Limits{MaxConnsPerIP: 2}))
			a := n.Dial(t, echoALPN, tr, nil)
			b := n.Dial(t, echoALPN, tr, nil)
			holdOpen(t, a)
			holdOpen(t, b)
			// The third is refused: over TCP before the handshake, over QUIC (whose
			// address is only trusted after it) right after.
			if c, err := dialEcho(n, tr); err == nil {
				ok := tryRoundTrip(c, []byte("x"))
				c.Close(0, "")
				if ok {
					t.Fatal("third connection from one IP was served")
				}
			}
			a.Close(0, "")
			b.Close(0, "")
			// Slots come back when connections end.
			deadline := time.Now().Add(5 * time.Second)
			for {
				ok := false
				if d, err := dialEcho(n, tr); err == nil {
					ok = tryRoundTrip(d, []byte("again"))
					d.Close(0, "")
				}
				if ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("per-IP slots were not released")
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func dialEcho(n *coretest.Node, tr string) (core.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := core.Dialer{Transport: tr}
	return d.Dial(ctx, n.Addr(), echoALPN)
}

// holdOpen opens a stream on c and waits for one echoed byte, so the server has
// certainly admitted c, and leaves the stream open.
func holdOpen(t *testing.T, c core.Conn) {
	t.Helper()
	s, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.SetDeadline(time.Now().Add(5 * time.Second))
	s.Write([]byte("h"))
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
		t.Fatalf("hold open: %v", err)
	}
}

// tryRoundTrip echoes p on a new stream of c; its timeouts are generous because the
// race detector and a shared machine can slow a loopback round trip to seconds.
func tryRoundTrip(c core.Conn, p []byte) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := c.OpenStream(ctx)
	if err != nil {
		return false
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := s.Write(p); err != nil {
		return false
	}
	s.CloseWrite()
	got, err := io.ReadAll(s)
	return err == nil && string(got) == string(p)
}

func TestStreamsPerConnLimit(t *testing.T) {
	var open atomic.Int32
	release := make(chan struct{})
	m := core.NewMux()
	m.HandleFunc("alknet/hold", func(ctx context.Context, c core.Conn) error {
		for {
			s, err := c.AcceptStream(ctx)
			if err != nil {
				return nil
			}
			open.Add(1)
			go func() { <-release; s.Close() }()
		}
	})
	n := coretest.StartNode(t, m, coretest.WithLimits(core.Limits{MaxStreamsPerConn: 3}))
	c := n.Dial(t, "alknet/hold", core.TransportQUIC, nil)
	defer close(release)
	for i := range 3 {
		s, err := c.OpenStream(context.Background())
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		s.Write([]byte("x"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.OpenStream(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("fourth stream: err = %v, want it to wait for a free slot", err)
	}
}

func TestShutdownDrainsThenCloses(t *testing.T) {
	started := make(chan struct{})
	finish := make(chan struct{})
	m := core.NewMux()
	m.HandleFunc("alknet/slow", func(ctx context.Context, c core.Conn) error {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return err
		}
		s.Read(make([]byte, 1))
		close(started)
		select {
		case <-finish:
			s.Write([]byte("done"))
			s.CloseWrite()
			io.Copy(io.Discard, s)
		case <-ctx.Done():
		}
		return nil
	})
	key := core.GenerateKey()
	ep, err := core.NewEndpoint(m, core.EndpointConfig{Key: key, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ep.Serve() }()

	c, err := core.Dial(context.Background(), ep.Addr(), "alknet/slow", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(0, "")
	s, _ := c.OpenStream(context.Background())
	s.Write([]byte("x"))
	<-started

	done := make(chan error, 1)
	go func() { done <- ep.Shutdown(context.Background()) }()
	// New connections are refused while the old one drains (once Shutdown has closed
	// the listeners, which it does before it starts waiting).
	d := core.Dialer{Transport: core.TransportTCP}
	for deadline := time.Now().Add(10 * time.Second); ; {
		c2, err := d.Dial(context.Background(), ep.Addr(), "alknet/slow")
		if err != nil {
			break
		}
		c2.Close(0, "")
		if time.Now().After(deadline) {
			t.Fatal("dials still succeed during shutdown")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a connection was running", err)
	default:
	}
	close(finish)
	s.CloseWrite()
	got, _ := io.ReadAll(s)
	if string(got) != "done" {
		t.Fatalf("draining connection got %q", got)
	}
	c.Close(0, "")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, core.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	// A shutdown whose context ends closes what is left and reports it.
	if err := ep.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func TestShutdownTimeoutClosesConnections(t *testing.T) {
	m := core.NewMux()
	m.HandleFunc("alknet/stuck", func(ctx context.Context, c core.Conn) error {
		<-ctx.Done()
		return nil
	})
	ep, err := core.NewEndpoint(m, core.EndpointConfig{Key: core.GenerateKey(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ep.Listen("127.0.0.1:0")
	served := make(chan error, 1)
	go func() { served <- ep.Serve() }()
	for _, tr := range coretest.Transports {
		d := core.Dialer{Transport: tr}
		c, err := d.Dial(context.Background(), ep.Addr(), "alknet/stuck")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(0, "")
	}
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ep.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	<-served
}

// TestNoLeaksAfterManyConnections opens and closes 1,000 connections with several
// streams each, over both transports, and checks goroutines and file descriptors return
// to their baseline.
func TestNoLeaksAfterManyConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 1,000 handshakes")
	}
	m := newEchoMux(t)
	ep, err := core.NewEndpoint(m, core.EndpointConfig{Key: core.GenerateKey(), Logger: discardLogger(),
		Limits: core.Limits{MaxConnsPerIP: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ep.Serve() }()

	runtime.GC()
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)
	const conns, streams, workers = 1000, 3, 8
	work := make(chan int)
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for i := range work {
				tr := coretest.Transports[i%2]
				d := core.Dialer{Transport: tr}
				c, err := d.Dial(context.Background(), ep.Addr(), echoALPN)
				if err != nil {
					errs <- err
					return
				}
				n := streams
				if tr == core.TransportTCP {
					n = 1
				}
				for j := range n {
					if !tryRoundTrip(c, []byte{byte(i), byte(j)}) {
						errs <- errors.New("round trip failed")
						c.Close(0, "")
						return
					}
				}
				c.Close(0, "")
			}
			errs <- nil
		}()
	}
	for i := range conns {
		work <- i
	}
	close(work)
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Connections end asynchronously on the server; allow them to settle.
	deadline := time.Now().Add(20 * time.Second)
	for {
		runtime.GC()
		g, fd := runtime.NumGoroutine(), openFDs(t)
		if g <= baseG+2 && fd <= baseFD {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d connections: goroutines %d (baseline %d), fds %d (baseline %d)", conns, g, baseG, fd, baseFD)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ep.Shutdown(ctx)
	<-served
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd on this system")
	}
	return len(ents)
}

// TestConnsPerIPLimitRefusalOverTCP checks that a TCP client over the per-IP limit
// learns why from Dial, instead of seeing a bare EOF or connection reset.
func TestConnsPerIPLimitRefusalOverTCP(t *testing.T) {
	n := coretest.StartNode(t, newEchoMux(t), coretest.WithLimits(core.Limits{MaxConnsPerIP: 2}))
	holdOpen(t, n.Dial(t, echoALPN, core.TransportTCP, nil))
	holdOpen(t, n.Dial(t, echoALPN, core.TransportTCP, n.Owner))
	for range 3 { // each refusal is clear, and refusing does not use up a slot
		c, err := dialEcho(n, core.TransportTCP)
		if err == nil {
			c.Close(0, "")
			t.Fatal("third TCP connection from one IP was accepted")
		}
		if !errors.Is(err, core.ErrTooManyConnections) {
			t.Fatalf("err = %v, want ErrTooManyConnections", err)
		}
	}
}

// TestConnsPerIPLimitRefusalOverQUIC: over QUIC the limit applies after the handshake,
// so Dial succeeds and the connection's next stream operation says why it was closed.
func TestConnsPerIPLimitRefusalOverQUIC(t *testing.T) {
	n := coretest.StartNode(t, newEchoMux(t), coretest.WithLimits(core.Limits{MaxConnsPerIP: 1}))
	holdOpen(t, n.Dial(t, echoALPN, core.TransportQUIC, nil))
	c, err := dialEcho(n, core.TransportQUIC)
	if err != nil {
		if !errors.Is(err, core.ErrTooManyConnections) {
			t.Fatalf("Dial: %v, want nil or ErrTooManyConnections", err)
		}
		return
	}
	defer c.Close(0, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.AcceptStream(ctx)
	if !errors.Is(err, core.ErrTooManyConnections) || !errors.Is(err, core.ErrConnClosed) {
		t.Fatalf("AcceptStream on a refused connection: %v, want ErrTooManyConnections and ErrConnClosed", err)
	}
}
