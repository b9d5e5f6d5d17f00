package ssh

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alkdev/alknet/core"
	gossh "golang.org/x/crypto/ssh"
)

// ALPN is the protocol name the SSH server is registered under.
const ALPN = "alknet/ssh"

// TransportSSHTCP names connections of the plain TCP SSH listener in [ConnContext].
const TransportSSHTCP = "ssh-tcp"

// Errors returned by the server.
var (
	// ErrServerClosed is returned by [Server.Serve] and [Server.HandleConn] after
	// Shutdown or Close. It wraps [net.ErrClosed].
	ErrServerClosed = fmt.Errorf("ssh: server closed: %w", net.ErrClosed)
	// ErrTooManyStartups is returned (wrapped) by [Server.HandleConn] for a connection
	// closed at once because [Config.MaxStartups] handshakes were already running.
	ErrTooManyStartups = errors.New("ssh: too many unauthenticated connections")
	// ErrLoginTimeout is returned (wrapped) by [Server.HandleConn] for a client that
	// did not finish the handshake and authentication within [Config.LoginGraceTime].
	ErrLoginTimeout = errors.New("ssh: timeout before authentication")
	// ErrNoHostKey is returned (wrapped) by [NewServer] without a usable host key: nil,
	// or an Ed25519 key that is not the 64 bytes of an ed25519.PrivateKey.
	ErrNoHostKey = errors.New("ssh: no host key")
)

// Algorithms offered in the key exchange: modern only.
var (
	// KeyExchanges are the key exchange methods, post-quantum hybrid first.
	KeyExchanges = []string{gossh.KeyExchangeMLKEM768X25519, gossh.KeyExchangeCurve25519}
	// Ciphers are the AEAD ciphers.
	Ciphers = []string{gossh.CipherChaCha20Poly1305, gossh.CipherAES256GCM, gossh.CipherAES128GCM}
	// UserKeyAlgorithms are the client key signature algorithms accepted.
	UserKeyAlgorithms = []string{
		gossh.KeyAlgoED25519,
		gossh.KeyAlgoECDSA256, gossh.KeyAlgoECDSA384, gossh.KeyAlgoECDSA521,
		gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256,
	}
)

// Server is an SSH server that runs over any stream: a QUIC stream or TLS/TCP
// connection on the alknet/ssh ALPN (through [Server.ServeConn]), or a plain TCP
// connection (through [Server.Serve] and [Server.HandleConn]). It never opens a socket
// of its own.
//
// Clients authenticate with a public key only, which [core.Peers] resolves to an
// identity; the identity's scopes decide what each request may do. Build one with
// [NewServer]. The exported hook maps may be changed only before the server serves its
// first connection. Every nil or missing hook denies.
type Server struct {
	// ChannelHandlers serve channel types by name. NewServer sets "session". A type
	// with no handler is rejected with UnknownChannelType.
	ChannelHandlers map[string]ChannelHandler
	// RequestHandlers answer global requests by type. A type with no handler gets a
	// failure reply; "keepalive@openssh.com" always gets a reply.
	RequestHandlers map[string]RequestHandler
	// Subsystems serve "subsystem" requests on session channels by name, such as
	// "sftp". A peer needs the scope "ssh:<name>" (ssh:sftp) to start one. A missing
	// subsystem is refused.
	Subsystems map[string]SubsystemHandler
	// ExecHandlers serve "exec" requests by program name (the command's first word)
	// instead of running a command, such as git-upload-pack for git over SSH. A peer
	// needs "ssh:exec:<name>", which "ssh:exec" grants. Commands naming no handler run
	// as programs and need "ssh:exec".
	ExecHandlers map[string]ExecHandler
	// ListenerLimits bound the connections [Server.Serve] accepts (the plain TCP
	// listener, which the endpoint's own limits do not cover): MaxConnsPerIP (default
	// 64, negative for none) and IdleTimeout (the TCP keep-alive period, default 60s).
	ListenerLimits core.Limits

	hostKey     gossh.Signer
	peers       *core.Peers
	log         *slog.Logger
	cfg         atomic.Pointer[Config]
	unsubscribe func() // stops hearing of peer-list reloads

	doneCtx   context.Context // cancelled when Shutdown or Close starts
	markDone  context.CancelFunc
	mu        sync.Mutex
	conns     map[*serverConn]struct{}
	listeners map[net.Listener]struct{}
	perIP     map[string]int
	startups  int // handshakes running, against Config.MaxStartups
	closing   bool
	wg        sync.WaitGroup

	// Refusals before the handshake log one warning a second per kind.
	startupLog, connStartupLog, perIPLog, graceLog logLimiter
}

