package core_test

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alkdev/alknet/core"
)

func TestNodeIDRoundTrip(t *testing.T) {
	// A known vector: the all-zero key is 52 'y's (z-base-32's zero digit).
	zero := make(ed25519.PublicKey, 32)
	if got := core.NodeIDOf(zero); got != core.NodeID(strings.Repeat("y", 52)) {
		t.Fatalf("NodeIDOf(zero) = %q", got)
	}
	for range 100 {
		pub := core.GenerateKey().Public().(ed25519.PublicKey)
		id := core.NodeIDOf(pub)
		if len(id) != core.NodeIDLen {
			t.Fatalf("len = %d", len(id))
		}
		back, err := core.ParseNodeID(string(id))
		if err != nil || !bytes.Equal(back, pub) {
			t.Fatalf("ParseNodeID(%q) = %x, %v", id, back, err)
		}
	}
	for _, bad := range []string{"", "short", strings.Repeat("0", 52), strings.Repeat("y", 51) + "b"} {
		if _, err := core.ParseNodeID(bad); err == nil {
			t.Errorf("ParseNodeID(%q) succeeded", bad)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k")
	key := core.GenerateKey()
	if err := core.WriteKeyFile(path, key, "test"); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	if err := core.WriteKeyFile(path, key, "test"); err == nil {
		t.Fatal("WriteKeyFile replaced an existing key")
	}
	got, err := core.ReadKeyFile(path)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("ReadKeyFile: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := core.ReadKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key was accepted: %v", err)
	}
	again, err := core.LoadOrCreateKey(filepath.Join(dir, "sub", "new"), "x")
	if err != nil {
		t.Fatal(err)
	}
	same, err := core.LoadOrCreateKey(filepath.Join(dir, "sub", "new"), "x")
	if err != nil || !bytes.Equal(again, same) {
		t.Fatal("LoadOrCreateKey did not load the key it created")
	}
}

func TestPeersRejectBadLists(t *testing.T) {
	k := string(core.NodeIDOf(core.GenerateKey().Public().(ed25519.PublicKey)))
	for name, list := range map[string][]core.PeerConfig{
		"no name":        {{Keys: []string{k}}},
		"duplicate name": {{Name: "a"}, {Name: "a"}},
		"shared key":     {{Name: "a", Keys: []string{k}}, {Name: "b", Keys: []string{k}}},
		"bad key":        {{Name: "a", Keys: []string{"not a key"}}},
	} {
		if _, err := core.NewPeers(list); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	p, _ := core.NewPeers([]core.PeerConfig{{Name: "a", Keys: []string{k}}})
	if err := p.Update([]core.PeerConfig{{Name: ""}}); err == nil || p.Len() != 1 {
		t.Fatal("a bad update replaced the list")
	}
}

func TestKnownScope(t *testing.T) {
	for scope, want := range map[string]bool{
		"*": true, "ssh:exec": true, "ssh:exec:git-upload-pack": true, "fs:*": true, "ssh:*": true,
		"ssh:exex": false, "fs": false, "": false, "admin": true, "admins": false, "dns:update": true,
	} {
		if got := core.KnownScope(scope); got != want {
			t.Errorf("KnownScope(%q) = %v, want %v", scope, got, want)
		}
	}
}
