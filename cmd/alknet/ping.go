package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

func newPingCmd() *cobra.Command {
	var cf clientFlags
	var count int
	cmd := &cobra.Command{
		Use:   "ping ADDR",
		Short: "Handshake with a node and time a round trip",
		Long: `Connect to ADDR (<node-id>@host:port), verify the node's key, and time the
handshake and an echoed round trip on one stream. Exits non-zero if the node
cannot be reached or its key is not the one the address pins.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if count < 1 {
				return fmt.Errorf("--count %d: want at least 1", count)
			}
			for i := range count {
				if i > 0 {
					time.Sleep(time.Second)
				}
				if err := pingOnce(cmd.Context(), cmd.OutOrStdout(), &cf, args[0]); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().IntVarP(&count, "count", "c", 1, "number of pings")
	return cmd
}

func pingOnce(ctx context.Context, out io.Writer, cf *clientFlags, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	c, err := cf.dial(ctx, addr, pingALPN)
	if err != nil {
		return err
	}
	defer c.Close(0, "")
	handshake := time.Since(start)
	start = time.Now()
	s, err := c.OpenStream(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	payload := []byte("alknet ping")
	if _, err := s.Write(payload); err != nil {
		return err
	}
	s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil {
		return err
	}
	if string(got) != string(payload) {
		return fmt.Errorf("ping: node echoed %q, want %q", got, payload)
	}
	fmt.Fprintf(out, "pong from %s via %s: handshake %v, rtt %v\n", c.Peer().RemoteAddr, c.Transport(),
		handshake.Round(time.Microsecond), time.Since(start).Round(time.Microsecond))
	return nil
}
