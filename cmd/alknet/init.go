package main

import (
	"crypto/ed25519"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/alkdev/alknet/core"
	"github.com/spf13/cobra"
)

func newInitCmd() *cobra.Command {
	var dir, listen string
	cmd := &cobra.Command{
		Use:   "init --dir D [--listen HOST:PORT]",
		Short: "Create a node: config, node key and owner client key",
		Long: `Create D/alknet.toml, the node key D/node.key and an owner client key
D/client.key that the config grants every scope ("*"). Prints the node's address.

Then run:  alknet serve --config D/alknet.toml
and reach it with --identity D/client.key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr, err := initNode(dir, listen)
			if err != nil {
				return err
			}
			if tightened, err := tightenDataDir(dir); err != nil {
				return err
			} else if tightened != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s\n", tightened)
			}
			fmt.Fprintln(cmd.OutOrStdout(), addr)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "folder for the new node (created if missing)")
	cmd.Flags().StringVar(&listen, "listen", "0.0.0.0:4433", "address for QUIC and TLS/TCP")
	cmd.MarkFlagRequired("dir")
	addVaultInitFlags(cmd.Flags())
	return cmd
}

// initNode writes a new node into dir and returns its address.
func initNode(dir, listen string) (string, error) {
	if err := checkListenAddr(listen); err != nil {
		return "", fmt.Errorf("--listen: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	cfgPath := filepath.Join(dir, "alknet.toml")
	if _, err := os.Stat(cfgPath); err == nil {
		return "", fmt.Errorf("%s already exists; refusing to overwrite it", cfgPath)
	}
	nodeKey, fromVault, err := initVaultNodeKey(dir)
	if err != nil {
		return "", err
	}
	if !fromVault {
		nodeKey = core.GenerateKey()
		if err := core.WriteKeyFile(filepath.Join(dir, "node.key"), nodeKey, "alknet node"); err != nil {
			return "", err
		}
	}
	owner := core.GenerateKey()
	if err := core.WriteKeyFile(filepath.Join(dir, "client.key"), owner, "alknet owner"); err != nil {
		return "", err
	}
	ownerID := core.NodeIDOf(owner.Public().(ed25519.PublicKey))
	text := initVaultConfig(renderInitConfig(listen, ownerID))
	if _, err := parseConfig([]byte(text), cfgPath); err != nil {
		return "", fmt.Errorf("generated config is invalid: %w", err)
	}
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		return "", err
	}
	nodeID := core.NodeIDOf(nodeKey.Public().(ed25519.PublicKey))
	return core.FormatAddr(nodeID, dialableListen(listen)), nil
}

// renderInitConfig is the embedded default with the listen address and owner filled in.
func renderInitConfig(listen string, owner core.NodeID) string {
	text := strings.Replace(string(defaultConfig), `listen = "127.0.0.1:4433"`, fmt.Sprintf("listen = %q", listen), 1)
	return text + fmt.Sprintf(`
[[peers]]
name = "owner"
keys = [%q]  # client.key
scopes = ["*"]
`, owner)
}

// dialableListen turns a wildcard listen address into one a local client can dial.
func dialableListen(listen string) string {
	for _, wild := range []string{"0.0.0.0:", "[::]:", ":"} {
		if rest, ok := strings.CutPrefix(listen, wild); ok {
			return "127.0.0.1:" + rest
		}
	}
	return listen
}

// checkListenAddr accepts HOST:PORT where HOST is empty, an IP address or a host name
// and PORT a number from 0 to 65535: what serve can listen on.
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want HOST:PORT, such as 0.0.0.0:4433 or [::]:4433", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host == "" || net.ParseIP(host) != nil {
		return nil
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 || strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" ||
			label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q: %q is neither an IP address nor a host name", addr, host)
		}
	}
	return nil
}

// tightenDataDir removes group and other write permission from dir, which holds the
// node's keys (serve refuses such a folder), and says so; a folder created under a
// umask of 002 would otherwise be refused on the first serve.
func tightenDataDir(dir string) (string, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return "", err
	}
	perm := fi.Mode().Perm()
	if perm&0o022 == 0 {
		return "", nil
	}
	if err := os.Chmod(dir, perm&^0o022); err != nil {
		return "", fmt.Errorf("%s is writable by others and could not be changed: %w", dir, err)
	}
	return fmt.Sprintf("%s was writable by others (mode %04o); made it %04o, as it holds the node's keys", dir, perm, perm&^0o022), nil
}
