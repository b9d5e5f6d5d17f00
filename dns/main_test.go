package dns_test

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	alkdns "github.com/alkdev/alknet/dns"
	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testZone is the zone every test serves.
var testZone = filepath.Join("testdata", "example.test.zone")

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startDNS starts a server for cfg (the test zone when cfg.Zones is empty) on a real
// endpoint serving doq and dot, and returns both.
func startDNS(t testing.TB, cfg alkdns.Config, opts ...coretest.Option) (*alkdns.Server, *coretest.Node) {
	t.Helper()
	if cfg.Zones == nil {
		cfg.Zones = []string{testZone}
	}
	srv, err := alkdns.NewServer(cfg, alkdns.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	mux := core.NewMux()
	mux.Handle(alkdns.ALPNDoQ, srv)
	mux.Handle(alkdns.ALPNDoT, srv)
	return srv, coretest.StartNode(t, mux, opts...)
}

// startClassic serves srv over UDP and TCP on a free loopback port.
func startClassic(t testing.TB, srv *alkdns.Server) string {
	t.Helper()
	udp, _, err := srv.ListenClassic("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return udp.String()
}

// query builds a query for name and type.
func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	return m
}

func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install knot-dnsutils bind9-dnsutils)", name)
	}
	return p
}

func hostPort(t testing.TB, a net.Addr) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func mustAddr(t testing.TB, s string) net.Addr {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
