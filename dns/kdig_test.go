package dns_test

import (
	"log/slog"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/alkdev/alknet/core/coretest"
	alkdns "github.com/alkdev/alknet/dns"
)

// dnsCase is one query a real client sends and what the answer must hold.
type dnsCase struct {
	name, qtype string
	rcode       string   // NOERROR, NXDOMAIN, REFUSED
	answer      []string // substrings each required in the answer section
	authority   string   // substring required in the authority section ("" = none required)
	noAnswer    bool     // the answer section must be empty
}

var realClientCases = []dnsCase{
	{name: "www.example.test", qtype: "A", rcode: "NOERROR", answer: []string{"www.example.test.", "192.0.2.1"}},
	{name: "www.example.test", qtype: "AAAA", rcode: "NOERROR", answer: []string{"2001:db8::1"}},
	{name: "chain1.example.test", qtype: "A", rcode: "NOERROR", answer: []string{"chain1.example.test.", "CNAME", "chain2.example.test.", "alias.example.test.", "192.0.2.1"}},
	{name: "foo.wild.example.test", qtype: "A", rcode: "NOERROR", answer: []string{"foo.wild.example.test.", "192.0.2.99"}},
	{name: "missing.example.test", qtype: "A", rcode: "NXDOMAIN", noAnswer: true, authority: "SOA"},
	{name: "www.example.test", qtype: "TXT", rcode: "NOERROR", noAnswer: true, authority: "SOA"},
	{name: "ent.sub.example.test", qtype: "A", rcode: "NOERROR", noAnswer: true, authority: "SOA"},
	{name: "example.test", qtype: "MX", rcode: "NOERROR", answer: []string{"10 mail.example.test."}},
	{name: "example.test", qtype: "CAA", rcode: "NOERROR", answer: []string{"letsencrypt.org"}},
	{name: "www.example.org", qtype: "A", rcode: "REFUSED", noAnswer: true},
}

var (
	statusRe = regexp.MustCompile(`status: ([A-Z]+)`)
)

