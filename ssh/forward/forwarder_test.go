package forward

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"go.uber.org/goleak"
	gossh "golang.org/x/crypto/ssh"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testServer is a minimal SSH server that hands forwarding channels and requests to a
// Forwarder, the way the alknet SSH server does through its handler maps.
type testServer struct {
	addr   string
	f      *Forwarder
	active *atomic.Int32 // channel handlers running
}

func startServer(t *testing.T, f *Forwarder, peer core.Peer) *testServer {
	t.Helper()
	_, hk, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := gossh.NewSignerFromKey(hk)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &gossh.ServerConfig{NoClientAuth: true}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	active := new(atomic.Int32)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { serveConn(ctx, c, cfg, f, peer, active) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		cancel()
		wg.Wait()
		f.Close()
	})
	return &testServer{addr: ln.Addr().String(), f: f, active: active}
}

func serveConn(ctx context.Context, c net.Conn, cfg *gossh.ServerConfig, f *Forwarder, peer core.Peer, active *atomic.Int32) {
	sc, chans, reqs, err := gossh.NewServerConn(c, cfg)
	if err != nil {
		c.Close()
		return
	}
	// As in the alknet server: the context ends with the connection.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var closers []func()
	s := &Session{Peer: peer, Transport: "tcp", Conn: sc, OnClose: func(fn func()) {
		mu.Lock()
		closers = append(closers, fn)
		mu.Unlock()
	}}
	var wg sync.WaitGroup
	wg.Go(func() {
		for r := range reqs {
			var ok bool
			var payload []byte
			switch r.Type {
			case RequestTCPIPForward:
				ok, payload = f.HandleTCPIPForward(ctx, s, r)
			case RequestCancelTCPIPForward:
				ok, payload = f.HandleCancelTCPIPForward(ctx, s, r)
			case RequestStreamlocalForward:
				ok, payload = f.HandleStreamlocalForward(ctx, s, r)
			case RequestCancelStreamlocalForward:
				ok, payload = f.HandleCancelStreamlocalForward(ctx, s, r)
			}
			if r.WantReply {
				r.Reply(ok, payload)
			}
		}
	})
	for nc := range chans {
		switch nc.ChannelType() {
		case ChannelDirectTCPIP:
			active.Add(1)
			wg.Go(func() {
				defer active.Add(-1)
				f.HandleDirectTCPIP(ctx, s, nc)
			})
		case ChannelDirectStreamlocal:
			wg.Go(func() { f.HandleDirectStreamlocal(ctx, s, nc) })
		default:
			nc.Reject(gossh.UnknownChannelType, "no")
		}
	}
	sc.Close()
	cancel()
	mu.Lock()
	fs := closers
	mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
	wg.Wait()
}

