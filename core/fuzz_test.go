package core_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/alkdev/alknet/core"
)

func FuzzParseAddr(f *testing.F) {
	id := core.NodeIDOf(core.GenerateKey().Public().(ed25519.PublicKey))
	for _, s := range []string{string(id) + "@127.0.0.1:4433", "x@y", "@:", string(id) + "@[::1]:1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pub, hostport, err := core.ParseAddr(s)
		if err != nil {
			return
		}
		// Whatever parses must format back to the same address.
		if got := core.FormatAddr(core.NodeIDOf(pub), hostport); got != s {
			t.Fatalf("ParseAddr(%q) round-trips to %q", s, got)
		}
	})
}

func FuzzParsePeerKey(f *testing.F) {
	f.Add("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1dGZha2VrZXlidXRmYWtla2V5YnV0ZmFrZWtleQ== x")
	f.Add(string(core.NodeIDOf(core.GenerateKey().Public().(ed25519.PublicKey))))
	f.Add("ybndrfg8ejkmcpqxot1uwisza345h769ybndrfg8ejkmcpqxot1u")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := core.ParsePeerKey(s)
		if err == nil && k == nil {
			t.Fatal("nil key without an error")
		}
	})
}
