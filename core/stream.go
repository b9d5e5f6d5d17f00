package core

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"

	"github.com/quic-go/quic-go"
)

// quicStream adapts a QUIC stream to [Stream]: quic-go's Close only ends the write side,
// while Stream.Close ends both.
type quicStream struct {
	*quic.Stream
	local, remote net.Addr
}

func (s *quicStream) CloseWrite() error    { return s.Stream.Close() }
func (s *quicStream) LocalAddr() net.Addr  { return s.local }
func (s *quicStream) RemoteAddr() net.Addr { return s.remote }

func (s *quicStream) Close() error {
	s.Stream.CancelRead(0)
	return s.Stream.Close()
}

// halfCloser is a net.Conn that can send end-of-file: *net.TCPConn, *tls.Conn.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// connStream adapts a net.Conn that supports half-close to [Stream].
type connStream struct{ halfCloser }

var _ Stream = connStream{}

// NewStreamConn returns a single-stream [Conn] over s: the first AcceptStream or
// OpenStream call returns s, later calls fail. Closing the Conn closes s. Transports that
// carry one stream (an SSH channel, a WebTransport stream) use it to hand that stream to
// [Mux.Dispatch].
func NewStreamConn(s Stream, alpn string, peer Peer, transport string) Conn {
	c := &streamConn{inner: s, alpn: alpn, peer: newLivePeer(peer), transport: transport, done: make(chan struct{})}
	c.s = &ownedStream{Stream: s, conn: c}
	return c
}

// ownedStream is the one stream of a streamConn: closing it ends the connection, which
// is what a second AcceptStream waits for.
type ownedStream struct {
	Stream
	conn *streamConn
}

func (s *ownedStream) Close() error { return s.conn.Close(CodeOK, "") }

func (s *ownedStream) LocalAddr() net.Addr  { return addrOf(s.Stream, true) }
func (s *ownedStream) RemoteAddr() net.Addr { return addrOf(s.Stream, false) }

// addresser is a stream that knows its endpoints' addresses.
type addresser interface {
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
}

func addrOf(s Stream, local bool) net.Addr {
	a, ok := s.(addresser)
	switch {
	case !ok:
		return nil
	case local:
		return a.LocalAddr()
	default:
		return a.RemoteAddr()
	}
}

type streamConn struct {
	s         *ownedStream // what callers get
	inner     Stream       // what Close closes
	alpn      string
	peer      *livePeer
	transport string

	mu    sync.Mutex
	taken bool
	done  chan struct{}
	once  sync.Once
}

func (c *streamConn) take() (Stream, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return nil, false
	default:
	}
	if c.taken {
		return nil, false
	}
	c.taken = true
	return c.s, true
}

func (c *streamConn) AcceptStream(ctx context.Context) (Stream, error) {
	if s, ok := c.take(); ok {
		return s, nil
	}
	// The one stream is taken: report closed when it is closed, so a handler looping on
	// AcceptStream does not end (and close the connection) while it is still in use.
	select {
	case <-c.done:
		return nil, ErrConnClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *streamConn) OpenStream(ctx context.Context) (Stream, error) {
	if s, ok := c.take(); ok {
		return s, nil
	}
	return nil, ErrSingleStream
}

func (c *streamConn) ALPN() string      { return c.alpn }
func (c *streamConn) Peer() Peer        { return c.peer.peer() }
func (c *streamConn) Transport() string { return c.transport }

func (c *streamConn) Close(code uint64, reason string) error {
	var err error
	c.once.Do(func() {
		c.mu.Lock()
		close(c.done)
		c.mu.Unlock()
		err = c.inner.Close()
	})
	return err
}

// NetConn returns s as a [net.Conn] for libraries that want one, such as
// x/crypto/ssh. local and remote may be nil. The result also has CloseWrite.
func NetConn(s Stream, local, remote net.Addr) net.Conn {
	return &netConn{Stream: s, local: orAddr(local, addrOf(s, true)), remote: orAddr(remote, addrOf(s, false))}
}

func orAddr(a, b net.Addr) net.Addr {
	if a != nil {
		return a
	}
	if b != nil {
		return b
	}
	return pipeAddr{}
}

type netConn struct {
	Stream
	local, remote net.Addr
}

func (c *netConn) LocalAddr() net.Addr  { return c.local }
func (c *netConn) RemoteAddr() net.Addr { return c.remote }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

var _ halfCloser = (*tls.Conn)(nil)

// isClosedErr reports whether err means the connection or listener ended.
func isClosedErr(err error) bool {
	var appErr *quic.ApplicationError
	var idleErr *quic.IdleTimeoutError
	return errors.Is(err, net.ErrClosed) || errors.Is(err, quic.ErrServerClosed) ||
		errors.As(err, &appErr) || errors.As(err, &idleErr) || errors.Is(err, context.Canceled)
}