func (s *testServer) client(t *testing.T) *gossh.Client {
	t.Helper()
	c, err := gossh.Dial("tcp", s.addr, &gossh.ClientConfig{User: "test", HostKeyCallback: gossh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echoServer answers each connection with what it read, after the client's EOF: a
// round trip through it proves half-close works.
func echoServer(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				c.Write(b)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln
}

func roundTrip(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	defer c.Close()
	go func() {
		c.Write(msg)
		c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo: got %d bytes, want %d", len(got), len(msg))
	}
}

func newForwarder(t *testing.T, cfg Config, opts Options) *Forwarder {
	t.Helper()
	f, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func portOf(a net.Addr) string { return strconv.Itoa(a.(*net.TCPAddr).Port) }

func wantOpenError(t *testing.T, err error, reason gossh.RejectionReason) {
	t.Helper()
	var oe *gossh.OpenChannelError
	if !errors.As(err, &oe) || oe.Reason != reason {
		t.Fatalf("err = %v, want open refused with %v", err, reason)
	}
}

var owner = peer("owner", "*")

func TestDirectTCPIP(t *testing.T) {
	echo := echoServer(t, "tcp", "127.0.0.1:0")
	port := portOf(echo.Addr())
	f := newForwarder(t, Config{Rules: []Rule{{Action: "allow", Target: "127.0.0.1:" + port}}}, Options{})
	c := startServer(t, f, owner).client(t)

	msg := bytes.Repeat([]byte("alknet forward "), 100000)
	conn, err := c.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, conn, msg)

	// By name: localhost resolves, only 127.0.0.1 passes the rules and is dialled.
	conn, err = c.Dial("tcp", "localhost:"+port)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, conn, []byte("by name"))

	// A port no rule allows is prohibited, and nothing is dialled.
	_, err = c.Dial("tcp", "127.0.0.1:1")
	wantOpenError(t, err, gossh.Prohibited)

	// An allowed target that refuses the connection: connect failed.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadPort := portOf(dead.Addr())
	dead.Close()
	f.SetConfig(Config{Rules: []Rule{{Action: "allow", Target: "127.0.0.1"}}})
	_, err = c.Dial("tcp", "127.0.0.1:"+deadPort)
	wantOpenError(t, err, gossh.ConnectionFailed)

	// The failures left the connection working.
	conn, err = c.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, conn, []byte("still here"))
}

func TestDirectTCPIPParallelFailureIsolated(t *testing.T) {
	echo := echoServer(t, "tcp", "127.0.0.1:0")
	port := portOf(echo.Addr())
	f := newForwarder(t, Config{Rules: []Rule{{Action: "allow", Target: "127.0.0.1"}}}, Options{})
	c := startServer(t, f, owner).client(t)
	held, err := c.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Dial("tcp", "127.0.0.1:1"); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	roundTrip(t, held, []byte("the first channel is unharmed"))
}

func TestDirectTCPIPNeedsScope(t *testing.T) {
	echo := echoServer(t, "tcp", "127.0.0.1:0")
	cfg := Config{Default: "allow", Rules: []Rule{{Action: "allow", Target: "*"}}}
	for _, p := range []core.Peer{{}, peer("exec-only", "ssh:exec"), peer("remote-only", "ssh:forward:remote")} {
		c := startServer(t, newForwarder(t, cfg, Options{}), p).client(t)
		_, err := c.Dial("tcp", echo.Addr().String())
		wantOpenError(t, err, gossh.Prohibited)
		if _, err := c.Listen("tcp", "127.0.0.1:0"); p.Allows(core.ScopeSSHForwardRemote) != (err == nil) {
			t.Errorf("%s: remote forward: %v", p.Name(), err)
		}
	}
}

func TestReloadAppliesToNextOpen(t *testing.T) {
	echo := echoServer(t, "tcp", "127.0.0.1:0")
	f := newForwarder(t, Config{}, Options{})
	c := startServer(t, f, owner).client(t)
	_, err := c.Dial("tcp", echo.Addr().String())
	wantOpenError(t, err, gossh.Prohibited)
	if err := f.SetConfig(Config{Rules: []Rule{{Action: "allow", Target: echo.Addr().String()}}}); err != nil {
		t.Fatal(err)
	}
	conn, err := c.Dial("tcp", echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// A bad config is refused and leaves the rules in force.
	if err := f.SetConfig(Config{Default: "maybe"}); err == nil {
		t.Fatal("bad config accepted")
	}
	roundTrip(t, conn, []byte("after reload"))
}

func TestChannelLimit(t *testing.T) {
	echo := echoServer(t, "tcp", "127.0.0.1:0")
	f := newForwarder(t, Config{MaxChannelsPerSession: 1, Rules: []Rule{{Action: "allow", Target: "127.0.0.1"}}}, Options{})
	c := startServer(t, f, owner).client(t)
	held, err := c.Dial("tcp", echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Dial("tcp", echo.Addr().String())
	wantOpenError(t, err, gossh.ResourceShortage)
	roundTrip(t, held, []byte("x"))
	// The slot frees when the channel ends.
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := c.Dial("tcp", echo.Addr().String())
		if err == nil {
			roundTrip(t, conn, []byte("y"))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not released: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestInternalService(t *testing.T) {
	mux := core.NewMux()
	gotPeer := make(chan string, 1)
	mux.HandleFunc("alknet/echo", func(ctx context.Context, c core.Conn) error {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return err
		}
		gotPeer <- c.Peer().Name() + " " + c.Transport()
		// A read deadline that passes must not break the stream.
		s.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			return errors.New("deadline did not fire")
		}
		s.SetReadDeadline(time.Time{})
		b, err := io.ReadAll(s)
		if err != nil {
			return err
		}
		_, err = s.Write(b)
		return err
	})
	f := newForwarder(t, Config{Rules: []Rule{{Action: "allow", Target: "alknet-*"}}}, Options{Mux: mux})
	c := startServer(t, f, owner).client(t)
	conn, err := c.Dial("tcp", "alknet-echo:0")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let the deadline pass before data arrives
	roundTrip(t, conn, []byte("through the mux"))
	if got := <-gotPeer; got != "owner ssh" {
		t.Errorf("handler saw %q", got)
	}
	// Names are case-insensitive: the ALPN is the lower-case name.
	conn, err = c.Dial("tcp", "ALKNET-Echo.:1")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	roundTrip(t, conn, []byte("upper case"))
	<-gotPeer
	_, err = c.Dial("tcp", "alknet-nothing:0")
	wantOpenError(t, err, gossh.ConnectionFailed)
}

func TestRemoteForward(t *testing.T) {
	f := newForwarder(t, Config{MaxListenersPerPeer: 2}, Options{})
	srv := startServer(t, f, owner)
	c := srv.client(t)
	ln, err := c.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(ln.Addr())
	if port == "0" {
		t.Fatal("no port allocated")
	}
	type accepted struct {
		remote string
		err    error
	}
	acc := make(chan accepted, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			acc <- accepted{err: err}
			return
		}
		acc <- accepted{remote: conn.RemoteAddr().String()}
		b, _ := io.ReadAll(conn)
		conn.Write(b)
		conn.Close()
	}()
	conn, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	origin := conn.LocalAddr().String()
	roundTrip(t, conn, []byte("remote forward"))
	if a := <-acc; a.err != nil || a.remote != origin {
		t.Errorf("client saw originator %q (%v), want %q", a.remote, a.err, origin)
	}

	// The per-peer limit: two listeners, not three.
	ln2, err := c.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Fatal("third listener allowed")
	}
	// Cancel closes the listener on the server and frees the slot.
	ln.Close()
	waitClosed(t, "127.0.0.1:"+port)
	ln3, err := c.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("slot not freed by cancel: %v", err)
	}
	_ = ln3
	// The end of the session closes its listeners.
	c.Close()
	waitClosed(t, ln2.Addr().String())
}

