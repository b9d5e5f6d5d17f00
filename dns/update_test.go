package dns_test

import (
	"testing"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	alkdns "github.com/alkdev/alknet/dns"
	"github.com/miekg/dns"
)

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func newUpdate(t testing.TB, insert ...string) *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate("example.test.")
	var rrs []dns.RR
	for _, s := range insert {
		rrs = append(rrs, mustRR(t, s))
	}
	m.Insert(rrs)
	return m
}

func TestDynamicUpdateScopes(t *testing.T) {
	updater, reader := core.GenerateKey(), core.GenerateKey()
	_, node := startDNS(t, alkdns.Config{}, coretest.WithPeers(
		coretest.PeerFor("updater", updater, core.ScopeDNSUpdate),
		coretest.PeerFor("reader", reader, core.ScopeFSRead),
	))
	for _, dot := range []bool{false, true} {
		transport := map[bool]string{false: "doq", true: "dot"}[dot]
		t.Run(transport, func(t *testing.T) {
			client := func(key []byte) *alkdns.Client {
				c := &alkdns.Client{Addr: node.Addr(), DoT: dot}
				if key != nil {
					c.Key = key
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			name := "new-" + transport + ".example.test."
			up := newUpdate(t, name+" 60 IN A 192.0.2.200")
			for who, key := range map[string][]byte{"anonymous": nil, "under-scoped": reader} {
				r, err := client(key).Exchange(ctxT(t), up)
				if err != nil || r.Rcode != dns.RcodeRefused {
					t.Fatalf("%s update: %v rcode %v, want REFUSED", who, err, r)
				}
			}
			c := client(updater)
			check := func(wantRcode int) {
				t.Helper()
				r, err := c.Exchange(ctxT(t), query(name, dns.TypeA))
				if err != nil || r.Rcode != wantRcode {
					t.Fatalf("query %s: %v %v, want %s", name, err, r, dns.RcodeToString[wantRcode])
				}
			}
			check(dns.RcodeNameError)
			r, err := c.Exchange(ctxT(t), up)
			if err != nil || r.Rcode != dns.RcodeSuccess {
				t.Fatalf("update: %v %v", err, r)
			}
			check(dns.RcodeSuccess)
			// Prerequisite "name is not in use" now fails with YXDOMAIN.
			pre := new(dns.Msg)
			pre.SetUpdate("example.test.")
			pre.NameNotUsed([]dns.RR{mustRR(t, name+" 0 IN A 0.0.0.0")})
			pre.Insert([]dns.RR{mustRR(t, name+" 60 IN A 192.0.2.201")})
			if r, err := c.Exchange(ctxT(t), pre); err != nil || r.Rcode != dns.RcodeYXDomain {
				t.Fatalf("prerequisite update: %v %v, want YXDOMAIN", err, r)
			}
			// Delete the name again.
			del := new(dns.Msg)
			del.SetUpdate("example.test.")
			del.RemoveName([]dns.RR{mustRR(t, name+" 0 IN A 0.0.0.0")})
			if r, err := c.Exchange(ctxT(t), del); err != nil || r.Rcode != dns.RcodeSuccess {
				t.Fatalf("delete: %v %v", err, r)
			}
			check(dns.RcodeNameError)
			// A zone we do not serve.
			other := new(dns.Msg)
			other.SetUpdate("example.org.")
			if r, err := c.Exchange(ctxT(t), other); err != nil || r.Rcode != dns.RcodeNotAuth {
				t.Fatalf("update of foreign zone: %v %v, want NOTAUTH", err, r)
			}
		})
	}
}

func TestDynamicUpdateRefusedOverClassic(t *testing.T) {
	srv := newTestServer(t, alkdns.Config{})
	addr := startClassic(t, srv)
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network}
		r, _, err := c.Exchange(newUpdate(t, "x.example.test. 60 IN A 192.0.2.9"), addr)
		if err != nil || r.Rcode != dns.RcodeRefused {
			t.Fatalf("%s update: %v %v, want REFUSED", network, err, r)
		}
	}
}

func TestUpdateSerialAndSOA(t *testing.T) {
	updater := core.GenerateKey()
	srv, node := startDNS(t, alkdns.Config{}, coretest.WithPeers(coretest.PeerFor("u", updater, core.ScopeDNSUpdate)))
	before := srv.Zone("example.test").SOA().Serial
	c := &alkdns.Client{Addr: node.Addr(), Key: updater}
	t.Cleanup(func() { c.Close() })
	up := newUpdate(t, "www.example.test. 300 IN TXT \"hello\"", "alias.example.test. 300 IN A 192.0.2.3")
	if r, err := c.Exchange(ctxT(t), up); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("update: %v %v", err, r)
	}
	if got := srv.Zone("example.test").SOA().Serial; got != before+1 {
		t.Fatalf("serial %d, want %d", got, before+1)
	}
	// The A record beside the CNAME was ignored (RFC 2136 section 3.4.2.2).
	r, _ := c.Exchange(ctxT(t), query("alias.example.test.", dns.TypeA))
	if len(r.Answer) != 2 || r.Answer[0].Header().Rrtype != dns.TypeCNAME {
		t.Fatalf("alias: %v", r)
	}
	r, _ = c.Exchange(ctxT(t), query("www.example.test.", dns.TypeTXT))
	if len(r.Answer) != 1 {
		t.Fatalf("www TXT: %v", r)
	}
}
