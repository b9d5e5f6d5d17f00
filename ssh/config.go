package ssh

import (
	"bufio"
	"fmt"
	"os"
	"os/user"
	"path"
	"strings"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/ssh/forward"
)

// Config is the [ssh] section of the node's configuration. The zero value is the
// default: no plain TCP listener, exec allowed to peers holding "ssh:exec", shell and
// PTY refused, commands run by /bin/sh in the server user's home folder.
type Config struct {
	// Listen is the address of an optional plain TCP SSH listener, such as
	// "127.0.0.1:2222", so that "ssh -p 2222 host" works without a ProxyCommand. Empty
	// (the default) means none: SSH is served only on the alknet/ssh ALPN.
	Listen string `toml:"listen"`
	// HostKeyFile is the Ed25519 host key, relative to the data folder; created on first
	// run. Default "ssh_host_ed25519_key".
	HostKeyFile string `toml:"host_key_file"`
	// Shell allows the "shell", "pty-req", "window-change" and "signal" requests to
	// peers holding "ssh:shell". Default false: they are refused.
	Shell bool `toml:"shell"`
	// Command is the program that runs an exec request as `Command -c '<command>'`.
	// Default "/bin/sh".
	Command string `toml:"command"`
	// LoginShell is the program started for a "shell" request. Default: the server
	// user's login shell from /etc/passwd, else $SHELL, else /bin/sh.
	LoginShell string `toml:"login_shell"`
	// Dir is the working directory of commands and shells. Default: the server user's
	// home folder.
	Dir string `toml:"dir"`
	// Env lists the environment variables a client may set with "env" requests; a
	// trailing "*" matches a prefix ("LC_*"). Nil means the default
	// ["LANG", "LC_*", "TZ", "COLORTERM"]; an empty list allows none.
	Env []string `toml:"env"`
	// MaxAuthTries is the number of failed authentication attempts after which the
	// connection is dropped. Default 6; negative means unlimited.
	MaxAuthTries int `toml:"max_auth_tries"`
	// MaxStartups is the number of SSH handshakes (key exchange and authentication) the
	// server runs at once, over every transport together, like OpenSSH's MaxStartups.
	// Each alknet/ssh stream is a handshake of its own, so without a cap one address
	// could hold thousands; a handshake beyond it is closed at once, before any SSH
	// state is set up, and logged. Default 64; negative means no limit.
	MaxStartups int `toml:"max_startups"`
	// MaxStartupsPerConn is the number of handshakes one alknet/ssh connection (QUIC or
	// TLS) may run at once; a stream beyond it is closed at once. Default 4; negative
	// means no limit. The plain TCP listener carries one handshake per connection.
	MaxStartupsPerConn int `toml:"max_startups_per_conn"`
	// LoginGraceTime is how long a client has to finish the handshake and authenticate
	// (OpenSSH's LoginGraceTime). Default 120s, as OpenSSH's: a person may be answering
	// a first-time host-key prompt or typing a key passphrase meanwhile, and the
	// MaxStartups caps bound what slow handshakes cost. A client dropped for exceeding
	// it is logged (at info, "timeout before authentication", at most one line a
	// second).
	LoginGraceTime core.Duration `toml:"login_grace_time"`
	// HangupGrace is how long the processes of a session get after SIGHUP (the client
	// vanished, or the program ended leaving background jobs) before what is left of
	// the session is killed. Default 2s.
	HangupGrace core.Duration `toml:"hangup_grace"`
	// Forward is the [ssh.forward] section: port-forwarding rules and limits (layer 5,
	// package ssh/forward). The zero value denies every forward.
	Forward forward.Config `toml:"forward"`
}

// Defaults of the handshake limits in [Config].
const (
	DefaultMaxStartups        = 64
	DefaultMaxStartupsPerConn = 4
	DefaultLoginGraceTime     = 120 * time.Second
)

// DefaultEnv is the environment allow-list used when [Config.Env] is nil.
var DefaultEnv = []string{"LANG", "LC_*", "TZ", "COLORTERM"}

// withDefaults returns a copy of c with every default filled in.
func (c Config) withDefaults() Config {
	if c.HostKeyFile == "" {
		c.HostKeyFile = "ssh_host_ed25519_key"
	}
	if c.Command == "" {
		c.Command = "/bin/sh"
	}
	if c.LoginShell == "" {
		c.LoginShell = loginShell()
	}
	if c.Dir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			c.Dir = home
		} else {
			c.Dir = "/"
		}
	}
	if c.Env == nil {
		c.Env = DefaultEnv
	}
	if c.MaxAuthTries == 0 {
		c.MaxAuthTries = 6
	}
	if c.MaxStartups == 0 {
		c.MaxStartups = DefaultMaxStartups
	}
	if c.MaxStartupsPerConn == 0 {
		c.MaxStartupsPerConn = DefaultMaxStartupsPerConn
	}
	if c.LoginGraceTime <= 0 {
		c.LoginGraceTime = core.Duration(DefaultLoginGraceTime)
	}
	if c.HangupGrace <= 0 {
		c.HangupGrace = core.Duration(2 * time.Second)
	}
	return c
}

// Validate reports a setting that cannot work.
func (c Config) Validate() error {
	d := c.withDefaults()
	for _, p := range []struct{ key, v string }{{"command", d.Command}, {"login_shell", d.LoginShell}, {"dir", d.Dir}} {
		if !path.IsAbs(p.v) {
			return fmt.Errorf("ssh: %s %q must be an absolute path", p.key, p.v)
		}
	}
	for _, e := range d.Env {
		name := strings.TrimSuffix(e, "*")
		if name == "" && e != "*" || strings.ContainsAny(name, "=*\x00") {
			return fmt.Errorf("ssh: env pattern %q: want a variable name, optionally ending in *", e)
		}
	}
	return nil
}

// envAllowed reports whether the allow-list admits the variable name.
func envAllowed(allow []string, name string) bool {
	if name == "" || strings.ContainsAny(name, "=\x00") {
		return false
	}
	for _, a := range allow {
		if p, ok := strings.CutSuffix(a, "*"); ok {
			if strings.HasPrefix(name, p) {
				return true
			}
		} else if a == name {
			return true
		}
	}
	return false
}

// loginShell returns the server user's login shell.
func loginShell() string {
	if u, err := user.Current(); err == nil {
		if f, err := os.Open("/etc/passwd"); err == nil {
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				fields := strings.Split(sc.Text(), ":")
				if len(fields) == 7 && fields[0] == u.Username && path.IsAbs(fields[6]) {
					return fields[6]
				}
			}
		}
	}
	if s := os.Getenv("SHELL"); path.IsAbs(s) {
		return s
	}
	return "/bin/sh"
}
