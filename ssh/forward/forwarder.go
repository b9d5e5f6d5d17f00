package forward

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/alkdev/alknet/core"
	gossh "golang.org/x/crypto/ssh"
)

// SSH channel and global request names served by a [Forwarder].
const (
	ChannelDirectTCPIP          = "direct-tcpip"
	ChannelForwardedTCPIP       = "forwarded-tcpip"
	ChannelDirectStreamlocal    = "direct-streamlocal@openssh.com"
	ChannelForwardedStreamlocal = "forwarded-streamlocal@openssh.com"

	RequestTCPIPForward             = "tcpip-forward"
	RequestCancelTCPIPForward       = "cancel-tcpip-forward"
	RequestStreamlocalForward       = "streamlocal-forward@openssh.com"
	RequestCancelStreamlocalForward = "cancel-streamlocal-forward@openssh.com"
)

// Session is what a [Forwarder] needs to know about one SSH connection. The SSH server
// builds one from its connection context for every call; calls with the same Conn share
// the connection's state (its channel count and listeners).
type Session struct {
	// Peer is the authenticated peer.
	Peer core.Peer
	// Transport names the carrier of the SSH connection, for the rules' transports list.
	Transport string
	// Conn is the SSH connection; remote forwards open channels on it.
	Conn gossh.Conn
	// OnClose registers a function to run when the connection ends. It must not be nil:
	// without it, a Forwarder refuses everything (it could not clean up).
	OnClose func(func())
}

func (s *Session) who() Who { return Who{Peer: s.Peer, Transport: s.Transport} }

// Options are a [Forwarder]'s collaborators. The zero value works: no internal
// services, the system resolver and dialer, logs discarded.
type Options struct {
	// Mux serves "alknet-<name>" targets on ALPN "alknet/<name>". Nil refuses them.
	Mux *core.Mux
	// Logger receives refusals and errors. It never sees targets or byte counts.
	Logger *slog.Logger
	// Resolver looks up target names. Default net.DefaultResolver.
	Resolver Resolver
	// Dial opens outgoing connections to checked addresses ("tcp" with an IP:port, or
	// "unix" with a socket path). Default: a net.Dialer bounded by the dial timeout.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// Forwarder serves SSH port forwarding (layer 5): local forwards (direct-tcpip,
// direct-streamlocal), remote forwards (tcpip-forward, streamlocal-forward) and the
// channels those open back to the client. Every request passes the peer's scope
// ("ssh:forward:local" or "ssh:forward:remote") and then the rule list, before anything
// is dialled or bound.
//
// Create it with [New]; [Forwarder.SetConfig] swaps the rules for every later channel
// open. [Forwarder.Close] closes every remote-forward listener and waits for the
// forwarder's goroutines.
type Forwarder struct {
	opts   Options
	log    *slog.Logger
	policy atomic.Pointer[Policy]

	mu        sync.Mutex
	sessions  map[gossh.Conn]*session
	listeners map[string]int // per peer name
	closed    bool
	wg        sync.WaitGroup
}

// New returns a Forwarder applying cfg.
func New(cfg Config, opts Options) (*Forwarder, error) {
	p, err := Compile(cfg)
	if err != nil {
		return nil, err
	}
	f := &Forwarder{opts: opts, log: opts.Logger, sessions: map[gossh.Conn]*session{}, listeners: map[string]int{}}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.opts.Resolver == nil {
		f.opts.Resolver = net.DefaultResolver
	}
	f.policy.Store(p)
	return f, nil
}

// SetConfig replaces the rules and limits. Channels and requests opened afterwards see the
// new ones; running forwards and listeners stay. A bad cfg changes nothing.
func (f *Forwarder) SetConfig(cfg Config) error {
	p, err := Compile(cfg)
	if err != nil {
		return err
	}
	f.policy.Store(p)
	return nil
}

// Policy returns the rules in force.
func (f *Forwarder) Policy() *Policy { return f.policy.Load() }

// Close closes every remote-forward listener and waits for the forwarder's own
// goroutines (accept loops and forwarded copies) to end. Forwards still running on open
// SSH connections end when those connections close. Close is safe to call twice.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	f.closed = true
	var ls []*listener
	for _, s := range f.sessions {
		ls = append(ls, s.takeListeners()...)
	}
	f.mu.Unlock()
	for _, l := range ls {
		l.close()
	}
	f.wg.Wait()
	return nil
}

