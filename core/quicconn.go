package core

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quic-go/quic-go"
)

// quicConn adapts a QUIC connection to [Conn].
type quicConn struct {
	qc   *quic.Conn
	alpn string
	peer *livePeer
}

func (c *quicConn) wrap(s *quic.Stream, err error) (Stream, error) {
	if err != nil {
		if isClosedErr(err) {
			// Both wrapped: callers may look for the close code (*quic.ApplicationError),
			// such as CodeAccessChanged.
			var appErr *quic.ApplicationError
			if errors.As(err, &appErr) && appErr.Remote && uint64(appErr.ErrorCode) == CodeLimit {
				// Over QUIC the per-address limit is applied after the handshake, so a
				// refused client learns it here, on its first stream, not from Dial.
				return nil, fmt.Errorf("%w: %w: %w", ErrConnClosed, ErrTooManyConnections, err)
			}
			return nil, fmt.Errorf("%w: %w", ErrConnClosed, err)
		}
		return nil, err
	}
	return &quicStream{Stream: s, local: c.qc.LocalAddr(), remote: c.qc.RemoteAddr()}, nil
}

func (c *quicConn) AcceptStream(ctx context.Context) (Stream, error) {
	return c.wrap(c.qc.AcceptStream(ctx))
}

func (c *quicConn) OpenStream(ctx context.Context) (Stream, error) {
	return c.wrap(c.qc.OpenStreamSync(ctx))
}

func (c *quicConn) ALPN() string      { return c.alpn }
func (c *quicConn) Peer() Peer        { return c.peer.peer() }
func (c *quicConn) Transport() string { return TransportQUIC }

func (c *quicConn) Close(code uint64, reason string) error {
	return c.qc.CloseWithError(quic.ApplicationErrorCode(code), reason)
}

// lingerTimeout bounds how long a finished QUIC connection waits for the peer to close
// it, so that stream data the handler wrote last still reaches the peer.
const lingerTimeout = 2 * time.Second

// closeGracefully waits until the peer closes the connection or lingerTimeout passes,
// then closes it. Well-behaved clients close as soon as they have read the last bytes.
func (c *quicConn) closeGracefully() {
	t := time.NewTimer(lingerTimeout)
	defer t.Stop()
	select {
	case <-c.qc.Context().Done():
	case <-t.C:
	}
	c.Close(CodeHandlerDone, "")
}
