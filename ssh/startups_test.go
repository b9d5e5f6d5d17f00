package ssh_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	alkssh "github.com/alkdev/alknet/ssh"
	"go.uber.org/goleak"
)

// pendingHandshake opens a raw stream on conn, sends only the SSH banner and reads the
// server's: the server has taken the stream into a handshake, which now waits for a key
// exchange that never comes.
func pendingHandshake(t *testing.T, nc net.Conn) net.Conn {
	t.Helper()
	t.Cleanup(func() { nc.Close() })
	nc.Write([]byte("SSH-2.0-flood\r\n"))
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	banner, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil || banner != "SSH-2.0-alknet\r\n" {
		t.Fatalf("banner %q, %v; want the server's", banner, err)
	}
	return nc
}

// refusedHandshake sends the SSH banner on nc and expects the server to close it at
// once, without a byte: long before the login grace time (minutes in these tests).
func refusedHandshake(t *testing.T, nc net.Conn, what string) {
	t.Helper()
	defer nc.Close()
	nc.Write([]byte("SSH-2.0-flood\r\n"))
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, nc)
	if n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: read %d bytes, %v; want the stream closed at once", what, n, err)
	}
}

func openStream(t *testing.T, c core.Conn) net.Conn {
	t.Helper()
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return core.NetConn(st, nil, nil)
}

// A flood of unauthenticated handshakes is bounded server-wide (max_startups) and per
// alknet/ssh connection (max_startups_per_conn): handshakes beyond either cap are
// closed at once, legitimate clients get in below the cap and once the flood ends, and
// nothing is left running.
func TestMaxStartups(t *testing.T) {
	baseline := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, baseline) }) // registered first: runs last
	f := newFixture(t, alkssh.Config{MaxStartups: 4, MaxStartupsPerConn: 2, LoginGraceTime: core.Duration(10 * time.Minute)})
	mux := core.NewMux()
	if err := mux.Handle(alkssh.ALPN, f.srv); err != nil {
		t.Fatal(err)
	}
	node := coretest.StartNode(t, mux)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(l) }()
	t.Cleanup(func() { f.srv.Close(); <-served })

	login := func(conn core.Conn) error {
		c, err := f.sshClient(t, openStream(t, conn), f.owner)
		if err != nil {
			return err
		}
		defer c.Close()
		out, _, err := run(t, c, "echo in", nil)
		if err == nil && out != "in\n" {
			err = errors.New("unexpected output " + out)
		}
		return err
	}

	a := node.Dial(t, alkssh.ALPN, core.TransportQUIC, nil)
	var held []net.Conn
	held = append(held, pendingHandshake(t, openStream(t, a)), pendingHandshake(t, openStream(t, a)))
	refusedHandshake(t, openStream(t, a), "third handshake on one connection")

	// Below the server-wide cap, a legitimate client gets in during the flood.
	if err := login(node.Dial(t, alkssh.ALPN, core.TransportTCP, nil)); err != nil {
		t.Fatalf("login below the cap: %v", err)
	}

	b := node.Dial(t, alkssh.ALPN, core.TransportQUIC, nil)
	held = append(held, pendingHandshake(t, openStream(t, b)), pendingHandshake(t, openStream(t, b)))
	// At the cap, every transport is refused: a new alknet/ssh connection and the plain
	// TCP listener.
	refusedHandshake(t, openStream(t, node.Dial(t, alkssh.ALPN, core.TransportQUIC, nil)), "handshake beyond max_startups")
	plain, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	refusedHandshake(t, plain, "plain TCP handshake beyond max_startups")
	if !strings.Contains(f.log.String(), "too many unauthenticated connections") {
		t.Errorf("refusals not logged:\n%s", f.log.String())
	}

	// The flood ends: its slots free as soon as the server sees the streams close.
	for _, h := range held {
		h.Close()
	}
	c := node.Dial(t, alkssh.ALPN, core.TransportQUIC, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := login(c)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no login after the flood: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
