package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/core/coretest"
)

// End-to-end tests drive the real alknet binary, built once per test run, and real
// third-party clients against it.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// alknetBinary builds the alknet binary once and returns its path.
func alknetBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "alknet-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "alknet")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// testNode is an "alknet serve" process started for one test.
type testNode struct {
	Bin       string // the alknet binary
	Dir       string // the node folder (config, keys, data)
	Config    string // path of alknet.toml
	Addr      string // <node-id>@127.0.0.1:port
	HostPort  string // 127.0.0.1:port
	ClientKey string // owner key with scope "*"
	Env       []string
	cmd       *exec.Cmd
	out       *coretest.SyncBuffer
}

// startNode runs "alknet init" in a temporary folder, appends extraConfig (TOML) to the
// generated config, and starts "alknet serve" on a free loopback port. It stops the
// server when the test ends.
func startNode(t testing.TB, extraConfig string) *testNode {
	t.Helper()
	return startNodeEdited(t, func(cfg string) string { return cfg + "\n" + extraConfig + "\n" })
}

// startNodeEdited is startNode with the generated config passed through edit before
// the server starts (appending cannot change a table the config already has, such as
// [ssh]). With reuse, it restarts a stopped node on the same config and data instead.
func startNodeEdited(t testing.TB, edit func(string) string, reuse ...*testNode) *testNode {
	t.Helper()
	var n *testNode
	if len(reuse) > 0 {
		old := reuse[0]
		n = &testNode{Bin: old.Bin, Dir: old.Dir, Config: old.Config, ClientKey: old.ClientKey, Env: old.Env}
	} else {
		n = initNodeDir(t)
		b, err := os.ReadFile(n.Config)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(n.Config, []byte(edit(string(b))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n.start(t, nil, nil)
	return n
}

// initNodeDir runs "alknet init" in a temporary folder, with a temporary home.
func initNodeDir(t testing.TB) *testNode {
	t.Helper()
	bin := alknetBinary(t)
	dir := t.TempDir()
	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_DATA_HOME="+filepath.Join(home, ".local/share"))
	n := &testNode{Bin: bin, Dir: dir, Config: filepath.Join(dir, "alknet.toml"), ClientKey: filepath.Join(dir, "client.key"), Env: env}
	if out, err := n.Run(t, "init", "--dir", dir, "--listen", "127.0.0.1:0"); err != nil {
		t.Fatalf("alknet init: %v\n%s", err, out)
	}
	return n
}

// start runs "alknet serve" on the node's config with more args, waits until it
// listens, and stops it when the test ends. prep, if not nil, adjusts the command
// first (extra files, process attributes).
func (n *testNode) start(t testing.TB, args []string, prep func(*exec.Cmd)) {
	t.Helper()
	n.out = &coretest.SyncBuffer{}
	n.cmd = exec.Command(n.Bin, append([]string{"serve", "--config", n.Config}, args...)...)
	n.cmd.Env = n.Env
	if prep != nil {
		prep(n.cmd)
	}
	pr, pw := io.Pipe()
	n.cmd.Stdout = io.MultiWriter(pw, n.out)
	n.cmd.Stderr = n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(t); pw.Close() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "alknet serving "); ok {
				ready <- addr
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case n.Addr = <-ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("alknet serve did not start:\n%s", n.out.String())
	}
	_, n.HostPort, _ = strings.Cut(n.Addr, "@")
}

// Run runs the alknet binary with args in the node's environment.
func (n *testNode) Run(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	return n.RunInput(t, nil, args...)
}

// RunInput is Run with stdin.
func (n *testNode) RunInput(t testing.TB, stdin []byte, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.Bin, args...)
	cmd.Env = n.Env
	cmd.Dir = n.Dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	return cmd.CombinedOutput()
}

// Output is the server's stdout and stderr so far.
func (n *testNode) Output() string { return n.out.String() }

// ProxyCommand is an OpenSSH ProxyCommand reaching alpn on this node with the owner key
// (or identity, if not empty) over transport ("" for the default).
func (n *testNode) ProxyCommand(alpn, identity, transport string) string {
	if identity == "" {
		identity = n.ClientKey
	}
	pc := fmt.Sprintf("%s connect %s --alpn %s --identity %s", n.Bin, n.Addr, alpn, identity)
	if transport != "" {
		pc += " --transport " + transport
	}
	return pc
}

// Reload sends SIGHUP to the server.
func (n *testNode) Reload(t testing.TB) {
	if err := n.cmd.Process.Signal(sighup); err != nil {
		t.Fatal(err)
	}
}

// Stop ends the server with SIGTERM and waits for it.
func (n *testNode) Stop(t testing.TB) {
	if n.cmd == nil || n.cmd.ProcessState != nil {
		return
	}
	n.cmd.Process.Signal(sigterm)
	done := make(chan error, 1)
	go func() { done <- n.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("alknet serve exited with %v\n%s", err, n.out.String())
		}
	case <-time.After(20 * time.Second):
		n.cmd.Process.Kill()
		<-done
		t.Errorf("alknet serve did not stop on SIGTERM\n%s", n.out.String())
	}
}
