package main

import (
	"fmt"
	"sync"

	"github.com/alkdev/alknet/sftp"
	"github.com/alkdev/alknet/ssh"
)

// The sftp module serves two doors from one server: the alknet/sftp ALPN, and the
// "sftp" subsystem of SSH sessions (which the SSH server grants only to peers holding
// ssh:sftp; the sftp server then checks sftp:read and sftp:write as on its own ALPN).

func init() {
	sshSetup = append(sshSetup, func(a *app, srv *ssh.Server) error {
		s, err := sftpServerFor(a)
		if err != nil {
			return err
		}
		srv.Subsystems["sftp"] = s.ServeStream
		return nil
	})
}

func registerSFTP(a *app) error {
	s, err := sftpServerFor(a)
	if err != nil {
		return err
	}
	if err := a.handle(s, sftp.ALPN); err != nil {
		return err
	}
	a.notice("sftp:    {alknet} sftp ls {addr} /   (folder %s; OpenSSH: sftp with the ssh line's options)", s.Root())
	return nil
}

// sftpServers holds each app's one sftp server: the SSH module's setup may ask for it
// before registerSFTP runs.
var sftpServers sync.Map // *app → *sftp.Server

// sftpServerFor returns the app's sftp server, creating it on first use. [sftp] root
// is relative to the data folder.
func sftpServerFor(a *app) (*sftp.Server, error) {
	if s, ok := sftpServers.Load(a); ok {
		return s.(*sftp.Server), nil
	}
	cfg := a.cfg.SFTP
	if cfg.Root == "" {
		cfg.Root = sftp.DefaultRoot
	}
	cfg.Root = a.cfg.dataPath(cfg.Root)
	s, err := sftp.NewServer(cfg, a.log)
	if err != nil {
		return nil, fmt.Errorf("sftp: %w", err)
	}
	sftpServers.Store(a, s)
	a.onClose(func() error {
		sftpServers.Delete(a)
		return s.Close()
	})
	return s, nil
}
