package coretest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
)

// Node is a real endpoint serving on loopback for a test.
type Node struct {
	*core.Endpoint
	// Key is the node key.
	Key ed25519.PrivateKey
	// Peers is the endpoint's peer list; tests may Update it.
	Peers *core.Peers
	// Owner is a client key listed in Peers with scope "*".
	Owner ed25519.PrivateKey
}

// Option adjusts the node before it starts.
type Option func(*nodeConfig)

type nodeConfig struct {
	core.EndpointConfig
	extra []core.PeerConfig
}

// WithPeers lists more peers beside the owner.
func WithPeers(list ...core.PeerConfig) Option {
	return func(c *nodeConfig) { c.extra = append(c.extra, list...) }
}

// WithLimits sets the endpoint limits.
func WithLimits(l core.Limits) Option { return func(c *nodeConfig) { c.Limits = l } }

// WithLogger sets the endpoint's logger (the default discards everything).
func WithLogger(l *slog.Logger) Option { return func(c *nodeConfig) { c.Logger = l } }

// PeerFor returns a peer entry granting scopes to key, named name.
func PeerFor(name string, key ed25519.PrivateKey, scopes ...string) core.PeerConfig {
	return core.PeerConfig{Name: name, Keys: []string{string(core.NodeIDOf(key.Public().(ed25519.PublicKey)))}, Scopes: scopes}
}

// StartNode starts a real endpoint serving mux on 127.0.0.1, on QUIC and TLS/TCP on one
// free port, and stops it when the test ends. It lists an owner key with scope "*".
func StartNode(t testing.TB, mux *core.Mux, opts ...Option) *Node {
	t.Helper()
	owner := core.GenerateKey()
	nc := nodeConfig{EndpointConfig: core.EndpointConfig{
		Key:    core.GenerateKey(),
		Peers:  new(core.Peers),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
	for _, o := range opts {
		o(&nc)
	}
	if err := nc.Peers.Update(append([]core.PeerConfig{PeerFor("owner", owner, "*")}, nc.extra...)); err != nil {
		t.Fatal(err)
	}
	cfg := nc.EndpointConfig
	ep, err := core.NewEndpoint(mux, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ep.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ep.Shutdown(ctx)
		if err := <-served; !errors.Is(err, core.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return &Node{Endpoint: ep, Key: cfg.Key, Peers: cfg.Peers, Owner: owner}
}

// Dial connects to the node on alpn over transport ("quic" or "tcp") with key (nil for
// anonymous), and closes the connection when the test ends.
func (n *Node) Dial(t testing.TB, alpn, transport string, key ed25519.PrivateKey) core.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := core.Dialer{Key: key, Transport: transport}
	c, err := d.Dial(ctx, n.Addr(), alpn)
	if err != nil {
		t.Fatalf("dial %s over %s: %v", alpn, transport, err)
	}
	t.Cleanup(func() { c.Close(0, "") })
	return c
}

// Transports lists the endpoint's transports, for table tests that run on each.
var Transports = []string{core.TransportQUIC, core.TransportTCP}
