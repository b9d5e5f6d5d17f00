package dns

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/miekg/dns"
	"github.com/quic-go/quic-go"
)

// Forwarder sends a query upstream and returns the answer.
type Forwarder interface {
	Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error)
}

// NewForwarder parses a forwarder spec:
//
//	udp://host:port                 plain DNS (TCP when the answer is truncated)
//	tls://host:port                 DoT, verified against the system's CAs
//	quic://host:port                DoQ, verified against the system's CAs
//	doq://<node-id>@host:port       DoQ to an alknet node, pinned by its key
//	dot://<node-id>@host:port       DoT to an alknet node, pinned by its key
//
// key is the client key proven to a doq:// or dot:// upstream; nil dials anonymously.
func NewForwarder(spec string, key ed25519.PrivateKey) (Forwarder, error) {
	u, err := url.Parse(spec)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("dns: forwarder %q: write it as udp://host:port, tls://host:port, quic://host:port, doq://<node-id>@host:port or dot://<node-id>@host:port", spec)
	}
	hostport := u.Host
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return nil, fmt.Errorf("dns: forwarder %q: %w", spec, err)
	}
	switch u.Scheme {
	case "udp":
		return &plainForwarder{addr: hostport}, nil
	case "tls":
		host, _, _ := net.SplitHostPort(hostport)
		return &plainForwarder{addr: hostport, tls: &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}}, nil
	case "quic":
		host, _, _ := net.SplitHostPort(hostport)
		return &quicForwarder{addr: hostport, tls: &tls.Config{ServerName: host, NextProtos: []string{ALPNDoQ}, MinVersion: tls.VersionTLS13}}, nil
	case "doq", "dot":
		if u.User == nil {
			return nil, fmt.Errorf("dns: forwarder %q: an alknet upstream needs its node ID: %s://<node-id>@host:port", spec, u.Scheme)
		}
		addr := u.User.Username() + "@" + hostport
		if _, _, err := core.ParseAddr(addr); err != nil {
			return nil, fmt.Errorf("dns: forwarder %q: %w", spec, err)
		}
		return &Client{Addr: addr, Key: key, DoT: u.Scheme == "dot"}, nil
	}
	return nil, fmt.Errorf("dns: forwarder %q: scheme must be udp, tls, quic, doq or dot", spec)
}

type plainForwarder struct {
	addr string
	tls  *tls.Config
}

func (f *plainForwarder) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp"}
	if f.tls != nil {
		c = &dns.Client{Net: "tcp-tls", TLSConfig: f.tls}
	}
	r, _, err := c.ExchangeContext(ctx, m, f.addr)
	if err == nil && r.Truncated && f.tls == nil {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, m, f.addr)
	}
	return r, err
}

// Client queries an alknet node over DoQ (the default) or DoT. It holds one
// connection, dialled on first use and again after a failure, and pins the node's key
// from Addr. A Client is safe for concurrent use: over DoQ each query takes its own
// stream; over DoT queries are pipelined on the one stream and matched by ID.
type Client struct {
	// Addr is "<node-id>@host:port".
	Addr string
	// Key is the client key proven to the node; nil dials anonymously.
	Key ed25519.PrivateKey
	// DoT selects DNS over TLS on the TCP listener instead of DoQ.
	DoT bool

	mu     sync.Mutex
	dialer *core.Dialer
	conn   core.Conn
	dot    *dotConn // DoT's one stream, pipelined
}

func (c *Client) connect(ctx context.Context) (core.Conn, *dotConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		return c.conn, c.dot, nil
	}
	alpn := ALPNDoQ
	if c.dialer == nil {
		c.dialer = &core.Dialer{Key: c.Key, Transport: core.TransportQUIC}
		if c.DoT {
			c.dialer.Transport = core.TransportTCP
		}
	}
	if c.DoT {
		alpn = ALPNDoT
	}
	conn, err := c.dialer.Dial(ctx, c.Addr, alpn)
	if err != nil {
		return nil, nil, err
	}
	if c.DoT {
		st, err := conn.OpenStream(ctx)
		if err != nil {
			conn.Close(0, "")
			return nil, nil, err
		}
		c.dot = newDotConn(st)
	}
	c.conn = conn
	return conn, c.dot, nil
}

func (c *Client) drop(conn core.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == conn {
		c.closeLocked()
	}
}

// Exchange sends m and returns the answer, with m's ID. It redials once if the held
// connection has failed.
func (c *Client) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		conn, dc, cerr := c.connect(ctx)
		if cerr != nil {
			return nil, cerr
		}
		var r *dns.Msg
		if c.DoT {
			r, err = dc.exchange(ctx, m)
		} else {
			r, err = ExchangeDoQ(ctx, conn, m)
		}
		if err == nil {
			return r, nil
		}
		c.drop(conn)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

// Close closes the held connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked()
	return nil
}

func (c *Client) closeLocked() {
	if c.conn != nil {
		c.conn.Close(0, "")
		if c.dot != nil {
			<-c.dot.done // the reader has returned
		}
		c.conn, c.dot = nil, nil
	}
}

