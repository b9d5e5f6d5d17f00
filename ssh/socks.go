package ssh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/ssh/socks5"
	gossh "golang.org/x/crypto/ssh"
)

// SOCKSProxy is layer 6: a local SOCKS5 server whose every CONNECT becomes a
// direct-tcpip channel on one SSH connection. Domain names travel unresolved and
// resolve on the SSH server's side. Targets and byte counts are never logged.
//
// When the SSH connection drops, or an attempt to open it fails, the proxy dials a new
// one with exponential backoff. A CONNECT that arrives while there is no connection
// waits for the attempt in progress (one arriving during a backoff starts an attempt at
// once) and fails with "general failure" as soon as that attempt fails, or after
// WaitTimeout (default 10s), whichever comes first: a SOCKS client never hangs on a
// node that is down.
//
// A failure that retrying cannot cure stops the proxy: [SOCKSProxy.Serve] closes the
// listener and every client and returns the error. Such failures are a Connect error
// wrapping [ErrAuthRefused] or [core.ErrIdentityMismatch], one x/crypto/ssh reports as
// "unable to authenticate" (the server refused the key; the error Serve returns then
// wraps [ErrAuthRefused]), and one wrapping a [*PermanentError].
//
// An open refused by the server's forwarding rules answers "connection not allowed by
// ruleset"; a failed dial on the server answers "connection refused"; no SSH connection
// answers "general failure".
type SOCKSProxy struct {
	// Connect opens a new SSH client connection. It is called at start and again after
	// every drop or failed attempt, never twice at once. Required.
	Connect func(ctx context.Context) (*gossh.Client, error)
	// Logger receives connection and reconnection events. Default: discard.
	Logger *slog.Logger
	// MinBackoff is the first wait after a failed or dropped connection; it doubles up
	// to MaxBackoff and resets once a connection is up. Defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// WaitTimeout is the longest a CONNECT waits for an SSH connection. Default 10s.
	WaitTimeout time.Duration

	mu       sync.Mutex
	client   *gossh.Client
	gone     chan struct{} // closed when client's connection ends
	changed  chan struct{} // closed and replaced when the state below changes
	failures uint64        // connection attempts that failed so far
	backoff  bool          // the supervisor waits before its next attempt
	stopped  error         // the permanent failure that stopped the proxy
	wake     chan struct{} // cuts a backoff short (capacity 1)
}

// ErrAuthRefused is wrapped by the error [SOCKSProxy.Serve] returns when the SSH server
// refused the client key: the key is not in the server's peer list. A Connect function
// may also wrap it to stop the proxy.
var ErrAuthRefused = errors.New("ssh: the server refused the client key")

// PermanentError is a Connect error that retrying cannot cure. A Connect function
// returns one (or an error wrapping one) to stop [SOCKSProxy]; Serve then returns it.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// permanent returns the error Serve should stop with for a Connect error, or nil if a
// retry may succeed.
func permanent(err error) error {
	var pe *PermanentError
	switch {
	case errors.As(err, &pe), errors.Is(err, ErrAuthRefused), errors.Is(err, core.ErrIdentityMismatch):
		return err
	case authRefused(err):
		return fmt.Errorf("%w: %w", ErrAuthRefused, err)
	}
	return nil
}

// authRefused reports whether err is x/crypto/ssh's client-side authentication
// failure. It has no error type, only this text (client_auth.go); TestSOCKSProxyUnknownKey
// notices if a new x/crypto changes it.
func authRefused(err error) bool {
	return err != nil && strings.Contains(err.Error(), "ssh: unable to authenticate")
}

// IsAuthRefused reports whether err says the server refused every key offered: an
// [ErrAuthRefused], or x/crypto/ssh's client error for it (which has no type of its
// own, so its text is matched).
func IsAuthRefused(err error) bool { return errors.Is(err, ErrAuthRefused) || authRefused(err) }

// Serve answers SOCKS5 on l until ctx ends, then closes l, the SSH connection and every
// relayed connection. It returns nil when ctx ended, and the Connect error when a
// permanent failure stopped the proxy (see [SOCKSProxy]).
func (p *SOCKSProxy) Serve(ctx context.Context, l net.Listener) error {
	if p.Connect == nil {
		l.Close()
		return errors.New("ssh: SOCKSProxy.Connect is nil")
	}
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p.mu.Lock()
	p.changed = make(chan struct{})
	p.wake = make(chan struct{}, 1)
	p.client, p.gone, p.failures, p.backoff, p.stopped = nil, nil, 0, false, nil
	p.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := p.supervise(ctx, log); err != nil {
			p.update(func() { p.stopped = err })
			cancel()
		}
	})
	srv := &socks5.Server{Dial: p.dial, Logger: log}
	err := srv.Serve(ctx, l)
	cancel()
	wg.Wait()
	p.mu.Lock()
	stopped := p.stopped
	p.mu.Unlock()
	if stopped != nil {
		return stopped
	}
	if errors.Is(err, socks5.ErrServerClosed) {
		return nil
	}
	return err
}

