package ssh_test

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	alkssh "github.com/alkdev/alknet/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// A host key that is missing or malformed is an error, never a panic.
func TestNewServerBadHostKey(t *testing.T) {
	var nilKey ed25519.PrivateKey
	var nilPtr *ed25519.PrivateKey
	short := ed25519.PrivateKey(make([]byte, 31))
	for _, tt := range []struct {
		name string
		key  crypto.Signer
	}{
		{"nil interface", nil},
		{"nil ed25519.PrivateKey", nilKey},
		{"empty ed25519.PrivateKey", ed25519.PrivateKey{}},
		{"31-byte ed25519.PrivateKey", short},
		{"seed only", ed25519.PrivateKey(core.GenerateKey().Seed())},
		{"nil *ed25519.PrivateKey", nilPtr},
		{"*ed25519.PrivateKey to nil", &nilKey},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var srv *alkssh.Server
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("NewServer panicked: %v", r)
					}
				}()
				srv, err = alkssh.NewServer(tt.key, nil, alkssh.Config{Dir: t.TempDir()}, nil)
			}()
			if !errors.Is(err, alkssh.ErrNoHostKey) {
				t.Fatalf("err = %v, want ErrNoHostKey", err)
			}
			if srv != nil {
				t.Fatal("a server came back with the error")
			}
		})
	}
	good := core.GenerateKey()
	if _, err := alkssh.NewServer(&good, nil, alkssh.Config{Dir: t.TempDir()}, nil); err != nil {
		t.Fatalf("*ed25519.PrivateKey: %v", err)
	}
}

// HandleConn gives up on a client that stalls in the handshake as soon as its context
// ends, well before the handshake's own limit (LoginGraceTime).
func TestHandleConnContextDuringHandshake(t *testing.T) {
	f := newFixture(t, alkssh.Config{LoginGraceTime: core.Duration(10 * time.Minute)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	nc := <-accepted
	if nc == nil {
		t.Fatal("accept failed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.srv.HandleConn(ctx, nc, "test") }()

	// The client reads the server's banner and then says nothing.
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	banner, err := bufio.NewReader(client).ReadString('\n')
	if err != nil || banner != "SSH-2.0-alknet\r\n" {
		t.Fatalf("banner %q, %v", banner, err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("HandleConn = %v, want context.Canceled", err)
		}
	case <-time.After(15 * time.Second): // the handshake limit is 10 minutes
		t.Fatal("HandleConn still runs after its context ended")
	}
	// The server closed the connection.
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, client); err != nil {
		t.Fatalf("client read: %v", err)
	}
}

// A channel handler that panics before answering the open, or after accepting and
// without closing, affects only its own channel: the client gets a refusal or an end
// of channel, and the connection goes on.
func TestChannelHandlerPanicClosesOnlyItsChannel(t *testing.T) {
	f := newFixture(t, alkssh.Config{})
	f.srv.ChannelHandlers["panics-early"] = func(ctx context.Context, cc *alkssh.ConnContext, nch gossh.NewChannel) {
		panic("before the answer")
	}
	f.srv.ChannelHandlers["panics-late"] = func(ctx context.Context, cc *alkssh.ConnContext, nch gossh.NewChannel) {
		nch.Accept()
		panic("after accepting")
	}
	c := mustDial(t, f, f.owner)
	type opened struct {
		ch  gossh.Channel
		err error
	}
	open := func(typ string) opened {
		res := make(chan opened, 1)
		go func() {
			ch, reqs, err := c.OpenChannel(typ, nil)
			if err == nil {
				go gossh.DiscardRequests(reqs)
			}
			res <- opened{ch, err}
		}()
		select {
		case r := <-res:
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("open %s: no answer", typ)
			return opened{}
		}
	}
	r := open("panics-early")
	var oce *gossh.OpenChannelError
	if !errors.As(r.err, &oce) || oce.Reason != gossh.ConnectionFailed {
		t.Fatalf("panics-early: %v, want a ConnectionFailed refusal", r.err)
	}
	r = open("panics-late")
	if r.err != nil {
		t.Fatalf("panics-late: %v", r.err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, r.ch)
		ended <- err
	}()
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("panics-late channel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the channel of a panicked handler stays open")
	}
	if out, _, err := run(t, c, "echo alive", nil); err != nil || out != "alive\n" {
		t.Fatalf("connection after the panics: %q %v", out, err)
	}
	if logs := f.log.String(); !strings.Contains(logs, "before the answer") || !strings.Contains(logs, "after accepting") {
		t.Fatalf("panics not logged:\n%s", f.log.String())
	}
}

// A client that stalls in the handshake past Config.LoginGraceTime is dropped, the
// error says so (ErrLoginTimeout), and the server logs one line naming the remote and
// the carrier, as OpenSSH logs "Timeout before authentication".
func TestLoginGraceTimeDropsAndLogs(t *testing.T) {
	if alkssh.DefaultLoginGraceTime != 120*time.Second {
		t.Errorf("DefaultLoginGraceTime = %v, want OpenSSH's 2m0s", alkssh.DefaultLoginGraceTime)
	}
	f := newFixture(t, alkssh.Config{LoginGraceTime: core.Duration(300 * time.Millisecond)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	nc := <-accepted
	if nc == nil {
		t.Fatal("accept failed")
	}
	done := make(chan error, 1)
	go func() { done <- f.srv.HandleConn(context.Background(), nc, "test-carrier") }()

	// The client reads the server's banner, sends its own, and then says nothing.
	client.SetDeadline(time.Now().Add(10 * time.Second))
	banner, err := bufio.NewReader(client).ReadString('\n')
	if err != nil || banner != "SSH-2.0-alknet\r\n" {
		t.Fatalf("banner %q, %v", banner, err)
	}
	if _, err := io.WriteString(client, "SSH-2.0-slow\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, alkssh.ErrLoginTimeout) {
			t.Fatalf("HandleConn = %v, want ErrLoginTimeout", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("HandleConn still runs past LoginGraceTime")
	}
	logs := f.log.String()
	for _, want := range []string{
		"level=INFO",
		`msg="connection dropped: timeout before authentication"`,
		"remote=" + client.LocalAddr().String(),
		"transport=test-carrier",
		"login_grace_time=300ms",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}
