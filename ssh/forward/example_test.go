package forward_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/ssh/forward"
)

// staticResolver resolves every name to one address.
type staticResolver netip.Addr

func (r staticResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.Addr(r)}, nil
}

func ExamplePolicy_CheckHost() {
	p, err := forward.Compile(forward.Config{
		Default: "deny",
		Rules: []forward.Rule{
			{Action: "deny", Target: "10.0.0.0/8"},
			{Action: "allow", Target: "*.example.com:443"},
			{Action: "allow", Target: "127.0.0.1:8000-8999", Scopes: []string{"ssh:forward:local"}},
		},
	})
	if err != nil {
		panic(err)
	}
	who := forward.Who{Peer: core.Peer{Identity: &core.Identity{Name: "alice", Scopes: []string{"ssh:forward:local"}}}}
	ctx := context.Background()

	d, err := p.CheckHost(ctx, staticResolver(netip.MustParseAddr("192.0.2.10")), "www.example.com", 443, who)
	fmt.Println(d.Addrs, err)

	// The name is allowed, but it resolves into a denied network.
	_, err = p.CheckHost(ctx, staticResolver(netip.MustParseAddr("10.1.1.1")), "intranet.example.com", 443, who)
	fmt.Println(errors.Is(err, forward.ErrProhibited))

	_, err = p.CheckHost(ctx, nil, "127.0.0.1", 22, who)
	fmt.Println(errors.Is(err, forward.ErrProhibited))
	// Output:
	// [192.0.2.10] <nil>
	// true
	// true
}

func ExampleNew() {
	f, err := forward.New(forward.Config{
		Rules: []forward.Rule{{Action: "allow", Target: "localhost:8080"}},
	}, forward.Options{Mux: core.NewMux()})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	// Plug f.HandleDirectTCPIP and the other handlers into the SSH server; later:
	err = f.SetConfig(forward.Config{Default: "deny"})
	fmt.Println(err)
	// Output: <nil>
}
