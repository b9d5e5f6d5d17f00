package forward

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/alkdev/alknet/core"
)

// fakeResolver answers from a table; unknown names fail.
type fakeResolver map[string][]string

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	list, ok := r[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	var out []netip.Addr
	for _, s := range list {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

func peer(name string, scopes ...string) core.Peer {
	return core.Peer{Identity: &core.Identity{Name: name, Scopes: scopes}}
}

func TestCheckHost(t *testing.T) {
	res := fakeResolver{
		"localhost":            {"127.0.0.1", "::1"},
		"internal.example.com": {"10.1.2.3"},
		"www.example.com":      {"93.184.216.34"},
		"a.b.example.com":      {"93.184.216.35"},
		"example.com":          {"93.184.216.36"},
		"sneaky.test":          {"10.9.9.9"},
		"split.test":           {"10.0.0.5", "192.0.2.7"},
		"mapped.test":          {"::ffff:10.0.0.1"},
		"zero.test":            {"0.0.0.0"},
		"zero6.test":           {"::", "::ffff:0.0.0.0"},
		"zeroandpublic.test":   {"0.0.0.0", "192.0.2.7"},
		"2130706433":           {"127.0.0.1"}, // what getaddrinfo makes of it
		"0":                    {"0.0.0.0"},
	}
	alice := peer("alice", "ssh:forward:local")
	bob := peer("bob", "ssh:forward:local", "ops")
	type check struct {
		host  string
		port  uint32
		who   core.Peer
		trans string
		want  error    // nil, ErrProhibited or ErrUnresolved
		addrs []string // expected addresses when allowed
	}
	tests := []struct {
		name   string
		cfg    Config
		checks []check
	}{
		{
			name: "default deny",
			cfg:  Config{},
			checks: []check{
				{host: "127.0.0.1", port: 80, who: alice, want: ErrProhibited},
				{host: "localhost", port: 80, who: alice, want: ErrProhibited},
				{host: "alknet-call", port: 0, who: alice, want: ErrProhibited},
			},
		},
		{
			name: "default allow is a setting",
			cfg:  Config{Default: "allow"},
			checks: []check{
				{host: "127.0.0.1", port: 80, who: alice, addrs: []string{"127.0.0.1"}},
				{host: "nowhere.invalid", port: 80, who: alice, want: ErrUnresolved},
			},
		},
		{
			name: "CIDR with a port range",
			cfg:  Config{Rules: []Rule{{Action: "allow", Target: "127.0.0.1:8000-8999"}}},
			checks: []check{
				{host: "127.0.0.1", port: 8000, who: alice, addrs: []string{"127.0.0.1"}},
				{host: "127.0.0.1", port: 8999, who: alice, addrs: []string{"127.0.0.1"}},
				{host: "127.0.0.1", port: 7999, who: alice, want: ErrProhibited},
				{host: "127.0.0.1", port: 9000, who: alice, want: ErrProhibited},
				{host: "127.0.0.2", port: 8000, who: alice, want: ErrProhibited},
				// The name resolves to 127.0.0.1 and ::1; only the checked one is kept.
				{host: "localhost", port: 8080, who: alice, addrs: []string{"127.0.0.1"}},
				{host: "LOCALHOST.", port: 8080, who: alice, addrs: []string{"127.0.0.1"}},
				{host: "::ffff:127.0.0.1", port: 8080, who: alice, addrs: []string{"127.0.0.1"}},
			},
		},
		{
			name: "CIDR ranges and IPv6 brackets",
			cfg: Config{Rules: []Rule{
				{Action: "allow", Target: "10.0.0.0/8:22"},
				{Action: "allow", Target: "[2001:db8::/32]:*"},
				{Action: "allow", Target: "::1"},
			}},
			checks: []check{
				{host: "10.200.1.1", port: 22, who: alice, addrs: []string{"10.200.1.1"}},
				{host: "10.200.1.1", port: 23, who: alice, want: ErrProhibited},
				{host: "11.0.0.1", port: 22, who: alice, want: ErrProhibited},
				{host: "2001:db8::5", port: 443, who: alice, addrs: []string{"2001:db8::5"}},
				{host: "2001:db9::5", port: 443, who: alice, want: ErrProhibited},
				{host: "::1", port: 1, who: alice, addrs: []string{"::1"}},
				{host: "fe80::1%eth0", port: 1, who: alice, want: ErrProhibited},
			},
		},
		{
			name: "globs do not match the apex",
			cfg:  Config{Rules: []Rule{{Action: "allow", Target: "*.example.com:443"}}},
			checks: []check{
				{host: "www.example.com", port: 443, who: alice, addrs: []string{"93.184.216.34"}},
				{host: "a.b.example.com", port: 443, who: alice, addrs: []string{"93.184.216.35"}},
				{host: "example.com", port: 443, who: alice, want: ErrProhibited},
				{host: "www.example.com", port: 80, who: alice, want: ErrProhibited},
				{host: "wwwexample.com", port: 443, who: alice, want: ErrProhibited},
				// A glob never matches an address the client sends.
				{host: "93.184.216.34", port: 443, who: alice, want: ErrProhibited},
			},
		},
		{
			name: "first match wins",
			cfg: Config{Rules: []Rule{
				{Action: "deny", Target: "*:22"},
				{Action: "allow", Target: "*"},
			}},
			checks: []check{
				{host: "127.0.0.1", port: 22, who: alice, want: ErrProhibited},
				{host: "127.0.0.1", port: 80, who: alice, addrs: []string{"127.0.0.1"}},
			},
		},
		{
			name: "a name cannot dodge a CIDR deny",
			cfg: Config{Rules: []Rule{
				{Action: "deny", Target: "10.0.0.0/8"},
				{Action: "allow", Target: "*"},
			}},
			checks: []check{
				{host: "10.1.2.3", port: 80, who: alice, want: ErrProhibited},
				{host: "internal.example.com", port: 80, who: alice, want: ErrProhibited},
				{host: "sneaky.test", port: 80, who: alice, want: ErrProhibited},
				{host: "mapped.test", port: 80, who: alice, want: ErrProhibited},
				// Of a name's addresses only the allowed one is dialled.
				{host: "split.test", port: 80, who: alice, addrs: []string{"192.0.2.7"}},
				{host: "www.example.com", port: 80, who: alice, addrs: []string{"93.184.216.34"}},
				{host: "nowhere.invalid", port: 80, who: alice, want: ErrUnresolved},
			},
		},
		{
			name: "an earlier name rule wins over a later CIDR deny",
			cfg: Config{Rules: []Rule{
				{Action: "allow", Target: "internal.example.com"},
				{Action: "deny", Target: "10.0.0.0/8"},
			}},
			checks: []check{
				{host: "internal.example.com", port: 80, who: alice, addrs: []string{"10.1.2.3"}},
				{host: "sneaky.test", port: 80, who: alice, want: ErrProhibited},
			},
		},
		{
			name: "a refused name is refused before it resolves",
			cfg:  Config{Rules: []Rule{{Action: "allow", Target: "*.example.com"}}},
			checks: []check{
				{host: "nowhere.invalid", port: 80, who: alice, want: ErrProhibited},
				{host: "gone.example.com", port: 80, who: alice, want: ErrUnresolved},
			},
		},
		{
			name: "peers, scopes and transports narrow a rule",
			cfg: Config{Rules: []Rule{
				{Action: "allow", Target: "127.0.0.1:22", Peers: []string{"bob"}},
				{Action: "allow", Target: "127.0.0.1:5432", Scopes: []string{"ops"}},
				{Action: "allow", Target: "127.0.0.1:80", Transports: []string{"quic"}},
			}},
			checks: []check{
				{host: "127.0.0.1", port: 22, who: bob, addrs: []string{"127.0.0.1"}},
				{host: "127.0.0.1", port: 22, who: alice, want: ErrProhibited},
				{host: "127.0.0.1", port: 5432, who: bob, addrs: []string{"127.0.0.1"}},
				{host: "127.0.0.1", port: 5432, who: alice, want: ErrProhibited},
				{host: "127.0.0.1", port: 5432, who: core.Peer{}, want: ErrProhibited},
				{host: "127.0.0.1", port: 80, who: alice, trans: "quic", addrs: []string{"127.0.0.1"}},
				{host: "127.0.0.1", port: 80, who: alice, trans: "tcp", want: ErrProhibited},
			},
		},
		{
			name: "internal services by name, never resolved",
			cfg: Config{Rules: []Rule{
				{Action: "deny", Target: "alknet-admin"},
				{Action: "allow", Target: "alknet-*"},
			}},
			checks: []check{
				{host: "alknet-call", port: 0, who: alice},
				{host: "alknet-admin", port: 0, who: alice, want: ErrProhibited},
				{host: "alknet-", port: 0, who: alice, want: ErrProhibited},
			},
		},
		{
			// Linux connects 0.0.0.0 and :: to the local host, so a loopback deny
			// must not be dodged through them: such addresses are refused whatever
			// the rules say, as are multicast, broadcast and IPv4-compatible ones.
			name: "only unicast addresses of one host are dialled",
			cfg: Config{Rules: []Rule{
				{Action: "deny", Target: "127.0.0.0/8"},
				{Action: "deny", Target: "::1"},
				{Action: "deny", Target: "localhost"},
				{Action: "deny", Target: "alknet-*"},
				{Action: "allow", Target: "*"},
			}},
			checks: []check{
				{host: "0.0.0.0", port: 80, who: alice, want: ErrProhibited},
				{host: "0.1.2.3", port: 80, who: alice, want: ErrProhibited},
				{host: "::", port: 80, who: alice, want: ErrProhibited},
				{host: "::ffff:0.0.0.0", port: 80, who: alice, want: ErrProhibited},
				{host: "::ffff:0.0.0.1", port: 80, who: alice, want: ErrProhibited},
				{host: "::7f00:1", port: 80, who: alice, want: ErrProhibited},
				{host: "255.255.255.255", port: 80, who: alice, want: ErrProhibited},
				{host: "224.0.0.1", port: 80, who: alice, want: ErrProhibited},
				{host: "ff02::1", port: 80, who: alice, want: ErrProhibited},
				{host: "::ffff:224.0.0.1", port: 80, who: alice, want: ErrProhibited},
				{host: "zero.test", port: 80, who: alice, want: ErrProhibited},
				{host: "zero6.test", port: 80, who: alice, want: ErrProhibited},
				{host: "0", port: 80, who: alice, want: ErrProhibited},
				{host: "zeroandpublic.test", port: 80, who: alice, addrs: []string{"192.0.2.7"}},
				// Refused by the rules already.
				{host: "127.0.0.1", port: 80, who: alice, want: ErrProhibited},
				{host: "127.1.2.3", port: 80, who: alice, want: ErrProhibited},
				{host: "::1", port: 80, who: alice, want: ErrProhibited},
				{host: "::ffff:127.0.0.1", port: 80, who: alice, want: ErrProhibited},
				{host: "localhost", port: 80, who: alice, want: ErrProhibited},
				{host: "2130706433", port: 80, who: alice, want: ErrProhibited},
				{host: "fe80::1%lo", port: 80, who: alice, want: ErrProhibited},
				{host: "ALKNET-CALL", port: 80, who: alice, want: ErrProhibited},
				// Ordinary unicast passes, IPv4-mapped forms as IPv4.
				{host: "192.0.2.7", port: 80, who: alice, addrs: []string{"192.0.2.7"}},
				{host: "::ffff:192.0.2.7", port: 80, who: alice, addrs: []string{"192.0.2.7"}},
				{host: "2001:db8::1", port: 80, who: alice, addrs: []string{"2001:db8::1"}},
			},
		},
		{
			name: "no rule allows an unspecified or multicast address",
			cfg: Config{Default: "allow", Rules: []Rule{
				{Action: "allow", Target: "0.0.0.0/0"},
				{Action: "allow", Target: "::/0"},
				{Action: "allow", Target: "0.0.0.0"},
			}},
			checks: []check{
				{host: "0.0.0.0", port: 80, who: alice, want: ErrProhibited},
				{host: "::", port: 80, who: alice, want: ErrProhibited},
				{host: "[::]", port: 80, who: alice, want: ErrProhibited},
				{host: "239.1.1.1", port: 80, who: alice, want: ErrProhibited},
				{host: "zero.test", port: 80, who: alice, want: ErrProhibited},
				{host: "127.0.0.1", port: 80, who: alice, addrs: []string{"127.0.0.1"}},
				{host: "::1", port: 80, who: alice, addrs: []string{"::1"}},
			},
		},
		{
			name: "bad names",
			cfg:  Config{Default: "allow"},
			checks: []check{
				{host: "", port: 80, who: alice, want: ErrProhibited},
				{host: "a b", port: 80, who: alice, want: ErrProhibited},
				{host: "*.example.com", port: 80, who: alice, want: ErrProhibited},
				{host: "127.0.0.1", port: 70000, who: alice, want: ErrProhibited},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tt.checks {
				dec, err := p.CheckHost(context.Background(), res, c.host, c.port, Who{Peer: c.who, Transport: c.trans})
				if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
					t.Errorf("%s:%d by %s: err %v, want %v", c.host, c.port, c.who.Name(), err, c.want)
					continue
				}
				var got []string
				for _, a := range dec.Addrs {
					got = append(got, a.String())
				}
				if err == nil && !slices.Equal(got, c.addrs) {
					t.Errorf("%s:%d: addresses %v, want %v", c.host, c.port, got, c.addrs)
				}
			}
		})
	}
}

func TestCheckPath(t *testing.T) {
	alice := Who{Peer: peer("alice", "*")}
	rules := []Rule{
		{Action: "deny", Target: "/run/app/secret.sock"},
		{Action: "allow", Target: "/run/app/*.sock"},
		{Action: "allow", Target: "*"}, // "*" is any host, never a path
	}
	off, _ := Compile(Config{Rules: rules})
	on, _ := Compile(Config{Rules: rules, Streamlocal: true})
	tests := []struct {
		p    *Policy
		path string
		ok   bool
	}{
		{off, "/run/app/x.sock", false},
		{on, "/run/app/x.sock", true},
		{on, "/run/app/secret.sock", false},
		{on, "/run/app/../../etc/x.sock", false},
		{on, "/run/other.sock", false},
		{on, "relative.sock", false},
		{on, "/run/app/.sock", false},
	}
	for _, tt := range tests {
		err := tt.p.CheckPath(tt.path, alice)
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrProhibited) {
			t.Errorf("CheckPath(%q, streamlocal=%v) = %v, want ok=%v", tt.path, tt.p.cfg.Streamlocal, err, tt.ok)
		}
	}
}

