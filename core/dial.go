package core

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// FormatAddr returns "<node-id>@hostport".
func FormatAddr(id NodeID, hostport string) string { return string(id) + "@" + hostport }

// ParseAddr splits "<node-id>@host:port" into the pinned key and the network address.
// The node ID is required: a dial without a pin would trust anyone.
func ParseAddr(addr string) (ed25519.PublicKey, string, error) {
	id, hostport, ok := strings.Cut(addr, "@")
	if !ok {
		return nil, "", fmt.Errorf("core: address %q has no node ID: write it as <node-id>@host:port (alknet id prints the node ID)", addr)
	}
	pub, err := ParseNodeID(id)
	if err != nil {
		return nil, "", err
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return nil, "", fmt.Errorf("core: address %q: %w", addr, err)
	}
	return pub, hostport, nil
}

// ErrIdentityMismatch is returned when the server's key is not the node ID the
// address pins. The dialer never falls back to another transport after it.
var ErrIdentityMismatch = errors.New("core: server key does not match the node ID in the address")

// Dialer opens connections to alknet endpoints. The zero value dials anonymously over
// QUIC, falling back to TLS over TCP.
type Dialer struct {
	// Key is the client key proven to the server. Nil dials anonymously; any other
	// value must pass [ValidKey] (an empty, non-nil key is an error, not anonymous).
	Key ed25519.PrivateKey
	// Transport is TransportQUIC, TransportTCP, or "" for QUIC with TCP fallback.
	Transport string
	// FallbackAfter is how long QUIC may go unanswered before the dialer tries TCP.
	// Default 2s. Used only when Transport is "".
	FallbackAfter time.Duration
	// KeyExchange is KeyExchangeHybrid (the default) or KeyExchangeClassic.
	KeyExchange string
	// KeepAlive is the QUIC keep-alive period. Default 15s; negative disables.
	KeepAlive time.Duration

	certOnce sync.Once
	cert     tls.Certificate
	certErr  error
}

// Dial connects to addr ("<node-id>@host:port") on alpn with clientKey (nil for
// anonymous; otherwise it must pass [ValidKey]), over QUIC with TLS/TCP fallback.
func Dial(ctx context.Context, addr, alpn string, clientKey ed25519.PrivateKey) (Conn, error) {
	return (&Dialer{Key: clientKey}).Dial(ctx, addr, alpn)
}

// Dial connects to addr on alpn. It fails closed when the server's key is not the one
// the address pins.
func (d *Dialer) Dial(ctx context.Context, addr, alpn string) (Conn, error) {
	pin, hostport, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := d.tlsConfig(pin, alpn)
	if err != nil {
		return nil, err
	}
	switch d.Transport {
	case TransportQUIC:
		return d.dialQUIC(ctx, hostport, tlsCfg, pin, 0)
	case TransportTCP:
		return d.dialTCP(ctx, hostport, tlsCfg, pin)
	case "":
		wait := d.FallbackAfter
		if wait <= 0 {
			wait = 2 * time.Second
		}
		c, qerr := d.dialQUIC(ctx, hostport, tlsCfg, pin, wait)
		if qerr == nil || errors.Is(qerr, ErrIdentityMismatch) || errors.Is(qerr, ErrTooManyConnections) ||
			ctx.Err() != nil || refusedInHandshake(qerr) {
			return c, qerr
		}
		c, terr := d.dialTCP(ctx, hostport, tlsCfg, pin)
		if terr != nil {
			return nil, fmt.Errorf("core: dial %s: QUIC: %v; TCP: %w", hostport, qerr, terr)
		}
		return c, nil
	}
	return nil, fmt.Errorf("core: transport %q: want %q or %q", d.Transport, TransportQUIC, TransportTCP)
}

