package core

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"
)

// zbase32 is the z-base-32 alphabet used by pkarr and iroh for node IDs.
var zbase32 = base32.NewEncoding("ybndrfg8ejkmcpqxot1uwisza345h769").WithPadding(base32.NoPadding)

// NodeIDLen is the length of a node ID in characters.
const NodeIDLen = 52

// NodeID is the z-base-32 form of an Ed25519 public key: 52 characters, safe as a DNS
// label.
type NodeID string

// NodeIDOf returns the node ID of an Ed25519 public key.
func NodeIDOf(pub ed25519.PublicKey) NodeID {
	return NodeID(zbase32.EncodeToString(pub))
}

// ParseNodeID decodes a node ID into the public key it names.
func ParseNodeID(s string) (ed25519.PublicKey, error) {
	if len(s) != NodeIDLen {
		return nil, fmt.Errorf("core: node ID %q: want %d z-base-32 characters, got %d", s, NodeIDLen, len(s))
	}
	b, err := zbase32.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("core: node ID %q is not z-base-32", s)
	}
	// The last character carries 4 unused bits; refuse encodings where they are set, so
	// one key has exactly one node ID.
	if string(NodeIDOf(b)) != s {
		return nil, fmt.Errorf("core: node ID %q is not canonical z-base-32", s)
	}
	return ed25519.PublicKey(b), nil
}

// String returns the node ID itself.
func (id NodeID) String() string { return string(id) }

// PublicKey returns the key the node ID names.
func (id NodeID) PublicKey() (ed25519.PublicKey, error) { return ParseNodeID(string(id)) }

// GenerateKey returns a new Ed25519 private key from the system's secure random source.
func GenerateKey() ed25519.PrivateKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic("core: no secure random source: " + err.Error())
	}
	return priv
}

// ErrInvalidKey is wrapped by the error of every function that is given a private key
// that is not a usable Ed25519 private key.
var ErrInvalidKey = errors.New("core: not a valid Ed25519 private key")

// ValidKey returns nil if key is a usable Ed25519 private key: 64 bytes, seed then the
// public key derived from it. Otherwise it returns an error wrapping [ErrInvalidKey].
// Check keys with it where they enter, because crypto/ed25519 panics on a key of the
// wrong length, and a public half that does not match the seed signs handshakes that
// the other side then rejects for no visible reason.
func ValidKey(key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrInvalidKey, len(key), ed25519.PrivateKeySize)
	}
	if !bytes.Equal(ed25519.NewKeyFromSeed(key.Seed())[ed25519.SeedSize:], key[ed25519.SeedSize:]) {
		return fmt.Errorf("%w: its public half does not match its seed", ErrInvalidKey)
	}
	return nil
}

// WriteKeyFile writes key to path in OpenSSH private-key format with mode 0600, so the
// same file works with `ssh -i`. It refuses to replace an existing file, and a key
// [ValidKey] rejects.
func WriteKeyFile(path string, key ed25519.PrivateKey, comment string) error {
	if err := ValidKey(key); err != nil {
		return fmt.Errorf("core: write key %s: %w", path, err)
	}
	block, err := ssh.MarshalPrivateKey(key, comment)
	if err != nil {
		return fmt.Errorf("core: encode key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("core: key folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("core: write key: %w", err)
	}
	if _, err := f.Write(pem.EncodeToMemory(block)); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("core: write key %s: %w", path, err)
	}
	return f.Close()
}

// ReadKeyFile reads an Ed25519 private key in OpenSSH or PKCS#8 PEM format. It refuses
// a file that others can read.
func ReadKeyFile(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("core: read key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("core: key file %s has mode %v; it must not be readable by others (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("core: read key: %w", err)
	}
	return ParseKey(b)
}

// ParseKey decodes an Ed25519 private key in OpenSSH or PKCS#8 PEM format.
func ParseKey(b []byte) (ed25519.PrivateKey, error) {
	raw, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("core: parse key: %w", err)
	}
	var key ed25519.PrivateKey
	switch k := raw.(type) {
	case ed25519.PrivateKey:
		key = k
	case *ed25519.PrivateKey:
		key = *k
	default:
		return nil, fmt.Errorf("core: key is %T, want Ed25519", raw)
	}
	if err := ValidKey(key); err != nil {
		return nil, fmt.Errorf("core: parse key: %w", err)
	}
	return key, nil
}

// LoadOrCreateKey reads the key at path, creating it first if it does not exist.
func LoadOrCreateKey(path, comment string) (ed25519.PrivateKey, error) {
	key, err := ReadKeyFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key = GenerateKey()
		if err := WriteKeyFile(path, key, comment); err != nil {
			if errors.Is(err, os.ErrExist) { // lost a race with another process
				return ReadKeyFile(path)
			}
			return nil, err
		}
		return key, nil
	}
	return key, err
}

// SelfSignedCertificate returns a TLS certificate carrying key's public key, signed by
// key itself. The certificate is only a carrier: trust comes from the key, never from
// the certificate or its hash. A key [ValidKey] rejects is an error.
func SelfSignedCertificate(key ed25519.PrivateKey) (tls.Certificate, error) {
	if err := ValidKey(key); err != nil {
		return tls.Certificate{}, fmt.Errorf("core: self-signed certificate: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	id := NodeIDOf(pub)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: string(id)},
		DNSNames:              []string{string(id)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("core: self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// certificateKey returns the Ed25519 key of a presented certificate chain. The TLS
// handshake has already proven that the other side holds the matching private key.
func certificateKey(rawCerts [][]byte) (ed25519.PublicKey, error) {
	if len(rawCerts) == 0 {
		return nil, nil
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return nil, fmt.Errorf("core: bad certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("core: certificate key is %T, want Ed25519", cert.PublicKey)
	}
	return pub, nil
}

// Fingerprint returns the OpenSSH SHA256 fingerprint of a public key, the form used in
// logs. It returns "none" for a nil key.
func Fingerprint(pub crypto.PublicKey) string {
	if pub == nil {
		return "none"
	}
	if k, ok := pub.(ssh.PublicKey); ok {
		return ssh.FingerprintSHA256(k)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "unknown"
	}
	return ssh.FingerprintSHA256(k)
}
