package core_test

import (
	"net"
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