// session is a Forwarder's state for one SSH connection.
type session struct {
	channels  atomic.Int64
	mu        sync.Mutex
	listeners []*listener
}

func (s *session) takeListeners() []*listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.listeners
	s.listeners = nil
	return ls
}

// state returns the connection's state, creating it (and its cleanup) on first use.
func (f *Forwarder) state(s *Session) (*session, error) {
	if s == nil || s.Conn == nil || s.OnClose == nil {
		return nil, errors.New("ssh/forward: session without a connection or OnClose")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, net.ErrClosed
	}
	st := f.sessions[s.Conn]
	if st == nil {
		st = &session{}
		f.sessions[s.Conn] = st
		conn := s.Conn
		s.OnClose(func() {
			f.mu.Lock()
			delete(f.sessions, conn)
			f.mu.Unlock()
			for _, l := range st.takeListeners() {
				l.close()
			}
		})
	}
	return st, nil
}

// acquire takes one of the session's forwarded-channel slots.
func (st *session) acquire(limit int) bool {
	if n := st.channels.Add(1); limit >= 0 && n > int64(limit) {
		st.channels.Add(-1)
		return false
	}
	return true
}

func (st *session) release() { st.channels.Add(-1) }

func (f *Forwarder) refuse(nc gossh.NewChannel, s *Session, reason gossh.RejectionReason, why, msg string) {
	f.log.Info("ssh forward refused", "peer", s.Peer.Name(), "kind", nc.ChannelType(), "reason", why)
	nc.Reject(reason, msg)
}

// openLocal does what every local-forward channel open checks first: a usable
// session, the scope "ssh:forward:local", and a payload that decodes into req. It
// rejects nc and reports false when one fails.
func (f *Forwarder) openLocal(s *Session, nc gossh.NewChannel, req any) (*session, bool) {
	st, err := f.state(s)
	if err != nil {
		nc.Reject(gossh.Prohibited, "forwarding unavailable")
		return nil, false
	}
	if !s.Peer.Allows(core.ScopeSSHForwardLocal) {
		f.refuse(nc, s, gossh.Prohibited, "scope", "forwarding not allowed")
		return nil, false
	}
	if err := gossh.Unmarshal(nc.ExtraData(), req); err != nil {
		f.refuse(nc, s, gossh.ConnectionFailed, "malformed", "malformed "+nc.ChannelType()+" request")
		return nil, false
	}
	return st, true
}

// directTCPIP is the payload of a direct-tcpip open (RFC 4254 7.2).
type directTCPIP struct {
	Host     string
	Port     uint32
	OrigHost string
	OrigPort uint32
}

// HandleDirectTCPIP serves a "direct-tcpip" channel open (ssh -L, -W, -D). It needs the
// scope "ssh:forward:local" and a rule allowing the target; a refusal answers
// "administratively prohibited", a failed dial "connect failed". A host "alknet-<name>"
// is handed to the Mux on ALPN "alknet/<name>" instead of being dialled.
func (f *Forwarder) HandleDirectTCPIP(ctx context.Context, s *Session, nc gossh.NewChannel) {
	var req directTCPIP
	st, ok := f.openLocal(s, nc, &req)
	if !ok {
		return
	}
	p := f.policy.Load()
	rctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout.Std())
	dec, err := p.CheckHost(rctx, f.opts.Resolver, req.Host, req.Port, s.who())
	cancel()
	switch {
	case errors.Is(err, ErrUnresolved):
		f.refuse(nc, s, gossh.ConnectionFailed, "resolve", "connect failed")
		return
	case errors.Is(err, errNotUnicast):
		f.refuse(nc, s, gossh.Prohibited, "address", "denied by the forwarding rules")
		return
	case err != nil:
		f.refuse(nc, s, gossh.Prohibited, "rule", "denied by the forwarding rules")
		return
	}
	if !st.acquire(p.cfg.MaxChannelsPerSession) {
		f.refuse(nc, s, gossh.ResourceShortage, "limit", "too many forwarded channels")
		return
	}
	defer st.release()
	if dec.Internal {
		f.serveInternal(ctx, s, nc, strings.ToLower(strings.TrimSuffix(req.Host, ".")))
		return
	}
	target, err := f.dial(ctx, p, "tcp", dec.Addrs, req.Port)
	if err != nil {
		f.refuse(nc, s, gossh.ConnectionFailed, "dial", "connect failed")
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		target.Close()
		return
	}
	go gossh.DiscardRequests(reqs)
	join(ctx, ch, target)
}

