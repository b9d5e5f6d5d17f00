package core_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

func TestHandshakeTimeoutClosesSilentTCPClient(t *testing.T) {
	n := coretest.StartNode(t, newEchoMux(t), coretest.WithLimits(core.Limits{HandshakeTimeout: core.Duration(200 * time.Millisecond)}))
	nc, err := net.Dial("tcp", n.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("a silent client got bytes")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the endpoint never closed a client that sent no handshake")
	}
	if time.Since(start) > 4*time.Second {
		t.Fatal("handshake timeout not applied")
	}
}

// TestIdleTimeoutClosesQUIC checks that the server ends a silent QUIC connection. (The
// client learns later: quic-go floors a peer's idle timeout at 5 s.)
func TestIdleTimeoutClosesQUIC(t *testing.T) {
	ended := make(chan struct{})
	m := core.NewMux()
	m.HandleFunc("alknet/idle", func(ctx context.Context, c core.Conn) error {
		c.AcceptStream(ctx)
		close(ended)
		return nil
	})
	n := coretest.StartNode(t, m, coretest.WithLimits(core.Limits{IdleTimeout: core.Duration(300 * time.Millisecond)}))
	d := core.Dialer{Transport: core.TransportQUIC, KeepAlive: -1}
	c, err := d.Dial(context.Background(), n.Addr(), "alknet/idle")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(0, "")
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the server kept an idle QUIC connection past its idle timeout")
	}
}
