package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/alkdev/alknet/core"
	"github.com/pkg/sftp"
)

// ALPN is the protocol name of SFTP served directly on a connection.
const ALPN = "alknet/sftp"

// ErrForbidden is returned by [Server.ServeStream] (and logged by
// [Server.ServeConn]) for a peer holding neither sftp:read nor sftp:write.
var ErrForbidden = fmt.Errorf("sftp: the peer holds neither sftp:read nor sftp:write: %w", fs.ErrPermission)

// ErrBadPeerName is returned in per-peer mode for a peer whose name cannot be a
// folder name.
var ErrBadPeerName = errors.New("sftp: peer name unusable as a folder name")

// ErrPeerFolder is returned in per-peer mode when Root/<peer name> exists but is
// not a plain folder: a symbolic link (which could lead anywhere, the node's data
// folder included) or a file. The session is refused and the reason logged; the
// operator removes or fixes the entry.
var ErrPeerFolder = fmt.Errorf("sftp: the peer's folder is not a plain folder (a symbolic link?): %w", fs.ErrPermission)

// ErrServerClosed is returned by ServeStream after [Server.Close]. It wraps
// [net.ErrClosed].
var ErrServerClosed = fmt.Errorf("sftp: server closed: %w", core.ErrConnClosed)

// Server serves SFTP (version 3, with OpenSSH's extensions) from a folder, over any
// stream. It is a [core.Handler] for the [ALPN] door, and [Server.ServeStream] serves
// the SSH "sftp" subsystem.
//
// Each session sees its root folder as "/" and nothing outside it. A peer holding
// sftp:write may change the tree; one holding only sftp:read sees a read-only tree in
// which every change is refused with "permission denied"; any other peer is refused.
type Server struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	closed   bool
	sessions map[io.Closer]struct{}
	wg       sync.WaitGroup
}

// NewServer returns a server for cfg, creating the root folder if missing. A nil log
// discards.
func NewServer(cfg Config, log *slog.Logger) (*Server, error) {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("sftp: root folder: %w", err)
	}
	return &Server{cfg: cfg, log: log, sessions: map[io.Closer]struct{}{}}, nil
}

// Root returns the folder served (per-peer folders are inside it).
func (s *Server) Root() string { return s.cfg.Root }

// ServeConn serves the [ALPN] door: one SFTP session per stream, for the peer the TLS
// handshake proved. A peer without SFTP scopes has its connection closed with
// [core.CodeForbidden].
func (s *Server) ServeConn(ctx context.Context, c core.Conn) error {
	peer := c.Peer()
	if !allowed(peer) {
		s.log.Info("sftp: refused", "peer", peer.Name(), "remote", addrString(peer), "transport", c.Transport())
		c.Close(core.CodeForbidden, "sftp: permission denied: the sftp:read or sftp:write scope is needed")
		return ErrForbidden
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := c.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer st.Close()
			if err := s.ServeStream(ctx, st, peer); err != nil {
				s.log.Debug("sftp: session ended", "peer", peer.Name(), "err", err)
			}
		}()
	}
}

func allowed(p core.Peer) bool {
	return p.Allows(core.ScopeSFTPRead) || p.Allows(core.ScopeSFTPWrite)
}

func addrString(p core.Peer) string {
	if p.RemoteAddr == nil {
		return "-"
	}
	return p.RemoteAddr.String()
}

