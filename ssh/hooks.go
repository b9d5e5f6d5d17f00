package ssh

import (
	"context"
	"io"
	"sync"

	"github.com/alkdev/alknet/core"
	gossh "golang.org/x/crypto/ssh"
)

// The extension points below let other layers (forwarding, SOCKS, SFTP) plug into the
// server without the SSH core knowing them. Every nil hook denies.

// ChannelHandler serves one "NewChannel" request of a connection. It must either
// Accept or Reject newCh. It runs on its own goroutine.
type ChannelHandler func(ctx context.Context, conn *ConnContext, newCh gossh.NewChannel)

// RequestHandler answers one global request (such as "tcpip-forward"). It returns
// whether the request succeeded and the reply payload.
type RequestHandler func(ctx context.Context, conn *ConnContext, req *gossh.Request) (ok bool, payload []byte)

// SubsystemHandler serves one subsystem (such as "sftp") on a session channel. rw is
// the channel: reading gets the client's data, writing sends to it, Close ends the
// channel. The server sends exit-status 0 when it returns nil, 1 otherwise.
type SubsystemHandler func(ctx context.Context, rw io.ReadWriteCloser, peer core.Peer) error

// ConnContext is what hooks know about one SSH connection.
type ConnContext struct {
	// Peer is the authenticated peer: its key and the identity the peer list gave it
	// when it authenticated. Scope checks use [ConnContext.CurrentPeer] instead.
	Peer core.Peer
	// Transport is the carrier of the SSH connection ("quic", "tcp", "ssh-tcp", ...).
	Transport string
	// Conn is the SSH connection, for opening channels towards the client.
	Conn gossh.Conn

	server  *serverConn // the server's bookkeeping; nil for a ConnContext built elsewhere
	mu      sync.Mutex
	closers []func()
}

// CurrentPeer returns Peer with the identity the server's peer list gives Peer's key
// now, so that a reload applies to every later check on a live connection: a removed
// peer is anonymous and holds no scope. The identity is looked up from the key that
// completed authentication, never from state an authentication callback left. The
// identity returned becomes the one the next reload is judged against, and if it falls
// short of the last one (a reload took a scope away) the connection is closed as after
// that reload. A ConnContext built with [NewConnContext] returns Peer.
func (c *ConnContext) CurrentPeer() core.Peer {
	if c.server == nil {
		return c.Peer
	}
	id, ok := c.server.srv.current(c.server)
	if !ok {
		return c.Peer
	}
	p := c.Peer
	p.Identity = id
	return p
}

// OnClose registers f to run when the SSH connection ends (for example to close a
// remote-forward listener).
func (c *ConnContext) OnClose(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closers = append(c.closers, f)
}

// NewConnContext returns a ConnContext; the server calls RunClosers when the connection
// ends.
func NewConnContext(peer core.Peer, transport string, conn gossh.Conn) *ConnContext {
	return &ConnContext{Peer: peer, Transport: transport, Conn: conn}
}

// RunClosers runs the functions registered with OnClose, once, newest first.
func (c *ConnContext) RunClosers() {
	c.mu.Lock()
	fs := c.closers
	c.closers = nil
	c.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// ExecHandler serves an "exec" request in place of running a command, for a program
// name it is registered under in [Server.ExecHandlers] (git-upload-pack, for git over
// SSH). args is the command split into words the way a POSIX shell would for a simple
// command (args[0] is the name); a command with shell operators or expansions never
// reaches a handler. rw is the channel (reading gets the client's stdin, writing goes to
// its stdout), stderr the channel's stderr. The returned value is sent as the exit
// status after everything written has been flushed.
type ExecHandler func(ctx context.Context, rw io.ReadWriter, stderr io.Writer, peer core.Peer, args []string) int
