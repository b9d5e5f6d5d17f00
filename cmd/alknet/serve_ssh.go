package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/ssh"
)

// sshSetup lets other modules plug into the SSH server before it serves: forwarding
// adds channel types and global requests, sftp adds the "sftp" subsystem. Append to
// it from an init function in your serve_<module>.go.
var sshSetup []func(a *app, srv *ssh.Server) error

func registerSSH(a *app) error {
	cfg := a.cfg.SSH
	key, err := a.sshHostKey(cfg.HostKeyFile)
	if err != nil {
		return fmt.Errorf("host key: %w", err)
	}
	srv, err := ssh.NewServer(key, a.peers, cfg, a.log)
	if err != nil {
		return err
	}
	srv.ListenerLimits = a.cfg.Limits // the plain listener gets the endpoint's limits
	for _, f := range sshSetup {
		if err := f(a, srv); err != nil {
			return err
		}
	}
	if err := a.handle(srv, ssh.ALPN); err != nil {
		return err
	}
	a.onReload(func(c *Config) error { return srv.SetConfig(c.SSH) })
	a.onClose(srv.Close)

	if cfg.Listen != "" {
		l, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("ssh.listen: %w", err)
		}
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, ssh.ErrServerClosed) {
				a.log.Error("ssh listener stopped", "err", err)
			}
		}()
		host, port, _ := net.SplitHostPort(l.Addr().String())
		a.notice("ssh tcp: ssh -p %s%s %s (plain SSH listener %s)", port, identityOption(a), host, l.Addr())
	}
	proxyIdentity := ""
	if p := identityPath(a); p != "" {
		// The same key in TLS as in SSH, so the connection is not logged as unknown-key.
		proxyIdentity = " --identity " + p
	}
	a.notice("ssh:     ssh -o ProxyCommand='{alknet} connect {addr} --alpn %s%s' -o HostKeyAlias=%s%s alknet",
		ssh.ALPN, proxyIdentity, hostKeyAlias(core.NodeIDOf(a.key.Public().(ed25519.PublicKey))), identityOption(a))
	return nil
}

// identityOption is the "-i" option naming the owner key "alknet init" wrote beside
// the config, or the user's own client key.
func identityOption(a *app) string {
	if p := identityPath(a); p != "" {
		return " -i " + p
	}
	return ""
}

// identityPath is the owner key "alknet init" wrote beside the config, or the user's
// own client key.
func identityPath(a *app) string {
	if a.cfg.path != "" {
		p := filepath.Join(filepath.Dir(a.cfg.path), "client.key")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := defaultIdentityPath(); err == nil {
		return p
	}
	return ""
}

// hostKeyAlias is the name under which OpenSSH records this node's host key in
// known_hosts: "alknet-" and the node ID, so that each node keeps its own entry
// whatever host and port reach it.
func hostKeyAlias(node core.NodeID) string { return "alknet-" + string(node) }
