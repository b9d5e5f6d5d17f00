package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/dns"
	mdns "github.com/miekg/dns"
	"github.com/spf13/cobra"
)

func newDNSCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Query a node's DNS, and publish or resolve pkarr records",
	}
	cmd.AddCommand(newDNSQueryCmd(), newDNSPublishCmd(), newDNSResolveCmd())
	return cmd
}

func newDNSQueryCmd() *cobra.Command {
	var cf clientFlags
	var short bool
	cmd := &cobra.Command{
		Use:   "query ADDR NAME [TYPE]",
		Short: "Ask a node a DNS question over DoQ (or DoT with --transport tcp)",
		Long: `Send one DNS query to ADDR (<node-id>@host:port), pinning the node's key, over
DNS over QUIC (RFC 9250), falling back to DNS over TLS (RFC 7858) on the TCP
listener when QUIC gets no answer; --transport quic or tcp forces one.
TYPE defaults to A. Prints the answer as dig does; exits non-zero only when no
answer arrived.`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			qtype := mdns.TypeA
			if len(args) == 3 {
				t, ok := mdns.StringToType[strings.ToUpper(args[2])]
				if !ok {
					return fmt.Errorf("unknown record type %q", args[2])
				}
				qtype = t
			}
			if _, err := cf.dialer(); err != nil {
				return err
			}
			key, err := cf.key()
			if err != nil {
				return err
			}
			q := new(mdns.Msg)
			q.SetQuestion(mdns.Fqdn(args[1]), qtype)
			q.SetEdns0(1232, false)
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			transport := cf.transport
			if transport == "" {
				transport = core.TransportQUIC
			}
			start := time.Now()
			r, err := dnsExchange(ctx, args[0], key, transport, q, cf.transport == "")
			if err != nil {
				if cf.transport != "" || errors.Is(err, core.ErrIdentityMismatch) || ctx.Err() != nil {
					return err
				}
				// No DoQ answer (UDP blocked?): fall back to DoT on the TCP listener.
				transport, start = core.TransportTCP, time.Now()
				if r, err = dnsExchange(ctx, args[0], key, transport, q, false); err != nil {
					return err
				}
			}
			cf.transport = transport
			printAnswer(cmd.OutOrStdout(), r, short, time.Since(start), args[0], cf.transport)
			return nil
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().BoolVar(&short, "short", false, "print only the answer data, one record a line")
	return cmd
}

// dnsExchange asks one query over DoQ ("quic") or DoT ("tcp"). With quick set, a DoQ
// handshake gets 2 seconds, so that a fallback to DoT leaves time.
func dnsExchange(ctx context.Context, addr string, key ed25519.PrivateKey, transport string, q *mdns.Msg, quick bool) (*mdns.Msg, error) {
	c := &dns.Client{Addr: addr, Key: key, DoT: transport == core.TransportTCP}
	defer c.Close()
	if quick {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return c.Exchange(qctx, q)
	}
	return c.Exchange(ctx, q)
}

func printAnswer(w io.Writer, r *mdns.Msg, short bool, rtt time.Duration, addr, transport string) {
	if short {
		for _, rr := range r.Answer {
			_, data, _ := strings.Cut(rr.String(), mdns.TypeToString[rr.Header().Rrtype]+"\t")
			fmt.Fprintln(w, data)
		}
		return
	}
	fmt.Fprintln(w, r.String())
	via := "DoQ"
	if transport == core.TransportTCP {
		via = "DoT"
	}
	fmt.Fprintf(w, ";; Query time: %v\n;; SERVER: %s (%s)\n", rtt.Round(time.Microsecond), addr, via)
}

// dnsNodeKey loads the node key for cfg the way "serve" does (key file or vault).
func dnsNodeKey(cfg *Config) (ed25519.PrivateKey, error) {
	log, err := cfg.logger()
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log}
	return a.nodeKey()
}

func newDNSPublishCmd() *cobra.Command {
	var configPath, relay string
	var addrs, alpns []string
	var ttl uint32
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Sign the node's _alknet records with its key and publish them to a pkarr relay",
		Long: `Build the node's "_alknet.<node-id>" TXT records (its addresses and ALPNs), sign
them with the node key as a pkarr packet, and PUT it to the pkarr relay (--relay,
or [dns] pkarr_relay). Addresses default to [dns] addresses, else node.listen.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(configPath)
			if err != nil {
				return err
			}
			if relay == "" {
				relay = cfg.DNS.PkarrRelay
			}
			if relay == "" {
				return fmt.Errorf("no relay: pass --relay URL or set [dns] pkarr_relay")
			}
			if len(addrs) == 0 {
				addrs = cfg.DNS.Addresses
			}
			if len(addrs) == 0 {
				addrs = []string{cfg.Node.Listen}
			}
			key, err := dnsNodeKey(cfg)
			if err != nil {
				return err
			}
			sp, err := dns.NodePacket(key, addrs, alpns, ttl)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			if err := (&dns.RelayClient{URL: relay}).Publish(ctx, sp); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published %s to %s (timestamp %d, %d bytes)\n", sp.NodeID(), relay, sp.Timestamp, len(sp.Packet))
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "config file (default: as for serve)")
	addVaultServeFlags(cmd.Flags())
	cmd.Flags().StringVar(&relay, "relay", "", "pkarr relay URL (default: [dns] pkarr_relay)")
	cmd.Flags().StringArrayVar(&addrs, "addr", nil, "address to advertise, host:port (repeatable)")
	cmd.Flags().StringArrayVar(&alpns, "alpn", []string{dns.ALPNDoQ, dns.ALPNDoT}, "ALPN to advertise (repeatable)")
	cmd.Flags().Uint32Var(&ttl, "ttl", 300, "TTL of the records, in seconds")
	return cmd
}

func newDNSResolveCmd() *cobra.Command {
	var configPath, relay string
	cmd := &cobra.Command{
		Use:   "resolve KEY",
		Short: "Fetch and verify a key's pkarr records from a relay",
		Long: `Fetch the newest signed packet for KEY (a node ID, optionally written pk:<id>)
from the pkarr relay (--relay, or [dns] pkarr_relay), verify its signature, and
print its records.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if relay == "" {
				cfg, err := loadConfig(configPath)
				if err != nil {
					return err
				}
				relay = cfg.DNS.PkarrRelay
			}
			if relay == "" {
				return fmt.Errorf("no relay: pass --relay URL or set [dns] pkarr_relay")
			}
			key, err := core.ParseNodeID(strings.TrimPrefix(args[0], "pk:"))
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			sp, err := (&dns.RelayClient{URL: relay}).Resolve(ctx, key)
			if err != nil {
				return err
			}
			m, err := sp.Msg()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, ";; pkarr %s, signed %s (timestamp %d), signature verified\n", sp.NodeID(), sp.Time().UTC().Format(time.RFC3339), sp.Timestamp)
			for _, rr := range m.Answer {
				fmt.Fprintln(out, rr.String())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "config file, for [dns] pkarr_relay")
	cmd.Flags().StringVar(&relay, "relay", "", "pkarr relay URL (default: [dns] pkarr_relay)")
	return cmd
}