var _ core.Handler = (*Server)(nil)
var _ core.Shutdowner = (*Server)(nil)

// NewServer returns a server with host key hostKey (an ed25519.PrivateKey, or any
// crypto.Signer x/crypto/ssh accepts), resolving client keys through peers (nil: every
// key is unknown and refused). log may be nil. A missing or malformed host key is an
// error wrapping [ErrNoHostKey].
//
// The server subscribes to peers' reloads ([core.Peers.OnUpdate]) until Shutdown or
// Close: after each one it closes the live connections whose peer was removed, renamed
// or lost a scope it held (one it authenticated with, or one a later reload granted),
// after telling each of their sessions
// "alknet: your access changed; reconnect" on stderr.
func NewServer(hostKey crypto.Signer, peers *core.Peers, cfg Config, log *slog.Logger) (*Server, error) {
	if err := checkHostKey(hostKey); err != nil {
		return nil, err
	}
	signer, err := newSigner(hostKey)
	if err != nil {
		return nil, fmt.Errorf("ssh: host key: %w", err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{
		hostKey:         signer,
		peers:           peers,
		log:             log,
		ChannelHandlers: map[string]ChannelHandler{},
		RequestHandlers: map[string]RequestHandler{},
		Subsystems:      map[string]SubsystemHandler{},
		ExecHandlers:    map[string]ExecHandler{},
		conns:           map[*serverConn]struct{}{},
		listeners:       map[net.Listener]struct{}{},
		perIP:           map[string]int{},
	}
	if err := s.SetConfig(cfg); err != nil {
		return nil, err
	}
	s.doneCtx, s.markDone = context.WithCancel(context.Background())
	s.ChannelHandlers["session"] = s.serveSession
	s.unsubscribe = peers.OnUpdate(s.peersChanged)
	return s, nil
}

// checkHostKey refuses the host keys whose Public method would panic: ed25519's slices
// its key without checking the length.
func checkHostKey(k crypto.Signer) error {
	switch k := k.(type) {
	case nil:
		return ErrNoHostKey
	case ed25519.PrivateKey:
		return checkEd25519(k)
	case *ed25519.PrivateKey:
		if k == nil {
			return ErrNoHostKey
		}
		return checkEd25519(*k)
	}
	return nil
}

func checkEd25519(k ed25519.PrivateKey) error {
	if len(k) == 0 {
		return ErrNoHostKey
	}
	if len(k) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: the Ed25519 key is %d bytes, want %d", ErrNoHostKey, len(k), ed25519.PrivateKeySize)
	}
	return nil
}

// newSigner wraps gossh.NewSignerFromSigner: a crypto.Signer of another type may still
// panic (a nil pointer), and a bad key must fail NewServer, not the process.
func newSigner(k crypto.Signer) (s gossh.Signer, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("%w: %T: %v", ErrNoHostKey, k, r)
		}
	}()
	return gossh.NewSignerFromSigner(k)
}

// SetConfig replaces the configuration; new sessions and connections use it (a
// config reload). Listen and HostKeyFile are read only by the caller that builds the
// server.
func (s *Server) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	d := cfg.withDefaults()
	s.cfg.Store(&d)
	return nil
}

// Config returns the configuration in force, defaults filled in.
func (s *Server) Config() Config { return *s.cfg.Load() }

// HostKey returns the server's public host key.
func (s *Server) HostKey() gossh.PublicKey { return s.hostKey.PublicKey() }

