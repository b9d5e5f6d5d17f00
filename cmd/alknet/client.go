package main

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/alkdev/alknet/core"
	"github.com/spf13/pflag"
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	identity  string
	transport string
	anonymous bool
}

func (f *clientFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.identity, "identity", "", "client key file (default: ~/.config/alknet/client.key, created on first use)")
	fs.StringVar(&f.transport, "transport", "", `"quic" or "tcp" (default: QUIC, falling back to TLS over TCP)`)
	fs.BoolVar(&f.anonymous, "anonymous", false, "connect without a client key")
}

// key loads the client key, creating the default one on first use.
func (f *clientFlags) key() (ed25519.PrivateKey, error) {
	if f.anonymous {
		if f.identity != "" {
			return nil, fmt.Errorf("--anonymous and --identity %s contradict each other: choose one", f.identity)
		}
		return nil, nil
	}
	if f.identity != "" {
		return core.ReadKeyFile(f.identity)
	}
	path, err := defaultIdentityPath()
	if err != nil {
		return nil, err
	}
	return core.LoadOrCreateKey(path, "alknet client")
}

func (f *clientFlags) dialer() (*core.Dialer, error) {
	switch f.transport {
	case "", core.TransportQUIC, core.TransportTCP:
	default:
		return nil, fmt.Errorf("--transport %q: want quic or tcp", f.transport)
	}
	key, err := f.key()
	if err != nil {
		return nil, err
	}
	return &core.Dialer{Key: key, Transport: f.transport}, nil
}

func (f *clientFlags) dial(ctx context.Context, addr, alpn string) (core.Conn, error) {
	d, err := f.dialer()
	if err != nil {
		return nil, err
	}
	return d.Dial(ctx, addr, alpn)
}
