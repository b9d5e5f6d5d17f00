package core_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

const echoALPN = "alknet/echo"

// echo copies every stream back to its writer, then half-closes.
func echo(ctx context.Context, c core.Conn) error {
	for {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		go func() {
			defer s.Close()
			io.Copy(s, s)
			s.CloseWrite()
		}()
	}
}

func newEchoMux(t testing.TB) *core.Mux {
	m := core.NewMux()
	if err := m.HandleFunc(echoALPN, echo); err != nil {
		t.Fatal(err)
	}
	return m
}

func roundTrip(t *testing.T, c core.Conn, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := s.Write(payload)
		if err == nil {
			err = s.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echo returned %d bytes, want %d identical bytes", len(got), len(payload))
	}
}

func TestEndpointEchoBothTransports(t *testing.T) {
	n := coretest.StartNode(t, newEchoMux(t))
	payload := bytes.Repeat([]byte("alknet"), 200_000)
	for _, tr := range coretest.Transports {
		t.Run(tr, func(t *testing.T) {
			for _, p := range [][]byte{payload, nil} { // nil: a half-close with nothing written
				c := n.Dial(t, echoALPN, tr, n.Owner)
				if c.Transport() != tr {
					t.Fatalf("Transport() = %q, want %q", c.Transport(), tr)
				}
				roundTrip(t, c, p)
			}
		})
	}
}

func TestDialUnregisteredALPNRefused(t *testing.T) {
	n := coretest.StartNode(t, newEchoMux(t))
	for _, tr := range append(coretest.Transports, "") {
		t.Run("transport="+tr, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			d := core.Dialer{Transport: tr}
			c, err := d.Dial(ctx, n.Addr(), "alknet/nobody")
			if tr == "" && err != nil && strings.Contains(err.Error(), "TCP:") {
				t.Fatalf("a refusal over QUIC fell back to TCP: %v", err)
			}
			if err == nil {
				c.Close(0, "")
				t.Fatal("handshake on an unregistered ALPN succeeded")
			}
			if !strings.Contains(err.Error(), "application protocol") {
				t.Fatalf("err = %v, want a no_application_protocol failure", err)
			}
		})
	}
}

func TestDialWrongNodeIDRefused(t *testing.T) {
	n := coretest.StartNode(t, newEchoMux(t))
	other := core.NodeIDOf(core.GenerateKey().Public().(ed25519.PublicKey))
	addr := core.FormatAddr(other, n.UDPAddr().String())
	for _, tr := range append(coretest.Transports, "") {
		t.Run("transport="+tr, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			d := core.Dialer{Transport: tr}
			c, err := d.Dial(ctx, addr, echoALPN)
			if err == nil {
				c.Close(0, "")
				t.Fatal("dial with the wrong pin succeeded")
			}
			if !errors.Is(err, core.ErrIdentityMismatch) {
				t.Fatalf("err = %v, want ErrIdentityMismatch", err)
			}
		})
	}
}
