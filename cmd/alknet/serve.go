package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/alkdev/alknet/core"
	"github.com/spf13/cobra"
)

func newServeCmd() *cobra.Command {
	var configPath, listen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the endpoint",
		Long: `Run the endpoint on QUIC and TLS over TCP, serving every registered protocol.

With --config it reads that file. Without, it uses ./alknet.toml or
~/.config/alknet/alknet.toml if one exists, and otherwise an embedded default:
127.0.0.1:4433, data in ~/.local/share/alknet, and your own client key
(~/.config/alknet/client.key) granted every scope.

SIGHUP reloads the peer list and other reloadable settings; SIGINT or SIGTERM
shut down gracefully.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(configPath)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Node.Listen = listen
			}
			return serve(cmd.Context(), cfg)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "config file (default: ./alknet.toml, ~/.config/alknet/alknet.toml, or the embedded default)")
	cmd.Flags().StringVar(&listen, "listen", "", "override node.listen, e.g. 0.0.0.0:4433")
	addVaultServeFlags(cmd.Flags())
	return cmd
}

func serve(ctx context.Context, cfg *Config) error {
	a, err := newApp(cfg)
	if err != nil {
		return err
	}
	defer a.close()
	ep, err := core.NewEndpoint(a.mux, core.EndpointConfig{
		Key:         a.key,
		Peers:       a.peers,
		Logger:      a.log,
		Limits:      cfg.Limits,
		KeyExchange: cfg.Node.KeyExchange,
	})
	if err != nil {
		return err
	}
	a.ep = ep
	if err := ep.Listen(cfg.Node.Listen); err != nil {
		return err
	}
	pidFile, err := lockPIDFile(a.pidFile())
	if err != nil {
		ep.Close()
		return err
	}
	defer func() {
		os.Remove(a.pidFile())
		pidFile.Close()
	}()

	// Catch signals before the banner: a supervisor or script that stops the node as
	// soon as it reports ready must get a graceful shutdown, not the default exit.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	source := cfg.path
	if source == "" {
		source = "embedded default (no config file found)"
	}
	out := a.stdout
	fmt.Fprintf(out, "alknet serving %s\n", ep.Addr())
	fmt.Fprintf(out, "  config:  %s\n", source)
	fmt.Fprintf(out, "  data:    %s\n", cfg.Node.DataDir)
	fmt.Fprintf(out, "  listen:  quic %s, tcp %s\n", ep.UDPAddr(), ep.TCPAddr())
	fmt.Fprintf(out, "  alpns:   %s\n", strings.Join(a.mux.ALPNs(), " "))
	notice := strings.NewReplacer("{addr}", ep.Addr(), "{alknet}", selfCommand())
	for _, n := range a.notices {
		fmt.Fprintf(out, "  %s\n", notice.Replace(n))
	}

	served := make(chan error, 1)
	go func() { served <- ep.Serve() }()

	if ctx == nil {
		ctx = context.Background()
	}
	for {
		select {
		case err := <-served:
			if errors.Is(err, core.ErrServerClosed) {
				return nil
			}
			return err
		case <-ctx.Done():
			return shutdown(a, ep, served)
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if err := a.reload(); err != nil {
					a.log.Error("reload failed; keeping the running config", "err", err)
				} else {
					a.log.Info("reloaded", "config", cfg.path)
				}
				continue
			}
			return shutdown(a, ep, served)
		}
	}
}

// shutdown drains for the configured time, then closes what is left.
func shutdown(a *app, ep *core.Endpoint, served <-chan error) error {
	a.log.Info("shutting down", "timeout", a.cfg.shutdownTimeout())
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.shutdownTimeout())
	defer cancel()
	if err := ep.Shutdown(ctx); err != nil {
		a.log.Warn("connections still open at the shutdown timeout were closed", "err", err)
	}
	if err := <-served; !errors.Is(err, core.ErrServerClosed) {
		return err
	}
	return nil
}

// selfCommand is how a pasted command line should run this binary: "alknet" when that
// is what PATH finds, otherwise this executable's absolute path (as after "make run").
func selfCommand() string {
	self, err := os.Executable()
	if err != nil {
		return "alknet"
	}
	if onPath, err := exec.LookPath("alknet"); err == nil {
		if a, err1 := filepath.EvalSymlinks(onPath); err1 == nil {
			if b, err2 := filepath.EvalSymlinks(self); err2 == nil && a == b {
				return "alknet"
			}
		}
	}
	return self
}

// lockPIDFile writes our PID into path and holds an exclusive lock on it for as long as
// the server runs. The lock is what "peers add" checks before it signals the PID, so a
// stale file left by a crash never gets an unrelated process signalled.
func lockPIDFile(path string) (*os.File, error) {
	// O_NOFOLLOW: a link planted at the pid file's name must not make serve overwrite
	// the file it points to.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("pid file %s is not a regular file", path)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another alknet serve is running on this data folder (%s is locked)", path)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pid file: %w", err)
	}
	return f, nil
}
