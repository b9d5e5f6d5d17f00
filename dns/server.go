package dns

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/miekg/dns"
)

// ALPNs served by [Server.ServeConn].
const (
	ALPNDoQ = "doq" // DNS over QUIC, RFC 9250
	ALPNDoT = "dot" // DNS over TLS, RFC 7858
)

// Config is the [dns] section. Zero values mean the documented defaults.
type Config struct {
	// Zones are zone files in RFC 1035 format, each naming its origin with $ORIGIN or
	// by the owner of its SOA record. Reloaded by [Server.Reload].
	Zones []string `toml:"zones"`
	// ClassicListen is a host:port for plain DNS over UDP and TCP. Empty (the default)
	// means no classic listener.
	ClassicListen string `toml:"classic_listen"`
	// RateLimit is how many responses per second one source IP gets over classic UDP.
	// Default 100; negative means no limit.
	RateLimit int `toml:"rate_limit"`
	// Forwarder answers names outside every served zone: "udp://host:port",
	// "tls://host:port" (DoT) or "quic://host:port" (DoQ), both verified against the
	// system's CAs, or an alknet node pinned by key,
	// "doq://<node-id>@host:port" or "dot://<node-id>@host:port". Empty (the default)
	// means such names are REFUSED.
	Forwarder string `toml:"forwarder"`
	// PkarrZone is a domain under which "<z-base-32 key>.<zone>" answers from verified
	// pkarr packets. Empty (the default) disables it.
	PkarrZone string `toml:"pkarr_zone"`
	// PkarrRelay is the URL of a pkarr relay that "alknet dns publish" publishes to and
	// that the pkarr zone resolves from when it holds no packet itself. Empty means none.
	PkarrRelay string `toml:"pkarr_relay"`
	// NodeZone, if set, makes the server answer "_alknet.<node-id>.<node_zone>" TXT
	// with the node's addresses and ALPNs. It must be one of the served zones.
	NodeZone string `toml:"node_zone"`
	// Addresses are the node's public host:port addresses advertised in its own records.
	Addresses []string `toml:"addresses"`
	// QueryTimeout bounds one forwarded query. Default 5s.
	QueryTimeout core.Duration `toml:"query_timeout"`
}

// Info describes where a query came from.
type Info struct {
	// Transport is "doq", "dot", "https", "udp" or "tcp".
	Transport string
	// Peer is the client as proven in the TLS handshake (DoQ and DoT); for other
	// transports only RemoteAddr is set and the client is anonymous.
	Peer core.Peer
}

// Options are what a [Server] needs beyond its Config.
type Options struct {
	// Key is the node key: it names the node's own records and signs its pkarr packet.
	// Nil disables the node records.
	Key ed25519.PrivateKey
	// Advertise returns the node's addresses (host:port) and ALPNs for its own records.
	// Config.Addresses, when set, replaces the addresses it returns. Nil advertises
	// Config.Addresses and the DNS ALPNs.
	Advertise func() (addrs, alpns []string)
	// Logger receives errors and update events; it never receives names looked up.
	// Nil means slog.Default().
	Logger *slog.Logger
	// Store holds pkarr packets; nil means a new one. Share it with a [Relay] to
	// answer for packets published to that relay.
	Store *PacketStore
	// ClientKey is the key proven to a doq:// or dot:// forwarder; nil dials
	// anonymously.
	ClientKey ed25519.PrivateKey
}

// Server answers DNS queries from authoritative zones, the node's own records, pkarr
// packets and, for other names, an optional forwarder. It serves DoQ and DoT as a
// [core.Handler], DoH through [Server.DoH], and classic UDP/TCP DNS through
// [Server.ServeClassic].
//
// Zone data is swapped atomically: [Server.Reload] and dynamic updates never block
// queries, and a query sees either the old or the new zone, never a mix.
type Server struct {
	cfg   Config
	opts  Options
	log   *slog.Logger
	store *PacketStore
	relay *RelayClient

	zones atomic.Pointer[zoneSet]
	upd   sync.Mutex // serialises dynamic updates and reloads

	fwd      Forwarder
	misses   missCache // keys the relay recently had no packet for
	limiter  *rateLimiter
	timeout  time.Duration
	pkarrApx string // lower-case fqdn, or ""

	mu      sync.Mutex
	classic []*dns.Server
	closed  bool
}

