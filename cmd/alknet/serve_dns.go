package main

import (
	"net"
	"net/http"
	"slices"
	"sync"

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
	dnsHTTPMu.Lock()
	dnsHTTP[a] = dnsHTTPHandlers{DoH: srv.DoH(), Relay: dns.NewRelay(srv.Store())}
	dnsHTTPMu.Unlock()
	a.onClose(func() error {
		dnsHTTPMu.Lock()
		delete(dnsHTTP, a)
		dnsHTTPMu.Unlock()
		return nil
	})
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

// dnsHTTPHandlers are the DNS module's HTTP handlers, for the HTTP wiring to mount:
// DoH (RFC 8484) at /dns-query, and a pkarr relay (PUT/GET /<z-base-32 key>) over the
// same packet store the pkarr zone answers from, under a prefix such as /pkarr/ (with
// http.StripPrefix).
type dnsHTTPHandlers struct {
	DoH, Relay http.Handler
}

var (
	dnsHTTPMu sync.Mutex
	dnsHTTP   = map[*app]dnsHTTPHandlers{}
)

// dnsHTTPFor returns the DNS HTTP handlers registered for a, if the dns module is on.
func dnsHTTPFor(a *app) (dnsHTTPHandlers, bool) {
	dnsHTTPMu.Lock()
	defer dnsHTTPMu.Unlock()
	h, ok := dnsHTTP[a]
	return h, ok
}