func waitClosed(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStreamlocal(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "app.sock")
	echoServer(t, "unix", sock)
	rules := []Rule{{Action: "allow", Target: dir + "/*.sock"}, {Action: "allow", Target: "*"}}

	// Off by default, whatever the rules say.
	off := startServer(t, newForwarder(t, Config{Default: "allow", Rules: rules}, Options{}), owner).client(t)
	_, err := off.Dial("unix", sock)
	wantOpenError(t, err, gossh.Prohibited)
	if _, err := off.ListenUnix(filepath.Join(dir, "r.sock")); err == nil {
		t.Fatal("streamlocal-forward allowed while off")
	}

	c := startServer(t, newForwarder(t, Config{Streamlocal: true, Rules: rules}, Options{}), owner).client(t)
	conn, err := c.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, conn, []byte("over a unix socket"))
	_, err = c.Dial("unix", "/run/other.sock")
	wantOpenError(t, err, gossh.Prohibited)

	rsock := filepath.Join(dir, "remote.sock")
	ln, err := c.ListenUnix(rsock)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(conn)
		conn.Write(b)
		conn.Close()
	}()
	if fi, err := os.Stat(rsock); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("remote socket: %v, %v; want a socket with mode 0600", fi.Mode(), err)
	}
	if _, err := c.ListenUnix(rsock); err == nil {
		t.Fatal("a second listener replaced an existing socket")
	}
	uc, err := net.Dial("unix", rsock)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, uc, []byte("remote unix forward"))
	if _, err := c.ListenUnix("/tmp/not-allowed.sock"); err == nil {
		t.Fatal("streamlocal-forward outside the rules allowed")
	}
	ln.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(rsock); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("socket file left behind after cancel")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".alknet-*")); len(m) != 0 {
		t.Fatalf("temporary sockets left: %v", m)
	}
}

