package vault

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
)

// ed25519Curve is the SLIP-0010 HMAC key for the ed25519 master key.
var ed25519Curve = []byte("ed25519 seed")

// Ed25519Key is a key derived by SLIP-0010 for Ed25519.
//
// PrivateKey is the 32-byte RFC 8032 private key (the "seed" in Go's crypto/ed25519),
// so ed25519.NewKeyFromSeed(k.PrivateKey.Bytes()) gives exactly PublicKey. ChainCode is
// the 32-byte chain code. Both are secrets; Wipe zeroes them. Printed or as JSON, the
// key shows only its path and public key.
type Ed25519Key struct {
	Path       Path
	PrivateKey Secret
	ChainCode  Secret
	PublicKey  ed25519.PublicKey
}

// Signer returns the key as a crypto/ed25519 private key (seed and public key, 64
// bytes). It is a new copy: wipe it with [Wipe] when done.
func (k *Ed25519Key) Signer() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(k.PrivateKey.Bytes())
}

// Clone returns an independent copy.
func (k *Ed25519Key) Clone() *Ed25519Key {
	return &Ed25519Key{
		Path:       append(Path(nil), k.Path...),
		PrivateKey: k.PrivateKey.Clone(),
		ChainCode:  k.ChainCode.Clone(),
		PublicKey:  append(ed25519.PublicKey(nil), k.PublicKey...),
	}
}

// Wipe zeroes the private key and chain code.
func (k *Ed25519Key) Wipe() {
	if k == nil {
		return
	}
	k.PrivateKey.Wipe()
	k.ChainCode.Wipe()
}

// String shows the path and the public key, never the secrets.
func (k *Ed25519Key) String() string {
	return fmt.Sprintf("ed25519 key %s public %x private %s", k.Path, []byte(k.PublicKey), redacted)
}

// Format prints String for every verb.
func (k *Ed25519Key) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// DeriveEd25519 derives the Ed25519 key at path from a BIP39 seed (16 to 64 bytes),
// following SLIP-0010: the master key is HMAC-SHA512(key "ed25519 seed", seed), and each
// child i is HMAC-SHA512(key chain code, 0x00 || parent key || i as 4 bytes big endian).
// Every index must be hardened; an unhardened one is a *PathError with
// [ErrNotHardened].
func DeriveEd25519(seed []byte, path Path) (*Ed25519Key, error) {
	if len(seed) < 16 || len(seed) > 64 {
		return nil, fmt.Errorf("vault: seed is %d bytes; want 16 to 64", len(seed))
	}
	if len(path) > maxDepth {
		return nil, &PathError{Path: "(too long)", Reason: fmt.Sprintf("deeper than %d levels", maxDepth)}
	}
	if err := path.checkHardened(); err != nil {
		return nil, err
	}
	var I [64]byte
	mac := hmac.New(sha512.New, ed25519Curve)
	mac.Write(seed)
	mac.Sum(I[:0])
	var data [1 + 32 + 4]byte
	for _, idx := range path {
		data[0] = 0
		copy(data[1:33], I[:32])
		binary.BigEndian.PutUint32(data[33:], idx)
		mac = hmac.New(sha512.New, I[32:])
		mac.Write(data[:])
		mac.Sum(I[:0])
	}
	Wipe(data[:])
	k := &Ed25519Key{
		Path:       append(Path{}, path...),
		PrivateKey: NewSecret(append([]byte(nil), I[:32]...)),
		ChainCode:  NewSecret(append([]byte(nil), I[32:]...)),
	}
	Wipe(I[:])
	priv := ed25519.NewKeyFromSeed(k.PrivateKey.Bytes())
	k.PublicKey = append(ed25519.PublicKey(nil), priv[32:]...)
	Wipe(priv)
	return k, nil
}
