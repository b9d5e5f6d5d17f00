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
// there before the session or made during it. Such paths are refused with "permission
// denied" ([ErrOutside]). A per-peer folder is made and opened through an os.Root of
// Root and never followed if it is a symbolic link: that peer is refused
// ([ErrPeerFolder]) and the reason logged.
//
// A peer holding sftp:write may change the tree. A peer holding only sftp:read gets a
// read-only view: every change (open for writing, setstat, remove, rename, mkdir,
// rmdir, link, symlink) is refused with "permission denied" ([ErrReadOnly]) and
// nothing on disk changes. Any other peer, anonymous ones included, is refused
// ([ErrForbidden]); on the ALPN door its connection is closed with
// [core.CodeForbidden].
//
// # Symbolic links
//
// The os.Root guards only the session's own lookups; links stay on disk, where other
// programs follow them, and so did this server when it opened Root/<peer name> for a
// per-peer session. A peer could once make "e/writer -> .." (inside the folder, seen
// from e), rename it to "writer" (now pointing at Root's parent, the node's data
// folder) and, once per_peer was turned on, log in as "writer" and read the node's
// keys. Hence a decision (sftp module, accepted): the server leaves no link on disk
// pointing outside the served folder, whatever moves happen later.
//
// A relative link resolves from its own folder, so moving it elsewhere changes its
// meaning, and moving a folder elsewhere changes the meaning of the links inside it
// that climb out of it. The server keeps a property no later move can break: every
// link it creates, moves to another folder or hard-links (link(2) names the link
// itself, not its target) has a relative target without a ".." element ("file",
// "./file", "sub/dir/file"), which names something at or below the link's own
// folder wherever that folder goes, and which does not resolve outside through a
// link already there. Anything else is refused with "permission denied"
// ([ErrUnsafeLink]): absolute targets (stored as they are, they would name the
// server's files, not the folder's) and targets with "..". Links with ".." can thus
// not be made through SFTP (a link /a/b/l -> ../x would change meaning as soon as
// /a/b alone moved); links to siblings and into subfolders, the common ones, work.
//
// Links placed by other means (a deploy tool's "current/conf -> ../shared/conf")
// may climb. Renames keep them as they are:
//
//   - A rename within one folder ("/site" to "/site-old", "/site/current" to
//     "/site/cur2") is always allowed: a link inside the moved folder F climbs out of
//     F only through F's parent, which does not change, and a link moved itself keeps
//     its target and its folder, so every link resolves exactly as before.
//   - Moving a folder F to another folder is allowed if every link inside climbs no
//     higher than F: a link whose folder is d levels below F (0 for one directly in
//     F), with a target of k leading ".." and then names only, resolves inside F
//     wherever F goes when k <= d ("/site" holding current/conf -> ../shared/conf:
//     d = 1, k = 1, so "/site" may move to "/archive/site"). Otherwise (k > d, an
//     absolute target, a ".." after a name) the move is refused: moving
//     "/site/current" alone to "/archive" would make conf name /archive/shared/conf.
//     Each later move is judged the same way from the folder then moved.
//   - Moving or hard-linking a link itself to another folder needs a safe target, as
//     for a new link.
//
// Each refusal is logged at info ("sftp: link operation refused") with the peer, the
// operation, its paths, the offending link and the rule, since the client sees only
// "permission denied". The checks and the operation they decide run under one lock
// shared by every session, so no session can slip a climbing link, or a folder
// holding one, under a path between the check and the rename (renames within a
// folder move such folders without looking inside). An upload's temporary file, whose
// name the client can see and reuse, is moved onto its target only if that name still
// names the file written ([ErrUploadReplaced]).
//
// Rejected alternatives: rewriting absolute in-folder targets as relative ones (they
// need ".."); refusing symbolic links altogether (simple ones are in common use).
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
