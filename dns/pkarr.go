package dns

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/miekg/dns"
)

// pkarr SignedPacket sizes.
const (
	// MaxPacketSize is the largest DNS packet a SignedPacket may carry.
	MaxPacketSize = 1000
	// SignedPacketHeaderSize is the key, signature and timestamp before the packet.
	SignedPacketHeaderSize = ed25519.PublicKeySize + ed25519.SignatureSize + 8
	// MaxRelayPayloadSize is the largest relay body: signature, timestamp and packet.
	MaxRelayPayloadSize = ed25519.SignatureSize + 8 + MaxPacketSize
)

// Errors from decoding and verifying pkarr packets.
var (
	ErrPacketTooLarge   = errors.New("dns: pkarr: DNS packet is larger than 1000 bytes")
	ErrShortPacket      = errors.New("dns: pkarr: signed packet is too short")
	ErrBadSignature     = errors.New("dns: pkarr: signature does not verify for the key")
	ErrBadPublicKey     = errors.New("dns: pkarr: public key must be 32 bytes")
	ErrStalePacket      = errors.New("dns: pkarr: packet is not newer than the one held")
	ErrMalformedPayload = errors.New("dns: pkarr: packet is not a valid DNS message")
)

// SignedPacket is a pkarr record set: a DNS packet signed by an Ed25519 key, with a
// timestamp in microseconds that orders versions. Its canonical encoding is
//
//	public-key (32) || signature (64) || timestamp (8, big-endian µs) || dns-packet (≤ 1000)
//
// and the signature covers the BEP44 form of the timestamp and packet,
// "3:seqi<timestamp>e1:v<len>:<packet>". Record names in the packet are relative to
// the key: "_alknet.<z-base-32 key>." names the "_alknet" record of that key.
type SignedPacket struct {
	PublicKey ed25519.PublicKey
	Signature []byte
	Timestamp uint64 // microseconds since the Unix epoch
	Packet    []byte // the encoded DNS message
}

// Signable returns the bytes a pkarr signature covers: the bencoded BEP44 "seq" and
// "v" of a mutable item, "3:seqi<timestamp>e1:v<len>:<packet>".
func Signable(timestamp uint64, packet []byte) []byte {
	b := make([]byte, 0, len(packet)+32)
	b = append(b, "3:seqi"...)
	b = strconv.AppendUint(b, timestamp, 10)
	b = append(b, "e1:v"...)
	b = strconv.AppendInt(b, int64(len(packet)), 10)
	b = append(b, ':')
	return append(b, packet...)
}

// SignPacket signs an encoded DNS packet with key at timestamp (microseconds; 0 means
// now).
func SignPacket(key ed25519.PrivateKey, packet []byte, timestamp uint64) (*SignedPacket, error) {
	if len(packet) > MaxPacketSize {
		return nil, fmt.Errorf("%w (%d bytes)", ErrPacketTooLarge, len(packet))
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("dns: pkarr: signing key must be an Ed25519 private key")
	}
	if timestamp == 0 {
		timestamp = uint64(time.Now().UnixMicro())
	}
	return &SignedPacket{
		PublicKey: key.Public().(ed25519.PublicKey),
		Signature: ed25519.Sign(key, Signable(timestamp, packet)),
		Timestamp: timestamp,
		Packet:    bytes.Clone(packet),
	}, nil
}

// SignRecords builds a compressed DNS response packet from records and signs it. Owner
// names should be relative to the key, as pkarr wants: see [RelativeName].
func SignRecords(key ed25519.PrivateKey, rrs []dns.RR, timestamp uint64) (*SignedPacket, error) {
	m := new(dns.Msg)
	m.Response = true
	m.Authoritative = true
	m.Compress = true
	m.Answer = rrs
	packet, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("dns: pkarr: encode records: %w", err)
	}
	return SignPacket(key, packet, timestamp)
}

// RelativeName returns the pkarr owner name of label under key: "label.<z32>.", or
// "<z32>." for an empty label or "@".
func RelativeName(key ed25519.PublicKey, label string) string {
	id := string(core.NodeIDOf(key)) + "."
	label = strings.TrimSuffix(label, ".")
	if label == "" || label == "@" {
		return id
	}
	return label + "." + id
}

