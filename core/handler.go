package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// A Handler serves every connection negotiated on the ALPNs it is registered for.
//
// ServeConn runs on its own goroutine, once per connection. When it returns, the
// endpoint closes the Conn; afterwards neither the Conn nor any of its streams may be
// used. The context is cancelled when the connection ends or the endpoint closes.
//
// A panic in ServeConn is recovered and logged, and affects only that connection. A
// returned error is only logged: to tell the peer why, call [Conn.Close] with a code.
type Handler interface {
	ServeConn(ctx context.Context, c Conn) error
}

// HandlerFunc adapts an ordinary function to a [Handler].
type HandlerFunc func(ctx context.Context, c Conn) error

// ServeConn calls f(ctx, c).
func (f HandlerFunc) ServeConn(ctx context.Context, c Conn) error { return f(ctx, c) }

// A Shutdowner is a [Handler] that wants to hear about a graceful shutdown, for
// example to send its peers a protocol-level goodbye. The endpoint calls Shutdown on
// every registered handler that implements it, concurrently, when [Endpoint.Shutdown]
// starts, and before it waits for connections to drain.
type Shutdowner interface {
	Shutdown(ctx context.Context) error
}

// Conn is one authenticated connection on one ALPN.
//
// A multi-stream transport (QUIC) yields a new stream on every AcceptStream call until
// the connection ends. A single-stream transport (TLS over TCP, an SSH channel, a
// WebTransport stream, an in-memory pipe) yields its one stream once: the first call of
// AcceptStream or OpenStream takes it, later calls return [ErrSingleStream] (OpenStream)
// or an error wrapping [net.ErrClosed] (AcceptStream). A handler written as a loop over
// AcceptStream therefore runs unchanged on every transport.
//
// On QUIC a stream opened by the other side becomes visible to AcceptStream only when
// its first byte arrives.
type Conn interface {
	// AcceptStream waits for the next stream the other side opened.
	AcceptStream(ctx context.Context) (Stream, error)
	// OpenStream opens a stream towards the other side.
	OpenStream(ctx context.Context) (Stream, error)
	// ALPN is the protocol negotiated in the handshake.
	ALPN() string
	// Peer describes the other side, as proven in the handshake. On a connection an
	// [Endpoint] accepted, Identity is the peer's current one: a reload of the peer list
	// that widens its scopes shows here at once (a reload that narrows them closes the
	// connection). Call Peer per stream or request, not once per connection, for
	// widened scopes to apply without a reconnect.
	Peer() Peer
	// Transport names the carrier: "quic", "tcp", "pipe", "ssh" or "webtransport".
	Transport() string
	// Close ends the connection. On QUIC, code and reason travel to the peer as an
	// application close; other transports drop them.
	Close(code uint64, reason string) error
}

// Stream is one bidirectional byte stream of a [Conn].
//
// Close ends both directions and abandons unread data. CloseWrite sends end-of-file
// and leaves the read side open (a half-close).
type Stream interface {
	io.ReadWriteCloser
	CloseWrite() error
	SetDeadline(t time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// Transport names.
const (
	TransportQUIC         = "quic"
	TransportTCP          = "tcp"
	TransportPipe         = "pipe"
	TransportSSH          = "ssh"
	TransportWebTransport = "webtransport"
)

// Application close codes sent on QUIC.
const (
	CodeOK          uint64 = 0
	CodeNoHandler   uint64 = 1
	CodeInternal    uint64 = 2
	CodeShutdown    uint64 = 3
	CodeLimit       uint64 = 4
	CodeForbidden   uint64 = 5
	CodeHandlerDone uint64 = 0
	// CodeAccessChanged closes a connection whose peer lost a scope it held, was renamed
	// or was removed by a reload of the peer list ([Peers.Update]). The client should
	// reconnect: the new connection gets the peer's current identity.
	CodeAccessChanged uint64 = 6
)

var (
	// ErrSingleStream is returned by OpenStream on a connection that carries exactly one
	// stream, once that stream was taken.
	ErrSingleStream = errors.New("core: connection carries a single stream")
	// ErrConnClosed is returned once a connection has ended. It wraps [net.ErrClosed].
	ErrConnClosed = fmt.Errorf("core: connection closed: %w", net.ErrClosed)
	// ErrServerClosed is returned by [Endpoint.Serve] after Shutdown or Close. It wraps
	// [net.ErrClosed].
	ErrServerClosed = fmt.Errorf("core: endpoint closed: %w", net.ErrClosed)
	// ErrTooManyConnections is returned by [Dialer.Dial] when the node refused the
	// connection because this address already holds [Limits.MaxConnsPerIP] of them.
	// Over TLS/TCP the node says so with a TLS access_denied alert in place of its
	// ServerHello, before any key is proven, so the error cannot be told apart from an
	// on-path attacker sending the same alert: like any failed dial, it says only that
	// no connection was made. Over QUIC the node applies the limit after the handshake,
	// so Dial usually succeeds and the connection's first OpenStream or AcceptStream
	// fails with an error that wraps both ErrConnClosed and ErrTooManyConnections.
	ErrTooManyConnections = errors.New("core: node refused the connection: too many connections from this address")
)