// NewServer loads cfg's zones and returns a server.
func NewServer(cfg Config, opts Options) (*Server, error) {
	s := &Server{cfg: cfg, opts: opts, log: opts.Logger, store: opts.Store}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.store == nil {
		s.store = new(PacketStore)
	}
	if cfg.PkarrRelay != "" {
		s.relay = &RelayClient{URL: cfg.PkarrRelay}
	}
	if cfg.PkarrZone != "" {
		s.pkarrApx = strings.ToLower(dns.Fqdn(cfg.PkarrZone))
		if _, ok := dns.IsDomainName(s.pkarrApx); !ok {
			return nil, fmt.Errorf("dns: pkarr_zone %q is not a domain name", cfg.PkarrZone)
		}
	}
	s.timeout = cfg.QueryTimeout.Std()
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	if cfg.RateLimit >= 0 {
		s.limiter = newRateLimiter(cmp0(cfg.RateLimit, 100))
	}
	if cfg.Forwarder != "" {
		fwd, err := NewForwarder(cfg.Forwarder, opts.ClientKey)
		if err != nil {
			return nil, err
		}
		s.fwd = fwd
	}
	zs, err := s.loadZones(cfg)
	if err != nil {
		return nil, err
	}
	s.zones.Store(zs)
	return s, nil
}

// Store returns the server's pkarr packet store.
func (s *Server) Store() *PacketStore { return s.store }

// Reload re-reads the zone files named in cfg. On error the running zones stay in
// force. Dynamic updates made since the last load are discarded.
func (s *Server) Reload(cfg Config) error {
	s.upd.Lock()
	defer s.upd.Unlock()
	zs, err := s.loadZones(cfg)
	if err != nil {
		return err
	}
	s.zones.Store(zs)
	s.mu.Lock()
	s.cfg.Zones, s.cfg.NodeZone, s.cfg.Addresses = cfg.Zones, cfg.NodeZone, cfg.Addresses
	s.mu.Unlock()
	return nil
}

func (s *Server) loadZones(cfg Config) (*zoneSet, error) {
	var zones []*Zone
	for _, path := range cfg.Zones {
		z, err := LoadZone(path, "")
		if err != nil {
			return nil, err
		}
		zones = append(zones, z)
	}
	if cfg.NodeZone != "" {
		origin := strings.ToLower(dns.Fqdn(cfg.NodeZone))
		found := false
		for _, z := range zones {
			found = found || z.Origin == origin
		}
		if !found {
			return nil, fmt.Errorf("dns: node_zone %s is not one of the served zones", cfg.NodeZone)
		}
		if s.opts.Key == nil {
			return nil, errors.New("dns: node_zone needs the node key (Options.Key)")
		}
	}
	return newZoneSet(zones)
}

// Zone returns the served zone with origin, or nil.
func (s *Server) Zone(origin string) *Zone {
	return s.zones.Load().zones[strings.ToLower(dns.Fqdn(origin))]
}

// NodeRecords returns the TXT records "_alknet.<node-id>.<zone>" that advertise a
// node: one "addr=<host:port>" string per address and one "alpn=<alpn>" string per
// service, each in its own record. With zone "" the names are relative to the key, the
// form a pkarr packet wants.
func NodeRecords(key ed25519.PublicKey, zone string, addrs, alpns []string, ttl uint32) []dns.RR {
	name := "_alknet." + string(core.NodeIDOf(key)) + "." + strings.TrimPrefix(dns.Fqdn(zone), ".")
	if zone == "" {
		name = RelativeName(key, "_alknet")
	}
	var rrs []dns.RR
	add := func(s string) {
		rrs = append(rrs, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: []string{s}})
	}
	for _, a := range addrs {
		add("addr=" + a)
	}
	for _, a := range alpns {
		add("alpn=" + a)
	}
	return rrs
}