// ParseSignedPacket decodes the canonical encoding and verifies it: the signature, the
// size limit and that the packet is a DNS message.
func ParseSignedPacket(b []byte) (*SignedPacket, error) {
	if len(b) < SignedPacketHeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrShortPacket, len(b), SignedPacketHeaderSize)
	}
	return ParseRelayPayload(ed25519.PublicKey(b[:ed25519.PublicKeySize]), b[ed25519.PublicKeySize:])
}

// ParseRelayPayload decodes a relay body (signature || timestamp || packet) for key and
// verifies it.
func ParseRelayPayload(key ed25519.PublicKey, payload []byte) (*SignedPacket, error) {
	if len(key) != ed25519.PublicKeySize {
		return nil, ErrBadPublicKey
	}
	if len(payload) < ed25519.SignatureSize+8 {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrShortPacket, len(payload), ed25519.SignatureSize+8)
	}
	sp := &SignedPacket{
		PublicKey: bytes.Clone(key),
		Signature: bytes.Clone(payload[:ed25519.SignatureSize]),
		Timestamp: binary.BigEndian.Uint64(payload[ed25519.SignatureSize:]),
		Packet:    bytes.Clone(payload[ed25519.SignatureSize+8:]),
	}
	if err := sp.Verify(); err != nil {
		return nil, err
	}
	if _, err := sp.Msg(); err != nil {
		return nil, err
	}
	return sp, nil
}

// Verify checks the size limit and the signature. It does not parse the packet.
func (sp *SignedPacket) Verify() error {
	if len(sp.PublicKey) != ed25519.PublicKeySize {
		return ErrBadPublicKey
	}
	if len(sp.Packet) > MaxPacketSize {
		return fmt.Errorf("%w (%d bytes)", ErrPacketTooLarge, len(sp.Packet))
	}
	if len(sp.Signature) != ed25519.SignatureSize || !ed25519.Verify(sp.PublicKey, Signable(sp.Timestamp, sp.Packet), sp.Signature) {
		return ErrBadSignature
	}
	return nil
}

// Bytes returns the canonical encoding: key || signature || timestamp || packet.
func (sp *SignedPacket) Bytes() []byte {
	b := make([]byte, 0, SignedPacketHeaderSize+len(sp.Packet))
	b = append(b, sp.PublicKey...)
	return append(b, sp.RelayPayload()...)
}

// RelayPayload returns the relay HTTP body: signature || timestamp || packet.
func (sp *SignedPacket) RelayPayload() []byte {
	b := make([]byte, 0, ed25519.SignatureSize+8+len(sp.Packet))
	b = append(b, sp.Signature...)
	b = binary.BigEndian.AppendUint64(b, sp.Timestamp)
	return append(b, sp.Packet...)
}

// NodeID is the z-base-32 form of the packet's key, its name in DNS.
func (sp *SignedPacket) NodeID() core.NodeID { return core.NodeIDOf(sp.PublicKey) }

// Time is the packet's timestamp.
func (sp *SignedPacket) Time() time.Time { return time.UnixMicro(int64(sp.Timestamp)) }

// Msg decodes the DNS packet.
func (sp *SignedPacket) Msg() (*dns.Msg, error) {
	m := new(dns.Msg)
	if err := m.Unpack(sp.Packet); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedPayload, err)
	}
	return m, nil
}

// Records returns the packet's answer records whose owner is name ("label.<z32>." or
// "<z32>."), compared without case.
func (sp *SignedPacket) Records(name string) []dns.RR {
	m, err := sp.Msg()
	if err != nil {
		return nil
	}
	name = strings.ToLower(dns.Fqdn(name))
	var out []dns.RR
	for _, rr := range m.Answer {
		if strings.ToLower(rr.Header().Name) == name {
			out = append(out, rr)
		}
	}
	return out
}

// minTTL returns the smallest TTL in the packet's answers, or def when it has none.
func (sp *SignedPacket) minTTL(def uint32) uint32 {
	m, err := sp.Msg()
	if err != nil || len(m.Answer) == 0 {
		return def
	}
	ttl := m.Answer[0].Header().Ttl
	for _, rr := range m.Answer[1:] {
		ttl = min(ttl, rr.Header().Ttl)
	}
	return ttl
}
