package core

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// EndpointConfig configures an [Endpoint]. Only Key is required.
type EndpointConfig struct {
	// Key is the node's Ed25519 identity key. Required; see [ValidKey].
	Key ed25519.PrivateKey
	// Peers resolves client keys to identities. Nil means every client is anonymous.
	// The endpoint follows its updates on live connections; see [Endpoint].
	Peers *Peers
	// Logger receives connection and authentication events. Nil means slog.Default().
	Logger *slog.Logger
	// Limits bound what one client can take; zero fields mean their defaults.
	Limits Limits
	// KeyExchange is KeyExchangeHybrid (the default) or KeyExchangeClassic.
	KeyExchange string
	// WebCertificate, if set, supplies the certificate for clients that cannot take the
	// Ed25519 identity certificate (browsers: they accept neither Ed25519 nor
	// self-signed certificates without pinning). Nil means such clients fail the
	// handshake.
	WebCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// Endpoint serves one [Mux] on QUIC and on TLS over TCP at once, with one ALPN table.
// The TLS handshake picks the handler before any application byte is read; an ALPN
// nobody registered fails the handshake.
//
// Call [Endpoint.Listen] (or ListenQUIC and ListenTCP), then [Endpoint.Serve].
//
// # Peer list reloads
//
// A connection's identity is resolved from [EndpointConfig.Peers] when the connection
// is accepted, and again after every [Peers.Update] (SIGHUP in the alknet CLI):
//
//   - A connection whose peer was removed, renamed (its key now belongs to another
//     name) or no longer holds every scope the connection held is closed as soon as the
//     Update's notification runs, before Update returns: over QUIC with
//     [CodeAccessChanged] and a reason asking the client to reconnect, over TLS/TCP by
//     closing it. One info line is logged per closed connection. The client's next
//     connection gets the reduced identity.
//   - A connection whose peer kept its name and every scope stays open, and
//     [Conn.Peer] returns the new identity from then on: scopes added by the reload
//     apply to the connection's next stream or request, for handlers that call
//     Conn.Peer per stream. A handler that copied the Peer at the start of the
//     connection keeps the copy's scopes until the client reconnects.
//   - An anonymous connection stays anonymous until it reconnects, even if its key has
//     since been listed.
//
// Shutdown and Close stop following the peer list.
//
// Only [NewEndpoint] makes a working Endpoint. On a zero Endpoint, Close and Shutdown
// return nil, Addr and NodeID return "", and Listen, ListenQUIC, ListenTCP and Serve
// return an error.
type Endpoint struct {
	mux    *Mux
	cfg    EndpointConfig
	limits Limits
	log    *slog.Logger
	cert   tls.Certificate
	tlsCfg *tls.Config

	ctx    context.Context // cancelled by Close or when Shutdown gives up
	cancel context.CancelFunc

	mu       sync.Mutex
	udp      net.PacketConn
	tr       *quic.Transport
	qln      *quic.Listener
	tln      net.Listener
	conns    map[Conn]struct{}
	perIP    map[string]int
	closing  bool
	closedCh chan struct{}
	refusing atomic.Int32   // TCP refusals waiting for their client to close
	loops    sync.WaitGroup // accept loops
	handlers sync.WaitGroup // connection goroutines
	closeOne sync.Once

	stopPeers func()     // ends the Peers.OnUpdate subscription
	reloadMu  sync.Mutex // serializes peersUpdated, which concurrent Updates may run at once
}

// NewEndpoint returns an endpoint serving mux. It reads mux's ALPNs at every
// handshake, so handlers should be registered before Serve.
func NewEndpoint(mux *Mux, cfg EndpointConfig) (*Endpoint, error) {
	if mux == nil {
		return nil, errors.New("core: NewEndpoint: nil Mux")
	}
	if err := ValidKey(cfg.Key); err != nil {
		return nil, fmt.Errorf("core: NewEndpoint: EndpointConfig.Key: %w", err)
	}
	curves, err := curvePreferences(cfg.KeyExchange)
	if err != nil {
		return nil, err
	}
	cert, err := SelfSignedCertificate(cfg.Key)
	if err != nil {
		return nil, err
	}
	e := &Endpoint{
		mux:      mux,
		cfg:      cfg,
		limits:   cfg.Limits.withDefaults(),
		log:      cfg.Logger,
		cert:     cert,
		conns:    make(map[Conn]struct{}),
		perIP:    make(map[string]int),
		closedCh: make(chan struct{}),
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.stopPeers = cfg.Peers.OnUpdate(e.peersUpdated) // a no-op for nil Peers
	e.tlsCfg = &tls.Config{
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: curves,
		ClientAuth:       tls.RequestClientCert,
		GetCertificate:   e.certificateFor,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			// A client that offers no ALPN could only be dispatched to no handler:
			// refuse it in the handshake, as an unregistered ALPN is.
			if len(hello.SupportedProtos) == 0 {
				return nil, errNoALPN
			}
			c := e.tlsCfg.Clone()
			c.GetConfigForClient = nil
			c.NextProtos = mux.ALPNs()
			return c, nil
		},
		// The client certificate is a key carrier: no chain is checked. The handshake
		// has already proven possession of the key; only its type is checked here.
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return nil
			}
			_, err := x509.ParseCertificate(raw[0])
			return err
		},
	}
	return e, nil
}

