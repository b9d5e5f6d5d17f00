package socks5

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Dialer opens the connection for one CONNECT. host is an IP address in text form or a
// domain name exactly as the client sent it: a dialer that tunnels (SSH direct-tcpip)
// passes it on unresolved, so names resolve on the far side.
type Dialer func(ctx context.Context, host string, port uint16) (net.Conn, error)

// ReplyError is an error that names the SOCKS5 reply it should produce. A [Dialer]
// returns one to choose the reply for a refused or failed connection.
type ReplyError struct {
	Reply Reply
	Err   error
}

func (e *ReplyError) Error() string {
	if e.Err == nil {
		return "socks5: " + e.Reply.String()
	}
	return "socks5: " + e.Reply.String() + ": " + e.Err.Error()
}

func (e *ReplyError) Unwrap() error { return e.Err }

// Server is a SOCKS5 server (RFC 1928) that accepts only "no authentication" and only
// CONNECT, with IPv4, IPv6 and domain-name destinations. BIND and UDP ASSOCIATE answer
// CommandNotSupported; a client that does not offer "no authentication" gets "no
// acceptable methods" and is closed. Destinations are never logged.
type Server struct {
	// Dial opens each CONNECT's connection. Nil refuses every request (NotAllowed).
	Dial Dialer
	// Logger receives errors that are not about one client, and panics (a panic while
	// serving a client is recovered and closes only that client's connection). Default:
	// discard.
	Logger *slog.Logger
	// HandshakeTimeout bounds the greeting, the request and the dial. Default 30s.
	HandshakeTimeout time.Duration

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// ErrServerClosed is returned by Serve after the context ends.
var ErrServerClosed = errors.New("socks5: server closed")

// Serve accepts connections on l until ctx ends or l fails, then closes l and every
// client connection and waits for their goroutines. It returns [ErrServerClosed] when
// ctx ended, otherwise the accept error.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var err error
	for {
		var c net.Conn
		c, err = l.Accept()
		if err != nil {
			break
		}
		if !s.track(c, true) {
			c.Close()
			break
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.track(c, false)
			defer c.Close()
			// A panic (in Dial, say) ends this client's connection, not the process.
			defer func() {
				if r := recover(); r != nil {
					s.logger().Error("socks5: connection panicked", "panic", r)
				}
			}()
			s.ServeConn(ctx, c)
		}()
	}
	l.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if ctx.Err() != nil {
		return ErrServerClosed
	}
	return err
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.closed {
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

// ServeConn runs the SOCKS5 conversation on c and then relays the connection, with
// half-close passed on both ways. It closes c when done and returns the protocol error
// that ended the conversation early, if any.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	defer c.Close()
	timeout := s.HandshakeTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	c.SetDeadline(time.Now().Add(timeout))
	methods, err := ReadGreeting(c)
	if err != nil {
		return err
	}
	if !slices.Contains(methods, MethodNoAuth) {
		c.Write([]byte{Version, MethodNoAcceptable})
		return errors.New("socks5: client offers no acceptable authentication method")
	}
	if _, err := c.Write([]byte{Version, MethodNoAuth}); err != nil {
		return err
	}
	req, err := ReadRequest(c)
	switch {
	case errors.Is(err, ErrAddrType):
		WriteReply(c, AddressTypeNotSupported, netip.AddrPort{})
		return err
	case errors.Is(err, ErrProtocol):
		WriteReply(c, GeneralFailure, netip.AddrPort{})
		return err
	case err != nil:
		return err
	}
	if req.Command != CmdConnect {
		WriteReply(c, CommandNotSupported, netip.AddrPort{})
		return nil
	}
	if s.Dial == nil {
		WriteReply(c, NotAllowed, netip.AddrPort{})
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	target, err := s.Dial(dctx, req.Host, req.Port)
	cancel()
	if err != nil {
		WriteReply(c, ReplyFor(err), netip.AddrPort{})
		return nil
	}
	defer target.Close()
	if err := WriteReply(c, Succeeded, netip.AddrPort{}); err != nil {
		return err
	}
	c.SetDeadline(time.Time{})
	relay(c, target)
	return nil
}

// ReplyFor picks the reply for a dial error: the [ReplyError]'s own, ConnectionRefused,
// NetworkUnreachable or HostUnreachable for those system errors, HostUnreachable for
// a timeout, otherwise GeneralFailure.
func ReplyFor(err error) Reply {
	var re *ReplyError
	var ne net.Error
	switch {
	case errors.As(err, &re):
		return re.Reply
	case errors.Is(err, syscall.ECONNREFUSED):
		return ConnectionRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return NetworkUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH):
		return HostUnreachable
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return HostUnreachable
	}
	return GeneralFailure
}

type closeWriter interface{ CloseWrite() error }

// relay copies both ways, passing end-of-file on as a half-close, until both
// directions end or one fails. Byte counts are dropped: they are never logged.
func relay(a, b net.Conn) {
	done := make(chan struct{})
	half := func(dst, src net.Conn) {
		if _, err := io.Copy(dst, src); err != nil {
			a.Close()
			b.Close()
			return
		}
		if cw, ok := dst.(closeWriter); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	go func() {
		defer close(done)
		half(b, a)
	}()
	half(a, b)
	<-done
}