// advertised returns the addresses and ALPNs for the node's own records.
func (s *Server) advertised() (addrs, alpns []string) {
	if s.opts.Advertise != nil {
		addrs, alpns = s.opts.Advertise()
	} else {
		alpns = []string{ALPNDoQ, ALPNDoT}
	}
	s.mu.Lock()
	if len(s.cfg.Addresses) > 0 {
		addrs = s.cfg.Addresses
	}
	s.mu.Unlock()
	return addrs, alpns
}

// nodeName is "_alknet.<node-id>.<node zone>" in lower case, or "".
func (s *Server) nodeName() string {
	s.mu.Lock()
	zone := s.cfg.NodeZone
	s.mu.Unlock()
	if zone == "" || s.opts.Key == nil {
		return ""
	}
	return strings.ToLower(NodeRecords(s.opts.Key.Public().(ed25519.PublicKey), zone, nil, []string{""}, 0)[0].Header().Name)
}

// nodeAnswer answers the node's own name from what it advertises now.
func (s *Server) nodeAnswer(m *dns.Msg, z *Zone, q dns.Question) {
	m.Authoritative = true
	if q.Qtype != dns.TypeTXT && q.Qtype != dns.TypeANY {
		m.Ns = append(m.Ns, z.negativeSOA())
		return
	}
	s.mu.Lock()
	zone := s.cfg.NodeZone
	s.mu.Unlock()
	addrs, alpns := s.advertised()
	m.Answer = copyRRs(NodeRecords(s.opts.Key.Public().(ed25519.PublicKey), zone, addrs, alpns, 300), q.Name)
}

// NodePacket returns the node's own records signed as a pkarr packet with the node key.
func (s *Server) NodePacket() (*SignedPacket, error) {
	if s.opts.Key == nil {
		return nil, errors.New("dns: no node key (Options.Key)")
	}
	addrs, alpns := s.advertised()
	return NodePacket(s.opts.Key, addrs, alpns, 300)
}

// Publish signs the node's records, keeps them in the server's own store (so the pkarr
// zone answers for the node at once) and, when a relay is configured, publishes them
// there.
func (s *Server) Publish(ctx context.Context) error {
	sp, err := s.NodePacket()
	if err != nil {
		return err
	}
	if err := s.store.Put(sp); err != nil {
		return err
	}
	if s.relay == nil {
		return nil
	}
	return s.relay.Publish(ctx, sp)
}

// NodePacket signs the node's records ([NodeRecords]) as a pkarr packet.
func NodePacket(key ed25519.PrivateKey, addrs, alpns []string, ttl uint32) (*SignedPacket, error) {
	return SignRecords(key, NodeRecords(key.Public().(ed25519.PublicKey), "", addrs, alpns, ttl), 0)
}

// Handle answers one query. It never returns nil: a query it cannot answer gets an
// error rcode, and a panic while answering becomes SERVFAIL for that query alone. The
// caller sets transport-specific details (message ID, padding, truncation).
func (s *Server) Handle(ctx context.Context, req *dns.Msg, info Info) (resp *dns.Msg) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("dns: panic while answering a query", "panic", p, "transport", info.Transport)
			resp = new(dns.Msg)
			resp.SetRcode(req, dns.RcodeServerFailure)
		}
	}()
	return s.handle(ctx, req, info)
}

