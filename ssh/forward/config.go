package forward

import (
	"errors"
	"fmt"
	"time"

	"github.com/alkdev/alknet/core"
)

// Config is the [ssh.forward] section: the rule list and the forwarding limits. The zero
// value is the default: every target denied, streamlocal off, the limits below.
//
// In TOML:
//
//	[ssh.forward]
//	default = "deny"
//
//	[[ssh.forward.rules]]
//	action = "allow"
//	target = "127.0.0.1:8000-8999"
//	scopes = ["ssh:forward:local"]
//
//	[[ssh.forward.rules]]
//	action = "deny"
//	target = "10.0.0.0/8"
type Config struct {
	// Default is the action when no rule matches: "deny" (the default) or "allow".
	Default string `toml:"default"`
	// Rules are checked in order; the first rule that matches decides.
	Rules []Rule `toml:"rules"`
	// Streamlocal enables Unix-socket forwarding (direct-streamlocal@openssh.com and
	// streamlocal-forward@openssh.com), checked against rules whose target is a path.
	// Default false: refused whatever the rules say.
	Streamlocal bool `toml:"streamlocal"`
	// MaxChannelsPerSession caps the forwarded channels (either direction) open at once
	// in one SSH connection. Default 128; negative means no limit.
	MaxChannelsPerSession int `toml:"max_channels_per_session"`
	// MaxListenersPerPeer caps the remote-forward listeners (TCP and Unix) one peer holds
	// at once, across all its connections. Default 16; negative means no limit.
	MaxListenersPerPeer int `toml:"max_listeners_per_peer"`
	// DialTimeout bounds one outgoing connection attempt of a local forward. Default 10s.
	DialTimeout core.Duration `toml:"dial_timeout"`
}

// Rule is one entry of the ordered rule list.
//
// Target is one of:
//
//   - "*": any host (not a socket path);
//   - a host name, exact ("db.internal") or with one "*" glob ("*.example.com" matches
//     "a.example.com" and "a.b.example.com" but not "example.com"; "alknet-*");
//   - an IP address or CIDR ("10.0.0.0/8", "::1", "[2001:db8::/32]");
//   - any of the above followed by ":port", ":low-high" (inclusive) or ":*", with IPv6
//     in brackets ("[::1]:22", "127.0.0.1:8000-8999", "*:443");
//   - an absolute socket path, exact or with one "*" glob ("/run/app/*.sock"), for
//     streamlocal forwarding.
//
// A host name rule matches the name the client sent; an address or CIDR rule matches
// the address the client sent or any address the name resolves to, so a name cannot
// dodge an address rule. The optional lists narrow the rule: it applies only to peers
// holding one of Scopes, named in Peers, connected over one of Transports. An empty list
// matches everyone.
//
// A remote forward (tcpip-forward) listens on loopback unless an address or CIDR rule
// allows the address the client asked for; "*", name rules and the default never open a
// non-loopback listener.
type Rule struct {
	// Action is "allow" or "deny".
	Action string `toml:"action"`
	// Target is what the rule matches; see the type comment.
	Target string `toml:"target"`
	// Scopes, when not empty, limits the rule to peers holding one of these scopes.
	Scopes []string `toml:"scopes"`
	// Peers, when not empty, limits the rule to peers with one of these names.
	Peers []string `toml:"peers"`
	// Transports, when not empty, limits the rule to SSH connections carried over one of
	// these transports ("quic", "tcp", ...; the SSH server's transport names).
	Transports []string `toml:"transports"`
}

// Default limits.
const (
	DefaultMaxChannelsPerSession = 128
	DefaultMaxListenersPerPeer   = 16
	DefaultDialTimeout           = 10 * time.Second
)

// Actions.
const (
	ActionAllow = "allow"
	ActionDeny  = "deny"
)

func (c Config) withDefaults() Config {
	if c.Default == "" {
		c.Default = ActionDeny
	}
	if c.MaxChannelsPerSession == 0 {
		c.MaxChannelsPerSession = DefaultMaxChannelsPerSession
	}
	if c.MaxListenersPerPeer == 0 {
		c.MaxListenersPerPeer = DefaultMaxListenersPerPeer
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = core.Duration(DefaultDialTimeout)
	}
	return c
}

// Validate reports the first setting that cannot work, naming the rule by its position
// (1-based, as in the file).
func (c Config) Validate() error {
	_, err := Compile(c)
	return err
}

// ConfigError is returned for a bad [Config]; Rule is the 1-based rule number, 0 when the
// error is not about one rule.
type ConfigError struct {
	Rule int
	Err  error
}

func (e *ConfigError) Error() string {
	if e.Rule == 0 {
		return "ssh.forward: " + e.Err.Error()
	}
	return fmt.Sprintf("ssh.forward.rules[%d]: %v", e.Rule, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

var errAction = errors.New(`action must be "allow" or "deny"`)

func parseAction(s string) (bool, error) {
	switch s {
	case ActionAllow:
		return true, nil
	case ActionDeny:
		return false, nil
	}
	return false, fmt.Errorf("%w, not %q", errAction, s)
}
