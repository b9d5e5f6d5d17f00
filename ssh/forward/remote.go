package forward

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/alkdev/alknet/core"
	gossh "golang.org/x/crypto/ssh"
)

// listener is one remote-forward listener of a session.
type listener struct {
	unix    bool
	addr    string // the bind address as the client sent it (TCP)
	port    uint32 // the port the client asked for (TCP)
	bound   uint32 // the port actually bound (TCP)
	path    string // the socket path (Unix)
	ln      net.Listener
	once    sync.Once
	release func()
}

func (l *listener) close() {
	l.once.Do(func() {
		l.ln.Close()
		l.release()
	})
}

// reserveListener takes one of the peer's listener slots; release gives it back.
func (f *Forwarder) reserveListener(peer string, limit int) (release func(), ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || limit >= 0 && f.listeners[peer] >= limit {
		return nil, false
	}
	f.listeners[peer]++
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.listeners[peer]--; f.listeners[peer] <= 0 {
				delete(f.listeners, peer)
			}
		})
	}, true
}

// addListener records l in the session unless the session already ended.
func (f *Forwarder) addListener(s *Session, st *session, l *listener) bool {
	f.mu.Lock()
	live := f.sessions[s.Conn] == st && !f.closed
	f.mu.Unlock()
	if !live {
		return false
	}
	st.mu.Lock()
	st.listeners = append(st.listeners, l)
	st.mu.Unlock()
	// The session may have ended between the check and the append: its cleanup took
	// the listeners before l joined them.
	f.mu.Lock()
	live = f.sessions[s.Conn] == st && !f.closed
	f.mu.Unlock()
	return live
}

// removeListener closes and forgets the first listener match selects.
func (st *session) removeListener(match func(*listener) bool) bool {
	st.mu.Lock()
	var found *listener
	for i, l := range st.listeners {
		if match(l) {
			found = l
			st.listeners = append(st.listeners[:i], st.listeners[i+1:]...)
			break
		}
	}
	st.mu.Unlock()
	if found == nil {
		return false
	}
	found.close()
	return true
}

// bindHost decides where a tcpip-forward listener goes: loopback, unless the client
// asked for another address and a rule allows that address and port. Ports below 1024
// need a rule even on loopback. ok is false when nothing may be bound.
func bindHost(p *Policy, addr string, port uint32, who Who) (host string, ok bool) {
	privileged := port != 0 && port < 1024
	loopback := func() (string, bool) {
		lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
		return lo.String(), !privileged || p.AllowsBind(lo, port, who)
	}
	var ip netip.Addr
	switch a := strings.ToLower(addr); a {
	case "localhost", "ip6-localhost":
		return loopback()
	case "", "*":
		// All interfaces, both families: a rule must allow 0.0.0.0.
		if p.AllowsBind(netip.IPv4Unspecified(), port, who) {
			return "", true
		}
		return loopback()
	default:
		parsed, err := netip.ParseAddr(a)
		if err != nil || parsed.Zone() != "" {
			return loopback()
		}
		ip = parsed.Unmap()
	}
	if ip.IsLoopback() && (!privileged || p.AllowsBind(ip, port, who)) {
		return ip.String(), true
	}
	if !ip.IsLoopback() && p.AllowsBind(ip, port, who) {
		return ip.String(), true
	}
	return loopback()
}

type tcpipForward struct {
	Addr string
	Port uint32
}

type forwardedTCPIP struct {
	Addr     string
	Port     uint32
	OrigAddr string
	OrigPort uint32
}

// HandleTCPIPForward serves a "tcpip-forward" request (ssh -R). It needs the scope
// "ssh:forward:remote". The listener binds loopback unless a rule allows the address the
// client asked for (see [Policy.AllowsBind]); port 0 gets a free port, sent back in the
// reply. Each connection it accepts becomes a "forwarded-tcpip" channel carrying the
// originator's address. The listener closes on cancel-tcpip-forward or when the SSH
// connection ends.
func (f *Forwarder) HandleTCPIPForward(ctx context.Context, s *Session, req *gossh.Request) (bool, []byte) {
	st, err := f.state(s)
	if err != nil {
		return false, nil
	}
	who := s.who()
	if !s.Peer.Allows(core.ScopeSSHForwardRemote) {
		f.log.Info("ssh forward refused", "peer", s.Peer.Name(), "kind", req.Type, "reason", "scope")
		return false, nil
	}
	var m tcpipForward
	if err := gossh.Unmarshal(req.Payload, &m); err != nil || m.Port > 65535 {
		return false, nil
	}
	p := f.policy.Load()
	host, ok := bindHost(p, m.Addr, m.Port, who)
	if !ok {
		f.log.Info("ssh forward refused", "peer", s.Peer.Name(), "kind", req.Type, "reason", "rule")
		return false, nil
	}
	release, ok := f.reserveListener(s.Peer.Name(), p.cfg.MaxListenersPerPeer)
	if !ok {
		f.log.Info("ssh forward refused", "peer", s.Peer.Name(), "kind", req.Type, "reason", "limit")
		return false, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.FormatUint(uint64(m.Port), 10)))
	if err != nil {
		release()
		f.log.Info("ssh forward: listen failed", "peer", s.Peer.Name(), "kind", req.Type, "err", "bind")
		return false, nil
	}
	l := &listener{addr: m.Addr, port: m.Port, bound: uint32(ln.Addr().(*net.TCPAddr).Port), ln: ln, release: release}
	if !f.addListener(s, st, l) {
		l.close()
		return false, nil
	}
	f.wg.Add(1)
	go f.acceptLoop(ctx, s, st, l)
	if m.Port == 0 {
		return true, gossh.Marshal(struct{ Port uint32 }{l.bound})
	}
	return true, nil
}

