package dns_test

import (
	"context"
	"strings"
	"testing"

	alkdns "github.com/alkdev/alknet/dns"
	"github.com/miekg/dns"
)

func newTestServer(t testing.TB, cfg alkdns.Config) *alkdns.Server {
	t.Helper()
	if cfg.Zones == nil {
		cfg.Zones = []string{testZone}
	}
	srv, err := alkdns.NewServer(cfg, alkdns.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func TestZoneAnswers(t *testing.T) {
	srv := newTestServer(t, alkdns.Config{})
	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		aa     bool
		answer []string // each answer record's String() contains these, in order
		ns     string   // type of the authority record, "" for none
		extra  int      // additional records besides OPT
	}{
		{"www.example.test.", dns.TypeA, dns.RcodeSuccess, true, []string{"192.0.2.1"}, "", 0},
		{"WWW.Example.TEST.", dns.TypeA, dns.RcodeSuccess, true, []string{"WWW.Example.TEST.\t300\tIN\tA\t192.0.2.1"}, "", 0},
		{"alias.example.test.", dns.TypeA, dns.RcodeSuccess, true, []string{"CNAME\twww.example.test.", "192.0.2.1"}, "", 0},
		{"chain1.example.test.", dns.TypeAAAA, dns.RcodeSuccess, true, []string{"chain2", "alias", "www", "2001:db8::1"}, "", 0},
		{"alias.example.test.", dns.TypeCNAME, dns.RcodeSuccess, true, []string{"CNAME"}, "", 0},
		{"external.example.test.", dns.TypeA, dns.RcodeSuccess, true, []string{"www.example.org."}, "", 0},
		{"loop1.example.test.", dns.TypeA, dns.RcodeServerFailure, true, nil, "", 0},
		{"a.b.wild.example.test.", dns.TypeA, dns.RcodeSuccess, true, []string{"a.b.wild.example.test.\t300\tIN\tA\t192.0.2.99"}, "", 0},
		{"x.wild.example.test.", dns.TypeAAAA, dns.RcodeSuccess, true, nil, "SOA", 0},
		{"wild.example.test.", dns.TypeA, dns.RcodeSuccess, true, nil, "SOA", 0}, // empty non-terminal
		{"nothere.example.test.", dns.TypeA, dns.RcodeNameError, true, nil, "SOA", 0},
		{"www.example.test.", dns.TypeMX, dns.RcodeSuccess, true, nil, "SOA", 0},
		{"example.test.", dns.TypeSOA, dns.RcodeSuccess, true, []string{"SOA"}, "", 0},
		{"example.test.", dns.TypeNS, dns.RcodeSuccess, true, []string{"ns1.example.test."}, "", 1},
		{"example.test.", dns.TypeMX, dns.RcodeSuccess, true, []string{"10 mail.example.test."}, "", 1},
		{"example.test.", dns.TypeTXT, dns.RcodeSuccess, true, []string{"v=spf1"}, "", 0},
		{"example.test.", dns.TypeCAA, dns.RcodeSuccess, true, []string{"issue"}, "", 0},
		{"_sip._tcp.example.test.", dns.TypeSRV, dns.RcodeSuccess, true, []string{"5060 www.example.test."}, "", 2},
		{"deep.ent.sub.example.test.", dns.TypeA, dns.RcodeSuccess, true, []string{"192.0.2.7"}, "", 0},
		{"host.child.example.test.", dns.TypeA, dns.RcodeSuccess, false, nil, "NS", 1}, // referral
		{"www.example.org.", dns.TypeA, dns.RcodeRefused, false, nil, "", 0},
		{"example.test.", dns.TypeAXFR, dns.RcodeRefused, false, nil, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name+dns.TypeToString[tc.qtype], func(t *testing.T) {
			q := query(tc.name, tc.qtype)
			q.SetEdns0(1232, false)
			m := srv.Handle(context.Background(), q, alkdns.Info{Transport: "test"})
			if m.Rcode != tc.rcode || m.Authoritative != tc.aa {
				t.Fatalf("rcode %s aa %v, want %s aa %v\n%s", dns.RcodeToString[m.Rcode], m.Authoritative, dns.RcodeToString[tc.rcode], tc.aa, m)
			}
			if tc.rcode == dns.RcodeSuccess && len(m.Answer) != len(tc.answer) {
				t.Fatalf("%d answers, want %d\n%s", len(m.Answer), len(tc.answer), m)
			}
			for i, want := range tc.answer {
				if !strings.Contains(m.Answer[i].String(), want) {
					t.Fatalf("answer %d = %q, want it to contain %q", i, m.Answer[i], want)
				}
			}
			if tc.ns == "" && len(m.Ns) != 0 || tc.ns != "" && (len(m.Ns) == 0 || dns.TypeToString[m.Ns[0].Header().Rrtype] != tc.ns) {
				t.Fatalf("authority %v, want %q", m.Ns, tc.ns)
			}
			if tc.ns == "SOA" && m.Ns[0].Header().Ttl != 60 {
				t.Fatalf("negative SOA TTL %d, want 60 (the SOA minimum)", m.Ns[0].Header().Ttl)
			}
			if got := len(m.Extra) - 1; got != tc.extra { // less the OPT record
				t.Fatalf("%d additional records, want %d\n%s", got, tc.extra, m)
			}
		})
	}
}

func TestZoneErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"no SOA", "$ORIGIN a.test.\nwww IN A 192.0.2.1\n", "no SOA"},
		{"outside", "$ORIGIN a.test.\n@ IN SOA ns hm 1 2 3 4 5\nwww.b.test. IN A 192.0.2.1\n", "outside the zone"},
		{"syntax", "$ORIGIN a.test.\n@ IN SOA ns hm 1 2 3 4 5\nwww IN A 999.0.2.1\n", "a.zone"},
		{"include", "$ORIGIN a.test.\n$INCLUDE /etc/passwd\n", "a.zone"},
		{"two SOAs", "$ORIGIN a.test.\n@ IN SOA ns hm 1 2 3 4 5\n@ IN SOA ns hm 2 2 3 4 5\n", "more than one SOA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := alkdns.ParseZone(strings.NewReader(tc.text), "", "a.zone")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestServerRejects(t *testing.T) {
	srv := newTestServer(t, alkdns.Config{})
	tests := []struct {
		name  string
		mod   func(*dns.Msg)
		rcode int
	}{
		{"response bit", func(m *dns.Msg) { m.Response = true }, dns.RcodeFormatError},
		{"two questions", func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }, dns.RcodeFormatError},
		{"no question", func(m *dns.Msg) { m.Question = nil }, dns.RcodeFormatError},
		{"notify", func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }, dns.RcodeNotImplemented},
		{"chaos class", func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }, dns.RcodeRefused},
		{"edns version 1", func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }, dns.RcodeBadVers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := query("www.example.test.", dns.TypeA)
			tc.mod(q)
			m := srv.Handle(context.Background(), q, alkdns.Info{})
			if m.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
		})
	}
}
