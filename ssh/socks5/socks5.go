package socks5

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// Version is the SOCKS protocol version this package speaks.
const Version = 5

// Authentication methods (RFC 1928 section 3).
const (
	MethodNoAuth       byte = 0x00
	MethodNoAcceptable byte = 0xFF
)

// Commands (RFC 1928 section 4).
const (
	CmdConnect      byte = 0x01
	CmdBind         byte = 0x02
	CmdUDPAssociate byte = 0x03
)

// Address types.
const (
	AddrIPv4   byte = 0x01
	AddrDomain byte = 0x03
	AddrIPv6   byte = 0x04
)

// Reply is a reply code (RFC 1928 section 6).
type Reply byte

// Reply codes.
const (
	Succeeded               Reply = 0x00
	GeneralFailure          Reply = 0x01
	NotAllowed              Reply = 0x02 // connection not allowed by ruleset
	NetworkUnreachable      Reply = 0x03
	HostUnreachable         Reply = 0x04
	ConnectionRefused       Reply = 0x05
	TTLExpired              Reply = 0x06
	CommandNotSupported     Reply = 0x07
	AddressTypeNotSupported Reply = 0x08
)

var replyText = map[Reply]string{
	Succeeded:               "succeeded",
	GeneralFailure:          "general SOCKS server failure",
	NotAllowed:              "connection not allowed by ruleset",
	NetworkUnreachable:      "network unreachable",
	HostUnreachable:         "host unreachable",
	ConnectionRefused:       "connection refused",
	TTLExpired:              "TTL expired",
	CommandNotSupported:     "command not supported",
	AddressTypeNotSupported: "address type not supported",
}

func (r Reply) String() string {
	if s, ok := replyText[r]; ok {
		return s
	}
	return fmt.Sprintf("reply 0x%02x", byte(r))
}

// Errors the parsers return. Each wraps [ErrProtocol] except io errors from the reader.
var (
	// ErrProtocol is wrapped by every malformed-input error.
	ErrProtocol = errors.New("socks5: protocol error")
	// ErrVersion: the client does not speak SOCKS5.
	ErrVersion = fmt.Errorf("%w: not SOCKS version 5", ErrProtocol)
	// ErrNoMethods: a greeting without any authentication method.
	ErrNoMethods = fmt.Errorf("%w: no authentication methods offered", ErrProtocol)
	// ErrAddrType: an address type other than IPv4, domain or IPv6.
	ErrAddrType = fmt.Errorf("%w: unknown address type", ErrProtocol)
	// ErrDomain: an empty domain name or one holding a NUL byte.
	ErrDomain = fmt.Errorf("%w: bad domain name", ErrProtocol)
	// ErrReserved: the reserved byte of a request is not zero.
	ErrReserved = fmt.Errorf("%w: reserved byte is not zero", ErrProtocol)
)

// ReadGreeting reads the client's method-selection message and returns the methods it
// offers.
func ReadGreeting(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	if hdr[0] != Version {
		return nil, ErrVersion
	}
	if hdr[1] == 0 {
		return nil, ErrNoMethods
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(r, methods); err != nil {
		return nil, unexpected(err)
	}
	return methods, nil
}

// Request is a SOCKS5 request: a command and its destination.
type Request struct {
	// Command is CmdConnect, CmdBind or CmdUDPAssociate (or another byte the client
	// sent; the server answers CommandNotSupported).
	Command byte
	// AddrType is AddrIPv4, AddrDomain or AddrIPv6.
	AddrType byte
	// Host is the destination: an IP address in text form, or a domain name exactly as
	// the client sent it (never resolved here).
	Host string
	// Port is the destination port.
	Port uint16
}

// Address returns host:port, with IPv6 in brackets.
func (r Request) Address() string {
	if r.AddrType == AddrIPv6 {
		return "[" + r.Host + "]:" + strconv.Itoa(int(r.Port))
	}
	return r.Host + ":" + strconv.Itoa(int(r.Port))
}

// ReadRequest reads one request. A request whose address type is unknown returns
// [ErrAddrType] with the command filled in, so the caller can answer
// AddressTypeNotSupported.
func ReadRequest(r io.Reader) (Request, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Request{}, err
	}
	if hdr[0] != Version {
		return Request{}, ErrVersion
	}
	req := Request{Command: hdr[1], AddrType: hdr[3]}
	if hdr[2] != 0 {
		return req, ErrReserved
	}
	switch req.AddrType {
	case AddrIPv4:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return req, unexpected(err)
		}
		req.Host = netip.AddrFrom4(b).String()
	case AddrIPv6:
		var b [16]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return req, unexpected(err)
		}
		req.Host = netip.AddrFrom16(b).String()
	case AddrDomain:
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return req, unexpected(err)
		}
		b := make([]byte, n[0])
		if _, err := io.ReadFull(r, b); err != nil {
			return req, unexpected(err)
		}
		if len(b) == 0 || containsNUL(b) {
			return req, ErrDomain
		}
		req.Host = string(b)
	default:
		return req, ErrAddrType
	}
	var p [2]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		return req, unexpected(err)
	}
	req.Port = binary.BigEndian.Uint16(p[:])
	return req, nil
}

// AppendRequest appends the wire form of req to b. A Host that does not fit its
// AddrType is an error.
func AppendRequest(b []byte, req Request) ([]byte, error) {
	b = append(b, Version, req.Command, 0, req.AddrType)
	switch req.AddrType {
	case AddrIPv4, AddrIPv6:
		a, err := netip.ParseAddr(req.Host)
		if err != nil || req.AddrType == AddrIPv4 && !a.Is4() || req.AddrType == AddrIPv6 && !a.Is6() {
			return nil, fmt.Errorf("socks5: host %q is not an address of type %d", req.Host, req.AddrType)
		}
		b = append(b, a.AsSlice()...)
	case AddrDomain:
		if len(req.Host) == 0 || len(req.Host) > 255 {
			return nil, fmt.Errorf("socks5: domain name length %d: want 1 to 255", len(req.Host))
		}
		b = append(b, byte(len(req.Host)))
		b = append(b, req.Host...)
	default:
		return nil, fmt.Errorf("socks5: address type %d", req.AddrType)
	}
	return binary.BigEndian.AppendUint16(b, req.Port), nil
}

// WriteReply writes a reply with the bound address bind (use the zero AddrPort for
// 0.0.0.0:0).
func WriteReply(w io.Writer, code Reply, bind netip.AddrPort) error {
	b := []byte{Version, byte(code), 0}
	a := bind.Addr().Unmap()
	switch {
	case a.Is6():
		b = append(b, AddrIPv6)
		b = append(b, a.AsSlice()...)
	case a.Is4():
		b = append(b, AddrIPv4)
		b = append(b, a.AsSlice()...)
	default:
		b = append(b, AddrIPv4, 0, 0, 0, 0)
	}
	b = binary.BigEndian.AppendUint16(b, bind.Port())
	_, err := w.Write(b)
	return err
}

// ReadReply reads a server's reply (the client side, for tests and tools).
func ReadReply(r io.Reader) (Reply, netip.AddrPort, error) {
	req, err := ReadRequest(r) // a reply has the request's shape, the code in place of the command
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	if req.AddrType == AddrDomain {
		return Reply(req.Command), netip.AddrPort{}, nil
	}
	return Reply(req.Command), netip.AddrPortFrom(netip.MustParseAddr(req.Host), req.Port), nil
}

func containsNUL(b []byte) bool {
	for _, c := range b {
		if c == 0 {
			return true
		}
	}
	return false
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
