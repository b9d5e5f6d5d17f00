package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/alkdev/alknet/core"
	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/cobra"
)

func newPeersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "Manage who may do what",
	}
	cmd.AddCommand(newPeersAddCmd(), newPeersListCmd())
	return cmd
}

func newPeersAddCmd() *cobra.Command {
	var configPath, name, key string
	var scopes []string
	cmd := &cobra.Command{
		Use:   "add --config F --name N --key KEY --scope S [--scope S ...]",
		Short: "Add a peer; a running server picks it up at once",
		Long: `Append a peer to the config file. KEY is a node ID (see "alknet id --key FILE")
or an OpenSSH public-key line such as "ssh-ed25519 AAAA... alice@laptop".
If a server is running on this config, it is told to reload (SIGHUP), so the
peer can connect without a restart.

Scopes: ssh:exec ssh:shell ssh:forward:local ssh:forward:remote ssh:sftp
sftp:read sftp:write fs:read fs:write call dns:update admin, or "*" for
everything. Reserved for modules this build does not include (they grant
nothing yet): git:read git:write msg.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range scopes {
				if msg := scopeProblem(s); msg != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", msg)
				}
			}
			reloaded, err := addPeer(configPath, core.PeerConfig{Name: name, Keys: []string{key}, Scopes: scopes})
			if err != nil {
				return err
			}
			msg := "added peer %q; no server is running on this config, it applies at the next start\n"
			if reloaded {
				msg = "added peer %q; the running server reloaded\n"
			}
			fmt.Fprintf(cmd.OutOrStdout(), msg, name)
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "config file to change")
	cmd.Flags().StringVar(&name, "name", "", "peer name")
	cmd.Flags().StringVar(&key, "key", "", "node ID or OpenSSH public-key line")
	cmd.Flags().StringArrayVar(&scopes, "scope", nil, "scope to grant (repeatable)")
	for _, f := range []string{"config", "name", "key", "scope"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}

// addPeer appends pc to the config file, after checking that the result is valid, and
// signals a server running on it. It reports whether a server was signalled.
func addPeer(path string, pc core.PeerConfig) (bool, error) {
	if err := checkPeerName(pc.Name); err != nil {
		return false, err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return false, err
	}
	if slices.ContainsFunc(cfg.Peers, func(p core.PeerConfig) bool { return p.Name == pc.Name }) {
		return false, fmt.Errorf("a peer named %q already exists in %s", pc.Name, path)
	}
	if _, err := core.NewPeers(append(slices.Clone(cfg.Peers), pc)); err != nil {
		return false, err
	}
	block, err := toml.Marshal(struct {
		Peers []core.PeerConfig `toml:"peers"`
	}{[]core.PeerConfig{pc}})
	if err != nil {
		return false, err
	}
	old, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	text := string(old)
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	text += "\n" + string(block)
	if _, err := parseConfig([]byte(text), path); err != nil {
		return false, fmt.Errorf("the change would break the config: %w", err)
	}
	if err := writeFileAtomic(path, []byte(text), 0o600); err != nil {
		return false, err
	}
	return signalServer(cfg.Node.DataDir), nil
}

// signalServer sends SIGHUP to the server whose pid file is in dataDir.
func signalServer(dataDir string) bool {
	a := &app{cfg: &Config{Node: NodeConfig{DataDir: dataDir}}}
	f, err := os.Open(a.pidFile())
	if err != nil {
		return false
	}
	defer f.Close()
	// A running server holds an exclusive lock on its pid file. If we can take a shared
	// lock, the file is stale and its PID may now belong to anything: leave it alone.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, syscall.SIGHUP) == nil
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func newPeersListCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "list [--config F]",
		Short: "List the configured peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(configPath)
			if err != nil {
				return err
			}
			if len(cfg.Peers) == 0 {
				return errors.New("no peers configured: every client is anonymous")
			}
			for _, p := range cfg.Peers {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", p.Name, strings.Join(p.Scopes, ","), strings.Join(p.Keys, ","))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "config file")
	return cmd
}

// checkPeerName accepts names that are safe everywhere a name is used: in logs, in
// forwarding rules, and as a folder name (sftp per_peer).
func checkPeerName(name string) error {
	ok := name != "" && len(name) <= 64 && name[0] != '.' && name[0] != '-' &&
		strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-") == ""
	if !ok {
		return fmt.Errorf("--name %q: use 1 to 64 letters, digits, '.', '_', '@' or '-', not starting with '.' or '-'", name)
	}
	return nil
}
