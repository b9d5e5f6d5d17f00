// Package ssh is alknet's SSH server: SSH over any stream, public-key authentication
// against the node's peer list, and session channels with exec and (opt-in) shell.
//
// It is built in layers (see DESIGN.md, "SSH, in layers"):
//
//  1. stream: [Server.ServeConn] serves the alknet/ssh ALPN on any [core.Conn], one SSH
//     connection per accepted stream (a QUIC stream, a TLS/TCP connection, a pipe);
//     [Server.HandleConn] serves one net.Conn, and [Server.Serve] a plain TCP listener.
//     The server never opens a socket of its own. Handshakes not yet authenticated
//     are bounded, like OpenSSH's MaxStartups: [Config.MaxStartups] server-wide and
//     [Config.MaxStartupsPerConn] per alknet/ssh connection, each with
//     [Config.LoginGraceTime] to finish; a stream beyond a cap is closed at once.
//  2. connection: an Ed25519 host key, modern algorithms only ([KeyExchanges],
//     [Ciphers], [UserKeyAlgorithms]), public-key authentication only. The client key
//     is resolved through [core.Peers]. The identity travels in the Permissions of the
//     accepted key (never in state a callback left behind, the CVE-2024-45337
//     pattern). Every attempt is logged with [core.LogAuth]. A reloaded peer list
//     applies to live connections too: scope checks re-resolve the accepted key
//     ([ConnContext.CurrentPeer]), and a connection whose peer was removed, renamed or
//     lost a scope it held is closed after its sessions are told "alknet: your access
//     changed; reconnect".
//  3. channels: x/crypto/ssh's multiplexer; channel types are served by
//     [Server.ChannelHandlers], global requests by [Server.RequestHandlers]. Unknown
//     types are refused cleanly, and a failing channel closes only itself.
//  4. session: "exec" (scope ssh:exec) with separate stdin, stdout and stderr and the
//     exit status sent after all output; "shell", "pty-req", "window-change" and
//     "signal" (scope ssh:shell, and [Config.Shell] must be on); "env" through an
//     allow-list; "subsystem" through [Server.Subsystems] (scope ssh:<name>); exec of a
//     program registered in [Server.ExecHandlers] (scope ssh:exec:<name>). x11 and
//     agent forwarding are refused and the session goes on. Each program starts as
//     the leader of a new session (as sshd starts them); when the client vanishes,
//     or the program ends leaving background jobs, every process of that session gets
//     SIGHUP, then SIGKILL after [Config.HangupGrace].
//
// Later layers plug in through the hooks: forwarding registers channel types and
// global requests, the sftp module a subsystem, git its upload-pack and receive-pack
// programs. Every nil hook denies.
//
// Each command gets a minimal environment: PATH, HOME, USER, LOGNAME, SHELL,
// ALKNET_PEER (the authenticated peer's name), TERM with a terminal, and the variables
// the client set that [Config.Env] allows.
//
// The smallest server:
//
//	srv, err := ssh.NewServer(hostKey, peers, ssh.Config{}, logger)
//	if err != nil { ... }
//	mux.Handle(ssh.ALPN, srv)
//
// and, for a plain TCP listener as well:
//
//	l, _ := net.Listen("tcp", "127.0.0.1:2222")
//	go srv.Serve(l)
//
// [Server.Shutdown] ends every session with a notice and closes the connections; the
// endpoint calls it through [core.Shutdowner].
package ssh
