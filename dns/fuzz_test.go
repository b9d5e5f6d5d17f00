package dns_test

import (
	"context"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	alkdns "github.com/alkdev/alknet/dns"
	"github.com/miekg/dns"
)

func seedMessages(f *testing.F) {
	for _, q := range []*dns.Msg{
		query("www.example.test.", dns.TypeA),
		query("chain1.example.test.", dns.TypeAAAA),
		query("x.wild.example.test.", dns.TypeTXT),
		query("_alknet.yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no.pk.test.", dns.TypeTXT),
		newUpdate(f, "x.example.test. 60 IN A 192.0.2.1"),
	} {
		q.Id = 0
		q.SetEdns0(1232, false)
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 8)})
		b, err := q.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0x28, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc0, 0x0c})
}

// FuzzHandle runs arbitrary bytes through decoding, Handle (with an identity that may
// update, so update paths run too) and encoding. Nothing may panic.
func FuzzHandle(f *testing.F) {
	seedMessages(f)
	srv, err := alkdns.NewServer(alkdns.Config{Zones: []string{testZone}, PkarrZone: "pk.test", RateLimit: -1}, alkdns.Options{Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	updater := core.Peer{Identity: &core.Identity{Name: "fuzz", Scopes: []string{core.ScopeDNSUpdate}}}
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			return
		}
		for _, tr := range []string{"doq", "udp"} {
			resp := srv.Handle(context.Background(), req.Copy(), alkdns.Info{Transport: tr, Peer: updater})
			if resp == nil {
				t.Fatal("nil response")
			}
			// Encoding may fail for a question miekg decoded but cannot re-encode;
			// it must not panic.
			resp.Pack()
		}
	})
}

// FuzzStreams feeds arbitrary bytes to the DoQ and DoT stream handlers over an
// in-memory connection: the server must answer or close, and never crash.
func FuzzStreams(f *testing.F) {
	seedMessages(f)
	srv, err := alkdns.NewServer(alkdns.Config{Zones: []string{testZone}, RateLimit: -1}, alkdns.Options{Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	f.Fuzz(func(t *testing.T, b []byte) {
		framed := append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
		for _, alpn := range []string{alkdns.ALPNDoQ, alkdns.ALPNDoT} {
			for _, in := range [][]byte{b, framed} {
				client, server := coretest.Pipe(alpn, core.Peer{}, core.Peer{})
				done := make(chan struct{})
				go func() {
					srv.ServeConn(context.Background(), server)
					server.Close(0, "")
					close(done)
				}()
				st, err := client.OpenStream(context.Background())
				if err == nil {
					st.SetDeadline(time.Now().Add(2 * time.Second))
					st.Write(in)
					st.CloseWrite()
					io.Copy(io.Discard, io.LimitReader(st, 1<<20))
					st.Close()
				}
				client.Close(0, "")
				<-done
			}
		}
	})
}

// FuzzParseSignedPacket: the pkarr decoder never panics, and what it accepts
// re-encodes to the same bytes and verifies.
func FuzzParseSignedPacket(f *testing.F) {
	key := core.GenerateKey()
	sp, _ := alkdns.NodePacket(key, []string{"192.0.2.1:1"}, []string{"doq"}, 60)
	f.Add(sp.Bytes())
	f.Add(make([]byte, 104))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := alkdns.ParseSignedPacket(b)
		if err != nil {
			return
		}
		if string(got.Bytes()) != string(b) {
			t.Fatal("accepted packet does not re-encode to its bytes")
		}
		if err := got.Verify(); err != nil {
			t.Fatal(err)
		}
		got.Records("_alknet." + string(got.NodeID()))
	})
}

// FuzzZone parses arbitrary zone text and, when it loads, asks it a few questions.
func FuzzZone(f *testing.F) {
	f.Add("$ORIGIN a.test.\n@ IN SOA ns hm 1 2 3 4 5\nwww IN A 192.0.2.1\n*.w IN CNAME www\nx IN CNAME x\n")
	f.Add("a.test. IN SOA ns.a.test. hm.a.test. 1 2 3 4 5\nsub.a.test. IN NS ns.sub.a.test.\n")
	f.Fuzz(func(t *testing.T, text string) {
		z, err := alkdns.ParseZone(strings.NewReader(text), "", "fuzz.zone")
		if err != nil {
			return
		}
		under := func(label string) string { return strings.TrimSuffix(label+"."+z.Origin, ".") + "." }
		for _, name := range []string{z.Origin, under("www"), under("a.b.w"), under("x"), under("host.sub")} {
			name = strings.ReplaceAll(name, "..", ".")
			for _, qt := range []uint16{dns.TypeA, dns.TypeANY, dns.TypeCNAME, dns.TypeNS} {
				if m := z.Lookup(name, qt); m == nil {
					t.Fatal("nil answer")
				} else if _, err := m.Pack(); err != nil {
					t.Fatalf("answer does not encode: %v", err)
				}
			}
		}
	})
}
