package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

func newConnectCmd() *cobra.Command {
	var cf clientFlags
	var alpn string
	cmd := &cobra.Command{
		Use:   "connect ADDR --alpn A [--identity FILE] [--transport quic|tcp]",
		Short: "Join stdin and stdout to one stream (an ssh ProxyCommand)",
		Long: `Connect to ADDR (<node-id>@host:port) on ALPN A and join stdin and stdout to
one stream. End of stdin half-closes the stream; the command exits when the node
closes its side. Use it as OpenSSH's ProxyCommand:

  ssh -o ProxyCommand='alknet connect <node-id>@host:4433 --alpn alknet/ssh' user@alknet`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return connect(cmd.Context(), &cf, args[0], alpn, os.Stdin, os.Stdout)
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().StringVar(&alpn, "alpn", "", "protocol to speak, such as alknet/ssh")
	cmd.MarkFlagRequired("alpn")
	return cmd
}

func connect(ctx context.Context, cf *clientFlags, addr, alpn string, in io.Reader, out io.Writer) error {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := cf.dial(dctx, addr, alpn)
	if err != nil {
		return err
	}
	defer c.Close(0, "")
	s, err := c.OpenStream(dctx)
	if err != nil {
		return err
	}
	defer s.Close()

	// As a ProxyCommand we are ended by signals (ssh sends SIGHUP) or a closed stdout
	// (SIGPIPE). Close the connection on the way out, so the node learns at once that
	// the session is over instead of waiting for the QUIC idle timeout.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	defer signal.Stop(sigs)
	stopped := make(chan struct{})
	defer close(stopped)
	var signalled atomic.Bool
	go func() {
		select {
		case <-sigs:
			signalled.Store(true)
			c.Close(0, "client exiting")
		case <-stopped:
		}
	}()

	sendErr := make(chan error, 1)
	go func() {
		_, err := copyBuffered(s, in)
		if err == nil {
			err = s.CloseWrite()
		}
		sendErr <- err
	}()
	_, err = copyBuffered(out, s)
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) || signalled.Load() {
		err = nil
	}
	if err != nil {
		return err
	}
	// The node closed its side. If stdin was still flowing, say so: bytes the node
	// never read must not look like a clean transfer.
	select {
	case err := <-sendErr:
		if err != nil && !signalled.Load() {
			return fmt.Errorf("sending stdin: %w", err)
		}
	default:
		// stdin is still open (an interactive session); ending here is normal.
	}
	return nil
}

// copyBuffered copies with a 256 KiB buffer: fewer, larger writes into the stream and
// to stdout than io.Copy's 32 KiB, which matters for bulk transfers through ssh.
func copyBuffered(dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	// Hide ReaderFrom/WriterTo so io.CopyBuffer uses buf.
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
}
