package main

import (
	"crypto/ed25519"
	"fmt"
	"os"

	"github.com/alkdev/alknet/core"
	"github.com/spf13/cobra"
	gossh "golang.org/x/crypto/ssh"
)

func newIDCmd() *cobra.Command {
	var configPath, keyPath string
	cmd := &cobra.Command{
		Use:   "id [--config F | --key FILE]",
		Short: "Print the node ID",
		Long: `Print the node ID: the node's Ed25519 public key in z-base-32. Clients pin it
in addresses written <node-id>@host:port. With --key, print the ID of an Ed25519 key
file: a private key (OpenSSH format, such as a client key) or a public key (a .pub
file or authorized_keys line), for example to list it as a peer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var key ed25519.PrivateKey
			var err error
			if keyPath != "" {
				pub, err := keyFileID(keyPath)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), core.NodeIDOf(pub))
				return nil
			} else {
				var cfg *Config
				if cfg, err = loadConfig(configPath); err != nil {
					return err
				}
				a := &app{cfg: cfg}
				key, err = a.nodeKey()
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), core.NodeIDOf(key.Public().(ed25519.PublicKey)))
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "config file (default: as for serve)")
	cmd.Flags().StringVar(&keyPath, "key", "", "print the ID of this key file instead")
	addVaultServeFlags(cmd.Flags())
	return cmd
}

// keyFileID reads the Ed25519 public key of a key file: an OpenSSH public-key line, or
// a private key file (which must not be readable by others).
func keyFileID(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if pub, _, _, _, err := gossh.ParseAuthorizedKey(b); err == nil {
		if cpk, ok := pub.(gossh.CryptoPublicKey); ok {
			if k, ok := cpk.CryptoPublicKey().(ed25519.PublicKey); ok {
				return k, nil
			}
		}
		return nil, fmt.Errorf("%s: a %s key has no node ID (only Ed25519 keys do); list it as its OpenSSH line in a peer's keys", path, pub.Type())
	}
	key, err := core.ReadKeyFile(path)
	if err != nil {
		return nil, err
	}
	return key.Public().(ed25519.PublicKey), nil
}
