package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/dns"
	mdns "github.com/miekg/dns"
)

const e2eZone = `$ORIGIN example.test.
$TTL 300
@     IN SOA ns1 hostmaster 1 3600 600 604800 60
      IN NS  ns1
ns1   IN A   192.0.2.53
www   IN A   192.0.2.1
alias IN CNAME www
*.w   IN A   192.0.2.99
`

// startDNSNode starts "alknet serve" with a zone and the classic listener, and
// returns the node and the classic listener's port.
func startDNSNode(t *testing.T) (*testNode, string, string) {
	t.Helper()
	zone := filepath.Join(t.TempDir(), "example.test.zone")
	if err := os.WriteFile(zone, []byte(e2eZone), 0o644); err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{
		"zones":          fmt.Sprintf("[%q]", zone),
		"classic_listen": `"127.0.0.1:0"`,
		"node_zone":      `"example.test"`,
	}
	// "alknet init" writes every section, so [dns] is edited in place.
	n := startNodeEdited(t, func(cfg string) string {
		head, sec, ok := strings.Cut(cfg, "\n[dns]\n")
		if !ok {
			t.Fatal("no [dns] section in the generated config")
		}
		for k, v := range settings {
			re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(k) + ` = .*$`)
			loc := re.FindStringIndex(sec)
			if loc == nil {
				t.Fatalf("no key %s in [dns]", k)
			}
			sec = sec[:loc[0]] + k + " = " + v + sec[loc[1]:]
		}
		return head + "\n[dns]\n" + sec
	})
	var port string
	deadline := time.Now().Add(10 * time.Second)
	for port == "" && time.Now().Before(deadline) {
		if m := regexp.MustCompile(`dig @127\.0\.0\.1 -p (\d+)`).FindStringSubmatch(n.Output()); m != nil {
			port = m[1]
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if port == "" {
		t.Fatalf("no classic DNS notice:\n%s", n.Output())
	}
	return n, port, zone
}

func TestDNSServeE2E(t *testing.T) {
	n, classicPort, zone := startDNSNode(t)
	_, tlsPort, _ := strings.Cut(n.HostPort, ":")

	t.Run("alknet dns query", func(t *testing.T) {
		for _, tr := range []string{"quic", "tcp"} {
			out, err := n.Run(t, "dns", "query", n.Addr, "alias.example.test", "A", "--identity", n.ClientKey, "--transport", tr)
			if err != nil || !strings.Contains(string(out), "192.0.2.1") || !strings.Contains(string(out), "CNAME") {
				t.Fatalf("%s: %v\n%s", tr, err, out)
			}
			out, err = n.Run(t, "dns", "query", n.Addr, "nope.example.test", "--anonymous", "--transport", tr)
			if err != nil || !strings.Contains(string(out), "NXDOMAIN") {
				t.Fatalf("%s NXDOMAIN: %v\n%s", tr, err, out)
			}
		}
		out, err := n.Run(t, "dns", "query", n.Addr, "x.w.example.test", "--short", "--anonymous")
		if err != nil || strings.TrimSpace(string(out)) != "192.0.2.99" {
			t.Fatalf("--short: %v\n%s", err, out)
		}
		// A wrong node ID fails closed, with no fallback to DoT.
		wrong := string(core.NodeIDOf(core.GenerateKey().Public().(ed25519.PublicKey)))
		if out, err := n.Run(t, "dns", "query", wrong+"@"+n.HostPort, "www.example.test", "--anonymous"); err == nil || !strings.Contains(string(out), "does not match the node ID") {
			t.Fatalf("wrong node ID: %v\n%s", err, out)
		}
		// The node's own records carry its ALPNs.
		id, _, _ := strings.Cut(n.Addr, "@")
		out, err = n.Run(t, "dns", "query", n.Addr, "_alknet."+id+".example.test", "TXT", "--short", "--anonymous")
		if err != nil || !strings.Contains(string(out), `"alpn=doq"`) || !strings.Contains(string(out), `"alpn=dot"`) || !strings.Contains(string(out), `"addr=`) {
			t.Fatalf("node records: %v\n%s", err, out)
		}
	})

	t.Run("kdig +tls", func(t *testing.T) {
		kdig, err := exec.LookPath("kdig")
		if err != nil {
			t.Skip("kdig not installed")
		}
		out, err := exec.Command(kdig, "@127.0.0.1", "-p", tlsPort, "+tls", "+timeout=5", "+retry=0", "www.example.test", "A").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "192.0.2.1") || !strings.Contains(string(out), "TLS session") {
			t.Fatalf("kdig: %v\n%s", err, out)
		}
	})

	t.Run("dig classic", func(t *testing.T) {
		dig, err := exec.LookPath("dig")
		if err != nil {
			t.Skip("dig not installed")
		}
		for _, proto := range []string{"+notcp", "+tcp"} {
			out, err := exec.Command(dig, "@127.0.0.1", "-p", classicPort, proto, "+time=5", "+tries=1", "www.example.org", "A").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "status: REFUSED") {
				t.Fatalf("dig %s: %v\n%s", proto, err, out)
			}
		}
	})

	t.Run("update needs dns:update", func(t *testing.T) {
		owner, err := core.ReadKeyFile(n.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		up := new(mdns.Msg)
		up.SetUpdate("example.test.")
		rr, _ := mdns.NewRR("added.example.test. 60 IN A 192.0.2.123")
		up.Insert([]mdns.RR{rr})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		anon := &dns.Client{Addr: n.Addr}
		defer anon.Close()
		if r, err := anon.Exchange(ctx, up); err != nil || r.Rcode != mdns.RcodeRefused {
			t.Fatalf("anonymous update: %v %v", r, err)
		}
		c := &dns.Client{Addr: n.Addr, Key: owner, DoT: true}
		defer c.Close()
		if r, err := c.Exchange(ctx, up); err != nil || r.Rcode != mdns.RcodeSuccess {
			t.Fatalf("owner update: %v %v", r, err)
		}
		out, err := n.Run(t, "dns", "query", n.Addr, "added.example.test", "--short", "--anonymous")
		if err != nil || strings.TrimSpace(string(out)) != "192.0.2.123" {
			t.Fatalf("after update: %v\n%s", err, out)
		}
	})

	t.Run("SIGHUP reloads zones", func(t *testing.T) {
		if err := os.WriteFile(zone, []byte(strings.Replace(e2eZone, "192.0.2.1\n", "192.0.2.2\n", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		n.Reload(t)
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, _ := n.Run(t, "dns", "query", n.Addr, "www.example.test", "--short", "--anonymous")
			if strings.TrimSpace(string(out)) == "192.0.2.2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("zone not reloaded: %s\n%s", out, n.Output())
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

func TestDNSPublishResolveE2E(t *testing.T) {
	n := startNode(t, "")
	relay := httptest.NewServer(dns.NewRelay(nil))
	t.Cleanup(relay.Close)
	out, err := n.Run(t, "dns", "publish", "--config", n.Config, "--relay", relay.URL, "--addr", "203.0.113.5:4433", "--alpn", "doq", "--alpn", "alknet/ssh")
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	id, _, _ := strings.Cut(n.Addr, "@")
	out, err = n.Run(t, "dns", "resolve", id, "--relay", relay.URL)
	if err != nil || !strings.Contains(string(out), "signature verified") || !strings.Contains(string(out), `"addr=203.0.113.5:4433"`) || !strings.Contains(string(out), `"alpn=alknet/ssh"`) {
		t.Fatalf("resolve: %v\n%s", err, out)
	}
	// Independent check of what the relay holds: the node's key, the BEP44 signable
	// written out by hand, and crypto/ed25519.
	resp, err := http.Get(relay.URL + "/" + id)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	key, err := core.ParseNodeID(id)
	if err != nil || len(body) < 72 {
		t.Fatalf("relay body %d bytes, %v", len(body), err)
	}
	sig, ts, packet := body[:64], binary.BigEndian.Uint64(body[64:72]), body[72:]
	signable := append(fmt.Appendf(nil, "3:seqi%de1:v%d:", ts, len(packet)), packet...)
	if !ed25519.Verify(key, signable, sig) {
		t.Fatal("the published packet does not verify under the node ID's key")
	}
	if !bytes.Contains(packet, []byte("alpn=doq")) {
		t.Fatal("packet lacks the ALPN record")
	}
	// A missing key is an error.
	other := string(core.NodeIDOf(core.GenerateKey().Public().(ed25519.PublicKey)))
	if out, err := n.Run(t, "dns", "resolve", other, "--relay", relay.URL); err == nil {
		t.Fatalf("resolving an unpublished key succeeded:\n%s", out)
	}
}
