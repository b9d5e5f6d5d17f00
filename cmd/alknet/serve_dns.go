package main

import (
	"net"
	"slices"

	"github.com/alkdev/alknet/dns"
)

// registerDNS serves DNS over QUIC ("doq") and over TLS ("dot") on the endpoint, and
// plain DNS on [dns] classic_listen when set. Zones reload on SIGHUP.
func registerDNS(a *app) error {
	cfg := dnsConfig(a.cfg)
	srv, err := dns.NewServer(cfg, dns.Options{
		Key:       a.key,
		ClientKey: a.key,
		Logger:    a.log,
		Advertise: func() (addrs, alpns []string) {
			if a.ep != nil {
				if u := a.ep.UDPAddr(); u != nil {
					addrs = append(addrs, u.String())
				}
			}
			return addrs, slices.Clone(a.mux.ALPNs())
		},
	})
	if err != nil {
		return err
	}
	if err := a.handle(srv, dns.ALPNDoQ, dns.ALPNDoT); err != nil {
		return err
	}
	a.onReload(func(c *Config) error { return srv.Reload(dnsConfig(c)) })
	a.onClose(srv.Close)
	if cfg.ClassicListen != "" {
		udp, _, err := srv.ListenClassic(cfg.ClassicListen)
		if err != nil {
			return err
		}
		host, port, _ := net.SplitHostPort(udp.String())
		a.notice("dns:     dig @%s -p %s <name> (classic UDP and TCP)", host, port)
	}
	a.notice("dns:     {alknet} dns query {addr} <name> (DoQ; --transport tcp for DoT)")
	return nil
}

// dnsConfig is the [dns] section with zone file paths resolved against the config
// file's folder.
func dnsConfig(c *Config) dns.Config {
	cfg := c.DNS
	cfg.Zones = make([]string, len(c.DNS.Zones))
	for i, z := range c.DNS.Zones {
		cfg.Zones[i] = c.resolve(z)
	}
	return cfg
}
