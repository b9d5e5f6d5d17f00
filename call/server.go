package call

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
)

// ALPN is the protocol name the call handler serves.
const ALPN = "alknet/call"

// Config is the [call] section of the node's configuration.
type Config struct {
	// DefaultTimeout bounds a query or mutation that sets no deadline of its own; when
	// it passes the call fails with TIMEOUT. Zero means 30 s. Subscriptions have none.
	DefaultTimeout core.Duration `toml:"default_timeout"`
	// MaxCallsPerConn bounds the calls from one connection that run at once; a request
	// past it fails with INTERNAL "too many calls in flight". Zero means 1024; negative
	// means no limit.
	MaxCallsPerConn int `toml:"max_calls_per_conn"`
	// MaxRequestSize bounds one incoming request frame, in bytes (the 4-byte length
	// not counted). It is checked against the frame's length before any of its body is
	// read: a larger request gets a call.error INVALID_INPUT "bad frame: ..." naming
	// the limit, and its stream ends, as for any bad frame. Replies to our own calls
	// and subscription outputs may use the protocol's full [MaxFrameSize]. Zero (or
	// negative) means [DefaultMaxRequestSize]; a value over MaxFrameSize means
	// MaxFrameSize. A connection holds at most [RequestBudgetFrames] times this many
	// request bytes at once.
	MaxRequestSize int `toml:"max_request_size"`
}

// DefaultMaxRequestSize is the request size limit when [Config].MaxRequestSize is 0.
const DefaultMaxRequestSize = 1 << 20

// RequestBudgetFrames sets each connection's request budget as a multiple of the
// request size limit: the request bytes it may be reading, or holding until their
// input has been validated, at once (16 MiB by default, the order of QUIC's own
// per-connection receive window). A frame that would exceed it waits, unread, for
// requests already read to be validated; if frames still being read on other streams
// fill the budget, it is refused instead (a bad frame), because waiting for those
// could deadlock the connection's flow control. One frame is always admitted.
const RequestBudgetFrames = 16

func (c Config) maxRequest() int {
	switch {
	case c.MaxRequestSize <= 0:
		return DefaultMaxRequestSize
	case c.MaxRequestSize > MaxFrameSize:
		return MaxFrameSize
	}
	return c.MaxRequestSize
}

func (c Config) maxCalls() int {
	switch {
	case c.MaxCallsPerConn == 0:
		return 1024
	case c.MaxCallsPerConn < 0:
		return int(^uint(0) >> 1)
	}
	return c.MaxCallsPerConn
}

func (c Config) timeout() time.Duration {
	if d := c.DefaultTimeout.Std(); d > 0 {
		return d
	}
	return DefaultTimeout
}

// Server is the [core.Handler] for ALPN "alknet/call". It runs one [Session] per
// connection, serving Registry to the caller and letting handlers call back through
// [Remote]. A zero Server serves a fresh registry holding only the discovery
// operations.
//
// A malformed frame (length 0 or over 64 MiB, invalid JSON, a missing envelope field)
// ends the stream it came on, after a call.error with code INVALID_INPUT and the
// envelope's id when it could be read (else ""); the connection stays usable. On TLS
// over TCP the stream is the connection. So does a request frame longer than
// Config.MaxRequestSize, or one the connection's request budget cannot take, refused
// from its length before its body is read (see the package doc).
//
// On a multi-stream transport, a caller may half-close its stream after a request: the
// calls on it still answer. On a single-stream transport end of input cannot be told
// from a closed connection, so it cancels everything running.
type Server struct {
	// Registry holds the operations served; nil means NewRegistry().
	Registry *Registry
	// Config sets the default deadline and the limits of each connection.
	Config Config
	// Logger receives handler panics and protocol errors; nil discards them.
	Logger *slog.Logger
	// ResolveToken maps a request's auth_token to an identity that replaces the
	// connection's for that request only. nil, or a nil result, keeps the
	// connection's identity (an unknown token falls back silently).
	ResolveToken func(ctx context.Context, token string) *core.Identity
	// OnSession, if set, is called with each connection's session once it starts, for
	// example to call operations the client registered. It must not block.
	OnSession func(*Session)

	mu       sync.Mutex
	closing  bool
	sessions map[*Session]struct{}
}

