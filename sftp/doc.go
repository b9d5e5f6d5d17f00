// Package sftp serves SFTP (protocol version 3, with the OpenSSH extensions real
// clients use) from a folder, over any stream: the alknet/sftp ALPN of an alknet
// endpoint, and the "sftp" subsystem of the ssh module's SSH server.
//
// # Serving
//
// A [Server] is a [core.Handler]: register it on [ALPN] and each stream of a
// connection becomes one SFTP session for the peer the TLS handshake proved.
//
//	srv, err := sftp.NewServer(sftp.Config{Root: "/srv/sftp"}, logger)
//	if err != nil { ... }
//	defer srv.Close()
//	mux.Handle(sftp.ALPN, srv)
//
// [Server.ServeStream] serves one session on any io.ReadWriteCloser; its signature is
// the ssh module's SubsystemHandler, so the alknet command plugs it in as the SSH
// "sftp" subsystem (the SSH server first checks the scope ssh:sftp). The two modules
// never import each other.
//
// # Access
//
// Every session sees a root folder as "/": [Config.Root], or with [Config.PerPeer]
// Root/<peer name>. The folder is opened as an [os.Root], so no path leaves it: not
// "..", not absolute paths, not symbolic links that point outside, whether they were
// there before the session or made during it (the server refuses to create such links
// itself). Such paths are refused with "permission denied" ([ErrOutside]).
//
// A peer holding sftp:write may change the tree. A peer holding only sftp:read gets a
// read-only view: every change (open for writing, setstat, remove, rename, mkdir,
// rmdir, link, symlink) is refused with "permission denied" ([ErrReadOnly]) and
// nothing on disk changes. Any other peer, anonymous ones included, is refused
// ([ErrForbidden]); on the ALPN door its connection is closed with
// [core.CodeForbidden].
//
// # Uploads
//
// A file opened for writing is written to a temporary file beside it (named
// ".<name>.<random>.alknet-part"), which replaces the file only when the client closes
// its handle. A client that vanishes mid-upload, or a session ended by [Server.Close],
// leaves the old file as it was and no temporary file behind. Within the session the
// upload is visible at once (stat, open for reading), as clients such as sshfs expect.
// Writes and reads go straight to and from disk in the client's chunks: nothing is
// held in memory whole.
//
// # Protocol
//
// pkg/sftp's request server parses the protocol. In front of it a thin framing layer
// answers SSH_FXP_INIT with the full extension list and serves what pkg/sftp lacks:
//
//   - posix-rename@openssh.com, statvfs@openssh.com, hardlink@openssh.com (pkg/sftp);
//   - fsync@openssh.com (flushes the upload's temporary file to disk);
//   - limits@openssh.com (256 KiB packets, 255 KiB reads and writes, the sizes
//     OpenSSH's own sftp-server announces; OpenSSH's client then moves data in
//     255 KiB requests instead of 32 KiB).
//
// Any other request type or extension is answered with SSH_FX_OP_UNSUPPORTED.
package sftp