func (s *Server) handle(ctx context.Context, req *dns.Msg, info Info) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = s.fwd != nil
	reqOpt := req.IsEdns0()
	if reqOpt != nil {
		defer func() {
			if resp.IsEdns0() == nil {
				resp.SetEdns0(1232, false)
			}
		}()
		if reqOpt.Version() != 0 {
			resp.Rcode = dns.RcodeBadVers
			return resp
		}
	}
	switch {
	case req.Response:
		resp.Rcode = dns.RcodeFormatError
		return resp
	case req.Opcode == dns.OpcodeUpdate:
		return s.update(req, resp, info)
	case req.Opcode != dns.OpcodeQuery:
		resp.Rcode = dns.RcodeNotImplemented
		return resp
	case len(req.Question) != 1:
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	if s.pkarrApx != "" && dns.IsSubDomain(s.pkarrApx, name) {
		s.pkarrAnswer(ctx, resp, q)
		return resp
	}
	if z := s.zones.Load().find(name); z != nil {
		if name == s.nodeName() {
			s.nodeAnswer(resp, z, q)
			return resp
		}
		z.answer(resp, q.Name, q.Qtype)
		return resp
	}
	if s.fwd != nil && req.RecursionDesired {
		return s.forward(ctx, req, resp)
	}
	resp.Rcode = dns.RcodeRefused
	return resp
}

func (s *Server) forward(ctx context.Context, req, resp *dns.Msg) *dns.Msg {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	up := req.Copy()
	up.Id = dns.Id()
	// Strip hop-by-hop options; keep DO and a sane buffer size.
	if opt := up.IsEdns0(); opt != nil {
		opt.Option = nil
		opt.SetUDPSize(1232)
	}
	got, err := s.fwd.Exchange(ctx, up)
	if err != nil {
		s.log.Debug("dns forwarder failed", "err", err)
		resp.Rcode = dns.RcodeServerFailure
		return resp
	}
	got.Id = req.Id
	got.RecursionAvailable = true
	got.Authoritative = false
	if opt := got.IsEdns0(); opt != nil {
		opt.Option = nil
	}
	return got
}

// pkarrAnswer answers a name under the pkarr zone: "<labels>.<z32>.<zone>" from the
// records "<labels>.<z32>." of the newest verified packet for that key.
func (s *Server) pkarrAnswer(ctx context.Context, m *dns.Msg, q dns.Question) {
	m.Authoritative = true
	soa := &dns.SOA{
		Hdr: dns.RR_Header{Name: s.pkarrApx, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns:  s.pkarrApx, Mbox: "hostmaster." + s.pkarrApx,
		Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 60,
	}
	name := strings.ToLower(q.Name)
	rel := strings.TrimSuffix(name, s.pkarrApx)
	if rel == "" { // the apex itself
		if q.Qtype == dns.TypeSOA {
			m.Answer = append(m.Answer, soa)
		} else {
			m.Ns = append(m.Ns, soa)
		}
		return
	}
	labels := dns.SplitDomainName(rel)
	key, err := core.ParseNodeID(labels[len(labels)-1])
	if err != nil {
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, soa)
		return
	}
	sp := s.store.Get(key)
	if sp == nil && s.opts.Key != nil && key.Equal(s.opts.Key.Public()) {
		sp, _ = s.NodePacket() // the node always answers for itself
	}
	if sp == nil && s.relay != nil && s.misses.allow(string(key)) {
		rctx, cancel := context.WithTimeout(ctx, s.timeout)
		got, err := s.relay.Resolve(rctx, key)
		cancel()
		if err == nil && s.store.Put(got) == nil || errors.Is(err, ErrStalePacket) {
			sp = s.store.Get(key)
		}
		if sp == nil {
			s.misses.add(string(key))
		}
	}
	if sp == nil {
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, soa)
		return
	}
	all := sp.Records(rel)
	var cname []dns.RR
	for _, rr := range all {
		if rr.Header().Rrtype == q.Qtype || q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, copyRRs([]dns.RR{rr}, q.Name)...)
		} else if rr.Header().Rrtype == dns.TypeCNAME {
			cname = append(cname, rr)
		}
	}
	switch {
	case len(m.Answer) > 0:
	case len(cname) > 0:
		m.Answer = append(m.Answer, copyRRs(cname[:1], q.Name)...)
	case len(all) > 0 || rel == string(core.NodeIDOf(key))+".":
		m.Ns = append(m.Ns, soa) // NODATA
	default:
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, soa)
	}
}