// dotConn pipelines queries on one DoT stream: a reader goroutine hands each answer
// to the query with its ID.
type dotConn struct {
	st   core.Stream
	wmu  sync.Mutex
	mu   sync.Mutex
	wait map[uint16]chan *dns.Msg
	err  error
	done chan struct{}
}

func newDotConn(st core.Stream) *dotConn {
	d := &dotConn{st: st, wait: make(map[uint16]chan *dns.Msg), done: make(chan struct{})}
	go d.read()
	return d
}

func (d *dotConn) read() {
	defer close(d.done)
	var err error
	for {
		var raw []byte
		if raw, err = readFrame(d.st, nil); err != nil {
			break
		}
		r := new(dns.Msg)
		if r.Unpack(raw) != nil {
			continue
		}
		d.mu.Lock()
		ch := d.wait[r.Id]
		delete(d.wait, r.Id)
		d.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
	d.mu.Lock()
	d.err = err
	for id, ch := range d.wait {
		close(ch)
		delete(d.wait, id)
	}
	d.mu.Unlock()
}

func (d *dotConn) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	q := m.Copy()
	ch := make(chan *dns.Msg, 1)
	d.mu.Lock()
	if d.err != nil {
		d.mu.Unlock()
		return nil, d.err
	}
	for _, busy := d.wait[q.Id]; busy; _, busy = d.wait[q.Id] {
		q.Id = dns.Id() // another query in flight has this ID
	}
	d.wait[q.Id] = ch
	d.mu.Unlock()
	forget := func() {
		d.mu.Lock()
		delete(d.wait, q.Id)
		d.mu.Unlock()
	}
	b, err := q.Pack()
	if err != nil {
		forget()
		return nil, err
	}
	d.wmu.Lock()
	d.st.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = d.st.Write(frame(b))
	d.wmu.Unlock()
	if err != nil {
		forget()
		return nil, err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("dns: DoT connection ended: %w", d.errOr())
		}
		r.Id = m.Id
		return r, nil
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}

func (d *dotConn) errOr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return d.err
	}
	return io.EOF
}

// ErrDoQClosed is returned by [ExchangeDoQ] when the server closed the connection with
// a DoQ error code; it wraps the QUIC error.
var ErrDoQClosed = errors.New("dns: DoQ connection closed by the server")

// ExchangeDoQ sends m on a new stream of c (RFC 9250: message ID 0 on the wire) and
// returns the answer with m's ID restored.
func ExchangeDoQ(ctx context.Context, c core.Conn, m *dns.Msg) (*dns.Msg, error) {
	q := m.Copy()
	q.Id = 0
	b, err := q.Pack()
	if err != nil {
		return nil, err
	}
	st, err := c.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(10 * time.Second)
	}
	st.SetDeadline(dl)
	if _, err := st.Write(frame(b)); err != nil {
		return nil, err
	}
	if err := st.CloseWrite(); err != nil {
		return nil, err
	}
	raw, err := readFrame(st, nil)
	if err != nil {
		if strings.Contains(err.Error(), "Application error") {
			return nil, fmt.Errorf("%w: %v", ErrDoQClosed, err)
		}
		return nil, err
	}
	r := new(dns.Msg)
	if err := r.Unpack(raw); err != nil {
		return nil, fmt.Errorf("dns: malformed answer: %w", err)
	}
	r.Id = m.Id
	return r, nil
}

// quicForwarder is DoQ to a public resolver: one held QUIC connection, verified
// against the system's CAs, a stream per query.
type quicForwarder struct {
	addr string
	tls  *tls.Config

	mu   sync.Mutex
	conn *quic.Conn
}

func (f *quicForwarder) connect(ctx context.Context) (*quic.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil && f.conn.Context().Err() == nil {
		return f.conn, nil
	}
	conn, err := quic.DialAddr(ctx, f.addr, f.tls, &quic.Config{KeepAlivePeriod: 15 * time.Second})
	if err != nil {
		return nil, err
	}
	f.conn = conn
	return conn, nil
}

func (f *quicForwarder) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var conn *quic.Conn
		if conn, err = f.connect(ctx); err != nil {
			return nil, err
		}
		var r *dns.Msg
		if r, err = exchangeQUIC(ctx, conn, m); err == nil {
			return r, nil
		}
		conn.CloseWithError(quic.ApplicationErrorCode(DoQNoError), "")
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

func (f *quicForwarder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		f.conn.CloseWithError(quic.ApplicationErrorCode(DoQNoError), "")
		f.conn = nil
	}
	return nil
}

func exchangeQUIC(ctx context.Context, conn *quic.Conn, m *dns.Msg) (*dns.Msg, error) {
	q := m.Copy()
	q.Id = 0
	b, err := q.Pack()
	if err != nil {
		return nil, err
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	defer st.CancelRead(0)
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	}
	if _, err := st.Write(frame(b)); err != nil {
		return nil, err
	}
	st.Close()
	raw, err := readFrame(st, nil)
	if err != nil {
		return nil, err
	}
	r := new(dns.Msg)
	if err := r.Unpack(raw); err != nil {
		return nil, fmt.Errorf("dns: malformed answer: %w", err)
	}
	r.Id = m.Id
	return r, nil
}
