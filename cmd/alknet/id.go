package main

import (
	"crypto/ed25519"
	"fmt"

	"github.com/alkdev/alknet/core"
	"github.com/spf13/cobra"
)

func newIDCmd() *cobra.Command {
	var configPath, keyPath string
	cmd := &cobra.Command{
		Use:   "id [--config F | --key FILE]",
		Short: "Print the node ID",
		Long: `Print the node ID: the node's Ed25519 public key in z-base-32. Clients pin it
in addresses written <node-id>@host:port. With --key, print the ID of any key file
(for example a client key, to list it as a peer).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var key ed25519.PrivateKey
			var err error
			if keyPath != "" {
				key, err = core.ReadKeyFile(keyPath)
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
