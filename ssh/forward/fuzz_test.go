package forward

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// FuzzPolicy compiles arbitrary rule targets and checks arbitrary client-sent hosts and
// socket paths against them: nothing may panic, every refusal must be a typed error, and
// an allowed host must come with addresses that the rules allow on their own.
func FuzzPolicy(f *testing.F) {
	f.Add("127.0.0.1:8000-8999", "localhost", uint32(8080), "/run/x.sock")
	f.Add("*.example.com:443", "www.example.com", uint32(443), "/run/app/a.sock")
	f.Add("[2001:db8::/32]:*", "2001:db8::1", uint32(22), "/")
	f.Add("alknet-*", "alknet-call", uint32(0), "/run/../x")
	f.Add("/run/*.sock", "::ffff:10.0.0.1", uint32(70000), "/run/a.sock")
	f.Add("10.0.0.0/8", "fe80::1%eth0", uint32(1), "")
	f.Add("0.0.0.0/0", "::ffff:0.0.0.0", uint32(80), "")
	f.Add("*", "zero.test", uint32(80), "")
	res := fakeResolver{"localhost": {"127.0.0.1", "::1"}, "www.example.com": {"93.184.216.34", "10.0.0.1"}, "zero.test": {"0.0.0.0", "::"}}
	who := Who{Peer: peer("alice", "*"), Transport: "quic"}
	f.Fuzz(func(t *testing.T, target, host string, port uint32, sock string) {
		for _, action := range []string{"allow", "deny"} {
			p, err := Compile(Config{Streamlocal: true, Rules: []Rule{{Action: action, Target: target}}, Default: "deny"})
			if err != nil {
				var ce *ConfigError
				if !errors.As(err, &ce) {
					t.Fatalf("untyped config error: %v", err)
				}
				return
			}
			dec, err := p.CheckHost(context.Background(), res, host, port, who)
			if err != nil && !errors.Is(err, ErrProhibited) && !errors.Is(err, ErrUnresolved) {
				t.Fatalf("untyped check error: %v", err)
			}
			if err == nil && action == "deny" {
				t.Fatalf("%q allowed by a lone deny rule", host)
			}
			if err == nil && !dec.Internal && len(dec.Addrs) == 0 {
				t.Fatalf("%q allowed with nothing to dial", host)
			}
			if err == nil && dec.Internal && !strings.HasPrefix(strings.ToLower(host), InternalPrefix) {
				t.Fatalf("%q treated as internal", host)
			}
			for _, a := range dec.Addrs {
				if !a.IsValid() || a.Zone() != "" || a.Is4In6() || !dialable(a) {
					t.Fatalf("bad address %v to dial", a)
				}
			}
			if err := p.CheckPath(sock, who); err == nil && (action == "deny" || !strings.HasPrefix(sock, "/") || strings.Contains(sock, "/../")) {
				t.Fatalf("path %q allowed", sock)
			}
			if a, err := netip.ParseAddr(host); err == nil {
				p.AllowsBind(a, port, who)
				bindHost(p, host, port, who)
			}
		}
	})
}