// supervise keeps one SSH connection up, redialling with backoff, until ctx ends (nil)
// or a permanent failure (returned).
func (p *SOCKSProxy) supervise(ctx context.Context, log *slog.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("ssh: SOCKSProxy.Connect panicked: %v", r)
			log.Error("socks: stopped", "err", err)
		}
	}()
	minB, maxB := p.MinBackoff, p.MaxBackoff
	if minB <= 0 {
		minB = 500 * time.Millisecond
	}
	if maxB < minB {
		maxB = max(30*time.Second, minB)
	}
	backoff := minB
	for ctx.Err() == nil {
		select { // an attempt starts now: a CONNECT's earlier wake-up is served by it
		case <-p.wake:
		default:
		}
		c, err := p.Connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if perr := permanent(err); perr != nil {
				log.Info("socks: ssh connection refused for good; stopping", "err", perr)
				return perr
			}
			log.Warn("socks: ssh connection failed; retrying", "err", err, "in", backoff)
			p.update(func() { p.failures++; p.backoff = true })
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-p.wake:
			case <-ctx.Done():
			}
			t.Stop()
			p.update(func() { p.backoff = false })
			backoff = min(2*backoff, maxB)
			continue
		}
		backoff = minB
		log.Info("socks: ssh connection up")
		done := make(chan struct{})
		p.update(func() { p.client, p.gone = c, done })
		go func() {
			c.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			c.Close()
			<-done
		}
		p.update(func() { p.client, p.gone = nil, nil })
		if ctx.Err() == nil {
			log.Warn("socks: ssh connection lost; reconnecting")
		}
	}
	return nil
}

// update changes the connection state under the lock and wakes the CONNECTs waiting
// for a change.
func (p *SOCKSProxy) update(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f()
	close(p.changed)
	p.changed = make(chan struct{})
}

// current waits for a live SSH connection; gone is closed when it ends. It gives up
// when the next connection attempt fails, the proxy stops, or WaitTimeout passes.
func (p *SOCKSProxy) current(ctx context.Context) (c *gossh.Client, gone chan struct{}, err error) {
	wait := p.WaitTimeout
	if wait <= 0 {
		wait = 10 * time.Second
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	fail := func(err error) (*gossh.Client, chan struct{}, error) {
		return nil, nil, &socks5.ReplyError{Reply: socks5.GeneralFailure, Err: err}
	}
	p.mu.Lock()
	failures := p.failures
	p.mu.Unlock()
	for {
		p.mu.Lock()
		c, gone, changed := p.client, p.gone, p.changed
		stopped, failed, backoff := p.stopped, p.failures != failures, p.backoff
		p.mu.Unlock()
		switch {
		case c != nil:
			return c, gone, nil
		case stopped != nil:
			return fail(stopped)
		case failed:
			return fail(errors.New("no ssh connection: the connection attempt failed"))
		case backoff:
			select { // the node may be back: try now rather than at the end of the backoff
			case p.wake <- struct{}{}:
			default:
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			return fail(errors.New("no ssh connection"))
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
}

func (p *SOCKSProxy) dial(ctx context.Context, host string, port uint16) (net.Conn, error) {
	c, gone, err := p.current(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := c.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
	if err == nil {
		// A relay whose SSH connection died ends even if the local client stays idle.
		tc := &tunnelConn{Conn: conn, closed: make(chan struct{})}
		go func() {
			select {
			case <-gone:
				tc.Close()
			case <-tc.closed:
			}
		}()
		return tc, nil
	}
	var oe *gossh.OpenChannelError
	if errors.As(err, &oe) {
		switch oe.Reason {
		case gossh.Prohibited:
			return nil, &socks5.ReplyError{Reply: socks5.NotAllowed, Err: err}
		case gossh.ConnectionFailed:
			return nil, &socks5.ReplyError{Reply: socks5.ConnectionRefused, Err: err}
		}
	}
	return nil, &socks5.ReplyError{Reply: socks5.GeneralFailure, Err: err}
}

// tunnelConn is a direct-tcpip channel as a net.Conn that reports its Close.
type tunnelConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *tunnelConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func (c *tunnelConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