// ServeConn serves the alknet/ssh ALPN: one SSH connection per accepted stream, until
// the connection ends. It implements [core.Handler]. A stream beyond
// [Config.MaxStartupsPerConn] handshakes running on c is closed at once.
func (s *Server) ServeConn(ctx context.Context, c core.Conn) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Once the server shuts down, take no more streams: ServeConn returns when its SSH
	// connections have ended, and the endpoint closes the connection, rather than
	// waiting for a client that may never close it.
	acceptCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.doneCtx, cancel)
	defer stop()
	// Handshakes of this connection running at once, against MaxStartupsPerConn: each
	// stream is an SSH handshake of its own, and streams are cheap to open.
	var pending atomic.Int64
	for {
		st, err := c.AcceptStream(acceptCtx)
		if err != nil {
			return nil
		}
		nc := core.NetConn(st, nil, c.Peer().RemoteAddr)
		if max := s.cfg.Load().MaxStartupsPerConn; pending.Add(1) > int64(max) && max > 0 {
			pending.Add(-1)
			s.refuseStartup(&s.connStartupLog, nc, c.Transport(), "too many unauthenticated connections on one connection")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.handleConn(ctx, nc, c.Transport(), func() { pending.Add(-1) }); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("ssh connection ended", "transport", c.Transport(), "err", err)
			}
		}()
	}
}

// Serve accepts plain TCP (or any net.Listener) connections on l and serves SSH on
// each, until l fails or the server is shut down. It always returns a non-nil error,
// [ErrServerClosed] after Shutdown or Close. It closes l on return.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		ip := core.LimitKey(nc.RemoteAddr())
		if !s.admit(ip) {
			s.refuseStartup(&s.perIPLog, nc, TransportSSHTCP, "too many connections from this address")
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.release(ip)
			if tc, ok := nc.(*net.TCPConn); ok {
				period := s.ListenerLimits.IdleTimeout.Std()
				if period <= 0 {
					period = core.DefaultIdleTimeout
				}
				tc.SetKeepAlive(true)
				tc.SetKeepAlivePeriod(period)
			}
			s.HandleConn(context.Background(), nc, TransportSSHTCP)
		}()
	}
}

