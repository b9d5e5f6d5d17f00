package ssh_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	alkssh "github.com/alkdev/alknet/ssh"
	"github.com/alkdev/alknet/ssh/forward"
	"github.com/alkdev/alknet/ssh/socks5"
	gossh "golang.org/x/crypto/ssh"
)

// socksEcho answers each connection with what it read, once the client half-closes.
func socksEcho(t *testing.T) (net.Listener, uint16) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				b, _ := io.ReadAll(c)
				c.Write(b)
				c.Close()
			})
		}
	})
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l, uint16(l.Addr().(*net.TCPAddr).Port)
}

// socksServer starts an SSH server with forwarding on a loopback TCP listener.
func socksServer(t testing.TB, cfg forward.Config, peers ...core.PeerConfig) (addr string, hostKey gossh.PublicKey) {
	t.Helper()
	pl, err := core.NewPeers(peers)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := alkssh.NewServer(core.GenerateKey(), pl, alkssh.Config{Dir: t.TempDir(), Forward: cfg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := forward.New(cfg, forward.Options{})
	if err != nil {
		t.Fatal(err)
	}
	alkssh.InstallForwarding(srv, f)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
		f.Close()
	})
	return l.Addr().String(), srv.HostKey()
}

// socksTalk runs a CONNECT through the proxy at proxy and returns the connection and
// the reply.
func socksTalk(t *testing.T, proxy string, req socks5.Request) (net.Conn, socks5.Reply) {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	b, _ := socks5.AppendRequest([]byte{5, 1, 0}, req)
	c.Write(b)
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil || sel != [2]byte{5, 0} {
		t.Fatalf("method selection %x, %v", sel, err)
	}
	code, _, err := socks5.ReadReply(c)
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	c.SetDeadline(time.Time{})
	return c, code
}

func socksRoundTrip(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %d bytes of %d, %v", len(got), len(msg), err)
	}
}

func TestSOCKSProxy(t *testing.T) {
	_, echoPort := socksEcho(t)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	user := core.GenerateKey()
	addr, hostKey := socksServer(t, forward.Config{Rules: []forward.Rule{
		{Action: "allow", Target: "127.0.0.1:" + strconv.Itoa(int(echoPort))},
		{Action: "allow", Target: "[::1]:" + strconv.Itoa(int(echoPort))},
		{Action: "allow", Target: "127.0.0.1:" + strconv.Itoa(deadPort)},
	}}, coretest.PeerFor("user", user, core.ScopeSSHForwardLocal))

	signer, _ := gossh.NewSignerFromKey(user)
	var mu sync.Mutex
	var live net.Conn
	var dials atomic.Int32
	proxy := &alkssh.SOCKSProxy{
		MinBackoff: 20 * time.Millisecond,
		Connect: func(ctx context.Context) (*gossh.Client, error) {
			dials.Add(1)
			nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			c, chans, reqs, err := gossh.NewClientConn(nc, addr, &gossh.ClientConfig{
				User: "user", Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
				HostKeyCallback: gossh.FixedHostKey(hostKey),
			})
			if err != nil {
				nc.Close()
				return nil, err
			}
			mu.Lock()
			live = nc
			mu.Unlock()
			return gossh.NewClient(c, chans, reqs), nil
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- proxy.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	p := l.Addr().String()

	msg := bytes.Repeat([]byte("through socks "), 20000)
	for _, req := range []socks5.Request{
		{Command: socks5.CmdConnect, AddrType: socks5.AddrIPv4, Host: "127.0.0.1", Port: echoPort},
		{Command: socks5.CmdConnect, AddrType: socks5.AddrDomain, Host: "localhost", Port: echoPort},
	} {
		c, code := socksTalk(t, p, req)
		if code != socks5.Succeeded {
			t.Fatalf("%s: %v", req.Address(), code)
		}
		socksRoundTrip(t, c, msg)
	}
	for _, tt := range []struct {
		req  socks5.Request
		want socks5.Reply
	}{
		{socks5.Request{Command: socks5.CmdConnect, AddrType: socks5.AddrIPv4, Host: "127.0.0.1", Port: 1}, socks5.NotAllowed},
		{socks5.Request{Command: socks5.CmdConnect, AddrType: socks5.AddrIPv4, Host: "127.0.0.1", Port: uint16(deadPort)}, socks5.ConnectionRefused},
		{socks5.Request{Command: socks5.CmdBind, AddrType: socks5.AddrIPv4, Host: "127.0.0.1", Port: echoPort}, socks5.CommandNotSupported},
		{socks5.Request{Command: socks5.CmdUDPAssociate, AddrType: socks5.AddrIPv4, Host: "0.0.0.0", Port: 0}, socks5.CommandNotSupported},
	} {
		if _, code := socksTalk(t, p, tt.req); code != tt.want {
			t.Errorf("%d %s: %v, want %v", tt.req.Command, tt.req.Address(), code, tt.want)
		}
	}

	// Drop the SSH connection: the proxy reconnects and the next CONNECT works.
	mu.Lock()
	live.Close()
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for dials.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no reconnect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, code := socksTalk(t, p, socks5.Request{Command: socks5.CmdConnect, AddrType: socks5.AddrIPv4, Host: "127.0.0.1", Port: echoPort})
	if code != socks5.Succeeded {
		t.Fatalf("after reconnect: %v", code)
	}
	socksRoundTrip(t, c, []byte("again"))
}

func TestSOCKSProxyWithoutScope(t *testing.T) {
	_, echoPort := socksEcho(t)
	user := core.GenerateKey()
	addr, hostKey := socksServer(t, forward.Config{Default: "allow"}, coretest.PeerFor("execonly", user, core.ScopeSSHExec))
	signer, _ := gossh.NewSignerFromKey(user)
	proxy := &alkssh.SOCKSProxy{Connect: func(ctx context.Context) (*gossh.Client, error) {
		return gossh.Dial("tcp", addr, &gossh.ClientConfig{
			User: "x", Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)}, HostKeyCallback: gossh.FixedHostKey(hostKey),
		})
	}}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- proxy.Serve(ctx, l) }()
	defer func() { cancel(); <-served }()
	_, code := socksTalk(t, l.Addr().String(), socks5.Request{Command: socks5.CmdConnect, AddrType: socks5.AddrIPv4, Host: "127.0.0.1", Port: echoPort})
	if code != socks5.NotAllowed {
		t.Fatalf("reply %v, want %v", code, socks5.NotAllowed)
	}
}

