package core

import (
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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
//
// Whoever holds on to an identity resolved earlier learns of an Update through
// [Peers.OnUpdate]. An [Endpoint] does so: after every Update it closes the live
// connections whose peer lost a scope or was removed (see [Endpoint]).
type Peers struct {
	byKey atomic.Pointer[map[string]*Identity]

	mu   sync.Mutex // guards subs; never held while a subscriber runs
	subs []*subscriber
}

// subscriber is one OnUpdate registration; stopped keeps a stopped subscriber from
// being called by an Update that copied the list before the stop.
type subscriber struct {
	f       func()
	stopped atomic.Bool
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
	p.notify()
	return nil
}

// OnUpdate registers f to run after every successful [Peers.Update], and returns a
// function that unregisters it. Calling stop more than once is harmless.
//
// f runs synchronously, on the goroutine that called Update, before Update returns and
// after the new list is in force, so f sees it through Resolve. Subscribers run one
// after another in the order they subscribed. No lock of Peers is held while f runs: f
// may call Resolve, Len, OnUpdate or a stop function. Update blocks until every f
// returns, so f should be quick; concurrent Updates may run f concurrently.
//
// After stop returns, no new call of f starts; a call already running finishes. A
// subscriber added while an Update is notifying hears from the next Update on. On a
// nil *Peers, which cannot be updated, f never runs and stop does nothing.
func (p *Peers) OnUpdate(f func()) (stop func()) {
	if p == nil || f == nil {
		return func() {}
	}
	s := &subscriber{f: f}
	p.mu.Lock()
	p.subs = append(p.subs, s)
	p.mu.Unlock()
	return func() {
		if s.stopped.Swap(true) {
			return
		}
		p.mu.Lock()
		p.subs = slices.DeleteFunc(p.subs, func(o *subscriber) bool { return o == s })
		p.mu.Unlock()
	}
}

// notify runs every subscriber, outside the lock.
func (p *Peers) notify() {
	p.mu.Lock()
	subs := slices.Clone(p.subs)
	p.mu.Unlock()
	for _, s := range subs {
		if !s.stopped.Load() {
			s.f()
		}
	}
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
