package ssh_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	alkssh "github.com/alkdev/alknet/ssh"
	"go.uber.org/goleak"
	gossh "golang.org/x/crypto/ssh"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fixture is a server with an owner key ("*"), an exec-only key and an unscoped key.
type fixture struct {
	srv                 *alkssh.Server
	peers               *core.Peers
	owner, execOnly, no ed25519.PrivateKey
	log                 *coretest.SyncBuffer
}

func newFixtureTB(tb testing.TB) *fixture { return newFixture(tb, alkssh.Config{}) }

func newFixture(t testing.TB, cfg alkssh.Config) *fixture {
	t.Helper()
	f := &fixture{owner: core.GenerateKey(), execOnly: core.GenerateKey(), no: core.GenerateKey(), log: &coretest.SyncBuffer{}}
	var err error
	f.peers, err = core.NewPeers([]core.PeerConfig{
		coretest.PeerFor("owner", f.owner, "*"),
		coretest.PeerFor("runner", f.execOnly, core.ScopeSSHExec),
		coretest.PeerFor("nobody", f.no, core.ScopeFSRead),
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.HangupGrace == 0 {
		cfg.HangupGrace = core.Duration(500 * time.Millisecond)
	}
	f.srv, err = alkssh.NewServer(core.GenerateKey(), f.peers, cfg, slog.New(slog.NewTextHandler(f.log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.srv.Close() })
	return f
}

func signer(t testing.TB, k ed25519.PrivateKey) gossh.Signer {
	t.Helper()
	s, err := gossh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dialPipe serves one in-memory connection and returns an SSH client on it that
// authenticates with keys, in order.
func (f *fixture) dialPipe(t *testing.T, keys ...ed25519.PrivateKey) (*gossh.Client, error) {
	t.Helper()
	client, server := coretest.Pipe(alkssh.ALPN, core.Peer{}, core.Peer{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.srv.ServeConn(ctx, server)
		server.Close(0, "")
	}()
	t.Cleanup(func() {
		cancel()
		client.Close(0, "")
		<-done
	})
	st, err := client.OpenStream(ctx)
	if err != nil {
		return nil, err // the server is gone (shut down)
	}
	return f.sshClient(t, core.NetConn(st, nil, nil), keys...)
}

func (f *fixture) sshClientTB(t testing.TB, nc net.Conn, keys ...ed25519.PrivateKey) (*gossh.Client, error) {
	return f.sshClient(t, nc, keys...)
}

func (f *fixture) sshClient(t testing.TB, nc net.Conn, keys ...ed25519.PrivateKey) (*gossh.Client, error) {
	t.Helper()
	var signers []gossh.Signer
	for _, k := range keys {
		signers = append(signers, signer(t, k))
	}
	cfg := &gossh.ClientConfig{
		User:            "anyone",
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(signers...)},
		HostKeyCallback: gossh.FixedHostKey(f.srv.HostKey()),
		Timeout:         10 * time.Second,
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second)) // ClientConfig.Timeout covers only Dial
	c, chans, reqs, err := gossh.NewClientConn(nc, "alknet", cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	cl := gossh.NewClient(c, chans, reqs)
	t.Cleanup(func() { cl.Close() })
	return cl, nil
}

func mustDial(t *testing.T, f *fixture, keys ...ed25519.PrivateKey) *gossh.Client {
	t.Helper()
	c, err := f.dialPipe(t, keys...)
	if err != nil {
		t.Fatalf("ssh handshake: %v", err)
	}
	return c
}

// run runs command in a new session and returns stdout, stderr and the exit error.
func run(t *testing.T, c *gossh.Client, command string, stdin io.Reader) (string, string, error) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr, s.Stdin = &out, &errb, stdin
	err = s.Run(command)
	return out.String(), errb.String(), err
}

func exitStatus(err error) int {
	var ee *gossh.ExitError
	if errors.As(err, &ee) {
		return ee.ExitStatus()
	}
	if err == nil {
		return 0
	}
	return -1
}

func TestExec(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	c := mustDial(t, f, f.owner)
	tests := []struct {
		name, cmd, stdout, stderr string
		code                      int
	}{
		{"exit status", "printf hi; exit 3", "hi", "", 3},
		{"stderr apart", "echo out; echo err >&2", "out\n", "err\n", 0},
		{"working directory", "pwd", f.srv.Config().Dir + "\n", "", 0},
		{"identity", "echo $ALKNET_PEER", "owner\n", "", 0},
		{"missing program", "/nonexistent/x", "", "", 127},
		{"output before late status", "printf a; sleep 0.2; printf b; exit 1", "ab", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, err := run(t, c, tt.cmd, nil)
			if out != tt.stdout || (tt.stderr != "" && errOut != tt.stderr) || exitStatus(err) != tt.code {
				t.Errorf("%q: got stdout %q stderr %q status %d (%v), want %q %q %d", tt.cmd, out, errOut, exitStatus(err), err, tt.stdout, tt.stderr, tt.code)
			}
		})
	}
}

func TestExecSignalExit(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	c := mustDial(t, f, f.owner)
	_, _, err := run(t, c, "kill -TERM $$", nil)
	var ee *gossh.ExitError
	if !errors.As(err, &ee) || ee.Signal() != "TERM" {
		t.Fatalf("got %v, want exit-signal TERM", err)
	}
}

func TestStdinAndLargeOutputExact(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	c := mustDial(t, f, f.owner)
	in := make([]byte, 3<<20+17)
	rand.Read(in)
	out, _, err := run(t, c, "cat", bytes.NewReader(in))
	if err != nil || out != string(in) {
		t.Fatalf("cat: %d bytes back of %d, err %v", len(out), len(in), err)
	}
	out, _, err = run(t, c, "head -c 20000000 /dev/zero | tr '\\0' x", nil)
	if err != nil || len(out) != 20000000 || strings.Trim(out, "x") != "" {
		t.Fatalf("20 MB: got %d bytes, err %v", len(out), err)
	}
	sum := sha256.Sum256(in)
	out, _, err = run(t, c, "sha256sum", bytes.NewReader(in))
	if err != nil || !strings.HasPrefix(out, fmt.Sprintf("%x", sum)) {
		t.Fatalf("sha256sum: %q %v", out, err)
	}
}

func TestAuth(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	stranger := core.GenerateKey()

	t.Run("unknown key", func(t *testing.T) {
		if _, err := f.dialPipe(t, stranger); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Fatalf("got %v, want an authentication failure", err)
		}
	})
	t.Run("no key", func(t *testing.T) {
		if _, err := f.dialPipe(t); err == nil {
			t.Fatal("a client without a key got in")
		}
	})
	t.Run("unknown then known key", func(t *testing.T) {
		// CVE-2024-45337: the identity must be the key that authenticated, not the last
		// one a callback saw.
		c := mustDial(t, f, stranger, f.execOnly)
		out, _, err := run(t, c, "echo $ALKNET_PEER", nil)
		if err != nil || out != "runner\n" {
			t.Fatalf("got %q %v, want runner", out, err)
		}
	})
	t.Run("known key offered before an unknown one", func(t *testing.T) {
		c := mustDial(t, f, f.owner, stranger)
		out, _, _ := run(t, c, "echo $ALKNET_PEER", nil)
		if out != "owner\n" {
			t.Fatalf("got %q, want owner", out)
		}
	})
	t.Run("too many attempts", func(t *testing.T) {
		var keys []ed25519.PrivateKey
		for range 20 {
			keys = append(keys, core.GenerateKey())
		}
		keys = append(keys, f.owner)
		_, err := f.dialPipe(t, keys...)
		if err == nil {
			t.Fatal("the 21st key got in after 20 failures; want a disconnect")
		}
	})
	t.Run("logged", func(t *testing.T) {
		logs := f.log.String()
		for _, want := range []string{
			"msg=auth result=accepted remote=pipe key=" + gossh.FingerprintSHA256(signer(t, f.execOnly).PublicKey()) + " peer=runner service=ssh transport=pipe",
			"msg=auth result=rejected remote=pipe key=" + gossh.FingerprintSHA256(signer(t, stranger).PublicKey()) + " peer=- service=ssh",
		} {
			if !strings.Contains(logs, want) {
				t.Errorf("log lacks %q:\n%s", want, logs)
			}
		}
	})
}

func TestScopes(t *testing.T) {
	f := newFixture(t, alkssh.Config{Shell: true})
	c := mustDial(t, f, f.no)
	if _, _, err := run(t, c, "true", nil); err == nil {
		t.Fatal("exec without ssh:exec succeeded")
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RequestPty("xterm", 24, 80, nil); err == nil {
		t.Error("pty-req without ssh:shell succeeded")
	}
	if err := s.Shell(); err == nil {
		t.Error("shell without ssh:shell succeeded")
	}

	r := mustDial(t, f, f.execOnly)
	if out, _, err := run(t, r, "echo ok", nil); err != nil || out != "ok\n" {
		t.Fatalf("exec with ssh:exec: %q %v", out, err)
	}
	s2, _ := r.NewSession()
	defer s2.Close()
	if err := s2.RequestPty("xterm", 24, 80, nil); err == nil {
		t.Error("pty-req with ssh:exec only succeeded")
	}
}

func TestShellOffByDefault(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	c := mustDial(t, f, f.owner)
	s, _ := c.NewSession()
	defer s.Close()
	if err := s.RequestPty("xterm", 24, 80, nil); err == nil {
		t.Error("pty-req succeeded with shell off")
	}
	if err := s.Shell(); err == nil {
		t.Error("shell succeeded with shell off")
	}
	if err := s.Signal(gossh.SIGINT); err != nil {
		t.Fatal(err) // signal wants no reply; the session must go on
	}
	out, _ := s.Output("echo still here")
	if string(out) != "still here\n" {
		t.Fatalf("session after refusals: %q", out)
	}
}

func TestPtyResize(t *testing.T) {
	f := newFixture(t, alkssh.Config{Shell: true})
	c := mustDial(t, f, f.owner)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RequestPty("xterm-256color", 30, 100, gossh.TerminalModes{gossh.ECHO: 0}); err != nil {
		t.Fatal(err)
	}
	in, _ := s.StdinPipe()
	var out coretest.SyncBuffer
	s.Stdout = &out
	// After the resize, the shell polls until the PTY reports the new size: the
	// window-change request and the data travel separately, so no fixed wait is right.
	if err := s.Start(`stty size; echo TERM=$TERM; read x; while [ "$(stty size)" != "40 132" ]; do sleep 0.05; done; stty size; read y; exit 7`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &out, "TERM=xterm-256color")
	if !strings.Contains(out.String(), "30 100") {
		t.Fatalf("initial size: %q", out.String())
	}
	if err := s.WindowChange(40, 132); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "go\n")
	waitFor(t, &out, "40 132")
	io.WriteString(in, "go\n")
	if err := s.Wait(); exitStatus(err) != 7 {
		t.Fatalf("exit: %v", err)
	}
}

func TestSignalStopsSleep(t *testing.T) {
	f := newFixture(t, alkssh.Config{Shell: true})
	c := mustDial(t, f, f.owner)
	for _, pty := range []bool{false, true} {
		t.Run(fmt.Sprintf("pty=%v", pty), func(t *testing.T) {
			s, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if pty {
				if err := s.RequestPty("xterm", 24, 80, nil); err != nil {
					t.Fatal(err)
				}
			}
			var out coretest.SyncBuffer
			s.Stdout = &out
			if err := s.Start("echo started; exec sleep 100"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, &out, "started")
			time.Sleep(100 * time.Millisecond) // let exec replace the shell
			start := time.Now()
			if err := s.Signal(gossh.SIGINT); err != nil {
				t.Fatal(err)
			}
			err = s.Wait()
			var ee *gossh.ExitError
			if !errors.As(err, &ee) || ee.Signal() != "INT" || time.Since(start) > 10*time.Second {
				t.Fatalf("got %v, want exit-signal INT", err)
			}
		})
	}
}

func TestRefusedRequestsKeepSession(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	c := mustDial(t, f, f.owner)
	s, _ := c.NewSession()
	defer s.Close()
	for _, req := range []string{"x11-req", "auth-agent-req@openssh.com", "no-such-request"} {
		ok, err := s.SendRequest(req, true, nil)
		if ok || err != nil {
			t.Errorf("%s: ok=%v err=%v, want a clean refusal", req, ok, err)
		}
	}
	if err := s.Setenv("LANG", "C.UTF-8"); err != nil {
		t.Errorf("env LANG refused: %v", err)
	}
	if err := s.Setenv("LD_PRELOAD", "/x.so"); err == nil {
		t.Error("env LD_PRELOAD accepted")
	}
	out, err := s.Output("echo $LANG:$LD_PRELOAD")
	if err != nil || string(out) != "C.UTF-8:\n" {
		t.Fatalf("got %q %v", out, err)
	}
}

func TestChannelsAndGlobalRequests(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	f.srv.ChannelHandlers["panics"] = func(ctx context.Context, cc *alkssh.ConnContext, nch gossh.NewChannel) {
		ch, reqs, _ := nch.Accept()
		go gossh.DiscardRequests(reqs)
		defer ch.Close()
		panic("boom")
	}
	c := mustDial(t, f, f.owner)
	_, _, err := c.OpenChannel("no-such-type", nil)
	var oce *gossh.OpenChannelError
	if !errors.As(err, &oce) || oce.Reason != gossh.UnknownChannelType {
		t.Fatalf("unknown channel type: %v", err)
	}
	if ch, reqs, err := c.OpenChannel("panics", nil); err == nil {
		go gossh.DiscardRequests(reqs)
		io.Copy(io.Discard, ch)
	}
	ok, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
	if err != nil {
		t.Fatalf("keepalive got no reply: %v", err)
	}
	_ = ok
	if out, _, err := run(t, c, "echo alive", nil); err != nil || out != "alive\n" {
		t.Fatalf("connection after a failed channel: %q %v", out, err)
	}
}

func TestHooks(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	closed := make(chan string, 1)
	f.srv.RequestHandlers["hello@alknet"] = func(ctx context.Context, cc *alkssh.ConnContext, req *gossh.Request) (bool, []byte) {
		cc.OnClose(func() { closed <- cc.Peer.Name() })
		return true, []byte(cc.Peer.Name())
	}
	f.srv.Subsystems["echo"] = func(ctx context.Context, rw io.ReadWriteCloser, peer core.Peer) error {
		_, err := io.Copy(rw, rw)
		return err
	}
	c := mustDial(t, f, f.owner)
	ok, payload, err := c.SendRequest("hello@alknet", true, nil)
	if !ok || err != nil || string(payload) != "owner" {
		t.Fatalf("request hook: %v %q %v", ok, payload, err)
	}
	s, _ := c.NewSession()
	defer s.Close()
	in, _ := s.StdinPipe()
	outp, _ := s.StdoutPipe()
	if err := s.RequestSubsystem("echo"); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(outp, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("subsystem echo: %q %v", buf, err)
	}
	in.Close()
	if rest, err := io.ReadAll(outp); err != nil || len(rest) != 0 {
		t.Fatalf("subsystem end: %q %v", rest, err)
	}

	// A subsystem needs the scope ssh:<name>; an unknown one is refused.
	r := mustDial(t, f, f.execOnly)
	s2, _ := r.NewSession()
	defer s2.Close()
	if err := s2.RequestSubsystem("echo"); err == nil {
		t.Error("subsystem without ssh:echo succeeded")
	}
	s3, _ := c.NewSession()
	defer s3.Close()
	if err := s3.RequestSubsystem("nope"); err == nil {
		t.Error("unknown subsystem succeeded")
	}
	c.Close()
	select {
	case name := <-closed:
		if name != "owner" {
			t.Fatalf("closer saw %q", name)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnClose did not run")
	}
}

// TestClientVanishes checks that a dropped client leaves no process behind.
func TestClientVanishes(t *testing.T) {
	f := newFixture(t, alkssh.Config{Shell: true})
	for _, pty := range []bool{false, true} {
		t.Run(fmt.Sprintf("pty=%v", pty), func(t *testing.T) {
			c := mustDial(t, f, f.owner)
			marker := fmt.Sprintf("alknet-vanish-%d-%v", time.Now().UnixNano(), pty)
			s, _ := c.NewSession()
			if pty {
				s.RequestPty("xterm", 24, 80, nil)
			}
			var out coretest.SyncBuffer
			s.Stdout = &out
			// A background job, a child that ignores SIGHUP, a job in a process group
			// of its own (set -m), and a foreground sleep.
			script := fmt.Sprintf(`sh -c 'sleep 300; : %[1]s' & sh -c 'trap "" HUP; sleep 300; : %[1]s' & (set -m; sh -c 'sleep 300; : %[1]s' &) ; echo started; sleep 300`, marker)
			if err := s.Start(script); err != nil {
				t.Fatal(err)
			}
			waitFor(t, &out, "started")
			waitProcs(t, marker, true)
			c.Close()
			waitProcs(t, marker, false)
		})
	}
}

func waitProcs(t *testing.T, marker string, want bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := exec.Command("pgrep", "-f", marker).Run()
		if (err == nil) == want {
			return
		}
		if time.Now().After(deadline) {
			out, _ := exec.Command("pgrep", "-af", marker).Output()
			t.Fatalf("processes with %s present=%v, want %v: %s", marker, err == nil, want, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestShutdown(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	c := mustDial(t, f, f.owner)
	s, _ := c.NewSession()
	var errb coretest.SyncBuffer
	var out coretest.SyncBuffer
	s.Stderr, s.Stdout = &errb, &out
	if err := s.Start("echo started; sleep 100"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &out, "started")
	idle := mustDial(t, f, f.owner)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	err := s.Wait()
	var ee *gossh.ExitError
	if !errors.As(err, &ee) || ee.Signal() != "HUP" {
		t.Errorf("session ended with %v, want exit-signal HUP", err)
	}
	if !strings.Contains(errb.String(), "shutting down") {
		t.Errorf("no shutdown notice on stderr: %q", errb.String())
	}
	if err := idle.Wait(); err == nil {
		t.Log("idle connection closed")
	}
	if _, err := f.dialPipe(t, f.owner); err == nil {
		t.Error("a connection after Shutdown succeeded")
	}
}

func TestOverEndpoint(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	mux := core.NewMux()
	if err := mux.Handle(alkssh.ALPN, f.srv); err != nil {
		t.Fatal(err)
	}
	node := coretest.StartNode(t, mux)
	for _, tr := range coretest.Transports {
		t.Run(tr, func(t *testing.T) {
			conn := node.Dial(t, alkssh.ALPN, tr, nil) // anonymous in TLS: SSH authenticates itself
			st, err := conn.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			c, err := f.sshClient(t, core.NetConn(st, nil, nil), f.owner)
			if err != nil {
				t.Fatal(err)
			}
			out, _, err := run(t, c, "printf hi; exit 3", nil)
			if out != "hi" || exitStatus(err) != 3 {
				t.Fatalf("got %q %v", out, err)
			}
		})
	}
	t.Run("peer reload applies to the next connection", func(t *testing.T) {
		newcomer := core.GenerateKey()
		dial := func() error {
			conn := node.Dial(t, alkssh.ALPN, core.TransportTCP, nil)
			st, _ := conn.OpenStream(context.Background())
			_, err := f.sshClient(t, core.NetConn(st, nil, nil), newcomer)
			return err
		}
		if dial() == nil {
			t.Fatal("unlisted key got in")
		}
		if err := f.peers.Update([]core.PeerConfig{coretest.PeerFor("newcomer", newcomer, core.ScopeSSHExec)}); err != nil {
			t.Fatal(err)
		}
		if err := dial(); err != nil {
			t.Fatalf("listed key refused after reload: %v", err)
		}
	})
}

func TestPlainListener(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(l) }()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.sshClient(t, nc, f.owner)
	if err != nil {
		t.Fatal(err)
	}
	if out, _, err := run(t, c, "echo tcp", nil); err != nil || out != "tcp\n" {
		t.Fatalf("got %q %v", out, err)
	}
	c.Close()
	f.srv.Close()
	if err := <-served; !errors.Is(err, alkssh.ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
}

func TestFetchHostKey(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	client, server := coretest.Pipe(alkssh.ALPN, core.Peer{}, core.Peer{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.srv.ServeConn(context.Background(), server)
	}()
	defer func() { client.Close(0, ""); <-done }()
	st, _ := client.OpenStream(context.Background())
	key, err := alkssh.FetchHostKey(context.Background(), core.NetConn(st, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key.Marshal(), f.srv.HostKey().Marshal()) {
		t.Fatal("fetched a different host key")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg alkssh.Config
		ok  bool
	}{
		{alkssh.Config{}, true},
		{alkssh.Config{Command: "sh"}, false},
		{alkssh.Config{Dir: "relative"}, false},
		{alkssh.Config{Env: []string{"A=B"}}, false},
		{alkssh.Config{Env: []string{"LC_*", "*"}}, true},
	} {
		if err := tt.cfg.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: %v", tt.cfg, err)
		}
	}
	if _, err := alkssh.NewServer(nil, nil, alkssh.Config{}, nil); !errors.Is(err, alkssh.ErrNoHostKey) {
		t.Errorf("NewServer without key: %v", err)
	}
}

func waitFor(t *testing.T, b *coretest.SyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in %q", want, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var _ = os.Getpid

func TestSetConfigAppliesToNewSessions(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	c := mustDial(t, f, f.owner)
	s, _ := c.NewSession()
	if err := s.RequestPty("xterm", 24, 80, nil); err == nil {
		t.Fatal("pty with shell off")
	}
	s.Close()
	if err := f.srv.SetConfig(alkssh.Config{Shell: true, Dir: f.srv.Config().Dir}); err != nil {
		t.Fatal(err)
	}
	s2, _ := c.NewSession()
	defer s2.Close()
	if err := s2.RequestPty("xterm", 24, 80, nil); err != nil {
		t.Fatalf("pty after enabling the shell: %v", err)
	}
	if err := f.srv.SetConfig(alkssh.Config{Command: "relative"}); err == nil {
		t.Fatal("SetConfig accepted a relative command")
	}
}

func TestExecHandlers(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	f.srv.ExecHandlers["upper"] = func(ctx context.Context, rw io.ReadWriter, stderr io.Writer, peer core.Peer, args []string) int {
		b, _ := io.ReadAll(rw)
		fmt.Fprintf(rw, "%s %s %s", peer.Name(), strings.Join(args[1:], ","), strings.ToUpper(string(b)))
		fmt.Fprint(stderr, "done")
		return 4
	}
	// A peer holding only the finer scope reaches the handler, and nothing else.
	upperOnly := core.GenerateKey()
	if err := f.peers.Update([]core.PeerConfig{coretest.PeerFor("up", upperOnly, "ssh:exec:upper")}); err != nil {
		t.Fatal(err)
	}
	c := mustDial(t, f, upperOnly)
	out, errOut, err := run(t, c, `upper 'a b' "c"`, strings.NewReader("hello"))
	if out != "up a b,c HELLO" || errOut != "done" || exitStatus(err) != 4 {
		t.Fatalf("got %q %q %v", out, errOut, err)
	}
	if _, _, err := run(t, c, "echo hi", nil); err == nil {
		t.Error("ssh:exec:upper ran an ordinary command")
	}
	if out, _, err := run(t, c, "upper x; echo hi", nil); err == nil || out != "" {
		t.Errorf("a compound command reached the handler or a shell: %q %v", out, err)
	}
}

// TestUserKeyTypes: Ed25519 by node ID, ECDSA and RSA (SHA-2 signatures) by OpenSSH
// line; RSA with SHA-1 signatures is refused.
func TestUserKeyTypes(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	var list []core.PeerConfig
	signers := map[string]gossh.Signer{}
	for name, k := range map[string]crypto.Signer{"ec": ecKey, "rsa": rsaKey} {
		s, err := gossh.NewSignerFromSigner(k)
		if err != nil {
			t.Fatal(err)
		}
		signers[name] = s
		list = append(list, core.PeerConfig{Name: name, Keys: []string{strings.TrimSpace(string(gossh.MarshalAuthorizedKey(s.PublicKey())))}, Scopes: []string{core.ScopeSSHExec}})
	}
	if err := f.peers.Update(list); err != nil {
		t.Fatal(err)
	}
	sha1RSA, _ := gossh.NewSignerWithAlgorithms(signers["rsa"].(gossh.AlgorithmSigner), []string{gossh.KeyAlgoRSA})
	sha2RSA, _ := gossh.NewSignerWithAlgorithms(signers["rsa"].(gossh.AlgorithmSigner), []string{gossh.KeyAlgoRSASHA512})
	for _, tt := range []struct {
		name   string
		signer gossh.Signer
		want   string // peer name, "" for refused
	}{
		{"ecdsa", signers["ec"], "ec"},
		{"rsa-sha2-512", sha2RSA, "rsa"},
		{"ssh-rsa (sha1)", sha1RSA, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client, server := coretest.Pipe(alkssh.ALPN, core.Peer{}, core.Peer{})
			done := make(chan struct{})
			go func() { defer close(done); f.srv.ServeConn(context.Background(), server) }()
			defer func() { client.Close(0, ""); <-done }()
			st, _ := client.OpenStream(context.Background())
			conn, chans, reqs, err := gossh.NewClientConn(core.NetConn(st, nil, nil), "alknet", &gossh.ClientConfig{
				User: "x", Auth: []gossh.AuthMethod{gossh.PublicKeys(tt.signer)},
				HostKeyCallback: gossh.FixedHostKey(f.srv.HostKey()), Timeout: 10 * time.Second,
			})
			if tt.want == "" {
				if err == nil {
					conn.Close()
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := gossh.NewClient(conn, chans, reqs)
			defer c.Close()
			out, _, err := run(t, c, "echo $ALKNET_PEER", nil)
			if err != nil || out != tt.want+"\n" {
				t.Fatalf("got %q %v", out, err)
			}
		})
	}
}

// TestAlgorithms: only the modern key exchanges and ciphers are offered.
func TestAlgorithms(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	for _, tt := range []struct {
		name    string
		kex     []string
		ciphers []string
		ok      bool
	}{
		{"mlkem hybrid", []string{gossh.KeyExchangeMLKEM768X25519}, nil, true},
		{"curve25519", []string{gossh.KeyExchangeCurve25519}, nil, true},
		{"chacha20-poly1305", nil, []string{gossh.CipherChaCha20Poly1305}, true},
		{"aes256-gcm", nil, []string{gossh.CipherAES256GCM}, true},
		{"ecdh-p256 refused", []string{gossh.KeyExchangeECDHP256}, nil, false},
		{"dh-group14 refused", []string{gossh.KeyExchangeDH14SHA256}, nil, false},
		{"aes-ctr refused", nil, []string{gossh.CipherAES128CTR}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client, server := coretest.Pipe(alkssh.ALPN, core.Peer{}, core.Peer{})
			done := make(chan struct{})
			go func() { defer close(done); f.srv.ServeConn(context.Background(), server) }()
			defer func() { client.Close(0, ""); <-done }()
			st, _ := client.OpenStream(context.Background())
			cfg := &gossh.ClientConfig{
				User: "x", Auth: []gossh.AuthMethod{gossh.PublicKeys(signer(t, f.owner))},
				HostKeyCallback: gossh.FixedHostKey(f.srv.HostKey()), Timeout: 10 * time.Second,
			}
			cfg.KeyExchanges, cfg.Ciphers = tt.kex, tt.ciphers
			conn, _, _, err := gossh.NewClientConn(core.NetConn(st, nil, nil), "alknet", cfg)
			if conn != nil {
				conn.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("handshake err %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestPlainListenerPerIPLimit(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	f.srv.ListenerLimits.MaxConnsPerIP = 1
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(l) }()
	defer func() { f.srv.Close(); <-served }()
	first, _ := net.Dial("tcp", l.Addr().String())
	c, err := f.sshClient(t, first, f.owner)
	if err != nil {
		t.Fatal(err)
	}
	second, _ := net.Dial("tcp", l.Addr().String())
	if _, err := f.sshClient(t, second, f.owner); err == nil {
		t.Fatal("a second connection from one address got in with a limit of 1")
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		third, _ := net.Dial("tcp", l.Addr().String())
		if _, err := f.sshClient(t, third, f.owner); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot was not released")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(f.log.String(), "connection rejected") {
		t.Error("rejection not logged")
	}
}