func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// admit counts a connection from ip (a [core.LimitKey]) against
// ListenerLimits.MaxConnsPerIP.
func (s *Server) admit(ip string) bool {
	max := s.ListenerLimits.MaxConnsPerIP
	if max == 0 {
		max = core.DefaultMaxConnsPerIP
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if max > 0 && s.perIP[ip] >= max {
		return false
	}
	s.perIP[ip]++
	return true
}

func (s *Server) release(ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// refuseStartup closes nc, which is refused before its SSH handshake, with a warning
// that lim keeps to one a second.
func (s *Server) refuseStartup(lim *logLimiter, nc net.Conn, transport, reason string) {
	nc.Close()
	if ok, suppressed := lim.allow(time.Now()); ok {
		remote := "unknown"
		if a := nc.RemoteAddr(); a != nil {
			remote = a.String()
		}
		s.log.Warn("connection rejected", "remote", remote, "reason", reason, "service", authService, "transport", transport, "suppressed", suppressed)
	}
}

// startup takes one of the server's Config.MaxStartups handshake slots.
func (s *Server) startup(max int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if max > 0 && s.startups >= max {
		return false
	}
	s.startups++
	return true
}

func (s *Server) endStartup() {
	s.mu.Lock()
	s.startups--
	s.mu.Unlock()
}

// HandleConn runs one SSH server connection over nc until it ends, and closes nc.
// transport names the carrier for hooks and logs ("quic", "tcp", TransportSSHTCP). It
// returns nil when the client disconnects, or why the connection failed. When ctx ends,
// at any stage (the handshake included), nc is closed and HandleConn returns soon
// after, with an error wrapping ctx.Err() if the handshake had not finished. A client
// has [Config.LoginGraceTime] to finish the handshake in any case; one that does not
// is dropped, logged, and the error wraps [ErrLoginTimeout]. When
// [Config.MaxStartups] handshakes are already running, nc is closed at once and the
// error wraps [ErrTooManyStartups].
//
// A panic in the connection's own code (the handshake, a hook) is recovered and logged,
// and ends only this connection; one in a [ChannelHandler] ends only its channel.
func (s *Server) HandleConn(ctx context.Context, nc net.Conn, transport string) error {
	return s.handleConn(ctx, nc, transport, nil)
}

// handleConn is HandleConn; handshakeDone, if not nil, runs once when the handshake
// has ended, whether it succeeded or not.
func (s *Server) handleConn(ctx context.Context, nc net.Conn, transport string, handshakeDone func()) (err error) {
	cfg := s.cfg.Load()
	// Before anything else is set up: refusing must cost next to nothing.
	if !s.startup(cfg.MaxStartups) {
		if handshakeDone != nil {
			handshakeDone()
		}
		s.refuseStartup(&s.startupLog, nc, transport, "too many unauthenticated connections")
		return fmt.Errorf("ssh: connection from %s: %w", hostOf(nc.RemoteAddr()), ErrTooManyStartups)
	}
	ended := sync.OnceFunc(func() {
		s.endStartup()
		if handshakeDone != nil {
			handshakeDone()
		}
	})
	defer ended()
	defer nc.Close()
	remote := "unknown"
	if a := nc.RemoteAddr(); a != nil {
		remote = a.String()
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("ssh connection panicked", "remote", remote, "transport", transport, "panic", r)
			err = fmt.Errorf("ssh: connection with %s: panic: %v", remote, r)
		}
	}()
	sc := &serverConn{srv: s, transport: transport, nc: nc, sessions: map[*session]struct{}{}, revoked: make(chan struct{})}
	if !s.track(sc, true) {
		return ErrServerClosed
	}
	defer s.track(sc, false)

	// The handshake blocks in reads: closing nc is the only way to end it early.
	stopHandshake := context.AfterFunc(ctx, func() { nc.Close() })
	defer stopHandshake()
	// A client that never finishes the handshake must not hold the connection forever.
	grace := cfg.LoginGraceTime.Std()
	deadline := time.Now().Add(grace)
	nc.SetDeadline(deadline)
	conn, chans, reqs, err := gossh.NewServerConn(nc, s.serverConfig(cfg, remote, transport))
	ended()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("ssh: handshake with %s: %w", remote, ctx.Err())
		}
		// x/crypto/ssh does not always keep the deadline error wrapped: the clock
		// tells too.
		if errors.Is(err, os.ErrDeadlineExceeded) || !time.Now().Before(deadline) {
			// Slow but honest logins (a host-key prompt, a passphrase) end here too:
			// say so, as OpenSSH does, but an attacker must not flood the log.
			if ok, suppressed := s.graceLog.allow(time.Now()); ok {
				s.log.Info("connection dropped: timeout before authentication", "remote", remote,
					"transport", transport, "login_grace_time", grace, "suppressed", suppressed)
			}
			return fmt.Errorf("ssh: handshake with %s: %w (%w)", remote, ErrLoginTimeout, err)
		}
		return fmt.Errorf("ssh: handshake with %s: %w", remote, err)
	}
	nc.SetDeadline(time.Time{})
	defer conn.Close()

	peer, key, err := peerFromPermissions(conn.Permissions, nc.RemoteAddr())
	if err != nil { // cannot happen: auth succeeded only through publicKey
		return err
	}
	sc.authenticated(key, peer.Identity)
	cc := NewConnContext(peer, transport, conn)
	cc.server = sc
	defer cc.RunClosers()
	sc.cc = cc

	// Deferred in this order so that, on any return (a panic included), the context
	// ends, which closes the connection, before waiting for the goroutines.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sc.cancel = cancel
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	// A reload that took access away ends the connection, after a notice.
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-sc.revoked:
			sc.leave(cancel)
		}
	}()
	// peersChanged skips connections still in the handshake, and the key was resolved
	// during it: a reload since then is caught here.
	s.checkAccess(sc)

	wg.Add(1)
	go func() {
		defer wg.Done()
		s.globalRequests(ctx, cc, reqs)
	}()
	for nch := range chans {
		h := s.ChannelHandlers[nch.ChannelType()]
		if h == nil {
			nch.Reject(gossh.UnknownChannelType, "unknown channel type "+nch.ChannelType())
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runChannelHandler(ctx, h, cc, nch)
		}()
	}
	cancel()
	return nil
}

