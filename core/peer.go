package core

import (
	"crypto"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
)

// Peer describes the other side of a connection.
type Peer struct {
	// RemoteAddr is the network address of the other side; nil when unknown.
	RemoteAddr net.Addr
	// PublicKey is the key the other side proved in the handshake (an
	// ed25519.PublicKey for alknet clients), or nil if it showed none.
	PublicKey crypto.PublicKey
	// Identity is what PublicKey resolved to in the peer list; nil means anonymous. On
	// a connection an [Endpoint] accepted, it follows reloads of the peer list that
	// keep or widen the peer's access (see [Endpoint]); a Peer value already taken from
	// [Conn.Peer] does not change.
	Identity *Identity
}

// livePeer is the Peer of a connection whose identity an [Endpoint] may replace after a
// reload of the peer list. RemoteAddr and PublicKey never change; Identity is read and
// swapped atomically, so Conn.Peer is safe to call from any goroutine.
type livePeer struct {
	addr net.Addr
	key  crypto.PublicKey
	id   atomic.Pointer[Identity]
}

func newLivePeer(p Peer) *livePeer {
	lp := &livePeer{addr: p.RemoteAddr, key: p.PublicKey}
	lp.id.Store(p.Identity)
	return lp
}

func (lp *livePeer) peer() Peer {
	return Peer{RemoteAddr: lp.addr, PublicKey: lp.key, Identity: lp.id.Load()}
}

// AccessLost says how next, the identity a connection's key resolves to after a peer
// list reload, falls short of id, the identity the connection holds: "" if next keeps
// id's name and grants every scope id holds ("*" grants all). A changed name counts
// as a loss: access rules and logs name the peer. Handlers that resolve keys
// themselves (SSH public-key auth) use it to judge their connections as the endpoint
// judges its own.
func (id *Identity) AccessLost(next *Identity) string {
	switch {
	case next == nil:
		return fmt.Sprintf("peer %q removed from the peer list", id.Name)
	case next.Name != id.Name:
		return fmt.Sprintf("key now belongs to peer %q", next.Name)
	}
	for _, s := range id.Scopes {
		if s != "" && !next.Allows(s) {
			return fmt.Sprintf("scope %q revoked", s)
		}
	}
	return ""
}

// Anonymous reports whether the peer has no identity.
func (p Peer) Anonymous() bool { return p.Identity == nil }

// Allows reports whether the peer holds scope. An anonymous peer holds none.
func (p Peer) Allows(scope string) bool { return p.Identity.Allows(scope) }

// Name is the identity's name, or "anonymous".
func (p Peer) Name() string {
	if p.Identity == nil {
		return "anonymous"
	}
	return p.Identity.Name
}

// Identity is a named peer and the scopes it holds.
type Identity struct {
	Name   string
	Scopes []string
}

// Scope names used across modules. A handler may add finer scopes under its own
// prefix, such as "ssh:exec:git-upload-pack".
const (
	ScopeAll              = "*"
	ScopeSSHExec          = "ssh:exec"
	ScopeSSHShell         = "ssh:shell"
	ScopeSSHForwardLocal  = "ssh:forward:local"
	ScopeSSHForwardRemote = "ssh:forward:remote"
	ScopeSSHSFTP          = "ssh:sftp"
	ScopeSFTPRead         = "sftp:read"
	ScopeSFTPWrite        = "sftp:write"
	ScopeGitRead          = "git:read"
	ScopeGitWrite         = "git:write"
	ScopeFSRead           = "fs:read"
	ScopeFSWrite          = "fs:write"
	ScopeCall             = "call"
	ScopeMsg              = "msg"
	ScopeDNSUpdate        = "dns:update"
	ScopeAdmin            = "admin"
)

// knownScopes are the scopes modules check; KnownScope accepts them and finer scopes
// below them.
var knownScopes = []string{ScopeSSHExec, ScopeSSHShell, ScopeSSHForwardLocal, ScopeSSHForwardRemote,
	ScopeSSHSFTP, ScopeSFTPRead, ScopeSFTPWrite, ScopeGitRead, ScopeGitWrite, ScopeFSRead,
	ScopeFSWrite, ScopeCall, ScopeMsg, ScopeDNSUpdate, ScopeAdmin}

// KnownScope reports whether scope is "*", a scope some module checks, a finer scope
// under one ("ssh:exec:git-upload-pack"), or a wildcard over a known prefix ("fs:*").
// Tools use it to warn about typing mistakes; Allows does not need it.
func KnownScope(scope string) bool {
	if scope == ScopeAll {
		return true
	}
	return slices.ContainsFunc(knownScopes, func(k string) bool {
		return scope == k || strings.HasPrefix(scope, k+":") ||
			(strings.HasSuffix(scope, ":*") && strings.HasPrefix(k, strings.TrimSuffix(scope, "*")))
	})
}

// Allows reports whether the identity holds scope. A nil identity holds nothing.
//
// A held scope grants itself and every finer scope below it: "ssh:exec" grants
// "ssh:exec:git-upload-pack". "*" grants everything, and "ssh:*" everything under
// "ssh:".
func (id *Identity) Allows(scope string) bool {
	if id == nil || scope == "" {
		return false
	}
	return slices.ContainsFunc(id.Scopes, func(held string) bool { return scopeGrants(held, scope) })
}

func scopeGrants(held, want string) bool {
	switch {
	case held == ScopeAll || held == want:
		return true
	case strings.HasSuffix(held, ":*"):
		return strings.HasPrefix(want, strings.TrimSuffix(held, "*"))
	default:
		return strings.HasPrefix(want, held+":")
	}
}
