package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/ssh"
	"github.com/spf13/cobra"
	gossh "golang.org/x/crypto/ssh"
)

func newSSHConfigCmd() *cobra.Command {
	var cf clientFlags
	var name string
	var noHostKey bool
	var knownHosts string
	cmd := &cobra.Command{
		Use:   "ssh-config ADDR [--identity FILE] [--name HOST]",
		Short: "Print a Host block for ~/.ssh/config that reaches a node's SSH",
		Long: `Print a Host block for ~/.ssh/config that reaches the SSH server of node ADDR
(<node-id>@host:port) through "alknet connect" as ProxyCommand. The identity
(--identity, default ~/.config/alknet/client.key) is an OpenSSH-format Ed25519 key,
so ssh uses the same file as IdentityFile; the node must list it as a peer with
ssh:exec (and ssh:shell for a terminal).

Unless --no-host-key is given, it also fetches the node's SSH host key over a
connection pinned to the node ID and prints the line for ~/.ssh/known_hosts as a
comment; --known-hosts FILE appends it to FILE instead.

  alknet ssh-config <node-id>@example.org:4433 --name box >> ~/.ssh/config
  ssh box`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sshConfig(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), &cf, args[0], name, noHostKey, knownHosts)
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().StringVar(&name, "name", "", `Host name to use with ssh (default "alknet-" and the first 8 characters of the node ID)`)
	cmd.Flags().BoolVar(&noHostKey, "no-host-key", false, "do not connect to fetch the host key for known_hosts")
	cmd.Flags().StringVar(&knownHosts, "known-hosts", "", "append the host key line to this known_hosts file")
	return cmd
}

func sshConfig(ctx context.Context, out, errOut io.Writer, cf *clientFlags, addr, name string, noHostKey bool, knownHosts string) error {
	pub, hostport, err := core.ParseAddr(addr)
	if err != nil {
		return err
	}
	id := core.NodeIDOf(pub)
	if name == "" {
		name = "alknet-" + string(id)[:8]
	}
	if strings.ContainsAny(name, " \t\"'") {
		return fmt.Errorf("--name %q: want a host name without spaces or quotes", name)
	}
	identity := cf.identity
	if identity == "" {
		if identity, err = defaultIdentityPath(); err != nil {
			return err
		}
	}
	if identity, err = filepath.Abs(identity); err != nil {
		return err
	}
	if _, err := cf.key(); err != nil { // creates the default key on first use
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		bin = "alknet"
	}
	proxy := fmt.Sprintf("%s connect %s --alpn %s --identity %s", quoteArg(bin), addr, ssh.ALPN, quoteArg(identity))
	if cf.transport != "" {
		proxy += " --transport " + cf.transport
	}
	alias := hostKeyAlias(id)
	// The block is printed only once everything has worked, so that
	// "alknet ssh-config ... >> ~/.ssh/config" never appends a node that failed
	// verification.
	var block bytes.Buffer
	fmt.Fprintf(&block, "# alknet node %s at %s\n", id, hostport)
	fmt.Fprintf(&block, "Host %s\n", name)
	fmt.Fprintf(&block, "    ProxyCommand %s\n", proxy)
	fmt.Fprintf(&block, "    IdentityFile %s\n", quoteArg(identity))
	fmt.Fprintf(&block, "    IdentitiesOnly yes\n")
	fmt.Fprintf(&block, "    HostKeyAlias %s\n", alias)
	fmt.Fprintf(&block, "    ServerAliveInterval 30\n")
	if noHostKey {
		_, err := out.Write(block.Bytes())
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := cf.dial(ctx, addr, ssh.ALPN)
	if err != nil {
		return fmt.Errorf("fetch the host key (or use --no-host-key): %w", err)
	}
	defer c.Close(0, "")
	s, err := c.OpenStream(ctx)
	if err != nil {
		return err
	}
	key, err := ssh.FetchHostKey(ctx, core.NetConn(s, nil, nil))
	if err != nil {
		return fmt.Errorf("fetch the host key (or use --no-host-key): %w", err)
	}
	line := fmt.Sprintf("%s %s", alias, gossh.MarshalAuthorizedKey(key))
	warnIfKeyRefused(ctx, errOut, cf, addr, identity)
	if knownHosts != "" {
		f, err := os.OpenFile(knownHosts, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := f.WriteString(line); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(&block, "# for ~/.ssh/known_hosts (fetched over a connection pinned to the node ID):\n")
		fmt.Fprintf(&block, "# %s", line)
	}
	_, err = out.Write(block.Bytes())
	return err
}

// quoteArg quotes s for ssh_config and the shell that runs ProxyCommand, if needed.
func quoteArg(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"'\\$`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// warnIfKeyRefused logs in once with the identity and warns when the node does not
// accept it: the Host block is still right, but ssh will say "Permission denied" until
// the key is listed as a peer on the node.
func warnIfKeyRefused(ctx context.Context, errOut io.Writer, cf *clientFlags, addr, identity string) {
	key, err := cf.key()
	if err != nil || key == nil {
		return
	}
	signer, err := gossh.NewSignerFromKey(key)
	if err != nil {
		return
	}
	d, err := cf.dialer()
	if err != nil {
		return
	}
	client, err := socksDial(ctx, d, addr, signer)
	if err == nil {
		client.Close()
		return
	}
	if ssh.IsAuthRefused(err) {
		id := core.NodeIDOf(key.Public().(ed25519.PublicKey))
		fmt.Fprintf(errOut, "warning: the node does not accept the key %s (node ID %s) yet; ssh will say \"Permission denied\" until, on the node:\n  alknet peers add --config <node's alknet.toml> --name <name> --key %s --scope ssh:exec\n", identity, id, id)
	}
}