// ServeConn serves one connection until it ends.
func (srv *Server) ServeConn(ctx context.Context, c core.Conn) error {
	reg := srv.registry()
	srv.mu.Lock()
	cfg := srv.Config
	srv.mu.Unlock()
	s := newSession(ctx, c, sessionConfig{reg: reg, cfg: cfg, log: srv.Logger, resolve: srv.ResolveToken})
	srv.mu.Lock()
	if srv.closing {
		srv.mu.Unlock()
		c.Close(core.CodeShutdown, "shutting down")
		return nil
	}
	if srv.sessions == nil {
		srv.sessions = make(map[*Session]struct{})
	}
	srv.sessions[s] = struct{}{}
	srv.mu.Unlock()
	defer func() {
		srv.mu.Lock()
		delete(srv.sessions, s)
		srv.mu.Unlock()
	}()
	if srv.OnSession != nil {
		srv.OnSession(s)
	}
	s.serve()
	return nil
}

// SetConfig replaces Config for connections that start later, for a reload while
// serving.
func (srv *Server) SetConfig(c Config) {
	srv.mu.Lock()
	srv.Config = c
	srv.mu.Unlock()
}

// Shutdown refuses new connections, and on open ones refuses new calls and ends every
// subscription, both with a call.error INTERNAL "server shutting down". A query or
// mutation already running may finish; each connection is closed, with application
// code [core.CodeShutdown], once none of its calls is running. Shutdown returns when
// all are closed. When ctx ends first, it answers the calls still running with the
// same error, cancels them and returns ctx.Err(); the endpoint then closes what is
// left. The endpoint calls it when [core.Endpoint.Shutdown] starts.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.mu.Lock()
	srv.closing = true
	sessions := make([]*Session, 0, len(srv.sessions))
	for s := range srv.sessions {
		sessions = append(sessions, s)
	}
	srv.mu.Unlock()
	for _, s := range sessions {
		s.stopCalls(false)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for len(sessions) > 0 {
		left := sessions[:0]
		for _, s := range sessions {
			if !s.closeIfIdle() {
				left = append(left, s)
			}
		}
		sessions = left
		if len(sessions) == 0 {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			for _, s := range sessions {
				s.stopCalls(true)
			}
			return ctx.Err()
		}
	}
	return nil
}

var _ core.Shutdowner = (*Server)(nil)

func (srv *Server) registry() *Registry {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.Registry == nil {
		srv.Registry = NewRegistry()
	}
	return srv.Registry
}

// ClientOptions configure [Dial] and [NewClient]. The zero value is valid.
type ClientOptions struct {
	// Registry holds the operations this client serves to the node it dials; nil
	// means NewRegistry() (discovery only).
	Registry *Registry
	// Config sets the default deadline of calls, and the limits on the requests the
	// node sends this client.
	Config Config
	// Logger; nil discards.
	Logger *slog.Logger
	// ServerIdentity is the identity the node gets when it calls this client's
	// operations. The node is authenticated by the node ID pinned in the address.
	// nil means scope "call" only, so operations that need no more are reachable.
	ServerIdentity *core.Identity
}

// Client is a [Session] on the dialling side. The same type serves both ends: a
// client can serve operations to the node, and the node can call them.
type Client = Session

// NewClient starts a session on a connection already negotiated on [ALPN]. It serves
// opts.Registry to the other side in the background; Close ends it. opts may be nil;
// c must not be (NewClient panics: a missing connection is a programming error, as a
// nil operation is for [Registry.MustRegister]).
func NewClient(c core.Conn, opts *ClientOptions) *Session {
	if c == nil {
		panic("call: NewClient: nil connection")
	}
	if opts == nil {
		opts = &ClientOptions{}
	}
	id := opts.ServerIdentity
	if id == nil {
		id = &core.Identity{Name: "node", Scopes: []string{core.ScopeCall}}
	}
	s := newSession(context.Background(), c, sessionConfig{reg: opts.Registry, cfg: opts.Config, log: opts.Logger, peer: id})
	go s.serve()
	return s
}

// Dial connects to addr (<node-id>@host:port) on [ALPN] with d and returns the
// session. A nil d dials anonymously.
func Dial(ctx context.Context, d *core.Dialer, addr string, opts *ClientOptions) (*Session, error) {
	if d == nil {
		d = &core.Dialer{}
	}
	c, err := d.Dial(ctx, addr, ALPN)
	if err != nil {
		return nil, err
	}
	return NewClient(c, opts), nil
}