// HandleCancelTCPIPForward serves "cancel-tcpip-forward": it closes the session's
// listener for that address and port (the requested or the allocated one). Connections
// already forwarded keep running.
func (f *Forwarder) HandleCancelTCPIPForward(ctx context.Context, s *Session, req *gossh.Request) (bool, []byte) {
	st, err := f.state(s)
	if err != nil {
		return false, nil
	}
	var m tcpipForward
	if err := gossh.Unmarshal(req.Payload, &m); err != nil {
		return false, nil
	}
	return st.removeListener(func(l *listener) bool {
		return !l.unix && l.addr == m.Addr && (l.port == m.Port || l.bound == m.Port)
	}), nil
}

type streamlocalForward struct{ Path string }

type forwardedStreamlocal struct {
	Path     string
	Reserved string
}

// HandleStreamlocalForward serves "streamlocal-forward@openssh.com" (ssh -R with a
// socket path): it needs [Config.Streamlocal], the scope "ssh:forward:remote" and a rule
// allowing the path. Each accepted connection becomes a
// "forwarded-streamlocal@openssh.com" channel. The socket file is created with mode
// 0600 (like OpenSSH's StreamLocalBindMask 0177), never replaces an existing file, and
// is removed when the listener closes.
func (f *Forwarder) HandleStreamlocalForward(ctx context.Context, s *Session, req *gossh.Request) (bool, []byte) {
	st, err := f.state(s)
	if err != nil {
		return false, nil
	}
	if !s.Peer.Allows(core.ScopeSSHForwardRemote) {
		f.log.Info("ssh forward refused", "peer", s.Peer.Name(), "kind", req.Type, "reason", "scope")
		return false, nil
	}
	var m streamlocalForward
	if err := gossh.Unmarshal(req.Payload, &m); err != nil {
		return false, nil
	}
	p := f.policy.Load()
	if err := p.CheckPath(m.Path, s.who()); err != nil {
		f.log.Info("ssh forward refused", "peer", s.Peer.Name(), "kind", req.Type, "reason", "rule")
		return false, nil
	}
	release, ok := f.reserveListener(s.Peer.Name(), p.cfg.MaxListenersPerPeer)
	if !ok {
		f.log.Info("ssh forward refused", "peer", s.Peer.Name(), "kind", req.Type, "reason", "limit")
		return false, nil
	}
	ln, err := listenUnixPrivate(m.Path)
	if err != nil {
		release()
		f.log.Info("ssh forward: listen failed", "peer", s.Peer.Name(), "kind", req.Type, "err", "bind")
		return false, nil
	}
	l := &listener{unix: true, path: m.Path, ln: ln, release: release}
	if !f.addListener(s, st, l) {
		l.close()
		return false, nil
	}
	f.wg.Add(1)
	go f.acceptLoop(ctx, s, st, l)
	return true, nil
}

// HandleCancelStreamlocalForward serves "cancel-streamlocal-forward@openssh.com".
func (f *Forwarder) HandleCancelStreamlocalForward(ctx context.Context, s *Session, req *gossh.Request) (bool, []byte) {
	st, err := f.state(s)
	if err != nil {
		return false, nil
	}
	var m streamlocalForward
	if err := gossh.Unmarshal(req.Payload, &m); err != nil {
		return false, nil
	}
	return st.removeListener(func(l *listener) bool { return l.unix && l.path == m.Path }), nil
}

// acceptLoop turns each connection on l into a channel towards the client. ctx is the
// SSH connection's: forwarded connections end with it.
// A panic is logged and ends only this listener (or, on a connection's goroutine, only
// that connection).
func (f *Forwarder) acceptLoop(ctx context.Context, s *Session, st *session, l *listener) {
	defer f.wg.Done()
	defer l.close()
	defer f.recoverPanic(s, "listener")
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return
		}
		if !st.acquire(f.policy.Load().cfg.MaxChannelsPerSession) {
			c.Close()
			continue
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer st.release()
			defer c.Close()
			defer f.recoverPanic(s, "forwarded connection")
			var typ string
			var payload []byte
			if l.unix {
				typ, payload = ChannelForwardedStreamlocal, gossh.Marshal(forwardedStreamlocal{Path: l.path})
			} else {
				orig, _ := netip.ParseAddrPort(c.RemoteAddr().String())
				typ, payload = ChannelForwardedTCPIP, gossh.Marshal(forwardedTCPIP{
					Addr: l.addr, Port: l.bound,
					OrigAddr: orig.Addr().Unmap().String(), OrigPort: uint32(orig.Port()),
				})
			}
			ch, reqs, err := s.Conn.OpenChannel(typ, payload)
			if err != nil {
				c.Close()
				return
			}
			go gossh.DiscardRequests(reqs)
			join(ctx, ch, c)
		}()
	}
}

// listenUnixPrivate listens on a new Unix socket at path with mode 0600. The socket is
// bound under a random name beside path, restricted, then linked into place, so it is
// never reachable at path with wider permissions and never replaces an existing file.
func listenUnixPrivate(path string) (net.Listener, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(path), ".alknet-"+hex.EncodeToString(rnd[:])+".sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	if err := os.Link(tmp, path); err != nil {
		l.Close()
		return nil, err
	}
	l.SetUnlinkOnClose(false)
	os.Remove(tmp)
	return &unixListener{UnixListener: l, path: path}, nil
}

// unixListener removes its socket file when closed.
type unixListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { os.Remove(l.path) })
	return err
}

// recoverPanic logs a panic of one of the forwarder's goroutines; the deferred calls
// before it close what that goroutine owned.
func (f *Forwarder) recoverPanic(s *Session, what string) {
	if r := recover(); r != nil {
		f.log.Error("ssh forward: "+what+" panicked", "peer", s.Peer.Name(), "panic", r)
	}
}
