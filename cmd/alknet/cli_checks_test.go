package main

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alkdev/alknet/core"
	gossh "golang.org/x/crypto/ssh"
)

func TestCheckListenAddr(t *testing.T) {
	for _, ok := range []string{"0.0.0.0:4433", "127.0.0.1:0", "[::]:4433", ":4433", "node.example.org:65535", "localhost:1"} {
		if err := checkListenAddr(ok); err != nil {
			t.Errorf("checkListenAddr(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"nope", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:http", "bad host:1", "-x.org:1", "a..b:1", ""} {
		if err := checkListenAddr(bad); err == nil {
			t.Errorf("checkListenAddr(%q) = nil, want an error", bad)
		}
	}
}

func TestCheckPeerName(t *testing.T) {
	for _, ok := range []string{"alice", "bob.laptop", "ci-runner_2", "a@b"} {
		if err := checkPeerName(ok); err != nil {
			t.Errorf("checkPeerName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "../evil", ".hidden", "-flag", "a/b", "a b", "ä", strings.Repeat("x", 65)} {
		if err := checkPeerName(bad); err == nil {
			t.Errorf("checkPeerName(%q) = nil, want an error", bad)
		}
	}
}

// TestCLIRefusesBadArguments: each bad argument exits non-zero with a message that
// names it, and changes nothing.
func TestCLIRefusesBadArguments(t *testing.T) {
	n := initNodeDir(t)
	before, _ := os.ReadFile(n.Config)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"ping count 0", []string{"ping", n.addrFor(t, "127.0.0.1:1"), "-c", "0"}, "--count 0: want at least 1"},
		{"ping count -1", []string{"ping", n.addrFor(t, "127.0.0.1:1"), "-c", "-1"}, "want at least 1"},
		{"init listen without port", []string{"init", "--dir", filepath.Join(t.TempDir(), "x"), "--listen", "nope"}, `--listen: "nope": want HOST:PORT`},
		{"init listen bad port", []string{"init", "--dir", filepath.Join(t.TempDir(), "y"), "--listen", "127.0.0.1:99999"}, "not a number from 0 to 65535"},
		{"peer name with a path", []string{"peers", "add", "--config", n.Config, "--name", "../evil", "--key", n.clientID(t), "--scope", "sftp:write"}, `--name "../evil"`},
		{"anonymous with identity", []string{"ping", n.addrFor(t, "127.0.0.1:1"), "--anonymous", "--identity", n.ClientKey}, "contradict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := n.Run(t, tt.args...)
			if err == nil {
				t.Fatalf("alknet %s succeeded:\n%s", strings.Join(tt.args, " "), out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output does not contain %q:\n%s", tt.want, out)
			}
		})
	}
	for _, dir := range []string{"x", "y"} {
		if _, err := os.Stat(filepath.Join(t.TempDir(), dir, "alknet.toml")); err == nil {
			t.Errorf("init wrote a config for a bad --listen")
		}
	}
	if after, _ := os.ReadFile(n.Config); !bytes.Equal(before, after) {
		t.Error("a refused command changed the config")
	}
}

// addrFor is the node's address with its ID and another host:port.
func (n *testNode) addrFor(t *testing.T, hostport string) string {
	t.Helper()
	out, err := n.Run(t, "id", "--config", n.Config)
	if err != nil {
		t.Fatalf("alknet id: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out)) + "@" + hostport
}

func (n *testNode) clientID(t *testing.T) string {
	t.Helper()
	key, err := core.ReadKeyFile(n.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(core.NodeIDOf(key.Public().(ed25519.PublicKey)))
}

// TestIDOfPublicKeyFile: "alknet id --key" reads a .pub file (world-readable, as public
// keys are) and gives the same ID as the private key; a non-Ed25519 key is refused
// with the reason.
func TestIDOfPublicKeyFile(t *testing.T) {
	n := initNodeDir(t)
	key, err := core.ReadKeyFile(n.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := gossh.NewPublicKey(key.Public())
	pubFile := filepath.Join(t.TempDir(), "client.pub")
	os.WriteFile(pubFile, gossh.MarshalAuthorizedKey(pub), 0o644)
	out, err := n.Run(t, "id", "--key", pubFile)
	if err != nil || strings.TrimSpace(string(out)) != n.clientID(t) {
		t.Fatalf("id --key %s = %q, %v; want %s", pubFile, out, err, n.clientID(t))
	}
	rsaFile := filepath.Join(t.TempDir(), "rsa.pub")
	os.WriteFile(rsaFile, []byte("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDDHr/jh2Jy4yALcK4JyWbVkPRaWmhck3IgCoeOO3z1e2dBowLh64QAM+Qb72pxekALga2oi4GvT+TlWNhzPH4V4vzmFIsBBY5JORwMzj1+aH1MFY5tkNm0lH9oZqlPm4uyETkwJWGeWNIX5BbsH1szwe8z8FSzgVjv5Ud9xMjWdw== x\n"), 0o644)
	out, err = n.Run(t, "id", "--key", rsaFile)
	if err == nil || !strings.Contains(string(out), "only Ed25519 keys do") {
		t.Fatalf("id --key on an RSA key: %v\n%s", err, out)
	}
}

// TestSSHConfigPrintsNothingOnFailure: with a node ID that does not match, ssh-config
// fails and writes nothing to stdout, so "ssh-config ... >> ~/.ssh/config" appends
// nothing.
func TestSSHConfigPrintsNothingOnFailure(t *testing.T) {
	n := startNode(t, "")
	other := core.NodeIDOf(core.GenerateKey().Public().(ed25519.PublicKey))
	cmd := exec.Command(n.Bin, "ssh-config", string(other)+"@"+n.HostPort, "--identity", n.ClientKey)
	cmd.Env = n.Env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err == nil {
		t.Fatalf("ssh-config with a wrong node ID succeeded:\n%s", stdout.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("ssh-config printed to stdout although it failed:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "does not match") {
		t.Errorf("stderr does not say why:\n%s", stderr.String())
	}
	cmd = exec.Command(n.Bin, "ssh-config", n.Addr, "--identity", n.ClientKey)
	cmd.Env = n.Env
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "ProxyCommand") || !strings.Contains(string(out), "ssh-ed25519") {
		t.Fatalf("ssh-config with the right node ID: %v\n%s", err, out)
	}
}

// TestInitTightensDataDir: init into a folder others may write to (a umask of 002)
// removes their write permission, so that serve accepts the folder, and says so.
func TestInitTightensDataDir(t *testing.T) {
	n := initNodeDir(t)
	dir := filepath.Join(t.TempDir(), "node")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o775)
	out, err := n.Run(t, "init", "--dir", dir, "--listen", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "was writable by others (mode 0775); made it 0755") {
		t.Errorf("init did not say it changed the folder:\n%s", out)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("folder mode after init: %v, %v", fi.Mode().Perm(), err)
	}
	if err := checkDataDir(dir); err != nil {
		t.Errorf("serve would refuse the folder init made: %v", err)
	}
}

// TestSSHConfigWarnsAboutUnlistedKey: ssh-config with a key the node does not list
// still prints the block (the operator may add the key later) but warns on stderr with
// the command that fixes it; with a listed key it warns about nothing.
func TestSSHConfigWarnsAboutUnlistedKey(t *testing.T) {
	n := startNode(t, "")
	stranger := filepath.Join(t.TempDir(), "stranger.key")
	if err := core.WriteKeyFile(stranger, core.GenerateKey(), "stranger"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		key  string
		warn bool
	}{{stranger, true}, {n.ClientKey, false}} {
		cmd := exec.Command(n.Bin, "ssh-config", n.Addr, "--identity", tt.key)
		cmd.Env = n.Env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("ssh-config --identity %s: %v\n%s", tt.key, err, stderr.String())
		}
		if !strings.Contains(stdout.String(), "ProxyCommand") {
			t.Errorf("no Host block:\n%s", stdout.String())
		}
		warned := strings.Contains(stderr.String(), "does not accept the key") && strings.Contains(stderr.String(), "alknet peers add")
		if warned != tt.warn {
			t.Errorf("--identity %s: warned %v, want %v; stderr:\n%s", filepath.Base(tt.key), warned, tt.warn, stderr.String())
		}
	}
}
