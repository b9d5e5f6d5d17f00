package core_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"maps"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alkdev/alknet/core"
)

// TestListenNilRefused checks that a nil listener is refused up front rather than
// crashing an accept goroutine later or slipping past Serve's "call Listen first".
func TestListenNilRefused(t *testing.T) {
	newEP := func(t *testing.T) *core.Endpoint {
		ep, err := core.NewEndpoint(newEchoMux(t), core.EndpointConfig{Key: core.GenerateKey(), Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ep.Close() })
		return ep
	}
	for name, listen := range map[string]func(*core.Endpoint) error{
		"ListenQUIC(nil)":       func(ep *core.Endpoint) error { return ep.ListenQUIC(nil) },
		"ListenQUIC(typed nil)": func(ep *core.Endpoint) error { return ep.ListenQUIC((*net.UDPConn)(nil)) },
		"ListenTCP(nil)":        func(ep *core.Endpoint) error { return ep.ListenTCP(nil) },
		"ListenTCP(typed nil)":  func(ep *core.Endpoint) error { return ep.ListenTCP((*net.TCPListener)(nil)) },
	} {
		t.Run(name, func(t *testing.T) {
			ep := newEP(t)
			if err := listen(ep); err == nil {
				t.Fatal("accepted a nil listener")
			}
			if ep.UDPAddr() != nil || ep.TCPAddr() != nil {
				t.Fatal("a refused listener was recorded")
			}
		})
	}
}

// TestKeyArgumentsRefused checks that every function taking a private key returns an
// error wrapping ErrInvalidKey for a malformed one, instead of panicking.
func TestKeyArgumentsRefused(t *testing.T) {
	good := core.GenerateKey()
	mismatched := append(ed25519.PrivateKey(nil), good...)
	copy(mismatched[32:], core.GenerateKey()[32:]) // a public half from another key
	bad := map[string]ed25519.PrivateKey{
		"empty":      {},
		"short":      make(ed25519.PrivateKey, 3),
		"seed only":  good.Seed(),
		"long":       append(append(ed25519.PrivateKey(nil), good...), 0),
		"mismatched": mismatched,
	}
	addr := core.FormatAddr(core.NodeIDOf(good.Public().(ed25519.PublicKey)), "127.0.0.1:1")
	uses := map[string]func(ed25519.PrivateKey) error{
		"ValidKey": core.ValidKey,
		"SelfSignedCertificate": func(k ed25519.PrivateKey) error {
			_, err := core.SelfSignedCertificate(k)
			return err
		},
		"WriteKeyFile": func(k ed25519.PrivateKey) error {
			return core.WriteKeyFile(filepath.Join(t.TempDir(), "key"), k, "")
		},
		"NewEndpoint": func(k ed25519.PrivateKey) error {
			ep, err := core.NewEndpoint(core.NewMux(), core.EndpointConfig{Key: k})
			if err == nil {
				ep.Close()
			}
			return err
		},
		"Dial": func(k ed25519.PrivateKey) error {
			c, err := core.Dial(context.Background(), addr, echoALPN, k)
			if err == nil {
				c.Close(0, "")
			}
			return err
		},
		"Dialer.Dial": func(k ed25519.PrivateKey) error {
			c, err := (&core.Dialer{Key: k, Transport: core.TransportTCP}).Dial(context.Background(), addr, echoALPN)
			if err == nil {
				c.Close(0, "")
			}
			return err
		},
	}
	for use, f := range uses {
		keys := bad
		if use != "Dial" && use != "Dialer.Dial" { // a nil key dials anonymously
			keys = maps.Clone(bad)
			keys["nil"] = nil
		}
		for name, k := range keys {
			t.Run(use+"/"+name, func(t *testing.T) {
				if err := f(k); !errors.Is(err, core.ErrInvalidKey) {
					t.Fatalf("err = %v, want ErrInvalidKey", err)
				}
			})
		}
	}
	if err := core.ValidKey(good); err != nil {
		t.Fatalf("ValidKey(good) = %v", err)
	}
}

// TestNilPeers checks that a nil *Peers is an empty list for every read, as the
// endpoint treats it, and that Update on it fails instead of panicking.
func TestNilPeers(t *testing.T) {
	var p *core.Peers
	if n := p.Len(); n != 0 {
		t.Errorf("Len() = %d", n)
	}
	if id := p.Resolve(core.GenerateKey().Public()); id != nil {
		t.Errorf("Resolve() = %v", id)
	}
	if err := p.Update(nil); err == nil {
		t.Error("Update on a nil *Peers succeeded")
	}
}

// TestZeroEndpoint checks that a zero Endpoint, which NewEndpoint did not make, neither
// panics nor blocks: the accessors report nothing, Close and Shutdown have nothing to
// release, and Listen and Serve explain what is wrong.
func TestZeroEndpoint(t *testing.T) {
	var ep core.Endpoint
	if err := ep.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if err := ep.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown() = %v", err)
	}
	if a := ep.Addr(); a != "" {
		t.Errorf("Addr() = %q", a)
	}
	if id := ep.NodeID(); id != "" {
		t.Errorf("NodeID() = %q", id)
	}
	if ep.UDPAddr() != nil || ep.TCPAddr() != nil || ep.Mux() != nil {
		t.Error("a zero Endpoint reports a listener or a Mux")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	for name, f := range map[string]func() error{
		"Listen":     func() error { return ep.Listen("127.0.0.1:0") },
		"ListenTCP":  func() error { return ep.ListenTCP(ln) },
		"ListenQUIC": func() error { return ep.ListenQUIC(pc) },
		"Serve":      ep.Serve,
	} {
		if err := f(); err == nil || !strings.Contains(err.Error(), "NewEndpoint") {
			t.Errorf("%s() = %v, want an error naming NewEndpoint", name, err)
		}
	}
}
