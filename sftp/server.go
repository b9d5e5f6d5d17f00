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
		s.log.Warn("sftp: no folder for peer", "peer", peer.Name(), "err", err)
		return err
	}
	defer root.Close()
	if !s.track(rw) {
		return ErrServerClosed
	}
	defer s.untrack(rw)

	writable := peer.Allows(core.ScopeSFTPWrite)
	fsys := newFsys(root, writable, s.log)
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

// openRoot opens the folder peer sees as "/".
func (s *Server) openRoot(peer core.Peer) (*os.Root, error) {
	dir := s.cfg.Root
	if s.cfg.PerPeer {
		name := peer.Name()
		if !validFolderName(name) {
			return nil, fmt.Errorf("%w: %q", ErrBadPeerName, name)
		}
		dir = filepath.Join(dir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sftp: folder for peer %s: %w", name, err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("sftp: root folder: %w", err)
	}
	return root, nil
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
