package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/ssh"
	"github.com/spf13/cobra"
	gossh "golang.org/x/crypto/ssh"
)

func newSOCKSCmd() *cobra.Command {
	var cf clientFlags
	var listen string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "socks ADDR --listen HOST:PORT [--identity FILE] [--transport quic|tcp]",
		Short: "Run a local SOCKS5 proxy over one SSH connection to a node",
		Long: `Listen for SOCKS5 clients on HOST:PORT and carry each CONNECT as an SSH
direct-tcpip channel over one SSH connection to node ADDR (<node-id>@host:port) on
the alknet/ssh ALPN. Domain names are resolved by the node ("curl --socks5-hostname"
and "--socks5" both work). Only "no authentication" and CONNECT are served: bind the
listener to loopback unless every local user may use it.

The node must list the identity (--identity, default ~/.config/alknet/client.key) as
a peer with ssh:forward:local, and its [ssh.forward] rules decide which targets are
allowed: a refused target answers "connection not allowed by ruleset", a failed
connection "connection refused". When the connection to the node drops, it
reconnects with backoff (0.5s doubling up to 30s); a SOCKS client arriving meanwhile
waits for the next attempt, at most 10s, and gets "general failure" if there is still
no connection. If the node refuses the key, or ADDR's node ID is not the node's, it
says so and exits with status 1: retrying cannot help.

The node's SSH host key is accepted as it comes: the SSH connection runs inside a
TLS/QUIC connection that already pinned the node ID from ADDR, so only that node can
present it.

  alknet socks <node-id>@example.org:4433 --listen 127.0.0.1:1080
  curl --socks5-hostname 127.0.0.1:1080 http://intranet.example/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runSOCKS(ctx, &cf, args[0], listen, verbose)
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:1080", "local address for SOCKS5 clients")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log connection events (never targets)")
	return cmd
}

func runSOCKS(ctx context.Context, cf *clientFlags, addr, listen string, verbose bool) error {
	if _, _, err := core.ParseAddr(addr); err != nil {
		return err
	}
	if cf.anonymous {
		return errors.New("socks needs a client key: SSH accepts public-key authentication only")
	}
	key, err := cf.key()
	if err != nil {
		return err
	}
	keyFile := cf.identity
	if keyFile == "" {
		if keyFile, err = defaultIdentityPath(); err != nil {
			return err
		}
	}
	signer, err := gossh.NewSignerFromKey(key)
	if err != nil {
		return err
	}
	d, err := cf.dialer()
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	fmt.Fprintf(os.Stderr, "alknet socks: SOCKS5 on %s (no authentication) through %s\n", l.Addr(), addr)
	proxy := &ssh.SOCKSProxy{
		Logger: log,
		Connect: func(ctx context.Context) (*gossh.Client, error) {
			return socksDial(ctx, d, addr, signer)
		},
	}
	return socksStopped(proxy.Serve(ctx, l), addr, keyFile, key)
}

// socksStopped turns the permanent failures that stop the proxy into what to do about
// them.
func socksStopped(err error, addr, keyFile string, key ed25519.PrivateKey) error {
	switch {
	case errors.Is(err, ssh.ErrAuthRefused):
		id := core.NodeIDOf(key.Public().(ed25519.PublicKey))
		return fmt.Errorf(`node %s refused the key %s (node ID %s): the node does not list it as a peer.
On the node, add it with the scope socks needs:
  alknet peers add --config <node's alknet.toml> --name <name> --key %s --scope ssh:forward:local
(%w)`, addr, keyFile, id, id, err)
	case errors.Is(err, core.ErrIdentityMismatch):
		_, hostPort, _ := strings.Cut(addr, "@")
		return fmt.Errorf(`the node at %s has another node ID than the one in %s: check ADDR (the node prints it as "alknet serving <node-id>@host:port") (%w)`, hostPort, addr, err)
	}
	return err
}

// socksDial opens an SSH client connection to addr over one alknet/ssh stream.
func socksDial(ctx context.Context, d *core.Dialer, addr string, signer gossh.Signer) (*gossh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, addr, ssh.ALPN)
	if err != nil {
		return nil, err
	}
	s, err := c.OpenStream(ctx)
	if err != nil {
		c.Close(0, "")
		return nil, err
	}
	nc := core.NetConn(s, nil, nil)
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	sc, chans, reqs, err := gossh.NewClientConn(nc, "alknet", &gossh.ClientConfig{
		User: "alknet",
		Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
		// The TLS/QUIC layer pinned the node ID: whoever answers here is that node.
		HostKeyCallback:   func(string, net.Addr, gossh.PublicKey) error { return nil },
		HostKeyAlgorithms: []string{gossh.KeyAlgoED25519},
	})
	if err != nil {
		c.Close(0, "")
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	client := gossh.NewClient(sc, chans, reqs)
	go func() {
		client.Wait()
		c.Close(0, "")
	}()
	// Keep-alives notice a dead path even when no channel is open.
	go func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for range t.C {
			done := make(chan error, 1)
			go func() {
				_, _, err := client.SendRequest("keepalive@openssh.com", true, nil)
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					return
				}
			case <-time.After(30 * time.Second):
				client.Close()
				return
			}
		}
	}()
	return client, nil
}