// ServeStream serves one SFTP session on rw for peer until the client ends it, ctx
// ends, or the server closes. It returns nil when the client ended the session, and
// [ErrForbidden], without reading or writing anything, for a peer without SFTP
// scopes. The caller closes rw afterwards; ServeStream closes it itself only to end
// the session early (ctx done, [Server.Close]).
//
// Its signature is the SSH module's SubsystemHandler, so it plugs in as the "sftp"
// subsystem (which then sends the exit status and closes the channel); the caller
// checks SSH's own scope (ssh:sftp).
func (s *Server) ServeStream(ctx context.Context, rw io.ReadWriteCloser, peer core.Peer) error {
	if !allowed(peer) {
		s.log.Info("sftp: refused", "peer", peer.Name(), "remote", addrString(peer))
		return ErrForbidden
	}
	root, err := s.openRoot(peer)
	if err != nil {
		msg := "sftp: no folder for peer"
		if errors.Is(err, ErrPeerFolder) {
			msg = "sftp: refused: the peer's folder is not a plain folder; it is not followed (remove it to serve this peer)"
		}
		s.log.Warn(msg, "peer", peer.Name(), "err", err)
		return err
	}
	defer root.Close()
	if !s.track(rw) {
		return ErrServerClosed
	}
	defer s.untrack(rw)

	writable := peer.Allows(core.ScopeSFTPWrite)
	fsys := newFsys(root, writable, s.log.With("peer", peer.Name()))
	w := newWire(rw)
	rs := sftp.NewRequestServer(w, fsys.handlers(), sftp.WithRSMaxTxPacket(maxData), sftp.WithRSAllocator())
	stop := context.AfterFunc(ctx, func() { rs.Close() })
	defer stop()
	s.log.Debug("sftp: session", "peer", peer.Name(), "writable", writable)
	err = rs.Serve()
	if errors.Is(err, io.EOF) || ctx.Err() != nil || errors.Is(err, core.ErrConnClosed) {
		err = nil
	}
	return err
}

// openRoot opens the folder peer sees as "/". In per-peer mode Root/<peer name> is
// made and opened through an os.Root of Root and must be a plain folder: a symbolic
// link there is never followed (it may have been planted while the folder was shared,
// and could lead to the node's data folder and its keys), and the session is refused
// with [ErrPeerFolder]. Root itself is the operator's setting, out of every peer's
// reach (each is confined inside it), so a link there is followed.
func (s *Server) openRoot(peer core.Peer) (*os.Root, error) {
	base, err := os.OpenRoot(s.cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("sftp: root folder: %w", err)
	}
	if !s.cfg.PerPeer {
		return base, nil
	}
	defer base.Close()
	name := peer.Name()
	if !validFolderName(name) {
		return nil, fmt.Errorf("%w: %q", ErrBadPeerName, name)
	}
	// mkdirat does not follow a link in the last element.
	if err := base.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("sftp: folder for peer %s: %w", name, err)
	}
	st, err := base.Lstat(name)
	if err != nil {
		return nil, fmt.Errorf("sftp: folder for peer %s: %w", name, err)
	}
	dir := filepath.Join(s.cfg.Root, name)
	if !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is %s", ErrPeerFolder, dir, describeMode(st.Mode()))
	}
	root, err := base.OpenRoot(name)
	if err != nil {
		return nil, fmt.Errorf("sftp: folder for peer %s: %w", name, err)
	}
	// OpenRoot follows a link within Root: make sure it opened the folder Lstat saw,
	// not a link put in its place meanwhile.
	if got, err := root.Stat("."); err != nil || !os.SameFile(st, got) {
		root.Close()
		return nil, fmt.Errorf("%w: %s was replaced while being opened", ErrPeerFolder, dir)
	}
	return root, nil
}

func describeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsRegular():
		return "a file"
	}
	return "not a folder (" + m.Type().String() + ")"
}

// validFolderName accepts peer names that are one plain path element.
func validFolderName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 255 || strings.HasPrefix(name, ".") {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == '@':
		default:
			return false
		}
	}
	return true
}

func (s *Server) track(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sessions[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c io.Closer) {
	s.mu.Lock()
	delete(s.sessions, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Close ends every session at once (their open uploads are abandoned, leaving the
// files as they were) and waits for them to finish. Later sessions are refused with
// [ErrServerClosed]. A second Close does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	list := make([]io.Closer, 0, len(s.sessions))
	for c := range s.sessions {
		list = append(list, c)
	}
	s.mu.Unlock()
	for _, c := range list {
		c.Close()
	}
	s.wg.Wait()
	return nil
}
