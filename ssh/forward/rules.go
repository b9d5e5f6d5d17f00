package forward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/alkdev/alknet/core"
)

// Policy is a compiled [Config]: the rule list ready to answer questions. It is
// immutable and safe for concurrent use.
type Policy struct {
	cfg          Config
	rules        []rule
	defaultAllow bool
}

type targetKind uint8

const (
	anyHost   targetKind = iota // "*"
	hostExact                   // "db.internal"
	hostGlob                    // "*.example.com", "alknet-*"
	ipPrefix                    // "10.0.0.0/8", "::1"
	pathExact                   // "/run/x.sock"
	pathGlob                    // "/run/*.sock"
)

type rule struct {
	allow  bool
	kind   targetKind
	name   string // hostExact, pathExact
	prefix string // globs: text before "*"
	suffix string // globs: text after "*"
	cidr   netip.Prefix
	ports  bool // a port or range was given
	lo, hi uint32

	scopes, peers, transports []string
}

// Compile checks cfg and returns its [Policy]. Errors are [*ConfigError].
func Compile(cfg Config) (*Policy, error) {
	cfg = cfg.withDefaults()
	def, err := parseAction(cfg.Default)
	if err != nil {
		return nil, &ConfigError{Err: fmt.Errorf("default: %w", err)}
	}
	p := &Policy{cfg: cfg, defaultAllow: def}
	for i, r := range cfg.Rules {
		cr, err := compileRule(r)
		if err != nil {
			return nil, &ConfigError{Rule: i + 1, Err: err}
		}
		p.rules = append(p.rules, cr)
	}
	return p, nil
}

// Config returns the configuration with its defaults filled in.
func (p *Policy) Config() Config { return p.cfg }

func compileRule(r Rule) (rule, error) {
	allow, err := parseAction(r.Action)
	if err != nil {
		return rule{}, err
	}
	cr, err := parseTarget(r.Target)
	if err != nil {
		return rule{}, err
	}
	cr.allow = allow
	for _, list := range [][]string{r.Scopes, r.Peers, r.Transports} {
		if slices.Contains(list, "") {
			return rule{}, errors.New("scopes, peers and transports may not hold an empty string")
		}
	}
	cr.scopes, cr.peers, cr.transports = r.Scopes, r.Peers, r.Transports
	return cr, nil
}

// parseTarget parses a rule target; see [Rule].
func parseTarget(s string) (rule, error) {
	bad := func(why string) (rule, error) {
		return rule{}, fmt.Errorf("target %q: %s", s, why)
	}
	switch {
	case s == "":
		return bad("empty; write a host, CIDR or socket path, optionally with :port")
	case strings.HasPrefix(s, "/"):
		if path.Clean(s) != s {
			return bad("socket path is not clean (no //, . or .. parts, no trailing /)")
		}
		return globRule(s, pathExact, pathGlob)
	}
	// A bare IPv6 address or prefix carries colons and no port.
	if r, ok := ipRule(s); ok {
		return r, nil
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return bad("missing ]")
		}
		host, port = s[1:end], s[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return bad("want [ipv6]:port")
		}
		port = strings.TrimPrefix(port, ":")
		if port == "" && strings.HasSuffix(s, ":") {
			return bad("empty port")
		}
		r, ok := ipRule(host)
		if !ok || !r.cidr.Addr().Is6() {
			return bad("brackets hold an IPv6 address or prefix")
		}
		return withPorts(r, port, s)
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
		if port == "" {
			return bad("empty port")
		}
	}
	var r rule
	switch {
	case host == "*":
		r = rule{kind: anyHost}
	case strings.ContainsRune(host, ':'):
		return bad("write IPv6 addresses in brackets when a port follows: [::1]:22")
	default:
		if ir, ok := ipRule(host); ok {
			r = ir
			break
		}
		h := strings.ToLower(strings.TrimSuffix(host, "."))
		if !validHostPattern(h) {
			return bad("not a host name, glob, address or CIDR")
		}
		var err error
		if r, err = globRule(h, hostExact, hostGlob); err != nil {
			return rule{}, fmt.Errorf("target %q: %w", s, err)
		}
	}
	return withPorts(r, port, s)
}

func ipRule(s string) (rule, bool) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return rule{kind: ipPrefix, cidr: netip.PrefixFrom(a, a.BitLen())}, true
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return rule{kind: ipPrefix, cidr: p.Masked()}, true
	}
	return rule{}, false
}

