package main

import (
	"crypto/ed25519"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// TestPeersAddAppliesWithoutRestart checks the log line the endpoint writes for a
// client key before and after "alknet peers add" on a running server.
func TestPeersAddAppliesWithoutRestart(t *testing.T) {
	n := startNode(t, "")
	keyPath := filepath.Join(t.TempDir(), "bob.key")
	bob := core.GenerateKey()
	if err := core.WriteKeyFile(keyPath, bob, "bob"); err != nil {
		t.Fatal(err)
	}
	bobID := string(core.NodeIDOf(bob.Public().(ed25519.PublicKey)))
	if out, err := n.Run(t, "ping", n.Addr, "--identity", keyPath); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	waitFor(t, n, "result=unknown-key")

	out, err := n.Run(t, "peers", "add", "--config", n.Config, "--name", "bob", "--key", bobID, "--scope", "call")
	if err != nil || !strings.Contains(string(out), "running server reloaded") {
		t.Fatalf("peers add: %v\n%s", err, out)
	}
	waitFor(t, n, "msg=reloaded")
	if out, err := n.Run(t, "ping", n.Addr, "--identity", keyPath); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	waitFor(t, n, "result=accepted remote=")
	if !strings.Contains(n.Output(), "peer=bob") {
		t.Fatalf("bob was not recognised after peers add:\n%s", n.Output())
	}
	// A duplicate name is refused and leaves the file alone.
	if out, err := n.Run(t, "peers", "add", "--config", n.Config, "--name", "bob", "--key", bobID, "--scope", "*"); err == nil {
		t.Fatalf("duplicate peer accepted:\n%s", out)
	}
}

func waitFor(t *testing.T, n *testNode, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(n.Output(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("server never logged %q:\n%s", s, n.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeEmbeddedDefault runs "alknet serve" with no config in an empty home: it
// must say where its data folder is, and the user's own key must be the owner.
func TestServeEmbeddedDefault(t *testing.T) {
	bin := alknetBinary(t)
	home := t.TempDir()
	env := []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
	// The embedded default listens on 127.0.0.1:4433; override the port to stay free.
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0")
	cmd.Env = env
	cmd.Dir = home
	out := &coretest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(sigterm); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "alpns:") {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	text := out.String()
	for _, want := range []string{"embedded default", filepath.Join(home, ".local/share/alknet"), "alknet/ping"} {
		if !strings.Contains(text, want) {
			t.Errorf("serve output lacks %q:\n%s", want, text)
		}
	}
	addr := strings.Fields(strings.SplitN(text, "alknet serving ", 2)[1])[0]
	ping := exec.Command(bin, "ping", addr)
	ping.Env = env
	if b, err := ping.CombinedOutput(); err != nil {
		t.Fatalf("ping with the default identity: %v\n%s", err, b)
	}
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "peer=owner") {
		if time.Now().After(deadline) {
			t.Fatalf("the default identity is not the owner:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPeersAddLeavesStalePIDAlone: a pid file left behind by a crash must not get an
// unrelated process signalled.
func TestPeersAddLeavesStalePIDAlone(t *testing.T) {
	bin := alknetBinary(t)
	dir := t.TempDir()
	if out, err := exec.Command(bin, "init", "--dir", dir, "--listen", "127.0.0.1:0").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	bystander := exec.Command("sleep", "60")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	defer bystander.Process.Kill()
	os.WriteFile(filepath.Join(dir, "alknet.pid"), []byte(strconv.Itoa(bystander.Process.Pid)+"\n"), 0o600)
	key := string(core.NodeIDOf(core.GenerateKey().Public().(ed25519.PublicKey)))
	out, err := exec.Command(bin, "peers", "add", "--config", filepath.Join(dir, "alknet.toml"), "--name", "x", "--key", key, "--scope", "call").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "no server is running") {
		t.Fatalf("peers add: %v\n%s", err, out)
	}
	done := make(chan error, 1)
	go func() { done <- bystander.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("an unrelated process was signalled: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
}
