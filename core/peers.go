package core

import (
	"crypto"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
)

// PeerConfig is one entry of the peer list.
type PeerConfig struct {
	// Name identifies the peer in logs and access rules. Required and unique.
	Name string `toml:"name"`
	// Keys are node IDs or OpenSSH public-key lines ("ssh-ed25519 AAAA... comment").
	Keys []string `toml:"keys"`
	// Scopes the peer holds, such as "ssh:exec"; "*" is everything.
	Scopes []string `toml:"scopes"`
}

// Peers is the list of known peers. Lookups are lock-free, and [Peers.Update] swaps in a
// new list atomically: later lookups see it at once. The zero value is an empty list in
// which every key is anonymous; so is a nil *Peers for every read method (Resolve, Len),
// though it cannot be updated.
type Peers struct {
	byKey atomic.Pointer[map[string]*Identity]
}

// NewPeers builds a peer list. It fails on a bad key, a duplicate name or a key listed
// twice.
func NewPeers(list []PeerConfig) (*Peers, error) {
	p := new(Peers)
	if err := p.Update(list); err != nil {
		return nil, err
	}
	return p, nil
}

// Update replaces the list. On error the old list stays in force. Update on a nil
// *Peers is an error: there is no list to replace.
func (p *Peers) Update(list []PeerConfig) error {
	if p == nil {
		return errors.New("core: Peers.Update on a nil *Peers (use NewPeers or new(core.Peers))")
	}
	m, err := buildPeers(list)
	if err != nil {
		return err
	}
	p.byKey.Store(&m)
	return nil
}

func buildPeers(list []PeerConfig) (map[string]*Identity, error) {
	m := make(map[string]*Identity)
	names := make(map[string]bool)
	for i, pc := range list {
		if pc.Name == "" {
			return nil, fmt.Errorf("core: peer %d has no name", i+1)
		}
		if names[pc.Name] {
			return nil, fmt.Errorf("core: peer %q is listed twice", pc.Name)
		}
		names[pc.Name] = true
		id := &Identity{Name: pc.Name, Scopes: append([]string(nil), pc.Scopes...)}
		for _, k := range pc.Keys {
			pub, err := ParsePeerKey(k)
			if err != nil {
				return nil, fmt.Errorf("core: peer %q: %w", pc.Name, err)
			}
			wire := string(pub.Marshal())
			if other, dup := m[wire]; dup {
				return nil, fmt.Errorf("core: peer %q: key already belongs to peer %q", pc.Name, other.Name)
			}
			m[wire] = id
		}
	}
	return m, nil
}

// ParsePeerKey parses a node ID or an OpenSSH public-key line.
func ParsePeerKey(s string) (ssh.PublicKey, error) {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, " \t") && len(s) == NodeIDLen {
		pub, err := ParseNodeID(s)
		if err != nil {
			return nil, err
		}
		return ssh.NewPublicKey(pub)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("key %q is neither a node ID nor an OpenSSH public-key line: %w", truncate(s, 40), err)
	}
	return pub, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Resolve returns the identity that holds key, or nil (anonymous). key may be an
// ed25519.PublicKey, any key crypto/x509 returns, or an ssh.PublicKey. On a nil *Peers
// every key is anonymous.
func (p *Peers) Resolve(key crypto.PublicKey) *Identity {
	if p == nil || key == nil {
		return nil
	}
	m := p.byKey.Load()
	if m == nil {
		return nil
	}
	sk, ok := key.(ssh.PublicKey)
	if !ok {
		var err error
		if sk, err = ssh.NewPublicKey(key); err != nil {
			return nil
		}
	}
	return (*m)[string(sk.Marshal())]
}

// Len returns the number of keys in the list; 0 for a nil *Peers.
func (p *Peers) Len() int {
	if p == nil {
		return 0
	}
	if m := p.byKey.Load(); m != nil {
		return len(*m)
	}
	return 0
}
