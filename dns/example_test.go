package dns_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/alkdev/alknet/core"
	alkdns "github.com/alkdev/alknet/dns"
	"github.com/miekg/dns"
)

const exampleZone = `$ORIGIN example.com.
@    3600 IN SOA ns1 hostmaster 1 7200 900 1209600 300
     3600 IN NS  ns1
ns1  3600 IN A   192.0.2.53
www  3600 IN A   192.0.2.1
web  3600 IN CNAME www
`

func ExampleZone_Lookup() {
	z, err := alkdns.ParseZone(strings.NewReader(exampleZone), "", "example.com.zone")
	if err != nil {
		panic(err)
	}
	for _, rr := range z.Lookup("web.example.com", dns.TypeA).Answer {
		fmt.Println(rr)
	}
	fmt.Println(dns.RcodeToString[z.Lookup("nope.example.com", dns.TypeA).Rcode])
	// Output:
	// web.example.com.	3600	IN	CNAME	www.example.com.
	// www.example.com.	3600	IN	A	192.0.2.1
	// NXDOMAIN
}

// A server serves its zones to DoQ and DoT clients once registered on a core.Mux;
// Handle is the same answer path without a network.
func ExampleServer() {
	srv, err := alkdns.NewServer(alkdns.Config{Zones: []string{"testdata/example.test.zone"}}, alkdns.Options{})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	mux := core.NewMux()
	mux.Handle(alkdns.ALPNDoQ, srv)
	mux.Handle(alkdns.ALPNDoT, srv)

	q := new(dns.Msg)
	q.SetQuestion("www.example.test.", dns.TypeAAAA)
	r := srv.Handle(context.Background(), q, alkdns.Info{Transport: "example"})
	fmt.Println(r.Answer[0])
	fmt.Println(mux.ALPNs())
	// Output:
	// www.example.test.	300	IN	AAAA	2001:db8::1
	// [doq dot]
}

func ExampleSignRecords() {
	// A fixed seed keeps the output stable; use core.GenerateKey in real code.
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	id := core.NodeIDOf(key.Public().(ed25519.PublicKey))
	rr, _ := dns.NewRR(alkdns.RelativeName(key.Public().(ed25519.PublicKey), "_alknet") + " 300 IN TXT \"alpn=doq\"")
	sp, err := alkdns.SignRecords(key, []dns.RR{rr}, 1_700_000_000_000_000)
	if err != nil {
		panic(err)
	}
	got, err := alkdns.ParseSignedPacket(sp.Bytes()) // verifies the signature
	if err != nil {
		panic(err)
	}
	fmt.Println(got.NodeID() == id, got.Timestamp)
	fmt.Println(got.Records("_alknet." + string(id))[0].(*dns.TXT).Txt)
	// Output:
	// true 1700000000000000
	// [alpn=doq]
}

func ExampleRelay() {
	relay := httptest.NewServer(alkdns.NewRelay(nil))
	defer relay.Close()
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	sp, _ := alkdns.NodePacket(key, []string{"192.0.2.1:4433"}, []string{"doq"}, 300)

	c := &alkdns.RelayClient{URL: relay.URL}
	if err := c.Publish(context.Background(), sp); err != nil {
		panic(err)
	}
	got, err := c.Resolve(context.Background(), key.Public().(ed25519.PublicKey))
	if err != nil {
		panic(err)
	}
	m, _ := got.Msg()
	for _, rr := range m.Answer {
		fmt.Println(rr.(*dns.TXT).Txt)
	}
	// Output:
	// [addr=192.0.2.1:4433]
	// [alpn=doq]
}