// dial tries each checked address in order within the dial timeout.
func (f *Forwarder) dial(ctx context.Context, p *Policy, network string, addrs []netip.Addr, port uint32) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout.Std())
	defer cancel()
	dial := f.opts.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	err := errors.New("no address")
	for _, a := range addrs {
		var c net.Conn
		c, err = dial(ctx, network, netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

// serveInternal hands the channel to the Mux as a single-stream Conn on "alknet/<name>".
func (f *Forwarder) serveInternal(ctx context.Context, s *Session, nc gossh.NewChannel, host string) {
	alpn := "alknet/" + host[len(InternalPrefix):]
	if f.opts.Mux == nil || f.opts.Mux.Handler(alpn) == nil {
		f.refuse(nc, s, gossh.ConnectionFailed, "no-service", "no such service")
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	go gossh.DiscardRequests(reqs)
	st := newChannelStream(ch, s.Conn)
	c := core.NewStreamConn(st, alpn, s.Peer, core.TransportSSH)
	if err := f.opts.Mux.Dispatch(ctx, c); err != nil {
		// Debug only: the error may name the service, which is the channel's destination.
		f.log.Debug("ssh forward: internal service failed", "peer", s.Peer.Name(), "err", err)
	}
}

// directStreamlocal is the payload of a direct-streamlocal@openssh.com open.
type directStreamlocal struct {
	Path      string
	Reserved  string
	Reserved2 uint32
}

// HandleDirectStreamlocal serves a "direct-streamlocal@openssh.com" open (ssh -L to a
// Unix socket). It needs [Config.Streamlocal], the scope "ssh:forward:local" and a rule
// allowing the socket path.
func (f *Forwarder) HandleDirectStreamlocal(ctx context.Context, s *Session, nc gossh.NewChannel) {
	var req directStreamlocal
	st, ok := f.openLocal(s, nc, &req)
	if !ok {
		return
	}
	p := f.policy.Load()
	if err := p.CheckPath(req.Path, s.who()); err != nil {
		f.refuse(nc, s, gossh.Prohibited, "rule", "denied by the forwarding rules")
		return
	}
	if !st.acquire(p.cfg.MaxChannelsPerSession) {
		f.refuse(nc, s, gossh.ResourceShortage, "limit", "too many forwarded channels")
		return
	}
	defer st.release()
	dctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout.Std())
	dial := f.opts.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	target, err := dial(dctx, "unix", req.Path)
	cancel()
	if err != nil {
		f.refuse(nc, s, gossh.ConnectionFailed, "dial", "connect failed")
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		target.Close()
		return
	}
	go gossh.DiscardRequests(reqs)
	join(ctx, ch, target)
}

// closeWriter is a connection that can half-close.
type closeWriter interface{ CloseWrite() error }

// join copies both ways between an SSH channel and a connection, passing each
// end-of-file on as a half-close, and returns when both directions are done or ctx (the
// SSH connection's) ends. Byte counts are dropped on purpose: they are never logged.
func join(ctx context.Context, ch gossh.Channel, c net.Conn) {
	stop := context.AfterFunc(ctx, func() {
		ch.Close()
		c.Close()
	})
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := io.Copy(c, ch); err != nil {
			c.Close()
			ch.Close()
			return
		}
		if cw, ok := c.(closeWriter); ok {
			cw.CloseWrite()
		}
	}()
	if _, err := io.Copy(ch, c); err != nil {
		ch.Close()
		c.Close()
	} else {
		ch.CloseWrite()
	}
	<-done
	ch.Close()
	c.Close()
}