func globRule(s string, exact, glob targetKind) (rule, error) {
	switch strings.Count(s, "*") {
	case 0:
		return rule{kind: exact, name: s}, nil
	case 1:
		pre, suf, _ := strings.Cut(s, "*")
		return rule{kind: glob, prefix: pre, suffix: suf}, nil
	}
	return rule{}, fmt.Errorf("target %q: at most one * is allowed", s)
}

func withPorts(r rule, port, s string) (rule, error) {
	if port == "" || port == "*" {
		return r, nil
	}
	lo, hi, isRange := strings.Cut(port, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.ParseUint(lo, 10, 16)
	h, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || l > h {
		return rule{}, fmt.Errorf("target %q: port must be N, LOW-HIGH (0-65535, LOW <= HIGH) or *", s)
	}
	r.ports, r.lo, r.hi = true, uint32(l), uint32(h)
	return r, nil
}

// validHostPattern allows letters, digits, '-', '.', '_' and at most one '*'.
func validHostPattern(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.', c == '_', c == '*':
		default:
			return false
		}
	}
	return true
}

// validHostName reports whether a client-sent name is a plausible DNS name.
func validHostName(h string) bool {
	return !strings.Contains(h, "*") && validHostPattern(h) && !strings.HasPrefix(h, ".") && !strings.Contains(h, "..")
}

// Who describes the peer asking, for the rules' scopes, peers and transports lists.
type Who struct {
	Peer      core.Peer
	Transport string
}

// query is one question to the rule list.
type query struct {
	name string     // the host name or address as sent, normalised; or a socket path
	path bool       // name is a socket path
	ip   netip.Addr // an address the target has (resolved or literal); invalid if none
	port uint32
	bind bool // a remote-forward bind address: only address rules apply
}

// decide runs the rule list, first match wins.
func (p *Policy) decide(q query, who Who) bool {
	for i := range p.rules {
		if p.rules[i].matches(q, who) {
			return p.rules[i].allow
		}
	}
	return p.defaultAllow
}

func (r *rule) matches(q query, who Who) bool {
	if r.ports && (q.port < r.lo || q.port > r.hi) {
		return false
	}
	if len(r.transports) > 0 && !slices.Contains(r.transports, who.Transport) {
		return false
	}
	if len(r.peers) > 0 && (who.Peer.Anonymous() || !slices.Contains(r.peers, who.Peer.Name())) {
		return false
	}
	if len(r.scopes) > 0 && !slices.ContainsFunc(r.scopes, who.Peer.Allows) {
		return false
	}
	switch r.kind {
	case anyHost:
		return !q.path && !q.bind
	case hostExact:
		return !q.path && !q.bind && q.name == r.name
	case hostGlob:
		return !q.path && !q.bind && globMatch(q.name, r.prefix, r.suffix)
	case ipPrefix:
		return !q.path && q.ip.IsValid() && r.cidr.Contains(q.ip)
	case pathExact:
		return q.path && q.name == r.name
	case pathGlob:
		return q.path && globMatch(q.name, r.prefix, r.suffix)
	}
	return false
}

// globMatch: "*" stands for one or more characters.
func globMatch(s, prefix, suffix string) bool {
	return len(s) > len(prefix)+len(suffix) && strings.HasPrefix(s, prefix) && strings.HasSuffix(s, suffix)
}

// Resolver looks up host names; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Errors a check returns. A refusal wraps ErrProhibited (SSH "administratively
// prohibited"); a name that does not resolve wraps ErrUnresolved ("connect failed").
var (
	ErrProhibited = errors.New("ssh/forward: target not allowed")
	ErrUnresolved = errors.New("ssh/forward: target name does not resolve")
)

// errNotUnicast is why a target that is not one unicast host is refused, whatever the
// rules say.
var errNotUnicast = errors.New("not a unicast host address")

// dialable reports whether a may be the destination of a forward, before any rule is
// asked: only the unicast address of one host may. It refuses, with their IPv4-mapped
// forms:
//
//   - the unspecified addresses and IPv4 "this network" (0.0.0.0/8, ::): Linux
//     connects 0.0.0.0 and :: to the local host, so they would dodge every rule that
//     denies loopback, and no client needs them;
//   - the IPv4-compatible IPv6 addresses ::/96 other than ::1 (deprecated by RFC 4291;
//     some stacks tunnel them to the embedded IPv4 address, which the rules never see);
//   - multicast and the limited broadcast 255.255.255.255, which name no single host.
//
// Loopback is not refused here: it is an ordinary address the rules decide on.
func dialable(a netip.Addr) bool {
	a = a.Unmap()
	switch {
	case !a.IsValid(), a.IsUnspecified(), a.IsMulticast():
		return false
	case a.Is4():
		b := a.As4()
		return b[0] != 0 && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
	case a.IsLoopback():
		return true
	}
	return !ipv4Compatible.Contains(a)
}

