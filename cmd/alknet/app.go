package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/alkdev/alknet/core"
)

// app is a running node's assembly: the config, the Mux, the peer list and what each
// module registered. Modules plug in through a register function in modules.go.
type app struct {
	cfg     *Config
	log     *slog.Logger
	key     ed25519.PrivateKey
	peers   *core.Peers
	mux     *core.Mux
	ep      *core.Endpoint
	stdout  *os.File
	notices []string // lines "serve" prints once it listens, such as the ssh command

	// reloaders run on SIGHUP with the newly read config, after the peer list.
	reloaders []func(*Config) error
	// closers run after the endpoint has shut down, in reverse order.
	closers []func() error
}

// onReload registers f to run on SIGHUP.
func (a *app) onReload(f func(*Config) error) { a.reloaders = append(a.reloaders, f) }

// onClose registers f to run when the node stops.
func (a *app) onClose(f func() error) { a.closers = append(a.closers, f) }

// handle registers h on each ALPN.
func (a *app) handle(h core.Handler, alpns ...string) error {
	for _, alpn := range alpns {
		if err := a.mux.Handle(alpn, h); err != nil {
			return err
		}
	}
	return nil
}

// notice adds a line that "serve" prints after it starts listening.
func (a *app) notice(format string, args ...any) {
	a.notices = append(a.notices, fmt.Sprintf(format, args...))
}

// newApp loads keys and peers for cfg and registers every module.
func newApp(cfg *Config) (*app, error) {
	log, err := cfg.logger()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Node.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	if err := checkDataDir(cfg.Node.DataDir); err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, mux: core.NewMux(), stdout: os.Stdout}
	if a.key, err = a.nodeKey(); err != nil {
		return nil, err
	}
	peerList, err := cfg.peerList()
	if err != nil {
		return nil, err
	}
	if a.peers, err = core.NewPeers(peerList); err != nil {
		return nil, err
	}
	warnScopes(log, peerList)
	for _, m := range modules {
		if err := m.register(a); err != nil {
			a.close()
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
	}
	return a, nil
}

// nodeKey loads (or on first run creates) the node key. Modules that derive keys from
// elsewhere (the vault) replace this through nodeKeySource.
func (a *app) nodeKey() (ed25519.PrivateKey, error) {
	if nodeKeySource != nil {
		if k, ok, err := nodeKeySource(a); ok || err != nil {
			return k, err
		}
	}
	return a.loadKey(a.cfg.dataPath(a.cfg.Node.KeyFile), "node.key_file", "alknet node")
}

// loadKey reads the key file at path. A missing file is created (a first run) only
// inside the data folder: a missing key_file elsewhere is almost always a wrong path,
// and a new key would silently give the node a new identity.
func (a *app) loadKey(path, setting, comment string) (ed25519.PrivateKey, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if !insideDir(a.cfg.Node.DataDir, path) {
			return nil, fmt.Errorf("%s %s does not exist; alknet creates a missing key only inside the data folder %s, because a new key is a new identity: fix the path, or move the key there", setting, path, a.cfg.Node.DataDir)
		}
		a.log.Info("creating a new key", "file", path, "for", comment)
	}
	return core.LoadOrCreateKey(path, comment)
}

// insideDir reports whether path lies in dir or below it.
func insideDir(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// nodeKeySource, when set, may supply the node key instead of the key file.
var nodeKeySource func(*app) (ed25519.PrivateKey, bool, error)

// hostKeySource, when set, may supply the SSH host key instead of the key file.
var hostKeySource func(*app) (ed25519.PrivateKey, bool, error)

// sshHostKey loads (or on first run creates) the SSH host key, file
// "ssh_host_ed25519_key" in the data folder unless hostKeySource supplies it.
func (a *app) sshHostKey(file string) (ed25519.PrivateKey, error) {
	if hostKeySource != nil {
		if k, ok, err := hostKeySource(a); ok || err != nil {
			return k, err
		}
	}
	if file == "" {
		file = "ssh_host_ed25519_key"
	}
	return a.loadKey(a.cfg.dataPath(file), "ssh.host_key_file", "alknet ssh host")
}

// peerList is the configured peers; the embedded default grants the local user's own
// client key everything, so "alknet serve" then "alknet connect" works out of the box.
func (c *Config) peerList() ([]core.PeerConfig, error) {
	if c.path != "" {
		return c.Peers, nil
	}
	path, err := defaultIdentityPath()
	if err != nil {
		return nil, err
	}
	key, err := core.LoadOrCreateKey(path, "alknet client")
	if err != nil {
		return nil, err
	}
	return append([]core.PeerConfig{{
		Name:   "owner",
		Keys:   []string{string(core.NodeIDOf(key.Public().(ed25519.PublicKey)))},
		Scopes: []string{core.ScopeAll},
	}}, c.Peers...), nil
}

// reload re-reads the config file and applies what can change while running.
func (a *app) reload() error {
	if a.cfg.path == "" {
		return nil
	}
	cfg, err := loadConfig(a.cfg.path)
	if err != nil {
		return err
	}
	peerList, err := cfg.peerList()
	if err != nil {
		return err
	}
	if err := a.peers.Update(peerList); err != nil {
		return err
	}
	warnScopes(a.log, peerList)
	for _, f := range a.reloaders {
		if err := f(cfg); err != nil {
			return err
		}
	}
	a.cfg.Peers = cfg.Peers
	if keys := restartOnlyChanges(a.cfg, cfg); len(keys) > 0 {
		a.log.Warn("reload: changed settings that apply only after a restart", "keys", strings.Join(keys, ","))
	}
	return nil
}

func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			a.log.Warn("close", "err", err)
		}
	}
	a.closers = nil
}

func (a *app) pidFile() string { return filepath.Join(a.cfg.Node.DataDir, "alknet.pid") }

// module is one handler module's registration with the node.
type module struct {
	name     string
	register func(*app) error
}

// checkDataDir refuses a data folder that others may write to: they could replace the
// keys, the config or the pid file, or plant links under those names. Like OpenSSH's
// StrictModes, but for the folder that holds the node's identity.
func checkDataDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data folder %s is not a folder", dir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("data folder %s is writable by others (mode %04o): they could replace its keys; run chmod go-w %s (or chmod 700)", dir, fi.Mode().Perm(), dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() && os.Getuid() != 0 {
		return fmt.Errorf("data folder %s belongs to user %d, not to this user (%d)", dir, st.Uid, os.Getuid())
	}
	return nil
}