var (
	errNoALPN     = errors.New("core: client offered no ALPN protocol")
	errNotCreated = errors.New("core: Endpoint was not made by NewEndpoint")
)

// created reports whether NewEndpoint made e; the zero Endpoint has no Mux, context or
// TLS configuration to serve with.
func (e *Endpoint) created() bool { return e.mux != nil }

// certificateFor is the one place that picks the certificate for a ClientHello: the
// Ed25519 identity certificate for clients that accept Ed25519, otherwise the web
// certificate.
func (e *Endpoint) certificateFor(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.SupportsCertificate(&e.cert) == nil || e.cfg.WebCertificate == nil {
		return &e.cert, nil
	}
	return e.cfg.WebCertificate(hello)
}

// NodeID is the endpoint's node ID, or "" for a zero Endpoint.
func (e *Endpoint) NodeID() NodeID {
	if !e.created() {
		return ""
	}
	return NodeIDOf(e.cfg.Key.Public().(ed25519.PublicKey))
}

// Mux returns the endpoint's Mux.
func (e *Endpoint) Mux() *Mux { return e.mux }

// Listen binds QUIC (UDP) and TLS over TCP on addr, on the same port number. With port
// 0, it picks a port that is free on both.
func (e *Endpoint) Listen(addr string) error {
	if !e.created() {
		return fmt.Errorf("core: Listen: %w", errNotCreated)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("core: listen address %q: %w", addr, err)
	}
	var lastErr error
	for range 20 {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("core: listen UDP %s: %w", addr, err)
		}
		tcpAddr := net.JoinHostPort(host, strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port))
		tln, err := e.listenTCP(tcpAddr)
		if err != nil {
			udp.Close()
			lastErr = err
			if port != "0" && port != "" {
				break
			}
			continue
		}
		if err := e.ListenQUIC(udp); err != nil {
			udp.Close()
			tln.Close()
			return err
		}
		return e.ListenTCP(tln)
	}
	return fmt.Errorf("core: listen TCP: %w", lastErr)
}

func (e *Endpoint) listenTCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: e.limits.IdleTimeout.Std()}
	return lc.Listen(context.Background(), "tcp", addr)
}

// ListenQUIC serves QUIC on pc. The endpoint owns pc from now on. A nil pc is an
// error.
func (e *Endpoint) ListenQUIC(pc net.PacketConn) error {
	if isNil(pc) {
		return errors.New("core: ListenQUIC: nil net.PacketConn")
	}
	if !e.created() {
		return fmt.Errorf("core: ListenQUIC: %w", errNotCreated)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return ErrServerClosed
	}
	if e.qln != nil {
		return errors.New("core: ListenQUIC: already listening on QUIC")
	}
	tr := &quic.Transport{Conn: pc}
	qln, err := tr.Listen(e.tlsCfg, e.quicConfig())
	if err != nil {
		tr.Close()
		return fmt.Errorf("core: listen QUIC: %w", err)
	}
	e.udp, e.tr, e.qln = pc, tr, qln
	return nil
}

// isNil reports whether v is nil or an interface holding a nil pointer (such as a
// (*net.UDPConn)(nil)): either would only fail later, inside an accept goroutine.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
		return rv.IsNil()
	}
	return false
}

func (e *Endpoint) quicConfig() *quic.Config {
	streams := int64(e.limits.MaxStreamsPerConn)
	if streams < 0 {
		streams = 1 << 60
	}
	return &quic.Config{
		HandshakeIdleTimeout:             e.limits.HandshakeTimeout.Std(),
		MaxIdleTimeout:                   e.limits.IdleTimeout.Std(),
		MaxIncomingStreams:               streams,
		MaxIncomingUniStreams:            -1,
		EnableDatagrams:                  true, // WebTransport over h3 needs both of these.
		EnableStreamResetPartialDelivery: true,
		Allow0RTT:                        false,
	}
}