// runChannelHandler runs h, and if it panics, logs the panic and ends only its channel:
// an open it never answered is refused, a channel it accepted is closed.
func (s *Server) runChannelHandler(ctx context.Context, h ChannelHandler, cc *ConnContext, nch gossh.NewChannel) {
	tc := &trackedChannel{NewChannel: nch}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("ssh channel handler panicked", "type", nch.ChannelType(), "peer", cc.Peer.Name(), "panic", r)
			tc.abandon()
		}
	}()
	h(ctx, cc, tc)
}

// trackedChannel records what a ChannelHandler did with its NewChannel, so that a
// handler that panics leaves neither an unanswered open nor an open channel behind.
type trackedChannel struct {
	gossh.NewChannel
	mu       sync.Mutex
	answered bool
	ch       gossh.Channel
	reqs     <-chan *gossh.Request
}

func (t *trackedChannel) Accept() (gossh.Channel, <-chan *gossh.Request, error) {
	ch, reqs, err := t.NewChannel.Accept()
	t.mu.Lock()
	t.answered, t.ch, t.reqs = true, ch, reqs
	t.mu.Unlock()
	return ch, reqs, err
}

func (t *trackedChannel) Reject(reason gossh.RejectionReason, message string) error {
	t.mu.Lock()
	t.answered = true
	t.mu.Unlock()
	return t.NewChannel.Reject(reason, message)
}

// abandon ends the channel after its handler panicked.
func (t *trackedChannel) abandon() {
	t.mu.Lock()
	answered, ch, reqs := t.answered, t.ch, t.reqs
	t.mu.Unlock()
	if !answered {
		t.NewChannel.Reject(gossh.ConnectionFailed, "internal error")
		return
	}
	if ch != nil {
		ch.Close()
		// Requests nobody reads would stall the whole connection's multiplexer.
		go gossh.DiscardRequests(reqs)
	}
}

func (s *Server) globalRequests(ctx context.Context, cc *ConnContext, reqs <-chan *gossh.Request) {
	for req := range reqs {
		h := s.RequestHandlers[req.Type]
		if h == nil {
			// keepalive@openssh.com and every unknown request: a failure reply is the
			// answer OpenSSH's sshd gives too.
			if req.WantReply {
				req.Reply(false, nil)
			}
			continue
		}
		ok, payload := func() (ok bool, payload []byte) {
			defer func() {
				if r := recover(); r != nil {
					s.log.Error("ssh request handler panicked", "type", req.Type, "panic", r)
					ok, payload = false, nil
				}
			}()
			return h(ctx, cc, req)
		}()
		if req.WantReply {
			req.Reply(ok, payload)
		}
	}
}

func (s *Server) track(sc *serverConn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closing {
			return false
		}
		s.conns[sc] = struct{}{}
		return true
	}
	delete(s.conns, sc)
	return true
}