var ipv4Compatible = netip.MustParsePrefix("::/96")

// Decision is the outcome of [Policy.CheckHost] that allowed a target.
type Decision struct {
	// Internal is set for an "alknet-<name>" target: it is served by the node itself and
	// never dialled; Addrs is empty.
	Internal bool
	// Addrs are the checked addresses to dial, in the resolver's order. Only these may
	// be dialled: never the name again.
	Addrs []netip.Addr
}

// InternalPrefix marks a target host served inside the node: "alknet-call" is ALPN
// "alknet/call".
const InternalPrefix = "alknet-"

// CheckHost decides whether who may reach host:port. A name is resolved first and each
// of its addresses is checked on its own, together with the name: the decision lists
// only the addresses the rules allow, and fails with [ErrProhibited] when there is none.
// An IP literal is checked as itself; an "alknet-<name>" host is checked by name only and
// never resolved. IPv4-mapped IPv6 addresses are checked, and returned, as IPv4.
// Addresses that are not dialable (0.0.0.0, ::, multicast, broadcast) are refused
// before the rules are asked, so no rule can allow them.
func (p *Policy) CheckHost(ctx context.Context, r Resolver, host string, port uint32, who Who) (Decision, error) {
	if port > 65535 {
		return Decision{}, fmt.Errorf("%w: port out of range", ErrProhibited)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return Decision{}, fmt.Errorf("%w: scoped addresses are not forwarded", ErrProhibited)
		}
		a = a.Unmap()
		if !dialable(a) {
			return Decision{}, fmt.Errorf("%w: %w", ErrProhibited, errNotUnicast)
		}
		if !p.decide(query{name: a.String(), ip: a, port: port}, who) {
			return Decision{}, ErrProhibited
		}
		return Decision{Addrs: []netip.Addr{a}}, nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if !validHostName(name) {
		return Decision{}, fmt.Errorf("%w: not a host name", ErrProhibited)
	}
	if strings.HasPrefix(name, InternalPrefix) {
		if len(name) == len(InternalPrefix) || !p.decide(query{name: name, port: port}, who) {
			return Decision{}, ErrProhibited
		}
		return Decision{Internal: true}, nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", name)
	if err != nil || len(addrs) == 0 {
		// The name alone may already be refused: say so rather than "no such host".
		if !p.decide(query{name: name, port: port}, who) {
			return Decision{}, ErrProhibited
		}
		return Decision{}, ErrUnresolved
	}
	var ok []netip.Addr
	undialable := 0
	for _, a := range addrs {
		a = a.Unmap()
		switch {
		case a.Zone() != "":
		case !dialable(a):
			undialable++
		case p.decide(query{name: name, ip: a, port: port}, who) && !slices.Contains(ok, a):
			ok = append(ok, a)
		}
	}
	if len(ok) == 0 {
		if undialable == len(addrs) {
			return Decision{}, fmt.Errorf("%w: %w", ErrProhibited, errNotUnicast)
		}
		return Decision{}, ErrProhibited
	}
	return Decision{Addrs: ok}, nil
}

// CheckPath decides whether who may reach the Unix socket at path. It is always refused
// unless [Config.Streamlocal] is on, and path must be absolute and clean.
func (p *Policy) CheckPath(sock string, who Who) error {
	if !p.cfg.Streamlocal {
		return fmt.Errorf("%w: streamlocal forwarding is off", ErrProhibited)
	}
	if !strings.HasPrefix(sock, "/") || path.Clean(sock) != sock || strings.ContainsRune(sock, 0) {
		return fmt.Errorf("%w: socket path must be absolute and clean", ErrProhibited)
	}
	if !p.decide(query{name: sock, path: true}, who) {
		return ErrProhibited
	}
	return nil
}

// AllowsBind reports whether a rule allows a remote-forward listener on the address
// ip:port. Only address and CIDR rules count, and the default never does: "*" and name
// rules never open a non-loopback listener. Loopback needs no rule; callers bind
// loopback when this says no.
func (p *Policy) AllowsBind(ip netip.Addr, port uint32, who Who) bool {
	ip = ip.Unmap()
	q := query{name: ip.String(), ip: ip, port: port, bind: true}
	for i := range p.rules {
		if p.rules[i].matches(q, who) {
			return p.rules[i].allow
		}
	}
	return false // a rule must allow it: the default does not
}