// ListenTCP serves TLS over TCP on ln. The endpoint owns ln from now on. A nil ln is an
// error.
func (e *Endpoint) ListenTCP(ln net.Listener) error {
	if isNil(ln) {
		return errors.New("core: ListenTCP: nil net.Listener")
	}
	if !e.created() {
		return fmt.Errorf("core: ListenTCP: %w", errNotCreated)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return ErrServerClosed
	}
	if e.tln != nil {
		return errors.New("core: ListenTCP: already listening on TCP")
	}
	e.tln = ln
	return nil
}

// UDPAddr is the QUIC listening address, or nil.
func (e *Endpoint) UDPAddr() net.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.udp == nil {
		return nil
	}
	return e.udp.LocalAddr()
}

// TCPAddr is the TLS/TCP listening address, or nil.
func (e *Endpoint) TCPAddr() net.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tln == nil {
		return nil
	}
	return e.tln.Addr()
}

// Addr returns the endpoint's dialable address, "<node-id>@host:port", using the QUIC
// port (the TCP port is the same after Listen). Before a listener is set it is the bare
// node ID; on a zero Endpoint it is "".
func (e *Endpoint) Addr() string {
	if !e.created() {
		return ""
	}
	a := e.UDPAddr()
	if a == nil {
		a = e.TCPAddr()
	}
	if a == nil {
		return string(e.NodeID())
	}
	return FormatAddr(e.NodeID(), a.String())
}

// Serve accepts connections on every listener until Shutdown or Close, and then
// returns [ErrServerClosed].
func (e *Endpoint) Serve() error {
	if !e.created() {
		return fmt.Errorf("core: Serve: %w", errNotCreated)
	}
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return ErrServerClosed
	}
	if e.qln == nil && e.tln == nil {
		e.mu.Unlock()
		return errors.New("core: Serve: call Listen first")
	}
	if qln := e.qln; qln != nil {
		e.loops.Go(func() { e.acceptQUIC(qln) })
	}
	if tln := e.tln; tln != nil {
		e.loops.Go(func() { e.acceptTCP(tln) })
	}
	e.mu.Unlock()
	<-e.closedCh
	return ErrServerClosed
}

func (e *Endpoint) acceptQUIC(ln *quic.Listener) {
	for {
		qc, err := ln.Accept(e.ctx)
		if err != nil {
			if !isClosedErr(err) {
				e.log.Error("quic accept", "err", err)
			}
			return
		}
		state := qc.ConnectionState().TLS
		c := &quicConn{qc: qc, alpn: state.NegotiatedProtocol,
			peer: newLivePeer(e.peerOf(qc.RemoteAddr(), state.PeerCertificates))}
		if !e.admit(c) {
			qc.CloseWithError(quic.ApplicationErrorCode(CodeLimit), "too many connections")
			continue
		}
		e.handlers.Go(func() { e.serveConn(c, qc.Context()) })
	}
}

func (e *Endpoint) acceptTCP(ln net.Listener) {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if isClosedErr(err) {
				return
			}
			// Temporary failures such as EMFILE: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			e.log.Warn("tcp accept", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-e.ctx.Done():
				return
			}
		}
		delay = 0
		e.handlers.Go(func() { e.handshakeTCP(nc) })
	}
}

func (e *Endpoint) handshakeTCP(nc net.Conn) {
	// TCP shows the address before the handshake: spend no handshake on a client that
	// is over its limit.
	ip := ipOf(nc.RemoteAddr())
	if !e.reserveIP(ip) {
		if e.isClosing() {
			nc.Close()
		} else {
			e.refuseTCP(nc)
		}
		return
	}
	reserved := true
	defer func() {
		if reserved {
			e.releaseIP(ip)
		}
	}()
	tc := tls.Server(nc, e.tlsCfg)
	ctx, cancel := context.WithTimeout(e.ctx, e.limits.HandshakeTimeout.Std())
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		e.log.Debug("tls handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
		nc.Close()
		return
	}
	state := tc.ConnectionState()
	c := NewStreamConn(connStream{tc}, state.NegotiatedProtocol, e.peerOf(nc.RemoteAddr(), state.PeerCertificates), TransportTCP)
	reserved = false // release (after serveConn) gives it back from here on
	if !e.track(c) {
		e.releaseIP(ip)
		tc.Close()
		return
	}
	e.serveConn(c, nil)
}

// accessDeniedAlert is a plaintext TLS record (content type alert, legacy version
// TLS 1.2, length 2) carrying a fatal access_denied alert. Before the ServerHello, alerts
// travel unencrypted, so it can be written without running crypto/tls, whose server
// callbacks can only fail a handshake with internal_error.
var accessDeniedAlert = []byte{21, 3, 3, 0, 2, 2, 49}

