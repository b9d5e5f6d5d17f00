package main

import (
	"github.com/alkdev/alknet/ssh"
	"github.com/alkdev/alknet/ssh/forward"
)

// SSH port forwarding (layer 5): direct-tcpip, tcpip-forward and streamlocal, checked
// against the [ssh.forward] rules. "alknet-<name>" targets reach the node's own
// services through the Mux.
func init() { sshSetup = append(sshSetup, setupForward) }

func setupForward(a *app, srv *ssh.Server) error {
	f, err := forward.New(a.cfg.SSH.Forward, forward.Options{Mux: a.mux, Logger: a.log})
	if err != nil {
		return err
	}
	ssh.InstallForwarding(srv, f)
	a.onReload(func(c *Config) error { return f.SetConfig(c.SSH.Forward) })
	a.onClose(f.Close)
	return nil
}
