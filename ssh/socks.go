package ssh

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/alkdev/alknet/ssh/socks5"
	gossh "golang.org/x/crypto/ssh"
)

// SOCKSProxy is layer 6: a local SOCKS5 server whose every CONNECT becomes a
// direct-tcpip channel on one SSH connection. Domain names travel unresolved and
// resolve on the SSH server's side. When the SSH connection drops, the proxy dials a
// new one with exponential backoff; CONNECTs that arrive meanwhile wait for it (up to
// WaitTimeout). Targets and byte counts are never logged.
//
// An open refused by the server's forwarding rules answers "connection not allowed by
// ruleset"; a failed dial on the server answers "connection refused"; no SSH connection
// answers "general failure".
type SOCKSProxy struct {
	// Connect opens a new SSH client connection. It is called at start and again after
	// every drop. Required.
	Connect func(ctx context.Context) (*gossh.Client, error)
	// Logger receives connection and reconnection events. Default: discard.
	Logger *slog.Logger
	// MinBackoff is the first wait after a failed or dropped connection; it doubles up
	// to MaxBackoff and resets once a connection is up. Defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// WaitTimeout is how long a CONNECT waits for an SSH connection. Default 15s.
	WaitTimeout time.Duration

	mu      sync.Mutex
	client  *gossh.Client
	gone    chan struct{} // closed when client's connection ends
	changed chan struct{} // closed and replaced when client changes
}

// Serve answers SOCKS5 on l until ctx ends, then closes l, the SSH connection and every
// relayed connection. It returns nil when ctx ended.
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
	p.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { p.supervise(ctx, log) })
	srv := &socks5.Server{Dial: p.dial, Logger: log}
	err := srv.Serve(ctx, l)
	cancel()
	wg.Wait()
	if errors.Is(err, socks5.ErrServerClosed) {
		return nil
	}
	return err
}

// supervise keeps one SSH connection up, redialling with backoff.
func (p *SOCKSProxy) supervise(ctx context.Context, log *slog.Logger) {
	minB, maxB := p.MinBackoff, p.MaxBackoff
	if minB <= 0 {
		minB = 500 * time.Millisecond
	}
	if maxB < minB {
		maxB = max(30*time.Second, minB)
	}
	backoff := minB
	for ctx.Err() == nil {
		c, err := p.Connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("socks: ssh connection failed; retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, maxB)
			continue
		}
		backoff = minB
		log.Info("socks: ssh connection up")
		done := make(chan struct{})
		p.set(c, done)
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
		p.set(nil, nil)
		if ctx.Err() == nil {
			log.Warn("socks: ssh connection lost; reconnecting")
		}
	}
}

func (p *SOCKSProxy) set(c *gossh.Client, gone chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.client, p.gone = c, gone
	close(p.changed)
	p.changed = make(chan struct{})
}

// current waits for a live SSH connection; gone is closed when it ends.
func (p *SOCKSProxy) current(ctx context.Context) (c *gossh.Client, gone chan struct{}, err error) {
	wait := p.WaitTimeout
	if wait <= 0 {
		wait = 15 * time.Second
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		p.mu.Lock()
		c, gone, changed := p.client, p.gone, p.changed
		p.mu.Unlock()
		if c != nil {
			return c, gone, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, nil, &socks5.ReplyError{Reply: socks5.GeneralFailure, Err: errors.New("no ssh connection")}
		case <-ctx.Done():
			return nil, nil, &socks5.ReplyError{Reply: socks5.GeneralFailure, Err: ctx.Err()}
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
