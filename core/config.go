package core

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"
)

// Limits bound what one client can take from an endpoint. A zero field means its
// default; a negative one means no limit.
type Limits struct {
	// MaxConnsPerIP caps concurrent connections from one IP address (for IPv6, one /64
	// network; see [LimitKey]), over both transports together. Default 64. Over TLS/TCP a client beyond it is refused
	// before the handshake with a TLS access_denied alert, which [Dialer.Dial] reports
	// as [ErrTooManyConnections]; over QUIC, whose source address is trusted only after
	// the handshake, the connection is closed right after it with [CodeLimit].
	MaxConnsPerIP int `toml:"max_conns_per_ip"`
	// MaxStreamsPerConn caps concurrent streams a client may open on one QUIC
	// connection. Default 256.
	MaxStreamsPerConn int `toml:"max_streams_per_conn"`
	// HandshakeTimeout bounds the TLS handshake. Default 10s.
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	// IdleTimeout closes a QUIC connection that has heard nothing for this long; TCP
	// connections use keep-alive probes at this period. Default 60s.
	IdleTimeout Duration `toml:"idle_timeout"`
}

// Default limits.
const (
	DefaultMaxConnsPerIP     = 64
	DefaultMaxStreamsPerConn = 256
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
)

func (l Limits) withDefaults() Limits {
	if l.MaxConnsPerIP == 0 {
		l.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if l.MaxStreamsPerConn == 0 {
		l.MaxStreamsPerConn = DefaultMaxStreamsPerConn
	}
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = Duration(DefaultHandshakeTimeout)
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = Duration(DefaultIdleTimeout)
	}
	return l
}

// Duration is a time.Duration written in config as a string such as "10s" or "1m30s".
type Duration time.Duration

// UnmarshalText parses a duration such as "10s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q (write it like \"10s\" or \"2m\")", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Key-exchange settings.
const (
	// KeyExchangeHybrid offers X25519MLKEM768 first, then X25519: post-quantum safety for
	// about 1 KiB more in each handshake direction and a little CPU. The default.
	KeyExchangeHybrid = "hybrid"
	// KeyExchangeClassic offers X25519 only: the cheapest handshake, without protection
	// against a future quantum adversary recording traffic today.
	KeyExchangeClassic = "classic"
)

func curvePreferences(kx string) ([]tls.CurveID, error) {
	switch kx {
	case "", KeyExchangeHybrid:
		return []tls.CurveID{tls.X25519MLKEM768, tls.X25519}, nil
	case KeyExchangeClassic:
		return []tls.CurveID{tls.X25519}, nil
	}
	return nil, fmt.Errorf("core: key exchange %q: want %q or %q", kx, KeyExchangeHybrid, KeyExchangeClassic)
}

// LogAuth writes the one fixed authentication line that fail2ban filters match:
//
//	level=INFO msg=auth result=<accepted|rejected|unknown-key|no-key> remote=<ip:port> key=<SHA256:...> peer=<name> service=<alpn> transport=<name>
//
// Every module logs authentication through it, so the line never drifts.
func LogAuth(log *slog.Logger, result, remote, keyFingerprint, peer, service, transport string) {
	if peer == "" {
		peer = "-"
	}
	log.Info("auth", "result", result, "remote", remote, "key", keyFingerprint, "peer", peer, "service", service, "transport", transport)
}

// Authentication results for [LogAuth].
const (
	AuthAccepted   = "accepted"
	AuthRejected   = "rejected"
	AuthUnknownKey = "unknown-key"
	AuthNoKey      = "no-key"
)