func TestSOCKSProxyNoConnection(t *testing.T) {
	proxy := &alkssh.SOCKSProxy{
		WaitTimeout: 200 * time.Millisecond,
		MinBackoff:  10 * time.Millisecond,
		Connect: func(ctx context.Context) (*gossh.Client, error) {
			return nil, errors.New("node unreachable")
		},
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- proxy.Serve(ctx, l) }()
	defer func() { cancel(); <-served }()
	_, code := socksTalk(t, l.Addr().String(), socks5.Request{Command: socks5.CmdConnect, AddrType: socks5.AddrDomain, Host: "example.com", Port: 80})
	if code != socks5.GeneralFailure {
		t.Fatalf("reply %v, want %v", code, socks5.GeneralFailure)
	}
}

// runProxy serves proxy on a loopback listener and returns its address and Serve's
// result.
func runProxy(t *testing.T, proxy *alkssh.SOCKSProxy) (string, <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- proxy.Serve(ctx, l) }()
	t.Cleanup(cancel)
	return l.Addr().String(), served
}

// waitServe returns what Serve returned; it fails the test if Serve keeps running.
func waitServe(t *testing.T, served <-chan error) error {
	t.Helper()
	select {
	case err := <-served:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Serve still runs: the proxy keeps retrying")
		return nil
	}
}

// A key the server does not list is refused for good: Serve stops after one attempt
// and returns an error wrapping ErrAuthRefused.
func TestSOCKSProxyUnknownKey(t *testing.T) {
	listed, unlisted := core.GenerateKey(), core.GenerateKey()
	addr, hostKey := socksServer(t, forward.Config{Default: "allow"}, coretest.PeerFor("listed", listed, core.ScopeSSHForwardLocal))
	signer, _ := gossh.NewSignerFromKey(unlisted)
	var dials atomic.Int32
	_, served := runProxy(t, &alkssh.SOCKSProxy{
		MinBackoff: time.Millisecond,
		Connect: func(ctx context.Context) (*gossh.Client, error) {
			dials.Add(1)
			return gossh.Dial("tcp", addr, &gossh.ClientConfig{
				User: "x", Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)}, HostKeyCallback: gossh.FixedHostKey(hostKey),
			})
		},
	})
	err := waitServe(t, served)
	if !errors.Is(err, alkssh.ErrAuthRefused) {
		t.Fatalf("Serve = %v, want ErrAuthRefused", err)
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d connection attempts, want 1", n)
	}
}