func (d *Dialer) tlsConfig(pin ed25519.PublicKey, alpn string) (*tls.Config, error) {
	curves, err := curvePreferences(d.KeyExchange)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: curves,
		ServerName:       string(NodeIDOf(pin)),
		NextProtos:       []string{alpn},
		// The chain is not checked against CAs: the pinned key is the trust anchor, and
		// VerifyConnection checks it. The handshake proves the server holds that key.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrIdentityMismatch
			}
			got, ok := cs.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
			if !ok || !bytes.Equal(got, pin) {
				return ErrIdentityMismatch
			}
			if cs.NegotiatedProtocol != alpn {
				return fmt.Errorf("core: server did not agree to ALPN %q", alpn)
			}
			return nil
		},
	}
	if d.Key != nil {
		// The certificate is made once per Dialer: signing one costs as much as a
		// handshake signature.
		d.certOnce.Do(func() {
			if err := ValidKey(d.Key); err != nil {
				d.certErr = fmt.Errorf("core: Dialer.Key: %w", err)
				return
			}
			d.cert, d.certErr = SelfSignedCertificate(d.Key)
		})
		if d.certErr != nil {
			return nil, d.certErr
		}
		cfg.Certificates = []tls.Certificate{d.cert}
	}
	return cfg, nil
}

func (d *Dialer) dialQUIC(ctx context.Context, hostport string, tlsCfg *tls.Config, pin ed25519.PublicKey, handshakeTimeout time.Duration) (Conn, error) {
	keepAlive := d.KeepAlive
	if keepAlive == 0 {
		keepAlive = 15 * time.Second
	} else if keepAlive < 0 {
		keepAlive = 0
	}
	qcfg := &quic.Config{
		HandshakeIdleTimeout:             handshakeTimeout,
		KeepAlivePeriod:                  keepAlive,
		EnableDatagrams:                  true,
		EnableStreamResetPartialDelivery: true,
	}
	qc, err := quic.DialAddr(ctx, hostport, tlsCfg, qcfg)
	if err != nil {
		var appErr *quic.ApplicationError
		if errors.As(err, &appErr) && appErr.Remote && uint64(appErr.ErrorCode) == CodeLimit {
			return nil, fmt.Errorf("%w (QUIC %s: %w)", ErrTooManyConnections, hostport, err)
		}
		return nil, err
	}
	return &quicConn{qc: qc, alpn: tlsCfg.NextProtos[0], peer: newLivePeer(Peer{RemoteAddr: qc.RemoteAddr(), PublicKey: pin})}, nil
}

func (d *Dialer) dialTCP(ctx context.Context, hostport string, tlsCfg *tls.Config, pin ed25519.PublicKey) (Conn, error) {
	td := tls.Dialer{NetDialer: &net.Dialer{KeepAlive: 15 * time.Second}, Config: tlsCfg}
	nc, err := td.DialContext(ctx, "tcp", hostport)
	if err != nil {
		if refusedForLimit(err) {
			return nil, fmt.Errorf("%w (TCP %s: %w)", ErrTooManyConnections, hostport, err)
		}
		return nil, err
	}
	tc := nc.(*tls.Conn)
	return NewStreamConn(connStream{tc}, tlsCfg.NextProtos[0], Peer{RemoteAddr: tc.RemoteAddr(), PublicKey: pin}, TransportTCP), nil
}

// accessDenied is the error text crypto/tls gives a received access_denied alert. The
// alert's own type is unexported and a TCP handshake does not wrap [tls.AlertError],
// so the text is compared, taken from crypto/tls itself rather than written out.
var accessDenied = tls.AlertError(49).Error()

// refusedForLimit reports whether a TLS/TCP dial failed on the access_denied alert an
// endpoint sends in place of a ServerHello when the client's address is over its
// connection limit (crypto/tls never sends that alert on its own).
func refusedForLimit(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error" && op.Err != nil && op.Err.Error() == accessDenied
}

// refusedInHandshake reports whether the server answered over QUIC and refused the
// handshake with a TLS alert (such as no_application_protocol): the node is reachable
// over UDP, so trying TCP would only repeat the refusal.
func refusedInHandshake(err error) bool {
	var te *quic.TransportError
	return errors.As(err, &te) && te.ErrorCode >= 0x100 && te.ErrorCode <= 0x1ff
}