// Shutdown stops the plain listeners, ends every session (the client gets a notice on
// stderr and its command an exit-signal HUP), closes idle connections, and waits for
// the rest until ctx ends, then closes them. It returns ctx.Err() if connections were
// still open when ctx ended. New connections are refused afterwards.
//
// x/crypto/ssh offers no way to send SSH_MSG_DISCONNECT after authentication, so the
// goodbye is given per session: each session channel is closed after its process, and
// then the connection.
func (s *Server) Shutdown(ctx context.Context) error {
	conns := s.stop()
	for _, sc := range conns {
		sc.goodbye()
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			s.wg.Wait()
			return nil
		}
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes every listener and connection at once. Running processes get SIGHUP.
func (s *Server) Close() error {
	for _, sc := range s.stop() {
		sc.close()
	}
	s.wg.Wait()
	return nil
}

func (s *Server) stop() []*serverConn {
	s.unsubscribe()
	s.markDone()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	var out []*serverConn
	for sc := range s.conns {
		out = append(out, sc)
	}
	return out
}

// serverConn is one SSH connection the server tracks for shutdown.
type serverConn struct {
	srv       *Server
	transport string
	nc        net.Conn
	cc        *ConnContext
	cancel    context.CancelFunc

	revoked    chan struct{} // closed when a reload took access away
	revokeOnce sync.Once

	mu       sync.Mutex
	sessions map[*session]struct{}
	bye      bool
	key      gossh.PublicKey // the accepted key; nil during the handshake
	// id is the identity the connection may use now: the one it authenticated as,
	// then the one every later check resolved (see [Server.current]). A reload is
	// judged against it, so a scope granted by one reload and revoked by the next is
	// a loss. nil once the peer was removed.
	id *core.Identity
}

// authenticated records the accepted key and the identity it was accepted as, the
// first identity later reloads are judged against.
func (sc *serverConn) authenticated(key gossh.PublicKey, id *core.Identity) {
	sc.mu.Lock()
	sc.key, sc.id = key, id
	sc.mu.Unlock()
}

// revokeNotice is what sessions hear when a reload ends their connection.
const revokeNotice = "your access changed; reconnect"

// leave ends a connection whose access was revoked: every session gets the notice on
// stderr, then cancel closes the connection (its programs get SIGHUP as when a client
// vanishes). A client that does not read cannot hold it open: cancel runs after a
// second regardless.
func (sc *serverConn) leave(cancel context.CancelFunc) {
	t := time.AfterFunc(time.Second, cancel)
	defer t.Stop()
	sc.mu.Lock()
	sc.bye = true // no new sessions
	var list []*session
	for se := range sc.sessions {
		list = append(list, se)
	}
	sc.mu.Unlock()
	for _, se := range list {
		se.notice(revokeNotice)
	}
	cancel()
}

// peersChanged runs after every reload of the peer list.
func (s *Server) peersChanged() {
	s.mu.Lock()
	list := make([]*serverConn, 0, len(s.conns))
	for sc := range s.conns {
		list = append(list, sc)
	}
	s.mu.Unlock()
	for _, sc := range list {
		s.checkAccess(sc)
	}
}

// checkAccess ends sc if the peer list in force took access away from it (see
// [Server.current]). It does not block: the connection is closed on its own goroutine.
func (s *Server) checkAccess(sc *serverConn) { s.current(sc) }

// current resolves sc's accepted key through the peer list in force and makes the
// result sc's identity. If that falls short of the identity sc held until now (the
// peer was removed or renamed, or lost a scope, including one a reload granted after
// authentication), sc is marked revoked and closed on its own goroutine, as
// core.Endpoint does for its connections. Every reload and every scope check runs
// it, one at a time per connection, so an identity a check used is what the next
// reload is judged against. ok is false while sc is in the handshake.
func (s *Server) current(sc *serverConn) (id *core.Identity, ok bool) {
	sc.mu.Lock()
	if sc.key == nil {
		sc.mu.Unlock()
		return nil, false
	}
	cur, next := sc.id, s.peers.Resolve(sc.key)
	sc.id = next // the reduced identity applies at once, also while sc is closing
	sc.mu.Unlock()
	if cur == nil { // removed before: already revoked
		return next, true
	}
	if why := cur.AccessLost(next); why != "" {
		sc.revokeOnce.Do(func() {
			s.log.Info("ssh connection closed: access changed", "peer", cur.Name, "reason", why, "transport", sc.transport)
			close(sc.revoked)
		})
	}
	return next, true
}

func (sc *serverConn) addSession(se *session) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.bye {
		return false
	}
	sc.sessions[se] = struct{}{}
	return true
}

func (sc *serverConn) removeSession(se *session) {
	sc.mu.Lock()
	delete(sc.sessions, se)
	last := sc.bye && len(sc.sessions) == 0
	sc.mu.Unlock()
	if last {
		sc.close()
	}
}

// goodbye ends every session; the connection closes when the last one has gone.
func (sc *serverConn) goodbye() {
	sc.mu.Lock()
	sc.bye = true
	var list []*session
	for se := range sc.sessions {
		list = append(list, se)
	}
	sc.mu.Unlock()
	if len(list) == 0 {
		sc.close()
		return
	}
	for _, se := range list {
		se.shutdown()
	}
}