// Bounds on telling refused TCP clients why: how long one refusal may wait for the
// client to close, how much it reads meanwhile, and how many may wait at once.
const (
	refuseLinger       = time.Second
	refuseReadLimit    = 64 << 10
	maxRefusalsWaiting = 128
)

// refuseTCP answers a TCP client that is over its per-IP limit with accessDeniedAlert,
// which the Dialer reports as [ErrTooManyConnections]; QUIC says the same with
// CodeLimit. No handshake is spent on it. Closing a socket with unread input sends a
// reset that can overtake the alert, so it half-closes and reads the ClientHello until
// the client, having read the alert, closes; a flood of refusals beyond
// maxRefusalsWaiting is closed at once, as before.
func (e *Endpoint) refuseTCP(nc net.Conn) {
	defer nc.Close()
	if e.refusing.Add(1) > maxRefusalsWaiting {
		e.refusing.Add(-1)
		return
	}
	defer e.refusing.Add(-1)
	nc.SetDeadline(time.Now().Add(refuseLinger))
	// Close must not wait out refuseLinger; set after the deadline above, this wins.
	stop := context.AfterFunc(e.ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	if _, err := nc.Write(accessDeniedAlert); err != nil {
		return
	}
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	io.CopyN(io.Discard, nc, refuseReadLimit)
}

func (e *Endpoint) isClosing() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closing
}

func (e *Endpoint) peerOf(remote net.Addr, certs []*x509.Certificate) Peer {
	p := Peer{RemoteAddr: remote}
	if len(certs) > 0 {
		p.PublicKey = certs[0].PublicKey
		p.Identity = e.cfg.Peers.Resolve(p.PublicKey)
	}
	return p
}

func ipOf(a net.Addr) string { return LimitKey(a) }

// LimitKey is the key per-address limits count a client under: its IPv4 address, or the
// /64 network of its IPv6 address, since one IPv6 host is usually given a whole /64
// and could otherwise take a fresh address for every connection. IPv4-mapped IPv6
// addresses count as IPv4.
func LimitKey(a net.Addr) string {
	var ip net.IP
	switch a := a.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	default:
		if a == nil {
			return ""
		}
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			host = a.String()
		}
		if ip = net.ParseIP(host); ip == nil {
			return host
		}
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}

// admit records c, or refuses it when the endpoint is closing or its IP is at the limit.
func (e *Endpoint) admit(c Conn) bool {
	ip := ipOf(c.Peer().RemoteAddr)
	if !e.reserveIP(ip) {
		return false
	}
	if !e.track(c) {
		e.releaseIP(ip)
		return false
	}
	return true
}

// reserveIP counts one more connection from ip, unless ip is at the limit. Refusals
// are logged at debug level only: a flood of them must not flood the log.
func (e *Endpoint) reserveIP(ip string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return false
	}
	if e.limits.MaxConnsPerIP > 0 && e.perIP[ip] >= e.limits.MaxConnsPerIP {
		e.log.Debug("connection refused: per-IP limit", "remote", ip, "limit", e.limits.MaxConnsPerIP)
		return false
	}
	e.perIP[ip]++
	return true
}

func (e *Endpoint) releaseIP(ip string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.perIP[ip]--; e.perIP[ip] <= 0 {
		delete(e.perIP, ip)
	}
}

// track records c as running, unless the endpoint is closing.
//
// It resolves c's key once more, under e.mu: an Update that landed after the handshake
// resolved it but before c was recorded would otherwise find c in no list, and c would
// keep the old identity. Either peersUpdated snapshots e.conns after this (and sees c),
// or this runs after that snapshot and so after the Update stored its list.
func (e *Endpoint) track(c Conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return false
	}
	if lp := livePeerOf(c); lp != nil && lp.key != nil {
		lp.id.Store(e.cfg.Peers.Resolve(lp.key))
	}
	e.conns[c] = struct{}{}
	return true
}

// livePeerOf returns the replaceable Peer of a connection the endpoint made.
func livePeerOf(c Conn) *livePeer {
	switch c := c.(type) {
	case *quicConn:
		return c.peer
	case *streamConn:
		return c.peer
	}
	return nil
}

// accessChangedReason is the QUIC close reason sent with CodeAccessChanged.
const accessChangedReason = "peer access changed by a peer list reload; reconnect"