// ServeConn serves DoQ (ALPN "doq") or DoT (any other ALPN, normally "dot") on c.
func (s *Server) ServeConn(ctx context.Context, c core.Conn) error {
	if c.ALPN() == ALPNDoQ {
		return s.serveDoQ(ctx, c)
	}
	return s.serveDoT(ctx, c)
}

// ServeClassic serves plain DNS on pc (UDP) and ln (TCP); either may be nil. It
// returns at once; [Server.Close] stops them.
func (s *Server) ServeClassic(pc net.PacketConn, ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return core.ErrServerClosed
	}
	start := func(srv *dns.Server) error {
		started := make(chan struct{})
		failed := make(chan error, 1)
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { failed <- srv.ActivateAndServe() }()
		select {
		case <-started:
			s.classic = append(s.classic, srv)
			return nil
		case err := <-failed:
			return fmt.Errorf("dns: classic listener: %w", err)
		}
	}
	if pc != nil {
		if err := start(&dns.Server{PacketConn: pc, Handler: s.classicHandler("udp"), MsgAcceptFunc: acceptAll, ReadTimeout: 2 * time.Second, UDPSize: dns.MaxMsgSize}); err != nil {
			return err
		}
	}
	if ln != nil {
		return start(&dns.Server{Listener: ln, Handler: s.classicHandler("tcp"), MsgAcceptFunc: acceptAll, ReadTimeout: 10 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }})
	}
	return nil
}

// ListenClassic binds UDP and TCP on addr and serves plain DNS there. It returns the
// bound UDP and TCP addresses.
func (s *Server) ListenClassic(addr string) (udp, tcp net.Addr, err error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: classic listener: %w", err)
	}
	host, _, _ := net.SplitHostPort(addr)
	ln, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(pc.LocalAddr().(*net.UDPAddr).Port)))
	if err != nil {
		pc.Close()
		return nil, nil, fmt.Errorf("dns: classic listener: %w", err)
	}
	if err := s.ServeClassic(pc, ln); err != nil {
		pc.Close()
		ln.Close()
		return nil, nil, err
	}
	return pc.LocalAddr(), ln.Addr(), nil
}

// acceptAll lets updates and odd messages reach Handle, which answers each properly;
// responses are still dropped.
func acceptAll(dh dns.Header) dns.MsgAcceptAction {
	if dh.Bits&(1<<15) != 0 {
		return dns.MsgIgnore
	}
	return dns.MsgAccept
}

// Close stops the classic listeners. DoQ and DoT connections end with the endpoint.
// A second call does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	srvs := s.classic
	s.classic, s.closed = nil, true
	s.mu.Unlock()
	var errs []error
	for _, srv := range srvs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, srv.ShutdownContext(ctx))
		cancel()
	}
	if s.fwd != nil {
		if c, ok := s.fwd.(interface{ Close() error }); ok {
			c.Close()
		}
	}
	return errors.Join(errs...)
}

// Shutdown is Close; it lets the server be a [core.Shutdowner].
func (s *Server) Shutdown(ctx context.Context) error { return s.Close() }

// missCache remembers, for a minute, keys the relay had no packet for, so that queries
// for random keys do not each turn into a request to the relay.
type missCache struct {
	mu sync.Mutex
	m  map[string]time.Time
}

const (
	missTTL     = time.Minute
	missMaxKeys = 10000
)

func (c *missCache) allow(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[key]
	return !ok || time.Now().After(t)
}

func (c *missCache) add(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.m == nil {
		c.m = make(map[string]time.Time)
	}
	if len(c.m) >= missMaxKeys {
		for k, t := range c.m {
			if now.After(t) {
				delete(c.m, k)
			}
		}
		for k := range c.m { // still full of fresh misses: evict one at random
			delete(c.m, k)
			break
		}
	}
	c.m[key] = now.Add(missTTL)
}