// section returns the lines of a dig/kdig section ("ANSWER", "AUTHORITY").
func section(out, name string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, ";; "+name+" SECTION:"):
			in = true
		case in && (strings.HasPrefix(line, ";;") || strings.TrimSpace(line) == ""):
			if b.Len() > 0 || strings.TrimSpace(line) == "" {
				in = false
			}
		case in:
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func checkDig(t *testing.T, out string, c dnsCase) {
	t.Helper()
	m := statusRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s %s: no status in output:\n%s", c.name, c.qtype, out)
	}
	if m[1] != c.rcode {
		t.Fatalf("%s %s: status %s, want %s\n%s", c.name, c.qtype, m[1], c.rcode, out)
	}
	ans := section(out, "ANSWER")
	for _, want := range c.answer {
		if !strings.Contains(ans, want) {
			t.Fatalf("%s %s: answer lacks %q:\n%s", c.name, c.qtype, want, out)
		}
	}
	if c.noAnswer && ans != "" {
		t.Fatalf("%s %s: answer section should be empty:\n%s", c.name, c.qtype, out)
	}
	if c.authority != "" && !strings.Contains(section(out, "AUTHORITY"), c.authority) {
		t.Fatalf("%s %s: authority lacks %q:\n%s", c.name, c.qtype, c.authority, out)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestKdigDoT queries the DoT listener with knot's kdig (GnuTLS) in opportunistic
// mode: the endpoint's self-signed Ed25519 certificate must be accepted.
func TestKdigDoT(t *testing.T) {
	kdig := needTool(t, "kdig")
	_, node := startDNS(t, alkdns.Config{})
	host, port := hostPort(t, node.TCPAddr())
	for _, c := range realClientCases {
		t.Run(c.name+"/"+c.qtype, func(t *testing.T) {
			out := run(t, kdig, "@"+host, "-p", port, "+tls", "+timeout=5", "+retry=0", c.name, c.qtype)
			if !strings.Contains(out, "TLS session") {
				t.Fatalf("kdig did not use TLS:\n%s", out)
			}
			checkDig(t, out, c)
		})
	}
}

// TestKdigDoH queries the DoH handler, served from a TLS net/http server, with kdig
// +https over POST and GET.
func TestKdigDoH(t *testing.T) {
	kdig := needTool(t, "kdig")
	srv, _ := startDNS(t, alkdns.Config{})
	hs := httptest.NewUnstartedServer(srv.DoH())
	hs.EnableHTTP2 = true
	hs.StartTLS()
	t.Cleanup(hs.Close)
	host, port := hostPort(t, hs.Listener.Addr())
	for _, method := range []string{"+https", "+https-get"} {
		for _, c := range realClientCases {
			t.Run(method+"/"+c.name+"/"+c.qtype, func(t *testing.T) {
				args := []string{"@" + host, "-p", port, "+https=/dns-query", "+timeout=5", "+retry=0", c.name, c.qtype}
				if method == "+https-get" {
					args = append(args, "+https-get")
				}
				out := run(t, kdig, args...)
				if !strings.Contains(out, "HTTP session") {
					t.Fatalf("kdig did not use HTTPS:\n%s", out)
				}
				checkDig(t, out, c)
			})
		}
	}
}

// TestDigClassic queries the classic listener with BIND's dig over UDP and TCP.
func TestDigClassic(t *testing.T) {
	dig := needTool(t, "dig")
	srv, _ := startDNS(t, alkdns.Config{})
	host, port := hostPort(t, mustAddr(t, startClassic(t, srv)))
	for _, proto := range []string{"+notcp", "+tcp"} {
		for _, c := range realClientCases {
			t.Run(proto+"/"+c.name+"/"+c.qtype, func(t *testing.T) {
				out := run(t, dig, "@"+host, "-p", port, proto, "+time=5", "+tries=1", c.name, c.qtype)
				checkDig(t, out, c)
			})
		}
	}
}

// TestDigTruncation: a large answer over UDP without EDNS comes back with TC set, and
// dig's automatic retry over TCP gets all of it.
func TestDigTruncation(t *testing.T) {
	dig := needTool(t, "dig")
	srv, _ := startDNS(t, alkdns.Config{})
	host, port := hostPort(t, mustAddr(t, startClassic(t, srv)))
	out := run(t, dig, "@"+host, "-p", port, "+notcp", "+noedns", "+ignore", "+time=5", "+tries=1", "big.example.test", "TXT")
	if !regexp.MustCompile(`flags:[^;]* tc`).MatchString(out) {
		t.Fatalf("UDP answer without EDNS was not truncated:\n%s", out)
	}
	out = run(t, dig, "@"+host, "-p", port, "+notcp", "+noedns", "+time=5", "+tries=1", "big.example.test", "TXT")
	if strings.Count(section(out, "ANSWER"), "TXT") != 3 {
		t.Fatalf("retry over TCP did not get the three TXT records:\n%s", out)
	}
}

// TestKdigDoTKeepOpen sends several queries over one TLS connection with kdig
// +keepopen: every answer arrives, and the endpoint logs a single connection.
func TestKdigDoTKeepOpen(t *testing.T) {
	kdig := needTool(t, "kdig")
	var logBuf coretest.SyncBuffer
	_, node := startDNS(t, alkdns.Config{}, coretest.WithLogger(slog.New(slog.NewTextHandler(&logBuf, nil))))
	host, port := hostPort(t, node.TCPAddr())
	out := run(t, kdig, "@"+host, "-p", port, "+tls", "+keepopen", "+timeout=5", "+retry=0",
		"www.example.test", "A", "alias.example.test", "AAAA", "foo.wild.example.test", "TXT")
	for _, want := range []string{"192.0.2.1", "2001:db8::1", `"wildcard"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("answers lack %s:\n%s", want, out)
		}
	}
	if n := strings.Count(logBuf.String(), "msg=auth"); n != 1 {
		t.Fatalf("%d connections logged, want 1:\n%s", n, logBuf.String())
	}
}