func TestBindHost(t *testing.T) {
	alice := Who{Peer: peer("alice", "*")}
	none, _ := Compile(Config{})
	star, _ := Compile(Config{Default: "allow", Rules: []Rule{{Action: "allow", Target: "*"}}})
	some, _ := Compile(Config{Rules: []Rule{
		{Action: "allow", Target: "0.0.0.0:2222"},
		{Action: "allow", Target: "192.0.2.1:8080"},
		{Action: "allow", Target: "127.0.0.1:80"},
	}})
	tests := []struct {
		p     *Policy
		addr  string
		port  uint32
		host  string
		okay  bool
		about string
	}{
		{none, "localhost", 0, "127.0.0.1", true, "loopback needs no rule"},
		{none, "", 8080, "127.0.0.1", true, "wildcard falls back to loopback"},
		{none, "192.0.2.1", 8080, "127.0.0.1", true, "a specific address falls back to loopback"},
		{none, "::1", 8080, "::1", true, "IPv6 loopback"},
		{none, "localhost", 80, "", false, "privileged ports need a rule"},
		{none, "some.name", 8080, "127.0.0.1", true, "names bind loopback"},
		{star, "", 2222, "127.0.0.1", true, "\"*\" never opens a wildcard bind"},
		{star, "192.0.2.1", 2222, "127.0.0.1", true, "\"*\" never opens an address bind"},
		{some, "", 2222, "", true, "wildcard allowed by rule"},
		{some, "*", 2223, "127.0.0.1", true, "other ports stay on loopback"},
		{some, "192.0.2.1", 8080, "192.0.2.1", true, "address allowed by rule"},
		{some, "localhost", 80, "127.0.0.1", true, "privileged port allowed by rule"},
	}
	for _, tt := range tests {
		host, ok := bindHost(tt.p, tt.addr, tt.port, alice)
		if ok != tt.okay || ok && host != tt.host {
			t.Errorf("%s: bindHost(%q, %d) = %q, %v; want %q, %v", tt.about, tt.addr, tt.port, host, ok, tt.host, tt.okay)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	bad := []Rule{
		{Action: "permit", Target: "*"},
		{Action: "allow", Target: ""},
		{Action: "allow", Target: "host:"},
		{Action: "allow", Target: "host:99999"},
		{Action: "allow", Target: "host:20-10"},
		{Action: "allow", Target: "host:x"},
		{Action: "allow", Target: "[127.0.0.1]:22"},
		{Action: "allow", Target: "[::1"},
		{Action: "allow", Target: "*.*.com"},
		{Action: "allow", Target: "ho st"},
		{Action: "allow", Target: "/run/../x"},
		{Action: "allow", Target: "*", Scopes: []string{""}},
	}
	for _, r := range bad {
		_, err := Compile(Config{Rules: []Rule{{Action: "allow", Target: "*"}, r}})
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Rule != 2 {
			t.Errorf("rule %+v: err %v, want a ConfigError for rule 2", r, err)
		}
	}
	if _, err := Compile(Config{Default: "maybe"}); err == nil {
		t.Error("default \"maybe\" accepted")
	}
	good := []string{"*", "*:22", "localhost:*", "[::1]:22", "[2001:db8::/32]:1-2", "10.0.0.0/8", "::1", "alknet-*", "/run/x.sock", "db_1.internal:5432"}
	for _, g := range good {
		if _, err := Compile(Config{Rules: []Rule{{Action: "allow", Target: g}}}); err != nil {
			t.Errorf("target %q: %v", g, err)
		}
	}
}