func (sc *serverConn) close() {
	if sc.nc != nil {
		sc.nc.Close()
	}
}

// Permissions.Extensions keys carrying the identity from the accepted key to the
// connection (the CVE-2024-45337 pattern: never from callback-captured state).
const (
	extPeer   = "alknet-peer"
	extScopes = "alknet-scopes"
	extKey    = "alknet-key"
)

// authService is the service field of the auth lines of SSH user authentication, so a
// filter tells them from the endpoint's TLS line (service=alknet/ssh) of the same
// connection.
const authService = "ssh"

var errUnknownKey = errors.New("ssh: key not in the peer list")

func (s *Server) serverConfig(cfg *Config, remote, transport string) *gossh.ServerConfig {
	c := &gossh.ServerConfig{
		Config: gossh.Config{
			KeyExchanges: KeyExchanges,
			Ciphers:      Ciphers,
			MACs:         []string{gossh.HMACSHA256ETM, gossh.HMACSHA512ETM},
		},
		PublicKeyAuthAlgorithms: UserKeyAlgorithms,
		MaxAuthTries:            cfg.MaxAuthTries,
		ServerVersion:           "SSH-2.0-alknet",
		PublicKeyCallback: func(meta gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			id := s.peers.Resolve(key)
			if id == nil {
				core.LogAuth(s.log, core.AuthRejected, remote, gossh.FingerprintSHA256(key), "", authService, transport)
				return nil, errUnknownKey
			}
			return &gossh.Permissions{Extensions: map[string]string{
				extPeer:   id.Name,
				extScopes: strings.Join(id.Scopes, "\n"),
				extKey:    string(key.Marshal()),
			}}, nil
		},
		VerifiedPublicKeyCallback: func(meta gossh.ConnMetadata, key gossh.PublicKey, perms *gossh.Permissions, _ string) (*gossh.Permissions, error) {
			core.LogAuth(s.log, core.AuthAccepted, remote, gossh.FingerprintSHA256(key), perms.Extensions[extPeer], authService, transport)
			return perms, nil
		},
		AuthLogCallback: func(meta gossh.ConnMetadata, method string, err error) {
			// "none" is every client's opening probe and publickey attempts are logged
			// above with their key; anything else (password, keyboard-interactive) is
			// a method this server never accepts.
			if method != "none" && method != "publickey" {
				core.LogAuth(s.log, core.AuthRejected, remote, "none", "", authService, transport)
			}
		},
	}
	c.AddHostKey(s.hostKey)
	return c
}

// peerFromPermissions rebuilds the authenticated peer, and its key, from the
// Permissions of the key that completed authentication.
func peerFromPermissions(p *gossh.Permissions, remote net.Addr) (core.Peer, gossh.PublicKey, error) {
	if p == nil || p.Extensions == nil {
		return core.Peer{}, nil, errors.New("ssh: connection without permissions")
	}
	name, ok := p.Extensions[extPeer]
	if !ok {
		return core.Peer{}, nil, errors.New("ssh: connection without identity")
	}
	key, err := gossh.ParsePublicKey([]byte(p.Extensions[extKey]))
	if err != nil {
		return core.Peer{}, nil, fmt.Errorf("ssh: identity key: %w", err)
	}
	var scopes []string
	if v := p.Extensions[extScopes]; v != "" {
		scopes = strings.Split(v, "\n")
	}
	var pub crypto.PublicKey = key
	if ck, ok := key.(gossh.CryptoPublicKey); ok {
		pub = ck.CryptoPublicKey()
	}
	return core.Peer{RemoteAddr: remote, PublicKey: pub, Identity: &core.Identity{Name: name, Scopes: scopes}}, key, nil
}

// logLimiter keeps a warning that an attacker can trigger at will to one a second.
type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many lines were held back since the last.
func (l *logLimiter) allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < time.Second {
		l.suppressed++
		return false, 0
	}
	suppressed, l.suppressed, l.last = l.suppressed, 0, now
	return true, suppressed
}