// Connect errors that retrying cannot cure stop the proxy: a PermanentError, a node
// that is not the one asked for.
func TestSOCKSProxyPermanentErrors(t *testing.T) {
	cause := errors.New("the key file is gone")
	for _, tt := range []struct {
		name string
		err  error
		want error
	}{
		{"PermanentError", &alkssh.PermanentError{Err: cause}, cause},
		{"wrapped PermanentError", fmt.Errorf("dial: %w", &alkssh.PermanentError{Err: cause}), cause},
		{"identity mismatch", fmt.Errorf("dial: %w", core.ErrIdentityMismatch), core.ErrIdentityMismatch},
		{"auth refused", fmt.Errorf("dial: %w", alkssh.ErrAuthRefused), alkssh.ErrAuthRefused},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var dials atomic.Int32
			_, served := runProxy(t, &alkssh.SOCKSProxy{
				MinBackoff: time.Millisecond,
				Connect: func(ctx context.Context) (*gossh.Client, error) {
					dials.Add(1)
					return nil, tt.err
				},
			})
			if err := waitServe(t, served); !errors.Is(err, tt.want) {
				t.Fatalf("Serve = %v, want %v", err, tt.want)
			}
			if n := dials.Load(); n != 1 {
				t.Fatalf("%d connection attempts, want 1", n)
			}
		})
	}
}

// A CONNECT that waits for the SSH connection fails as soon as the attempt it waits
// for fails, long before WaitTimeout.
func TestSOCKSProxyFailsWithTheAttempt(t *testing.T) {
	release := make(chan struct{})
	var dials atomic.Int32
	p, _ := runProxy(t, &alkssh.SOCKSProxy{
		WaitTimeout: time.Hour,
		MinBackoff:  time.Hour, // the CONNECT itself must prompt the next attempt
		Connect: func(ctx context.Context) (*gossh.Client, error) {
			if dials.Add(1) == 1 {
				select { // the first attempt hangs until the test lets it fail
				case <-release:
				case <-ctx.Done():
				}
			}
			return nil, errors.New("node unreachable")
		},
	})
	req := socks5.Request{Command: socks5.CmdConnect, AddrType: socks5.AddrDomain, Host: "example.com", Port: 80}
	go func() {
		// Let the first attempt fail once the CONNECT below is (most likely) waiting;
		// if it is not yet, it arrives during the backoff and prompts a new attempt.
		time.Sleep(100 * time.Millisecond)
		close(release)
	}()
	if _, code := socksTalk(t, p, req); code != socks5.GeneralFailure {
		t.Fatalf("reply %v, want %v", code, socks5.GeneralFailure)
	}
	// During the (hour-long) backoff, a CONNECT prompts a new attempt and fails with it.
	before := dials.Load()
	if _, code := socksTalk(t, p, req); code != socks5.GeneralFailure {
		t.Fatalf("reply %v, want %v", code, socks5.GeneralFailure)
	}
	if dials.Load() <= before {
		t.Fatal("a CONNECT during the backoff did not prompt an attempt")
	}
}

// A Connect that panics stops the proxy with an error rather than the process.
func TestSOCKSProxyConnectPanics(t *testing.T) {
	_, served := runProxy(t, &alkssh.SOCKSProxy{Connect: func(ctx context.Context) (*gossh.Client, error) {
		panic("connect bug")
	}})
	if err := waitServe(t, served); err == nil || !strings.Contains(err.Error(), "connect bug") {
		t.Fatalf("Serve = %v, want the panic as an error", err)
	}
}

func TestIsAuthRefused(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{alkssh.ErrAuthRefused, true},
		{fmt.Errorf("socks: %w", alkssh.ErrAuthRefused), true},
		{errors.New("ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey], no supported methods remain"), true},
		{errors.New("ssh: handshake failed: EOF"), false},
	}
	for _, tt := range tests {
		if got := alkssh.IsAuthRefused(tt.err); got != tt.want {
			t.Errorf("IsAuthRefused(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
