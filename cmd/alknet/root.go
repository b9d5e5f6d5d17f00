package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "alknet",
		Short: "One endpoint, one port, many protocols",
		Long: `alknet serves many protocols on one port: SSH, SFTP, the call protocol, a
BLAKE3 blob store, DNS and more, each chosen by the TLS ALPN of the connection,
over QUIC (UDP) and TLS over TCP at once.

Start here:
  alknet init --dir ./node          write a config, a node key and an owner key
  alknet serve --config ./node/alknet.toml
  alknet ping <node-id>@127.0.0.1:4433

Or just run "alknet serve" to start on an embedded default.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Each module's commands are added here, one line each.
	root.AddCommand(
		newInitCmd(),
		newServeCmd(),
		newIDCmd(),
		newPingCmd(),
		newPeersCmd(),
		newConnectCmd(),
		newCallCmd(),
		newSSHConfigCmd(),
		newSOCKSCmd(),
		newVaultCmd(),
		newDNSCmd(),
		newFSCmd(),
		newSFTPCmd(),
	)
	return root
}