// peersUpdated runs after every Peers.Update. It re-resolves the key of every live
// connection with an identity, closes those that lost access (see
// [Identity.AccessLost]) and gives the others their new identity. Anonymous
// connections are left as they are.
func (e *Endpoint) peersUpdated() {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	e.mu.Lock()
	conns := make([]Conn, 0, len(e.conns))
	for c := range e.conns {
		conns = append(conns, c)
	}
	e.mu.Unlock()
	// Close outside e.mu, as closeConns does: a handler's cleanup may call back into
	// the endpoint.
	for _, c := range conns {
		lp := livePeerOf(c)
		if lp == nil || lp.key == nil {
			continue
		}
		cur := lp.id.Load()
		if cur == nil {
			continue
		}
		next := e.cfg.Peers.Resolve(lp.key)
		// The new identity applies at once, also to a connection about to be closed:
		// its close may take a while (a TLS/TCP peer that does not read), and streams
		// it opens meanwhile must see the reduced scopes.
		lp.id.Store(next)
		reason := cur.AccessLost(next)
		if reason == "" {
			continue
		}
		e.log.Info("connection closed: peer access changed", "peer", cur.Name, "remote", lp.addr.String(),
			"alpn", c.ALPN(), "transport", c.Transport(), "reason", reason)
		c.Close(CodeAccessChanged, accessChangedReason)
	}
}

func (e *Endpoint) release(c Conn) {
	e.mu.Lock()
	delete(e.conns, c)
	e.mu.Unlock()
	e.releaseIP(ipOf(c.Peer().RemoteAddr))
}

// serveConn runs the handler for c; connDone, if not nil, ends the handler's context
// when the transport connection ends.
func (e *Endpoint) serveConn(c Conn, connDone context.Context) {
	defer e.release(c)
	peer := c.Peer()
	result := AuthAccepted
	switch {
	case peer.PublicKey == nil:
		result = AuthNoKey
	case peer.Identity == nil:
		result = AuthUnknownKey
	}
	LogAuth(e.log, result, peer.RemoteAddr.String(), Fingerprint(peer.PublicKey), peer.Identity.name(), c.ALPN(), c.Transport())

	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	if connDone != nil {
		stop := context.AfterFunc(connDone, cancel)
		defer stop()
	}
	if err := e.mux.Dispatch(ctx, c); err != nil && !isClosedErr(err) {
		e.log.Warn("connection ended with error", "alpn", c.ALPN(), "transport", c.Transport(), "peer", peer.Name(), "err", err)
	}
}

func (id *Identity) name() string {
	if id == nil {
		return ""
	}
	return id.Name
}

// Shutdown stops accepting, tells every handler that implements [Shutdowner], waits for
// running connections to finish until ctx ends, then closes the rest and the sockets.
// It returns ctx.Err() if connections were still open when ctx ended. A second call
// only waits. On a zero Endpoint it returns nil at once.
func (e *Endpoint) Shutdown(ctx context.Context) error {
	if !e.created() {
		return nil
	}
	first := e.stopAccepting()
	// The accept loops end promptly once the listeners are closed; waiting for them
	// first means no connection goroutine can start while we wait for the others.
	e.loops.Wait()
	if first {
		e.mux.shutdownHandlers(ctx)
	}
	drained := make(chan struct{})
	go func() { e.handlers.Wait(); close(drained) }()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = ctx.Err()
		e.closeConns()
		<-drained
	}
	e.finish()
	return err
}

// Close ends every connection at once and releases the sockets. On a zero Endpoint it
// returns nil at once: there is nothing to release.
func (e *Endpoint) Close() error {
	if !e.created() {
		return nil
	}
	e.stopAccepting()
	e.loops.Wait()
	e.closeConns()
	e.handlers.Wait()
	e.finish()
	return nil
}

// stopAccepting closes the listeners; established connections go on. It reports whether
// this was the first call.
func (e *Endpoint) stopAccepting() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return false
	}
	e.closing = true
	if e.qln != nil {
		e.qln.Close()
	}
	if e.tln != nil {
		e.tln.Close()
	}
	return true
}

func (e *Endpoint) closeConns() {
	e.cancel()
	e.mu.Lock()
	conns := make([]Conn, 0, len(e.conns))
	for c := range e.conns {
		conns = append(conns, c)
	}
	e.mu.Unlock()
	// Close outside the lock: a handler's cleanup may call back into the endpoint.
	for _, c := range conns {
		c.Close(CodeShutdown, "endpoint shutting down")
	}
}

func (e *Endpoint) finish() {
	e.closeOne.Do(func() {
		e.stopPeers()
		e.cancel()
		e.loops.Wait()
		e.mu.Lock()
		tr := e.tr
		e.mu.Unlock()
		if tr != nil {
			tr.Close()
			e.udp.Close()
		}
		close(e.closedCh)
	})
	<-e.closedCh
}