// A target that ignores end-of-file and never speaks must not keep a forward (and its
// goroutines) alive once the SSH connection is gone.
func TestConnectionEndEndsForwards(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			held <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case c := <-held:
			c.Close()
		default:
		}
	})
	f := newForwarder(t, Config{Rules: []Rule{{Action: "allow", Target: "127.0.0.1"}}}, Options{})
	srv := startServer(t, f, owner)
	c := srv.client(t)
	conn, err := c.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.(interface{ CloseWrite() error }).CloseWrite()
	target := <-held
	held <- target
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for srv.active.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the forward outlived its SSH connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recordingDial records every address a Forwarder dials and dials it for real.
type recordingDial struct {
	mu    sync.Mutex
	addrs []string
}

func (r *recordingDial) dial(ctx context.Context, network, address string) (net.Conn, error) {
	r.mu.Lock()
	r.addrs = append(r.addrs, address)
	r.mu.Unlock()
	return (&net.Dialer{}).DialContext(ctx, network, address)
}

func (r *recordingDial) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.addrs
	r.addrs = nil
	return a
}

// On Linux 0.0.0.0, :: and ::ffff:0.0.0.0 connect to the local host: rules that deny
// loopback must not be dodged through them, by literal or by a name resolving to one.
func TestDirectTCPIPNeverDialsUnspecified(t *testing.T) {
	echo := echoServer(t, "tcp", "127.0.0.1:0")
	port := portOf(echo.Addr())
	rec := &recordingDial{}
	f := newForwarder(t, Config{Rules: []Rule{
		{Action: "deny", Target: "127.0.0.0/8"},
		{Action: "deny", Target: "::1"},
		{Action: "deny", Target: "localhost"},
		{Action: "deny", Target: "alknet-*"},
		{Action: "allow", Target: "*"},
	}}, Options{Dial: rec.dial, Resolver: fakeResolver{"zero.test": {"0.0.0.0"}, "zero6.test": {"::ffff:0.0.0.0"}}})
	c := startServer(t, f, owner).client(t)
	for _, host := range []string{"0.0.0.0", "::", "::ffff:0.0.0.0", "0.0.0.1", "zero.test", "zero6.test", "127.0.0.1", "::ffff:127.0.0.1"} {
		conn, err := c.Dial("tcp", net.JoinHostPort(host, port))
		if err == nil {
			conn.Close()
		}
		var oe *gossh.OpenChannelError
		if !errors.As(err, &oe) || oe.Reason != gossh.Prohibited {
			t.Errorf("%s: err = %v, want administratively prohibited", host, err)
		}
	}
	if got := rec.take(); len(got) != 0 {
		t.Errorf("dialled %v", got)
	}
}

// The address dialled is the one the rules checked, IPv4-mapped forms as IPv4: the
// name is never resolved again.
func TestDirectTCPIPDialsTheCheckedAddress(t *testing.T) {
	echo := echoServer(t, "tcp", "127.0.0.1:0")
	port := portOf(echo.Addr())
	rec := &recordingDial{}
	f := newForwarder(t, Config{Rules: []Rule{
		{Action: "allow", Target: "127.0.0.1:" + port},
	}}, Options{Dial: rec.dial, Resolver: fakeResolver{"mapped.test": {"::ffff:127.0.0.1", "::1"}}})
	c := startServer(t, f, owner).client(t)
	want := "127.0.0.1:" + port
	for _, host := range []string{"mapped.test", "::ffff:127.0.0.1", "127.0.0.1"} {
		conn, err := c.Dial("tcp", net.JoinHostPort(host, port))
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		roundTrip(t, conn, []byte(host))
		if got := rec.take(); len(got) != 1 || got[0] != want {
			t.Errorf("%s: dialled %v, want [%s]", host, got, want)
		}
	}
}
